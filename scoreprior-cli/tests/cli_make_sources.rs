//! `scoreprior make-sources` end to end: the file is a peak-normalised (N, S, S) data set that
//! `scoreprior train` reads, the same seed gives the same file, and bad flags are errors.

mod common;

use common::{fails, ok, tmp};
use scoreprior::core::io::read_npy;

#[test]
fn writes_a_seeded_training_set_that_train_accepts() {
    let dir = tmp("make-sources");
    let a = dir.join("a.npy").display().to_string();
    let b = dir.join("b.npy").display().to_string();
    ok(&["make-sources", "--n", "12", "--size", "8", "--fov", "160", "--seed", "3", "--out", &a]);
    ok(&["make-sources", "--n", "12", "--size", "8", "--fov", "160", "--seed", "3", "--out", &b]);
    let (x, y) = (read_npy(&a).unwrap(), read_npy(&b).unwrap());
    assert_eq!(x.shape, vec![12, 8, 8]);
    assert_eq!(x.data, y.data, "same seed, same images");
    assert!(dir.join("a.png").is_file());
    for img in x.data.chunks(64) {
        let max = img.iter().cloned().fold(f64::MIN, f64::max);
        let min = img.iter().cloned().fold(f64::MAX, f64::min);
        assert_eq!(max, 1.0);
        assert!(min >= 0.0);
    }
    // An existing file is not replaced without --force.
    let e = fails(&["make-sources", "--n", "2", "--size", "8", "--out", &a]);
    assert!(e.contains("--force"), "{e}");
    ok(&["make-sources", "--n", "2", "--size", "8", "--out", &a, "--force"]);
    assert_eq!(read_npy(&a).unwrap().shape, vec![2, 8, 8]);
    // Bad flags.
    let c = dir.join("c.npy").display().to_string();
    assert!(fails(&["make-sources", "--n", "0", "--out", &c]).contains("--n"));
    assert!(fails(&["make-sources", "--fov=-1", "--out", &c]).contains("--fov"));
    assert!(fails(&["make-sources", "--out", &dir.join("c.txt").display().to_string()]).contains(".npy"));
    assert!(fails(&["make-sources", "--diameter", "20,200", "--out", &c]).contains("field of view"));
    assert!(fails(&["make-sources", "--diameter", "30,20", "--out", &c]).contains("increasing"));
    assert!(fails(&["make-sources", "--kind", "disc", "--out", &c]).contains("--kind"));
    assert!(!dir.join("c.npy").exists());
    // `fit-gaussian` reads it: the fitted mean is the images' mean.
    let g = dir.join("g").display().to_string();
    ok(&["fit-gaussian", "--data", &b, "--size", "8", "--out", &g]);
    let m = read_npy(dir.join("g/mean.npy")).unwrap();
    assert_eq!(m.shape, vec![64]);
    for (p, mp) in m.data.iter().enumerate() {
        let want = y.data.iter().skip(p).step_by(64).sum::<f64>() / 12.0;
        assert!((mp - want).abs() < 1e-6, "pixel {p}: {mp} vs {want}");
    }
    let t = dir.join("t.npy").display().to_string();
    assert!(fails(&["fit-gaussian", "--data", &b, "--size", "8", "--out", &g, "--test-out", &t]).contains("--test-out"));
    // `train` reads it (one step of the tiny network).
    let out = dir.join("run").display().to_string();
    #[rustfmt::skip]
    ok(&["train", "--data", &b, "--out", &out, "--size", "8", "--config", "tiny", "--steps", "1",
         "--batch-size", "2", "--sample-every", "0", "--quiet"]);
    assert!(dir.join("run/ema.safetensors").is_file());
}
