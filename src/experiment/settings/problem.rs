//! The measurement of a DPI run, `y = A(x) + n`: the forward model `A` and the noise `n`
//! (or an interferometer's closures of its noisy visibilities, [`EhtData`]), where `y`
//! comes from (read, or simulated from a truth), and the constraints on the image
//! (positivity, total flux).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// With `eht(…)`: which data the image is fitted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum EhtData {
    /// Closure phases and (debiased) log closure amplitudes of the noisy visibilities.
    #[default]
    #[serde(rename = "closures")]
    #[cfg_attr(feature = "cli", value(name = "closures"))]
    Closures,
    /// The closures and each visibility's log amplitude over its scan's zero baseline's.
    #[serde(rename = "closures+amplitudes")]
    #[cfg_attr(feature = "cli", value(name = "closures+amplitudes"))]
    ClosuresAndAmplitudes,
    /// The complex visibilities.
    #[serde(rename = "visibilities")]
    #[cfg_attr(feature = "cli", value(name = "visibilities"))]
    Visibilities,
}

impl EhtData {
    /// Its name, as written in run descriptions and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EhtData::Closures => "closures",
            EhtData::ClosuresAndAmplitudes => "closures+amplitudes",
            EhtData::Visibilities => "visibilities",
        }
    }
}

impl std::fmt::Display for EhtData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `dpi`: the forward model, the data, constraints on the image and the measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct ProblemOptions {
    /// Forward model: `denoising` or a chain of primitives such as
    /// `gaussian_blur(sigma=1.5, size=9) | subsample(factor=2)`.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ProblemOptions::default().forward))]
    pub forward: String,
    /// Measurement noise (default gaussian(sigma=0.2)); an error with `eht`, whose noise is
    /// each visibility's thermal σ (the radiometer equation of its baseline, or the σ of an
    /// observation file).
    #[cfg_attr(feature = "cli", arg(long))]
    pub noise: Option<String>,
    /// With `--forward eht(…)`: the data imaged, `closures` (closure phases and debiased log
    /// closure amplitudes of the noisy visibilities), `closures+amplitudes` (and each
    /// visibility's log amplitude over the zero baseline's of its scan, σ with the stations'
    /// error budget: normalised amplitudes, which fix the source's size) or `visibilities`
    /// (complex visibilities).
    /// With --y, the file holds the noisy visibilities `[Re V; Im V]` (`measure`'s y.npy).
    #[cfg_attr(feature = "cli", arg(long, value_enum, hide_possible_values = true,
        default_value_t = ProblemOptions::default().data))]
    pub data: EhtData,
    /// With `--data closures`: keep the log closure amplitudes as measured (no debiasing).
    #[cfg_attr(feature = "cli", arg(long))]
    pub no_debias: bool,
    /// Positive images: the flow's output goes through softplus (with its log-determinant);
    /// --init-scale then is the spread before the softplus.
    #[cfg_attr(feature = "cli", arg(long))]
    pub positive: bool,
    /// Weight W ≥ 0 of the total-flux constraint W(Σx − F)², added to the prior term (0: off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ProblemOptions::default().flux_weight))]
    pub flux_weight: f64,
    /// Target total flux F (image units, e.g. Σx of the prior's training images) of --flux-weight.
    #[cfg_attr(feature = "cli", arg(long))]
    pub flux: Option<f64>,
    /// Measurement (.npy of length M); alternative to --x-true.
    #[cfg_attr(feature = "cli", arg(long))]
    pub y: Option<PathBuf>,
    /// Ground-truth image (.npy (H, W) or (N, H, W) with --index, or PNG): y is simulated
    /// (with `eht(obs=FILE)` the data are the file's own visibilities, and the truth serves
    /// only the metrics; neither --y nor --x-true is then needed).
    #[cfg_attr(feature = "cli", arg(long))]
    pub x_true: Option<PathBuf>,
    /// Which image of a batch given to --x-true.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ProblemOptions::default().index))]
    pub index: usize,
    /// Image height and width when only --y is given (default: the prior's own shape, e.g.
    /// 16×16 for a 256-dimensional prior, 1×2 for a 2-D one).
    #[cfg_attr(feature = "cli", arg(long))]
    pub size: Option<usize>,
}

impl ProblemOptions {
    /// The noise of forward models other than `eht(…)` when `noise` is not given.
    pub const DEFAULT_NOISE: &'static str = "gaussian(sigma=0.2)";

    /// The measurement noise: `noise`, or [`DEFAULT_NOISE`](Self::DEFAULT_NOISE).
    pub fn noise_or_default(&self) -> &str {
        self.noise.as_deref().unwrap_or(Self::DEFAULT_NOISE)
    }

    /// Whether the forward model is the interferometer `eht(…)`.
    pub fn is_eht(&self) -> bool {
        scoreprior_core::forward::PrimitiveSpec::parse(&self.forward).is_ok_and(|s| s.name == "eht")
    }
}

impl Default for ProblemOptions {
    fn default() -> Self {
        Self {
            forward: "denoising".into(),
            noise: None,
            data: EhtData::Closures,
            no_debias: false,
            positive: false,
            flux_weight: 0.0,
            flux: None,
            y: None,
            x_true: None,
            index: 0,
            size: None,
        }
    }
}
