//! Unconditional samplers for any [`ScoreModel`] under a VP-type SDE, integrating from
//! `T` down to `t_end`: the probability-flow ODE `dx/dt = a(t)x − ½g(t)² s(x, t)` with any
//! declared Runge–Kutta solver, Euler–Maruyama on the reverse SDE
//! `dx = [a x − g² s] dt + g dw̄`, and predictor–corrector (Euler–Maruyama predictor plus
//! one Langevin corrector step with signal-to-noise ratio `snr`, as score_sde).

use rand::Rng;
use rand_distr::StandardNormal;
use scoreprior_core::ode::{solve, ConstantStepSize, ExplicitRk, PidController, SolveOptions, Stats};
use scoreprior_core::score::ScoreModel;
use scoreprior_core::sde::Sde;
use scoreprior_core::{Error, Result};

/// Step-size control of the PF-ODE sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OdeSteps {
    /// Adaptive steps with relative and absolute tolerances.
    Adaptive { rtol: f64, atol: f64 },
    /// `n` equal steps.
    Fixed(usize),
}

/// Draws `n` images by integrating the probability-flow ODE from a prior draw at `T` to
/// `t_end`. Returns the images `(n, D)` and solver statistics.
#[allow(clippy::too_many_arguments)]
pub fn sample_ode(
    model: &dyn ScoreModel,
    sde: &dyn Sde,
    solver: &dyn ExplicitRk,
    steps: OdeSteps,
    n: usize,
    t_end: f64,
    rng: &mut dyn rand::RngCore,
) -> Result<(Vec<f64>, Stats)> {
    if !(t_end > 0.0 && t_end < sde.t_max()) {
        return Err(Error::out_of_range("sampler t_end", t_end, format!("in (0, T = {})", sde.t_max())));
    }
    let d = model.dim();
    let mut x0 = vec![0.0; n * d];
    sde.prior_sample(rng, &mut x0);
    let mut field = |t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| -> Result<()> {
        model.score(y, t, dy)?;
        sde.pf_drift(y, t, dy);
        Ok(())
    };
    let mut vf = FieldFn(&mut field);
    let opts = SolveOptions::default();
    let sol = match steps {
        OdeSteps::Adaptive { rtol, atol } => {
            let mut c = PidController::new(rtol, atol);
            solve(&mut vf, solver, &mut c, sde.t_max(), t_end, &x0, &opts)?
        }
        OdeSteps::Fixed(k) => {
            if k == 0 {
                return Err(Error::count_out_of_range("fixed-step sampler steps", k, "at least 1"));
            }
            // The integrator takes step magnitudes and the direction from t0 → t1, so the
            // backward solve T → t_end gets the positive step (T − t_end)/k.
            let mut c = ConstantStepSize::new((sde.t_max() - t_end) / k as f64);
            solve(&mut vf, solver, &mut c, sde.t_max(), t_end, &x0, &opts)?
        }
    };
    Ok((sol.y, sol.stats))
}

struct FieldFn<'a, F: FnMut(f64, &Vec<f64>, &mut Vec<f64>) -> Result<()>>(&'a mut F);

impl<F: FnMut(f64, &Vec<f64>, &mut Vec<f64>) -> Result<()>> scoreprior_core::ode::VectorField<Vec<f64>>
    for FieldFn<'_, F>
{
    fn eval(&mut self, t: f64, y: &Vec<f64>, dy: &mut Vec<f64>) -> Result<()> {
        (self.0)(t, y, dy)
    }
}

/// Euler–Maruyama on the reverse SDE with `steps` equal steps from `T` to `t_end`, with
/// the last step's noise omitted (the reference's "noise removal").
/// With `snr > 0`, one Langevin corrector step precedes each predictor step
/// (predictor–corrector); `snr = 0` is plain Euler–Maruyama.
pub fn sample_sde(
    model: &dyn ScoreModel,
    sde: &dyn Sde,
    steps: usize,
    snr: f64,
    n: usize,
    t_end: f64,
    rng: &mut dyn rand::RngCore,
) -> Result<Vec<f64>> {
    if steps == 0 {
        return Err(Error::count_out_of_range("sampler steps", steps, "at least 1"));
    }
    if !(t_end > 0.0 && t_end < sde.t_max()) {
        return Err(Error::out_of_range("sampler t_end", t_end, format!("in (0, T = {})", sde.t_max())));
    }
    let d = model.dim();
    let mut x = vec![0.0; n * d];
    sde.prior_sample(rng, &mut x);
    let mut s = vec![0.0; n * d];
    let dt = (sde.t_max() - t_end) / steps as f64;
    for k in 0..steps {
        let t = sde.t_max() - k as f64 * dt;
        if snr > 0.0 {
            // Langevin corrector: step size from the target signal-to-noise ratio.
            model.score(&x, t, &mut s)?;
            // score_sde scales by α_t = 1 − β_t/N of the discretised VP chain, ≈ 1 here; the
            // step size uses batch-mean norms (per-image norms blow up in low dimension).
            let alpha = 1.0;
            let z: Vec<f64> = (0..n * d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
            let norm = |v: &[f64]| -> f64 {
                v.chunks(d).map(|c| c.iter().map(|a| a * a).sum::<f64>().sqrt()).sum::<f64>() / n as f64
            };
            let (gn, zn) = (norm(&s), norm(&z));
            let eps = 2.0 * alpha * (snr * zn / gn.max(1e-12)).powi(2);
            for ((xv, sv), zv) in x.iter_mut().zip(&s).zip(&z) {
                *xv += eps * sv + (2.0 * eps).sqrt() * zv;
            }
        }
        model.score(&x, t, &mut s)?;
        let (a, g) = (sde.drift_coef(t), sde.diffusion(t));
        let last = k + 1 == steps;
        for (xv, sv) in x.iter_mut().zip(&s) {
            let drift = a * *xv - g * g * sv;
            *xv -= drift * dt;
            if !last {
                *xv += g * dt.sqrt() * rng.sample::<f64, _>(StandardNormal);
            }
        }
    }
    Ok(x)
}

/// A solver of the core crate by (case-insensitive) name: the core's one lookup,
/// [`scoreprior_core::ode::solver_by_name`].
pub fn solver_named(name: &str) -> Result<&'static dyn ExplicitRk> {
    scoreprior_core::ode::solver_by_name(name)
}
