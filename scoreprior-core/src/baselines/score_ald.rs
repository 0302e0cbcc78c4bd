//! Score-ALD (Jalal et al., NeurIPS 2021): annealed Langevin dynamics over noise levels
//! `σ_1 > … > σ_L` on `u = x_t/α_t = x₀ + σ z`, `K` steps per level,
//! `u ← u + η_i [∇ log p_{σ_i}(u) + Aᵀ(y − A u)/(σ_y² + γ_i²)] + √(2η_i) z`, `η_i = ε σ_i²/σ_L²`.
//!
//! With a VP model, level `σ` is the time `t` where `σ_t/α_t = σ`, and the score of `u` is
//! `α_t s(α_t u, t)`. The likelihood's variance is inflated by `γ_i² = ‖A‖² σ_i²`, the variance
//! that the noise `u` carries at level `i` puts on `Au` (exact for `A Aᵀ = ‖A‖² I`; `‖A‖²` by
//! power iteration). Tying it to `‖A‖` rather than taking `γ_i = σ_i` makes the likelihood
//! step's stiffness `η_i‖A‖²/(σ_y² + γ_i²)` at most `ε`, whatever the operator's scale: with
//! `γ_i = σ_i` an unnormalised DFT (`‖A‖² = H·W`) needs `ε < 2/(H·W)`, which leaves the early
//! levels unconverged.

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

use super::{PosteriorSampler, Problem};
use crate::denoise::matching_time;
use crate::sde::Sde;
use crate::{Error, Result};

/// Settings of [`ScoreAld`]; `Default` is K = 5 Langevin steps per level (the supplement's),
/// 200 geometric levels from `σ_t/α_t` at `t = T` down to its value at `t = 1e-3`, `ε = 0.5·σ_L²`
/// (on the 2-D Gaussian test, 0.1 leaves the covariance 10 % too large, 1.0 doubles it).
///
/// ```
/// use rand::SeedableRng;
/// use scoreprior_core::baselines::ScoreAld;
/// use scoreprior_core::forward::Model;
/// use scoreprior_core::score::Gaussian;
/// use scoreprior_core::sde::{AnySde, VpSde};
/// let sde = AnySde::Vp(VpSde::default());
/// let prior = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], sde).unwrap();
/// let denoise = Model::denoising([1, 1, 2], 0.5).unwrap();
/// let ald = ScoreAld { levels: 50, ..ScoreAld::new(0.5) };
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let x = ald.sample(&prior, &sde, &denoise, &[1.0, -1.0], 8, &mut rng).unwrap();
/// assert_eq!(x.len(), 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreAld {
    /// Langevin steps per level `K ≥ 1`.
    pub steps_per_level: usize,
    /// Number of levels `L ≥ 1`.
    pub levels: usize,
    /// Smallest time `t_L` (the last level `σ_L = σ_{t_L}/α_{t_L}`).
    pub t_min: f64,
    /// Base step `ε` as a fraction of `σ_L²` (`η_L = ε_rel σ_L²`; stable for `ε_rel < 2`).
    pub step_rel: f64,
    /// Measurement noise `σ_y` of the Gaussian likelihood (one value for all measurements).
    pub sigma_y: f64,
}

impl ScoreAld {
    /// The defaults for measurement noise `sigma_y`.
    pub fn new(sigma_y: f64) -> Self {
        Self { steps_per_level: 5, levels: 200, t_min: 1e-3, step_rel: 0.5, sigma_y }
    }

    /// Checks the settings against `sde` (also done by [`ScoreAld::sample`]).
    ///
    /// # Errors
    /// Zero levels or steps, more levels than the memory limit holds ([`Error::TooLarge`]),
    /// `t_min` outside `(0, T)`, a non-positive step or `σ_y`.
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        for (what, n) in [("Score-ALD levels", self.levels), ("Score-ALD steps per level", self.steps_per_level)] {
            if n == 0 {
                return Err(Error::count_out_of_range(what, n, "at least 1"));
            }
        }
        // The levels are kept in memory (one f64 each).
        crate::limits::check_elems(&format!("{} Score-ALD levels", self.levels), &[self.levels], 8)?;
        super::check_t_min("Score-ALD", self.t_min, sde)?;
        if !(self.step_rel.is_finite() && self.step_rel > 0.0 && self.step_rel < 2.0) {
            return Err(Error::out_of_range("Score-ALD step", self.step_rel, "in (0, 2) (above 2 Langevin diverges)"));
        }
        if !(self.sigma_y.is_finite() && self.sigma_y > 0.0) {
            return Err(Error::out_of_range("Score-ALD sigma_y", self.sigma_y, "positive"));
        }
        Ok(())
    }
}

impl PosteriorSampler for ScoreAld {
    super::sampler_basics!("Score-ALD", levels);

    fn run(&self, problem: &Problem<'_>, rng: &mut dyn RngCore) -> Result<Vec<f64>> {
        let &Problem { model, sde, forward, y, n, d, .. } = problem;
        let levels = problem.geometric_levels();
        let (s1, sl) = problem.level_bounds();
        let mut u: Vec<f64> = (0..n * d).map(|_| s1 * rng.sample::<f64, _>(StandardNormal)).collect();
        let (mut xt, mut s) = (vec![0.0; n * d], vec![0.0; n * d]);
        let sy2 = self.sigma_y * self.sigma_y;
        // ‖A‖² of a linear model (1 for a non-linear one: its Jacobian changes with x).
        let a2 = super::operator_norm_sq(forward)?.unwrap_or(1.0);
        for &sigma in &levels {
            // The last level is t_min itself (bisection would only approximate it).
            let t = if sigma == sl { self.t_min } else { matching_time(sde, sigma)? };
            let alpha = sde.marginal_mean_coef(t);
            let eta = self.step_rel * sl * sl * (sigma / sl).powi(2);
            let like = sy2 / (sy2 + a2 * sigma * sigma);
            for _ in 0..self.steps_per_level {
                for (o, v) in xt.iter_mut().zip(&u) {
                    *o = alpha * v;
                }
                model.score(&xt, t, &mut s)?;
                // Aᵀ(y − Au)/σ_y², rescaled to the annealed variance σ_y² + γ².
                let g = forward.grad_log_likelihood(y, &u)?;
                let noise = (2.0 * eta).sqrt();
                for ((uv, sv), gv) in u.iter_mut().zip(&s).zip(&g) {
                    let z: f64 = rng.sample(StandardNormal);
                    *uv += eta * (alpha * sv + like * gv) + noise * z;
                }
                if u.iter().any(|v| !v.is_finite()) {
                    return Err(Error::NonFinite { what: "Score-ALD iterate", t });
                }
            }
        }
        Ok(u)
    }
}
