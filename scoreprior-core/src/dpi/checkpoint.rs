//! The resumable checkpoint: a safetensors file whose one `u8` tensor `posterior_state` is
//! the posterior's own state ([`Posterior::save_state`]) and whose JSON metadata holds the
//! format tag and the loss history; written atomically.
//!
//! Why safetensors rather than a format of our own: any safetensors reader (Python's
//! included) can list and inspect it, and its header is validated by a well-kept parser.

use std::collections::HashMap;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::*;
use crate::io::IoError;

/// File name of the checkpoint inside the output directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
/// File name of the loss CSV inside the output directory.
pub const LOSSES_FILE: &str = "losses.csv";
/// The `format` entry of the metadata.
const FORMAT: &str = "scoreprior-dpi-checkpoint/1";
/// The tensor holding the posterior's state.
const STATE: &str = "posterior_state";

/// Writes a checkpoint: the posterior's state as a `u8` tensor, the history as JSON metadata.
///
/// # Errors
/// The posterior's serialisation errors and the file system's.
pub fn write_checkpoint(path: &Path, history: &DpiHistory, posterior: &dyn Posterior) -> Result<()> {
    let encode = |e: Box<dyn std::error::Error + Send + Sync>| Error::from(IoError::encode(path, "DPI checkpoint", e));
    let json = serde_json::to_string(history).map_err(|e| encode(e.into()))?;
    let state = posterior.save_state()?;
    let view = TensorView::new(Dtype::U8, vec![state.len()], &state).map_err(|e| encode(e.into()))?;
    let meta = HashMap::from([("format".to_string(), FORMAT.to_string()), ("history".to_string(), json)]);
    let bytes = safetensors::serialize([(STATE, view)], &Some(meta)).map_err(|e| encode(e.into()))?;
    atomic_write(path, &bytes)?;
    Ok(())
}

/// Reads a checkpoint written by [`write_checkpoint`] into `posterior`; returns the history.
///
/// # Errors
/// A missing or malformed file (not safetensors, another format tag, no history or state),
/// and the posterior's own errors for a state of another shape.
pub fn read_checkpoint(path: &Path, posterior: &mut dyn Posterior) -> Result<DpiHistory> {
    let (history, state) = read_checkpoint_parts(path)?;
    posterior.load_state(&state)?;
    Ok(history)
}

/// The history and the posterior's state bytes ([`Posterior::save_state`]) of a checkpoint
/// written by [`write_checkpoint`], for a posterior built from the state itself (a run that
/// starts from another run's trained flow).
///
/// # Errors
/// As [`read_checkpoint`], less the posterior's.
pub fn read_checkpoint_parts(path: &Path) -> Result<(DpiHistory, Vec<u8>)> {
    // A regular file within the memory limit, read with a bounded reader.
    let bytes = crate::io::read_input(path)?;
    let bad = |why: &str| Error::from(IoError::malformed(path, "DPI checkpoint", why));
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| bad(&e.to_string()))?;
    let meta = header.metadata().as_ref().ok_or_else(|| bad("no metadata"))?;
    match meta.get("format") {
        Some(f) if f == FORMAT => {}
        other => return Err(bad(&format!("format {other:?}, expected {FORMAT:?}"))),
    }
    let history = meta.get("history").ok_or_else(|| bad("no history"))?;
    let history: DpiHistory = serde_json::from_str(history).map_err(|e| bad(&format!("history: {e}")))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| bad(&e.to_string()))?;
    let state = tensors.tensor(STATE).map_err(|e| bad(&e.to_string()))?;
    if state.dtype() != Dtype::U8 {
        return Err(bad(&format!("{STATE} has dtype {:?}, expected U8", state.dtype())));
    }
    Ok((history, state.data().to_vec()))
}
