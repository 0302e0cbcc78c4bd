//! The macros from a crate outside this workspace: `tests/external-crate` depends on nothing
//! but the `scoreprior` facade (renamed `sp`), declares a solver with `#[butcher_tableau]`
//! and a model with `#[forward_model]`, and checks their numbers. Its own `cargo test` is
//! run here, because only a separate package has a manifest without `scoreprior-core` in it
//! (trybuild's cases get all of this package's dependencies).
//!
//! It builds `scoreprior` and its dependencies once in release (offline: the crate's
//! `Cargo.lock` pins this workspace's versions, so everything is already fetched) into
//! `<target>/external-crate`, reused by later runs and kept out of the source tree.

use std::path::Path;
use std::process::Command;

#[test]
fn macros_work_through_the_facade_alone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // `CARGO_TARGET_TMPDIR` is `<target>/tmp`, so this follows `CARGO_TARGET_DIR` too.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("<target>/tmp").join("external-crate");
    let output = Command::new(env!("CARGO"))
        .args(["test", "--release", "--offline", "--manifest-path"])
        .arg(root.join("tests/external-crate/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        // Set by cargo for this integration test only; inherited, it would make the child's
        // proc macros believe every crate they expand in is an integration test.
        .env_remove("CARGO_TARGET_TMPDIR")
        .output()
        .expect("running cargo");
    assert!(
        output.status.success(),
        "`cargo test` of tests/external-crate failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}
