//! A measurement model `y = A(x) + n`: a [`Chain`] of primitives and a [`Noise`], batched
//! over images in parallel. `log p(y | x) = −½ χ²(y, A(x))`, and its gradient is the chain's
//! VJP of `∂ log p / ∂A(x)` (the adjoint `Aᵀ Σ⁻¹ (y − Ax)` for linear Gaussian models).

use rayon::prelude::*;

use super::{batch_rows, broadcast_rows, ops, Chain, ForwardModel, Noise, NoiseSpec, Shape};
use crate::{Error, Result};

/// A chain of primitives plus per-measurement noise; implements [`ForwardModel`].
///
/// # Examples
/// ```
/// use scoreprior_core::forward::{ForwardModel, Model};
/// use rand::SeedableRng;
/// let m = Model::denoising([1, 4, 4], 0.2).unwrap();
/// let x = vec![0.5; 2 * 16]; // a batch of two images
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let y = m.simulate(&x, &mut rng).unwrap();
/// assert_eq!(y.len(), 32);
/// let ll = m.log_likelihood(&y, &x).unwrap();
/// assert_eq!(ll.len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct Model {
    chain: Chain,
    noise: Noise,
    /// The chain's [`Chain::observed`]: unobserved outputs get no noise and no likelihood.
    observed: Option<Vec<bool>>,
}

impl Model {
    /// `chain` with `noise` on its output; the lengths must agree.
    pub fn new(chain: Chain, noise: Noise) -> Result<Self> {
        let m = chain.output_shape().len();
        if noise.len() != m {
            return Err(Error::shape("noise levels", m, noise.len()));
        }
        let observed = chain.observed();
        Ok(Model { chain, noise, observed })
    }
    /// `chain` with noise given by a spec resolved to the chain's output length.
    ///
    /// Complex Gaussian noise (`σ/√2` on each real and imaginary part) needs a complex
    /// output: on real values it would silently use `σ/√2`, so it is an error there.
    pub fn with_spec(chain: Chain, noise: &NoiseSpec) -> Result<Self> {
        if let NoiseSpec::ComplexGaussian { sigma } = noise {
            if !chain.output_is_complex() {
                return Err(Error::inconsistent(
                    format!("noise complex_gaussian(sigma={sigma})"),
                    format!(
                        "it puts sigma/√2 on each real and imaginary part of complex data, but `{}` has \
                         real-valued output; use gaussian(sigma={sigma})",
                        chain.describe()
                    ),
                ));
            }
        }
        let noise = noise.resolve(chain.output_shape().len())?;
        Self::new(chain, noise)
    }
    /// Denoising: `y = x + n`, `n ~ N(0, σ² I)` (the reference `Denoising`).
    pub fn denoising(shape: impl Into<Shape>, sigma: f64) -> Result<Self> {
        let shape = shape.into();
        Self::with_spec(Chain::new(shape).then(ops::Identity::new(shape))?, &NoiseSpec::Gaussian { sigma })
    }
    /// Gaussian deblurring: `y = k_σ * x + n` with a `size × size` Gaussian kernel and
    /// reflecting boundary.
    pub fn gaussian_deblurring(shape: impl Into<Shape>, blur_sigma: f64, size: usize, sigma: f64) -> Result<Self> {
        let shape = shape.into();
        let conv = ops::Conv2d::new(shape, ops::Kernel::gaussian(blur_sigma, size)?, ops::Boundary::Reflect)?;
        Self::with_spec(Chain::new(shape).then(conv)?, &NoiseSpec::Gaussian { sigma })
    }
    /// The reference code's "deblurring": keep the top-left `k × k` block of the unnormalised,
    /// unshifted 2-D FFT of each channel, complex noise of level `sigma`.
    pub fn dft_lowpass(shape: impl Into<Shape>, k: usize, sigma: f64) -> Result<Self> {
        let shape = shape.into();
        Self::with_spec(Chain::new(shape).then(ops::DftLowpass::new(shape, k)?)?, &NoiseSpec::ComplexGaussian { sigma })
    }

    /// The operator chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }
    /// The noise.
    pub fn noise(&self) -> &Noise {
        &self.noise
    }
    /// Input shape `[C, H, W]`.
    pub fn input_shape(&self) -> Shape {
        self.chain.input_shape()
    }
    /// Output shape.
    pub fn output_shape(&self) -> Shape {
        self.chain.output_shape()
    }
    /// `y` with the prediction `f` at unobserved entries, so that they add nothing to χ² or
    /// its gradient whatever a stored `y` holds there.
    fn only_observed<'a>(&self, y: &'a [f64], f: &[f64]) -> std::borrow::Cow<'a, [f64]> {
        match &self.observed {
            None => std::borrow::Cow::Borrowed(y),
            Some(o) => std::borrow::Cow::Owned(
                y.iter().zip(f).zip(o).map(|((&yv, &fv), &b)| if b { yv } else { fv }).collect(),
            ),
        }
    }
    /// `chain | noise` in spec syntax.
    pub fn describe(&self) -> String {
        self.chain.describe()
    }
}

impl ForwardModel for Model {
    fn denoising_sigma(&self) -> Option<f64> {
        // Every primitive an identity (or none) and one real Gaussian σ on every entry.
        let identity = self.chain.ops().iter().all(|o| o.describe() == "identity");
        let sigma = self.noise.sigma().first().copied()?;
        let uniform = self.noise.sigma().iter().all(|s| *s == sigma)
            && self.noise.kinds().iter().all(|k| *k == super::noise::Likelihood::Gaussian);
        (identity && uniform && self.noise.is_diagonal() && self.input_dim() == self.output_dim()).then_some(sigma)
    }
    fn input_dim(&self) -> usize {
        self.chain.input_shape().len()
    }
    fn output_dim(&self) -> usize {
        self.chain.output_shape().len()
    }
    fn is_linear(&self) -> bool {
        self.chain.is_linear()
    }
    fn measurement_count(&self) -> usize {
        self.observed.as_ref().map_or(self.output_dim(), |o| o.iter().filter(|&&b| b).count())
    }

    fn forward(&self, x: &[f64]) -> Result<Vec<f64>> {
        let (d, m) = (self.input_dim(), self.output_dim());
        let n = batch_rows(x, d, "x")?;
        let mut y = vec![0.0; n * m];
        self.chain.apply_batch(x, &mut y);
        Ok(y)
    }

    fn adjoint(&self, y: &[f64]) -> Result<Vec<f64>> {
        let (d, m) = (self.input_dim(), self.output_dim());
        let n = batch_rows(y, m, "y")?;
        let mut x = vec![0.0; n * d];
        self.chain.adjoint_batch(y, &mut x)?;
        Ok(x)
    }

    fn vjp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        let (d, m) = (self.input_dim(), self.output_dim());
        let n = batch_rows(x, d, "x")?;
        let vs = broadcast_rows(v, n, m, "cotangent")?;
        let v: std::borrow::Cow<[f64]> =
            if v.len() == n * m { std::borrow::Cow::Borrowed(v) } else { vs.concat().into() };
        let mut out = vec![0.0; n * d];
        self.chain.vjp_batch(x, &v, &mut out)?;
        Ok(out)
    }

    fn log_likelihood(&self, y: &[f64], x: &[f64]) -> Result<Vec<f64>> {
        let f = self.forward(x)?;
        let m = self.output_dim();
        let ys = broadcast_rows(y, f.len() / m, m, "y")?;
        Ok(f.par_chunks(m)
            .zip(ys.par_iter())
            .map(|(fi, yi)| -0.5 * self.noise.chi_squared(&self.only_observed(yi, fi), fi))
            .collect())
    }

    fn grad_log_likelihood(&self, y: &[f64], x: &[f64]) -> Result<Vec<f64>> {
        let (d, m) = (self.input_dim(), self.output_dim());
        let n = batch_rows(x, d, "x")?;
        let ys = broadcast_rows(y, n, m, "y")?;
        let (trace, f) = self.chain.apply_traced(x);
        let mut g = vec![0.0; n * m];
        g.par_chunks_mut(m).zip(f.par_chunks(m)).zip(ys.par_iter()).for_each(|((gi, fi), yi)| {
            self.noise.grad_wrt_prediction(&self.only_observed(yi, fi), fi, gi);
        });
        let mut out = vec![0.0; n * d];
        self.chain.vjp_traced(&trace, &g, &mut out)?;
        Ok(out)
    }

    fn simulate(&self, x: &[f64], rng: &mut dyn rand::RngCore) -> Result<Vec<f64>> {
        let f = self.forward(x)?;
        let m = self.output_dim();
        let mut y = vec![0.0; f.len()];
        // Sequential so a seed gives the same draw whatever the thread count.
        for (yi, fi) in y.chunks_mut(m).zip(f.chunks(m)) {
            self.noise.sample(fi, rng, yi);
            // Unobserved entries stay the structural zeros of the operator.
            if let Some(o) = &self.observed {
                yi.iter_mut().zip(o).zip(fi).filter(|((_, &b), _)| !b).for_each(|((v, _), f)| *v = *f);
            }
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_final_mask_observes_only_its_entries() {
        let shape = Shape::new(1, 8, 8);
        let mask: Vec<bool> = (0..64).map(|i| i % 3 == 0).collect();
        let kept = mask.iter().filter(|&&b| b).count();
        let chain = Chain::new(shape).then(ops::Mask::new(shape, mask.clone()).unwrap()).unwrap();
        let m = Model::with_spec(chain, &NoiseSpec::Gaussian { sigma: 0.1 }).unwrap();
        assert_eq!(m.measurement_count(), kept);
        let x: Vec<f64> = (0..64).map(|i| i as f64 / 64.0).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let y = m.simulate(&x, &mut rng).unwrap();
        for k in 0..64 {
            if !mask[k] {
                assert_eq!(y[k], 0.0, "unobserved entry {k} holds noise");
            }
        }
        // A stored y with noise at unobserved entries changes neither χ² nor its gradient.
        let mut noisy = y.clone();
        (0..64).filter(|&k| !mask[k]).for_each(|k| noisy[k] = 5.0);
        assert_eq!(m.chi_squared(&noisy, &x).unwrap(), m.chi_squared(&y, &x).unwrap());
        assert_eq!(m.grad_log_likelihood(&noisy, &x).unwrap(), m.grad_log_likelihood(&y, &x).unwrap());
        // Without a mask every output is a measurement.
        assert_eq!(Model::denoising(shape, 0.1).unwrap().measurement_count(), 64);
    }
}
