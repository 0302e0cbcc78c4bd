//! # scoreprior-models
//!
//! Score networks on dfdx 0.13 (stable Rust, CPU): NCSN++ ([`ncsnpp`]) built from the
//! project's own ops ([`ops`]), its denoising-score-matching training ([`train`]), data
//! loading ([`data`]), safetensors checkpoints ([`checkpoint`]), the
//! [`scoreprior_core::score::ScoreModel`] implementation ([`score`]) and samplers
//! ([`sample`]).

pub mod ops;
pub mod ncsnpp;
pub mod data;
pub mod checkpoint;
pub mod train;
pub mod score;
pub mod sample;
pub mod realnvp;

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
