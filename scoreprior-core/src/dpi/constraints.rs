//! Extra DPI energy terms for imaging: the total-flux constraint `e(x) = w·(Σ_i x_i − F)²`
//! (`∇e = 2w(Σx − F)·1`), as the reference interferometry code adds, and [`EnergySum`], the sum
//! of several terms (its time floor is that of the first term that has one).

use super::*;

/// `w·(Σ_i x_i − F)²`: pulls the total flux of every sample toward `F`.
///
/// ```
/// use scoreprior_core::dpi::{Energy, FluxConstraint};
/// let c = FluxConstraint::new(3, 2.0, 1.0).unwrap();
/// let (mut e, mut g) = (vec![0.0], vec![0.0; 3]);
/// c.energy_and_grad(&[0.5, 0.5, 1.0], &mut rand::rngs::mock::StepRng::new(0, 1), &mut e, &mut g).unwrap();
/// assert_eq!(e, vec![2.0]); // 2·(2 − 1)²
/// assert_eq!(g, vec![4.0; 3]);
/// assert!(FluxConstraint::new(3, -1.0, 1.0).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FluxConstraint {
    dim: usize,
    weight: f64,
    target: f64,
}

impl FluxConstraint {
    /// The constraint on `dim` pixels with weight `weight ≥ 0` and target flux `target > 0`.
    pub fn new(dim: usize, weight: f64, target: f64) -> Result<Self> {
        if dim == 0 {
            return Err(Error::empty("flux constraint: the image", "it has no pixels"));
        }
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(Error::out_of_range("flux constraint: the weight", weight, "finite and ≥ 0"));
        }
        if !(target.is_finite() && target > 0.0) {
            return Err(Error::out_of_range("flux constraint: the target flux", target, "positive"));
        }
        Ok(Self { dim, weight, target })
    }
    /// The weight `w`.
    pub fn weight(&self) -> f64 {
        self.weight
    }
    /// The target flux `F`.
    pub fn target(&self) -> f64 {
        self.target
    }
}

impl Energy for FluxConstraint {
    fn dim(&self) -> usize {
        self.dim
    }
    fn energy_and_grad(&self, x: &[f64], _rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
        let d = self.dim;
        if x.len() != energy.len() * d || grad.len() != x.len() {
            return Err(Error::shape("flux constraint input", energy.len() * d, x.len()));
        }
        for ((xi, e), g) in x.chunks(d).zip(energy.iter_mut()).zip(grad.chunks_mut(d)) {
            let r = xi.iter().sum::<f64>() - self.target;
            *e = self.weight * r * r;
            g.fill(2.0 * self.weight * r);
        }
        Ok(())
    }
}

/// The sum of energy terms of one dimension; gradient-only terms (NaN energies) make the sum
/// NaN as well. The time floor (noise-level continuation) is that of the first term with one.
pub struct EnergySum {
    terms: Vec<Box<dyn Energy>>,
}

impl std::fmt::Debug for EnergySum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnergySum").field("terms", &self.terms.len()).finish()
    }
}

impl EnergySum {
    /// The sum of `terms` (at least one, all of one dimension).
    pub fn new(terms: Vec<Box<dyn Energy>>) -> Result<Self> {
        let d = terms.first().ok_or_else(|| Error::empty("the sum of energies", "give at least one term"))?.dim();
        if let Some(t) = terms.iter().find(|t| t.dim() != d) {
            return Err(Error::shape("energy term", d, t.dim()));
        }
        Ok(Self { terms })
    }
}

impl Energy for EnergySum {
    fn dim(&self) -> usize {
        self.terms[0].dim()
    }
    fn energy_and_grad(&self, x: &[f64], rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
        energy.fill(0.0);
        grad.fill(0.0);
        let (mut e, mut g) = (vec![0.0; energy.len()], vec![0.0; grad.len()]);
        for t in &self.terms {
            t.energy_and_grad(x, rng, &mut e, &mut g)?;
            energy.iter_mut().zip(&e).for_each(|(a, b)| *a += b);
            grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
        }
        Ok(())
    }
    fn time_floor(&self) -> Option<f64> {
        self.terms.iter().find_map(|t| t.time_floor())
    }
    fn set_time_floor(&self, t0: f64) -> Result<()> {
        match self.terms.iter().find(|t| t.time_floor().is_some()) {
            Some(t) => t.set_time_floor(t0),
            None => Err(Error::unsupported(format!("no term of this sum has a time floor to set (asked for {t0})"))),
        }
    }
}
