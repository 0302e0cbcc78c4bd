//! Energy terms from the library's models: the likelihood `−log p(y|x)` of a
//! [`ForwardModel`](crate::forward::ForwardModel), `−log p(x)` of any
//! [`Prior`](crate::prior::Prior), and the score-based prior with fresh probes each step.

use super::*;

/// A measurement `y` under a [`ForwardModel`](crate::forward::ForwardModel) as the DPI data
/// term `e(x) = −log p(y|x)`, `∇e = −∇x log p(y|x)`.
#[derive(Debug)]
pub struct LikelihoodEnergy<F> {
    model: F,
    y: Vec<f64>,
}

impl<F: crate::forward::ForwardModel> LikelihoodEnergy<F> {
    /// The data term of measurement `y` (one measurement of length `M`).
    pub fn new(model: F, y: Vec<f64>) -> Result<Self> {
        if y.len() != model.output_dim() {
            return Err(Error::shape("measurement y", model.output_dim(), y.len()));
        }
        if let Some(index) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "measurement y", index });
        }
        Ok(Self { model, y })
    }
    /// The forward model.
    pub fn model(&self) -> &F {
        &self.model
    }
    /// The measurement.
    pub fn y(&self) -> &[f64] {
        &self.y
    }
}

impl<F: crate::forward::ForwardModel> Energy for LikelihoodEnergy<F> {
    fn dim(&self) -> usize {
        self.model.input_dim()
    }
    fn energy_and_grad(&self, x: &[f64], _rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
        let ll = self.model.log_likelihood(&self.y, x)?;
        let g = self.model.grad_log_likelihood(&self.y, x)?;
        write_negated(&ll, &g, energy, grad)
    }
}

/// A [`Prior`](crate::prior::Prior) as a DPI energy `e(x) = −log p(x)`, `∇e = −∇ log p(x)`.
///
/// ```
/// use scoreprior_core::dpi::{Energy, PriorEnergy};
/// use scoreprior_core::prior::GaussianPrior;
/// let e = PriorEnergy::new(GaussianPrior::new(vec![0.0, 0.0], &[1.0, 0.0, 0.0, 1.0]).unwrap());
/// let (mut v, mut g) = (vec![0.0], vec![0.0; 2]);
/// e.energy_and_grad(&[1.0, 2.0], &mut rand::rngs::mock::StepRng::new(0, 1), &mut v, &mut g).unwrap();
/// assert_eq!(g, vec![1.0, 2.0]);
/// ```
#[derive(Debug)]
pub struct PriorEnergy<P> {
    prior: P,
}

impl<P: crate::prior::Prior> PriorEnergy<P> {
    /// Wraps a prior.
    pub fn new(prior: P) -> Self {
        Self { prior }
    }
    /// The wrapped prior.
    pub fn prior(&self) -> &P {
        &self.prior
    }
}

impl<P: crate::prior::Prior> Energy for PriorEnergy<P> {
    fn dim(&self) -> usize {
        self.prior.dim()
    }
    fn energy_and_grad(&self, x: &[f64], _rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
        let r = self.prior.grad_log_prob(x)?;
        write_negated(&r.log_prob, &r.grad, energy, grad)
    }
}

fn write_negated(lp: &[f64], g: &[f64], energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
    if lp.len() != energy.len() || g.len() != grad.len() {
        return Err(Error::shape("prior output", energy.len(), lp.len()));
    }
    for (e, v) in energy.iter_mut().zip(lp) {
        *e = -v;
    }
    for (o, v) in grad.iter_mut().zip(g) {
        *o = -v;
    }
    Ok(())
}

/// The score-based prior ([`ScorePrior`](crate::prior::ScorePrior)) as a DPI energy, drawing
/// fresh Hutchinson probes at every step (as the reference code: one probe set per loss
/// evaluation, shared by the batch and the whole solve). With the exact trace nothing is
/// redrawn. Also records the solver work of the last call.
#[derive(Debug)]
pub struct ScorePriorEnergy {
    prior: crate::prior::ScorePrior,
    /// The current lower time limit `t0`, as `f64` bits: a time-floor schedule moves it
    /// through `&self`, and each evaluation runs on a copy of the configuration with it (the
    /// configuration itself is never mutated, so no lock is held during a solve).
    t0: std::sync::atomic::AtomicU64,
    last: std::sync::Mutex<crate::prior::PriorStats>,
}

impl ScorePriorEnergy {
    /// Wraps a score-based prior.
    pub fn new(prior: crate::prior::ScorePrior) -> Self {
        let t0 = std::sync::atomic::AtomicU64::new(prior.config().t0.to_bits());
        Self { prior, t0, last: Default::default() }
    }
    /// Solver statistics of the last evaluation (forward and adjoint solves).
    pub fn last_stats(&self) -> crate::prior::PriorStats {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn t0(&self) -> f64 {
        f64::from_bits(self.t0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

impl Energy for ScorePriorEnergy {
    fn dim(&self) -> usize {
        use crate::prior::Prior;
        self.prior.dim()
    }
    fn energy_and_grad(&self, x: &[f64], rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
        use crate::prior::Prior;
        // A copy of the prior (an `Arc` to the model and the configuration) with this
        // step's probe seed and time floor.
        let mut p = self.prior.clone();
        p.config_mut().t0 = self.t0();
        if let crate::divergence::Divergence::Hutchinson(h) = &mut p.config_mut().divergence {
            h.seed = rng.next_u64();
        }
        let r = p.grad_log_prob(x)?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = r.stats;
        write_negated(&r.log_prob, &r.grad, energy, grad)
    }

    fn time_floor(&self) -> Option<f64> {
        Some(self.t0())
    }

    fn set_time_floor(&self, t0: f64) -> Result<()> {
        let t1 = self.prior.config().t1;
        if !(t0.is_finite() && t0 > 0.0 && t0 < t1) {
            return Err(Error::invalid(format!("PF-ODE prior: time floor t0 must be in (0, {t1}), got {t0}")));
        }
        self.t0.store(t0.to_bits(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}
