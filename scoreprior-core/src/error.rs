//! The one error type of `scoreprior-core`: every fallible operation returns [`Result`].
//!
//! Variants carry the data a user needs to act on the failure (where, what, which limit).

use thiserror::Error;

/// Errors of `scoreprior-core`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The integrator took `max_steps` steps without reaching the end of the interval.
    #[error("maximum number of steps ({max_steps}) exceeded at t = {t}; raise `max_steps` or loosen the tolerances")]
    MaxStepsExceeded { max_steps: usize, t: f64 },
    /// The adaptive step size fell below `dtmin` (or below the resolution of `t`).
    #[error("step size underflow at t = {t}: dt = {dt:e}; the problem may be stiff or the tolerances too tight")]
    StepSizeUnderflow { t: f64, dt: f64 },
    /// A NaN or infinity appeared in an ODE state, a right-hand side or a solve's input. `t` is the
    /// time of an ODE or SDE solve; NaN where the value has no time (then the message
    /// leaves the time out).
    #[error("non-finite value in {what}{}", at_time(*t))]
    NonFinite { what: &'static str, t: f64 },
    /// A NaN or infinity in data that has no time: entry `index` of `what` (a pixel, a
    /// sample's row, a measurement).
    #[error("non-finite value in {what} (entry {index})")]
    NonFiniteData { what: &'static str, index: usize },
    /// An input had the wrong length or shape.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch { what: String, expected: String, got: String },
    /// An argument or configuration value is outside its valid range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A matrix that must be symmetric positive definite is not.
    #[error("{what} is not symmetric positive definite: {why}")]
    NotPositiveDefinite { what: String, why: String },
    /// An allocation estimated before it is made exceeds the memory limit
    /// ([`crate::limits`]).
    #[error(
        "{what} needs about {needed}, above the memory limit of {limit} (half of physical memory by default); \
         use smaller sizes, or raise the limit with --max-memory GIB (or SCOREPRIOR_MAX_MEMORY)"
    )]
    TooLarge { what: String, needed: String, limit: String },
    /// Reading or writing a file failed (the message carries the path and the cause).
    #[error("i/o: {0}")]
    Io(String),
    /// A file could not be read or written; the source carries the path and the
    /// operating system's error (kept, not flattened into a string).
    #[error(transparent)]
    File(crate::io::IoError),
}

impl From<crate::io::IoError> for Error {
    fn from(e: crate::io::IoError) -> Self {
        Error::File(e)
    }
}

/// ` at t = …` for a time, nothing for NaN (a value without a time).
fn at_time(t: f64) -> String {
    if t.is_nan() {
        String::new()
    } else {
        format!(" at t = {t}")
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shape(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Error::ShapeMismatch { what: what.into(), expected: expected.to_string(), got: got.to_string() }
    }
}
