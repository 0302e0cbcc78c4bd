//! [`ExperimentBuilder`]: the forward model, the truth or measurement, the prior, the posterior
//! family and the optimisation settings, each with the CLI's default; `build` checks them all
//! (sizes, ranges, memory) and simulates the measurement before any training.

use std::path::PathBuf;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::dpi::{DpiConfig, LikelihoodEnergy, TimeFloorSchedule};
use scoreprior_core::forward::{ForwardModel, InputShape};
use scoreprior_core::limits::check_elems;
use scoreprior_core::score::Gaussian;

use super::{default_dpi_config, invalid, Continuation, Experiment, PosteriorSettings, Prior, Result, ShapedPrior};

/// The measurement: read, or simulated from the truth with a seed.
#[derive(Debug, Clone)]
enum Observation {
    Truth(Vec<f64>),
    Measured(Vec<f64>),
    Both(Vec<f64>, Vec<f64>),
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
    scoreprior_core::setters! {
        /// The posterior family.
        pub fn posterior(p: PosteriorSettings) => posterior;
        /// Replaces the whole optimisation configuration (steps, batch, schedule, seed, weights…).
        pub fn dpi_config(c: DpiConfig) => dpi;
    }
    /// Edits the optimisation configuration in place.
    pub fn configure(mut self, f: impl FnOnce(&mut DpiConfig)) -> Self {
        f(&mut self.dpi);
        self
    }
    scoreprior_core::setters! {
        /// Optimisation steps.
        pub fn steps(steps: usize) => dpi.steps;
        /// Samples of `q` per step.
        pub fn batch(batch: usize) => dpi.batch;
        /// Peak learning rate.
        pub fn lr(lr: f64) => dpi.lr;
        /// Seed of the measurement noise, the flow's initialisation, the probes and every step.
        pub fn seed(seed: u64) => dpi.seed;
        /// Noise-level continuation for a score-based prior (`None`: off). Default: from 0.1
        /// over half the run; ignored for priors without a time floor.
        pub fn continuation(c: Option<Continuation>) => continuation;
        /// Samples drawn from the trained posterior.
        pub fn samples(n: usize) => samples;
        /// Samples with any `|pixel|` above this are dropped from the summaries (the supplement's filter).
        pub fn outlier_threshold(t: f64) => outlier;
    }
    /// A folder for the checkpoint and `losses.csv` during training (what [`ExperimentResult::save`]
    /// writes can go elsewhere); with `resume`, a run continues from its checkpoint.
    ///
    /// [`ExperimentResult::save`]: super::ExperimentResult::save
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
    ///
    /// [`ExperimentError::Invalid`]: super::ExperimentError::Invalid
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
        if let Some(dir) = &p.init_flow {
            for (set, name) in [
                (p.init_image.is_some(), "posterior.init_image"),
                (p.map_warm_start.is_some(), "posterior.map_warm_start"),
                (p.laplace.is_some(), "posterior.laplace"),
            ] {
                if set {
                    return Err(super::error::conflict(
                        &[
                            "posterior.init_flow",
                            "posterior.init_image",
                            "posterior.map_warm_start",
                            "posterior.laplace",
                        ],
                        format!(
                            "posterior.init_flow starts from a trained flow and its own map; {name} cannot be set too"
                        ),
                    ));
                }
            }
            super::flow_map::check(dir, d, p.positive)?;
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
        let mut flux = None;
        if let Some((weight, target)) = self.flux {
            let c = scoreprior_core::dpi::FluxConstraint::new(d, weight, target)
                .map_err(|e| invalid("flux_constraint", e.to_string()))?;
            if built.energy.dim() == d {
                built.energy = Box::new(scoreprior_core::dpi::EnergySum::new(vec![built.energy, Box::new(c)])?);
                flux = Some((weight, target)).filter(|&(w, _)| w > 0.0);
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
            flux,
        })
    }
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
