//! Measurement noise `n` in `y = A(x) + n` and its log-likelihood.
//!
//! Each real measurement `k` has a standard deviation `σ_k` and a kind: Gaussian,
//! `log p = −½ (y_k − f_k)² / σ_k²`, or circular (closure phases, radians), the reference
//! code's `log p = −½ · 2(1 − cos(y_k − f_k)) / σ_k²`, which equals the Gaussian for small
//! residuals and is 2π-periodic. Complex Gaussian noise of level σ puts `σ/√2` on each of
//! the real and imaginary parts, so `E|n|² = σ²`; it applies only to complex operator outputs
//! ([`crate::forward::Model::with_spec`] rejects it on real-valued ones).

use rand_distr::{Distribution, StandardNormal};

use crate::{Error, Result};

/// How one measurement's residual enters the likelihood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Likelihood {
    /// `−½ r² / σ²`.
    Gaussian,
    /// `−(1 − cos r) / σ²`, for angles.
    Circular,
}

/// A noise level as written in a spec, before the measurement length is known.
#[derive(Debug, Clone, PartialEq)]
pub enum NoiseSpec {
    /// Real Gaussian, the same σ on every measurement.
    Gaussian { sigma: f64 },
    /// Complex Gaussian of level σ on split complex data: σ/√2 per real and imaginary part.
    ComplexGaussian { sigma: f64 },
    /// One σ per measurement.
    PerMeasurement(Vec<f64>),
}

impl NoiseSpec {
    /// The per-measurement noise for `m` measurements.
    pub fn resolve(&self, m: usize) -> Result<Noise> {
        match self {
            NoiseSpec::Gaussian { sigma } => Noise::gaussian(*sigma, m),
            NoiseSpec::ComplexGaussian { sigma } => Noise::complex_gaussian(*sigma, m),
            NoiseSpec::PerMeasurement(s) => {
                if s.len() != m {
                    return Err(Error::shape("per-measurement sigma", m, s.len()));
                }
                Noise::per_measurement(s.clone())
            }
        }
    }
    /// `gaussian(sigma=…)` and so on.
    pub fn describe(&self) -> String {
        match self {
            NoiseSpec::Gaussian { sigma } => format!("gaussian(sigma={sigma})"),
            NoiseSpec::ComplexGaussian { sigma } => format!("complex_gaussian(sigma={sigma})"),
            NoiseSpec::PerMeasurement(s) => format!("per_measurement({} values)", s.len()),
        }
    }
}

/// Per-measurement noise: `σ_k` and the likelihood kind of each of `M` real measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Noise {
    sigma: Vec<f64>,
    kind: Vec<Likelihood>,
}

/// The smallest noise level σ accepted: σ² must be a normal number, so that `r²/σ²` (χ², the
/// likelihood and its gradient) stays finite for finite residuals; at σ = 1e-300, σ² is 0 and
/// χ² would be NaN. (A huge σ is refused where it matters, when a simulated measurement is
/// not finite.)
pub const SIGMA_MIN: f64 = 1e-150;

pub(crate) fn check_sigma(s: f64) -> Result<()> {
    if s.is_finite() && s >= SIGMA_MIN {
        Ok(())
    } else if s.is_finite() && s > 0.0 {
        Err(Error::out_of_range(
            "noise level",
            s,
            format!("at least {SIGMA_MIN:e} (σ² must be a normal number for χ² to be finite)"),
        ))
    } else {
        Err(Error::out_of_range("noise level", s, "positive and finite"))
    }
}

impl Noise {
    /// Real Gaussian noise of standard deviation `sigma` on `m` measurements.
    ///
    /// ```
    /// let n = scoreprior_core::forward::Noise::gaussian(0.1, 3).unwrap();
    /// assert_eq!(n.sigma(), &[0.1, 0.1, 0.1]);
    /// ```
    pub fn gaussian(sigma: f64, m: usize) -> Result<Self> {
        check_sigma(sigma)?;
        Ok(Noise { sigma: vec![sigma; m], kind: vec![Likelihood::Gaussian; m] })
    }
    /// Complex Gaussian noise of level `sigma` on `m` split real numbers (`m/2` complex):
    /// `σ/√2` per part.
    pub fn complex_gaussian(sigma: f64, m: usize) -> Result<Self> {
        check_sigma(sigma)?;
        Self::gaussian(sigma / std::f64::consts::SQRT_2, m)
    }
    /// Gaussian noise with one σ per measurement.
    pub fn per_measurement(sigma: Vec<f64>) -> Result<Self> {
        sigma.iter().try_for_each(|&s| check_sigma(s))?;
        let m = sigma.len();
        Ok(Noise { sigma, kind: vec![Likelihood::Gaussian; m] })
    }
    /// Noise with one σ and one likelihood kind per measurement.
    pub fn mixed(sigma: Vec<f64>, kind: Vec<Likelihood>) -> Result<Self> {
        sigma.iter().try_for_each(|&s| check_sigma(s))?;
        if kind.len() != sigma.len() {
            return Err(Error::shape("likelihood kinds", sigma.len(), kind.len()));
        }
        Ok(Noise { sigma, kind })
    }
    /// Number of measurements `M`.
    pub fn len(&self) -> usize {
        self.sigma.len()
    }
    /// Whether there are no measurements.
    pub fn is_empty(&self) -> bool {
        self.sigma.is_empty()
    }
    /// The σ of every measurement.
    pub fn sigma(&self) -> &[f64] {
        &self.sigma
    }
    /// The likelihood kind of every measurement.
    pub fn kinds(&self) -> &[Likelihood] {
        &self.kind
    }

    /// `χ² = Σ_k ρ_k / σ_k²` for one measurement `y` and prediction `f`.
    pub fn chi_squared(&self, y: &[f64], f: &[f64]) -> f64 {
        let mut s = 0.0;
        for k in 0..y.len() {
            let r = y[k] - f[k];
            let rho = match self.kind[k] {
                Likelihood::Gaussian => r * r,
                Likelihood::Circular => 2.0 * (1.0 - r.cos()),
            };
            s += rho / (self.sigma[k] * self.sigma[k]);
        }
        s
    }

    /// `∂ log p(y | f) / ∂f` into `out`.
    pub fn grad_wrt_prediction(&self, y: &[f64], f: &[f64], out: &mut [f64]) {
        for k in 0..y.len() {
            let r = y[k] - f[k];
            let s2 = self.sigma[k] * self.sigma[k];
            out[k] = match self.kind[k] {
                Likelihood::Gaussian => r / s2,
                Likelihood::Circular => r.sin() / s2,
            };
        }
    }

    /// `y = f + n` into `out`; circular measurements are wrapped to `(−π, π]`.
    pub fn sample(&self, f: &[f64], rng: &mut dyn rand::RngCore, out: &mut [f64]) {
        for k in 0..f.len() {
            let e: f64 = StandardNormal.sample(rng);
            let v = f[k] + self.sigma[k] * e;
            out[k] = match self.kind[k] {
                Likelihood::Gaussian => v,
                Likelihood::Circular => wrap_angle(v),
            };
        }
    }
}

/// `a` wrapped to `(−π, π]`.
pub fn wrap_angle(a: f64) -> f64 {
    use std::f64::consts::PI;
    let w = (a + PI).rem_euclid(2.0 * PI) - PI;
    if w == -PI {
        PI
    } else {
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A σ whose square underflows (1e-300: χ² would be NaN) is refused.
    #[test]
    fn noise_levels_have_a_normal_square() {
        for s in [1e-300, 1e-160, f64::MIN_POSITIVE / 4.0] {
            let e = Noise::gaussian(s, 3).unwrap_err().to_string();
            assert!(e.contains("normal number"), "{s}: {e}");
            assert!(Noise::per_measurement(vec![0.1, s]).is_err(), "{s}");
        }
        let n = Noise::gaussian(1e-100, 2).unwrap();
        assert!(n.chi_squared(&[1e-100, 0.0], &[0.0, 0.0]).is_finite());
    }
}
