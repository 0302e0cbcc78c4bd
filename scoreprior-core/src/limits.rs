//! Size limits from memory, not from crashes: before a large allocation (an operator
//! matrix, a kernel, a batch, a network), estimate its bytes and fail with a clear error
//! above a process-wide limit, instead of aborting in the allocator or the OOM killer.
//!
//! The limit defaults to half of physical memory (`MemTotal` of `/proc/meminfo`; 8 GiB where
//! that is unknown). The environment variable `SCOREPRIOR_MAX_MEMORY` (GiB) or
//! [`set_memory_limit`] (the CLI's `--max-memory`) changes it.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// 0 = not set yet (the default is computed on first use).
static LIMIT: AtomicU64 = AtomicU64::new(0);

const GIB: f64 = (1u64 << 30) as f64;

/// Physical memory in bytes, when the system tells (Linux: `/proc/meminfo`).
///
/// ```
/// if let Some(b) = scoreprior_core::limits::physical_memory() {
///     assert!(b > 1 << 20);
/// }
/// ```
pub fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The default limit: `SCOREPRIOR_MAX_MEMORY` GiB if set and valid, else half of physical
/// memory, else 8 GiB.
pub fn default_memory_limit() -> u64 {
    if let Some(g) = std::env::var("SCOREPRIOR_MAX_MEMORY").ok().and_then(|v| v.trim().parse::<f64>().ok()) {
        if g.is_finite() && g > 0.0 {
            return (g * GIB).min(u64::MAX as f64) as u64;
        }
    }
    physical_memory().map_or(8 << 30, |b| b / 2)
}

/// The current limit in bytes for one estimated allocation.
///
/// ```
/// assert!(scoreprior_core::limits::memory_limit() > 0);
/// ```
pub fn memory_limit() -> u64 {
    match LIMIT.load(Ordering::Relaxed) {
        0 => {
            let d = default_memory_limit().max(1);
            LIMIT.store(d, Ordering::Relaxed);
            d
        }
        v => v,
    }
}

/// Sets the limit (bytes) for the whole process; 0 restores the default.
///
/// ```
/// use scoreprior_core::limits::{check_bytes, set_memory_limit};
/// set_memory_limit(1 << 20);
/// assert!(check_bytes("a test buffer", 2 << 20).is_err());
/// set_memory_limit(0);
/// ```
pub fn set_memory_limit(bytes: u64) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// Sets the limit from a number of GiB as given on a command line (`--max-memory 64`);
/// `what` names the flag in the error.
///
/// ```
/// assert!(scoreprior_core::limits::set_memory_limit_gib("--max-memory", f64::NAN).is_err());
/// ```
pub fn set_memory_limit_gib(what: &str, gib: f64) -> Result<()> {
    if !(gib.is_finite() && gib > 0.0) {
        return Err(Error::out_of_range(what, gib, "a positive number of GiB"));
    }
    set_memory_limit(((gib * GIB).min(u64::MAX as f64) as u64).max(1));
    Ok(())
}

/// `bytes` shown in GiB or MiB.
fn show(bytes: f64) -> String {
    if bytes >= GIB / 10.0 {
        format!("{:.3} GiB", bytes / GIB)
    } else {
        format!("{:.1} MiB", bytes / (1u64 << 20) as f64)
    }
}

/// Fails with [`Error::TooLarge`] when `bytes` exceeds [`memory_limit`]; `what` names the
/// allocation and the parameter that sized it, e.g. `` `gaussian_matrix(m=100000000)` ``.
///
/// ```
/// use scoreprior_core::limits::check_bytes;
/// assert!(check_bytes("a small buffer", 1024).is_ok());
/// let e = check_bytes("a huge buffer", u128::MAX).unwrap_err().to_string();
/// assert!(e.contains("a huge buffer") && e.contains("--max-memory"));
/// ```
pub fn check_bytes(what: &str, bytes: u128) -> Result<()> {
    let limit = memory_limit();
    if bytes > limit as u128 {
        return Err(Error::TooLarge { what: what.to_string(), needed: show(bytes as f64), limit: show(limit as f64) });
    }
    Ok(())
}

/// [`check_bytes`] for `count` values of `elem_bytes` bytes each, the count given as the
/// product of `dims` (computed without overflow).
///
/// ```
/// use scoreprior_core::limits::check_elems;
/// assert!(check_elems("a 16×16 image", &[16, 16], 8).is_ok());
/// assert!(check_elems("a 1e10 × 1e10 matrix", &[10_000_000_000, 10_000_000_000], 8).is_err());
/// ```
pub fn check_elems(what: &str, dims: &[usize], elem_bytes: usize) -> Result<()> {
    let bytes = dims.iter().fold(elem_bytes as u128, |acc, &d| acc.saturating_mul(d as u128));
    check_bytes(what, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_a_fraction_of_memory_and_errors_name_the_allocation() {
        let d = default_memory_limit();
        if let Some(p) = physical_memory() {
            if std::env::var("SCOREPRIOR_MAX_MEMORY").is_err() {
                assert_eq!(d, p / 2);
            }
        }
        let e = check_elems("`pad(top=100000000)` output", &[100_000_016, 16, 1 << 20], 8).unwrap_err().to_string();
        assert!(e.contains("pad(top=100000000)") && e.contains("GiB") && e.contains("memory limit"), "{e}");
        assert!(set_memory_limit_gib("--max-memory", -1.0)
            .unwrap_err()
            .to_string()
            .contains("--max-memory must be a positive number of GiB, got -1"));
        assert!(set_memory_limit_gib("--max-memory", 0.0).is_err());
    }
}
