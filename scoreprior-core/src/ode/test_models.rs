//! Test problems with closed-form solutions, shared by tests and benches.
//!
//! [`LinearSystem`]: `y' = A y` with `A` block-diagonal of 2×2 damped rotations
//! `[[−λ, ω], [−ω, −λ]]`, so `y(t) = exp(tA) y0` is `e^{−λt}` times a rotation by `ωt` in each
//! block. The dense right-hand side (a full matvec with the zero blocks included) keeps
//! the cost of one evaluation that of a general `D×D` linear system.

/// `y' = A y` with a known matrix exponential.
#[derive(Debug, Clone)]
pub struct LinearSystem {
    /// `(λ, ω)` of each 2×2 block.
    pub blocks: Vec<(f64, f64)>,
    /// The dense `D×D` matrix, row-major.
    pub matrix: Vec<f64>,
}

impl LinearSystem {
    /// `dim / 2` blocks with damping and frequency spread over `[0.1, 1]` and `[0.5, 2]`.
    pub fn new(dim: usize) -> Self {
        assert!(dim >= 2 && dim % 2 == 0, "dimension must be even");
        let nb = dim / 2;
        let blocks: Vec<(f64, f64)> = (0..nb)
            .map(|i| {
                let s = if nb == 1 { 0.5 } else { i as f64 / (nb - 1) as f64 };
                (0.1 + 0.9 * s, 0.5 + 1.5 * (1.0 - s))
            })
            .collect();
        let mut matrix = vec![0.0; dim * dim];
        for (b, &(l, w)) in blocks.iter().enumerate() {
            let i = 2 * b;
            matrix[i * dim + i] = -l;
            matrix[i * dim + i + 1] = w;
            matrix[(i + 1) * dim + i] = -w;
            matrix[(i + 1) * dim + i + 1] = -l;
        }
        Self { blocks, matrix }
    }

    /// Dimension `D`.
    pub fn dim(&self) -> usize {
        2 * self.blocks.len()
    }

    /// `dy = A y` as a dense matvec (f64 or f32 states).
    pub fn rhs<T: super::Real>(&self, y: &[T], dy: &mut [T]) {
        let d = self.dim();
        for (i, out) in dy.iter_mut().enumerate() {
            let row = &self.matrix[i * d..(i + 1) * d];
            let mut acc = T::zero();
            for (a, v) in row.iter().zip(y) {
                acc = acc + T::of(*a) * *v;
            }
            *out = acc;
        }
    }

    /// The exact solution `exp(tA) y0`.
    pub fn exact(&self, t: f64, y0: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; y0.len()];
        for (b, &(l, w)) in self.blocks.iter().enumerate() {
            let (y1, y2) = (y0[2 * b], y0[2 * b + 1]);
            let decay = (-l * t).exp();
            let (s, c) = (w * t).sin_cos();
            out[2 * b] = decay * (c * y1 + s * y2);
            out[2 * b + 1] = decay * (-s * y1 + c * y2);
        }
        out
    }

    /// A fixed initial state with entries in `[−1, 1]`.
    pub fn initial_state(&self) -> Vec<f64> {
        (0..self.dim()).map(|i| ((i as f64) * 0.7 + 0.3).sin()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_solution_satisfies_the_ode() {
        let sys = LinearSystem::new(6);
        let y0 = sys.initial_state();
        let h = 1e-6;
        let (yp, ym) = (sys.exact(0.7 + h, &y0), sys.exact(0.7 - h, &y0));
        let y = sys.exact(0.7, &y0);
        let mut dy = vec![0.0; 6];
        sys.rhs(&y, &mut dy);
        for i in 0..6 {
            assert!(((yp[i] - ym[i]) / (2.0 * h) - dy[i]).abs() < 1e-8);
        }
    }
}
