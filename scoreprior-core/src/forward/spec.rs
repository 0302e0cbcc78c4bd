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

use std::sync::Arc;

use super::ops::{self, Boundary, Kernel};
use super::{Chain, Model, NoiseSpec, Op, Shape};
use crate::{Error, Result};

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
        other => return Err(Error::invalid(format!("primitive `{other}` is in the table but has no operator"))),
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

impl PrimitiveSpec {
    /// Parses one call `name` or `name(key = value, …)` (values: numbers, bare words, or
    /// quoted text `'…'`/`"…"` without commas, e.g. a file path): the one
    /// `name(k=v)` reader of the forward-model language, its presets and noise specs.
    ///
    /// ```
    /// use scoreprior_core::forward::{ParamValue, PrimitiveSpec};
    /// let s = PrimitiveSpec::parse("eht(fov = 160, cadence=600)").unwrap();
    /// assert_eq!(s.name, "eht");
    /// assert_eq!(s.params[1], ("cadence".to_string(), ParamValue::Num(600.0)));
    /// assert!(PrimitiveSpec::parse("eht(fov=)").is_err());
    /// ```
    ///
    /// # Errors
    /// A malformed call: missing `)`, a bad name, a parameter without `=`, a duplicate key,
    /// a value that is neither a number, a word nor a path, an unclosed quote.
    ///
    /// ```
    /// use scoreprior_core::forward::{ParamValue, PrimitiveSpec};
    /// let s = PrimitiveSpec::parse("matrix(file = data/A.npy)").unwrap();
    /// assert_eq!(s.params[0].1, ParamValue::Text("data/A.npy".into()));
    /// let q = PrimitiveSpec::parse("matrix(file = \"my dir/A, v2.npy\")").unwrap();
    /// assert_eq!(q.params[0].1, ParamValue::Text("my dir/A, v2.npy".into()));
    /// ```
    pub fn parse(text: &str) -> Result<PrimitiveSpec> {
        parse_call(text)
    }
}

/// Parses `name(key=value, …)`.
fn parse_call(text: &str) -> Result<PrimitiveSpec> {
    let text = text.trim();
    let (name, rest) = match text.find('(') {
        Some(i) => {
            let body =
                text[i + 1..].strip_suffix(')').ok_or_else(|| Error::syntax(format!("`{text}`"), "missing `)`"))?;
            (text[..i].trim(), Some(body))
        }
        None => (text, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::syntax(format!("`{text}`"), "expected `name` or `name(key = value, ...)`"));
    }
    let mut params = Vec::new();
    for arg in split_args(rest.unwrap_or(""), name)?.into_iter().map(str::trim).filter(|a| !a.is_empty()) {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| Error::syntax(format!("`{arg}` in `{name}`"), "expected `key = value`"))?;
        let (k, v) = (k.trim(), v.trim());
        if params.iter().any(|(pk, _): &(String, ParamValue)| pk == k) {
            return Err(Error::syntax(format!("`{name}`"), format!("duplicate parameter `{k}`")));
        }
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let is_path = |c: char| is_word(c) || matches!(c, '.' | '/' | '-' | '~' | '+');
        let quoted = ['"', '\''].into_iter().find(|&q| v.len() >= 2 && v.starts_with(q) && v.ends_with(q));
        let value = match (quoted, v.parse::<f64>()) {
            (Some(_), _) if v.len() > 2 => ParamValue::Text(v[1..v.len() - 1].to_string()),
            (None, Ok(n)) => ParamValue::Num(n),
            (None, Err(_)) if !v.is_empty() && v.chars().all(is_word) => ParamValue::Word(v.to_string()),
            (None, Err(_)) if !v.is_empty() && v.chars().all(is_path) => ParamValue::Text(v.to_string()),
            _ => {
                return Err(Error::syntax(
                    format!("`{k} = {v}` in `{name}`"),
                    "expected a number, a word or a path (quote a path with other characters)",
                ))
            }
        };
        params.push((k.to_string(), value));
    }
    Ok(PrimitiveSpec { name: name.to_string(), params })
}

/// Splits `a=1, b="x, y"` at the commas outside quotes.
fn split_args<'t>(body: &'t str, name: &str) -> Result<Vec<&'t str>> {
    let (mut out, mut start, mut quote) = (Vec::new(), 0, None);
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ',') => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err(Error::syntax(format!("`{name}`"), format!("unclosed quote in `{body}`")));
    }
    out.push(&body[start..]);
    Ok(out)
}

/// Parses and builds a chain, primitives separated by `|`.
///
/// ```
/// use scoreprior_core::forward::parse_chain;
/// let c = parse_chain("gaussian_blur(sigma=1.5, size=9) | subsample(factor=2)", [1, 32, 32]).unwrap();
/// assert_eq!(c.output_shape().to_array(), [1, 16, 16]);
/// assert!(parse_chain("subsample(factor=3)", [1, 32, 32]).is_err());
/// ```
pub fn parse_chain(text: &str, input: impl Into<Shape>) -> Result<Chain> {
    if let Some(p) = expand_preset(text)? {
        return parse_chain(&p.chain, input);
    }
    let specs = text.split('|').map(parse_call).collect::<Result<Vec<_>>>()?;
    build_chain(&specs, input.into())
}

/// A named forward problem: its chain in primitive syntax and its usual noise.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    /// The chain, e.g. `fft2 | poisson_mask(acceleration=8, center=4, seed=1)`.
    pub chain: String,
    /// The noise `measure` uses unless told otherwise.
    pub default_noise: &'static str,
}

/// The preset named by `text` (a single call `denoising`, `deblurring(k=…)` or
/// `mri(acceleration=…, center=…, seed=…, mask=poisson|cartesian)`), `None` when `text` is
/// not a preset, an error for bad preset parameters or for `eht`, which is not a chain.
///
/// ```
/// use scoreprior_core::forward::spec::expand_preset;
/// let p = expand_preset("mri(acceleration=4, mask=cartesian)").unwrap().unwrap();
/// assert_eq!(p.chain, "fft2 | cartesian_mask(acceleration=4, center=4, seed=1)");
/// assert_eq!(expand_preset("denoising").unwrap().unwrap().chain, "identity");
/// assert!(expand_preset("fft2 | mask(keep=0.5)").unwrap().is_none());
/// assert!(expand_preset("eht(fov=160)").unwrap_err().to_string().contains("interferometer"));
/// ```
pub fn expand_preset(text: &str) -> Result<Option<Preset>> {
    if text.contains('|') {
        return Ok(None);
    }
    let Ok(spec) = parse_call(text) else { return Ok(None) };
    let Some(def) = scoreprior_primitives::preset(&spec.name) else { return Ok(None) };
    if def.name == "eht" {
        return Err(Error::unsupported(
            "`eht` is not an operator chain: it builds an interferometer whose noise is the radiometer equation \
             of each baseline; use `scoreprior measure --forward eht(...)` to simulate its data",
        ));
    }
    let q = Params::new(&spec, def)?;
    Ok(Some(match def.name {
        "denoising" => Preset { chain: "identity".into(), default_noise: "gaussian(sigma=0.1)" },
        "deblurring" => Preset {
            chain: format!("dft_lowpass(k={})", q.uint_or_default("k")?),
            default_noise: "complex_gaussian(sigma=0.1)",
        },
        "mri" => {
            let acc = match q.num_opt("acceleration")? {
                Some(a) => q.positive("acceleration").map(|_| a)?,
                None => q.num_or_default("acceleration")?,
            };
            let mask = match q.get("mask") {
                None => q.default("mask").expect("a default mask in the table").to_string(),
                Some(ParamValue::Word(w)) if w == "poisson" || w == "cartesian" => w.clone(),
                Some(v) => return Err(Error::unknown_of("mask", v.to_string(), "mri", "poisson or cartesian")),
            };
            Preset {
                chain: format!(
                    "fft2 | {mask}_mask(acceleration={acc}, center={}, seed={})",
                    q.uint_or_default("center")?,
                    q.uint_or_default("seed")?
                ),
                default_noise: "complex_gaussian(sigma=0.01)",
            }
        }
        // Never reached: `every_preset_of_the_table_expands` expands each one.
        other => return Err(Error::invalid(format!("preset `{other}` is in the table but has no chain"))),
    }))
}

/// The fields of view (µas) `eht(fov=…)` accepts: from a thousandth of a µas to 1000
/// arcseconds, beyond any VLBI image (and far from the absurd pixel sizes, `1e288°`, a FITS
/// header would otherwise record).
pub const EHT_FOV_UAS: (f64, f64) = (1e-3, 1e9);

/// The settings of the `eht(...)` preset: EHT 2017 observing a Sgr A*-like source
/// ([`crate::forward::interferometry::Observation::sgr_a_star`]) and the image grid.
///
/// `eht(fov=160, tint=10, bandwidth=4e9, cutoff=10, cadence=600, start=0, stop=24,
/// pulse=delta)`: field of view (µas), integration time (s), bandwidth (Hz), elevation cutoff
/// (degrees), scan cadence (s), first scan and end of the track (hours UTC, scans in
/// `[start, stop)`), pixel shape (`delta` or ehtim's `triangle`, [`super::ops::Pulse`]); all
/// optional with these defaults. `eht(obs='file.txt', fov=160)` instead takes the coverage, σ and
/// data of an observation exported by ehtim's `Obsdata.save_txt`
/// ([`crate::forward::interferometry::read_ehtim_txt`]); the observing parameters then
/// come from the file and may not be given.
///
/// ```
/// use scoreprior_core::forward::spec::EhtSettings;
/// let s = EhtSettings::parse("eht(fov=160, tint=60, bandwidth=2e9)").unwrap().unwrap();
/// assert_eq!((s.fov_uas, s.observation.integration_s, s.observation.bandwidth_hz), (160.0, 60.0, 2e9));
/// assert!(EhtSettings::parse("mri").unwrap().is_none());
/// let e = EhtSettings::parse("eht(tint=-1)").unwrap_err().to_string();
/// assert!(e.contains("tint") && e.contains("positive"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EhtSettings {
    /// Field of view of the image, µas.
    pub fov_uas: f64,
    /// The simulated observation (ignored when `observation_file` is set).
    pub observation: crate::forward::interferometry::Observation,
    /// Observation files (ehtim text exports or uvfits; the bands of one day) whose data,
    /// coverage and σ are used instead of a simulation; empty for the simulation.
    pub observation_files: Vec<std::path::PathBuf>,
    /// What is done to the files' visibilities before imaging (nothing by default;
    /// `pipeline=eht2017` is the collaboration's M87 pre-processing).
    pub preprocessing: crate::forward::interferometry::Preprocessing,
    /// Pixel shape: point pixels (`delta`, default) or ehtim's bilinear `triangle`.
    pub pulse: super::ops::Pulse,
}

impl EhtSettings {
    /// `Some(settings)` when `text` is one `eht(...)` call, `None` for anything else, an
    /// error for an unknown key or a bad value (non-positive or non-finite `fov`, `tint`,
    /// `bandwidth`, `cadence`; cutoff outside (−90°, 85°); `stop ≤ start`).
    pub fn parse(text: &str) -> Result<Option<Self>> {
        if text.contains('|') {
            return Ok(None);
        }
        let Ok(spec) = parse_call(text) else { return Ok(None) };
        if spec.name != "eht" {
            return Ok(None);
        }
        let q = Params::new(&spec, scoreprior_primitives::preset("eht").expect("`eht` in the table of presets"))?;
        let pos = |k: &str, d: f64| -> Result<f64> {
            match q.get(k) {
                None => Ok(d),
                Some(_) => q.positive(k),
            }
        };
        let num = |k: &str, d: f64| -> Result<f64> { Ok(q.num_opt(k)?.unwrap_or(d)) };
        let fov_uas = pos("fov", q.num_or_default("fov")?)?;
        if !(EHT_FOV_UAS.0..=EHT_FOV_UAS.1).contains(&fov_uas) {
            // Not `out_of_range`: its message writes the value in full (301 digits for 1e300).
            return Err(Error::invalid(format!(
                "parameter `fov` of `eht` (the field of view) must be between {} and {:e} µas (1000 arcseconds), \
                 got {fov_uas:e}",
                EHT_FOV_UAS.0, EHT_FOV_UAS.1
            )));
        }
        let observation_files: Vec<std::path::PathBuf> = match q.get("obs") {
            None => vec![],
            Some(ParamValue::Word(w) | ParamValue::Text(w)) => {
                let files: Vec<std::path::PathBuf> = w.split(',').map(|f| f.trim().into()).collect();
                if files.iter().any(|f| f.as_os_str().is_empty()) {
                    return Err(Error::syntax(
                        "`eht`",
                        format!("parameter `obs` is a file or a comma-separated list of files, got `{w}`"),
                    ));
                }
                files
            }
            Some(v) => return Err(Error::syntax("`eht`", format!("parameter `obs` must be a file path, got `{v}`"))),
        };
        const FILE_KEYS: [&str; 11] = [
            "obs",
            "fov",
            "pulse",
            "pipeline",
            "average",
            "zbl",
            "systematic",
            "cp_uv_min",
            "station_noise",
            "snrcut",
            "gain_error",
        ];
        if !observation_files.is_empty() {
            if let Some((k, _)) = spec.params.iter().find(|(k, _)| !FILE_KEYS.contains(&k.as_str())) {
                return Err(Error::invalid(format!(
                    "`eht(obs=…)` takes the observation from the file: `{k}` may not be given with it"
                )));
            }
        } else if let Some((k, _)) = spec.params.iter().find(|(k, _)| FILE_KEYS[3..].contains(&k.as_str())) {
            return Err(Error::invalid(format!(
                "`{k}` of `eht` pre-processes an observation file: it needs `obs='FILE'` (the simulation has \
                 nothing to pre-process)"
            )));
        }
        let preprocessing = eht_preprocessing(&q)?;
        let base = crate::forward::interferometry::Observation::sgr_a_star();
        let observation = crate::forward::interferometry::Observation {
            integration_s: pos("tint", base.integration_s)?,
            bandwidth_hz: pos("bandwidth", base.bandwidth_hz)?,
            cadence_s: pos("cadence", base.cadence_s)?,
            elevation_cutoff_deg: num("cutoff", base.elevation_cutoff_deg)?,
            start_hour: num("start", base.start_hour)?,
            stop_hour: num("stop", base.stop_hour)?,
            ..base
        };
        observation.validate()?;
        let bad_pulse =
            |v: &dyn std::fmt::Display| Error::unknown_of("pulse", v.to_string(), "eht", "delta or triangle");
        let pulse = match q.get("pulse") {
            None => q.default("pulse").expect("a default pulse in the table"),
            Some(ParamValue::Word(w)) => w.as_str(),
            Some(v) => return Err(bad_pulse(v)),
        };
        let pulse = match pulse {
            "delta" => super::ops::Pulse::Delta,
            "triangle" => super::ops::Pulse::Triangle,
            other => return Err(bad_pulse(&other)),
        };
        Ok(Some(EhtSettings { fov_uas, observation, observation_files, preprocessing, pulse }))
    }

    /// The observation files read, checked and pre-processed ([`Preprocessing::apply`]);
    /// `None` for the simulated observation. Errors name the files.
    ///
    /// [`Preprocessing::apply`]: crate::forward::interferometry::Preprocessing::apply
    pub fn observation(&self) -> Result<Option<crate::forward::interferometry::PreprocessedObservation>> {
        if self.observation_files.is_empty() {
            return Ok(None);
        }
        let bands = self
            .observation_files
            .iter()
            .map(crate::forward::interferometry::read_ehtim_txt)
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<String> = self.observation_files.iter().map(|p| p.display().to_string()).collect();
        self.preprocessing.apply(&bands, &names).map(Some)
    }

    /// How the observation files are named in messages: `eht(obs='A, B')`.
    pub fn observation_label(&self) -> String {
        let files: Vec<String> = self.observation_files.iter().map(|p| p.display().to_string()).collect();
        format!("eht(obs='{}')", files.join(", "))
    }

    /// The interferometer on an `npix × npix` grid: the EHT 2017 coverage of
    /// [`EhtSettings::observation`], or that of the observation file.
    ///
    /// # Errors
    /// The file cannot be read; the coverage is empty or has a thermal σ out of range
    /// ([`Interferometer::new`](crate::forward::interferometry::Interferometer::new)); no scan
    /// has three stations observing together, so there are no closure quantities (what `eht`
    /// images and `measure` writes). Errors name the observation file.
    pub fn interferometer(&self, npix: usize) -> Result<crate::forward::interferometry::Interferometer> {
        use crate::forward::interferometry::{Array, Interferometer};
        let (coverage, what, cp_uv_min) = match self.observation()? {
            Some(p) => (p.observation.coverage(), self.observation_label(), p.closure_phase_uv_min),
            None => {
                (Array::eht2017().observe(&self.observation)?, "eht: the simulated EHT 2017 observation".into(), 0.0)
            }
        };
        let eht = Interferometer::new(coverage, npix, self.fov_uas)
            .map_err(|e| e.context(what.clone()))?
            .with_closure_phase_uv_min(cp_uv_min);
        let sets = eht.closures();
        if sets.triangles.is_empty() && sets.quadrangles.is_empty() {
            let cov = eht.coverage();
            let mut used: Vec<usize> = cov.points.iter().flat_map(|p| [p.i, p.j]).collect();
            used.sort_unstable();
            used.dedup();
            let names: Vec<&str> = used.iter().filter_map(|&i| cov.stations.get(i).map(String::as_str)).collect();
            let most = sets.per_scan.iter().map(|s| s.1).max().unwrap_or(0);
            return Err(Error::unsupported(format!(
                "{what}: the observation has {} station(s) with data ({}) over {} scan(s), at most {most} observing \
                 in one scan, so it has no closure phases (they need 3 stations in one scan) and no closure \
                 amplitudes (4 stations), which `eht` images and `measure` writes",
                names.len(),
                names.join(", "),
                cov.times().len(),
            )));
        }
        Ok(eht.with_pulse(self.pulse))
    }
}

/// The pre-processing keys of `eht(obs=…)`: `pipeline=eht2017` starts from the
/// collaboration's settings, each other key overrides one of them.
fn eht_preprocessing(q: &Params) -> Result<crate::forward::interferometry::Preprocessing> {
    use crate::forward::interferometry::{eht2017_station_noise, Averaging, Preprocessing};
    let word = |k: &str| -> Result<Option<String>> {
        match q.get(k) {
            None => Ok(None),
            Some(ParamValue::Word(w)) => Ok(Some(w.clone())),
            Some(v) => Err(Error::syntax("`eht`", format!("parameter `{k}` must be a word, got `{v}`"))),
        }
    };
    let one_of = |k: &str, words: &[&str]| -> Result<Option<String>> {
        match word(k)? {
            Some(w) if !words.contains(&w.as_str()) => Err(Error::invalid(format!(
                "unknown value `{w}` of parameter `{k}` of `eht`; expected {}",
                words.join(" or ")
            ))),
            w => Ok(w),
        }
    };
    let mut p = match one_of("pipeline", &["none", "eht2017"])?.as_deref() {
        Some("eht2017") => Preprocessing::eht2017(),
        _ => Preprocessing::default(),
    };
    if let Some(a) = one_of("average", &["none", "scan"])? {
        p.averaging = if a == "scan" { Averaging::Scan } else { Averaging::None };
    }
    if q.get("zbl").is_some() {
        p.compact_flux_jy = Some(q.positive("zbl")?);
    }
    // The ranges are checked once, by `Preprocessing::validate`, whose messages name these keys.
    if let Some(f) = q.num_opt("systematic")? {
        p.fractional_noise = f;
    }
    if let Some(uv) = q.num_opt("cp_uv_min")? {
        p.closure_phase_uv_min = uv;
    }
    if let Some(g) = q.num_opt("gain_error")? {
        p.gain_error = g;
    }
    if let Some(c) = q.num_opt("snrcut")? {
        p.snr_cut = c;
    }
    if let Some(w) = one_of("station_noise", &["none", "eht2017"])? {
        p.station_noise = if w == "eht2017" { eht2017_station_noise() } else { vec![] };
    }
    p.validate().map_err(|e| e.context("`eht`"))?;
    Ok(p)
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
        other => Err(Error::invalid(format!("noise `{other}` is in the table but has no model"))),
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

    /// A preset inside a chain is named as a preset that stands alone, not as an unknown
    /// primitive; `eht`'s field of view is bounded to physical values.
    #[test]
    fn presets_stand_alone_and_the_eht_field_of_view_is_bounded() {
        for chain in ["eht(fov=160) | scale(factor=2)", "scale(factor=2) | eht", "mri | identity"] {
            let e = parse_chain(chain, [1, 16, 16]).unwrap_err().to_string();
            assert!(e.contains("is a preset, not a primitive") && e.contains("stand alone"), "{chain}: {e}");
            assert!(!e.contains("unknown primitive"), "{e}");
        }
        assert!(parse_chain("eht(fov=160) | scale(factor=2)", [1, 16, 16]).unwrap_err().to_string().contains("`eht`"));
        for fov in ["1e300", "2e9", "1e-4"] {
            let e = EhtSettings::parse(&format!("eht(fov={fov})")).unwrap_err().to_string();
            assert!(e.contains("`fov`") && e.contains("µas"), "{fov}: {e}");
        }
        assert!(EhtSettings::parse("eht(fov=1e6)").unwrap().is_some());
    }

    /// `eht(obs=…)` on a file without closure quantities, or with an absurd σ, is refused
    /// when the interferometer is built, naming the file.
    #[test]
    fn eht_observation_files_are_checked_when_the_operator_is_built() {
        let header = [
            "# SRC: SgrA",
            "# RA: 17 h 45 m 40.0000 s",
            "# DEC: -29 deg  0 m 28.0000 s",
            "# MJD: 57850",
            "# RF: 230.0000 GHz",
            "# BW: 4.0000 GHz",
            "# ----------",
            "# Site X(m) Y(m) Z(m) SEFDR SEFDL FR_PAR FR_EL FR_OFF DR_RE DR_IM DL_RE DL_IM",
            "# ALMA 2225061.16 -5440057.37 -2481681.15 90.00 90.00 1.00 0.00 0.00 0.0 0.0 0.0 0.0",
            "# APEX 2225039.53 -5441197.63 -2479303.36 3500.00 3500.00 1.00 0.00 0.00 0.0 0.0 0.0 0.0",
            "# ----------",
            "# time (hr) tint T1 T2 Tau1 Tau2 U (lambda) V (lambda) Iamp (Jy) Iphase(d) Qamp (Jy) ...",
        ]
        .join("\n");
        let row = |t: f64, sigma: &str| {
            format!("{t} 10.00 ALMA APEX 0.00 0.00 100.0 -200.0 0.5 90.0 0 0 0 0 0 0 {sigma} 0.01 0.01 0.01")
        };
        let dir = tempfile::tempdir().unwrap();
        let two = dir.path().join("two.txt");
        std::fs::write(&two, format!("{header}\n{}\n{}\n", row(1.0, "0.01"), row(2.0, "0.01"))).unwrap();
        let settings = EhtSettings::parse(&format!("eht(obs='{}')", two.display())).unwrap().unwrap();
        let e = settings.interferometer(8).unwrap_err().to_string();
        assert!(e.contains("two.txt") && e.contains("2 station(s)") && e.contains("2 scan(s)"), "{e}");
        assert!(e.contains("no closure phases"), "{e}");
        let tiny = dir.path().join("tiny.txt");
        std::fs::write(&tiny, format!("{header}\n{}\n", row(1.0, "1e-300"))).unwrap();
        let settings = EhtSettings::parse(&format!("eht(obs='{}')", tiny.display())).unwrap().unwrap();
        let e = settings.interferometer(8).unwrap_err().to_string();
        assert!(e.contains("tiny.txt") && e.contains("thermal σ") && e.contains("1e-300"), "{e}");
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
