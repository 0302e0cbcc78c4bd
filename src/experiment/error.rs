//! The errors of an experiment and of the studies built on it, each a kind a caller can match
//! on: a setting out of range or unusable ([`ExperimentError::Invalid`], named by its path in
//! [`DpiSettings`](super::DpiSettings) or by its flag), settings that are each valid but do not
//! go together ([`ExperimentError::Conflict`]), an output folder that cannot be used
//! ([`ExperimentError::Path`]), or an error of the crates below.
//!
//! The settings are named by their paths in [`DpiSettings`](super::DpiSettings)
//! (`prior.time_floor`, `problem.x_true`, …), both as fields and in the messages, which the
//! command line shows with its flags (`--time-floor`, `--x-true`).

/// Errors of an experiment: a setting out of range (named), settings that do not go together
/// (named), an unusable output folder, or an error of the crates below.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// One setting is at fault: out of range, an unusable value, or an input file it names that
    /// is missing, unreadable or malformed. `field` names it: its path in
    /// [`DpiSettings`](super::DpiSettings) (`prior.time_floor`, `problem.x_true`), the builder
    /// method, or in programs that speak flags, the flag (`--priors`).
    #[error("{field}: {why}")]
    Invalid {
        /// The setting at fault: its path in [`DpiSettings`](super::DpiSettings), builder
        /// method or flag.
        field: &'static str,
        /// What is wrong with its value (`must be in (0, 1), got 2`).
        why: String,
    },
    /// Settings that are each valid but do not go together (`problem.y` and `problem.x_true`
    /// both given, `flow.laplace` without `flow.map_steps`, `prior.surrogate` with a prior that
    /// has no score). `settings` names them, as `Invalid`'s `field` does; the message `why`
    /// names them too, and is the whole of the error's text.
    #[error("{why}")]
    Conflict {
        /// The settings involved, by their paths in [`DpiSettings`](super::DpiSettings) or
        /// their flags.
        settings: &'static [&'static str],
        /// Why they do not go together, naming each (`give exactly one of problem.y and
        /// problem.x_true`).
        why: String,
    },
    /// An error of `scoreprior-core` (solvers, forward models, DPI loop, i/o).
    #[error(transparent)]
    Core(#[from] scoreprior_core::Error),
    /// An error of `scoreprior-models` (networks, flows, checkpoints).
    #[error(transparent)]
    Model(#[from] scoreprior_models::ModelError),
    /// A file could not be read, written or encoded.
    #[error(transparent)]
    Io(#[from] scoreprior_core::io::IoError),
    /// A figure could not be written.
    #[error("plot: {0}")]
    Plot(String),
    /// An output folder cannot be used (taken by another run, holding a different or a previous
    /// run); the message names the flag and the folder.
    #[error(transparent)]
    Path(#[from] scoreprior_core::io::PathError),
}

/// `Result` with [`ExperimentError`].
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;

pub(super) fn invalid(field: &'static str, why: impl Into<String>) -> ExperimentError {
    ExperimentError::Invalid { field, why: why.into() }
}

pub(super) fn conflict(settings: &'static [&'static str], why: impl Into<String>) -> ExperimentError {
    ExperimentError::Conflict { settings, why: why.into() }
}

/// [`ExperimentError::Invalid`] naming `field`: for programs built on experiments (the studies).
pub fn invalid_setting(field: &'static str, why: impl Into<String>) -> ExperimentError {
    invalid(field, why)
}

/// [`ExperimentError::Conflict`] naming `settings`: for programs built on experiments (the
/// studies).
pub fn conflicting_settings(settings: &'static [&'static str], why: impl Into<String>) -> ExperimentError {
    conflict(settings, why)
}
