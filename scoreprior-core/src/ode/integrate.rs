//! The one generic explicit Runge–Kutta integrator. For a tableau `(c, a, b, e)` a step
//! from `(t, y)` of size `h` evaluates `k_i = f(t + c_i h, y + h Σ_{j<i} a_ij k_j)`, then
//! `y1 = y + h Σ b_i k_i` and the error estimate `h Σ e_i k_i`. Works forwards and
//! backwards in time (`t1 < t0`).

use super::controller::StepSizeController;
use super::state::{State, Terms};
use super::tableau::{ExplicitRk, Tableau};
use crate::{Error, Result};

/// A right-hand side `dy/dt = f(t, y)`.
///
/// Closures `FnMut(f64, &S, &mut S)` are vector fields; fallible fields (a neural score
/// model) implement the trait and return an error.
pub trait VectorField<S> {
    /// Writes `f(t, y)` into `dy`.
    fn eval(&mut self, t: f64, y: &S, dy: &mut S) -> Result<()>;
}

impl<S, F: FnMut(f64, &S, &mut S)> VectorField<S> for F {
    fn eval(&mut self, t: f64, y: &S, dy: &mut S) -> Result<()> {
        self(t, y, dy);
        Ok(())
    }
}

/// Which states a [`Solution`] keeps besides the final one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SaveAt {
    /// Times at which to record the state. They must lie in the integration interval and
    /// be ordered in the direction of integration. The integrator steps exactly onto them.
    pub ts: Vec<f64>,
    /// Also record the state after every accepted step.
    pub steps: bool,
}

/// Options of a solve that belong to neither the solver nor the controller.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveOptions {
    /// Maximum number of attempted steps (accepted + rejected); default 4096 as diffrax.
    pub max_steps: usize,
    /// Extra outputs.
    pub saveat: SaveAt,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self { max_steps: 4096, saveat: SaveAt::default() }
    }
}

/// Solver statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Accepted steps.
    pub accepted_steps: usize,
    /// Rejected steps.
    pub rejected_steps: usize,
    /// Right-hand-side evaluations (including the automatic initial-step selection).
    pub rhs_evaluations: usize,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Self) {
        self.accepted_steps += o.accepted_steps;
        self.rejected_steps += o.rejected_steps;
        self.rhs_evaluations += o.rhs_evaluations;
    }
}

/// The result of [`solve`].
#[derive(Debug, Clone)]
pub struct Solution<S> {
    /// The state at the end time.
    pub y: S,
    /// Times of the recorded states (`saveat`).
    pub ts: Vec<f64>,
    /// Recorded states, one per entry of `ts`.
    pub ys: Vec<S>,
    /// Statistics.
    pub stats: Stats,
}

/// Integrates `dy/dt = f(t, y)` from `t0` to `t1` (either direction) starting at `y0`.
///
/// # Example
/// ```
/// use scoreprior_core::ode::{solve, Dopri5, PidController, SolveOptions};
/// // y' = -y, y(0) = 1  ⇒  y(1) = e^{-1}
/// let f = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| dy[0] = -y[0];
/// let mut f = f;
/// let sol = solve(&mut f, &Dopri5, &mut PidController::new(1e-8, 1e-10), 0.0, 1.0,
///                 &vec![1.0], &SolveOptions::default()).unwrap();
/// assert!((sol.y[0] - (-1.0f64).exp()).abs() < 1e-8);
/// ```
///
/// # Errors
/// [`Error::MaxStepsExceeded`], [`Error::StepSizeUnderflow`], [`Error::NonFinite`] (in `y0`,
/// a right-hand side or an accepted state), [`Error::OutOfRange`] for non-finite
/// times, a non-positive constant step, invalid tolerances, or output times outside the
/// interval or out of order, [`Error::Unsupported`] for an adaptive controller with a
/// fixed-step tableau.
pub fn solve<S, F, C>(
    field: &mut F,
    solver: &dyn ExplicitRk,
    controller: &mut C,
    t0: f64,
    t1: f64,
    y0: &S,
    opts: &SolveOptions,
) -> Result<Solution<S>>
where
    S: State,
    F: VectorField<S> + ?Sized,
    C: StepSizeController + ?Sized,
{
    let tab = solver.tableau();
    validate(tab, controller, t0, t1, y0, opts)?;
    controller.reset();
    let mut stats = Stats::default();
    let mut ts_out = Vec::with_capacity(opts.saveat.ts.len());
    let mut ys_out = Vec::with_capacity(opts.saveat.ts.len());
    let dir = if t1 >= t0 { 1.0 } else { -1.0 };
    let mut next_out = 0usize;
    // Output times equal to t0 are recorded at once.
    while next_out < opts.saveat.ts.len() && opts.saveat.ts[next_out] == t0 {
        ts_out.push(t0);
        ys_out.push(y0.clone());
        next_out += 1;
    }
    if t0 == t1 {
        return Ok(Solution { y: y0.clone(), ts: ts_out, ys: ys_out, stats });
    }

    let s = tab.stages();
    let mut ks: Vec<S> = vec![y0.clone(); s];
    let mut y = y0.clone();
    let mut y1 = y0.clone();
    let mut ytmp = y0.clone();
    let mut err = y0.clone();
    let mut zero = y0.clone();
    zero_like(&mut zero, y0);
    let adaptive = controller.is_adaptive();
    let (rtol, atol) = controller.tolerances();
    let error_order = tab.error_order();

    // k_0 = f(t0, y0) is always needed; it is also the first step of initial-step selection.
    eval_checked(field, t0, &y, &mut ks[0], &mut stats)?;
    let mut dt = match controller.first_dt() {
        Some(dt) => dt,
        None => initial_step(
            field,
            t0,
            &y,
            &ks[0],
            &mut ytmp,
            &mut err,
            dir,
            (t1 - t0).abs(),
            rtol,
            atol,
            error_order,
            &mut stats,
        )?,
    };
    dt = controller.clamp(dt);
    let mut t = t0;
    let mut k0_valid = true;
    let mut attempts = 0usize;

    loop {
        // Land exactly on the next output time or on t1, remembering the unclipped proposal
        // so that an output time does not shrink the following step.
        let target = if next_out < opts.saveat.ts.len() { opts.saveat.ts[next_out] } else { t1 };
        let remaining = (target - t) * dir;
        // Snap to the target when the step would leave a sliver (< 1e-8 of a step) behind:
        // fixed steps that divide the interval must not produce an extra tiny step because
        // `t` accumulated round-off. Stretching a step by 1e-8 is harmless for accuracy.
        let clipped = dt * (1.0 + 1e-8) >= remaining;
        let h_mag = if clipped { remaining } else { dt };
        let h = h_mag * dir;
        if t + h == t || h_mag <= 0.0 {
            return Err(Error::StepSizeUnderflow { t, dt: h_mag });
        }
        if attempts >= opts.max_steps {
            return Err(Error::MaxStepsExceeded { max_steps: opts.max_steps, t });
        }
        attempts += 1;

        if !k0_valid {
            eval_checked(field, t, &y, &mut ks[0], &mut stats)?;
        }
        // Stages 1..s. For FSAL tableaux the last stage's input is the new solution.
        for i in 1..s {
            let terms: Terms<'_, S> =
                tab.a[i].iter().zip(ks.iter()).filter(|(a, _)| **a != 0.0).map(|(a, k)| (h * a, k)).collect();
            ytmp.set_lincomb(&y, &terms);
            drop(terms);
            eval_checked(field, t + tab.c[i] * h, &ytmp, &mut ks[i], &mut stats)?;
        }
        if tab.fsal {
            // a_s = b: the last stage was evaluated at y1 itself.
            std::mem::swap(&mut y1, &mut ytmp);
        } else {
            let terms: Terms<'_, S> =
                tab.b.iter().zip(ks.iter()).filter(|(b, _)| **b != 0.0).map(|(b, k)| (h * b, k)).collect();
            y1.set_lincomb(&y, &terms);
        }

        let decision = if adaptive {
            let e = tab.b_error.expect("validated: adaptive controllers need an embedded tableau");
            let terms: Terms<'_, S> =
                e.iter().zip(ks.iter()).filter(|(e, _)| **e != 0.0).map(|(e, k)| (h * e, k)).collect();
            err.set_lincomb(&zero, &terms);
            let norm = if y1.is_finite() { S::scaled_rms(&err, &y, &y1, atol, rtol) } else { f64::INFINITY };
            controller.adapt(h_mag, norm, error_order).map_err(|e| with_time(e, t))?
        } else {
            if !y1.is_finite() {
                return Err(Error::NonFinite { what: "state", t: t + h });
            }
            controller.adapt(h_mag, 0.0, error_order).map_err(|e| with_time(e, t))?
        };

        if decision.accept {
            if !y1.is_finite() {
                return Err(Error::NonFinite { what: "state", t: t + h });
            }
            stats.accepted_steps += 1;
            t = if clipped { target } else { t + h };
            std::mem::swap(&mut y, &mut y1);
            if tab.fsal {
                ks.swap(0, s - 1);
                k0_valid = true;
            } else {
                k0_valid = false;
            }
            if opts.saveat.steps {
                ts_out.push(t);
                ys_out.push(y.clone());
            }
            if clipped && next_out < opts.saveat.ts.len() && target == opts.saveat.ts[next_out] {
                if !opts.saveat.steps {
                    ts_out.push(t);
                    ys_out.push(y.clone());
                }
                next_out += 1;
                // Several equal output times are recorded together.
                while next_out < opts.saveat.ts.len() && opts.saveat.ts[next_out] == t {
                    ts_out.push(t);
                    ys_out.push(y.clone());
                    next_out += 1;
                }
            }
            if t == t1 {
                break;
            }
            // A step that was clipped to an output time keeps its unclipped proposal.
            dt = if clipped { decision.next_dt.max(dt) } else { decision.next_dt };
            if !adaptive {
                dt = decision.next_dt;
            }
        } else {
            stats.rejected_steps += 1;
            // f(t, y) is unchanged after a rejection, so k_0 stays valid for every tableau.
            k0_valid = true;
            dt = decision.next_dt;
        }
    }
    Ok(Solution { y, ts: ts_out, ys: ys_out, stats })
}

fn zero_like<S: State>(out: &mut S, like: &S) {
    // out ← like − like (= 0 with the right shape, and no allocation).
    out.set_lincomb(like, &[(-1.0, like)]);
}

fn with_time(e: Error, t: f64) -> Error {
    match e {
        Error::StepSizeUnderflow { dt, .. } => Error::StepSizeUnderflow { t, dt },
        other => other,
    }
}

fn eval_checked<S: State, F: VectorField<S> + ?Sized>(
    field: &mut F,
    t: f64,
    y: &S,
    dy: &mut S,
    stats: &mut Stats,
) -> Result<()> {
    stats.rhs_evaluations += 1;
    field.eval(t, y, dy)?;
    if !dy.is_finite() {
        return Err(Error::NonFinite { what: "right-hand side", t });
    }
    Ok(())
}

/// Hairer, Nørsett & Wanner's initial-step heuristic (as in diffrax's
/// `_select_initial_step`): one extra evaluation of `f`.
#[allow(clippy::too_many_arguments)]
fn initial_step<S: State, F: VectorField<S> + ?Sized>(
    field: &mut F,
    t0: f64,
    y0: &S,
    f0: &S,
    ytmp: &mut S,
    ftmp: &mut S,
    dir: f64,
    span: f64,
    rtol: f64,
    atol: f64,
    error_order: f64,
    stats: &mut Stats,
) -> Result<f64> {
    let d0 = S::scaled_rms(y0, y0, y0, atol, rtol);
    let d1 = S::scaled_rms(f0, y0, y0, atol, rtol);
    let h0 = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 };
    // Never probe outside [t0, t1]: a nearly stationary start (d1 ≪ d0) would otherwise
    // evaluate f far beyond the interval, where e.g. a VP SDE's β(t) < 0 is undefined.
    let h0 = h0.min(span);
    ytmp.set_lincomb(y0, &[(dir * h0, f0)]);
    eval_checked(field, t0 + dir * h0, ytmp, ftmp, stats)?;
    // ytmp ← (f1 − f0) / h0
    let f1 = ftmp.clone();
    ytmp.set_lincomb(f0, &[(-1.0, f0), (1.0 / h0, &f1), (-1.0 / h0, f0)]);
    let d2 = S::scaled_rms(ytmp, y0, y0, atol, rtol);
    let m = d1.max(d2);
    let h1 = if m <= 1e-15 { (h0 * 1e-3).max(1e-6) } else { (0.01 / m).powf(1.0 / error_order) };
    Ok((100.0 * h0).min(h1))
}

fn validate<S: State, C: StepSizeController + ?Sized>(
    tab: &Tableau,
    controller: &C,
    t0: f64,
    t1: f64,
    y0: &S,
    opts: &SolveOptions,
) -> Result<()> {
    for (what, t) in [("integration bound t0", t0), ("integration bound t1", t1)] {
        if !t.is_finite() {
            return Err(Error::out_of_range(what, t, "finite"));
        }
    }
    if tab.stages() == 0 || tab.a.len() != tab.stages() || tab.b.len() != tab.stages() {
        return Err(Error::inconsistent(
            format!("tableau {}", tab.name),
            format!(
                "{} stages, {} rows of a and {} weights b must agree (and be at least 1)",
                tab.stages(),
                tab.a.len(),
                tab.b.len()
            ),
        ));
    }
    controller.validate()?;
    if controller.is_adaptive() && !tab.is_adaptive() {
        return Err(Error::unsupported(format!(
            "{} has no embedded error estimate and needs ConstantStepSize, not an adaptive controller",
            tab.name
        )));
    }
    if let Some(dt) = controller.first_dt() {
        if !(dt.is_finite() && dt > 0.0) {
            return Err(Error::out_of_range("step size", dt, "positive and finite"));
        }
    }
    let (rtol, atol) = controller.tolerances();
    if controller.is_adaptive() {
        for (what, v) in [("rtol", rtol), ("atol", atol)] {
            if v.is_nan() || v < 0.0 {
                return Err(Error::out_of_range(what, v, "non-negative"));
            }
        }
        if rtol == 0.0 && atol == 0.0 {
            return Err(Error::out_of_range("atol", atol, "positive when rtol is 0 (not both zero)"));
        }
    }
    if opts.max_steps == 0 {
        return Err(Error::count_out_of_range("max_steps", opts.max_steps, "at least 1"));
    }
    if !y0.is_finite() {
        return Err(Error::NonFinite { what: "initial state", t: t0 });
    }
    let dir = if t1 >= t0 { 1.0 } else { -1.0 };
    let mut prev = t0;
    for &ts in &opts.saveat.ts {
        if !ts.is_finite() || (ts - prev) * dir < 0.0 || (t1 - ts) * dir < 0.0 {
            let expected = format!("in [{t0}, {t1}] and ordered in the direction of integration");
            return Err(Error::out_of_range("an output time", ts, expected));
        }
        prev = ts;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ode::{ConstantStepSize, PidController};

    /// Bogacki–Shampine 3(2), written out by hand: the integrator accepts tableaux that
    /// were not built by the macro.
    static HAND_BOSH3: Tableau = Tableau {
        name: "HandBosh3",
        order: 3,
        embedded_order: Some(2),
        c: &[0.0, 0.5, 0.75, 1.0],
        a: &[&[], &[0.5], &[0.0, 0.75], &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0]],
        b: &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0],
        b_error: Some(&[2.0 / 9.0 - 7.0 / 24.0, 1.0 / 3.0 - 0.25, 4.0 / 9.0 - 1.0 / 3.0, -0.125]),
        fsal: true,
        tolerance: 0.0,
    };

    #[test]
    fn hand_written_tableau_solves_exponential_decay() {
        let mut f = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| dy[0] = -y[0];
        let sol = solve(
            &mut f,
            &&HAND_BOSH3,
            &mut PidController::new(1e-8, 1e-10),
            0.0,
            2.0,
            &vec![1.0],
            &SolveOptions::default(),
        )
        .unwrap();
        assert!((sol.y[0] - (-2.0f64).exp()).abs() < 1e-7, "{}", sol.y[0]);
        // FSAL: 3 new evaluations per attempted step after the first two.
        let attempted = sol.stats.accepted_steps + sol.stats.rejected_steps;
        assert_eq!(sol.stats.rhs_evaluations, 2 + 3 * attempted);
        let fixed = solve(
            &mut f,
            &&HAND_BOSH3,
            &mut ConstantStepSize::new(0.1),
            0.0,
            2.0,
            &vec![1.0],
            &SolveOptions::default(),
        )
        .unwrap();
        assert_eq!(fixed.stats.accepted_steps, 20);
        assert!((fixed.y[0] - (-2.0f64).exp()).abs() < 1e-4);
    }

    #[test]
    fn solve_validates_the_controller_first() {
        let mut calls = 0;
        let mut f = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| {
            calls += 1;
            dy[0] = -y[0]
        };
        let opts = SolveOptions::default();
        let mut pid = PidController::new(1e-6, 1e-8);
        pid.safety = 2.0;
        let e = solve(&mut f, &&HAND_BOSH3, &mut pid, 0.0, 1.0, &vec![1.0], &opts).unwrap_err();
        assert!(e.to_string().contains("safety"), "{e}");
        let mut pid = PidController::new(1e-6, 1e-8);
        pid.factormax = 0.5;
        assert!(solve(&mut f, &&HAND_BOSH3, &mut pid, 0.0, 1.0, &vec![1.0], &opts).is_err());
        let e = solve(&mut f, &&HAND_BOSH3, &mut ConstantStepSize::new(-0.1), 0.0, 1.0, &vec![1.0], &opts).unwrap_err();
        assert!(e.to_string().contains("positive"), "{e}");
        assert_eq!(calls, 0, "no evaluation before validation");
    }
}
