//! Calibration of DPI posteriors where the truth is known: over `n` EHT closure problems or `n`
//! denoising problems, the observed coverage of the samples' central credible intervals (per
//! pixel; for EHT also ring diameter, width and position angle) against their nominal level.
//!
//! Each run lives in `out/<problem>-<index>/` (the run's [`ExperimentResult::save`] files,
//! `settings.json` and `row.json`); a finished run with the same settings is read back, a folder
//! holding other settings is an error naming every differing key ([`super::check_sub_run`]).
//!
//! Conventions:
//! - EHT data: image `i` of [`CompactSources`] (stream seed `source_seed`), 32×32 over 160 µas at
//!   peak 1 (the prior's units, observed as they are, as `dpi --forward eht(…)` observes a truth),
//!   seen by the EHT 2017 array on the Sgr A* track ([`Observation::sgr_a_star`], point pixels)
//!   with thermal noise of seed `seed + i`; DPI fits the closure phases and debiased log closure
//!   amplitudes as `eht-study`'s surrogate stage does.
//! - Per-pixel central interval at level `L`: the empirical quantiles `q_lo = (1 − L)/2` and
//!   `q_hi = 1 − q_lo` of the samples (linear interpolation between order statistics, numpy's
//!   default), computed from every sample with finite pixels (no outlier filter); a pixel is
//!   covered when `q_lo ≤ truth ≤ q_hi`. The intervals are nested, so coverage is
//!   non-decreasing in the level.
//! - EHT: closures do not fix the position, so the truth is first moved by the integer shift (at
//!   most a quarter of the field) that best correlates it with the posterior mean, as
//!   [`super::eht`] does.
//! - Position angle of a ring (degrees, east of north, in `[0, 360)`): the direction of the
//!   brightness-weighted mean of the unit vectors from the fitted ring centre to every pixel
//!   (pixel `(i, j)` lies `c_x − j` pixels east and `c_y − i` north of a centre `(c_y, c_x)`; row 0
//!   is north, east is to the left), see [`position_angle`]. Its interval is circular: the
//!   samples' angles are centred on their circular mean before the quantiles are taken.
//! - Ring measures come from [`ring_fit`] (5 µas pixels) of the truth and of every sample; a
//!   source whose truth is a blob mixture (or has no ring fit) is left out of the ring coverage
//!   (counted in `coverage.json`); a ring truth none of whose samples has a fit counts as not
//!   covered.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use scoreprior_core::forward::interferometry::{
    nominal_resolution_uas, ring_fit, Array, CompactSources, Interferometer, Observation, TestSource,
};
use scoreprior_core::forward::ForwardModel;
use scoreprior_core::io::atomic_write;
use serde::{Deserialize, Serialize};

use super::eht::EhtDpiSettings;
use crate::experiment::inputs::{load_image, resolve};
use crate::experiment::{
    invalid_setting, DpiSettings, DsmSettings, Experiment, ExperimentError, ExperimentResult, LaplaceStart,
    MapWarmStart, PosteriorSettings, Prior, Result,
};
use crate::monitor::Monitor;
use crate::plot::{Figure, Series};

/// Image side of the EHT problem (pixels).
pub const EHT_NPIX: usize = 32;
/// Field of view of the EHT problem (µas): 5 µas pixels.
pub const EHT_FOV_UAS: f64 = 160.0;
/// Outlier threshold of the EHT runs (none dropped), as in [`super::eht`].
const EHT_OUTLIER: f64 = 1e9;

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
        d.prior.prior = self.prior.display().to_string();
        d.prior.surrogate = true;
        d.prior.time_floor_from = 0.1;
        d.problem.x_true = Some(self.test_images.clone());
        d.problem.index = j * self.stride;
        d.problem.noise = format!("gaussian(sigma={})", self.sigma);
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
    /// use scoreprior::studies::calibration::CalibrationSettings;
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
                if let Some(l) = &self.laplace {
                    if !(l.step.is_finite() && l.step > 0.0 && l.floor.is_finite() && l.floor > 0.0) {
                        return Err(invalid_setting("laplace", "step and floor must be positive and finite"));
                    }
                }
                (EHT_NPIX, EHT_NPIX)
            }
            CalibrationProblem::Denoising => {
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
    fn load_prior(&self) -> Result<Prior> {
        let path = resolve(&self.prior);
        if !path.is_file() {
            return Err(invalid_setting("--prior", format!("{}: no such file", self.prior.display())));
        }
        Prior::ncsnpp_dsm(&path, DsmSettings { eps: self.time_floor, ..DsmSettings::default() })
            .map_err(|e| invalid_setting("--prior", format!("{}: {e}", self.prior.display())))
    }
}

/// A central credible interval and whether the truth lies in it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end (for a position angle, `lo ≤ hi` and the arc may extend past 0° or 360°).
    pub hi: f64,
    /// Whether the truth lies in `[lo, hi]` (for a position angle, on the arc).
    pub inside: bool,
}

/// Ring measures of one image ([`ring_fit`] and [`position_angle`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RingMeasures {
    /// Diameter (µas).
    pub diameter: f64,
    /// Width (FWHM, µas).
    pub width: f64,
    /// Position angle of the brightest part (degrees east of north, `[0, 360)`).
    pub position_angle: f64,
    /// Length of the brightness-weighted mean unit vector, in `[0, 1]` (0: symmetric ring, whose
    /// position angle means nothing).
    pub asymmetry: f64,
}

/// The ring measures of an EHT run whose truth has a ring fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingCoverage {
    /// The truth's measures.
    pub truth: RingMeasures,
    /// Samples with a ring fit (the intervals are over these).
    pub fitted: usize,
    /// Posterior median diameter (µas), circular mean position angle (degrees); `None` without
    /// fitted samples.
    pub median_diameter: Option<f64>,
    /// Posterior median width (µas).
    pub median_width: Option<f64>,
    /// Circular mean of the samples' position angles (degrees).
    pub mean_position_angle: Option<f64>,
    /// Diameter interval at each level (empty without fitted samples).
    pub diameter: Vec<Interval>,
    /// Width interval at each level.
    pub width: Vec<Interval>,
    /// Position-angle interval at each level (circular).
    pub position_angle: Vec<Interval>,
}

impl RingCoverage {
    /// Whether the truth's diameter, width and position angle lie in their intervals at level
    /// `k` (false without fitted samples).
    pub fn inside(&self, k: usize) -> [bool; 3] {
        let at = |v: &[Interval]| v.get(k).is_some_and(|i| i.inside);
        [at(&self.diameter), at(&self.width), at(&self.position_angle)]
    }
}

/// The measures of one run (`row.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRow {
    /// The run's folder name, `<problem>-<index>`.
    pub run: String,
    /// EHT source index (of `source_seed`) or test-image index.
    pub index: usize,
    /// EHT: `ring`, `crescent`, `blobs` or `crescent+blob`; denoising: `image`.
    pub kind: String,
    /// The levels.
    pub levels: Vec<f64>,
    /// Fraction of pixels whose (aligned) truth lies in the central interval, per level.
    pub pixel_coverage: Vec<f64>,
    /// The same over the source's pixels only (truth above [`SOURCE_FRACTION`] of its peak).
    #[serde(default)]
    pub source_coverage: Vec<f64>,
    /// Fraction of pixels with `|truth − mean| ≤ 2·std`.
    pub within_2std: f64,
    /// Mean posterior std over pixels divided by the posterior mean's peak.
    pub std_rel: f64,
    /// Samples with finite pixels (used for every measure).
    pub samples_used: usize,
    /// Denoising: PSNR (dB) of the posterior mean.
    pub mean_psnr: Option<f64>,
    /// Denoising: PSNR (dB) of the Wiener filter on the same `y`.
    pub wiener_psnr: Option<f64>,
    /// EHT: reduced χ² of the mean's closure phases.
    pub chi2_phase: Option<f64>,
    /// EHT: reduced χ² of the mean's log closure amplitudes.
    pub chi2_log_amp: Option<f64>,
    /// EHT, rows of the first version: the whole-pixel shift `(down, right)` that aligned the
    /// truth with the mean (superseded by `offset_uas`).
    #[serde(default)]
    pub shift: Option<(isize, isize)>,
    /// EHT: the offset `(east, north)` µas, to a tenth of a pixel, by which the truth was moved
    /// to align it with the mean (closures do not fix the position).
    #[serde(default)]
    pub offset_uas: Option<(f64, f64)>,
    /// EHT, ring-like truths with a ring fit: the ring measures' coverage.
    pub ring: Option<RingCoverage>,
    /// Wall time of the run (s; DPI with its warm start, and sampling).
    pub seconds: f64,
}

/// Observed coverage over runs at one level (`coverage.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelCoverage {
    /// Nominal level.
    pub level: f64,
    /// Per-pixel coverage averaged over runs.
    pub pixels_mean: f64,
    /// Smallest per-pixel coverage of a run.
    pub pixels_min: f64,
    /// Largest per-pixel coverage of a run.
    pub pixels_max: f64,
    /// Coverage over the source's pixels ([`SOURCE_FRACTION`]), averaged over runs.
    #[serde(default)]
    pub source_mean: f64,
    /// EHT: fraction of ring runs whose truth diameter lies in its interval.
    pub ring_diameter: Option<f64>,
    /// EHT: the same for the width.
    pub ring_width: Option<f64>,
    /// EHT: the same for the position angle.
    pub ring_position_angle: Option<f64>,
}

/// The study's summary (`coverage.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageSummary {
    /// The problem.
    pub problem: CalibrationProblem,
    /// Runs.
    pub runs: usize,
    /// Per level, in the settings' order.
    pub levels: Vec<LevelCoverage>,
    /// EHT: runs in the ring-measure coverage.
    pub ring_runs: usize,
    /// EHT: runs left out of it (blob truths, or truths without a ring fit).
    pub ring_excluded: usize,
    /// EHT: ring runs none of whose samples had a ring fit (counted as not covered).
    pub ring_runs_without_fitted_samples: usize,
    /// Mean over runs of the 2-std coverage.
    pub within_2std_mean: f64,
    /// Mean over runs of std / peak.
    pub std_rel_mean: f64,
}

/// Rows and summary of a study; [`CalibrationReport::write`] writes its tables and figure.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationReport {
    /// One row per run, in run order.
    pub rows: Vec<CalibrationRow>,
    /// The summary over runs.
    pub summary: CoverageSummary,
}

fn json_err(what: &Path, e: impl std::fmt::Display) -> ExperimentError {
    invalid_setting("--out", format!("{}: {e}", what.display()))
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| json_err(path, e))?;
    atomic_write(path, text.as_bytes())?;
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| scoreprior_core::io::IoError::os(path, e))?;
    serde_json::from_str(&text).map_err(|e| json_err(path, e))
}

pub use super::Difference;

/// The first key (dotted, keys in sorted order) whose value differs between two settings
/// documents, with both values; `None` when equal.
///
/// ```
/// use scoreprior::studies::calibration::first_difference;
/// let a = serde_json::json!({"steps": 600, "map": {"rounds": 5}});
/// let b = serde_json::json!({"steps": 20, "map": {"rounds": 5}});
/// assert_eq!(first_difference(&a, &b).unwrap(), ("steps".into(), "600".into(), "20".into()));
/// assert!(first_difference(&a, &a).is_none());
/// ```
pub fn first_difference(old: &serde_json::Value, new: &serde_json::Value) -> Option<Difference> {
    super::settings_differences(old, new).into_iter().next()
}

/// The `q`-quantile (`0 ≤ q ≤ 1`) of ascending `sorted` values, interpolating linearly between
/// order statistics (position `q·(m − 1)`, numpy's default); NaN when empty.
///
/// ```
/// use scoreprior::studies::calibration::quantile;
/// assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.25), 1.75);
/// ```
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        m => {
            let h = q.clamp(0.0, 1.0) * (m - 1) as f64;
            let lo = (h.floor() as usize).min(m - 2);
            sorted[lo] + (h - lo as f64) * (sorted[lo + 1] - sorted[lo])
        }
    }
}

/// The central interval `[quantile((1 − level)/2), quantile((1 + level)/2)]` of `values` (any
/// order), and whether `truth` lies in it; `None` without values.
///
/// ```
/// use scoreprior::studies::calibration::central_interval;
/// let i = central_interval(&[4.0, 0.0, 2.0, 1.0, 3.0], 0.5, 3.2).unwrap();
/// assert_eq!((i.lo, i.hi, i.inside), (1.0, 3.0, false));
/// ```
pub fn central_interval(values: &[f64], level: f64, truth: f64) -> Option<Interval> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let q = (1.0 - level) / 2.0;
    let (lo, hi) = (quantile(&v, q), quantile(&v, 1.0 - q));
    Some(Interval { lo, hi, inside: lo <= truth && truth <= hi })
}

/// `a` wrapped into `(−180, 180]` degrees.
fn wrap180(a: f64) -> f64 {
    let r = a.rem_euclid(360.0);
    if r > 180.0 {
        r - 360.0
    } else {
        r
    }
}

/// Circular mean of angles (degrees), in `[0, 360)`; NaN without angles.
///
/// ```
/// use scoreprior::studies::calibration::circular_mean;
/// assert!((circular_mean(&[350.0, 10.0]) - 0.0).abs() < 1e-9);
/// ```
pub fn circular_mean(angles_deg: &[f64]) -> f64 {
    if angles_deg.is_empty() {
        return f64::NAN;
    }
    let (s, c) = angles_deg.iter().fold((0.0, 0.0), |(s, c), a| (s + a.to_radians().sin(), c + a.to_radians().cos()));
    let m = s.atan2(c).to_degrees();
    let m = m.rem_euclid(360.0);
    if m >= 360.0 {
        0.0
    } else {
        m
    }
}

/// The central interval of angles (degrees) at `level`: the angles are centred on their
/// circular mean `μ` (differences wrapped into `(−180, 180]`), the quantiles taken, and the arc
/// `[μ + d_lo, μ + d_hi]` returned (`lo ≤ hi`, possibly past 0° or 360°); `truth` is inside when
/// its wrapped difference from `μ` lies in `[d_lo, d_hi]`. `None` without angles.
///
/// ```
/// use scoreprior::studies::calibration::circular_interval;
/// // Angles around north: the interval straddles 0°, and 5° lies in it.
/// let i = circular_interval(&[350.0, 355.0, 0.0, 5.0, 10.0], 0.5, 5.0).unwrap();
/// assert!((i.lo + 5.0).abs() < 1e-9 && (i.hi - 5.0).abs() < 1e-9 && i.inside, "{i:?}");
/// ```
pub fn circular_interval(angles_deg: &[f64], level: f64, truth_deg: f64) -> Option<Interval> {
    if angles_deg.is_empty() {
        return None;
    }
    let mu = circular_mean(angles_deg);
    let d: Vec<f64> = angles_deg.iter().map(|a| wrap180(a - mu)).collect();
    let i = central_interval(&d, level, wrap180(truth_deg - mu))?;
    Some(Interval { lo: mu + i.lo, hi: mu + i.hi, inside: i.inside })
}

/// Position angle of the brightest part of an `n × n` image around `center` (pixels `(row,
/// column)`, sub-pixel), in degrees east of north in `[0, 360)`, and the length of the mean
/// vector in `[0, 1]`: the direction of `Σ_p v_p û_p / Σ_p v_p` over pixels with positive value
/// at least half a pixel from the centre, `û_p` the unit vector from the centre to pixel `p`
/// with east `= center.1 − j` and north `= center.0 − i` (row 0 is north, east is to the left,
/// the [`TestSource`] grid).
///
/// ```
/// use scoreprior::studies::calibration::position_angle;
/// // 3×3, centre pixel (1, 1): one bright pixel above (north) and one to the left (east).
/// let mut img = vec![0.0; 9];
/// img[1] = 1.0; // (0, 1): north
/// img[3] = 1.0; // (1, 0): east
/// let (pa, r) = position_angle(&img, 3, (1.0, 1.0));
/// assert!((pa - 45.0).abs() < 1e-9 && (r - 0.5f64.sqrt()).abs() < 1e-12);
/// ```
pub fn position_angle(img: &[f64], n: usize, center: (f64, f64)) -> (f64, f64) {
    let (mut e, mut no, mut total) = (0.0, 0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let v = img[i * n + j];
            let (de, dn) = (center.1 - j as f64, center.0 - i as f64);
            let r = de.hypot(dn);
            if v > 0.0 && r >= 0.5 {
                e += v * de / r;
                no += v * dn / r;
                total += v;
            }
        }
    }
    if total.is_nan() || total <= 0.0 {
        return (f64::NAN, 0.0);
    }
    let pa = e.atan2(no).to_degrees().rem_euclid(360.0);
    (if pa >= 360.0 { 0.0 } else { pa }, e.hypot(no) / total)
}

/// Ring measures of an EHT image (5 µas pixels); `None` without a ring fit.
fn ring_measures(img: &[f64]) -> Option<RingMeasures> {
    ring_measures_on(img, EHT_NPIX, EHT_FOV_UAS / EHT_NPIX as f64)
}

/// Ring measures of an `n × n` image of `pixel_uas` pixels: [`ring_fit`]'s diameter and width,
/// [`position_angle`] around its centre; `None` without a finite ring fit.
///
/// ```
/// use scoreprior::core::forward::interferometry::TestSource;
/// use scoreprior::studies::calibration::ring_measures_on;
/// // A crescent brighter to the east: position angle 90°.
/// let c = TestSource::Crescent { radius: 22.0, width: 4.0, asymmetry: 0.6, angle_deg: 90.0 };
/// let m = ring_measures_on(&c.render(32, 160.0, 1.0).unwrap(), 32, 5.0).unwrap();
/// assert!((m.diameter - 44.0).abs() < 4.0 && (m.position_angle - 90.0).abs() < 10.0, "{m:?}");
/// ```
pub fn ring_measures_on(img: &[f64], n: usize, pixel_uas: f64) -> Option<RingMeasures> {
    let fit = ring_fit(img, n, pixel_uas)?;
    let (position_angle, asymmetry) = position_angle(img, n, fit.center);
    [fit.diameter, fit.width, position_angle].iter().all(|v| v.is_finite()).then_some(RingMeasures {
        diameter: fit.diameter,
        width: fit.width,
        position_angle,
        asymmetry,
    })
}

/// The rows of `x` (`n × d`) whose pixels are all finite.
fn finite_samples(x: &[f64], d: usize) -> Vec<&[f64]> {
    x.chunks(d).filter(|s| s.len() == d && s.iter().all(|v| v.is_finite())).collect()
}

/// Per-pixel measures: coverage at each level, 2-std coverage, mean, std.
struct PixelMeasures {
    coverage: Vec<f64>,
    source_coverage: Vec<f64>,
    within_2std: f64,
    mean: Vec<f64>,
    std_rel: f64,
}

/// Pixels whose truth exceeds this fraction of the truth's peak count as the source: there a
/// central interval can cover the truth, where a positive posterior's interval never reaches
/// a background truth of (numerically) zero.
pub const SOURCE_FRACTION: f64 = 0.01;

/// Per-pixel coverage of `truth` by the `samples` at each level (all pixels, and the source's,
/// [`SOURCE_FRACTION`]), and the 2-std coverage.
fn pixel_measures(samples: &[&[f64]], truth: &[f64], mean: &[f64], levels: &[f64]) -> PixelMeasures {
    let d = truth.len();
    let m = samples.len().max(1) as f64;
    let std: Vec<f64> =
        (0..d).map(|p| (samples.iter().map(|s| (s[p] - mean[p]).powi(2)).sum::<f64>() / m).sqrt()).collect();
    let mut inside = vec![0usize; levels.len()];
    let mut inside_source = vec![0usize; levels.len()];
    let truth_peak = truth.iter().cloned().fold(0.0, f64::max);
    let is_source = |p: usize| truth[p] > SOURCE_FRACTION * truth_peak;
    let n_source = (0..d).filter(|&p| is_source(p)).count();
    let mut column = Vec::with_capacity(samples.len());
    for p in 0..d {
        column.clear();
        column.extend(samples.iter().map(|s| s[p]));
        column.sort_by(f64::total_cmp);
        for (k, &l) in levels.iter().enumerate() {
            let q = (1.0 - l) / 2.0;
            if quantile(&column, q) <= truth[p] && truth[p] <= quantile(&column, 1.0 - q) {
                inside[k] += 1;
                if is_source(p) {
                    inside_source[k] += 1;
                }
            }
        }
    }
    let within = (0..d).filter(|&p| (truth[p] - mean[p]).abs() <= 2.0 * std[p]).count();
    let peak = mean.iter().cloned().fold(1e-300, f64::max);
    PixelMeasures {
        coverage: inside.iter().map(|&c| c as f64 / d as f64).collect(),
        source_coverage: inside_source.iter().map(|&c| c as f64 / n_source.max(1) as f64).collect(),
        within_2std: within as f64 / d as f64,
        mean: mean.to_vec(),
        std_rel: std.iter().sum::<f64>() / d as f64 / peak,
    }
}

fn mean_of(samples: &[&[f64]], d: usize) -> Vec<f64> {
    let m = samples.len().max(1) as f64;
    (0..d).map(|p| samples.iter().map(|s| s[p]).sum::<f64>() / m).collect()
}

/// The ring coverage of the `samples` for a truth with measures `truth`.
fn ring_coverage(samples: &[&[f64]], truth: RingMeasures, levels: &[f64]) -> RingCoverage {
    let fits: Vec<RingMeasures> = samples.par_iter().filter_map(|s| ring_measures(s)).collect();
    let pick = |f: fn(&RingMeasures) -> f64| fits.iter().map(f).collect::<Vec<f64>>();
    let (d, w, pa) = (pick(|m| m.diameter), pick(|m| m.width), pick(|m| m.position_angle));
    let per_level = |v: &[f64], t: f64, circular: bool| -> Vec<Interval> {
        levels
            .iter()
            .filter_map(|&l| if circular { circular_interval(v, l, t) } else { central_interval(v, l, t) })
            .collect()
    };
    let median = |v: &[f64]| central_interval(v, 1e-12, 0.0).map(|i| 0.5 * (i.lo + i.hi));
    RingCoverage {
        truth,
        fitted: fits.len(),
        median_diameter: median(&d),
        median_width: median(&w),
        mean_position_angle: (!pa.is_empty()).then(|| circular_mean(&pa)),
        diameter: per_level(&d, truth.diameter, false),
        width: per_level(&w, truth.width, false),
        position_angle: per_level(&pa, truth.position_angle, true),
    }
}

/// `Some(v)` when `v` is finite (JSON has no NaN).
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// What every EHT run shares: the interferometer, the truths and their kinds.
struct EhtContext {
    eht: Interferometer,
    resolution_uas: f64,
    truths: Vec<f64>,
    kinds: Vec<&'static str>,
    /// The sources themselves (for sub-pixel alignment), and the renderer's supersampling.
    sources: Vec<TestSource>,
    supersample: usize,
}

impl EhtContext {
    fn new(s: &CalibrationSettings) -> Result<Self> {
        let coverage = Array::eht2017().observe(&Observation::sgr_a_star())?;
        let resolution_uas = nominal_resolution_uas(&coverage);
        let eht = Interferometer::new(coverage, EHT_NPIX, EHT_FOV_UAS)?;
        let g = CompactSources::default();
        let truths = g.images(s.n, EHT_NPIX, EHT_FOV_UAS, s.source_seed)?;
        let sources =
            (0..s.n).map(|i| g.source(s.source_seed, i as u64)).collect::<std::result::Result<Vec<_>, _>>()?;
        let kinds = (0..s.n)
            .map(|i| {
                let src = sources[i].clone();
                let inner = match src {
                    TestSource::Shifted { source, .. } => *source,
                    other => other,
                };
                Ok(match inner {
                    TestSource::Ring { .. } => "ring",
                    TestSource::Crescent { .. } => "crescent",
                    TestSource::Blobs(_) => "blobs",
                    _ => "crescent+blob",
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { eht, resolution_uas, truths, kinds, sources, supersample: g.supersample })
    }

    fn truth(&self, i: usize) -> &[f64] {
        let d = EHT_NPIX * EHT_NPIX;
        &self.truths[i * d..(i + 1) * d]
    }

    /// Truth `i` moved by `(east, north)` µas, rendered as the study's truths are (supersampled
    /// and binned) and scaled to the unmoved truth's flux.
    fn moved_truth(&self, i: usize, east: f64, north: f64) -> Result<Vec<f64>> {
        let (n, ss) = (EHT_NPIX, self.supersample.max(1));
        let moved = TestSource::Shifted { east, north, source: Box::new(self.sources[i].clone()) };
        let fine = moved.render(n * ss, EHT_FOV_UAS, 1.0)?;
        let mut img = vec![0.0; n * n];
        for (k, v) in fine.iter().enumerate() {
            let (r, c) = (k / (n * ss), k % (n * ss));
            img[(r / ss) * n + c / ss] += v;
        }
        let flux: f64 = self.truth(i).iter().sum();
        let total: f64 = img.iter().sum();
        Ok(img.into_iter().map(|v| v * flux / total).collect())
    }

    /// Truth `i` aligned to `mean` to a tenth of a pixel: closure data do not fix the position,
    /// so the posterior is compared with the truth where it places it. The source is re-rendered
    /// at each trial offset (no interpolation blur): whole pixels over a quarter of the field,
    /// then tenths around the best. Returns the moved truth and its offset (east, north) µas.
    fn aligned_truth(&self, i: usize, mean: &[f64]) -> Result<(Vec<f64>, (f64, f64))> {
        let px = EHT_FOV_UAS / EHT_NPIX as f64;
        let score = |img: &[f64]| {
            let (ab, aa, bb) =
                img.iter().zip(mean).fold((0.0, 0.0, 0.0), |(ab, aa, bb), (a, b)| (ab + a * b, aa + a * a, bb + b * b));
            ab / (aa * bb).sqrt().max(1e-300)
        };
        let mut best = (f64::NEG_INFINITY, (0.0, 0.0));
        let reach = (EHT_NPIX / 4) as i32;
        for (grid, step, centre) in [(reach, px, (0.0, 0.0)), (5, px / 10.0, (f64::NAN, f64::NAN))] {
            let c = if centre.0.is_nan() { best.1 } else { centre };
            for a in -grid..=grid {
                for b in -grid..=grid {
                    let off = (c.0 + a as f64 * step, c.1 + b as f64 * step);
                    let v = score(&self.moved_truth(i, off.0, off.1)?);
                    if v > best.0 {
                        best = (v, off);
                    }
                }
            }
        }
        Ok((self.moved_truth(i, best.1 .0, best.1 .1)?, best.1))
    }
}

/// The settings of EHT run `i` (`settings.json`).
fn eht_run_settings(s: &CalibrationSettings, i: usize, kind: &str, prior_sha256: &str) -> serde_json::Value {
    let d = s.eht_dpi();
    let seed = s.seed.wrapping_add(i as u64);
    let mut spec = serde_json::json!({
        "problem": "eht", "index": i, "kind": kind, "source_seed": s.source_seed, "flux_jy": s.flux_jy,
        "sources": "CompactSources::default()", "npix": EHT_NPIX, "fov_uas": EHT_FOV_UAS,
        "array": "EHT2017", "observation": "sgr_a_star", "pulse": "delta", "data": "closures (debiased)",
        "noise_seed": seed, "dpi_seed": seed, "prior": s.prior.display().to_string(),
        "prior_sha256": prior_sha256, "prior_estimator": "dsm (default settings)",
        "steps": d.steps, "batch": d.batch, "lr": d.lr, "samples": d.samples, "flows": d.flows,
        "init_scale": d.init_scale, "init_fwhm_uas": d.init_fwhm_uas, "flux_weight": d.flux_weight,
        "map": {"iterations": d.map.iterations, "rounds": d.map.rounds, "memory": d.map.memory,
                "jitter": d.map.jitter, "blur": "nominal resolution"},
        "laplace": d.laplace.map(|l| serde_json::json!({"step": l.step, "floor": l.floor})),
        "outlier": EHT_OUTLIER, "levels": s.levels, "ring_pixel_uas": EHT_FOV_UAS / EHT_NPIX as f64,
    });
    // Recorded only when not the default, so that runs from before the setting still resume.
    if s.time_floor != DsmSettings::default().eps {
        spec["time_floor"] = serde_json::json!(s.time_floor);
    }
    if !s.continuation {
        spec["continuation"] = serde_json::json!(false);
    }
    spec
}

/// The settings of denoising run `j` (`settings.json`): its `DpiSettings` (folder-independent).
fn denoising_run_settings(s: &CalibrationSettings, j: usize, prior_sha256: &str) -> Result<serde_json::Value> {
    let mut d = s.denoising_run(j, Path::new(""));
    d.output.resume = false;
    d.output.force = false;
    let dpi = serde_json::to_value(&d).map_err(|e| invalid_setting("--out", e.to_string()))?;
    Ok(serde_json::json!({
        "problem": "denoising", "index": j * s.stride, "dpi": dpi, "prior_sha256": prior_sha256,
        "levels": s.levels,
    }))
}

/// Forwards a run's notes to the study's progress callback.
struct Notes<'a>(&'a mut dyn FnMut(&str));

impl Monitor for Notes<'_> {
    fn note(&mut self, text: &str) {
        (self.0)(text)
    }
}

/// Runs EHT source `i` into `dir` and measures it.
fn eht_run(
    s: &CalibrationSettings,
    ctx: &EhtContext,
    i: usize,
    dir: &Path,
) -> Result<(ExperimentResult, CalibrationRow)> {
    let (n, fov) = (EHT_NPIX, EHT_FOV_UAS);
    let d = s.eht_dpi();
    let x = ctx.truth(i).to_vec();
    let seed = s.seed.wrapping_add(i as u64);
    let flux: f64 = x.iter().sum();
    let jy: Vec<f64> = x.iter().map(|v| v * s.flux_jy / flux).collect();
    let vis = ctx.eht.visibility_model()?.simulate(&jy, &mut ChaCha8Rng::seed_from_u64(seed))?;
    let problem = ctx.eht.closure_problem(&vis, true)?;
    // eht-imaging's start: a Gaussian of the truth's flux, floored so that softplus⁻¹ is finite.
    let start = TestSource::Blobs(vec![(0.0, 0.0, d.init_fwhm_uas, 1.0)]).render(n, fov, flux)?;
    let floor = 1e-6 * start.iter().cloned().fold(0.0, f64::max);
    let start: Vec<f64> = start.into_iter().map(|v| v.max(floor)).collect();
    let map = MapWarmStart { blur_px: ctx.resolution_uas / (fov / n as f64), ..d.map };
    let t0 = Instant::now();
    let res = Experiment::builder(problem.model.clone())
        .forward_label(format!("closures (EHT 2017, Sgr A* track) of compact source {i} of seed {}", s.source_seed))
        .truth_with_measurement(x.clone(), problem.y.clone(), n, n)
        .prior(s.load_prior()?.with_label("sources"))
        .posterior(PosteriorSettings {
            flows: d.flows,
            positive: true,
            init_scale: d.init_scale,
            init_image: Some(start),
            map_warm_start: Some(map),
            laplace: d.laplace,
            ..Default::default()
        })
        .flux_constraint(d.flux_weight, flux)
        .steps(d.steps)
        .batch(d.batch)
        .lr(d.lr)
        .seed(seed)
        .samples(d.samples)
        .outlier_threshold(EHT_OUTLIER)
        .continuation(s.continuation.then(Default::default))
        .configure(|c| {
            c.out_dir = Some(dir.to_path_buf());
            c.resume = true;
            c.checkpoint_every = 50;
        })
        .build()?
        .run()?;
    let seconds = t0.elapsed().as_secs_f64();
    res.save(dir)?;
    let dim = n * n;
    let samples = finite_samples(&res.samples.x, dim);
    if samples.is_empty() {
        return Err(invalid_setting("--steps", format!("{}: no sample has finite pixels", dir.display())));
    }
    let mean = mean_of(&samples, dim);
    let (aligned, offset) = ctx.aligned_truth(i, &mean)?;
    let pm = pixel_measures(&samples, &aligned, &mean, &s.levels);
    let chi = problem.chi2(&pm.mean)?;
    let kind = ctx.kinds[i];
    let ring = if kind == "blobs" { None } else { ring_measures(&x).map(|t| ring_coverage(&samples, t, &s.levels)) };
    let row = CalibrationRow {
        run: format!("eht-{i}"),
        index: i,
        kind: kind.to_string(),
        levels: s.levels.clone(),
        pixel_coverage: pm.coverage,
        source_coverage: pm.source_coverage,
        within_2std: pm.within_2std,
        std_rel: pm.std_rel,
        samples_used: samples.len(),
        mean_psnr: None,
        wiener_psnr: None,
        chi2_phase: finite(chi.phase),
        chi2_log_amp: finite(chi.log_amp),
        shift: None,
        offset_uas: Some(offset),
        ring,
        seconds,
    };
    Ok((res, row))
}

/// The per-pixel measures of a finished EHT run `i` again, from its saved `samples.npy`.
fn remeasure_eht(
    s: &CalibrationSettings,
    ctx: &EhtContext,
    i: usize,
    dir: &Path,
    row: CalibrationRow,
) -> Result<CalibrationRow> {
    let n = EHT_NPIX;
    let saved = scoreprior_core::io::read_npy(dir.join("samples.npy"))?.data;
    let samples = finite_samples(&saved, n * n);
    if samples.is_empty() {
        return Err(invalid_setting("--out", format!("{}: no sample has finite pixels", dir.display())));
    }
    let mean = mean_of(&samples, n * n);
    let (aligned, offset) = ctx.aligned_truth(i, &mean)?;
    let pm = pixel_measures(&samples, &aligned, &mean, &s.levels);
    Ok(CalibrationRow {
        pixel_coverage: pm.coverage,
        source_coverage: pm.source_coverage,
        within_2std: pm.within_2std,
        std_rel: pm.std_rel,
        samples_used: samples.len(),
        shift: None,
        offset_uas: Some(offset),
        ..row
    })
}

/// Runs denoising run `j` into `dir` (through [`DpiSettings::run`]) and measures it.
fn denoising_run(
    s: &CalibrationSettings,
    j: usize,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(ExperimentResult, CalibrationRow)> {
    // The DPI run owns its own sub-folder (`dpi/`): the study's `settings.json` and `row.json`
    // beside it are not files of a `dpi` run, and the output guard refuses a run folder that
    // holds files no run wrote.
    let dpi_dir = dir.join("dpi");
    let mut dpi = s.denoising_run(j, &dpi_dir);
    // A run stopped part-way continues from its checkpoint (its manifest must match).
    dpi.output.resume = dpi_dir.join("run.json").exists();
    let t0 = Instant::now();
    let res = dpi.run(&mut Notes(progress))?;
    let seconds = t0.elapsed().as_secs_f64();
    let (h, w) = res.shape;
    let truth = res.x_true.clone().ok_or_else(|| invalid_setting("test_images", "the run has no ground truth"))?;
    let samples = finite_samples(&res.samples.x, h * w);
    if samples.is_empty() {
        return Err(invalid_setting("--steps", format!("{}: no sample has finite pixels", dir.display())));
    }
    let mean = mean_of(&samples, h * w);
    let pm = pixel_measures(&samples, &truth, &mean, &s.levels);
    let rep = &res.report;
    let row = CalibrationRow {
        run: format!("denoising-{}", j * s.stride),
        index: j * s.stride,
        kind: "image".into(),
        levels: s.levels.clone(),
        pixel_coverage: pm.coverage,
        source_coverage: pm.source_coverage,
        within_2std: pm.within_2std,
        std_rel: pm.std_rel,
        samples_used: samples.len(),
        mean_psnr: rep.mean_metrics.and_then(|m| finite(m.psnr)),
        wiener_psnr: rep.references.and_then(|r| r.wiener).and_then(|m| finite(m.psnr)),
        chi2_phase: None,
        chi2_log_amp: None,
        shift: None,
        offset_uas: None,
        ring: None,
        seconds,
    };
    Ok((res, row))
}

/// Runs the study into `out` (one folder per run, `out/<problem>-<index>/`), or reads finished
/// runs back, and returns the rows with their summary; [`CalibrationReport::write`] then writes
/// the tables and the figure.
///
/// Resume: a run whose `row.json` exists and whose `settings.json` equals this run's settings is
/// read back; a folder whose `settings.json` differs (or that holds other files without one) is
/// an error naming it and every differing key, checked for every run before any runs; a
/// folder without `row.json` is run (DPI continues from its checkpoint).
///
/// ```no_run
/// use scoreprior::studies::calibration::{self, CalibrationSettings};
/// let settings = CalibrationSettings { n: 4, ..CalibrationSettings::denoising() };
/// let out = std::path::Path::new("out/calibration");
/// let report = calibration::run(&settings, out, &mut |m| eprintln!("{m}"))?;
/// report.write(out)?;
/// # Ok::<(), scoreprior::experiment::ExperimentError>(())
/// ```
///
/// # Errors
/// A setting [`CalibrationSettings::validate`] refuses; a run folder holding other settings; a
/// run's errors; unreadable `row.json` files.
pub fn run(settings: &CalibrationSettings, out: &Path, progress: &mut dyn FnMut(&str)) -> Result<CalibrationReport> {
    let s = settings;
    s.validate()?;
    let prior_sha256 = scoreprior_core::io::hash_path(&resolve(&s.prior))?.sha256;
    let ctx = match s.problem {
        CalibrationProblem::Eht => Some(EhtContext::new(s)?),
        CalibrationProblem::Denoising => None,
    };
    let mut plan = Vec::with_capacity(s.n);
    for j in 0..s.n {
        let (name, spec) = match &ctx {
            Some(c) => (format!("eht-{j}"), eht_run_settings(s, j, c.kinds[j], &prior_sha256)),
            None => (format!("denoising-{}", j * s.stride), denoising_run_settings(s, j, &prior_sha256)?),
        };
        let dir = out.join(&name);
        let reuse = check_folder(&dir, &spec)?;
        plan.push((j, dir, spec, reuse));
    }
    std::fs::create_dir_all(out).map_err(|e| scoreprior_core::io::IoError::os(out, e))?;
    super::mark_study_folder(out, "calibration-study")?;
    let mut rows = Vec::with_capacity(s.n);
    for (j, dir, spec, reuse) in plan {
        let row_file = dir.join("row.json");
        if reuse {
            let mut row = read_json::<CalibrationRow>(&row_file)?;
            if let (Some(c), true) = (&ctx, row.source_coverage.is_empty()) {
                // A row written before the source's coverage was measured: it is measured
                // from the run's saved samples.
                row = remeasure_eht(s, c, j, &dir, row)?;
                write_json(&row_file, &row)?;
            }
            rows.push(row);
            continue;
        }
        write_json(&dir.join("settings.json"), &spec)?;
        let (_, row) = match &ctx {
            Some(c) => {
                progress(&format!("eht-{j} ({}): MAP warm start, DPI, {} samples", c.kinds[j], s.samples));
                eht_run(s, c, j, &dir)?
            }
            None => {
                progress(&format!("denoising-{}: DPI, {} samples", j * s.stride, s.samples));
                denoising_run(s, j, &dir, progress)?
            }
        };
        write_json(&row_file, &row)?;
        progress(&format!(
            "{}: pixel coverage {} at levels {}",
            row.run,
            row.pixel_coverage.iter().map(|c| format!("{c:.2}")).collect::<Vec<_>>().join("/"),
            s.levels.iter().map(|l| format!("{l}")).collect::<Vec<_>>().join("/"),
        ));
        rows.push(row);
    }
    let summary = summarise(s.problem, &s.levels, &rows);
    Ok(CalibrationReport { rows, summary })
}

/// Whether the run folder `dir` holds a finished run of `spec` (read it back); `false` when it
/// is to be run. Errors when it holds another run's settings (naming every differing key) or
/// files not written by the study ([`super::check_sub_run`]).
fn check_folder(dir: &Path, spec: &serde_json::Value) -> Result<bool> {
    let key = dir.join(super::SUB_RUN_SETTINGS);
    let state = super::check_sub_run("calibration-study", dir, &key, spec, |d| d.join("row.json").exists())?;
    Ok(state == super::SubRun::Finished)
}

/// The summary over runs.
fn summarise(problem: CalibrationProblem, levels: &[f64], rows: &[CalibrationRow]) -> CoverageSummary {
    let runs = rows.len();
    let avg = |f: &dyn Fn(&CalibrationRow) -> f64| rows.iter().map(f).sum::<f64>() / runs.max(1) as f64;
    let ring_rows: Vec<&RingCoverage> = rows.iter().filter_map(|r| r.ring.as_ref()).collect();
    let eht = problem == CalibrationProblem::Eht;
    let ring_frac = |k: usize, m: usize| -> Option<f64> {
        (eht && !ring_rows.is_empty())
            .then(|| ring_rows.iter().filter(|r| r.inside(k)[m]).count() as f64 / ring_rows.len() as f64)
    };
    let levels = levels
        .iter()
        .enumerate()
        .map(|(k, &level)| {
            let cov: Vec<f64> = rows.iter().filter_map(|r| r.pixel_coverage.get(k).copied()).collect();
            LevelCoverage {
                level,
                pixels_mean: cov.iter().sum::<f64>() / cov.len().max(1) as f64,
                pixels_min: cov.iter().cloned().fold(f64::INFINITY, f64::min).min(1.0),
                pixels_max: cov.iter().cloned().fold(f64::NEG_INFINITY, f64::max).max(0.0),
                source_mean: {
                    let sc: Vec<f64> = rows.iter().filter_map(|r| r.source_coverage.get(k).copied()).collect();
                    sc.iter().sum::<f64>() / sc.len().max(1) as f64
                },
                ring_diameter: ring_frac(k, 0),
                ring_width: ring_frac(k, 1),
                ring_position_angle: ring_frac(k, 2),
            }
        })
        .collect();
    CoverageSummary {
        problem,
        runs,
        levels,
        ring_runs: if eht { ring_rows.len() } else { 0 },
        ring_excluded: if eht { runs - ring_rows.len() } else { 0 },
        ring_runs_without_fitted_samples: ring_rows.iter().filter(|r| r.fitted == 0).count(),
        within_2std_mean: avg(&|r| r.within_2std),
        std_rel_mean: avg(&|r| r.std_rel),
    }
}

/// A curve of the coverage figure: name, `(level, coverage)` points, optional `(level, lo, hi)`
/// band.
type Curve = (&'static str, Vec<(f64, f64)>, Option<Vec<(f64, f64, f64)>>);

/// One ring measure's coverage at a level.
type LevelMeasure = fn(&LevelCoverage) -> Option<f64>;

/// `0.68` as `68 %`.
fn percent(level: f64) -> String {
    let s = format!("{:.1}", level * 100.0);
    format!("{} %", s.trim_end_matches(".0"))
}

fn opt(v: Option<f64>, p: usize) -> String {
    v.map_or("–".to_string(), |x| format!("{x:.p$}"))
}

/// The smallest level whose interval holds the truth (the intervals are nested), `–` for none.
fn covered_from(levels: &[f64], v: &[Interval]) -> String {
    let mut order: Vec<usize> = (0..levels.len()).collect();
    order.sort_by(|&a, &b| levels[a].total_cmp(&levels[b]));
    order.into_iter().find(|&k| v.get(k).is_some_and(|i| i.inside)).map_or("–".to_string(), |k| percent(levels[k]))
}

impl CalibrationReport {
    /// Mean over runs of an optional measure (`None` when no run has it).
    fn mean_opt(&self, f: impl Fn(&CalibrationRow) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = self.rows.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    /// The Markdown table (`table.md`): one row per run and a summary row (means over runs; for
    /// the ring measures, the fraction of ring runs covered at each level).
    pub fn markdown(&self) -> String {
        let s = &self.summary;
        let levels: Vec<f64> = s.levels.iter().map(|l| l.level).collect();
        let eht = s.problem == CalibrationProblem::Eht;
        let mut head = vec!["run".to_string(), if eht { "source" } else { "image" }.to_string()];
        head.extend(levels.iter().map(|&l| format!("pixels in {}", percent(l))));
        head.extend(levels.iter().map(|&l| format!("source in {}", percent(l))));
        head.extend(["within 2 std", "std / peak"].map(String::from));
        if eht {
            head.extend(
                [
                    "χ² closure phase",
                    "χ² log closure amp",
                    "diameter µas truth / median",
                    "covered from",
                    "width µas truth / median",
                    "covered from",
                    "PA ° truth / mean",
                    "covered from",
                ]
                .map(String::from),
            );
        } else {
            head.extend(["PSNR mean dB", "PSNR Wiener dB"].map(String::from));
        }
        head.push("seconds".into());
        let mut md = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
        for r in &self.rows {
            let mut cells = vec![r.run.clone(), r.kind.clone()];
            cells.extend(r.pixel_coverage.iter().map(|c| format!("{c:.3}")));
            cells.extend((0..levels.len()).map(|k| opt(r.source_coverage.get(k).copied(), 3)));
            cells.extend([format!("{:.3}", r.within_2std), format!("{:.4}", r.std_rel)]);
            if eht {
                cells.extend([opt(r.chi2_phase, 2), opt(r.chi2_log_amp, 2)]);
                match &r.ring {
                    Some(g) => cells.extend([
                        format!("{:.1} / {}", g.truth.diameter, opt(g.median_diameter, 1)),
                        covered_from(&levels, &g.diameter),
                        format!("{:.1} / {}", g.truth.width, opt(g.median_width, 1)),
                        covered_from(&levels, &g.width),
                        format!("{:.0} / {}", g.truth.position_angle, opt(g.mean_position_angle, 0)),
                        covered_from(&levels, &g.position_angle),
                    ]),
                    None => cells.extend(std::iter::repeat_n("–".to_string(), 6)),
                }
            } else {
                cells.extend([opt(r.mean_psnr, 2), opt(r.wiener_psnr, 2)]);
            }
            cells.push(format!("{:.0}", r.seconds));
            md += &format!("| {} |\n", cells.join(" | "));
        }
        let mut cells = vec![format!("**mean of {}**", s.runs), String::new()];
        cells.extend(s.levels.iter().map(|l| format!("**{:.3}** (min {:.3})", l.pixels_mean, l.pixels_min)));
        cells.extend(s.levels.iter().map(|l| format!("**{:.3}**", l.source_mean)));
        cells.extend([format!("{:.3}", s.within_2std_mean), format!("{:.4}", s.std_rel_mean)]);
        if eht {
            cells.extend([opt(self.mean_opt(|r| r.chi2_phase), 2), opt(self.mean_opt(|r| r.chi2_log_amp), 2)]);
            let fracs = |f: fn(&LevelCoverage) -> Option<f64>| {
                s.levels.iter().map(|l| opt(f(l), 2)).collect::<Vec<_>>().join(" / ")
            };
            let n_ring = format!("ring runs: {} ({} left out)", s.ring_runs, s.ring_excluded);
            cells.extend([
                n_ring,
                fracs(|l| l.ring_diameter),
                String::new(),
                fracs(|l| l.ring_width),
                String::new(),
                fracs(|l| l.ring_position_angle),
            ]);
        } else {
            cells.extend([opt(self.mean_opt(|r| r.mean_psnr), 2), opt(self.mean_opt(|r| r.wiener_psnr), 2)]);
        }
        cells.push(format!("{:.0}", self.rows.iter().map(|r| r.seconds).sum::<f64>()));
        md += &format!("| {} |\n", cells.join(" | "));
        md
    }

    /// The CSV table (`table.csv`): every measure of every run, flattened, then the summary row
    /// (`run = summary`: means over runs; ring `*_in_*` columns: the fraction covered).
    fn csv(&self) -> Result<Vec<u8>> {
        let s = &self.summary;
        let levels: Vec<f64> = s.levels.iter().map(|l| l.level).collect();
        let mut head: Vec<String> = ["run", "index", "kind"].map(String::from).to_vec();
        head.extend(levels.iter().map(|l| format!("pixels_in_{l}")));
        head.extend(
            [
                "within_2std",
                "std_rel",
                "samples_used",
                "mean_psnr",
                "wiener_psnr",
                "chi2_phase",
                "chi2_log_amp",
                "shift_down",
                "shift_right",
                "truth_diameter",
                "truth_width",
                "truth_position_angle",
                "truth_asymmetry",
                "fitted_samples",
            ]
            .map(String::from),
        );
        for m in ["diameter", "width", "position_angle"] {
            for l in &levels {
                head.extend([format!("{m}_lo_{l}"), format!("{m}_hi_{l}"), format!("{m}_in_{l}")]);
            }
        }
        head.push("seconds".into());
        let num = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| invalid_setting("--out", format!("table.csv: {e}"));
        w.write_record(&head).map_err(csv_err)?;
        for r in &self.rows {
            let mut rec = vec![r.run.clone(), r.index.to_string(), r.kind.clone()];
            rec.extend(r.pixel_coverage.iter().map(|c| c.to_string()));
            rec.extend([r.within_2std.to_string(), r.std_rel.to_string(), r.samples_used.to_string()]);
            rec.extend([r.mean_psnr, r.wiener_psnr, r.chi2_phase, r.chi2_log_amp].map(num));
            rec.extend([r.shift.map(|s| s.0 as f64), r.shift.map(|s| s.1 as f64)].map(num));
            let g = r.ring.as_ref();
            let t = g.map(|g| g.truth);
            rec.extend(
                [t.map(|t| t.diameter), t.map(|t| t.width), t.map(|t| t.position_angle), t.map(|t| t.asymmetry)]
                    .map(num),
            );
            rec.push(g.map_or(String::new(), |g| g.fitted.to_string()));
            for m in 0..3 {
                for k in 0..levels.len() {
                    let iv = g.and_then(|g| [&g.diameter, &g.width, &g.position_angle][m].get(k).copied());
                    let inside = match (g, iv) {
                        (Some(_), Some(i)) => i.inside.to_string(),
                        (Some(_), None) => "false".into(),
                        _ => String::new(),
                    };
                    rec.extend([num(iv.map(|i| i.lo)), num(iv.map(|i| i.hi)), inside]);
                }
            }
            rec.push(r.seconds.to_string());
            w.write_record(&rec).map_err(csv_err)?;
        }
        let mut rec = vec!["summary".to_string(), String::new(), format!("{} runs", s.runs)];
        rec.extend(s.levels.iter().map(|l| l.pixels_mean.to_string()));
        rec.extend([s.within_2std_mean.to_string(), s.std_rel_mean.to_string(), String::new()]);
        rec.extend(
            [
                self.mean_opt(|r| r.mean_psnr),
                self.mean_opt(|r| r.wiener_psnr),
                self.mean_opt(|r| r.chi2_phase),
                self.mean_opt(|r| r.chi2_log_amp),
            ]
            .map(num),
        );
        rec.extend(std::iter::repeat_n(String::new(), 6));
        rec.push(s.ring_runs.to_string());
        for m in 0..3 {
            for l in &s.levels {
                let f = [l.ring_diameter, l.ring_width, l.ring_position_angle][m];
                rec.extend([String::new(), String::new(), num(f)]);
            }
        }
        rec.push(self.rows.iter().map(|r| r.seconds).sum::<f64>().to_string());
        w.write_record(&rec).map_err(csv_err)?;
        w.into_inner().map_err(|e| invalid_setting("--out", format!("table.csv: {e}")))
    }

    /// The coverage curves `(name, points sorted by level)` of the figure: per-pixel mean (with
    /// its min–max band), then the ring measures for EHT.
    fn curves(&self) -> Vec<Curve> {
        let mut l = self.summary.levels.clone();
        l.sort_by(|a, b| a.level.total_cmp(&b.level));
        let mut out = vec![(
            "pixels (mean over runs, min-max band)",
            l.iter().map(|c| (c.level, c.pixels_mean)).collect(),
            Some(l.iter().map(|c| (c.level, c.pixels_min, c.pixels_max)).collect()),
        )];
        if self.rows.iter().any(|r| !r.source_coverage.is_empty()) {
            out.push((
                "source pixels (truth over 0.01 of peak)",
                l.iter().map(|c| (c.level, c.source_mean)).collect(),
                None,
            ));
        }
        let ring: [(&'static str, LevelMeasure); 3] = [
            ("ring diameter", |c| c.ring_diameter),
            ("ring width", |c| c.ring_width),
            ("ring position angle", |c| c.ring_position_angle),
        ];
        for (name, f) in ring {
            let pts: Vec<(f64, f64)> = l.iter().filter_map(|c| f(c).map(|v| (c.level, v))).collect();
            if !pts.is_empty() {
                out.push((name, pts, None));
            }
        }
        out
    }

    /// Writes `table.csv`, `table.md`, `coverage.json`, and the figure of observed against
    /// nominal coverage as `coverage.svg` and `coverage.png` (the PNG drawn here, without fonts:
    /// a 3×5 pixel font for its labels) into `out`.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).map_err(|e| scoreprior_core::io::IoError::os(out, e))?;
        atomic_write(out.join("table.csv"), &self.csv()?)?;
        atomic_write(out.join("table.md"), self.markdown().as_bytes())?;
        write_json(&out.join("coverage.json"), &self.summary)?;
        let title = format!("DPI calibration: {} ({} runs)", self.summary.problem, self.summary.runs);
        let mut fig = Figure::new(&title, "nominal level", "observed coverage")
            .with(Series::line("ideal (observed = nominal)", vec![(0.0, 0.0), (1.0, 1.0)]));
        for (name, pts, band) in self.curves() {
            let s = Series::line_points(name, pts);
            fig = fig.with(match band {
                Some(b) => s.with_band(b),
                None => s,
            });
        }
        fig.write(out.join("coverage.svg")).map_err(|e| ExperimentError::Plot(e.to_string()))?;
        let png = png::coverage_png(&title.to_uppercase(), &self.curves())
            .map_err(|e| ExperimentError::Plot(format!("coverage.png: {e}")))?;
        atomic_write(out.join("coverage.png"), &png)?;
        Ok(())
    }
}

/// The coverage figure as a PNG, drawn pixel by pixel (the plotting crate here renders SVG only).
mod png {
    use super::Curve;

    const W: u32 = 720;
    const H: u32 = 540;
    /// Plot area: left, top, right, bottom.
    const AREA: (f64, f64, f64, f64) = (70.0, 40.0, 690.0, 470.0);
    const COLORS: [[u8; 3]; 5] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189]];

    /// 3×5 glyphs, one row per entry (bit 2 the left column).
    fn glyph(c: char) -> [u8; 5] {
        match c {
            '0' => [7, 5, 5, 5, 7],
            '1' => [2, 6, 2, 2, 7],
            '2' => [7, 1, 7, 4, 7],
            '3' => [7, 1, 7, 1, 7],
            '4' => [5, 5, 7, 1, 1],
            '5' => [7, 4, 7, 1, 7],
            '6' => [7, 4, 7, 5, 7],
            '7' => [7, 1, 1, 1, 1],
            '8' => [7, 5, 7, 5, 7],
            '9' => [7, 5, 7, 1, 7],
            '.' => [0, 0, 0, 0, 2],
            ',' => [0, 0, 0, 2, 4],
            ':' => [0, 2, 0, 2, 0],
            '-' => [0, 0, 7, 0, 0],
            '(' => [2, 4, 4, 4, 2],
            ')' => [2, 1, 1, 1, 2],
            '=' => [0, 7, 0, 7, 0],
            '/' => [1, 1, 2, 4, 4],
            'A' => [2, 5, 7, 5, 5],
            'B' => [6, 5, 6, 5, 6],
            'C' => [3, 4, 4, 4, 3],
            'D' => [6, 5, 5, 5, 6],
            'E' => [7, 4, 6, 4, 7],
            'F' => [7, 4, 6, 4, 4],
            'G' => [3, 4, 5, 5, 3],
            'H' => [5, 5, 7, 5, 5],
            'I' => [7, 2, 2, 2, 7],
            'J' => [1, 1, 1, 5, 2],
            'K' => [5, 5, 6, 5, 5],
            'L' => [4, 4, 4, 4, 7],
            'M' => [5, 7, 7, 5, 5],
            'N' => [6, 5, 5, 5, 5],
            'O' => [2, 5, 5, 5, 2],
            'P' => [6, 5, 6, 4, 4],
            'Q' => [2, 5, 5, 6, 3],
            'R' => [6, 5, 6, 5, 5],
            'S' => [3, 4, 2, 1, 6],
            'T' => [7, 2, 2, 2, 2],
            'U' => [5, 5, 5, 5, 7],
            'V' => [5, 5, 5, 5, 2],
            'W' => [5, 5, 7, 7, 5],
            'X' => [5, 5, 2, 5, 5],
            'Y' => [5, 5, 2, 2, 2],
            'Z' => [7, 1, 2, 4, 7],
            _ => [0; 5],
        }
    }

    struct Canvas(image::RgbImage);

    impl Canvas {
        fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
            if x >= 0 && y >= 0 && (x as u32) < W && (y as u32) < H {
                self.0.put_pixel(x as u32, y as u32, image::Rgb(c));
            }
        }
        /// A line of half-width `r` pixels; `dash` > 0 draws dashes of that length.
        fn line(&mut self, a: (f64, f64), b: (f64, f64), r: i64, c: [u8; 3], dash: f64) {
            let len = (b.0 - a.0).hypot(b.1 - a.1);
            let steps = (len * 2.0).ceil().max(1.0) as usize;
            for k in 0..=steps {
                let t = k as f64 / steps as f64;
                if dash > 0.0 && ((t * len / dash) as i64) % 2 == 1 {
                    continue;
                }
                let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
                for dy in -r..=r {
                    for dx in -r..=r {
                        if dx * dx + dy * dy <= r * r + r {
                            self.put(x.round() as i64 + dx, y.round() as i64 + dy, c);
                        }
                    }
                }
            }
        }
        fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
            for (k, ch) in s.chars().enumerate() {
                let g = glyph(ch.to_ascii_uppercase());
                for (row, bits) in g.iter().enumerate() {
                    for col in 0..3 {
                        if bits >> (2 - col) & 1 == 1 {
                            for dy in 0..scale {
                                for dx in 0..scale {
                                    self.put(x + (k as i64 * 4 + col) * scale + dx, y + row as i64 * scale + dy, c);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn text_width(s: &str, scale: i64) -> i64 {
        s.chars().count() as i64 * 4 * scale
    }

    /// The figure: axes over [0, 1]², a grid every 0.1, the dashed diagonal, each curve with its
    /// points (and the first curve's band shaded), a legend, tick labels, title and axis labels.
    pub(super) fn coverage_png(title: &str, curves: &[Curve]) -> Result<Vec<u8>, String> {
        let mut cv = Canvas(image::RgbImage::from_pixel(W, H, image::Rgb([255, 255, 255])));
        let (l, t, r, b) = AREA;
        let at = |x: f64, y: f64| (l + x.clamp(0.0, 1.0) * (r - l), b - y.clamp(0.0, 1.0) * (b - t));
        // Band of the first curve: vertical spans between lo and hi, interpolated in x.
        if let Some((_, _, Some(band))) = curves.first() {
            for w in band.windows(2) {
                let (x0, x1) = (at(w[0].0, 0.0).0, at(w[1].0, 0.0).0);
                for px in x0.round() as i64..=x1.round() as i64 {
                    let f = if x1 > x0 { (px as f64 - x0) / (x1 - x0) } else { 0.0 };
                    let lo = w[0].1 + f * (w[1].1 - w[0].1);
                    let hi = w[0].2 + f * (w[1].2 - w[0].2);
                    let (ylo, yhi) = (at(0.0, lo).1, at(0.0, hi).1);
                    for py in yhi.round() as i64..=ylo.round() as i64 {
                        cv.put(px, py, [205, 225, 242]);
                    }
                }
            }
        }
        for k in 0..=10 {
            let v = k as f64 / 10.0;
            let grey = if k % 5 == 0 { [190, 190, 190] } else { [230, 230, 230] };
            cv.line(at(v, 0.0), at(v, 1.0), 0, grey, 0.0);
            cv.line(at(0.0, v), at(1.0, v), 0, grey, 0.0);
            if k % 2 == 0 {
                let label = format!("{v:.1}");
                let (x, y) = at(v, 0.0);
                cv.text(x as i64 - text_width(&label, 2) / 2, y as i64 + 8, &label, 2, [0, 0, 0]);
                let (x, y) = at(0.0, v);
                cv.text(x as i64 - text_width(&label, 2) - 8, y as i64 - 5, &label, 2, [0, 0, 0]);
            }
        }
        for (a, c) in
            [((0.0, 0.0), (1.0, 0.0)), ((0.0, 0.0), (0.0, 1.0)), ((1.0, 0.0), (1.0, 1.0)), ((0.0, 1.0), (1.0, 1.0))]
        {
            cv.line(at(a.0, a.1), at(c.0, c.1), 0, [0, 0, 0], 0.0);
        }
        cv.line(at(0.0, 0.0), at(1.0, 1.0), 1, [110, 110, 110], 8.0);
        for (i, (_, pts, _)) in curves.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            for w in pts.windows(2) {
                cv.line(at(w[0].0, w[0].1), at(w[1].0, w[1].1), 1, c, 0.0);
            }
            for p in pts {
                let (x, y) = at(p.0, p.1);
                for dy in -3..=3 {
                    for dx in -3..=3 {
                        cv.put(x.round() as i64 + dx, y.round() as i64 + dy, c);
                    }
                }
            }
        }
        // Legend, upper left inside the axes.
        let mut entries = vec![("IDEAL (OBSERVED = NOMINAL)".to_string(), [110, 110, 110])];
        entries.extend(curves.iter().enumerate().map(|(i, (n, _, _))| (n.to_uppercase(), COLORS[i % COLORS.len()])));
        for (k, (name, c)) in entries.iter().enumerate() {
            let y = t + 14.0 + 16.0 * k as f64;
            cv.line((l + 12.0, y), (l + 36.0, y), 1, *c, 0.0);
            cv.text(l as i64 + 44, y as i64 - 5, name, 2, [0, 0, 0]);
        }
        cv.text(((l + r) / 2.0) as i64 - text_width(title, 3) / 2, 8, title, 3, [0, 0, 0]);
        let xl = "NOMINAL LEVEL";
        cv.text(((l + r) / 2.0) as i64 - text_width(xl, 2) / 2, H as i64 - 34, xl, 2, [0, 0, 0]);
        cv.text(6, (t - 16.0) as i64, "OBSERVED COVERAGE", 2, [0, 0, 0]);
        let mut bytes = std::io::Cursor::new(Vec::new());
        cv.0.write_to(&mut bytes, image::ImageFormat::Png).map_err(|e| e.to_string())?;
        Ok(bytes.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        // numpy.quantile([1..5], q): position q·4.
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert!((quantile(&v, 0.1) - 1.4).abs() < 1e-12);
        assert!((quantile(&v, 0.975) - 4.9).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
        // 10 values 0..9, level 0.9: q 0.05 → 0.45, q 0.95 → 8.55.
        let v: Vec<f64> = (0..10).rev().map(f64::from).collect();
        let i = central_interval(&v, 0.9, 8.5).unwrap();
        assert!((i.lo - 0.45).abs() < 1e-12 && (i.hi - 8.55).abs() < 1e-12 && i.inside, "{i:?}");
        assert!(!central_interval(&v, 0.9, 0.4).unwrap().inside);
        assert!(central_interval(&[], 0.9, 0.0).is_none());
    }

    #[test]
    fn circular_intervals_centre_on_the_circular_mean() {
        assert!((circular_mean(&[10.0, 30.0]) - 20.0).abs() < 1e-9);
        assert!(
            (circular_mean(&[340.0, 20.0]) - 0.0).abs() < 1e-9 || (circular_mean(&[340.0, 20.0]) - 360.0).abs() < 1e-9
        );
        assert!((circular_mean(&[170.0, 190.0]) - 180.0).abs() < 1e-9);
        // Around 0°: differences −20, −10, 0, 10, 20; level 0.5 → quantiles 0.25, 0.75 → ±10.
        let a = [340.0, 350.0, 0.0, 10.0, 20.0];
        let i = circular_interval(&a, 0.5, 355.0).unwrap();
        assert!((i.lo + 10.0).abs() < 1e-9 && (i.hi - 10.0).abs() < 1e-9 && i.inside, "{i:?}");
        assert!(!circular_interval(&a, 0.5, 15.0).unwrap().inside);
        // A truth across the wrap from the samples is measured the short way round.
        assert!(circular_interval(&a, 0.99, 359.0).unwrap().inside);
        assert!(!circular_interval(&a, 0.99, 180.0).unwrap().inside);
    }

    #[test]
    fn position_angle_is_east_of_north() {
        let n = 5;
        let c = (2.0, 2.0);
        let at = |i: usize, j: usize| {
            let mut img = vec![0.0; n * n];
            img[i * n + j] = 1.0;
            position_angle(&img, n, c)
        };
        // North (row above): 0°; east (column to the left): 90°; south: 180°; west: 270°.
        for ((i, j), want) in [((0, 2), 0.0), ((2, 0), 90.0), ((4, 2), 180.0), ((2, 4), 270.0), ((0, 0), 45.0)] {
            let (pa, r) = at(i, j);
            assert!((pa - want).abs() < 1e-9 && (r - 1.0).abs() < 1e-12, "({i}, {j}): {pa} {r}");
        }
        // A symmetric ring has no direction; the centre pixel is ignored.
        let mut img = vec![0.0; n * n];
        for (i, j) in [(0, 2), (2, 0), (4, 2), (2, 4), (2, 2)] {
            img[i * n + j] = 1.0;
        }
        assert!(position_angle(&img, n, c).1 < 1e-12);
        // A crescent brighter towards position angle 120°: the measured angle is 120°.
        let src = TestSource::Crescent { radius: 20.0, width: 4.0, asymmetry: 0.6, angle_deg: 120.0 };
        let img = src.render(EHT_NPIX, EHT_FOV_UAS, 1.0).unwrap();
        let m = ring_measures(&img).unwrap();
        assert!((m.position_angle - 120.0).abs() < 3.0, "{m:?}");
        assert!((m.diameter - 40.0).abs() < 4.0, "{m:?}");
    }

    #[test]
    fn pixel_coverage_counts_truths_inside_the_interval() {
        // 2 pixels, 5 samples 0..4 in pixel 0 and 10..14 in pixel 1.
        let rows: Vec<Vec<f64>> = (0..5).map(|k| vec![k as f64, 10.0 + k as f64]).collect();
        let samples: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        let mean = mean_of(&samples, 2);
        assert_eq!(mean, [2.0, 12.0]);
        // Level 0.5: [1, 3] and [11, 13]; truth 2.5 inside, 13.5 outside.
        let pm = pixel_measures(&samples, &[2.5, 13.5], &mean, &[0.5, 0.99]);
        assert_eq!(pm.coverage, [0.5, 1.0]);
        // std √2: |13.5 − 12| ≤ 2√2 and |2.5 − 2| too.
        assert_eq!(pm.within_2std, 1.0);
        assert!((pm.std_rel - 2f64.sqrt() / 12.0).abs() < 1e-12);
    }

    #[test]
    fn settings_differences_name_the_first_key() {
        let a = serde_json::json!({"a": 1, "dpi": {"optim": {"steps": 5}}, "levels": [0.5, 0.9]});
        let b = serde_json::json!({"a": 1, "dpi": {"optim": {"steps": 6}}, "levels": [0.5, 0.9]});
        assert_eq!(first_difference(&a, &b).unwrap().0, "dpi.optim.steps");
        let c = serde_json::json!({"a": 1, "dpi": {"optim": {"steps": 5}}, "levels": [0.5]});
        assert_eq!(first_difference(&a, &c).unwrap().0, "levels");
        let d = serde_json::json!({"a": 1, "dpi": {"optim": {"steps": 5}}, "levels": [0.5, 0.95]});
        assert_eq!(first_difference(&a, &d).unwrap(), ("levels.1".into(), "0.9".into(), "0.95".into()));
        let e = serde_json::json!({"dpi": {"optim": {"steps": 5}}, "levels": [0.5, 0.9], "laplace": null});
        assert_eq!(first_difference(&a, &e).unwrap(), ("a".into(), "1".into(), "absent".into()));
        assert_eq!(first_difference(&e, &a).unwrap().0, "a");
    }

    #[test]
    fn denoising_run_zero_is_the_main_job() {
        let s = CalibrationSettings::denoising();
        let d = s.denoising_run(0, Path::new("out/main-dpi"));
        let mut main = DpiSettings::default();
        main.prior.prior = "assets/ncsnpp_fmnist16/ema.safetensors".into();
        main.prior.surrogate = true;
        main.problem.x_true = Some("assets/fashion16_test.npy".into());
        main.output.out = "out/main-dpi".into();
        main.output.quiet = true;
        assert_eq!(d, main);
        assert_eq!(s.denoising_run(3, Path::new("o")).problem.index, 12);
    }

    #[test]
    fn the_png_is_drawn() {
        let curves = vec![("pixels", vec![(0.5, 0.4), (0.9, 0.8)], Some(vec![(0.5, 0.3, 0.5), (0.9, 0.7, 0.9)]))];
        let png = png::coverage_png("TEST", &curves).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
