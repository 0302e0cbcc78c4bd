//! A DPI experiment as one library value: a measurement `y = A(x) + n` (read, or simulated
//! from a ground truth and a seed), a prior `p(x)`, a RealNVP posterior family `q_θ`, and the
//! optimisation of `E_q[−log p(y|x) − log p(x) + log q(x)]` (see [`scoreprior_core::dpi`]).
//!
//! [`Experiment::builder`] takes the forward model; the builder's defaults are the CLI's
//! (`scoreprior dpi`), [`ExperimentBuilder::build`] checks everything before any work, and
//! [`Experiment::run`] trains, samples and measures, returning an [`ExperimentResult`] that
//! [`ExperimentResult::save`] writes to a folder. [`DpiSettings`] is the same run as plain
//! data, setting for setting the `dpi` command's flags (which are argument mapping onto it).
//!
//! ```
//! use scoreprior::prelude::*;
//!
//! #[forward_model(input = [1, 4, 4], ops = [identity], noise = gaussian(sigma = 0.3))]
//! struct Denoise;
//!
//! let truth = vec![0.5; 16];
//! let prior = Gaussian::diagonal(vec![0.5; 16], &[0.04; 16], AnySde::Vp(VpSde::default())).unwrap();
//! let result = Experiment::builder(Denoise)
//!     .truth(truth, 4, 4)
//!     .prior(Prior::gaussian(prior))
//!     .steps(150)
//!     .batch(32)
//!     .samples(64)
//!     .build()
//!     .unwrap()
//!     .run()
//!     .unwrap();
//! // The closed-form posterior of a Gaussian prior is the yardstick.
//! let cf = result.report.closed_form.unwrap();
//! assert!(cf.mean_rmse < 0.1, "{cf:?}");
//! ```

mod baseline_run;
mod build;
pub mod eht;
pub mod eht_image;
pub mod inputs;
mod prior;
mod result;
pub mod run_folder;
mod settings;

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::dpi::{draw_samples, run_dpi, summarize_samples, DpiConfig, LikelihoodEnergy, StepRecord};
use scoreprior_core::forward::{ForwardModel, InputShape};
use scoreprior_core::limits::check_elems;
use scoreprior_core::score::Gaussian;
use scoreprior_models::realnvp::{RealNvp, RealNvpConfig};

pub use baseline_run::{noise_level, BaselineOptions};
pub use prior::{DsmSettings, Prior, ShapedPrior};
pub use settings::{
    DpiSettings, FlowOptions, LaplaceMode, ObjectiveOptions, OptimOptions, OutputOptions, PriorOptions, ProblemOptions,
};
mod laplace;
mod map;
pub use laplace::LaplaceStart;
pub use result::{summary_table, ClosedFormErrors, DenoisingReferences, ExperimentResult, Report};
pub use scoreprior_core::dpi::{Annealing, LossWeights, TimeFloorSchedule};

/// Errors of an experiment: a setting out of range (named), or an error of the crates below.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// A setting of the experiment is out of range; `field` names it.
    #[error("{field}: {why}")]
    Invalid {
        /// The builder method (or configuration field) at fault.
        field: &'static str,
        /// What is wrong with its value.
        why: String,
    },
    /// An error of `scoreprior-core` (solvers, forward models, DPI loop, i/o).
    #[error(transparent)]
    Core(#[from] scoreprior_core::Error),
    /// An error of `scoreprior-models` (networks, flows, checkpoints).
    #[error(transparent)]
    Model(#[from] scoreprior_models::ModelError),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] scoreprior_core::io::IoError),
    /// A figure could not be written.
    #[error("plot: {0}")]
    Plot(String),
    /// An output folder cannot be used (taken by another run, holding a different run); the
    /// message names the flag and the folder.
    #[error(transparent)]
    Path(#[from] scoreprior_core::io::PathError),
    /// A run described by [`DpiSettings`] is inconsistent or names an unusable file; the
    /// message names each setting by its `scoreprior dpi` flag (`--x-true`, `--prior`, …).
    #[error("{0}")]
    Settings(String),
}

/// `Result` with [`ExperimentError`].
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;

fn invalid(field: &'static str, why: impl Into<String>) -> ExperimentError {
    ExperimentError::Invalid { field, why: why.into() }
}

/// [`ExperimentError::Invalid`] for the studies built on experiments.
pub(crate) fn invalid_setting(field: &'static str, why: impl Into<String>) -> ExperimentError {
    invalid(field, why)
}

/// The measurement: read, or simulated from the truth with a seed.
#[derive(Debug, Clone)]
enum Observation {
    Truth(Vec<f64>),
    Measured(Vec<f64>),
    Both(Vec<f64>, Vec<f64>),
}

/// The posterior family: a RealNVP flow and its initial affine output layer.
#[derive(Debug, Clone, PartialEq)]
pub struct PosteriorSettings {
    /// Affine-coupling blocks (the reference: 16 at 16×16... 32 at 64×64).
    pub flows: usize,
    /// Hidden width of the coupling networks; 0: `max(D/8, 32)`.
    pub hidden: usize,
    /// Batch normalisation between blocks (the reference has it; off by default here, as
    /// it makes `log q` depend on the batch).
    pub batch_norm: bool,
    /// Initial output scale of the flow (the identity flow maps N(0, I) to `loc + scale·z`).
    pub init_scale: f64,
    /// Initial output location; `None`: the Gaussian prior's mean level, else the mean of
    /// `Aᵀy` clamped to [0, 1], else 0.5.
    pub init_loc: Option<f64>,
    /// Positive images: the flow's output `u` goes through `x = softplus(u)` (with its
    /// log-determinant, [`scoreprior_core::dpi::SoftplusPosterior`]). `init_loc` and
    /// `init_scale` then describe `u`; `init_loc: None` starts `u` at `softplus⁻¹` of the
    /// level above (at least 1e-3).
    pub positive: bool,
    /// A starting image (`D` values; positive with `positive`): the flow's output is moved by
    /// it ([`scoreprior_core::dpi::ShiftedPosterior`], in `u = softplus⁻¹(x)` with
    /// `positive`), so sampling starts around this image instead of a flat level, as
    /// eht-imaging starts from a Gaussian. `init_loc` is then the offset from it (default 0).
    /// The trained flow is not kept as a density when this is set.
    pub init_image: Option<Vec<f64>>,
    /// Before DPI, find the MAP image under the same data and prior energies from the
    /// starting image (L-BFGS, with a stochastic prior's draws fixed so that the objective is
    /// deterministic) and start the flow around it instead. For data terms that begin orders of magnitude
    /// above their optimum (closure quantities at high S/N). Written to `map.npy` and reused
    /// on resume.
    pub map_warm_start: Option<MapWarmStart>,
    /// With a MAP warm start: start the flow as the Laplace approximation `N(MAP, H⁻¹)` of the
    /// posterior (in the flow's variables), `H` the Hessian of the negative log-posterior at the
    /// MAP, instead of `N(MAP, init_scale²·I)`; `init_scale` then multiplies `H^{-1/2}` (1: the
    /// Laplace approximation itself). Why: on interferometric data the posterior's covariance
    /// spans many decades along Fourier directions, which a flow of pixel-wise couplings started
    /// isotropic does not learn; it collapses to a point instead (`docs/calibration.md`).
    pub laplace: Option<LaplaceStart>,
}

/// Settings of the MAP warm start ([`PosteriorSettings::map_warm_start`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapWarmStart {
    /// L-BFGS iterations at most, per round.
    pub iterations: usize,
    /// Rounds: after each, the image is blurred (`blur_px`) and L-BFGS restarts from it, as
    /// eht-imaging's blur-and-reimage rounds: the restart forgets fine-scale structure that
    /// holds the closure-phase terms in a local minimum (a simulated ring under a TV prior:
    /// objective 1.1e7 after one round of 300 iterations, 6.1e4 after five).
    pub rounds: usize,
    /// FWHM (pixels) of the circular Gaussian blur between rounds (0: none; for EHT data the
    /// nominal resolution).
    pub blur_px: f64,
    /// L-BFGS memory (pairs kept).
    pub memory: usize,
    /// Standard deviation of the Gaussian jitter added to the start in the optimised
    /// variables (`u = softplus⁻¹(x)` for positive images, so a relative jitter there): a
    /// centred, symmetric start is a critical point of the closure-phase terms (every model
    /// closure phase is 0 and its gradient vanishes), which the jitter breaks.
    pub jitter: f64,
}

impl Default for MapWarmStart {
    fn default() -> Self {
        Self { iterations: 300, rounds: 1, blur_px: 0.0, memory: 10, jitter: 0.1 }
    }
}

impl Default for PosteriorSettings {
    fn default() -> Self {
        Self {
            flows: 16,
            hidden: 0,
            batch_norm: false,
            init_scale: 0.2,
            init_loc: None,
            positive: false,
            map_warm_start: None,
            init_image: None,
            laplace: None,
        }
    }
}

/// Noise-level continuation of a score-based prior: its lower time limit falls geometrically
/// from `from` to the prior's own floor over `steps` steps (0: half the run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Continuation {
    /// Starting time floor (`ε` of the DSM bound, `t0` of the PF-ODE prior).
    pub from: f64,
    /// Steps of the descent; 0 for half of [`DpiConfig::steps`].
    pub steps: usize,
}

impl Default for Continuation {
    /// From 0.1 over half the run (the main job's schedule).
    fn default() -> Self {
        Self { from: 0.1, steps: 0 }
    }
}

/// Builds an [`Experiment`]; every setting has the CLI's default.
pub struct ExperimentBuilder<F> {
    forward: F,
    forward_label: String,
    observation: Option<Observation>,
    size: Option<(usize, usize)>,
    prior: Option<Prior>,
    wiener_reference: Option<Gaussian>,
    posterior: PosteriorSettings,
    dpi: DpiConfig,
    continuation: Option<Continuation>,
    samples: usize,
    outlier: f64,
    channels: usize,
    flux: Option<(f64, f64)>,
}

impl<F: ForwardModel> ExperimentBuilder<F> {
    /// Adds the total-flux constraint `weight·(Σx − target)²` to the prior term (so it is
    /// weighted and tempered with it), as the reference interferometry code does; `weight ≥ 0`,
    /// `target > 0`, checked by `build`.
    pub fn flux_constraint(mut self, weight: f64, target: f64) -> Self {
        self.flux = Some((weight, target));
        self
    }
    /// The ground truth (row-major `H×W` gray image); `y` is simulated from it with the seed.
    pub fn truth(mut self, x: Vec<f64>, h: usize, w: usize) -> Self {
        self.observation = Some(Observation::Truth(x));
        self.size = Some((h, w));
        self
    }
    /// A measurement `y` already simulated from the known truth `x` (e.g. closure quantities
    /// of noisy visibilities, which the closure model's own noise does not simulate): `y` is
    /// used as given and `x` only for the metrics.
    pub fn truth_with_measurement(mut self, x: Vec<f64>, y: Vec<f64>, h: usize, w: usize) -> Self {
        self.observation = Some(Observation::Both(x, y));
        self.size = Some((h, w));
        self
    }
    /// The ground truth for an experiment whose image size is known
    /// ([`Experiment::typed`]); the size is checked when building.
    pub fn with_truth(mut self, x: Vec<f64>) -> Self {
        self.observation = Some(Observation::Truth(x));
        self
    }
    /// A measured `y` for an experiment whose image size is known ([`Experiment::typed`]).
    pub fn with_measurement(mut self, y: Vec<f64>) -> Self {
        self.observation = Some(Observation::Measured(y));
        self
    }
    /// A measured `y` of images of `H×W` pixels (no ground truth: no metrics).
    pub fn measurement(mut self, y: Vec<f64>, h: usize, w: usize) -> Self {
        self.observation = Some(Observation::Measured(y));
        self.size = Some((h, w));
        self
    }
    /// The prior.
    pub fn prior(mut self, prior: Prior) -> Self {
        self.prior = Some(prior);
        self
    }
    /// A Gaussian whose posterior mean (the Wiener filter) is reported next to DPI's for
    /// denoising (set automatically by [`Prior::gaussian`] and [`Prior::gaussian_ode`]).
    pub fn wiener_reference(mut self, g: Gaussian) -> Self {
        self.wiener_reference = Some(g);
        self
    }
    /// A label for the forward model in the report (e.g. its text spec).
    pub fn forward_label(mut self, label: impl Into<String>) -> Self {
        self.forward_label = label.into();
        self
    }
    /// The posterior family.
    pub fn posterior(mut self, p: PosteriorSettings) -> Self {
        self.posterior = p;
        self
    }
    /// Replaces the whole optimisation configuration (steps, batch, schedule, seed, weights…).
    pub fn dpi_config(mut self, c: DpiConfig) -> Self {
        self.dpi = c;
        self
    }
    /// Edits the optimisation configuration in place.
    pub fn configure(mut self, f: impl FnOnce(&mut DpiConfig)) -> Self {
        f(&mut self.dpi);
        self
    }
    /// Optimisation steps.
    pub fn steps(mut self, steps: usize) -> Self {
        self.dpi.steps = steps;
        self
    }
    /// Samples of `q` per step.
    pub fn batch(mut self, batch: usize) -> Self {
        self.dpi.batch = batch;
        self
    }
    /// Peak learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.dpi.lr = lr;
        self
    }
    /// Seed of the measurement noise, the flow's initialisation, the probes and every step.
    pub fn seed(mut self, seed: u64) -> Self {
        self.dpi.seed = seed;
        self
    }
    /// Noise-level continuation for a score-based prior (`None`: off). Default: from 0.1
    /// over half the run; ignored for priors without a time floor.
    pub fn continuation(mut self, c: Option<Continuation>) -> Self {
        self.continuation = c;
        self
    }
    /// Samples drawn from the trained posterior.
    pub fn samples(mut self, n: usize) -> Self {
        self.samples = n;
        self
    }
    /// Samples with any `|pixel|` above this are dropped from the summaries (the supplement's filter).
    pub fn outlier_threshold(mut self, t: f64) -> Self {
        self.outlier = t;
        self
    }
    /// A folder for the checkpoint and `losses.csv` during training (what [`ExperimentResult::save`]
    /// writes can go elsewhere); with `resume`, a run continues from its checkpoint.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>, resume: bool) -> Self {
        self.dpi.out_dir = Some(dir.into());
        self.dpi.resume = resume;
        self
    }

    /// Checks every setting and simulates the measurement; no training yet.
    ///
    /// # Errors
    /// [`ExperimentError::Invalid`] naming the setting: a missing prior or observation, image
    /// sizes that do not match the forward model or the prior, non-finite data, zero steps,
    /// batch or samples, a bad outlier threshold or continuation, or a configuration that
    /// [`DpiConfig::validate`] rejects.
    pub fn build(self) -> Result<Experiment<F>> {
        let observation = self.observation.ok_or_else(|| invalid("truth/measurement", "give one of them"))?;
        if self.channels != 1 {
            return Err(invalid(
                "forward",
                format!("{} channels: only gray images (1 channel) run today", self.channels),
            ));
        }
        let (h, w) = self.size.unwrap_or((0, 0));
        let d = h * w;
        if d == 0 {
            return Err(invalid("truth/measurement", format!("image size {h}x{w} is empty")));
        }
        if self.forward.input_dim() != d {
            return Err(invalid(
                "forward",
                format!(
                    "the forward model takes {} values but the images have {h}x{w} = {d}",
                    self.forward.input_dim()
                ),
            ));
        }
        let prior = self.prior.ok_or_else(|| invalid("prior", "no prior given"))?;
        if self.dpi.steps == 0 {
            return Err(invalid("steps", "must be at least 1 (0 would sample an untrained flow)"));
        }
        if self.samples == 0 {
            return Err(invalid("samples", "must be at least 1"));
        }
        if !(self.outlier.is_finite() && self.outlier > 0.0) {
            return Err(invalid("outlier_threshold", format!("must be positive and finite, got {}", self.outlier)));
        }
        let p = &self.posterior;
        if p.flows == 0 {
            return Err(invalid("posterior.flows", "must be at least 1"));
        }
        if !(p.init_scale.is_finite() && p.init_scale > 0.0) {
            return Err(invalid("posterior.init_scale", format!("must be positive, got {}", p.init_scale)));
        }
        if let Some(ls) = &p.laplace {
            if p.map_warm_start.is_none() {
                return Err(invalid("posterior.laplace", "needs a MAP warm start (the mode it expands around)"));
            }
            ls.validate()?;
            check_elems("the Laplace start's Hessian", &[d, d, 3], 8)?;
        }
        if let Some(l) = p.init_loc.filter(|l| !l.is_finite()) {
            return Err(invalid("posterior.init_loc", format!("must be finite, got {l}")));
        }
        if let Some(ws) = &p.map_warm_start {
            let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
            if ws.iterations == 0
                || ws.rounds == 0
                || ws.memory == 0
                || !finite_nonneg(ws.jitter)
                || !finite_nonneg(ws.blur_px)
            {
                return Err(invalid(
                    "posterior.map_warm_start",
                    format!("needs iterations, rounds, memory ≥ 1 and a finite jitter and blur ≥ 0, got {ws:?}"),
                ));
            }
        }
        if let Some(img) = &p.init_image {
            if img.len() != d {
                return Err(invalid("posterior.init_image", format!("has {} values, the image has {d}", img.len())));
            }
            if let Some(i) = img.iter().position(|v| !(v.is_finite() && (*v > 0.0 || !p.positive))) {
                return Err(invalid(
                    "posterior.init_image",
                    format!("value {i} is {}: must be finite (and positive with positive images)", img[i]),
                ));
            }
        }
        self.dpi.validate().map_err(|e| invalid("dpi_config", e.to_string()))?;
        // The prior's own size first: a mismatch is the cause of any size below.
        if let Some(pd) = prior.dim().filter(|&pd| pd != d) {
            return Err(invalid(
                "prior",
                format!("the prior has dimension {pd} but the images have {h}x{w} = {d} pixels"),
            ));
        }
        // Sizes from memory, not from crashes: the flow's parameters with their gradient and
        // Adam's two moments, one step's activations, and the samples with their summary.
        let hidden = if p.hidden == 0 { (d / 8).max(32) } else { p.hidden };
        let per_block = (4 * d).saturating_mul(hidden).saturating_add(2 * hidden.saturating_mul(hidden));
        check_elems("the posterior flow (posterior.flows × posterior.hidden)", &[p.flows, 2, 4, per_block], 8)?;
        check_elems(
            "one step's activations (batch × flows × hidden)",
            &[self.dpi.batch, p.flows, 2, 4, hidden.max(d)],
            8,
        )?;
        check_elems("the samples (samples × pixels)", &[self.samples, d, 3], 8)?;
        let check_truth = |x: &[f64]| -> Result<()> {
            if x.len() != d {
                return Err(invalid("truth", format!("{} values for a {h}x{w} image", x.len())));
            }
            if let Some(i) = x.iter().position(|v| !v.is_finite()) {
                return Err(invalid("truth", format!("pixel {i} is {}", x[i])));
            }
            Ok(())
        };
        let (truth, y) = match observation {
            Observation::Truth(x) => {
                check_truth(&x)?;
                let y = self.forward.simulate(&x, &mut ChaCha8Rng::seed_from_u64(self.dpi.seed))?;
                (Some(x), y)
            }
            Observation::Measured(y) => (None, y),
            Observation::Both(x, y) => {
                check_truth(&x)?;
                (Some(x), y)
            }
        };
        if y.len() != self.forward.output_dim() {
            return Err(invalid(
                "measurement",
                format!("{} values but the forward model measures {}", y.len(), self.forward.output_dim()),
            ));
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(invalid("measurement", format!("entry {i} is {}", y[i])));
        }
        let mut built = prior.build(h, w)?;
        if let Some((weight, target)) = self.flux {
            let c = scoreprior_core::dpi::FluxConstraint::new(d, weight, target)
                .map_err(|e| invalid("flux_constraint", e.to_string()))?;
            if built.energy.dim() == d {
                built.energy = Box::new(scoreprior_core::dpi::EnergySum::new(vec![built.energy, Box::new(c)])?);
            }
        }
        if built.energy.dim() != d {
            return Err(invalid(
                "prior",
                format!("the prior has dimension {} but the images have {h}x{w} = {d} pixels", built.energy.dim()),
            ));
        }
        let mut dpi = self.dpi;
        dpi.time_floor = match (self.continuation, built.energy.time_floor()) {
            (Some(c), Some(end)) => {
                if !(c.from.is_finite() && c.from >= end && c.from < 1.0) {
                    return Err(invalid(
                        "continuation",
                        format!("`from` must be in [the prior's floor {end}, 1), got {}", c.from),
                    ));
                }
                let steps = if c.steps == 0 { dpi.steps / 2 } else { c.steps };
                TimeFloorSchedule::Geometric { start: c.from, end, steps }
            }
            _ => dpi.time_floor,
        };
        let wiener_reference = self.wiener_reference.or_else(|| built.exact_gaussian.clone());
        Ok(Experiment {
            data: LikelihoodEnergy::new(self.forward, y)?,
            forward_label: self.forward_label,
            truth,
            h,
            w,
            prior: built,
            wiener_reference,
            posterior: self.posterior,
            dpi,
            samples: self.samples,
            outlier: self.outlier,
        })
    }
}

/// A checked DPI experiment, ready to [`run`](Experiment::run).
pub struct Experiment<F> {
    data: LikelihoodEnergy<F>,
    forward_label: String,
    truth: Option<Vec<f64>>,
    h: usize,
    w: usize,
    prior: prior::BuiltPrior,
    wiener_reference: Option<Gaussian>,
    posterior: PosteriorSettings,
    dpi: DpiConfig,
    samples: usize,
    outlier: f64,
}

impl Experiment<()> {
    /// A builder for an experiment with this forward model; set the truth or measurement and
    /// the prior, then [`build`](ExperimentBuilder::build).
    pub fn builder<F: ForwardModel>(forward: F) -> ExperimentBuilder<F> {
        ExperimentBuilder {
            forward,
            forward_label: "forward model".into(),
            observation: None,
            size: None,
            prior: None,
            wiener_reference: None,
            posterior: PosteriorSettings::default(),
            dpi: default_dpi_config(),
            continuation: Some(Continuation::default()),
            samples: 128,
            outlier: 2.0,
            channels: 1,
            flux: None,
        }
    }
}

impl Experiment<()> {
    /// A builder whose forward model and prior agree on the image shape at compile time:
    /// `F` must take `C × H × W` images ([`InputShape`], which `#[forward_model]` implements)
    /// and the prior must be declared for the same shape. Give the data with
    /// [`ExperimentBuilder::with_truth`] or [`ExperimentBuilder::with_measurement`].
    /// Only gray images (`C = 1`) run today; other `C` are refused by `build`.
    pub fn typed<F, const C: usize, const H: usize, const W: usize>(
        forward: F,
        prior: ShapedPrior<C, H, W>,
    ) -> ExperimentBuilder<F>
    where
        F: InputShape<C, H, W>,
    {
        let mut b = Experiment::builder(forward).prior(prior.0);
        b.size = Some((H, W));
        b.channels = C;
        b
    }
}

/// The largest DPS step scale ζ′ a run accepts ([`Baseline::validate`]).
pub const DPS_ZETA_MAX: f64 = 100.0;

/// A diffusion-based posterior sampler to run in place of DPI ([`Experiment::run_baseline`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// Annealed Langevin dynamics (Jalal et al. 2021).
    ScoreAld(scoreprior_core::baselines::ScoreAld),
    /// Diffusion posterior sampling (Chung et al. 2023).
    Dps(scoreprior_core::baselines::Dps),
    /// Reverse SDE with projections (Song et al. 2022).
    SdeProj(scoreprior_core::baselines::SdeProj),
}

impl Baseline {
    /// Checks the sampler's settings against `sde` before any work.
    ///
    /// # Errors
    /// The sampler's own `validate` errors.
    pub fn validate(&self, sde: &dyn scoreprior_core::sde::Sde) -> scoreprior_core::Result<()> {
        match self {
            Baseline::ScoreAld(s) => s.validate(sde),
            Baseline::Dps(s) => {
                s.validate(sde)?;
                // ζ' scales a step of about 2ζ'‖A‖ per iteration on images of unit range: far
                // above the papers' 0.1–1 it diverges at the first steps (1e300: inf).
                if s.zeta > DPS_ZETA_MAX {
                    // Not `out_of_range`: its message writes the value in full (301 digits for 1e300).
                    return Err(scoreprior_core::Error::unsupported(format!(
                        "DPS zeta must be in (0, {DPS_ZETA_MAX}] (the papers use 0.1–1; larger steps diverge), got {:e}",
                        s.zeta
                    )));
                }
                Ok(())
            }
            Baseline::SdeProj(s) => s.validate(sde),
        }
    }
    /// `score-ald`, `dps` or `sde-proj`.
    pub fn name(&self) -> &'static str {
        match self {
            Baseline::ScoreAld(_) => "score-ald",
            Baseline::Dps(_) => "dps",
            Baseline::SdeProj(_) => "sde-proj",
        }
    }
}

/// The CLI's optimisation defaults: 1500 steps of 16 samples, Adam at 1e-3 with 100 warm-up
/// steps and a linear decay to 10 %, gradient clipping at norm 1, a checkpoint every 100 steps.
pub fn default_dpi_config() -> DpiConfig {
    DpiConfig {
        steps: 1500,
        batch: 16,
        lr: 1e-3,
        warmup: 100,
        lr_final_fraction: 0.1,
        grad_clip: Some(1.0),
        checkpoint_every: 100,
        ..DpiConfig::default()
    }
}

impl<F: ForwardModel> Experiment<F> {
    /// The measurement `y`.
    pub fn y(&self) -> &[f64] {
        self.data.y()
    }
    /// The forward model.
    pub fn forward(&self) -> &F {
        self.data.model()
    }
    /// The ground truth, when the measurement was simulated from one.
    pub fn truth(&self) -> Option<&[f64]> {
        self.truth.as_deref()
    }
    /// The optimisation configuration (after the continuation was resolved).
    pub fn dpi_config(&self) -> &DpiConfig {
        &self.dpi
    }

    /// Trains, samples and measures.
    ///
    /// # Errors
    /// The DPI loop's, the flow's and the prior's errors.
    pub fn run(self) -> Result<ExperimentResult> {
        self.run_observed(&mut |_| {})
    }

    /// Draws the experiment's samples with a diffusion-based baseline instead of DPI, using
    /// the score model of its (score-based) prior, the same forward model, measurement, seed,
    /// sample count, outlier filter and measurements of the result (no training, no loss
    /// history; [`Report::seconds_per_sample`] is set).
    ///
    /// # Errors
    /// A prior without a score model (Gaussian closed form, TV, flow), and the sampler's errors.
    pub fn run_baseline(self, method: Baseline) -> Result<ExperimentResult> {
        self.check_baseline(&method)?;
        let (h, w) = (self.h, self.w);
        let d = h * w;
        let (model, sde) = self.prior.score.clone().ok_or_else(|| invalid("prior", "no score model"))?;
        let y = self.data.y().to_vec();
        let naive = self.data.model().adjoint(&y).ok();
        let mut rng = ChaCha8Rng::seed_from_u64(self.dpi.seed ^ 0xBA5E);
        let forward: &dyn ForwardModel = self.data.model();
        let t0 = Instant::now();
        let x = match method {
            Baseline::ScoreAld(s) => s.sample(model.as_ref(), &sde, forward, &y, self.samples, &mut rng)?,
            Baseline::Dps(s) => s.sample(model.as_ref(), &sde, forward, &y, self.samples, &mut rng)?,
            Baseline::SdeProj(s) => s.sample(model.as_ref(), &sde, forward, &y, self.samples, &mut rng)?,
        };
        let seconds = t0.elapsed().as_secs_f64();
        let samples = scoreprior_core::dpi::Batch { n: self.samples, dim: d, log_q: vec![f64::NAN; self.samples], x };
        let summary = summarize_samples(&samples.x, d, self.outlier)?;
        let mut res = result::measure(result::Parts {
            forward,
            forward_label: self.forward_label.clone(),
            prior_label: self.prior.label.clone(),
            surrogate: false,
            score: Some((model, sde)),
            exact_gaussian: self.prior.exact_gaussian.clone(),
            wiener_reference: self.wiener_reference.clone(),
            h,
            w,
            y,
            truth: self.truth.clone(),
            naive,
            samples,
            summary,
            history: Default::default(),
            timing: result::Timing { seconds_training: 0.0, seconds_per_step: f64::NAN, seconds_sampling: seconds },
            outlier: self.outlier,
        })?;
        res.report.method = method.name().to_string();
        res.report.seconds_per_sample = Some(seconds / self.samples as f64);
        Ok(res)
    }

    /// Checks that `method` can run on this experiment, before any work or output: a
    /// score-based prior and the sampler's settings against the prior's SDE.
    ///
    /// # Errors
    /// A prior without a score model, or a setting the sampler refuses.
    pub fn check_baseline(&self, method: &Baseline) -> Result<()> {
        let Some((_, sde)) = &self.prior.score else {
            return Err(invalid(
                "prior",
                "a baseline sampler needs a score-based prior (its score model): e.g. gaussian-ode, not the \
                 closed-form gaussian",
            ));
        };
        method.validate(sde)?;
        if matches!(method, Baseline::SdeProj(_)) && !self.data.model().is_linear() {
            return Err(invalid(
                "forward",
                "the forward model is not linear, but SDE+Proj projects onto {x : Ax = y} and needs a linear one \
                 (e.g. not `magnitude`; with eht(…), --data visibilities is linear, closures are not)",
            ));
        }
        Ok(())
    }

    /// The MAP image under the experiment's data and prior energies (their DPI weights, no
    /// annealing), by L-BFGS from `start`; cached in `map.npy` of the output folder on resume,
    /// with the cost per iteration in `map_losses.csv`.
    fn map_estimate(&self, ws: &MapWarmStart, start: Vec<f64>) -> Result<Vec<f64>> {
        use scoreprior_core::dpi::{softplus, softplus_inverse};
        let d = start.len();
        let cache = self.dpi.out_dir.as_ref().map(|dir| dir.join("map.npy"));
        if let Some(path) = cache.as_ref().filter(|p| self.dpi.resume && p.exists()) {
            let a = scoreprior_core::io::read_npy(path)?;
            if a.data.len() == d && a.data.iter().all(|v| v.is_finite()) {
                return Ok(a.data);
            }
        }
        let positive = self.posterior.positive;
        let mut rng = ChaCha8Rng::seed_from_u64(self.dpi.seed ^ 0x4D41_5000);
        let u0: Vec<f64> = start
            .iter()
            .map(|&v| {
                let z: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
                (if positive { softplus_inverse(v) } else { v }) + ws.jitter * z
            })
            .collect();
        let to_x = |u: Vec<f64>| -> Vec<f64> {
            u.into_iter().map(|u| if positive { softplus(u).max(1e-300) } else { u }).collect()
        };
        let (mut u, mut costs) = (u0, Vec::new());
        for round in 0..ws.rounds {
            if round > 0 && ws.blur_px > 0.0 && self.h == self.w {
                let blurred = scoreprior_core::forward::interferometry::gaussian_blur(&to_x(u), self.h, ws.blur_px);
                let floor = 1e-6 * blurred.iter().cloned().fold(0.0, f64::max);
                u = blurred.into_iter().map(|v| if positive { softplus_inverse(v.max(floor)) } else { v }).collect();
            }
            let objective = self.map_objective();
            let (best, c) = map::minimise(objective, u, ws)?;
            u = best;
            costs.extend(c);
        }
        let x = to_x(u);
        if let Some(path) = &cache {
            scoreprior_core::io::write_npy(path, &[self.h, self.w], &x)?;
            // One row per L-BFGS iteration, rounds one after the other (each starts with its
            // initial cost).
            let csv: String = std::iter::once("iteration,cost\n".to_string())
                .chain(costs.iter().enumerate().map(|(k, c)| format!("{k},{c}\n")))
                .collect();
            scoreprior_core::io::atomic_write(path.with_file_name("map_losses.csv"), csv.as_bytes())?;
        }
        Ok(x)
    }

    /// The MAP objective: the data and prior energies at their DPI weights, in the flow's
    /// variables, with the draws of a stochastic prior fixed (one seed for every evaluation),
    /// shared by the MAP warm start and the Laplace start so that both see the same function.
    fn map_objective(&self) -> map::Objective<'_> {
        map::Objective {
            data: &self.data,
            prior: self.prior.energy.as_ref(),
            weights: (self.dpi.weights.data, self.dpi.weights.prior),
            positive: self.posterior.positive,
            seed: self.dpi.seed ^ 0x4D41_5001,
            cache: Default::default(),
        }
    }

    /// The Laplace approximation at the MAP image `x_map` (the MAP objective's fixed draws, in
    /// the flow's variables): its factor and its centre.
    fn laplace_start(
        &self,
        ls: &LaplaceStart,
        x_map: &[f64],
    ) -> Result<(scoreprior_core::dpi::AffineFactor, Vec<f64>)> {
        let positive = self.posterior.positive;
        let u: Vec<f64> =
            x_map.iter().map(|&v| if positive { scoreprior_core::dpi::softplus_inverse(v) } else { v }).collect();
        let objective = self.map_objective();
        laplace::laplace_start(&objective, &u, ls)
    }

    /// [`run`](Experiment::run), calling `observer` after every step (progress, logging).
    ///
    /// # Errors
    /// As [`run`](Experiment::run).
    pub fn run_observed(self, observer: &mut dyn FnMut(&StepRecord)) -> Result<ExperimentResult> {
        let (h, w) = (self.h, self.w);
        let d = h * w;
        let y = self.data.y().to_vec();
        let naive = self.data.model().adjoint(&y).ok();
        let p = &self.posterior;
        let hidden = if p.hidden == 0 { (d / 8).max(32) } else { p.hidden };
        let mut flow = RealNvp::new(
            RealNvpConfig::new(d)
                .with_flows(p.flows)
                .with_hidden(hidden)
                .with_batch_norm(p.batch_norm)
                .with_seed(self.dpi.seed),
        )?;
        // Where the identity flow starts: the prior's mean level, else the naive inverse's.
        let level = match (&self.prior.exact_gaussian, &naive) {
            (Some(g), _) => g.mean().iter().sum::<f64>() / d as f64,
            (None, Some(n)) => (n.iter().sum::<f64>() / d as f64).clamp(0.0, 1.0),
            _ => 0.5,
        };
        let loc = match (p.init_loc, p.positive) {
            (Some(l), _) => l,
            (None, _) if p.init_image.is_some() || p.map_warm_start.is_some() => 0.0,
            (None, false) => level,
            (None, true) => scoreprior_core::dpi::softplus_inverse(level.max(1e-3)),
        };
        flow.set_initial_affine(loc, p.init_scale)?;
        if let Some(dir) = &self.dpi.out_dir {
            std::fs::create_dir_all(dir).map_err(|e| scoreprior_core::io::IoError::os(dir, e))?;
        }
        let mut fresh_steps = 0usize;
        let (dpi, data, energy, n_samples) = (&self.dpi, &self.data, self.prior.energy.as_ref(), self.samples);
        let mut train_and_sample = |post: &mut dyn scoreprior_core::dpi::Posterior| -> Result<_> {
            let t0 = Instant::now();
            let history = run_dpi(dpi, post, Some(data), Some(energy), &mut |r| {
                fresh_steps += 1;
                observer(r)
            })?;
            let seconds_training = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let samples = draw_samples(post, n_samples, 64, dpi.seed ^ 0xD1)?;
            Ok((history, samples, seconds_training, t1.elapsed().as_secs_f64()))
        };
        let init_image = match &p.map_warm_start {
            None => p.init_image.clone(),
            Some(ws) => {
                let start = p.init_image.clone().unwrap_or_else(|| {
                    let l =
                        p.init_loc.map_or(level, |u| if p.positive { scoreprior_core::dpi::softplus(u) } else { u });
                    vec![if p.positive { l.max(1e-3) } else { l }; d]
                });
                Some(self.map_estimate(ws, start)?)
            }
        };
        // The trained flow is kept as a density only when it is the posterior itself (a
        // softplus output has the flow's density in the pre-softplus variables).
        // The starting image is an offset in the flow's own variables (`u` before softplus).
        let mut offset: Option<Vec<f64>> = init_image.as_ref().map(|img| {
            img.iter().map(|&v| if p.positive { scoreprior_core::dpi::softplus_inverse(v) } else { v }).collect()
        });
        let factor = match (&p.laplace, &init_image) {
            (Some(ls), Some(img)) if p.map_warm_start.is_some() => {
                let ls = *ls;
                let (f, centre) = self.laplace_start(&ls, img)?;
                if let Some(dir) = &self.dpi.out_dir {
                    // The Laplace approximation's per-pixel std in image units (to first order
                    // through softplus, dx = σ(u)·du), beside the flow's own `std.npy`.
                    let sd: Vec<f64> = f
                        .marginal_std()
                        .iter()
                        .zip(&centre)
                        .map(|(s, &u)| if p.positive { s * scoreprior_core::dpi::sigmoid(u) } else { *s })
                        .collect();
                    scoreprior_core::io::write_npy(dir.join("laplace_std.npy"), &[h, w], &sd)?;
                    let (lo, hi) = f.eigen_range();
                    let info = serde_json::json!({
                        "step": ls.step, "floor": ls.floor, "clipped": f.clipped(),
                        "min_eigenvalue": lo, "max_eigenvalue": hi, "log_det_factor": f.log_det(),
                    });
                    scoreprior_core::io::atomic_write(dir.join("laplace.json"), info.to_string().as_bytes())?;
                }
                offset = Some(centre);
                Some(f)
            }
            _ => None,
        };
        use scoreprior_core::dpi::{AffinePosterior, ShiftedPosterior, SoftplusPosterior};
        let ((history, samples, seconds_training, seconds_sampling), kept_flow) = match (p.positive, offset, factor) {
            (true, Some(b), Some(f)) => {
                (train_and_sample(&mut SoftplusPosterior::new(AffinePosterior::new(flow, b, f)?))?, None)
            }
            (false, Some(b), Some(f)) => (train_and_sample(&mut AffinePosterior::new(flow, b, f)?)?, None),
            (true, None, _) => (train_and_sample(&mut SoftplusPosterior::new(flow))?, None),
            (true, Some(b), None) => {
                (train_and_sample(&mut SoftplusPosterior::new(ShiftedPosterior::new(flow, b)?))?, None)
            }
            (false, Some(b), None) => (train_and_sample(&mut ShiftedPosterior::new(flow, b)?)?, None),
            (false, None, _) => (train_and_sample(&mut flow)?, Some(flow)),
        };
        let summary = summarize_samples(&samples.x, d, self.outlier)?;
        let timing = result::Timing {
            seconds_training,
            seconds_per_step: if fresh_steps == 0 { f64::NAN } else { seconds_training / fresh_steps as f64 },
            seconds_sampling,
        };
        let mut res = result::measure(result::Parts {
            forward: self.data.model(),
            forward_label: self.forward_label.clone(),
            prior_label: self.prior.label.clone(),
            surrogate: self.prior.surrogate,
            score: self.prior.score.clone(),
            exact_gaussian: self.prior.exact_gaussian.clone(),
            wiener_reference: self.wiener_reference.clone(),
            h,
            w,
            y,
            truth: self.truth.clone(),
            naive,
            samples,
            summary,
            history,
            timing,
            outlier: self.outlier,
        })?;
        res.flow = kept_flow.map(std::sync::Arc::new);
        Ok(res)
    }
}
