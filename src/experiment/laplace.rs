//! The Laplace start of DPI: at the MAP point `û` of `E(u) = w_d·E_data(x(u)) + w_p·E_prior(x(u))
//! − Σ ln σ(u)` (the last term only for positive images, `x = softplus(u)`: the log-Jacobian
//! that makes `E` the negative log-posterior *in u*), the Hessian `H = ∇²E(û)` by central
//! differences of the gradient, column by column, with the MAP objective's fixed draws. The
//! flow then starts as `N(û, H⁻¹)` (`dpi::AffinePosterior` with `L·Lᵀ = H⁻¹`) and learns only
//! what the posterior adds to the Gaussian.

use super::map::Objective;
use super::{invalid, Result};
use scoreprior_core::dpi::{ln_sigmoid, sigmoid, AffineFactor};

/// Settings of the Laplace start ([`super::PosteriorSettings::laplace`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LaplaceStart {
    /// Central-difference step of the Hessian's columns, in the flow's variables (`u`).
    /// Why central: its `O(h²)` error keeps the differencing noise far below the smallest
    /// curvatures that matter, where forward differences (`O(h)`) left spurious negative
    /// eigenvalues of 1e4 next to curvatures of 1e10.
    pub step: f64,
    /// Smallest eigenvalue kept: flatter (or negative) directions of the Hessian get this
    /// curvature, i.e. a standard deviation of at most `1/√floor` in `u` (for positive images
    /// one e-fold of the pixel value at `floor = 1`).
    pub floor: f64,
}

impl Default for LaplaceStart {
    fn default() -> Self {
        Self { step: 1e-4, floor: 1.0 }
    }
}

impl LaplaceStart {
    /// Checks the settings.
    pub(super) fn validate(&self) -> Result<()> {
        for (what, v) in [("step", self.step), ("floor", self.floor)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid("posterior.laplace", format!("{what} must be positive and finite, got {v}")));
            }
        }
        Ok(())
    }
}

/// The Laplace start at `u` (the MAP point in the flow's variables): the factor `L`
/// (`L·Lᵀ = H⁻¹`) and the point to centre it on, `u` after one (saddle-free) Newton step
/// `u − L·Lᵀ·∇E(u)` on the target *in u* (with `−Σ ln σ(u)` for positive images), halved
/// until the target decreases and not taken if it never does; `2D + 5` gradient evaluations
/// at most. Why the step: L-BFGS stops short of the mode along the flattest directions (those
/// the data leave to the prior), by a fraction of the posterior's spread there; the Hessian in
/// hand removes that at once, where the flow would need many steps to move its mean.
pub(super) fn laplace_start(
    objective: &Objective<'_>,
    u: &[f64],
    settings: &LaplaceStart,
) -> Result<(AffineFactor, Vec<f64>)> {
    settings.validate()?;
    let d = u.len();
    let fail = |e: argmin::core::Error| invalid("posterior.laplace", e.to_string());
    let mut h = vec![0.0; d * d];
    let mut up = u.to_vec();
    let step = settings.step;
    for i in 0..d {
        up[i] = u[i] + step;
        let (_, gp) = objective.evaluate(&up).map_err(fail)?;
        up[i] = u[i] - step;
        let (_, gm) = objective.evaluate(&up).map_err(fail)?;
        up[i] = u[i];
        for r in 0..d {
            h[r * d + i] = (gp[r] - gm[r]) / (2.0 * step);
        }
    }
    if objective.positive {
        // −ln σ(u) has second derivative σ(u)(1 − σ(u)).
        for i in 0..d {
            let s = sigmoid(u[i]);
            h[i * d + i] += s * (1.0 - s);
        }
    }
    let factor = AffineFactor::from_precision(&h, d, settings.floor)?;
    // The target in u and its gradient.
    let target = |v: &[f64]| -> Result<(f64, Vec<f64>)> {
        let (mut c, mut g) = objective.evaluate(v).map_err(fail)?;
        if objective.positive {
            for (gi, &vi) in g.iter_mut().zip(v) {
                c -= ln_sigmoid(vi);
                *gi -= 1.0 - sigmoid(vi);
            }
        }
        Ok((c, g))
    };
    let (c0, g0) = target(u)?;
    let newton = factor.apply(&factor.apply_transpose(&g0));
    let mut t = 1.0;
    for _ in 0..5 {
        let cand: Vec<f64> = u.iter().zip(&newton).map(|(a, b)| a - t * b).collect();
        if let Ok((c, _)) = target(&cand) {
            if c < c0 {
                return Ok((factor, cand));
            }
        }
        t *= 0.5;
    }
    Ok((factor, u.to_vec()))
}
