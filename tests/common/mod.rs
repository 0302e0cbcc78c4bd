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
