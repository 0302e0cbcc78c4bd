//! Flags shared by `train` (NCSN++) and `train-flow` (RealNVP): the data, the output folder,
//! the image size and the optimiser's steps, batch, rate, clip, seed and checkpoint cadence.
//! The defaults and wording here are `train`'s; `train-flow` re-words the few that differ for a
//! flow with `mut_arg` on its own struct, so each command's `--help` reads as before.

use std::path::PathBuf;

use clap::Args;

/// The training flags of `train` and `train-flow`.
#[derive(Debug, Clone, Args)]
pub struct TrainingArgs {
    /// Training images: an IDX file or a directory with `train-images-idx3-ubyte[.gz]`,
    /// a `.npy` file ((N,H,W) or (N,C,H,W)), or a directory of PNG files.
    #[arg(long)]
    pub data: PathBuf,
    /// Output directory (checkpoint.safetensors, ema.safetensors, loss.csv, samples/).
    #[arg(long)]
    pub out: PathBuf,
    /// Image side after area-averaging resize.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Total optimiser steps (a resumed run continues up to this count).
    #[arg(long, default_value_t = 10_000)]
    pub steps: u64,
    /// Images per step (at least 1).
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Peak learning rate (positive).
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Global gradient-norm clip: positive; `inf` disables clipping.
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f64,
    /// Use only the first images of the data set.
    #[arg(long)]
    pub limit: Option<usize>,
    /// RNG seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Steps between checkpoints (at least 1; the last step is always checkpointed).
    #[arg(long, default_value_t = 200)]
    pub ckpt_every: u64,
    /// Start over even if the output folder holds a run: its files are first moved to a
    /// sibling folder `OUT.old-N`, never mixed with the new run's (`--restart` is an alias).
    #[arg(long, alias = "restart")]
    pub force: bool,
    /// Hide the progress bar (log lines instead).
    #[arg(long)]
    pub quiet: bool,
}

/// `arg` with its place in `order` (flag ids, i.e. field names) as its `--help` position, so
/// a command lists its flags in the order it had before the shared ones moved here.
pub fn in_order(arg: clap::Arg, order: &[&str]) -> clap::Arg {
    match order.iter().position(|id| arg.get_id() == *id) {
        Some(i) => arg.display_order(i),
        None => arg,
    }
}
