//! The cheap surrogate prior of the reference code: a stochastic lower bound on `log p(x)`
//! from denoising score matching (Song et al. 2021, Thm. 4; Feng & Bouman's follow-up):
//! `−log p(x) ≤ −log p_T(x_T) + ½ ∫_{ε}^{T} [g²(‖s(x_t,t) − ∇log p_{0t}‖² − ‖∇log p_{0t}‖²) − 2 ∇·f] dt`
//! plus a Gaussian decoder term at `ε`, with `x_t = α_t x + σ_t z`. Draws of `t` (importance
//! sampled) and `z` per image give an unbiased estimate; its gradient needs only first-order
//! VJPs of the score (no ODE, no second derivatives).
//!
//! One evaluation is **one** batched model call: every time draw of every image and the
//! decoder point of every image go through [`ScoreModel::score_then_vjp`] together, with
//! per-image times, so a network takes the score and the VJP from one forward pass.
//!
//! The lower limit `ε` can be moved during an optimisation ([`Prior::set_time_floor`]):
//! a large `ε` bounds the density of the data smoothed by `N(0, σ_ε²)` noise, whose landscape is
//! smooth; lowering it step by step (noise-level continuation) sharpens the prior without the
//! spurious optima that a small `ε` presents to an optimiser started far from the data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

use rand::SeedableRng;

use super::{LogProb, LogProbGrad, Prior, PriorStats};
use crate::score::{check_batch, ScoreModel};
use crate::sde::{AnySde, Sde};
use crate::{Error, Result};

/// Density from which the bound's times are drawn (each draw is weighted by its inverse, so
/// the estimate is unbiased for every choice; they differ in variance).
/// Named `g2`, `log-uniform` and `uniform` in run descriptions ([`TimeDensity::NAMES`],
/// `FromStr`, serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum TimeDensity {
    /// `∝ g(t)²/σ_t²`, the reference code's choice (it flattens the integrand of the
    /// *value*): most draws fall near `ε`.
    #[default]
    #[serde(rename = "g2")]
    G2OverSigma2,
    /// `∝ 1/t` (log-uniform on `[ε, T]`): fewer draws at the smallest times, where the
    /// network's Jacobian is `~1/σ_t²` and the *gradient's* draws are largest.
    #[serde(rename = "log-uniform")]
    LogUniform,
    /// Uniform on `[ε, T]`.
    #[serde(rename = "uniform")]
    Uniform,
}

named_variants!(TimeDensity, "time density", {
    G2OverSigma2 => "g2",
    LogUniform => "log-uniform",
    Uniform => "uniform",
});

/// The random draws of one bound evaluation for `n` images and `S` time draws per image.
#[derive(Debug, Clone, PartialEq)]
pub struct DsmDraws {
    /// Times, `(S, n)`: draw `j` of image `i` is `t[j·n + i]`.
    pub t: Vec<f64>,
    /// Noise of the time draws, `(S, n, D)`.
    pub z: Vec<f64>,
    /// Noise of the terminal term, `(n, D)`.
    pub z_terminal: Vec<f64>,
    /// Noise of the decoder term at `ε`, `(n, D)`.
    pub z_decoder: Vec<f64>,
}

/// The denoising-score-matching bound `−log p(x) ≤ e(x)` as a DPI energy.
pub struct DsmBoundPrior {
    model: Arc<dyn ScoreModel>,
    sde: AnySde,
    /// Current lower limit (f64 bits; moved by a DPI schedule through `&self`).
    eps: AtomicU64,
    /// Smallest lower limit the table covers (the construction `ε`).
    eps_min: f64,
    samples: usize,
    density: TimeDensity,
    stratified: bool,
    antithetic: bool,
    /// Inverse-CDF table of the time density on `[ε_min, T]`.
    grid: Vec<f64>,
    cdf: Vec<f64>,
}

impl std::fmt::Debug for DsmBoundPrior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DsmBoundPrior")
            .field("sde", &self.sde)
            .field("eps", &self.eps())
            .field("samples", &self.samples)
            .field("density", &self.density)
            .field("stratified", &self.stratified)
            .field("antithetic", &self.antithetic)
            .finish()
    }
}

impl DsmBoundPrior {
    /// The seed of the fixed draws of [`Prior::log_prob`] and [`Prior::grad_log_prob`].
    pub const FIXED_DRAW_SEED: u64 = 0;

    /// The bound for `model` trained with `sde`, lower limit `eps` (the reference: 1e-3) and
    /// `samples` time draws per image (the reference: 1), times drawn `∝ g²/σ²`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use scoreprior_core::prior::dsm::{DsmBoundPrior, TimeDensity};
    /// use scoreprior_core::score::Gaussian;
    /// use scoreprior_core::sde::{AnySde, VpSde};
    /// let sde = AnySde::Vp(VpSde::default());
    /// let g = Gaussian::new(vec![0.0; 2], &[1.0, 0.0, 0.0, 1.0], sde).unwrap();
    /// let prior = DsmBoundPrior::new(Arc::new(g), sde, 1e-3, 4).unwrap()
    ///     .with_density(TimeDensity::LogUniform)
    ///     .with_stratified(true)
    ///     .with_antithetic(true)
    ///     .unwrap();
    /// assert_eq!(prior.eps(), 1e-3);
    /// ```
    pub fn new(model: Arc<dyn ScoreModel>, sde: AnySde, eps: f64, samples: usize) -> Result<Self> {
        let t_max = sde.t_max();
        if !(eps > 0.0 && eps < t_max) {
            return Err(Error::out_of_range("DSM bound eps", eps, format!("in (0, T = {t_max})")));
        }
        if samples == 0 {
            return Err(Error::count_out_of_range("DSM bound samples", samples, "at least 1"));
        }
        let mut p = Self {
            model,
            sde,
            eps: AtomicU64::new(eps.to_bits()),
            eps_min: eps,
            samples,
            density: TimeDensity::G2OverSigma2,
            stratified: false,
            antithetic: false,
            grid: Vec::new(),
            cdf: Vec::new(),
        };
        p.build_table();
        Ok(p)
    }

    /// Sets the density of the time draws.
    pub fn with_density(mut self, density: TimeDensity) -> Self {
        self.density = density;
        self.build_table();
        self
    }

    /// Stratifies the `S` time draws of each image: draw `j` takes its CDF value from the
    /// `j`-th of `S` equal bins (lower variance than `S` independent draws, same mean).
    pub fn with_stratified(mut self, on: bool) -> Self {
        self.stratified = on;
        self
    }

    /// Antithetic noise: draws come in pairs `(t, z)`, `(t, −z)` (needs an even number of
    /// draws per image). The bound's value and gradient have a large part odd in `z`, which
    /// each pair cancels. With stratification, a pair shares one stratum.
    ///
    /// # Errors
    /// If the number of draws per image is odd.
    pub fn with_antithetic(mut self, on: bool) -> Result<Self> {
        if on && self.samples % 2 != 0 {
            return Err(Error::inconsistent(
                "antithetic DSM draws",
                format!("need an even number of samples, got {}", self.samples),
            ));
        }
        self.antithetic = on;
        Ok(self)
    }

    /// The current lower time limit `ε`.
    pub fn eps(&self) -> f64 {
        f64::from_bits(self.eps.load(Ordering::Relaxed))
    }

    /// Time draws per image.
    pub fn samples(&self) -> usize {
        self.samples
    }

    fn weight(&self, t: f64) -> f64 {
        match self.density {
            TimeDensity::G2OverSigma2 => self.sde.diffusion(t).powi(2) / self.sde.marginal_std(t).powi(2),
            TimeDensity::LogUniform => 1.0 / t,
            TimeDensity::Uniform => 1.0,
        }
    }

    /// Trapezoidal cumulative weight on a grid dense near `ε_min`, where `g²/σ²` is largest.
    fn build_table(&mut self) {
        let (eps, t_max) = (self.eps_min, self.sde.t_max());
        let m = 4000;
        self.grid = (0..=m).map(|i| eps * (t_max / eps).powf(i as f64 / m as f64)).collect();
        let mut cdf = vec![0.0; m + 1];
        for i in 1..=m {
            cdf[i] = cdf[i - 1]
                + 0.5 * (self.weight(self.grid[i]) + self.weight(self.grid[i - 1])) * (self.grid[i] - self.grid[i - 1]);
        }
        self.cdf = cdf;
    }

    /// Tabulated cumulative weight at `t` (linear within a cell).
    fn cdf_at(&self, t: f64) -> f64 {
        let k = self.grid.partition_point(|g| *g < t).clamp(1, self.grid.len() - 1);
        let (g0, g1) = (self.grid[k - 1], self.grid[k]);
        let f = ((t - g0) / (g1 - g0)).clamp(0.0, 1.0);
        self.cdf[k - 1] + f * (self.cdf[k] - self.cdf[k - 1])
    }

    /// The time whose tabulated cumulative weight is `u`.
    fn inverse_cdf(&self, u: f64) -> f64 {
        let k = self.cdf.partition_point(|c| *c < u).clamp(1, self.cdf.len() - 1);
        let (c0, c1) = (self.cdf[k - 1], self.cdf[k]);
        let f = if c1 > c0 { ((u - c0) / (c1 - c0)).clamp(0.0, 1.0) } else { 0.0 };
        self.grid[k - 1] + f * (self.grid[k] - self.grid[k - 1])
    }

    /// Draws the randomness of one evaluation for `n` images (times on `[ε, T]` with the
    /// current `ε`).
    pub fn draw(&self, n: usize, rng: &mut dyn RngCore) -> DsmDraws {
        let d = self.model.dim();
        let s = self.samples;
        let normal =
            |rng: &mut dyn RngCore, k: usize| -> Vec<f64> { (0..k).map(|_| rng.sample(StandardNormal)).collect() };
        let z_terminal = normal(rng, n * d);
        let (c_lo, c_hi) = (self.cdf_at(self.eps()), *self.cdf.last().expect("table"));
        // Strata: one per draw, or one per antithetic pair.
        let per = if self.antithetic { 2 } else { 1 };
        let strata = s / per;
        let mut t = vec![0.0; s * n];
        for i in 0..n {
            for k in 0..strata {
                let v: f64 = rng.gen();
                let q = if self.stratified { (k as f64 + v) / strata as f64 } else { v };
                let tv = self.inverse_cdf(c_lo + q * (c_hi - c_lo));
                for r in 0..per {
                    t[(k * per + r) * n + i] = tv;
                }
            }
        }
        let mut z = normal(rng, s * n * d);
        if self.antithetic {
            for k in 0..strata {
                let (a, b) = z.split_at_mut((2 * k + 1) * n * d);
                let first = &a[2 * k * n * d..];
                for (dst, src) in b[..n * d].iter_mut().zip(first) {
                    *dst = -src;
                }
            }
        }
        let z_decoder = normal(rng, n * d);
        DsmDraws { t, z, z_terminal, z_decoder }
    }

    /// The bound and its gradient for the batch `x` (`(n, D)`) at the given draws: one
    /// batched [`ScoreModel::score_then_vjp`] call over the `S·n` time draws and the `n`
    /// decoder points.
    ///
    /// # Errors
    /// Shape mismatches and the model's errors.
    pub fn evaluate(&self, x: &[f64], draws: &DsmDraws, energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
        let d = self.model.dim();
        let n = check_batch(x, d, "x")?;
        let s = self.samples;
        if draws.t.len() != s * n
            || draws.z.len() != s * n * d
            || draws.z_terminal.len() != n * d
            || draws.z_decoder.len() != n * d
        {
            return Err(Error::shape("DSM draws", format!("{s} draws for {n} images of {d}"), draws.t.len()));
        }
        if energy.len() != n || grad.len() != n * d {
            return Err(Error::shape(
                "DSM outputs",
                format!("{n} and {}", n * d),
                format!("{} and {}", energy.len(), grad.len()),
            ));
        }
        let sde = &self.sde;
        let eps = self.eps();
        energy.iter_mut().for_each(|e| *e = 0.0);
        grad.iter_mut().for_each(|g| *g = 0.0);
        // Terminal term −log p_T(α_T x + σ_T z') (no model call).
        let t_max = sde.t_max();
        let (a_t, s_t) = (sde.marginal_mean_coef(t_max), sde.marginal_std(t_max));
        let pt2 = sde.prior_std().powi(2);
        let mut xt = vec![0.0; d];
        for i in 0..n {
            for k in 0..d {
                xt[k] = a_t * x[i * d + k] + s_t * draws.z_terminal[i * d + k];
            }
            energy[i] -= sde.prior_log_prob(&xt);
            for k in 0..d {
                grad[i * d + k] += a_t * xt[k] / pt2;
            }
        }
        // One batch: entries j·n + i (j < S) are the time draws, S·n + i the decoder points.
        let m = (s + 1) * n;
        let mut times = Vec::with_capacity(m);
        times.extend_from_slice(&draws.t);
        times.extend(std::iter::repeat_n(eps, n));
        let mut xs = vec![0.0; m * d];
        // Cotangent of entry e is u[e]·s + v[e]·z.
        let (mut u, mut v) = (vec![0.0; m], vec![0.0; m]);
        for e in 0..m {
            let (a, sd) = (sde.marginal_mean_coef(times[e]), sde.marginal_std(times[e]));
            let i = e % n;
            let z = if e < s * n { &draws.z[e * d..(e + 1) * d] } else { &draws.z_decoder[i * d..(i + 1) * d] };
            for k in 0..d {
                xs[e * d + k] = a * x[i * d + k] + sd * z[k];
            }
            if e < s * n {
                // ∂/∂x of ½·w·g²‖s + z/σ‖² is w·g²·α·J_sᵀ(s + z/σ).
                (u[e], v[e]) = (1.0, 1.0 / sd);
            } else {
                // x − q_mean = −(σ/α)(z + σ s); its gradient term is J_sᵀ applied to α σ (z + σ s).
                (u[e], v[e]) = (a * sd * sd, a * sd);
            }
        }
        let zs: Vec<&[f64]> = (0..m)
            .map(|e| {
                if e < s * n {
                    &draws.z[e * d..(e + 1) * d]
                } else {
                    &draws.z_decoder[(e - s * n) * d..(e - s * n + 1) * d]
                }
            })
            .collect();
        let cot = |e: usize, sc: &[f64], c: &mut [f64]| {
            for ((c, s), z) in c.iter_mut().zip(sc).zip(zs[e]) {
                *c = u[e] * s + v[e] * z;
            }
        };
        let (mut sc, mut vjp) = (vec![0.0; m * d], vec![0.0; m * d]);
        self.model.score_then_vjp(&xs, &times, &cot, &mut sc, &mut vjp)?;
        // Time integral: importance weight (Z/w(t))/S.
        let z_w = *self.cdf.last().expect("table") - self.cdf_at(eps);
        for e in 0..s * n {
            let (i, t) = (e % n, times[e]);
            let (a, sd) = (sde.marginal_mean_coef(t), sde.marginal_std(t));
            let g2 = sde.diffusion(t).powi(2);
            let w = z_w / self.weight(t) / s as f64;
            let z = zs[e];
            let sce = &sc[e * d..(e + 1) * d];
            let resid: f64 = sce.iter().zip(z).map(|(s, z)| (s + z / sd).powi(2)).sum();
            let base: f64 = z.iter().map(|z| (z / sd).powi(2)).sum();
            let div_f = sde.drift_coef(t) * d as f64;
            energy[i] += w * (0.5 * g2 * (resid - base) - div_f);
            for k in 0..d {
                grad[i * d + k] += w * g2 * a * vjp[e * d + k];
            }
        }
        // Gaussian decoder at ε: q(x | x_ε) = N(x_ε/α + σ² s(x_ε, ε)/α, (σ/α)² I).
        let (a, sd) = (sde.marginal_mean_coef(eps), sde.marginal_std(eps));
        let q = sd / a;
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        for i in 0..n {
            let e = s * n + i;
            let z = zs[e];
            let sce = &sc[e * d..(e + 1) * d];
            let r2: f64 = sce.iter().zip(z).map(|(s, z)| (q * (z + sd * s)).powi(2)).sum();
            energy[i] += 0.5 * d as f64 * (ln2pi + 2.0 * q.ln()) + r2 / (2.0 * q * q)
                - 0.5 * d as f64 * (ln2pi + 2.0 * sd.ln() + 1.0);
            for k in 0..d {
                grad[i * d + k] += vjp[e * d + k];
            }
        }
        Ok(())
    }
}

/// The bound as a [`Prior`]: `log_prob` is the estimate of the lower bound on `log p(x)`.
/// [`Prior::grad_log_prob_with`] draws the times and noises from the caller's RNG (a DPI
/// step's); `log_prob`/`grad_log_prob` use the fixed draws of `ChaCha8Rng` seed
/// [`DsmBoundPrior::FIXED_DRAW_SEED`], so that they are reproducible.
impl Prior for DsmBoundPrior {
    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn log_prob(&self, x: &[f64]) -> Result<LogProb> {
        let r = self.grad_log_prob(x)?;
        Ok(LogProb { log_prob: r.log_prob, stats: r.stats })
    }

    fn grad_log_prob(&self, x: &[f64]) -> Result<LogProbGrad> {
        self.grad_log_prob_with(x, &mut rand_chacha::ChaCha8Rng::seed_from_u64(Self::FIXED_DRAW_SEED))
    }

    fn grad_log_prob_with(&self, x: &[f64], rng: &mut dyn RngCore) -> Result<LogProbGrad> {
        let n = check_batch(x, self.model.dim(), "x")?;
        // The draws' noise (S, n, D) and the network batch of (S + 1)·n points (inputs, scores,
        // vector-Jacobian products), sized before anything is drawn.
        crate::limits::check_elems(
            &format!(
                "{} DSM time draws for {n} image(s) of {} values (draws × images × D)",
                self.samples,
                self.model.dim()
            ),
            &[self.samples.saturating_add(1), n, self.model.dim(), 4],
            8,
        )?;
        let draws = self.draw(n, rng);
        let (mut energy, mut grad) = (vec![0.0; n], vec![0.0; x.len()]);
        self.evaluate(x, &draws, &mut energy, &mut grad)?;
        energy.iter_mut().for_each(|e| *e = -*e);
        grad.iter_mut().for_each(|g| *g = -*g);
        Ok(LogProbGrad { log_prob: energy, grad, stats: PriorStats::default() })
    }

    fn time_floor(&self) -> Option<f64> {
        Some(self.eps())
    }

    fn set_time_floor(&self, t0: f64) -> Result<()> {
        if !(t0.is_finite() && t0 >= self.eps_min * (1.0 - 1e-12) && t0 < self.sde.t_max()) {
            return Err(Error::out_of_range(
                "DSM bound: time floor",
                t0,
                format!("in [{}, {}) (the construction eps and T)", self.eps_min, self.sde.t_max()),
            ));
        }
        self.eps.store(t0.max(self.eps_min).to_bits(), Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpi::Energy;
    use crate::score::Gaussian;
    use crate::sde::VpSde;
    use crate::test_support::central_difference;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn gaussian(d: usize, var: f64) -> Arc<dyn ScoreModel> {
        let mut cov = vec![0.0; d * d];
        for i in 0..d {
            cov[i * d + i] = var;
        }
        Arc::new(Gaussian::new(vec![0.1; d], &cov, AnySde::Vp(VpSde::default())).unwrap())
    }

    #[test]
    fn bound_is_close_to_and_on_average_above_the_exact_energy() {
        // N(0.1, 0.25 I) in 16 dims: the bound averaged over many draws is within a few nats
        // of −log p(x) and not below it (the exact score makes the bound nearly tight).
        let d = 16;
        let prior = DsmBoundPrior::new(gaussian(d, 0.25), AnySde::Vp(VpSde::default()), 1e-3, 1).unwrap();
        let x: Vec<f64> = (0..d).map(|k| 0.1 + 0.3 * ((k as f64) * 0.7).sin()).collect();
        let exact = {
            let sq: f64 = x.iter().map(|v| (v - 0.1) * (v - 0.1)).sum();
            0.5 * sq / 0.25 + 0.5 * d as f64 * (2.0 * std::f64::consts::PI * 0.25).ln()
        };
        let reps = 4000;
        let xb: Vec<f64> = (0..reps).flat_map(|_| x.clone()).collect();
        let (mut e, mut g) = (vec![0.0; reps], vec![0.0; reps * d]);
        crate::dpi::PriorEnergy::new(&prior)
            .energy_and_grad(&xb, &mut ChaCha8Rng::seed_from_u64(1), &mut e, &mut g)
            .unwrap();
        let mean = e.iter().sum::<f64>() / reps as f64;
        let sd = (e.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / reps as f64).sqrt() / (reps as f64).sqrt();
        assert!(mean > exact - 4.0 * sd, "bound {mean} ± {sd} below exact {exact}");
        assert!(mean - exact < 0.5, "bound {mean} vs exact {exact}");
        // The averaged gradient estimates ∇(−log p) = (x − μ)/0.25 without visible bias: the
        // z-scores of the 16 coordinates against their Monte-Carlo errors look standard normal.
        let mut chi2 = 0.0;
        for k in 0..d {
            let gm = (0..reps).map(|r| g[r * d + k]).sum::<f64>() / reps as f64;
            let gsd = ((0..reps).map(|r| (g[r * d + k] - gm).powi(2)).sum::<f64>() / reps as f64).sqrt()
                / (reps as f64).sqrt();
            let zk = (gm - (x[k] - 0.1) / 0.25) / gsd;
            assert!(zk.abs() < 4.5, "k={k}: z-score {zk}");
            chi2 += zk * zk / d as f64;
        }
        assert!(chi2 < 3.0, "mean squared z-score {chi2}");
    }

    #[test]
    fn gradient_matches_finite_differences_at_fixed_noise() {
        let d = 4;
        let prior = DsmBoundPrior::new(gaussian(d, 0.09), AnySde::Vp(VpSde::default()), 1e-3, 2).unwrap();
        let x = vec![0.3, -0.2, 0.5, 0.05];
        let eval = |x: &[f64]| {
            let (mut e, mut g) = (vec![0.0], vec![0.0; d]);
            crate::dpi::PriorEnergy::new(&prior)
                .energy_and_grad(x, &mut ChaCha8Rng::seed_from_u64(9), &mut e, &mut g)
                .unwrap();
            (e[0], g)
        };
        let (_, g) = eval(&x);
        for (k, gk) in g.iter().enumerate() {
            let fd = central_difference(|y| eval(y).0, &x, k, 1e-6);
            assert!((fd - gk).abs() < 1e-5 * (1.0 + fd.abs()), "k={k}: fd {fd} vs {gk}");
        }
        assert!(DsmBoundPrior::new(gaussian(d, 0.09), AnySde::Vp(VpSde::default()), 0.0, 1).is_err());
    }
}
