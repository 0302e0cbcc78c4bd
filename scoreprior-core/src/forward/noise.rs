//! Measurement noise `n` in `y = A(x) + n` and its log-likelihood.
//!
//! Each real measurement `k` has a standard deviation `σ_k` and a kind: Gaussian,
//! `log p = −½ (y_k − f_k)² / σ_k²`, or circular (closure phases, radians), the reference
//! code's `log p = −½ · 2(1 − cos(y_k − f_k)) / σ_k²`, which equals the Gaussian for small
//! residuals and is 2π-periodic. Complex Gaussian noise of level σ puts `σ/√2` on each of
//! the real and imaginary parts, so `E|n|² = σ²`; it applies only to complex operator outputs
//! ([`crate::forward::Model::with_spec`] rejects it on real-valued ones).
//!
//! Some measurements may instead form correlated Gaussian blocks
//! ([`Noise::with_correlated_blocks`]): measurements `b = (k₁, …, k_n)` with covariance
//! `C = L Lᵀ` (`L` its Cholesky factor, computed once) enter as `log p = −½ rᵀ C⁻¹ r =
//! −½ |L⁻¹ r|²`, `r = y_b − f_b` with circular entries wrapped: each to the multiple of 2π
//! nearest to what the block's earlier residuals predict for it (in the order of the forward
//! substitution; at high S/N simply to `(−π, π]`), so that a precise combination of noisy
//! angles is not given a spurious 2π; the gradient
//! is `∂ log p / ∂f_b = C⁻¹ r = L⁻ᵀ L⁻¹ r` (the wrap has slope 1 wherever it is continuous), and
//! a draw is `f_b + L z`, `z ~ N(0, I)`. For a circular entry this is the Gaussian limit of the
//! circular likelihood (`2(1 − cos r) = r² + O(r⁴)`), exact at high S/N. A block whose
//! covariance is singular (a measurement that is a linear combination of the others in it) is
//! refused with [`Error::NotPositiveDefinite`] naming it, unless it declares such measurements
//! determined by the others ([`CorrelatedBlock::allow_dependent`]): they get a zero column in
//! `L` and zero weight.

use rand_distr::{Distribution, StandardNormal};

use crate::{Error, Result};

/// How one measurement's residual enters the likelihood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Likelihood {
    /// `−½ r² / σ²`.
    Gaussian,
    /// `−(1 − cos r) / σ²`, for angles.
    Circular,
}

/// A noise level as written in a spec, before the measurement length is known.
#[derive(Debug, Clone, PartialEq)]
pub enum NoiseSpec {
    /// Real Gaussian, the same σ on every measurement.
    Gaussian { sigma: f64 },
    /// Complex Gaussian of level σ on split complex data: σ/√2 per real and imaginary part.
    ComplexGaussian { sigma: f64 },
    /// One σ per measurement.
    PerMeasurement(Vec<f64>),
}

impl NoiseSpec {
    /// The per-measurement noise for `m` measurements.
    pub fn resolve(&self, m: usize) -> Result<Noise> {
        match self {
            NoiseSpec::Gaussian { sigma } => Noise::gaussian(*sigma, m),
            NoiseSpec::ComplexGaussian { sigma } => Noise::complex_gaussian(*sigma, m),
            NoiseSpec::PerMeasurement(s) => {
                if s.len() != m {
                    return Err(Error::shape("per-measurement sigma", m, s.len()));
                }
                Noise::per_measurement(s.clone())
            }
        }
    }
    /// `gaussian(sigma=…)` and so on.
    pub fn describe(&self) -> String {
        match self {
            NoiseSpec::Gaussian { sigma } => format!("gaussian(sigma={sigma})"),
            NoiseSpec::ComplexGaussian { sigma } => format!("complex_gaussian(sigma={sigma})"),
            NoiseSpec::PerMeasurement(s) => format!("per_measurement({} values)", s.len()),
        }
    }
}

/// Per-measurement noise: `σ_k` and the likelihood kind of each of `M` real measurements,
/// and optionally blocks of measurements with correlated Gaussian noise
/// ([`Noise::with_correlated_blocks`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Noise {
    sigma: Vec<f64>,
    kind: Vec<Likelihood>,
    /// Correlated blocks, each with its Cholesky factor.
    blocks: Vec<Factored>,
    /// Whether measurement `k` is in a block (empty without blocks).
    in_block: Vec<bool>,
}

/// Measurements whose noise is correlated, as given to [`Noise::with_correlated_blocks`]:
/// a label for messages (e.g. the scan), the measurements' indices and their covariance
/// (`n × n`, row-major, symmetric positive definite).
#[derive(Debug, Clone, PartialEq)]
pub struct CorrelatedBlock {
    /// What the block is, for messages: `"closure phases of the scan at 3.5 h"`.
    pub label: String,
    /// The measurements of the block (indices into the measurement vector).
    pub index: Vec<usize>,
    /// Their covariance, `index.len()²` values, row-major.
    pub covariance: Vec<f64>,
    /// Whether a measurement that is (to rounding) a linear combination of the block's earlier
    /// ones is given zero weight instead of refused: its residual is then the one the others
    /// imply, which holds when data and predictions are both computed from one set of
    /// values (log closure amplitudes among all the amplitude ratios of a scan). Its draws are
    /// that combination of the others'.
    pub allow_dependent: bool,
}

/// A block with its lower Cholesky factor `L` (row-major, `C = L Lᵀ`).
#[derive(Debug, Clone, PartialEq)]
struct Factored {
    index: Vec<usize>,
    chol: Vec<f64>,
    /// Rows with a pivot (zero-weight, dependent rows have a zero column in `chol`).
    kept: Vec<bool>,
}

impl Factored {
    /// `z = L⁻¹ r` on the kept rows (0 on dependent ones), each circular residual first moved
    /// by the multiple of 2π that brings it closest to what the block's earlier residuals
    /// predict for it (`Σ_{j<i} L_ij z_j`): the wrap of each closure phase alone is arbitrary,
    /// and two noisy closures wrapped differently would put a 2π error into a precise
    /// combination of them. At high S/N every residual is small and nothing moves.
    fn unwrap_and_whiten(&self, r: &mut [f64], circular: &[bool]) {
        use std::f64::consts::TAU;
        let n = self.index.len();
        for i in 0..n {
            if !self.kept[i] {
                continue;
            }
            let row = &self.chol[i * n..i * n + i + 1];
            let s: f64 = row[..i].iter().zip(&r[..i]).map(|(l, v)| l * v).sum();
            let mut ri = r[i];
            if circular[i] {
                ri += TAU * ((s - ri) / TAU).round();
            }
            r[i] = (ri - s) / row[i];
        }
        (0..n).filter(|&i| !self.kept[i]).for_each(|i| r[i] = 0.0);
    }
    /// `r ← L⁻ᵀ r` on the kept rows (0 on dependent ones).
    fn solve_upper(&self, r: &mut [f64]) {
        let n = self.index.len();
        for i in (0..n).rev() {
            if !self.kept[i] {
                r[i] = 0.0;
                continue;
            }
            let s: f64 = (i + 1..n).map(|j| self.chol[j * n + i] * r[j]).sum();
            r[i] = (r[i] - s) / self.chol[i * n + i];
        }
    }
}

/// The smallest pivot of a correlated block's Cholesky factorisation, relative to its
/// diagonal entry: below it the measurement is (to rounding) a linear combination of the
/// block's earlier ones and the block is refused.
pub const BLOCK_PIVOT_MIN: f64 = 1e-10;

/// The lower Cholesky factor of `block` and which rows have a pivot (all unless the block
/// allows dependent rows, whose column is then zero), or why it has none.
fn cholesky(block: &CorrelatedBlock) -> Result<(Vec<f64>, Vec<bool>)> {
    let n = block.index.len();
    let c = &block.covariance;
    let refuse = |why: String| Error::NotPositiveDefinite { what: format!("the covariance of {}", block.label), why };
    if c.len() != n * n {
        return Err(Error::shape(format!("the covariance of {}", block.label), n * n, c.len()));
    }
    if let Some(k) = c.iter().position(|v| !v.is_finite()) {
        return Err(refuse(format!("entry ({}, {}) is {}", k / n, k % n, c[k])));
    }
    for i in 0..n {
        for j in 0..i {
            let (a, b) = (c[i * n + j], c[j * n + i]);
            if (a - b).abs() > 1e-12 * (c[i * n + i] * c[j * n + j]).sqrt() {
                return Err(refuse(format!("entries ({i}, {j}) = {a} and ({j}, {i}) = {b} differ")));
            }
        }
    }
    let mut l = vec![0.0; n * n];
    let mut kept = vec![true; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = c[i * n + i] - s;
                if block.allow_dependent && d.abs() <= BLOCK_PIVOT_MIN * c[i * n + i] && c[i * n + i] > 0.0 {
                    kept[i] = false;
                    continue;
                }
                if !(d > BLOCK_PIVOT_MIN * c[i * n + i]) {
                    return Err(refuse(format!(
                        "its measurement {} (row {i}) has variance {:e}, of which {:e} is not explained by the \
                         block's earlier measurements, less than {BLOCK_PIVOT_MIN:e} of it: it is (numerically) a \
                         linear combination of them; leave it out, or use independent measurements",
                        block.index[i],
                        c[i * n + i],
                        d.max(0.0)
                    )));
                }
                l[i * n + i] = d.sqrt();
            } else if kept[j] {
                l[i * n + j] = (c[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Ok((l, kept))
}

/// The smallest noise level σ accepted: σ² must be a normal number, so that `r²/σ²` (χ², the
/// likelihood and its gradient) stays finite for finite residuals; at σ = 1e-300, σ² is 0 and
/// χ² would be NaN. (A huge σ is refused where it matters, when a simulated measurement is
/// not finite.)
pub const SIGMA_MIN: f64 = 1e-150;

pub(crate) fn check_sigma(s: f64) -> Result<()> {
    if s.is_finite() && s >= SIGMA_MIN {
        Ok(())
    } else if s.is_finite() && s > 0.0 {
        Err(Error::out_of_range(
            "noise level",
            s,
            format!("at least {SIGMA_MIN:e} (σ² must be a normal number for χ² to be finite)"),
        ))
    } else {
        Err(Error::out_of_range("noise level", s, "positive and finite"))
    }
}

impl Noise {
    /// Real Gaussian noise of standard deviation `sigma` on `m` measurements.
    ///
    /// ```
    /// let n = scoreprior_core::forward::Noise::gaussian(0.1, 3).unwrap();
    /// assert_eq!(n.sigma(), &[0.1, 0.1, 0.1]);
    /// ```
    pub fn gaussian(sigma: f64, m: usize) -> Result<Self> {
        check_sigma(sigma)?;
        Ok(Noise { sigma: vec![sigma; m], kind: vec![Likelihood::Gaussian; m], blocks: vec![], in_block: vec![] })
    }
    /// Complex Gaussian noise of level `sigma` on `m` split real numbers (`m/2` complex):
    /// `σ/√2` per part.
    pub fn complex_gaussian(sigma: f64, m: usize) -> Result<Self> {
        check_sigma(sigma)?;
        Self::gaussian(sigma / std::f64::consts::SQRT_2, m)
    }
    /// Gaussian noise with one σ per measurement.
    pub fn per_measurement(sigma: Vec<f64>) -> Result<Self> {
        sigma.iter().try_for_each(|&s| check_sigma(s))?;
        let m = sigma.len();
        Ok(Noise { sigma, kind: vec![Likelihood::Gaussian; m], blocks: vec![], in_block: vec![] })
    }
    /// Noise with one σ and one likelihood kind per measurement.
    pub fn mixed(sigma: Vec<f64>, kind: Vec<Likelihood>) -> Result<Self> {
        sigma.iter().try_for_each(|&s| check_sigma(s))?;
        if kind.len() != sigma.len() {
            return Err(Error::shape("likelihood kinds", sigma.len(), kind.len()));
        }
        Ok(Noise { sigma, kind, blocks: vec![], in_block: vec![] })
    }

    /// The same noise with the measurements of each block correlated: Gaussian with the block's
    /// covariance, circular entries wrapped (see the module documentation). Each block's σ become
    /// the square roots of its covariance's diagonal (the marginal σ); measurements in no block
    /// keep their own σ and kind.
    ///
    /// ```
    /// use scoreprior_core::forward::noise::{CorrelatedBlock, Likelihood, Noise};
    /// let n = Noise::mixed(vec![1.0; 3], vec![Likelihood::Gaussian; 3]).unwrap();
    /// // measurements 0 and 2 share half their variance: C = [[2, 1], [1, 2]]
    /// let block = CorrelatedBlock {
    ///     label: "a pair".into(), index: vec![0, 2], covariance: vec![2.0, 1.0, 1.0, 2.0], allow_dependent: false,
    /// };
    /// let n = n.with_correlated_blocks(vec![block]).unwrap();
    /// assert_eq!(n.sigma()[0], 2f64.sqrt());
    /// // χ² = rᵀ C⁻¹ r: (1, ·, 1) → 2/3, plus 1 from the independent measurement 1
    /// assert!((n.chi_squared(&[1.0, 1.0, 1.0], &[0.0; 3]) - (2.0 / 3.0 + 1.0)).abs() < 1e-12);
    /// // a singular block is refused …
    /// let twice = CorrelatedBlock { label: "a pair".into(), index: vec![0, 1], covariance: vec![1.0; 4], allow_dependent: false };
    /// let e = Noise::gaussian(1.0, 2).unwrap().with_correlated_blocks(vec![twice.clone()]).unwrap_err().to_string();
    /// assert!(e.contains("the covariance of a pair") && e.contains("linear combination"), "{e}");
    /// // … unless it allows dependent measurements: the second is then given zero weight
    /// let n = Noise::gaussian(1.0, 2).unwrap().with_correlated_blocks(vec![CorrelatedBlock { allow_dependent: true, ..twice }]).unwrap();
    /// assert_eq!((n.dependent_count(), n.chi_squared(&[2.0, 2.0], &[0.0, 0.0])), (1, 4.0));
    /// ```
    ///
    /// # Errors
    /// An index out of range or in two blocks, a covariance of the wrong size, not finite, not
    /// symmetric or singular ([`Error::NotPositiveDefinite`], naming the block's label).
    pub fn with_correlated_blocks(mut self, blocks: Vec<CorrelatedBlock>) -> Result<Self> {
        let m = self.len();
        if self.in_block.is_empty() {
            self.in_block = vec![false; m];
        }
        for b in blocks {
            for &k in &b.index {
                if k >= m {
                    return Err(Error::count_out_of_range(
                        format!("a measurement index of {}", b.label),
                        k,
                        format!("below the {m} measurements"),
                    ));
                }
                if std::mem::replace(&mut self.in_block[k], true) {
                    return Err(Error::inconsistent(
                        format!("the correlated blocks ({})", b.label),
                        format!("measurement {k} is in two blocks, or twice in one"),
                    ));
                }
            }
            let (chol, kept) = cholesky(&b)?;
            let n = b.index.len();
            for (i, &k) in b.index.iter().enumerate() {
                let s = b.covariance[i * n + i].sqrt();
                check_sigma(s).map_err(|e| e.context(b.label.clone()))?;
                self.sigma[k] = s;
            }
            self.blocks.push(Factored { index: b.index, chol, kept });
        }
        Ok(self)
    }
    /// Whether every measurement's noise is independent (no correlated block).
    pub fn is_diagonal(&self) -> bool {
        self.blocks.is_empty()
    }
    /// The measurements given zero weight as linear combinations of others of their block
    /// ([`CorrelatedBlock::allow_dependent`]): `M` less this is the number of independent data.
    pub fn dependent_count(&self) -> usize {
        self.blocks.iter().map(|b| b.kept.iter().filter(|k| !**k).count()).sum()
    }
    /// The residual `y_k − f_k`, wrapped to `(−π, π]` when circular.
    fn residual(&self, k: usize, y: &[f64], f: &[f64]) -> f64 {
        match self.kind[k] {
            Likelihood::Gaussian => y[k] - f[k],
            Likelihood::Circular => wrap_angle(y[k] - f[k]),
        }
    }
    fn blocked(&self, k: usize) -> bool {
        self.in_block.get(k).copied().unwrap_or(false)
    }
    /// Number of measurements `M`.
    pub fn len(&self) -> usize {
        self.sigma.len()
    }
    /// Whether there are no measurements.
    pub fn is_empty(&self) -> bool {
        self.sigma.is_empty()
    }
    /// The σ of every measurement.
    pub fn sigma(&self) -> &[f64] {
        &self.sigma
    }
    /// The likelihood kind of every measurement.
    pub fn kinds(&self) -> &[Likelihood] {
        &self.kind
    }

    /// `χ² = Σ_k ρ_k / σ_k²` for one measurement `y` and prediction `f`, plus `rᵀ C⁻¹ r` of
    /// each correlated block.
    pub fn chi_squared(&self, y: &[f64], f: &[f64]) -> f64 {
        let mut s = 0.0;
        for k in 0..y.len() {
            if self.blocked(k) {
                continue;
            }
            let r = y[k] - f[k];
            let rho = match self.kind[k] {
                Likelihood::Gaussian => r * r,
                Likelihood::Circular => 2.0 * (1.0 - r.cos()),
            };
            s += rho / (self.sigma[k] * self.sigma[k]);
        }
        for b in &self.blocks {
            let mut r: Vec<f64> = b.index.iter().map(|&k| self.residual(k, y, f)).collect();
            let circular: Vec<bool> = b.index.iter().map(|&k| self.kind[k] == Likelihood::Circular).collect();
            b.unwrap_and_whiten(&mut r, &circular);
            s += r.iter().map(|v| v * v).sum::<f64>();
        }
        s
    }

    /// The whitened residual of `y` against `f` into `out`: `r_k/σ_k` for each independent
    /// measurement (circular ones wrapped to `(−π, π]`), `L⁻¹ r_b` at the positions of each
    /// correlated block. Under the model, `y − f` whitens to independent unit normals (at high
    /// S/N for circular measurements), and `χ² = |out|²` for Gaussian ones.
    ///
    /// ```
    /// use scoreprior_core::forward::noise::{CorrelatedBlock, Noise};
    /// let b = CorrelatedBlock { label: "b".into(), index: vec![0, 1], covariance: vec![4.0, 2.0, 2.0, 2.0], allow_dependent: false };
    /// let n = Noise::gaussian(1.0, 2).unwrap().with_correlated_blocks(vec![b]).unwrap();
    /// let mut w = [0.0; 2];
    /// n.whiten(&[2.0, 1.0], &[0.0, 0.0], &mut w); // L = [[2, 0], [1, 1]]
    /// assert_eq!(w, [1.0, 0.0]);
    /// ```
    pub fn whiten(&self, y: &[f64], f: &[f64], out: &mut [f64]) {
        for k in 0..y.len() {
            out[k] = self.residual(k, y, f) / self.sigma[k];
        }
        for b in &self.blocks {
            let mut r: Vec<f64> = b.index.iter().map(|&k| self.residual(k, y, f)).collect();
            let circular: Vec<bool> = b.index.iter().map(|&k| self.kind[k] == Likelihood::Circular).collect();
            b.unwrap_and_whiten(&mut r, &circular);
            b.index.iter().zip(&r).for_each(|(&k, v)| out[k] = *v);
        }
    }

    /// `∂ log p(y | f) / ∂f` into `out`.
    pub fn grad_wrt_prediction(&self, y: &[f64], f: &[f64], out: &mut [f64]) {
        for k in 0..y.len() {
            if self.blocked(k) {
                continue;
            }
            let r = y[k] - f[k];
            let s2 = self.sigma[k] * self.sigma[k];
            out[k] = match self.kind[k] {
                Likelihood::Gaussian => r / s2,
                Likelihood::Circular => r.sin() / s2,
            };
        }
        for b in &self.blocks {
            let mut r: Vec<f64> = b.index.iter().map(|&k| self.residual(k, y, f)).collect();
            let circular: Vec<bool> = b.index.iter().map(|&k| self.kind[k] == Likelihood::Circular).collect();
            b.unwrap_and_whiten(&mut r, &circular);
            b.solve_upper(&mut r);
            b.index.iter().zip(&r).for_each(|(&k, v)| out[k] = *v);
        }
    }

    /// `y = f + n` into `out`; circular measurements are wrapped to `(−π, π]`. Without
    /// correlated blocks one normal draw per measurement, in order; with them, the block
    /// members' draws follow, block by block (`f_b + L z`).
    pub fn sample(&self, f: &[f64], rng: &mut dyn rand::RngCore, out: &mut [f64]) {
        for k in 0..f.len() {
            if self.blocked(k) {
                continue;
            }
            let e: f64 = StandardNormal.sample(rng);
            let v = f[k] + self.sigma[k] * e;
            out[k] = match self.kind[k] {
                Likelihood::Gaussian => v,
                Likelihood::Circular => wrap_angle(v),
            };
        }
        for b in &self.blocks {
            let n = b.index.len();
            let z: Vec<f64> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
            for (i, &k) in b.index.iter().enumerate() {
                let e: f64 = b.chol[i * n..i * n + i + 1].iter().zip(&z).map(|(l, z)| l * z).sum();
                let v = f[k] + e;
                out[k] = match self.kind[k] {
                    Likelihood::Gaussian => v,
                    Likelihood::Circular => wrap_angle(v),
                };
            }
        }
    }
}

/// `a` wrapped to `(−π, π]`.
pub fn wrap_angle(a: f64) -> f64 {
    use std::f64::consts::PI;
    let w = (a + PI).rem_euclid(2.0 * PI) - PI;
    if w == -PI {
        PI
    } else {
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A σ whose square underflows (1e-300: χ² would be NaN) is refused.
    #[test]
    fn noise_levels_have_a_normal_square() {
        for s in [1e-300, 1e-160, f64::MIN_POSITIVE / 4.0] {
            let e = Noise::gaussian(s, 3).unwrap_err().to_string();
            assert!(e.contains("normal number"), "{s}: {e}");
            assert!(Noise::per_measurement(vec![0.1, s]).is_err(), "{s}");
        }
        let n = Noise::gaussian(1e-100, 2).unwrap();
        assert!(n.chi_squared(&[1e-100, 0.0], &[0.0, 0.0]).is_finite());
    }
}
