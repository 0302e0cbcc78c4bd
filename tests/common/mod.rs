//! Helpers shared by the tests that run the `scoreprior` binary: a fresh scratch folder per
//! test, and running the binary expecting success or a clean failure.
// Each test file uses its own subset of these.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// A new, empty scratch folder unique to this test process and `name`.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoreprior-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `scoreprior` with `args`.
pub fn bin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scoreprior")).args(args).output().expect("run scoreprior")
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
