//! Priors known in closed form, `log p(x)` and `∇x log p(x)` of a density evaluated exactly:
//! [`ClosedFormPrior`] over any [`ClosedForm`] density, such as the Gaussian
//! `log N(x; μ, Σ)` ([`GaussianPrior`]) and the Gaussian mixture ([`MixturePrior`]).

use super::{LogProb, LogProbGrad, Prior, PriorStats};
use crate::score::{check_batch, Gaussian, GaussianMixture, MarginalDensity};
use crate::sde::{AnySde, VpSde};
use crate::Result;

/// A data density with a closed-form log-density and gradient over row-major `(n, D)`
/// batches: what [`ClosedFormPrior`] evaluates.
pub trait ClosedForm {
    /// Dimension `D`.
    fn dim(&self) -> usize;
    /// `out[i] = log p(x_i)`.
    ///
    /// # Errors
    /// Shape mismatch or non-finite input.
    fn log_prob(&self, x: &[f64], out: &mut [f64]) -> Result<()>;
    /// `out[i,:] = ∇x log p(x_i)`.
    ///
    /// # Errors
    /// Shape mismatch or non-finite input.
    fn grad_log_prob(&self, x: &[f64], out: &mut [f64]) -> Result<()>;
}

/// The data densities of the analytic score models (their SDEs play no part here).
macro_rules! closed_form_of_data_density {
    ($($t:ty),*) => {$(
        impl ClosedForm for $t {
            fn dim(&self) -> usize {
                MarginalDensity::dim(self)
            }
            fn log_prob(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
                <$t>::log_prob(self, x, out)
            }
            fn grad_log_prob(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
                <$t>::grad_log_prob(self, x, out)
            }
        }
    )*};
}
closed_form_of_data_density!(Gaussian, GaussianMixture);

/// A prior whose density `D` is known in closed form: `log p(x)` and `∇x log p(x)` exactly,
/// with no solver (its [`PriorStats`] are zero).
#[derive(Debug, Clone)]
pub struct ClosedFormPrior<D> {
    density: D,
}

impl<D: ClosedForm> ClosedFormPrior<D> {
    /// The prior of `density`.
    pub fn from_density(density: D) -> Self {
        Self { density }
    }
    /// The underlying density.
    pub fn density(&self) -> &D {
        &self.density
    }
}

impl<D: ClosedForm> Prior for ClosedFormPrior<D> {
    fn dim(&self) -> usize {
        self.density.dim()
    }
    fn log_prob(&self, x: &[f64]) -> Result<LogProb> {
        let n = check_batch(x, self.dim(), "x")?;
        let mut log_prob = vec![0.0; n];
        self.density.log_prob(x, &mut log_prob)?;
        Ok(LogProb { log_prob, stats: PriorStats::default() })
    }
    fn grad_log_prob(&self, x: &[f64]) -> Result<LogProbGrad> {
        let lp = Prior::log_prob(self, x)?;
        let mut grad = vec![0.0; x.len()];
        self.density.grad_log_prob(x, &mut grad)?;
        Ok(LogProbGrad { log_prob: lp.log_prob, grad, stats: PriorStats::default() })
    }
}

/// The closed-form Gaussian prior `log N(x; μ, Σ)`, `∇ = −Σ⁻¹(x − μ)`.
///
/// ```
/// use scoreprior_core::prior::{GaussianPrior, Prior};
/// let p = GaussianPrior::new(vec![0.0, 0.0], &[1.0, 0.0, 0.0, 4.0]).unwrap();
/// let g = p.grad_log_prob(&[1.0, 2.0]).unwrap();
/// assert!((g.grad[0] + 1.0).abs() < 1e-12 && (g.grad[1] + 0.5).abs() < 1e-12);
/// ```
pub type GaussianPrior = ClosedFormPrior<Gaussian>;

impl GaussianPrior {
    /// `N(mean, cov)`, `cov` row-major `D×D`.
    ///
    /// # Errors
    /// As [`Gaussian::new`] (shape, NaN, not symmetric positive definite).
    pub fn new(mean: Vec<f64>, cov: &[f64]) -> Result<Self> {
        Ok(Self::from_density(Gaussian::new(mean, cov, AnySde::Vp(VpSde::default()))?))
    }
    /// From an analytic [`Gaussian`] (its SDE is ignored).
    pub fn from_gaussian(gaussian: Gaussian) -> Self {
        Self::from_density(gaussian)
    }
    /// The underlying Gaussian.
    pub fn gaussian(&self) -> &Gaussian {
        &self.density
    }
}

/// The closed-form mixture prior `log Σ_k w_k N(x; μ_k, diag(s_k²))` and its gradient (the
/// exact prior of the 2-D toy experiment).
///
/// ```
/// use scoreprior_core::prior::{MixturePrior, Prior};
/// use scoreprior_core::score::GaussianMixture;
/// use scoreprior_core::sde::{AnySde, VpSde};
/// let p = MixturePrior::new(GaussianMixture::reference_2d(AnySde::Vp(VpSde::default())));
/// let g = p.grad_log_prob(&[0.5, 0.5]).unwrap();
/// assert!(g.grad.iter().all(|v| v.abs() < 1e-9));
/// ```
pub type MixturePrior = ClosedFormPrior<GaussianMixture>;

impl MixturePrior {
    /// The data density of `mixture` (its SDE is ignored).
    pub fn new(mixture: GaussianMixture) -> Self {
        Self::from_density(mixture)
    }
    /// The underlying mixture.
    pub fn mixture(&self) -> &GaussianMixture {
        &self.density
    }
}
