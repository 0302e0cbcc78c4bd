//! The 2-D problem of the baseline samplers' tests: a Gaussian prior `N(MU, COV)` and one
//! measurement `y = a·x + n` (or `(a·x)² + n`), whose posterior is known in closed form for
//! the linear model: `Σ_post = (Σ⁻¹ + aaᵀ/σ²)⁻¹`, `μ_post = Σ_post (Σ⁻¹μ + a y/σ²)`.

use std::sync::atomic::{AtomicUsize, Ordering};

use scoreprior_core::forward::ForwardModel;
use scoreprior_core::score::Gaussian;
use scoreprior_core::sde::{AnySde, VpSde};
use scoreprior_core::{Error, Result};

/// `y = a·x + n` (`square`: `y = (a·x)² + n`), one measurement of a 2-D `x`, noise σ; counts
/// its calls (forward and likelihood gradients), so a test can check none happened.
pub struct Dot {
    pub a: [f64; 2],
    pub sigma: f64,
    pub square: bool,
    pub calls: AtomicUsize,
}

impl Dot {
    pub fn new(a: [f64; 2], sigma: f64, square: bool) -> Self {
        Self { a, sigma, square, calls: AtomicUsize::new(0) }
    }
    pub fn ax(&self, v: &[f64]) -> f64 {
        self.a[0] * v[0] + self.a[1] * v[1]
    }
    pub fn map(&self, v: &[f64]) -> f64 {
        let z = self.ax(v);
        if self.square {
            z * z
        } else {
            z
        }
    }
}

impl ForwardModel for Dot {
    fn input_dim(&self) -> usize {
        2
    }
    fn output_dim(&self) -> usize {
        1
    }
    fn is_linear(&self) -> bool {
        !self.square
    }
    fn forward(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(x.chunks(2).map(|v| self.map(v)).collect())
    }
    fn adjoint(&self, y: &[f64]) -> Result<Vec<f64>> {
        if self.square {
            return Err(Error::unsupported("no adjoint of a non-linear model"));
        }
        Ok(y.iter().flat_map(|v| [self.a[0] * v, self.a[1] * v]).collect())
    }
    fn vjp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        Ok(x.chunks(2)
            .enumerate()
            .flat_map(|(i, xi)| {
                let dz = if self.square { 2.0 * self.ax(xi) } else { 1.0 };
                let w = v[i % v.len()] * dz;
                [self.a[0] * w, self.a[1] * w]
            })
            .collect())
    }
    fn log_likelihood(&self, y: &[f64], x: &[f64]) -> Result<Vec<f64>> {
        Ok(x.chunks(2).map(|v| -0.5 * ((y[0] - self.map(v)) / self.sigma).powi(2)).collect())
    }
    fn grad_log_likelihood(&self, y: &[f64], x: &[f64]) -> Result<Vec<f64>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let r: Vec<f64> = x.chunks(2).map(|v| (y[0] - self.map(v)) / (self.sigma * self.sigma)).collect();
        self.vjp(x, &r)
    }
    fn simulate(&self, x: &[f64], _rng: &mut dyn rand::RngCore) -> Result<Vec<f64>> {
        self.forward(x)
    }
}

/// The prior's mean.
pub const MU: [f64; 2] = [0.3, -0.2];
/// The prior's covariance (row-major 2×2).
pub const COV: [f64; 4] = [0.09, 0.03, 0.03, 0.04];

/// The closed-form posterior mean and covariance of the linear model.
pub fn posterior(f: &Dot, y: f64) -> ([f64; 2], [f64; 4]) {
    let det = COV[0] * COV[3] - COV[1] * COV[2];
    let p = [COV[3] / det, -COV[1] / det, -COV[2] / det, COV[0] / det];
    let s2 = f.sigma * f.sigma;
    let q = [
        p[0] + f.a[0] * f.a[0] / s2,
        p[1] + f.a[0] * f.a[1] / s2,
        p[2] + f.a[1] * f.a[0] / s2,
        p[3] + f.a[1] * f.a[1] / s2,
    ];
    let dq = q[0] * q[3] - q[1] * q[2];
    let c = [q[3] / dq, -q[1] / dq, -q[2] / dq, q[0] / dq];
    let b = [p[0] * MU[0] + p[1] * MU[1] + f.a[0] * y / s2, p[2] * MU[0] + p[3] * MU[1] + f.a[1] * y / s2];
    ([c[0] * b[0] + c[1] * b[1], c[2] * b[0] + c[3] * b[1]], c)
}

/// Sample mean and covariance of row-major 2-D samples.
pub fn moments(x: &[f64]) -> ([f64; 2], [f64; 4]) {
    let n = (x.len() / 2) as f64;
    let m = [x.iter().step_by(2).sum::<f64>() / n, x.iter().skip(1).step_by(2).sum::<f64>() / n];
    let mut c = [0.0; 4];
    for v in x.chunks(2) {
        let (a, b) = (v[0] - m[0], v[1] - m[1]);
        c[0] += a * a / n;
        c[1] += a * b / n;
        c[3] += b * b / n;
    }
    c[2] = c[1];
    (m, c)
}

/// (largest mean error in posterior std, largest relative variance error, correlation error).
pub fn errors(x: &[f64], pm: [f64; 2], pc: [f64; 4]) -> (f64, f64, f64) {
    let (m, c) = moments(x);
    let mean = ((m[0] - pm[0]) / pc[0].sqrt()).abs().max(((m[1] - pm[1]) / pc[3].sqrt()).abs());
    let var = (c[0] / pc[0] - 1.0).abs().max((c[3] / pc[3] - 1.0).abs());
    let corr = (c[1] / (c[0] * c[3]).sqrt() - pc[1] / (pc[0] * pc[3]).sqrt()).abs();
    (mean, var, corr)
}

/// Checks samples `x` against the closed-form posterior `(pm, pc)`: prints [`errors`] under
/// `label` and asserts each below its bound `[mean (posterior sd), variance, correlation]`.
pub fn assert_posterior_moments(label: &str, x: &[f64], pm: [f64; 2], pc: [f64; 4], bounds: [f64; 3]) {
    let (mean, var, corr) = errors(x, pm, pc);
    eprintln!("{label}: mean error {mean:.3} sd, variance error {var:.3}, correlation error {corr:.3}");
    assert!(mean < bounds[0], "{label}: mean error {mean} posterior sd");
    assert!(var < bounds[1], "{label}: relative variance error {var}");
    assert!(corr < bounds[2], "{label}: correlation error {corr}");
}

/// The prior under `sde`, the measurement `y = x₁ + 0.5 x₂ + n` (σ = 0.1) and `y = 0.45`.
pub fn setup(sde: AnySde) -> (Gaussian, Dot, Vec<f64>) {
    (Gaussian::new(MU.to_vec(), &COV, sde).unwrap(), Dot::new([1.0, 0.5], 0.1, false), vec![0.45])
}

/// [`setup`] under the default VP SDE, returned too (the samplers take it).
pub fn setup_vp() -> (Gaussian, AnySde, Dot, Vec<f64>) {
    let sde = AnySde::Vp(VpSde::default());
    let (g, f, y) = setup(sde);
    (g, sde, f, y)
}
