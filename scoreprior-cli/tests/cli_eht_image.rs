//! `scoreprior eht-image` on the release's April 11 files (both bands, in
//! `scoreprior-core/tests/data/eht-m87/`), briefly trained: it images the files' own closure
//! data after the collaboration's pre-processing, writes FITS in Jy holding the compact flux,
//! a sample cube, the ring measures' intervals and, beside a reference, the comparison; bad
//! input is refused before any training, naming the flag or file.

mod common;

use common::{fails, ok, tmp};

fn data(band: &str) -> String {
    format!("{}/scoreprior-core/tests/data/eht-m87/SR1_M87_2017_101_{band}_hops_netcal_StokesI.uvfits", common::ROOT)
}

#[test]
fn eht_image_writes_the_sky_outputs_of_the_files_own_data() {
    let dir = tmp("eht-image");
    let out = dir.join("m87").display().to_string();
    let (lo, hi) = (data("lo"), data("hi"));
    #[rustfmt::skip]
    let text = ok(&["eht-image", "--uvfits", &lo, "--uvfits", &hi, "--out", &out, "--restarts", "1", "--",
        "--steps", "3", "--map-steps", "30", "--map-rounds", "1", "--laplace", "off", "--batch", "4",
        "--flows", "2", "--samples", "8", "--quiet"]);
    assert!(
        text.contains("diameter") && text.contains("closure χ²") && text.contains("normalised amplitudes"),
        "{text}"
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("m87/eht_image.json")).unwrap()).unwrap();
    // The closure sets of the pre-processed April 11 data: ehtim's 217 and 230
    // (`preprocess_m87.rs`) less those through the 5 visibilities of SNR < 1 (`--snr-cut 1`).
    assert_eq!(j["closure_counts"], serde_json::json!([212, 225]), "{j}");
    assert!(j["forward"].as_str().unwrap().contains("pipeline=eht2017, zbl=0.6, snrcut=1"), "{j}");
    let mean = scoreprior::core::io::read_fits_image(dir.join("m87/mean.fits")).unwrap();
    assert_eq!((mean.height, mean.width, mean.get("OBJECT")), (32, 32, Some("M87")));
    let flux: f64 = mean.data.iter().sum();
    assert!((flux - 0.6).abs() < 1e-9, "the mean holds the compact flux: {flux}");
    // A cube of the kept samples in Jy: header, then 8 planes of 32 × 32 doubles.
    let cube = std::fs::read(dir.join("m87/samples.fits")).unwrap();
    assert!(String::from_utf8_lossy(&cube[..2880]).contains("NAXIS3  =                    8"));
    assert_eq!(cube.len(), 2880 + (8 * 32 * 32 * 8usize).div_ceil(2880) * 2880);
    let samples = scoreprior::core::io::read_npy(dir.join("m87/samples_jy.npy")).unwrap();
    assert_eq!(samples.shape, [8, 1, 32, 32]);
    let r = &j["ring_samples"];
    assert!(r["fitted"][0].as_u64().unwrap() >= 1, "{j}");
    let d = &r["diameter"];
    let (lo95, med, hi95) =
        (d["p95"][0].as_f64().unwrap(), d["median"].as_f64().unwrap(), d["p95"][1].as_f64().unwrap());
    assert!(lo95 <= med && med <= hi95 && (10.0..100.0).contains(&med), "{j}");
    // Normalised amplitudes (each visibility over its scan's AA–AP one) are imaged too.
    assert!(j["amplitude_ratios"].as_u64().unwrap() > 300, "{j}");
    for kind in ["phase", "log_amp", "amp_ratio"] {
        let chi = j["chi2_mean"][kind].as_f64().unwrap();
        assert!(chi.is_finite() && chi > 0.0, "{kind}: {j}");
    }

    // Against a reference image: its own mean, regridded onto the same grid, correlates
    // almost perfectly and has nearly the same ring.
    let again = dir.join("again").display().to_string();
    let reference = dir.join("m87/mean.fits").display().to_string();
    #[rustfmt::skip]
    ok(&["eht-image", "--uvfits", &lo, "--uvfits", &hi, "--out", &again, "--reference", &reference, "--restarts", "1", "--",
        "--steps", "3", "--map-steps", "30", "--map-rounds", "1", "--laplace", "off", "--batch", "4",
        "--flows", "2", "--samples", "8", "--quiet"]);
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("again/comparison.json")).unwrap()).unwrap();
    // Same seed, same data: the same run, so the reference is this mean (smoothed by the
    // regridding's sub-pixel sampling).
    assert!(c["nxcorr_blurred"].as_f64().unwrap() > 0.99, "{c}");
    let (dr, dm) = (c["ring_reference"]["diameter"].as_f64().unwrap(), c["ring_mean"]["diameter"].as_f64().unwrap());
    assert!((dr - dm).abs() < 3.0, "{c}");
    assert!((c["reference_flux_jy"].as_f64().unwrap() - 0.6).abs() < 0.01, "{c}");
    assert!(dir.join("again/comparison.png").is_file());
    // A reference inside --out is refused before the work: the run would replace it.
    let e = fails(&[
        "eht-image",
        "--uvfits",
        &lo,
        "--uvfits",
        &hi,
        "--out",
        &out,
        "--reference",
        &format!("{out}/mean.fits"),
    ]);
    assert!(e.contains("--reference") && e.contains("lies in --out"), "{e}");
    assert!(dir.join("m87/mean.fits").is_file());
}

#[test]
fn eht_image_pools_independent_runs_with_restarts() {
    let dir = tmp("eht-image-restarts");
    let out = dir.join("pool").display().to_string();
    let (lo, hi) = (data("lo"), data("hi"));
    #[rustfmt::skip]
    let brief = ["--steps", "3", "--map-steps", "30", "--map-rounds", "1", "--laplace", "off", "--batch", "4",
        "--flows", "2", "--samples", "8", "--quiet"];
    let args = |extra: &[&str], dpi: &[&str]| -> Vec<String> {
        let mut a: Vec<String> =
            ["eht-image", "--uvfits", &lo, "--uvfits", &hi, "--out", &out].map(String::from).into();
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push("--".into());
        a.extend(brief.iter().chain(dpi).map(|s| s.to_string()));
        a
    };
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let text = ok(&refs(&args(&["--restarts", "2"], &["--seed", "5"])));
    assert!(text.contains("run with seed 5") && text.contains("run with seed 6"), "{text}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("pool/eht_image.json")).unwrap()).unwrap();
    let runs = j["restarts"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["seed"].as_u64().unwrap()).collect::<Vec<_>>(), [5, 6], "{j}");
    // Each run's own measures are of its own 8 samples, not of the pool.
    for r in runs {
        assert_eq!(r["ring_samples"]["fitted"][1], 8, "{r}");
    }
    // Each run is a dpi run folder of its own, with its own seed and MAP image.
    for k in 0..2 {
        let run: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(format!("pool/restart-{k}/run.json"))).unwrap())
                .unwrap();
        assert_eq!(run["seed"], 5 + k, "{run}");
    }
    let map = |k: usize| scoreprior::core::io::read_npy(dir.join(format!("pool/restart-{k}/map.npy"))).unwrap().data;
    assert_ne!(map(0), map(1), "different seeds start from different MAP images");
    // The pool holds both runs' samples: 2 × 8 planes in Jy, its mean the compact flux.
    let samples = scoreprior::core::io::read_npy(dir.join("pool/samples_jy.npy")).unwrap();
    assert_eq!(samples.shape, [16, 1, 32, 32]);
    assert_eq!(j["samples"], 16, "{j}");
    let mean = scoreprior::core::io::read_fits_image(dir.join("pool/mean.fits")).unwrap();
    assert!((mean.data.iter().sum::<f64>() - 0.6).abs() < 1e-9);
    assert!(j["seconds_training"].as_f64().unwrap() > 0.0, "{j}");
    // A single run into a folder of pooled runs, and pooled runs into a single run's folder,
    // are refused before any work; so are bad counts and seeds.
    let e = fails(&refs(&args(&["--restarts", "1"], &[])));
    assert!(e.contains("--restarts") && e.contains("restart-0"), "{e}");
    let single = dir.join("single").display().to_string();
    ok(&refs(
        &args(&["--restarts", "1"], &[])
            .into_iter()
            .map(|a| if a == out { single.clone() } else { a })
            .collect::<Vec<_>>(),
    ));
    let e = fails(&refs(
        &args(&["--restarts", "2"], &[])
            .into_iter()
            .map(|a| if a == out { single.clone() } else { a })
            .collect::<Vec<_>>(),
    ));
    assert!(e.contains("--restarts 2") && e.contains("single run"), "{e}");
    let fresh = dir.join("fresh").display().to_string();
    let with_out = |v: Vec<String>| v.into_iter().map(|a| if a == out { fresh.clone() } else { a }).collect::<Vec<_>>();
    for (extra, dpi, flag) in [
        (&["--restarts", "0"][..], &[][..], "--restarts 0"),
        (&["--restarts", "65"][..], &[][..], "--restarts 65"),
        (&["--restarts", "2"][..], &["--seed", "x"][..], "--seed x"),
    ] {
        let e = fails(&refs(&with_out(args(extra, dpi))));
        assert!(e.contains(flag), "{flag}: {e}");
    }
    assert!(!dir.join("fresh").exists(), "nothing written");
}

#[test]
fn eht_image_refuses_bad_input_before_any_work() {
    let dir = tmp("eht-image-bad");
    let out = dir.join("o").display().to_string();
    let (lo, hi) = (data("lo"), data("hi"));
    let e = fails(&["eht-image", "--uvfits", "no/such.uvfits", "--out", &out]);
    assert!(e.contains("no/such.uvfits"), "{e}");
    let e = fails(&["eht-image", "--uvfits", &lo, "--out", &out, "--", "--forward", "eht"]);
    assert!(e.contains("--forward") && e.contains("--uvfits"), "{e}");
    let e = fails(&["eht-image", "--uvfits", &lo, "--out", &out, "--compact-flux", "0"]);
    assert!(e.contains("--compact-flux"), "{e}");
    let e = fails(&["eht-image", "--uvfits", &lo, "--out", &out, "--", "--steps", "many"]);
    assert!(e.contains("--steps"), "{e}");
    // A truncated file, and a band of another day.
    let cut = dir.join("cut.uvfits");
    let bytes = std::fs::read(&hi).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&["eht-image", "--uvfits", cut.to_str().unwrap(), "--out", &out]);
    assert!(e.contains("cut.uvfits"), "{e}");
    let ehtim = "tests/data/ehtim_crescent_obs.txt";
    let e = fails(&["eht-image", "--uvfits", &hi, "--uvfits", ehtim, "--out", &out]);
    assert!(e.contains("ehtim_crescent_obs.txt") && e.contains("only bands of one source"), "{e}");
    let e = fails(&["eht-image", "--uvfits", &lo, "--out", &out, "--reference", "no/ref.fits"]);
    assert!(e.contains("--reference") && e.contains("no/ref.fits"), "{e}");
    assert!(!dir.join("o").exists(), "nothing written");
    let e = fails(&["m87-study", "--data", "no/such/dir", "--out", &out]);
    assert!(e.contains("--data") && e.contains("no/such/dir"), "{e}");
    let e = fails(&["m87-study", "--data", "scoreprior-core/tests/data/eht-m87", "--days", "11", "--out", &out]);
    assert!(e.contains("--days 11"), "{e}");
}
