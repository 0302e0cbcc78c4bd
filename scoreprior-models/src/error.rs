//! [`ModelError`], the error type of `scoreprior-models`, by kind: a setting outside its
//! range ([`ModelError::OutOfRange`], with the value), an unknown configuration name
//! ([`ModelError::UnknownName`]), inputs of the wrong shape ([`ModelError::ShapeMismatch`],
//! with what was expected and what came), an image shape no
//! [`AnyNcsnpp`](crate::ncsnpp::AnyNcsnpp) variant is compiled for, a checkpoint file or
//! training state that cannot be used (with the path, and the codec's error as the source),
//! a data set that cannot be used, a non-finite loss, and the errors of dfdx's buffers, of
//! file input/output and of the core crate.

use std::path::{Path, PathBuf};

/// The error a reader, writer or parser gave, kept as the source of a [`ModelError`].
pub(crate) type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of `scoreprior-models`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A network or training setting (or a time) outside the range it must be in: `what`
    /// names it (a configuration field), `value` is the value given (counts as numbers too),
    /// `expected` says what it must be (`at least 1`, `in [0, 1)`).
    #[error("{what} must be {expected}, got {value}")]
    OutOfRange { what: String, value: f64, expected: String },
    /// A name that is none of those accepted: `what` is the kind of name (`"network
    /// configuration"`), `expected` lists the accepted ones.
    #[error("unknown {what} `{name}`; expected {expected}")]
    UnknownName { what: &'static str, name: String, expected: String },
    /// Weights, images, times, data or a checkpoint's tensors that do not fit the network or
    /// each other: `what` names the input, `expected` what the network needs, `got` what came.
    #[error("shape mismatch in {what}: expected {expected}, got {got}")]
    ShapeMismatch { what: String, expected: String, got: String },
    /// A network for images of `shape`, which is none of
    /// [`AnyNcsnpp::SHAPES`](crate::ncsnpp::AnyNcsnpp::SHAPES).
    #[error(
        "NCSN++ is compiled for the image shapes {:?}, not {shape:?}; use `Ncsnpp<C, H, W>` directly for \
         another shape",
        crate::ncsnpp::AnyNcsnpp::SHAPES
    )]
    UncompiledShape { shape: (usize, usize, usize) },
    /// A checkpoint file that cannot be written or read: malformed, not this crate's format,
    /// or lacking a tensor; `why` says what is wrong, `source` is the error of the
    /// safetensors or JSON codec, if any.
    #[error("checkpoint {}: {why}{}", path.display(), colon(source))]
    Checkpoint { path: PathBuf, why: String, source: Option<Source> },
    /// A checkpoint's training state that cannot be resumed (an inference-only checkpoint, a
    /// bad RNG state or training configuration), or a RealNVP state
    /// ([`Posterior::save_state`](scoreprior_core::dpi::Posterior::save_state)'s bytes, which
    /// have no path) that cannot be written or read, or that belongs to another flow; `source`
    /// is the parser's error, if any.
    #[error("training state of the checkpoint: {why}{}", colon(source))]
    TrainState { why: String, source: Option<Source> },
    /// A data set file or folder that cannot be used (its format, its values, no images).
    #[error("data {}: {why}", path.display())]
    Data { path: PathBuf, why: String },
    /// The training loss became NaN or infinite at step `step` (1-based).
    #[error("non-finite loss at step {step}")]
    NonFiniteLoss { step: u64 },
    /// dfdx could not provide a gradient or optimiser buffer.
    #[error("gradient buffer: {0}")]
    Buffer(dfdx::tensor::CpuError),
    /// File input/output.
    #[error(transparent)]
    Io(#[from] scoreprior_core::io::IoError),
    /// An error of the core crate.
    #[error(transparent)]
    Core(#[from] scoreprior_core::Error),
}

/// `: source` for an error with a source, nothing otherwise.
fn colon(source: &Option<Source>) -> String {
    source.as_ref().map_or_else(String::new, |s| format!(": {s}"))
}

impl ModelError {
    /// [`ModelError::OutOfRange`]: `what` must be `expected`, but is `value`.
    pub fn out_of_range(what: impl Into<String>, value: impl Into<f64>, expected: impl Into<String>) -> Self {
        ModelError::OutOfRange { what: what.into(), value: value.into(), expected: expected.into() }
    }
    /// [`ModelError::OutOfRange`] for a count or size (shown as an integer).
    pub fn count_out_of_range(what: impl Into<String>, value: usize, expected: impl Into<String>) -> Self {
        ModelError::OutOfRange { what: what.into(), value: value as f64, expected: expected.into() }
    }
    /// [`ModelError::ShapeMismatch`].
    pub fn shape(what: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        ModelError::ShapeMismatch { what: what.into(), expected: expected.to_string(), got: got.to_string() }
    }
    /// [`ModelError::Checkpoint`] without a source.
    pub fn checkpoint(path: &Path, why: impl Into<String>) -> Self {
        ModelError::Checkpoint { path: path.to_path_buf(), why: why.into(), source: None }
    }
    /// [`ModelError::Checkpoint`] caused by `source`.
    pub fn checkpoint_caused(path: &Path, why: impl Into<String>, source: impl Into<Source>) -> Self {
        ModelError::Checkpoint { path: path.to_path_buf(), why: why.into(), source: Some(source.into()) }
    }
    /// [`ModelError::Data`].
    pub fn data(path: &Path, why: impl Into<String>) -> Self {
        ModelError::Data { path: path.to_path_buf(), why: why.into() }
    }
}

/// A model error met inside the core's traits ([`scoreprior_core::score::ScoreModel`]): a
/// core error comes back as itself, any other keeps its type as the source of
/// [`scoreprior_core::Error::Model`].
impl From<ModelError> for scoreprior_core::Error {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Core(e) => e,
            other => scoreprior_core::Error::Model(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ModelError;
    use std::error::Error as _;

    #[test]
    fn model_errors_keep_their_type_inside_core_errors() {
        let e: scoreprior_core::Error = ModelError::shape("times (one per image)", 3, 2).into();
        assert!(matches!(e, scoreprior_core::Error::Model(_)), "{e:?}");
        let source = e.source().and_then(|s| s.downcast_ref::<ModelError>());
        assert!(matches!(source, Some(ModelError::ShapeMismatch { got, .. }) if got == "2"), "{e:?}");
        // A core error that went through ModelError comes back as itself, not nested.
        let core = scoreprior_core::Error::out_of_range("t", -1.0, "in (0, 1]");
        let back: scoreprior_core::Error = ModelError::Core(core).into();
        assert!(matches!(back, scoreprior_core::Error::OutOfRange { .. }), "{back:?}");
    }

    #[test]
    fn messages_name_the_setting_the_value_and_the_source() {
        let e = ModelError::out_of_range("dropout", 1.5, "in [0, 1)");
        assert_eq!(e.to_string(), "dropout must be in [0, 1), got 1.5");
        let e = ModelError::count_out_of_range("num_res_blocks", 0, "at least 1");
        assert_eq!(e.to_string(), "num_res_blocks must be at least 1, got 0");
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        let e = ModelError::checkpoint_caused(std::path::Path::new("a.safetensors"), "bad metadata", json);
        assert!(e.to_string().starts_with("checkpoint a.safetensors: bad metadata: "), "{e}");
        assert!(e.source().is_some_and(|s| s.is::<serde_json::Error>()), "{e:?}");
        let e = ModelError::UncompiledShape { shape: (1, 8, 12) };
        assert!(e.to_string().contains("(1, 8, 12)") && e.to_string().contains("(1, 16, 16)"), "{e}");
    }
}
