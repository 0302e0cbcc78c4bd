//! The two seams of DPI: a [`Posterior`] `q_θ` that samples with `log q` and back-propagates
//! `∂L/∂x`, `∂L/∂log q` into its parameters, and [`Energy`] terms `e(x)` (negative
//! log-densities up to constants) with their gradients.

use super::*;

/// A batch drawn from a [`Posterior`]: `x` is row-major `(n, D)`, `log_q[i] = log q(x_i)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Number of samples `n`.
    pub n: usize,
    /// Dimension `D` of one sample.
    pub dim: usize,
    /// Samples, row-major `(n, D)`.
    pub x: Vec<f64>,
    /// `log q(x_i)` per sample.
    pub log_q: Vec<f64>,
}

/// A trainable sampler with exact log-density: the variational family of DPI.
///
/// Training protocol per step: [`sample_for_training`](Posterior::sample_for_training)
/// (records what back-propagation needs), then [`backward`](Posterior::backward) with
/// `∂L/∂x` and `∂L/∂log q` (gradients accumulate across calls), then
/// [`apply_update`](Posterior::apply_update).
pub trait Posterior {
    /// Dimension `D` of one sample.
    fn dim(&self) -> usize;
    /// Draws `n` samples with gradient tracking (training mode).
    fn sample_for_training(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch>;
    /// Back-propagates `∂L/∂x` (`(n, D)`) and `∂L/∂log q` (`(n)`) of the last training batch
    /// into the parameter gradients (accumulating).
    fn backward(&mut self, grad_x: &[f64], grad_log_q: &[f64]) -> Result<()>;
    /// One optimiser step with learning rate `lr`, after scaling the accumulated gradient to
    /// global norm at most `max_grad_norm`; clears the gradients. Returns the norm before clipping.
    fn apply_update(&mut self, lr: f64, max_grad_norm: Option<f64>) -> Result<f64>;
    /// Draws `n` samples without gradient tracking (evaluation mode).
    fn sample(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch>;
    /// `∇x log q(x)` of the current sampler at `n` row-major points `x` (`(n, D)`), without
    /// touching the accumulated gradients. Only [`DpiConfig::score_function_weight`] needs it;
    /// the default reports it unsupported.
    fn grad_log_q(&mut self, x: &[f64], n: usize) -> Result<Vec<f64>> {
        let _ = (x, n);
        Err(Error::unsupported(
            "this posterior cannot evaluate the gradient of its log-density; set score_function_weight to 0",
        ))
    }
    /// Serialises parameters, optimiser state and anything needed to resume.
    fn save_state(&self) -> Result<Vec<u8>>;
    /// Restores what [`save_state`](Posterior::save_state) wrote.
    fn load_state(&mut self, bytes: &[u8]) -> Result<()>;
}

/// A term `e(x)` of the DPI objective with its gradient: typically a negative log-density
/// (up to a constant) such as `−log p(y|x)` or `−log p(x)`.
pub trait Energy {
    /// Dimension `D` of one sample.
    fn dim(&self) -> usize;
    /// For the batch `x` (`(n, D)`) writes `energy[i] = e(x_i)` and `grad[i,:] = ∇e(x_i)`.
    /// Stochastic estimators draw from `rng`. A term that can only give gradients writes
    /// `NaN` energies (they are then only missing from the logs, not from the optimisation).
    fn energy_and_grad(&self, x: &[f64], rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()>;

    /// The current lower time limit of a score-based prior (`ε` of the DSM bound, `t0` of the
    /// PF-ODE prior), or `None` for terms without one. A term that returns `Some` accepts
    /// [`Energy::set_time_floor`], which a [`TimeFloorSchedule`] uses for noise-level
    /// continuation.
    fn time_floor(&self) -> Option<f64> {
        None
    }

    /// Moves the lower time limit (see [`Energy::time_floor`]).
    ///
    /// # Errors
    /// If the term has no time floor or `t0` is outside what it supports.
    fn set_time_floor(&self, t0: f64) -> Result<()> {
        Err(Error::unsupported(format!("this energy has no time floor to set (asked for {t0})")))
    }
}
