//! `scoreprior posterior`: the baselines run on the same problem flags as `dpi` and write the
//! same outputs; Score-ALD on the exact score of the fitted Gaussian reproduces that
//! Gaussian's closed-form posterior mean (the Wiener filter) on a denoising problem.

mod common;
use common::{fails, fails_saying, ok, tmp};

#[test]
fn score_ald_matches_the_closed_form_posterior_mean_and_writes_dpi_outputs() {
    let dir = tmp("posterior");
    let out = dir.join("ald");
    let o = out.to_str().unwrap();
    #[rustfmt::skip]
    ok(&["posterior", "--method", "score-ald", "--prior", "gaussian-ode", "--x-true", "assets/fashion16_test.npy",
         "--samples", "64", "--ald-levels", "100", "--out", o, "--quiet"]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["method"], "score-ald");
    assert!(m["seconds_per_sample"].as_f64().unwrap() > 0.0);
    let (ald, wiener) =
        (m["mean_metrics"]["psnr"].as_f64().unwrap(), m["references"]["wiener"]["psnr"].as_f64().unwrap());
    // Measured: 19.72 dB with 32 samples against Wiener's 20.09 dB (the exact posterior mean).
    assert!((ald - wiener).abs() < 1.0, "Score-ALD {ald} dB vs Wiener {wiener} dB");
    for f in ["samples.npy", "mean.npy", "std.npy", "mean.png", "run.json"] {
        assert!(out.join(f).exists(), "{f}");
    }
    // Refused, each naming why: a closed-form prior has no score model to sample with, a
    // baseline has nothing to resume, λ = 2 is outside (0, 1].
    let (x, y) = (dir.join("x"), dir.join("y"));
    for (args, out, says) in [
        (&["--method", "dps", "--prior", "gaussian"][..], x.to_str().unwrap(), "score-based prior"),
        (&["--method", "sde-proj", "--resume"], o, "nothing to resume"),
        (&["--method", "sde-proj", "--lambda", "2"], y.to_str().unwrap(), "lambda"),
    ] {
        fails_saying(&["posterior", "--x-true", "assets/fashion16_test.npy", "--out", out], args, says);
    }
    assert!(!y.exists(), "a bad setting is refused before the folder is taken");
}

/// A user's own linear operator as a `.npy` matrix: `y = aᵀx + n` on a 2-D Gaussian prior,
/// given only `--y` (the 1×2 image shape comes from the prior). DPI's posterior matches the
/// closed form; a Score-ALD step unstable for this operator is refused before any output.
#[test]
fn matrix_file_operator_with_the_shape_from_the_prior() {
    use scoreprior::core::io::{read_npy, write_npy};
    let dir = tmp("posterior-matrix");
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    write_npy(p("A.npy"), &[1, 2], &[-2.0, 1.7]).unwrap();
    write_npy(p("y.npy"), &[1], &[0.3]).unwrap();
    write_npy(p("m.npy"), &[2], &[0.0, 0.0]).unwrap();
    write_npy(p("c.npy"), &[2, 2], &[1.0, 0.3, 0.3, 0.5]).unwrap();
    let forward = format!("matrix(file={})", p("A.npy"));
    let out = p("dpi");
    #[rustfmt::skip]
    ok(&["posterior", "--method", "dpi", "--forward", &forward, "--noise", "gaussian(sigma=0.2)", "--y", &p("y.npy"),
         "--prior", "gaussian", "--mean", &p("m.npy"), "--cov", &p("c.npy"), "--samples", "2000", "--steps", "400",
         "--batch", "64", "--outlier", "100", "--out", &out, "--quiet"]);
    let x = read_npy(dir.join("dpi/samples.npy")).unwrap();
    assert_eq!(x.shape, vec![2000, 1, 2]);
    let (mean, std) =
        (read_npy(dir.join("dpi/mean.npy")).unwrap().data, read_npy(dir.join("dpi/std.npy")).unwrap().data);
    // Closed form: mean (−0.1298, 0.0218), std (0.5963, 0.6942). Measured: (−0.100, 0.051),
    // (0.597, 0.692).
    let (em, es) = ([-0.129_753, 0.021_771], [0.596_287, 0.694_160]);
    for i in 0..2 {
        assert!((mean[i] - em[i]).abs() < 0.06, "mean {mean:?}");
        assert!((std[i] / es[i] - 1.0).abs() < 0.05, "std {std:?}");
    }
    // Score-ALD on the same operator (‖a‖² = 6.89: its annealed likelihood variance scales with
    // it, so the default step is stable); a step of 2 or more is refused before any output.
    #[rustfmt::skip]
    let ald = |step: &str, out: &str| vec!["posterior".to_string(), "--method".into(), "score-ald".into(),
        "--forward".into(), forward.clone(), "--noise".into(), "gaussian(sigma=0.2)".into(), "--y".into(), p("y.npy"),
        "--prior".into(), "gaussian-ode".into(), "--mean".into(), p("m.npy"), "--cov".into(), p("c.npy"),
        "--samples".into(), "2000".into(), "--outlier".into(), "100".into(), "--ald-step".into(), step.into(),
        "--out".into(), p(out), "--quiet".into()];
    let args = ald("0.5", "ald");
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let std_ald = read_npy(dir.join("ald/std.npy")).unwrap().data;
    let mean_ald = read_npy(dir.join("ald/mean.npy")).unwrap().data;
    // Measured: mean (−0.122, 0.030), std (0.622, 0.722): 4 % wide.
    for i in 0..2 {
        assert!((mean_ald[i] - em[i]).abs() < 0.03, "Score-ALD mean {mean_ald:?}");
        assert!((std_ald[i] / es[i] - 1.0).abs() < 0.08, "Score-ALD std {std_ald:?}");
    }
    let args = ald("2.5", "ald-bad");
    let e = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("(0, 2)"), "{e}");
    assert!(!dir.join("ald-bad").exists(), "refused before the folder is taken");
    // A matrix whose width is not the image size, and a missing file, are clear errors.
    write_npy(p("B.npy"), &[1, 3], &[1.0, 2.0, 3.0]).unwrap();
    #[rustfmt::skip]
    let e = fails(&["posterior", "--forward", &format!("matrix(file={})", p("B.npy")), "--y", &p("y.npy"),
                    "--prior", "gaussian", "--mean", &p("m.npy"), "--cov", &p("c.npy"), "--out", &p("bad")]);
    assert!(e.contains("(1, 3)"), "{e}");
    #[rustfmt::skip]
    let e = fails(&["posterior", "--forward", "matrix(file=\"no such.npy\")", "--y", &p("y.npy"),
                    "--prior", "gaussian", "--mean", &p("m.npy"), "--cov", &p("c.npy"), "--out", &p("bad")]);
    assert!(e.contains("no such.npy"), "{e}");
}

/// DAPS and PnP-DM through `posterior --method`, on 16×16 denoising under the Gaussian prior's
/// exact score (`gaussian-ode`): the exact posterior is known, and `metrics.json` compares the
/// 32 samples' mean and std with it (a perfect sampler: mean error ≈ 1/√32 ≈ 0.18 posterior
/// std, std error ≈ 1/√64 ≈ 0.13). Measured: PnP-DM 0.17 std / 10 %, DAPS 0.27 std / 19 %
/// (shortened schedules; at the reference defaults 0.17 / 10 % and 0.24 / 18 %). Bad knobs
/// are refused before the folder is taken.
#[test]
fn daps_and_pnp_dm_sample_the_closed_form_posterior() {
    let dir = tmp("posterior-modern");
    #[rustfmt::skip]
    let runs: [(&str, &[&str], f64, f64); 2] = [
        ("pnp-dm", &["--pnp-iterations", "60", "--pnp-burn-in", "10", "--pnp-rho-start", "1",
                     "--pnp-denoise-steps", "20"], 0.3, 0.2),
        ("daps", &["--daps-levels", "100", "--daps-langevin-steps", "50", "--daps-step", "3e-4"], 0.4, 0.3),
    ];
    for (method, knobs, mean_bound, std_bound) in runs {
        let out = dir.join(method);
        let o = out.to_str().unwrap();
        let mut args = vec!["posterior", "--method", method, "--prior", "gaussian-ode"];
        args.extend_from_slice(knobs);
        args.extend_from_slice(&["--x-true", "assets/fashion16_test.npy", "--samples", "32", "--out", o, "--quiet"]);
        ok(&args);
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
        assert_eq!(m["method"], method);
        let cf = &m["closed_form"];
        let (mean_err, std_err) = (cf["mean_err_in_std"].as_f64().unwrap(), cf["std_rel_err"].as_f64().unwrap());
        assert!(mean_err < mean_bound && std_err < std_bound, "{method}: mean {mean_err} std, std {std_err}");
        assert!(m["seconds_per_sample"].as_f64().unwrap() > 0.0);
    }
    for (args, knob) in [
        (vec!["--method", "pnp-dm", "--pnp-iterations", "20", "--pnp-burn-in", "20"], "burn_in"),
        (vec!["--method", "pnp-dm", "--pnp-rho-start", "nan"], "rho_start"),
        (vec!["--method", "daps", "--daps-step=-1"], "step_size"),
        (vec!["--method", "daps", "--daps-levels", "0"], "levels"),
    ] {
        let bad = dir.join("bad");
        let mut a = vec!["posterior", "--prior", "gaussian-ode", "--x-true", "assets/fashion16_test.npy"];
        a.extend_from_slice(&args);
        a.extend_from_slice(&["--out", bad.to_str().unwrap()]);
        let e = fails(&a);
        // The sampler's knob, and the flags that set it.
        assert!(e.contains(knob) && e.contains(&format!("--{}", &args[1][..3])), "{args:?}: {e}");
        assert!(!bad.exists(), "{args:?}: refused before the folder is taken");
    }
}
