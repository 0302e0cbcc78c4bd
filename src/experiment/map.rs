//! The MAP warm start: `min_u w_d·E_data(x(u)) + w_p·E_prior(x(u))` with `x = softplus(u)` for
//! positive images (else `x = u`), `∇_u = σ(u)·∇_x`, by argmin's L-BFGS with a More–Thuente line
//! search. A stochastic prior (the DSM bound) is evaluated with the same random draws at every
//! point (common random numbers), so the objective is a deterministic, smooth function that a
//! quasi-Newton method can use; Adam on the same objective stalls orders of magnitude above
//! the optimum for closure data at high S/N, whose curvature spans many decades.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::dpi::{sigmoid, softplus, Energy};

use super::{invalid, MapWarmStart, Result};

/// The objective with its last evaluation cached (argmin asks for cost and gradient apart).
pub(super) struct Objective<'a> {
    pub data: &'a dyn Energy,
    pub prior: &'a dyn Energy,
    pub weights: (f64, f64),
    pub positive: bool,
    pub seed: u64,
    pub cache: RefCell<Option<(Vec<f64>, f64, Vec<f64>)>>,
}

impl Objective<'_> {
    /// The cost and gradient at `u` (cached: a repeated point costs nothing).
    pub(super) fn evaluate(&self, u: &[f64]) -> std::result::Result<(f64, Vec<f64>), argmin::core::Error> {
        self.eval(u)
    }

    fn eval(&self, u: &[f64]) -> std::result::Result<(f64, Vec<f64>), argmin::core::Error> {
        if let Some((cu, c, g)) = self.cache.borrow().as_ref() {
            if cu.as_slice() == u {
                return Ok((*c, g.clone()));
            }
        }
        let d = u.len();
        let x: Vec<f64> = if self.positive { u.iter().map(|&v| softplus(v)).collect() } else { u.to_vec() };
        let mut cost = 0.0;
        let mut grad = vec![0.0; d];
        for (term, w) in [(self.data, self.weights.0), (self.prior, self.weights.1)] {
            if w == 0.0 {
                continue;
            }
            let (mut e, mut g) = ([0.0], vec![0.0; d]);
            // The same draws at every point: a deterministic objective.
            term.energy_and_grad(&x, &mut ChaCha8Rng::seed_from_u64(self.seed), &mut e, &mut g)?;
            // A term that reports no energy (gradient-only) still steers; its cost is unknown,
            // which would break the line search, so it is an error here.
            if !e[0].is_finite() {
                return Err(argmin::core::Error::msg(format!(
                    "MAP warm start: a term's energy is {} (a gradient-only term cannot be line-searched)",
                    e[0]
                )));
            }
            cost += w * e[0];
            grad.iter_mut().zip(&g).for_each(|(a, b)| *a += w * b);
        }
        if self.positive {
            grad.iter_mut().zip(u).for_each(|(g, &v)| *g *= sigmoid(v));
        }
        if let Some(i) = grad.iter().position(|v| !v.is_finite()) {
            return Err(argmin::core::Error::msg(format!("MAP warm start: gradient entry {i} is not finite")));
        }
        *self.cache.borrow_mut() = Some((u.to_vec(), cost, grad.clone()));
        Ok((cost, grad))
    }
}

impl CostFunction for Objective<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, u: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(self.eval(u)?.0)
    }
}

impl Gradient for Objective<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, u: &Vec<f64>) -> std::result::Result<Vec<f64>, argmin::core::Error> {
        Ok(self.eval(u)?.1)
    }
}

/// Runs L-BFGS from `u0`; returns the best point and the best cost after each iteration.
pub(super) fn minimise(objective: Objective<'_>, u0: Vec<f64>, ws: &MapWarmStart) -> Result<(Vec<f64>, Vec<f64>)> {
    let fail = |e: argmin::core::Error| invalid("posterior.map_warm_start", e.to_string());
    let start_cost = objective.eval(&u0).map_err(fail)?.0;
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), ws.memory)
        .with_tolerance_cost(0.0)
        .map_err(fail)?
        .with_tolerance_grad(0.0)
        .map_err(fail)?;
    let costs = std::sync::Arc::new(std::sync::Mutex::new(vec![start_cost]));
    let res = Executor::new(objective, solver)
        .configure(|s| s.param(u0).max_iters(ws.iterations as u64))
        .add_observer(CostLog(costs.clone()), argmin::core::observers::ObserverMode::Always)
        .run()
        .map_err(fail)?;
    let state = res.state();
    let best = state.get_best_param().cloned().ok_or_else(|| fail(argmin::core::Error::msg("no best point")))?;
    // A poisoned lock only means an observer panicked mid-push; the costs so far still hold.
    let costs = costs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok((best, costs))
}

/// Records the best cost after every iteration.
struct CostLog(std::sync::Arc<std::sync::Mutex<Vec<f64>>>);

impl<I: State<Float = f64>> argmin::core::observers::Observe<I> for CostLog {
    fn observe_iter(&mut self, state: &I, _kv: &argmin::core::KV) -> std::result::Result<(), argmin::core::Error> {
        if let Ok(mut c) = self.0.lock() {
            c.push(state.get_best_cost());
        }
        Ok(())
    }
}
