//! Compile-fail tests of `#[forward_model]`: one file per rule in `tests/ui/forward_model/`,
//! each with the expected compiler output in a `.stderr` file (regenerate with
//! `TRYBUILD=overwrite cargo test --test ui_forward_model`, then read the diff). The
//! toolchain is pinned in `rust-toolchain.toml`, so the diagnostics do not drift.

#[test]
fn forward_model_ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/forward_model/*.rs");
}
