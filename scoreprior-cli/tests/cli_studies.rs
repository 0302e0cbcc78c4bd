//! Flag errors of `solver-study`, `trace-study` and `sample`: each is a clean error (exit code
//! 1) naming the flag, raised before any work and before anything is written.

mod common;

use common::{bin, fails, fails_saying, gaussian_prior_files, ok, tmp};
use scoreprior::core::io::write_npy;

/// `solver-study` and `trace-study` on the Gaussian prior files: each bad flag is a clean error
/// naming it, raised before anything is written.
#[test]
fn study_flag_errors() {
    let dir = tmp("study-flags");
    let (m, c) = gaussian_prior_files(&dir);
    let out = dir.join("study");
    let o = out.to_str().unwrap();
    let wrong_d = dir.join("w.npy");
    write_npy(&wrong_d, &[2, 5], &[0.5; 10]).unwrap();
    let w = wrong_d.to_str().unwrap();
    for (command, args, want) in [
        ("solver-study", &["--samples", "0"][..], "--samples"),
        ("solver-study", &["--batch", "0"][..], "--batch"),
        ("solver-study", &["--solvers", ""][..], "--solvers"),
        ("solver-study", &["--solvers", "dopri5,rk45"][..], "rk45"),
        ("trace-study", &["--ks", "0,4"][..], "--ks"),
        ("trace-study", &["--grad-ks", "0"][..], "--grad-ks"),
        ("trace-study", &["--seeds", "1"][..], "--seeds"),
        ("trace-study", &["--grad-seeds", "1"][..], "--grad-seeds"),
        ("trace-study", &["--gmm-std=-0.1"][..], "--gmm-std"),
        ("trace-study", &["--images", w][..], "--images"),
    ] {
        fails_saying(&[command, "--mean", &m, "--cov", &c, "--out", o], args, want);
        assert!(!out.exists(), "{command} {args:?}: nothing may be written");
    }
    let e = fails(&["solver-study", "--mean", &m, "--out", o]);
    assert!(e.contains("--cov"), "{e}");
}

#[test]
fn sample_flag_errors() {
    let dir = tmp("sample-flags");
    let ck =
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("assets/ncsnpp_fmnist16/ema.safetensors");
    let ck = ck.to_str().unwrap();
    let prefix = dir.join("s");
    let p = prefix.to_str().unwrap();
    for (args, want) in [
        (&["--n", "0"][..], "--n"),
        (&["--method", "ddim"][..], "--method ddim"),
        (&["--solver", "rk45"][..], "--solver rk45"),
    ] {
        fails_saying(&["sample", "--checkpoint", ck, "--out", p], args, want);
    }
    let missing = dir.join("none.safetensors");
    let e = fails(&["sample", "--checkpoint", missing.to_str().unwrap(), "--out", p]);
    assert!(e.contains("none.safetensors"), "{e}");
    assert!(!dir.join("s.png").exists() && !dir.join("s.npy").exists());
}

/// `restoration-study` on its deblurring task with two fast samplers: one row per method plus
/// the closed-form Gaussian floor on the same `y`; a second call reads the finished runs back.
#[test]
fn restoration_study_rows_floor_and_resume() {
    let dir = tmp("restoration-study");
    let out = dir.join("rs");
    let o = out.to_str().unwrap();
    #[rustfmt::skip]
    let args = ["restoration-study", "--out", o, "--tasks", "deblurring", "--methods", "sde-proj,score-ald",
                "--samples", "8", "--sampler-steps", "20", "--ald-levels", "10", "--quiet"];
    ok(&args);
    let table = std::fs::read_to_string(out.join("table.csv")).unwrap();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(rows[2].contains("closed-form Gaussian posterior"));
    // Measured 26.03 dB for the exact posterior mean under the fitted Gaussian (k = 8 of 16).
    let psnr_mean: f64 = rows[2].split(',').nth(8).unwrap().parse().unwrap();
    assert!((psnr_mean - 26.0).abs() < 1.0, "{table}");
    // The last column, 2-std coverage: the exact posterior's (its std is exact) and every method's.
    let coverage = |r: &str| -> f64 { r.rsplit(',').next().unwrap().parse().unwrap() };
    // Measured: 1.0 for the floor (the prior's std on the 3/4 of the frequencies the blur drops),
    // 0.996 for both 8-sample samplers.
    assert!(rows.iter().all(|r| (0.0..=1.0).contains(&coverage(r))) && coverage(rows[2]) >= 0.95, "{table}");
    let t = std::time::Instant::now();
    let again = bin(&args);
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("restoration-study: deblurring"), "rerun redid work");
    assert!(t.elapsed().as_secs_f64() < 20.0);
    // The methods' rows come back unchanged (the closed-form floor is recomputed: its seconds differ).
    let reread = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert_eq!(reread.lines().take(3).collect::<Vec<_>>(), table.lines().take(3).collect::<Vec<_>>());
    let e = fails(&["restoration-study", "--out", dir.join("x").to_str().unwrap(), "--tasks", "inpainting"]);
    assert!(e.contains("unknown task"), "{e}");
}
