//! Bounded reads, memory limits and non-UTF-8 arguments from the command line (issue 25). Each
//! case failed on the code before the remedy: a device or named pipe given as an input hung
//! (or grew memory until killed), a user count such as `--ald-levels` or `--n` aborted in the
//! allocator, an invalid `SCOREPRIOR_MAX_MEMORY` was ignored and `--max-memory 1e-300` accepted,
//! and a non-UTF-8 argument panicked `dpi`, `posterior` and `train`. Each is now a clean error
//! (exit code 1, the flag or file named) before any work, or works.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
mod common;

use common::tmp;
use scoreprior::core::io::write_npy;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn asset(rel: &str) -> String {
    s(&Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(rel))
}

/// How a run of the binary ended: its exit code (`None`: killed by a signal or by the time
/// limit), whether it ran out of time, and its standard error.
struct Ended {
    code: Option<i32>,
    timed_out: bool,
    stderr: String,
}

/// Runs `scoreprior` with `args` and environment `env` (`None` removes the variable), under a
/// 4 GiB address-space limit and a time limit of `secs`: a run that would hang is killed, and
/// one that would grow its memory without end aborts instead of taking the machine's.
fn run_limited(args: &[&OsStr], env: &[(&str, Option<&str>)], secs: u64) -> Ended {
    let mut cmd = Command::new("sh");
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    cmd.arg("-c").arg("ulimit -v 4194304; exec \"$0\" \"$@\"").arg(env!("CARGO_BIN_EXE_scoreprior")).args(args);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("run scoreprior");
    let t = Instant::now();
    let mut timed_out = false;
    while child.try_wait().expect("wait").is_none() {
        if t.elapsed() > Duration::from_secs(secs) {
            timed_out = true;
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().expect("output");
    Ended { code: o.status.code(), timed_out, stderr: String::from_utf8_lossy(&o.stderr).into_owned() }
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Runs `args` and asserts a clean error (exit code 1) within `secs`; returns standard error.
fn fails_within(args: &[&str], env: &[(&str, Option<&str>)], secs: u64) -> String {
    let a = os(args);
    let refs: Vec<&OsStr> = a.iter().map(OsString::as_os_str).collect();
    let e = run_limited(&refs, env, secs);
    assert!(!e.timed_out, "scoreprior {args:?} still ran after {secs} s:\n{}", e.stderr);
    assert_eq!(e.code, Some(1), "scoreprior {args:?}: an error, not a panic or an abort:\n{}", e.stderr);
    e.stderr
}

/// Runs `args` and asserts success within `secs`; returns standard error.
fn ok_within(args: &[&OsStr], env: &[(&str, Option<&str>)], secs: u64) -> String {
    let e = run_limited(args, env, secs);
    assert!(!e.timed_out, "scoreprior {args:?} still ran after {secs} s:\n{}", e.stderr);
    assert_eq!(e.code, Some(0), "scoreprior {args:?} failed:\n{}", e.stderr);
    e.stderr
}

/// A named pipe at `path` (no writer ever opens it: a reader would block for ever).
fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().expect("mkfifo").success());
}

/// A 16×16 image as `.npy` in `dir`.
fn image(dir: &Path) -> String {
    let x = dir.join("x.npy");
    write_npy(&x, &[1, 16, 16], &[0.5; 256]).unwrap();
    s(&x)
}

const NO_ENV: [(&str, Option<&str>); 1] = [("SCOREPRIOR_MAX_MEMORY", None)];

// 1. Hang: a device, a named pipe or a folder as an input is an error at once, naming the flag
// and the file.
#[test]
fn special_files_as_inputs_are_errors_at_once() {
    let dir = tmp("reads-special");
    let x = image(&dir);
    let out = s(&dir.join("out"));
    let json = s(&dir.join("lp.json"));
    let fifo = dir.join("pipe.npy");
    mkfifo(&fifo);
    let fifo = s(&fifo);
    let folder = s(&dir.join("folder.npy"));
    std::fs::create_dir(&folder).unwrap();
    let (mean, cov) = (asset("assets/gaussian16/mean.npy"), asset("assets/gaussian16/cov.npy"));
    let ck = asset("assets/ncsnpp_fmnist16/ema.safetensors");
    let logprob = |xf: &str| -> Vec<String> {
        ["logprob", "--prior", &ck, "--x", xf, "--out", &json].iter().map(|a| a.to_string()).collect()
    };
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (logprob("/dev/zero"), "--x", "/dev/zero is a character device"),
        (logprob(&fifo), "--x", "named pipe"),
        (logprob(&folder), "--x", "folder"),
        (
            ["dpi", "--prior", "gaussian", "--mean", "/dev/zero", "--cov", &cov, "--x-true", &x, "--out", &out]
                .map(String::from)
                .to_vec(),
            "--mean",
            "/dev/zero is a character device",
        ),
        (
            ["dpi", "--prior", "gaussian", "--mean", &mean, "--cov", &fifo, "--x-true", &x, "--out", &out]
                .map(String::from)
                .to_vec(),
            "--cov",
            "named pipe",
        ),
        (
            ["measure", "--forward", "matrix(file=/dev/zero)", "--x", &x, "--out", &out].map(String::from).to_vec(),
            "--forward",
            "/dev/zero is a character device",
        ),
        (
            ["measure", "--forward", "eht(obs='/dev/zero')", "--x", &x, "--out", &out].map(String::from).to_vec(),
            "--forward",
            "/dev/zero is a character device",
        ),
        (
            ["measure", "--forward", &format!("eht(obs='{fifo}')"), "--x", &x, "--out", &out]
                .map(String::from)
                .to_vec(),
            "--forward",
            "named pipe",
        ),
        (
            ["sample", "--checkpoint", "/dev/zero", "--out", &s(&dir.join("samples"))].map(String::from).to_vec(),
            "--checkpoint",
            "/dev/zero is a character device",
        ),
        (
            ["dpi", "--prior", "/dev/zero", "--x-true", &x, "--out", &out].map(String::from).to_vec(),
            "--prior",
            "/dev/zero is a character device",
        ),
    ];
    for (args, flag, want) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = Instant::now();
        let e = fails_within(&a, &NO_ENV, 20);
        assert!(e.contains(flag) && e.contains(want) && e.contains("not a regular file"), "{a:?}: {e}");
        assert!(t.elapsed() < Duration::from_secs(10), "{a:?}: fails at once");
    }
    assert!(!Path::new(&out).exists(), "nothing is written");
}

// 1. The size a header declares is checked against the file before the body is read: a header
// that claims a huge array is an error, not an allocation of its size; a file above the memory
// limit is an error at once, naming it and the limit.
#[test]
fn declared_and_actual_sizes_are_checked_before_the_body() {
    let dir = tmp("reads-sizes");
    let out = s(&dir.join("lp.json"));
    let ck = asset("assets/ncsnpp_fmnist16/ema.safetensors");
    // A valid .npy header for 10^6 × 10^6 f64 values (8 TB), followed by no data.
    let lie = dir.join("lie.npy");
    let mut header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }".to_vec();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header);
    std::fs::write(&lie, &bytes).unwrap();
    let e = fails_within(&["logprob", "--prior", &ck, "--x", &s(&lie), "--out", &out], &NO_ENV, 20);
    assert!(e.contains("lie.npy") && e.contains("the file holds 0"), "{e}");
    // A (sparse) file of 1 TiB: its size alone is refused, without a byte read.
    let big = dir.join("big.npy");
    std::fs::File::create(&big).unwrap().set_len(1 << 40).unwrap();
    let e = fails_within(&["logprob", "--prior", &ck, "--x", &s(&big), "--out", &out], &NO_ENV, 20);
    assert!(e.contains("big.npy") && e.contains("memory limit") && e.contains("--max-memory"), "{e}");
    // The same for the observation file of eht(obs=…) and a matrix(file=…).
    let obs = dir.join("obs.txt");
    std::fs::File::create(&obs).unwrap().set_len(1 << 40).unwrap();
    let x = image(&dir);
    let m = s(&dir.join("m"));
    let e = fails_within(
        &["measure", "--forward", &format!("eht(obs='{}')", s(&obs)), "--x", &x, "--out", &m],
        &NO_ENV,
        20,
    );
    assert!(e.contains("obs.txt") && e.contains("memory limit"), "{e}");
    let e = fails_within(
        &["measure", "--forward", &format!("matrix(file={})", s(&big)), "--x", &x, "--out", &m],
        &NO_ENV,
        20,
    );
    assert!(e.contains("big.npy") && e.contains("memory limit"), "{e}");
    assert!(!Path::new(&m).exists());
}

// 2. Aborts: every count a user gives that sizes an allocation is checked against the memory
// limit first, and the error names the flag.
#[test]
fn absurd_counts_are_errors_naming_the_flag() {
    let dir = tmp("reads-counts");
    let x = image(&dir);
    let xs = asset("assets/fashion16_test.npy");
    let ck = asset("assets/ncsnpp_fmnist16/ema.safetensors");
    let (mean, cov) = (asset("assets/gaussian16/mean.npy"), asset("assets/gaussian16/cov.npy"));
    let out = s(&dir.join("out"));
    let json = s(&dir.join("lp.json"));
    let npy = s(&dir.join("sources.npy"));
    let samples = s(&dir.join("samples"));
    let (ss_out, dpi_out, dsm_out) = (s(&dir.join("solver-study")), s(&dir.join("dpi")), s(&dir.join("dsm")));
    let big = "100000000000000";
    #[rustfmt::skip]
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["posterior", "--method", "score-ald", "--ald-levels", "100000000000", "--prior", &ck, "--x-true", &xs,
              "--samples", "2", "--quiet", "--out", &out], "--ald-levels 100000000000"),
        (vec!["make-sources", "--n", "1000000000000", "--out", &npy], "--n 1000000000000"),
        (vec!["make-sources", "--n", "1", "--size", "10000000", "--out", &npy], "--size 10000000"),
        (vec!["make-sources", "--n", "1", "--size", big, "--out", &npy], "--size 100000000000000"),
        (vec!["sample", "--checkpoint", &ck, "--method", "em", "--steps", "2", "--n", "1000000000000", "--out",
              &samples], "--n 1000000000000"),
        (vec!["logprob", "--prior", "gaussian", "--mean", &mean, "--cov", &cov, "--x", &x, "--out", &json,
              "--hutchinson", big], "--hutchinson 100000000000000"),
        (vec!["trace-study", "--mean", &mean, "--cov", &cov, "--out", &out, "--ks", big], "--ks 100000000000000"),
        (vec!["trace-study", "--mean", &mean, "--cov", &cov, "--out", &out, "--grad-ks", big],
         "--grad-ks 100000000000000"),
        (vec!["trace-study", "--mean", &mean, "--cov", &cov, "--out", &out, "--seeds", big],
         "--seeds 100000000000000"),
        (vec!["trace-study", "--mean", &mean, "--cov", &cov, "--out", &out, "--grad-seeds", big],
         "--grad-seeds 100000000000000"),
        (vec!["trace-study", "--mean", &mean, "--cov", &cov, "--out", &out, "--gmm-components", big],
         "--gmm-components 100000000000000"),
        (vec!["solver-study", "--mean", &mean, "--cov", &cov, "--out", &ss_out, "--samples", big],
         "--samples 100000000000000"),
        // DPI's estimators: the library sizes them at each step, before the draws.
        (vec!["dpi", "--prior", "gaussian-ode", "--probes", big, "--x-true", &xs, "--steps", "2", "--batch", "2",
              "--quiet", "--out", &dpi_out], "--probes 100000000000000"),
        (vec!["dpi", "--prior", &ck, "--surrogate", "--dsm-draws", big, "--x-true", &xs, "--steps", "2", "--batch",
              "2", "--quiet", "--out", &dsm_out], "--dsm-draws 100000000000000"),
        (vec!["train", "--data", &xs, "--out", &out, "--num-res-blocks", big], "--num-res-blocks"),
    ];
    for (args, want) in cases {
        let t = Instant::now();
        let e = fails_within(&args, &NO_ENV, 60);
        assert!(e.contains(want) && e.contains("memory limit") && e.contains("--max-memory"), "{args:?}: {e}");
        assert!(t.elapsed() < Duration::from_secs(30), "{args:?}: fails at once");
    }
    assert!(!Path::new(&npy).exists() && !dir.join("samples.npy").exists() && !Path::new(&json).exists());
    // A thread count no machine runs is refused before any thread is spawned.
    let e = fails_within(&["train", "--data", &xs, "--out", &out, "--threads", big], &NO_ENV, 60);
    assert!(e.contains("--threads 100000000000000") && e.contains("4096"), "{e}");
    assert!(!Path::new(&out).exists(), "nothing is written");
}

// 3. --max-memory and SCOREPRIOR_MAX_MEMORY: one validation, a lower bound, and an error that
// says where the limit came from.
#[test]
fn the_memory_limit_is_validated_alike_from_the_flag_and_the_environment() {
    let dir = tmp("reads-limit");
    let x = image(&dir);
    let out = s(&dir.join("m"));
    let measure = ["measure", "--forward", "denoising", "--x", &x, "--out", &out];
    // Values the flag refuses are refused from the environment too, naming the variable.
    for bad in ["abc", "-1", "nan", "inf", "0", "1e-300", "1 GiB"] {
        let e = fails_within(&measure, &[("SCOREPRIOR_MAX_MEMORY", Some(bad))], 20);
        assert!(e.contains("SCOREPRIOR_MAX_MEMORY"), "{bad}: {e}");
        assert!(!Path::new(&out).exists(), "{bad}: nothing is written");
    }
    let e = fails_within(&measure, &[("SCOREPRIOR_MAX_MEMORY", Some("1e-300"))], 20);
    assert!(e.contains("SCOREPRIOR_MAX_MEMORY must be at least 0.000001 GiB"), "{e}");
    // The flag: a positive number of GiB of at least 0.000001.
    for (value, want) in [
        ("1e-300", "--max-memory must be at least 0.000001 GiB"),
        ("0", "--max-memory must be a positive number of GiB, got 0"),
        ("NaN", "--max-memory must be a positive number of GiB, got NaN"),
    ] {
        let mut a = vec!["measure", "--max-memory", value];
        a.extend(&measure[1..]);
        let e = fails_within(&a, &NO_ENV, 20);
        assert!(e.contains(want), "{value}: {e}");
    }
    // Where the limit came from: the flag, the variable, or the default.
    let tiny = ["measure", "--forward", "gaussian_matrix(m=1000)", "--x", &x, "--out", &out];
    let mut with_flag = vec!["measure", "--max-memory", "0.00001"];
    with_flag.extend(&tiny[1..]);
    let e = fails_within(&with_flag, &NO_ENV, 20);
    assert!(e.contains("set by --max-memory 0.00001") && e.contains("10.5 KiB"), "{e}");
    let e = fails_within(&tiny, &[("SCOREPRIOR_MAX_MEMORY", Some("0.00001"))], 20);
    assert!(e.contains("set by SCOREPRIOR_MAX_MEMORY=0.00001"), "{e}");
    let huge = ["measure", "--forward", "gaussian_matrix(m=100000000)", "--x", &x, "--out", &out];
    let e = fails_within(&huge, &NO_ENV, 20);
    assert!(e.contains("half of physical memory, the default"), "{e}");
    // The flag wins over the variable, which is then not used.
    let mut a = vec!["measure", "--max-memory", "1"];
    a.extend(&measure[1..]);
    let a = os(&a);
    let refs: Vec<&OsStr> = a.iter().map(OsString::as_os_str).collect();
    ok_within(&refs, &[("SCOREPRIOR_MAX_MEMORY", Some("abc"))], 60);
    // A valid variable works.
    std::fs::remove_dir_all(&out).unwrap();
    let a = os(&measure);
    let refs: Vec<&OsStr> = a.iter().map(OsString::as_os_str).collect();
    ok_within(&refs, &[("SCOREPRIOR_MAX_MEMORY", Some("1"))], 60);
}

/// `dir/prefix`, then bytes that are not UTF-8, then `suffix`.
fn non_utf8(dir: &Path, prefix: &str, suffix: &str) -> PathBuf {
    let mut name = prefix.as_bytes().to_vec();
    name.extend([0xff, 0xfe, b'-', 0xc3]);
    name.extend(suffix.as_bytes());
    dir.join(OsStr::from_bytes(&name))
}

fn manifest_args(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("run.json")).expect("run.json");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

// 4. Non-UTF-8 arguments: `dpi`, `posterior` and `train` with a non-UTF-8 --out (and input
// path) work, and record the command line lossily in run.json.
#[test]
fn non_utf8_paths_work_and_are_recorded_lossily() {
    let dir = tmp("reads-utf8");
    let xs = non_utf8(&dir, "x", ".npy");
    std::fs::copy(asset("assets/fashion16_test.npy"), &xs).unwrap();
    let (mean, cov) = (asset("assets/gaussian16/mean.npy"), asset("assets/gaussian16/cov.npy"));
    let lossy = "\u{fffd}\u{fffd}-\u{fffd}";
    let runs: Vec<(PathBuf, Vec<OsString>)> = vec![
        {
            let out = non_utf8(&dir, "dpi", "");
            let mut a = os(&["dpi", "--prior", "gaussian", "--mean", &mean, "--cov", &cov, "--steps", "2"]);
            a.extend(os(&["--batch", "2", "--samples", "2", "--quiet", "--x-true"]));
            a.push(xs.clone().into());
            a.push("--out".into());
            a.push(out.clone().into());
            (out, a)
        },
        {
            let out = non_utf8(&dir, "posterior", "");
            let mut a = os(&["posterior", "--method", "score-ald", "--prior", "gaussian-ode", "--ald-levels", "20"]);
            a.extend(os(&["--ald-steps", "2", "--samples", "2", "--outlier", "1e9", "--quiet", "--x-true"]));
            a.push(xs.clone().into());
            a.push("--out".into());
            a.push(out.clone().into());
            (out, a)
        },
        {
            let out = non_utf8(&dir, "train", "");
            let mut a = os(&["train", "--size", "16", "--config", "tiny", "--steps", "1", "--quiet", "--data"]);
            a.push(xs.clone().into());
            a.push("--out".into());
            a.push(out.clone().into());
            (out, a)
        },
    ];
    for (out, args) in runs {
        let refs: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
        ok_within(&refs, &NO_ENV, 300);
        let recorded = manifest_args(&out);
        assert!(recorded.iter().any(|a| a.ends_with(lossy)), "{recorded:?}");
        assert_eq!(recorded.len(), args.len() + 1, "{recorded:?}");
    }
    // A non-UTF-8 value of a text flag is a clean usage error, not a panic.
    let mut a = os(&["dpi", "--prior", "gaussian", "--x-true", &asset("assets/fashion16_test.npy"), "--noise"]);
    a.push(OsStr::from_bytes(b"gaussian(sigma=\xff)").into());
    a.push("--out".into());
    a.push(dir.join("o").into());
    let refs: Vec<&OsStr> = a.iter().map(OsString::as_os_str).collect();
    let e = run_limited(&refs, &NO_ENV, 20);
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(e.stderr.contains("invalid UTF-8"), "{}", e.stderr);
}
