//! Forward models `y = A(x) + n`: measurement operators, their adjoints or vector–Jacobian
//! products, and the likelihood `log p(y | x) = −½ Σ_k ρ_k(y_k − A(x)_k) / σ_k²` (Gaussian
//! `ρ(r) = r²`, circular `ρ(r) = 2(1 − cos r)` for closure phases) with its gradient
//! `∇x log p(y | x) = J_A(x)ᵀ (∂ log p / ∂A)`.
//!
//! # Layout and conventions
//! - A batch of images is a row-major `(n, D)` slice of `f64`, `D = C·H·W` (channel, row,
//!   column), like [`crate::score::ScoreModel`]. Measurements are `(n, M)`; a `y` of length
//!   `M` is broadcast over the batch (one observation, many posterior samples: DPI).
//! - Every intermediate has a [`Shape`] `[C, H, W]`. Complex data are stored **split**:
//!   the channel axis is doubled, real parts first (channels `0..C`), then imaginary
//!   (`C..2C`). A complex measurement vector is thus `[Re y; Im y]`, the reference code's
//!   layout, and a real-valued operator on it needs no complex arithmetic.
//! - Computation is in `f64`; every method has an `f32` twin (`forward_f32`, …) that
//!   converts at the boundary. We chose this over a generic `T: Real` because FFTs and
//!   dot-product tests need `f64` accuracy (adjoints exact to ~1e-15), the conversion costs
//!   far less than one score-network call, and one code path is one set of bugs.
//! - Closure phases use the circular likelihood `2(1 − cos Δψ)/σ²` of the reference code
//!   ([`Likelihood::Circular`]); everything else is Gaussian.
//! - `log_likelihood` drops terms constant in `x` (`Σ log σ_k`, `log 2π`, the von Mises
//!   normaliser), as the reference `unnormalized_log_likelihood` does; use
//!   [`ForwardModel::chi_squared`] for goodness of fit.
//!
//! # Building a model
//! Primitives ([`ops`]) implement [`Op`]; a [`Chain`] composes them, a [`Noise`] gives the
//! per-measurement σ, and a [`Model`] (chain + noise) implements [`ForwardModel`]. The same
//! primitives are reachable three ways, all ending in the same constructors
//! ([`spec::build_op`]):
//! 1. Rust: `Chain::new(shape).then(ops::Conv2d::new(shape, Kernel::gaussian(1.5, 9)?, Boundary::Reflect)?)?`;
//! 2. text at run time: [`spec::parse_model`]`("gaussian_blur(sigma=1.5,size=9) | subsample(factor=2)", "gaussian(sigma=0.05)", [1,32,32])`;
//! 3. compile time: `#[forward_model(input = [1, 32, 32], ops = [...], noise = gaussian(sigma = 0.05))]`
//!    checks the chain and computes its output shape while compiling, then builds the same chain.
//!
//! ```
//! use scoreprior_core::forward::{ForwardModel, Model};
//! // Denoising: identity operator, σ = 0.1 per pixel, 1×8×8 images.
//! let m = Model::denoising([1, 8, 8], 0.1).unwrap();
//! let x = vec![0.5; 64];
//! let y = m.forward(&x).unwrap();
//! assert_eq!(y, x);
//! let g = m.grad_log_likelihood(&y, &x).unwrap();
//! assert!(g.iter().all(|v| v.abs() < 1e-12));
//! ```

pub mod chain;
pub mod flux;
pub mod interferometry;
pub mod model;
pub mod noise;
pub mod ops;
pub mod spec;

pub use chain::Chain;
pub use flux::WithTotalFlux;
pub use model::Model;
pub use noise::{CorrelatedBlock, Likelihood, Noise, NoiseSpec};
/// The random-number trait of `simulate`, re-exported for macro expansions.
pub use rand::RngCore;
/// `#[forward_model]`, re-exported (see [`scoreprior_macros::forward_model`]).
pub use scoreprior_macros::forward_model;
pub use spec::{
    build_op, expand_preset, parse_chain, parse_model, parse_noise, EhtSettings, ParamValue, Preset, PrimitiveSpec,
};

use crate::{Error, Result};

/// The shape `[C, H, W]` of one image or one intermediate of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Channels (doubled for split complex data).
    pub c: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
}

impl Shape {
    /// `[c, h, w]`.
    pub const fn new(c: usize, h: usize, w: usize) -> Self {
        Shape { c, h, w }
    }
    /// A flat vector `[1, 1, m]`.
    pub const fn vector(m: usize) -> Self {
        Shape { c: 1, h: 1, w: m }
    }
    /// Number of values `C·H·W`.
    pub const fn len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Whether the shape holds no values.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// As an array `[c, h, w]`.
    pub const fn to_array(&self) -> [usize; 3] {
        [self.c, self.h, self.w]
    }
}

impl From<[usize; 3]> for Shape {
    fn from(a: [usize; 3]) -> Self {
        Shape::new(a[0], a[1], a[2])
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}, {}]", self.c, self.h, self.w)
    }
}

/// One primitive operator on one image: `A: R^{in} → R^{out}`.
///
/// Linear primitives implement [`Op::adjoint`] (`Aᵀ`), and their VJP is the adjoint applied
/// to the cotangent. Non-linear primitives return `false` from [`Op::is_linear`] and
/// implement [`Op::vjp`] (`J_A(x)ᵀ v`) instead. Slices have exactly the lengths of the
/// shapes; [`Chain`] checks them once per batch, so primitives do not.
pub trait Op: Send + Sync + std::fmt::Debug {
    /// A short description with parameters, e.g. `subsample(factor=2)`.
    fn describe(&self) -> String;
    /// Shape of the input.
    fn input_shape(&self) -> Shape;
    /// Shape of the output.
    fn output_shape(&self) -> Shape;
    /// Whether the output is split complex data, given whether the input is. Transforms into
    /// the Fourier domain return `true`, those back to real values `false`; the default keeps
    /// the input's kind. Complex Gaussian noise applies only to complex outputs.
    fn output_is_complex(&self, input_complex: bool) -> bool {
        input_complex
    }
    /// Whether `A` is linear (then `vjp(x, v) = adjoint(v)` for every `x`).
    fn is_linear(&self) -> bool {
        true
    }
    /// `y = A(x)`.
    fn apply(&self, x: &[f64], y: &mut [f64]);
    /// `x = Aᵀ y` (overwrites `x`). Non-linear primitives keep the default, an error.
    fn adjoint(&self, _y: &[f64], _x: &mut [f64]) -> Result<()> {
        Err(Error::unsupported(format!(
            "{} is non-linear: it has a vector-Jacobian product, not an adjoint",
            self.describe()
        )))
    }
    /// `out = J_A(x)ᵀ v` (overwrites `out`).
    fn vjp(&self, _x: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        self.adjoint(v, out)
    }
    /// Which outputs are measurements (`true`) and which are structural zeros that observe
    /// nothing (a mask's unobserved entries); `None` (the default) when all are observed.
    fn observed(&self) -> Option<Vec<bool>> {
        None
    }
    /// `y = A(x)` for a batch: `x` is `(n, in)`, `y` is `(n, out)`. The default runs
    /// [`Op::apply`] on the images in parallel; an operator that is one matrix product per
    /// batch ([`ops::Nudft`]) overrides it.
    fn apply_batch(&self, x: &[f64], y: &mut [f64]) {
        use rayon::prelude::*;
        let (d, m) = (self.input_shape().len(), self.output_shape().len());
        y.par_chunks_mut(m).zip(x.par_chunks(d)).for_each(|(yi, xi)| self.apply(xi, yi));
    }
    /// `x = Aᵀ y` for a batch `(n, out)` → `(n, in)`; default: [`Op::adjoint`] per row, in
    /// parallel.
    fn adjoint_batch(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        use rayon::prelude::*;
        let (d, m) = (self.input_shape().len(), self.output_shape().len());
        x.par_chunks_mut(d).zip(y.par_chunks(m)).try_for_each(|(xi, yi)| self.adjoint(yi, xi))
    }
    /// `out = J_A(x)ᵀ v` for a batch (`x`: `(n, in)`, `v`: `(n, out)`); default: the batched
    /// adjoint for linear primitives, [`Op::vjp`] per row in parallel otherwise.
    fn vjp_batch(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        use rayon::prelude::*;
        if self.is_linear() {
            return self.adjoint_batch(v, out);
        }
        let (d, m) = (self.input_shape().len(), self.output_shape().len());
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .zip(v.par_chunks(m))
            .try_for_each(|((oi, xi), vi)| self.vjp(xi, vi, oi))
    }
}

/// A batched measurement model with its likelihood.
///
/// `x` is `(n, D)`, `y` is `(n, M)` or `(M)` (broadcast over the batch); see the module
/// docs for layouts. Implemented by [`Model`] and by `#[forward_model]` structs.
pub trait ForwardModel: Send + Sync {
    /// `D`, the length of one flattened image.
    fn input_dim(&self) -> usize;
    /// `M`, the length of one measurement.
    fn output_dim(&self) -> usize;
    /// Whether the operator is linear (then [`ForwardModel::adjoint`] exists).
    fn is_linear(&self) -> bool;
    /// `A(x)` for every image: `(n, M)`.
    fn forward(&self, x: &[f64]) -> Result<Vec<f64>>;
    /// `Aᵀ y` for every row of `y`: `(n, D)`. An error for non-linear operators.
    fn adjoint(&self, y: &[f64]) -> Result<Vec<f64>>;
    /// `J_A(x_i)ᵀ v_i` for every image: `(n, D)`; `v` is `(n, M)` or `(M)`.
    fn vjp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>>;
    /// Number of real measurements per image that carry information: [`ForwardModel::output_dim`]
    /// less the structural zeros of a mask (the degrees of freedom of χ²).
    fn measurement_count(&self) -> usize {
        self.output_dim()
    }
    /// `log p(y | x_i)` per image, up to a constant independent of `x` (see module docs).
    fn log_likelihood(&self, y: &[f64], x: &[f64]) -> Result<Vec<f64>>;
    /// `∇x log p(y | x_i)` for every image: `(n, D)`.
    fn grad_log_likelihood(&self, y: &[f64], x: &[f64]) -> Result<Vec<f64>>;
    /// `χ²_i = Σ_k ρ_k / σ_k²` per image (so `log_likelihood = −χ²/2`).
    fn chi_squared(&self, y: &[f64], x: &[f64]) -> Result<Vec<f64>> {
        Ok(self.log_likelihood(y, x)?.into_iter().map(|l| -2.0 * l).collect())
    }
    /// Draws `y_i = A(x_i) + n_i` for every image: `(n, M)`.
    fn simulate(&self, x: &[f64], rng: &mut dyn rand::RngCore) -> Result<Vec<f64>>;

    /// `Some(σ)` when the model is plain Gaussian denoising, `y = x + N(0, σ² I)`, the case in
    /// which a prior's posterior mean has closed-form yardsticks (Wiener under a Gaussian,
    /// Tweedie under a score model). `None` (the default) for everything else.
    fn denoising_sigma(&self) -> Option<f64> {
        None
    }

    /// [`ForwardModel::forward`] on `f32` data.
    fn forward_f32(&self, x: &[f32]) -> Result<Vec<f32>> {
        Ok(to_f32(self.forward(&to_f64(x))?))
    }
    /// [`ForwardModel::adjoint`] on `f32` data.
    fn adjoint_f32(&self, y: &[f32]) -> Result<Vec<f32>> {
        Ok(to_f32(self.adjoint(&to_f64(y))?))
    }
    /// [`ForwardModel::vjp`] on `f32` data.
    fn vjp_f32(&self, x: &[f32], v: &[f32]) -> Result<Vec<f32>> {
        Ok(to_f32(self.vjp(&to_f64(x), &to_f64(v))?))
    }
    /// [`ForwardModel::log_likelihood`] on `f32` data.
    fn log_likelihood_f32(&self, y: &[f32], x: &[f32]) -> Result<Vec<f32>> {
        Ok(to_f32(self.log_likelihood(&to_f64(y), &to_f64(x))?))
    }
    /// [`ForwardModel::grad_log_likelihood`] on `f32` data.
    fn grad_log_likelihood_f32(&self, y: &[f32], x: &[f32]) -> Result<Vec<f32>> {
        Ok(to_f32(self.grad_log_likelihood(&to_f64(y), &to_f64(x))?))
    }
    /// [`ForwardModel::simulate`] on `f32` data.
    fn simulate_f32(&self, x: &[f32], rng: &mut dyn rand::RngCore) -> Result<Vec<f32>> {
        Ok(to_f32(self.simulate(&to_f64(x), rng)?))
    }
}

/// A forward model whose input is `C × H × W` images, known at compile time.
/// `#[forward_model]` implements it from its `input = [C, H, W]`; typed experiments
/// (`scoreprior::experiment::Experiment::typed`) require the prior's shape to be the same
/// `C, H, W`, so pairing a 16×16 prior with a 32×32 operator does not compile.
///
/// ```
/// use scoreprior_core::forward::{forward_model, InputShape};
/// #[forward_model(input = [1, 8, 8], ops = [identity], noise = gaussian(sigma = 0.1))]
/// struct Denoise;
/// fn takes_8x8<F: InputShape<1, 8, 8>>(_: &F) {}
/// takes_8x8(&Denoise);
/// ```
pub trait InputShape<const C: usize, const H: usize, const W: usize>: ForwardModel {}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
}
fn to_f32(v: Vec<f64>) -> Vec<f32> {
    v.into_iter().map(|a| a as f32).collect()
}

/// Number of rows of a batch `(n, d)`, or a shape error naming `what`.
pub(crate) fn batch_rows(v: &[f64], d: usize, what: &str) -> Result<usize> {
    if d == 0 || v.is_empty() || !v.len().is_multiple_of(d) {
        return Err(Error::shape(what, format!("(n, {d}) with n ≥ 1"), format!("{} values", v.len())));
    }
    Ok(v.len() / d)
}

/// Rows of `y` for a batch of `n` images: `(n, m)` or a single `(m)` repeated.
pub(crate) fn broadcast_rows<'a>(y: &'a [f64], n: usize, m: usize, what: &str) -> Result<Vec<&'a [f64]>> {
    if y.len() == m {
        Ok(vec![y; n])
    } else if y.len() == n * m {
        Ok(y.chunks(m).collect())
    } else {
        Err(Error::shape(what, format!("({n}, {m}) or ({m})"), format!("{} values", y.len())))
    }
}
