//! A posterior in whitened coordinates: `x = b + L·u` for every output `u` of another
//! [`Posterior`], with a fixed invertible `L`, so `log q(x) = log q(u) − log|det L|`,
//! `∂L/∂u = Lᵀ ∂L/∂x` and `∇x log q(x) = L⁻ᵀ ∇u log q(u)` at `u = L⁻¹(x − b)`.
//!
//! With `L·Lᵀ = H⁻¹` for the Hessian `H` of the negative log-posterior at its mode (the Laplace
//! approximation, [`AffineFactor::from_precision`]), an identity flow *is* that Gaussian, and the
//! flow only has to learn what the posterior adds to it. Why: a flow of pixel-wise couplings
//! started as `N(b, s²I)` must turn itself into a covariance whose eigenvalues span many decades
//! along non-local (Fourier) directions before reverse KL stops pulling every pixel in with
//! the best-measured direction; on interferometric data it never gets there and the posterior
//! collapses to a point (see `docs/src/black-hole/calibration.md`).

use nalgebra::{DMatrix, SymmetricEigen};

use super::*;

/// A fixed factor `L` (row-major `D × D`) with its inverse and `log|det L|`.
#[derive(Debug, Clone, PartialEq)]
pub struct AffineFactor {
    dim: usize,
    /// `L`, column-major (nalgebra's layout).
    l: DMatrix<f64>,
    /// `L⁻¹`, column-major.
    l_inv: DMatrix<f64>,
    log_det: f64,
    clipped: usize,
    /// Smallest and largest eigenvalue of the precision before the floor (`NaN` when the
    /// factor was not built from a precision).
    eigen_range: (f64, f64),
}

impl AffineFactor {
    /// The factor `L = V·|Λ|^{-1/2}` of the precision `H = VΛVᵀ` (row-major `D × D`,
    /// symmetrised first), so that `L·Lᵀ = H⁻¹` for a positive definite `H`. Negative
    /// eigenvalues count by their magnitude, and magnitudes below `floor > 0` are raised to it
    /// (flat directions get the variance `1/floor`); [`clipped`](Self::clipped) counts those.
    ///
    /// ```
    /// use scoreprior_core::dpi::AffineFactor;
    /// // H = diag(4, −1/4, 0) with floor 1/9: standard deviations 1/2, 2, 3.
    /// let h = [4.0, 0.0, 0.0, 0.0, -0.25, 0.0, 0.0, 0.0, 0.0];
    /// let f = AffineFactor::from_precision(&h, 3, 1.0 / 9.0).unwrap();
    /// let sd = f.marginal_std();
    /// assert!((sd[0] - 0.5).abs() < 1e-12 && (sd[1] - 2.0).abs() < 1e-12 && (sd[2] - 3.0).abs() < 1e-12);
    /// assert_eq!(f.clipped(), 1);
    /// ```
    ///
    /// # Errors
    /// A matrix of the wrong size or with non-finite entries, or a floor that is not positive.
    pub fn from_precision(precision: &[f64], dim: usize, floor: f64) -> Result<Self> {
        if dim == 0 || precision.len() != dim * dim {
            return Err(Error::shape("precision matrix", format!("({dim}, {dim})"), precision.len()));
        }
        if let Some(index) = precision.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "precision matrix", index });
        }
        if !(floor.is_finite() && floor > 0.0) {
            return Err(Error::out_of_range("eigenvalue floor of the precision", floor, "positive and finite"));
        }
        let h = DMatrix::from_row_slice(dim, dim, precision);
        let h = 0.5 * (&h + h.transpose());
        let eig = SymmetricEigen::new(h);
        let mut clipped = 0;
        // A negative eigenvalue (a saddle direction of a non-convex objective, or differencing
        // noise next to curvatures many decades larger) contributes its magnitude, as in
        // saddle-free Newton: the floor alone would hand such a direction the largest variance
        // there is.
        let lam: Vec<f64> = eig
            .eigenvalues
            .iter()
            .map(|&v| {
                let v = v.abs();
                if v < floor {
                    clipped += 1;
                    floor
                } else {
                    v
                }
            })
            .collect();
        let v = eig.eigenvectors;
        let mut l = v.clone();
        let mut l_inv = v.transpose();
        for (k, &lk) in lam.iter().enumerate() {
            let s = lk.sqrt();
            l.column_mut(k).scale_mut(1.0 / s);
            l_inv.row_mut(k).scale_mut(s);
        }
        let log_det = -0.5 * lam.iter().map(|v| v.ln()).sum::<f64>();
        let eigen_range =
            eig.eigenvalues.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        Ok(Self { dim, l, l_inv, log_det, clipped, eigen_range })
    }

    /// A given factor `L` (row-major `D × D`, e.g. the Cholesky factor of a known covariance
    /// `C = L·Lᵀ`), which must be invertible.
    ///
    /// # Errors
    /// A matrix of the wrong size, non-finite entries, or a singular `L`.
    pub fn from_factor(factor: &[f64], dim: usize) -> Result<Self> {
        if dim == 0 || factor.len() != dim * dim {
            return Err(Error::shape("affine factor", format!("({dim}, {dim})"), factor.len()));
        }
        if let Some(index) = factor.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "affine factor", index });
        }
        let l = DMatrix::from_row_slice(dim, dim, factor);
        let lu = l.clone().lu();
        // The determinant itself under- or overflows at image sizes; its log does not.
        let log_det: f64 = lu.u().diagonal().iter().map(|v| v.abs().ln()).sum();
        let singular = || Error::NotPositiveDefinite { what: "affine factor".into(), why: "it is singular".into() };
        if !log_det.is_finite() {
            return Err(singular());
        }
        let l_inv = lu.try_inverse().ok_or_else(singular)?;
        Ok(Self { dim, l, l_inv, log_det, clipped: 0, eigen_range: (f64::NAN, f64::NAN) })
    }

    /// The identity scaled by `s > 0` (`L = s·I`).
    pub fn scaled_identity(dim: usize, s: f64) -> Result<Self> {
        if !(s.is_finite() && s > 0.0) {
            return Err(Error::out_of_range("affine scale", s, "positive and finite"));
        }
        Ok(Self {
            dim,
            l: DMatrix::identity(dim, dim) * s,
            l_inv: DMatrix::identity(dim, dim) / s,
            log_det: dim as f64 * s.ln(),
            clipped: 0,
            eigen_range: (f64::NAN, f64::NAN),
        })
    }

    /// Dimension `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// `log|det L|`.
    pub fn log_det(&self) -> f64 {
        self.log_det
    }
    /// Eigenvalues raised to the floor by [`from_precision`](Self::from_precision).
    pub fn clipped(&self) -> usize {
        self.clipped
    }
    /// Smallest and largest eigenvalue of the precision it was built from, before the floor
    /// (`NaN` for other factors).
    pub fn eigen_range(&self) -> (f64, f64) {
        self.eigen_range
    }
    /// Per-coordinate standard deviation of `L·z`, `z ~ N(0, I)`: `√diag(L·Lᵀ)`.
    pub fn marginal_std(&self) -> Vec<f64> {
        (0..self.dim).map(|i| self.l.row(i).norm()).collect()
    }
    /// `L` row-major.
    pub fn factor(&self) -> Vec<f64> {
        let d = self.dim;
        (0..d * d).map(|k| self.l[(k / d, k % d)]).collect()
    }

    /// Rows of `out = rows · Mᵀ` for a batch of row vectors (`n × D` row-major).
    fn rows_times_transpose(m: &DMatrix<f64>, rows: &[f64], dim: usize) -> Vec<f64> {
        let n = rows.len() / dim;
        // Row-major (n × D) is column-major (D × n): out (D × n) = M · X.
        let x = DMatrix::from_column_slice(dim, n, rows);
        (m * x).as_slice().to_vec()
    }
    /// `L·u` for each row `u`.
    pub fn apply(&self, rows: &[f64]) -> Vec<f64> {
        Self::rows_times_transpose(&self.l, rows, self.dim)
    }
    /// `Lᵀ·g` for each row `g` (without forming `Lᵀ`).
    pub fn apply_transpose(&self, rows: &[f64]) -> Vec<f64> {
        let x = DMatrix::from_column_slice(self.dim, rows.len() / self.dim, rows);
        self.l.tr_mul(&x).as_slice().to_vec()
    }
    /// `L⁻¹·x` for each row.
    pub fn solve(&self, rows: &[f64]) -> Vec<f64> {
        Self::rows_times_transpose(&self.l_inv, rows, self.dim)
    }
    /// `L⁻ᵀ·g` for each row.
    pub fn solve_transpose(&self, rows: &[f64]) -> Vec<f64> {
        let x = DMatrix::from_column_slice(self.dim, rows.len() / self.dim, rows);
        self.l_inv.tr_mul(&x).as_slice().to_vec()
    }
}

/// Any posterior moved and shaped by a fixed affine map (see the module documentation).
///
/// ```
/// use scoreprior_core::dpi::{AffineFactor, AffinePosterior, Batch, Posterior};
/// use rand::RngCore;
/// /// The "posterior" u = (1, 1) with log q 0.
/// struct Ones;
/// impl Posterior for Ones {
///     fn dim(&self) -> usize { 2 }
///     fn sample_for_training(&mut self, n: usize, r: &mut dyn RngCore) -> scoreprior_core::Result<Batch> { self.sample(n, r) }
///     fn backward(&mut self, _: &[f64], _: &[f64]) -> scoreprior_core::Result<()> { Ok(()) }
///     fn apply_update(&mut self, _: f64, _: Option<f64>) -> scoreprior_core::Result<f64> { Ok(0.0) }
///     fn sample(&mut self, n: usize, _: &mut dyn RngCore) -> scoreprior_core::Result<Batch> {
///         Ok(Batch { n, dim: 2, x: vec![1.0; 2 * n], log_q: vec![0.0; n] })
///     }
///     fn save_state(&self) -> scoreprior_core::Result<Vec<u8>> { Ok(vec![]) }
///     fn load_state(&mut self, _: &[u8]) -> scoreprior_core::Result<()> { Ok(()) }
/// }
/// // Precision diag(4, 1): L = diag(1/2, 1), x = (10, 20) + L·(1, 1).
/// let f = AffineFactor::from_precision(&[4.0, 0.0, 0.0, 1.0], 2, 1e-9).unwrap();
/// let mut q = AffinePosterior::new(Ones, vec![10.0, 20.0], f).unwrap();
/// let b = q.sample(1, &mut rand::rngs::mock::StepRng::new(0, 1)).unwrap();
/// assert!((b.x[0] - 10.5).abs() < 1e-12 && (b.x[1] - 21.0).abs() < 1e-12);
/// assert!((b.log_q[0] - 2f64.ln()).abs() < 1e-12); // −log|det L| = ln 2
/// ```
#[derive(Debug)]
pub struct AffinePosterior<P> {
    inner: P,
    offset: Vec<f64>,
    factor: AffineFactor,
}

impl<P: Posterior> AffinePosterior<P> {
    /// Wraps `inner`: `offset` (`D` finite values) is `b`, `factor` is `L`.
    ///
    /// # Errors
    /// Sizes that differ from `inner.dim()`, or a non-finite offset.
    pub fn new(inner: P, offset: Vec<f64>, factor: AffineFactor) -> Result<Self> {
        let d = inner.dim();
        if offset.len() != d {
            return Err(Error::shape("affine posterior offset", d, offset.len()));
        }
        if factor.dim() != d {
            return Err(Error::shape("affine posterior factor", d, factor.dim()));
        }
        if let Some(index) = offset.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "affine posterior offset", index });
        }
        Ok(Self { inner, offset, factor })
    }
    /// The wrapped posterior.
    pub fn inner(&self) -> &P {
        &self.inner
    }
    /// The offset `b`.
    pub fn offset(&self) -> &[f64] {
        &self.offset
    }
    /// The factor `L`.
    pub fn factor(&self) -> &AffineFactor {
        &self.factor
    }
    /// The wrapped posterior, unwrapped.
    pub fn into_inner(self) -> P {
        self.inner
    }
    fn map(&self, b: Batch) -> Batch {
        let mut x = self.factor.apply(&b.x);
        for xi in x.chunks_mut(b.dim) {
            xi.iter_mut().zip(&self.offset).for_each(|(v, o)| *v += o);
        }
        let log_q = b.log_q.iter().map(|l| l - self.factor.log_det()).collect();
        Batch { n: b.n, dim: b.dim, x, log_q }
    }
}

impl<P: Posterior> Posterior for AffinePosterior<P> {
    forward_to_inner!(map);
    fn backward(&mut self, grad_x: &[f64], grad_log_q: &[f64]) -> Result<()> {
        if !grad_x.len().is_multiple_of(self.dim()) {
            return Err(Error::shape("affine posterior gradient", self.dim(), grad_x.len()));
        }
        let gu = self.factor.apply_transpose(grad_x);
        self.inner.backward(&gu, grad_log_q)
    }
    fn grad_log_q(&mut self, x: &[f64], n: usize) -> Result<Vec<f64>> {
        let d = self.dim();
        if x.len() != n * d {
            return Err(Error::shape("affine posterior points", n * d, x.len()));
        }
        let centred: Vec<f64> =
            x.chunks(d).flat_map(|xi| xi.iter().zip(&self.offset).map(|(v, o)| v - o).collect::<Vec<_>>()).collect();
        let u = self.factor.solve(&centred);
        let gu = self.inner.grad_log_q(&u, n)?;
        Ok(self.factor.solve_transpose(&gu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_inverts_and_transposes_consistently() {
        // A random SPD precision.
        let d = 5;
        let mut a = vec![0.0; d * d];
        for (k, v) in a.iter_mut().enumerate() {
            *v = ((k * 7919) % 13) as f64 / 13.0 - 0.4;
        }
        let am = DMatrix::from_row_slice(d, d, &a);
        let h = &am * am.transpose() + DMatrix::identity(d, d) * 0.5;
        let hr: Vec<f64> = (0..d * d).map(|k| h[(k / d, k % d)]).collect();
        let f = AffineFactor::from_precision(&hr, d, 1e-12).unwrap();
        assert_eq!(f.clipped(), 0);
        let l = DMatrix::from_row_slice(d, d, &f.factor());
        // L Lᵀ H = I.
        let p = &l * l.transpose() * &h;
        assert!((p - DMatrix::identity(d, d)).abs().max() < 1e-10);
        assert!((f.log_det() - l.determinant().abs().ln()).abs() < 1e-10);
        let rows: Vec<f64> = (0..2 * d).map(|k| (k as f64).sin()).collect();
        let back = f.solve(&f.apply(&rows));
        assert!(back.iter().zip(&rows).all(|(a, b)| (a - b).abs() < 1e-10));
        // ⟨L u, g⟩ = ⟨u, Lᵀ g⟩ and ⟨L⁻¹ x, g⟩ = ⟨x, L⁻ᵀ g⟩.
        let g: Vec<f64> = (0..2 * d).map(|k| (k as f64 * 0.37).cos()).collect();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        assert!((dot(&f.apply(&rows), &g) - dot(&rows, &f.apply_transpose(&g))).abs() < 1e-10);
        assert!((dot(&f.solve(&rows), &g) - dot(&rows, &f.solve_transpose(&g))).abs() < 1e-10);
    }

    #[test]
    fn bad_factors_are_refused() {
        assert!(AffineFactor::from_precision(&[1.0, 0.0, 0.0], 2, 1.0).is_err());
        assert!(AffineFactor::from_precision(&[1.0, f64::NAN, 0.0, 1.0], 2, 1.0).is_err());
        assert!(AffineFactor::from_precision(&[1.0, 0.0, 0.0, 1.0], 2, 0.0).is_err());
        assert!(AffineFactor::scaled_identity(3, -1.0).is_err());
    }
}
