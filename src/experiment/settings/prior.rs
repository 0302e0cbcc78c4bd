//! The prior `p(x)` of a DPI run and how `log p` is estimated: which prior
//! ([`PriorKind`]), the probability-flow ODE's solver and tolerances ([`SolveOptions`]), the
//! adjoint's steps, and the denoising-score-matching bound's time floor and draws.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use scoreprior_core::ode::SolverKind;
use scoreprior_core::prior::AdjointSteps;
use scoreprior_core::prior_dsm::TimeDensity;
use serde::{Deserialize, Serialize};

#[cfg(feature = "cli")]
use super::names;

/// Which prior: a Gaussian through the PF-ODE or in closed form, total variation, a saved
/// RealNVP density, or an NCSN++ checkpoint. Written and read as its command-line value
/// (`gaussian-ode`, `gaussian`, `tv`, `flow:FILE`, or the checkpoint's path).
///
/// ```
/// use scoreprior::experiment::PriorKind;
///
/// let p: PriorKind = "flow:assets/flow.safetensors".parse().unwrap();
/// assert_eq!(p, PriorKind::Flow("assets/flow.safetensors".into()));
/// assert_eq!(p.to_string(), "flow:assets/flow.safetensors");
/// assert_eq!("net.safetensors".parse::<PriorKind>().unwrap(), PriorKind::Checkpoint("net.safetensors".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum PriorKind {
    /// The analytic score of the Gaussian (`mean`, `cov`) through the PF-ODE (or the DSM bound
    /// with `surrogate`).
    #[default]
    GaussianOde,
    /// The same Gaussian's closed-form log-density.
    Gaussian,
    /// Total variation with weight `tv_weight`.
    Tv,
    /// A RealNVP density saved with `RealNvp::save_file` (`flow:FILE`).
    Flow(PathBuf),
    /// An NCSN++ checkpoint file (PF-ODE and adjoint, or the DSM bound with `surrogate`).
    Checkpoint(PathBuf),
}

impl fmt::Display for PriorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PriorKind::GaussianOde => f.write_str("gaussian-ode"),
            PriorKind::Gaussian => f.write_str("gaussian"),
            PriorKind::Tv => f.write_str("tv"),
            PriorKind::Flow(p) => write!(f, "flow:{}", p.display()),
            PriorKind::Checkpoint(p) => write!(f, "{}", p.display()),
        }
    }
}

impl FromStr for PriorKind {
    type Err = std::convert::Infallible;
    /// Every text is a prior: a name, `flow:FILE`, or else a checkpoint path (whether it
    /// exists is checked when the run is built).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "gaussian-ode" => PriorKind::GaussianOde,
            "gaussian" => PriorKind::Gaussian,
            "tv" => PriorKind::Tv,
            _ => match s.strip_prefix("flow:") {
                Some(file) => PriorKind::Flow(file.into()),
                None => PriorKind::Checkpoint(s.into()),
            },
        })
    }
}

impl From<String> for PriorKind {
    fn from(s: String) -> Self {
        let Ok(p) = s.parse();
        p
    }
}

impl From<&str> for PriorKind {
    fn from(s: &str) -> Self {
        let Ok(p) = s.parse();
        p
    }
}

impl From<PriorKind> for String {
    fn from(p: PriorKind) -> Self {
        p.to_string()
    }
}

/// The probability-flow ODE's Runge–Kutta solver and the tolerances of its adaptive steps
/// (`--solver`, `--rtol`, `--atol` of `logprob`, the studies and `dpi`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct SolveOptions {
    /// Runge–Kutta solver of the probability-flow ODE (euler, heun, rk4, bosh3, tsit5, dopri5,
    /// dopri8). Solvers without an error estimate (euler, rk4) run with fixed steps `--dt`.
    #[cfg_attr(feature = "cli", arg(long, ignore_case = true, default_value_t = SolveOptions::default().solver,
        value_parser = names::<SolverKind>(&scoreprior_core::ode::SOLVER_NAMES)))]
    pub solver: SolverKind,
    /// Relative tolerance of the adaptive step-size controller.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = SolveOptions::default().rtol))]
    pub rtol: f64,
    /// Absolute tolerance of the adaptive step-size controller.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = SolveOptions::default().atol))]
    pub atol: f64,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self { solver: SolverKind::Dopri5, rtol: 1e-3, atol: 1e-5 }
    }
}

/// `dpi`: the prior `p(x)` and how its log-density is estimated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
// The shared solver flags in `dpi`'s words (it runs them for a forward and an adjoint solve).
#[cfg_attr(feature = "cli", command(
    mut_arg("solver", |a| a.help("ODE solver of the score-based prior (forward and adjoint solves)")),
    mut_arg("rtol", |a| a.help("Relative tolerance of both solves")),
    mut_arg("atol", |a| a.help("Absolute tolerance of both solves"))
))]
#[serde(default)]
pub struct PriorOptions {
    /// Prior: `gaussian-ode` (exact score-based prior from the analytic score of --mean/--cov
    /// through the PF-ODE), `gaussian` (closed form of the same Gaussian), `tv` (total
    /// variation, --tv-weight), `flow:FILE` (a RealNVP density saved with
    /// `RealNvp::save_file`, the supplement's flow prior), or an NCSN++ checkpoint file
    /// (PF-ODE + adjoint).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().prior))]
    pub prior: PriorKind,
    /// Mean of the Gaussian priors (.npy).
    #[cfg_attr(feature = "cli", arg(long, default_value_os_t = PriorOptions::default().mean))]
    pub mean: PathBuf,
    /// Covariance of the Gaussian priors (.npy, D×D).
    #[cfg_attr(feature = "cli", arg(long, default_value_os_t = PriorOptions::default().cov))]
    pub cov: PathBuf,
    /// Hutchinson probes of the score-based prior (fresh Rademacher probes each step);
    /// 0 for the exact trace.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().probes))]
    pub probes: usize,
    /// The solver of both solves (forward and adjoint) and their tolerances.
    #[cfg_attr(feature = "cli", command(flatten))]
    #[serde(flatten)]
    pub solve: SolveOptions,
    /// PF-ODE priors: steps of the adjoint solve, `grid` (one backward step per forward step,
    /// restarted from the forward's states) or `adaptive` (its own PID control at
    /// --rtol/--atol; more evaluations and rejected steps, a larger gradient error).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().adjoint_steps,
        value_parser = names::<AdjointSteps>(&AdjointSteps::NAMES)))]
    pub adjoint_steps: AdjointSteps,
    /// PF-ODE priors with `--adjoint-steps grid`: the Runge–Kutta method of each backward step
    /// (one fixed step per forward step, so any solver). RK4 is as accurate there as Dopri5
    /// with 4 evaluations per step instead of 7 (`benches/RESULTS.md`).
    #[cfg_attr(feature = "cli", arg(long, ignore_case = true, default_value_t = PriorOptions::default().adjoint_grid_solver,
        value_parser = names::<SolverKind>(&scoreprior_core::ode::SOLVER_NAMES)))]
    pub adjoint_grid_solver: SolverKind,
    /// Score priors (`gaussian-ode`, NCSN++): use the cheap denoising-score-matching lower
    /// bound on log p (one time draw per image, first-order VJPs only) instead of the PF-ODE.
    #[cfg_attr(feature = "cli", arg(long))]
    pub surrogate: bool,
    /// Score priors: lower time limit of the prior at the end of the run (`ε` of the DSM
    /// bound, `t0` of the PF-ODE).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().time_floor))]
    pub time_floor: f64,
    /// Noise-level continuation of score priors: start the prior's time floor at this value
    /// and lower it geometrically to --time-floor over --time-floor-steps (0: off; ignored for
    /// priors without a time floor). A large floor (0.1) smooths the prior's landscape so the
    /// flow does not settle in a spurious optimum far from the data.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().time_floor_from))]
    pub time_floor_from: f64,
    /// Length of the continuation ramp in steps (0: half of --steps).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().time_floor_steps))]
    pub time_floor_steps: usize,
    /// DSM surrogate: time draws per image per step (all in one network batch with the
    /// decoder term: draws + 1 passes per image). The reference uses 1; 4 stratified antithetic
    /// log-uniform draws have 1/27 of its gradient variance at 2.5× its cost
    /// (`scoreprior-models/examples/dsm_variance.rs`).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().dsm_draws))]
    pub dsm_draws: usize,
    /// DSM surrogate: density of the time draws: `g2` (∝ g²/σ², the reference),
    /// `log-uniform` (∝ 1/t) or `uniform`.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().dsm_time_density,
        value_parser = names::<TimeDensity>(&TimeDensity::NAMES)))]
    pub dsm_time_density: TimeDensity,
    /// DSM surrogate: stratify the time draws of each image.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().dsm_stratified,
        action = clap::ArgAction::Set))]
    pub dsm_stratified: bool,
    /// DSM surrogate: antithetic noise pairs (z, −z) (needs an even --dsm-draws).
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().dsm_antithetic,
        action = clap::ArgAction::Set))]
    pub dsm_antithetic: bool,
    /// Weight of the TV prior.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = PriorOptions::default().tv_weight))]
    pub tv_weight: f64,
}

impl Default for PriorOptions {
    fn default() -> Self {
        Self {
            prior: PriorKind::GaussianOde,
            mean: "assets/gaussian16/mean.npy".into(),
            cov: "assets/gaussian16/cov.npy".into(),
            probes: 16,
            solve: SolveOptions::default(),
            adjoint_steps: AdjointSteps::ForwardGrid,
            adjoint_grid_solver: SolverKind::Rk4,
            surrogate: false,
            time_floor: 1e-3,
            time_floor_from: 0.1,
            time_floor_steps: 0,
            dsm_draws: 4,
            dsm_time_density: TimeDensity::LogUniform,
            dsm_stratified: true,
            dsm_antithetic: true,
            tv_weight: 1.0,
        }
    }
}
