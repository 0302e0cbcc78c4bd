//! Compile-time checks: every primitive and parameter is known, every required parameter
//! present and of the right kind (against the one table of the language,
//! `scoreprior_primitives`, which the run-time parser reads too), and the image shape `[C, H, W]` is pushed through the
//! chain with each primitive's rule (factors divide sizes, kernels fit, windows fit,
//! complex inputs have an even channel count, masks leave room for the fully sampled
//! centre), mirroring exactly the run-time checks of `scoreprior_core::forward::build_op`
//! so that a chain accepted here always builds. All errors are accumulated.

use proc_macro2::TokenStream;

use quote::ToTokens;

use scoreprior_primitives::{self as prims, Kind, ParamDef, BOUNDARIES, NOISES, PRIMITIVES};

use super::ast::{Call, Param, Spec, Value};
use super::Ctxt;

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
            if BOUNDARIES.contains(&w.as_str()) {
                return Some(f64::NAN);
            }
            cx.error(&p.span, format!("unknown boundary `{w}` in `{prim}`; expected `zero`, `reflect` or `circular`"));
            return None;
        }
        (_, Kind::Boundary) => {
            cx.error(&p.span, format!("`boundary` of `{prim}` must be `zero`, `reflect` or `circular`"));
            return None;
        }
        // Not used by any compile-time primitive (`matrix` and the presets are run-time only),
        // checked for completeness.
        (Value::Word(w), Kind::OneOf(words)) => {
            if words.contains(&w.as_str()) {
                return Some(f64::NAN);
            }
            let expected = words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ");
            cx.error(&p.span, format!("parameter `{key}` of `{prim}` must be one of {expected}, got `{w}`"));
            return None;
        }
        (Value::Word(_), Kind::Path) => return Some(f64::NAN),
        (_, Kind::OneOf(_) | Kind::Path) => {
            cx.error(&p.span, format!("parameter `{key}` of `{prim}` must be a word"));
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
        Kind::Boundary | Kind::OneOf(_) | Kind::Path => unreachable!("handled above"),
    }
}

/// A primitive's parameters after checking: value by name (missing optional ones absent).
struct Args<'a> {
    call: &'a Call,
    defs: &'a [ParamDef],
    values: Vec<(&'static str, f64, &'a TokenStream)>,
}
impl Args<'_> {
    fn get(&self, k: &str) -> Option<(f64, &TokenStream)> {
        self.values.iter().find(|(n, _, _)| *n == k).map(|&(_, v, s)| (v, s))
    }
    /// An optional parameter, or its default from the table.
    fn or_default(&self, k: &str) -> f64 {
        self.get(k).map_or_else(
            || {
                let d = self.defs.iter().find(|d| d.name == k).and_then(|d| d.default);
                d.and_then(|d| d.parse().ok()).expect("a numeric default in the table")
            },
            |(v, _)| v,
        )
    }
    /// A required parameter (present: checked before).
    fn req(&self, k: &str) -> (f64, &TokenStream) {
        self.get(k).unwrap_or((f64::NAN, &self.call.span))
    }
}

/// Checks every parameter of `call`; `None` when something was wrong.
fn check_params<'a>(cx: &mut Ctxt, call: &'a Call, defs: &'a [ParamDef]) -> Option<Args<'a>> {
    let prim = call.name.to_string();
    let mut ok = true;
    let mut values = Vec::new();
    for p in &call.params {
        let key = p.key.to_string();
        match defs.iter().find(|d| d.name == key) {
            None => {
                let expected = if defs.is_empty() {
                    format!("`{prim}` takes no parameters")
                } else {
                    format!(
                        "expected one of: {}",
                        defs.iter().map(|d| format!("`{}`", d.name)).collect::<Vec<_>>().join(", ")
                    )
                };
                cx.error(&p.key, format!("unknown parameter `{key}` of `{prim}`; {expected}"));
                ok = false;
            }
            Some(&ParamDef { name, kind, .. }) => match check_value(cx, &prim, p, kind) {
                Some(v) => values.push((name, v, &p.span)),
                None => ok = false,
            },
        }
    }
    for &ParamDef { name, required, .. } in defs {
        if required && !call.params.iter().any(|p| p.key == name) {
            cx.error(&call.span, format!("`{prim}` needs the parameter `{name}`"));
            ok = false;
        }
    }
    ok.then_some(Args { call, defs, values })
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
            let (top, left) = (a.or_default("top") as usize, a.or_default("left") as usize);
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
            let g = |k| a.or_default(k) as usize;
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
            let center = a.or_default("center") as usize;
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
        let def = prims::primitive(&name);
        if def.is_some_and(|d| !d.compile_time) {
            // Only `matrix`: its output size is in a file.
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
        let Some(def) = def else {
            let names = prims::name_list(PRIMITIVES, |d| d.compile_time, ", ", "");
            cx.error(&call.name, format!("unknown primitive `{name}`; expected one of: {names}"));
            ok = false;
            shape = None;
            continue;
        };
        linear &= def.linear;
        let Some(args) = check_params(cx, call, def.params) else {
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
        match prims::noise(&name) {
            None => {
                let names = prims::name_list(NOISES, |_| true, " or ", "`");
                cx.error(&noise.name, format!("unknown noise `{name}`; expected {names}"));
                ok = false;
            }
            Some(def) => {
                // The level's positivity is reported below with its own message, so it is
                // read as any number here.
                let defs: Vec<ParamDef> = def
                    .params
                    .iter()
                    .map(|p| if p.kind == Kind::Positive { ParamDef { kind: Kind::Real, ..*p } } else { *p })
                    .collect();
                match check_params(cx, noise, &defs) {
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
    }
    let output = shape?;
    ok.then_some(Checked { input, output, linear })
}
