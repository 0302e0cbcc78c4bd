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

/// Splits `text` at the commas outside any brackets or parentheses.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut depth, mut cur, mut out) = (0i32, String::new(), Vec::new());
    for ch in text.chars() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The `key = value` pairs of every `#[forward_model(...)]` in `src`, with the line of the
/// attribute's start.
fn forward_model_attributes(src: &str) -> Vec<(usize, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut offset = 0;
    while let Some(i) = rest.find("#[forward_model(") {
        let start = i + "#[forward_model(".len();
        let mut depth = 1;
        let mut end = start;
        for (j, ch) in rest[start..].char_indices() {
            match ch {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = start + j;
                break;
            }
        }
        let line = src[..offset + i].lines().count() + 1;
        let kvs = split_top_level(&rest[start..end])
            .into_iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.trim().to_string(), v.trim().to_string())))
            .collect();
        out.push((line, kvs));
        offset += end;
        rest = &src[offset..];
    }
    out
}

/// `[a(...), b]` → `a(...) | b`, the run-time spelling of a chain.
fn runtime_chain(ops: &str) -> String {
    split_top_level(ops.trim().trim_start_matches('[').trim_end_matches(']')).join(" | ")
}

/// The expansion of `#[forward_model]` builds its chain with
/// `build_chain(..).expect("checked at compile time")`, so a chain that the run-time builder
/// rejects must never pass the macro. `runtime_rejections.rs` lists one chain per run-time
/// rejection of `build_chain`; each is rejected at run time (checked here) and its struct's line
/// carries a compile error in the expected output (which trybuild, in `ui` above, checks is the
/// output). The per-rule cases agree too: each chain the macro rejects, the run-time
/// builder rejects (except the rules about the attribute's own syntax, which has no run-time
/// counterpart: the run-time API takes input, chain and noise as separate arguments).
#[test]
fn every_run_time_rejection_is_a_compile_time_rejection() {
    use scoreprior::core::forward::{parse_chain, parse_model};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/forward_model");
    let src = std::fs::read_to_string(dir.join("runtime_rejections.rs")).unwrap();
    let stderr = std::fs::read_to_string(dir.join("runtime_rejections.stderr")).unwrap();
    let error_lines: std::collections::BTreeSet<usize> = stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("--> tests/ui/forward_model/runtime_rejections.rs:"))
        .map(|l| l.split(':').next().unwrap().parse().unwrap())
        .collect();
    let attrs = forward_model_attributes(&src);
    assert!(attrs.len() >= 40, "{} cases", attrs.len());
    for (line, kvs) in &attrs {
        let ops = &kvs.iter().find(|(k, _)| k == "ops").unwrap().1;
        let chain = runtime_chain(ops);
        assert!(parse_chain(&chain, [1, 16, 16]).is_err(), "line {line}: `{chain}` is accepted at run time");
        assert!(error_lines.contains(line), "line {line}: `{chain}` is rejected at run time but compiles");
    }
    // The per-rule cases.
    let syntax_only = [
        "duplicate_key.rs",
        "empty_ops.rs",
        "input_not_three_dimensions.rs",
        "missing_input.rs",
        "missing_noise.rs",
        "missing_ops.rs",
        "non_positive_dimensions.rs",
        "unknown_key.rs",
    ];
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".rs") || name == "runtime_rejections.rs" || syntax_only.contains(&name.as_str()) {
            continue;
        }
        for (line, kvs) in forward_model_attributes(&std::fs::read_to_string(&path).unwrap()) {
            let get = |k: &str| &kvs.iter().find(|(key, _)| key == k).unwrap_or_else(|| panic!("{name}: {k}")).1;
            let dims: Vec<usize> = split_top_level(get("input").trim_matches(|c| c == '[' || c == ']'))
                .iter()
                .map(|d| d.parse().unwrap())
                .collect();
            let chain = runtime_chain(get("ops"));
            let r = parse_model(&chain, get("noise"), [dims[0], dims[1], dims[2]]);
            assert!(r.is_err(), "{name}:{line}: `{chain}` with `{}` is accepted at run time", get("noise"));
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} per-rule cases");
}
