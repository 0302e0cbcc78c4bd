//! Diffusion-based posterior samplers that the paper compares DPI against: each draws
//! approximate samples of `p(x|y) ∝ p(y|x) p(x)` from a score model `s(x, t) ≈ ∇ log p_t(x)`
//! and a forward model, with no density of its own (so, unlike DPI, no `log q`).
//!
//! - [`ScoreAld`]: annealed Langevin dynamics with an annealed likelihood (Jalal et al. 2021).
//! - [`Dps`]: reverse diffusion with a gradient step through Tweedie's estimate (Chung et al. 2023).
//! - [`SdeProj`]: reverse diffusion with a relaxed projection onto the noisy measurement's
//!   affine set (Song et al. 2022).

mod dps;
mod score_ald;
mod sde_proj;

pub use dps::Dps;
pub use score_ald::ScoreAld;
pub use sde_proj::SdeProj;

use rand::RngCore;

use crate::forward::ForwardModel;
use crate::score::ScoreModel;
use crate::sde::Sde;
use crate::{Error, Result};

/// The checked start every sampler shares: the settings' own verdict (`validate`, already
/// run by the caller so its errors keep their order), then the problem's shapes, then the
/// schedule from `T` down to `t_min` in `steps` steps. Keeping it in one place keeps the three
/// samplers' checks, messages and grids the same.
fn prepare<'a>(
    what: &str,
    settings: Result<()>,
    sde: &'a dyn Sde,
    t_min: f64,
    steps: usize,
    problem: (&dyn ScoreModel, &dyn ForwardModel, &[f64], usize),
) -> Result<Schedule<'a>> {
    settings?;
    let (model, forward, y, n) = problem;
    let d = check_problem(what, model, forward, y, n)?;
    Ok(Schedule { d, sde, t_min, steps, dt: (sde.t_max() - t_min) / steps as f64 })
}

/// A sampler's checked problem size `D` and its reverse-time schedule: the uniform grid
/// `t_i = T − iΔ`, `Δ = (T − t_min)/N` of the reverse SDE, or the geometric noise levels of
/// annealed Langevin dynamics.
struct Schedule<'a> {
    /// Image size `D` (the score model's, checked against the forward model and `y`).
    d: usize,
    sde: &'a dyn Sde,
    t_min: f64,
    steps: usize,
    /// `Δ = (T − t_min)/N`.
    dt: f64,
}

impl Schedule<'_> {
    /// `t_i = T − iΔ`, the time at the start of reverse step `i`.
    fn time(&self, i: usize) -> f64 {
        self.sde.t_max() - i as f64 * self.dt
    }

    /// The Euler–Maruyama noise scale `√(g² Δ)` of step `i`; zero on the last step, whose
    /// output is the sample and should not carry fresh noise at `t_min`.
    fn noise(&self, i: usize, g2: f64) -> f64 {
        if i + 1 < self.steps {
            (g2 * self.dt).sqrt()
        } else {
            0.0
        }
    }

    /// `n` draws of the SDE's prior at `T`, row-major `(n, D)`.
    fn prior_sample(&self, n: usize, rng: &mut dyn RngCore) -> Vec<f64> {
        let mut x = vec![0.0; n * self.d];
        self.sde.prior_sample(rng, &mut x);
        x
    }

    /// The end levels `(σ_1, σ_L)` of `σ = σ_t/α_t`: at `t = T` and at `t = t_min`, exactly
    /// (the samplers compare against `σ_L` to recognise the last level).
    fn level_bounds(&self) -> (f64, f64) {
        let ratio = |t: f64| self.sde.marginal_std(t) / self.sde.marginal_mean_coef(t);
        (ratio(self.sde.t_max()), ratio(self.t_min))
    }

    /// `N` noise levels `σ = σ_t/α_t`, geometric from `σ_1` down to `σ_L` (one level: `σ_L`
    /// up to rounding).
    fn geometric_levels(&self) -> Vec<f64> {
        let (s1, sl) = self.level_bounds();
        (0..self.steps)
            .map(|i| {
                let f = if self.steps == 1 { 1.0 } else { i as f64 / (self.steps - 1) as f64 };
                s1 * (sl / s1).powf(f)
            })
            .collect()
    }
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
