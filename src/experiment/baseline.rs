//! The diffusion-based posterior samplers (Score-ALD, DPS, SDE+Proj, DAPS, PnP-DM) run in place of DPI on an
//! [`Experiment`]'s prior score, forward model and measurement ([`Baseline`]), with their checks.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::baselines::PosteriorSampler;
use scoreprior_core::forward::{ForwardModel, WithTotalFlux};

use super::{invalid, result, Experiment, ExperimentResult, Result};

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
    /// Decoupled annealing posterior sampling (Zhang et al. 2024).
    Daps(scoreprior_core::baselines::Daps),
    /// Plug-and-play split-Gibbs sampling with the diffusion model as denoiser (Wu et al. 2024).
    PnpDm(scoreprior_core::baselines::PnpDm),
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
            other => other.sampler().validate(sde),
        }
    }
    /// `score-ald`, `dps`, `sde-proj`, `daps` or `pnp-dm`.
    pub fn name(&self) -> &'static str {
        match self {
            Baseline::ScoreAld(_) => "score-ald",
            Baseline::Dps(_) => "dps",
            Baseline::SdeProj(_) => "sde-proj",
            Baseline::Daps(_) => "daps",
            Baseline::PnpDm(_) => "pnp-dm",
        }
    }
    /// The sampler itself, through the trait the samplers share.
    pub fn sampler(&self) -> &dyn PosteriorSampler {
        match self {
            Baseline::ScoreAld(s) => s,
            Baseline::Dps(s) => s,
            Baseline::SdeProj(s) => s,
            Baseline::Daps(s) => s,
            Baseline::PnpDm(s) => s,
        }
    }
}

impl<F: ForwardModel> Experiment<F> {
    /// Draws the experiment's samples with a diffusion-based baseline instead of DPI, using
    /// the score model of its (score-based) prior, the same forward model, measurement, seed,
    /// sample count, outlier filter and measurements of the result (no training, no loss
    /// history; [`Report::seconds_per_sample`](super::Report::seconds_per_sample) is set).
    /// A [flux constraint](super::ExperimentBuilder::flux_constraint) `w(Σx − F)²` becomes a
    /// measurement of the total flux `F` at `σ² = 1/(2w)` ([`WithTotalFlux`]), the same term
    /// in the posterior DPI fits.
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
        // DPI's flux penalty w(Σx − F)² is, for a sampler, a measurement of the flux at
        // σ² = 1/(2w): both then target the same posterior.
        let with_flux = match self.flux {
            Some((weight, _)) => Some(WithTotalFlux::from_penalty(forward, weight)?),
            None => None,
        };
        let (forward, y_sampled): (&dyn ForwardModel, Vec<f64>) = match (&with_flux, self.flux) {
            (Some(m), Some((_, target))) => (m, y.iter().copied().chain([target]).collect()),
            _ => (forward, y.clone()),
        };
        let t0 = Instant::now();
        let x = method.sampler().sample(model.as_ref(), &sde, forward, &y_sampled, self.samples, &mut rng)?;
        let seconds = t0.elapsed().as_secs_f64();
        let samples = scoreprior_core::dpi::Batch { n: self.samples, dim: d, log_q: vec![f64::NAN; self.samples], x };
        let timing = result::Timing { seconds_training: 0.0, seconds_per_step: f64::NAN, seconds_sampling: seconds };
        // The score model is the prior's (`model`, `sde`), used exactly (no surrogate).
        let mut res = self.measure(false, y, naive, samples, Default::default(), timing)?;
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
}
