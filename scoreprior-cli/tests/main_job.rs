//! The main job (`scoreprior` with no arguments, what `cargo run --release` runs), shortened
//! through its environment variables `SCOREPRIOR_MAIN_JOB_STEPS` / `SCOREPRIOR_MAIN_JOB_BATCH`
//! and otherwise unchanged: the same problem (σ = 0.2 denoising of Fashion-MNIST test image 0,
//! seed 0), prior (the shipped NCSN++ under the DSM surrogate with noise-level continuation
//! over half the steps) and estimator, so the test cannot drift from the job it stands for.
//!
//! 400 steps of batch 4 is the shortest run measured to land where the full job does (1500
//! steps of batch 16: 23.41 dB, 95.7 % of the pixels within 2 std, README "The main job"):
//!
//! | steps × batch | DPI mean PSNR | 2-std coverage | wall (2 shared cores, load 2–7) |
//! |---|---:|---:|---:|
//! | 200 × 4 | 16.97 dB | 52.7 % | 28 s |
//! | 300 × 4 | 19.85 dB | 82.0 % | 44 s |
//! | 350 × 4 | 22.83 dB | 91.0 % | 56 s |
//! | **400 × 4** | **23.38 dB** | **93.0 %** | **47–66 s** (the whole test) |
//! | 300 × 8 | 23.01 dB | 93.4 % | 75 s |
//! | 250 × 16 | 21.36 dB | 87.1 % | 105 s |
//!
//! Wiener on the same y: 20.09 dB, Tweedie 24.40 dB. At 300 steps of batch 4 or fewer the ramp is
//! too short and the mean stays under the Wiener filter. The run is deterministic for a given
//! machine (two runs agree bit for bit); with one thread instead of two the PSNR moved by 1e-7 dB.

use std::path::Path;
use std::process::Command;

mod common;
use common::tmp;

/// The shortened size: the main job's flags with these steps and batch.
const STEPS: &str = "400";
const BATCH: &str = "4";

/// Runs `scoreprior` with no arguments in `cwd` with the main job's size variables set to
/// `steps` and `batch` (`None`: removed).
fn main_job(cwd: &Path, steps: Option<&str>, batch: Option<&str>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_scoreprior"));
    c.current_dir(cwd);
    for (var, v) in [("SCOREPRIOR_MAIN_JOB_STEPS", steps), ("SCOREPRIOR_MAIN_JOB_BATCH", batch)] {
        match v {
            Some(v) => c.env(var, v),
            None => c.env_remove(var),
        };
    }
    c.output().expect("run scoreprior")
}

/// A working folder that looks like the repository root to the main job: `assets` links to
/// the shipped assets, and `out/main-dpi` is written inside the scratch folder, never into the
/// repository's own `out/`.
fn work_dir(name: &str) -> common::Scratch {
    let dir = tmp(name);
    let assets = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("assets");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&assets, dir.join("assets")).expect("link assets");
    // Elsewhere the job finds `assets/…` through its fallback to the source tree.
    #[cfg(not(unix))]
    let _ = assets;
    dir
}

fn number(m: &serde_json::Value, path: &[&str]) -> f64 {
    let v = path.iter().fold(m, |v, k| &v[*k]);
    let x = v.as_f64().unwrap_or_else(|| panic!("metrics.json: {} is {v}, not a number", path.join(".")));
    assert!(x.is_finite(), "metrics.json: {} = {x}", path.join("."));
    x
}

#[test]
fn shortened_main_job_beats_wiener_with_calibrated_coverage() {
    let dir = work_dir("main-job");
    let t = std::time::Instant::now();
    let o = main_job(&dir, Some(STEPS), Some(BATCH));
    let secs = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "main job failed ({:?}):\n{stdout}\n{stderr}", o.status);
    assert_eq!(o.status.code(), Some(0));
    // The banner, with the shortened size, and the closing list of outputs.
    assert!(stdout.contains("scoreprior main job: DPI denoising (σ = 0.2) of Fashion-MNIST test image 0"), "{stdout}");
    assert!(stdout.contains(&format!("{STEPS} steps of batch {BATCH} with a 16-flow RealNVP")), "{stdout}");
    assert!(stdout.contains("outputs: out/main-dpi/"), "{stdout}");

    let out = dir.join("out/main-dpi");
    for f in
        ["metrics.json", "mean.npy", "std.npy", "samples.npy", "wiener.npy", "tweedie.npy", "losses.csv", "mean.png"]
    {
        assert!(out.join(f).is_file(), "missing out/main-dpi/{f}");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).expect("metrics.json");
    assert_eq!(m["steps"], 400);
    assert_eq!(m["samples"], 128);
    let dpi = number(&m, &["mean_metrics", "psnr"]);
    let wiener = number(&m, &["references", "wiener", "psnr"]);
    let tweedie = number(&m, &["references", "tweedie", "psnr"]);
    let naive = number(&m, &["naive_metrics", "psnr"]);
    let coverage = number(&m, &["coverage_2std"]);
    let std = number(&m, &["mean_pixel_std"]);
    for k in ["mse", "ssim"] {
        number(&m, &["mean_metrics", k]);
        number(&m, &["sample_metrics", k]);
    }
    eprintln!(
        "main job {STEPS}x{BATCH} in {secs:.1} s: DPI {dpi:.3} dB, Wiener {wiener:.3} dB, Tweedie {tweedie:.3} dB, \
         y {naive:.3} dB, 2-std coverage {coverage:.4}, mean std {std:.4}"
    );
    // The same y as the full job: its closed-form yardsticks are the README's (20.09, 24.40, 14.06 dB).
    assert!((wiener - 20.0865).abs() < 1e-3, "Wiener PSNR {wiener}");
    assert!((tweedie - 24.4019).abs() < 1e-3, "Tweedie PSNR {tweedie}");
    assert!((naive - 14.0561).abs() < 1e-3, "y PSNR {naive}");
    // DPI beats the Wiener filter by the margin the full job has (measured: 23.38 dB, +3.29 dB)
    // and stays near where it measured; it cannot beat Tweedie by much (the exact posterior
    // mean if the score were exact).
    assert!(dpi > wiener + 2.5, "DPI mean {dpi:.3} dB does not beat Wiener {wiener:.3} dB by 2.5 dB");
    assert!((22.8..24.0).contains(&dpi), "DPI mean PSNR {dpi:.3} dB, measured 23.38");
    // Calibration: measured 93.0 % of the 256 pixels within 2 std (the full job: 95.7 %), mean std 0.0376.
    assert!((0.89..=0.97).contains(&coverage), "2-std coverage {coverage}, measured 0.930");
    assert!((0.032..0.044).contains(&std), "mean posterior std {std}, measured 0.0376");
}

/// A bad size is a clean error naming the variable, before the banner and before anything is
/// written.
#[test]
fn bad_main_job_size_is_a_clean_error() {
    let dir = work_dir("main-job-bad");
    for (steps, batch, var) in [
        (Some("0"), None, "SCOREPRIOR_MAIN_JOB_STEPS"),
        (Some("ten"), None, "SCOREPRIOR_MAIN_JOB_STEPS"),
        (None, Some("-4"), "SCOREPRIOR_MAIN_JOB_BATCH"),
        (None, Some(""), "SCOREPRIOR_MAIN_JOB_BATCH"),
    ] {
        let o = main_job(&dir, steps, batch);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{steps:?} {batch:?}: an error, not a panic or a run\n{err}");
        assert!(err.contains(var) && err.contains("positive whole number"), "{err}");
        assert!(o.stdout.is_empty(), "no banner: {}", String::from_utf8_lossy(&o.stdout));
        assert!(!dir.join("out").exists(), "nothing written");
    }
}
