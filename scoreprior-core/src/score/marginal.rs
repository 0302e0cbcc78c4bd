//! Models that know their perturbed marginal density `p_t(x)` in closed form, not only its
//! score `∇x log p_t`. The analytic models implement it; it is the ground truth for tests and
//! lets the probability-flow log-density use the exact `p_T` as its terminal density.

use crate::Result;

/// A family of densities `p_t` (the data distribution pushed through an SDE) with closed-form
/// log-density and gradient.
pub trait MarginalDensity: Send + Sync {
    /// Dimension `D` of one flattened image.
    fn dim(&self) -> usize;
    /// `out[i] = log p_t(x_i)` for a row-major `(n, D)` batch.
    fn marginal_log_prob(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<()>;
    /// `out[i,:] = ∇x log p_t(x_i)` (the exact score), `(n, D)`.
    fn marginal_grad_log_prob(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<()>;
}
