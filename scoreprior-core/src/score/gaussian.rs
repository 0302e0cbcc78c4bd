//! A Gaussian data distribution `N(μ, Σ)` as an exact score model for any linear SDE.
//!
//! The perturbed marginal is `p_t = N(α_t μ, α_t² Σ + σ_t² I)`. With `Σ = U Λ Uᵀ` (computed
//! once) its covariance is `U diag(α_t² λ + σ_t²) Uᵀ`, so the score
//! `s(x,t) = −U diag(1/(α_t² λ + σ_t²)) Uᵀ (x − α_t μ)` costs two matrix products per batch
//! and no factorisation per `t`. The Jacobian is that constant symmetric matrix: its trace is
//! `−Σ_i 1/(α_t² λ_i + σ_t²)` and every second-order term vanishes.

use std::sync::{Arc, Mutex};

use super::checks::{
    check_finite, check_finite_batch, check_len, check_like_x, check_per_image, check_probes, check_vjp,
};
use super::marginal::MarginalDensity;
use super::packed::{PackedMatrix, PAR_WORK, ROW_BLOCK};
use super::{check_probe_forms, ScoreModel};
use crate::sde::{AnySde, Sde};
use crate::{Error, Result};
use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut, SymmetricEigen};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// A Gaussian `N(μ, Σ)` with full covariance, diffused by an SDE.
///
/// It is at once the data density (`log_prob`, `grad_log_prob`, `sample`), the exact
/// score model of its perturbed marginals ([`ScoreModel`]) and their closed-form density
/// ([`MarginalDensity`]).
///
/// # Example
/// ```
/// use scoreprior_core::score::{Gaussian, ScoreModel};
/// use scoreprior_core::sde::{AnySde, VpSde};
/// // D = 2, Σ = [[2, 0.5], [0.5, 1]]
/// let g = Gaussian::new(vec![0.0, 1.0], &[2.0, 0.5, 0.5, 1.0], AnySde::Vp(VpSde::default())).unwrap();
/// let mut lp = [0.0];
/// g.log_prob(&[0.0, 1.0], &mut lp).unwrap();
/// let logdet = (2.0f64 * 1.0 - 0.25).ln();
/// assert!((lp[0] - (-(2.0 * std::f64::consts::PI).ln() - 0.5 * logdet)).abs() < 1e-12);
/// // A covariance that is not positive definite is an error.
/// assert!(Gaussian::new(vec![0.0, 0.0], &[1.0, 2.0, 2.0, 1.0], AnySde::Vp(VpSde::default())).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Gaussian {
    d: usize,
    mean: Vec<f64>,
    eigvals: Vec<f64>,
    /// Eigenvectors as columns.
    u: DMatrix<f64>,
    /// `Uᵀ`.
    ut: DMatrix<f64>,
    /// `U` and `Uᵀ` packed for products with row-major batches (`X·U`, `Z·Uᵀ`).
    u_packed: PackedMatrix,
    ut_packed: PackedMatrix,
    /// `Uᵀ μ`.
    ut_mean: Vec<f64>,
    sde: AnySde,
    cache: PrecisionCache,
}

/// `α_t` and the marginal precisions `w_i = 1/(α_t² λ_i + σ_t²)` at one time `t`.
#[derive(Debug)]
struct Precisions {
    t: f64,
    a: f64,
    w: Vec<f64>,
    sum: f64,
}

/// The last time's [`Precisions`]: a solver asks for the score and the trace at the same `t`
/// (and an adjoint evaluation for the score and a VJP), so each time's `D` divisions are done
/// once. Cloning a model starts an empty cache.
#[derive(Debug, Default)]
struct PrecisionCache(Mutex<Option<Arc<Precisions>>>);

impl Clone for PrecisionCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Gaussian {
    /// `N(mean, cov)` with `cov` a row-major `D×D` matrix, `D = mean.len()`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `cov` has `D²` entries, [`Error::NonFinite`] for NaN or
    /// infinite entries, [`Error::NotPositiveDefinite`] if `cov` is not symmetric (to a relative
    /// `1e-8`) or has an eigenvalue `≤ 1e-12·λ_max`.
    pub fn new(mean: Vec<f64>, cov: &[f64], sde: AnySde) -> Result<Self> {
        let d = mean.len();
        if d == 0 {
            return Err(Error::shape("mean", "(D,) with D > 0", "empty"));
        }
        if cov.len() != d * d {
            return Err(Error::shape("covariance", format!("({d}, {d}) = {} values", d * d), cov.len()));
        }
        check_finite(&mean, "mean")?;
        check_finite(cov, "covariance")?;
        let scale = cov.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for i in 0..d {
            for j in 0..i {
                let (a, b) = (cov[i * d + j], cov[j * d + i]);
                if (a - b).abs() > 1e-8 * scale {
                    return Err(Error::NotPositiveDefinite {
                        what: "covariance".into(),
                        why: format!("not symmetric: C[{i},{j}] = {a} but C[{j},{i}] = {b}"),
                    });
                }
            }
        }
        // Symmetrise exactly before the eigensolver (which reads one triangle).
        let m = DMatrix::from_fn(d, d, |i, j| 0.5 * (cov[i * d + j] + cov[j * d + i]));
        let eig = SymmetricEigen::new(m);
        let eigvals: Vec<f64> = eig.eigenvalues.iter().copied().collect();
        Self::from_eigen(mean, eigvals, eig.eigenvectors, sde)
    }

    /// `N(mean, diag(var))`.
    ///
    /// # Errors
    /// As [`Gaussian::new`]; every variance must be positive.
    pub fn diagonal(mean: Vec<f64>, var: &[f64], sde: AnySde) -> Result<Self> {
        let d = mean.len();
        if var.len() != d {
            return Err(Error::shape("variances", format!("({d},)"), var.len()));
        }
        Self::from_eigen(mean, var.to_vec(), DMatrix::identity(d, d), sde)
    }

    /// `N(mean, U diag(eigvals) Uᵀ)` from a known eigendecomposition (`eigvecs` has the
    /// orthonormal eigenvectors as columns).
    ///
    /// # Errors
    /// Shape errors, non-finite values, or a non-positive eigenvalue ([`Error::NotPositiveDefinite`]).
    pub fn from_eigen(mean: Vec<f64>, eigvals: Vec<f64>, eigvecs: DMatrix<f64>, sde: AnySde) -> Result<Self> {
        let d = mean.len();
        if d == 0 {
            return Err(Error::shape("mean", "(D,) with D > 0", "empty"));
        }
        if eigvals.len() != d || eigvecs.nrows() != d || eigvecs.ncols() != d {
            return Err(Error::shape(
                "eigendecomposition",
                format!("{d} eigenvalues and a {d}x{d} matrix"),
                format!("{} and {}x{}", eigvals.len(), eigvecs.nrows(), eigvecs.ncols()),
            ));
        }
        check_finite(&mean, "mean")?;
        check_finite(&eigvals, "eigenvalues")?;
        check_finite(eigvecs.as_slice(), "eigenvectors")?;
        let lmax = eigvals.iter().fold(0.0f64, |m, v| m.max(*v));
        let (imin, lmin) =
            eigvals
                .iter()
                .enumerate()
                .fold((0, f64::INFINITY), |(bi, bv), (i, v)| if *v < bv { (i, *v) } else { (bi, bv) });
        if lmin <= 1e-12 * lmax || lmax <= 0.0 {
            return Err(Error::NotPositiveDefinite {
                what: "covariance".into(),
                why: format!("eigenvalue {imin} is {lmin:e} (largest {lmax:e})"),
            });
        }
        let ut = eigvecs.transpose();
        let ut_mean: Vec<f64> = (&ut * DMatrixView::from_slice(&mean, d, 1)).iter().copied().collect();
        let u_packed = PackedMatrix::new(d, d, |r, c| eigvecs[(r, c)]);
        let ut_packed = PackedMatrix::new(d, d, |r, c| eigvecs[(c, r)]);
        Ok(Self {
            d,
            mean,
            eigvals,
            u: eigvecs,
            ut,
            u_packed,
            ut_packed,
            ut_mean,
            sde,
            cache: PrecisionCache::default(),
        })
    }

    /// The SDE whose marginals this model scores.
    pub fn sde(&self) -> &AnySde {
        &self.sde
    }
    /// The same distribution under another SDE.
    pub fn with_sde(mut self, sde: AnySde) -> Self {
        self.sde = sde;
        self.cache = PrecisionCache::default();
        self
    }
    /// `μ`.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }
    /// Eigenvalues `λ` of `Σ` (in the order of the eigenvector columns).
    pub fn eigenvalues(&self) -> &[f64] {
        &self.eigvals
    }
    /// Eigenvectors of `Σ` as the columns of `U`.
    pub fn eigenvectors(&self) -> &DMatrix<f64> {
        &self.u
    }
    /// `Σ = U Λ Uᵀ`, row-major `D×D`.
    pub fn covariance(&self) -> Vec<f64> {
        let d = self.d;
        let mut ul = self.u.clone();
        for (j, l) in self.eigvals.iter().enumerate() {
            ul.column_mut(j).scale_mut(*l);
        }
        let c = ul * &self.ut;
        // Symmetric, so column-major equals row-major.
        let mut out = c.as_slice().to_vec();
        for i in 0..d {
            for j in 0..i {
                let v = 0.5 * (out[i * d + j] + out[j * d + i]);
                out[i * d + j] = v;
                out[j * d + i] = v;
            }
        }
        out
    }

    /// `(α_t, 1/(α_t² λ_i + σ_t²))`: the marginal's mean coefficient and precisions along the
    /// eigenvectors. At `t = 0` with `σ_0 = 0` (VP, sub-VP) this is the data density itself.
    fn marginal_precisions(&self, t: f64) -> Arc<Precisions> {
        let mut cache = self.cache.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = cache.as_ref().filter(|p| p.t.to_bits() == t.to_bits()) {
            return p.clone();
        }
        let a = self.sde.marginal_mean_coef(t);
        let s = self.sde.marginal_std(t);
        let w: Vec<f64> = self.eigvals.iter().map(|l| 1.0 / (a * a * l + s * s)).collect();
        let p = Arc::new(Precisions { t, a, sum: w.iter().sum(), w });
        *cache = Some(p.clone());
        p
    }

    /// `out_j = scale·U diag(w) Uᵀ (x_j − shift·μ)` for every image `x_j` (row) of the batch:
    /// `Z = X·U`, `Z ← (Z − shift·μᵀU)·diag(scale·w)`, `out = Z·Uᵀ`.
    ///
    /// Large batches are split into blocks of images, one per thread, each running both
    /// products: one fork–join per call, and each core streams the packed `U` and `Uᵀ`
    /// (2·8·D² bytes, 1 MiB at D = 256) from its own L2 cache.
    fn apply(&self, x: &[f64], shift: f64, w: &[f64], scale: f64, out: &mut [f64]) {
        let d = self.d;
        let n = x.len() / d;
        let threads = rayon::current_num_threads().max(1);
        if n * d * d >= PAR_WORK && n >= 2 * ROW_BLOCK && threads > 1 {
            let per = n.div_ceil(threads).div_ceil(ROW_BLOCK) * ROW_BLOCK;
            x.par_chunks(per * d)
                .zip(out.par_chunks_mut(per * d))
                .for_each(|(xc, oc)| self.apply_serial(xc, shift, w, scale, oc));
        } else {
            self.apply_serial(x, shift, w, scale, out);
        }
    }

    fn apply_serial(&self, x: &[f64], shift: f64, w: &[f64], scale: f64, out: &mut [f64]) {
        // Per-thread buffers: the solver calls this tens of times per solve with equal shapes.
        thread_local! {
            static Z: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        Z.with_borrow_mut(|z| {
            // Every entry is overwritten by the product; resizing only grows the buffer.
            z.resize(x.len(), 0.0);
            let z = &mut z[..x.len()];
            // z = (X·U − shift·μᵀU)·diag(w), the shift and scaling fused into the product's stores.
            self.u_packed.mul_rows_then(x, z, |c0, vals| {
                let (um, wc) = (&self.ut_mean[c0..c0 + vals.len()], &w[c0..c0 + vals.len()]);
                for ((v, u), wi) in vals.iter_mut().zip(um).zip(wc) {
                    *v = (*v - shift * u) * (scale * wi);
                }
            });
            self.ut_packed.mul_rows(z, out);
        });
    }

    /// Per image `Σ_i w_i (u_iᵀ(x − shift·μ))²`.
    fn quad_forms(&self, x: &[f64], shift: f64, w: &[f64], out: &mut [f64]) {
        let mut z = vec![0.0; x.len()];
        self.u_packed.mul_rows_then(x, &mut z, |c0, vals| {
            let um = &self.ut_mean[c0..c0 + vals.len()];
            for (v, u) in vals.iter_mut().zip(um) {
                *v -= shift * u;
            }
        });
        for (o, row) in out.iter_mut().zip(z.chunks(self.d)) {
            *o = row.iter().zip(w).map(|(v, wi)| v * v * wi).sum();
        }
    }

    fn log_density(&self, x: &[f64], shift: f64, prec: &[f64], out: &mut [f64]) -> Result<()> {
        check_per_image(x, self.d, "log-prob output", out.len())?;
        self.quad_forms(x, shift, prec, out);
        let norm: f64 = prec.iter().map(|p| -0.5 * (2.0 * std::f64::consts::PI / p).ln()).sum();
        for o in out.iter_mut() {
            *o = -0.5 * *o + norm;
        }
        Ok(())
    }

    /// `out[i] = log N(x_i; μ, Σ)`, the data density.
    ///
    /// # Errors
    /// Shape mismatch or non-finite input.
    pub fn log_prob(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        let prec: Vec<f64> = self.eigvals.iter().map(|l| 1.0 / l).collect();
        self.log_density(x, 1.0, &prec, out)
    }

    /// `out[i,:] = −Σ⁻¹(x_i − μ)`, the gradient of the data log-density.
    ///
    /// # Errors
    /// Shape mismatch or non-finite input.
    pub fn grad_log_prob(&self, x: &[f64], out: &mut [f64]) -> Result<()> {
        check_like_x(x, self.d, "gradient output", out.len())?;
        let w: Vec<f64> = self.eigvals.iter().map(|l| 1.0 / l).collect();
        self.apply(x, 1.0, &w, -1.0, out);
        Ok(())
    }

    /// `n` draws from `N(μ, Σ)`, row-major `(n, D)`: `μ + U Λ^{1/2} z`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Vec<f64> {
        let d = self.d;
        let mut z: Vec<f64> = (0..n * d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        for col in z.chunks_mut(d) {
            for (v, l) in col.iter_mut().zip(&self.eigvals) {
                *v *= l.sqrt();
            }
        }
        let mut out = vec![0.0; n * d];
        if n > 0 {
            let zv = DMatrixView::from_slice(&z, d, n);
            DMatrixViewMut::from_slice(&mut out, d, n).gemm(1.0, &self.u, &zv, 0.0);
        }
        for col in out.chunks_mut(d) {
            for (v, m) in col.iter_mut().zip(&self.mean) {
                *v += m;
            }
        }
        z.clear();
        out
    }
}

impl ScoreModel for Gaussian {
    fn dim(&self) -> usize {
        self.d
    }

    fn score(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<()> {
        check_like_x(x, self.d, "score output", out.len())?;
        let p = self.marginal_precisions(t);
        self.apply(x, p.a, &p.w, -1.0, out);
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
        check_vjp(self.d, n, cotangents, score_out, vjp_out)?;
        let p = self.marginal_precisions(t);
        // The Jacobian −U diag(w) Uᵀ is symmetric and independent of x: vᵀJ = J v for all
        // m·n cotangents at once. When each block of n cotangents repeats one vector (shared
        // Hutchinson probes), J v is the same for the whole block: compute it once per block
        // (an O(m·n·D) check saves a factor n of O(m·n·D²) work).
        let d = self.d;
        let m = cotangents.len() / (n * d);
        let shared = n > 1
            && cotangents.chunks(n * d).all(|blk| {
                let first = &blk[..d];
                blk.chunks(d).skip(1).all(|row| row == first)
            });
        if shared {
            self.apply(x, p.a, &p.w, -1.0, score_out);
            let compact: Vec<f64> = cotangents.chunks(n * d).flat_map(|blk| blk[..d].iter().copied()).collect();
            let mut jv = vec![0.0; m * d];
            self.apply(&compact, 0.0, &p.w, -1.0, &mut jv);
            for (blk, v) in vjp_out.chunks_mut(n * d).zip(jv.chunks(d)) {
                for row in blk.chunks_mut(d) {
                    row.copy_from_slice(v);
                }
            }
        } else if cotangents.len() == x.len() && n * d * d >= PAR_WORK && rayon::current_num_threads() > 1 {
            // One cotangent per image (the adjoint solve): score and VJP on one thread each,
            // one fork–join for both products.
            rayon::join(
                || self.apply_serial(x, p.a, &p.w, -1.0, score_out),
                || self.apply_serial(cotangents, 0.0, &p.w, -1.0, vjp_out),
            );
        } else {
            self.apply(x, p.a, &p.w, -1.0, score_out);
            self.apply(cotangents, 0.0, &p.w, -1.0, vjp_out);
        }
        Ok(())
    }

    /// `ε_jᵀ J ε_j` is the same for every image (`J` does not depend on `x`): `K` products
    /// instead of `K·n`, on a second thread while the first computes the scores.
    fn score_and_probe_forms(
        &self,
        x: &[f64],
        t: f64,
        probes: &[f64],
        score_out: &mut [f64],
        forms_out: &mut [f64],
    ) -> Result<()> {
        check_finite_batch(x, self.d)?;
        let d = self.d;
        let (n, k) = check_probe_forms(d, x, probes, score_out, forms_out)?;
        check_finite(probes, "probes")?;
        let p = self.marginal_precisions(t);
        let mut jv = vec![0.0; probes.len()];
        if (n + k) * d * d >= PAR_WORK && rayon::current_num_threads() > 1 {
            rayon::join(
                || self.apply_serial(x, p.a, &p.w, -1.0, score_out),
                || self.apply_serial(probes, 0.0, &p.w, -1.0, &mut jv),
            );
        } else {
            self.apply(x, p.a, &p.w, -1.0, score_out);
            self.apply(probes, 0.0, &p.w, -1.0, &mut jv);
        }
        for (j, (eps, v)) in probes.chunks(d).zip(jv.chunks(d)).enumerate() {
            let form: f64 = eps.iter().zip(v).map(|(a, b)| a * b).sum();
            forms_out[j * n..(j + 1) * n].iter_mut().for_each(|f| *f = form);
        }
        Ok(())
    }

    fn jacobian_trace(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<bool> {
        check_per_image(x, self.d, "trace output", out.len())?;
        let tr = -self.marginal_precisions(t).sum;
        out.iter_mut().for_each(|o| *o = tr);
        Ok(true)
    }

    fn jacobian_trace_grad(&self, x: &[f64], _t: f64, out: &mut [f64]) -> Result<bool> {
        check_like_x(x, self.d, "trace-gradient output", out.len())?;
        out.iter_mut().for_each(|o| *o = 0.0);
        Ok(true)
    }

    /// Exactly zero: the Jacobian does not depend on `x`.
    fn second_order(&self, x: &[f64], _t: f64, probes: &[f64], out: &mut [f64]) -> Result<()> {
        check_finite_batch(x, self.d)?;
        check_probes(probes, self.d)?;
        check_len("second-order output", x.len(), out.len())?;
        out.iter_mut().for_each(|o| *o = 0.0);
        Ok(())
    }
}

impl MarginalDensity for Gaussian {
    fn dim(&self) -> usize {
        self.d
    }
    fn marginal_log_prob(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<()> {
        let p = self.marginal_precisions(t);
        self.log_density(x, p.a, &p.w, out)
    }
    fn marginal_grad_log_prob(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<()> {
        self.score(x, t, out)
    }
}

/// The squared-exponential (Gaussian-process) covariance of an `h × w` image,
/// `Σ_ij = std²·exp(−|r_i − r_j|²/(2ℓ²)) + nugget·std²·δ_ij` with `r` in pixels and `ℓ =
/// length_px`: smooth images whose structure has the scale `ℓ` (for interferometry, the
/// array's resolution). The nugget keeps it positive definite in floating point.
///
/// ```
/// let c = scoreprior_core::score::gaussian::squared_exponential_covariance(2, 2, 1.0, 0.5, 1e-3).unwrap();
/// assert!((c[0] - 0.25 * 1.001).abs() < 1e-15); // variance std²(1 + nugget)
/// assert!((c[1] - 0.25 * (-0.5f64).exp()).abs() < 1e-15); // neighbours one pixel apart
/// assert!((c[3] - 0.25 * (-1.0f64).exp()).abs() < 1e-15); // diagonal neighbours
/// ```
///
/// # Errors
/// [`Error::OutOfRange`] for an empty grid or a length, std or nugget that is not positive and
/// finite; [`Error::TooLarge`] above the memory limit.
pub fn squared_exponential_covariance(h: usize, w: usize, length_px: f64, std: f64, nugget: f64) -> Result<Vec<f64>> {
    if h == 0 || w == 0 {
        return Err(Error::count_out_of_range("squared-exponential covariance: image side", h.min(w), "at least 1"));
    }
    for (what, v) in [("length", length_px), ("std", std), ("nugget", nugget)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::out_of_range(
                format!("squared-exponential covariance: {what}"),
                v,
                "positive and finite",
            ));
        }
    }
    let d = h * w;
    crate::limits::check_elems("the squared-exponential covariance", &[d, d], 8)?;
    let var = std * std;
    let mut c = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            let (dy, dx) = ((i / w) as f64 - (j / w) as f64, (i % w) as f64 - (j % w) as f64);
            c[i * d + j] = var * (-(dy * dy + dx * dx) / (2.0 * length_px * length_px)).exp();
        }
        c[i * d + i] += nugget * var;
    }
    Ok(c)
}
