//! Diffusion-based posterior samplers that the paper compares DPI against: each draws
//! approximate samples of `p(x|y) ∝ p(y|x) p(x)` from a score model `s(x, t) ≈ ∇ log p_t(x)`
//! and a forward model, with no density of its own (so, unlike DPI, no `log q`).
//!
//! - [`ScoreAld`]: annealed Langevin dynamics with an annealed likelihood (Jalal et al. 2021).
//! - [`Dps`]: reverse diffusion with a gradient step through Tweedie's estimate (Chung et al. 2023).
//! - [`SdeProj`]: reverse diffusion with a relaxed projection onto the noisy measurement's
//!   affine set (Song et al. 2022).
//! - [`PnpDm`]: split Gibbs sampling, alternating a likelihood step and a diffusion denoising
//!   step coupled at an annealed level `ρ` (Wu et al. 2024).
//! - [`Daps`]: decoupled annealing, a clean estimate by the probability-flow ODE, Langevin steps
//!   on it and the likelihood, then re-noising to the next level (Zhang et al. 2024).
//!
//! All three implement [`PosteriorSampler`], which holds their shared checks and schedule.

mod daps;
mod dps;
mod pnp_dm;
mod score_ald;
mod sde_proj;

pub use daps::Daps;
pub use dps::Dps;
pub use pnp_dm::PnpDm;
pub use score_ald::ScoreAld;
pub use sde_proj::SdeProj;

use rand::RngCore;

use crate::forward::ForwardModel;
use crate::score::ScoreModel;
use crate::sde::Sde;
use crate::{Error, Result};

/// A diffusion-based posterior sampler: draws approximate samples of `p(x|y)` from a score
/// model, an SDE and a forward model. The shared start lives in [`PosteriorSampler::sample`]:
/// the settings' own checks ([`PosteriorSampler::validate`], then
/// [`PosteriorSampler::check_forward`]), then the problem's shapes, then the schedule from `T`
/// down to `t_min`; an implementation writes only its iterations ([`PosteriorSampler::run`]),
/// so every sampler (Score-ALD, DPS, SDE+Proj, and those to come) makes the same checks with
/// the same messages in the same order.
///
/// ```
/// use rand::SeedableRng;
/// use scoreprior_core::baselines::{Dps, PosteriorSampler, SdeProj};
/// use scoreprior_core::forward::Model;
/// use scoreprior_core::score::Gaussian;
/// use scoreprior_core::sde::{AnySde, VpSde};
/// let sde = AnySde::Vp(VpSde::default());
/// let prior = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], sde).unwrap();
/// let denoise = Model::denoising([1, 1, 2], 0.5).unwrap();
/// let samplers: [Box<dyn PosteriorSampler>; 2] =
///     [Box::new(Dps { steps: 20, zeta: 0.05, ..Dps::new() }), Box::new(SdeProj { steps: 20, ..SdeProj::new() })];
/// for s in &samplers {
///     let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
///     let x = s.sample(&prior, &sde, &denoise, &[1.0, -1.0], 4, &mut rng).unwrap();
///     assert_eq!(x.len(), 8, "{}", s.name());
/// }
/// ```
pub trait PosteriorSampler {
    /// The sampler's name in messages (`DPS`, `Score-ALD`, `SDE+Proj`).
    fn name(&self) -> &'static str;

    /// Checks the settings against `sde`.
    ///
    /// # Errors
    /// The settings out of their ranges.
    fn validate(&self, sde: &dyn Sde) -> Result<()>;

    /// Checks that the sampler can use `forward` at all (beyond shapes, which
    /// [`PosteriorSampler::sample`] checks); the default accepts every forward model.
    ///
    /// # Errors
    /// A forward model the sampler cannot use ([`Error::Unsupported`]).
    fn check_forward(&self, forward: &dyn ForwardModel) -> Result<()> {
        let _ = forward;
        Ok(())
    }

    /// The schedule: the last time `t_min` and the number `N ≥ 1` of reverse steps (or noise
    /// levels) from `T` down to it.
    fn schedule(&self) -> (f64, usize);

    /// The sampler's iterations on a checked problem: `n` samples, row-major `(n, D)`.
    ///
    /// # Errors
    /// Non-finite iterates, the model's and the forward model's errors.
    fn run(&self, problem: &Problem<'_>, rng: &mut dyn RngCore) -> Result<Vec<f64>>;

    /// Draws `n` samples (row-major `(n, D)`) for the measurement `y` of `forward`.
    ///
    /// # Errors
    /// Bad settings, a forward model the sampler cannot use, shape mismatches, then
    /// [`PosteriorSampler::run`]'s errors.
    fn sample(
        &self,
        model: &dyn ScoreModel,
        sde: &dyn Sde,
        forward: &dyn ForwardModel,
        y: &[f64],
        n: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<f64>> {
        let problem = self.problem(model, sde, forward, y, n)?;
        self.run(&problem, rng)
    }

    /// The checked problem [`PosteriorSampler::sample`] runs on: the settings' own checks
    /// ([`PosteriorSampler::validate`], then [`PosteriorSampler::check_forward`]), the shapes,
    /// the schedule. For a sampler's own entry points besides `sample` (e.g.
    /// [`PnpDm::sample_kept`]), so that they check the same things in the same order.
    ///
    /// # Errors
    /// Bad settings, a forward model the sampler cannot use, shape mismatches.
    fn problem<'a>(
        &self,
        model: &'a dyn ScoreModel,
        sde: &'a dyn Sde,
        forward: &'a dyn ForwardModel,
        y: &'a [f64],
        n: usize,
    ) -> Result<Problem<'a>> {
        self.validate(sde)?;
        self.check_forward(forward)?;
        let (t_min, steps) = self.schedule();
        let d = check_problem(self.name(), model, forward, y, n)?;
        Ok(Problem { model, sde, forward, y, n, d, t_min, steps, dt: (sde.t_max() - t_min) / steps as f64 })
    }
}

/// The parts of a [`PosteriorSampler`] impl that only name things: the sampler's name in
/// messages, its inherent `validate` as the trait's, and the field that counts its steps
/// (levels) down to `t_min`, for [`PosteriorSampler::schedule`].
macro_rules! sampler_basics {
    ($name:literal, $steps:ident) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn validate(&self, sde: &dyn Sde) -> Result<()> {
            // The inherent method (an inherent associated function wins over the trait's).
            Self::validate(self, sde)
        }

        fn schedule(&self) -> (f64, usize) {
            (self.t_min, self.$steps)
        }
    };
}
use sampler_basics;

/// The inherent `sample` of each sampler, so that callers need not import the trait.
macro_rules! inherent_sample {
    ($($t:ty),*) => {$(
        impl $t {
            /// Draws `n` samples (row-major `(n, D)`) for the measurement `y` of `forward`
            /// ([`PosteriorSampler::sample`]).
            ///
            /// # Errors
            /// As [`PosteriorSampler::sample`].
            pub fn sample(
                &self,
                model: &dyn ScoreModel,
                sde: &dyn Sde,
                forward: &dyn ForwardModel,
                y: &[f64],
                n: usize,
                rng: &mut dyn RngCore,
            ) -> Result<Vec<f64>> {
                PosteriorSampler::sample(self, model, sde, forward, y, n, rng)
            }
        }
    )*};
}
inherent_sample!(Dps, ScoreAld, SdeProj, PnpDm, Daps);

/// A sampler's checked problem (the score model's size `D` agrees with the forward model and
/// `y`, `n ≥ 1`) and its reverse-time schedule: the uniform grid `t_i = T − iΔ`,
/// `Δ = (T − t_min)/N` of the reverse SDE, or the geometric noise levels of annealed Langevin
/// dynamics. Only [`PosteriorSampler::sample`] makes one.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct Problem<'a> {
    /// The score model `s(x, t) ≈ ∇ log p_t(x)`.
    pub model: &'a dyn ScoreModel,
    /// The SDE the model was trained with.
    pub sde: &'a dyn Sde,
    /// The forward model `A`.
    pub forward: &'a dyn ForwardModel,
    /// The measurement `y`.
    pub y: &'a [f64],
    /// Number of samples `n`.
    pub n: usize,
    /// Image size `D` (the score model's, checked against the forward model and `y`).
    pub d: usize,
    /// Last time `t_min`.
    pub t_min: f64,
    /// Number of steps (levels) `N`.
    pub steps: usize,
    /// `Δ = (T − t_min)/N`.
    pub dt: f64,
}

impl Problem<'_> {
    /// `t_i = T − iΔ`, the time at the start of reverse step `i`.
    pub fn time(&self, i: usize) -> f64 {
        self.sde.t_max() - i as f64 * self.dt
    }

    /// The Euler–Maruyama noise scale `√(g² Δ)` of step `i`; zero on the last step, whose
    /// output is the sample and should not carry fresh noise at `t_min`.
    pub fn noise(&self, i: usize, g2: f64) -> f64 {
        if i + 1 < self.steps {
            (g2 * self.dt).sqrt()
        } else {
            0.0
        }
    }

    /// `n` draws of the SDE's prior at `T`, row-major `(n, D)`.
    pub fn prior_sample(&self, rng: &mut dyn RngCore) -> Vec<f64> {
        let mut x = vec![0.0; self.n * self.d];
        self.sde.prior_sample(rng, &mut x);
        x
    }

    /// The end levels `(σ_1, σ_L)` of `σ = σ_t/α_t`: at `t = T` and at `t = t_min`, exactly
    /// (the samplers compare against `σ_L` to recognise the last level).
    pub fn level_bounds(&self) -> (f64, f64) {
        (noise_level(self.sde, self.sde.t_max()), noise_level(self.sde, self.t_min))
    }

    /// `N` noise levels `σ = σ_t/α_t`, geometric from `σ_1` down to `σ_L` (one level: `σ_L`
    /// up to rounding).
    pub fn geometric_levels(&self) -> Vec<f64> {
        let (s1, sl) = self.level_bounds();
        (0..self.steps).map(|i| geometric_level(s1, sl, self.steps, i)).collect()
    }
}

/// The noise level `σ = σ_t/α_t` of the data-scale variable `u = x_t/α_t = x₀ + σ z` at `t`.
fn noise_level(sde: &dyn Sde, t: f64) -> f64 {
    sde.marginal_std(t) / sde.marginal_mean_coef(t)
}

/// Level `i` of `n` geometric levels from `s1` down to `sl` ([`Problem::geometric_levels`];
/// also for a sampler's settings checks, before there is a problem).
fn geometric_level(s1: f64, sl: f64, n: usize, i: usize) -> f64 {
    let f = if n == 1 { 1.0 } else { i as f64 / (n - 1) as f64 };
    s1 * (sl / s1).powf(f)
}

/// The checks every sampler makes on its problem: `n ≥ 1` samples, a forward model that
/// takes the score model's images and a `y` of its output length. Returns `D`.
fn check_problem(what: &str, model: &dyn ScoreModel, forward: &dyn ForwardModel, y: &[f64], n: usize) -> Result<usize> {
    if n == 0 {
        return Err(Error::count_out_of_range(format!("{what} sample count"), n, "at least 1"));
    }
    let d = model.dim();
    if forward.input_dim() != d {
        return Err(Error::shape(format!("{what} forward-model input"), d, forward.input_dim()));
    }
    if y.len() != forward.output_dim() {
        return Err(Error::shape(format!("{what} measurement"), forward.output_dim(), y.len()));
    }
    Ok(d)
}

/// The last time `t_min` of a sampler must lie in `(0, T)`.
fn check_t_min(what: &str, t_min: f64, sde: &dyn Sde) -> Result<()> {
    if t_min > 0.0 && t_min < sde.t_max() {
        Ok(())
    } else {
        Err(Error::out_of_range(format!("{what} t_min"), t_min, format!("in (0, T = {})", sde.t_max())))
    }
}

/// `‖A‖₂²`, the largest eigenvalue of `AᵀA`, by power iteration (30 products from a fixed
/// start; within a few per cent, which is all a step-size bound needs). `None` for a
/// non-linear model, whose Jacobian changes with `x`.
pub fn operator_norm_sq(forward: &dyn ForwardModel) -> Result<Option<f64>> {
    if !forward.is_linear() {
        return Ok(None);
    }
    let d = forward.input_dim();
    // A fixed, non-symmetric start so no eigenvector is missed by symmetry.
    let mut v: Vec<f64> = (0..d).map(|i| 1.0 + ((i * 7919) % 13) as f64 / 13.0).collect();
    let mut lambda = 0.0;
    for _ in 0..30 {
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return Ok(Some(lambda));
        }
        v.iter_mut().for_each(|a| *a /= norm);
        let w = forward.adjoint(&forward.forward(&v)?)?;
        lambda = v.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
        v = w;
    }
    Ok(Some(lambda))
}

/// `‖∇² log p(y|z)‖₂` at `z` by `iters` steps of power iteration on the finite differences
/// `Hv ≈ (∇ log p(y|z) − ∇ log p(y|z + hv))/h` (`‖v‖ = 1`, `h = 1e-5·max(1, ‖z‖)`), from and
/// into `probe`. Exact for a quadratic likelihood up to round-off; 0 when no finite estimate
/// comes out (then the step is `ε ρ²`).
pub(super) fn likelihood_curvature(
    forward: &dyn ForwardModel,
    y: &[f64],
    z: &[f64],
    probe: &mut [f64],
    iters: usize,
) -> Result<f64> {
    let norm = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let h = 1e-5 * norm(z).max(1.0);
    let g0 = forward.grad_log_likelihood(y, z)?;
    let mut lambda = 0.0;
    let mut zh = vec![0.0; z.len()];
    for _ in 0..iters {
        let pn = norm(probe);
        if !(pn > 0.0 && pn.is_finite()) {
            break;
        }
        probe.iter_mut().for_each(|a| *a /= pn);
        for ((o, zv), pv) in zh.iter_mut().zip(z).zip(probe.iter()) {
            *o = zv + h * pv;
        }
        let g1 = forward.grad_log_likelihood(y, &zh)?;
        for ((pv, a), b) in probe.iter_mut().zip(&g0).zip(&g1) {
            *pv = (a - b) / h;
        }
        let l = norm(probe);
        if !l.is_finite() {
            return Ok(0.0);
        }
        lambda = l;
    }
    if lambda == 0.0 {
        // Restart from the fixed vector next time (the probe has collapsed).
        probe.iter_mut().enumerate().for_each(|(i, a)| *a = 1.0 + ((i * 7919) % 13) as f64 / 13.0);
    }
    Ok(lambda)
}
