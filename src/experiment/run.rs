//! A checked [`Experiment`] and its DPI run: the flow's start (level, starting image, MAP warm
//! start by L-BFGS with blur rounds, Laplace start `N(MAP, H⁻¹)`), training, sampling, and the
//! measures of the result.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::dpi::{
    draw_samples, run_dpi, summarize_samples, Batch, DpiConfig, DpiHistory, LikelihoodEnergy, StepRecord,
};
use scoreprior_core::forward::ForwardModel;
use scoreprior_core::score::Gaussian;
use scoreprior_models::realnvp::{RealNvp, RealNvpConfig};

use super::prior::BuiltPrior;
use super::{flow_map, laplace, map, result, ExperimentResult, LaplaceStart, MapWarmStart, PosteriorSettings, Result};

/// A checked DPI experiment, ready to [`run`](Experiment::run).
pub struct Experiment<F> {
    pub(super) data: LikelihoodEnergy<F>,
    pub(super) forward_label: String,
    pub(super) truth: Option<Vec<f64>>,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) prior: BuiltPrior,
    pub(super) wiener_reference: Option<Gaussian>,
    pub(super) posterior: PosteriorSettings,
    pub(super) dpi: DpiConfig,
    pub(super) samples: usize,
    pub(super) outlier: f64,
    /// The total-flux constraint `(w, F)` of [`ExperimentBuilder::flux_constraint`](super::ExperimentBuilder::flux_constraint), when it applies.
    pub(super) flux: Option<(f64, f64)>,
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
    /// The image shape `(h, w)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.h, self.w)
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
        let (mut flow, trained_map) = match &p.init_flow {
            Some(dir) => {
                let (flow, map) = flow_map::read_trained(dir, d, p.positive)?;
                (flow, Some(map))
            }
            None => (
                RealNvp::new(
                    RealNvpConfig::new(d)
                        .with_flows(p.flows)
                        .with_hidden(hidden)
                        .with_batch_norm(p.batch_norm)
                        .with_seed(self.dpi.seed),
                )?,
                None,
            ),
        };
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
        if trained_map.is_none() {
            flow.set_initial_affine(loc, p.init_scale)?;
        }
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
        // A resumed run keeps the map it trained under (read back, not recomputed).
        let saved_map = match (&self.dpi.out_dir, self.dpi.resume && trained_map.is_none()) {
            (Some(dir), true) => flow_map::read_saved(dir, d, p.positive)?,
            _ => None,
        };
        let factor = match (&p.laplace, &init_image) {
            (Some(ls), Some(img)) if p.map_warm_start.is_some() && saved_map.is_none() => {
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
        let (offset, factor) = match trained_map.or(saved_map) {
            Some(m) => (m.offset, m.factor),
            None => (offset, factor),
        };
        if let Some(dir) = &self.dpi.out_dir {
            // Beside the checkpoint, so that another run can start from this one's trained flow.
            let map = flow_map::FlowMap { positive: p.positive, offset: offset.clone(), factor: factor.clone() };
            flow_map::write(dir, d, &map)?;
        }
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
        let timing = result::Timing {
            seconds_training,
            seconds_per_step: if fresh_steps == 0 { f64::NAN } else { seconds_training / fresh_steps as f64 },
            seconds_sampling,
        };
        let mut res = self.measure(self.prior.surrogate, y, naive, samples, history, timing)?;
        res.flow = kept_flow.map(std::sync::Arc::new);
        Ok(res)
    }

    /// [`result::measure`] of a finished run's `samples` (summarized here with the outlier
    /// filter) for the measurement `y` and its naive inverse, with this experiment's forward
    /// model, labels, score model, references and truth; `surrogate` as the report's.
    pub(super) fn measure(
        &self,
        surrogate: bool,
        y: Vec<f64>,
        naive: Option<Vec<f64>>,
        samples: Batch,
        history: DpiHistory,
        timing: result::Timing,
    ) -> Result<ExperimentResult> {
        let summary = summarize_samples(&samples.x, self.h * self.w, self.outlier)?;
        result::measure(result::Parts {
            forward: self.data.model(),
            forward_label: self.forward_label.clone(),
            prior_label: self.prior.label.clone(),
            surrogate,
            score: self.prior.score.clone(),
            exact_gaussian: self.prior.exact_gaussian.clone(),
            wiener_reference: self.wiener_reference.clone(),
            h: self.h,
            w: self.w,
            y,
            truth: self.truth.clone(),
            naive,
            samples,
            summary,
            history,
            timing,
            outlier: self.outlier,
        })
    }
}
