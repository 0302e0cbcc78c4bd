//! The ownership of an output folder by one run: an advisory lock ([`OutputLock`]) so two runs
//! never write into one folder, a sweep of the temporary files left by killed runs
//! ([`sweep_stale_tmp`]), and a move of an old run aside ([`move_aside`]) instead of mixing
//! files. The manifest a resume compares is in [`super::RunManifest`].

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use scoreprior_core::io::{dir_entries, IoError, PathError};

/// File name of the advisory lock in an output folder.
pub const LOCK_FILE: &str = ".scoreprior.lock";

/// Whether process `pid` is alive. On Linux, `/proc/<pid>` exists; elsewhere unknown
/// (`None`).
pub fn process_alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") {
        Some(Path::new(&format!("/proc/{pid}")).exists())
    } else {
        None
    }
}

/// An advisory lock on an output folder, held until dropped: a second run on the same
/// folder fails at once with a message naming the holder's pid.
///
/// The lock is the operating system's file lock on `DIR/.scoreprior.lock`, which also holds
/// the owner's pid. The system releases it when the owner exits, however it exits, so the
/// lock of a killed run is never left behind; where file locks are unsupported, the pid in
/// the file decides (a lock whose process is gone is stale and taken over).
///
/// ```
/// use scoreprior_cli::run_folder::OutputLock;
/// let dir = std::env::temp_dir().join("scoreprior-doc-lock");
/// let lock = OutputLock::acquire("--out", &dir).unwrap();
/// assert!(OutputLock::acquire("--out", &dir).unwrap_err().to_string().contains("in use"));
/// drop(lock);
/// assert!(OutputLock::acquire("--out", &dir).is_ok());
/// ```
#[derive(Debug)]
pub struct OutputLock {
    file: File,
    dir: PathBuf,
}

impl OutputLock {
    /// Creates `dir` if needed and takes its lock; `flag` names the option in errors.
    pub fn acquire(flag: &str, dir: &Path) -> Result<Self, PathError> {
        let shown = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        std::fs::create_dir_all(shown)
            .map_err(|e| PathError(format!("{flag}: cannot create the folder {}: {e}", shown.display())))?;
        let path = shown.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| PathError(format!("{flag}: cannot create the lock file {}: {e}", path.display())))?;
        let holder = |file: &mut File| {
            let mut s = String::new();
            let _ = file.read_to_string(&mut s);
            s.trim().parse::<u32>().ok()
        };
        let busy = |pid: Option<u32>| {
            PathError(format!(
                "{flag} {}: the folder is in use by another scoreprior run{}; wait for it to finish or choose \
                 another {flag}",
                shown.display(),
                pid.map_or(String::new(), |p| format!(" (pid {p})"))
            ))
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(busy(holder(&mut file))),
            Err(std::fs::TryLockError::Error(_)) => {
                // No file locks here (some network file systems): the pid decides.
                if let Some(pid) = holder(&mut file) {
                    if pid != std::process::id() && process_alive(pid) == Some(true) {
                        return Err(busy(Some(pid)));
                    }
                }
            }
        }
        let write_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            writeln!(file, "{}", std::process::id())?;
            file.flush()
        };
        write_pid(&mut file).map_err(|e| PathError(format!("{flag}: cannot write {}: {e}", path.display())))?;
        Ok(OutputLock { file, dir: shown.to_path_buf() })
    }
    /// The locked folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Removes what killed runs left in `dir` and its subfolders: temporary files of atomic
/// writes (`NAME.<pid>.tmp`) and write probes (`.scoreprior-write-probe.<pid>`) whose
/// process is gone (or any, where liveness is unknown). Call it holding the folder's
/// [`OutputLock`]. Returns the removed paths.
///
/// ```
/// let dir = std::env::temp_dir().join("scoreprior-doc-sweep");
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("checkpoint.safetensors.4000000000.Xy12Ab.tmp"), b"partial").unwrap();
/// let removed = scoreprior_cli::run_folder::sweep_stale_tmp(&dir).unwrap();
/// assert_eq!(removed.len(), 1);
/// ```
pub fn sweep_stale_tmp(dir: &Path) -> Result<Vec<PathBuf>, IoError> {
    let mut removed = Vec::new();
    sweep(dir, &mut removed, 0)?;
    Ok(removed)
}

/// The pid in a temporary file name made by this crate, if it is one: `NAME.<pid>.<random>.tmp`
/// (atomic writes), `NAME.<pid>.tmp` (their older form) or `.scoreprior-write-probe.<pid>`.
fn temp_pid(name: &str) -> Option<u32> {
    let is_pid = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let digits = if let Some(rest) = name.strip_suffix(".tmp") {
        let mut parts = rest.rsplit('.');
        let (last, before) = (parts.next()?, parts.next());
        match before {
            Some(p) if is_pid(p) && !last.is_empty() && last.len() == 6 => p,
            _ => last,
        }
    } else {
        name.strip_prefix(".scoreprior-write-probe.")?
    };
    if !is_pid(digits) {
        return None;
    }
    digits.parse().ok()
}

fn sweep(dir: &Path, removed: &mut Vec<PathBuf>, depth: usize) -> Result<(), IoError> {
    if depth > 4 {
        return Ok(());
    }
    for entry in dir_entries(dir)? {
        let (p, ft) = entry?;
        if ft.is_dir() {
            sweep(&p, removed, depth + 1)?;
            continue;
        }
        let Some(pid) = p.file_name().and_then(|n| n.to_str()).and_then(temp_pid) else { continue };
        if pid != std::process::id() && process_alive(pid) != Some(true) {
            std::fs::remove_file(&p).map_err(|err| IoError::os(&p, err))?;
            removed.push(p);
        }
    }
    Ok(())
}

/// Moves every entry of `dir` except its lock file into a new sibling folder
/// `DIR.old-N` (the first free `N ≥ 1`), so a fresh run starts in an empty folder and the
/// old results are kept, never mixed. Returns the new folder, or `None` when there was
/// nothing to move.
///
/// ```
/// let dir = std::env::temp_dir().join("scoreprior-doc-aside/run");
/// let _ = std::fs::remove_dir_all(dir.parent().unwrap());
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("loss.csv"), b"old").unwrap();
/// let old = scoreprior_cli::run_folder::move_aside(&dir).unwrap().unwrap();
/// assert!(old.ends_with("run.old-1") && old.join("loss.csv").exists());
/// assert!(!dir.join("loss.csv").exists());
/// ```
pub fn move_aside(dir: &Path) -> Result<Option<PathBuf>, IoError> {
    let entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok()).filter(|e| e.file_name() != LOCK_FILE).map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IoError::os(dir, e)),
    };
    if entries.is_empty() {
        return Ok(None);
    }
    // The sibling is named from the folder's canonical path, so that `--out .` moves the
    // run's files to `../NAME.old-N` and never into (or along with) the folder itself.
    let canon = dir.canonicalize().map_err(|e| IoError::os(dir, e))?;
    let (Some(parent), Some(name)) = (canon.parent(), canon.file_name()) else {
        let e =
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "the root folder has no sibling to move a run to");
        return Err(IoError::os(dir, e));
    };
    let name = name.to_string_lossy().into_owned();
    let target = (1..).map(|k| parent.join(format!("{name}.old-{k}"))).find(|p| !p.exists()).expect("a free name");
    std::fs::create_dir_all(&target).map_err(|e| IoError::os(&target, e))?;
    for p in entries {
        let to = target.join(p.file_name().expect("an entry has a name"));
        std::fs::rename(&p, &to).map_err(|e| IoError::os(&p, e))?;
    }
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_folder::test_scratch;

    #[test]
    fn a_folder_has_one_owner_and_a_dead_owner_leaves_no_lock() {
        let dir = test_scratch("lock", "lock");
        let lock = OutputLock::acquire("--out", &dir).unwrap();
        let pid: u32 = std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap().trim().parse().unwrap();
        assert_eq!(pid, std::process::id());
        let e = OutputLock::acquire("--out", &dir).unwrap_err().to_string();
        assert!(e.contains("in use") && e.contains(&format!("pid {pid}")), "{e}");
        drop(lock);
        // A lock file left by a process that is gone (pid of a finished child) is stale.
        let child = std::process::Command::new("true").spawn().and_then(|mut c| c.wait().map(|_| c.id()));
        if let Ok(dead) = child {
            std::fs::write(dir.join(LOCK_FILE), format!("{dead}\n")).unwrap();
            let again = OutputLock::acquire("--out", &dir).unwrap();
            assert_eq!(again.dir(), dir.as_path());
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn stale_temporaries_are_swept_and_live_ones_kept() {
        let dir = test_scratch("lock", "sweep");
        std::fs::create_dir_all(dir.join("samples")).unwrap();
        let dead = std::process::Command::new("true").spawn().and_then(|mut c| c.wait().map(|_| c.id())).unwrap();
        let stale = [
            dir.join(format!("checkpoint.dpi.{dead}.tmp")),
            dir.join(format!("samples/step_000100.png.{dead}.tmp")),
            dir.join(format!(".scoreprior-write-probe.{dead}")),
            dir.join(format!("checkpoint.safetensors.{dead}.Ab3xYz.tmp")),
        ];
        let keep = [
            dir.join(format!("ours.npy.{}.tmp", std::process::id())),
            dir.join(format!("ours.npy.{}.q1w2e3.tmp", std::process::id())),
            dir.join("notes.tmp"),
            dir.join("x.abc.tmp"),
            dir.join("y.npy"),
        ];
        for p in stale.iter().chain(&keep) {
            std::fs::write(p, b"x").unwrap();
        }
        let mut removed = sweep_stale_tmp(&dir).unwrap();
        removed.sort();
        let mut want = stale.to_vec();
        want.sort();
        assert_eq!(removed, want);
        assert!(keep.iter().all(|p| p.exists()));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn moving_aside_keeps_the_lock_and_numbers_the_old_folders() {
        let root = test_scratch("lock", "aside");
        let dir = root.join("run");
        let _lock = OutputLock::acquire("--out", &dir).unwrap();
        assert_eq!(move_aside(&dir).unwrap(), None);
        std::fs::write(dir.join("a"), b"1").unwrap();
        assert_eq!(move_aside(&dir).unwrap(), Some(root.join("run.old-1")));
        std::fs::write(dir.join("a"), b"2").unwrap();
        assert_eq!(move_aside(&dir).unwrap(), Some(root.join("run.old-2")));
        assert!(dir.join(LOCK_FILE).exists());
        assert_eq!(std::fs::read(root.join("run.old-2/a")).unwrap(), b"2");
        let _ = std::fs::remove_dir_all(root);
    }
}
