//! Total variation as a classical regulariser (energy `−log p(x)` up to a constant):
//! `TV(x) = λ Σ_{ij} sqrt((x_{i+1,j} − x_{ij})² + (x_{i,j+1} − x_{ij})² + ε²)` with forward
//! differences and zero difference across the last row/column (Neumann border). The
//! smoothing `ε` keeps the gradient defined on flat regions.

use super::{LogProb, LogProbGrad, Prior, PriorStats};
use crate::score::check_batch;
use crate::{Error, Result};

/// Isotropic, smoothed total variation of `h × w` images with weight `λ`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TotalVariation {
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Weight `λ`.
    pub weight: f64,
    /// Smoothing `ε > 0`.
    pub eps: f64,
}

impl TotalVariation {
    /// TV of `h × w` images; errors on an empty image or a non-positive `eps`.
    ///
    /// ```
    /// use scoreprior_core::prior::tv::TotalVariation;
    /// let tv = TotalVariation::new(2, 2, 1.0, 1e-9).unwrap();
    /// // One step of height 1 between the columns: two pixels see |∇x| = 1.
    /// assert!((tv.value(&[0.0, 1.0, 0.0, 1.0]) - 2.0).abs() < 1e-6);
    /// ```
    pub fn new(h: usize, w: usize, weight: f64, eps: f64) -> Result<Self> {
        if h == 0 || w == 0 {
            return Err(Error::count_out_of_range("TV image side", h.min(w), "at least 1"));
        }
        if eps.is_nan() || eps <= 0.0 {
            return Err(Error::out_of_range("TV eps", eps, "positive"));
        }
        if !weight.is_finite() {
            return Err(Error::out_of_range("TV weight", weight, "finite"));
        }
        Ok(Self { h, w, weight, eps })
    }

    /// `TV(x)` of one image.
    pub fn value(&self, x: &[f64]) -> f64 {
        let mut g = vec![0.0; x.len()];
        self.value_and_grad(x, &mut g)
    }

    /// `TV(x)` of one image; writes `∇TV(x)` into `grad`.
    pub fn value_and_grad(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let (h, w) = (self.h, self.w);
        grad.iter_mut().for_each(|g| *g = 0.0);
        let mut v = 0.0;
        for i in 0..h {
            for j in 0..w {
                let c = x[i * w + j];
                let dy = if i + 1 < h { x[(i + 1) * w + j] - c } else { 0.0 };
                let dx = if j + 1 < w { x[i * w + j + 1] - c } else { 0.0 };
                let m = (dx * dx + dy * dy + self.eps * self.eps).sqrt();
                v += m;
                let (gx, gy) = (self.weight * dx / m, self.weight * dy / m);
                if i + 1 < h {
                    grad[(i + 1) * w + j] += gy;
                    grad[i * w + j] -= gy;
                }
                if j + 1 < w {
                    grad[i * w + j + 1] += gx;
                    grad[i * w + j] -= gx;
                }
            }
        }
        self.weight * v
    }
}

/// Total variation as an (unnormalised) prior: `log p(x) = −TV(x) + const`.
impl Prior for TotalVariation {
    fn dim(&self) -> usize {
        self.h * self.w
    }
    fn log_prob(&self, x: &[f64]) -> Result<LogProb> {
        let r = self.grad_log_prob(x)?;
        Ok(LogProb { log_prob: r.log_prob, stats: r.stats })
    }
    fn grad_log_prob(&self, x: &[f64]) -> Result<LogProbGrad> {
        let d = self.dim();
        let n = check_batch(x, d, "x")?;
        let (mut log_prob, mut grad) = (vec![0.0; n], vec![0.0; x.len()]);
        for (i, lp) in log_prob.iter_mut().enumerate() {
            let g = &mut grad[i * d..(i + 1) * d];
            *lp = -self.value_and_grad(&x[i * d..(i + 1) * d], g);
            g.iter_mut().for_each(|v| *v = -*v);
        }
        Ok(LogProbGrad { log_prob, grad, stats: PriorStats::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::central_difference;

    #[test]
    fn gradient_matches_finite_differences() {
        let tv = TotalVariation::new(4, 5, 0.7, 1e-2).unwrap();
        let x: Vec<f64> = (0..20).map(|i| ((i * 7919) % 13) as f64 / 13.0).collect();
        let mut g = vec![0.0; 20];
        tv.value_and_grad(&x, &mut g);
        for (k, gk) in g.iter().enumerate() {
            let fd = central_difference(|y| tv.value(y), &x, k, 1e-6);
            assert!((fd - gk).abs() < 1e-6, "pixel {k}: fd {fd} vs {gk}");
        }
    }

    #[test]
    fn constant_image_has_minimal_tv() {
        let tv = TotalVariation::new(3, 3, 1.0, 1e-3).unwrap();
        assert!((tv.value(&[0.4; 9]) - 9.0 * 1e-3).abs() < 1e-12);
        assert!(TotalVariation::new(0, 3, 1.0, 1e-3).is_err());
    }
}
