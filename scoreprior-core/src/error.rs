//! The one error type of `scoreprior-core`: every fallible operation returns [`Result`].
//!
//! Variants carry the data a user needs to act on the failure (where, what, which limit).
//! A caller can act on the kind: a setting out of its range ([`Error::OutOfRange`], with the
//! value), an unknown name ([`Error::UnknownName`], with the name and the accepted ones), a
//! malformed spec or text file ([`Error::Syntax`]), an operation a model does not provide
//! ([`Error::Unsupported`]), settings that do not go together ([`Error::Inconsistent`]), an
//! input or a result with nothing in it ([`Error::Empty`]), a matrix that is not symmetric
//! positive definite ([`Error::NotPositiveDefinite`]), a file that could not be read or
//! written ([`Error::File`], with the path and the operating system's error as its source), a
//! failure inside a model of another crate ([`Error::Model`], its own error kept as the
//! source). An error met inside a larger step keeps its kind under [`Error::Context`];
//! [`Error::innermost`] finds it. There is no catch-all kind: every variant says what went
//! wrong in fields a caller can read.

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
    /// A number (a setting, a parameter, an input value) lies outside the range it must be
    /// in: `what` names it (a field, a primitive's parameter, a flag), `value` is the value
    /// given (counts and sizes as numbers too), `expected` says what it must be
    /// (`positive and finite`, `in (0, 1]`, `at least 1`).
    /// The value is written in full when that is short, in scientific notation otherwise
    /// (`1e300`, not 301 digits).
    #[error("{what} must be {expected}, got {}", show_value(*value))]
    OutOfRange { what: String, value: f64, expected: String },
    /// A name (of a solver, primitive, noise, preset, boundary, SDE, a primitive's
    /// parameter, …) is none of those accepted. `what` is the kind of name (`"solver"`,
    /// `"primitive"`, `"parameter"`); `owner` the thing the name belongs to, if any (the
    /// primitive whose parameter it is); `expected` lists the accepted names.
    #[error("unknown {what} `{name}`{}; expected {expected}", of_owner(owner.as_deref()))]
    UnknownName { what: &'static str, name: String, owner: Option<String>, expected: String },
    /// A text is malformed: a forward-model spec (`name(key = value, …)`: a missing `)`,
    /// a duplicate, missing or mistyped parameter) or a line of a text file (an observation, an
    /// array table). `at` says where (the text in backticks, or a file and line), `why` what
    /// is wrong.
    #[error("{at}: {why}")]
    Syntax { at: String, why: String },
    /// An operation the object does not provide, e.g. the adjoint of a non-linear forward
    /// model, or a method that needs a linear one; the message says what to use instead.
    #[error("{0}")]
    Unsupported(String),
    /// An error of `inner` while doing `context` (e.g. building the primitive `…` of a
    /// chain on input of a given shape). The kind stays that of `inner`: see
    /// [`Error::innermost`].
    #[error("{context}: {inner}")]
    Context { context: String, inner: Box<Error> },
    /// Settings that are each valid but do not go together: a schedule that needs a prior
    /// the run lacks, an adaptive controller on a solver without an error estimate, an odd
    /// number of antithetic draws, a window that does not fit its image. `what` names the
    /// settings (fields or spec parameters), `why` says how they clash and what to change.
    #[error("{what}: {why}")]
    Inconsistent { what: String, why: String },
    /// An input or a result with nothing in it: a uv-coverage no baseline sees, an observation
    /// whose every visibility falls below the SNR cut, posterior samples that all diverged.
    /// `what` names the collection, `why` says why it is empty.
    #[error("{what} is empty: {why}")]
    Empty { what: String, why: String },
    /// A matrix that must be symmetric positive definite is not.
    #[error("{what} is not symmetric positive definite: {why}")]
    NotPositiveDefinite { what: String, why: String },
    /// An allocation estimated before it is made exceeds the memory limit
    /// ([`crate::limits`]); `limit` says where the limit came from (`--max-memory`,
    /// `SCOREPRIOR_MAX_MEMORY` or the default, half of physical memory).
    #[error(
        "{what} needs about {needed}, above the memory limit of {limit}; \
         use smaller sizes, or raise the limit with --max-memory GIB (or SCOREPRIOR_MAX_MEMORY)"
    )]
    TooLarge { what: String, needed: String, limit: String },
    /// A file could not be read or written; the source carries the path and the
    /// operating system's error (kept, not flattened into a string): see [`crate::io::IoError`].
    #[error(transparent)]
    File(crate::io::IoError),
    /// A failure inside a model implemented in another crate (a score network, a flow),
    /// kept with its own type as the source.
    #[error("model: {0}")]
    Model(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
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

/// `value` in full (`-0.5`, `1000`) when that is short, else in scientific notation (`1e300`,
/// `1e-300`), so that a message never holds hundreds of digits.
fn show_value(value: f64) -> String {
    let full = value.to_string();
    if full.len() > 24 {
        format!("{value:e}")
    } else {
        full
    }
}

/// `` of `owner` `` for a name that belongs to something, nothing otherwise.
fn of_owner(owner: Option<&str>) -> String {
    owner.map(|o| format!(" of `{o}`")).unwrap_or_default()
}

/// The accepted names of an [`Error::UnknownName`] as a sentence: `a`, `a or b`, `a, b or c`.
pub(crate) fn one_of(names: &[&str]) -> String {
    match names.split_last() {
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `Result` with [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::OutOfRange`]: `what` must be `expected`, but is `value`.
    ///
    /// ```
    /// use scoreprior_core::Error;
    /// let e = Error::out_of_range("noise sigma", -1.0, "positive and finite");
    /// assert_eq!(e.to_string(), "noise sigma must be positive and finite, got -1");
    /// ```
    pub fn out_of_range(what: impl Into<String>, value: impl Into<f64>, expected: impl Into<String>) -> Self {
        Error::OutOfRange { what: what.into(), value: value.into(), expected: expected.into() }
    }
    /// [`Error::OutOfRange`] for a count or size (`usize`, shown as an integer).
    pub fn count_out_of_range(what: impl Into<String>, value: usize, expected: impl Into<String>) -> Self {
        Error::OutOfRange { what: what.into(), value: value as f64, expected: expected.into() }
    }
    /// Shorthand for [`Error::UnknownName`] of a name that belongs to nothing in particular
    /// (a solver, a primitive): `expected` lists the accepted names.
    ///
    /// ```
    /// use scoreprior_core::Error;
    /// let e = Error::unknown("solver", "rk45", "one of euler, dopri5");
    /// assert_eq!(e.to_string(), "unknown solver `rk45`; expected one of euler, dopri5");
    /// ```
    pub fn unknown(what: &'static str, name: impl Into<String>, expected: impl Into<String>) -> Self {
        Error::UnknownName { what, name: name.into(), owner: None, expected: expected.into() }
    }
    /// Shorthand for [`Error::UnknownName`] of a name that belongs to `owner` (a parameter of
    /// a primitive): ``unknown parameter `speed` of `mri`; expected …``.
    pub fn unknown_of(
        what: &'static str,
        name: impl Into<String>,
        owner: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        Error::UnknownName { what, name: name.into(), owner: Some(owner.into()), expected: expected.into() }
    }
    /// Shorthand for [`Error::Syntax`]: `at` (already formatted: `` `text` `` or
    /// `file line n`) is malformed because `why`.
    pub fn syntax(at: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Syntax { at: at.into(), why: why.into() }
    }
    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(msg: impl Into<String>) -> Self {
        Error::Unsupported(msg.into())
    }
    /// Shorthand for [`Error::Inconsistent`]: the settings `what` do not go together because
    /// `why`.
    ///
    /// ```
    /// use scoreprior_core::Error;
    /// let e = Error::inconsistent("resume", "needs an output directory (out_dir)");
    /// assert_eq!(e.to_string(), "resume: needs an output directory (out_dir)");
    /// ```
    pub fn inconsistent(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Inconsistent { what: what.into(), why: why.into() }
    }
    /// Shorthand for [`Error::Empty`]: `what` has nothing in it because `why`.
    ///
    /// ```
    /// use scoreprior_core::Error;
    /// let e = Error::empty("the uv-coverage", "no baseline sees the source");
    /// assert_eq!(e.to_string(), "the uv-coverage is empty: no baseline sees the source");
    /// ```
    pub fn empty(what: impl Into<String>, why: impl Into<String>) -> Self {
        Error::Empty { what: what.into(), why: why.into() }
    }
    /// `self` as the inner error of [`Error::Context`]: the message gains the prefix
    /// `context: `, the kind stays (see [`Error::innermost`]).
    pub fn context(self, context: impl Into<String>) -> Self {
        Error::Context { context: context.into(), inner: Box::new(self) }
    }
    /// The error under any [`Error::Context`] wrappers: the one to match on for its kind.
    ///
    /// ```
    /// use scoreprior_core::Error;
    /// let e = Error::unknown("boundary", "mirror", "zero, reflect or circular").context("in `box_blur`");
    /// assert!(matches!(e.innermost(), Error::UnknownName { what: "boundary", .. }));
    /// ```
    pub fn innermost(&self) -> &Error {
        match self {
            Error::Context { inner, .. } => inner.innermost(),
            other => other,
        }
    }
    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shape(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Error::ShapeMismatch { what: what.into(), expected: expected.to_string(), got: got.to_string() }
    }
}
