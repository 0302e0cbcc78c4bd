//! The text reader of the forward-model language: one call `name(key = value, …)`
//! ([`PrimitiveSpec::parse`]) and chains of calls separated by `|` ([`parse_chain`]), the
//! syntax shared by primitives, presets and noise specs.

use super::preset::expand_preset;
use super::{build_chain, ParamValue, PrimitiveSpec};
use crate::forward::{Chain, Shape};
use crate::{Error, Result};

impl PrimitiveSpec {
    /// Parses one call `name` or `name(key = value, …)` (values: numbers, bare words, or
    /// quoted text `'…'`/`"…"` without commas, e.g. a file path): the one
    /// `name(k=v)` reader of the forward-model language, its presets and noise specs.
    ///
    /// ```
    /// use scoreprior_core::forward::{ParamValue, PrimitiveSpec};
    /// let s = PrimitiveSpec::parse("eht(fov = 160, cadence=600)").unwrap();
    /// assert_eq!(s.name, "eht");
    /// assert_eq!(s.params[1], ("cadence".to_string(), ParamValue::Num(600.0)));
    /// assert!(PrimitiveSpec::parse("eht(fov=)").is_err());
    /// ```
    ///
    /// # Errors
    /// A malformed call: missing `)`, a bad name, a parameter without `=`, a duplicate key,
    /// a value that is neither a number, a word nor a path, an unclosed quote.
    ///
    /// ```
    /// use scoreprior_core::forward::{ParamValue, PrimitiveSpec};
    /// let s = PrimitiveSpec::parse("matrix(file = data/A.npy)").unwrap();
    /// assert_eq!(s.params[0].1, ParamValue::Text("data/A.npy".into()));
    /// let q = PrimitiveSpec::parse("matrix(file = \"my dir/A, v2.npy\")").unwrap();
    /// assert_eq!(q.params[0].1, ParamValue::Text("my dir/A, v2.npy".into()));
    /// ```
    pub fn parse(text: &str) -> Result<PrimitiveSpec> {
        parse_call(text)
    }
}

/// Parses `name(key=value, …)`.
pub(super) fn parse_call(text: &str) -> Result<PrimitiveSpec> {
    let text = text.trim();
    let (name, rest) = match text.find('(') {
        Some(i) => {
            let body =
                text[i + 1..].strip_suffix(')').ok_or_else(|| Error::syntax(format!("`{text}`"), "missing `)`"))?;
            (text[..i].trim(), Some(body))
        }
        None => (text, None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::syntax(format!("`{text}`"), "expected `name` or `name(key = value, ...)`"));
    }
    let mut params = Vec::new();
    for arg in split_args(rest.unwrap_or(""), name)?.into_iter().map(str::trim).filter(|a| !a.is_empty()) {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| Error::syntax(format!("`{arg}` in `{name}`"), "expected `key = value`"))?;
        let (k, v) = (k.trim(), v.trim());
        if params.iter().any(|(pk, _): &(String, ParamValue)| pk == k) {
            return Err(Error::syntax(format!("`{name}`"), format!("duplicate parameter `{k}`")));
        }
        let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let is_path = |c: char| is_word(c) || matches!(c, '.' | '/' | '-' | '~' | '+');
        let quoted = ['"', '\''].into_iter().find(|&q| v.len() >= 2 && v.starts_with(q) && v.ends_with(q));
        let value = match (quoted, v.parse::<f64>()) {
            (Some(_), _) if v.len() > 2 => ParamValue::Text(v[1..v.len() - 1].to_string()),
            (None, Ok(n)) => ParamValue::Num(n),
            (None, Err(_)) if !v.is_empty() && v.chars().all(is_word) => ParamValue::Word(v.to_string()),
            (None, Err(_)) if !v.is_empty() && v.chars().all(is_path) => ParamValue::Text(v.to_string()),
            _ => {
                return Err(Error::syntax(
                    format!("`{k} = {v}` in `{name}`"),
                    "expected a number, a word or a path (quote a path with other characters)",
                ))
            }
        };
        params.push((k.to_string(), value));
    }
    Ok(PrimitiveSpec { name: name.to_string(), params })
}

/// Splits `a=1, b="x, y"` at the commas outside quotes.
fn split_args<'t>(body: &'t str, name: &str) -> Result<Vec<&'t str>> {
    let (mut out, mut start, mut quote) = (Vec::new(), 0, None);
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ',') => {
                out.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err(Error::syntax(format!("`{name}`"), format!("unclosed quote in `{body}`")));
    }
    out.push(&body[start..]);
    Ok(out)
}

/// Parses and builds a chain, primitives separated by `|`.
///
/// ```
/// use scoreprior_core::forward::parse_chain;
/// let c = parse_chain("gaussian_blur(sigma=1.5, size=9) | subsample(factor=2)", [1, 32, 32]).unwrap();
/// assert_eq!(c.output_shape().to_array(), [1, 16, 16]);
/// assert!(parse_chain("subsample(factor=3)", [1, 32, 32]).is_err());
/// ```
pub fn parse_chain(text: &str, input: impl Into<Shape>) -> Result<Chain> {
    if let Some(p) = expand_preset(text)? {
        return parse_chain(&p.chain, input);
    }
    let specs = text.split('|').map(parse_call).collect::<Result<Vec<_>>>()?;
    build_chain(&specs, input.into())
}
