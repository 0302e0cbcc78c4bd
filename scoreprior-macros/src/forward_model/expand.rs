//! Code generation: shape constants, the primitive specs, a lazily built
//! `<core>::forward::Model` (the same run-time chain the CLI builds), and a `ForwardModel`
//! impl that delegates to it. `<core>` (`krate` below) is the run-time crate's path as the
//! user's crate names it (see `crate::runtime_crate`); absolute paths only.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use super::ast::{Call, Spec, Value};
use super::valid::Checked;

fn describe(c: &Call) -> String {
    if c.params.is_empty() {
        return c.name.to_string();
    }
    let ps: Vec<String> = c
        .params
        .iter()
        .map(|p| match &p.value {
            Value::Num { value, .. } => format!("{} = {value}", p.key),
            Value::Word(w) => format!("{} = {w}", p.key),
        })
        .collect();
    format!("{}({})", c.name, ps.join(", "))
}

fn spec_tokens(c: &Call, krate: &TokenStream) -> TokenStream {
    let name = c.name.to_string();
    let params = c.params.iter().map(|p| {
        let key = p.key.to_string();
        let v = match &p.value {
            Value::Num { value, .. } => {
                let lit = Literal::f64_suffixed(*value);
                quote! { #krate::forward::ParamValue::Num(#lit) }
            }
            Value::Word(w) => quote! { #krate::forward::ParamValue::Word(::std::string::String::from(#w)) },
        };
        quote! { (#key, #v) }
    });
    quote! { #krate::forward::PrimitiveSpec::new(#name, ::std::vec![#(#params),*]) }
}

pub(crate) fn expand(item: &syn::ItemStruct, spec: &Spec, out: &Checked, krate: &TokenStream) -> TokenStream {
    let ident = &item.ident;
    let [ic, ih, iw] = out.input;
    let [oc, oh, ow] = out.output;
    let (din, dout) = (ic * ih * iw, oc * oh * ow);
    let noise = spec.noise.as_ref().expect("checked: noise present");
    let sigma = match &noise.params[0].value {
        Value::Num { value, .. } => Literal::f64_suffixed(*value),
        Value::Word(_) => unreachable!("checked: sigma is a number"),
    };
    let noise_spec = if noise.name == "gaussian" {
        quote! { #krate::forward::NoiseSpec::Gaussian { sigma: #sigma } }
    } else {
        quote! { #krate::forward::NoiseSpec::ComplexGaussian { sigma: #sigma } }
    };
    let chain_text = spec.ops.iter().map(describe).collect::<Vec<_>>().join(" | ");
    let noise_text = describe(noise);
    let specs = spec.ops.iter().map(|c| spec_tokens(c, krate));
    let linear = out.linear;
    let doc = format!(
        " Forward model declared with `#[forward_model]`: `{chain_text}` on `[{ic}, {ih}, {iw}]` images → \
         `[{oc}, {oh}, {ow}]` measurements, noise `{noise_text}`{}.",
        if linear { "" } else { " (non-linear: VJP, no adjoint)" }
    );
    let attrs = &item.attrs;
    let vis = &item.vis;
    quote! {
        #(#attrs)*
        #[doc = ""]
        #[doc = #doc]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #vis struct #ident;

        #[automatically_derived]
        impl #ident {
            /// Shape `[C, H, W]` of one input image.
            pub const INPUT_SHAPE: [usize; 3] = [#ic, #ih, #iw];
            /// Shape of one measurement, computed at compile time.
            pub const OUTPUT_SHAPE: [usize; 3] = [#oc, #oh, #ow];
            /// `C·H·W` of the input.
            pub const INPUT_DIM: usize = #din;
            /// Length of one measurement.
            pub const OUTPUT_DIM: usize = #dout;
            /// Whether every primitive is linear.
            pub const LINEAR: bool = #linear;
            /// The chain in the text syntax of `scoreprior_core::forward::parse_chain`.
            pub const CHAIN: &'static str = #chain_text;
            /// The noise in the text syntax of `scoreprior_core::forward::parse_noise`.
            pub const NOISE: &'static str = #noise_text;

            /// The primitives as specs, first applied first.
            pub fn primitive_specs() -> ::std::vec::Vec<#krate::forward::PrimitiveSpec> {
                ::std::vec![#(#specs),*]
            }
            /// The noise spec.
            pub fn noise_spec() -> #krate::forward::NoiseSpec {
                #noise_spec
            }
            /// The run-time model (built once, on first use).
            pub fn model() -> &'static #krate::forward::Model {
                static MODEL: ::std::sync::OnceLock<#krate::forward::Model> = ::std::sync::OnceLock::new();
                MODEL.get_or_init(|| {
                    // Cannot fail: the macro checked every rule `build_chain` checks.
                    let chain = #krate::forward::spec::build_chain(
                        &Self::primitive_specs(),
                        #krate::forward::Shape::new(#ic, #ih, #iw),
                    )
                    .expect("#[forward_model] checked this chain at compile time");
                    #krate::forward::Model::with_spec(chain, &Self::noise_spec())
                        .expect("#[forward_model] checked this noise at compile time")
                })
            }
        }

        #[automatically_derived]
        impl #krate::forward::InputShape<#ic, #ih, #iw> for #ident {}

        #[automatically_derived]
        impl #krate::forward::ForwardModel for #ident {
            fn input_dim(&self) -> usize {
                #din
            }
            fn output_dim(&self) -> usize {
                #dout
            }
            fn is_linear(&self) -> bool {
                #linear
            }
            fn forward(&self, x: &[f64]) -> #krate::Result<::std::vec::Vec<f64>> {
                #krate::forward::ForwardModel::forward(Self::model(), x)
            }
            fn adjoint(&self, y: &[f64]) -> #krate::Result<::std::vec::Vec<f64>> {
                #krate::forward::ForwardModel::adjoint(Self::model(), y)
            }
            fn vjp(&self, x: &[f64], v: &[f64]) -> #krate::Result<::std::vec::Vec<f64>> {
                #krate::forward::ForwardModel::vjp(Self::model(), x, v)
            }
            fn log_likelihood(&self, y: &[f64], x: &[f64]) -> #krate::Result<::std::vec::Vec<f64>> {
                #krate::forward::ForwardModel::log_likelihood(Self::model(), y, x)
            }
            fn grad_log_likelihood(&self, y: &[f64], x: &[f64]) -> #krate::Result<::std::vec::Vec<f64>> {
                #krate::forward::ForwardModel::grad_log_likelihood(Self::model(), y, x)
            }
            fn simulate(
                &self,
                x: &[f64],
                rng: &mut dyn #krate::forward::RngCore,
            ) -> #krate::Result<::std::vec::Vec<f64>> {
                #krate::forward::ForwardModel::simulate(Self::model(), x, rng)
            }
            fn denoising_sigma(&self) -> ::std::option::Option<f64> {
                #krate::forward::ForwardModel::denoising_sigma(Self::model())
            }
        }
    }
}
