//! Mixtures of 2-D Gaussians `Σ_k w_k N(x; μ_k, Σ_k)`: the priors of the 2-D study and,
//! because a linear Gaussian likelihood keeps the family, their exact posteriors:
//! `Σ_k' = (Σ_k⁻¹ + a aᵀ/σ²)⁻¹`, `μ_k' = Σ_k'(Σ_k⁻¹ μ_k + a y/σ²)`,
//! `w_k' ∝ w_k N(y; aᵀμ_k, aᵀΣ_k a + σ²)`.

use rand::Rng;
use rand_distr::StandardNormal;

use scoreprior_core::{Error, Result};

/// A mixture of 2-D Gaussians with full covariances (row-major `[c11, c12, c21, c22]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mixture2 {
    /// Normalised weights.
    pub weights: Vec<f64>,
    /// Component means.
    pub means: Vec<[f64; 2]>,
    /// Component covariances.
    pub covs: Vec<[f64; 4]>,
}

fn inv2(c: &[f64; 4]) -> Result<([f64; 4], f64)> {
    let det = c[0] * c[3] - c[1] * c[2];
    if !(det > 0.0 && det.is_finite() && c[0] > 0.0 && (c[1] - c[2]).abs() <= 1e-12 * c[0].max(c[3])) {
        return Err(Error::NotPositiveDefinite {
            what: format!("2-D covariance {c:?}"),
            why: "it needs c11 > 0, c12 = c21 and a positive, finite determinant".into(),
        });
    }
    Ok(([c[3] / det, -c[1] / det, -c[2] / det, c[0] / det], det))
}

impl Mixture2 {
    /// A mixture after checking its parts (positive weights, SPD covariances, equal counts).
    ///
    /// ```
    /// use scoreprior_cli::studies::Mixture2;
    /// let g = Mixture2::new(vec![1.0], vec![[0.0, 0.0]], vec![[1.0, 0.0, 0.0, 1.0]]).unwrap();
    /// let p = g.posterior([1.0, 0.0], 1.0, 2.0).unwrap();
    /// assert!((p.means[0][0] - 1.0).abs() < 1e-12 && (p.covs[0][0] - 0.5).abs() < 1e-12);
    /// ```
    pub fn new(weights: Vec<f64>, means: Vec<[f64; 2]>, covs: Vec<[f64; 4]>) -> Result<Self> {
        if weights.is_empty() || weights.len() != means.len() || weights.len() != covs.len() {
            return Err(Error::inconsistent(
                "2-D mixture",
                format!(
                    "needs as many weights, means and covariances, at least one; got {}, {} and {}",
                    weights.len(),
                    means.len(),
                    covs.len()
                ),
            ));
        }
        if let Some(&w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
            return Err(Error::out_of_range("mixture weight", w, "positive and finite"));
        }
        for c in &covs {
            inv2(c)?;
        }
        let total: f64 = weights.iter().sum();
        Ok(Self { weights: weights.iter().map(|w| w / total).collect(), means, covs })
    }

    /// `log p(x)` at one point.
    pub fn log_pdf(&self, x: [f64; 2]) -> f64 {
        let terms: Vec<f64> = (0..self.weights.len())
            .map(|k| {
                let (p, det) = inv2(&self.covs[k]).expect("checked in new");
                let (d0, d1) = (x[0] - self.means[k][0], x[1] - self.means[k][1]);
                let q = d0 * (p[0] * d0 + p[1] * d1) + d1 * (p[2] * d0 + p[3] * d1);
                self.weights[k].ln() - 0.5 * q - 0.5 * det.ln() - (2.0 * std::f64::consts::PI).ln()
            })
            .collect();
        log_sum_exp(&terms)
    }

    /// The exact posterior under `y = aᵀx + n`, `n ~ N(0, σ²)`.
    ///
    /// # Errors
    /// A non-positive or non-finite `sigma`, a non-finite `a` or `y`.
    pub fn posterior(&self, a: [f64; 2], sigma: f64, y: f64) -> Result<Mixture2> {
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(Error::out_of_range("posterior noise sigma", sigma, "positive and finite"));
        }
        if let Some(index) = a.iter().chain([&y]).position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "posterior measurement (a1, a2, y)", index });
        }
        let s2 = sigma * sigma;
        let mut log_w = Vec::new();
        let (mut means, mut covs) = (Vec::new(), Vec::new());
        for k in 0..self.weights.len() {
            let (p, _) = inv2(&self.covs[k])?;
            let q =
                [p[0] + a[0] * a[0] / s2, p[1] + a[0] * a[1] / s2, p[2] + a[1] * a[0] / s2, p[3] + a[1] * a[1] / s2];
            let (c, _) = inv2(&q)?;
            let m = self.means[k];
            let b = [p[0] * m[0] + p[1] * m[1] + a[0] * y / s2, p[2] * m[0] + p[3] * m[1] + a[1] * y / s2];
            means.push([c[0] * b[0] + c[1] * b[1], c[2] * b[0] + c[3] * b[1]]);
            covs.push([c[0], 0.5 * (c[1] + c[2]), 0.5 * (c[1] + c[2]), c[3]]);
            let sk = &self.covs[k];
            let var = a[0] * (sk[0] * a[0] + sk[1] * a[1]) + a[1] * (sk[2] * a[0] + sk[3] * a[1]) + s2;
            let r = y - (a[0] * m[0] + a[1] * m[1]);
            log_w.push(self.weights[k].ln() - 0.5 * r * r / var - 0.5 * var.ln());
        }
        let l = log_sum_exp(&log_w);
        Mixture2::new(log_w.iter().map(|v| (v - l).exp().max(1e-300)).collect(), means, covs)
    }

    /// `n` exact samples, row-major `(n, 2)`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let u: f64 = rng.gen();
            let mut k = 0;
            let mut acc = self.weights[0];
            while u > acc && k + 1 < self.weights.len() {
                k += 1;
                acc += self.weights[k];
            }
            let c = &self.covs[k];
            let l11 = c[0].sqrt();
            let l21 = c[2] / l11;
            let l22 = (c[3] - l21 * l21).max(0.0).sqrt();
            let (z0, z1): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
            out.push(self.means[k][0] + l11 * z0);
            out.push(self.means[k][1] + l21 * z0 + l22 * z1);
        }
        out
    }

    /// Mean and covariance `[c11, c12, c22]` of the mixture.
    pub fn moments(&self) -> ([f64; 2], [f64; 3]) {
        let mut m = [0.0; 2];
        for (w, mu) in self.weights.iter().zip(&self.means) {
            m[0] += w * mu[0];
            m[1] += w * mu[1];
        }
        let mut c = [0.0; 3];
        for ((w, mu), s) in self.weights.iter().zip(&self.means).zip(&self.covs) {
            let (d0, d1) = (mu[0] - m[0], mu[1] - m[1]);
            c[0] += w * (s[0] + d0 * d0);
            c[1] += w * (s[1] + d0 * d1);
            c[2] += w * (s[3] + d1 * d1);
        }
        (m, c)
    }
}

/// `log Σ exp(v)` without overflow; `−∞` for an empty slice.
pub fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn posterior_of_a_gaussian_matches_bayes_on_a_grid() {
        let prior = Mixture2::new(vec![1.0], vec![[0.3, -0.2]], vec![[0.09, 0.03, 0.03, 0.04]]).unwrap();
        let (a, s, y) = ([-2.0, 1.7], 0.2, 0.3);
        let post = prior.posterior(a, s, y).unwrap();
        // Brute force: normalise prior × likelihood on a fine grid and compare moments.
        let (n, lo, hi) = (600, -1.5, 1.5);
        let h = (hi - lo) / n as f64;
        let (mut z, mut m0, mut m1, mut c00) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            for j in 0..n {
                let x = [lo + (i as f64 + 0.5) * h, lo + (j as f64 + 0.5) * h];
                let r: f64 = y - (a[0] * x[0] + a[1] * x[1]);
                let p = (prior.log_pdf(x) - 0.5 * r * r / (s * s)).exp();
                z += p;
                m0 += p * x[0];
                m1 += p * x[1];
                c00 += p * x[0] * x[0];
            }
        }
        let (m, c) = post.moments();
        assert!((m0 / z - m[0]).abs() < 1e-6 && (m1 / z - m[1]).abs() < 1e-6, "{m:?}");
        assert!((c00 / z - (m0 / z).powi(2) - c[0]).abs() < 1e-6);
    }

    #[test]
    fn mixture_posterior_weights_and_samples() {
        let prior = Mixture2::new(
            vec![0.5, 0.5],
            vec![[-0.5, -0.5], [0.5, 0.5]],
            vec![[0.01, 0.0, 0.0, 0.01], [0.01, 0.0, 0.0, 0.01]],
        )
        .unwrap();
        let post = prior.posterior([-2.0, 1.7], 0.2, 0.3).unwrap();
        // aᵀμ = 0.15 and −0.15 with y = 0.3: the (−0.5, −0.5) component is favoured.
        assert!(post.weights[0] > post.weights[1]);
        let x = post.sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(3), 200_000);
        let mean0 = x.iter().step_by(2).sum::<f64>() / 200_000.0;
        assert!((mean0 - post.moments().0[0]).abs() < 5e-3, "{mean0} vs {:?}", post.moments());
        assert!(Mixture2::new(vec![1.0], vec![[0.0, 0.0]], vec![[1.0, 2.0, 2.0, 1.0]]).is_err());
        assert!(prior.posterior([1.0, 0.0], 0.0, 0.0).is_err());
    }
}
