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
mod error;
pub mod ncsnpp;
pub mod ops;
pub mod realnvp;
pub mod sample;
pub mod score;
pub mod train;

/// The dfdx crate the networks are built on (for naming tensor types).
pub use dfdx;
pub use error::ModelError;
