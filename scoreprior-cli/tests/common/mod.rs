//! Helpers shared by the tests that run the `scoreprior` binary: a fresh scratch folder per
//! test, and running the binary expecting success or a clean failure.
// Each test file uses its own subset of these.
#![allow(dead_code)]

use std::process::{Command, Output};

/// A scratch folder (`tempfile`'s, named after the test) that is removed when dropped;
/// it dereferences to its path.
pub struct Scratch(tempfile::TempDir);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        self.0.path()
    }
}

/// A new, empty scratch folder unique to this test and `name`, removed at the end of the test.
pub fn tmp(name: &str) -> Scratch {
    Scratch(tempfile::Builder::new().prefix(&format!("scoreprior-cli-{name}-")).tempdir().expect("scratch folder"))
}

/// The repository's root: the tests name the shipped files (`assets/…`, `tests/data/…`)
/// relative to it, as a user at the root of a clone does.
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The `scoreprior` program, to be run from [`ROOT`].
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scoreprior"));
    c.current_dir(ROOT);
    c
}

/// Runs `scoreprior` with `args` from [`ROOT`].
pub fn bin(args: &[&str]) -> Output {
    command().args(args).output().expect("run scoreprior")
}

/// Runs `scoreprior`, asserts success, and returns its standard output.
pub fn ok(args: &[&str]) -> String {
    let o = bin(args);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "scoreprior {args:?} failed:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Runs `scoreprior`, asserts it failed with an error (exit code 1, not a panic), and returns
/// its standard error.
pub fn fails(args: &[&str]) -> String {
    let o = bin(args);
    assert!(!o.status.success(), "scoreprior {args:?} should fail");
    assert_eq!(o.status.code(), Some(1), "an error, not a panic");
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs `scoreprior` with `base` followed by `extra`, asserts a clean failure (see [`fails`])
/// whose message contains `says`, and returns the message: one row of a flag-error table.
pub fn fails_saying(base: &[&str], extra: &[&str], says: &str) -> String {
    let mut a = base.to_vec();
    a.extend_from_slice(extra);
    let e = fails(&a);
    assert!(e.contains(says), "{extra:?}: {e}");
    e
}

/// The mean of the D = 4 Gaussian prior of the CLI tests.
pub const MEAN: [f64; 4] = [0.2, 0.4, 0.1, 0.3];
/// Its covariance: symmetric positive definite, not diagonal (so Hutchinson has variance).
pub const COV: [f64; 16] = [
    0.30, 0.10, 0.05, 0.00, //
    0.10, 0.20, 0.02, 0.04, //
    0.05, 0.02, 0.25, 0.06, //
    0.00, 0.04, 0.06, 0.15,
];
/// Two 2×2 images for it.
pub const X: [f64; 8] = [0.1, 0.5, 0.0, 0.2, 0.6, 0.1, 0.3, 0.7];

/// Writes mean.npy and cov.npy ([`MEAN`], [`COV`]) into `dir`; returns their paths.
pub fn gaussian_prior_files(dir: &std::path::Path) -> (String, String) {
    let (m, c) = (dir.join("mean.npy"), dir.join("cov.npy"));
    scoreprior::core::io::write_npy(&m, &[4], &MEAN).unwrap();
    scoreprior::core::io::write_npy(&c, &[4, 4], &COV).unwrap();
    (m.display().to_string(), c.display().to_string())
}

/// [`gaussian_prior_files`], then x.npy ([`X`], shape (2, 2, 2)); returns the three paths.
pub fn gaussian_files(dir: &std::path::Path) -> (String, String, String) {
    let (m, c) = gaussian_prior_files(dir);
    let x = dir.join("x.npy");
    scoreprior::core::io::write_npy(&x, &[2, 2, 2], &X).unwrap();
    (m, c, x.display().to_string())
}

/// `n` 8×8 images with values in [0, 1] (a fixed pattern), row-major: the training data of the
/// tests that train a tiny NCSN++. The first 64 values are `train_images(1)`.
pub fn train_images(n: usize) -> Vec<f64> {
    (0..n * 64).map(|i| ((i * 7) % 11) as f64 / 10.0).collect()
}

/// Writes [`train_images`]`(n)` to `dir/data.npy` (shape (n, 8, 8)); returns its path.
pub fn train_data(dir: &std::path::Path, n: usize) -> std::path::PathBuf {
    let data = dir.join("data.npy");
    scoreprior::core::io::write_npy(&data, &[n, 8, 8], &train_images(n)).unwrap();
    data
}

/// A tiny NCSN++ trained for 2 steps on [`train_data`]`(dir, 4)` into `dir/ck`; returns the
/// path of its EMA weights. Its output layer starts at zero (`init_scale` 0) and the EMA
/// weights barely move, so `ε̂ ≈ 0` and the score `s ≈ 0`: its PF-ODE prior has a closed form.
pub fn tiny_network(dir: &std::path::Path) -> std::path::PathBuf {
    let data = train_data(dir, 4);
    let ck = dir.join("ck");
    #[rustfmt::skip]
    ok(&["train", "--data", data.to_str().unwrap(), "--out", ck.to_str().unwrap(), "--size", "8", "--config", "tiny",
         "--steps", "2", "--batch-size", "2", "--sample-every", "0", "--quiet"]);
    ck.join("ema.safetensors")
}
