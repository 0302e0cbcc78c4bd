//! Parsing `input = [C, H, W], ops = [prim(k = v, …), …], noise = kind(sigma = s)` into a
//! typed description that keeps the span of every name and literal.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Token};

use super::Ctxt;

/// One `key = value` of the attribute.
struct KeyValue {
    key: Ident,
    value: Expr,
}
impl Parse for KeyValue {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let key: Ident = input.parse()?;
        input.parse::<Token![=]>()?;
        Ok(KeyValue { key, value: input.parse()? })
    }
}

/// A parameter value.
#[derive(Clone)]
pub(crate) enum Value {
    /// A number; `int` when written as an integer literal.
    Num { value: f64, int: bool },
    /// A bare word such as `reflect`.
    Word(String),
}

/// `key = value` inside a primitive call.
pub(crate) struct Param {
    pub key: Ident,
    pub value: Value,
    /// The value's tokens, for spans.
    pub span: TokenStream,
}

/// `name(params)` or a bare `name`.
pub(crate) struct Call {
    pub name: Ident,
    pub params: Vec<Param>,
    /// The whole call's tokens, for spans.
    pub span: TokenStream,
}

/// The whole attribute.
pub(crate) struct Spec {
    pub input: Option<([usize; 3], Span)>,
    pub ops: Vec<Call>,
    pub noise: Option<Call>,
}

fn parse_value(e: &Expr) -> syn::Result<Value> {
    match e {
        Expr::Lit(l) => match &l.lit {
            syn::Lit::Int(i) => Ok(Value::Num { value: i.base10_parse::<f64>()?, int: true }),
            syn::Lit::Float(f) => Ok(Value::Num { value: f.base10_parse::<f64>()?, int: false }),
            // A string is read as a word: the run-time language accepts quoted values too.
            syn::Lit::Str(s) => Ok(Value::Word(s.value())),
            _ => Err(syn::Error::new_spanned(e, "expected a number, a word or a string")),
        },
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => match parse_value(&u.expr)? {
            Value::Num { value, int } => Ok(Value::Num { value: -value, int }),
            Value::Word(_) => Err(syn::Error::new_spanned(e, "expected a number")),
        },
        Expr::Path(p) if p.path.get_ident().is_some() => Ok(Value::Word(p.path.get_ident().unwrap().to_string())),
        _ => Err(syn::Error::new_spanned(e, "expected a number, a word or a string")),
    }
}

fn parse_call(e: &Expr) -> syn::Result<Call> {
    match e {
        Expr::Path(p) if p.path.get_ident().is_some() => {
            Ok(Call { name: p.path.get_ident().unwrap().clone(), params: vec![], span: e.to_token_stream() })
        }
        Expr::Call(c) => {
            let name = match &*c.func {
                Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().unwrap().clone(),
                f => return Err(syn::Error::new_spanned(f, "expected a primitive name")),
            };
            let mut params: Vec<Param> = Vec::new();
            for a in &c.args {
                let Expr::Assign(asg) = a else {
                    return Err(syn::Error::new_spanned(a, format!("expected `key = value` in `{name}(...)`")));
                };
                let key = match &*asg.left {
                    Expr::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().unwrap().clone(),
                    k => return Err(syn::Error::new_spanned(k, "expected a parameter name")),
                };
                if params.iter().any(|p| p.key == key) {
                    return Err(syn::Error::new_spanned(&key, format!("duplicate parameter `{key}` in `{name}(...)`")));
                }
                params.push(Param { value: parse_value(&asg.right)?, span: asg.right.to_token_stream(), key });
            }
            Ok(Call { name, params, span: e.to_token_stream() })
        }
        _ => Err(syn::Error::new_spanned(e, "expected `name` or `name(key = value, ...)`")),
    }
}

/// Parses the attribute arguments, recording every error in `cx`; `None` when the
/// attribute is too broken to check further.
pub(crate) fn parse(args: TokenStream, cx: &mut Ctxt) -> Option<Spec> {
    let kvs = match Punctuated::<KeyValue, Token![,]>::parse_terminated.parse2(args) {
        Ok(k) => k,
        Err(e) => {
            cx.push(e);
            return None;
        }
    };
    let mut spec = Spec { input: None, ops: Vec::new(), noise: None };
    let (mut seen_input, mut seen_ops, mut seen_noise) = (false, false, false);
    let mut ok = true;
    for kv in kvs {
        let key = kv.key.to_string();
        let seen = match key.as_str() {
            "input" => &mut seen_input,
            "ops" => &mut seen_ops,
            "noise" => &mut seen_noise,
            _ => {
                cx.error(&kv.key, format!("unknown key `{key}`; expected `input`, `ops` or `noise`"));
                ok = false;
                continue;
            }
        };
        if *seen {
            cx.error(&kv.key, format!("duplicate key `{key}`"));
            ok = false;
            continue;
        }
        *seen = true;
        match key.as_str() {
            "input" => {
                let dims = match &kv.value {
                    Expr::Array(a) if a.elems.len() == 3 => a
                        .elems
                        .iter()
                        .map(|e| match parse_value(e) {
                            Ok(Value::Num { value, int: true }) if value >= 1.0 => Ok(value as usize),
                            _ => Err(syn::Error::new_spanned(e, "image dimensions must be positive integers")),
                        })
                        .collect::<syn::Result<Vec<usize>>>(),
                    v => Err(syn::Error::new_spanned(v, "expected `input = [C, H, W]` (three positive integers)")),
                };
                match dims {
                    Ok(d) => spec.input = Some(([d[0], d[1], d[2]], kv.value.span())),
                    Err(e) => {
                        cx.push(e);
                        ok = false;
                    }
                }
            }
            "ops" => match &kv.value {
                Expr::Array(a) if !a.elems.is_empty() => {
                    for e in &a.elems {
                        match parse_call(e) {
                            Ok(c) => spec.ops.push(c),
                            Err(err) => {
                                cx.push(err);
                                ok = false;
                            }
                        }
                    }
                }
                v => {
                    cx.error(v, "expected `ops = [primitive(...), ...]` with at least one primitive");
                    ok = false;
                }
            },
            _ => match parse_call(&kv.value) {
                Ok(c) => spec.noise = Some(c),
                Err(e) => {
                    cx.push(e);
                    ok = false;
                }
            },
        }
    }
    let call = Span::call_site();
    if !seen_input {
        cx.push(syn::Error::new(call, "missing `input = [C, H, W]`"));
        ok = false;
    }
    if !seen_ops {
        cx.push(syn::Error::new(call, "missing `ops = [...]`"));
        ok = false;
    }
    if !seen_noise {
        cx.push(syn::Error::new(
            call,
            "missing `noise = ...`: every forward model needs a noise level, e.g. `noise = gaussian(sigma = 0.05)`",
        ));
        ok = false;
    }
    ok.then_some(spec)
}
