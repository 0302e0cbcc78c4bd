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
        return Err(Error::invalid(format!("noise sigma must be positive and finite, got {sigma}")));
    }
    let s = DMatrix::from_row_slice(d, d, cov);
    let mut a = s.clone();
    for i in 0..d {
        a[(i, i)] += sigma * sigma;
    }
    let chol = a.cholesky().ok_or_else(|| Error::invalid("Σ + σ²I is not positive definite"))?;
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
        return Err(Error::invalid(format!("noise sigma must be positive and finite, got {sigma}")));
    }
    let ratio = |t: f64| sde.marginal_std(t) / sde.marginal_mean_coef(t);
    let (mut lo, mut hi) = (0.0, sde.t_max());
    if ratio(hi) < sigma {
        return Err(Error::invalid(format!(
            "the SDE's noise-to-signal ratio at T is {} < sigma = {sigma}: no matching time",
            ratio(hi)
        )));
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
