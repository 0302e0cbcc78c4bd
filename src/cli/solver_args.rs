//! `--solver`, `--rtol`, `--atol`: one declaration of the probability-flow ODE's solver flags,
//! flattened into [`OdeArgs`](super::ode_args::OdeArgs) (`logprob`, the studies) and into
//! `dpi`'s prior flags.

use clap::Args;

/// `--solver`, `--rtol`, `--atol`: the probability-flow ODE's solver and tolerances, shared by
/// [`OdeArgs`] and `dpi` (which words them for its two solves).
#[derive(Debug, Clone, Args)]
pub struct SolverArgs {
    /// Runge–Kutta solver of the probability-flow ODE (euler, heun, rk4, bosh3, tsit5, dopri5,
    /// dopri8). Solvers without an error estimate (euler, rk4) run with fixed steps `--dt`.
    #[arg(long, default_value = "dopri5")]
    pub solver: String,
    /// Relative tolerance of the adaptive step-size controller.
    #[arg(long, default_value_t = 1e-3)]
    pub rtol: f64,
    /// Absolute tolerance of the adaptive step-size controller.
    #[arg(long, default_value_t = 1e-5)]
    pub atol: f64,
}
