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

use crate::forward::ForwardModel;
use crate::score::ScoreModel;
use crate::sde::Sde;
use crate::{Error, Result};

/// The checks every sampler makes on its problem: `n ≥ 1` samples, a forward model that
/// takes the score model's images and a `y` of its output length. Returns `D`.
fn check_problem(what: &str, model: &dyn ScoreModel, forward: &dyn ForwardModel, y: &[f64], n: usize) -> Result<usize> {
    if n == 0 {
        return Err(Error::invalid(format!("{what} needs at least one sample")));
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
        Err(Error::invalid(format!("{what} t_min must be in (0, T = {}), got {t_min}", sde.t_max())))
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
