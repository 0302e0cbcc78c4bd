//! Every resumable unit of the studies has a manifest (issue 25): `restoration-study`,
//! `eht-study` and `posterior-2d` key what they reuse by its settings and its inputs' hashes
//! and refuse a changed setting (naming it, its old and new value) instead of reprinting a stale
//! row; names that become paths stay inside `--out`; every case, name and file is checked
//! before the first case runs; `train-flow` resumes only the same training.

use std::path::{Path, PathBuf};

mod common;

use common::{bin, fails, ok, tmp};
use scoreprior::core::io::{read_npy, write_npy};

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The shipped Gaussian prior's mean and covariance, copied into `dir` (so a test may change
/// them), as a `--priors` value through its DSM surrogate.
fn gaussian_prior(dir: &Path, name: &str) -> String {
    for f in ["mean.npy", "cov.npy"] {
        std::fs::copy(root().join("assets/gaussian16").join(f), dir.join(f)).unwrap();
    }
    format!("{name}=gaussian-ode:{}:{}", s(&dir.join("mean.npy")), s(&dir.join("cov.npy")))
}

/// All files below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

/// `args` with `flag` set to `value`: replaced where given, else appended.
fn set(args: &[String], flag: &str, value: &str) -> Vec<String> {
    let mut a = args.to_vec();
    match a.iter().position(|x| x == flag) {
        Some(i) => a[i + 1] = value.to_string(),
        None => a.extend([flag.to_string(), value.to_string()]),
    }
    a
}

/// Runs `args` expecting a clean failure that names every `want`; nothing on standard output
/// (no table, stale or not).
fn refused(args: &[&str], want: &[&str]) -> String {
    let o = bin(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{args:?} should fail cleanly:\n{err}");
    assert!(o.stdout.is_empty(), "{args:?} printed a table:\n{}", String::from_utf8_lossy(&o.stdout));
    for w in want {
        assert!(err.contains(w), "{args:?}: {w:?} not in\n{err}");
    }
    err
}

/// A scratch folder `name` holding a copy of the shipped Gaussian prior, named `g`
/// ([`gaussian_prior`]): the inputs of the restoration-study tests.
fn restoration_inputs(name: &str) -> (common::Scratch, String) {
    let dir = tmp(name);
    let prior = gaussian_prior(&dir, "g");
    (dir, prior)
}

/// Runs a small restoration study into `out` once per case, with the case's flags, expecting
/// each to be [`refused`] naming its `want`s before any case runs or the folder is taken;
/// returns the errors.
fn refused_before_any_case(out: &Path, cases: &[(Vec<&str>, &[&str])]) -> Vec<String> {
    let o = s(out);
    let mut errors = Vec::new();
    for (extra, want) in cases {
        let mut args = vec!["restoration-study", "--out", o.as_str(), "--methods", "sde-proj", "--tasks", "denoising"];
        args.extend(["--samples", "2", "--sampler-steps", "10", "--quiet"]);
        args.extend(extra.iter().copied());
        errors.push(refused(&args, want));
        assert!(!out.exists(), "{extra:?}: a case ran or the folder was taken");
    }
    errors
}

// Item 1: a restoration study keys each run by its settings and inputs.
#[test]
fn restoration_study_reuses_only_runs_of_the_same_settings() {
    let (dir, prior) = restoration_inputs("restoration-keys");
    let out = dir.join("rs");
    let o = s(&out);
    #[rustfmt::skip]
    let base: Vec<String> = ["restoration-study", "--out", o.as_str(), "--tasks", "denoising", "--methods", "dps,sde-proj,dpi",
        "--priors", prior.as_str(), "--samples", "2", "--sampler-steps", "10", "--dpi-steps", "2", "--quiet"]
        .iter().map(|x| x.to_string()).collect();
    let first = ok(&strs(&base));
    let table = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert_eq!(table.lines().count(), 1 + 3 + 1, "{table}");
    assert!(!table.contains("failed"), "{table}");
    let case = out.join("denoising-g-on-fmnist");
    let key: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("dps.settings.json")).unwrap()).unwrap();
    assert_eq!((key["zeta"].as_f64(), key["sampler_steps"].as_u64()), (Some(1.0), Some(10)));
    assert_eq!(key["inputs"]["--cov"].as_str().map(str::len), Some(64), "{key}");
    let files = tree(&out);

    // The same settings: every run read back, nothing redone.
    let again = bin(&strs(&base));
    assert!(again.status.success());
    let note = String::from_utf8_lossy(&again.stderr);
    assert!(!note.contains("restoration-study: denoising"), "a finished run was redone:\n{note}");
    let reread = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert_eq!(reread.lines().take(4).collect::<Vec<_>>(), table.lines().take(4).collect::<Vec<_>>());
    assert_eq!(String::from_utf8_lossy(&again.stdout).lines().count(), first.lines().count());

    // Another setting of a run: refused, naming it with both values and the way out; no row
    // printed, no file changed or added.
    for (flag, value, want) in [
        ("--zeta", "2", &["`zeta`: 1.0 there, 2.0 now", "dps", "another --out"][..]),
        ("--sampler-steps", "11", &["`sampler_steps`: 10 there, 11 now"][..]),
        ("--seed", "3", &["`seed`: 0 there, 3 now"][..]),
        ("--samples", "3", &["`samples`: 2 there, 3 now"][..]),
        ("--dpi-steps", "3", &["`dpi_steps`: 2 there, 3 now"][..]),
    ] {
        refused(&strs(&set(&base, flag, value)), want);
        assert_eq!(tree(&out), files, "{flag} {value} changed the folder");
        assert_eq!(std::fs::read_to_string(out.join("table.csv")).unwrap(), reread, "{flag} {value}");
    }
    // A setting only a new run uses, and that run: it runs, the others are read back.
    let more = bin(&strs(&set(&set(&base, "--methods", "dps,sde-proj,dpi,score-ald"), "--ald-levels", "5")));
    let note = String::from_utf8_lossy(&more.stderr);
    assert!(more.status.success(), "{note}");
    assert!(note.contains("fmnist: score-ald") && !note.contains("fmnist: dps"), "{note}");

    // Another input file under the same path: refused, naming it.
    let cov = read_npy(dir.join("cov.npy")).unwrap();
    let doubled: Vec<f64> = cov.data.iter().map(|v| 2.0 * v).collect();
    write_npy(dir.join("cov.npy"), &cov.shape, &doubled).unwrap();
    refused(&strs(&base), &["`inputs.--cov`", "there", "now"]);

    // A run folder without a record of its settings (an older version's study) is not reused.
    let dir2 = tmp("restoration-legacy");
    let prior2 = gaussian_prior(&dir2, "g");
    let out2 = dir2.join("rs");
    let args = set(&set(&base, "--out", &s(&out2)), "--priors", &prior2);
    ok(&strs(&args));
    std::fs::remove_file(out2.join("denoising-g-on-fmnist/sde-proj.settings.json")).unwrap();
    refused(&strs(&args), &["sde-proj", "no record of their settings"]);
}

// Item 2: duplicate names are errors, naming the flag and the name.
#[test]
fn restoration_study_refuses_duplicate_names() {
    let (dir, prior) = restoration_inputs("restoration-dups");
    let img = s(&root().join("assets/fashion16_test.npy"));
    let (a1, a2) = (format!("a={img}@1"), format!("a={img}@2"));
    #[rustfmt::skip]
    let cases: [(Vec<&str>, &[&str]); 4] = [
        (vec!["--priors", &prior, "--priors", &prior], &["--priors", "\"g\"", "twice"]),
        (vec!["--priors", &prior, "--images", &a1, "--images", &a2], &["--images", "\"a\"", "twice"]),
        (vec!["--priors", &prior, "--methods", "dps,dps"], &["--methods", "\"dps\""]),
        (vec!["--priors", &prior, "--tasks", "denoising,denoising"], &["--tasks", "\"denoising\""]),
    ];
    refused_before_any_case(&dir.join("rs"), &cases);
}

// Item 3: a name that becomes a path is one plain name, so nothing is written outside --out.
#[test]
fn study_names_cannot_leave_the_output_folder() {
    let dir = tmp("study-names");
    let out = dir.join("a/b/c/out");
    let o = s(&out);
    let o = o.as_str();
    let ckpt = s(&root().join("assets/ncsnpp_fmnist16/ema.safetensors"));
    let img = s(&root().join("assets/fashion16_test.npy"));
    for bad in ["x/../../../escaped", "..", ".", "", "-x", "a\\b"] {
        let p = format!("{bad}={ckpt}");
        let i = format!("{bad}={img}");
        // `--flag=value`, so that clap takes a value starting with '-' as the value.
        for (flag, arg) in [("--priors", format!("--priors={p}")), ("--images", format!("--images={i}"))] {
            #[rustfmt::skip]
            let args = ["restoration-study", "--out", o, "--tasks", "denoising", "--methods", "sde-proj",
                        "--samples", "2", "--sampler-steps", "10", "--quiet", arg.as_str()];
            let e = fails(&args);
            assert!(e.contains(flag) && !e.contains("panicked"), "{flag} {bad:?}: {e}");
        }
    }
    assert!(tree(&dir).is_empty(), "written: {:?}", tree(&dir));
    // eht-study's sources name folders of --reference and of --out.
    let reference = dir.join("ref");
    std::fs::create_dir_all(reference.join("ring")).unwrap();
    for f in ["truth.npy", "image.npy", "obs.txt", "summary.json"] {
        std::fs::copy(root().join("benches/reference/out/ring").join(f), reference.join("ring").join(f)).unwrap();
    }
    let r = s(&reference);
    let r = r.as_str();
    for bad in ["../ref/ring", "ring/.", "..", "-ring"] {
        let sources = format!("--sources={bad}");
        #[rustfmt::skip]
        let args = ["eht-study", "--out", o, "--reference", r, &sources, "--steps", "2", "--batch", "2",
                    "--map-steps", "2", "--map-rounds", "1", "--samples", "4", "--no-laplace"];
        refused(&args, &["--sources"]);
    }
    for bad in ["../x", ".."] {
        let p = format!("{bad}={}", s(&root().join("assets/ncsnpp_sources32/ema.safetensors")));
        #[rustfmt::skip]
        let args = ["eht-study", "--out", o, "--reference", r, "--sources", "ring", "--priors", p.as_str(),
                    "--steps", "2", "--batch", "2", "--map-steps", "2", "--map-rounds", "1", "--samples", "4",
                    "--no-laplace"];
        refused(&args, &["--priors"]);
    }
    assert!(!out.exists());
    assert_eq!(tree(&reference).len(), 4, "{:?}", tree(&reference));
    assert!(!dir.join("a/b/c/x-ring").exists() && !dir.join("a/b/c/ring-sources").exists());
}

// Item 4: train-flow records its training in run.json and resumes only the same one.
#[test]
fn train_flow_resumes_only_the_same_training() {
    let dir = tmp("train-flow-manifest");
    let data = dir.join("data.npy");
    let other = dir.join("other.npy");
    let test = dir.join("test.npy");
    let imgs = |k: usize, n: usize| -> Vec<f64> { (0..n * 64).map(|i| ((i * k) % 11) as f64 / 10.0).collect() };
    write_npy(&data, &[4, 8, 8], &imgs(7, 4)).unwrap();
    write_npy(&other, &[4, 8, 8], &imgs(3, 4)).unwrap();
    write_npy(&test, &[2, 8, 8], &imgs(5, 2)).unwrap();
    let out = dir.join("flow");
    let (d, t, o) = (s(&data), s(&test), s(&out));
    #[rustfmt::skip]
    let base = ["train-flow", "--data", d.as_str(), "--test", t.as_str(), "--out", o.as_str(), "--size", "8", "--flows", "2",
                "--hidden", "8", "--batch-size", "2", "--quiet"];
    let with = |extra: &[&str]| -> Vec<String> { base.iter().chain(extra).map(|x| x.to_string()).collect() };
    ok(&strs(&with(&["--steps", "2"])));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!((m["command"].as_str(), m["state"].as_str()), (Some("train-flow"), Some("complete")), "{m}");
    assert_eq!(m["config"]["lr"].as_f64(), Some(0.001), "{m}");
    assert!(m["inputs"]["--data"]["sha256"].is_string(), "{m}");
    let flow = std::fs::read(out.join("flow.safetensors")).unwrap();
    // Another rate, other data, another flow: refused, naming the difference; nothing trained.
    let e = fails(&strs(&with(&["--steps", "3", "--lr", "0.01"])));
    assert!(e.contains("config.lr: 0.001 -> 0.01") && e.contains("--force"), "{e}");
    let mut a = with(&["--steps", "3"]);
    a[2] = s(&other);
    let e = fails(&strs(&a));
    assert!(e.contains("--data") && e.contains("different contents"), "{e}");
    let e = fails(&strs(&set(&with(&["--steps", "3"]), "--flows", "3")));
    assert!(e.contains("config.flows: 2 -> 3"), "{e}");
    assert_eq!(std::fs::read(out.join("flow.safetensors")).unwrap(), flow);
    // The same training continues; --force starts another one, the old moved aside.
    ok(&strs(&with(&["--steps", "3"])));
    ok(&strs(&with(&["--steps", "2", "--lr", "0.01", "--force"])));
    assert!(dir.join("flow.old-1/flow.safetensors").exists());
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["config"]["lr"].as_f64(), Some(0.01), "{m}");

    // --limit 0 and empty files: errors naming the flag and the file, before anything is written.
    let fresh = dir.join("fresh");
    let f = s(&fresh);
    let mut a = with(&["--steps", "2", "--limit", "0"]);
    a[6] = f.clone();
    let e = fails(&strs(&a));
    assert!(e.contains("--limit 0"), "{e}");
    let empty = dir.join("empty.npy");
    write_npy(&empty, &[0, 256], &[]).unwrap();
    let mut a = with(&["--steps", "2"]);
    (a[2], a[6]) = (s(&empty), f.clone());
    let e = fails(&strs(&a));
    assert!(e.contains("--data") && e.contains("empty.npy") && e.contains("holds no images"), "{e}");
    let mut a = with(&["--steps", "2"]);
    (a[4], a[6]) = (s(&empty), f.clone());
    let e = fails(&strs(&a));
    assert!(e.contains("--test") && e.contains("empty.npy") && e.contains("holds no images"), "{e}");
    assert!(!fresh.exists());
}

// Item 5: restoration-study checks every prior and image file before any case runs.
#[test]
fn restoration_study_checks_every_file_before_any_case() {
    let (dir, prior) = restoration_inputs("restoration-files");
    let out = dir.join("rs");
    let o = s(&out);
    let o = o.as_str();
    let img = s(&root().join("assets/fashion16_test.npy"));
    let far = format!("far={img}@100000");
    let missing_img = format!("m={}", s(&dir.join("none.npy")));
    #[rustfmt::skip]
    let cases: [(Vec<&str>, &[&str]); 5] = [
        (vec!["--priors", "a=nope.safetensors"], &["--priors", "nope.safetensors", "does not exist"]),
        (vec!["--priors", &prior, "--priors", "b=nope.safetensors"], &["--priors", "nope.safetensors"]),
        (vec!["--priors", &prior, "--priors", "t=tv"], &["--priors", "t=tv"]),
        (vec!["--priors", &prior, "--images", "ok=assets/fashion16_test.npy", "--images", &missing_img],
         &["--images", "none.npy"]),
        (vec!["--priors", &prior, "--images", &far], &["--images", "100000", "64 images"]),
    ];
    for e in refused_before_any_case(&out, &cases) {
        assert!(!e.contains("--surrogate"), "{e}");
    }
    // The samplers' settings too.
    let e = fails(&[
        "restoration-study",
        "--out",
        o,
        "--methods",
        "sde-proj",
        "--tasks",
        "denoising",
        "--priors",
        &prior,
        "--lambda",
        "3",
    ]);
    assert!(e.contains("--lambda"), "{e}");
    assert!(!out.exists());
}

/// A tiny eht-study on a copy of the shipped ring reference.
fn eht_args(out: &str, reference: &str, extra: &[&str]) -> Vec<String> {
    #[rustfmt::skip]
    let base = ["eht-study", "--out", out, "--reference", reference, "--sources", "ring", "--steps", "2",
                "--batch", "2", "--map-steps", "2", "--map-rounds", "1", "--samples", "4", "--no-laplace"];
    base.iter().chain(extra).map(|x| x.to_string()).collect()
}

fn ring_reference(dir: &Path) -> PathBuf {
    let reference = dir.join("ref");
    for src in ["ring", "crescent"] {
        std::fs::create_dir_all(reference.join(src)).unwrap();
        for f in ["truth.npy", "image.npy", "obs.txt", "summary.json"] {
            std::fs::copy(root().join("benches/reference/out").join(src).join(f), reference.join(src).join(f)).unwrap();
        }
    }
    reference
}

// Items 1 and 5: eht-study keys each DPI run by its settings and its inputs, and checks every
// source and checkpoint before the first case runs.
#[test]
fn eht_study_reuses_only_runs_of_the_same_settings_and_checks_first() {
    let dir = tmp("eht-keys");
    let reference = ring_reference(&dir);
    let r = s(&reference);
    let out = dir.join("eht");
    let o = s(&out);
    let first = ok(&strs(&eht_args(&o, &r, &[])));
    let key: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("ring-sources/settings.json")).unwrap()).unwrap();
    assert_eq!((key["steps"].as_u64(), key["lr"].as_f64()), (Some(2), Some(0.001)), "{key}");
    assert!(key["reference_sha256"].is_string() && key["prior_sha256"].is_string(), "{key}");
    let table = std::fs::read_to_string(out.join("table.csv")).unwrap();
    let samples = std::fs::read(out.join("ring-sources/samples.npy")).unwrap();
    // The same settings: read back, not rerun.
    let again = bin(&strs(&eht_args(&o, &r, &[])));
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("DPI under"), "reran");
    assert_eq!(String::from_utf8_lossy(&again.stdout), first);
    // Other settings: refused, naming each, and nothing changed.
    for (flag, value, want) in [
        ("--lr", "0.002", "`lr`: 0.001 there, 0.002 now"),
        ("--seed", "3", "`seed`: 0 there, 3 now"),
        ("--samples", "5", "`samples`: 4 there, 5 now"),
        ("--steps", "3", "`steps`: 2 there, 3 now"),
    ] {
        refused(&strs(&set(&eht_args(&o, &r, &[]), flag, value)), &[want, "ring-sources", "another --out"]);
    }
    // Another observation of the same source: refused, naming the reference's hash.
    std::fs::write(reference.join("ring/obs.txt"), std::fs::read(reference.join("crescent/obs.txt")).unwrap()).unwrap();
    refused(&strs(&eht_args(&o, &r, &[])), &["`reference_sha256`"]);
    assert_eq!(std::fs::read_to_string(out.join("table.csv")).unwrap(), table);
    assert_eq!(std::fs::read(out.join("ring-sources/samples.npy")).unwrap(), samples);

    // A missing source or checkpoint after valid ones: refused before the first case runs.
    let out2 = dir.join("eht2");
    let o2 = s(&out2);
    refused(&strs(&set(&eht_args(&o2, &r, &[]), "--sources", "crescent,nosuch")), &["--sources", "nosuch"]);
    let ok_prior = format!("a={}", s(&root().join("assets/ncsnpp_sources32/ema.safetensors")));
    let bad_prior = format!("b={}", s(&dir.join("nope.safetensors")));
    let args = eht_args(&o2, &r, &["--priors", &ok_prior, "--priors", &bad_prior]);
    refused(&strs(&set(&args, "--sources", "crescent")), &["--priors", "nope.safetensors"]);
    assert!(!out2.exists(), "a case ran before the check: {:?}", tree(&out2));
}

// Items 1 and 5: posterior-2d checks its settings before any case, honours --samples with
// --quick, and its folder's run.json refuses a rerun of other settings.
#[test]
fn posterior_2d_checks_first_and_keys_its_folder() {
    let dir = tmp("posterior-2d-keys");
    let out = dir.join("p2");
    let o = s(&out);
    let o = o.as_str();
    let t = std::time::Instant::now();
    refused(&["posterior-2d", "--out", o, "--cases", "gaussian-low,mixture", "--dpi-lr", "nan"], &["--dpi-lr"]);
    assert!(t.elapsed().as_secs_f64() < 5.0, "the check came after work");
    refused(&["posterior-2d", "--out", o, "--quick", "--samples", "0"], &["--samples: must be at least 2", "got 0"]);
    refused(&["posterior-2d", "--out", o, "--quick", "--dpi-flows", "0"], &["--dpi-flows"]);
    assert!(!out.exists());
    #[rustfmt::skip]
    let base = ["posterior-2d", "--out", o, "--quick", "--cases", "gaussian-low", "--samples", "100",
                "--dpi-steps", "10", "--quiet"];
    ok(&base);
    let table = std::fs::read_to_string(out.join("table.csv")).unwrap();
    // --samples is honoured with --quick: 100 samples per method, not 2,000.
    let header: Vec<&str> = table.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "samples").unwrap();
    for row in table.lines().skip(1) {
        assert_eq!(row.split(',').nth(col), Some("100"), "{table}");
    }
    // The same settings: read back; other settings: refused, naming them.
    let t = std::time::Instant::now();
    let again = ok(&base);
    assert!(t.elapsed().as_secs_f64() < 2.0 && again.contains("gaussian-low"), "{again}");
    assert_eq!(std::fs::read_to_string(out.join("table.csv")).unwrap(), table);
    let mut args = base.to_vec();
    args.extend(["--seed", "1"]);
    refused(&args, &["seed: 0 -> 1", "--force"]);
    let mut args = base.to_vec();
    args[5] = "gaussian-low,mixture";
    refused(&args, &["config.cases"]);
    assert_eq!(std::fs::read_to_string(out.join("table.csv")).unwrap(), table);
    // --force: the old study moved aside, the new one in its place.
    let mut args = base.to_vec();
    args.extend(["--seed", "1", "--force"]);
    ok(&args);
    assert!(dir.join("p2.old-1/table.csv").exists());
}
