//! `scoreprior posterior`: the baselines run on the same problem flags as `dpi` and write the
//! same outputs; Score-ALD on the exact score of the fitted Gaussian reproduces that
//! Gaussian's closed-form posterior mean (the Wiener filter) on a denoising problem.

mod common;
use common::{fails, ok, tmp};

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
    // A closed-form prior has no score model to sample with; a baseline has nothing to resume.
    let e = fails(&[
        "posterior",
        "--method",
        "dps",
        "--prior",
        "gaussian",
        "--x-true",
        "assets/fashion16_test.npy",
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    assert!(e.contains("score-based prior"), "{e}");
    let e =
        fails(&["posterior", "--method", "sde-proj", "--resume", "--x-true", "assets/fashion16_test.npy", "--out", o]);
    assert!(e.contains("nothing to resume"), "{e}");
    let e = fails(&[
        "posterior",
        "--method",
        "sde-proj",
        "--lambda",
        "2",
        "--x-true",
        "assets/fashion16_test.npy",
        "--out",
        dir.join("y").to_str().unwrap(),
    ]);
    assert!(e.contains("lambda"), "{e}");
    assert!(!dir.join("y").exists(), "a bad setting is refused before the folder is taken");
}
