//! DAPS, decoupled annealing posterior sampling (Zhang et al. 2024, "Improving diffusion
//! inverse problem solving with decoupled noise annealing"), in the data scale
//! `u = x_t/α_t = x₀ + σ z`, `σ = σ_t/α_t`, so that one code serves VP, sub-VP and VE models.
//!
//! Levels `σ_1 > … > σ_N` are geometric from `σ_t/α_t` at `t = T` down to its value at `t_min`
//! ([`Problem::geometric_levels`]); the chains start at `u = x_T/α_T`, `x_T` from the SDE's
//! prior. At level `i`, for all `n` chains at once:
//!
//! 1. the clean estimate `x̂₀(u)`: `K` Euler steps of the probability-flow ODE in `σ`,
//!    `du/dσ = −σ ∇_u log p_σ(u)`, on the poly-7 grid `ν_k = (σ_i^{1/7} + (k/K)(σ_N^{1/7} −
//!    σ_i^{1/7}))^7`, `k < K`, then `ν_K = 0`: `u ← u + (ν_k − ν_{k+1}) ν_k ∇_u log p_{ν_k}(u)`,
//!    with `∇_u log p_ν(u) = α_t s(α_t u, t)` at the `t` where `σ_t/α_t = ν`. The last step,
//!    to `σ = 0`, is Tweedie's formula `u + ν² ∇_u log p_ν(u)`, so `K ≤ 1` is one Tweedie step
//!    `x̂₀ = u + σ_i² α s(αu, t_i)`;
//! 2. `M` unadjusted Langevin steps on `x₀` for `N(x₀; x̂₀, r_i² I) · p(y | x₀)`, from
//!    `x₀ = x̂₀`, with `r_i = c_r σ_i`:
//!    `x₀ ← x₀ + η_i (∇ log p(y | x₀) − (x₀ − x̂₀)/r_i²) + √(2η_i) ξ`,
//!    `η_i = η₀ (1 − (i/N)(1 − δ))` (linear from `η₀` towards `δ·η₀`, the reference's
//!    `get_lr`); `∇ log p(y | x₀)` is [`ForwardModel::grad_log_likelihood`], which non-linear
//!    operators provide through their VJP;
//! 3. re-noising to the next level, `u ← x₀ + σ_{i+1} ξ` (after the last level, `x₀` is the
//!    sample).
//!
//! [`ForwardModel::grad_log_likelihood`]: crate::forward::ForwardModel::grad_log_likelihood

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

use super::{PosteriorSampler, Problem};
use crate::denoise::matching_time;
use crate::sde::Sde;
use crate::{Error, Result};

/// The exponent of the reference's `poly-7` grid of the clean estimate's ODE steps.
const POLY: f64 = 7.0;

/// Settings of DAPS. [`Daps::new`] follows the reference implementation
/// (github.com/zhangbingliang2019/DAPS, `configs/sampler/edm_daps.yaml`, the pixel-space task
/// configs and `cores/mcmc.py`) where this crate's setting allows:
///
/// | setting | default | origin |
/// |---|---|---|
/// | [`levels`](Daps::levels) `N` | 200 | annealing `num_steps: 200` |
/// | [`ode_steps`](Daps::ode_steps) `K` | 5 | diffusion scheduler `num_steps: 5`, poly-7 grid |
/// | [`langevin_steps`](Daps::langevin_steps) `M` | 100 | task configs, `num_steps: 100` |
/// | [`step_size`](Daps::step_size) `η₀` | 1e-4 | task configs, `lr: 1e-4` (phase retrieval 5e-5) |
/// | [`step_decay`](Daps::step_decay) `δ` | 0.01 | `lr_min_ratio: 0.01`, linear decay |
/// | [`r_scale`](Daps::r_scale) `c_r` | 1 | `r_σ = σ` (the Gaussian prior solver) |
/// | [`t_min`](Daps::t_min) | 1e-3 | as the other samplers here |
///
/// Where it departs from the reference: the levels are geometric from the SDE's `σ_T/α_T`
/// (≈ 156 for the default VP SDE) down to `σ_t/α_t` at `t_min` (≈ 0.0105), not poly-7 from 100
/// down to 0.1; the ODE grid ends at that same last level (the reference: 0.01); and the
/// likelihood is the forward model's own, `p(y | x₀)`, where the reference tempers its
/// data term with a fixed `τ = 0.01`.
///
/// Accuracy, measured on the 2-D Gaussian posterior of `tests/baselines_daps.rs`: with one
/// Tweedie step (`ode_steps = 0`), `η₀ = 3e-4` and the other defaults, 4000 chains, the mean
/// lies within 0.035 posterior std and the variances are 0–7 % too large over seeds (a bias of
/// about +4 %, from the Langevin step itself and the finite annealing); the reference's
/// `η₀ = 1e-4` leaves them 5–10 % off and the correlation 0.07 (too few effective steps near
/// the posterior's scale), `5e-3` 31–43 % too large (the step's own bias). The ODE estimate (`K ≥ 2`) is *not*
/// consistent once the Langevin steps converge: it maps `u` to a draw of the prior rather
/// than to the mean `E[x₀ | u]`, and `N(x̂₀, σ² I)` around it then inflates the
/// prior-dominated directions (at a fixed level with a Gaussian prior, a variance `v` becomes
/// `2v + σ²`); measured, `K = 5` leaves the variances 28 % and 53 % too large (the defaults
/// as they stand, `η₀ = 1e-4`: 30 % and 41 %; the means stay within 0.05 std). The reference's default
/// works because its Langevin steps are far from converged on images (`η₀ = 1e-4`, 100 steps
/// move a pixel by about `√(2η₀M) ≈ 0.14`).
///
/// ```
/// use rand::SeedableRng;
/// use scoreprior_core::baselines::Daps;
/// use scoreprior_core::forward::Model;
/// use scoreprior_core::score::Gaussian;
/// use scoreprior_core::sde::{AnySde, VpSde};
/// let sde = AnySde::Vp(VpSde::default());
/// let prior = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], sde).unwrap();
/// let denoise = Model::denoising([1, 1, 2], 0.5).unwrap();
/// let daps = Daps { levels: 50, langevin_steps: 20, ode_steps: 0, ..Daps::new() };
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let x = daps.sample(&prior, &sde, &denoise, &[1.0, -1.0], 8, &mut rng).unwrap();
/// assert_eq!(x.len(), 16);
/// assert!(x.iter().all(|v| v.is_finite()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Daps {
    /// Annealing levels `N ≥ 1`, geometric in `σ = σ_t/α_t` from `t = T` to `t = t_min`.
    pub levels: usize,
    /// Euler steps `K` of the probability-flow ODE for the clean estimate `x̂₀` (score
    /// evaluations per level: `max(K, 1)`); the last one, to `σ = 0`, is Tweedie's formula,
    /// so 0 and 1 both mean one Tweedie step.
    pub ode_steps: usize,
    /// Langevin steps `M ≥ 1` per level.
    pub langevin_steps: usize,
    /// Langevin step size `η₀ > 0` at the first level (in the data's units squared).
    pub step_size: f64,
    /// Decay `δ ∈ (0, 1]` of the step size: `η_i = η₀ (1 − (i/N)(1 − δ))`, so the steps
    /// shrink linearly towards `δ·η₀` (1: a constant step).
    pub step_decay: f64,
    /// `c_r > 0` in the width `r_i = c_r σ_i` of the Gaussian `N(x₀; x̂₀, r_i² I)`.
    pub r_scale: f64,
    /// Last time `t_min` (the last level is `σ_t/α_t` there).
    pub t_min: f64,
}

impl Default for Daps {
    fn default() -> Self {
        Self::new()
    }
}

impl Daps {
    /// The reference configuration (see the table on [`Daps`]): 200 levels, 5 ODE steps,
    /// 100 Langevin steps of `η₀ = 1e-4` decaying to `1e-6`, `r = σ`, `t_min = 1e-3`.
    pub fn new() -> Self {
        Self {
            levels: 200,
            ode_steps: 5,
            langevin_steps: 100,
            step_size: 1e-4,
            step_decay: 0.01,
            r_scale: 1.0,
            t_min: 1e-3,
        }
    }

    /// Checks the settings against `sde` (also done by [`Daps::sample`]).
    ///
    /// # Errors
    /// Zero levels or Langevin steps, more levels or ODE steps than the memory limit holds
    /// ([`Error::TooLarge`]), a step size, decay or `r_scale` out of range, `t_min` outside
    /// `(0, T)`, an SDE whose `σ_t/α_t` at `t_min` is not below its value at `T`
    /// ([`Error::Inconsistent`]), and a step size at which the Langevin steps diverge whatever
    /// the likelihood (`η_i ≥ 2 r_i²` at some level).
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        for (what, n) in [("DAPS levels", self.levels), ("DAPS langevin_steps", self.langevin_steps)] {
            if n == 0 {
                return Err(Error::count_out_of_range(what, n, "at least 1"));
            }
        }
        // The level count is bounded as the other samplers' (whose levels are kept in memory),
        // and one level's ODE grid is kept in memory (one f64 each).
        crate::limits::check_elems(&format!("{} DAPS levels", self.levels), &[self.levels], 8)?;
        crate::limits::check_elems(
            &format!("{} DAPS ode_steps", self.ode_steps),
            &[self.ode_steps.saturating_add(1)],
            8,
        )?;
        if !(self.step_size.is_finite() && self.step_size > 0.0) {
            return Err(Error::out_of_range("DAPS step_size", self.step_size, "positive and finite"));
        }
        if !(self.step_decay > 0.0 && self.step_decay <= 1.0) {
            return Err(Error::out_of_range("DAPS step_decay", self.step_decay, "in (0, 1]"));
        }
        if !(self.r_scale.is_finite() && self.r_scale > 0.0) {
            return Err(Error::out_of_range("DAPS r_scale", self.r_scale, "positive and finite"));
        }
        super::check_t_min("DAPS", self.t_min, sde)?;
        let (s1, sl) = (super::noise_level(sde, sde.t_max()), super::noise_level(sde, self.t_min));
        if !(sl.is_finite() && s1.is_finite() && sl > 0.0 && sl < s1) {
            return Err(Error::inconsistent(
                "DAPS t_min and the SDE",
                format!(
                    "the noise level σ_min = σ_t/α_t = {sl} at t_min = {} must be positive and below σ_max = {s1} at T",
                    self.t_min
                ),
            ));
        }
        // Langevin on N(x̂₀, r²I) alone is stable only for η < 2r²: the largest η₀ that keeps
        // every level below it.
        let bound = (0..self.levels)
            .map(|i| {
                let r = self.r_scale * super::geometric_level(s1, sl, self.levels, i);
                2.0 * r * r / self.step_multiplier(i)
            })
            .fold(f64::INFINITY, f64::min);
        if self.step_size >= bound {
            return Err(Error::out_of_range(
                "DAPS step_size",
                self.step_size,
                format!(
                    "below {bound:e}: a Langevin step η_i on N(x̂₀, r_i² I) diverges once η_i ≥ 2r_i² \
                     (r_i = r_scale·σ_i, down to {} at the last level)",
                    self.r_scale * sl
                ),
            ));
        }
        Ok(())
    }

    /// `η_i/η₀ = 1 − (i/N)(1 − δ)`.
    fn step_multiplier(&self, i: usize) -> f64 {
        1.0 - (i as f64 / self.levels as f64) * (1.0 - self.step_decay)
    }
}

impl PosteriorSampler for Daps {
    super::sampler_basics!("DAPS", levels);

    fn run(&self, problem: &Problem<'_>, rng: &mut dyn RngCore) -> Result<Vec<f64>> {
        let &Problem { model, sde, forward, y, n, d, .. } = problem;
        let (s1, sl) = problem.level_bounds();
        // Level i of the geometric levels; the last is σ_min itself (the formula only rounds
        // to it).
        let level = |i: usize| if i + 1 == self.levels { sl } else { super::geometric_level(s1, sl, self.levels, i) };
        // The time of a level: T and t_min exactly at the ends, bisection between.
        let time_of = |sigma: f64| -> Result<f64> {
            if sigma >= s1 {
                Ok(sde.t_max())
            } else if sigma <= sl {
                Ok(self.t_min)
            } else {
                matching_time(sde, sigma)
            }
        };
        // x: u = x_t/α_t at the start of a level, then the Langevin iterate x₀.
        let mut x = problem.prior_sample(rng);
        let alpha_t = sde.marginal_mean_coef(sde.t_max());
        x.iter_mut().for_each(|v| *v /= alpha_t);
        // A linear model's likelihood has one curvature L everywhere: at the first level
        // (r ≈ σ_T/α_T, so 1/r² ≈ 0) a Langevin step η₀ ≥ 2/L grows the iterate by |1 − η₀L|
        // per step, which the chains would only reveal levels later as a non-finite score.
        if forward.is_linear() {
            let mut probe: Vec<f64> = (0..d).map(|i| 1.0 + ((i * 7919) % 13) as f64 / 13.0).collect();
            let l = super::likelihood_curvature(forward, y, &x[..d], &mut probe, 30)?;
            if self.step_size * l >= 2.0 {
                return Err(Error::out_of_range(
                    "DAPS step_size",
                    self.step_size,
                    format!(
                        "below {:.3e}: the likelihood's curvature ‖∇² log p(y|x)‖ is {l:.4e}, and Langevin steps \
                         η₀ ≥ 2/‖∇² log p‖ diverge",
                        2.0 / l
                    ),
                ));
            }
        }
        let (mut xhat, mut xt, mut s) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; n * d]);
        let mut nodes: Vec<f64> = Vec::with_capacity(self.ode_steps.max(1).saturating_add(1));
        for i in 0..self.levels {
            let sigma = level(i);
            let t = time_of(sigma)?;
            // (1) x̂₀: Euler steps of the PF-ODE in σ on the poly-7 grid, the last one to 0.
            nodes.clear();
            let k = if sigma > sl { self.ode_steps.max(1) } else { 1 };
            let (a, b) = (sigma.powf(1.0 / POLY), sl.powf(1.0 / POLY));
            nodes.extend((0..k).map(|j| if j == 0 { sigma } else { (a + j as f64 / k as f64 * (b - a)).powf(POLY) }));
            nodes.push(0.0);
            xhat.copy_from_slice(&x);
            for w in nodes.windows(2) {
                let (nu, next) = (w[0], w[1]);
                let tn = if nu == sigma { t } else { time_of(nu)? };
                let alpha = sde.marginal_mean_coef(tn);
                for (o, v) in xt.iter_mut().zip(&xhat) {
                    *o = alpha * v;
                }
                model.score(&xt, tn, &mut s)?;
                let h = (nu - next) * nu * alpha;
                for (v, sv) in xhat.iter_mut().zip(&s) {
                    *v += h * sv;
                }
            }
            if xhat.iter().any(|v| !v.is_finite()) {
                let what = if i == 0 {
                    "DAPS clean estimate x̂₀"
                } else {
                    // Huge but finite Langevin iterates of the level before (a step beyond the
                    // likelihood's stability limit where it is stiffest) reach the network here.
                    "DAPS clean estimate x̂₀ (the previous level's Langevin steps diverged: lower step_size)"
                };
                return Err(Error::NonFinite { what, t });
            }
            // (2) Langevin on N(x₀; x̂₀, r²I)·p(y | x₀), from x̂₀.
            let r = self.r_scale * sigma;
            let inv_r2 = 1.0 / (r * r);
            let eta = self.step_size * self.step_multiplier(i);
            let noise = (2.0 * eta).sqrt();
            x.copy_from_slice(&xhat);
            for _ in 0..self.langevin_steps {
                let g = forward.grad_log_likelihood(y, &x)?;
                let mut finite = true;
                for ((xv, gv), hv) in x.iter_mut().zip(&g).zip(&xhat) {
                    let z: f64 = rng.sample(StandardNormal);
                    *xv += eta * (gv - (*xv - hv) * inv_r2) + noise * z;
                    finite &= xv.is_finite();
                }
                if !finite {
                    return Err(Error::NonFinite { what: "DAPS Langevin iterate (lower step_size)", t });
                }
            }
            // (3) Re-noise to the next level.
            if i + 1 < self.levels {
                let next = level(i + 1);
                for v in x.iter_mut() {
                    let z: f64 = rng.sample(StandardNormal);
                    *v += next * z;
                }
            }
        }
        Ok(x)
    }
}
