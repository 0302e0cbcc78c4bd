//! Size limits from memory, not from crashes: before a large allocation (an operator
//! matrix, a kernel, a batch, a network, the body of an input file), estimate its bytes and
//! fail with a clear error above a process-wide limit, instead of aborting in the allocator or
//! the OOM killer.
//!
//! The limit defaults to half of physical memory (`MemTotal` of `/proc/meminfo`; 8 GiB where
//! that is unknown). The environment variable `SCOREPRIOR_MAX_MEMORY` (GiB) or
//! [`set_memory_limit_gib`] (the CLI's `--max-memory`) changes it; both go through one
//! validation ([`gib_to_bytes`]: a finite number of GiB, at least [`MIN_GIB`]), and the error
//! of a size above the limit says where the limit came from ([`memory_limit_origin`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::{Error, Result};

/// 0 = not set yet (the default is computed on first use).
static LIMIT: AtomicU64 = AtomicU64::new(0);
/// Where [`LIMIT`] came from, for the error message (empty: not set yet).
static ORIGIN: Mutex<String> = Mutex::new(String::new());

const GIB: f64 = (1u64 << 30) as f64;

/// The environment variable that sets the limit in GiB.
pub const ENV_VAR: &str = "SCOREPRIOR_MAX_MEMORY";

/// The smallest limit accepted, in GiB (about 1 KiB): below it no run could even read its
/// arguments, and values such as `1e-300` would round to zero bytes.
pub const MIN_GIB: f64 = 1e-6;

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

/// The bytes of a limit of `gib` GiB given by `what` (a flag or an environment variable, named
/// in the error): the one validation of `--max-memory` and `SCOREPRIOR_MAX_MEMORY`. The value
/// must be finite, positive and at least [`MIN_GIB`].
///
/// ```
/// use scoreprior_core::limits::gib_to_bytes;
/// assert_eq!(gib_to_bytes("--max-memory", 0.5).unwrap(), 1 << 29);
/// let e = gib_to_bytes("--max-memory", 1e-300).unwrap_err().to_string();
/// assert!(e.contains("--max-memory must be at least 0.000001 GiB"), "{e}");
/// assert!(gib_to_bytes("SCOREPRIOR_MAX_MEMORY", f64::NAN).is_err());
/// ```
pub fn gib_to_bytes(what: &str, gib: f64) -> Result<u64> {
    if !(gib.is_finite() && gib > 0.0) {
        return Err(Error::out_of_range(what, gib, "a positive number of GiB"));
    }
    if gib < MIN_GIB {
        return Err(Error::out_of_range(what, gib, "at least 0.000001 GiB (about 1 KiB)"));
    }
    Ok((gib * GIB).min(u64::MAX as f64) as u64)
}

/// [`gib_to_bytes`] of a number written as text (an environment variable's value); a text
/// that is no number is an error naming `what` and the text.
///
/// ```
/// use scoreprior_core::limits::parse_gib;
/// assert_eq!(parse_gib("SCOREPRIOR_MAX_MEMORY", " 2 ").unwrap(), 2 << 30);
/// let e = parse_gib("SCOREPRIOR_MAX_MEMORY", "abc").unwrap_err().to_string();
/// assert!(e.contains("SCOREPRIOR_MAX_MEMORY") && e.contains("`abc`"), "{e}");
/// assert!(parse_gib("SCOREPRIOR_MAX_MEMORY", "-1").is_err());
/// ```
pub fn parse_gib(what: &str, text: &str) -> Result<u64> {
    let gib: f64 = text
        .trim()
        .parse()
        .map_err(|_| Error::syntax(what, format!("`{text}` is not a number; give a positive number of GiB")))?;
    gib_to_bytes(what, gib)
}

/// The limit set by `SCOREPRIOR_MAX_MEMORY`: `None` when it is unset or empty, an error (naming
/// the variable) when it is set to anything [`parse_gib`] refuses.
pub fn env_memory_limit() -> Result<Option<u64>> {
    match std::env::var_os(ENV_VAR) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Some(t) if t.trim().is_empty() => Ok(None),
            Some(t) => parse_gib(ENV_VAR, t).map(Some),
            None => Err(Error::syntax(
                ENV_VAR,
                format!("`{}` is not text; give a positive number of GiB", v.to_string_lossy()),
            )),
        },
    }
}

/// The default limit and where it comes from: `SCOREPRIOR_MAX_MEMORY` GiB if set and valid,
/// else half of physical memory, else 8 GiB.
fn default_limit() -> (u64, String) {
    if let Ok(Some(b)) = env_memory_limit() {
        let v = std::env::var(ENV_VAR).unwrap_or_default();
        return (b, format!("set by {ENV_VAR}={}", v.trim()));
    }
    match physical_memory() {
        Some(b) => (b / 2, "half of physical memory, the default".into()),
        None => (8 << 30, "the default where physical memory is unknown".into()),
    }
}

/// The default limit: `SCOREPRIOR_MAX_MEMORY` GiB if set and valid, else half of physical
/// memory, else 8 GiB. (An invalid `SCOREPRIOR_MAX_MEMORY` is ignored here, where no error
/// can be returned; programs call [`apply_env_limit`] first to refuse it, as the CLI does.)
pub fn default_memory_limit() -> u64 {
    default_limit().0
}

/// Sets the limit from `SCOREPRIOR_MAX_MEMORY` when it is set, validated exactly as the
/// `--max-memory` flag ([`gib_to_bytes`]); an invalid value is an error naming the variable.
/// Unset or empty: the limit stays as it is.
pub fn apply_env_limit() -> Result<()> {
    if let Some(b) = env_memory_limit()? {
        let v = std::env::var(ENV_VAR).unwrap_or_default();
        set_limit(b, format!("set by {ENV_VAR}={}", v.trim()));
    }
    Ok(())
}

fn set_limit(bytes: u64, origin: String) {
    *ORIGIN.lock().unwrap_or_else(|p| p.into_inner()) = origin;
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// The current limit in bytes for one estimated allocation.
///
/// ```
/// assert!(scoreprior_core::limits::memory_limit() > 0);
/// ```
pub fn memory_limit() -> u64 {
    match LIMIT.load(Ordering::Relaxed) {
        0 => {
            let (d, origin) = default_limit();
            let d = d.max(1);
            set_limit(d, origin);
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
    set_limit(bytes, if bytes == 0 { String::new() } else { "set by the program".into() });
}

/// Where the current limit came from, in words: `set by --max-memory 2`, `set by
/// SCOREPRIOR_MAX_MEMORY=2`, `half of physical memory, the default`.
///
/// ```
/// use scoreprior_core::limits::{memory_limit_origin, set_memory_limit_gib};
/// set_memory_limit_gib("--max-memory", 64.0).unwrap();
/// assert_eq!(memory_limit_origin(), "set by --max-memory 64");
/// ```
pub fn memory_limit_origin() -> String {
    memory_limit();
    ORIGIN.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Sets the limit from a number of GiB as given on a command line (`--max-memory 64`);
/// `what` names the flag in the error. Validated by [`gib_to_bytes`].
///
/// ```
/// assert!(scoreprior_core::limits::set_memory_limit_gib("--max-memory", f64::NAN).is_err());
/// assert!(scoreprior_core::limits::set_memory_limit_gib("--max-memory", 1e-300).is_err());
/// ```
pub fn set_memory_limit_gib(what: &str, gib: f64) -> Result<()> {
    let bytes = gib_to_bytes(what, gib)?;
    set_limit(bytes, format!("set by {what} {gib}"));
    Ok(())
}

/// `bytes` shown in GiB, MiB or KiB.
fn show(bytes: f64) -> String {
    if bytes >= GIB / 10.0 {
        format!("{:.3} GiB", bytes / GIB)
    } else if bytes >= (1u64 << 20) as f64 / 10.0 {
        format!("{:.1} MiB", bytes / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes / 1024.0)
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
        let limit = format!("{} ({})", show(limit as f64), memory_limit_origin());
        return Err(Error::TooLarge { what: what.to_string(), needed: show(bytes as f64), limit });
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

    /// The flag's and the environment variable's values go through one validation: the
    /// values the flag refuses the variable refuses too, with its own name in the message.
    #[test]
    fn flag_and_environment_values_share_one_validation() {
        for bad in ["abc", "", "-1", "0", "nan", "NaN", "inf", "-inf", "1e-300", "0.0000009", "1 GiB"] {
            let e = parse_gib(ENV_VAR, bad).unwrap_err().to_string();
            assert!(e.contains(ENV_VAR), "{bad}: {e}");
            if let Ok(v) = bad.trim().parse::<f64>() {
                // The same verdict (and the same words) as the flag's.
                let flag = gib_to_bytes("--max-memory", v).unwrap_err().to_string();
                assert_eq!(flag.replace("--max-memory", ENV_VAR), e, "{bad}");
            }
        }
        assert!(parse_gib(ENV_VAR, "1e-300").unwrap_err().to_string().contains("at least 0.000001 GiB"));
        assert_eq!(parse_gib(ENV_VAR, "0.000001").unwrap(), 1073);
        assert_eq!(parse_gib(ENV_VAR, "1").unwrap(), 1 << 30);
        assert_eq!(gib_to_bytes("--max-memory", 1e30).unwrap(), u64::MAX);
    }

    #[test]
    fn small_sizes_are_shown_in_kib_not_as_zero() {
        assert_eq!(show(1073.0), "1.0 KiB");
        assert_eq!(show((3u64 << 20) as f64), "3.0 MiB");
        assert_eq!(show((2u64 << 30) as f64), "2.000 GiB");
    }
}
