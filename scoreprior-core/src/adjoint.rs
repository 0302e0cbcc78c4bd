//! Continuous adjoint ("backsolve") of the probability-flow log-density. For
//! `L = log p_T(x_T) + Δ(T)` with `dx/dt = f̃`, `dΔ/dt = div f̃`, the adjoint `a(t) = ∂L/∂x(t)`
//! (with `∂L/∂Δ ≡ 1`) obeys `da/dt = −aᵀ ∂f̃/∂x − ∇x div f̃`, `a(T) = ∇ log p_T(x_T)`, and
//! `a(t0) = ∇x log p_{t0}(x)`. With `f̃ = a_c(t) x − ½g² s`: `da/dt = −a_c a + ½g² (aᵀ∂s/∂x + ∇x tr ∂s/∂x)`.
//!
//! `x(t)` is not stored by the forward solve: the backward solve re-integrates it from `x_T`
//! together with `a` (state `(x, a)`, both in the error norm as diffrax's
//! `adjoint_rms_seminorm`, which only drops parameter adjoints — there are none here). The
//! trace gradient uses the forward solve's estimator with the same probes.

use crate::divergence::DivergencePlan;
use crate::ode::{solve, ExplicitRk, SolveOptions, Stats, StepSizeController, VectorField};
use crate::score::{check_batch, ScoreModel};
use crate::sde::Sde;
use crate::{Error, Result};

/// The augmented backward field on `(x, a)`.
pub struct AdjointField<'a> {
    model: &'a dyn ScoreModel,
    sde: &'a dyn Sde,
    plan: DivergencePlan,
}

impl<'a> AdjointField<'a> {
    /// The adjoint field of `model` under `sde`; `plan` must be the forward solve's (same probes).
    pub fn new(model: &'a dyn ScoreModel, sde: &'a dyn Sde, plan: DivergencePlan) -> Self {
        Self { model, sde, plan }
    }

    /// `dx = f̃(x,t)`, `da = −a_c(t) a + ½ g(t)² (aᵀ ∂s/∂x + ∇x tr ∂s/∂x)` for a batch.
    ///
    /// # Errors
    /// Shape mismatch and the model's errors.
    pub fn eval_parts(&mut self, x: &[f64], a: &[f64], t: f64, dx: &mut [f64], da: &mut [f64]) -> Result<()> {
        check_batch(x, self.model.dim(), "x")?;
        if a.len() != x.len() || dx.len() != x.len() || da.len() != x.len() {
            return Err(Error::shape("adjoint state", x.len(), format!("{}, {}, {}", a.len(), dx.len(), da.len())));
        }
        // s (into dx) and aᵀ∂s/∂x + ∇x tr ∂s/∂x (into da), in one model call with probes.
        self.plan.adjoint_terms(self.model, x, t, a, dx, da)?;
        self.sde.pf_drift(x, t, dx);
        let ac = self.sde.drift_coef(t);
        let h = 0.5 * self.sde.diffusion(t).powi(2);
        for (o, av) in da.iter_mut().zip(a) {
            *o = -ac * av + h * *o;
        }
        Ok(())
    }
}

impl VectorField<(Vec<f64>, Vec<f64>)> for AdjointField<'_> {
    fn eval(&mut self, t: f64, y: &(Vec<f64>, Vec<f64>), dy: &mut (Vec<f64>, Vec<f64>)) -> Result<()> {
        let (dx, da) = (&mut dy.0, &mut dy.1);
        self.eval_parts(&y.0, &y.1, t, dx, da)
    }
}

/// The result of a backward adjoint solve.
#[derive(Debug, Clone)]
pub struct AdjointSolution {
    /// `a(t0) = ∇x log p_{t0}(x)`, `(n, D)`.
    pub grad: Vec<f64>,
    /// `x(t0)` as re-integrated backwards (compare with the input to gauge the error).
    pub x_start: Vec<f64>,
    /// Solver statistics of the backward solve.
    pub stats: Stats,
}

/// Solves the adjoint system from `(x_T, a_T)` at `t1` back to `t0`.
///
/// # Errors
/// Shape mismatch, non-finite inputs, the model's and the integrator's errors.
#[allow(clippy::too_many_arguments)]
pub fn backsolve<C: StepSizeController + ?Sized>(
    field: &mut AdjointField<'_>,
    solver: &dyn ExplicitRk,
    controller: &mut C,
    t1: f64,
    t0: f64,
    x_end: &[f64],
    a_end: &[f64],
    opts: &SolveOptions,
) -> Result<AdjointSolution> {
    check_batch(x_end, field.model.dim(), "x_T")?;
    if a_end.len() != x_end.len() {
        return Err(Error::shape("a(T)", x_end.len(), a_end.len()));
    }
    let y0 = (x_end.to_vec(), a_end.to_vec());
    let sol = solve(field, solver, controller, t1, t0, &y0, opts)?;
    let (x_start, grad) = sol.y;
    Ok(AdjointSolution { grad, x_start, stats: sol.stats })
}
