//! A mixture of diagonal Gaussians `Σ_k w_k N(μ_k, diag(s_k²))` as an exact score model.
//!
//! Its marginal is `p_t = Σ_k w_k N(α μ_k, diag(v_k))`, `v_k = α² s_k² + σ²`. With
//! responsibilities `r_k ∝ w_k N_k(x)` and `g_k = −(x − α μ_k)/v_k`: the score is
//! `s = Σ_k r_k g_k`, the (symmetric) Jacobian `H = Σ_k r_k (A_k + g_k g_kᵀ) − s sᵀ` with
//! `A_k = −diag(1/v_k)`, and, by `∇r_k = r_k (g_k − s)` and `∇g_k = A_k`, the second-order term
//! `∇(εᵀHε) = Σ_k r_k c_k (g_k − s) + 2 Σ_k r_k (g_k·ε) A_k ε − 2 (s·ε) H ε`,
//! `c_k = εᵀA_kε + (g_k·ε)²`; the trace gradient is the same with `ε ε ᵀ → I`.

use rayon::prelude::*;

use super::checks::{
    check_finite, check_finite_batch, check_len, check_like_x, check_per_image, check_probes, check_vjp,
};
use super::marginal::MarginalDensity;
use super::ScoreModel;
use crate::sde::{AnySde, Sde};
use crate::{Error, Result};

/// Work (`n·K·D` multiply–adds) above which images are processed on rayon threads.
const PAR_WORK: usize = 1 << 15;

/// A weighted mixture of Gaussians with diagonal (or isotropic) covariances, diffused by an
/// SDE; exact score, Jacobian products, trace, trace gradient and second-order term.
///
/// # Example
/// ```
/// use scoreprior_core::score::{GaussianMixture, ScoreModel};
/// use scoreprior_core::sde::{AnySde, VpSde};
/// // The 2-D reference prior: two equal components at ±(0.5, 0.5) with std 0.1.
/// let gmm = GaussianMixture::new(&[0.5, 0.5], &[-0.5, -0.5, 0.5, 0.5], &[0.1, 0.1],
///                                AnySde::Vp(VpSde::default())).unwrap();
/// assert_eq!(gmm.dim(), 2);
/// let mut s = [0.0; 2];
/// gmm.score(&[0.5, 0.5], 0.0, &mut s).unwrap();
/// assert!(s.iter().all(|v| v.abs() < 1e-9)); // a mode at t = 0
/// ```
#[derive(Debug, Clone)]
pub struct GaussianMixture {
    d: usize,
    k: usize,
    log_w: Vec<f64>,
    means: Vec<f64>,
    vars: Vec<f64>,
    sde: AnySde,
}

/// Per-time coefficients: `α`, `1/v_k` (`k×D`) and `log w_k − ½ Σ_l ln(2π v_kl)`.
struct Coefs {
    a: f64,
    inv_v: Vec<f64>,
    log_c: Vec<f64>,
}

/// Per-image quantities: responsibilities `r` (`n×K`), `g` (`n×K×D`), scores (`n×D`), log p.
struct Terms {
    r: Vec<f64>,
    g: Vec<f64>,
    s: Vec<f64>,
    lp: Vec<f64>,
}

/// One image's input and output slices, as zipped by [`GaussianMixture::terms`].
type ImageSlots<'a> = (((&'a [f64], &'a mut [f64]), &'a mut [f64]), (&'a mut [f64], &'a mut f64));

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Runs `f(row, out_row)` for each `d`-row of `out`, on rayon threads when `parallel`.
fn for_rows(out: &mut [f64], d: usize, parallel: bool, f: impl Fn(usize, &mut [f64]) + Sync + Send) {
    if parallel {
        out.par_chunks_mut(d).enumerate().for_each(|(i, o)| f(i, o));
    } else {
        out.chunks_mut(d).enumerate().for_each(|(i, o)| f(i, o));
    }
}

impl GaussianMixture {
    /// A mixture with `K = weights.len()` components; `means` is `(K, D)` row-major and
    /// `stds` is either `(K,)` (isotropic components) or `(K, D)` (diagonal). Weights need not
    /// be normalised.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for inconsistent lengths, [`Error::NonFinite`] for NaN or
    /// infinite values, [`Error::OutOfRange`] for a non-positive weight or std.
    pub fn new(weights: &[f64], means: &[f64], stds: &[f64], sde: AnySde) -> Result<Self> {
        let k = weights.len();
        if k == 0 {
            return Err(Error::shape("weights", "(K,) with K > 0", "empty"));
        }
        if means.is_empty() || !means.len().is_multiple_of(k) {
            return Err(Error::shape("means", format!("({k}, D)"), format!("{} values", means.len())));
        }
        let d = means.len() / k;
        check_finite(weights, "weights")?;
        check_finite(means, "means")?;
        check_finite(stds, "stds")?;
        if let Some(w) = weights.iter().find(|w| **w <= 0.0) {
            return Err(Error::out_of_range("a mixture weight", *w, "positive"));
        }
        let vars: Vec<f64> = if stds.len() == k {
            stds.iter().flat_map(|s| std::iter::repeat_n(s * s, d)).collect()
        } else if stds.len() == k * d {
            stds.iter().map(|s| s * s).collect()
        } else {
            return Err(Error::shape("stds", format!("({k},) or ({k}, {d})"), stds.len()));
        };
        if let Some(s) = stds.iter().find(|s| **s <= 0.0) {
            return Err(Error::out_of_range("a mixture standard deviation", *s, "positive"));
        }
        let total: f64 = weights.iter().sum();
        let log_w = weights.iter().map(|w| (w / total).ln()).collect();
        Ok(Self { d, k, log_w, means: means.to_vec(), vars, sde })
    }

    /// The 2-D reference prior of the toy experiment: components at `(−0.5, −0.5)` and
    /// `(0.5, 0.5)`, isotropic std 0.1, equal weights.
    pub fn reference_2d(sde: AnySde) -> Self {
        Self::new(&[0.5, 0.5], &[-0.5, -0.5, 0.5, 0.5], &[0.1, 0.1], sde).expect("valid constants")
    }

    /// Number of components `K`.
    pub fn components(&self) -> usize {
        self.k
    }
    /// Normalised weights.
    pub fn weights(&self) -> Vec<f64> {
        self.log_w.iter().map(|l| l.exp()).collect()
    }
    /// Means, `(K, D)` row-major.
    pub fn means(&self) -> &[f64] {
        &self.means
    }
    /// Per-component standard deviations, `(K, D)` row-major.
    pub fn stds(&self) -> Vec<f64> {
        self.vars.iter().map(|v| v.sqrt()).collect()
    }
    /// The SDE whose marginals this model scores.
    pub fn sde(&self) -> &AnySde {
        &self.sde
    }
    /// The same mixture under another SDE.
    pub fn with_sde(mut self, sde: AnySde) -> Self {
        self.sde = sde;
        self
    }

    /// Coefficients of the data density itself (`α = 1`, `σ = 0`).
    fn data_coefs(&self) -> Coefs {
        self.coefs_with(1.0, 0.0)
    }

    fn coefs(&self, t: f64) -> Coefs {
        self.coefs_with(self.sde.marginal_mean_coef(t), self.sde.marginal_std(t))
    }

    fn coefs_with(&self, a: f64, sig: f64) -> Coefs {
        let inv_v: Vec<f64> = self.vars.iter().map(|v| 1.0 / (a * a * v + sig * sig)).collect();
        let log_c = (0..self.k)
            .map(|k| {
                self.log_w[k]
                    + inv_v[k * self.d..(k + 1) * self.d]
                        .iter()
                        .map(|iv| -0.5 * (2.0 * std::f64::consts::PI / iv).ln())
                        .sum::<f64>()
            })
            .collect();
        Coefs { a, inv_v, log_c }
    }

    /// Fills `r` (`K`), `g` (`K×D`), `s` (`D`) for one image and returns `log p(x)`.
    fn image_terms(&self, c: &Coefs, x: &[f64], r: &mut [f64], g: &mut [f64], s: &mut [f64]) -> f64 {
        let d = self.d;
        for k in 0..self.k {
            let mu = &self.means[k * d..(k + 1) * d];
            let iv = &c.inv_v[k * d..(k + 1) * d];
            let gk = &mut g[k * d..(k + 1) * d];
            let mut q = 0.0;
            for l in 0..d {
                let diff = x[l] - c.a * mu[l];
                q += diff * diff * iv[l];
                gk[l] = -diff * iv[l];
            }
            r[k] = c.log_c[k] - 0.5 * q;
        }
        let m = r.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
        let mut z = 0.0;
        for v in r.iter_mut() {
            *v = (*v - m).exp();
            z += *v;
        }
        r.iter_mut().for_each(|v| *v /= z);
        s.iter_mut().for_each(|v| *v = 0.0);
        for k in 0..self.k {
            for (sv, gv) in s.iter_mut().zip(&g[k * d..(k + 1) * d]) {
                *sv += r[k] * gv;
            }
        }
        m + z.ln()
    }

    fn parallel(&self, rows: usize, extra: usize) -> bool {
        rows > 1 && rows * self.k * self.d * extra.max(1) >= PAR_WORK
    }

    fn terms(&self, c: &Coefs, x: &[f64]) -> Terms {
        let (d, k) = (self.d, self.k);
        let n = x.len() / d;
        let mut t = Terms { r: vec![0.0; n * k], g: vec![0.0; n * k * d], s: vec![0.0; n * d], lp: vec![0.0; n] };
        let work = |(((xi, ri), gi), (si, lpi)): ImageSlots<'_>| {
            *lpi = self.image_terms(c, xi, ri, gi, si);
        };
        if self.parallel(n, 1) {
            x.par_chunks(d)
                .zip(t.r.par_chunks_mut(k))
                .zip(t.g.par_chunks_mut(k * d))
                .zip(t.s.par_chunks_mut(d).zip(t.lp.par_iter_mut()))
                .for_each(work);
        } else {
            x.chunks(d)
                .zip(t.r.chunks_mut(k))
                .zip(t.g.chunks_mut(k * d))
                .zip(t.s.chunks_mut(d).zip(t.lp.iter_mut()))
                .for_each(work);
        }
        t
    }

    /// `out = H v` for image `i` (`H` symmetric, so also `vᵀH`).
    fn hvp(&self, c: &Coefs, tm: &Terms, i: usize, v: &[f64], out: &mut [f64]) {
        let (d, k) = (self.d, self.k);
        let s = &tm.s[i * d..(i + 1) * d];
        let sv = dot(s, v);
        for (o, sl) in out.iter_mut().zip(s) {
            *o = -sl * sv;
        }
        for kk in 0..k {
            let r = tm.r[i * k + kk];
            let g = &tm.g[(i * k + kk) * d..(i * k + kk + 1) * d];
            let iv = &c.inv_v[kk * d..(kk + 1) * d];
            let gv = dot(g, v);
            for l in 0..d {
                out[l] += r * (-v[l] * iv[l] + g[l] * gv);
            }
        }
    }

    /// `out[i] = log p_data(x_i)`, the mixture density itself.
    ///
    /// # Errors
    /// Shape mismatch or non-finite input.
    pub fn log_prob(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        check_per_image(x, self.d, "log-prob output", out.len())?;
        out.copy_from_slice(&self.terms(&self.data_coefs(), x).lp);
        Ok(())
    }

    /// `out[i,:] = ∇x log p_data(x_i)`.
    ///
    /// # Errors
    /// Shape mismatch or non-finite input.
    pub fn grad_log_prob(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        check_like_x(x, self.d, "gradient output", out.len())?;
        out.copy_from_slice(&self.terms(&self.data_coefs(), x).s);
        Ok(())
    }

    /// `n` draws from the data mixture, row-major `(n, D)`.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Vec<f64> {
        let w = self.weights();
        let mut out = Vec::with_capacity(n * self.d);
        for _ in 0..n {
            let u: f64 = rng.gen();
            let mut acc = 0.0;
            let mut comp = self.k - 1;
            for (kk, wk) in w.iter().enumerate() {
                acc += wk;
                if u < acc {
                    comp = kk;
                    break;
                }
            }
            for l in 0..self.d {
                let z: f64 = rng.sample(rand_distr::StandardNormal);
                out.push(self.means[comp * self.d + l] + self.vars[comp * self.d + l].sqrt() * z);
            }
        }
        out
    }
}

impl ScoreModel for GaussianMixture {
    fn dim(&self) -> usize {
        self.d
    }

    fn score(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<()> {
        check_like_x(x, self.d, "score output", out.len())?;
        out.copy_from_slice(&self.terms(&self.coefs(t), x).s);
        Ok(())
    }

    fn score_and_vjp(
        &self,
        x: &[f64],
        t: f64,
        cotangents: &[f64],
        score_out: &mut [f64],
        vjp_out: &mut [f64],
    ) -> Result<()> {
        let n = check_finite_batch(x, self.d)?;
        let d = self.d;
        check_vjp(d, n, cotangents, score_out, vjp_out)?;
        let c = self.coefs(t);
        let tm = self.terms(&c, x);
        score_out.copy_from_slice(&tm.s);
        let rows = cotangents.len() / d;
        for_rows(vjp_out, d, self.parallel(rows, 1), |row, o| {
            self.hvp(&c, &tm, row % n, &cotangents[row * d..(row + 1) * d], o)
        });
        Ok(())
    }

    fn jacobian_trace(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<bool> {
        check_per_image(x, self.d, "trace output", out.len())?;
        let (d, k) = (self.d, self.k);
        let c = self.coefs(t);
        let tm = self.terms(&c, x);
        for (i, o) in out.iter_mut().enumerate() {
            let s = &tm.s[i * d..(i + 1) * d];
            let mut tr = -dot(s, s);
            for kk in 0..k {
                let g = &tm.g[(i * k + kk) * d..(i * k + kk + 1) * d];
                let tr_a: f64 = -c.inv_v[kk * d..(kk + 1) * d].iter().sum::<f64>();
                tr += tm.r[i * k + kk] * (tr_a + dot(g, g));
            }
            *o = tr;
        }
        Ok(true)
    }

    fn jacobian_trace_grad(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<bool> {
        let n = check_like_x(x, self.d, "trace-gradient output", out.len())?;
        let (d, k) = (self.d, self.k);
        let c = self.coefs(t);
        let tm = self.terms(&c, x);
        for_rows(out, d, self.parallel(n, 2), |i, o| {
            let s = &tm.s[i * d..(i + 1) * d];
            // −2 H s
            self.hvp(&c, &tm, i, s, o);
            o.iter_mut().for_each(|v| *v *= -2.0);
            for kk in 0..k {
                let r = tm.r[i * k + kk];
                let g = &tm.g[(i * k + kk) * d..(i * k + kk + 1) * d];
                let iv = &c.inv_v[kk * d..(kk + 1) * d];
                let ck = -iv.iter().sum::<f64>() + dot(g, g);
                for l in 0..d {
                    o[l] += r * (ck * (g[l] - s[l]) - 2.0 * g[l] * iv[l]);
                }
            }
        });
        Ok(true)
    }

    fn second_order(&self, x: &[f64], t: f64, probes: &[f64], out: &mut [f64]) -> Result<()> {
        let n = check_finite_batch(x, self.d)?;
        let (d, k) = (self.d, self.k);
        let np = check_probes(probes, d)?;
        check_len("second-order output", x.len(), out.len())?;
        check_finite(probes, "probes")?;
        let c = self.coefs(t);
        let tm = self.terms(&c, x);
        for_rows(out, d, self.parallel(n, 2 * np), |i, o| {
            o.iter_mut().for_each(|v| *v = 0.0);
            let s = &tm.s[i * d..(i + 1) * d];
            let mut he = vec![0.0; d];
            for eps in probes.chunks(d) {
                self.hvp(&c, &tm, i, eps, &mut he);
                let se = dot(s, eps);
                for l in 0..d {
                    o[l] -= 2.0 * se * he[l];
                }
                for kk in 0..k {
                    let r = tm.r[i * k + kk];
                    let g = &tm.g[(i * k + kk) * d..(i * k + kk + 1) * d];
                    let iv = &c.inv_v[kk * d..(kk + 1) * d];
                    let ge = dot(g, eps);
                    let eae: f64 = -eps.iter().zip(iv).map(|(e, v)| e * e * v).sum::<f64>();
                    let ck = eae + ge * ge;
                    for l in 0..d {
                        o[l] += r * (ck * (g[l] - s[l]) - 2.0 * ge * iv[l] * eps[l]);
                    }
                }
            }
            let inv = 1.0 / np as f64;
            o.iter_mut().for_each(|v| *v *= inv);
        });
        Ok(())
    }
}

impl MarginalDensity for GaussianMixture {
    fn dim(&self) -> usize {
        self.d
    }
    fn marginal_log_prob(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<()> {
        check_per_image(x, self.d, "log-prob output", out.len())?;
        out.copy_from_slice(&self.terms(&self.coefs(t), x).lp);
        Ok(())
    }
    fn marginal_grad_log_prob(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<()> {
        self.score(x, t, out)
    }
}
