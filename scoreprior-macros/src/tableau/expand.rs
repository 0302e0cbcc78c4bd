//! Code generation of `#[butcher_tableau]`: the unit struct (with derives and generated
//! docs), an inherent `pub const TABLEAU: <core>::ode::Tableau` holding the nearest `f64`
//! of every exact coefficient, and `impl <core>::ode::ExplicitRk` returning a `static` copy
//! of it. `<core>` (`krate` below) is the run-time crate's path as the user's crate names it
//! (see `crate::runtime_crate`); all paths are absolute so user code cannot shadow them.

use num_rational::BigRational;
use num_traits::One;
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::ItemStruct;

use super::rational::{show_residual, to_f64};
use super::validate::{OrderReport, Verified};

/// The derives added to the struct (documented on the macro).
fn derives() -> TokenStream {
    quote! {
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::default::Default,
            ::core::cmp::PartialEq,
            ::core::cmp::Eq
        )]
    }
}

/// An `f64` literal that reproduces `x` exactly (`{:e}` prints the shortest round-trip form).
fn f64_lit(x: f64) -> TokenStream {
    let lit = syn::LitFloat::new(&format!("{:e}f64", x.abs()), Span::call_site());
    if x.is_sign_negative() && x != 0.0 {
        quote!(-#lit)
    } else {
        quote!(#lit)
    }
}

fn f64_slice(v: &[BigRational]) -> TokenStream {
    let items = v.iter().map(|x| f64_lit(to_f64(x)));
    quote!(&[#(#items),*])
}

/// Expansion of a verified tableau.
pub fn expand(mut item: ItemStruct, v: &Verified, krate: &TokenStream) -> TokenStream {
    let ident = item.ident.clone();
    let docs = docs(v);
    let has_docs = item.attrs.iter().any(|a| a.path().is_ident("doc"));
    let sep = has_docs.then(|| quote!(#[doc = ""]));
    let doc_attrs = docs.lines().map(|l| quote!(#[doc = #l]));
    let derives = derives();
    // Keep the user's attributes (docs first) and append ours.
    let attrs = std::mem::take(&mut item.attrs);
    let name = &v.name;
    let order = v.order;
    let embedded_order = match v.embedded_order {
        Some(q) => quote!(::core::option::Option::Some(#q)),
        None => quote!(::core::option::Option::None),
    };
    let c = f64_slice(&v.c);
    let rows = v.a.iter().map(|r| f64_slice(r));
    let b = f64_slice(&v.b);
    let b_error = match &v.b_error {
        Some(e) => {
            let e = f64_slice(e);
            quote!(::core::option::Option::Some(#e))
        }
        None => quote!(::core::option::Option::None),
    };
    let fsal = v.fsal;
    let tolerance = f64_lit(v.tolerance.as_ref().map_or(0.0, to_f64));
    let const_doc = format!(
        "The coefficients of [`{ident}`], each the `f64` nearest to the exact value that \
         `#[butcher_tableau]` verified."
    );
    quote! {
        #(#attrs)*
        #sep
        #(#doc_attrs)*
        #derives
        #item

        impl #ident {
            #[doc = #const_doc]
            pub const TABLEAU: #krate::ode::Tableau = #krate::ode::Tableau {
                name: #name,
                order: #order,
                embedded_order: #embedded_order,
                c: #c,
                a: &[#(#rows),*],
                b: #b,
                b_error: #b_error,
                fsal: #fsal,
                tolerance: #tolerance,
            };
        }

        #[automatically_derived]
        impl #krate::ode::ExplicitRk for #ident {
            fn tableau(&self) -> &'static #krate::ode::Tableau {
                // One address for the method's data, whatever the const is inlined into.
                static TABLEAU: #krate::ode::Tableau = #ident::TABLEAU;
                &TABLEAU
            }
        }
    }
}

/// What is emitted next to the errors when validation failed: the struct and stub items
/// with the same names, so that code using the solver does not add its own errors.
pub fn fallback(mut item: ItemStruct, krate: &TokenStream) -> TokenStream {
    let ident = item.ident.clone();
    let derives = derives();
    let attrs = std::mem::take(&mut item.attrs);
    quote! {
        #(#attrs)*
        #derives
        #item

        impl #ident {
            #[doc(hidden)]
            pub const TABLEAU: #krate::ode::Tableau = #krate::ode::Tableau {
                name: "",
                order: 0,
                embedded_order: ::core::option::Option::None,
                c: &[],
                a: &[],
                b: &[],
                b_error: ::core::option::Option::None,
                fsal: false,
                tolerance: 0.0,
            };
        }

        #[automatically_derived]
        impl #krate::ode::ExplicitRk for #ident {
            fn tableau(&self) -> &'static #krate::ode::Tableau {
                ::core::unreachable!("#[butcher_tableau] failed to compile")
            }
        }
    }
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// A coefficient for the drawn tableau: the exact fraction when short, else 10 decimals.
fn cell(x: &BigRational) -> String {
    let exact = if x.denom().is_one() { x.numer().to_string() } else { format!("{}/{}", x.numer(), x.denom()) };
    if exact.len() <= 14 {
        exact
    } else {
        format!("{:.10}", to_f64(x))
    }
}

/// The tableau drawn in ASCII.
fn draw(v: &Verified) -> String {
    let s = v.c.len();
    let c: Vec<String> = v.c.iter().map(cell).collect();
    let mut grid: Vec<Vec<String>> = v.a.iter().map(|r| r.iter().map(cell).collect()).collect();
    let mut labels = vec![String::new(); s];
    grid.push(v.b.iter().map(cell).collect());
    labels.push(format!("b  (order {})", v.order));
    if let (Some(h), Some(q)) = (&v.b_hat, v.embedded_order) {
        grid.push(h.iter().map(cell).collect());
        labels.push(format!("b̂  (order {q})"));
    }
    let mut widths = vec![0usize; s.max(1)];
    for row in &grid {
        for (j, x) in row.iter().enumerate() {
            widths[j] = widths[j].max(x.chars().count());
        }
    }
    let cw = c.iter().map(|x| x.chars().count()).max().unwrap_or(1);
    let line = |left: &str, row: &[String], label: &str| {
        let cells: Vec<String> = row.iter().enumerate().map(|(j, x)| format!("{x:>w$}", w = widths[j])).collect();
        let mut l = format!(" {left:>cw$} | {}", cells.join("  "));
        if !label.is_empty() {
            let full: usize = widths.iter().sum::<usize>() + 2 * (s - 1);
            let pad = full.saturating_sub(cells.join("  ").chars().count());
            l.push_str(&" ".repeat(pad + 3));
            l.push_str(label);
        }
        l.trim_end().to_string()
    };
    let mut out = vec![];
    for i in 0..s {
        out.push(line(&c[i], &grid[i], ""));
    }
    let full: usize = widths.iter().sum::<usize>() + 2 * (s - 1);
    out.push(format!("-{}-+-{}", "-".repeat(cw), "-".repeat(full.max(1))));
    for (k, row) in grid[s..].iter().enumerate() {
        out.push(line("", row, &labels[s + k]));
    }
    out.join("\n")
}

fn verification(what: &str, p: u32, r: &OrderReport, tol: Option<&BigRational>) -> String {
    let how = match tol {
        None => "exactly".to_string(),
        Some(t) => format!(
            "to within the declared tolerance {:e} (largest |residual| {:.1e})",
            to_f64(t),
            to_f64(&r.max_residual)
        ),
    };
    let mut s = format!("all {} order conditions of {what} up to order {p} hold {how}", r.conditions);
    match &r.first_failure_above {
        Some((tree, q, res)) => s.push_str(&format!(
            "; order {p} is sharp: the order-{q} condition for tree {tree} fails (residual {})",
            show_residual(res)
        )),
        None => s.push_str(&format!("; the order-{} conditions hold as well", p + 1)),
    }
    s
}

/// The generated documentation (Markdown), following diffrax's sentence template.
fn docs(v: &Verified) -> String {
    let s = v.c.len();
    let evals = if v.fsal { s - 1 } else { s };
    let mut d = String::new();
    d.push_str("# Method (generated by `#[butcher_tableau]`)\n\n");
    d.push_str(&format!("{} order explicit Runge–Kutta method `{}`. ", ordinal(v.order), v.name));
    match v.embedded_order {
        Some(q) => d.push_str(&format!("Has an embedded {} order method for adaptive step sizing. ", ordinal(q))),
        None => d.push_str("Has no embedded method: use it with a constant step size. "),
    }
    d.push_str(&format!(
        "Uses {s} stages{}, so {evals} right-hand-side evaluation{} per step.\n\n",
        if v.fsal { " with FSAL (first same as last)" } else { "" },
        if evals == 1 { "" } else { "s" }
    ));
    d.push_str(&format!("- order: {}\n", v.order));
    d.push_str(&format!(
        "- embedded order: {}\n",
        v.embedded_order.map_or_else(|| "none (fixed step only)".to_string(), |q| q.to_string())
    ));
    d.push_str(&format!("- stages: {s}\n"));
    d.push_str(&format!(
        "- FSAL: {} (derived from the coefficients: {})\n",
        if v.fsal { "yes" } else { "no" },
        if v.fsal {
            format!("`c_{s} = 1`, the last row of `a` equals `b` and `b_{s} = 0`")
        } else {
            "the last stage is not `f(t₁, y₁)`".to_string()
        }
    ));
    d.push_str(&format!("- right-hand-side evaluations per step: {evals}\n"));
    let tol = v.tolerance.as_ref();
    let mut verified = format!(
        "- verified at compile time {}: row sums `c_i = Σ_j a_ij` {}; {}",
        if tol.is_some() {
            "(exact rationals for the row sums, 512-bit fixed point for the order conditions)"
        } else {
            "in exact rational arithmetic"
        },
        if tol.is_some() { "to within the tolerance" } else { "exactly" },
        verification("`b`", v.order, &v.report_b, tol)
    );
    if let (Some(q), Some(r)) = (v.embedded_order, &v.report_b_hat) {
        verified.push_str(&format!("; {}", verification("`b̂`", q, r, tol)));
    }
    d.push_str(&verified);
    d.push_str("\n\n");
    d.push_str("Butcher tableau (long coefficients rounded to 10 decimals for display):\n\n```text\n");
    d.push_str(&draw(v));
    d.push_str("\n```");
    d
}
