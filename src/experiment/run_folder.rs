//! Output folders of runs: one run per folder at a time (a lock), temporaries of killed runs
//! swept, and a previous run in the folder resumed only when its manifest matches, moved
//! aside when asked, and otherwise refused, so a folder never mixes two runs.

use std::path::Path;

use scoreprior_core::dpi::CHECKPOINT_FILE;
use scoreprior_core::io::{check_same_run, move_aside, sweep_stale_tmp, OutputLock, RunManifest};

use super::{ExperimentError, OutputOptions, Result};
use crate::monitor::Monitor;

/// Makes `dir` this run's own output folder until the returned lock is dropped: another run
/// on it fails at once, and temporaries of killed runs are removed (each named through
/// `monitor.note`). Call it after the settings are checked and before the first write;
/// `flag` names the folder in errors.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("scoreprior-own-folder-doc-{}", std::process::id()));
/// let lock = scoreprior::experiment::run_folder::own_folder("--out", &dir, &mut scoreprior::monitor::Silent)
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
/// use scoreprior::experiment::{run_folder::take_folder, DpiSettings};
///
/// let mut s = DpiSettings::default();
/// s.output.out = "out/dpi".into();
/// let (_, prior_file) = s.build()?;
/// let _lock = take_folder(&s.output, &s.manifest(&prior_file)?, &mut scoreprior::monitor::Silent)?;
/// # Ok::<(), scoreprior::experiment::ExperimentError>(())
/// ```
///
/// # Errors
/// As [`own_folder`]; a previous run without `resume` or `force`, or with other settings.
pub fn take_folder(output: &OutputOptions, manifest: &RunManifest, monitor: &mut dyn Monitor) -> Result<OutputLock> {
    let out = &output.out;
    let lock = own_folder("--out", out, monitor)?;
    let previous = RunManifest::read(out)?;
    let has_run = previous.is_some() || out.join(CHECKPOINT_FILE).exists();
    if output.force {
        if let Some(old) = move_aside(out)? {
            monitor.note(&format!("--force: the previous run was moved to {}", old.display()));
        }
    } else if has_run && !output.resume {
        return Err(ExperimentError::Settings(format!(
            "--out {}: holds a previous run; --resume continues it (same settings), --force moves it aside and \
             starts over",
            out.display()
        )));
    } else if let Some(old) = &previous {
        check_same_run(out, old, manifest, "--force")?;
    } else if has_run {
        return Err(ExperimentError::Settings(format!(
            "--out {}: holds a checkpoint but no run.json (an older version wrote it), so --resume cannot check \
             its settings; use --force to start over (the old files are moved aside)",
            out.display()
        )));
    }
    Ok(lock)
}
