//! `#[forward_model]`: a measurement operator declared as a chain of primitives on a
//! compile-time image shape. The shape is pushed through the chain while compiling
//! (`[C, H, W] → … → OUTPUT_SHAPE`), every rule of every primitive is checked with a span on
//! the offending literal, and the expansion builds the very same run-time
//! `scoreprior_core::forward::Chain` (through `build_chain`) that the CLI and configs use,
//! so no operator code is generated or duplicated: the adjoint is the chain's primitive
//! adjoints composed in reverse, non-linear primitives contribute their VJPs.
//!
//! Pipeline (after thiserror/serde): [`ast`] (parse into a typed description that keeps
//! spans) → [`valid`] (all checks; every error accumulated) → [`expand`], or on any error
//! the user's struct alone plus the errors, so the user sees ours and not a cascade.

use proc_macro2::TokenStream;
use quote::quote;

mod ast;
mod expand;
mod valid;

/// Accumulates errors so that one compile reports all of them (serde's `Ctxt`).
#[derive(Default)]
pub(crate) struct Ctxt(Option<syn::Error>);

impl Ctxt {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
    /// An error spanning all of `tokens` (first to last token, also on stable Rust).
    pub(crate) fn error(&mut self, tokens: impl quote::ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, msg));
    }
}

/// Entry point of `#[forward_model]`.
pub fn forward_model(args: TokenStream, item: TokenStream) -> TokenStream {
    let item_struct: syn::ItemStruct = match syn::parse2(item.clone()) {
        Ok(s) => s,
        Err(e) => {
            let e = syn::Error::new(
                e.span(),
                "#[forward_model] must be placed on a unit struct, e.g. `pub struct BlurDown;`",
            );
            let ce = e.to_compile_error();
            return quote! { #ce #item };
        }
    };
    if !matches!(item_struct.fields, syn::Fields::Unit) || !item_struct.generics.params.is_empty() {
        let e = syn::Error::new_spanned(
            &item_struct.ident,
            "#[forward_model] must be placed on a unit struct without generics",
        )
        .to_compile_error();
        return quote! { #e #item_struct };
    }
    let mut cx = Ctxt::default();
    let spec = ast::parse(args, &mut cx);
    let checked = spec.and_then(|s| valid::check(&s, &mut cx).map(|out| (s, out)));
    match (cx.0, checked) {
        (None, Some((spec, out))) => expand::expand(&item_struct, &spec, &out, &crate::runtime_crate::core_path()),
        (Some(e), _) => {
            let ce = e.to_compile_error();
            quote! { #ce #item_struct }
        }
        (None, None) => {
            let ce = syn::Error::new(proc_macro2::Span::call_site(), "invalid #[forward_model] attribute")
                .to_compile_error();
            quote! { #ce #item_struct }
        }
    }
}
