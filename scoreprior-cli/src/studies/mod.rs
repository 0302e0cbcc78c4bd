//! The paper's comparative studies as library calls: each takes its settings, runs, and
//! returns a value that writes its table (CSV + Markdown) and figures into a folder.
//!
//! - [`posterior2d`]: DPI against Score-ALD, DPS and SDE+Proj on 2-D posteriors known in
//!   closed form (supplement Fig. 5, main Fig. 4), KL divergences from KDEs on a grid.
//! - [`eht`]: closure-quantity DPI under score priors side by side with eht-imaging's RML
//!   imager on the same observations of a ring, a crescent and a double blob.
//! - [`restoration`]: denoising and deblurring of test images by DPI and the diffusion-based
//!   samplers against the closed-form Gaussian floor (supplement Fig. 3, A.2).
//! - [`calibration`]: observed against nominal coverage of DPI's credible intervals (per pixel,
//!   and of ring diameter, width and position angle) over many EHT or denoising problems.

pub mod calibration;
mod contours;
pub mod eht;
mod kde;
mod mix2;
pub mod posterior2d;
pub mod restoration;

pub use kde::{kde_log_density, kl_on_grid, normalise_log, Bandwidth, Grid};
pub use mix2::{log_sum_exp, Mixture2};

use std::path::Path;

use scoreprior::experiment::{invalid_setting, Result};
use scoreprior_core::io::{IoError, PathError};

/// Name of the file in which a study records what defines a sub-run (its resolved settings and
/// the SHA-256 of its inputs), inside the sub-run's folder or beside it ([`sub_run_key`]).
pub const SUB_RUN_SETTINGS: &str = "settings.json";

/// What a study finds where a sub-run goes, checked by [`check_sub_run`] against the settings
/// of the run it would do there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubRun {
    /// Nothing there yet: run it.
    New,
    /// A run of the same settings that did not finish: continue it (or redo it).
    Stopped,
    /// A finished run of the same settings: read it back.
    Finished,
}

/// A differing key of two settings documents (dotted, keys in sorted order), with its value in
/// the first and in the second (as JSON, `absent` when missing).
pub type Difference = (String, String, String);

fn collect_differences(
    key: &str,
    a: Option<&serde_json::Value>,
    b: Option<&serde_json::Value>,
    out: &mut Vec<Difference>,
) {
    use serde_json::Value;
    let sub = |k: &str| if key.is_empty() { k.to_string() } else { format!("{key}.{k}") };
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                collect_differences(&sub(k), x.get(k), y.get(k), out);
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
            for i in 0..x.len() {
                collect_differences(&sub(&i.to_string()), x.get(i), y.get(i), out);
            }
        }
        _ if a == b => {}
        _ => {
            let show = |v: Option<&Value>| v.map_or("absent".to_string(), |v| v.to_string());
            out.push((key.to_string(), show(a), show(b)));
        }
    }
}

/// Every key whose value differs between two settings documents, in sorted order, with both
/// values: objects are compared key by key, arrays of equal length element by element;
/// anything else (a missing key, a changed type or length) is a difference of the whole value.
///
/// ```
/// use scoreprior_cli::studies::settings_differences;
/// let a = serde_json::json!({"steps": 600, "map": {"rounds": 5}, "seed": 0});
/// let b = serde_json::json!({"steps": 20, "map": {"rounds": 4}, "seed": 0});
/// let d = settings_differences(&a, &b);
/// assert_eq!(d[0], ("map.rounds".to_string(), "5".to_string(), "4".to_string()));
/// assert_eq!(d[1], ("steps".to_string(), "600".to_string(), "20".to_string()));
/// assert!(settings_differences(&a, &a).is_empty());
/// ```
pub fn settings_differences(old: &serde_json::Value, new: &serde_json::Value) -> Vec<Difference> {
    let mut out = Vec::new();
    collect_differences("", Some(old), Some(new), &mut out);
    out
}

fn read_settings(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| scoreprior_core::io::IoError::os(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        PathError(format!(
            "--out: {}: not a settings record ({e}); use another --out, or remove that file and its run folder",
            path.display()
        ))
        .into()
    })
}

/// Whether a folder holds anything but `key`, the lock and temporaries of a killed write.
fn has_files(dir: &Path, key: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.filter_map(|e| e.ok()).any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            e.path() != key && n != crate::run_folder::LOCK_FILE && !n.ends_with(".tmp")
        })
    })
}

/// Where the settings of the sub-run in folder `run_dir` are recorded when they cannot go
/// inside it (a folder a `scoreprior dpi` or `posterior` run owns holds only that run's files):
/// `run_dir` with `.settings.json` appended, beside it.
///
/// ```
/// use std::path::Path;
/// let key = scoreprior_cli::studies::sub_run_key(Path::new("out/denoising-a-on-b/dps"));
/// assert_eq!(key, Path::new("out/denoising-a-on-b/dps.settings.json"));
/// ```
pub fn sub_run_key(run_dir: &Path) -> std::path::PathBuf {
    let mut name = run_dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".");
    name.push(SUB_RUN_SETTINGS);
    run_dir.with_file_name(name)
}

/// Checks the sub-run of study `study` in folder `run_dir`, whose settings are recorded in
/// `key` (inside the folder, or [`sub_run_key`] beside it), against `spec`, the resolved
/// settings and input hashes of the run the study would do there; `finished` says whether a
/// folder holds a finished run. Call it for every sub-run before the first one runs, then
/// [`record_sub_run`] before each runs.
///
/// ```
/// use scoreprior_cli::studies::{check_sub_run, record_sub_run, SubRun};
/// let out = std::env::temp_dir().join(format!("scoreprior-sub-run-doc-{}", std::process::id()));
/// let (dir, key) = (out.join("case-1"), out.join("case-1/settings.json"));
/// let spec = serde_json::json!({"steps": 20, "seed": 0});
/// let done = |d: &std::path::Path| d.join("row.json").exists();
/// assert_eq!(check_sub_run("demo", &dir, &key, &spec, done).unwrap(), SubRun::New);
/// record_sub_run(&key, &spec).unwrap();
/// std::fs::write(dir.join("row.json"), "{}").unwrap();
/// assert_eq!(check_sub_run("demo", &dir, &key, &spec, done).unwrap(), SubRun::Finished);
/// let e = check_sub_run("demo", &dir, &key, &serde_json::json!({"steps": 30, "seed": 0}), done);
/// let e = e.unwrap_err().to_string();
/// assert!(e.contains("`steps`: 20 there, 30 now") && e.contains("another --out"), "{e}");
/// std::fs::remove_dir_all(&out).unwrap();
/// ```
///
/// # Errors
/// [`ExperimentError::Path`] when the recorded settings differ from `spec` (every difference is
/// named, with the value there and now, and the ways out: the original settings, another
/// `--out`, or removing that folder), when the folder holds files but no record of settings (a
/// run of an older version, or not the study's), or the record is not one; the record cannot
/// be read.
///
/// [`ExperimentError::Path`]: scoreprior::experiment::ExperimentError::Path
pub fn check_sub_run(
    study: &str,
    run_dir: &Path,
    key: &Path,
    spec: &serde_json::Value,
    finished: impl Fn(&Path) -> bool,
) -> Result<SubRun> {
    if key.exists() {
        let old = read_settings(key)?;
        let d = settings_differences(&old, spec);
        if !d.is_empty() {
            let lines: Vec<String> = d.iter().map(|(k, was, now)| format!("`{k}`: {was} there, {now} now")).collect();
            return Err(PathError(format!(
                "--out: {} holds a run of {study} with other settings; reusing it would mix them. Differences:\n  - {}\n\
                 Use the original settings, another --out, or remove that folder (and {}) to run it again",
                run_dir.display(),
                lines.join("\n  - "),
                key.display()
            ))
            .into());
        }
        return Ok(if finished(run_dir) {
            SubRun::Finished
        } else if has_files(run_dir, key) {
            SubRun::Stopped
        } else {
            SubRun::New
        });
    }
    if has_files(run_dir, key) {
        return Err(PathError(format!(
            "--out: {} holds files but no record of their settings ({}; not a run of {study}, or one written before \
             the study recorded its settings), so they cannot be reused safely; use another --out, or remove that \
             folder to run it again",
            run_dir.display(),
            key.display()
        ))
        .into());
    }
    Ok(SubRun::New)
}

/// Records `spec` as the settings of a sub-run in `key` (see [`check_sub_run`]), creating its
/// folder.
///
/// # Errors
/// The file cannot be written.
pub fn record_sub_run(key: &Path, spec: &serde_json::Value) -> Result<()> {
    if let Some(parent) = key.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| scoreprior_core::io::IoError::os(parent, e))?;
    }
    let mut text = serde_json::to_string_pretty(spec).map_err(|e| IoError::encode(key, "JSON", e))?;
    text.push('\n');
    scoreprior_core::io::atomic_write(key, text.as_bytes())?;
    Ok(())
}

/// The SHA-256 of an input file or folder (see [`crate::run_folder::hash_path`]), for a
/// sub-run's settings; `flag` names it in errors.
///
/// # Errors
/// [`ExperimentError::Invalid`] naming `flag`: the file cannot be read.
///
/// [`ExperimentError::Invalid`]: scoreprior::experiment::ExperimentError::Invalid
pub fn input_sha256(flag: &'static str, path: &Path) -> Result<String> {
    crate::run_folder::hash_path(path).map(|h| h.sha256).map_err(|e| invalid_setting(flag, e.to_string()))
}

/// Checks a name that becomes part of a file or folder name (`flag` names it in errors): one
/// plain path component, not empty, not `.` or `..`, without `/`, `\`, control characters or
/// a leading `-`.
///
/// ```
/// use scoreprior_cli::studies::check_name;
/// assert!(check_name("--priors", "fmnist").is_ok());
/// for bad in ["", ".", "..", "a/b", "../x", "a\\b", "-x", "a\0b"] {
///     assert!(check_name("--priors", bad).unwrap_err().to_string().contains("--priors"), "{bad:?}");
/// }
/// ```
///
/// # Errors
/// [`ExperimentError::Invalid`] naming `flag`: any other name.
///
/// [`ExperimentError::Invalid`]: scoreprior::experiment::ExperimentError::Invalid
pub fn check_name(flag: &'static str, name: &str) -> Result<()> {
    let why = if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is a relative folder")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.starts_with('-') {
        Some("starts with '-'")
    } else {
        None
    };
    match why {
        Some(why) => Err(invalid_setting(
            flag,
            format!(
                "the name {name:?} {why}; names become file and folder names under --out, so each must be one plain \
                 name: no '/' or '\\', not '.' or '..', no control character, not starting with '-'"
            ),
        )),
        None => Ok(()),
    }
}

/// Checks that no name in `names` (given by `flag`) appears twice.
///
/// ```
/// let e = scoreprior_cli::studies::check_unique("--images", ["a", "b", "a"]).unwrap_err().to_string();
/// assert!(e.contains("--images") && e.contains("\"a\""), "{e}");
/// ```
///
/// # Errors
/// [`ExperimentError::Invalid`] naming `flag`: a repeated name.
///
/// [`ExperimentError::Invalid`]: scoreprior::experiment::ExperimentError::Invalid
pub fn check_unique<'a>(flag: &'static str, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(invalid_setting(
                flag,
                format!("the name {n:?} is given twice; each must be unique (it names a row and a folder)"),
            ));
        }
    }
    Ok(())
}

/// Marks `out` as a folder of the study `command` (a `run.json` naming it, as the command line
/// writes) unless it already has a manifest, so that the output guard
/// ([`crate::run_folder::OutputGuard`]) knows the folder as this study's when a library
/// call made it.
///
/// # Errors
/// The manifest cannot be read or written.
pub fn mark_study_folder(out: &std::path::Path, command: &str) -> scoreprior::experiment::Result<()> {
    use crate::run_folder::RunManifest;
    if RunManifest::read(out)?.is_none() {
        RunManifest::new(command, serde_json::json!({})).write(out)?;
    }
    Ok(())
}
