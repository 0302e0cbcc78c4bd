//! A DPI experiment as one library value: a measurement `y = A(x) + n` (read, or simulated
//! from a ground truth and a seed), a prior `p(x)`, a RealNVP posterior family `q_θ`, and the
//! optimisation of `E_q[−log p(y|x) − log p(x) + log q(x)]` (see [`scoreprior_core::dpi`]).
//!
//! [`Experiment::builder`] takes the forward model; the builder's defaults are the CLI's
//! (`scoreprior dpi`), [`ExperimentBuilder::build`] checks everything before any work, and
//! [`Experiment::run`] trains, samples and measures, returning an [`ExperimentResult`] that
//! [`ExperimentResult::save`] writes to a folder. [`DpiSettings`] is the same run as plain
//! data, setting for setting the `dpi` command's flags (which are argument mapping onto it).
//!
//! ```
//! use scoreprior::prelude::*;
//!
//! #[forward_model(input = [1, 4, 4], ops = [identity], noise = gaussian(sigma = 0.3))]
//! struct Denoise;
//!
//! let truth = vec![0.5; 16];
//! let prior = Gaussian::diagonal(vec![0.5; 16], &[0.04; 16], AnySde::Vp(VpSde::default())).unwrap();
//! let result = Experiment::builder(Denoise)
//!     .truth(truth, 4, 4)
//!     .prior(Prior::gaussian(prior))
//!     .steps(150)
//!     .batch(32)
//!     .samples(64)
//!     .build()
//!     .unwrap()
//!     .run()
//!     .unwrap();
//! // The closed-form posterior of a Gaussian prior is the yardstick.
//! let cf = result.report.closed_form.unwrap();
//! assert!(cf.mean_rmse < 0.1, "{cf:?}");
//! ```
//!
//! The files: `error.rs` ([`ExperimentError`]), `posterior.rs` (the posterior family and the
//! optimisation defaults), `builder.rs` ([`ExperimentBuilder`] and its checks), `run.rs` (the
//! checked [`Experiment`], its MAP and Laplace starts and DPI run), `baseline.rs` (the
//! diffusion-based samplers run in its place, [`Baseline`]).

mod baseline;
mod build;
mod builder;
pub mod eht;
mod error;
mod flow_map;
pub mod inputs;
mod posterior;
mod prior;
mod result;
mod run;
mod settings;

pub use baseline::{Baseline, DPS_ZETA_MAX};
pub use builder::ExperimentBuilder;
use error::invalid;
pub use error::{conflicting_settings, invalid_setting};
pub use error::{ExperimentError, Result};
pub use posterior::{default_dpi_config, Continuation, MapWarmStart, PosteriorSettings};
pub use prior::{DsmSettings, Prior, ShapedPrior};
pub use run::Experiment;
pub use settings::{
    DataRamp, DpiSettings, EhtData, FlowOptions, LaplaceMode, ObjectiveOptions, OptimOptions, OutputOptions, PriorKind,
    PriorOptions, ProblemOptions, SolveOptions,
};
mod laplace;
mod map;
pub use laplace::LaplaceStart;
pub use result::{summary_table, ClosedFormErrors, DenoisingReferences, ExperimentResult, Report};
pub use scoreprior_core::dpi::{Annealing, LossWeights, TimeFloorSchedule};
