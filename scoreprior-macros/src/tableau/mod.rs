//! `#[butcher_tableau]`: a Runge–Kutta method declared by its Butcher tableau
//! `(c, A, b, b̂)`, verified at compile time with exact rational arithmetic (row sums
//! `cᵢ = Σⱼ aᵢⱼ` and every order condition `bᵀΦ(t) = 1/γ(t)`, `|t| ≤ p`), and expanded to
//! a `Tableau` constant plus an `ExplicitRk` impl of `scoreprior-core` (reached through
//! whatever path the user's crate has to it, see `crate::runtime_crate`).
//!
//! Pipeline (after thiserror/serde): [`parse`] (typed description that keeps spans) →
//! [`validate`] (all checks, every error accumulated) → [`expand`] (code and docs), or the
//! fallback expansion when anything failed, so the user sees our errors and not a cascade
//! of "trait not implemented" errors at use sites.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

mod expand;
mod parse;
mod rational;
#[cfg(test)]
mod tests;
mod validate;

// The rooted-tree enumerator and the order-condition residuals are shared with
// `scoreprior-core` (which re-checks the emitted f64 tableaux at run time): the file lives
// in the core crate and is compiled here a second time, instantiated with exact
// `BigRational`s. A proc-macro crate cannot depend on the crate it generates code for, and
// a third crate for ~200 lines would be heavier than this include; see the file's header.
#[allow(dead_code)]
#[path = "../../../scoreprior-core/src/ode/trees.rs"]
mod trees;

/// Accumulates errors so that one compile reports all of them (serde's `Ctxt`).
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Records an error.
    pub fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
    /// Whether any error was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
    fn finish(self) -> Option<syn::Error> {
        self.0
    }
}

/// Entry point of `#[butcher_tableau]`.
pub fn butcher_tableau(args: TokenStream, item: TokenStream) -> TokenStream {
    let item: syn::ItemStruct = match syn::parse2(item.clone()) {
        Ok(s) => s,
        Err(_) => {
            let err = syn::Error::new(
                first_token_span(&item),
                "#[butcher_tableau] must be placed on a unit struct, e.g. `pub struct MyMethod;`",
            )
            .into_compile_error();
            return quote!(#err #item);
        }
    };
    let mut errors = Errors::default();
    let mut unit = true;
    if !matches!(item.fields, syn::Fields::Unit) {
        unit = false;
        errors.push(syn::Error::new(
            item.fields.span(),
            "#[butcher_tableau] must be placed on a unit struct, e.g. `pub struct MyMethod;`; remove the fields",
        ));
    }
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        unit = false;
        errors.push(syn::Error::new_spanned(&item.generics, "a #[butcher_tableau] struct cannot be generic"));
    }
    let verified = match parse::parse_args(args, &mut errors) {
        Ok(spec) => validate::validate(&spec, &item.ident, &mut errors),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    // The fallback names the run-time crate too (stub impls keep use sites error-free).
    let krate = crate::runtime_crate::core_path();
    match (errors.finish(), verified) {
        (None, Some(v)) => expand::expand(item, &v, &krate),
        (err, _) => {
            let err = err
                .unwrap_or_else(|| syn::Error::new(item.ident.span(), "invalid #[butcher_tableau]"))
                .into_compile_error();
            let fallback = if unit { expand::fallback(item, &krate) } else { quote!(#item) };
            quote!(#err #fallback)
        }
    }
}

fn first_token_span(ts: &TokenStream) -> proc_macro2::Span {
    ts.clone().into_iter().next().map_or_else(proc_macro2::Span::call_site, |t| t.span())
}
