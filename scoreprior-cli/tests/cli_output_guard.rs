//! The output guard from the command line (issue 25, data loss): no command overwrites or
//! moves an input, a folder of the user's own files, another command's run, or a special
//! file. Each case failed on 877cb37 (an input replaced, a folder moved, a FIFO turned into a
//! file) and is now an error before any work, with every file left as it was.

use std::path::Path;
use std::process::Command;
mod common;

use common::{fails, ok, tmp};
use scoreprior::core::io::write_npy;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Runs the binary in `cwd`; returns (success, stderr).
fn run_in(cwd: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_scoreprior")).args(args).current_dir(cwd).output().unwrap();
    assert!(o.status.code().is_some_and(|c| c <= 1), "an error, not a panic: {:?}", o.status);
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A 16×16 Gaussian prior (the shipped one's files) and one image in `dir`.
fn prior_and_image(dir: &Path) -> (String, String, String) {
    let assets = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("assets/gaussian16");
    std::fs::copy(assets.join("mean.npy"), dir.join("mean.npy")).unwrap();
    std::fs::copy(assets.join("cov.npy"), dir.join("cov.npy")).unwrap();
    write_npy(dir.join("x_true.npy"), &[4, 16, 16], &[0.3; 1024]).unwrap();
    (s(&dir.join("mean.npy")), s(&dir.join("cov.npy")), s(&dir.join("x_true.npy")))
}

const QUICK: [&str; 6] = ["--steps", "2", "--batch", "4", "--samples", "4"];

fn dpi_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["dpi", "--prior", "gaussian", "--quiet"];
    a.extend(QUICK);
    a.extend(extra);
    a
}

#[test]
fn dpi_never_writes_into_the_folder_of_its_inputs() {
    let dir = tmp("guard-inputs");
    let run2 = dir.join("run2");
    std::fs::create_dir_all(&run2).unwrap();
    let (m, c, x) = prior_and_image(&run2);
    let before = std::fs::read(&m).unwrap();
    let o = s(&run2);
    // The prior's mean and covariance live in --out: the posterior mean would replace them.
    let e = fails(&dpi_args(&["--mean", &m, "--cov", &c, "--x-true", &x, "--out", &o]));
    assert!(e.contains("--out") && e.contains("holds the input") && e.contains("--"), "{e}");
    assert_eq!(std::fs::read(&m).unwrap(), before);
    // The image file in --out: a 4-image input would be replaced by one image.
    let run3 = dir.join("run3");
    std::fs::create_dir_all(&run3).unwrap();
    let (_, _, x3) = prior_and_image(&run3);
    let x_before = std::fs::read(&x3).unwrap();
    let e = fails(&dpi_args(&["--x-true", &x3, "--index", "3", "--out", &s(&run3)]));
    assert!(e.contains("--x-true") && e.contains("holds the input"), "{e}");
    assert_eq!(std::fs::read(&x3).unwrap(), x_before);
    // Outside the input folder, the same run works.
    ok(&dpi_args(&["--mean", &m, "--cov", &c, "--x-true", &x, "--out", &s(&dir.join("post"))]));
    assert_eq!(std::fs::read(&m).unwrap(), before);
}

#[test]
fn the_default_prior_folder_is_an_input_even_through_a_symlink() {
    // A copy of the shipped default prior, in a scratch working folder (so a failure cannot
    // destroy the real one).
    let dir = tmp("guard-default");
    std::fs::create_dir_all(dir.join("assets/gaussian16")).unwrap();
    let (m, _, x) = prior_and_image(&dir.join("assets/gaussian16"));
    std::fs::rename(&x, dir.join("x.npy")).unwrap();
    let before = std::fs::read(&m).unwrap();
    let (okay, e) = run_in(&dir, &dpi_args(&["--x-true", "x.npy", "--out", "assets/gaussian16"]));
    assert!(!okay && e.contains("assets/gaussian16/") && e.contains("holds the input"), "{e}");
    std::os::unix::fs::symlink(dir.join("assets/gaussian16"), dir.join("link")).unwrap();
    let (okay, e) = run_in(&dir, &dpi_args(&["--x-true", "x.npy", "--out", "link"]));
    assert!(!okay && e.contains("holds the input"), "{e}");
    assert_eq!(std::fs::read(&m).unwrap(), before);
    assert_eq!(std::fs::read_dir(dir.join("assets/gaussian16")).unwrap().count(), 2);
}

#[test]
fn a_folder_of_user_files_is_refused_with_or_without_force() {
    let dir = tmp("guard-user");
    let (_, _, x) = prior_and_image(&dir);
    let mine = dir.join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("samples.npy"), b"my samples").unwrap();
    std::fs::write(mine.join("losses.csv"), b"my losses").unwrap();
    for force in [false, true] {
        let mut a = dpi_args(&["--x-true", &x, "--out"]);
        let o = s(&mine);
        a.push(&o);
        if force {
            a.push("--force");
        }
        let e = fails(&a);
        assert!(e.contains("no scoreprior run wrote") && e.contains("samples.npy"), "{e}");
    }
    assert_eq!(std::fs::read(mine.join("samples.npy")).unwrap(), b"my samples");
    assert_eq!(std::fs::read(mine.join("losses.csv")).unwrap(), b"my losses");
    assert!(!dir.join("mine.old-1").exists());
    // `--out . --force` in a working folder of user files (its inputs among them): nothing moves.
    std::fs::write(dir.join("notes.txt"), b"notes").unwrap();
    let (okay, e) = run_in(&dir, &dpi_args(&["--x-true", "x_true.npy", "--out", ".", "--force"]));
    assert!(!okay && e.contains("holds the input"), "{e}");
    let (okay, e) = run_in(&mine, &dpi_args(&["--x-true", &x, "--out", ".", "--force"]));
    assert!(!okay && e.contains("no scoreprior run wrote"), "{e}");
    assert!(dir.join("notes.txt").exists() && dir.join("x_true.npy").exists() && mine.join("samples.npy").exists());
    let parent = dir.parent().unwrap();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!parent.join(format!("{name}.old-1")).exists() && !dir.join("out.old-1").exists());
}

#[test]
fn force_moves_only_a_previous_runs_files_and_never_the_folder() {
    let dir = tmp("guard-force");
    let (m, c, x) = prior_and_image(&dir);
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let args = |extra: &[&str]| -> (bool, String) {
        let mut a = dpi_args(&["--mean", &m, "--cov", &c, "--x-true", &x, "--out", "."]);
        a.extend(extra);
        run_in(&work, &a)
    };
    assert!(args(&[]).0);
    let (okay, e) = args(&["--force"]);
    assert!(okay, "{e}");
    // The old run went to the sibling `work.old-1`; the working folder itself stays.
    assert!(dir.join("work.old-1/run.json").exists() && work.join("run.json").exists());
}

#[test]
fn other_commands_never_write_into_a_dpi_run() {
    let dir = tmp("guard-other");
    let (m, c, x) = prior_and_image(&dir);
    let run = dir.join("run");
    let o = s(&run);
    ok(&dpi_args(&["--mean", &m, "--cov", &c, "--x-true", &x, "--out", &o]));
    let mean_before = std::fs::read(run.join("mean.npy")).unwrap();
    let e = fails(&["measure", "--forward", "identity", "--x", &x, "--out", &o]);
    assert!(e.contains("`dpi` run") && e.contains(&o), "{e}");
    let e = fails(&["fit-gaussian", "--data", &x, "--size", "4", "--out", &o]);
    assert!(e.contains("`dpi` run"), "{e}");
    // A single-file output that is one of the run's files belongs to it.
    let target = s(&run.join("mean.npy"));
    #[rustfmt::skip]
    let e = fails(&["logprob", "--prior", "gaussian", "--mean", &m, "--cov", &c, "--x", &x, "--trace", "exact",
                    "--grad", &target, "--out", &s(&dir.join("r.json"))]);
    assert!(e.contains("belongs to the `dpi` run"), "{e}");
    assert_eq!(std::fs::read(run.join("mean.npy")).unwrap(), mean_before);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(state["command"], "dpi");
    assert_eq!(state["state"], "complete");
    // `measure` reruns into its own folder, which its run.json marks as complete.
    let meas = s(&dir.join("meas"));
    ok(&["measure", "--forward", "identity", "--x", &x, "--out", &meas]);
    ok(&["measure", "--forward", "identity", "--x", &x, "--out", &meas, "--seed", "2"]);
    let mark: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meas/run.json")).unwrap()).unwrap();
    assert_eq!((mark["command"].as_str(), mark["state"].as_str()), (Some("measure"), Some("complete")));
}

#[test]
fn special_files_are_never_replaced() {
    let dir = tmp("guard-fifo");
    let (m, c, x) = prior_and_image(&dir);
    let fifo = dir.join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    #[rustfmt::skip]
    let e = fails(&["logprob", "--prior", "gaussian", "--mean", &m, "--cov", &c, "--x", &x, "--trace", "exact",
                    "--out", &s(&fifo)]);
    assert!(e.contains("FIFO") && e.contains("regular file"), "{e}");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    // The same for an output folder that is a FIFO, and a file output that is a folder.
    let e = fails(&dpi_args(&["--mean", &m, "--cov", &c, "--x-true", &x, "--out", &s(&fifo)]));
    assert!(e.contains("FIFO") && e.contains("not a folder"), "{e}");
    std::fs::create_dir_all(dir.join("d.npy")).unwrap();
    let e = fails(&["make-sources", "--n", "2", "--size", "8", "--out", &s(&dir.join("d.npy"))]);
    assert!(e.contains("d.npy"), "{e}");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}
