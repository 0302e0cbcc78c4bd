//! A `scoreprior dpi` run as plain data: [`DpiSettings`] holds every setting of the command,
//! grouped as its `--help` groups them and named as its flags (`x_true` is `--x-true`), with
//! the command's defaults; [`DpiSettings::build`] checks them and builds the [`Experiment`],
//! [`DpiSettings::run`] also takes the output folder, trains, samples and writes the results.
//!
//! [`Experiment`]: super::Experiment

use std::path::{Path, PathBuf};

use scoreprior_core::io::RunManifest;
use serde::{Deserialize, Serialize};

use super::inputs::resolve;
use super::Result;

/// Everything that defines a `scoreprior dpi` run (the command line maps its flags onto it).
///
/// ```
/// use scoreprior::experiment::DpiSettings;
///
/// let mut s = DpiSettings::default();
/// s.problem.x_true = Some("assets/fashion16_test.npy".into());
/// s.prior.prior = "gaussian".into();
/// s.optim.steps = 5;
/// let (experiment, _prior_file) = s.build().unwrap();
/// assert_eq!(experiment.y().len(), 256);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DpiSettings {
    /// The prior `p(x)` and how its log-density is estimated.
    pub prior: PriorOptions,
    /// The measurement: forward model, noise, data, truth or `y`, constraints on the image.
    pub problem: ProblemOptions,
    /// Adam's schedule.
    pub optim: OptimOptions,
    /// The RealNVP posterior family, its starting point and the MAP warm start.
    pub flow: FlowOptions,
    /// Weights and schedules of the loss terms.
    pub objective: ObjectiveOptions,
    /// Samples, checkpoints and the output folder.
    pub output: OutputOptions,
    /// Seed of the measurement noise, the flow and the optimisation (`--seed`).
    pub seed: u64,
}

/// The prior: `gaussian-ode`, `gaussian`, `tv`, `flow:FILE` or an NCSN++ checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PriorOptions {
    /// `gaussian-ode` (the Gaussian's analytic score through the PF-ODE), `gaussian` (its
    /// closed form), `tv`, `flow:FILE` (a saved RealNVP) or an NCSN++ checkpoint file.
    pub prior: String,
    /// Mean of the Gaussian priors (.npy).
    pub mean: PathBuf,
    /// Covariance of the Gaussian priors (.npy, D×D).
    pub cov: PathBuf,
    /// Hutchinson probes of the score-based prior; 0 for the exact trace.
    pub probes: usize,
    /// ODE solver of both solves (forward and adjoint).
    pub solver: String,
    /// Relative tolerance of both solves.
    pub rtol: f64,
    /// Absolute tolerance of both solves.
    pub atol: f64,
    /// PF-ODE priors: how the adjoint solve steps, `grid` (one backward step per forward
    /// step, [`AdjointSteps::ForwardGrid`](scoreprior_core::prior::AdjointSteps)) or
    /// `adaptive` (its own PID control at `rtol`/`atol`).
    pub adjoint_steps: String,
    /// Score priors: the denoising-score-matching bound instead of the PF-ODE.
    pub surrogate: bool,
    /// Score priors: the final lower time limit (`ε` of the DSM bound, `t0` of the PF-ODE).
    pub time_floor: f64,
    /// Start of the noise-level continuation of the time floor (0: off).
    pub time_floor_from: f64,
    /// Length of the continuation in steps (0: half of the steps).
    pub time_floor_steps: usize,
    /// DSM surrogate: time draws per image per step.
    pub dsm_draws: usize,
    /// DSM surrogate: `g2`, `log-uniform` or `uniform` density of the time draws.
    pub dsm_time_density: String,
    /// DSM surrogate: stratified time draws.
    pub dsm_stratified: bool,
    /// DSM surrogate: antithetic noise pairs (needs an even `dsm_draws`).
    pub dsm_antithetic: bool,
    /// Weight of the TV prior.
    pub tv_weight: f64,
}

impl Default for PriorOptions {
    fn default() -> Self {
        Self {
            prior: "gaussian-ode".into(),
            mean: "assets/gaussian16/mean.npy".into(),
            cov: "assets/gaussian16/cov.npy".into(),
            probes: 16,
            solver: "dopri5".into(),
            rtol: 1e-3,
            atol: 1e-5,
            adjoint_steps: "grid".into(),
            surrogate: false,
            time_floor: 1e-3,
            time_floor_from: 0.1,
            time_floor_steps: 0,
            dsm_draws: 4,
            dsm_time_density: "log-uniform".into(),
            dsm_stratified: true,
            dsm_antithetic: true,
            tv_weight: 1.0,
        }
    }
}

/// The measurement and the constraints on the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProblemOptions {
    /// Forward model: `denoising`, a preset, a chain of primitives or `eht(…)`.
    pub forward: String,
    /// Measurement noise (not used by `eht`).
    pub noise: String,
    /// With `eht(…)`: `closures` or `visibilities`.
    pub data: String,
    /// With closures: keep the log closure amplitudes as measured.
    pub no_debias: bool,
    /// Positive images (softplus output of the flow).
    pub positive: bool,
    /// Weight of the total-flux constraint `W(Σx − F)²` (0: off).
    pub flux_weight: f64,
    /// Target total flux `F`.
    pub flux: Option<f64>,
    /// Measurement file (.npy); exactly one of `y` and `x_true`.
    pub y: Option<PathBuf>,
    /// Ground-truth image (.npy or PNG) from which `y` is simulated.
    pub x_true: Option<PathBuf>,
    /// Which image of a batch in `x_true`.
    pub index: usize,
    /// Image side when only `y` is given (default: the prior's).
    pub size: Option<usize>,
}

impl Default for ProblemOptions {
    fn default() -> Self {
        Self {
            forward: "denoising".into(),
            noise: "gaussian(sigma=0.2)".into(),
            data: "closures".into(),
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

/// Adam's steps, batch and learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OptimOptions {
    /// Optimisation steps.
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: usize,
    /// Final learning rate as a fraction of `lr`.
    pub lr_final: f64,
    /// Gradient-norm clip (0: none).
    pub clip: f64,
}

impl Default for OptimOptions {
    fn default() -> Self {
        Self { steps: 1500, batch: 16, lr: 1e-3, warmup: 100, lr_final: 0.1, clip: 1.0 }
    }
}

/// The RealNVP posterior family and where it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowOptions {
    /// Flow steps (two couplings each).
    pub flows: usize,
    /// Hidden width of the coupling networks (0: `max(D/8, 32)`).
    pub hidden: usize,
    /// Initial spread of the flow.
    pub init_scale: f64,
    /// Initial pixel level (image units).
    pub init_level: Option<f64>,
    /// Starting image, `FILE[@INDEX]`.
    pub init_image: Option<String>,
    /// With `eht(…)`: starting Gaussian of this FWHM (µas) holding `flux`.
    pub init_gaussian: Option<f64>,
    /// MAP warm start: L-BFGS iterations per round (0: off).
    pub map_steps: usize,
    /// MAP warm start: rounds.
    pub map_rounds: usize,
    /// MAP warm start: blur (pixels FWHM) between rounds without `eht`.
    pub map_blur: f64,
    /// MAP warm start: jitter of the start.
    pub map_jitter: f64,
    /// BatchNorm in the coupling networks.
    pub batch_norm: bool,
    /// Start the flow as the Laplace approximation at the MAP image
    /// ([`PosteriorSettings::laplace`](super::PosteriorSettings::laplace)).
    pub laplace: LaplaceMode,
    /// With the Laplace start: the factor on its `H^{-1/2}` (1: the approximation itself).
    pub laplace_scale: f64,
}

/// When DPI starts from the Laplace approximation at the MAP image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaplaceMode {
    /// With `eht(…)` and a MAP warm start (interferometric posteriors collapse without it).
    #[default]
    Auto,
    /// Whenever there is a MAP warm start (`map_steps > 0`, else an error).
    On,
    /// Never: the flow starts isotropic, `N(start, init_scale²·I)`.
    Off,
}

impl LaplaceMode {
    /// Whether a run with (`map`) or without a MAP warm start, on `eht(…)` data or not, uses
    /// the Laplace start.
    pub fn resolve(self, map: bool, eht: bool) -> bool {
        match self {
            Self::Auto => map && eht,
            Self::On => true,
            Self::Off => false,
        }
    }
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

/// Weights and schedules of the loss terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectiveOptions {
    /// Steps of the data-weight ramp (0: none).
    pub anneal_data: usize,
    /// `linear`, `geometric` or `sigmoid`.
    pub anneal_data_schedule: String,
    /// Start of the geometric ramp.
    pub anneal_data_from: f64,
    /// Slope of the sigmoid ramp.
    pub anneal_data_rate: f64,
    /// Starting inverse temperature of target tempering (1: off).
    pub temper_from: f64,
    /// Length of the tempering ramp (0: half of the steps).
    pub temper_steps: usize,
    /// Weight of the score-function gradient term (0: off).
    pub score_function_weight: f64,
    /// Weight of the data term.
    pub w_data: f64,
    /// Weight of the prior term.
    pub w_prior: f64,
    /// Weight of the entropy term.
    pub w_entropy: f64,
}

impl Default for ObjectiveOptions {
    fn default() -> Self {
        Self {
            anneal_data: 0,
            anneal_data_schedule: "linear".into(),
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

/// What is drawn and written, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputOptions {
    /// Posterior samples drawn after training.
    pub samples: usize,
    /// Drop samples with any |pixel| above this.
    pub outlier: f64,
    /// Checkpoint every this many steps.
    pub checkpoint_every: usize,
    /// Resume from the folder's checkpoint if present.
    pub resume: bool,
    /// Move a previous run in the folder aside and start over.
    pub force: bool,
    /// No progress and no summary (notes of moved or removed files still).
    pub quiet: bool,
    /// Output folder.
    pub out: PathBuf,
}

impl Default for OutputOptions {
    fn default() -> Self {
        Self {
            samples: 128,
            outlier: 2.0,
            checkpoint_every: 100,
            resume: false,
            force: false,
            quiet: false,
            out: PathBuf::new(),
        }
    }
}

impl DpiSettings {
    /// What defines the run (compared on resume): data, forward model, prior, estimator, flow
    /// and optimiser, and the input files by content (`prior_file`, the resolved prior path
    /// [`build`](DpiSettings::build) returns, is hashed when it is a file). The steps (a resume
    /// may extend a run), samples, outlier threshold, checkpoint cadence and `quiet` may change
    /// between a run and its resume.
    ///
    /// ```no_run
    /// use scoreprior::experiment::DpiSettings;
    ///
    /// let s = DpiSettings::default();
    /// let (_, prior_file) = s.build()?;
    /// let manifest = s.manifest(&prior_file)?;
    /// assert_eq!(manifest.command, "dpi");
    /// # Ok::<(), scoreprior::experiment::ExperimentError>(())
    /// ```
    ///
    /// # Errors
    /// An input file cannot be read (for its hash).
    pub fn manifest(&self, prior_file: &Path) -> Result<RunManifest> {
        let (p, m, o, f, j) = (&self.prior, &self.problem, &self.optim, &self.flow, &self.objective);
        let mut config = serde_json::json!({
            "prior": p.prior, "surrogate": p.surrogate, "probes": p.probes, "solver": p.solver,
            "rtol": p.rtol, "atol": p.atol, "time_floor": p.time_floor,
            "time_floor_from": p.time_floor_from, "time_floor_steps": p.time_floor_steps,
            "dsm_draws": p.dsm_draws, "dsm_time_density": p.dsm_time_density,
            "dsm_stratified": p.dsm_stratified, "dsm_antithetic": p.dsm_antithetic,
            "tv_weight": p.tv_weight, "forward": m.forward, "noise": m.noise, "index": m.index,
            "size": m.size, "batch": o.batch, "lr": o.lr, "warmup": o.warmup, "lr_final": o.lr_final,
            "clip": o.clip, "flows": f.flows, "hidden": f.hidden, "init_scale": f.init_scale,
            "batch_norm": f.batch_norm, "anneal_data": j.anneal_data, "temper_from": j.temper_from,
            "temper_steps": j.temper_steps, "score_function_weight": j.score_function_weight,
            "w_data": j.w_data, "w_prior": j.w_prior, "w_entropy": j.w_entropy,
        });
        // The adjoint rule only matters to the PF-ODE priors; recorded only for them, so that
        // the runs of other priors written before the flag existed still resume.
        if !p.surrogate && !matches!(p.prior.as_str(), "gaussian" | "tv") && !p.prior.starts_with("flow:") {
            config["adjoint_steps"] = serde_json::json!(p.adjoint_steps);
        }
        let extra = serde_json::json!({
            "data": m.data, "no_debias": m.no_debias, "positive": m.positive,
            "flux_weight": m.flux_weight, "flux": m.flux, "anneal_data_schedule": j.anneal_data_schedule,
            "anneal_data_from": j.anneal_data_from, "anneal_data_rate": j.anneal_data_rate,
            "init_level": f.init_level, "init_image": f.init_image, "init_gaussian": f.init_gaussian,
            "map_steps": f.map_steps, "map_jitter": f.map_jitter, "map_rounds": f.map_rounds,
            "map_blur": f.map_blur,
        });
        if let (Some(c), serde_json::Value::Object(e)) = (config.as_object_mut(), extra) {
            c.extend(e);
        }
        // Recorded only when on, so that runs from before the Laplace start still resume.
        let eht = scoreprior_core::forward::PrimitiveSpec::parse(&m.forward).is_ok_and(|s| s.name == "eht");
        if f.laplace.resolve(f.map_steps > 0, eht) {
            config["laplace"] = serde_json::json!(true);
            config["laplace_scale"] = serde_json::json!(f.laplace_scale);
        }
        let mut manifest = RunManifest::new("dpi", config).with_seed(self.seed);
        for (flag, path) in [("--x-true", &m.x_true), ("--y", &m.y)] {
            if let Some(path) = path {
                manifest = manifest.with_input(flag, &resolve(path))?;
            }
        }
        // The files the forward model reads (`matrix(file=…)`, `eht(obs=…)`): a resume must see
        // the same operator and observation, not only the same file names.
        for (k, file) in super::run_folder::forward_files(&m.forward).into_iter().enumerate() {
            let flag = if k == 0 { "--forward".to_string() } else { format!("--forward ({})", k + 1) };
            manifest = manifest.with_input(&flag, &resolve(&file))?;
        }
        if matches!(p.prior.as_str(), "gaussian" | "gaussian-ode") {
            manifest = manifest.with_input("--mean", &resolve(&p.mean))?.with_input("--cov", &resolve(&p.cov))?;
        } else if let Some(file) = p.prior.strip_prefix("flow:") {
            manifest = manifest.with_input("--prior", &resolve(Path::new(file)))?;
        } else if prior_file.is_file() {
            manifest = manifest.with_input("--prior", prior_file)?;
        }
        Ok(manifest)
    }
}
