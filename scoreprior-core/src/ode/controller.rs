//! Step-size control. [`ConstantStepSize`] takes fixed steps, [`StepTo`] steps onto given
//! times; [`PidController`] accepts a
//! step when `‖e‖ = rms(e / (atol + rtol·max(|y0|,|y1|))) ≤ 1` and proposes
//! `dt·clip(safety · ‖e‖^(−β1) ‖e_prev‖^(−β2) ‖e_prev2‖^(−β3), factormin, factormax)`.
//! [`Controller`] is either of the first and last, chosen at run time (the probability-flow
//! solves' setting).

use crate::{Error, Result};

/// The controller's verdict on one attempted step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDecision {
    /// Whether the step is kept.
    pub accept: bool,
    /// The magnitude of the next step to try (always positive).
    pub next_dt: f64,
}

/// Chooses step sizes. `dt` values passed in and out are magnitudes; the integrator
/// applies the direction of integration.
pub trait StepSizeController {
    /// Whether steps are adapted to an error estimate (needs an embedded tableau).
    fn is_adaptive(&self) -> bool;
    /// `(rtol, atol)` used for the error norm and the automatic initial step.
    fn tolerances(&self) -> (f64, f64);
    /// Resets the controller's memory before a new solve.
    fn reset(&mut self);
    /// The first step size when the user gives none (`None` = compute one automatically).
    fn first_dt(&self) -> Option<f64>;
    /// Clamps a proposed step to the controller's `[dtmin, dtmax]` range.
    fn clamp(&self, dt: f64) -> f64 {
        dt
    }
    /// Decides on a step of size `dt` whose scaled RMS error is `error_norm`; `error_order`
    /// is the order the local error scales with (`p + 1` for an order-`p` method).
    fn adapt(&mut self, dt: f64, error_norm: f64, error_order: f64) -> Result<StepDecision>;
    /// Checks the controller's own settings (factors, bounds, step); [`crate::ode::solve`]
    /// calls it before the first step, so a bad setting is an error, not a silent change of
    /// behaviour (a safety factor of 2 would otherwise accept every step it proposes).
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// Fixed steps of size `dt` (the last one is shortened to land on the end point).
///
/// ```
/// use scoreprior_core::ode::ConstantStepSize;
/// let c = ConstantStepSize::new(0.01);
/// assert_eq!(c.dt, 0.01);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConstantStepSize {
    /// Step size.
    pub dt: f64,
}

impl ConstantStepSize {
    /// A constant step `dt > 0`.
    pub fn new(dt: f64) -> Self {
        Self { dt }
    }
}

impl StepSizeController for ConstantStepSize {
    fn is_adaptive(&self) -> bool {
        false
    }
    fn tolerances(&self) -> (f64, f64) {
        (0.0, 0.0)
    }
    fn reset(&mut self) {}
    fn first_dt(&self) -> Option<f64> {
        Some(self.dt)
    }
    fn adapt(&mut self, _dt: f64, _error_norm: f64, _error_order: f64) -> Result<StepDecision> {
        Ok(StepDecision { accept: true, next_dt: self.dt })
    }
    fn validate(&self) -> Result<()> {
        if self.dt.is_finite() && self.dt > 0.0 {
            Ok(())
        } else {
            Err(Error::out_of_range("constant step size", self.dt, "positive and finite"))
        }
    }
}

/// Steps onto given times, in order (diffrax's `StepTo`): the first step goes from `ts[0]` to
/// `ts[1]`, and so on; every step is accepted. The times run in the direction of integration
/// and should start at the solve's start and end at its end (the integrator clips the last
/// step onto the end point).
///
/// Why it exists: the adjoint solve of the probability-flow log-density runs backwards
/// through the same time scales the forward solve found (steps growing geometrically with
/// `t`). Its own adaptive control, starting at `t = 1` and heading for `t0`, keeps proposing
/// steps that are too long for the shrinking time scale and has them rejected (6 of 20
/// attempts on the shipped NCSN++, error norms up to 250); reusing the forward grid costs no
/// rejection.
///
/// ```
/// use scoreprior_core::ode::{solve, Dopri5, SolveOptions, StepTo};
/// let mut c = StepTo::new(vec![1.0, 0.5, 0.1, 0.0]).unwrap();
/// let mut f = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| dy[0] = -y[0];
/// let sol = solve(&mut f, &Dopri5, &mut c, 1.0, 0.0, &vec![1.0], &SolveOptions::default()).unwrap();
/// assert_eq!(sol.stats.accepted_steps, 3);
/// assert!((sol.y[0] - 1f64.exp()).abs() < 1e-3);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StepTo {
    ts: Vec<f64>,
    next: usize,
}

impl StepTo {
    /// Steps onto `ts` (at least two finite, strictly monotone times).
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for fewer than two times, a non-finite time, or times that
    /// are not strictly increasing or strictly decreasing.
    pub fn new(ts: Vec<f64>) -> Result<Self> {
        let c = Self { ts, next: 0 };
        c.validate()?;
        Ok(c)
    }

    /// The times stepped onto.
    pub fn times(&self) -> &[f64] {
        &self.ts
    }

    fn gap(&self, i: usize) -> f64 {
        let i = i.min(self.ts.len() - 2);
        (self.ts[i + 1] - self.ts[i]).abs()
    }
}

impl StepSizeController for StepTo {
    fn is_adaptive(&self) -> bool {
        false
    }
    fn tolerances(&self) -> (f64, f64) {
        (0.0, 0.0)
    }
    fn reset(&mut self) {
        self.next = 0;
    }
    fn first_dt(&self) -> Option<f64> {
        Some(self.gap(0))
    }
    fn adapt(&mut self, _dt: f64, _error_norm: f64, _error_order: f64) -> Result<StepDecision> {
        self.next += 1;
        Ok(StepDecision { accept: true, next_dt: self.gap(self.next) })
    }
    fn validate(&self) -> Result<()> {
        if self.ts.len() < 2 {
            return Err(Error::count_out_of_range("the number of StepTo times", self.ts.len(), "at least 2"));
        }
        if let Some(t) = self.ts.iter().find(|t| !t.is_finite()) {
            return Err(Error::out_of_range("a StepTo time", *t, "finite"));
        }
        let up = self.ts[1] > self.ts[0];
        if let Some(w) = self.ts.windows(2).find(|w| if up { w[1] <= w[0] } else { w[1] >= w[0] }) {
            let expected = format!(
                "{} than the time before it, {} (StepTo times must be strictly increasing or strictly decreasing)",
                if up { "greater" } else { "less" },
                w[0]
            );
            return Err(Error::out_of_range("a StepTo time", w[1], expected));
        }
        Ok(())
    }
}

/// Proportional–integral–derivative step-size controller with diffrax's semantics.
///
/// Defaults are diffrax's: `pcoeff = 0, icoeff = 1, dcoeff = 0` (a pure I-controller),
/// `safety = 0.9`, `factormin = 0.2`, `factormax = 10`.
///
/// ```
/// use scoreprior_core::ode::PidController;
/// let pid = PidController::new(1e-3, 1e-5).with_pid(0.0, 1.0, 0.0);
/// assert_eq!(pid.safety, 0.9);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PidController {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Proportional coefficient.
    pub pcoeff: f64,
    /// Integral coefficient.
    pub icoeff: f64,
    /// Derivative coefficient.
    pub dcoeff: f64,
    /// Safety factor multiplying every proposal.
    pub safety: f64,
    /// Smallest factor by which a rejected step shrinks.
    pub factormin: f64,
    /// Largest factor by which an accepted step grows.
    pub factormax: f64,
    /// Smallest allowed step; a smaller proposal is an error.
    pub dtmin: Option<f64>,
    /// Largest allowed step.
    pub dtmax: Option<f64>,
    /// Initial step; `None` selects one automatically (Hairer's algorithm).
    pub dt0: Option<f64>,
    prev_inv_error: f64,
    prev_prev_inv_error: f64,
}

impl PidController {
    /// A controller with tolerances `rtol`, `atol` and diffrax's other defaults.
    pub fn new(rtol: f64, atol: f64) -> Self {
        Self {
            rtol,
            atol,
            pcoeff: 0.0,
            icoeff: 1.0,
            dcoeff: 0.0,
            safety: 0.9,
            factormin: 0.2,
            factormax: 10.0,
            dtmin: None,
            dtmax: None,
            dt0: None,
            prev_inv_error: 1.0,
            prev_prev_inv_error: 1.0,
        }
    }
    /// Sets the PID coefficients.
    pub fn with_pid(mut self, pcoeff: f64, icoeff: f64, dcoeff: f64) -> Self {
        self.pcoeff = pcoeff;
        self.icoeff = icoeff;
        self.dcoeff = dcoeff;
        self
    }
    /// Sets the initial step.
    pub fn with_dt0(mut self, dt0: f64) -> Self {
        self.dt0 = Some(dt0);
        self
    }
    /// Sets bounds on the step size.
    pub fn with_dt_bounds(mut self, dtmin: Option<f64>, dtmax: Option<f64>) -> Self {
        self.dtmin = dtmin;
        self.dtmax = dtmax;
        self
    }

    /// Checks the configuration (the integrator calls it through
    /// [`StepSizeController::validate`] before a solve).
    pub fn validate(&self) -> Result<()> {
        check_tolerances(self.rtol, self.atol)?;
        if !(self.safety > 0.0 && self.safety <= 1.0) {
            return Err(Error::out_of_range("safety", self.safety, "in (0, 1]"));
        }
        if !(self.factormin > 0.0 && self.factormin <= 1.0) {
            return Err(Error::out_of_range("factormin", self.factormin, "in (0, 1]"));
        }
        if self.factormax.is_nan() || self.factormax < 1.0 {
            return Err(Error::out_of_range("factormax", self.factormax, "at least 1"));
        }
        if let Some(dt0) = self.dt0 {
            if !(dt0.is_finite() && dt0 > 0.0) {
                return Err(Error::out_of_range("the first step dt0", dt0, "finite and positive"));
            }
        }
        if let (Some(lo), Some(hi)) = (self.dtmin, self.dtmax) {
            if lo.is_nan() || lo <= 0.0 {
                return Err(Error::out_of_range("dtmin", lo, "positive"));
            }
            if hi.is_nan() || hi < lo {
                return Err(Error::out_of_range("dtmax", hi, format!("at least dtmin = {lo}")));
            }
        }
        Ok(())
    }
}

impl Default for PidController {
    /// `rtol = 1e-3, atol = 1e-6`, diffrax's usual example values.
    fn default() -> Self {
        Self::new(1e-3, 1e-6)
    }
}

impl StepSizeController for PidController {
    fn is_adaptive(&self) -> bool {
        true
    }
    fn tolerances(&self) -> (f64, f64) {
        (self.rtol, self.atol)
    }
    fn reset(&mut self) {
        self.prev_inv_error = 1.0;
        self.prev_prev_inv_error = 1.0;
    }
    fn first_dt(&self) -> Option<f64> {
        self.dt0
    }
    fn clamp(&self, dt: f64) -> f64 {
        match self.dtmax {
            Some(hi) => dt.min(hi),
            None => dt,
        }
    }
    fn validate(&self) -> Result<()> {
        PidController::validate(self)
    }
    fn adapt(&mut self, dt: f64, error_norm: f64, error_order: f64) -> Result<StepDecision> {
        // Some controllers compare `norm(e) / (atol + rtol·norm(y))` (Söderlind,
        // OrdinaryDiffEq.jl); we scale componentwise, `norm(e / (atol + rtol·|y|))`, as
        // diffrax and torchdiffeq do, so one large component cannot hide a small one's error.
        if !error_norm.is_finite() {
            // A non-finite error estimate (overflow in a trial stage) rejects the step and
            // shrinks as hard as allowed instead of aborting the solve.
            return Ok(StepDecision { accept: false, next_dt: self.check_dtmin(dt * self.factormin)? });
        }
        let accept = error_norm <= 1.0;
        let inv = if error_norm == 0.0 { f64::INFINITY } else { 1.0 / error_norm };
        let beta1 = (self.pcoeff + self.icoeff + self.dcoeff) / error_order;
        let beta2 = -(self.pcoeff + 2.0 * self.dcoeff) / error_order;
        let beta3 = self.dcoeff / error_order;
        let f1 = if beta1 == 0.0 { 1.0 } else { inv.powf(beta1) };
        let f2 = if beta2 == 0.0 { 1.0 } else { self.prev_inv_error.powf(beta2) };
        let f3 = if beta3 == 0.0 { 1.0 } else { self.prev_prev_inv_error.powf(beta3) };
        // As in diffrax: an accepted step never shrinks (factormin → 1) and a rejected one
        // always does (factormax → safety).
        let (lo, hi) = if accept { (1.0, self.factormax) } else { (self.factormin, self.safety) };
        let factor = (self.safety * f1 * f2 * f3).clamp(lo, hi);
        if accept {
            self.prev_prev_inv_error = self.prev_inv_error;
            self.prev_inv_error = inv;
        }
        let next = self.clamp(dt * factor);
        Ok(StepDecision { accept, next_dt: self.check_dtmin(next)? })
    }
}

impl PidController {
    fn check_dtmin(&self, dt: f64) -> Result<f64> {
        match self.dtmin {
            Some(lo) if dt < lo => Err(Error::StepSizeUnderflow { t: f64::NAN, dt }),
            _ => Ok(dt),
        }
    }
}

/// `rtol` and `atol` finite, non-negative and not both zero ([`Error::OutOfRange`] naming
/// the one at fault).
fn check_tolerances(rtol: f64, atol: f64) -> Result<()> {
    for (what, v) in [("rtol", rtol), ("atol", atol)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(Error::out_of_range(what, v, "finite and non-negative"));
        }
    }
    if rtol == 0.0 && atol == 0.0 {
        return Err(Error::out_of_range("atol", atol, "positive when rtol is 0 (not both zero)"));
    }
    Ok(())
}

/// First step of the probability-flow solves ([`Controller::pid`]), as in the reference
/// script (`train_dpi.py`, `prob_flow.dt0 = 0.001`).
///
/// Why not Hairer's automatic choice: the `Δ log p` components start at 0, so their error
/// scale is `atol` alone and the heuristic proposes ~1e-4 for the Fashion-MNIST Gaussian,
/// which costs an extra probe evaluation plus one more step while the controller grows it
/// (50 instead of 43 evaluations at `rtol 1e-3, atol 1e-5`). A too-large first step is not
/// a risk to accuracy: it is rejected and shrunk like any other step.
pub const DEFAULT_DT0: f64 = 1e-3;

/// A step-size controller choosable at run time.
#[derive(Debug, Clone, PartialEq)]
pub enum Controller {
    /// Adaptive PID control.
    Pid(PidController),
    /// Fixed steps (for non-embedded solvers such as Euler or RK4).
    Constant(ConstantStepSize),
}

impl Controller {
    /// A PID (I) controller with diffrax's defaults, these tolerances and a first step of
    /// [`DEFAULT_DT0`].
    pub fn pid(rtol: f64, atol: f64) -> Self {
        Controller::Pid(PidController::new(rtol, atol).with_dt0(DEFAULT_DT0))
    }
    /// A PID (I) controller whose first step is chosen by Hairer's heuristic (one extra
    /// evaluation of the score per solve).
    pub fn pid_auto(rtol: f64, atol: f64) -> Self {
        Controller::Pid(PidController::new(rtol, atol))
    }
    /// Fixed steps of size `dt`.
    pub fn constant(dt: f64) -> Self {
        Controller::Constant(ConstantStepSize::new(dt))
    }
    /// Checks the settings, errors prefixed by `what` (`controller`, `adjoint controller`).
    pub(crate) fn validate_as(&self, what: &str) -> Result<()> {
        match self {
            Controller::Pid(p) => p.validate().map_err(|e| e.context(what)),
            Controller::Constant(c) => {
                if c.dt.is_finite() && c.dt > 0.0 {
                    Ok(())
                } else {
                    Err(Error::out_of_range(format!("{what}: step size"), c.dt, "positive"))
                }
            }
        }
    }
    fn inner(&mut self) -> &mut dyn StepSizeController {
        match self {
            Controller::Pid(p) => p,
            Controller::Constant(c) => c,
        }
    }
    fn inner_ref(&self) -> &dyn StepSizeController {
        match self {
            Controller::Pid(p) => p,
            Controller::Constant(c) => c,
        }
    }
}

impl StepSizeController for Controller {
    fn is_adaptive(&self) -> bool {
        self.inner_ref().is_adaptive()
    }
    fn tolerances(&self) -> (f64, f64) {
        self.inner_ref().tolerances()
    }
    fn reset(&mut self) {
        self.inner().reset()
    }
    fn first_dt(&self) -> Option<f64> {
        self.inner_ref().first_dt()
    }
    fn clamp(&self, dt: f64) -> f64 {
        self.inner_ref().clamp(dt)
    }
    fn adapt(&mut self, dt: f64, error_norm: f64, error_order: f64) -> Result<StepDecision> {
        self.inner().adapt(dt, error_norm, error_order)
    }
    fn validate(&self) -> Result<()> {
        self.inner_ref().validate()
    }
}
