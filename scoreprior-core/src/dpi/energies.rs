//! Energy terms from the library's models: the likelihood `−log p(y|x)` of a
//! [`ForwardModel`](crate::forward::ForwardModel), `−log p(x)` of any
//! [`Prior`](crate::prior::Prior) (the exact score-based prior draws fresh probes each step
//! from the step's RNG).

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
        check_finite_vector(&y, model.output_dim(), "measurement y")?;
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

/// Any [`Prior`](crate::prior::Prior) as the DPI energy `e(x) = −log p(x)`,
/// `∇e = −∇ log p(x)`: the one adapter from priors to objective terms. Each evaluation calls
/// [`Prior::grad_log_prob_with`](crate::prior::Prior::grad_log_prob_with) with the step's
/// RNG (fresh Hutchinson probes or DSM draws), and the time floor is the prior's.
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
pub struct PriorEnergy<P: ?Sized> {
    prior: P,
}

impl<P: crate::prior::Prior> PriorEnergy<P> {
    /// Wraps a prior.
    pub fn new(prior: P) -> Self {
        Self { prior }
    }
}

impl<P: crate::prior::Prior + ?Sized> PriorEnergy<P> {
    /// The wrapped prior.
    pub fn prior(&self) -> &P {
        &self.prior
    }
}

impl<P: crate::prior::Prior + ?Sized> Energy for PriorEnergy<P> {
    fn dim(&self) -> usize {
        self.prior.dim()
    }
    fn energy_and_grad(&self, x: &[f64], rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
        let r = self.prior.grad_log_prob_with(x, rng)?;
        write_negated(&r.log_prob, &r.grad, energy, grad)
    }
    fn time_floor(&self) -> Option<f64> {
        self.prior.time_floor()
    }
    fn set_time_floor(&self, t0: f64) -> Result<()> {
        self.prior.set_time_floor(t0)
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
