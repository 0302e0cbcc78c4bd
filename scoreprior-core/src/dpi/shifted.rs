//! A posterior moved by a fixed image: `x = u + b` for every output `u` of another
//! [`Posterior`]. A translation has unit Jacobian, so `log q(x) = log q(u)`, `∂L/∂u = ∂L/∂x`
//! and `∇x log q(x) = ∇u log q(u)` at `u = x − b`. DPI uses it to start the flow around an
//! image (eht-imaging's Gaussian starting image) instead of a flat level: the flow's scalar
//! ActNorm can only place a constant image.

use super::*;

/// Any posterior followed by `x = u + offset` (see the module documentation).
///
/// ```
/// use scoreprior_core::dpi::{Posterior, ShiftedPosterior, Batch};
/// use rand::RngCore;
/// struct Zero(usize);
/// impl Posterior for Zero {
///     fn dim(&self) -> usize { self.0 }
///     fn sample_for_training(&mut self, n: usize, r: &mut dyn RngCore) -> scoreprior_core::Result<Batch> { self.sample(n, r) }
///     fn backward(&mut self, _: &[f64], _: &[f64]) -> scoreprior_core::Result<()> { Ok(()) }
///     fn apply_update(&mut self, _: f64, _: Option<f64>) -> scoreprior_core::Result<f64> { Ok(0.0) }
///     fn sample(&mut self, n: usize, _: &mut dyn RngCore) -> scoreprior_core::Result<Batch> {
///         Ok(Batch { n, dim: self.0, x: vec![0.0; n * self.0], log_q: vec![-1.0; n] })
///     }
///     fn save_state(&self) -> scoreprior_core::Result<Vec<u8>> { Ok(vec![]) }
///     fn load_state(&mut self, _: &[u8]) -> scoreprior_core::Result<()> { Ok(()) }
/// }
/// let mut q = ShiftedPosterior::new(Zero(2), vec![0.5, -1.0]).unwrap();
/// let b = q.sample(1, &mut rand::rngs::mock::StepRng::new(0, 1)).unwrap();
/// assert_eq!((b.x, b.log_q), (vec![0.5, -1.0], vec![-1.0]));
/// ```
#[derive(Debug)]
pub struct ShiftedPosterior<P> {
    inner: P,
    offset: Vec<f64>,
}

impl<P: Posterior> ShiftedPosterior<P> {
    /// Wraps `inner`; `offset` must have `inner.dim()` finite entries.
    pub fn new(inner: P, offset: Vec<f64>) -> Result<Self> {
        check_finite_vector(&offset, inner.dim(), "shifted posterior offset")?;
        Ok(Self { inner, offset })
    }
    /// The wrapped posterior.
    pub fn inner(&self) -> &P {
        &self.inner
    }
    /// The fixed offset `b`.
    pub fn offset(&self) -> &[f64] {
        &self.offset
    }
    /// The wrapped posterior, unwrapped.
    pub fn into_inner(self) -> P {
        self.inner
    }
    fn shift(&self, mut b: Batch) -> Batch {
        for xi in b.x.chunks_mut(b.dim) {
            xi.iter_mut().zip(&self.offset).for_each(|(v, o)| *v += o);
        }
        b
    }
}

impl<P: Posterior> Posterior for ShiftedPosterior<P> {
    forward_to_inner!(shift);
    fn backward(&mut self, grad_x: &[f64], grad_log_q: &[f64]) -> Result<()> {
        self.inner.backward(grad_x, grad_log_q)
    }
    fn grad_log_q(&mut self, x: &[f64], n: usize) -> Result<Vec<f64>> {
        let d = self.dim();
        if x.len() != n * d {
            return Err(Error::shape("shifted posterior grad_log_q input", n * d, x.len()));
        }
        let u: Vec<f64> = x.iter().enumerate().map(|(k, v)| v - self.offset[k % d]).collect();
        self.inner.grad_log_q(&u, n)
    }
}
