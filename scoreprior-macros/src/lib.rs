//! Procedural macros of scoreprior.
use proc_macro::TokenStream;

/// Declares an explicit Runge–Kutta solver from its Butcher tableau.
#[proc_macro_attribute]
pub fn butcher_tableau(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
