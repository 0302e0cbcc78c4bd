//! Parsing `#[butcher_tableau(key = value, …)]` into a typed description that keeps every
//! coefficient's source expression (for spans) next to its exact value.
//!
//! ```text
//! #[butcher_tableau(order = 3, embedded_order = 2, c = [..], a = [[], [..], ..],
//!                   b = [..], b_hat = [..] | b_error = [..], tolerance = 1e-14, name = "..")]
//! ```

use num_rational::BigRational;
use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr, Token};

use super::rational;
use super::Errors;

/// Keys accepted by the attribute (serde's `Symbol` idea: one list, used by the parser and
/// by the "unknown key" message).
pub const KEYS: [&str; 9] = ["name", "order", "embedded_order", "c", "a", "b", "b_hat", "b_error", "tolerance"];

/// One coefficient: its source expression and, when it parsed, its exact value.
#[derive(Clone)]
pub struct Coef {
    pub expr: Expr,
    pub value: Option<BigRational>,
}

/// A bracketed list of coefficients `[x, y, …]`.
#[derive(Clone)]
pub struct Vector {
    /// The whole `[…]` expression.
    pub expr: Expr,
    pub items: Vec<Coef>,
}

impl Vector {
    /// Exact values, if every entry parsed.
    pub fn values(&self) -> Option<Vec<BigRational>> {
        self.items.iter().map(|c| c.value.clone()).collect()
    }
}

/// `a = [[], [..], …]`.
#[derive(Clone)]
pub struct Matrix {
    pub expr: Expr,
    pub rows: Vec<Vector>,
}

/// A small integer setting such as `order = 5`.
#[derive(Clone)]
pub struct Int {
    pub value: u32,
    pub span: Span,
}

/// Everything the attribute said, each part optional until validation.
#[derive(Default)]
pub struct Spec {
    pub name: Option<LitStr>,
    pub order: Option<Int>,
    pub embedded_order: Option<Int>,
    pub c: Option<Vector>,
    pub a: Option<Matrix>,
    pub b: Option<Vector>,
    pub b_hat: Option<Vector>,
    pub b_error: Option<Vector>,
    pub tolerance: Option<Coef>,
    /// Every key written, readable or not: a key whose value was rejected is not also
    /// reported as missing (one mistake, one error).
    pub given: Vec<String>,
}

impl Spec {
    /// Whether `key` was written in the attribute.
    pub fn has(&self, key: &str) -> bool {
        self.given.iter().any(|k| k == key)
    }
}

struct Field {
    key: Ident,
    value: Expr,
}

impl Parse for Field {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        let _: Token![=] = input.parse()?;
        let value: Expr = input.parse()?;
        Ok(Field { key, value })
    }
}

/// Parses the attribute arguments, pushing every problem into `errors`. Syntax errors in
/// the `key = value` list itself are fatal (nothing sensible can follow).
pub fn parse_args(args: TokenStream, errors: &mut Errors) -> syn::Result<Spec> {
    let fields = Punctuated::<Field, Token![,]>::parse_terminated.parse2(args)?;
    let mut spec = Spec::default();
    let mut seen: Vec<(String, Span)> = vec![];
    for Field { key, value } in fields {
        let k = key.to_string();
        if let Some((_, first)) = seen.iter().find(|(s, _)| *s == k) {
            let mut e = syn::Error::new(key.span(), format!("duplicate key `{k}`"));
            e.combine(syn::Error::new(*first, format!("`{k}` first given here")));
            errors.push(e);
            continue;
        }
        seen.push((k.clone(), key.span()));
        spec.given.push(k.clone());
        match k.as_str() {
            "name" => match &value {
                Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => spec.name = Some(s.clone()),
                _ => errors.push(syn::Error::new_spanned(&value, "`name` must be a string literal")),
            },
            "order" => spec.order = parse_int(&value, &k, errors),
            "embedded_order" => spec.embedded_order = parse_int(&value, &k, errors),
            "c" => spec.c = parse_vector(&value, "c", errors),
            "b" => spec.b = parse_vector(&value, "b", errors),
            "b_hat" => spec.b_hat = parse_vector(&value, "b_hat", errors),
            "b_error" => spec.b_error = parse_vector(&value, "b_error", errors),
            "a" => spec.a = parse_matrix(&value, errors),
            "tolerance" => spec.tolerance = Some(parse_coef(&value, errors)),
            _ => errors.push(syn::Error::new(
                key.span(),
                format!("unknown key `{k}`; expected one of {}", KEYS.map(|k| format!("`{k}`")).join(", ")),
            )),
        }
    }
    Ok(spec)
}

fn parse_int(value: &Expr, key: &str, errors: &mut Errors) -> Option<Int> {
    if let Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(i), .. }) = value {
        if let Ok(v) = i.base10_parse::<u32>() {
            if i.suffix().is_empty() {
                return Some(Int { value: v, span: i.span() });
            }
        }
    }
    errors.push(syn::Error::new_spanned(value, format!("`{key}` must be a positive integer literal")));
    None
}

fn parse_coef(expr: &Expr, errors: &mut Errors) -> Coef {
    let value = match rational::eval(expr) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    Coef { expr: expr.clone(), value }
}

fn parse_vector(value: &Expr, key: &str, errors: &mut Errors) -> Option<Vector> {
    match value {
        Expr::Array(arr) => {
            Some(Vector { expr: value.clone(), items: arr.elems.iter().map(|e| parse_coef(e, errors)).collect() })
        }
        _ => {
            errors
                .push(syn::Error::new_spanned(value, format!("`{key}` must be a list of coefficients `[x, y, ...]`")));
            None
        }
    }
}

fn parse_matrix(value: &Expr, errors: &mut Errors) -> Option<Matrix> {
    let Expr::Array(arr) = value else {
        errors.push(syn::Error::new_spanned(value, "`a` must be a list of rows `[[], [a21], [a31, a32], ...]`"));
        return None;
    };
    let mut rows = vec![];
    let mut ok = true;
    for (i, row) in arr.elems.iter().enumerate() {
        match row {
            Expr::Array(_) => rows.push(parse_vector(row, "a", errors)?),
            _ => {
                errors.push(syn::Error::new(
                    row.span(),
                    format!("row {} of `a` must be a list `[..]` of coefficients", i + 1),
                ));
                ok = false;
            }
        }
    }
    ok.then(|| Matrix { expr: value.clone(), rows })
}
