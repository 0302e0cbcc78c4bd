//! The probability-flow ODE `dx/dt = f̃(x,t) = a(t) x − ½ g(t)² s(x,t)` and its augmented form
//! `d(x, Δ)/dt = (f̃, div f̃)`, `div f̃ = D a(t) − ½ g(t)² tr ∂s/∂x`, so that integrating forward
//! from `t0` to `T` gives `log p_{t0}(x) = log p_T(x_T) + Δ(T)`.
//!
//! The whole batch is one ODE state (`n·D` image values plus `n` log-density increments), as in
//! the reference code: one step size for all images, so an image's result depends, within the
//! tolerances, on its batch-mates; batching keeps every model call a single large batch.

use crate::divergence::{Divergence, DivergencePlan};
use crate::ode::{solve, ExplicitRk, Solution, SolveOptions, State, Stats, StepSizeController, Unnormed, VectorField};
use crate::score::{check_batch, ScoreModel};
use crate::sde::Sde;
use crate::{Error, Result};

/// The log-density component of the augmented state: a plain `Vec<f64>` (counted by the
/// error norm) or [`Unnormed`]`<Vec<f64>>` (left out of it).
pub trait LogpComponent: State {
    /// The `n` values.
    fn values(&self) -> &[f64];
    /// The `n` values, mutably.
    fn values_mut(&mut self) -> &mut [f64];
    /// Wraps `n` values.
    fn from_values(v: Vec<f64>) -> Self;
}

impl LogpComponent for Vec<f64> {
    fn values(&self) -> &[f64] {
        self
    }
    fn values_mut(&mut self) -> &mut [f64] {
        self
    }
    fn from_values(v: Vec<f64>) -> Self {
        v
    }
}

impl LogpComponent for Unnormed<Vec<f64>> {
    fn values(&self) -> &[f64] {
        &self.0
    }
    fn values_mut(&mut self) -> &mut [f64] {
        &mut self.0
    }
    fn from_values(v: Vec<f64>) -> Self {
        Unnormed(v)
    }
}

/// The probability-flow vector field of a score model under an SDE, with a divergence
/// estimator whose probes are fixed at construction (one solve).
///
/// As a [`VectorField`] on `(x, Δ)` it is the augmented system; [`Drift`] is the plain
/// `dx/dt = f̃` (sampling, the adjoint's re-integration).
///
/// ```
/// use scoreprior_core::divergence::Divergence;
/// use scoreprior_core::pf_ode::ProbabilityFlow;
/// use scoreprior_core::score::Gaussian;
/// use scoreprior_core::sde::{AnySde, Sde, VpSde};
/// let sde = AnySde::Vp(VpSde::default());
/// let g = Gaussian::diagonal(vec![0.0; 3], &[1.0; 3], sde).unwrap();
/// let mut pf = ProbabilityFlow::new(&g, &sde, &Divergence::ExactTrace).unwrap();
/// let (mut dx, mut div) = (vec![0.0; 3], vec![0.0; 1]);
/// pf.drift_and_divergence(&[1.0, 2.0, 3.0], 0.5, &mut dx, &mut div).unwrap();
/// // N(0, I) is stationary under VP: s = −x, so f̃ = −½β(x − x) = 0.
/// assert!(dx.iter().all(|v| v.abs() < 1e-12) && div[0].abs() < 1e-12);
/// ```
pub struct ProbabilityFlow<'a> {
    model: &'a dyn ScoreModel,
    sde: &'a dyn Sde,
    plan: DivergencePlan,
    d: usize,
    score: Vec<f64>,
    trace: Vec<f64>,
}

impl<'a> ProbabilityFlow<'a> {
    /// The field of `model` under `sde`; draws the estimator's probes now.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for a model of dimension 0 or zero probes.
    pub fn new(model: &'a dyn ScoreModel, sde: &'a dyn Sde, divergence: &Divergence) -> Result<Self> {
        let d = model.dim();
        let plan = divergence.plan(d)?;
        Ok(Self { model, sde, plan, d, score: Vec::new(), trace: Vec::new() })
    }

    /// Same, with an existing plan (to share probes with an adjoint solve).
    pub fn with_plan(model: &'a dyn ScoreModel, sde: &'a dyn Sde, plan: DivergencePlan) -> Self {
        Self { model, sde, plan, d: model.dim(), score: Vec::new(), trace: Vec::new() }
    }

    /// The divergence plan (probes) used by this field.
    pub fn plan(&self) -> &DivergencePlan {
        &self.plan
    }

    /// `dx = f̃(x, t)` for a batch.
    ///
    /// # Errors
    /// Shape mismatch and the model's errors.
    pub fn drift(&mut self, x: &[f64], t: f64, dx: &mut [f64]) -> Result<()> {
        check_batch(x, self.d, "x")?;
        if dx.len() != x.len() {
            return Err(Error::shape("drift output", x.len(), dx.len()));
        }
        self.model.score(x, t, dx)?;
        self.sde.pf_drift(x, t, dx);
        Ok(())
    }

    /// `dx = f̃(x, t)` and `div[i] = div f̃(x_i, t)` (exact or estimated).
    ///
    /// # Errors
    /// Shape mismatch and the model's errors.
    pub fn drift_and_divergence(&mut self, x: &[f64], t: f64, dx: &mut [f64], div: &mut [f64]) -> Result<()> {
        let n = check_batch(x, self.d, "x")?;
        if dx.len() != x.len() || div.len() != n {
            return Err(Error::shape(
                "drift/divergence outputs",
                format!("{} and {n}", x.len()),
                format!("{} and {}", dx.len(), div.len()),
            ));
        }
        self.score.resize(x.len(), 0.0);
        self.trace.resize(n, 0.0);
        self.plan.score_and_trace(self.model, x, t, &mut self.score, &mut self.trace)?;
        dx.copy_from_slice(&self.score);
        self.sde.pf_drift(x, t, dx);
        // div f̃ = D·a(t) − ½ g(t)² tr ∂s/∂x.
        let (a, h) = (self.sde.drift_coef(t), -0.5 * self.sde.diffusion(t).powi(2));
        for (o, tr) in div.iter_mut().zip(&self.trace) {
            *o = self.d as f64 * a + h * tr;
        }
        Ok(())
    }
}

impl<L: LogpComponent> VectorField<(Vec<f64>, L)> for ProbabilityFlow<'_> {
    fn eval(&mut self, t: f64, y: &(Vec<f64>, L), dy: &mut (Vec<f64>, L)) -> Result<()> {
        self.drift_and_divergence(&y.0, t, &mut dy.0, dy.1.values_mut())
    }
}

/// The plain probability-flow ODE `dx/dt = f̃(x, t)` (no log-density).
pub struct Drift<'a>(pub ProbabilityFlow<'a>);

impl VectorField<Vec<f64>> for Drift<'_> {
    fn eval(&mut self, t: f64, y: &Vec<f64>, dy: &mut Vec<f64>) -> Result<()> {
        self.0.drift(y, t, dy)
    }
}

/// The result of the forward probability-flow solve.
#[derive(Debug, Clone)]
pub struct FlowSolution {
    /// `x_{t1}`, `(n, D)`.
    pub x_end: Vec<f64>,
    /// `Δ_i = ∫_{t0}^{t1} div f̃ dt` per image.
    pub delta_logp: Vec<f64>,
    /// Solver statistics.
    pub stats: Stats,
    /// With `opts.saveat.steps`: the times the solve stepped onto, from `t0` to `t1` (the
    /// accepted steps' ends), for an adjoint solve that reuses the grid
    /// ([`crate::ode::StepTo`]); empty otherwise.
    pub step_times: Vec<f64>,
    /// With `opts.saveat.steps`: `x` at each of `step_times` (`(n, D)` each); empty otherwise.
    pub step_x: Vec<Vec<f64>>,
}

/// Solves the augmented ODE from `(x, 0)` at `t0` to `t1` with the given field (its probes
/// fixed), solver and controller. With `norm_logp` the `Δ` components take part in the error
/// norm (as in the reference code, whose controller uses the plain RMS norm over the whole
/// state); without, they are integrated at the accuracy the image components dictate (cheaper,
/// but the error of `Δ` is then uncontrolled).
///
/// # Errors
/// Input errors, the model's errors and the integrator's ([`Error::MaxStepsExceeded`] …).
#[allow(clippy::too_many_arguments)]
pub fn integrate_flow<C: StepSizeController + ?Sized>(
    field: &mut ProbabilityFlow<'_>,
    solver: &dyn ExplicitRk,
    controller: &mut C,
    t0: f64,
    t1: f64,
    x: &[f64],
    opts: &SolveOptions,
    norm_logp: bool,
) -> Result<FlowSolution> {
    let n = check_batch(x, field.d, "x")?;
    if !x.iter().all(|v| v.is_finite()) {
        return Err(Error::NonFinite { what: "input x", t: t0 });
    }
    // The two states differ only in whether `Δ` enters the error norm.
    let zeros = vec![0.0; n];
    if norm_logp {
        let y0 = (x.to_vec(), Vec::<f64>::from_values(zeros));
        Ok(flow_solution(solve(field, solver, controller, t0, t1, &y0, opts)?, t0, x, opts))
    } else {
        let y0 = (x.to_vec(), Unnormed::<Vec<f64>>::from_values(zeros));
        Ok(flow_solution(solve(field, solver, controller, t0, t1, &y0, opts)?, t0, x, opts))
    }
}

/// The [`FlowSolution`] of a forward solve from `x` at `t0`, with the grid of its steps when
/// `opts.saveat.steps` asked for it.
fn flow_solution<L: LogpComponent>(
    sol: Solution<(Vec<f64>, L)>,
    t0: f64,
    x: &[f64],
    opts: &SolveOptions,
) -> FlowSolution {
    let (mut step_times, mut step_x) = (Vec::new(), Vec::new());
    if opts.saveat.steps {
        step_times.push(t0);
        step_x.push(x.to_vec());
        for (t, y) in sol.ts.iter().zip(sol.ys) {
            // With output times, a time can be recorded twice (step end and output).
            if step_times.last() != Some(t) {
                step_times.push(*t);
                step_x.push(y.0);
            }
        }
    }
    let (x_end, l) = sol.y;
    FlowSolution { x_end, delta_logp: l.values().to_vec(), stats: sol.stats, step_times, step_x }
}
