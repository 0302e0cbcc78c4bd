//! End-to-end tests of `scoreprior logprob`, `solver-study`, `trace-study` and `fit-gaussian`:
//! the binary is run on tiny inputs (D = 4) and its files are checked against closed forms.

use std::path::{Path, PathBuf};
mod common;

use common::{bin, fails, gaussian_files, ok, tiny_network, tmp, train_images, COV, MEAN, X};

use scoreprior::core::io::{read_npy, write_npy};
use scoreprior::core::score::{Gaussian, GaussianMixture, MarginalDensity};
use scoreprior::core::sde::{AnySde, VpSde};

/// `scoreprior logprob` with the Gaussian prior of `mean` and `cov` on the images `x`, then `rest`.
fn gaussian_args<'a>(mean: &'a str, cov: &'a str, x: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["logprob", "--prior", "gaussian", "--mean", mean, "--cov", cov, "--x", x];
    args.extend_from_slice(rest);
    args
}

/// `scoreprior logprob` with the mixture prior of `weights`, `means` and `stds` on the images
/// `x`, then `rest`.
fn gmm_args<'a>(weights: &'a str, means: &'a str, stds: &'a str, x: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["logprob", "--prior", "gmm", "--weights", weights, "--means", means, "--stds", stds, "--x", x];
    args.extend_from_slice(rest);
    args
}

/// `scoreprior logprob` with the checkpoint prior `ckpt` on the images `x`, then `rest`.
fn checkpoint_args<'a>(ckpt: &'a str, x: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["logprob", "--prior", ckpt, "--x", x];
    args.extend_from_slice(rest);
    args
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|a| a.as_f64().unwrap()).collect()
}

#[test]
fn logprob_gaussian_matches_closed_form_and_writes_gradients() {
    let dir = tmp("gauss");
    let (m, c, x) = gaussian_files(&dir);
    let out = dir.join("r.json");
    let grad = dir.join("g.npy");
    let (grad_s, out_s) = (grad.to_str().unwrap(), out.to_str().unwrap());
    let tight = ["--rtol", "1e-7", "--atol", "1e-9", "--grad", grad_s, "--out", out_s];
    ok(&gaussian_args(&m, &c, &x, &[&["--trace", "exact"][..], &tight].concat()));
    let r = json(&out);
    let lp = floats(&r["log_prob"]);
    let bpd = floats(&r["bits_per_dim"]);
    let g = Gaussian::new(MEAN.to_vec(), &COV, AnySde::Vp(VpSde::default())).unwrap();
    let mut exact = [0.0; 2];
    g.marginal_log_prob(&X, 1e-3, &mut exact).unwrap();
    for i in 0..2 {
        // The remaining gap is the N(0, I) terminal density vs the exact p_T (α_T² ≈ 4e-5 scale).
        assert!((lp[i] - exact[i]).abs() < 1e-3, "{} vs {}", lp[i], exact[i]);
        assert!((bpd[i] + lp[i] / (4.0 * std::f64::consts::LN_2)).abs() < 1e-12);
    }
    assert_eq!(r["dim"], 4);
    assert_eq!(r["trace"]["kind"], "exact");
    let nfe = r["nfe"].as_u64().unwrap();
    let fwd = r["forward"]["rhs_evaluations"].as_u64().unwrap();
    let adj = r["adjoint"]["rhs_evaluations"].as_u64().unwrap();
    assert!(fwd > 0 && adj > 0 && nfe == fwd + adj);
    assert!(r["accepted_steps"].as_u64().unwrap() > 0 && r["wall_seconds"].as_f64().unwrap() >= 0.0);
    // Gradient file: shape of the input, equal to the exact ∇ log p_t0 once the terminal density
    // is the exact p_T (with N(0, I) the terminal gap, pulled back by the flow, is ~2e-3 here).
    ok(&gaussian_args(&m, &c, &x, &[&["--trace", "exact", "--exact-terminal"][..], &tight].concat()));
    let lp_exact_terminal = floats(&json(&out)["log_prob"]);
    for i in 0..2 {
        assert!((lp_exact_terminal[i] - exact[i]).abs() < 1e-5, "{} vs {}", lp_exact_terminal[i], exact[i]);
    }
    let ga = read_npy(&grad).unwrap();
    assert_eq!(ga.shape, vec![2, 2, 2]);
    let mut ge = [0.0; 8];
    g.marginal_grad_log_prob(&X, 1e-3, &mut ge).unwrap();
    let err: f64 = ga.data.iter().zip(&ge).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let nrm: f64 = ge.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(err / nrm < 1e-4, "relative gradient error {}", err / nrm);
}

#[test]
fn logprob_gmm_with_hutchinson_is_reproducible() {
    let dir = tmp("gmm");
    let (w, mu, s, x) = (dir.join("w.npy"), dir.join("mu.npy"), dir.join("s.npy"), dir.join("x.npy"));
    write_npy(&w, &[2], &[0.3, 0.7]).unwrap();
    write_npy(&mu, &[2, 4], &[0.0, 0.1, 0.2, 0.3, 0.6, 0.5, 0.4, 0.3]).unwrap();
    write_npy(&s, &[2], &[0.2, 0.3]).unwrap();
    write_npy(&x, &[2, 4], &X).unwrap();
    let p = |q: &PathBuf| q.display().to_string();
    let (w, mu, s, x) = (p(&w), p(&mu), p(&s), p(&x));
    let run = |seed: &str, name: &str| {
        let out = dir.join(name);
        #[rustfmt::skip]
        ok(&gmm_args(&w, &mu, &s, &x, &["--hutchinson", "3", "--probe", "gaussian", "--seed", seed, "--solver", "tsit5",
                                         "--out", out.to_str().unwrap()]));
        json(&out)
    };
    let a = run("5", "a.json");
    let b = run("5", "b.json");
    let c = run("6", "c.json");
    assert_eq!(a["log_prob"], b["log_prob"], "same seed, same probes, same result");
    assert_ne!(a["log_prob"], c["log_prob"], "another seed draws other probes");
    assert_eq!(a["trace"]["probes"], 3);
    assert_eq!(a["solver"], "Tsit5");
    // The closed form of the mixture's density at t0 = 1e-3: the exact trace with the exact
    // terminal density and tight tolerances reaches it (measured difference 2e-8), and the
    // mean of Hutchinson runs over seeds is unbiased for it.
    let g = GaussianMixture::new(
        &[0.3, 0.7],
        &[0.0, 0.1, 0.2, 0.3, 0.6, 0.5, 0.4, 0.3],
        &[0.2, 0.3],
        AnySde::Vp(VpSde::default()),
    )
    .unwrap();
    let mut exact = [0.0; 2];
    g.marginal_log_prob(&X, 1e-3, &mut exact).unwrap();
    let out = dir.join("exact.json");
    #[rustfmt::skip]
    ok(&gmm_args(&w, &mu, &s, &x, &["--trace", "exact", "--exact-terminal", "--rtol", "1e-8", "--atol", "1e-10",
                                     "--out", out.to_str().unwrap()]));
    let lp = floats(&json(&out)["log_prob"]);
    eprintln!("gmm: exact trace {lp:?}, closed form {exact:?}");
    for i in 0..2 {
        assert!((lp[i] - exact[i]).abs() < 1e-7, "image {i}: {} vs closed form {}", lp[i], exact[i]);
    }
    // 16 seeds of 3 Rademacher probes (default tolerances, N(0, I) terminal: both far below
    // the probe noise): the seed mean is within 4 standard errors of the closed form (the
    // spread across seeds measured 0.63 and 0.32 nats for the two images).
    let runs: Vec<Vec<f64>> = (0..16)
        .map(|seed| {
            let out = dir.join(format!("h{seed}.json"));
            ok(&gmm_args(
                &w,
                &mu,
                &s,
                &x,
                &["--hutchinson", "3", "--seed", &seed.to_string(), "--out", out.to_str().unwrap()],
            ));
            floats(&json(&out)["log_prob"])
        })
        .collect();
    for i in 0..2 {
        let v: Vec<f64> = runs.iter().map(|r| r[i]).collect();
        let mean = v.iter().sum::<f64>() / 16.0;
        let sd = (v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 15.0).sqrt();
        eprintln!("gmm image {i}: Hutchinson mean {mean:.4} (sd {sd:.3}) vs closed form {:.4}", exact[i]);
        assert!(
            sd > 0.0 && (mean - exact[i]).abs() < 4.0 * sd / 16f64.sqrt(),
            "image {i}: {mean} ± {sd} vs {}",
            exact[i]
        );
    }
}

#[test]
fn logprob_reports_clear_errors() {
    let dir = tmp("errors");
    let (m, c, x) = gaussian_files(&dir);
    let out = dir.join("r.json");
    let out = out.to_str().unwrap();
    let missing = dir.join("nope.npy");
    let e = fails(&gaussian_args(missing.to_str().unwrap(), &c, &x, &["--out", out]));
    assert!(e.contains("--mean") && e.contains("does not exist"), "{e}");
    // Covariances not positive definite (eigenvalues 3 and −1), not symmetric, of the wrong size.
    let bad = dir.join("bad.npy");
    let mut indefinite = COV;
    indefinite[1] = 2.0;
    indefinite[4] = 2.0;
    let mut asymmetric = COV;
    asymmetric[1] = 0.0;
    for (shape, cov, want) in [
        (&[4, 4][..], &indefinite[..], "not symmetric positive definite"),
        (&[4, 4], &asymmetric, "not symmetric positive definite"),
        (&[2, 2], &[1.0, 0.0, 0.0, 1.0], "expected (4, 4)"),
    ] {
        write_npy(&bad, shape, cov).unwrap();
        let e = fails(&gaussian_args(&m, bad.to_str().unwrap(), &x, &["--out", out]));
        assert!(e.contains(want), "{e}");
    }
    // Images of the wrong dimension, and a 1-D array.
    let x5 = dir.join("x5.npy");
    let x5_s = x5.to_str().unwrap();
    write_npy(&x5, &[2, 5], &[0.0; 10]).unwrap();
    let e = fails(&gaussian_args(&m, &c, x5_s, &["--out", out]));
    assert!(e.contains("D = 5") && e.contains("dimension 4"), "{e}");
    write_npy(&x5, &[4], &[0.0; 4]).unwrap();
    let e = fails(&gaussian_args(&m, &c, x5_s, &["--out", out]));
    assert!(e.contains("expected (N, D), (N, H, W) or (N, C, H, W)"), "{e}");
    // Missing prior files, unknown prior, unknown solver, Euler without a fixed step budget.
    let e = fails(&["logprob", "--prior", "gaussian", "--mean", &m, "--x", &x, "--out", out]);
    assert!(e.contains("needs --cov"), "{e}");
    let e = fails(&["logprob", "--prior", "flow", "--x", &x, "--out", out]);
    assert!(e.contains("expected `gaussian`, `gmm`"), "{e}");
    // An unknown solver is a usage error of the command line (exit code 2), naming the flag and
    // the solvers there are.
    let o = bin(&gaussian_args(&m, &c, &x, &["--solver", "dopri7", "--out", out]));
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("--solver") && e.contains("dopri7") && e.contains("dopri5, dopri8"), "{e}");
    #[rustfmt::skip]
    let e = fails(&gaussian_args(&m, &c, &x, &["--solver", "euler", "--dt", "0.01", "--max-steps", "10", "--out", out]));
    assert!(e.contains("maximum number of steps"), "{e}");
    // Non-finite input.
    write_npy(&x5, &[1, 4], &[0.0, f64::NAN, 0.0, 0.0]).unwrap();
    let e = fails(&gaussian_args(&m, &c, x5_s, &["--out", out]));
    assert!(e.contains("non-finite"), "{e}");
    assert!(!Path::new(out).exists(), "no result file after a failure");
}

#[test]
fn solver_study_writes_table_csv_and_plot() {
    let dir = tmp("solver");
    let (m, c, _) = gaussian_files(&dir);
    let out = dir.join("study");
    #[rustfmt::skip]
    let stdout = ok(&["solver-study", "--mean", &m, "--cov", &c, "--samples", "32", "--solvers", "euler,heun,dopri5",
        "--dt", "0.01", "--exact-terminal", "--out", out.to_str().unwrap()]);
    assert!(stdout.contains("| Dopri5 | adaptive |") && stdout.contains("| Euler | 1/100 |"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("solver_study.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    let col = |r: &Vec<&str>, i: usize| r[i].parse::<f64>().unwrap();
    // Euler: 0.999 / 0.01 → 100 fixed steps, one evaluation each.
    assert_eq!(rows[0][0], "Euler");
    assert_eq!(col(&rows[0], 2), 100.0);
    // With the exact terminal density Dopri5's error is far below Euler's, and its KL estimate
    // is close to the floor KL(q‖p_t0) of the last row.
    assert!(col(&rows[2], 7) < 0.1 * col(&rows[0], 7), "{csv}");
    assert!((col(&rows[2], 5) - col(&rows[3], 5)).abs() < 1e-2, "{csv}");
    assert!(std::fs::read_to_string(out.join("solver_study.svg")).unwrap().starts_with("<svg"));
    assert!(out.join("solver_study_error.svg").exists());
    assert!(stdout.contains("Closed-form KL(q‖p_t0)"), "{stdout}");
}

#[test]
fn trace_study_variance_falls_with_probes() {
    let dir = tmp("trace");
    let (m, c, _) = gaussian_files(&dir);
    let out = dir.join("study");
    #[rustfmt::skip]
    let stdout = ok(&["trace-study", "--mean", &m, "--cov", &c, "--ks", "1,16", "--seeds", "2000", "--grad-ks", "2,8",
        "--grad-seeds", "6", "--gmm-components", "3", "--out", out.to_str().unwrap()]);
    assert!(stdout.contains("| exact trace |"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("trace_study_logp.csv")).unwrap();
    let rows: Vec<Vec<f64>> = csv.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    assert_eq!(rows.len(), 2);
    let (s1, s16) = (rows[0][2], rows[1][2]);
    // The K-probe estimate is the mean of K independent one-probe estimates (same probes
    // along the whole solve), so its std falls like 1/√K: s16/s1 = 0.25. The draws are far
    // from normal (D = 4, Rademacher), so a std is known less well than 1/√(2n) says: at 200
    // seeds the ratio came out 0.294, at 2000 seeds (0.15 s) 0.254. ±0.03 is about 4 times
    // the spread that suggests at 2000 seeds.
    let ratio = s16 / s1;
    eprintln!("trace study: s1 {s1}, s16 {s16}, ratio {ratio}");
    assert!((ratio - 0.25).abs() < 0.03, "std should fall like 1/√K: {s1} {s16} (ratio {ratio})");
    // Unbiased: the K = 16 mean is within 3 standard errors of the exact-trace value.
    assert!((rows[1][1] - rows[1][3]).abs() < 3.0 * s16 / 2000f64.sqrt() + 1e-6, "{csv}");
    let g = std::fs::read_to_string(out.join("trace_study_grad.csv")).unwrap();
    // gaussian K = 0, 2, 8 and gmm K = 0, 2, 8.
    assert_eq!(g.lines().count(), 7, "{g}");
    let gmm8: Vec<&str> = g.lines().find(|l| l.starts_with("gmm,8,")).unwrap().split(',').collect();
    let gauss8: Vec<&str> = g.lines().find(|l| l.starts_with("gaussian,8,")).unwrap().split(',').collect();
    // The mixture's divergence depends on x, so its gradients vary with the probes; the
    // Gaussian's do not (up to step-size differences).
    let rel = |r: &Vec<&str>| r[3].parse::<f64>().unwrap();
    assert!(rel(&gmm8) > 1e-4 && rel(&gauss8) < 1e-4, "{g}");
    assert!(out.join("trace_study_logp.svg").exists() && out.join("trace_study_grad.svg").exists());
}

#[test]
fn fit_gaussian_averages_areas_of_an_idx_file() {
    let dir = tmp("fit");
    // Three 28×28 images: constant 0, constant 255, and a left/right split (0 | 255).
    let mut idx = vec![0u8, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28];
    idx.extend(std::iter::repeat_n(0u8, 784));
    idx.extend(std::iter::repeat_n(255u8, 784));
    for _ in 0..28 {
        idx.extend(std::iter::repeat_n(0u8, 14));
        idx.extend(std::iter::repeat_n(255u8, 14));
    }
    let f = dir.join("train-images-idx3-ubyte");
    std::fs::write(&f, &idx).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), &idx).unwrap();
    let out = dir.join("g");
    let test = dir.join("t.npy");
    #[rustfmt::skip]
    ok(&["fit-gaussian", "--data", dir.to_str().unwrap(), "--size", "4", "--out", out.to_str().unwrap(),
         "--test-out", test.to_str().unwrap(), "--test-count", "2"]);
    let mean = read_npy(out.join("mean.npy")).unwrap();
    let cov = read_npy(out.join("cov.npy")).unwrap();
    assert_eq!(mean.shape, vec![16]);
    assert_eq!(cov.shape, vec![16, 16]);
    // Left half of every image: pixels (0, 1, 0) → mean 1/3, variance 1/3 (1/(N−1)), + 0.01.
    // Right half: (0, 1, 1) → mean 2/3, same variance; left–right covariance +1/6.
    for r in 0..4 {
        for cidx in 0..4 {
            let want = if cidx < 2 { 1.0 / 3.0 } else { 2.0 / 3.0 };
            assert!((mean.data[r * 4 + cidx] - want).abs() < 1e-6);
        }
    }
    assert!((cov.data[0] - (1.0 / 3.0 + 0.01)).abs() < 1e-6, "{}", cov.data[0]);
    assert!((cov.data[3] - 1.0 / 6.0).abs() < 1e-6, "{}", cov.data[3]);
    let t = read_npy(&test).unwrap();
    assert_eq!(t.shape, vec![2, 4, 4]);
    assert!(t.data[16..].iter().all(|v| (v - 1.0).abs() < 1e-6));
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("fit-gaussian") && readme.contains("MIT"));
    let e = fails(&["fit-gaussian", "--data", dir.join("none").to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(e.contains("no such file or folder"), "{e}");
}

#[test]
fn logprob_loads_a_network_checkpoint() {
    // A tiny NCSN++ trained for 2 steps: its output layer starts at zero (init_scale 0) and the
    // EMA weights barely move, so ε̂ ≈ 0, s ≈ 0 and the flow is the pure VP drift −½β x with
    // divergence −½βD: log p = log N(x_T; 0, I) − ½ D ∫_{t0}^{1} β dt, x_T = x·e^{−½∫β}.
    let dir = tmp("ckpt");
    let ema = tiny_network(&dir);
    let imgs = train_images(1);
    let x = dir.join("x.npy");
    write_npy(&x, &[1, 1, 8, 8], &imgs).unwrap();
    let out = dir.join("r.json");
    let (ema, out_s) = (ema.to_str().unwrap(), out.to_str().unwrap());
    #[rustfmt::skip]
    ok(&checkpoint_args(ema, x.to_str().unwrap(), &["--hutchinson", "1", "--rtol", "1e-2", "--atol", "1e-4",
                                                     "--out", out_s]));
    let lp = floats(&json(&out)["log_prob"])[0];
    let (b0, b1, t0): (f64, f64, f64) = (0.1, 20.0, 1e-3);
    let int_beta = b0 * (1.0 - t0) + 0.5 * (b1 - b0) * (1.0 - t0 * t0);
    let shrink = (-0.5 * int_beta).exp();
    let sq: f64 = imgs.iter().map(|v| (v * shrink).powi(2)).sum();
    let want = -0.5 * sq - 32.0 * (2.0 * std::f64::consts::PI).ln() - 32.0 * int_beta;
    assert!((lp - want).abs() < 0.05, "{lp} vs {want}");
    let e = fails(&checkpoint_args(ema, x.to_str().unwrap(), &["--sde", "ve", "--out", out_s]));
    assert!(e.contains("--sde must be vp"), "{e}");
    let x16 = dir.join("x16.npy");
    write_npy(&x16, &[1, 16, 16], &[0.5; 256]).unwrap();
    let e = fails(&checkpoint_args(ema, x16.to_str().unwrap(), &["--out", out_s]));
    assert!(e.contains("dimension 64"), "{e}");
}

/// `--dt0`: the default first step (the reference script's 1e-3) against Hairer's automatic
/// choice on the benchmark problem of `benches/RESULTS.md` (the shipped Gaussian, the first 16 test
/// images, exact trace): 7 steps and 43 evaluations, the counts diffrax reports with the same
/// first step, and its mean log p 221.6940139 (both read from its archived run,
/// `benches/reference/out/diffrax_logprob.json`); the automatic step costs a probe evaluation
/// and one more step (50). Bad values are clean errors.
#[test]
fn logprob_first_step_option() {
    let dir = tmp("dt0");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let (m, c) = (format!("{root}/assets/gaussian16/mean.npy"), format!("{root}/assets/gaussian16/cov.npy"));
    let all = read_npy(format!("{root}/assets/fashion16_test.npy")).unwrap();
    let x = dir.join("x16.npy");
    write_npy(&x, &[16, 16, 16], &all.data[..16 * 256]).unwrap();
    let x = x.display().to_string();
    let mut stats = Vec::new();
    for dt0 in ["0.001", "auto"] {
        let out = dir.join(format!("r-{dt0}.json"));
        ok(&gaussian_args(&m, &c, &x, &["--trace", "exact", "--dt0", dt0, "--out", out.to_str().unwrap()]));
        let r = json(&out);
        let lp = floats(&r["log_prob"]);
        stats.push((
            r["forward"]["rhs_evaluations"].as_u64().unwrap(),
            r["forward"]["accepted_steps"].as_u64().unwrap(),
            r["forward"]["rejected_steps"].as_u64().unwrap(),
            lp.iter().sum::<f64>() / lp.len() as f64,
        ));
    }
    eprintln!("dt0 1e-3: {:?}; auto: {:?}", stats[0], stats[1]);
    // diffrax's run of the same problem with `--dt0 0.001` (benches/reference/diffrax_logprob.py).
    let diffrax = json(Path::new(&format!("{root}/benches/reference/out/diffrax_logprob.json")));
    assert_eq!(diffrax["settings"]["dt0"].as_f64(), Some(1e-3), "the archived diffrax run's first step");
    let d = &diffrax["runs"]["exact"];
    let count = |k: &str| d[k].as_u64().unwrap();
    assert_eq!(
        (stats[0].0, stats[0].1, stats[0].2),
        (count("rhs_evaluations"), count("accepted_steps"), count("rejected_steps"))
    );
    assert_eq!((stats[1].0, stats[1].1, stats[1].2), (50, 8, 0));
    let diffrax_mean = d["mean_log_p"].as_f64().unwrap();
    assert!((stats[0].3 - diffrax_mean).abs() < 1e-8, "mean log p {}, diffrax {diffrax_mean}", stats[0].3);
    for bad in ["0", "-1e-3", "nan", "soon"] {
        let arg = format!("--dt0={bad}");
        let o = bin(&gaussian_args(&m, &c, &x, &[&arg]));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && o.status.code() != Some(101), "--dt0 {bad}: {e}");
        assert!(e.contains("--dt0") && (e.contains("positive") || e.contains("auto")), "--dt0 {bad}: {e}");
    }
}
