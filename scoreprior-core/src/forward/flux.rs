//! The total flux as one more measurement: `[A(x); Σ_i x_i]` with `Σx` observed as `F` under
//! Gaussian noise of level `σ_F`, so `log p = log p_A(y|x) − (Σx − F)²/(2σ_F²)`. DPI's flux
//! penalty `w(Σx − F)²` is this term with `σ_F² = 1/(2w)`; InverseBench's black-hole problem
//! measures the flux the same way beside its closure quantities.

use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};

use super::{batch_rows, ForwardModel};
use crate::{Error, Result};

/// A forward model with the total flux `Σ_i x_i` appended as its last measurement, observed
/// with Gaussian noise `sigma` (a measurement `y` is the inner model's followed by the flux).
///
/// ```
/// use scoreprior_core::forward::{ForwardModel, Model, WithTotalFlux};
/// let inner = Model::denoising([1, 1, 2], 0.5).unwrap();
/// // The penalty 10·(Σx − 1)² of DPI's flux constraint, as a likelihood.
/// let m = WithTotalFlux::from_penalty(&inner, 10.0).unwrap();
/// assert_eq!(m.output_dim(), 3);
/// assert_eq!(m.forward(&[0.25, 0.5]).unwrap(), vec![0.25, 0.5, 0.75]);
/// let y = [0.25, 0.5, 1.0];
/// // ∂/∂x_i of −(Σx − 1)²·10 at Σx = 0.75: +5 on each pixel; the inner term is zero.
/// let g = m.grad_log_likelihood(&y, &[0.25, 0.5]).unwrap();
/// assert!((g[0] - 5.0).abs() < 1e-12 && (g[1] - 5.0).abs() < 1e-12);
/// assert!(WithTotalFlux::from_penalty(&inner, 0.0).is_err());
/// ```
#[derive(Clone, Copy)]
pub struct WithTotalFlux<'a> {
    inner: &'a dyn ForwardModel,
    sigma: f64,
}

impl std::fmt::Debug for WithTotalFlux<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithTotalFlux").field("sigma", &self.sigma).finish_non_exhaustive()
    }
}

impl<'a> WithTotalFlux<'a> {
    /// `inner` with the flux measured at noise level `sigma > 0`.
    ///
    /// # Errors
    /// A `sigma` that is not positive and finite.
    pub fn new(inner: &'a dyn ForwardModel, sigma: f64) -> Result<Self> {
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(Error::out_of_range("total-flux measurement: σ", sigma, "positive and finite"));
        }
        Ok(Self { inner, sigma })
    }

    /// The measurement whose log-likelihood is the penalty `−weight·(Σx − F)²`: `σ² = 1/(2·weight)`.
    ///
    /// # Errors
    /// A `weight` that is not positive and finite.
    pub fn from_penalty(inner: &'a dyn ForwardModel, weight: f64) -> Result<Self> {
        if !(weight.is_finite() && weight > 0.0) {
            return Err(Error::out_of_range(
                "total-flux measurement: the penalty weight",
                weight,
                "positive and finite",
            ));
        }
        Self::new(inner, (0.5 / weight).sqrt())
    }

    /// The flux's noise level `σ_F`.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// `y` (length `M + 1` or `n(M + 1)`) split into the inner rows and the observed fluxes,
    /// one per image row of the batch of `n`.
    fn split(&self, y: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        let m = self.inner.output_dim();
        let rows: Vec<&[f64]> = super::broadcast_rows(y, n, m + 1, "total-flux measurement y")?;
        let inner = rows.iter().flat_map(|r| r[..m].iter().copied()).collect();
        Ok((inner, rows.iter().map(|r| r[m]).collect()))
    }

    /// `y` split as [`Self::split`] when it is one row (broadcast by the inner model), else per row.
    fn split_broadcast(&self, y: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        let m = self.inner.output_dim();
        if y.len() == m + 1 {
            return Ok((y[..m].to_vec(), vec![y[m]; n]));
        }
        self.split(y, n)
    }
}

impl ForwardModel for WithTotalFlux<'_> {
    fn input_dim(&self) -> usize {
        self.inner.input_dim()
    }
    fn output_dim(&self) -> usize {
        self.inner.output_dim() + 1
    }
    fn is_linear(&self) -> bool {
        self.inner.is_linear()
    }
    fn measurement_count(&self) -> usize {
        self.inner.measurement_count() + 1
    }
    fn forward(&self, x: &[f64]) -> Result<Vec<f64>> {
        let d = self.input_dim();
        batch_rows(x, d, "total-flux measurement x")?;
        let inner = self.inner.forward(x)?;
        let m = self.inner.output_dim();
        let mut y = Vec::with_capacity(inner.len() + inner.len() / m.max(1));
        for (yi, xi) in inner.chunks(m).zip(x.chunks(d)) {
            y.extend_from_slice(yi);
            y.push(xi.iter().sum());
        }
        Ok(y)
    }
    fn adjoint(&self, y: &[f64]) -> Result<Vec<f64>> {
        let n = batch_rows(y, self.output_dim(), "total-flux measurement y")?;
        let (inner, flux) = self.split(y, n)?;
        let mut x = self.inner.adjoint(&inner)?;
        add_per_row(&mut x, &flux, self.input_dim());
        Ok(x)
    }
    fn vjp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        let n = batch_rows(x, self.input_dim(), "total-flux measurement x")?;
        let (inner, flux) = self.split_broadcast(v, n)?;
        let mut out = self.inner.vjp(x, &inner)?;
        add_per_row(&mut out, &flux, self.input_dim());
        Ok(out)
    }
    fn log_likelihood(&self, y: &[f64], x: &[f64]) -> Result<Vec<f64>> {
        let n = batch_rows(x, self.input_dim(), "total-flux measurement x")?;
        let (inner, flux) = self.split_broadcast(y, n)?;
        let mut l = self.inner.log_likelihood(&inner, x)?;
        for ((li, xi), f) in l.iter_mut().zip(x.chunks(self.input_dim())).zip(&flux) {
            let r = (xi.iter().sum::<f64>() - f) / self.sigma;
            *li -= 0.5 * r * r;
        }
        Ok(l)
    }
    fn grad_log_likelihood(&self, y: &[f64], x: &[f64]) -> Result<Vec<f64>> {
        let d = self.input_dim();
        let n = batch_rows(x, d, "total-flux measurement x")?;
        let (inner, flux) = self.split_broadcast(y, n)?;
        let mut g = self.inner.grad_log_likelihood(&inner, x)?;
        let pull: Vec<f64> =
            x.chunks(d).zip(&flux).map(|(xi, f)| -(xi.iter().sum::<f64>() - f) / (self.sigma * self.sigma)).collect();
        add_per_row(&mut g, &pull, d);
        Ok(g)
    }
    fn simulate(&self, x: &[f64], rng: &mut dyn RngCore) -> Result<Vec<f64>> {
        let d = self.input_dim();
        batch_rows(x, d, "total-flux measurement x")?;
        let inner = self.inner.simulate(x, rng)?;
        let m = self.inner.output_dim();
        let mut y = Vec::with_capacity(inner.len() + inner.len() / m.max(1));
        for (yi, xi) in inner.chunks(m).zip(x.chunks(d)) {
            y.extend_from_slice(yi);
            let e: f64 = StandardNormal.sample(rng);
            y.push(xi.iter().sum::<f64>() + self.sigma * e);
        }
        Ok(y)
    }
}

/// Adds `per_row[i]` to every entry of row `i` of the `(n, d)` batch `x`.
fn add_per_row(x: &mut [f64], per_row: &[f64], d: usize) {
    for (xi, a) in x.chunks_mut(d).zip(per_row) {
        xi.iter_mut().for_each(|v| *v += a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::parse_model;
    use crate::test_support::central_difference;
    use rand::SeedableRng;

    fn dot(a: &[f64], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// ⟨A x, y⟩ = ⟨x, Aᵀ y⟩ for a batch of 3 (a linear inner model: the DFT and a mask).
    #[test]
    fn adjoint_passes_the_dot_product_test() {
        let inner =
            parse_model("gaussian_blur(sigma=1.0,size=3) | subsample(factor=2)", "gaussian(sigma=0.1)", [1, 4, 4])
                .unwrap();
        let m = WithTotalFlux::new(&inner, 0.3).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let x: Vec<f64> = (0..3 * 16).map(|_| StandardNormal.sample(&mut rng)).collect();
        let y: Vec<f64> = (0..3 * m.output_dim()).map(|_| StandardNormal.sample(&mut rng)).collect();
        let (ax, aty) = (m.forward(&x).unwrap(), m.adjoint(&y).unwrap());
        let (l, r) = (dot(&ax, &y), dot(&x, &aty));
        assert!((l - r).abs() <= 1e-12 * l.abs().max(1.0), "{l} vs {r}");
        assert!(m.is_linear());
    }

    /// The gradient of the log-likelihood against central differences, on a non-linear inner
    /// model (magnitudes of the DFT), one `y` broadcast over two images.
    #[test]
    fn gradient_matches_finite_differences() {
        let inner = parse_model("fft2 | magnitude", "gaussian(sigma=0.5)", [1, 4, 4]).unwrap();
        let m = WithTotalFlux::from_penalty(&inner, 2.0).unwrap();
        assert!((m.sigma() - 0.5).abs() < 1e-15);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let x: Vec<f64> = (0..2 * 16)
            .map(|_| {
                let e: f64 = StandardNormal.sample(&mut rng);
                0.5 + 0.2 * e
            })
            .collect();
        let y = m.simulate(&x[..16], &mut rng).unwrap();
        assert_eq!(y.len(), m.output_dim());
        let g = m.grad_log_likelihood(&y, &x).unwrap();
        for k in [0, 7, 16, 31] {
            let fd = central_difference(|z| m.log_likelihood(&y, z).unwrap()[k / 16], &x, k, 1e-6);
            assert!((fd - g[k]).abs() <= 1e-6 * fd.abs().max(1.0), "pixel {k}: {fd} vs {}", g[k]);
        }
        // The flux term alone: −(Σx − F)²/(2σ²) on top of the inner model's.
        let inner_l = inner.log_likelihood(&y[..inner.output_dim()], &x[..16]).unwrap()[0];
        let r = (x[..16].iter().sum::<f64>() - y[inner.output_dim()]) / 0.5;
        let l = m.log_likelihood(&y, &x[..16]).unwrap()[0];
        assert!((l - (inner_l - 0.5 * r * r)).abs() < 1e-12);
    }

    #[test]
    fn refuses_bad_levels_and_shapes() {
        let inner = parse_model("identity", "gaussian(sigma=0.5)", [1, 2, 2]).unwrap();
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(WithTotalFlux::new(&inner, s).is_err(), "{s}");
        }
        let m = WithTotalFlux::new(&inner, 1.0).unwrap();
        assert!(m.forward(&[1.0; 3]).is_err());
        assert!(m.grad_log_likelihood(&[0.0; 4], &[1.0; 4]).is_err(), "y without its flux entry");
    }
}
