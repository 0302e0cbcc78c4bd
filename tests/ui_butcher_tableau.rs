//! Compile-time behaviour of `#[butcher_tableau]` (trybuild): one failing case per rule in
//! `tests/ui/butcher_tableau/*.rs` with the expected diagnostics in the `.stderr` next to
//! it, and passing cases in `tests/ui/butcher_tableau/pass/`. The toolchain is pinned in
//! `rust-toolchain.toml`, so rustc's rendering of the diagnostics is stable. After a
//! deliberate change to a message: `TRYBUILD=overwrite cargo test --test ui_butcher_tableau`,
//! then read the diff.

#[test]
fn ui_butcher_tableau() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/butcher_tableau/*.rs");
    t.pass("tests/ui/butcher_tableau/pass/*.rs");
}
