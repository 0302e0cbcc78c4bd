//! SDE+Proj (Song et al., ICLR 2022): reverse-SDE Euler–Maruyama from `T` to `t_min`; after
//! each step the iterate is pulled towards the measurement's affine set at the current noise
//! level, `x ← x + λ A⁺(ŷ_t − A x)` with the noisy measurement `ŷ_t = α_t y + σ_t A z'`.
//!
//! `A⁺ r` is the minimum-norm least-squares solution of `A x = r`, by conjugate gradients on
//! the normal equations (CGLS, at most [`SdeProj::cg_iterations`]) using only `A` and `Aᵀ`, so any
//! linear forward model works without forming a matrix; `λ = 1` is the hard projection.

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

use super::{PosteriorSampler, Problem};
use crate::forward::ForwardModel;
use crate::sde::Sde;
use crate::{Error, Result};

/// Settings of SDE+Proj; [`SdeProj::new`] is 1000 steps (the paper's), `λ = 1`, 20 CG
/// iterations, `t_min = 1e-3`.
///
/// ```
/// use rand::SeedableRng;
/// use scoreprior_core::baselines::SdeProj;
/// use scoreprior_core::forward::Model;
/// use scoreprior_core::score::Gaussian;
/// use scoreprior_core::sde::{AnySde, VpSde};
/// let sde = AnySde::Vp(VpSde::default());
/// let prior = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], sde).unwrap();
/// let denoise = Model::denoising([1, 1, 2], 0.5).unwrap();
/// let proj = SdeProj { steps: 50, lambda: 0.5, ..SdeProj::new() };
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let x = proj.sample(&prior, &sde, &denoise, &[1.0, -1.0], 8, &mut rng).unwrap();
/// assert_eq!(x.len(), 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SdeProj {
    /// Reverse-SDE steps `N ≥ 1` (uniform in `t`).
    pub steps: usize,
    /// Consistency weight `λ ∈ [0, 1]`.
    pub lambda: f64,
    /// Conjugate-gradient iterations of each `A⁺` (exact after `rank(A)` in exact arithmetic).
    pub cg_iterations: usize,
    /// Last time `t_min`.
    pub t_min: f64,
}

impl Default for SdeProj {
    fn default() -> Self {
        Self::new()
    }
}

impl SdeProj {
    /// 1000 steps, `λ = 1`, 20 CG iterations, `t_min = 1e-3`.
    pub fn new() -> Self {
        Self { steps: 1000, lambda: 1.0, cg_iterations: 20, t_min: 1e-3 }
    }

    /// Checks the settings against `sde` (also done by [`SdeProj::sample`]).
    ///
    /// # Errors
    /// Zero steps or CG iterations, `λ` outside `[0, 1]`, `t_min` outside `(0, T)`.
    pub fn validate(&self, sde: &dyn Sde) -> Result<()> {
        for (what, n) in [("SDE+Proj steps", self.steps), ("SDE+Proj CG iterations", self.cg_iterations)] {
            if n == 0 {
                return Err(Error::count_out_of_range(what, n, "at least 1"));
            }
        }
        if !(0.0..=1.0).contains(&self.lambda) {
            return Err(Error::out_of_range("SDE+Proj lambda", self.lambda, "in [0, 1]"));
        }
        super::check_t_min("SDE+Proj", self.t_min, sde)
    }

    /// `A⁺ r`, the minimum-norm least-squares solution of `A x = r`, by CGLS (conjugate
    /// gradients on `AᵀA x = Aᵀ r` from `x = 0`, one `A` and one `Aᵀ` per iteration). Chosen
    /// over CG on `(AAᵀ) w = r` because `AAᵀ` is singular for operators with dependent rows —
    /// the real and imaginary parts of a real image's low-pass DFT are — and CG on a singular,
    /// inconsistent system divides by a vanishing curvature and blows up; CGLS only ever works
    /// in the range of `Aᵀ`.
    fn min_norm_solution(&self, forward: &dyn ForwardModel, r: &[f64]) -> Result<Vec<f64>> {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>();
        let mut s = r.to_vec();
        let mut g = forward.adjoint(&s)?;
        let mut x = vec![0.0; g.len()];
        let mut p = g.clone();
        let mut gamma = dot(&g, &g);
        let tol = 1e-24 * gamma;
        for _ in 0..self.cg_iterations {
            if gamma <= tol || gamma == 0.0 {
                break;
            }
            let q = forward.forward(&p)?;
            let qq = dot(&q, &q);
            if qq <= 0.0 {
                break;
            }
            let alpha = gamma / qq;
            x.iter_mut().zip(&p).for_each(|(xi, pi)| *xi += alpha * pi);
            s.iter_mut().zip(&q).for_each(|(si, qi)| *si -= alpha * qi);
            g = forward.adjoint(&s)?;
            let gamma_new = dot(&g, &g);
            let beta = gamma_new / gamma;
            p.iter_mut().zip(&g).for_each(|(pi, gi)| *pi = gi + beta * *pi);
            gamma = gamma_new;
        }
        Ok(x)
    }
}

impl PosteriorSampler for SdeProj {
    super::sampler_basics!("SDE+Proj", steps);

    /// A non-linear forward model is unsupported: there is no affine set to project onto.
    fn check_forward(&self, forward: &dyn ForwardModel) -> Result<()> {
        if forward.is_linear() {
            Ok(())
        } else {
            Err(Error::unsupported("SDE+Proj projects onto {x : Ax = y} and needs a linear forward model"))
        }
    }

    fn run(&self, problem: &Problem<'_>, rng: &mut dyn RngCore) -> Result<Vec<f64>> {
        let &Problem { model, sde, forward, y, n, d, dt, .. } = problem;
        let m = forward.output_dim();
        let mut x = problem.prior_sample(rng);
        let mut s = vec![0.0; n * d];
        for i in 0..self.steps {
            let t = problem.time(i);
            model.score(&x, t, &mut s)?;
            let (a, g2) = (sde.drift_coef(t), sde.diffusion(t).powi(2));
            let noise = problem.noise(i, g2);
            for (xv, sv) in x.iter_mut().zip(&s) {
                let z: f64 = rng.sample(StandardNormal);
                *xv += dt * (-a * *xv + g2 * sv) + noise * z;
            }
            // The measurement at the new time's noise level, then the (relaxed) projection.
            let t_next = t - dt;
            let (alpha, sigma) = (sde.marginal_mean_coef(t_next), sde.marginal_std(t_next));
            for k in 0..n {
                let xk = &mut x[k * d..(k + 1) * d];
                let zp: Vec<f64> = (0..d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
                let az = forward.forward(&zp)?;
                let ax = forward.forward(xk)?;
                let r: Vec<f64> = (0..m).map(|j| alpha * y[j] + sigma * az[j] - ax[j]).collect();
                let dx = self.min_norm_solution(forward, &r)?;
                for (xv, dv) in xk.iter_mut().zip(&dx) {
                    *xv += self.lambda * dv;
                }
            }
            if x.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite { what: "SDE+Proj iterate", t });
            }
        }
        Ok(x)
    }
}
