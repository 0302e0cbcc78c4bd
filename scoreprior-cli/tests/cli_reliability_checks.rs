//! Everything that can fail is checked before the work, in the user's terms (issue 25): the
//! noise of `eht`, the bounds of its field of view, of FITS headers and of thermal σ, source
//! names FITS cannot hold, observations without closure quantities, images the size of
//! another prior, presets inside chains, samplers that cannot run on a problem, and the data
//! of an observation file. Each test failed on the code before the fix; every run is tiny.

use std::path::{Path, PathBuf};
mod common;

use common::{bin, fails, ok, tmp};
use scoreprior::core::forward::{EhtSettings, ForwardModel};
use scoreprior::core::io::{fits_image_bytes, read_fits_image, read_npy, write_npy, FitsSky};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The ehtim export shipped with the tests (81 visibilities of a crescent, 8 stations).
fn crescent_obs() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("tests/data/ehtim_crescent_obs.txt")
}

/// The crescent export with each line passed through `edit` (`None` drops the line), in `dir`.
fn edited_obs(dir: &Path, name: &str, mut edit: impl FnMut(&str) -> Option<String>) -> PathBuf {
    let text = std::fs::read_to_string(crescent_obs()).unwrap();
    let lines: Vec<String> = text.lines().filter_map(&mut edit).collect();
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

/// `n` source images of `size`×`size` pixels (`make-sources`) in `dir/x.npy`.
fn sources(dir: &Path, size: usize) -> String {
    let x = s(&dir.join(format!("x{size}.npy")));
    ok(&["make-sources", "--n", "1", "--size", &size.to_string(), "--seed", "1", "--out", &x]);
    x
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

fn strs(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

/// The flags of a tiny DPI run (TV prior, a 2-block flow; the steps are given with them).
const TINY: [&str; 12] =
    ["--prior", "tv", "--flows", "2", "--batch", "4", "--samples", "4", "--outlier", "1e9", "--quiet", "--positive"];

// Item 1: `--noise` with eht is refused; the noise used is the interferometer's, and the
// report says so; Score-ALD takes its σ from the data, not from `--noise`.
#[test]
fn eht_noise_is_the_interferometers_own_and_the_report_says_so() {
    let dir = tmp("eht-noise");
    let x8 = sources(&dir, 8);
    for noise in ["gaussian(sigma=5)", "gaussian(sigma=0.2)"] {
        for cmd in ["dpi", "posterior"] {
            let out = dir.join(format!("refused-{cmd}"));
            let mut a = vec![cmd, "--forward", "eht(fov=160)", "--noise", noise, "--x-true", &x8, "--out"];
            let o = s(&out);
            a.push(&o);
            a.extend_from_slice(&TINY);
            a.extend_from_slice(&["--steps", "2"]);
            let e = fails(&a);
            assert!(e.contains("--noise") && e.contains("eht"), "{cmd} {noise}: {e}");
            assert!(!out.exists(), "refused before the folder is taken");
        }
    }
    // What was used: the interferometer's thermal noise, not `--noise`'s default.
    let run = dir.join("dpi");
    let mut a = vec!["dpi", "--forward", "eht(fov=160)", "--x-true", &x8, "--steps", "2"];
    let o = s(&run);
    a.extend_from_slice(&["--out", &o]);
    a.extend_from_slice(&TINY);
    ok(&a);
    let label = metrics(&run)["forward"].as_str().unwrap().to_string();
    assert!(!label.contains("gaussian(sigma"), "{label}");
    assert!(label.contains("radiometer equation") && label.contains("closure phases"), "{label}");

    // Score-ALD on eht visibilities: σ_y is the data's smallest σ, named in metrics.json.
    let x16 = sources(&dir, 16);
    let ald = dir.join("ald");
    #[rustfmt::skip]
    ok(&["posterior", "--method", "score-ald", "--forward", "eht(fov=160)", "--data", "visibilities",
         "--x-true", &x16, "--ald-levels", "2", "--ald-steps", "1", "--samples", "2", "--outlier", "1e9",
         "--out", &s(&ald), "--quiet"]);
    let model = EhtSettings::parse("eht(fov=160)").unwrap().unwrap().interferometer(16).unwrap();
    let sigma = model.visibility_model().unwrap().noise().sigma().iter().copied().fold(f64::INFINITY, f64::min);
    let label = metrics(&ald)["forward"].as_str().unwrap().to_string();
    assert!(label.contains(&format!("score-ald sigma_y = {sigma:.6e}")), "σ_y {sigma:e}: {label}");
    assert!(!label.contains("gaussian(sigma=0.2)"), "{label}");
}

// Item 2: an absurd field of view, an absurd CDELT, an absurd σ.
#[test]
fn fov_fits_header_and_thermal_sigma_are_bounded() {
    let dir = tmp("bounds");
    let x8 = sources(&dir, 8);
    let out = dir.join("m");
    let e = fails(&["measure", "--forward", "eht(fov=1e300)", "--x", &x8, "--out", &s(&out)]);
    assert!(e.contains("`fov`") && e.contains("1e300") && e.len() < 400, "{e}");
    assert!(!out.join("y.npy").exists());
    let e =
        fails(&["dpi", "--forward", "eht(fov=1e300)", "--x-true", &x8, "--out", &s(&dir.join("d")), "--prior", "tv"]);
    assert!(e.contains("`fov`"), "{e}");
    assert!(!dir.join("d").exists());

    // The FITS writer refuses pixel sizes no sky image has, and names the card.
    let sky = FitsSky {
        object: "SgrA".into(),
        pixel_rad: 1e-11,
        ra_deg: 266.4,
        dec_deg: -29.0,
        frequency_hz: 230e9,
        mjd: 57850.0,
    };
    let img = [0.5; 4];
    assert!(fits_image_bytes(&img, 2, 2, &sky).is_ok());
    for pixel_rad in [1.5e288, f64::NAN, f64::INFINITY, 1e-300, 2.0] {
        let e = fits_image_bytes(&img, 2, 2, &FitsSky { pixel_rad, ..sky.clone() }).unwrap_err();
        assert!(e.contains("CDELT"), "{pixel_rad:e}: {e}");
    }
    #[rustfmt::skip]
    let bad = [("FREQ", FitsSky { frequency_hz: f64::NAN, ..sky.clone() }), ("MJD", FitsSky { mjd: -1e-300, ..sky.clone() }),
               ("CRVAL2", FitsSky { dec_deg: 95.0, ..sky.clone() })];
    for (k, bad) in bad {
        assert!(fits_image_bytes(&img, 2, 2, &bad).unwrap_err().contains(k), "{k}");
    }
    // OBJECT: printable ASCII of at most 68 characters (quotes doubled).
    assert!(fits_image_bytes(&img, 2, 2, &FitsSky { object: "x".repeat(68), ..sky.clone() }).is_ok());
    for object in ["x".repeat(69), "M87★".into(), "'".repeat(35)] {
        let e = fits_image_bytes(&img, 2, 2, &FitsSky { object, ..sky.clone() }).unwrap_err();
        assert!(e.contains("OBJECT"), "{e}");
    }

    // A thermal σ of 1e-300 (χ² was NaN) is refused when the operator is built, naming the file.
    let mut first = true;
    let obs = edited_obs(&dir, "tiny-sigma.txt", |l| {
        if first && l.starts_with("02.00000000") {
            first = false;
            let mut f: Vec<String> = l.split_whitespace().map(String::from).collect();
            f[16] = "1e-300".into();
            return Some(f.join(" "));
        }
        Some(l.to_string())
    });
    let out = dir.join("sigma");
    let forward = format!("eht(obs='{}')", obs.display());
    let e = fails(&["measure", "--forward", &forward, "--x", &x8, "--out", &s(&out)]);
    assert!(e.contains("tiny-sigma.txt") && e.contains("thermal σ") && e.contains("1e-300"), "{e}");
    assert!(!out.join("y.npy").exists(), "refused before any output");
    // A Gaussian σ whose square underflows, too.
    let e = fails(&[
        "measure",
        "--forward",
        "denoising",
        "--noise",
        "gaussian(sigma=1e-300)",
        "--x",
        &x8,
        "--out",
        &s(&out),
    ]);
    assert!(e.contains("--noise") && e.contains("normal number"), "{e}");
    assert!(!out.join("y.npy").exists());
}

// Item 3: a source name FITS cannot hold is replaced (deterministically, with a note)
// before the work, and the run and its resume write their FITS files.
#[test]
fn source_names_that_fits_cannot_hold_are_sanitised_before_the_work() {
    let dir = tmp("object");
    let x8 = sources(&dir, 8);
    let name = format!("Sgr A★ {}", "and a very long description of the source".repeat(2));
    let obs = edited_obs(&dir, "named.txt", |l| {
        Some(if l.starts_with("# SRC:") { format!("# SRC: {name}") } else { l.into() })
    });
    let forward = format!("eht(obs='{}')", obs.display());
    let run = dir.join("run");
    let args = |steps: &str, resume: bool| {
        let mut a: Vec<String> =
            ["dpi", "--forward", &forward, "--data", "visibilities", "--x-true", &x8, "--out", &s(&run)]
                .iter()
                .map(|v| v.to_string())
                .collect();
        a.extend(TINY.iter().map(|v| v.to_string()));
        a.extend(["--steps".to_string(), steps.to_string(), "--checkpoint-every".into(), "1".into()]);
        if resume {
            a.push("--resume".into());
        }
        a
    };
    for (steps, resume) in [("2", false), ("3", true)] {
        let a = args(steps, resume);
        let o = bin(&strs(&a));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{a:?}: {err}");
        assert!(err.contains("FITS") && err.contains("named.txt") && err.contains("Sgr A_"), "{err}");
        let fits = read_fits_image(run.join("mean.fits")).unwrap();
        assert_eq!(fits.get("OBJECT").unwrap(), FitsSky::object_name(&name).trim_end());
        assert!(FitsSky::object_name(&name).starts_with("Sgr A_ and a very long"));
    }
}

// Item 4: an observation without closure quantities is refused when the operator is built,
// before any output, naming the file and its stations and scans.
#[test]
fn observations_without_closures_are_refused_before_any_output() {
    let dir = tmp("two-stations");
    let x8 = sources(&dir, 8);
    let obs = edited_obs(&dir, "two.txt", |l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let data = !l.starts_with('#');
        (!data || (f[2] == "ALMA" && f[3] == "APEX")).then(|| l.to_string())
    });
    let forward = format!("eht(obs='{}')", obs.display());
    let out = dir.join("m");
    let e = fails(&["measure", "--forward", &forward, "--x", &x8, "--out", &s(&out)]);
    assert!(e.contains("two.txt") && e.contains("2 station(s) with data (ALMA, APEX)"), "{e}");
    assert!(e.contains("scan(s)") && e.contains("closure"), "{e}");
    for f in ["y.npy", "uv.npy"] {
        assert!(!out.join(f).exists(), "{f} written before the refusal");
    }
    let e = fails(&["dpi", "--forward", &forward, "--x-true", &x8, "--prior", "tv", "--out", &s(&dir.join("d"))]);
    assert!(e.contains("two.txt") && e.contains("closure"), "{e}");
    assert!(!dir.join("d").exists());
}

// Item 5: an image of another size than the prior's is named as such, before the memory
// estimates that follow from it.
#[test]
fn image_and_prior_sizes_are_compared_first() {
    let dir = tmp("sizes");
    let y = dir.join("y.npy");
    write_npy(&y, &[4], &[0.0; 4]).unwrap();
    let out = dir.join("o");
    let e = fails(&["dpi", "--y", &s(&y), "--size", "512", "--out", &s(&out)]);
    assert!(e.contains("--size 512") && e.contains("16x16") && e.contains("assets/gaussian16/mean.npy"), "{e}");
    assert!(!e.contains("GiB") && !e.contains("posterior.flows"), "{e}");
    assert!(!out.exists());
    let x8 = sources(&dir, 8);
    let e = fails(&["posterior", "--method", "dps", "--x-true", &x8, "--out", &s(&out)]);
    assert!(e.contains("--x-true") && e.contains("8x8") && e.contains("16x16 (256 pixels)"), "{e}");
    assert!(!out.exists());
}

// Item 6: a preset inside a chain.
#[test]
fn a_preset_in_a_chain_is_named_as_a_preset() {
    let dir = tmp("preset-chain");
    let x16 = sources(&dir, 16);
    let chain = "eht(fov=160)|scale(factor=2)";
    let e = fails(&["dpi", "--forward", chain, "--x-true", &x16, "--out", &s(&dir.join("d"))]);
    assert!(e.contains("`eht` is a preset") && e.contains("stand alone"), "{e}");
    assert!(!e.contains("unknown primitive"), "{e}");
    let e = fails(&["measure", "--forward", chain, "--x", &x16, "--out", &s(&dir.join("m"))]);
    assert!(e.contains("`eht` is a preset"), "{e}");
}

// Item 7: a sampler that cannot use the forward model, and a step that diverges, are refused
// before --out is taken (so no `run.json` stays `running`).
#[test]
fn samplers_are_checked_against_the_problem_before_out_is_taken() {
    let dir = tmp("sampler-checks");
    let x = "assets/fashion16_test.npy";
    let out = dir.join("sde");
    #[rustfmt::skip]
    let e = fails(&["posterior", "--method", "sde-proj", "--forward", "fft2 | magnitude", "--x-true", x,
                    "--sampler-steps", "3", "--samples", "2", "--out", &s(&out)]);
    assert!(e.contains("sde-proj") && e.contains("linear"), "{e}");
    assert!(!out.exists(), "refused before the folder is taken");
    let out = dir.join("dps");
    #[rustfmt::skip]
    let e = fails(&["posterior", "--method", "dps", "--zeta", "1e300", "--x-true", x, "--sampler-steps", "3",
                    "--samples", "2", "--out", &s(&out)]);
    assert!(e.contains("zeta") && e.contains("1e300") && e.len() < 400, "{e}");
    assert!(!out.exists(), "refused before the folder is taken");
}

// Item 8: with `eht(obs=FILE)` the data are the file's own visibilities; --x-true serves the
// metrics only (it used to be simulated on the file's coverage instead).
#[test]
fn an_observation_files_data_are_the_measurement() {
    let dir = tmp("obs-data");
    let x8 = sources(&dir, 8);
    let obs = crescent_obs();
    let forward = format!("eht(obs='{}')", obs.display());
    let file_vis = scoreprior::core::forward::interferometry::read_ehtim_txt(&obs).unwrap().visibilities();
    // The truth's own visibilities are far from the file's (another source).
    let eht = EhtSettings::parse(&forward).unwrap().unwrap().interferometer(8).unwrap();
    let truth = read_npy(&x8).unwrap().data;
    let simulated = eht.visibility_model().unwrap().forward(&truth).unwrap();
    let gap = simulated.iter().zip(&file_vis).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(gap > 0.1, "{gap}");
    let run = dir.join("run");
    let mut a = vec!["dpi", "--forward", &forward, "--data", "visibilities", "--x-true", &x8, "--steps", "2"];
    let o = s(&run);
    a.extend_from_slice(&["--out", &o]);
    a.extend_from_slice(&TINY);
    ok(&a);
    assert_eq!(read_npy(run.join("y.npy")).unwrap().data, file_vis);
    let m = metrics(&run);
    assert!(m["mean_metrics"].is_object(), "the truth still gives metrics: {m}");
    assert!(m["forward"].as_str().unwrap().contains("ehtim_crescent_obs.txt"), "{m}");
    // Without a truth: the file alone is the data, the grid from --size.
    let bare = dir.join("bare");
    let mut a = vec!["dpi", "--forward", &forward, "--data", "visibilities", "--size", "8", "--steps", "2"];
    let o = s(&bare);
    a.extend_from_slice(&["--out", &o]);
    a.extend_from_slice(&TINY);
    ok(&a);
    assert_eq!(read_npy(bare.join("y.npy")).unwrap().data, file_vis);
}
