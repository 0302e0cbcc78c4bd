//! The `dpi` flags of the fit: Adam's schedule, the RealNVP posterior and its start, and the loss
//! terms' weights and schedules; each group maps onto its part of
//! [`scoreprior::experiment::DpiSettings`].

use clap::Args;
use scoreprior::experiment::{FlowOptions, LaplaceMode, ObjectiveOptions, OptimOptions};

/// `dpi`: Adam's steps, batch and learning-rate schedule.
#[derive(Debug, Clone, Args)]
pub struct OptimArgs {
    /// Optimisation steps.
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Samples per step (the reference uses 64; with the DSM surrogate's 4 draws per image, 16
    /// samples already make 80 network passes per step).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Peak Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Linear learning-rate warm-up steps.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// Final learning rate as a fraction of --lr (linear decay; 1 = constant).
    #[arg(long, default_value_t = 0.1)]
    pub lr_final: f64,
    /// Gradient-norm clip (0 = none).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
}

impl OptimArgs {
    /// The library's [`OptimOptions`].
    pub fn options(&self) -> OptimOptions {
        OptimOptions {
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            warmup: self.warmup,
            lr_final: self.lr_final,
            clip: self.clip,
        }
    }
}

/// `dpi`: the RealNVP posterior family and where it starts.
#[derive(Debug, Clone, Args)]
pub struct FlowArgs {
    /// Flow steps of the RealNVP (two couplings each).
    #[arg(long, default_value_t = 16)]
    pub flows: usize,
    /// Hidden width of the coupling networks (0: max(D/8, 32)).
    #[arg(long, default_value_t = 0)]
    pub hidden: usize,
    /// Initial spread of the flow: it starts as `x = loc + init_scale·z`, with `loc` the mean
    /// pixel of the prior mean (Gaussian priors) or of the naive reconstruction.
    #[arg(long, default_value_t = 0.2)]
    pub init_scale: f64,
    /// Initial pixel level of the flow (image units; default: the Gaussian prior's mean level,
    /// else the mean of Aᵀy clamped to [0, 1], else 0.5). With --positive the flow starts at
    /// softplus⁻¹ of it.
    #[arg(long)]
    pub init_level: Option<f64>,
    /// Start the flow around this image, `FILE[@INDEX]` (.npy or PNG, same size as the
    /// problem; positive with --positive) instead of a flat level.
    #[arg(long, conflicts_with_all = ["init_level", "init_gaussian"])]
    pub init_image: Option<String>,
    /// With --forward eht(…): start the flow around a centred circular Gaussian of this FWHM
    /// (µas) holding --flux, as eht-imaging starts its imager (its examples use 60 µas).
    #[arg(long, conflicts_with = "init_level")]
    pub init_gaussian: Option<f64>,
    /// MAP warm start: at most this many L-BFGS iterations on the image itself under the same
    /// data and prior terms (from the starting image, jittered), then the flow starts around
    /// the MAP image (`map.npy`, `map_losses.csv`). For closure data at high S/N; 0 = off.
    #[arg(long, default_value_t = 0)]
    pub map_steps: usize,
    /// Rounds of the MAP warm start; between rounds the image is blurred (with --forward eht(…)
    /// to the array's nominal resolution, else by --map-blur pixels) and L-BFGS restarts.
    #[arg(long, default_value_t = 1)]
    pub map_rounds: usize,
    /// FWHM (pixels) of the blur between MAP rounds without eht (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub map_blur: f64,
    /// Jitter of the MAP start (standard deviation, in softplus⁻¹ units with --positive).
    #[arg(long, default_value_t = 0.1)]
    pub map_jitter: f64,
    /// BatchNorm in the coupling networks.
    #[arg(long)]
    pub batch_norm: bool,
    /// Start the flow as the Laplace approximation N(MAP, H⁻¹) at the MAP image (H: the
    /// Hessian of the negative log-posterior, by differences of its gradient) instead of
    /// N(start, init_scale²·I): auto = with --forward eht(…) and --map-steps, on = whenever
    /// --map-steps is given, off = never. Without it, interferometric posteriors collapse to a
    /// point (docs/calibration.md).
    #[arg(long, value_enum, default_value_t = LaplaceArg::Auto)]
    pub laplace: LaplaceArg,
    /// With the Laplace start: the factor on its H^(-1/2) (1: the approximation itself);
    /// replaces --init-scale.
    #[arg(long, default_value_t = 1.0)]
    pub laplace_scale: f64,
}

/// `--laplace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LaplaceArg {
    /// With --forward eht(…) and --map-steps.
    Auto,
    /// Whenever --map-steps is given.
    On,
    /// Never.
    Off,
}

impl FlowArgs {
    /// The library's [`FlowOptions`].
    pub fn options(&self) -> FlowOptions {
        FlowOptions {
            flows: self.flows,
            hidden: self.hidden,
            init_scale: self.init_scale,
            init_level: self.init_level,
            init_image: self.init_image.clone(),
            init_gaussian: self.init_gaussian,
            map_steps: self.map_steps,
            map_rounds: self.map_rounds,
            map_blur: self.map_blur,
            map_jitter: self.map_jitter,
            batch_norm: self.batch_norm,
            laplace: match self.laplace {
                LaplaceArg::Auto => LaplaceMode::Auto,
                LaplaceArg::On => LaplaceMode::On,
                LaplaceArg::Off => LaplaceMode::Off,
            },
            laplace_scale: self.laplace_scale,
        }
    }
}

/// `dpi`: weights and schedules of the loss terms.
#[derive(Debug, Clone, Args)]
pub struct ObjectiveArgs {
    /// Ramp the data weight from its start to 1 over this many steps (0: no annealing); the
    /// shape is --anneal-data-schedule.
    #[arg(long, default_value_t = 0)]
    pub anneal_data: usize,
    /// Shape of the data-weight ramp: `linear` (from 0), `geometric` (from
    /// --anneal-data-from, i.e. the DPI reference's `min(10^(−a + k/b), 1)`) or `sigmoid`
    /// (`1/(1 + e^(−r(k − N)))` with N = --anneal-data, r = --anneal-data-rate: the score_prior
    /// reference's, which uses N = 12000, r = 0.002).
    #[arg(long, default_value = "linear")]
    pub anneal_data_schedule: String,
    /// Start of the geometric data-weight ramp, in (0, 1].
    #[arg(long, default_value_t = 1e-3)]
    pub anneal_data_from: f64,
    /// Slope of the sigmoid data-weight ramp (> 0).
    #[arg(long, default_value_t = 0.002)]
    pub anneal_data_rate: f64,
    /// Target tempering for multimodal posteriors: start the inverse temperature β (which
    /// multiplies both data and prior energies) at this value in (0, 1] and raise it
    /// geometrically to 1 over --temper-steps, so the flow first covers every mode (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub temper_from: f64,
    /// Length of the tempering ramp in steps (0: half of --steps).
    #[arg(long, default_value_t = 0)]
    pub temper_steps: usize,
    /// Weight (>= 0) of the score-function gradient term that sets the mass of each posterior
    /// mode (0: off; needs energy values from every term, so it errors on a gradient-only
    /// prior). Costs one inverse pass of the flow per step.
    #[arg(long, default_value_t = 0.0)]
    pub score_function_weight: f64,
    /// Weight of the data term.
    #[arg(long, default_value_t = 1.0)]
    pub w_data: f64,
    /// Weight of the prior term.
    #[arg(long, default_value_t = 1.0)]
    pub w_prior: f64,
    /// Weight of the entropy term.
    #[arg(long, default_value_t = 1.0)]
    pub w_entropy: f64,
}

impl ObjectiveArgs {
    /// The library's [`ObjectiveOptions`].
    pub fn options(&self) -> ObjectiveOptions {
        ObjectiveOptions {
            anneal_data: self.anneal_data,
            anneal_data_schedule: self.anneal_data_schedule.clone(),
            anneal_data_from: self.anneal_data_from,
            anneal_data_rate: self.anneal_data_rate,
            temper_from: self.temper_from,
            temper_steps: self.temper_steps,
            score_function_weight: self.score_function_weight,
            w_data: self.w_data,
            w_prior: self.w_prior,
            w_entropy: self.w_entropy,
        }
    }
}
