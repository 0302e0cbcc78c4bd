//! Output-path checks shared by the command-line programs: refuse an output that would
//! overwrite an input or another output of the same run, derive the files of an output
//! prefix, and make sure a folder is writable before expensive work starts.

use std::path::{Component, Path, PathBuf};

/// A bad output path, with a message naming the flags and paths involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

/// What is at `path`, in words (`a regular file`, `a folder`, `a named pipe (FIFO)`, … as
/// the loaders name them), following symlinks; `None` when nothing is there.
pub fn path_kind(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok().or_else(|| std::fs::symlink_metadata(path).ok())?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Some("a dangling symlink");
    }
    Some(super::file_kind(&ft).unwrap_or(REGULAR_FILE))
}

/// [`path_kind`] of a regular file.
pub const REGULAR_FILE: &str = "a regular file";
/// [`path_kind`] of a folder.
pub const FOLDER: &str = "a folder";

/// Checks that `path` is a regular file or absent: scoreprior replaces outputs by renaming a
/// new file over them, which would turn a device or FIFO into a plain file.
///
/// ```
/// use std::path::Path;
/// assert!(scoreprior_core::io::check_regular_output("--out", Path::new("/dev/null")).is_err());
/// assert!(scoreprior_core::io::check_regular_output("--out", Path::new("/no/such/file.npy")).is_ok());
/// ```
pub fn check_regular_output(flag: &str, path: &Path) -> Result<(), PathError> {
    match path_kind(path) {
        None | Some(REGULAR_FILE) => Ok(()),
        Some(FOLDER) => Err(PathError(format!(
            "{flag} {}: is a folder; give a file path (the folder's contents are left alone)",
            path.display()
        ))),
        Some(kind) => Err(PathError(format!(
            "{flag} {}: is {kind}, not a regular file; scoreprior writes only regular files (it would replace it \
             with a file), choose another path",
            path.display()
        ))),
    }
}

/// The key under which two paths name the same file: the canonical form of the file itself
/// when it exists, else the canonical form of its parent (when that exists) joined with the
/// file name, else the path made absolute with `.` and `..` resolved lexically. Symlinks to
/// existing files, `./a.npy` against `a.npy` and `dir/../a.npy` all compare equal.
pub fn path_key(path: &Path) -> PathBuf {
    if let Ok(c) = path.canonicalize() {
        return c;
    }
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    let mut norm = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                norm.pop();
            }
            other => norm.push(other),
        }
    }
    match (norm.parent(), norm.file_name()) {
        (Some(dir), Some(name)) => match dir.canonicalize() {
            Ok(d) => d.join(name),
            Err(_) => norm.clone(),
        },
        _ => norm,
    }
}

/// Checks that no output names the same file as an input or as another output.
///
/// `inputs` and `outputs` are `(flag, path)` pairs; the flag (e.g. `--grad`) names the
/// offending option in the error. Outputs that do not exist yet are compared by their parent
/// folder and file name (see [`path_key`]).
///
/// ```
/// use std::path::Path;
/// use scoreprior_core::io::check_outputs_distinct;
/// let x = Path::new("a.npy");
/// assert!(check_outputs_distinct(&[("--x", x)], &[("--grad", Path::new("./a.npy"))]).is_err());
/// assert!(check_outputs_distinct(&[("--x", x)], &[("--grad", Path::new("g.npy"))]).is_ok());
/// ```
pub fn check_outputs_distinct(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<(), PathError> {
    let in_keys: Vec<PathBuf> = inputs.iter().map(|(_, p)| path_key(p)).collect();
    let out_keys: Vec<PathBuf> = outputs.iter().map(|(_, p)| path_key(p)).collect();
    for (i, (oflag, opath)) in outputs.iter().enumerate() {
        if let Some(j) = in_keys.iter().position(|k| *k == out_keys[i]) {
            let (iflag, ipath) = inputs[j];
            return Err(PathError(format!(
                "{oflag} {}: this is the input {iflag} {}; writing it would overwrite the input, choose another output path",
                opath.display(),
                ipath.display()
            )));
        }
        if let Some(j) = out_keys[..i].iter().position(|k| *k == out_keys[i]) {
            let (pflag, ppath) = outputs[j];
            return Err(PathError(format!(
                "{oflag} {}: {pflag} {} writes the same file; give them different paths",
                opath.display(),
                ppath.display()
            )));
        }
    }
    Ok(())
}

/// The `.png` and `.npy` files written for an output prefix: the extension is appended to
/// the whole prefix (`run.1` → `run.1.png`, `run.1.npy`), so distinct prefixes never
/// collide; a prefix that already ends in `.png` or `.npy` (any case) has that ending
/// replaced (`run.png` → `run.png`, `run.npy`).
///
/// ```
/// use std::path::{Path, PathBuf};
/// use scoreprior_core::io::prefix_png_npy;
/// assert_eq!(prefix_png_npy(Path::new("run.1")), (PathBuf::from("run.1.png"), PathBuf::from("run.1.npy")));
/// assert_eq!(prefix_png_npy(Path::new("a/x.NPY")), (PathBuf::from("a/x.png"), PathBuf::from("a/x.npy")));
/// ```
pub fn prefix_png_npy(prefix: &Path) -> (PathBuf, PathBuf) {
    let known = prefix.extension().is_some_and(|e| e.eq_ignore_ascii_case("png") || e.eq_ignore_ascii_case("npy"));
    let stem = if known { prefix.with_extension("") } else { prefix.to_path_buf() };
    let with = |ext: &str| {
        let mut s = stem.clone().into_os_string();
        s.push(ext);
        PathBuf::from(s)
    };
    (with(".png"), with(".npy"))
}

/// Creates `dir` (and its parents) if needed and checks that a file can be created in it,
/// by creating and removing a probe file. Run this before expensive work whose results go
/// to `dir`, so an unwritable destination fails at once rather than after the work.
pub fn ensure_writable_dir(flag: &str, dir: &Path) -> Result<(), PathError> {
    let shown = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    std::fs::create_dir_all(shown)
        .map_err(|e| PathError(format!("{flag}: cannot create the folder {}: {e}", shown.display())))?;
    let probe = shown.join(format!(".scoreprior-write-probe.{}", std::process::id()));
    std::fs::File::create(&probe)
        .map_err(|e| PathError(format!("{flag}: the folder {} is not writable: {e}", shown.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_paths_clash_and_distinct_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("scoreprior-paths-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let x = dir.join("x.npy");
        std::fs::write(&x, b"x").unwrap();
        let same = dir.join("sub/../x.npy");
        let e = check_outputs_distinct(&[("--x", &x)], &[("--out", &same)]).unwrap_err().to_string();
        assert!(e.contains("--out") && e.contains("--x") && e.contains("overwrite"), "{e}");
        let (a, b) = (dir.join("new.json"), dir.join("./new.json"));
        let e = check_outputs_distinct(&[], &[("--out", &a), ("--grad", &b)]).unwrap_err().to_string();
        assert!(e.contains("--grad") && e.contains("--out"), "{e}");
        assert!(check_outputs_distinct(&[("--x", &x)], &[("--out", &a), ("--grad", &dir.join("g.npy"))]).is_ok());
        // Not yet existing folders are compared lexically.
        assert_eq!(path_key(&dir.join("no/./y")), path_key(&dir.join("no/y")));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn prefixes_keep_their_whole_name() {
        let p = |s: &str| prefix_png_npy(Path::new(s));
        assert_eq!(p("run.1").0, PathBuf::from("run.1.png"));
        assert_eq!(p("run.2").1, PathBuf::from("run.2.npy"));
        assert_eq!(p("reg.txt").0, PathBuf::from("reg.txt.png"));
        assert_eq!(p("samples"), (PathBuf::from("samples.png"), PathBuf::from("samples.npy")));
        assert_eq!(p("out/s.png"), (PathBuf::from("out/s.png"), PathBuf::from("out/s.npy")));
    }
}
