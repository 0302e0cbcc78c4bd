//! Primitives by name: the one place that turns `name(key = value, …)` into an [`Op`]. The
//! `#[forward_model]` macro (after its compile-time checks), the text parser used by the CLI
//! and configs, and Rust callers all end here, so no operator code is duplicated.
//!
//! The vocabulary (every primitive, noise and preset with its parameters, kinds, defaults
//! and a one-line description) is one table, [`scoreprior_primitives`], re-exported here as
//! [`PRIMITIVES`], [`NOISES`] and [`PRESETS`]; the `#[forward_model]` macro validates
//! against the same table, so the two cannot drift apart. This module rejects unknown and
//! missing parameters from it, lists its names in errors and takes its defaults; the values
//! and each primitive's shape rule are checked by the operators in [`super::ops`].
//!
//! Boundaries are `zero`, `reflect` or `circular`. Noise: `gaussian(sigma = s)` or
//! `complex_gaussian(sigma = s)`. Text syntax: primitives separated by `|`, e.g.
//! `gaussian_blur(sigma=1.5, size=9) | subsample(factor=2)`.
//!
//! Presets ([`expand_preset`]), accepted wherever a chain is, alone: `denoising`
//! (`identity`), `deblurring(k=8)` (`dft_lowpass(k)`), `mri(acceleration=8, center=4, seed=1,
//! mask=poisson|cartesian)` (`fft2 | poisson_mask(…)`). `eht` is not a chain (an
//! interferometer with its own noise; `measure` builds it).

//!
//! Split by responsibility: this module holds the table look-up and the builders
//! ([`build_op`], [`build_chain`], [`parse_noise`], [`parse_model`]); `parse.rs` the text
//! reader ([`PrimitiveSpec::parse`], [`parse_chain`]); `preset.rs` the chain presets
//! ([`expand_preset`]); `eht.rs` the settings of the `eht(…)` interferometer ([`EhtSettings`]).

mod eht;
mod parse;
mod preset;

use std::sync::Arc;

use super::ops::{self, Boundary, Kernel};
use super::{Chain, Model, NoiseSpec, Op, Shape};
use crate::{Error, Result};

pub use eht::{EhtSettings, EHT_FOV_UAS};
use parse::parse_call;
pub use parse::parse_chain;
pub use preset::{expand_preset, Preset};

/// A parameter value: a number, a bare word (`reflect`) or a text such as a file path
/// (`"A.npy"`, `'my file.npy'`, or unquoted when it holds only letters, digits and `_ . / - ~ +`).
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// A number (integers are written as numbers too).
    Num(f64),
    /// A bare word.
    Word(String),
    /// A text that is not a word: a path, quoted or not.
    Text(String),
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Num(v) => write!(f, "{v}"),
            ParamValue::Word(w) => write!(f, "{w}"),
            ParamValue::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// `name(key = value, …)`, before it is built on a shape.
#[derive(Debug, Clone, PartialEq)]
pub struct PrimitiveSpec {
    /// Primitive name, e.g. `gaussian_blur`.
    pub name: String,
    /// Parameters in the order written.
    pub params: Vec<(String, ParamValue)>,
}

impl PrimitiveSpec {
    /// A spec from parts (used by `#[forward_model]` expansions).
    pub fn new(name: &str, params: Vec<(&str, ParamValue)>) -> Self {
        PrimitiveSpec { name: name.into(), params: params.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
    }
}

pub use scoreprior_primitives::{Kind, ParamDef, PrimitiveDef, NOISES, PRESETS, PRIMITIVES};

/// Reads parameters, rejecting unknown ones and reporting missing ones by name, against the
/// definition `def` from the table.
struct Params<'a> {
    spec: &'a PrimitiveSpec,
    def: &'static PrimitiveDef,
}

impl<'a> Params<'a> {
    fn new(spec: &'a PrimitiveSpec, def: &'static PrimitiveDef) -> Result<Self> {
        for (k, _) in &spec.params {
            if def.param(k).is_none() {
                let expected = if def.params.is_empty() { "(none)".to_string() } else { def.param_list(", ", "") };
                return Err(Error::unknown_of("parameter", k, &spec.name, format!("one of: {expected}")));
            }
        }
        if let Some(p) = def.params.iter().find(|p| p.required && !spec.params.iter().any(|(k, _)| k == p.name)) {
            return Err(missing(&spec.name, p.name));
        }
        Ok(Params { spec, def })
    }
    /// The default of an optional parameter, from the table.
    fn default(&self, key: &str) -> Option<&'static str> {
        self.def.param(key).and_then(|p| p.default)
    }
    /// A number, or its default from the table.
    fn num_or_default(&self, key: &str) -> Result<f64> {
        match self.num_opt(key)? {
            Some(v) => Ok(v),
            None => Ok(self.default(key).and_then(|d| d.parse().ok()).expect("a numeric default in the table")),
        }
    }
    /// An unsigned integer, or its default from the table.
    fn uint_or_default(&self, key: &str) -> Result<usize> {
        let d = self.default(key).map(|d| d.parse().expect("an integer default in the table"));
        self.uint_or(key, d)
    }
    fn get(&self, key: &str) -> Option<&ParamValue> {
        debug_assert!(self.def.param(key).is_some(), "`{key}` is not in the table of `{}`", self.def.name);
        self.spec.params.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn num_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(ParamValue::Num(v)) if v.is_finite() => Ok(Some(*v)),
            Some(v) => Err(Error::syntax(
                format!("`{}`", self.spec.name),
                format!("parameter `{key}` must be a number, got `{v}`"),
            )),
        }
    }
    fn num(&self, key: &str) -> Result<f64> {
        self.num_opt(key)?.ok_or_else(|| missing(&self.spec.name, key))
    }
    fn positive(&self, key: &str) -> Result<f64> {
        let v = self.num(key)?;
        if v > 0.0 {
            Ok(v)
        } else {
            Err(Error::out_of_range(format!("parameter `{key}` of `{}`", self.spec.name), v, "positive"))
        }
    }
    fn uint_or(&self, key: &str, default: Option<usize>) -> Result<usize> {
        match (self.num_opt(key)?, default) {
            (Some(v), _) if v >= 0.0 && v.fract() == 0.0 && v < 1e15 => Ok(v as usize),
            (Some(v), _) => Err(Error::out_of_range(
                format!("parameter `{key}` of `{}`", self.spec.name),
                v,
                "a non-negative integer",
            )),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(missing(&self.spec.name, key)),
        }
    }
    fn uint(&self, key: &str) -> Result<usize> {
        self.uint_or(key, None)
    }
    fn text(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            Some(ParamValue::Text(t) | ParamValue::Word(t)) => Ok(t),
            Some(v) => Err(Error::syntax(
                format!("`{}`", self.spec.name),
                format!("parameter `{key}` must be a path, got `{v}`"),
            )),
            None => Err(missing(&self.spec.name, key)),
        }
    }
    fn boundary(&self) -> Result<Boundary> {
        match self.get("boundary") {
            None => Boundary::parse(self.default("boundary").expect("a default boundary in the table")),
            Some(ParamValue::Word(w)) => Boundary::parse(w),
            Some(v) => Err(Error::unknown("boundary", v.to_string(), "zero, reflect or circular")),
        }
    }
}

/// The required parameter `key` of the primitive `name` is missing.
fn missing(name: &str, key: &str) -> Error {
    Error::syntax(format!("`{name}`"), format!("needs the parameter `{key}`"))
}

/// Builds the primitive `spec` on inputs of `shape`.
///
/// ```
/// use scoreprior_core::forward::{build_op, ParamValue, PrimitiveSpec};
/// let op = build_op(&PrimitiveSpec::new("subsample", vec![("factor", ParamValue::Num(2.0))]), [1, 8, 8].into()).unwrap();
/// assert_eq!(op.output_shape().to_array(), [1, 4, 4]);
/// ```
pub fn build_op(spec: &PrimitiveSpec, shape: Shape) -> Result<Arc<dyn Op>> {
    if scoreprior_primitives::primitive(&spec.name).is_none() && scoreprior_primitives::preset(&spec.name).is_some() {
        return Err(preset_in_chain(&spec.name));
    }
    let def = scoreprior_primitives::primitive(&spec.name).ok_or_else(|| {
        Error::unknown(
            "primitive",
            &spec.name,
            format!("one of: {}", scoreprior_primitives::name_list(PRIMITIVES, |_| true, ", ", "")),
        )
    })?;
    let q = Params::new(spec, def)?;
    let op: Arc<dyn Op> = match def.name {
        "identity" => Arc::new(ops::Identity::new(shape)),
        "scale" => Arc::new(ops::Scale::new(shape, q.num("factor")?)),
        "mask" => Arc::new(ops::Mask::random(shape, q.num("keep")?, q.uint_or_default("seed")? as u64)?),
        "gaussian_blur" => {
            Arc::new(ops::Conv2d::new(shape, Kernel::gaussian(q.positive("sigma")?, q.uint("size")?)?, q.boundary()?)?)
        }
        "box_blur" => Arc::new(ops::Conv2d::new(shape, Kernel::boxcar(q.uint("size")?)?, q.boundary()?)?),
        "motion_blur" => {
            let k = Kernel::motion(q.uint("length")?, q.num_or_default("angle")?)?;
            Arc::new(ops::Conv2d::new(shape, k, q.boundary()?)?)
        }
        "subsample" => Arc::new(ops::Subsample::new(shape, q.uint("factor")?)?),
        "avg_pool" => Arc::new(ops::AvgPool::new(shape, q.uint("factor")?)?),
        "crop" => Arc::new(ops::Crop::new(
            shape,
            q.uint_or_default("top")?,
            q.uint_or_default("left")?,
            q.uint("height")?,
            q.uint("width")?,
        )?),
        "pad" => {
            let g = |k| q.uint_or_default(k);
            Arc::new(ops::Pad::new(shape, g("top")?, g("bottom")?, g("left")?, g("right")?))
        }
        "fft2" => Arc::new(ops::Fft2::new(shape)),
        "ifft2" => Arc::new(ops::Ifft2::new(shape)?),
        "cartesian_mask" | "poisson_mask" => {
            let (a, c, s) =
                (q.positive("acceleration")?, q.uint_or_default("center")?, q.uint_or_default("seed")? as u64);
            if def.name == "cartesian_mask" {
                Arc::new(ops::FourierMask::cartesian(shape, a, c, s)?)
            } else {
                Arc::new(ops::FourierMask::poisson(shape, a, c, s)?)
            }
        }
        "dft_lowpass" => Arc::new(ops::DftLowpass::new(shape, q.uint("k")?)?),
        "gaussian_matrix" => {
            Arc::new(ops::DenseMatrix::gaussian(shape, q.uint("m")?, q.uint_or_default("seed")? as u64)?)
        }
        "magnitude" => Arc::new(ops::Magnitude::new(shape)?),
        "matrix" => Arc::new(ops::DenseMatrix::from_npy(shape, q.text("file")?)?),
        // Never reached: `every_primitive_of_the_table_builds` builds each one.
        other => return Err(Error::unsupported(format!("primitive `{other}` is in the table but has no operator"))),
    };
    Ok(op)
}

/// A preset (`eht`, `mri`, …) used as a step of a chain: presets are whole forward models.
fn preset_in_chain(name: &str) -> Error {
    let what = if name == "eht" {
        "an interferometer with its own thermal noise (the radiometer equation of each baseline)"
    } else {
        "a whole forward model with its own noise"
    };
    Error::unsupported(format!(
        "`{name}` is a preset, not a primitive: it is {what} and must stand alone, as the whole forward model \
         (`{name}(…)` without `|`); it cannot be chained with other primitives"
    ))
}

/// Builds a chain from specs on images of `input` shape.
pub fn build_chain(specs: &[PrimitiveSpec], input: Shape) -> Result<Chain> {
    let mut chain = Chain::new(input);
    for s in specs {
        let op = build_op(s, chain.output_shape())
            .map_err(|e| e.context(format!("in `{}` (input {})", s.name, chain.output_shape())))?;
        chain.push(op)?;
    }
    Ok(chain)
}

fn check_level(sigma: f64) -> Result<f64> {
    super::noise::check_sigma(sigma).map(|()| sigma)
}

/// Parses `gaussian(sigma = s)` or `complex_gaussian(sigma = s)`.
pub fn parse_noise(text: &str) -> Result<NoiseSpec> {
    let spec = parse_call(text)?;
    let def = scoreprior_primitives::noise(&spec.name).ok_or_else(|| {
        Error::unknown("noise", &spec.name, scoreprior_primitives::name_list(NOISES, |_| true, " or ", ""))
    })?;
    let q = Params::new(&spec, def)?;
    match def.name {
        // The range of every noise level (σ² a normal number), checked here too so that the
        // error names the noise specification.
        "gaussian" => Ok(NoiseSpec::Gaussian { sigma: q.positive("sigma").and_then(check_level)? }),
        "complex_gaussian" => Ok(NoiseSpec::ComplexGaussian { sigma: q.positive("sigma").and_then(check_level)? }),
        // Never reached: `every_noise_of_the_table_parses` parses each one.
        other => Err(Error::unsupported(format!("noise `{other}` is in the table but has no model"))),
    }
}

/// Parses a chain and a noise into a [`Model`].
///
/// ```
/// use scoreprior_core::forward::{parse_model, ForwardModel};
/// let m = parse_model("fft2 | cartesian_mask(acceleration=4)", "complex_gaussian(sigma=0.01)", [1, 16, 16]).unwrap();
/// assert_eq!(m.output_dim(), 2 * 16 * 16);
/// ```
pub fn parse_model(chain: &str, noise: &str, input: impl Into<Shape>) -> Result<Model> {
    Model::with_spec(parse_chain(chain, input)?, &parse_noise(noise)?)
}

#[cfg(test)]
mod tests {
    //! The table of `scoreprior_primitives` against what this module builds: every entry
    //! builds (so `build_op`, `parse_noise` and `expand_preset` handle each name of the table,
    //! and any other name is rejected by the look-up before), with only its required
    //! parameters and with every parameter, and the errors name the table's entries.
    use super::*;

    /// A valid value of each kind (on the `[2, 16, 16]` images used below).
    fn value(p: &ParamDef, file: &str) -> ParamValue {
        match p.kind {
            Kind::Real | Kind::Positive => ParamValue::Num(1.0),
            Kind::AtLeastOne | Kind::PositiveInt | Kind::Count => ParamValue::Num(2.0),
            Kind::Probability => ParamValue::Num(0.5),
            Kind::Boundary => ParamValue::Word(scoreprior_primitives::BOUNDARIES[0].into()),
            Kind::OneOf(words) => ParamValue::Word(words[words.len() - 1].into()),
            Kind::Path => ParamValue::Text(file.into()),
        }
    }

    fn spec(def: &PrimitiveDef, all: bool, file: &str) -> PrimitiveSpec {
        let params = def.params.iter().filter(|p| all || p.required).map(|p| (p.name.to_string(), value(p, file)));
        PrimitiveSpec { name: def.name.into(), params: params.collect() }
    }

    /// `name(k=v, …)` in the text syntax.
    fn text(s: &PrimitiveSpec) -> String {
        let ps: Vec<String> = s
            .params
            .iter()
            .map(|(k, v)| match v {
                ParamValue::Text(t) => format!("{k}='{t}'"),
                v => format!("{k}={v}"),
            })
            .collect();
        format!("{}({})", s.name, ps.join(", "))
    }

    #[test]
    fn every_primitive_of_the_table_builds() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("A.npy");
        crate::io::write_npy(&file, &[3, 2 * 16 * 16], &vec![0.5; 3 * 2 * 16 * 16]).unwrap();
        let file = file.to_str().unwrap();
        let shape = Shape::new(2, 16, 16);
        for def in PRIMITIVES {
            for all in [false, true] {
                let s = spec(def, all, file);
                let op = build_op(&s, shape).unwrap_or_else(|e| panic!("{s:?}: {e}"));
                assert_eq!(op.is_linear(), def.linear, "{}", def.name);
                // The text syntax reaches the same primitive.
                assert_eq!(parse_chain(&text(&s), shape).unwrap().output_shape(), op.output_shape(), "{}", def.name);
            }
        }
    }

    #[test]
    fn every_noise_and_preset_of_the_table_parses() {
        for def in NOISES {
            assert!(parse_noise(&text(&spec(def, true, ""))).is_ok(), "{}", def.name);
        }
        for def in PRESETS {
            let t = text(&spec(def, true, "obs.txt"));
            if def.name == "eht" {
                let s = text(&spec(def, false, ""));
                assert!(EhtSettings::parse(&s).unwrap().is_some(), "{s}");
                assert!(expand_preset(&s).unwrap_err().to_string().contains("interferometer"));
            } else {
                let p = expand_preset(&t).unwrap().unwrap_or_else(|| panic!("{t} is not a preset"));
                assert!(parse_model(&p.chain, p.default_noise, [1, 16, 16]).is_ok(), "{t}: {p:?}");
            }
        }
    }

    #[test]
    fn errors_name_the_table() {
        let e = build_op(&PrimitiveSpec::new("blur", vec![]), Shape::new(1, 8, 8)).unwrap_err().to_string();
        let names: Vec<&str> = PRIMITIVES.iter().map(|d| d.name).collect();
        assert!(e.contains(&format!("unknown primitive `blur`; expected one of: {}", names.join(", "))), "{e}");
        let e = parse_chain("crop(height=2, width=2, depth=1)", [1, 8, 8]).unwrap_err().to_string();
        assert!(e.contains("unknown parameter `depth` of `crop`; expected one of: top, left, height, width"), "{e}");
        let e = parse_chain("fft2(norm=1)", [1, 8, 8]).unwrap_err().to_string();
        assert!(e.contains("unknown parameter `norm` of `fft2`; expected one of: (none)"), "{e}");
        let e = parse_chain("crop(height=2)", [1, 8, 8]).unwrap_err().to_string();
        assert!(e.contains("`crop`: needs the parameter `width`"), "{e}");
        let e = parse_noise("poisson(sigma=1)").unwrap_err().to_string();
        assert!(e.contains("unknown noise `poisson`; expected gaussian or complex_gaussian"), "{e}");
        let e = expand_preset("mri(speed=2)").unwrap_err().to_string();
        assert!(e.contains("unknown parameter `speed` of `mri`; expected one of: acceleration, center, seed, mask"));
    }

    /// The defaults of the table are the ones applied.
    #[test]
    fn defaults_come_from_the_table() {
        let p = expand_preset("mri").unwrap().unwrap();
        assert_eq!(p.chain, "fft2 | poisson_mask(acceleration=8, center=4, seed=1)");
        assert_eq!(expand_preset("deblurring").unwrap().unwrap().chain, "dft_lowpass(k=8)");
        let pad = parse_chain("pad(top=1)", [1, 8, 8]).unwrap();
        assert_eq!(pad.output_shape().to_array(), [1, 9, 8]);
        let s = EhtSettings::parse("eht").unwrap().unwrap();
        assert_eq!((s.fov_uas, s.pulse), (160.0, super::super::ops::Pulse::Delta));
    }
}
