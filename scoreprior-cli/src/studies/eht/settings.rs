//! The study's DPI settings (the same for every source and prior; optionally an exact-prior
//! stage after each surrogate run) and the checks of settings, names and files before any work.

use std::path::{Path, PathBuf};

use crate::studies::{check_name, check_unique};
use scoreprior::experiment::{invalid_setting, Baseline, LaplaceStart, MapWarmStart, Result};

/// DPI settings of the study (the same for every source and prior).
#[derive(Debug, Clone, PartialEq)]
pub struct EhtDpiSettings {
    /// DPI steps after the warm start.
    pub steps: usize,
    /// Flow samples per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Affine-coupling blocks.
    pub flows: usize,
    /// Initial spread of the flow around the MAP image: with `laplace`, the factor on the
    /// Laplace approximation's `H^{-1/2}` (1: the approximation itself), else the isotropic
    /// spread in softplus⁻¹ units.
    pub init_scale: f64,
    /// Start the flow as the Laplace approximation at the MAP image (`None`: isotropic, which
    /// collapses to a point on these data; `docs/src/black-hole/calibration.md`).
    pub laplace: Option<LaplaceStart>,
    /// FWHM (µas) of the Gaussian starting image (eht-imaging's reference script: 60).
    pub init_fwhm_uas: f64,
    /// MAP warm start: L-BFGS iterations per round and rounds.
    pub map: MapWarmStart,
    /// Weight of the total-flux penalty `W(Σx − F)²`.
    pub flux_weight: f64,
    /// Posterior samples drawn at the end.
    pub samples: usize,
    /// Seed.
    pub seed: u64,
    /// After each surrogate run, a run under the exact PF-ODE prior of the same network from
    /// the surrogate's MAP image (`<source>-<prior>-exact/`); `None`: surrogate only.
    pub exact: Option<ExactStage>,
    /// Diffusion posterior samplers run on the same data under each prior's score network, after
    /// its DPI runs (`<source>-<prior>-<sampler>/`): DAPS, PnP-DM or DPS. The flux penalty
    /// is their measurement of the total flux ([`scoreprior_core::forward::WithTotalFlux`]).
    pub samplers: Vec<Baseline>,
    /// Samples (independent chains) per sampler run.
    pub sampler_samples: usize,
}

/// Settings of the exact-prior run ([`EhtDpiSettings::exact`]); the others are the study's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactStage {
    /// DPI steps.
    pub steps: usize,
    /// Flow samples per step.
    pub batch: usize,
    /// Hutchinson probes of the divergence (shared by the batch).
    pub probes: usize,
}

impl Default for ExactStage {
    fn default() -> Self {
        Self { steps: 100, batch: 8, probes: 2 }
    }
}

impl Default for EhtDpiSettings {
    fn default() -> Self {
        Self {
            steps: 300,
            batch: 16,
            lr: 1e-3,
            flows: 16,
            init_scale: 1.0,
            laplace: Some(LaplaceStart::default()),
            init_fwhm_uas: 60.0,
            map: MapWarmStart { iterations: 300, rounds: 5, ..Default::default() },
            flux_weight: 10.0,
            samples: 128,
            seed: 0,
            exact: None,
            samplers: Vec::new(),
            sampler_samples: 32,
        }
    }
}

/// The files `benches/reference/ehtim_rml.py` writes per source that the study reads.
const REFERENCE_FILES: [&str; 4] = ["truth.npy", "image.npy", "obs.txt", "summary.json"];

/// Checks everything that needs no network and no measurement, before any work: the settings'
/// ranges, each source and prior name (one plain folder name, given once), that each source's
/// reference folder holds its four files and that each checkpoint exists. [`run`](super::run) also reads
/// every reference, loads every prior and checks every run folder before the first run.
///
/// ```
/// use scoreprior_cli::studies::eht::{validate, EhtDpiSettings};
/// let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
/// let reference = root.join("benches/reference/out");
/// let priors = vec![("sources".to_string(), root.join("assets/ncsnpp_sources32/ema.safetensors"))];
/// let s = EhtDpiSettings::default();
/// assert!(validate(&reference, &["ring".to_string()], &priors, &s).is_ok());
/// let e = validate(&reference, &["../out/ring".to_string()], &priors, &s).unwrap_err().to_string();
/// assert!(e.contains("--sources"), "{e}");
/// let bad = EhtDpiSettings { lr: f64::NAN, ..Default::default() };
/// assert!(validate(&reference, &["ring".to_string()], &priors, &bad).unwrap_err().to_string().contains("--lr"));
/// ```
///
/// # Errors
/// The first problem found, naming its flag and value.
pub fn validate(
    reference_dir: &Path,
    sources: &[String],
    priors: &[(String, PathBuf)],
    settings: &EhtDpiSettings,
) -> Result<()> {
    let s = settings;
    let count = |flag: &'static str, v: usize| -> Result<()> {
        if v == 0 {
            return Err(invalid_setting(flag, "0: must be at least 1"));
        }
        Ok(())
    };
    count("--steps", s.steps)?;
    count("--batch", s.batch)?;
    count("--samples", s.samples)?;
    count("flows", s.flows)?;
    if !(s.lr.is_finite() && s.lr > 0.0) {
        return Err(invalid_setting("--lr", format!("{}: must be positive and finite", s.lr)));
    }
    if !(s.init_scale.is_finite() && s.init_scale > 0.0) {
        return Err(invalid_setting("--init-scale", format!("{}: must be positive and finite", s.init_scale)));
    }
    if !(s.init_fwhm_uas.is_finite() && s.init_fwhm_uas > 0.0) {
        return Err(invalid_setting("init_fwhm_uas", format!("{}: must be positive and finite", s.init_fwhm_uas)));
    }
    if !(s.flux_weight.is_finite() && s.flux_weight >= 0.0) {
        return Err(invalid_setting("--flux-weight", format!("{}: must be finite and >= 0", s.flux_weight)));
    }
    if let Some(ex) = &s.exact {
        count("--exact-steps", ex.steps)?;
        count("--exact-batch", ex.batch)?;
    }
    if !s.samplers.is_empty() {
        count("--sampler-samples", s.sampler_samples)?;
    }
    for b in &s.samplers {
        // Closure phases and log closure amplitudes are non-linear and have no single noise
        // level: SDE+Proj projects onto a linear {x : Ax = y}, Score-ALD anneals one σ_y.
        if matches!(b, Baseline::SdeProj(_) | Baseline::ScoreAld(_)) {
            return Err(invalid_setting(
                "--samplers",
                format!("{}: not on closure data (non-linear, one σ per quantity); use daps, pnp-dm or dps", b.name()),
            ));
        }
        b.validate(&scoreprior_core::sde::AnySde::Vp(Default::default()))
            .map_err(|e| invalid_setting("--samplers", format!("{}: {e}", b.name())))?;
    }
    check_unique("--samplers", s.samplers.iter().map(Baseline::name))?;
    if sources.is_empty() {
        return Err(invalid_setting("--sources", "give at least one source"));
    }
    if priors.is_empty() {
        return Err(invalid_setting("--priors", "give at least one NAME=CHECKPOINT"));
    }
    for src in sources {
        check_name("--sources", src)?;
    }
    check_unique("--sources", sources.iter().map(String::as_str))?;
    for (name, _) in priors {
        check_name("--priors", name)?;
    }
    check_unique("--priors", priors.iter().map(|(n, _)| n.as_str()))?;
    for src in sources {
        let dir = reference_dir.join(src);
        if !dir.is_dir() {
            return Err(invalid_setting(
                "--sources",
                format!(
                    "{src}: no folder {} (--reference holds one folder per source, written by \
                     benches/reference/ehtim_rml.py)",
                    dir.display()
                ),
            ));
        }
        if let Some(f) = REFERENCE_FILES.iter().find(|f| !dir.join(f).is_file()) {
            return Err(invalid_setting("--sources", format!("{src}: {} is missing", dir.join(f).display())));
        }
    }
    for (name, ckpt) in priors {
        if !ckpt.is_file() {
            let why = if ckpt.exists() { "is not a file" } else { "does not exist" };
            return Err(invalid_setting("--priors", format!("{name}={}: the checkpoint {why}", ckpt.display())));
        }
    }
    Ok(())
}
