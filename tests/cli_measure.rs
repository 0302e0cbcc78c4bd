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

#[test]
fn presets_run_and_eht_writes_uv_and_closures() {
    let d = tmp("presets");
    let x = image(&d, 16, 16);
    for f in ["denoising", "deblurring(k=4)", "mri(acceleration=4, mask=cartesian)"] {
        ok(&["measure", "--forward", f, "--x", x.to_str().unwrap(), "--out", d.to_str().unwrap()]);
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
    let uv = read_npy(d.join("uv.npy")).unwrap();
    let y = read_npy(d.join("y.npy")).unwrap();
    assert_eq!(y.shape, [1, 2, 1, uv.shape[0]]);
    assert!(d.join("closures.npy").exists() && d.join("aty.png").exists());
}

#[test]
fn bad_inputs_give_clear_errors() {
    let d = tmp("errors");
    let x = image(&d, 16, 16);
    let xs = x.to_str().unwrap();
    let ds = d.to_str().unwrap();
    let e = fails(&["measure", "--forward", "subsample(factor=3)", "--x", xs, "--out", ds]);
    assert!(e.contains("factor 3 must divide"), "{e}");
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
