//! # scoreprior
//!
//! Score-based diffusion models as principled priors for inverse imaging. This facade
//! re-exports the three crates of the workspace:
//! - [`macros`]: `#[butcher_tableau]` (declare a Runge–Kutta solver from its coefficients,
//!   checked at compile time) and `#[forward_model]` (declare a measurement operator);
//! - [`core`]: ODE solvers, SDEs, score-based log-probabilities and their adjoint
//!   gradients, forward models, DPI and baselines, over traits;
//! - [`models`]: NCSN++ score networks and RealNVP flows on dfdx.
//!
//! Its own modules are the [`experiment`] API (a DPI run as one value, its typed settings,
//! priors, results), [`logprob`] of image batches, simulated [`measurement`]s and the progress
//! [`monitor`] of long calls. The `scoreprior` command, the studies and their run folders are
//! the application crate `scoreprior-cli`, built on this one. With the `cli` feature (off by
//! default) the run settings also derive clap's `Args`.

pub mod experiment;
pub mod logprob;
pub mod measurement;
pub mod monitor;

pub use scoreprior_core as core;
pub use scoreprior_macros as macros;
pub use scoreprior_models as models;

/// The names most programs need.
pub mod prelude {
    pub use crate::experiment::{
        Baseline, Continuation, DsmSettings, Experiment, ExperimentError, ExperimentResult, PosteriorSettings, Prior,
        ShapedPrior,
    };
    pub use scoreprior_core::divergence::{Divergence, Hutchinson, ProbeNoise};
    pub use scoreprior_core::dpi::{DpiConfig, Energy, StepRecord};
    pub use scoreprior_core::forward::{parse_model, Chain, ForwardModel, Model, Noise, NoiseSpec, Shape};
    pub use scoreprior_core::io::{read_npy, write_npy};
    pub use scoreprior_core::ode::{
        solve, ConstantStepSize, ExplicitRk, PidController, SaveAt, Solution, SolveOptions, State, Stats, Tableau,
        VectorField,
    };
    pub use scoreprior_core::ode::{Bosh3, Dopri5, Dopri8, Euler, Heun, Rk4, Tsit5};
    pub use scoreprior_core::prior::ScorePriorConfig;
    pub use scoreprior_core::score::{Gaussian, GaussianMixture, ScoreModel};
    pub use scoreprior_core::sde::{AnySde, Sde, SubVpSde, VeSde, VpSde};
    pub use scoreprior_core::{Error, Result};
    pub use scoreprior_macros::{butcher_tableau, forward_model};
}

#[cfg(doctest)]
mod doc_tests;
