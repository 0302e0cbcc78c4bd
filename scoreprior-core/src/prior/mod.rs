//! Image priors `log p(x)` and `∇x log p(x)` for batches, behind one trait ([`Prior`]).
//!
//! [`ScorePrior`]: `log p_{t0}(x) = log p_T(x_T) + ∫_{t0}^{T} div f̃(x_t, t) dt` by the
//! probability-flow ODE (see [`crate::pf_ode`]) and its gradient by the continuous adjoint
//! (see [`crate::adjoint`]). [`ClosedFormPrior`]: a density known in closed form, such as
//! `log N(x; μ, Σ)` ([`GaussianPrior`]) or a Gaussian mixture ([`MixturePrior`]). The DSM
//! surrogate ([`dsm`]), total variation ([`tv`]) and flow densities implement the same trait.

mod closed_form;
pub mod dsm;
mod score;
pub mod tv;

use rand::RngCore;

use crate::ode::Stats;
use crate::score::check_batch;
use crate::{Error, Result};

pub use closed_form::{ClosedForm, ClosedFormPrior, GaussianPrior, MixturePrior};
// The probability-flow solves' step-size controller lives in `ode`; re-exported where it was.
pub use crate::ode::{Controller, DEFAULT_DT0};
pub use score::{AdjointSteps, ScorePrior, ScorePriorConfig, Terminal};

/// Solver statistics of one prior evaluation (all zero for closed-form priors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PriorStats {
    /// The forward (log-density) solve.
    pub forward: Stats,
    /// The backward adjoint solve (zero for `log_prob`).
    pub adjoint: Stats,
}

impl PriorStats {
    /// Right-hand-side evaluations of both solves together. An adjoint evaluation costs one
    /// score+VJP call plus the trace-gradient term, a forward one score+`K` VJPs.
    pub fn nfe(&self) -> usize {
        self.forward.rhs_evaluations + self.adjoint.rhs_evaluations
    }
}

/// Per-image log-densities of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LogProb {
    /// `log p(x_i)`, one per image.
    pub log_prob: Vec<f64>,
    /// Solver statistics.
    pub stats: PriorStats,
}

/// Per-image log-densities and their gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct LogProbGrad {
    /// `log p(x_i)`, one per image.
    pub log_prob: Vec<f64>,
    /// `∇x log p(x_i)`, row-major `(n, D)`.
    pub grad: Vec<f64>,
    /// Solver statistics.
    pub stats: PriorStats,
}

/// A prior over flattened images of dimension `D`, evaluated on row-major `(n, D)` batches:
/// the one trait of every prior (the exact PF-ODE prior, its DSM surrogate, the closed-form
/// Gaussian and mixture, total variation, a flow density). DPI turns any of them into its
/// objective's prior term with [`crate::dpi::PriorEnergy`].
///
/// Randomness: [`Prior::log_prob`] and [`Prior::grad_log_prob`] are reproducible evaluations
/// (an estimator's randomness fixed by the prior's own seed: the PF-ODE prior's Hutchinson
/// seed, the DSM bound's draw seed), for log-density tables and tests;
/// [`Prior::grad_log_prob_with`] draws it from the caller's RNG, as each step of an
/// optimisation needs fresh probes or draws. Deterministic priors ignore the RNG.
///
/// ```
/// use scoreprior_core::prior::{GaussianPrior, Prior};
/// use rand::SeedableRng;
/// let p = GaussianPrior::new(vec![0.0, 0.0], &[1.0, 0.0, 0.0, 4.0]).unwrap();
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let g = p.grad_log_prob_with(&[1.0, 2.0], &mut rng).unwrap();
/// assert_eq!(g, p.grad_log_prob(&[1.0, 2.0]).unwrap());
/// assert_eq!(p.time_floor(), None);
/// ```
pub trait Prior {
    /// Dimension `D`.
    fn dim(&self) -> usize;
    /// `log p(x_i)` for each image (an estimate or a bound for stochastic priors, with their
    /// own fixed randomness).
    fn log_prob(&self, x: &[f64]) -> Result<LogProb>;
    /// `log p(x_i)` and `∇x log p(x_i)` for each image (fixed randomness, as `log_prob`).
    fn grad_log_prob(&self, x: &[f64]) -> Result<LogProbGrad>;
    /// `log p(x_i)` and `∇x log p(x_i)` with an estimator's randomness drawn from `rng` (a
    /// DPI step's). The default is [`Prior::grad_log_prob`], for deterministic priors.
    fn grad_log_prob_with(&self, x: &[f64], rng: &mut dyn RngCore) -> Result<LogProbGrad> {
        let _ = rng;
        self.grad_log_prob(x)
    }
    /// The current lower time limit of a score-based prior (`ε` of the DSM bound, `t0` of the
    /// PF-ODE prior), or `None` for priors without one. A prior that returns `Some` accepts
    /// [`Prior::set_time_floor`], which noise-level continuation uses.
    fn time_floor(&self) -> Option<f64> {
        None
    }
    /// Moves the lower time limit (see [`Prior::time_floor`]).
    ///
    /// # Errors
    /// If the prior has no time floor or `t0` is outside what it supports.
    fn set_time_floor(&self, t0: f64) -> Result<()> {
        Err(Error::unsupported(format!("this prior has no time floor to set (asked for {t0})")))
    }
}

/// `Prior` for a pointer to a prior (`Box<P>`, `&P`): every method forwarded to the pointee.
macro_rules! forward_prior {
    ($($ptr:ty),*) => {$(
        impl<P: Prior + ?Sized> Prior for $ptr {
            fn dim(&self) -> usize {
                (**self).dim()
            }
            fn log_prob(&self, x: &[f64]) -> Result<LogProb> {
                (**self).log_prob(x)
            }
            fn grad_log_prob(&self, x: &[f64]) -> Result<LogProbGrad> {
                (**self).grad_log_prob(x)
            }
            fn grad_log_prob_with(&self, x: &[f64], rng: &mut dyn RngCore) -> Result<LogProbGrad> {
                (**self).grad_log_prob_with(x, rng)
            }
            fn time_floor(&self) -> Option<f64> {
                (**self).time_floor()
            }
            fn set_time_floor(&self, t0: f64) -> Result<()> {
                (**self).set_time_floor(t0)
            }
        }
    )*};
}
forward_prior!(Box<P>, &P);

/// `log p` (and, with `with_grad`, `∇x log p`) of many images, evaluated in batches of at
/// most `batch` images (one ODE state each, bounding memory and keeping an image's result
/// independent of images in other batches); `on_batch(images_done, &so_far)` runs after each
/// batch (progress lines). Statistics are summed over the batches; `grad` is empty without
/// `with_grad`.
///
/// ```
/// use scoreprior_core::prior::{evaluate_in_batches, GaussianPrior, Prior};
/// use scoreprior_core::score::Gaussian;
/// use scoreprior_core::sde::{AnySde, VpSde};
/// let g = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], AnySde::Vp(VpSde::default())).unwrap();
/// let p = GaussianPrior::from_gaussian(g);
/// let x = [0.0, 0.0, 1.0, 1.0, 2.0, 0.0];
/// let mut calls = 0;
/// let r = evaluate_in_batches(&p, &x, 2, true, &mut |_, _| calls += 1).unwrap();
/// assert_eq!((r.log_prob.len(), r.grad.len(), calls), (3, 6, 2));
/// assert_eq!(r.log_prob, p.log_prob(&x).unwrap().log_prob);
/// ```
///
/// # Errors
/// `batch == 0`, a batch of the wrong shape, and the prior's errors.
pub fn evaluate_in_batches(
    prior: &dyn Prior,
    x: &[f64],
    batch: usize,
    with_grad: bool,
    on_batch: &mut dyn FnMut(usize, &LogProbGrad),
) -> Result<LogProbGrad> {
    if batch == 0 {
        return Err(Error::count_out_of_range("batch size", batch, "at least 1"));
    }
    let d = prior.dim();
    check_batch(x, d, "x")?;
    let mut acc = LogProbGrad { log_prob: Vec::new(), grad: Vec::new(), stats: PriorStats::default() };
    for chunk in x.chunks(batch * d) {
        if with_grad {
            let r = prior.grad_log_prob(chunk)?;
            acc.log_prob.extend(r.log_prob);
            acc.grad.extend(r.grad);
            acc.stats.forward += r.stats.forward;
            acc.stats.adjoint += r.stats.adjoint;
        } else {
            let r = prior.log_prob(chunk)?;
            acc.log_prob.extend(r.log_prob);
            acc.stats.forward += r.stats.forward;
        }
        on_batch(acc.log_prob.len(), &acc);
    }
    Ok(acc)
}
