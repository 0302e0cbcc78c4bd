//! The resumable checkpoint: magic, length-prefixed JSON history, then the posterior's
//! own state; written atomically.

use super::*;

const CKPT_MAGIC: &[u8; 8] = b"SPDPI01\n";
/// File name of the checkpoint inside the output directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.dpi";
/// File name of the loss CSV inside the output directory.
pub const LOSSES_FILE: &str = "losses.csv";

/// Writes a checkpoint: magic, JSON history length (u64 LE), JSON history, posterior state.
pub fn write_checkpoint(path: &Path, history: &DpiHistory, posterior: &dyn Posterior) -> Result<()> {
    let json = serde_json::to_vec(history).map_err(|e| Error::Io(format!("serialising history: {e}")))?;
    let state = posterior.save_state()?;
    let mut bytes = Vec::with_capacity(16 + json.len() + state.len());
    bytes.extend_from_slice(CKPT_MAGIC);
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(&state);
    atomic_write(path, &bytes)?;
    Ok(())
}

/// Reads a checkpoint written by [`write_checkpoint`] into `posterior`; returns the history.
pub fn read_checkpoint(path: &Path, posterior: &mut dyn Posterior) -> Result<DpiHistory> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    let bad = |why: &str| Error::Io(format!("{}: not a DPI checkpoint ({why})", path.display()));
    if bytes.len() < 16 || &bytes[..8] != CKPT_MAGIC {
        return Err(bad("bad magic"));
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    if bytes.len() < 16 + len {
        return Err(bad("truncated"));
    }
    let history: DpiHistory = serde_json::from_slice(&bytes[16..16 + len]).map_err(|e| bad(&e.to_string()))?;
    posterior.load_state(&bytes[16 + len..])?;
    Ok(history)
}
