//! Output folders of runs: the output guard first (no output is an input or holds one; a
//! folder is new, empty or this command's own run), then one run per folder at a time (a
//! lock), temporaries of killed runs swept, and a previous run in the folder resumed only when
//! its manifest matches, moved aside when asked, and otherwise refused, so a folder never
//! mixes two runs. The pieces: [`OutputGuard`] (what a command reads and writes, checked
//! together), [`OutputLock`] (one run per folder), [`RunManifest`] (`run.json`).

use std::path::{Path, PathBuf};

use scoreprior::experiment::{OutputOptions, Result};
use scoreprior::monitor::Monitor;
use scoreprior_core::dpi::CHECKPOINT_FILE;
use scoreprior_core::forward::{ParamValue, PrimitiveSpec};
use scoreprior_core::io::PathError;

mod guard;
mod lock;
mod manifest;

pub use guard::OutputGuard;
pub use lock::{move_aside, process_alive, sweep_stale_tmp, OutputLock, LOCK_FILE};
pub use manifest::{check_same_run, compare, hash_path, InputHash, RunManifest, RunState, MANIFEST_FILE};

/// Makes `dir` this run's own output folder until the returned lock is dropped: another run
/// on it fails at once, and temporaries of killed runs are removed (each named through
/// `monitor.note`). Call it after the settings are checked and before the first write;
/// `flag` names the folder in errors.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("scoreprior-own-folder-doc-{}", std::process::id()));
/// let lock = scoreprior_cli::run_folder::own_folder("--out", &dir, &mut scoreprior::monitor::Silent)
///     .unwrap();
/// drop(lock);
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
///
/// # Errors
/// The folder cannot be created or is held by another run; a stale temporary cannot be removed.
pub fn own_folder(flag: &str, dir: &Path, monitor: &mut dyn Monitor) -> Result<OutputLock> {
    let lock = OutputLock::acquire(flag, dir)?;
    for p in sweep_stale_tmp(lock.dir())? {
        monitor.note(&format!("removed {} (left by a killed run)", p.display()));
    }
    Ok(lock)
}

/// Takes `output.out` for the run `manifest` describes: the lock and the sweep of
/// [`own_folder`], then a previous run is resumed only with `output.resume` and a matching
/// manifest, moved to `OUT.old-N` with `output.force` (noted through `monitor`), and otherwise
/// refused.
///
/// ```no_run
/// use scoreprior::experiment::DpiSettings;
/// use scoreprior_cli::dpi_run::DpiRun;
/// use scoreprior_cli::run_folder::take_folder;
///
/// let mut s = DpiSettings::default();
/// s.output.out = "out/dpi".into();
/// let (_, prior_file) = s.build()?;
/// let _lock = take_folder(&s.output, &s.manifest(&prior_file)?, &mut scoreprior::monitor::Silent)?;
/// # Ok::<(), scoreprior::experiment::ExperimentError>(())
/// ```
///
/// # Errors
/// As [`own_folder`]; [`ExperimentError::Path`] for a previous run without `resume` or `force`,
/// or with other settings.
///
/// [`ExperimentError::Path`]: scoreprior::experiment::ExperimentError::Path
pub fn take_folder(output: &OutputOptions, manifest: &RunManifest, monitor: &mut dyn Monitor) -> Result<OutputLock> {
    let out = &output.out;
    let mut guard = OutputGuard::new(&manifest.command).folder("--out", out);
    for (flag, input) in &manifest.inputs {
        guard = guard.input(flag, &input.path);
    }
    if let Some(forward) = manifest.config.get("forward").and_then(|f| f.as_str()) {
        for file in forward_files(forward) {
            guard = guard.input("--forward", file);
        }
    }
    guard.check()?;
    let lock = own_folder("--out", out, monitor)?;
    let previous = RunManifest::read(out)?;
    let has_run = previous.is_some() || out.join(CHECKPOINT_FILE).exists();
    if output.force {
        if let Some(old) = move_aside(out)? {
            monitor.note(&format!("--force: the previous run was moved to {}", old.display()));
        }
    } else if has_run && !output.resume {
        return Err(PathError(format!(
            "--out {}: holds a previous run; --resume continues it (same settings), --force moves it aside and \
             starts over",
            out.display()
        ))
        .into());
    } else if let Some(old) = &previous {
        check_same_run(out, old, manifest, "--force")?;
    } else if has_run {
        return Err(PathError(format!(
            "--out {}: holds a checkpoint but no run.json (an older version wrote it), so --resume cannot check \
             its settings; use --force to start over (the old files are moved aside)",
            out.display()
        ))
        .into());
    }
    Ok(lock)
}

/// The files a forward-model spec reads: the `file` of `matrix(…)` and the `obs` of `eht(…)`,
/// in each link of a chain.
///
/// ```
/// use scoreprior_cli::run_folder::forward_files;
/// let f = forward_files("matrix(file='a.npy')|gaussian_blur(sigma=1)");
/// assert_eq!(f, vec![std::path::PathBuf::from("a.npy")]);
/// ```
pub fn forward_files(forward: &str) -> Vec<PathBuf> {
    forward
        .split('|')
        .filter_map(|link| PrimitiveSpec::parse(link.trim()).ok())
        .flat_map(|spec| spec.params.into_iter())
        .filter(|(k, _)| k == "file" || k == "obs")
        .flat_map(|(k, v)| match v {
            // `eht(obs='lo.uvfits, hi.uvfits')` reads every band.
            ParamValue::Word(w) | ParamValue::Text(w) if k == "obs" => {
                w.split(',').map(|f| PathBuf::from(f.trim())).collect()
            }
            ParamValue::Word(w) | ParamValue::Text(w) => vec![PathBuf::from(w)],
            ParamValue::Num(_) => vec![],
        })
        .collect()
}

/// An output folder claimed through the guard: locked, swept, and marked as the command's run
/// (`run.json`, state `running`) until [`FolderClaim::finish`] marks it complete.
#[derive(Debug)]
pub struct FolderClaim {
    _lock: OutputLock,
    dir: PathBuf,
    manifest: Option<RunManifest>,
}

impl FolderClaim {
    /// Marks the run complete in its `run.json` (for commands whose folder the claim marked).
    ///
    /// # Errors
    /// The manifest cannot be written.
    pub fn finish(self) -> Result<()> {
        if let Some(m) = &self.manifest {
            m.clone().with_state(RunState::Complete).write(&self.dir)?;
        }
        Ok(())
    }
}

/// Checks `guard` (every output against every input; see [`OutputGuard`]), then owns its
/// output folder `dir` (given by `flag`): locked, swept, and, with `mark`, marked as a
/// running `command` run by a `run.json` without settings (commands that keep their own
/// manifest pass `mark = false`).
///
/// ```
/// use scoreprior_cli::run_folder::claim_folder;
/// use scoreprior_cli::run_folder::OutputGuard;
/// let dir = std::env::temp_dir().join(format!("scoreprior-claim-doc-{}", std::process::id()));
/// let guard = OutputGuard::new("measure").folder("--out", &dir);
/// let claim = claim_folder(&guard, "--out", &dir, true, &mut scoreprior::monitor::Silent).unwrap();
/// claim.finish().unwrap();
/// // Another command may not write there now.
/// assert!(OutputGuard::new("fit-gaussian").folder("--out", &dir).check().is_err());
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
///
/// # Errors
/// A rule of the guard is broken; the folder cannot be created, is held by another run, or
/// cannot be marked.
pub fn claim_folder(
    guard: &OutputGuard,
    flag: &str,
    dir: &Path,
    mark: bool,
    monitor: &mut dyn Monitor,
) -> Result<FolderClaim> {
    guard.check()?;
    let lock = own_folder(flag, dir, monitor)?;
    let manifest = if mark {
        let m = RunManifest::new(guard.command(), serde_json::json!({}));
        m.write(lock.dir())?;
        Some(m)
    } else {
        None
    };
    Ok(FolderClaim { dir: lock.dir().to_path_buf(), _lock: lock, manifest })
}

/// A fresh, empty scratch folder for the tests of module `module` (named by the process, so
/// that parallel test binaries never share one).
#[cfg(test)]
pub(crate) fn test_scratch(module: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoreprior-cli-{module}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
