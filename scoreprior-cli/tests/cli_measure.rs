//! End-to-end tests of `scoreprior measure`: the binary simulates measurements of small
//! images and its files are checked against the library (same seed, same numbers) and
//! against the adjoint; bad inputs give clear errors.

use std::path::PathBuf;
mod common;

use common::{fails, ok, tmp};

use rand::SeedableRng;
use scoreprior::core::forward::{parse_model, ForwardModel};
use scoreprior::core::io::{read_npy, write_npy};

fn image(dir: &std::path::Path, h: usize, w: usize) -> PathBuf {
    let x: Vec<f64> = (0..h * w).map(|i| ((i * 7) % 11) as f64 / 10.0).collect();
    let p = dir.join("x.npy");
    write_npy(&p, &[1, h, w], &x).unwrap();
    p
}

#[test]
fn blur_chain_writes_the_library_measurement_and_its_adjoint() {
    let d = tmp("blur");
    let x = image(&d, 16, 16);
    let chain = "gaussian_blur(sigma=1.5, size=5) | subsample(factor=2)";
    let out = ok(&[
        "measure",
        "--forward",
        chain,
        "--noise",
        "gaussian(sigma=0.05)",
        "--x",
        x.to_str().unwrap(),
        "--seed",
        "3",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(out.contains("subsample(factor=2)"), "{out}");
    let y = read_npy(d.join("y.npy")).unwrap();
    assert_eq!(y.shape, [1, 1, 8, 8]);
    // Same draw as the library with the same seed (ChaCha8).
    let m = parse_model(chain, "gaussian(sigma=0.05)", [1, 16, 16]).unwrap();
    let xs = read_npy(&x).unwrap().data;
    let want = m.simulate(&xs, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3)).unwrap();
    assert_eq!(y.data, want);
    let aty = read_npy(d.join("aty.npy")).unwrap();
    assert_eq!(aty.data, m.adjoint(&y.data).unwrap());
    assert!(d.join("aty.png").exists());
}

/// Each preset is the chain and noise its documentation states: `y.npy` is the library's
/// draw of that model with the default seed 0, bit for bit, and `aty.npy` its adjoint; for
/// `eht`, the visibility model of the EHT 2017 array observing Sgr A* with the requested
/// cadence, and `uv.npy` its coverage.
#[test]
fn presets_are_their_documented_models() {
    let d = tmp("presets");
    let x = image(&d, 16, 16);
    let xs = read_npy(&x).unwrap().data;
    for (preset, chain, noise) in [
        ("denoising", "identity", "gaussian(sigma=0.1)"),
        ("deblurring(k=4)", "dft_lowpass(k=4)", "complex_gaussian(sigma=0.1)"),
        (
            "mri(acceleration=4, mask=cartesian)",
            "fft2 | cartesian_mask(acceleration=4, center=4, seed=1)",
            "complex_gaussian(sigma=0.01)",
        ),
        (
            "mri(acceleration=8)",
            "fft2 | poisson_mask(acceleration=8, center=4, seed=1)",
            "complex_gaussian(sigma=0.01)",
        ),
    ] {
        ok(&["measure", "--forward", preset, "--x", x.to_str().unwrap(), "--out", d.to_str().unwrap()]);
        let m = parse_model(chain, noise, [1, 16, 16]).unwrap();
        let want = m.simulate(&xs, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();
        let y = read_npy(d.join("y.npy")).unwrap();
        assert_eq!(y.data, want, "{preset}");
        assert_eq!(read_npy(d.join("aty.npy")).unwrap().data, m.adjoint(&y.data).unwrap(), "{preset}");
    }
    let out = ok(&[
        "measure",
        "--forward",
        "eht(fov=160, cadence=3600)",
        "--x",
        x.to_str().unwrap(),
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(out.contains("25 baselines"), "{out}");
    use scoreprior::core::forward::interferometry::{Array, Interferometer, Observation};
    let cov = Array::eht2017().observe(&Observation { cadence_s: 3600.0, ..Observation::sgr_a_star() }).unwrap();
    let k = cov.points.len();
    let eht = Interferometer::new(cov, 16, 160.0).unwrap();
    let want = eht.visibility_model().unwrap().simulate(&xs, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();
    let uv = read_npy(d.join("uv.npy")).unwrap();
    assert_eq!(uv.shape[0], k);
    for (q, p) in eht.coverage().points.iter().enumerate() {
        assert_eq!((uv.data[q * uv.shape[1]], uv.data[q * uv.shape[1] + 1]), (p.u, p.v), "uv point {q}");
    }
    let y = read_npy(d.join("y.npy")).unwrap();
    assert_eq!(y.shape, [1, 2, 1, k]);
    assert_eq!(y.data, want);
    assert!(d.join("closures.npy").exists() && d.join("aty.png").exists());
    // The dirty image as FITS: the first image of aty.npy, 5 µas pixels, RA decreasing to the right.
    let fits = scoreprior::core::io::read_fits_image(d.join("aty.fits")).unwrap();
    let aty = read_npy(d.join("aty.npy")).unwrap();
    assert_eq!((fits.height, fits.width), (16, 16));
    assert_eq!(fits.data, aty.data[..256]);
    let deg = 10.0 / 3600.0 / 1e6; // 160 µas / 16 pixels
    assert!((fits.number("CDELT1").unwrap() + deg).abs() < 1e-12 * deg);
    // An ehtim text export in, the same outputs out.
    let obs =
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("tests/data/ehtim_crescent_obs.txt");
    let d2 = tmp("eht-obs");
    let forward = format!("eht(obs='{}', fov=160, pulse=triangle)", obs.display());
    let out = ok(&["measure", "--forward", &forward, "--x", x.to_str().unwrap(), "--out", d2.to_str().unwrap()]);
    assert!(out.contains("81 visibilities"), "{out}");
    assert_eq!(read_npy(d2.join("y.npy")).unwrap().shape, [1, 2, 1, 81]);
    assert_eq!(scoreprior::core::io::read_fits_image(d2.join("aty.fits")).unwrap().get("OBJECT"), Some("SgrA"));
}

#[test]
fn bad_inputs_give_clear_errors() {
    let d = tmp("errors");
    let x = image(&d, 16, 16);
    let xs = x.to_str().unwrap();
    let ds = d.to_str().unwrap();
    let e = fails(&["measure", "--forward", "subsample(factor=3)", "--x", xs, "--out", ds]);
    assert!(e.contains("subsample factor must be a divisor of the image size 16×16, got 3"), "{e}");
    for (bad, want) in [("eht(tint=0)", "tint"), ("eht(bandwidth=-4e9)", "bandwidth"), ("eht(pulse=box)", "pulse")] {
        let e = fails(&["measure", "--forward", bad, "--x", xs, "--out", ds]);
        assert!(e.contains(want), "{bad}: {e}");
    }
    let e = fails(&["measure", "--forward", "blur(sigma=1)", "--x", xs, "--out", ds]);
    assert!(e.contains("unknown primitive `blur`"), "{e}");
    let e = fails(&["measure", "--forward", "denoising", "--noise", "gaussian(sigma=-1)", "--x", xs, "--out", ds]);
    assert!(e.contains("must be positive"), "{e}");
    let e = fails(&["measure", "--forward", "denoising", "--x", "/nonexistent/x.png", "--out", ds]);
    assert!(e.contains("does not exist"), "{e}");
    std::fs::write(d.join("bad.png"), b"not a png").unwrap();
    let e = fails(&["measure", "--forward", "denoising", "--x", d.join("bad.png").to_str().unwrap(), "--out", ds]);
    assert!(e.contains("bad.png"), "{e}");
    let e = fails(&["measure", "--forward", "mri(speed=4)", "--x", xs, "--out", ds]);
    assert!(e.contains("unknown parameter `speed`"), "{e}");
}
