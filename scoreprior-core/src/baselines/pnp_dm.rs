//! PnP-DM (Wu, Sun, Chen, Zhang, Yue, Bouman, NeurIPS 2024): split Gibbs sampling of the
//! augmented density `π(x, z) ∝ p(x) p(y|z) exp(−‖x − z‖²/(2ρ²))`, whose `x`-marginal is
//! `p(x) (p(y|·) ∗ N(0, ρ²I))(x)`, the posterior with the likelihood blurred by `ρ`; annealing
//! `ρ` to a small floor makes it (nearly) the posterior `p(x|y)`. Iteration `k = 0, …, K−1`,
//! with `ρ_k = max(ρ_start · decay^k, ρ_min)`:
//!
//! 1. **Likelihood step**, `z ~ p(y|z) exp(−‖z − x‖²/(2ρ_k²))`.
//!    - *Exact* when `A` is linear with Gaussian noise and `D ≤ exact_max_dim`: then
//!      `∇ log p(y|z) = b − Hz` (`H = AᵀWA`, `b = AᵀWy`, read off the model's gradient on the
//!      basis vectors, as [`crate::denoise::linear_gaussian_posterior`] does, and checked to be
//!      affine at a third point), and `z ~ N(m, C)`, `C = (H + I/ρ²)⁻¹`, `m = C(b + x/ρ²)`.
//!      With `H = QΛQᵀ` (eigendecomposition once per run) every `ρ` costs no factorisation:
//!      `z = Q[c ∘ Qᵀ(b + x/ρ²) + √c ∘ ξ]`, `c_i = 1/(λ_i + 1/ρ²)`, for all chains in two
//!      matrix products.
//!    - *Langevin* otherwise (non-linear operators, other likelihoods, large `D`):
//!      `likelihood_steps` unadjusted Langevin steps on `U(z) = −log p(y|z) + ‖z − x‖²/(2ρ²)`,
//!      `z ← z + η(∇ log p(y|z) − (z − x)/ρ²) + √(2η) ξ`, started from the chain's current `x`
//!      at every iteration (as the reference does), with `η = ε/(L + 1/ρ²)`, `ε` = `likelihood_step` and
//!      `L` the likelihood's curvature `‖∇² log p(y|z)‖₂`, estimated by power iteration on
//!      finite differences of `∇ log p(y|·)` at chain 0's current `z` (20 products once for a
//!      linear model; 10, warm-started, per iteration for a non-linear one). `ηλ ≤ ε` in every
//!      direction, so the step is stable for `ε < 2`; the stationary variance of the stiffest
//!      direction is `1/(1 − ε/2)` times too large (5 % at the default `ε = 0.1`).
//! 2. **Prior step**, `x ~ p(x) exp(−‖x − z‖²/(2ρ_k²))`, the posterior of Gaussian denoising at
//!    noise level `ρ_k`: with `x_t = α_t x₀ + σ_t ε`, take the time `t*` with
//!    `σ_{t*}/α_{t*} = ρ_k` (bisection, [`crate::denoise::matching_time`]), so that `α_{t*} z` is
//!    distributed as `x_{t*}` given `x₀`; start there and run the reverse SDE (Euler–Maruyama,
//!    as [`super::Dps`], noise on every step) with `denoise_steps` uniform steps from `t*` down
//!    to `t_min`, then Tweedie's step `x₀ = (x + σ² s(x, t_min))/α` at `t_min`. When `ρ_k`
//!    exceeds the SDE's largest ratio `σ_T/α_T`, the reverse process starts at `T` from
//!    `α_T z` (the prior step then denoises at level `σ_T/α_T`, an approximation).
//!
//! All `n` chains run as one batch: one score call per reverse step for all of them, one
//! likelihood-gradient call per Langevin step. [`PosteriorSampler::sample`] returns each
//! chain's final `x` (`n` samples); [`PnpDm::sample_kept`] also returns the `x` of every
//! iteration after `burn_in`, as the reference does.

use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut, SymmetricEigen};
use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

use super::{PosteriorSampler, Problem};
use crate::denoise::matching_time;
use crate::forward::ForwardModel;
use crate::score::ScoreModel;
use crate::sde::Sde;
use crate::{Error, Result};

/// Settings of PnP-DM. [`PnpDm::new`] is the black-hole configuration of the reference
/// (InverseBench, images in `[0, 1]`): `K = 200` iterations, 40 of burn-in, `ρ` from 10 down
/// by × 0.93 per iteration to the floor 0.02 (reached after 86 iterations), a 100-step
/// denoiser; and, chosen here, 100 Langevin steps of relative size `ε = 0.1` for likelihoods
/// without a closed form, the exact step up to `D = 2048`, and `t_min = 1e-5`.
/// The `ρ` scale is that of the image values: for images in `[−1, 1]`, double `rho_start` and
/// `rho_min`.
///
/// Why `t_min` so small: each prior step ends with Tweedie's *mean* at `t_min`, which drops the
/// spread `≈ σ_{t_min}/α_{t_min}` of `x₀` given `x_{t_min}` from a conditional whose spread is
/// `≈ ρ`, so the conditional variance of `x | z` is short by about `(σ_{t_min}/α_{t_min})²/ρ²`,
/// and the chain's variance with it. The reference's EDM sampler ends at `σ_min = 0.002`
/// against the floor 0.02 (1 %). For the default VP SDE, `σ/α` is 0.0105 at `t = 1e-3` (on the
/// 2-D Gaussian test the posterior variances came out 15 % small) and 0.001 at `t = 1e-5`
/// (0.25 %). A VE SDE cannot go below its `σ_min` (0.01 by default: 25 % at `ρ_min = 0.02`);
/// raise `rho_min` there.
///
/// # Why the Langevin step starts from `x`
///
/// Until issue 29 each likelihood step continued from the chain's previous `z`. That chain
/// is coupled to `x` only through `−(z − x)/ρ²`, which per likelihood step relaxes `z` towards
/// `x` by a fraction of about `ηM/ρ²` (`M` steps): 4e-5/ρ² at the fixed step `η = 1e-6` that
/// closure data need, nothing at all while `ρ ≳ 0.01`. One bad `z` then stays: on closure
/// data the first step starts at `x⁽⁰⁾ = 0`, where every visibility vanishes and the closure
/// phases' gradients are unbounded, and threw `z` to an image of RMS 17 per pixel and flux −74
/// (the truth's is +79); the later steps never left it, the prior steps followed it as `ρ`
/// fell, and the samples ended with closure χ² 2,100 / 2,000 (ψ / ln A) and cross-correlation
/// 0.25 with the truth (ring of `eht-study`, 4 chains, 100 iterations, 40 steps of 1e-6). The
/// same run starting each step from `x` fits (χ² 17.5 / 12.9, cross-correlation 0.92; the
/// table below). Starting from `x` is also the better start in general: `z | x` is centred
/// near `x` once `ρ` is small, and `x` is the prior step's cleaned image. (The chains still
/// start at `x⁽⁰⁾ = 0`; starting the Langevin path at white noise as the reference does was
/// tried and not adopted: one run each, 4 chains, it did not measurably help.)
///
/// # Closure data (non-linear, stiff)
///
/// Closure phases and log closure amplitudes need three settings other than the defaults:
///
/// - **a fixed step** [`likelihood_lr`](PnpDm::likelihood_lr) `≈ 1e-6` in the priors' units
///   (peak 1): the curvature `‖∇² log p(y|z)‖` is 1.4e6 at the ring's truth but 2.6e14 at a
///   smooth image whose long-baseline visibilities vanish, so the curvature-scaled step freezes
///   (`η ≈ 4e-16`); 1e-6 is the step DAPS fits the same data with;
/// - **a lower floor** [`rho_min`](PnpDm::rho_min) `≈ 0.005` and enough iterations at it: the
///   `x`-marginal at the floor is the posterior with the likelihood blurred by `N(0, ρ²I)`, and
///   a likelihood this sharp (data noise ≈ 1e-3 in its stiffest directions) is blurred far
///   at the reference's 0.02;
/// - 100 Langevin steps (the default; the reference's 40 converge more slowly).
///
/// Measured on `eht-study`'s ring and double (32 × 32, the `ncsnpp_sources32` prior, the flux
/// measurement of `--flux-weight 10`; 4 chains, 150 iterations, 20-step denoisers, these three
/// settings): samples' closure χ² (ψ / ln A) 1.33 / 1.51 on the ring and 3.40 / 2.63 on the
/// double (still falling), cross-correlation with the truth 0.97 on both; at the reference's
/// floor 0.02 and 40 steps, 4.7 / 6.1 on the ring. Every configuration tried is in the table of
/// `docs/src/studies/eht-study.md`.
///
/// ```
/// use rand::SeedableRng;
/// use scoreprior_core::baselines::PnpDm;
/// use scoreprior_core::forward::Model;
/// use scoreprior_core::score::Gaussian;
/// use scoreprior_core::sde::{AnySde, VpSde};
/// let sde = AnySde::Vp(VpSde::default());
/// let prior = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], sde).unwrap();
/// let denoise = Model::denoising([1, 1, 2], 0.5).unwrap();
/// let pnp = PnpDm { iterations: 30, burn_in: 10, rho_decay: 0.8, denoise_steps: 20, ..PnpDm::new() };
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let x = pnp.sample(&prior, &sde, &denoise, &[1.0, -1.0], 8, &mut rng).unwrap();
/// assert_eq!(x.len(), 16);
/// assert!(x.iter().all(|v| v.is_finite()));
/// // Every iteration after burn-in, iteration-major: 20 × 8 samples.
/// let kept = pnp.sample_kept(&prior, &sde, &denoise, &[1.0, -1.0], 8, &mut rng).unwrap();
/// assert_eq!(kept.len(), 20 * 8 * 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PnpDm {
    /// Gibbs iterations `K ≥ 1` (each one likelihood step and one prior step).
    pub iterations: usize,
    /// Iterations discarded before samples are kept, `< K` ([`PnpDm::sample_kept`]).
    pub burn_in: usize,
    /// Coupling strength at the first iteration, `ρ_0 ≥ rho_min`.
    pub rho_start: f64,
    /// Factor applied to `ρ` after each iteration, in `(0, 1]`.
    pub rho_decay: f64,
    /// Floor of `ρ`, positive and at least the SDE's noise level `σ/α` at `t_min`; the
    /// `x`-marginal at the floor is the posterior with the likelihood blurred by `N(0, ρ²I)`.
    pub rho_min: f64,
    /// Reverse-SDE steps `≥ 1` of each prior step (from `t*` to `t_min`).
    pub denoise_steps: usize,
    /// Langevin steps `≥ 1` of each likelihood step that has no closed form.
    pub likelihood_steps: usize,
    /// Relative Langevin step `ε ∈ (0, 1]`: `η = ε/(L + 1/ρ²)`.
    pub likelihood_step: f64,
    /// A fixed Langevin step `η` in place of the curvature-scaled one (the reference's `lr`),
    /// capped at `ε ρ²` for the coupling term's stability. For likelihoods whose curvature
    /// varies by orders of magnitude between images (closure phases of a smooth image, whose
    /// long-baseline visibilities vanish, are arbitrarily sensitive), where the curvature at
    /// one chain's `z` freezes every chain. `None` (the default): `ε/(L + 1/ρ²)`.
    pub likelihood_lr: Option<f64>,
    /// Largest `D` for which a linear Gaussian likelihood gets the exact step (it forms and
    /// eigendecomposes the `D × D` matrix `H` once: `O(D³)` time, `3D²` values of memory;
    /// measured 0.35 s at `D = 1024`, 4.8 s at `D = 2048`); 0 always uses Langevin.
    pub exact_max_dim: usize,
    /// Last time `t_min` of each prior step, in `(0, T)`, with `σ_{t_min}/α_{t_min} ≤ ρ_min`
    /// (and well below it: see above).
    pub t_min: f64,
}

impl Default for PnpDm {
    fn default() -> Self {
        Self::new()
    }
}

/// A linear Gaussian likelihood `∇ log p(y|z) = b − Hz`, `H = QΛQᵀ`.
struct ExactLikelihood {
    /// Eigenvectors of `H` as columns.
    q: DMatrix<f64>,
    /// Eigenvalues of `H`, clamped at 0.
    lambda: Vec<f64>,
    /// `b = ∇ log p(y|0)`.
    b: Vec<f64>,
}

impl PnpDm {
    /// 200 iterations, 40 burn-in, `ρ`: 10 × 0.93^k floored at 0.02, 100 denoising steps,
    /// 100 Langevin steps with `ε = 0.1`, exact likelihood steps up to `D = 2048`,
    /// `t_min = 1e-5`.
    pub fn new() -> Self {
        Self {
            iterations: 200,
            burn_in: 40,
            rho_start: 10.0,
            rho_decay: 0.93,
            rho_min: 0.02,
            denoise_steps: 100,
            likelihood_steps: 100,
            likelihood_step: 0.1,
            likelihood_lr: None,
            exact_max_dim: 2048,
            t_min: 1e-5,
        }
    }

    /// `ρ_k = max(ρ_start · decay^k, ρ_min)`.
    pub fn rho(&self, k: usize) -> f64 {
        (self.rho_start * self.rho_decay.powi(k.min(i32::MAX as usize) as i32)).max(self.rho_min)
    }

    /// Checks the settings against `sde` (also done by [`PnpDm::sample`]).
    ///
    /// # Errors
    /// Zero iterations, denoising or Langevin steps; `burn_in ≥ iterations`; `ρ_start`,
    /// `ρ_min` not positive and finite, `ρ_min > ρ_start`, a decay outside `(0, 1]`, a Langevin
    /// step outside `(0, 1]`, `t_min` outside `(0, T)`; and ([`Error::Inconsistent`]) a floor
    /// `ρ_min` below the SDE's noise level at `t_min`.
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        for (what, n) in [
            ("PnP-DM iterations", self.iterations),
            ("PnP-DM denoise_steps", self.denoise_steps),
            ("PnP-DM likelihood_steps", self.likelihood_steps),
        ] {
            if n == 0 {
                return Err(Error::count_out_of_range(what, n, "at least 1"));
            }
        }
        if self.burn_in >= self.iterations {
            let expected = format!("less than iterations ({})", self.iterations);
            return Err(Error::count_out_of_range("PnP-DM burn_in", self.burn_in, expected));
        }
        if !(self.rho_start.is_finite() && self.rho_start > 0.0) {
            return Err(Error::out_of_range("PnP-DM rho_start", self.rho_start, "positive and finite"));
        }
        if let Some(lr) = self.likelihood_lr {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(Error::out_of_range("PnP-DM likelihood_lr", lr, "positive and finite"));
            }
        }
        if !(self.rho_min.is_finite() && self.rho_min > 0.0 && self.rho_min <= self.rho_start) {
            let expected = format!("positive and at most rho_start ({})", self.rho_start);
            return Err(Error::out_of_range("PnP-DM rho_min", self.rho_min, expected));
        }
        if !(self.rho_decay > 0.0 && self.rho_decay <= 1.0) {
            return Err(Error::out_of_range("PnP-DM rho_decay", self.rho_decay, "in (0, 1]"));
        }
        if !(self.likelihood_step > 0.0 && self.likelihood_step <= 1.0) {
            return Err(Error::out_of_range("PnP-DM likelihood_step", self.likelihood_step, "in (0, 1]"));
        }
        super::check_t_min("PnP-DM", self.t_min, sde)?;
        let floor = super::noise_level(sde, self.t_min);
        if self.rho_min < floor {
            return Err(Error::inconsistent(
                "PnP-DM rho_min, t_min",
                format!(
                    "the floor rho_min = {} lies below the SDE's noise level σ/α = {floor} at t_min = {}, \
                     where every prior step ends; raise rho_min or lower t_min",
                    self.rho_min, self.t_min
                ),
            ));
        }
        Ok(())
    }

    /// Like [`PnpDm::sample`], but keeps the `x` of every iteration after `burn_in` of every
    /// chain: `(K − burn_in)·n` samples, row-major `((K − burn_in)·n, D)`, iteration-major
    /// (row `j·n + i` is chain `i` after iteration `burn_in + j`). Successive rows of one chain
    /// are correlated.
    ///
    /// # Errors
    /// As [`PnpDm::sample`], and more kept values than the memory limit allows.
    pub fn sample_kept(
        &self,
        model: &dyn ScoreModel,
        sde: &dyn Sde,
        forward: &dyn ForwardModel,
        y: &[f64],
        n: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<f64>> {
        let problem = self.problem(model, sde, forward, y, n)?;
        crate::limits::check_elems("PnP-DM kept samples", &[self.iterations - self.burn_in, n, problem.d], 8)?;
        self.chains(&problem, rng, true)
    }

    /// The Gibbs iterations of all chains; returns the final `x` of each chain, or with
    /// `keep` every `x` after burn-in.
    fn chains(&self, problem: &Problem<'_>, rng: &mut dyn RngCore, keep: bool) -> Result<Vec<f64>> {
        let &Problem { model, sde, forward, y, n, d, .. } = problem;
        let exact = if d <= self.exact_max_dim { exact_likelihood(forward, y, d)? } else { None };
        let nd = n * d;
        // x⁽⁰⁾ = 0: the first ρ is large, so the first likelihood step hardly depends on it (on
        // closure data 0 is singular and the first z is garbage, but the next likelihood step
        // starts from the prior step's x again).
        let (mut x, mut z, mut s) = (vec![0.0; nd], vec![0.0; nd], vec![0.0; nd]);
        let mut kept = if keep { Vec::with_capacity((self.iterations - self.burn_in) * nd) } else { Vec::new() };
        // Exact step: work matrices (D × n, column j is chain j).
        let (mut u, mut w) = if exact.is_some() {
            (DMatrix::zeros(d, n), DMatrix::zeros(d, n))
        } else {
            (DMatrix::zeros(0, 0), DMatrix::zeros(0, 0))
        };
        // Langevin step: the curvature estimate and its power-iteration vector.
        let mut curv: Option<f64> = None;
        let mut probe: Vec<f64> = (0..d).map(|i| 1.0 + ((i * 7919) % 13) as f64 / 13.0).collect();
        let t_max = sde.t_max();
        let ratio_max = super::noise_level(sde, t_max);
        for k in 0..self.iterations {
            let rho = self.rho(k);
            let prec = 1.0 / (rho * rho);
            // 1. z ~ p(y|z) N(z; x, ρ²I).
            match &exact {
                Some(e) => {
                    for (uc, xc) in u.column_iter_mut().zip(x.chunks_exact(d)) {
                        for ((uv, xv), bv) in uc.into_iter().zip(xc).zip(&e.b) {
                            *uv = bv + prec * xv;
                        }
                    }
                    w.gemm_tr(1.0, &e.q, &u, 0.0);
                    for mut col in w.column_iter_mut() {
                        for (wv, lv) in col.iter_mut().zip(&e.lambda) {
                            let c = 1.0 / (lv + prec);
                            let xi: f64 = rng.sample(StandardNormal);
                            *wv = c * *wv + c.sqrt() * xi;
                        }
                    }
                    DMatrixViewMut::from_slice(&mut z, d, n).gemm(1.0, &e.q, &w, 0.0);
                }
                None => {
                    // From the current x every time (the reference's `x0hat`), not the previous
                    // z: see "Why the Langevin step starts from x" on [`PnpDm`].
                    z.copy_from_slice(&x);
                    let eta = match self.likelihood_lr {
                        Some(lr) => lr.min(self.likelihood_step / prec),
                        None => {
                            if curv.is_none() || !forward.is_linear() {
                                let iters = if curv.is_none() { 20 } else { 10 };
                                curv = Some(super::likelihood_curvature(forward, y, &z[..d], &mut probe, iters)?);
                            }
                            self.likelihood_step / (curv.unwrap_or(0.0) + prec)
                        }
                    };
                    let noise = (2.0 * eta).sqrt();
                    for _ in 0..self.likelihood_steps {
                        let g = forward.grad_log_likelihood(y, &z)?;
                        for ((zv, gv), xv) in z.iter_mut().zip(&g).zip(&x) {
                            let xi: f64 = rng.sample(StandardNormal);
                            *zv += eta * (gv - prec * (*zv - xv)) + noise * xi;
                        }
                    }
                }
            }
            if z.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: "PnP-DM likelihood step (lower likelihood_step or rho_start)",
                    t: f64::NAN,
                });
            }
            // 2. x ~ p(x) N(x; z, ρ²I): reverse SDE from α_{t*} z at t*, then Tweedie.
            let t_star = if rho >= ratio_max { t_max } else { matching_time(sde, rho)? };
            let alpha = sde.marginal_mean_coef(t_star);
            for (xv, zv) in x.iter_mut().zip(&z) {
                *xv = alpha * zv;
            }
            let dt = (t_star - self.t_min) / self.denoise_steps as f64;
            for i in 0..self.denoise_steps {
                let t = t_star - i as f64 * dt;
                model.score(&x, t, &mut s)?;
                let (a, g2) = (sde.drift_coef(t), sde.diffusion(t).powi(2));
                let noise = (g2 * dt).sqrt();
                for (xv, sv) in x.iter_mut().zip(&s) {
                    let xi: f64 = rng.sample(StandardNormal);
                    *xv += dt * (-a * *xv + g2 * sv) + noise * xi;
                }
            }
            model.score(&x, self.t_min, &mut s)?;
            let (a_min, s_min) = (sde.marginal_mean_coef(self.t_min), sde.marginal_std(self.t_min));
            for (xv, sv) in x.iter_mut().zip(&s) {
                *xv = (*xv + s_min * s_min * sv) / a_min;
            }
            if x.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: "PnP-DM prior step (raise denoise_steps or lower rho_start)",
                    t: t_star,
                });
            }
            if keep && k >= self.burn_in {
                kept.extend_from_slice(&x);
            }
        }
        Ok(if keep { kept } else { x })
    }
}

/// The exact likelihood step's `H = QΛQᵀ` and `b`, when `forward` is linear and its
/// log-likelihood's gradient is affine, `∇ log p(y|z) = b − Hz` (checked at a third point, so
/// that a linear operator with a non-Gaussian likelihood falls back to Langevin); else `None`.
fn exact_likelihood(forward: &dyn ForwardModel, y: &[f64], d: usize) -> Result<Option<ExactLikelihood>> {
    if !forward.is_linear() || d == 0 {
        return Ok(None);
    }
    crate::limits::check_elems("PnP-DM exact likelihood step's matrices (lower exact_max_dim)", &[d, d, 3], 8)?;
    let b = forward.grad_log_likelihood(y, &vec![0.0; d])?;
    let mut basis = vec![0.0; d * d];
    for i in 0..d {
        basis[i * d + i] = 1.0;
    }
    // Row i of the batch is b − H e_i, so H's column i is b minus that row.
    let g = forward.grad_log_likelihood(y, &basis)?;
    drop(basis);
    let mut h = DMatrix::from_fn(d, d, |r, c| b[r] - g[c * d + r]);
    drop(g);
    h = 0.5 * (&h + h.transpose());
    if h.iter().chain(&b).any(|v| !v.is_finite()) {
        return Ok(None);
    }
    // The affine check at a fixed, non-symmetric point.
    let v: Vec<f64> = (0..d).map(|i| 0.5 - ((i * 7919) % 17) as f64 / 17.0).collect();
    let gv = forward.grad_log_likelihood(y, &v)?;
    let hv = &h * DMatrixView::from_slice(&v, d, 1);
    let scale: f64 = b.iter().chain(hv.iter()).map(|a| a * a).sum::<f64>().sqrt();
    let err: f64 = (0..d).map(|i| (gv[i] - (b[i] - hv[i])).powi(2)).sum::<f64>().sqrt();
    if err.is_nan() || err > 1e-8 * scale.max(f64::MIN_POSITIVE) {
        return Ok(None);
    }
    let eig = SymmetricEigen::new(h);
    let lambda = eig.eigenvalues.iter().map(|l| l.max(0.0)).collect();
    Ok(Some(ExactLikelihood { q: eig.eigenvectors, lambda, b }))
}

impl PosteriorSampler for PnpDm {
    // The schedule's steps are the reverse steps of one prior step (each starts at its own
    // `t*`, so `Problem::time` is not used).
    super::sampler_basics!("PnP-DM", denoise_steps);

    fn run(&self, problem: &Problem<'_>, rng: &mut dyn RngCore) -> Result<Vec<f64>> {
        self.chains(problem, rng, false)
    }
}
