//! How a DPI run fits its flow `q_θ`: Adam's schedule on `E_q[−log p(y|x) − log p(x) +
//! log q(x)]` ([`OptimOptions`]), the RealNVP family and its start ([`FlowOptions`]), and the
//! weights and ramps of the three terms ([`ObjectiveOptions`]).

use serde::{Deserialize, Serialize};

/// `dpi`: Adam's steps, batch and learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct OptimOptions {
    /// Optimisation steps.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = OptimOptions::default().steps))]
    pub steps: usize,
    /// Samples per step (the reference uses 64; with the DSM surrogate's 4 draws per image, 16
    /// samples already make 80 network passes per step).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = OptimOptions::default().batch))]
    pub batch: usize,
    /// Peak Adam learning rate.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = OptimOptions::default().lr))]
    pub lr: f64,
    /// Linear learning-rate warm-up steps.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = OptimOptions::default().warmup))]
    pub warmup: usize,
    /// Final learning rate as a fraction of --lr (linear decay; 1 = constant).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = OptimOptions::default().lr_final))]
    pub lr_final: f64,
    /// Gradient-norm clip (0 = none).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = OptimOptions::default().clip))]
    pub clip: f64,
}

impl Default for OptimOptions {
    fn default() -> Self {
        Self { steps: 1500, batch: 16, lr: 1e-3, warmup: 100, lr_final: 0.1, clip: 1.0 }
    }
}

/// When DPI starts from the Laplace approximation at the MAP image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum LaplaceMode {
    /// With --forward eht(…) and --map-steps.
    #[default]
    Auto,
    /// Whenever --map-steps is given.
    On,
    /// Never.
    Off,
}

impl LaplaceMode {
    /// Whether a run with (`map`) or without a MAP warm start, on `eht(…)` data or not, uses
    /// the Laplace start: `Auto` with `eht(…)` and a MAP warm start (interferometric
    /// posteriors collapse without it), `On` always (an error without a MAP warm start),
    /// `Off` never (the flow starts isotropic, `N(start, init_scale²·I)`).
    pub fn resolve(self, map: bool, eht: bool) -> bool {
        match self {
            Self::Auto => map && eht,
            Self::On => true,
            Self::Off => false,
        }
    }
}

/// `dpi`: the RealNVP posterior family and where it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct FlowOptions {
    /// Flow steps of the RealNVP (two couplings each).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = FlowOptions::default().flows))]
    pub flows: usize,
    /// Hidden width of the coupling networks (0: max(D/8, 32)).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = FlowOptions::default().hidden))]
    pub hidden: usize,
    /// Initial spread of the flow: it starts as `x = loc + init_scale·z`, with `loc` the mean
    /// pixel of the prior mean (Gaussian priors) or of the naive reconstruction.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = FlowOptions::default().init_scale))]
    pub init_scale: f64,
    /// Initial pixel level of the flow (image units; default: the Gaussian prior's mean level,
    /// else the mean of Aᵀy clamped to [0, 1], else 0.5). With --positive the flow starts at
    /// softplus⁻¹ of it.
    #[cfg_attr(feature = "cli", arg(long))]
    pub init_level: Option<f64>,
    /// Start the flow around this image, `FILE[@INDEX]` (.npy or PNG, same size as the
    /// problem; positive with --positive) instead of a flat level.
    #[cfg_attr(feature = "cli", arg(long, conflicts_with_all = ["init_level", "init_gaussian"]))]
    pub init_image: Option<String>,
    /// With --forward eht(…): start the flow around a centred circular Gaussian of this FWHM
    /// (µas) holding --flux, as eht-imaging starts its imager (its examples use 60 µas).
    #[cfg_attr(feature = "cli", arg(long, conflicts_with = "init_level"))]
    pub init_gaussian: Option<f64>,
    /// MAP warm start: at most this many L-BFGS iterations on the image itself under the same
    /// data and prior terms (from the starting image, jittered), then the flow starts around
    /// the MAP image (`map.npy`, `map_losses.csv`). For closure data at high S/N; 0 = off.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = FlowOptions::default().map_steps))]
    pub map_steps: usize,
    /// Rounds of the MAP warm start; between rounds the image is blurred (with --forward eht(…)
    /// to the array's nominal resolution, else by --map-blur pixels) and L-BFGS restarts.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = FlowOptions::default().map_rounds))]
    pub map_rounds: usize,
    /// FWHM (pixels) of the blur between MAP rounds without eht (0: none).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = FlowOptions::default().map_blur))]
    pub map_blur: f64,
    /// Jitter of the MAP start (standard deviation, in softplus⁻¹ units with --positive).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = FlowOptions::default().map_jitter))]
    pub map_jitter: f64,
    /// Start from the trained flow of a finished run: its output folder (`dpi --out`, or a study's
    /// sub-run), whose flow and map to the image (MAP point, Laplace factor) this run continues
    /// under its own prior and data, with a fresh optimiser. The flow's size is the folder's.
    #[cfg_attr(feature = "cli", arg(long, value_name = "DIR",
        conflicts_with_all = ["init_level", "init_image", "init_gaussian", "map_steps", "init_scale", "flows", "hidden", "batch_norm"]))]
    pub init_flow: Option<String>,
    /// BatchNorm in the coupling networks.
    #[cfg_attr(feature = "cli", arg(long))]
    pub batch_norm: bool,
    /// Start the flow as the Laplace approximation N(MAP, H⁻¹) at the MAP image (H: the
    /// Hessian of the negative log-posterior, by differences of its gradient) instead of
    /// N(start, init_scale²·I): auto = with --forward eht(…) and --map-steps, on = whenever
    /// --map-steps is given, off = never. Without it, interferometric posteriors collapse to a
    /// point (docs/src/black-hole/calibration.md).
    #[cfg_attr(feature = "cli", arg(long, value_enum, default_value_t = FlowOptions::default().laplace))]
    pub laplace: LaplaceMode,
    /// With the Laplace start: the factor on its H^(-1/2) (1: the approximation itself);
    /// replaces --init-scale.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = FlowOptions::default().laplace_scale))]
    pub laplace_scale: f64,
}

impl Default for FlowOptions {
    fn default() -> Self {
        Self {
            flows: 16,
            hidden: 0,
            init_scale: 0.2,
            init_level: None,
            init_image: None,
            init_gaussian: None,
            init_flow: None,
            map_steps: 0,
            map_rounds: 1,
            map_blur: 0.0,
            map_jitter: 0.1,
            batch_norm: false,
            laplace: LaplaceMode::Auto,
            laplace_scale: 1.0,
        }
    }
}

/// The shape of the data weight's ramp from its start to 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum DataRamp {
    /// From 0, linearly.
    #[default]
    Linear,
    /// From `anneal_data_from`, geometrically.
    Geometric,
    /// `1/(1 + e^(−r(k − N)))`.
    Sigmoid,
}

impl std::fmt::Display for DataRamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DataRamp::Linear => "linear",
            DataRamp::Geometric => "geometric",
            DataRamp::Sigmoid => "sigmoid",
        })
    }
}

/// `dpi`: weights and schedules of the loss terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct ObjectiveOptions {
    /// Ramp the data weight from its start to 1 over this many steps (0: no annealing); the
    /// shape is --anneal-data-schedule.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ObjectiveOptions::default().anneal_data))]
    pub anneal_data: usize,
    /// Shape of the data-weight ramp: `linear` (from 0), `geometric` (from
    /// --anneal-data-from, i.e. the DPI reference's `min(10^(−a + k/b), 1)`) or `sigmoid`
    /// (`1/(1 + e^(−r(k − N)))` with N = --anneal-data, r = --anneal-data-rate: the score_prior
    /// reference's, which uses N = 12000, r = 0.002).
    #[cfg_attr(feature = "cli", arg(long, value_enum, hide_possible_values = true,
        default_value_t = ObjectiveOptions::default().anneal_data_schedule))]
    pub anneal_data_schedule: DataRamp,
    /// Start of the geometric data-weight ramp, in (0, 1].
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ObjectiveOptions::default().anneal_data_from))]
    pub anneal_data_from: f64,
    /// Slope of the sigmoid data-weight ramp (> 0).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ObjectiveOptions::default().anneal_data_rate))]
    pub anneal_data_rate: f64,
    /// Target tempering for multimodal posteriors: start the inverse temperature β (which
    /// multiplies both data and prior energies) at this value in (0, 1] and raise it
    /// geometrically to 1 over --temper-steps, so the flow first covers every mode (1: off).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ObjectiveOptions::default().temper_from))]
    pub temper_from: f64,
    /// Length of the tempering ramp in steps (0: half of --steps).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ObjectiveOptions::default().temper_steps))]
    pub temper_steps: usize,
    /// Weight (>= 0) of the score-function gradient term that sets the mass of each posterior
    /// mode (0: off; needs energy values from every term, so it errors on a gradient-only
    /// prior). Costs one inverse pass of the flow per step.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ObjectiveOptions::default().score_function_weight))]
    pub score_function_weight: f64,
    /// Weight of the data term.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ObjectiveOptions::default().w_data))]
    pub w_data: f64,
    /// Weight of the prior term.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ObjectiveOptions::default().w_prior))]
    pub w_prior: f64,
    /// Weight of the entropy term.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = ObjectiveOptions::default().w_entropy))]
    pub w_entropy: f64,
}

impl Default for ObjectiveOptions {
    fn default() -> Self {
        Self {
            anneal_data: 0,
            anneal_data_schedule: DataRamp::Linear,
            anneal_data_from: 1e-3,
            anneal_data_rate: 0.002,
            temper_from: 1.0,
            temper_steps: 0,
            score_function_weight: 0.0,
            w_data: 1.0,
            w_prior: 1.0,
            w_entropy: 1.0,
        }
    }
}
