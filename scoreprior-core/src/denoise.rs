//! Closed-form reference estimates for Gaussian denoising `y = x + N(0, σ²I)`, the two
//! yardsticks a DPI posterior is judged against:
//! - **Wiener** (Gaussian prior `N(μ, Σ)`): the exact posterior `N(μ + Σ(Σ+σ²I)⁻¹(y−μ),
//!   Σ − Σ(Σ+σ²I)⁻¹Σ)`;
//! - **Tweedie** (score-based prior): with `x_t = α_t x + σ_t z` and `t*` chosen so that
//!   `σ_t/α_t = σ`, `α_{t*} y` is distributed as `x_{t*}`, so the posterior mean under the
//!   prior is `E[x | x_{t*} = α y] = (α y + σ_t² s(α y, t*))/α` — one network evaluation.

use nalgebra::{DMatrix, DVector};

use crate::score::ScoreModel;
use crate::sde::Sde;
use crate::{Error, Result};

/// The exact Gaussian-prior posterior of a denoising problem: per-pixel mean and std.
///
/// ```
/// // 1-D: prior N(1, 4), σ = 1, y = 3: mean 1 + 4/5·2 = 2.6, variance 4 − 16/5 = 0.8.
/// let (m, s) = scoreprior_core::denoise::wiener(&[1.0], &[4.0], 1.0, &[3.0]).unwrap();
/// assert!((m[0] - 2.6).abs() < 1e-12 && (s[0] - 0.8f64.sqrt()).abs() < 1e-12);
/// ```
///
/// # Errors
/// Shape mismatches, a non-positive or non-finite `sigma`, or a covariance for which
/// `Σ + σ²I` is not positive definite.
pub fn wiener(mean: &[f64], cov: &[f64], sigma: f64, y: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    let d = mean.len();
    if cov.len() != d * d {
        return Err(Error::shape("covariance", format!("({d}, {d})"), cov.len()));
    }
    if y.len() != d {
        return Err(Error::shape("measurement", d, y.len()));
    }
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::out_of_range("noise sigma", sigma, "positive and finite"));
    }
    let s = DMatrix::from_row_slice(d, d, cov);
    let mut a = s.clone();
    for i in 0..d {
        a[(i, i)] += sigma * sigma;
    }
    let chol = a.cholesky().ok_or_else(|| not_pd("Σ + σ²I"))?;
    let r = DVector::from_iterator(d, y.iter().zip(mean).map(|(y, m)| y - m));
    let m = DVector::from_column_slice(mean) + &s * chol.solve(&r);
    // diag(Σ − Σ A⁻¹ Σ): A⁻¹Σ column by column.
    let ainv_s = chol.solve(&s);
    let std = (0..d).map(|i| (s[(i, i)] - s.row(i).dot(&ainv_s.column(i).transpose())).max(0.0).sqrt()).collect();
    Ok((m.iter().copied().collect(), std))
}

/// The time `t*` at which `σ_t/α_t = sigma` under `sde` (bisection; the ratio increases in
/// `t`).
///
/// # Errors
/// If `sigma` is not positive and finite or the SDE never reaches it before `T`.
pub fn matching_time(sde: &dyn Sde, sigma: f64) -> Result<f64> {
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::out_of_range("noise sigma", sigma, "positive and finite"));
    }
    let ratio = |t: f64| sde.marginal_std(t) / sde.marginal_mean_coef(t);
    let (mut lo, mut hi) = (0.0, sde.t_max());
    if ratio(hi) < sigma {
        let expected =
            format!("at most the SDE's noise-to-signal ratio at T, {} (else there is no matching time)", ratio(hi));
        return Err(Error::out_of_range("noise sigma", sigma, expected));
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if ratio(mid) < sigma {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}

/// Tweedie's posterior mean `E[x | y]` of a denoising problem under a score model of the
/// prior (`y` is `(n, D)`, one estimate per row).
///
/// ```
/// use scoreprior_core::score::Gaussian;
/// use scoreprior_core::sde::{AnySde, VpSde};
/// // Under an exact Gaussian score, Tweedie's mean is the Wiener mean.
/// let sde = AnySde::Vp(VpSde::default());
/// let g = Gaussian::new(vec![0.5, 0.5], &[0.04, 0.01, 0.01, 0.09], sde).unwrap();
/// let y = [0.9, 0.2];
/// let t = scoreprior_core::denoise::tweedie(&g, &sde, 0.2, &y).unwrap();
/// let (w, _) = scoreprior_core::denoise::wiener(&[0.5, 0.5], &[0.04, 0.01, 0.01, 0.09], 0.2, &y).unwrap();
/// assert!((t[0] - w[0]).abs() < 1e-9 && (t[1] - w[1]).abs() < 1e-9);
/// ```
///
/// # Errors
/// As [`matching_time`], and the model's errors.
pub fn tweedie(model: &dyn ScoreModel, sde: &dyn Sde, sigma: f64, y: &[f64]) -> Result<Vec<f64>> {
    let t = matching_time(sde, sigma)?;
    let (a, s) = (sde.marginal_mean_coef(t), sde.marginal_std(t));
    let xt: Vec<f64> = y.iter().map(|v| a * v).collect();
    let mut sc = vec![0.0; y.len()];
    model.score(&xt, t, &mut sc)?;
    Ok(xt.iter().zip(&sc).map(|(x, g)| (x + s * s * g) / a).collect())
}

/// The exact posterior `N(m, C)` of a Gaussian prior `N(μ, Σ)` under any *linear* forward
/// model with Gaussian noise: `C⁻¹ = Σ⁻¹ + H`, `m = C(Σ⁻¹μ + b)`, where the likelihood's
/// Hessian `H = AᵀWA` and `b = AᵀW y` are read off `∇ log p(y|x) = b − Hx` (one batched call on
/// the basis vectors, so masks, complex noise and chains need no special case). Returns the
/// mean, the covariance (row-major `D × D`) and its Cholesky factor `L` (`C = LLᵀ`, for
/// sampling `m + Lz`).
///
/// ```
/// use scoreprior_core::denoise::{linear_gaussian_posterior, wiener};
/// use scoreprior_core::forward::Model;
/// let (mean, cov) = (vec![0.2, 0.4], vec![0.05, 0.01, 0.01, 0.03]);
/// let f = Model::denoising([1, 1, 2], 0.1).unwrap();
/// let (m, c, _) = linear_gaussian_posterior(&f, &[0.3, 0.1], &mean, &cov).unwrap();
/// let (w, std) = wiener(&mean, &cov, 0.1, &[0.3, 0.1]).unwrap();
/// assert!((m[0] - w[0]).abs() < 1e-12 && (c[3].sqrt() - std[1]).abs() < 1e-12);
/// ```
///
/// # Errors
/// A non-linear model, shape mismatches, or a prior covariance or posterior precision that is
/// not positive definite.
pub fn linear_gaussian_posterior(
    forward: &dyn crate::forward::ForwardModel,
    y: &[f64],
    mean: &[f64],
    cov: &[f64],
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let d = mean.len();
    if !forward.is_linear() {
        return Err(Error::unsupported("the closed-form Gaussian posterior needs a linear forward model"));
    }
    if forward.input_dim() != d || cov.len() != d * d {
        return Err(Error::shape("Gaussian prior", format!("mean ({}) and covariance", forward.input_dim()), d));
    }
    if y.len() != forward.output_dim() {
        return Err(Error::shape("measurement", forward.output_dim(), y.len()));
    }
    crate::limits::check_elems("the closed-form posterior's matrices", &[d, d, 4], 8)?;
    let zero = vec![0.0; d];
    let b = forward.grad_log_likelihood(y, &zero)?;
    let mut basis = vec![0.0; d * d];
    for i in 0..d {
        basis[i * d + i] = 1.0;
    }
    // Row i of the batch: b − H e_i, so H's column i is b − that row.
    let g = forward.grad_log_likelihood(y, &basis)?;
    let mut precision = DMatrix::from_fn(d, d, |r, c| b[r] - g[c * d + r]);
    precision = 0.5 * (&precision + precision.transpose());
    let s = DMatrix::from_row_slice(d, d, cov);
    let s_chol = s.clone().cholesky().ok_or_else(|| not_pd("prior covariance"))?;
    let s_inv = s_chol.inverse();
    precision += &s_inv;
    let p_chol = precision.cholesky().ok_or_else(|| not_pd("posterior precision"))?;
    let rhs = &s_inv * DVector::from_column_slice(mean) + DVector::from_column_slice(&b);
    let m = p_chol.solve(&rhs);
    let c = p_chol.inverse();
    let c = 0.5 * (&c + c.transpose());
    let l = c.clone().cholesky().ok_or_else(|| not_pd("posterior covariance"))?.l();
    let row_major = |a: &DMatrix<f64>| (0..d * d).map(|k| a[(k / d, k % d)]).collect::<Vec<f64>>();
    Ok((m.iter().copied().collect(), row_major(&c), row_major(&l)))
}

/// [`Error::NotPositiveDefinite`] for the matrix `what` whose Cholesky factorisation failed.
fn not_pd(what: &str) -> Error {
    Error::NotPositiveDefinite { what: what.into(), why: "its Cholesky factorisation failed".into() }
}
