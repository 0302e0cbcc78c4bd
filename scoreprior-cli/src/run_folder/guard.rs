//! One output guard for every command. Before any work, each path a command will write is
//! compared with each path it reads, after canonicalisation (symlinks resolved): an output
//! may not be an input, replace a file of an input folder, or hold an input that a run there
//! would replace or move. Outputs must be regular files or absent (never a device, FIFO or socket);
//! an output folder must be new, empty, or a folder of a previous run of the *same* command
//! (`run.json`), so a folder of the user's own files or of another command's run is never
//! written into, and `--force` never has anything but a run's files to move aside.

use std::path::{Path, PathBuf};

use scoreprior_core::dpi::CHECKPOINT_FILE;
use scoreprior_core::io::{check_regular_output, path_key, path_kind as kind_of, PathError, FOLDER};

use super::{RunManifest, LOCK_FILE};

/// A path named by a flag, with its comparison key ([`path_key`]).
#[derive(Debug, Clone)]
struct Named {
    flag: String,
    path: PathBuf,
    key: PathBuf,
}

impl Named {
    fn new(flag: &str, path: &Path) -> Self {
        Named { flag: flag.to_string(), path: path.to_path_buf(), key: path_key(path) }
    }
    fn shown(&self) -> String {
        format!("{} {}", self.flag, self.path.display())
    }
}

/// What one command reads and writes, checked as a whole before the command starts its work.
///
/// ```
/// use scoreprior_cli::run_folder::OutputGuard;
/// let dir = std::env::temp_dir().join(format!("scoreprior-doc-guard-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("mean.npy"), b"prior mean").unwrap();
/// // A run whose output folder holds one of its inputs is refused before it starts.
/// let e = OutputGuard::new("dpi").input("--mean", dir.join("mean.npy")).folder("--out", &dir).check();
/// assert!(e.unwrap_err().to_string().contains("--mean"));
/// // A new folder beside it is fine.
/// assert!(OutputGuard::new("dpi").input("--mean", dir.join("mean.npy")).folder("--out", dir.join("run")).check().is_ok());
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct OutputGuard {
    command: String,
    inputs: Vec<Named>,
    files: Vec<Named>,
    folders: Vec<Named>,
    plain: Vec<Named>,
}

/// The entries of a folder that a run did not make for its own bookkeeping: everything but the
/// lock, write probes and temporaries of atomic writes.
fn visible_entries(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != LOCK_FILE && !n.starts_with(".scoreprior-write-probe.") && !n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

fn list(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(4).map(String::as_str).collect();
    let more = if names.len() > 4 { format!(" and {} more", names.len() - 4) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

impl OutputGuard {
    /// An empty plan for `command` (its name as in `run.json`, e.g. `dpi`).
    pub fn new(command: &str) -> Self {
        OutputGuard {
            command: command.to_string(),
            inputs: Vec::new(),
            files: Vec::new(),
            folders: Vec::new(),
            plain: Vec::new(),
        }
    }
    /// The command's name, as its runs record it.
    pub fn command(&self) -> &str {
        &self.command
    }
    /// The command reads `path` (a file or a folder), given by `flag`.
    pub fn input(mut self, flag: &str, path: impl AsRef<Path>) -> Self {
        self.inputs.push(Named::new(flag, path.as_ref()));
        self
    }
    /// The command writes the file `path`, given by `flag`.
    pub fn file(mut self, flag: &str, path: impl AsRef<Path>) -> Self {
        self.files.push(Named::new(flag, path.as_ref()));
        self
    }
    /// The command owns the output folder `dir`, given by `flag`.
    pub fn folder(mut self, flag: &str, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        self.folders.push(Named::new(flag, dir));
        self
    }

    /// The command writes its [`file`](Self::file)s into the folder `dir` (given by `flag`)
    /// beside whatever else is there (`measure`, `fit-gaussian`): no `--force` ever moves its
    /// contents, so other files (inputs among them) may stay, but none of the command's files
    /// may replace one that no run of this command wrote, and another command's run folder is
    /// refused.
    pub fn plain_folder(mut self, flag: &str, dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        self.plain.push(Named::new(flag, dir));
        self
    }

    /// Runs every rule; the first violation is the error, naming the flags and paths.
    ///
    /// # Errors
    /// An output equal to an input or to another output; an output file of an input folder,
    /// or a folder holding an input; an output that is not a regular file (or folder); an
    /// output folder holding files no scoreprior run wrote, or another command's run; an
    /// output file that belongs to another command's run folder.
    pub fn check(&self) -> Result<(), PathError> {
        let outputs: Vec<&Named> = self.files.iter().chain(&self.folders).chain(&self.plain).collect();
        for (i, o) in outputs.iter().enumerate() {
            if let Some(p) = outputs[..i].iter().find(|p| p.key == o.key) {
                return Err(PathError(format!(
                    "{}: {} writes the same path; give them different paths",
                    o.shown(),
                    p.shown()
                )));
            }
        }
        for d in &self.folders {
            match kind_of(&d.path) {
                None | Some(FOLDER) => {}
                Some(kind) => {
                    return Err(PathError(format!(
                        "{}: is {kind}, not a folder; {} names the folder a run writes into",
                        d.shown(),
                        d.flag
                    )))
                }
            }
            self.check_against_inputs(d, true)?;
            self.check_folder_contents(d)?;
        }
        for f in &self.files {
            check_regular_output(&f.flag, &f.path)?;
            self.check_against_inputs(f, false)?;
            self.check_foreign_run_file(f)?;
        }
        for d in &self.plain {
            self.check_plain_folder(d)?;
        }
        Ok(())
    }

    /// An output may not be an input, replace a file of an input folder, or (a folder) hold an input.
    fn check_against_inputs(&self, o: &Named, is_folder: bool) -> Result<(), PathError> {
        for i in &self.inputs {
            if o.key == i.key {
                return Err(PathError(format!(
                    "{}: this is the input {}; writing it would replace the input, choose another output path",
                    o.shown(),
                    i.shown()
                )));
            }
            // A new file or folder inside an input folder replaces nothing of it; an existing
            // file there is part of the input.
            if !is_folder && o.key.starts_with(&i.key) && i.key.is_dir() && o.key.is_file() {
                return Err(PathError(format!(
                    "{}: is a file of the input folder {}; writing it would change the input, choose another \
                     output path",
                    o.shown(),
                    i.shown()
                )));
            }
            if is_folder && i.key.starts_with(&o.key) {
                return Err(PathError(format!(
                    "{}: holds the input {}; a run there could replace it (or move it aside with --force), choose \
                     another output folder",
                    o.shown(),
                    i.shown()
                )));
            }
        }
        Ok(())
    }

    /// An output file that already exists in another command's run folder belongs to that run.
    fn check_foreign_run_file(&self, f: &Named) -> Result<(), PathError> {
        if kind_of(&f.path).is_none() {
            return Ok(());
        }
        let Some(dir) = f.key.parent() else { return Ok(()) };
        if let Ok(Some(m)) = RunManifest::read(dir) {
            if m.command != self.command {
                return Err(PathError(format!(
                    "{}: belongs to the `{}` run in {} (its run.json); writing it would change that run's results, \
                     choose another output path",
                    f.shown(),
                    m.command,
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// A plain folder: a folder (or absent), not an input, not another command's run, and none
    /// of the command's files in it may replace a file that no run of this command wrote.
    fn check_plain_folder(&self, d: &Named) -> Result<(), PathError> {
        match kind_of(&d.path) {
            None => return Ok(()),
            Some(FOLDER) => {}
            Some(kind) => {
                return Err(PathError(format!("{}: is {kind}, not a folder", d.shown())));
            }
        }
        if let Some(i) = self.inputs.iter().find(|i| i.key == d.key) {
            return Err(PathError(format!(
                "{}: this is the input {}; choose another output folder",
                d.shown(),
                i.shown()
            )));
        }
        let own = match RunManifest::read(&d.path) {
            Ok(Some(m)) if m.command == self.command => true,
            Ok(Some(m)) => {
                return Err(PathError(format!(
                    "{}: holds a `{}` run (its run.json); `{}` writes only into new folders or its own runs, so \
                     that no run's results change under it: choose another {}",
                    d.shown(),
                    m.command,
                    self.command,
                    d.flag
                )))
            }
            Ok(None) => false,
            Err(e) => return Err(PathError(format!("{}: {e}; choose another {}", d.shown(), d.flag))),
        };
        if !own {
            if let Some(f) =
                self.files.iter().find(|f| f.key.parent() == Some(d.key.as_path()) && kind_of(&f.path).is_some())
            {
                return Err(PathError(format!(
                    "{}: {} exists and no `{}` run wrote it (the folder has no run.json of one); it would be \
                     overwritten: move it or choose another {}",
                    d.shown(),
                    f.path.display(),
                    self.command,
                    d.flag
                )));
            }
        }
        Ok(())
    }

    /// A folder is new, empty, or a previous run of this command.
    fn check_folder_contents(&self, d: &Named) -> Result<(), PathError> {
        let entries = visible_entries(&d.path);
        if entries.is_empty() {
            return Ok(());
        }
        match RunManifest::read(&d.path) {
            Ok(Some(m)) if m.command == self.command => Ok(()),
            Ok(Some(m)) => Err(PathError(format!(
                "{}: holds a `{}` run (its run.json); `{}` writes only into new folders or its own runs, so that \
                 no run's results change under it: choose another {}",
                d.shown(),
                m.command,
                self.command,
                d.flag
            ))),
            Err(e) => Err(PathError(format!(
                "{}: {e}; the folder's run cannot be identified, choose another {}",
                d.shown(),
                d.flag
            ))),
            // A checkpoint without a manifest is an older version's run: the command's own
            // resume logic decides (it refuses without --force).
            Ok(None) if entries.iter().any(|n| n == CHECKPOINT_FILE) => Ok(()),
            Ok(None) => Err(PathError(format!(
                "{}: holds files that no scoreprior run wrote ({}); a run writes only into a new or empty folder or \
                 one of its own previous runs (--force moves only a previous run's files aside, never yours): \
                 choose another {}",
                d.shown(),
                list(&entries),
                d.flag
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_folder::test_scratch;
    use proptest::prelude::*;

    #[test]
    fn each_rule_has_its_error() {
        let d = test_scratch("guard", "rules");
        std::fs::create_dir_all(d.join("prior")).unwrap();
        std::fs::write(d.join("prior/mean.npy"), b"m").unwrap();
        std::fs::write(d.join("x.npy"), b"x").unwrap();
        let g = || OutputGuard::new("dpi").input("--prior", d.join("prior")).input("--x-true", d.join("x.npy"));
        let err = |g: OutputGuard| g.check().unwrap_err().to_string();
        // The output is an input (also through `..`).
        let e = err(g().folder("--out", d.join("sub/../prior")));
        assert!(e.contains("--prior") && e.contains("input"), "{e}");
        // A file of an input folder (a new folder or file inside it replaces nothing).
        let e = err(g().file("--o", d.join("prior/mean.npy")));
        assert!(e.contains("file of the input folder"), "{e}");
        assert!(g().folder("--out", d.join("prior/run")).check().is_ok());
        // Holds an input.
        let e = err(g().folder("--out", &d));
        assert!(e.contains("holds the input"), "{e}");
        // A file output equal to an input.
        let e = err(g().file("--grad", d.join("./x.npy")));
        assert!(e.contains("--x-true") && e.contains("--grad"), "{e}");
        // Two outputs on one path.
        let e = err(g().file("--a", d.join("a.npy")).file("--b", d.join("a.npy")));
        assert!(e.contains("--a") && e.contains("--b"), "{e}");
        // A special file.
        let e = err(OutputGuard::new("logprob").file("--out", "/dev/null"));
        assert!(e.contains("device") && e.contains("regular file"), "{e}");
        // A folder of the user's own files, with or without --force.
        std::fs::create_dir_all(d.join("mine")).unwrap();
        std::fs::write(d.join("mine/samples.npy"), b"user").unwrap();
        let e = err(g().folder("--out", d.join("mine")));
        assert!(e.contains("no scoreprior run wrote") && e.contains("samples.npy"), "{e}");
        // Another command's run folder, and a file inside it.
        std::fs::create_dir_all(d.join("fit")).unwrap();
        RunManifest::new("fit-gaussian", serde_json::json!({})).write(&d.join("fit")).unwrap();
        std::fs::write(d.join("fit/mean.npy"), b"m").unwrap();
        let e = err(OutputGuard::new("measure").folder("--out", d.join("fit")));
        assert!(e.contains("`fit-gaussian` run") && e.contains("`measure`"), "{e}");
        let e = err(OutputGuard::new("logprob").file("--out", d.join("fit/mean.npy")));
        assert!(e.contains("belongs to the `fit-gaussian` run"), "{e}");
        // A plain output folder keeps the user's other files, but never overwrites one.
        std::fs::write(d.join("mine/y.npy"), b"user").unwrap();
        let plain = |name: &str| {
            OutputGuard::new("measure").file("--out", d.join("mine").join(name)).plain_folder("--out", d.join("mine"))
        };
        assert!(plain("aty.npy").check().is_ok());
        let e = err(plain("y.npy"));
        assert!(e.contains("no `measure` run wrote it"), "{e}");
        // What is allowed: a new folder, the command's own previous run, a new file in a run folder.
        assert!(g().folder("--out", d.join("new")).check().is_ok());
        assert!(OutputGuard::new("fit-gaussian").folder("--out", d.join("fit")).check().is_ok());
        assert!(OutputGuard::new("logprob").file("--out", d.join("fit/other.npy")).check().is_ok());
        // A symlink to an input is that input.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(d.join("prior"), d.join("link")).unwrap();
            let e = err(g().folder("--out", d.join("link")));
            assert!(e.contains("--prior"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A small file tree: inputs and outputs drawn among its paths, some reached through
    /// symlinks. Whatever the draw, an accepted plan writes no input, no path inside an input
    /// folder, and no folder that holds an input.
    fn tree(d: &Path) -> Vec<PathBuf> {
        for sub in ["a", "a/b", "c"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        for f in ["a/x.npy", "a/b/y.npy", "c/z.npy", "w.npy"] {
            std::fs::write(d.join(f), b"1").unwrap();
        }
        #[cfg(unix)]
        {
            let _ = std::os::unix::fs::symlink(d.join("a"), d.join("la"));
            let _ = std::os::unix::fs::symlink(d.join("c/z.npy"), d.join("lz.npy"));
        }
        [
            "",
            "a",
            "a/b",
            "c",
            "la",
            "la/b",
            "a/x.npy",
            "la/x.npy",
            "a/b/y.npy",
            "c/z.npy",
            "lz.npy",
            "w.npy",
            "new",
            "a/new",
            "la/new.npy",
        ]
        .iter()
        .map(|p| if p.is_empty() { d.to_path_buf() } else { d.join(p) })
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn accepted_plans_never_touch_an_input(ins in prop::collection::vec(0usize..15, 1..4),
                                               outs in prop::collection::vec((0usize..15, any::<bool>()), 1..4)) {
            let d = test_scratch("guard", "prop");
            let paths = tree(&d);
            let mut g = OutputGuard::new("dpi");
            for (k, &i) in ins.iter().enumerate() {
                g = g.input(&format!("--in{k}"), &paths[i]);
            }
            for (k, &(o, folder)) in outs.iter().enumerate() {
                g = if folder { g.folder(&format!("--out{k}"), &paths[o]) } else { g.file(&format!("--o{k}"), &paths[o]) };
            }
            if g.check().is_ok() {
                let canon = |p: &Path| path_key(p);
                for &(o, folder) in &outs {
                    let ok = canon(&paths[o]);
                    for &i in &ins {
                        let ik = canon(&paths[i]);
                        prop_assert!(ok != ik, "{:?} == input {:?}", paths[o], paths[i]);
                        prop_assert!(!(ik.is_dir() && ok.starts_with(&ik) && ok.is_file()), "{:?} in {:?}", paths[o], paths[i]);
                        prop_assert!(!(folder && ik.starts_with(&ok)), "{:?} holds {:?}", paths[o], paths[i]);
                    }
                    // Only new or empty folders, and only regular files or new paths.
                    if folder {
                        prop_assert!(visible_entries(&paths[o]).is_empty());
                    } else {
                        prop_assert!(!ok.is_dir());
                    }
                }
            }
            let _ = std::fs::remove_dir_all(&d);
        }
    }
}
