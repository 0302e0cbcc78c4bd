//! Log-probabilities (and gradients) of image batches under a score-based prior:
//! `log p_{t0}(x) = log p_T(x_T) + ∫_{t0}^{T} div f̃(x_t, t) dt` by the probability-flow ODE,
//! batch by batch (one ODE state per batch), `∇x log p` by the continuous adjoint.
//!
//! Bits per dimension are those of the continuous density of the input values,
//! `bpd = −log p(x) / (D ln 2)`; for 8-bit images scaled to `[0, 1]` ("dequantized") `log2 256
//! = 8` bits are added (`P(bin) ≈ p(x)·256^{−D}`).

use std::path::Path;
use std::time::Instant;

use scoreprior_core::io::{atomic_write, IoError};
use scoreprior_core::ode::Stats;
use scoreprior_core::prior::{evaluate_in_batches, LogProbGrad, Prior, PriorStats};
use serde::Serialize;

use crate::experiment::Result;
use crate::monitor::Monitor;

/// Bits per dimension of a log-density (see the module docs).
///
/// ```
/// // The uniform density on [0, 1]^D: 0 bits/dim, 8 once dequantised.
/// assert_eq!(scoreprior::logprob::bits_per_dim(0.0, 256, true), 8.0);
/// ```
pub fn bits_per_dim(log_prob: f64, d: usize, dequantized: bool) -> f64 {
    -log_prob / (d as f64 * std::f64::consts::LN_2) + if dequantized { 8.0 } else { 0.0 }
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// `log p(x)` per image.
    pub log_prob: Vec<f64>,
    /// `∇x log p(x)`, row-major `(N, D)` (empty unless asked for).
    pub grad: Vec<f64>,
    /// Solver statistics summed over batches.
    pub stats: PriorStats,
    /// Number of batches (ODE solves).
    pub batches: usize,
    /// Wall time of the solves in seconds.
    pub wall_seconds: f64,
}

/// `log p` (and with `grad`, `∇x log p`) of `images` (row-major `(N, D)`) under `prior`,
/// `batch` images per ODE solve, reporting one progress stage labelled `logprob` with a step
/// per batch.
///
/// # Errors
/// A zero `batch`, images that are not whole rows of the prior's dimension, the prior's errors.
///
/// ```
/// use scoreprior::core::prior::{ScorePrior, ScorePriorConfig};
/// use scoreprior::core::score::Gaussian;
/// use scoreprior::core::sde::{AnySde, VpSde};
/// let sde = AnySde::Vp(VpSde::default());
/// let q = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], sde).unwrap();
/// let prior = ScorePrior::new(q, ScorePriorConfig { sde, ..ScorePriorConfig::default() }).unwrap();
/// let mut quiet = scoreprior::monitor::Silent;
/// let e = scoreprior::logprob::evaluate(&prior, &[0.1, 0.2, -0.3, 0.4], 1, false, &mut quiet).unwrap();
/// assert_eq!((e.log_prob.len(), e.batches), (2, 2));
/// ```
pub fn evaluate(
    prior: &dyn Prior,
    images: &[f64],
    batch: usize,
    grad: bool,
    monitor: &mut dyn Monitor,
) -> Result<Evaluation> {
    let start = Instant::now();
    // The library checks batch and shape; this only sizes the progress stage.
    let n = images.len() / prior.dim().max(1);
    monitor.stage("logprob", n.div_ceil(batch.max(1)) as u64);
    let mut batches = 0;
    let r = evaluate_in_batches(prior, images, batch, grad, &mut |done, so_far| {
        batches += 1;
        monitor.update(batches as u64, &|| {
            let mean = so_far.log_prob.iter().sum::<f64>() / done.max(1) as f64;
            format!("{done} images, mean log p {mean:.2}, NFE {}", so_far.stats.nfe())
        });
    })?;
    monitor.finish();
    let LogProbGrad { log_prob, grad, stats } = r;
    Ok(Evaluation { log_prob, grad, stats, batches, wall_seconds: start.elapsed().as_secs_f64() })
}

/// The estimator's settings, as [`Report`] records them.
#[derive(Debug, Clone, Serialize)]
pub struct Estimator {
    /// The prior as named on the command line (`gaussian`, `gmm` or a checkpoint path).
    pub prior: String,
    /// The SDE's name (`vp`, `subvp`, `ve`).
    pub sde: String,
    /// The Runge–Kutta solver.
    pub solver: String,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// The fixed step, for solvers without an error estimate.
    pub dt: Option<f64>,
    /// Lower integration limit.
    pub t0: f64,
    /// The terminal density, in words ([`Estimator::terminal_words`]).
    pub terminal: &'static str,
    /// The divergence estimator, as JSON.
    pub trace: serde_json::Value,
}

impl Estimator {
    /// The terminal density in words: the exact `p_T` of an analytic prior, or the SDE's.
    pub fn terminal_words(exact: bool) -> &'static str {
        if exact {
            "exact p_T of the analytic prior"
        } else {
            "SDE prior N(0, sigma_T^2 I)"
        }
    }
}

/// The JSON record `scoreprior logprob` writes: the estimator's settings, then the values.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How the values were computed.
    #[serde(flatten)]
    pub estimator: Estimator,
    /// Shape of the image array.
    pub shape: Vec<usize>,
    /// Values per image `D`.
    pub dim: usize,
    /// How `bits_per_dim` was computed, in words.
    pub bits_per_dim_definition: &'static str,
    /// `log p(x)` per image.
    pub log_prob: Vec<f64>,
    /// Bits per dimension per image.
    pub bits_per_dim: Vec<f64>,
    /// Right-hand-side evaluations of all solves.
    pub nfe: usize,
    /// Accepted steps, forward and adjoint.
    pub accepted_steps: usize,
    /// Rejected steps, forward and adjoint.
    pub rejected_steps: usize,
    /// Forward-solve statistics.
    pub forward: Stats,
    /// Adjoint-solve statistics (with gradients).
    pub adjoint: Option<Stats>,
    /// Where the gradients were written.
    pub grad: Option<String>,
    /// Number of batches.
    pub batches: usize,
    /// Wall time of the solves in seconds.
    pub wall_seconds: f64,
}

impl Report {
    /// The record of `e`, for images of array shape `shape` (first axis: the image);
    /// `grad` says where the gradients went (and so whether the adjoint ran).
    pub fn new(estimator: Estimator, shape: Vec<usize>, e: Evaluation, dequantized: bool, grad: Option<&Path>) -> Self {
        let dim = shape.iter().skip(1).product();
        Self {
            estimator,
            bits_per_dim: e.log_prob.iter().map(|&l| bits_per_dim(l, dim, dequantized)).collect(),
            shape,
            dim,
            bits_per_dim_definition: if dequantized {
                "-log p(x) / (D ln 2) + 8 (8-bit data scaled to [0,1], uniformly dequantised)"
            } else {
                "-log p(x) / (D ln 2) (continuous density of the input values)"
            },
            log_prob: e.log_prob,
            nfe: e.stats.nfe(),
            accepted_steps: e.stats.forward.accepted_steps + e.stats.adjoint.accepted_steps,
            rejected_steps: e.stats.forward.rejected_steps + e.stats.adjoint.rejected_steps,
            forward: e.stats.forward,
            adjoint: grad.is_some().then_some(e.stats.adjoint),
            grad: grad.map(|p| p.display().to_string()),
            batches: e.batches,
            wall_seconds: e.wall_seconds,
        }
    }

    /// Writes the record as pretty JSON, atomically.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| IoError::encode(path, "JSON", e))?;
        Ok(atomic_write(path, json.as_bytes())?)
    }

    /// The one-line summary `scoreprior logprob` prints (`out`: the record's file).
    pub fn summary(&self, out: &Path) -> String {
        let n = self.log_prob.len();
        let mean_lp = self.log_prob.iter().sum::<f64>() / n as f64;
        let mean_bpd = self.bits_per_dim.iter().sum::<f64>() / n as f64;
        format!(
            "{n} images (D = {}): mean log p = {mean_lp:.4}, mean bits/dim = {mean_bpd:.4}; NFE {} ({} accepted, {} \
             rejected steps), {:.2} s → {}",
            self.dim,
            self.nfe,
            self.accepted_steps,
            self.rejected_steps,
            self.wall_seconds,
            out.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_per_dim_of_uniform_density_is_zero() {
        // The uniform density on [0,1]^D has log p = 0: 0 bits/dim, 8 once dequantised.
        assert_eq!(bits_per_dim(0.0, 256, false), 0.0);
        assert_eq!(bits_per_dim(0.0, 256, true), 8.0);
        // log p = −D ln 2 is one bit per dimension.
        assert!((bits_per_dim(-(10.0 * std::f64::consts::LN_2), 10, false) - 1.0).abs() < 1e-15);
    }
}
