//! # scoreprior-core
//!
//! The numerical heart of scoreprior: explicit Runge–Kutta solvers declared as data
//! (`#[butcher_tableau]`), a generic adaptive integrator, SDEs, score models and the
//! probability-flow log-density `log p0(x0) = log pT(xT) + ∫ div f̃(xt,t) dt`, forward
//! models `y = A(x) + n`, and the DPI algorithms over traits. Nothing here knows dfdx.

// The proc macros emit absolute paths into `::scoreprior_core`; this lets the crate use
// its own macros.
extern crate self as scoreprior_core;

pub mod adjoint;
pub mod baselines;
pub mod denoise;
pub mod divergence;
pub mod dpi;
pub mod error;
pub mod forward;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod ode;
pub mod pf_ode;
pub mod prior;
/// The DSM-bound prior under its first path (now [`prior::dsm`]).
pub use prior::dsm as prior_dsm;
/// Total variation under its first path (now [`prior::tv`]).
pub use prior::tv as prior_tv;
pub mod score;
pub mod sde;
pub mod stats;

pub use error::{Error, Result};
pub use scoreprior_macros::butcher_tableau;
