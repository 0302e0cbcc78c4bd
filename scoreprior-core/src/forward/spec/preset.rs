//! Presets: named forward problems (`denoising`, `deblurring(k=…)`, `mri(…)`) that expand
//! to a chain in primitive syntax and a usual noise ([`expand_preset`]); `eht` is a preset
//! too but not a chain (see [`super::EhtSettings`]).

use super::{parse_call, ParamValue, Params};
use crate::{Error, Result};

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
        other => return Err(Error::unsupported(format!("preset `{other}` is in the table but has no chain"))),
    }))
}
