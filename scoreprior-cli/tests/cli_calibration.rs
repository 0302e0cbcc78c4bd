//! `calibration-study`: bad settings are refused before any run, naming the flag; a tiny real EHT
//! study writes every file with coverages in [0, 1], non-decreasing in the level; a rerun reads
//! the runs back, and other settings are refused, naming the first differing key.

mod common;

use common::{fails, fails_saying, tmp};
use scoreprior::experiment::MapWarmStart;
use scoreprior_cli::studies::calibration::{self, CalibrationSettings, CoverageSummary};

#[test]
fn bad_settings_are_refused_before_any_run() {
    let dir = tmp("calibration-flags");
    let out = dir.join("study");
    let o = out.to_str().unwrap();
    let fmnist = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/ncsnpp_fmnist16/ema.safetensors");
    for (problem, args, want) in [
        ("eht", &["--n", "0"][..], "--n"),
        ("eht", &["--levels", "0,0.5"][..], "--levels"),
        ("eht", &["--levels", "0.5,1.2"][..], "--levels"),
        ("eht", &["--levels", "0.5,NaN"][..], "--levels"),
        ("eht", &["--steps", "0"][..], "--steps"),
        ("eht", &["--batch", "0"][..], "--batch"),
        ("eht", &["--samples", "0"][..], "--samples"),
        ("eht", &["--lr", "0"][..], "--lr"),
        ("eht", &["--prior", fmnist][..], "--prior"),
        ("eht", &["--prior", "no/such/prior.safetensors"][..], "--prior"),
        ("denoising", &["--n", "17"][..], "--n"),
        ("denoising", &["--n", "0"][..], "--n"),
    ] {
        fails_saying(&["calibration-study", "--problem", problem, "--out", o], args, want);
        assert!(!out.exists(), "{args:?}: nothing may be written");
    }
    // The wrong grid is named as such.
    let e = fails(&["calibration-study", "--problem", "eht", "--out", o, "--prior", fmnist]);
    assert!(e.contains("16×16") && e.contains("32×32"), "{e}");
}

/// Two sources of seed 1,000,000 (a crescent, then blobs: one run in the ring coverage, one left
/// out), 20 DPI steps of batch 4 after a 20-iteration MAP warm start, 32 samples: not a
/// calibrated posterior, but every measure and file. No Laplace start: its Hessian takes 1,025
/// gradient evaluations of the 32×32 prior (about 50 s a run here).
fn tiny() -> CalibrationSettings {
    CalibrationSettings {
        n: 2,
        steps: 20,
        batch: 4,
        samples: 32,
        map: MapWarmStart { iterations: 20, rounds: 1, ..Default::default() },
        laplace: None,
        ..CalibrationSettings::eht()
    }
}

#[test]
fn a_tiny_eht_study_writes_its_files_and_resumes() {
    let dir = tmp("calibration-eht");
    let out = dir.join("study");
    let s = tiny();
    let t0 = std::time::Instant::now();
    let report = calibration::run(&s, &out, &mut |m| eprintln!("{m}")).unwrap();
    let first = t0.elapsed().as_secs_f64();
    report.write(&out).unwrap();
    for f in ["table.csv", "table.md", "coverage.json", "coverage.svg", "coverage.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    for run in ["eht-0", "eht-1"] {
        for f in ["row.json", "settings.json", "samples.npy", "mean.npy", "std.npy", "map.npy", "metrics.json"] {
            assert!(out.join(run).join(f).is_file(), "{run}/{f}");
        }
    }
    assert_eq!(report.rows.len(), 2);
    let summary: CoverageSummary =
        serde_json::from_str(&std::fs::read_to_string(out.join("coverage.json")).unwrap()).unwrap();
    assert_eq!(summary, report.summary);
    assert_eq!(summary.runs, 2);
    assert_eq!(summary.ring_runs + summary.ring_excluded, 2);
    let levels: Vec<f64> = summary.levels.iter().map(|l| l.level).collect();
    assert_eq!(levels, s.levels);
    let unit = |v: f64| (0.0..=1.0).contains(&v);
    for r in &report.rows {
        assert!(r.pixel_coverage.iter().all(|&c| unit(c)), "{r:?}");
        assert!(r.pixel_coverage.windows(2).all(|w| w[0] <= w[1]), "coverage falls with the level: {r:?}");
        assert!(unit(r.within_2std) && r.std_rel > 0.0 && r.samples_used == 32, "{r:?}");
        assert!(r.chi2_phase.is_some_and(|c| c > 0.0) && r.offset_uas.is_some(), "{r:?}");
        assert!(r.source_coverage.len() == 5 && r.source_coverage.iter().all(|&c| unit(c)), "{r:?}");
        if let Some(g) = &r.ring {
            assert_eq!(g.diameter.len(), if g.fitted > 0 { 5 } else { 0 }, "{r:?}");
            for k in 1..g.diameter.len() {
                // Nested intervals: covered at a level, covered at every higher one.
                for m in 0..3 {
                    assert!(!g.inside(k - 1)[m] || g.inside(k)[m], "{r:?}");
                }
            }
        }
    }
    for l in &summary.levels {
        assert!(unit(l.pixels_mean) && unit(l.pixels_min) && l.pixels_min <= l.pixels_mean, "{l:?}");
        for v in [l.ring_diameter, l.ring_width, l.ring_position_angle].into_iter().flatten() {
            assert!(unit(v), "{l:?}");
        }
    }
    assert!(summary.levels.windows(2).all(|w| w[0].pixels_mean <= w[1].pixels_mean), "{summary:?}");
    let md = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert_eq!(md.lines().count(), 2 + 2 + 1, "{md}");
    assert!(md.contains("| eht-0 |") && md.contains("mean of 2"), "{md}");
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 + 1, "{csv}");
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eht-1/settings.json")).unwrap()).unwrap();
    assert_eq!(settings["steps"], 20);
    assert_eq!(settings["noise_seed"], 1);
    assert_eq!(settings["source_seed"], 1_000_000);
    assert_eq!(settings["prior"], "assets/ncsnpp_sources32/ema.safetensors");

    // The same settings: read back, not rerun.
    let t1 = std::time::Instant::now();
    let again = calibration::run(&s, &out, &mut |m| assert!(!m.contains("DPI"), "reran: {m}")).unwrap();
    let second = t1.elapsed().as_secs_f64();
    assert_eq!(again, report);
    assert!(second < first / 2.0, "read back in {second:.1} s, first run {first:.1} s");

    // Other steps: refused, naming the folder and the key, and nothing changed.
    let before = std::fs::read(out.join("eht-0/row.json")).unwrap();
    let e = calibration::run(&CalibrationSettings { steps: 21, ..tiny() }, &out, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("`steps`") && e.contains("eht-0"), "{e}");
    assert_eq!(std::fs::read(out.join("eht-0/row.json")).unwrap(), before);
    // So are other levels (the measures depend on them).
    let e = calibration::run(&CalibrationSettings { levels: vec![0.5, 0.9], ..tiny() }, &out, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("`levels`"), "{e}");
    // The command line refuses the folder too (its defaults, a MAP warm start of 5 × 300 and the
    // Laplace start, are not these settings) and writes nothing.
    let e = common::bin(&[
        "calibration-study",
        "--problem",
        "eht",
        "--out",
        out.to_str().unwrap(),
        "--n",
        "3",
        "--steps",
        "20",
        "--batch",
        "4",
        "--samples",
        "32",
    ]);
    assert_eq!(e.status.code(), Some(1));
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(err.contains("`laplace`") && err.contains("eht-0") && err.contains("other settings"), "{err}");
    assert!(!out.join("eht-2").exists());
    assert_eq!(std::fs::read(out.join("eht-0/row.json")).unwrap(), before);
    eprintln!("first run {first:.1} s, read back {second:.2} s");
}

/// `--parametric-only` on the first three sources (a crescent, blobs, a ring): the blob mixture
/// has no parametric family and is left out; the others get their rows, the sampler's
/// diagnostics and the parameters' intervals, `table.md` and `parametric.json`, and no DPI run.
/// A rerun reads them back; other sampler settings are refused, naming the key.
#[test]
fn the_parametric_reference_alone_writes_its_rows_and_resumes() {
    use scoreprior_cli::studies::calibration::ParametricReference;
    use scoreprior_core::forward::interferometry::McmcSettings;
    let dir = tmp("calibration-parametric");
    let out = dir.join("study");
    let reference = |steps: usize| ParametricReference {
        mcmc: McmcSettings { chains: 2, warmup: 300, steps, candidates: 16, seed: 0 },
        only: true,
    };
    let s = CalibrationSettings { n: 3, samples: 64, parametric: Some(reference(200)), ..CalibrationSettings::eht() };
    let report = calibration::run(&s, &out, &mut |m| eprintln!("{m}")).unwrap();
    report.write(&out).unwrap();
    assert!(report.rows.is_empty() && !out.join("eht-0").exists(), "no DPI run");
    let p = report.parametric.as_ref().unwrap();
    let runs: Vec<&str> = p.rows.iter().map(|r| r.run.as_str()).collect();
    assert_eq!(runs, ["eht-0-parametric", "eht-2-parametric"]);
    for (r, (family, dim)) in p.rows.iter().zip([("crescent", 6), ("ring", 4)]) {
        let m = r.mcmc.as_ref().unwrap();
        assert_eq!((m.family.as_str(), m.parameters.len(), m.acceptance.len()), (family, dim, 2), "{r:?}");
        assert!(m.acceptance.iter().all(|a| (0.0..=1.0).contains(a)) && m.evaluations >= 2 * 500, "{m:?}");
        assert_eq!(r.samples_used, 64);
        assert!(r.source_coverage.len() == 5 && r.source_coverage.windows(2).all(|w| w[0] <= w[1]), "{r:?}");
        // The draws are drawn at the truth's offset: the alignment moves it by under a pixel.
        let (e, n) = r.offset_uas.unwrap();
        assert!(e.hypot(n) < 5.0, "{r:?}");
        assert!(r.ring.is_some() && r.chi2_phase.is_some(), "{r:?}");
        assert!(out.join(&r.run).join("settings.json").is_file() && out.join(&r.run).join("row.json").is_file());
    }
    let md = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(md.contains("Parametric reference") && md.contains("| eht-2-parametric | ring |"), "{md}");
    assert!(out.join("parametric.json").is_file() && !out.join("table.csv").exists());

    let again =
        calibration::run(&s, &out, &mut |m| assert!(!m.contains("parametric posterior"), "reran: {m}")).unwrap();
    assert_eq!(again, report);
    let other = CalibrationSettings { parametric: Some(reference(201)), ..s.clone() };
    let e = calibration::run(&other, &out, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("`mcmc.steps`") && e.contains("eht-0-parametric"), "{e}");
}
