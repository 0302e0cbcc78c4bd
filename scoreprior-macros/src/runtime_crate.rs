//! Where the generated code finds the run-time crate. Both macros expand to items of
//! `scoreprior-core` (`ode::Tableau`, `forward::Model`, …), but the crate using them may
//! depend on it directly, only through the `scoreprior` facade, or under a name of its own
//! (`sp = { package = "scoreprior", … }`). Rust gives a proc macro no `$crate`, so we read
//! the user's `Cargo.toml` (through `proc-macro-crate`, which also follows
//! `workspace = true` and renames) and pick, in this order:
//!
//! 1. `scoreprior-core` listed as `name` → `::name`;
//! 2. `scoreprior-core` being the crate compiled → `::scoreprior_core`, valid through its
//!    `extern crate self as scoreprior_core;` (not `crate`: the crate's doctests and examples
//!    are compiled with the same manifest, and there `crate` is the doctest, not the library);
//! 3. `scoreprior` listed as `name` → `::name::core` (the facade's `pub use scoreprior_core
//!    as core;`);
//! 4. otherwise `::scoreprior_core`, so that a build without a readable manifest (or a
//!    manifest naming neither) fails with rustc's plain "cannot find `scoreprior_core`",
//!    which points at the missing dependency.
//!
//! Paths stay absolute (leading `::`) so that no item of the user's can shadow them.

use proc_macro2::{Ident, Span, TokenStream};
use proc_macro_crate::{crate_name, FoundCrate};
use quote::quote;

/// Package name of the run-time crate.
const CORE: &str = "scoreprior-core";
/// Package name of the facade, which re-exports the run-time crate as `core`.
const FACADE: &str = "scoreprior";
/// The run-time crate's own name, also the alias it gives itself.
const CORE_IDENT: &str = "scoreprior_core";

/// The path of `scoreprior-core` as seen from the crate being compiled, e.g.
/// `::scoreprior_core` or `::sp::core`; prefix every generated item path with it.
pub(crate) fn core_path() -> TokenStream {
    // `crate_name` caches the parsed manifest per `CARGO_MANIFEST_DIR`, so the second macro
    // invocation in a crate (and the facade lookup) costs a map access.
    resolve(crate_name(CORE).ok(), || crate_name(FACADE).ok())
}

/// The decision of [`core_path`], apart from reading the manifest (so it can be tested).
/// The facade is looked up only when `scoreprior-core` is not a dependency: a crate naming
/// both (the facade's own package does) gets the direct path.
fn resolve(core: Option<FoundCrate>, facade: impl FnOnce() -> Option<FoundCrate>) -> TokenStream {
    match core {
        Some(FoundCrate::Name(name)) => absolute(&name),
        Some(FoundCrate::Itself) => absolute(CORE_IDENT),
        None => match facade() {
            Some(FoundCrate::Name(name)) => {
                let facade = absolute(&name);
                quote!(#facade::core)
            }
            // The facade compiling itself (its lib or binaries) always reaches case 1, since
            // it depends on `scoreprior-core`; anything else falls back.
            Some(FoundCrate::Itself) | None => absolute(CORE_IDENT),
        },
    }
}

/// `::name`; `proc-macro-crate` already turned `-` into `_`, so `name` is an identifier.
fn absolute(name: &str) -> TokenStream {
    let ident = Ident::new(name, Span::call_site());
    quote!(::#ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(ts: TokenStream) -> String {
        ts.to_string()
    }

    #[test]
    fn direct_dependency_wins_under_its_own_name() {
        let found = Some(FoundCrate::Name("scoreprior_core".into()));
        assert_eq!(show(resolve(found, || panic!("facade must not be looked up"))), ":: scoreprior_core");
    }

    #[test]
    fn renamed_direct_dependency() {
        let found = Some(FoundCrate::Name("spc".into()));
        assert_eq!(show(resolve(found, || None)), ":: spc");
    }

    #[test]
    fn inside_the_core_crate_uses_its_self_alias() {
        assert_eq!(show(resolve(Some(FoundCrate::Itself), || None)), ":: scoreprior_core");
    }

    #[test]
    fn facade_only_goes_through_its_core_reexport() {
        let facade = || Some(FoundCrate::Name("scoreprior".into()));
        assert_eq!(show(resolve(None, facade)), ":: scoreprior :: core");
        let renamed = || Some(FoundCrate::Name("sp".into()));
        assert_eq!(show(resolve(None, renamed)), ":: sp :: core");
    }

    #[test]
    fn neither_found_falls_back_to_the_plain_name() {
        assert_eq!(show(resolve(None, || None)), ":: scoreprior_core");
    }
}
