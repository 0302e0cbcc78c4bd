//! What is calibrated and how: the problem ([`CalibrationProblem`]: EHT closures of compact
//! sources, or denoising), the study's settings ([`CalibrationSettings`]) with the DPI run each
//! problem's runs are, and their checks before any run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::parametric::ParametricReference;
use crate::studies::eht::EhtDpiSettings;
use scoreprior::experiment::inputs::{load_image, resolve};
use scoreprior::experiment::{invalid_setting, DpiSettings, DsmSettings, LaplaceStart, MapWarmStart, Prior, Result};

/// Image side of the EHT problem (pixels).
pub const EHT_NPIX: usize = 32;
/// Field of view of the EHT problem (µas): 5 µas pixels.
pub const EHT_FOV_UAS: f64 = 160.0;

/// Which inverse problem is calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalibrationProblem {
    /// Closure phases and log closure amplitudes of simulated compact sources (EHT 2017 array,
    /// Sgr A* track), 32×32 over 160 µas, under the compact-source NCSN++ prior.
    Eht,
    /// Gaussian denoising (σ = 0.2) of Fashion-MNIST 16×16 test images: the main job.
    Denoising,
}

impl CalibrationProblem {
    /// `eht` or `denoising` (the folder prefix and the CLI's value).
    pub fn name(self) -> &'static str {
        match self {
            Self::Eht => "eht",
            Self::Denoising => "denoising",
        }
    }
}

impl std::fmt::Display for CalibrationProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for CalibrationProblem {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "eht" => Ok(Self::Eht),
            "denoising" => Ok(Self::Denoising),
            other => Err(format!("unknown problem {other:?}; expected eht or denoising")),
        }
    }
}

/// Settings of the study ([`CalibrationSettings::eht`], [`CalibrationSettings::denoising`];
/// `Default` is the EHT study).
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationSettings {
    /// The problem.
    pub problem: CalibrationProblem,
    /// Runs: EHT sources `0..n` of `source_seed`; denoising images `0, stride, 2·stride, …`.
    pub n: usize,
    /// Nominal levels of the central credible intervals, each in (0, 1).
    pub levels: Vec<f64>,
    /// DPI steps (EHT: after the MAP warm start).
    pub steps: usize,
    /// Flow samples per step.
    pub batch: usize,
    /// Adam's peak learning rate.
    pub lr: f64,
    /// Posterior samples drawn per run.
    pub samples: usize,
    /// Seed: run `j` uses `seed + j` for its measurement noise (EHT thermal noise, denoising
    /// noise) and its DPI (so run 0 of the denoising study is the main job).
    pub seed: u64,
    /// EHT: seed of the [`CompactSources`] stream the truths are drawn from. The default,
    /// 1,000,000, is disjoint from the prior's training set (`make-sources --seed 0`, images
    /// `0..20000` of stream seed 0): every image comes from its own ChaCha8 stream
    /// `(seed, index)`, so another seed gives sources the prior has not seen.
    ///
    /// [`CompactSources`]: scoreprior_core::forward::interferometry::CompactSources
    pub source_seed: u64,
    /// EHT: total flux (Jy) the truth is given before it is observed (the thermal noise is in
    /// Jy; the default 1 Jy is `benches/reference/ehtim_rml.py`'s, so the S/N is eht-study's).
    /// Imaging is in the prior's peak-1 units: closure quantities do not see the scale.
    pub flux_jy: f64,
    /// EHT: the DSM surrogate's final time floor `ε` (the end of the continuation from 0.1).
    pub time_floor: f64,
    /// EHT: the noise-level continuation of the surrogate from 0.1 down to `time_floor` over
    /// the first half of the run (eht-study's); `false`: the floor stays at `time_floor`, where
    /// the MAP and the Laplace start were computed.
    pub continuation: bool,
    /// The NCSN++ checkpoint of the prior (DSM surrogate). Its image grid must be the
    /// problem's (32×32 for EHT, the test images' for denoising).
    pub prior: PathBuf,
    /// Denoising: the test images (`.npy`, `(N, H, W)`).
    pub test_images: PathBuf,
    /// Denoising: every `stride`-th test image is used (indices `0, stride, …`).
    pub stride: usize,
    /// Denoising: noise σ.
    pub sigma: f64,
    /// EHT: the MAP warm start (L-BFGS iterations per round, rounds; the blur between rounds is
    /// the array's nominal resolution).
    pub map: MapWarmStart,
    /// EHT: start the flow as the Laplace approximation at the MAP image (`None`: isotropic).
    pub laplace: Option<LaplaceStart>,
    /// EHT: the parametric reference of every source with fixed parameters (ring, crescent,
    /// crescent plus blob), in its own folder `eht-<i>-parametric/` so that the DPI runs'
    /// settings do not change ([`ParametricReference`]); `None`: not run.
    pub parametric: Option<ParametricReference>,
    /// EHT: the closure likelihood's covariance: each closure independent (the default) or
    /// each scan's closures jointly Gaussian ([`ClosureCovariance`]).
    ///
    /// [`ClosureCovariance`]: scoreprior_core::forward::interferometry::ClosureCovariance
    pub closure_covariance: scoreprior_core::forward::interferometry::ClosureCovariance,
}

impl Default for CalibrationSettings {
    fn default() -> Self {
        Self::eht()
    }
}

impl CalibrationSettings {
    /// The EHT study: 20 sources of seed 1,000,000 under `assets/ncsnpp_sources32/ema.safetensors`,
    /// DPI as `eht-study`'s surrogate stage (MAP warm start 5 × 300 L-BFGS iterations, Laplace
    /// start, 16 flows, batch 16, lr 1e-3) for 600 steps, 128 samples.
    pub fn eht() -> Self {
        Self {
            problem: CalibrationProblem::Eht,
            n: 20,
            levels: vec![0.5, 0.68, 0.9, 0.95, 0.99],
            steps: 600,
            batch: 16,
            lr: 1e-3,
            samples: 128,
            seed: 0,
            source_seed: 1_000_000,
            flux_jy: 1.0,
            time_floor: DsmSettings::default().eps,
            continuation: true,
            prior: "assets/ncsnpp_sources32/ema.safetensors".into(),
            test_images: "assets/fashion16_test.npy".into(),
            stride: 4,
            sigma: 0.2,
            map: MapWarmStart { iterations: 300, rounds: 5, ..Default::default() },
            laplace: Some(LaplaceStart::default()),
            parametric: None,
            closure_covariance: Default::default(),
        }
    }

    /// The denoising study: 16 images (0, 4, …, 60) of `assets/fashion16_test.npy` at σ = 0.2,
    /// each run as the main job (`cargo run --release`: DSM surrogate of
    /// `assets/ncsnpp_fmnist16/ema.safetensors`, continuation from 0.1 over half of 1500 steps,
    /// batch 16, lr 1e-3), 128 samples.
    pub fn denoising() -> Self {
        let d = DpiSettings::default();
        Self {
            problem: CalibrationProblem::Denoising,
            n: 16,
            steps: d.optim.steps,
            batch: d.optim.batch,
            lr: d.optim.lr,
            samples: d.output.samples,
            prior: "assets/ncsnpp_fmnist16/ema.safetensors".into(),
            ..Self::eht()
        }
    }

    /// The settings of `problem` ([`eht`](Self::eht) or [`denoising`](Self::denoising)).
    pub fn for_problem(problem: CalibrationProblem) -> Self {
        match problem {
            CalibrationProblem::Eht => Self::eht(),
            CalibrationProblem::Denoising => Self::denoising(),
        }
    }

    /// The EHT runs' DPI settings: `eht-study`'s ([`EhtDpiSettings`]: flows, initial spread, 60 µas
    /// Gaussian start, flux weight) with this study's steps, batch, lr, samples, seed, MAP warm
    /// start and Laplace start.
    pub fn eht_dpi(&self) -> EhtDpiSettings {
        EhtDpiSettings {
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            samples: self.samples,
            seed: self.seed,
            map: self.map,
            laplace: self.laplace,
            exact: None,
            ..Default::default()
        }
    }

    /// Denoising run `j` (image `j · stride`) as a `scoreprior dpi` run: the main job's settings
    /// (`DpiSettings` defaults, NCSN++ DSM surrogate, continuation from 0.1) with this study's
    /// prior, test images, σ, steps, batch, lr, samples and seed `seed + j`, quiet, into `out`.
    pub fn denoising_run(&self, j: usize, out: &Path) -> DpiSettings {
        let mut d = DpiSettings::default();
        d.prior.prior = self.prior.display().to_string().into();
        d.prior.surrogate = true;
        d.prior.time_floor_from = 0.1;
        d.problem.x_true = Some(self.test_images.clone());
        d.problem.index = j * self.stride;
        d.problem.noise = Some(format!("gaussian(sigma={})", self.sigma));
        d.optim.steps = self.steps;
        d.optim.batch = self.batch;
        d.optim.lr = self.lr;
        d.output.samples = self.samples;
        d.output.quiet = true;
        d.output.out = out.to_path_buf();
        d.seed = self.seed.wrapping_add(j as u64);
        d
    }

    /// Checks every setting before any run, loading the prior (and the test images) to compare
    /// grids.
    ///
    /// ```
    /// use scoreprior_cli::studies::calibration::CalibrationSettings;
    /// let s = CalibrationSettings { levels: vec![0.5, 1.2], ..CalibrationSettings::eht() };
    /// assert!(s.validate().unwrap_err().to_string().contains("--levels"));
    /// ```
    ///
    /// # Errors
    /// [`ExperimentError::Invalid`] naming the setting by its flag: `n`, `steps`, `batch` or
    /// `samples` of 0, an empty level list or a level outside (0, 1), a learning rate that is not
    /// positive, a bad MAP or Laplace setting (EHT), σ or stride (denoising), a prior that cannot
    /// be loaded or whose grid is not the problem's, test images that cannot be read or hold fewer
    /// than the runs need.
    ///
    /// [`ExperimentError::Invalid`]: scoreprior::experiment::ExperimentError::Invalid
    pub fn validate(&self) -> Result<()> {
        for (flag, v) in
            [("--n", self.n), ("--steps", self.steps), ("--batch", self.batch), ("--samples", self.samples)]
        {
            if v == 0 {
                return Err(invalid_setting(flag, "must be at least 1"));
            }
        }
        if self.levels.is_empty() {
            return Err(invalid_setting("--levels", "give at least one level in (0, 1)"));
        }
        if let Some(l) = self.levels.iter().find(|l| !(l.is_finite() && **l > 0.0 && **l < 1.0)) {
            return Err(invalid_setting("--levels", format!("{l} is not in the open interval (0, 1)")));
        }
        if !(self.time_floor.is_finite() && self.time_floor > 0.0 && self.time_floor < 0.1) {
            return Err(invalid_setting(
                "--time-floor",
                format!("must be in (0, 0.1) (the continuation starts at 0.1), got {}", self.time_floor),
            ));
        }
        if !(self.flux_jy.is_finite() && self.flux_jy > 0.0) {
            return Err(invalid_setting("--flux", format!("must be positive and finite, got {}", self.flux_jy)));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid_setting("--lr", format!("must be positive and finite, got {}", self.lr)));
        }
        let (h, w) = match self.problem {
            CalibrationProblem::Eht => {
                if self.map.iterations == 0 || self.map.rounds == 0 {
                    return Err(invalid_setting("map", "the MAP warm start needs at least 1 iteration and 1 round"));
                }
                if let Some(p) = &self.parametric {
                    p.validate()?;
                }
                if let Some(l) = &self.laplace {
                    if !(l.step.is_finite() && l.step > 0.0 && l.floor.is_finite() && l.floor > 0.0) {
                        return Err(invalid_setting("laplace", "step and floor must be positive and finite"));
                    }
                }
                (EHT_NPIX, EHT_NPIX)
            }
            CalibrationProblem::Denoising => {
                if self.parametric.is_some() {
                    return Err(invalid_setting("--parametric-reference", "is for --problem eht (compact sources)"));
                }
                if !(self.sigma.is_finite() && self.sigma > 0.0) {
                    return Err(invalid_setting("sigma", format!("must be positive and finite, got {}", self.sigma)));
                }
                if self.stride == 0 {
                    return Err(invalid_setting("stride", "must be at least 1"));
                }
                let (h, w, _) = load_image("test_images", &self.test_images, 0)?;
                let last = (self.n - 1) * self.stride;
                load_image("test_images", &self.test_images, last).map_err(|e| {
                    invalid_setting(
                        "--n",
                        format!(
                            "{} runs need image {last} of {} (indices 0, {}, …): {e}",
                            self.n,
                            self.test_images.display(),
                            self.stride
                        ),
                    )
                })?;
                (h, w)
            }
        };
        let prior = self.load_prior()?;
        match prior.image_shape() {
            Some(shape) if shape == (h, w) => Ok(()),
            Some((ph, pw)) => Err(invalid_setting(
                "--prior",
                format!(
                    "{} is a {ph}×{pw} prior, but the {} problem images {h}×{w}",
                    self.prior.display(),
                    self.problem
                ),
            )),
            None => Err(invalid_setting("--prior", format!("{}: not an image prior", self.prior.display()))),
        }
    }

    /// The prior: the DSM surrogate of the checkpoint.
    pub(super) fn load_prior(&self) -> Result<Prior> {
        let path = resolve(&self.prior);
        if !path.is_file() {
            return Err(invalid_setting("--prior", format!("{}: no such file", self.prior.display())));
        }
        Prior::ncsnpp_dsm(&path, DsmSettings { eps: self.time_floor, ..DsmSettings::default() })
            .map_err(|e| invalid_setting("--prior", format!("{}: {e}", self.prior.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scoreprior::experiment::ProblemOptions;

    #[test]
    fn denoising_run_zero_is_the_main_job() {
        let s = CalibrationSettings::denoising();
        let d = s.denoising_run(0, Path::new("out/main-dpi"));
        let mut main = DpiSettings::default();
        main.prior.prior = "assets/ncsnpp_fmnist16/ema.safetensors".into();
        main.prior.surrogate = true;
        main.problem.x_true = Some("assets/fashion16_test.npy".into());
        // The study names its noise level (the main job's is the default, the same level).
        main.problem.noise = Some(ProblemOptions::DEFAULT_NOISE.into());
        main.output.out = "out/main-dpi".into();
        main.output.quiet = true;
        assert_eq!(d, main);
        assert_eq!(s.denoising_run(3, Path::new("o")).problem.index, 12);
    }
}
