//! Compile-time checks: every primitive and parameter is known, every required parameter
//! present and of the right kind, and the image shape `[C, H, W]` is pushed through the
//! chain with each primitive's rule (factors divide sizes, kernels fit, windows fit,
//! complex inputs have an even channel count, masks leave room for the fully sampled
//! centre), mirroring exactly the run-time checks of `scoreprior_core::forward::build_op`
//! so that a chain accepted here always builds. All errors are accumulated.

use proc_macro2::TokenStream;

use quote::ToTokens;

use super::ast::{Call, Param, Spec, Value};
use super::Ctxt;

/// What a parameter must be.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Any finite number.
    Real,
    /// A number > 0.
    Positive,
    /// A number ≥ 1.
    AtLeastOne,
    /// A probability in (0, 1].
    Probability,
    /// An integer ≥ 0.
    Count,
    /// An integer ≥ 1.
    PositiveInt,
    /// `zero`, `reflect` or `circular`.
    Boundary,
}

/// `(name, kind, required)`.
type ParamDef = (&'static str, Kind, bool);

/// The primitives: name and parameters. Kept in step with `build_op` (core's
/// `forward_macro` test builds one struct per primitive).
const PRIMITIVES: &[(&str, &[ParamDef])] = &[
    ("identity", &[]),
    ("scale", &[("factor", Kind::Real, true)]),
    ("mask", &[("keep", Kind::Probability, true), ("seed", Kind::Count, false)]),
    (
        "gaussian_blur",
        &[("sigma", Kind::Positive, true), ("size", Kind::PositiveInt, true), ("boundary", Kind::Boundary, false)],
    ),
    ("box_blur", &[("size", Kind::PositiveInt, true), ("boundary", Kind::Boundary, false)]),
    (
        "motion_blur",
        &[("length", Kind::PositiveInt, true), ("angle", Kind::Real, false), ("boundary", Kind::Boundary, false)],
    ),
    ("subsample", &[("factor", Kind::PositiveInt, true)]),
    ("avg_pool", &[("factor", Kind::PositiveInt, true)]),
    (
        "crop",
        &[
            ("top", Kind::Count, false),
            ("left", Kind::Count, false),
            ("height", Kind::PositiveInt, true),
            ("width", Kind::PositiveInt, true),
        ],
    ),
    (
        "pad",
        &[
            ("top", Kind::Count, false),
            ("bottom", Kind::Count, false),
            ("left", Kind::Count, false),
            ("right", Kind::Count, false),
        ],
    ),
    ("fft2", &[]),
    ("ifft2", &[]),
    (
        "cartesian_mask",
        &[("acceleration", Kind::AtLeastOne, true), ("center", Kind::Count, false), ("seed", Kind::Count, false)],
    ),
    (
        "poisson_mask",
        &[("acceleration", Kind::AtLeastOne, true), ("center", Kind::Count, false), ("seed", Kind::Count, false)],
    ),
    ("dft_lowpass", &[("k", Kind::PositiveInt, true)]),
    ("gaussian_matrix", &[("m", Kind::PositiveInt, true), ("seed", Kind::Count, false)]),
    ("magnitude", &[]),
];

const NOISES: &[&str] = &["gaussian", "complex_gaussian"];

/// What the checks learnt.
pub(crate) struct Checked {
    pub input: [usize; 3],
    pub output: [usize; 3],
    pub linear: bool,
}

fn show(s: [usize; 3]) -> String {
    format!("[{}, {}, {}]", s[0], s[1], s[2])
}

/// Checks one parameter's value against its kind; returns the number (or NaN for words).
fn check_value(cx: &mut Ctxt, prim: &str, p: &Param, kind: Kind) -> Option<f64> {
    let key = p.key.to_string();
    let (v, int) = match (&p.value, kind) {
        (Value::Word(w), Kind::Boundary) => {
            if ["zero", "reflect", "circular"].contains(&w.as_str()) {
                return Some(f64::NAN);
            }
            cx.error(&p.span, format!("unknown boundary `{w}` in `{prim}`; expected `zero`, `reflect` or `circular`"));
            return None;
        }
        (_, Kind::Boundary) => {
            cx.error(&p.span, format!("`boundary` of `{prim}` must be `zero`, `reflect` or `circular`"));
            return None;
        }
        (Value::Word(w), _) => {
            cx.error(&p.span, format!("parameter `{key}` of `{prim}` must be a number, got `{w}`"));
            return None;
        }
        (Value::Num { value, int }, _) => (*value, *int),
    };
    let bad = |cx: &mut Ctxt, what: &str| {
        cx.error(&p.span, format!("parameter `{key}` of `{prim}` must be {what}, got {v}"));
        None
    };
    match kind {
        Kind::Real if v.is_finite() => Some(v),
        Kind::Real => bad(cx, "finite"),
        Kind::Positive if v > 0.0 && v.is_finite() => Some(v),
        Kind::Positive => bad(cx, "positive"),
        Kind::AtLeastOne if v >= 1.0 && v.is_finite() => Some(v),
        Kind::AtLeastOne => bad(cx, "at least 1"),
        Kind::Probability if v > 0.0 && v <= 1.0 => Some(v),
        Kind::Probability => bad(cx, "a probability in (0, 1]"),
        Kind::Count | Kind::PositiveInt if !int => bad(cx, "an integer"),
        Kind::Count if v >= 0.0 => Some(v),
        Kind::Count => bad(cx, "a non-negative integer"),
        Kind::PositiveInt if v >= 1.0 => Some(v),
        Kind::PositiveInt => bad(cx, "a positive integer"),
        Kind::Boundary => unreachable!("handled above"),
    }
}

/// A primitive's parameters after checking: value by name (missing optional ones absent).
struct Args<'a> {
    call: &'a Call,
    values: Vec<(&'static str, f64, &'a TokenStream)>,
}
impl Args<'_> {
    fn get(&self, k: &str) -> Option<(f64, &TokenStream)> {
        self.values.iter().find(|(n, _, _)| *n == k).map(|&(_, v, s)| (v, s))
    }
    fn or(&self, k: &str, d: f64) -> f64 {
        self.get(k).map_or(d, |(v, _)| v)
    }
    /// A required parameter (present: checked before).
    fn req(&self, k: &str) -> (f64, &TokenStream) {
        self.get(k).unwrap_or((f64::NAN, &self.call.span))
    }
}

/// Checks every parameter of `call`; `None` when something was wrong.
fn check_params<'a>(cx: &mut Ctxt, call: &'a Call, defs: &[ParamDef]) -> Option<Args<'a>> {
    let prim = call.name.to_string();
    let mut ok = true;
    let mut values = Vec::new();
    for p in &call.params {
        let key = p.key.to_string();
        match defs.iter().find(|d| d.0 == key) {
            None => {
                let expected = if defs.is_empty() {
                    format!("`{prim}` takes no parameters")
                } else {
                    format!(
                        "expected one of: {}",
                        defs.iter().map(|d| format!("`{}`", d.0)).collect::<Vec<_>>().join(", ")
                    )
                };
                cx.error(&p.key, format!("unknown parameter `{key}` of `{prim}`; {expected}"));
                ok = false;
            }
            Some(&(name, kind, _)) => match check_value(cx, &prim, p, kind) {
                Some(v) => values.push((name, v, &p.span)),
                None => ok = false,
            },
        }
    }
    for &(name, _, required) in defs {
        if required && !call.params.iter().any(|p| p.key == name) {
            cx.error(&call.span, format!("`{prim}` needs the parameter `{name}`"));
            ok = false;
        }
    }
    ok.then_some(Args { call, values })
}

/// Pushes `shape` through one primitive, reporting rule violations.
fn step(cx: &mut Ctxt, a: &Args, s: [usize; 3]) -> Option<[usize; 3]> {
    let call = a.call;
    let prim = call.name.to_string();
    let [c, h, w] = s;
    let mut fail = |span: &TokenStream, msg: String| {
        cx.error(span, msg);
        None
    };
    match prim.as_str() {
        "identity" | "scale" | "mask" => Some(s),
        "gaussian_blur" | "box_blur" | "motion_blur" => {
            let (k, span) = if prim == "motion_blur" { a.req("length") } else { a.req("size") };
            let k = k as usize;
            let k = if prim == "motion_blur" && k % 2 == 0 { k + 1 } else { k };
            if k > h || k > w {
                return fail(
                    span,
                    format!("kernel {k}×{k} is larger than the image {h}×{w} (input of `{prim}` is {})", show(s)),
                );
            }
            Some(s)
        }
        "subsample" | "avg_pool" => {
            let (f, span) = a.req("factor");
            let f = f as usize;
            if !h.is_multiple_of(f) || !w.is_multiple_of(f) {
                return fail(span, format!("{prim} factor {f} does not divide the image size {h}×{w}"));
            }
            Some([c, h / f, w / f])
        }
        "crop" => {
            let (top, left) = (a.or("top", 0.0) as usize, a.or("left", 0.0) as usize);
            let (ht, wd) = (a.req("height").0 as usize, a.req("width").0 as usize);
            if top + ht > h || left + wd > w {
                return fail(
                    &call.span,
                    format!("crop window {ht}×{wd} at ({top}, {left}) does not fit in the image {h}×{w}"),
                );
            }
            Some([c, ht, wd])
        }
        "pad" => {
            let g = |k| a.or(k, 0.0) as usize;
            Some([c, h + g("top") + g("bottom"), w + g("left") + g("right")])
        }
        "fft2" => Some([2 * c, h, w]),
        "ifft2" | "magnitude" => {
            if !c.is_multiple_of(2) {
                return fail(
                    &call.name.to_token_stream(),
                    format!(
                        "`{prim}` needs split complex input (an even channel count, e.g. after `fft2`), got {}",
                        show(s)
                    ),
                );
            }
            Some([c / 2, h, w])
        }
        "cartesian_mask" | "poisson_mask" => {
            let acc = a.req("acceleration").0;
            let center = a.or("center", 4.0) as usize;
            if center > h.min(w) {
                return fail(&call.span, format!("fully sampled centre {center} exceeds the k-space size {h}×{w}"));
            }
            // Same arithmetic as `scoreprior_core::forward::ops::masks`.
            let target = ((h * w) as f64 / acc).round() as usize;
            if prim == "cartesian_mask" {
                let lines = ((target as f64 / w as f64).round() as usize).clamp(1, h);
                if lines < center {
                    return fail(
                        a.req("acceleration").1,
                        format!(
                            "acceleration {acc} keeps {lines} rows, fewer than the fully sampled centre of {center}"
                        ),
                    );
                }
            } else if target < center * center {
                return fail(
                    a.req("acceleration").1,
                    format!("acceleration {acc} allows {target} samples, fewer than the {center}×{center} fully sampled centre"),
                );
            }
            Some(s)
        }
        "dft_lowpass" => {
            let (k, span) = a.req("k");
            let k = k as usize;
            if k > h || k > w {
                return fail(span, format!("dft_lowpass block {k}×{k} does not fit in the image {h}×{w}"));
            }
            Some([2 * c, k, k])
        }
        "gaussian_matrix" => Some([1, 1, a.req("m").0 as usize]),
        _ => unreachable!("unknown primitives are rejected before"),
    }
}

/// Runs every check; `None` when any failed (the errors are in `cx`).
pub(crate) fn check(spec: &Spec, cx: &mut Ctxt) -> Option<Checked> {
    let (input, _) = spec.input?;
    let mut shape = Some(input);
    let mut ok = true;
    let mut linear = true;
    for call in &spec.ops {
        let name = call.name.to_string();
        if name == "matrix" {
            cx.error(
                &call.name,
                "`matrix(file = …)` is a run-time primitive (its output size is in the file, unknown at compile \
                 time): build it with `scoreprior::forward::parse_model` or `DenseMatrix::from_npy`, or use \
                 `gaussian_matrix(m = …)` here",
            );
            ok = false;
            shape = None;
            continue;
        }
        let Some(&(_, defs)) = PRIMITIVES.iter().find(|p| p.0 == name) else {
            let names: Vec<&str> = PRIMITIVES.iter().map(|p| p.0).collect();
            cx.error(&call.name, format!("unknown primitive `{name}`; expected one of: {}", names.join(", ")));
            ok = false;
            shape = None;
            continue;
        };
        linear &= name != "magnitude";
        let Some(args) = check_params(cx, call, defs) else {
            ok = false;
            shape = None;
            continue;
        };
        // After a shape error the shape is unknown: later shape rules are not checked, so
        // one mistake gives one error.
        if let Some(s) = shape {
            shape = step(cx, &args, s);
            ok &= shape.is_some();
        }
    }
    if let Some(noise) = &spec.noise {
        let name = noise.name.to_string();
        if !NOISES.contains(&name.as_str()) {
            cx.error(&noise.name, format!("unknown noise `{name}`; expected `gaussian` or `complex_gaussian`"));
            ok = false;
        } else {
            let defs: &[ParamDef] = &[("sigma", Kind::Real, true)];
            match check_params(cx, noise, defs) {
                Some(a) => {
                    let (sigma, span) = a.req("sigma");
                    if !(sigma > 0.0 && sigma.is_finite()) {
                        cx.error(span, format!("noise level must be positive, got {sigma}"));
                        ok = false;
                    }
                }
                None => ok = false,
            }
        }
    }
    let output = shape?;
    ok.then_some(Checked { input, output, linear })
}
