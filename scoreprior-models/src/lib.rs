//! # scoreprior-models
//!
//! Score networks on dfdx 0.13 (stable Rust, CPU): NCSN++ ([`ncsnpp`]) built from the
//! project's own ops ([`ops`]), its denoising-score-matching training ([`train`]), data
//! loading ([`data`]), safetensors checkpoints ([`checkpoint`]), the
//! [`scoreprior_core::score::ScoreModel`] implementation ([`score`]) and samplers
//! ([`sample`]).
//!
//! Conventions (as the reference `score_flow` code): images in `[0, 1]`, mapped to
//! `2x − 1` inside the network; the network predicts the noise `ε̂(x, t)` from the time
//! label `999·t`; the score is `s = −ε̂/σ(t)` under the VP SDE (β 0.1 → 20).
//!
//! Loading a checkpoint as a score model:
//! ```no_run
//! use scoreprior_core::score::ScoreModel;
//! let model = scoreprior_models::score::NcsnppScore::load("assets/ncsnpp_fmnist16/ema.safetensors").unwrap();
//! let mut s = vec![0.0; model.dim()];
//! model.score(&vec![0.5; model.dim()], 0.5, &mut s).unwrap();
//! ```
//!
//! CUDA: the `cuda` feature only forwards to `dfdx/cuda`. The project's own ops (im2col
//! convolution, GroupNorm, pooling, …) are CPU loops over host buffers, so the networks
//! here run on `Cpu` only; nothing of the CUDA path is built or verified in CI.

pub mod alloc;
mod any_ncsnpp;
pub mod checkpoint;
pub mod data;
pub mod ncsnpp;
pub mod ops;
pub mod realnvp;
pub mod sample;
pub mod score;
pub mod train;

/// The dfdx crate the networks are built on (for naming tensor types).
pub use dfdx;

/// Errors of `scoreprior-models`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A network configuration that cannot be built.
    #[error("invalid network configuration: {0}")]
    Config(String),
    /// Weights, checkpoint or data that do not fit the network or each other.
    #[error("mismatch: {0}")]
    Mismatch(String),
    /// A malformed or unreadable checkpoint.
    #[error("checkpoint {path}: {why}")]
    Checkpoint { path: String, why: String },
    /// A data set that cannot be used.
    #[error("data: {0}")]
    Data(String),
    /// File input/output.
    #[error(transparent)]
    Io(#[from] scoreprior_core::io::IoError),
    /// An error of the core crate.
    #[error(transparent)]
    Core(#[from] scoreprior_core::Error),
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
        let e: scoreprior_core::Error = ModelError::Mismatch("3 images but 2 times".into()).into();
        assert!(matches!(e, scoreprior_core::Error::Model(_)), "{e:?}");
        let source = e.source().and_then(|s| s.downcast_ref::<ModelError>());
        assert!(matches!(source, Some(ModelError::Mismatch(m)) if m.contains("2 times")), "{e:?}");
        // A core error that went through ModelError comes back as itself, not nested.
        let core = scoreprior_core::Error::out_of_range("t", -1.0, "in (0, 1]");
        let back: scoreprior_core::Error = ModelError::Core(core).into();
        assert!(matches!(back, scoreprior_core::Error::OutOfRange { .. }), "{back:?}");
    }
}
