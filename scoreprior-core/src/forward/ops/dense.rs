//! A dense matrix `G ∈ R^{m×D}` on flattened images: `y = G x`, `Aᵀ y = Gᵀ y`. The seeded
//! Gaussian ensemble `G_ij ~ N(0, 1/m)` (compressed sensing) satisfies `E‖Gx‖² = ‖x‖²`.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::forward::{Op, Shape};
use crate::{Error, Result};

/// `y = G x` with output shape `[1, 1, m]`.
///
/// ```
/// use scoreprior_core::forward::{ops::DenseMatrix, Op};
/// let g = DenseMatrix::new([1, 1, 3].into(), 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
/// let mut y = [0.0; 2];
/// g.apply(&[1.0, 1.0, 1.0], &mut y);
/// assert_eq!(y, [6.0, 15.0]);
/// ```
#[derive(Debug, Clone)]
pub struct DenseMatrix {
    input: Shape,
    m: usize,
    g: Vec<f64>,
    label: String,
}

impl DenseMatrix {
    /// A given row-major `m × D` matrix.
    pub fn new(input: Shape, m: usize, g: Vec<f64>) -> Result<Self> {
        if m == 0 || g.len() != m * input.len() {
            return Err(Error::shape("dense matrix", format!("{m}×{} (m ≥ 1)", input.len()), g.len()));
        }
        Ok(DenseMatrix { input, m, g, label: format!("dense_matrix({m}×{})", input.len()) })
    }
    /// `m × D` i.i.d. `N(0, 1/m)` entries from `seed` (ChaCha8).
    pub fn gaussian(input: Shape, m: usize, seed: u64) -> Result<Self> {
        crate::limits::check_elems(
            &format!("the matrix of `gaussian_matrix(m={m})` on {input}"),
            &[m, input.len()],
            8,
        )?;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let s = 1.0 / (m.max(1) as f64).sqrt();
        let g = (0..m * input.len())
            .map(|_| {
                let e: f64 = StandardNormal.sample(&mut rng);
                s * e
            })
            .collect::<Vec<f64>>();
        let mut d = Self::new(input, m, g)?;
        d.label = format!("gaussian_matrix(m={m}, seed={seed})");
        Ok(d)
    }
    /// The matrix stored in a `.npy` file of shape `(m, D)` (any float or integer dtype,
    /// row-major), `D` the input size: a user's own linear operator without code.
    ///
    /// # Errors
    /// The file is missing or malformed ([`Error::File`]), is not two-dimensional, its
    /// second axis is not `D`, it holds a NaN or infinity, or it is above the memory limit.
    pub fn from_npy(input: Shape, path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        if let Ok(meta) = std::fs::metadata(path) {
            // Conservative: a u8 file becomes eight times larger as f64.
            crate::limits::check_elems(&format!("the matrix in {}", path.display()), &[meta.len() as usize], 8)?;
        }
        let a = crate::io::read_npy(path)?;
        let [m, d] = a.shape[..] else {
            return Err(Error::shape(
                &format!("matrix in {}", path.display()),
                format!("(m, {}) for inputs {input}", input.len()),
                format!("{:?}", a.shape),
            ));
        };
        if d != input.len() || m == 0 {
            return Err(Error::shape(
                &format!("matrix in {}", path.display()),
                format!("(m ≥ 1, {}) for inputs {input}", input.len()),
                format!("({m}, {d})"),
            ));
        }
        if let Some(index) = a.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "operator matrix file", index });
        }
        let mut g = Self::new(input, m, a.data)?;
        g.label = format!("matrix({m}×{d} from {})", path.display());
        Ok(g)
    }
    /// The matrix, row-major.
    pub fn matrix(&self) -> &[f64] {
        &self.g
    }
}

impl Op for DenseMatrix {
    fn describe(&self) -> String {
        self.label.clone()
    }
    fn input_shape(&self) -> Shape {
        self.input
    }
    fn output_shape(&self) -> Shape {
        Shape::vector(self.m)
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let d = self.input.len();
        for (r, yr) in y.iter_mut().enumerate() {
            *yr = self.g[r * d..(r + 1) * d].iter().zip(x).map(|(a, b)| a * b).sum();
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        let d = self.input.len();
        x.fill(0.0);
        for (r, &yr) in y.iter().enumerate() {
            x.iter_mut().zip(&self.g[r * d..(r + 1) * d]).for_each(|(xi, a)| *xi += a * yr);
        }
        Ok(())
    }
}
