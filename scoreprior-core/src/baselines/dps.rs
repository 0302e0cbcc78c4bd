//! DPS (Chung et al., ICLR 2023): reverse diffusion (Euler–Maruyama on the reverse SDE,
//! `x ← x + Δ(−a x + g² s) + g√Δ z`) with, after each step, a gradient step on the
//! measurement error of Tweedie's estimate `x̂₀(x) = (x + σ_t² s(x, t))/α_t`:
//! `x ← x − ζ_i ∇_x ‖y − A(x̂₀(x))‖²`, `ζ_i = ζ'/‖y − A(x̂₀)‖`.
//!
//! `∇_x ‖y − A(x̂₀)‖² = (g + σ_t² J_sᵀ g)/α_t` with `g = −2 A'(x̂₀)ᵀ (y − A(x̂₀))`: one score
//! VJP per step, whose cotangent depends on the score, so it comes from
//! [`ScoreModel::score_then_vjp`] (one network pass). `A` may be non-linear (its VJP is used).

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

use super::{PosteriorSampler, Problem};
use crate::sde::Sde;
use crate::{Error, Result};

/// Settings of DPS; `Default` (via [`Dps::new`]) is the paper's 1000 steps and `ζ' = 1`,
/// from `T` to `t_min = 1e-3`.
///
/// ```
/// use rand::SeedableRng;
/// use scoreprior_core::baselines::Dps;
/// use scoreprior_core::forward::Model;
/// use scoreprior_core::score::Gaussian;
/// use scoreprior_core::sde::{AnySde, VpSde};
/// let sde = AnySde::Vp(VpSde::default());
/// let prior = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], sde).unwrap();
/// let denoise = Model::denoising([1, 1, 2], 0.5).unwrap();
/// let dps = Dps { steps: 50, zeta: 0.05, ..Dps::new() };
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let x = dps.sample(&prior, &sde, &denoise, &[1.0, -1.0], 8, &mut rng).unwrap();
/// assert!(x.iter().all(|v| v.is_finite()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dps {
    /// Reverse-diffusion steps `N ≥ 1` (uniform in `t`).
    pub steps: usize,
    /// Step-size scale `ζ' > 0` (the paper: 0.1–1 depending on the task).
    pub zeta: f64,
    /// Last time `t_min`.
    pub t_min: f64,
}

impl Default for Dps {
    fn default() -> Self {
        Self::new()
    }
}

impl Dps {
    /// 1000 steps, `ζ' = 1`, `t_min = 1e-3`.
    pub fn new() -> Self {
        Self { steps: 1000, zeta: 1.0, t_min: 1e-3 }
    }

    /// Checks the settings against `sde` (also done by [`Dps::sample`]).
    ///
    /// # Errors
    /// Zero steps, a non-positive `ζ'`, `t_min` outside `(0, T)`.
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::count_out_of_range("DPS steps", self.steps, "at least 1"));
        }
        if !(self.zeta.is_finite() && self.zeta > 0.0) {
            return Err(Error::out_of_range("DPS zeta", self.zeta, "positive"));
        }
        super::check_t_min("DPS", self.t_min, sde)
    }
}

impl PosteriorSampler for Dps {
    super::sampler_basics!("DPS", steps);

    fn run(&self, problem: &Problem<'_>, rng: &mut dyn RngCore) -> Result<Vec<f64>> {
        let &Problem { model, sde, forward, y, n, d, dt, .. } = problem;
        let mut x = problem.prior_sample(rng);
        let (mut s, mut jg) = (vec![0.0; n * d], vec![0.0; n * d]);
        for i in 0..self.steps {
            let t = problem.time(i);
            let (alpha, sigma) = (sde.marginal_mean_coef(t), sde.marginal_std(t));
            // g_i = −2 A'(x̂₀)ᵀ(y − A(x̂₀)) for each image, from its score.
            let grad_hat = |x_i: &[f64], s_i: &[f64]| -> Result<(Vec<f64>, f64)> {
                let x0: Vec<f64> = x_i.iter().zip(s_i).map(|(xv, sv)| (xv + sigma * sigma * sv) / alpha).collect();
                let r: Vec<f64> = y.iter().zip(forward.forward(&x0)?).map(|(a, b)| a - b).collect();
                let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
                let g = forward.vjp(&x0, &r.iter().map(|v| -2.0 * v).collect::<Vec<_>>())?;
                Ok((g, norm))
            };
            let cot = |k: usize, s_k: &[f64], out: &mut [f64]| {
                // Errors surface below, where the same quantities are recomputed.
                if let Ok((g, _)) = grad_hat(&x[k * d..(k + 1) * d], s_k) {
                    out.copy_from_slice(&g);
                }
            };
            model.score_then_vjp(&x, &vec![t; n], &cot, &mut s, &mut jg)?;
            let (a, g2) = (sde.drift_coef(t), sde.diffusion(t).powi(2));
            let noise = problem.noise(i, g2);
            for k in 0..n {
                let (g, norm) = grad_hat(&x[k * d..(k + 1) * d], &s[k * d..(k + 1) * d])?;
                let zeta = self.zeta / norm.max(1e-12);
                for j in 0..d {
                    let idx = k * d + j;
                    let grad = (g[j] + sigma * sigma * jg[idx]) / alpha;
                    let z: f64 = rng.sample(StandardNormal);
                    x[idx] += dt * (-a * x[idx] + g2 * s[idx]) + noise * z - zeta * grad;
                }
            }
            if x.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite { what: "DPS iterate", t });
            }
        }
        Ok(x)
    }
}
