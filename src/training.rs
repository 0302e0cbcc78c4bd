//! Training runs that write a loss CSV and resume from checkpoints: the NCSN++ score network
//! (denoising score matching) and the RealNVP density (maximum likelihood). A resumed run
//! keeps the rows of the steps its checkpoint holds, so its files match an uninterrupted run's.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::experiment::Result;

/// A row of a loss CSV, which knows how many optimiser steps are done once it is written.
pub trait LossRow: Serialize + DeserializeOwned {
    /// Steps done after this row's step: a checkpoint taken after `n` steps holds exactly the
    /// rows with `steps_done() ≤ n`.
    fn steps_done(&self) -> u64;
}

/// The rows of the loss CSV at `path` that a run resumed from a checkpoint after `done` steps
/// keeps: a killed run may have logged steps its last checkpoint does not hold, and those are
/// redone, so keeping them would log them twice.
///
/// # Errors
/// The file cannot be read or parsed.
///
/// ```
/// use scoreprior::training::{resume_loss_rows, LossRow};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Row {
///     step: u64,
///     loss: f64,
/// }
/// impl LossRow for Row {
///     fn steps_done(&self) -> u64 {
///         self.step
///     }
/// }
/// let path = std::env::temp_dir().join(format!("scoreprior-doc-loss-{}.csv", std::process::id()));
/// std::fs::write(&path, "step,loss\n1,0.5\n2,0.4\n3,0.3\n").unwrap();
/// let kept: Vec<Row> = resume_loss_rows(&path, 2).unwrap();
/// assert_eq!(kept.len(), 2);
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn resume_loss_rows<R: LossRow>(path: &Path, done: u64) -> Result<Vec<R>> {
    let mut rows: Vec<R> = scoreprior_core::io::read_csv(path)?;
    rows.retain(|r| r.steps_done() <= done);
    Ok(rows)
}
