//! The record of a run in its output folder: a manifest `run.json` (command line, resolved
//! config, input hashes, version, seed, state) that a resume compares to refuse a changed
//! problem.
//!
//! This module holds the manifest and the input hashes (the lock, the sweep and the move aside
//! are in `lock.rs`). The usual sequence of a command that owns
//! `--out`: [`OutputLock::acquire`] → [`sweep_stale_tmp`] → [`RunManifest::read`] and
//! [`check_same_run`] (on resume) or [`move_aside`] (on `--force`) → [`RunManifest::write`]
//! with [`RunState::Running`] → work → [`RunManifest::write`] with [`RunState::Complete`].
//!
//! [`OutputLock::acquire`]: crate::run_folder::OutputLock::acquire
//! [`sweep_stale_tmp`]: crate::run_folder::sweep_stale_tmp
//! [`move_aside`]: crate::run_folder::move_aside

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use scoreprior_core::io::{atomic_write, check_input_size, dir_entries, file_kind, IoError, PathError};

/// File name of the manifest in an output folder.
pub const MANIFEST_FILE: &str = "run.json";

/// Whether the run that wrote a manifest finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Started (or killed, or failed): the folder's results may be partial.
    Running,
    /// Every output was written.
    Complete,
}

/// The identity of an input file (or folder): its path as given, its size and its SHA-256.
/// A folder hashes the relative paths and contents of all files below it, in sorted order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputHash {
    /// The path as given on the command line.
    pub path: String,
    /// Total bytes hashed.
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// What defines a run, written as `run.json` in its output folder.
///
/// `config` holds only what defines the problem and its result (a resume must match it);
/// settings that may change between a run and its resume (step counts to continue to,
/// threads, progress output) belong in `args` only.
///
/// ```
/// use scoreprior_cli::run_folder::{compare, RunManifest};
/// let a = RunManifest::new("train", serde_json::json!({"lr": 5e-4, "batch_size": 64})).with_seed(42);
/// let b = RunManifest::new("train", serde_json::json!({"lr": 0.1, "batch_size": 64})).with_seed(42);
/// assert_eq!(compare(&a, &b), vec!["config.lr: 0.0005 -> 0.1".to_string()]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// The subcommand or experiment kind, e.g. `train`.
    pub command: String,
    /// The command line (`std::env::args_os`, non-UTF-8 bytes shown as `�`), for the
    /// record; not compared.
    pub args: Vec<String>,
    /// The resolved configuration (every default filled in).
    pub config: serde_json::Value,
    /// Input files by flag (e.g. `--data`).
    pub inputs: BTreeMap<String, InputHash>,
    /// Version of `scoreprior-core` that wrote the folder; not compared.
    pub version: String,
    /// Seed of the run's randomness, if any.
    pub seed: Option<u64>,
    /// Whether the run finished.
    pub state: RunState,
}

impl RunManifest {
    /// A manifest of a running `command` with `config`, this process's command line and
    /// the crate version; no inputs, no seed.
    pub fn new(command: &str, config: serde_json::Value) -> Self {
        RunManifest {
            command: command.to_string(),
            // `args_os`: an argument that is not UTF-8 (a file name in another encoding) is
            // recorded lossily (`�` for the bytes that are not text) instead of panicking.
            args: std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect(),
            config,
            inputs: BTreeMap::new(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            seed: None,
            state: RunState::Running,
        }
    }
    /// With `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
    /// With the input `path` given by `flag`, hashed now (see [`hash_path`]).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("scoreprior-doc-manifest-input");
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join("x.npy"), b"abc").unwrap();
    /// let m = scoreprior_cli::run_folder::RunManifest::new("t", serde_json::json!({}))
    ///     .with_input("--x", &dir.join("x.npy")).unwrap();
    /// assert!(m.inputs["--x"].sha256.starts_with("ba7816bf"));
    /// ```
    pub fn with_input(mut self, flag: &str, path: &Path) -> Result<Self, IoError> {
        self.inputs.insert(flag.to_string(), hash_path(path)?);
        Ok(self)
    }
    /// With `state`.
    pub fn with_state(mut self, state: RunState) -> Self {
        self.state = state;
        self
    }
    /// Parses a manifest; `path` names the file in errors.
    pub fn from_json(path: &Path, bytes: &[u8]) -> Result<Self, IoError> {
        serde_json::from_slice(bytes).map_err(|e| IoError::malformed(path, "run manifest", e.to_string()))
    }
    /// The manifest of folder `dir`, `None` when it has none.
    pub fn read(dir: &Path) -> Result<Option<Self>, IoError> {
        let path = dir.join(MANIFEST_FILE);
        match std::fs::read(&path) {
            Ok(b) => Self::from_json(&path, &b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IoError::os(&path, e)),
        }
    }
    /// Writes `dir/run.json` atomically.
    ///
    /// ```
    /// use scoreprior_cli::run_folder::{RunManifest, RunState};
    /// let dir = std::env::temp_dir().join("scoreprior-doc-manifest");
    /// let m = RunManifest::new("demo", serde_json::json!({"k": 1})).with_seed(7);
    /// m.write(&dir).unwrap();
    /// let back = RunManifest::read(&dir).unwrap().unwrap();
    /// assert_eq!(back, m);
    /// m.with_state(RunState::Complete).write(&dir).unwrap();
    /// ```
    pub fn write(&self, dir: &Path) -> Result<(), IoError> {
        let mut text = serde_json::to_string_pretty(self).expect("a manifest serialises");
        text.push('\n');
        atomic_write(dir.join(MANIFEST_FILE), text.as_bytes())
    }
}

/// The named differences between the run that wrote `old` and the run `new` that would
/// resume it: command, each changed config entry (dotted path, old and new value), each
/// changed, added or removed input, and the seed. Command lines, versions and states are
/// not compared. Empty when `new` may resume `old`.
pub fn compare(old: &RunManifest, new: &RunManifest) -> Vec<String> {
    let mut d = Vec::new();
    if old.command != new.command {
        d.push(format!("command: {} -> {}", old.command, new.command));
    }
    diff_json("config", &old.config, &new.config, &mut d);
    for (flag, o) in &old.inputs {
        match new.inputs.get(flag) {
            None => d.push(format!("{flag}: {} was an input, now none", o.path)),
            Some(n) if n.sha256 != o.sha256 => d.push(format!(
                "{flag}: {} (sha256 {}…) -> {} (sha256 {}…), different contents",
                o.path,
                &o.sha256[..o.sha256.len().min(12)],
                n.path,
                &n.sha256[..n.sha256.len().min(12)]
            )),
            Some(_) => {}
        }
    }
    for (flag, n) in &new.inputs {
        if !old.inputs.contains_key(flag) {
            d.push(format!("{flag}: no input before, now {}", n.path));
        }
    }
    if old.seed != new.seed {
        let s = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
        d.push(format!("seed: {} -> {}", s(old.seed), s(new.seed)));
    }
    d
}

fn diff_json(at: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = format!("{at}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff_json(&path, u, v, out),
                    (Some(u), None) => out.push(format!("{path}: {u} -> (absent)")),
                    (None, Some(v)) => out.push(format!("{path}: (absent) -> {v}")),
                    (None, None) => {}
                }
            }
        }
        _ if a != b => out.push(format!("{at}: {a} -> {b}")),
        _ => {}
    }
}

/// Refuses to resume the run in `dir` (manifest `old`) as `new` when they differ, with a
/// message listing every difference and the way out (`force_flag`, another folder).
///
/// ```
/// use std::path::Path;
/// use scoreprior_cli::run_folder::{check_same_run, RunManifest};
/// let a = RunManifest::new("train", serde_json::json!({"lr": 1e-3}));
/// let b = RunManifest::new("train", serde_json::json!({"lr": 1e-2}));
/// assert!(check_same_run(Path::new("out"), &a, &a, "--force").is_ok());
/// let e = check_same_run(Path::new("out"), &a, &b, "--force").unwrap_err().to_string();
/// assert!(e.contains("config.lr: 0.001 -> 0.01") && e.contains("--force"));
/// ```
pub fn check_same_run(dir: &Path, old: &RunManifest, new: &RunManifest, force_flag: &str) -> Result<(), PathError> {
    let d = compare(old, new);
    if d.is_empty() {
        return Ok(());
    }
    Err(PathError(format!(
        "--out {}: the folder holds a run of a different problem; resuming would mix the two. \
         Differences (before -> now):\n  - {}\nUse the original settings, another --out, or {force_flag} to start \
         over (the old files are moved to a sibling folder {}.old-N)",
        dir.display(),
        d.join("\n  - "),
        dir.display()
    )))
}

/// Size and SHA-256 of a file, or of every file below a folder (relative paths and
/// contents, sorted by path).
pub fn hash_path(path: &Path) -> Result<InputHash, IoError> {
    let mut h = Sha256::new();
    let mut bytes = 0u64;
    let meta = std::fs::metadata(path).map_err(|e| IoError::os(path, e))?;
    if meta.is_dir() {
        let mut files = Vec::new();
        collect_files(path, path, &mut files, 0)?;
        files.sort();
        for rel in files {
            h.update(rel.to_string_lossy().as_bytes());
            h.update([0u8]);
            bytes += hash_file(&path.join(&rel), &mut h)?;
        }
    } else {
        bytes = hash_file(path, &mut h)?;
    }
    let sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(InputHash { path: path.display().to_string(), bytes, sha256 })
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<(), IoError> {
    if depth > 16 {
        return Ok(());
    }
    for entry in dir_entries(dir)? {
        let (p, ft) = entry?;
        if ft.is_dir() {
            collect_files(root, &p, out, depth + 1)?;
        } else if ft.is_file() {
            out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
        }
    }
    Ok(())
}

fn hash_file(path: &Path, h: &mut Sha256) -> Result<u64, IoError> {
    // A regular file only, read up to the size it has now: a device never ends, and opening
    // a named pipe blocks until a writer comes.
    let meta = std::fs::metadata(path).map_err(|e| IoError::os(path, e))?;
    if let Some(kind) = file_kind(&meta.file_type()) {
        return Err(IoError::NotAFile { path: path.display().to_string(), kind });
    }
    // Every hashed input is then loaded whole: one above the memory limit is refused here,
    // before minutes of hashing.
    check_input_size(path, "reading the whole file", meta.len() as u128)?;
    let mut f = File::open(path).map_err(|e| IoError::os(path, e))?.take(meta.len());
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| IoError::os(path, e))?;
        if k == 0 {
            return Ok(n);
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_folder::test_scratch;

    #[test]
    fn a_manifest_round_trips_and_names_every_difference() {
        let dir = test_scratch("run", "manifest");
        std::fs::write(dir.join("a.npy"), b"one").unwrap();
        std::fs::write(dir.join("b.npy"), b"two").unwrap();
        let cfg = serde_json::json!({"lr": 5e-4, "net": {"nf": 32, "ch_mult": [1, 2]}, "batch_size": 64});
        let old = RunManifest::new("train", cfg).with_seed(1).with_input("--data", &dir.join("a.npy")).unwrap();
        old.write(&dir).unwrap();
        assert_eq!(RunManifest::read(&dir).unwrap().unwrap(), old);
        assert!(compare(&old, &old.clone().with_state(RunState::Complete)).is_empty());
        let cfg2 = serde_json::json!({"lr": 0.1, "net": {"nf": 32, "ch_mult": [1, 2, 2]}, "dropout": 0.1});
        let new = RunManifest::new("train", cfg2).with_seed(2).with_input("--data", &dir.join("b.npy")).unwrap();
        let d = compare(&old, &new);
        let want = [
            "config.batch_size: 64 -> (absent)",
            "config.dropout: (absent) -> 0.1",
            "config.lr: 0.0005 -> 0.1",
            "config.net.ch_mult: [1,2] -> [1,2,2]",
            "seed: 1 -> 2",
        ];
        for w in want {
            assert!(d.iter().any(|x| x == w), "{w} in {d:?}");
        }
        assert!(d.iter().any(|x| x.starts_with("--data:") && x.contains("different contents")), "{d:?}");
        assert_eq!(d.len(), 6, "{d:?}");
        // The same contents under another name is the same input.
        std::fs::write(dir.join("c.npy"), b"one").unwrap();
        let moved = old.clone().with_input("--data", &dir.join("c.npy")).unwrap();
        assert!(compare(&old, &moved).is_empty());
        // A malformed manifest is an error naming the file, not a panic.
        std::fs::write(dir.join(MANIFEST_FILE), b"{\"command\": 3").unwrap();
        let e = RunManifest::read(&dir).unwrap_err().to_string();
        assert!(e.contains("run.json") && e.contains("malformed"), "{e}");
        // Folders hash their files and names.
        std::fs::create_dir_all(dir.join("d/e")).unwrap();
        std::fs::write(dir.join("d/e/x"), b"1").unwrap();
        let h1 = hash_path(&dir.join("d")).unwrap();
        std::fs::rename(dir.join("d/e/x"), dir.join("d/e/y")).unwrap();
        assert_ne!(hash_path(&dir.join("d")).unwrap().sha256, h1.sha256);
        let _ = std::fs::remove_dir_all(dir);
    }
}
