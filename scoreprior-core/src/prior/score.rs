//! The score-based prior [`ScorePrior`]: `log p_{t0}(x) = log p_T(x_T) + ∫_{t0}^{T} div f̃(x_t, t) dt`
//! by one probability-flow ODE solve over a batch ([`crate::pf_ode`]), and `∇x log p_{t0}(x)`
//! by the continuous adjoint solved backwards from `T` ([`crate::adjoint`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::RngCore;

use super::{LogProb, LogProbGrad, Prior, PriorStats};
use crate::adjoint::{backsolve, AdjointField};
use crate::divergence::{Divergence, Hutchinson, ProbeNoise};
use crate::ode::{Controller, ExplicitRk, SolveOptions, Stats, StepSizeController, StepTo, Tableau};
use crate::pf_ode::{integrate_flow, ProbabilityFlow};
use crate::score::{check_batch, MarginalDensity, ScoreModel};
use crate::sde::{AnySde, Sde, VpSde};
use crate::{Error, Result};

/// Configuration of a [`ScorePrior`]. `Default` is the reference code's: VP (β 0.1→20),
/// Dopri5 with PID `rtol = 1e-3, atol = 1e-5` and first step [`crate::ode::DEFAULT_DT0`] for
/// the forward solve, the adjoint on the forward grid with one RK4 step per forward step,
/// `t0 = 1e-3`, `T = 1`, Hutchinson with 16 Rademacher probes (seed 0), 4096 steps at most.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorePriorConfig {
    /// The SDE the score model was trained with.
    pub sde: AnySde,
    /// Forward solver (any tableau, e.g. `Dopri5.tableau()` or a user's).
    pub solver: &'static Tableau,
    /// Forward step-size controller.
    pub controller: Controller,
    /// Lower integration limit `t0 > 0` (the density returned is `p_{t0}`).
    pub t0: f64,
    /// Upper integration limit `T`.
    pub t1: f64,
    /// Step budget of each solve (accepted + rejected).
    pub max_steps: usize,
    /// Divergence estimator.
    pub divergence: Divergence,
    /// Whether the `Δ log p` components count in the forward error norm (`true` as the
    /// reference code, whose controller norms the whole state; `false` wraps them in
    /// [`crate::ode::Unnormed`], cheaper but their error is then uncontrolled).
    pub norm_logp: bool,
    /// Backward (adjoint) solver of [`AdjointSteps::Adaptive`].
    pub adjoint_solver: &'static Tableau,
    /// The solver of each backward step on the forward grid ([`AdjointSteps::ForwardGrid`]):
    /// one fixed step per forward step, so any tableau.
    pub grid_solver: &'static Tableau,
    /// Backward step-size controller (its own tolerances); used with
    /// [`AdjointSteps::Adaptive`] only.
    pub adjoint_controller: Controller,
    /// How the backward solve chooses its steps.
    pub adjoint_steps: AdjointSteps,
}

/// How the adjoint (backward) solve of [`ScorePrior::grad_log_prob`] chooses its steps; named
/// `grid` and `adaptive` in run descriptions ([`AdjointSteps::NAMES`], `FromStr`, serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum AdjointSteps {
    /// One backward step of [`ScorePriorConfig::grid_solver`] per forward step
    /// ([`crate::ode::StepTo`]), each restarted from the forward solve's state at its start,
    /// so `x` is not re-integrated and its error does not reach `a`; a last forward step under
    /// half the one before it (cut short to land on `T`) is merged into that one. No rejected
    /// steps: the backward system has the forward's time scales, where the adaptive backward
    /// solve, heading for `t0` with steps that grew at `T`, has a third of its steps rejected.
    /// One evaluation per stage (no FSAL across a restart: 4 per step with RK4, 7 with
    /// Dopri5); the forward states are kept (`n·D` values per step).
    ///
    /// Relative gradient error against a tight solve at the default tolerances, forward grid
    /// (RK4; Dopri5) vs adaptive (`tests/adjoint_grid.rs`, `benches/RESULTS.md`): shipped
    /// NCSN++ (8 noisy test images, 2 probes) 4.6e-3; 5.4e-3 vs 2.0e-2 with 52; 91 vs 116
    /// backward evaluations; 2-D mixture 2.1e-2; 1.8e-2 vs 1.9e-2 (52; 91 vs 140); 6-D mixture
    /// 1.2e-2; 4.8e-3 vs 2.7e-3 (24; 42 vs 68). The forward grid is a good backward grid
    /// because the forward steps are conservative (in `t` the controller settles at error
    /// norms near 0.1, well inside its tolerance), so a fourth-order step without an error
    /// estimate is as accurate there as Dopri5's at 4/7 of its evaluations. Where the forward
    /// solve takes few, long steps it is not: on the 4-D Gaussian of the reference problem (7
    /// steps, exact terminal density) RK4's gradient is off by 3.2e-2 and Dopri5's by 3.7e-3
    /// (a gradient of size 5); set [`ScorePriorConfig::grid_solver`] to Dopri5 there.
    #[default]
    #[serde(rename = "grid")]
    ForwardGrid,
    /// Its own adaptive control with [`ScorePriorConfig::adjoint_controller`] (state `(x, a)`
    /// in the error norm).
    #[serde(rename = "adaptive")]
    Adaptive,
}

named_variants!(AdjointSteps, "adjoint step rule", {
    ForwardGrid => "grid",
    Adaptive => "adaptive",
});

impl Default for ScorePriorConfig {
    fn default() -> Self {
        Self {
            sde: AnySde::Vp(VpSde::default()),
            solver: default_solver(),
            controller: Controller::pid(1e-3, 1e-5),
            t0: 1e-3,
            t1: 1.0,
            max_steps: 4096,
            divergence: Divergence::default(),
            norm_logp: true,
            adjoint_solver: default_solver(),
            // The backward solve starts at T, where the flow is slow: Hairer's heuristic proposes
            // a large first step there (62 evaluations on the benchmark problem against 73 with
            // a fixed 1e-3), so the adjoint keeps the automatic choice.
            adjoint_controller: Controller::pid_auto(1e-3, 1e-5),
            adjoint_steps: AdjointSteps::default(),
            grid_solver: crate::ode::Rk4.tableau(),
        }
    }
}

fn default_solver() -> &'static Tableau {
    crate::ode::Dopri5.tableau()
}

impl ScorePriorConfig {
    /// Sets the SDE.
    pub fn with_sde(mut self, sde: AnySde) -> Self {
        self.sde = sde;
        self
    }
    /// Sets the forward solver.
    pub fn with_solver(mut self, solver: &dyn ExplicitRk) -> Self {
        self.solver = solver.tableau();
        self
    }
    /// Sets the forward controller.
    pub fn with_controller(mut self, controller: Controller) -> Self {
        self.controller = controller;
        self
    }
    /// PID control with these forward tolerances.
    pub fn with_tolerances(mut self, rtol: f64, atol: f64) -> Self {
        self.controller = Controller::pid(rtol, atol);
        self
    }
    /// Sets the adjoint solver.
    pub fn with_adjoint_solver(mut self, solver: &dyn ExplicitRk) -> Self {
        self.adjoint_solver = solver.tableau();
        self
    }
    /// Adaptive PID control of the backward solve with these tolerances
    /// ([`AdjointSteps::Adaptive`]).
    pub fn with_adjoint_tolerances(mut self, rtol: f64, atol: f64) -> Self {
        self.adjoint_controller = Controller::pid_auto(rtol, atol);
        self.adjoint_steps = AdjointSteps::Adaptive;
        self
    }
    /// Sets the solver of each backward step on the forward grid.
    pub fn with_grid_solver(mut self, solver: &dyn ExplicitRk) -> Self {
        self.grid_solver = solver.tableau();
        self
    }
    /// Sets how the backward solve chooses its steps.
    pub fn with_adjoint_steps(mut self, steps: AdjointSteps) -> Self {
        self.adjoint_steps = steps;
        self
    }
    /// Sets `t0`.
    pub fn with_t0(mut self, t0: f64) -> Self {
        self.t0 = t0;
        self
    }
    /// Sets the divergence estimator.
    pub fn with_divergence(mut self, divergence: Divergence) -> Self {
        self.divergence = divergence;
        self
    }
    /// Exact trace.
    pub fn with_exact_trace(self) -> Self {
        self.with_divergence(Divergence::ExactTrace)
    }
    /// Hutchinson with `k` probes.
    pub fn with_hutchinson(self, k: usize, noise: ProbeNoise, seed: u64) -> Self {
        self.with_divergence(Divergence::Hutchinson(Hutchinson { probes: k, noise, seed }))
    }
    /// Sets the step budget.
    pub fn with_max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps;
        self
    }

    /// Checks ranges and tolerances.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] naming the offending field, [`Error::Inconsistent`] for a
    /// solver without an error estimate under an adaptive controller.
    pub fn validate(&self) -> Result<()> {
        if !(self.t1.is_finite() && self.t1 > 0.0) {
            return Err(Error::out_of_range("T (t1)", self.t1, "positive and finite"));
        }
        if !(self.t0.is_finite() && self.t0 >= 0.0 && self.t0 < self.t1) {
            return Err(Error::out_of_range("t0", self.t0, format!("in [0, T = {})", self.t1)));
        }
        if self.max_steps == 0 {
            return Err(Error::count_out_of_range("max_steps", self.max_steps, "at least 1"));
        }
        if let Divergence::Hutchinson(h) = self.divergence {
            if h.probes == 0 {
                return Err(Error::count_out_of_range("Hutchinson probes", h.probes, "at least 1"));
            }
        }
        self.controller.validate_as("controller")?;
        self.adjoint_controller.validate_as("adjoint controller")?;
        // On the forward grid the adjoint controller is unused: any solver steps it.
        let adjoint_adaptive = self.adjoint_steps == AdjointSteps::Adaptive;
        for (tab, c, what, used) in [
            (self.solver, &self.controller, "solver", true),
            (self.adjoint_solver, &self.adjoint_controller, "adjoint solver", adjoint_adaptive),
        ] {
            if used && c.is_adaptive() && !tab.is_adaptive() {
                return Err(Error::inconsistent(
                    format!("{what} {} with an adaptive controller", tab.name),
                    "the solver has no error estimate; use a constant step size with it",
                ));
            }
        }
        Ok(())
    }
}

/// The terminal density `p_T` of the probability-flow log-density.
#[derive(Clone, Default)]
pub enum Terminal {
    /// The SDE's prior `N(0, σ_T² I)` (what a trained model must use).
    #[default]
    Sde,
    /// The data's exact marginal at `T` (for analytic models: removes the prior mismatch, so
    /// that the remaining error is the solver's and the estimator's).
    Exact(Arc<dyn MarginalDensity>),
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Terminal::Sde => write!(f, "Sde"),
            Terminal::Exact(_) => write!(f, "Exact(..)"),
        }
    }
}

/// The score-based prior: log-density by the probability-flow ODE, gradient by the
/// continuous adjoint.
///
/// **What it computes.** `log p_{t0}(x)`, the density of the model's marginal at `t0`, not of
/// the clean data; for small `t0` the two differ by the smoothing of the data with
/// `N(0, σ_{t0}²)` noise (VP, `t0 = 1e-3`: `σ ≈ 0.0105`).
///
/// **The terminal gap.** With [`Terminal::Sde`] the result is `log N(x_T; 0, I) + Δ` as in the
/// reference code. The data's marginal `p_T` is not exactly `N(0, I)`: for VP with
/// `β_max = 20`, `α_T = e^{−5.025} ≈ 0.0066`, so `p_T = N(α_T μ, α_T² Σ + σ_T² I)` with
/// `σ_T² = 1 − α_T² ≈ 1 − 4.3e-5`: a mean offset of `α_T μ` and a variance deficit of
/// `α_T²(1 − λ_i)`. The error is `log N(x_T; 0, I) − log p_T(x_T) ≈ −α_T μᵀz − ½α_T²‖μ‖²`
/// with `z = x_T − α_T μ` (plus terms of order `α_T²` from the variance deficit): zero-mean
/// noise of standard deviation `α_T ‖μ‖`, about 0.05 nats for 16×16 images of mean ≈ 0.5
/// (measured on four samples of a `D = 256` Gaussian: −0.037, 0.0003, 0.121, −0.063 nats, each
/// within 3e-4 of the value predicted from the exact flow map). With [`Terminal::Exact`] this
/// terminal error vanishes, which is how the analytic tests isolate solver error. The `[0, t0]`
/// gap is separate: the result is `log p_{t0}`, not the clean-data density.
///
/// **Batching.** A batch is one ODE state (`n·D + n` values) with one step size, as in the
/// reference; the Hutchinson probes are drawn once per call from the configured seed and are
/// shared by all images and both solves. Change `config.divergence`'s seed between calls for
/// fresh probes.
///
/// ```
/// use scoreprior_core::prior::{Prior, ScorePrior, ScorePriorConfig};
/// use scoreprior_core::score::Gaussian;
/// use scoreprior_core::sde::{AnySde, VpSde};
/// let sde = AnySde::Vp(VpSde::default());
/// let g = Gaussian::new(vec![0.1, 0.2], &[0.5, 0.1, 0.1, 0.3], sde).unwrap();
/// let cfg = ScorePriorConfig::default().with_sde(sde).with_exact_trace().with_tolerances(1e-6, 1e-6);
/// let prior = ScorePrior::new(g.clone(), cfg).unwrap().with_exact_terminal(g.clone());
/// let x = [0.3, -0.1];
/// let out = prior.log_prob(&x).unwrap();
/// let mut exact = [0.0];
/// use scoreprior_core::score::MarginalDensity;
/// g.marginal_log_prob(&x, 1e-3, &mut exact).unwrap();
/// assert!((out.log_prob[0] - exact[0]).abs() < 1e-4);
/// ```
pub struct ScorePrior {
    model: Arc<dyn ScoreModel>,
    config: ScorePriorConfig,
    terminal: Terminal,
    /// The time floor set by [`Prior::set_time_floor`] as `f64` bits, NaN when unset (then
    /// `config.t0` holds): an atomic so that a continuation moves it through `&self` while
    /// each evaluation runs on a copy of the configuration (no lock held during a solve).
    floor: AtomicU64,
}

impl Clone for ScorePrior {
    fn clone(&self) -> Self {
        Self {
            model: self.model.clone(),
            config: self.config.clone(),
            terminal: self.terminal.clone(),
            floor: AtomicU64::new(self.floor.load(Ordering::Relaxed)),
        }
    }
}

impl std::fmt::Debug for ScorePrior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScorePrior")
            .field("dim", &self.model.dim())
            .field("config", &self.config)
            .field("terminal", &self.terminal)
            .finish()
    }
}

impl ScorePrior {
    /// A prior from a score model and a configuration.
    ///
    /// # Errors
    /// [`ScorePriorConfig::validate`]'s errors; a model of dimension 0.
    pub fn new(model: impl ScoreModel + 'static, config: ScorePriorConfig) -> Result<Self> {
        Self::from_arc(Arc::new(model), config)
    }

    /// Same, sharing a model.
    ///
    /// # Errors
    /// As [`ScorePrior::new`].
    pub fn from_arc(model: Arc<dyn ScoreModel>, config: ScorePriorConfig) -> Result<Self> {
        config.validate()?;
        if model.dim() == 0 {
            return Err(Error::count_out_of_range("score model dimension", 0, "at least 1"));
        }
        Ok(Self { model, config, terminal: Terminal::Sde, floor: AtomicU64::new(f64::NAN.to_bits()) })
    }

    /// Uses the exact marginal `p_T` of `density` as the terminal density (testing).
    ///
    /// # Panics
    /// Never; a dimension mismatch is reported by the next evaluation.
    pub fn with_exact_terminal(mut self, density: impl MarginalDensity + 'static) -> Self {
        self.terminal = Terminal::Exact(Arc::new(density));
        self
    }

    /// Sets the terminal density.
    pub fn with_terminal(mut self, terminal: Terminal) -> Self {
        self.terminal = terminal;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ScorePriorConfig {
        &self.config
    }

    /// The configuration, mutably (e.g. to change the Hutchinson seed between calls).
    /// It is validated again at each evaluation; its `t0` replaces a floor set by
    /// [`Prior::set_time_floor`].
    pub fn config_mut(&mut self) -> &mut ScorePriorConfig {
        *self.floor.get_mut() = f64::NAN.to_bits();
        &mut self.config
    }

    /// The lower time limit evaluations use: the floor of [`Prior::set_time_floor`], else
    /// the configuration's `t0`.
    fn t0(&self) -> f64 {
        let f = f64::from_bits(self.floor.load(Ordering::Relaxed));
        if f.is_nan() {
            self.config.t0
        } else {
            f
        }
    }

    /// This prior with the time floor written into its configuration and, when given, a
    /// Hutchinson seed: what one evaluation runs on (a copy of an `Arc` and the
    /// configuration).
    fn resolved(&self, seed: Option<u64>) -> std::borrow::Cow<'_, ScorePrior> {
        let hutchinson = matches!(self.config.divergence, Divergence::Hutchinson(_));
        if self.t0() == self.config.t0 && !(hutchinson && seed.is_some()) {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut p = self.clone();
        p.config.t0 = self.t0();
        if let (Divergence::Hutchinson(h), Some(seed)) = (&mut p.config.divergence, seed) {
            h.seed = seed;
        }
        std::borrow::Cow::Owned(p)
    }

    /// The score model.
    pub fn model(&self) -> &Arc<dyn ScoreModel> {
        &self.model
    }

    fn check_input(&self, x: &[f64]) -> Result<usize> {
        self.config.validate()?;
        let n = check_batch(x, self.model.dim(), "x")?;
        if x.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite { what: "input x", t: self.config.t0 });
        }
        if let Terminal::Exact(m) = &self.terminal {
            if m.dim() != self.model.dim() {
                return Err(Error::shape("terminal density dimension", self.model.dim(), m.dim()));
            }
        }
        Ok(n)
    }

    fn opts(&self) -> SolveOptions {
        SolveOptions { max_steps: self.config.max_steps, ..SolveOptions::default() }
    }

    /// Forward solve (with `keep_steps`, recording the step times and states).
    fn forward(&self, x: &[f64], keep_steps: bool) -> Result<ForwardSolve> {
        let n = self.check_input(x)?;
        let c = &self.config;
        if let Divergence::Hutchinson(h) = &c.divergence {
            // The probes (K, D), and their cotangents and vector-Jacobian products (K, n, D)
            // each, sized before the first is drawn.
            let d = self.model.dim();
            crate::limits::check_elems(
                &format!("{} Hutchinson probes for {n} image(s) of {d} values (probes × images × D)", h.probes),
                &[h.probes, n.saturating_mul(2).saturating_add(1), d],
                8,
            )?;
        }
        let mut field = ProbabilityFlow::new(self.model.as_ref(), &c.sde, &c.divergence)?;
        let mut ctrl = c.controller.clone();
        let mut opts = self.opts();
        opts.saveat.steps = keep_steps;
        let sol = integrate_flow(&mut field, &c.solver, &mut ctrl, c.t0, c.t1, x, &opts, c.norm_logp)?;
        let mut lp = vec![0.0; n];
        match &self.terminal {
            Terminal::Sde => {
                let d = self.model.dim();
                for (o, xt) in lp.iter_mut().zip(sol.x_end.chunks(d)) {
                    *o = c.sde.prior_log_prob(xt);
                }
            }
            Terminal::Exact(m) => m.marginal_log_prob(&sol.x_end, c.t1, &mut lp)?,
        }
        for (o, dl) in lp.iter_mut().zip(&sol.delta_logp) {
            *o += dl;
        }
        Ok(ForwardSolve { log_prob: lp, stats: sol.stats, plan: field.plan().clone(), sol })
    }
}

/// What the forward solve hands to the adjoint.
struct ForwardSolve {
    log_prob: Vec<f64>,
    stats: Stats,
    plan: crate::divergence::DivergencePlan,
    sol: crate::pf_ode::FlowSolution,
}

impl Prior for ScorePrior {
    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn log_prob(&self, x: &[f64]) -> Result<LogProb> {
        let p = self.resolved(None);
        in_pool(|| {
            let f = p.forward(x, false)?;
            Ok(LogProb { log_prob: f.log_prob, stats: PriorStats { forward: f.stats, adjoint: Stats::default() } })
        })
    }

    fn grad_log_prob(&self, x: &[f64]) -> Result<LogProbGrad> {
        let p = self.resolved(None);
        in_pool(|| p.grad_log_prob_here(x))
    }

    /// Fresh Hutchinson probes for this call (their seed drawn from `rng`, as the reference
    /// code draws one probe set per loss evaluation, shared by the batch and the whole
    /// solve); with the exact trace nothing is drawn.
    fn grad_log_prob_with(&self, x: &[f64], rng: &mut dyn RngCore) -> Result<LogProbGrad> {
        let seed = matches!(self.config.divergence, Divergence::Hutchinson(_)).then(|| rng.next_u64());
        let p = self.resolved(seed);
        in_pool(|| p.grad_log_prob_here(x))
    }

    fn time_floor(&self) -> Option<f64> {
        Some(self.t0())
    }

    fn set_time_floor(&self, t0: f64) -> Result<()> {
        let t1 = self.config.t1;
        if !(t0.is_finite() && t0 > 0.0 && t0 < t1) {
            return Err(Error::out_of_range("PF-ODE prior: time floor t0", t0, format!("in (0, {t1})")));
        }
        self.floor.store(t0.to_bits(), Ordering::Relaxed);
        Ok(())
    }
}

/// Runs a solve on a rayon worker thread. A model that splits each evaluation over threads
/// (e.g. [`crate::score::Gaussian`]'s products) then forks from inside the pool, which costs about 1 µs,
/// instead of injecting each job from outside and blocking on it (measured 10–12 µs per
/// fork–join on this 2-core machine, tens of times per solve). Inside the pool already, this
/// is a plain call.
fn in_pool<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if rayon::current_thread_index().is_some() || rayon::current_num_threads() < 2 {
        f()
    } else {
        let mut out = None;
        rayon::scope(|_| out = Some(f()));
        out.expect("the scope ran its body")
    }
}

impl ScorePrior {
    fn grad_log_prob_here(&self, x: &[f64]) -> Result<LogProbGrad> {
        let c = &self.config;
        let f = self.forward(x, c.adjoint_steps == AdjointSteps::ForwardGrid)?;
        let x_end = &f.sol.x_end;
        let mut a_end = vec![0.0; x_end.len()];
        match &self.terminal {
            Terminal::Sde => {
                let s2 = c.sde.prior_std().powi(2);
                for (a, xv) in a_end.iter_mut().zip(x_end) {
                    *a = -xv / s2;
                }
            }
            Terminal::Exact(m) => m.marginal_grad_log_prob(x_end, c.t1, &mut a_end)?,
        }
        let mut field = AdjointField::new(self.model.as_ref(), &c.sde, f.plan);
        let adj = match c.adjoint_steps {
            AdjointSteps::Adaptive => {
                let mut ctrl = c.adjoint_controller.clone();
                backsolve(&mut field, &c.adjoint_solver, &mut ctrl, c.t1, c.t0, x_end, &a_end, &self.opts())?
            }
            AdjointSteps::ForwardGrid => {
                let (ts, xs) = (&f.sol.step_times, &f.sol.step_x);
                // One backward step per forward step, each restarted from the forward's state at
                // its start: x is not re-integrated, so its error does not reach a.
                let mut a = a_end;
                let mut stats = Stats::default();
                let mut grid: Vec<usize> = (0..ts.len()).collect();
                merge_short_last_step(ts, &mut grid);
                for w in grid.windows(2).rev() {
                    let (lo, hi) = (w[0], w[1]);
                    let mut ctrl = StepTo::new(vec![ts[hi], ts[lo]])?;
                    let r =
                        backsolve(&mut field, &c.grid_solver, &mut ctrl, ts[hi], ts[lo], &xs[hi], &a, &self.opts())?;
                    a = r.grad;
                    stats += r.stats;
                }
                crate::adjoint::AdjointSolution { grad: a, x_start: xs[0].clone(), stats }
            }
        };
        Ok(LogProbGrad {
            log_prob: f.log_prob,
            grad: adj.grad,
            stats: PriorStats { forward: f.stats, adjoint: adj.stats },
        })
    }
}

/// Drops the last-but-one grid point when the last forward step is shorter than half the one
/// before it (it was cut short to land on `T`): the backward step from `T` then spans both.
fn merge_short_last_step(ts: &[f64], grid: &mut Vec<usize>) {
    let m = grid.len();
    if m >= 3 {
        let (a, b, c) = (ts[grid[m - 3]], ts[grid[m - 2]], ts[grid[m - 1]]);
        if (c - b).abs() < 0.5 * (b - a).abs() {
            grid.remove(m - 2);
        }
    }
}
