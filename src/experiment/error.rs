//! The errors of an experiment and of the studies built on it: a setting out of range (named by
//! its field or flag), an inconsistent [`DpiSettings`](super::DpiSettings), or an error of the
//! crates below.

/// Errors of an experiment: a setting out of range (named), or an error of the crates below.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// A setting of the experiment is out of range; `field` names it.
    #[error("{field}: {why}")]
    Invalid {
        /// The builder method (or configuration field) at fault.
        field: &'static str,
        /// What is wrong with its value.
        why: String,
    },
    /// An error of `scoreprior-core` (solvers, forward models, DPI loop, i/o).
    #[error(transparent)]
    Core(#[from] scoreprior_core::Error),
    /// An error of `scoreprior-models` (networks, flows, checkpoints).
    #[error(transparent)]
    Model(#[from] scoreprior_models::ModelError),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] scoreprior_core::io::IoError),
    /// A figure could not be written.
    #[error("plot: {0}")]
    Plot(String),
    /// An output folder cannot be used (taken by another run, holding a different run); the
    /// message names the flag and the folder.
    #[error(transparent)]
    Path(#[from] scoreprior_core::io::PathError),
    /// A run described by [`DpiSettings`](super::DpiSettings) is inconsistent or names an unusable file; the
    /// message names each setting by its path in [`DpiSettings`](super::DpiSettings) (`problem.x_true`,
    /// `prior.time_floor`, …), which the command line shows as its flag (`--x-true`).
    #[error("{0}")]
    Settings(String),
}

/// `Result` with [`ExperimentError`].
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;

pub(super) fn invalid(field: &'static str, why: impl Into<String>) -> ExperimentError {
    ExperimentError::Invalid { field, why: why.into() }
}

/// [`ExperimentError::Invalid`] naming `field`: for programs built on experiments (the studies).
pub fn invalid_setting(field: &'static str, why: impl Into<String>) -> ExperimentError {
    invalid(field, why)
}
