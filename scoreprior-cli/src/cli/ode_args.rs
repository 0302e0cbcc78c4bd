//! Solver and divergence flags shared by `logprob` and the studies (`--sde`, `--solver`,
//! tolerances, steps, `--trace`/`--hutchinson`/`--probe`/`--seed`), and their mapping onto
//! [`ScorePriorConfig`]: one place, so every command reads the estimator flags alike.

use clap::{Args, ValueEnum};
use scoreprior_core::divergence::{Divergence, Hutchinson, ProbeNoise};
use scoreprior_core::ode::PidController;
use scoreprior_core::prior::{Controller, ScorePriorConfig};
use scoreprior_core::sde::AnySde;
use serde::Serialize;

use super::CliResult;
pub use scoreprior::experiment::SolveOptions as SolverArgs;

/// The SDE a prior was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SdeName {
    /// Variance preserving, β from 0.1 to 20.
    Vp,
    /// Sub-variance preserving, β from 0.1 to 20.
    Subvp,
    /// Variance exploding, σ from 0.01 to 50.
    Ve,
}

impl SdeName {
    /// The name as accepted by [`AnySde::from_name`].
    pub fn as_str(self) -> &'static str {
        match self {
            SdeName::Vp => "vp",
            SdeName::Subvp => "subvp",
            SdeName::Ve => "ve",
        }
    }
    /// The SDE with its default parameters.
    pub fn sde(self) -> CliResult<AnySde> {
        Ok(AnySde::from_name(self.as_str())?)
    }
}

/// Probe distribution of the Hutchinson estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeName {
    /// ±1 entries.
    Rademacher,
    /// Standard normal entries.
    Gaussian,
}

impl From<ProbeName> for ProbeNoise {
    fn from(p: ProbeName) -> Self {
        match p {
            ProbeName::Rademacher => ProbeNoise::Rademacher,
            ProbeName::Gaussian => ProbeNoise::Gaussian,
        }
    }
}

/// Solver and divergence options shared by `logprob` and the studies.
#[derive(Debug, Clone, Args)]
pub struct OdeArgs {
    /// SDE of the score model.
    #[arg(long, value_enum, default_value_t = SdeName::Vp)]
    pub sde: SdeName,
    /// The solver and its tolerances.
    #[command(flatten)]
    pub solve: SolverArgs,
    /// First step of the adaptive forward solve: a number, or `auto` for Hairer's heuristic
    /// (the backward adjoint solve always uses the heuristic). Default: the reference
    /// script's 0.001.
    #[arg(long, default_value = "0.001", value_parser = parse_dt0)]
    pub dt0: FirstStep,
    /// Fixed step size for solvers without an error estimate; at most the integration
    /// interval T − t0 (a larger step would jump past the interval in one step).
    #[arg(long, default_value_t = 1.0 / 4092.0)]
    pub dt: f64,
    /// Lower integration limit `t0` (the density returned is that of the marginal at t0).
    #[arg(long, default_value_t = 1e-3)]
    pub t0: f64,
    /// Maximum number of steps of each solve.
    #[arg(long, default_value_t = 4096)]
    pub max_steps: usize,
    /// Divergence estimator: `exact` trace, or `hutchinson` (see --hutchinson). Default:
    /// hutchinson for `logprob` (as the reference code), exact for the solver study.
    #[arg(long, value_parser = ["exact", "hutchinson"])]
    pub trace: Option<String>,
    /// Number of Hutchinson probes K (with --trace hutchinson, the default).
    #[arg(long, default_value_t = 16)]
    pub hutchinson: usize,
    /// Distribution of the Hutchinson probes.
    #[arg(long, value_enum, default_value_t = ProbeName::Rademacher)]
    pub probe: ProbeName,
    /// Seed of the Hutchinson probes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The `--dt0` value: a fixed first step or Hairer's automatic choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FirstStep {
    /// Hairer's heuristic.
    Auto,
    /// This step.
    Fixed(f64),
}

fn parse_dt0(s: &str) -> Result<FirstStep, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(FirstStep::Auto);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(FirstStep::Fixed(v)),
        Ok(v) => Err(format!("the first step must be finite and positive, got {v}")),
        Err(_) => Err(format!("expected a positive number or `auto`, got `{s}`")),
    }
}

impl OdeArgs {
    /// `exact` or `hutchinson` (the default when `--trace` is not given).
    pub fn trace_kind(&self) -> &str {
        self.trace.as_deref().unwrap_or("hutchinson")
    }

    /// The divergence estimator selected by `--trace`, `--hutchinson`, `--probe`, `--seed`.
    pub fn divergence(&self) -> CliResult<Divergence> {
        Ok(match self.trace_kind() {
            "exact" => Divergence::ExactTrace,
            _ => Divergence::Hutchinson(Hutchinson::new(self.hutchinson, self.probe.into(), self.seed)?),
        })
    }

    /// The prior configuration: forward and adjoint solves use the same solver and
    /// tolerances (as the reference code, which uses Dopri5 with rtol 1e-3 / atol 1e-5 for both),
    /// on the forward grid too (the studies' numbers were measured so; `dpi`'s default steps the
    /// grid with RK4, see `PriorOptions::adjoint_grid_solver`).
    pub fn config(&self) -> CliResult<ScorePriorConfig> {
        let SolverArgs { solver, rtol, atol } = &self.solve;
        let (tab, rtol, atol) = (solver.solver().tableau(), *rtol, *atol);
        let (controller, adjoint_controller) = if tab.is_adaptive() {
            let forward = match self.dt0 {
                FirstStep::Auto => Controller::pid_auto(rtol, atol),
                FirstStep::Fixed(dt0) => Controller::Pid(PidController::new(rtol, atol).with_dt0(dt0)),
            };
            (forward, Controller::pid_auto(rtol, atol))
        } else {
            (Controller::constant(self.dt), Controller::constant(self.dt))
        };
        let cfg = ScorePriorConfig {
            sde: self.sde.sde()?,
            solver: tab,
            controller,
            t0: self.t0,
            max_steps: self.max_steps,
            divergence: self.divergence()?,
            adjoint_solver: tab,
            adjoint_controller,
            grid_solver: tab,
            ..ScorePriorConfig::default()
        };
        cfg.validate()?;
        // One step larger than the whole interval is a single, silently inaccurate step.
        if !tab.is_adaptive() && self.dt > cfg.t1 - cfg.t0 {
            return Err(format!(
                "--dt {}: larger than the integration interval T − t0 = {} − {} = {}; use --dt at most that",
                self.dt,
                cfg.t1,
                cfg.t0,
                cfg.t1 - cfg.t0
            )
            .into());
        }
        Ok(cfg)
    }

    /// A JSON description of the estimator.
    pub fn trace_json(&self) -> serde_json::Value {
        match self.trace_kind() {
            "exact" => serde_json::json!({ "kind": "exact" }),
            _ => serde_json::json!({
                "kind": "hutchinson",
                "probes": self.hutchinson,
                "noise": format!("{:?}", self.probe).to_lowercase(),
                "seed": self.seed,
            }),
        }
    }
}
