//! Bad inputs found by a hostile-user review (issue 12): each is a clean error (exit code 1,
//! the flag and the value named) raised before any expensive work or file write, or now
//! behaves correctly.

use std::path::{Path, PathBuf};
mod common;

use common::{fails, gaussian_files, ok, tmp, train_data};

use npyz::WriterBuilder;
use scoreprior::core::io::{read_npy, write_npy};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The shipped NCSN++ checkpoint (16×16 Fashion-MNIST).
fn checkpoint() -> String {
    s(&Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("assets/ncsnpp_fmnist16/ema.safetensors"))
}

/// Writes an integer `.npy` file (`u8` or `i64`).
fn write_int_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(f).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

// 1 and 8.
#[test]
fn train_flags_are_checked_before_anything_is_written() {
    let dir = tmp("train-flags");
    let data = train_data(&dir, 4);
    let out = dir.join("ck");
    let (d, o) = (s(&data), s(&out));
    let base = ["train", "--data", &d, "--out", &o, "--size", "8", "--config", "tiny", "--steps", "2", "--quiet"];
    // `--flag=value` so that clap takes a negative number as the value.
    for (flag, value, want) in [
        ("--ckpt-every", "0", "--ckpt-every 0"),
        ("--grad-clip", "NaN", "--grad-clip NaN"),
        ("--grad-clip", "-1", "--grad-clip -1"),
        ("--lr", "NaN", "--lr NaN"),
        ("--lr", "inf", "--lr inf"),
        ("--batch-size", "0", "--batch-size 0"),
        ("--ema-rate", "2", "--ema-rate 2"),
    ] {
        let mut args = base.to_vec();
        let arg = format!("{flag}={value}");
        args.push(&arg);
        let e = fails(&args);
        assert!(e.contains(want), "{flag} {value}: {e}");
        assert!(!e.contains("TrainConfig"), "{e}");
        assert!(!out.exists(), "{flag} {value}: nothing may be written before validation");
    }
    // The output files must not overwrite the data.
    let e = fails(&["train", "--data", &s(&out.join("loss.csv")), "--out", &o]);
    assert!(e.contains("--out") && e.contains("--data"), "{e}");
}

// 2.
#[test]
fn fixed_step_ode_sampling_runs_for_every_solver() {
    let dir = tmp("ode-fixed");
    let ck = checkpoint();
    for solver in ["euler", "heun", "rk4"] {
        let prefix = dir.join(solver);
        #[rustfmt::skip]
        ok(&["sample", "--checkpoint", &ck, "--method", "ode", "--solver", solver, "--steps", "3", "--n", "2",
             "--out", &s(&prefix)]);
        let x = read_npy(dir.join(format!("{solver}.npy"))).unwrap();
        assert_eq!(x.shape, vec![2, 1, 16, 16]);
        assert!(x.data.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        // Not a constant image: the solve moved the prior draw.
        assert!(x.data.iter().any(|v| (v - x.data[0]).abs() > 1e-3));
    }
}

// 3 and 11 (sample).
#[test]
fn sample_prefixes_never_collide_and_the_folder_is_checked_first() {
    let dir = tmp("prefixes");
    let ck = checkpoint();
    let run = |prefix: &Path| {
        #[rustfmt::skip]
        ok(&["sample", "--checkpoint", &ck, "--method", "em", "--steps", "2", "--n", "1", "--out", &s(prefix)]);
    };
    run(&dir.join("run.1"));
    run(&dir.join("run.2"));
    run(&dir.join("reg.txt"));
    run(&dir.join("pic.png"));
    for f in ["run.1.png", "run.1.npy", "run.2.png", "run.2.npy", "reg.txt.png", "reg.txt.npy", "pic.png", "pic.npy"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    assert!(!dir.join("run.png").exists() && !dir.join("reg.png").exists());
    // A folder is not a prefix.
    let e = fails(&["sample", "--checkpoint", &ck, "--out", &s(&dir)]);
    assert!(e.contains("--out") && e.contains("not a folder"), "{e}");
    // A folder that cannot be created: fails at once, not after sampling 4096 images.
    std::fs::write(dir.join("file"), b"x").unwrap();
    let t = std::time::Instant::now();
    let e =
        fails(&["sample", "--checkpoint", &ck, "--method", "em", "--n", "4096", "--out", &s(&dir.join("file/sub/s"))]);
    assert!(e.contains("--out") && e.contains("file/sub"), "{e}");
    assert!(t.elapsed().as_secs() < 20, "the folder must be checked before sampling");
}

// 4.
#[test]
fn outputs_never_overwrite_inputs_or_each_other() {
    let dir = tmp("overwrite");
    let (m, c, x) = gaussian_files(&dir);
    let out = s(&dir.join("r.json"));
    let before = std::fs::read(&x).unwrap();
    let lp = |extra: &[&str]| {
        let mut a = vec!["logprob", "--prior", "gaussian", "--mean", &m, "--cov", &c, "--x", &x, "--trace", "exact"];
        a.extend_from_slice(extra);
        a.iter().map(|v| v.to_string()).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| fails(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let e = run(lp(&["--grad", &x, "--out", &out]));
    assert!(e.contains("--grad") && e.contains("--x") && e.contains("overwrite"), "{e}");
    // The same file through another spelling.
    let dotted = s(&dir.join(".").join("x.npy"));
    let e = run(lp(&["--out", &dotted]));
    assert!(e.contains("--out") && e.contains("--x"), "{e}");
    let e = run(lp(&["--out", &m]));
    assert!(e.contains("--out") && e.contains("--mean"), "{e}");
    let e = run(lp(&["--grad", &out, "--out", &out]));
    assert!(e.contains("--grad") && e.contains("--out"), "{e}");
    assert_eq!(std::fs::read(&x).unwrap(), before, "the input is untouched");
    assert!(!dir.join("r.json").exists());

    // measure: --x inside the output folder under an output's name.
    let img = dir.join("m");
    std::fs::create_dir_all(&img).unwrap();
    write_npy(img.join("y.npy"), &[1, 8, 8], &[0.5; 64]).unwrap();
    let e = fails(&["measure", "--forward", "denoising", "--x", &s(&img.join("y.npy")), "--out", &s(&img)]);
    assert!(e.contains("--out") && e.contains("--x"), "{e}");

    // fit-gaussian: --test-out onto the mean it writes.
    let idx = idx_file(&dir, 3, 28);
    let g = dir.join("g");
    #[rustfmt::skip]
    let e = fails(&["fit-gaussian", "--data", &s(&idx), "--size", "4", "--out", &s(&g),
                    "--test-out", &s(&g.join("mean.npy"))]);
    assert!(e.contains("--test-out") && e.contains("--out"), "{e}");
    assert!(!g.join("cov.npy").exists());
}

/// An IDX file of `n` `side × side` images (varied pixels) and its t10k twin; returns the
/// training file.
fn idx_file(dir: &Path, n: u8, side: u8) -> PathBuf {
    let mut idx = vec![0u8, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, side, 0, 0, 0, side];
    let count = n as usize * side as usize * side as usize;
    idx.extend((0..count).map(|i| ((i * 37 + i / 7) % 256) as u8));
    let f = dir.join("train-images-idx3-ubyte");
    std::fs::write(&f, &idx).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), &idx).unwrap();
    f
}

// 5.
#[test]
fn integer_npy_images_follow_one_rule() {
    let dir = tmp("integers");
    let (m, c, _) = gaussian_files(&dir);
    let bytes: [u8; 8] = [25, 128, 0, 51, 153, 26, 77, 178];
    let u8_path = dir.join("u8.npy");
    write_int_npy(&u8_path, &[2, 4], &bytes);
    let f_path = dir.join("f.npy");
    let scaled: Vec<f64> = bytes.iter().map(|&b| b as f64 / 255.0).collect();
    write_npy(&f_path, &[2, 4], &scaled).unwrap();
    let lp = |x: &Path, out: &str| {
        let o = dir.join(out);
        #[rustfmt::skip]
        ok(&["logprob", "--prior", "gaussian", "--mean", &m, "--cov", &c, "--x", &s(x), "--trace", "exact",
             "--out", &s(&o)]);
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(o).unwrap()).unwrap();
        v["log_prob"].as_array().unwrap().iter().map(|a| a.as_f64().unwrap()).collect::<Vec<_>>()
    };
    // u8 is read as 8-bit images scaled to [0, 1], like 8-bit PNGs.
    let (a, b) = (lp(&u8_path, "u8.json"), lp(&f_path, "f.json"));
    for (u, f) in a.iter().zip(&b) {
        assert!((u - f).abs() < 1e-9, "{a:?} vs {b:?}");
    }
    // Other integer dtypes have no known scale: an error that says what to do.
    let i64_path = dir.join("i64.npy");
    write_int_npy(&i64_path, &[2, 4], &[25i64, 128, 0, 51, 153, 26, 77, 178]);
    #[rustfmt::skip]
    let e = fails(&["logprob", "--prior", "gaussian", "--mean", &m, "--cov", &c, "--x", &s(&i64_path),
                    "--out", &s(&dir.join("i.json"))]);
    assert!(e.contains("--x") && e.contains("i64") && e.contains("float in [0, 1]"), "{e}");
    let img = dir.join("img.npy");
    write_int_npy(&img, &[8, 8], &[7i64; 64]);
    let e = fails(&["measure", "--forward", "denoising", "--x", &s(&img), "--out", &s(&dir.join("meas"))]);
    assert!(e.contains("--x") && e.contains("i64"), "{e}");
}

// 6.
#[test]
fn trace_study_gmm_inputs_are_errors_not_fallbacks() {
    let dir = tmp("gmm-images");
    let (m, c, _) = gaussian_files(&dir);
    let out = s(&dir.join("study"));
    let text = dir.join("t.npy");
    std::fs::write(&text, b"not an array").unwrap();
    let wrong_d = dir.join("w.npy");
    write_npy(&wrong_d, &[3, 5], &[0.5; 15]).unwrap();
    let few = dir.join("few.npy");
    write_npy(&few, &[2, 4], &[0.5; 8]).unwrap();
    let missing = s(&dir.join("missing.npy"));
    #[rustfmt::skip]
    let study = |extra: &[&str]| {
        let mut a = vec!["trace-study", "--mean", &m, "--cov", &c, "--ks", "1,2", "--seeds", "2", "--grad-ks", "2",
                         "--grad-seeds", "2", "--out", &out];
        a.extend_from_slice(extra);
        fails(&a)
    };
    let e = study(&["--gmm-components", "3", "--gmm-images", &missing]);
    assert!(e.contains("--gmm-images") && e.contains("does not exist"), "{e}");
    let e = study(&["--gmm-components", "3", "--gmm-images", &s(&text)]);
    assert!(e.contains("--gmm-images") && e.contains("malformed"), "{e}");
    let e = study(&["--gmm-components", "3", "--gmm-images", &s(&wrong_d)]);
    assert!(e.contains("--gmm-images") && e.contains("D = 5"), "{e}");
    let e = study(&["--gmm-components", "3", "--gmm-images", &s(&few)]);
    assert!(e.contains("--gmm-images") && e.contains("fewer than --gmm-components 3"), "{e}");
    let e = study(&["--gmm-components", "0"]);
    assert!(e.contains("--gmm-components 0"), "{e}");
    assert!(!dir.join("study").exists());
}

// 7.
#[test]
fn fit_gaussian_refuses_a_singular_covariance() {
    let dir = tmp("singular");
    // 3 images for D = 16 pixels: the sample covariance has rank 2.
    let idx = idx_file(&dir, 3, 8);
    let out = dir.join("g");
    let e = fails(&["fit-gaussian", "--data", &s(&idx), "--size", "4", "--jitter", "0", "--out", &s(&out)]);
    assert!(e.contains("--jitter 0") && e.contains("positive definite") && e.contains("0.01"), "{e}");
    assert!(!out.join("cov.npy").exists() && !out.join("mean.npy").exists());
    ok(&["fit-gaussian", "--data", &s(&idx), "--size", "4", "--jitter", "0.01", "--out", &s(&out)]);
    assert!(out.join("cov.npy").exists());
}

// 9.
#[test]
fn measure_refuses_non_finite_measurements_and_complex_noise_on_real_data() {
    let dir = tmp("measure-noise");
    let x = dir.join("x.npy");
    write_npy(&x, &[1, 16, 16], &[0.5; 256]).unwrap();
    let out = dir.join("m");
    #[rustfmt::skip]
    let e = fails(&["measure", "--forward", "denoising", "--noise", "gaussian(sigma=1e308)", "--x", &s(&x),
                    "--out", &s(&out)]);
    assert!(e.contains("--noise gaussian(sigma=1e308)") && e.contains("non-finite"), "{e}");
    assert!(!out.join("y.npy").exists());
    #[rustfmt::skip]
    let e = fails(&["measure", "--forward", "denoising", "--noise", "complex_gaussian(sigma=0.1)", "--x", &s(&x),
                    "--out", &s(&out)]);
    assert!(e.contains("complex_gaussian(sigma=0.1)") && e.contains("real-valued"), "{e}");
    // On complex data it is the convention (σ/√2 per part).
    #[rustfmt::skip]
    ok(&["measure", "--forward", "fft2 | cartesian_mask(acceleration=2)", "--noise", "complex_gaussian(sigma=0.1)",
         "--x", &s(&x), "--out", &s(&out)]);
}

// 10 and 12.
#[test]
fn logprob_step_and_mean_errors_name_the_right_flag() {
    let dir = tmp("logprob-flags");
    let (m, c, x) = gaussian_files(&dir);
    let out = s(&dir.join("r.json"));
    #[rustfmt::skip]
    let e = fails(&["logprob", "--prior", "gaussian", "--mean", &m, "--cov", &c, "--x", &x, "--solver", "euler",
                    "--dt", "2", "--out", &out]);
    assert!(e.contains("--dt 2") && e.contains("interval"), "{e}");
    let nan_mean = dir.join("nan.npy");
    write_npy(&nan_mean, &[4], &[0.2, f64::NAN, 0.1, 0.3]).unwrap();
    #[rustfmt::skip]
    let e = fails(&["logprob", "--prior", "gaussian", "--mean", &s(&nan_mean), "--cov", &c, "--x", &x,
                    "--out", &out]);
    assert!(e.contains("--mean") && !e.contains("--cov"), "{e}");
    assert!(!dir.join("r.json").exists());
}

// 11 (solver-study).
#[test]
fn solver_study_checks_every_solver_name_first() {
    let dir = tmp("solver-names");
    let (m, c, _) = gaussian_files(&dir);
    let o = common::bin(&["solver-study", "--mean", &m, "--cov", &c, "--solvers", "dopri5,nope", "--out", &s(&dir)]);
    assert_eq!(o.status.code(), Some(1));
    let (out, e) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(e.contains("--solvers") && e.contains("`nope`"), "{e}");
    assert!(!out.contains("NFE"), "no solver may run before the names are checked: {out}");
}

// Remedy 2 (train): a resume of a changed problem is refused naming the differences;
// --force moves the old run aside; run.json records the run.
#[test]
fn train_resume_refuses_a_changed_problem_and_force_starts_over() {
    let dir = tmp("train-resume");
    let data = train_data(&dir, 4);
    let out = dir.join("ck");
    let (d, o) = (s(&data), s(&out));
    #[rustfmt::skip]
    let train = |extra: &[&str]| {
        let mut a = vec!["train", "--data", &d, "--out", &o, "--size", "8", "--quiet", "--sample-every", "0"];
        if !extra.contains(&"--config") {
            a.extend(["--config", "tiny"]);
        }
        a.extend_from_slice(extra);
        a.iter().map(|v| v.to_string()).collect::<Vec<_>>()
    };
    ok(&strs(&train(&["--steps", "2"])));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["state"], "complete");
    assert_eq!(m["config"]["lr"], 5e-4);
    assert_eq!(m["inputs"]["--data"]["sha256"].as_str().unwrap().len(), 64);
    let before = std::fs::read(out.join("checkpoint.safetensors")).unwrap();
    for (extra, want) in [
        (vec!["--lr", "0.1"], vec!["config.lr: 0.0005 -> 0.1"]),
        (vec!["--batch-size", "3"], vec!["config.batch_size: 64 -> 3"]),
        (vec!["--config", "small"], vec!["config.config: \"tiny\" -> \"small\"", "config.network.nf: 8 -> 16"]),
        (vec!["--seed", "1"], vec!["seed: 42 -> 1"]),
    ] {
        let mut flags = vec!["--steps", "3"];
        flags.extend(extra.iter().copied());
        let e = fails(&strs(&train(&flags)));
        for w in want {
            assert!(e.contains(w) && e.contains("--force"), "{extra:?}: {e}");
        }
        assert_eq!(std::fs::read(out.join("checkpoint.safetensors")).unwrap(), before, "nothing written");
    }
    // Changed data contents under the same path.
    let imgs: Vec<f64> = (0..4 * 64).map(|i| ((i * 5) % 11) as f64 / 10.0).collect();
    write_npy(&data, &[4, 8, 8], &imgs).unwrap();
    let e = fails(&strs(&train(&["--steps", "3"])));
    assert!(e.contains("--data") && e.contains("different contents"), "{e}");
    // --force keeps the old run in ck.old-1 and starts afresh.
    let a = train(&["--steps", "1", "--lr", "0.1", "--force"]);
    ok(&strs(&a));
    assert_eq!(std::fs::read(dir.join("ck.old-1/checkpoint.safetensors")).unwrap(), before);
    let csv = std::fs::read_to_string(out.join("loss.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "one step of the new run only: {csv}");
    // The same settings resume.
    let mut a = train(&["--steps", "2", "--lr", "0.1"]);
    a.push("--ckpt-every=1".into());
    ok(&strs(&a));
    assert_eq!(std::fs::read_to_string(out.join("loss.csv")).unwrap().lines().count(), 3);
}

// Remedy 3 (train): one run per folder; a killed run's lock and temporaries do not linger.
#[test]
fn train_folder_is_locked_and_stale_temporaries_are_swept() {
    let dir = tmp("train-lock");
    let data = train_data(&dir, 4);
    let out = dir.join("ck");
    let (d, o) = (s(&data), s(&out));
    #[rustfmt::skip]
    let args = ["train", "--data", &d, "--out", &o, "--size", "8", "--config", "tiny", "--quiet", "--sample-every", "0",
                "--steps", "1000000"];
    let mut child = common::command().args(args).stderr(std::process::Stdio::null()).spawn().unwrap();
    // Wait until the first run holds the folder (it writes run.json after taking the lock).
    let t = std::time::Instant::now();
    while !out.join("run.json").exists() && t.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let e = fails(&args);
    assert!(e.contains("in use") && e.contains(&format!("pid {}", child.id())), "{e}");
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed: the lock went with the process; a temporary of a dead writer is swept.
    let stale = out.join("checkpoint.safetensors.999999999.tmp");
    std::fs::write(&stale, vec![0u8; 1000]).unwrap();
    let mut a = args.to_vec();
    let last = a.len() - 1;
    a[last] = "2";
    ok(&a);
    assert!(!stale.exists(), "the stale temporary is removed");
}

// Remedy 5: sizes are estimated before allocating; --max-memory raises or lowers the limit.
#[test]
fn absurd_sizes_are_errors_before_allocation() {
    let dir = tmp("sizes");
    let x = dir.join("x.npy");
    write_npy(&x, &[1, 16, 16], &[0.5; 256]).unwrap();
    let out = s(&dir.join("m"));
    for (forward, want) in [
        ("gaussian_matrix(m=100000000)", "gaussian_matrix(m=100000000)"),
        ("motion_blur(length=100000)", "motion_blur(length=100000)"),
        ("gaussian_blur(sigma=1, size=1000000)", "gaussian_blur(size=1000000)"),
        ("pad(top=100000000)", "pad(top=100000000"),
        ("eht(cadence=0.00001)", "cadence 0.00001"),
    ] {
        let t = std::time::Instant::now();
        let e = fails(&["measure", "--forward", forward, "--x", &s(&x), "--out", &out]);
        assert!(e.contains(want) && e.contains("memory limit") && e.contains("--max-memory"), "{forward}: {e}");
        assert!(t.elapsed().as_secs() < 10, "{forward}: fails at once");
    }
    // A lower limit turns a normal size into an error, a valid flag value is required.
    let e = fails(&[
        "measure",
        "--max-memory",
        "0.00001",
        "--forward",
        "gaussian_matrix(m=1000)",
        "--x",
        &s(&x),
        "--out",
        &out,
    ]);
    assert!(e.contains("gaussian_matrix(m=1000)"), "{e}");
    let e = fails(&["measure", "--max-memory=-1", "--forward", "denoising", "--x", &s(&x), "--out", &out]);
    assert!(e.contains("--max-memory must be a positive number of GiB, got -1"), "{e}");
    let data = train_data(&dir, 4);
    let ck = s(&dir.join("ck"));
    for (size, flag, value, want) in [
        ("100000", "--nf", "8", "100000×100000"),
        ("8", "--nf", "100000", "nf = 100000"),
        ("8", "--batch-size", "100000000", "--batch-size 100000000"),
    ] {
        #[rustfmt::skip]
        let e = fails(&["train", "--data", &s(&data), "--out", &ck, "--config", "tiny", "--size", size, "--steps", "1",
                        "--quiet", flag, value]);
        assert!(e.contains(want) && e.contains("memory limit"), "{flag} {value}: {e}");
    }
}

// Mask operators: unobserved entries stay zero in y and are not measurements (χ²/dof and the
// count printed use only the observed ones).
#[test]
fn masks_leave_unobserved_entries_zero_and_uncounted() {
    let dir = tmp("masks");
    let x = dir.join("x.npy");
    write_npy(&x, &[1, 16, 16], &(0..256).map(|i| (i % 13) as f64 / 13.0).collect::<Vec<_>>()).unwrap();
    for (forward, per_image) in [("mask(keep=0.5, seed=3)", None), ("mri(acceleration=4)", Some(128))] {
        let out = dir.join(forward.split('(').next().unwrap());
        let text = ok(&["measure", "--forward", forward, "--x", &s(&x), "--out", &s(&out)]);
        let y = read_npy(out.join("y.npy")).unwrap();
        let zeros = y.data.iter().filter(|v| **v == 0.0).count();
        let observed = y.data.len() - zeros;
        assert!(zeros > y.data.len() / 4, "{forward}: unobserved entries must stay 0 ({zeros} zeros)");
        assert!(text.contains(&format!("on {observed} measurements per image")), "{forward}: {text}");
        if let Some(m) = per_image {
            assert_eq!(observed, m, "{forward}");
        }
        // χ²/dof of the draw is near 1 when only the observed entries count.
        let chi: f64 =
            text.split("χ²/dof of the draw = ").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
        assert!((0.6..1.4).contains(&chi), "{forward}: χ²/dof {chi}");
    }
}

// Remedy 6: one reading of shapes; a 3-D .npy is (N, H, W) in measure as everywhere.
#[test]
fn measure_reads_three_dimensional_arrays_as_gray_images() {
    let dir = tmp("shapes");
    let x = dir.join("x3.npy");
    write_npy(&x, &[3, 8, 8], &[0.5; 192]).unwrap();
    let out = dir.join("m");
    let text = ok(&["measure", "--forward", "denoising", "--x", &s(&x), "--out", &s(&out)]);
    assert!(text.contains("3 image(s) of shape [1, 8, 8]"), "{text}");
    assert_eq!(read_npy(out.join("y.npy")).unwrap().shape, vec![3, 1, 8, 8]);
    // Colour images as an explicit (N, C, H, W) batch.
    let c = dir.join("c.npy");
    write_npy(&c, &[1, 3, 8, 8], &[0.5; 192]).unwrap();
    let text = ok(&["measure", "--forward", "denoising", "--x", &s(&c), "--out", &s(&out)]);
    assert!(text.contains("1 image(s) of shape [3, 8, 8]"), "{text}");
    let bad = dir.join("b.npy");
    write_npy(&bad, &[2, 2, 2, 2, 2], &[0.5; 32]).unwrap();
    let e = fails(&["measure", "--forward", "denoising", "--x", &s(&bad), "--out", &s(&out)]);
    assert!(e.contains("--x") && e.contains("(N, H, W)"), "{e}");
}

// Remedy 3 for the other commands that own a folder: a second run on a locked folder fails at
// once.
#[test]
fn measure_refuses_a_folder_in_use() {
    let dir = tmp("measure-lock");
    let x = dir.join("x.npy");
    write_npy(&x, &[1, 8, 8], &[0.5; 64]).unwrap();
    let out = dir.join("m");
    let _held = scoreprior_cli::run_folder::OutputLock::acquire("--out", &out).unwrap();
    let e = fails(&["measure", "--forward", "denoising", "--x", &s(&x), "--out", &s(&out)]);
    assert!(e.contains("in use") && e.contains(&format!("pid {}", std::process::id())), "{e}");
    assert!(!out.join("y.npy").exists());
}

// measure's presets are the library's (`forward::expand_preset`), so every command that takes
// a chain (dpi included) accepts them; `eht` is named as what it is.
#[test]
fn forward_presets_are_chains_everywhere() {
    use scoreprior::core::forward::{parse_model, ForwardModel};
    let m = parse_model("mri(acceleration=4)", "complex_gaussian(sigma=0.01)", [1, 16, 16]).unwrap();
    assert_eq!(m.measurement_count(), 128);
    let m = parse_model("deblurring(k=4)", "complex_gaussian(sigma=0.1)", [1, 16, 16]).unwrap();
    assert_eq!(m.output_dim(), 2 * 4 * 4);
    assert_eq!(parse_model("denoising", "gaussian(sigma=0.1)", [1, 8, 8]).unwrap().output_dim(), 64);
    let e = parse_model("eht(fov=160)", "gaussian(sigma=0.1)", [1, 16, 16]).unwrap_err().to_string();
    assert!(e.contains("interferometer") && e.contains("measure"), "{e}");
    let e = parse_model("mri(mask=radial)", "gaussian(sigma=0.1)", [1, 16, 16]).unwrap_err().to_string();
    assert!(e.contains("poisson or cartesian"), "{e}");
}

// Remedies 2–3 for `dpi`: a folder holds one run; a resume must be of the same problem; two
// runs cannot share a folder; --force moves the old run aside; sizes are checked first.
#[test]
fn dpi_folder_holds_one_run_and_resume_checks_the_problem() {
    let dir = tmp("dpi-own");
    let x = dir.join("x.npy");
    write_npy(&x, &[2, 16, 16], &[0.4; 512]).unwrap();
    let out = dir.join("run");
    let (xs, o) = (s(&x), s(&out));
    #[rustfmt::skip]
    let base = ["dpi", "--prior", "gaussian", "--x-true", &xs, "--out", &o, "--batch", "4", "--samples", "4",
                "--quiet", "--steps"];
    let with = |extra: &[&str]| -> Vec<String> { base.iter().chain(extra).map(|a| a.to_string()).collect() };
    let run = |a: &[String]| ok(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let fail = |a: &[String]| fails(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    run(&with(&["3"]));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["state"], "complete", "{m}");
    // A second run without --resume would mix two runs' files.
    let e = fail(&with(&["3"]));
    assert!(e.contains("previous run") && e.contains("--resume") && e.contains("--force"), "{e}");
    // A resume with another learning rate, image or prior file is another problem.
    let e = fail(&with(&["5", "--resume", "--lr", "0.01"]));
    assert!(e.contains("lr") && e.contains("--force"), "{e}");
    let e = fail(&with(&["5", "--resume", "--index", "1"]));
    assert!(e.contains("index"), "{e}");
    // The same problem resumes (more steps are allowed).
    run(&with(&["5", "--resume"]));
    let rows = std::fs::read_to_string(out.join("losses.csv")).unwrap().lines().count();
    assert_eq!(rows, 1 + 5);
    // --force starts over with the old run moved aside, never mixed.
    run(&with(&["2", "--force"]));
    let old = dir.join("run.old-1");
    assert!(old.join("checkpoint.safetensors").exists() && old.join("metrics.json").exists());
    assert_eq!(std::fs::read_to_string(out.join("losses.csv")).unwrap().lines().count(), 1 + 2);
    // Two runs at once: the second is refused while the first holds the folder.
    let long = with(&["1000000", "--force"]);
    let mut child = common::command().args(&long).stderr(std::process::Stdio::null()).spawn().unwrap();
    let t = std::time::Instant::now();
    while !(out.join("run.json").exists() && dir.join("run.old-2").exists()) && t.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let e = fail(&with(&["2", "--resume"]));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(e.contains("in use") && e.contains(&format!("pid {}", child.id())), "{e}");
    // Killed mid-run: its temporaries are swept and the run resumes.
    let stale = out.join("checkpoint.safetensors.999999999.tmp");
    std::fs::write(&stale, vec![0u8; 100]).unwrap();
    let _ = std::fs::remove_file(out.join("checkpoint.safetensors"));
    run(&with(&["2", "--force"]));
    assert!(
        !dir.join("run.old-3").join("checkpoint.safetensors.999999999.tmp").exists(),
        "the stale temporary is swept"
    );
    // Absurd sizes are errors before anything is allocated.
    for (flag, value) in [("--flows", "100000"), ("--hidden", "1000000")] {
        let e = fail(&with(&["2", "--force", flag, value]));
        assert!(e.contains("--max-memory") && e.contains("posterior"), "{flag} {value}: {e}");
    }
    let e = fails(&["dpi", "--prior", "gaussian", "--x-true", &xs, "--out", &o, "--samples", "100000000000"]);
    assert!(e.contains("--max-memory") && e.contains("samples"), "{e}");
}
