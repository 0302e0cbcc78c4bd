//! Forward SDEs `dx = f(x,t) dt + g(t) dw` with linear drift `f(x,t) = a(t)·x`, their
//! Gaussian perturbation kernels `x_t | x_0 ~ N(α(t) x_0, σ(t)² I)` and priors `p_T`.
//! VP: `β(t) = β_min + t(β_max − β_min)`, `a = −β/2`, `g = √β`, `α = exp(−∫β/2)`,
//! `σ² = 1 − α²`; sub-VP: same drift, `g² = β(1 − α⁴)`, `σ = 1 − α²`;
//! VE: `a = 0`, `σ(t) = σ_min (σ_max/σ_min)^t`, `g = σ(t) √(2 ln(σ_max/σ_min))`.

use rand::Rng;
use rand_distr::StandardNormal;

use crate::{Error, Result};

/// A forward diffusion with linear drift, as used by score-based generative models.
pub trait Sde: Send + Sync + std::fmt::Debug {
    /// Final time `T` (1 for all shipped SDEs).
    fn t_max(&self) -> f64 {
        1.0
    }
    /// Drift coefficient `a(t)` in `f(x, t) = a(t)·x`.
    fn drift_coef(&self, t: f64) -> f64;
    /// Diffusion coefficient `g(t)`.
    fn diffusion(&self, t: f64) -> f64;
    /// Mean coefficient `α(t)` of the perturbation kernel `N(α(t) x0, σ(t)² I)`.
    fn marginal_mean_coef(&self, t: f64) -> f64;
    /// Standard deviation `σ(t)` of the perturbation kernel.
    fn marginal_std(&self, t: f64) -> f64;
    /// Standard deviation of the prior `p_T = N(0, σ_T² I)`.
    fn prior_std(&self) -> f64;

    /// Drift `f(x, t) = a(t)·x` into `out`.
    fn drift(&self, x: &[f64], t: f64, out: &mut [f64]) {
        let a = self.drift_coef(t);
        for (o, v) in out.iter_mut().zip(x) {
            *o = a * v;
        }
    }
    /// The probability-flow drift `f̃(x, t) = a(t)·x − ½ g(t)² s(x, t)`, in place: on entry
    /// `score_to_drift` holds the score `s(x, t)` (one or more images, like `x`), on return
    /// the drift. The one place this formula is written (the PF-ODE log-density, its adjoint
    /// and the ODE sampler all call it).
    fn pf_drift(&self, x: &[f64], t: f64, score_to_drift: &mut [f64]) {
        let (a, h) = (self.drift_coef(t), 0.5 * self.diffusion(t).powi(2));
        for (o, xv) in score_to_drift.iter_mut().zip(x) {
            *o = a * xv - h * *o;
        }
    }
    /// Fills `out` with a draw from the prior `p_T`.
    fn prior_sample(&self, rng: &mut dyn rand::RngCore, out: &mut [f64]) {
        let s = self.prior_std();
        for o in out.iter_mut() {
            let z: f64 = rng.sample(StandardNormal);
            *o = s * z;
        }
    }
    /// `log p_T(x)` of one flattened image.
    fn prior_log_prob(&self, x: &[f64]) -> f64 {
        let s = self.prior_std();
        let d = x.len() as f64;
        let sq: f64 = x.iter().map(|v| v * v).sum();
        -0.5 * sq / (s * s) - 0.5 * d * (2.0 * std::f64::consts::PI * s * s).ln()
    }
}

/// Variance-preserving SDE (DDPM's continuous limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpSde {
    /// `β_min`.
    pub beta_min: f64,
    /// `β_max` (20 for the reference checkpoints; the reference config's 10 is a defect).
    pub beta_max: f64,
}

impl Default for VpSde {
    fn default() -> Self {
        Self { beta_min: 0.1, beta_max: 20.0 }
    }
}

impl VpSde {
    /// A VP SDE; errors unless `0 ≤ β_min < β_max` are finite.
    pub fn new(beta_min: f64, beta_max: f64) -> Result<Self> {
        if !(beta_min.is_finite() && beta_max.is_finite() && beta_min >= 0.0 && beta_max > beta_min) {
            if !(beta_min.is_finite() && beta_min >= 0.0) {
                return Err(Error::out_of_range("VP SDE beta_min", beta_min, "finite and ≥ 0"));
            }
            return Err(Error::out_of_range(
                "VP SDE beta_max",
                beta_max,
                format!("finite and > beta_min = {beta_min}"),
            ));
        }
        Ok(Self { beta_min, beta_max })
    }
    /// `β(t)`.
    pub fn beta(&self, t: f64) -> f64 {
        self.beta_min + t * (self.beta_max - self.beta_min)
    }
    /// `∫_0^t β(s) ds`.
    pub fn beta_integral(&self, t: f64) -> f64 {
        self.beta_min * t + 0.5 * t * t * (self.beta_max - self.beta_min)
    }
}

impl Sde for VpSde {
    fn drift_coef(&self, t: f64) -> f64 {
        -0.5 * self.beta(t)
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.beta(t).sqrt()
    }
    fn marginal_mean_coef(&self, t: f64) -> f64 {
        (-0.5 * self.beta_integral(t)).exp()
    }
    fn marginal_std(&self, t: f64) -> f64 {
        // 1 − α² = −expm1(−∫β), accurate for small t.
        (-(-self.beta_integral(t)).exp_m1()).sqrt()
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
}

/// Sub-variance-preserving SDE (Song et al. 2021), with the VP drift.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SubVpSde {
    /// The VP schedule it shares.
    pub vp: VpSde,
}

impl SubVpSde {
    /// A sub-VP SDE with the given `β` schedule.
    pub fn new(beta_min: f64, beta_max: f64) -> Result<Self> {
        Ok(Self { vp: VpSde::new(beta_min, beta_max)? })
    }
}

impl Sde for SubVpSde {
    fn drift_coef(&self, t: f64) -> f64 {
        self.vp.drift_coef(t)
    }
    fn diffusion(&self, t: f64) -> f64 {
        let b = self.vp.beta(t);
        let discount = -(-2.0 * self.vp.beta_integral(t)).exp_m1();
        (b * discount).sqrt()
    }
    fn marginal_mean_coef(&self, t: f64) -> f64 {
        self.vp.marginal_mean_coef(t)
    }
    fn marginal_std(&self, t: f64) -> f64 {
        -(-self.vp.beta_integral(t)).exp_m1()
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
}

/// Variance-exploding SDE (NCSN's continuous limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VeSde {
    /// `σ_min`.
    pub sigma_min: f64,
    /// `σ_max`.
    pub sigma_max: f64,
}

impl Default for VeSde {
    fn default() -> Self {
        Self { sigma_min: 0.01, sigma_max: 50.0 }
    }
}

impl VeSde {
    /// A VE SDE; errors unless `0 < σ_min < σ_max` are finite.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        if !(sigma_min.is_finite() && sigma_max.is_finite() && sigma_min > 0.0 && sigma_max > sigma_min) {
            if !(sigma_min.is_finite() && sigma_min > 0.0) {
                return Err(Error::out_of_range("VE SDE sigma_min", sigma_min, "finite and positive"));
            }
            return Err(Error::out_of_range(
                "VE SDE sigma_max",
                sigma_max,
                format!("finite and > sigma_min = {sigma_min}"),
            ));
        }
        Ok(Self { sigma_min, sigma_max })
    }
}

impl Sde for VeSde {
    fn drift_coef(&self, _t: f64) -> f64 {
        0.0
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.marginal_std(t) * (2.0 * (self.sigma_max / self.sigma_min).ln()).sqrt()
    }
    fn marginal_mean_coef(&self, _t: f64) -> f64 {
        1.0
    }
    fn marginal_std(&self, t: f64) -> f64 {
        // As in Song et al.'s code: σ(t) = σ_min (σ_max/σ_min)^t, so σ(0) = σ_min rather than 0.
        self.sigma_min * (self.sigma_max / self.sigma_min).powf(t)
    }
    fn prior_std(&self) -> f64 {
        self.sigma_max
    }
}

/// The SDEs selectable at run time (CLI and configs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnySde {
    /// [`VpSde`].
    Vp(VpSde),
    /// [`SubVpSde`].
    SubVp(SubVpSde),
    /// [`VeSde`].
    Ve(VeSde),
}

impl AnySde {
    /// Parses `vp`, `subvp` or `ve` with default parameters.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "vp" => Ok(AnySde::Vp(VpSde::default())),
            "subvp" | "sub-vp" => Ok(AnySde::SubVp(SubVpSde::default())),
            "ve" => Ok(AnySde::Ve(VeSde::default())),
            other => Err(Error::unknown("SDE", other, "vp, subvp or ve")),
        }
    }
    fn inner(&self) -> &dyn Sde {
        match self {
            AnySde::Vp(s) => s,
            AnySde::SubVp(s) => s,
            AnySde::Ve(s) => s,
        }
    }
}

impl Sde for AnySde {
    fn drift_coef(&self, t: f64) -> f64 {
        self.inner().drift_coef(t)
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.inner().diffusion(t)
    }
    fn marginal_mean_coef(&self, t: f64) -> f64 {
        self.inner().marginal_mean_coef(t)
    }
    fn marginal_std(&self, t: f64) -> f64 {
        self.inner().marginal_std(t)
    }
    fn prior_std(&self) -> f64 {
        self.inner().prior_std()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// d/dt of the marginal variance must satisfy the moment ODE
    /// `dΣ/dt = 2a(t)Σ + g(t)²` for the kernel's variance `Σ = σ²` (VP, sub-VP) and for
    /// `α` the ODE `dα/dt = a(t) α`.
    #[test]
    fn marginals_solve_the_moment_odes() {
        let sdes: Vec<Box<dyn Sde>> =
            vec![Box::new(VpSde::default()), Box::new(SubVpSde::default()), Box::new(VeSde::default())];
        for sde in &sdes {
            for &t in &[0.05, 0.3, 0.7, 0.95] {
                let h = 1e-6;
                let dalpha = (sde.marginal_mean_coef(t + h) - sde.marginal_mean_coef(t - h)) / (2.0 * h);
                let a = sde.drift_coef(t);
                assert!((dalpha - a * sde.marginal_mean_coef(t)).abs() < 1e-6, "{sde:?} alpha at {t}");
                let var = |t: f64| sde.marginal_std(t).powi(2);
                let dvar = (var(t + h) - var(t - h)) / (2.0 * h);
                let g = sde.diffusion(t);
                let rel = (dvar - (2.0 * a * var(t) + g * g)).abs() / (g * g);
                assert!(rel < 1e-5, "{sde:?} variance at {t}: {dvar} vs {}", 2.0 * a * var(t) + g * g);
            }
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(VpSde::new(1.0, 0.5).is_err());
        assert!(VeSde::new(0.0, 1.0).is_err());
        assert!(AnySde::from_name("xx").is_err());
    }
}
