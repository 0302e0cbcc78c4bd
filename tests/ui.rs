//! Compile-time behaviour of the macros and of compile-time shapes (trybuild), all in one
//! driver so that trybuild builds the dependencies once:
//! - `tests/ui/butcher_tableau/*.rs`: one failing case per rule of `#[butcher_tableau]`, with
//!   passing cases (a user's solvers run through `solve`) in `tests/ui/butcher_tableau/pass/`;
//! - `tests/ui/forward_model/*.rs`: one failing case per rule of `#[forward_model]`;
//! - `tests/ui/models/*.rs`: an NCSN++ network fed images of another size or channel count;
//! - `tests/ui/experiment/*.rs`: a typed experiment whose prior and operator disagree on the
//!   image shape;
//! - `tests/ui/pass_facade/*.rs`: both macros used with nothing but `use scoreprior::prelude::*`.
//!   trybuild gives the cases all of this package's dependencies, `scoreprior-core` included,
//!   so this proves the user-facing spelling; `tests/external_crate.rs` proves the expansion
//!   through the facade alone (a crate whose manifest lists only a renamed `scoreprior`).
//!
//! The expected diagnostics are in the `.stderr` next to each case. The toolchain is pinned in
//! `rust-toolchain.toml`, so rustc's rendering is stable. After a deliberate change to a
//! message: `TRYBUILD=overwrite cargo test --test ui`, then read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/butcher_tableau/*.rs");
    t.pass("tests/ui/butcher_tableau/pass/*.rs");
    t.compile_fail("tests/ui/forward_model/*.rs");
    t.compile_fail("tests/ui/models/*.rs");
    t.pass("tests/ui/pass_facade/*.rs");
    t.compile_fail("tests/ui/experiment/*.rs");
}
