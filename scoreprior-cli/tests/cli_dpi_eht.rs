//! `scoreprior dpi --forward eht(…)` end to end on an 8×8 source: closure DPI writes its usual
//! outputs and `closures.json`, and bad closure settings are errors before any work.

mod common;

use common::{fails, ok, tmp};

#[test]
fn closure_dpi_runs_and_bad_settings_are_refused() {
    let dir = tmp("dpi-eht");
    let x = dir.join("x.npy").display().to_string();
    ok(&["make-sources", "--n", "3", "--size", "8", "--seed", "1", "--out", &x]);
    let out = dir.join("run").display().to_string();
    #[rustfmt::skip]
    ok(&["dpi", "--forward", "eht(fov=160)", "--x-true", &x, "--index", "2", "--prior", "tv", "--positive",
         "--flux-weight", "100", "--flux", "5", "--steps", "40", "--flows", "2", "--batch", "8", "--samples", "16",
         "--anneal-data", "20", "--anneal-data-schedule", "geometric", "--out", &out, "--quiet"]);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/closures.json")).unwrap()).unwrap();
    assert_eq!(j["closure_phases"].as_u64(), Some(641), "{j}");
    assert_eq!(j["log_closure_amplitudes"].as_u64(), Some(544), "{j}");
    let chi_truth = j["chi2_truth"]["phase"].as_f64().unwrap();
    assert!((0.5..1.6).contains(&chi_truth), "{j}");
    assert!(j["nxcorr_best_shift"].as_f64().unwrap() > 0.0, "{j}");
    assert!(dir.join("run/mean.npy").is_file() && dir.join("run/samples.npy").is_file());
    let mean = scoreprior::core::io::read_npy(dir.join("run/mean.npy")).unwrap();
    assert!(mean.data.iter().all(|v| *v > 0.0), "positive images");
    // The mean and std also as FITS images with the sky header.
    let fits = scoreprior::core::io::read_fits_image(dir.join("run/mean.fits")).unwrap();
    assert_eq!(fits.data, mean.data);
    assert_eq!(fits.get("BUNIT"), Some("JY/PIXEL"));
    assert!(dir.join("run/std.fits").is_file());

    // eht-imaging's start (a Gaussian of the target flux) and the MAP warm start from it.
    let warm = dir.join("warm").display().to_string();
    #[rustfmt::skip]
    ok(&["dpi", "--forward", "eht(fov=160)", "--x-true", &x, "--index", "2", "--prior", "tv", "--positive",
         "--flux-weight", "100", "--flux", "5", "--init-gaussian", "60", "--map-steps", "100", "--map-rounds", "2",
         "--steps", "2", "--flows", "2", "--batch", "4", "--samples", "8", "--out", &warm, "--quiet"]);
    let map = scoreprior::core::io::read_npy(dir.join("warm/map.npy")).unwrap();
    assert_eq!(map.data.len(), 64);
    let costs: Vec<f64> = std::fs::read_to_string(dir.join("warm/map_losses.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    // Two rounds, each logging its start; the best cost of each round never rises within it,
    // and the warm start ends far below where it began.
    assert!(costs.len() > 10 && costs.last().unwrap() < &(1e-2 * costs[0]), "{:?}", &costs[..5]);
    // With eht(…) and a MAP warm start the flow starts as the Laplace approximation there
    // (`--laplace auto`), recorded in the manifest and described in laplace.json.
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("warm/laplace.json")).unwrap()).unwrap();
    assert!(info["clipped"].as_u64().unwrap() <= 64 && info["max_eigenvalue"].as_f64().unwrap() > 0.0, "{info}");
    let sd = scoreprior::core::io::read_npy(dir.join("warm/laplace_std.npy")).unwrap();
    assert!(sd.data.len() == 64 && sd.data.iter().all(|v| v.is_finite() && *v > 0.0));
    let manifest = std::fs::read_to_string(dir.join("warm/run.json")).unwrap();
    assert!(manifest.contains("\"laplace\": true") || manifest.contains("\"laplace\":true"), "{manifest}");
    // Resumed, the run trains on under the map it wrote (read back, not recomputed: the
    // Laplace description is not rewritten and the factor's file is unchanged), and its
    // training time counts the first session's steps as well.
    let (info_before, factor_before) = (
        std::fs::read(dir.join("warm/laplace.json")).unwrap(),
        std::fs::read(dir.join("warm/flow_factor.npy")).unwrap(),
    );
    std::fs::write(dir.join("warm/laplace.json"), b"{\"marker\": 1}").unwrap();
    #[rustfmt::skip]
    ok(&["dpi", "--forward", "eht(fov=160)", "--x-true", &x, "--index", "2", "--prior", "tv", "--positive",
         "--flux-weight", "100", "--flux", "5", "--init-gaussian", "60", "--map-steps", "100", "--map-rounds", "2",
         "--steps", "4", "--flows", "2", "--batch", "4", "--samples", "8", "--out", &warm, "--quiet", "--resume"]);
    assert_eq!(std::fs::read(dir.join("warm/laplace.json")).unwrap(), b"{\"marker\": 1}", "not recomputed");
    assert_eq!(std::fs::read(dir.join("warm/flow_factor.npy")).unwrap(), factor_before);
    std::fs::write(dir.join("warm/laplace.json"), info_before).unwrap();
    let losses = std::fs::read_to_string(dir.join("warm/losses.csv")).unwrap();
    assert_eq!(losses.lines().count(), 5, "{losses}");

    let o = dir.join("bad").display().to_string();
    let run = |extra: &[&str]| {
        let mut a =
            vec!["dpi", "--forward", "eht(fov=160)", "--x-true", &x, "--prior", "tv", "--steps", "2", "--out", &o];
        a.extend_from_slice(extra);
        fails(&a)
    };
    assert!(run(&["--flux-weight=-1"]).contains("--flux-weight"));
    assert!(run(&["--laplace", "on"]).contains("--laplace"));
    assert!(run(&["--map-steps", "5", "--laplace-scale", "0"]).contains("--laplace-scale"));
    assert!(run(&["--flux-weight", "1"]).contains("--flux"));
    // A name outside `--data`'s or `--anneal-data-schedule`'s is a usage error of the command
    // line (scoreprior-cli/tests/dpi_cli.rs, `bad_inputs_are_clear_errors`).
    assert!(run(&["--positive", "--init-level=-0.1"]).contains("--init-level"));
    assert!(run(&["--init-gaussian", "60"]).contains("--flux"));
    assert!(run(&["--init-gaussian=-5", "--flux", "5"]).contains("--init-gaussian"));
    assert!(run(&["--init-image", "missing.npy"]).contains("--init-image"));
    assert!(run(&["--map-steps", "5", "--map-rounds", "0"]).contains("map_warm_start"));
    assert!(run(&["--anneal-data", "5", "--anneal-data-schedule", "geometric", "--anneal-data-from", "0"])
        .contains("geometric"));
    // The 16×16 Gaussian prior on the 8×8 eht grid.
    #[rustfmt::skip]
    let e = fails(&["dpi", "--forward", "eht(fov=160)", "--x-true", &x, "--prior", "gaussian", "--steps", "2", "--out", &o]);
    assert!(e.contains("prior") && e.contains("256") && e.contains("8x8"), "{e}");
    // --data on a forward model that is not eht; a --y that is not this coverage's visibilities.
    let y = dir.join("y.npy");
    scoreprior::core::io::write_npy(&y, &[5], &[0.0; 5]).unwrap();
    #[rustfmt::skip]
    let e = fails(&["dpi", "--forward", "denoising", "--x-true", &x, "--data", "visibilities", "--steps", "2", "--out", &o]);
    assert!(e.contains("--data"), "{e}");
    #[rustfmt::skip]
    let e = fails(&["dpi", "--forward", "eht(fov=160)", "--y", y.to_str().unwrap(), "--size", "8", "--prior", "tv", "--steps", "2", "--out", &o]);
    assert!(e.contains("--y") && e.contains("visibilities"), "{e}");
    assert!(!dir.join("bad/run.json").exists());
}
