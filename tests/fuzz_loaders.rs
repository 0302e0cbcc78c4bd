//! Mutation fuzzing of every loader and parser on stable Rust, in the normal test suite:
//! real files (a `.npy` array, an IDX file, gzip-compressed IDX, a PNG, the shipped
//! safetensors checkpoint, a run manifest, an ehtim text observation, a FITS image) and
//! forward-model strings are mutated a few
//! thousand times in all (byte flips, bytes set to extreme values, insertions, deletions,
//! truncation, splices); every load must return `Ok` or `Err`, never panic, never hang,
//! and never allocate beyond the memory limit. Seeds are fixed, so a failure reproduces.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scoreprior::core::forward::interferometry::read_ehtim_txt;
use scoreprior::core::io::{
    read_fits_image, read_idx_images, read_npy, read_png, write_fits_image, write_npy, write_png_gray, FitsSky,
    RunManifest,
};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoreprior-fuzz-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One random mutation of `seed` (concentrated in the first `head` bytes, where headers are).
fn mutate(seed: &[u8], head: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    let rounds = rng.gen_range(1..=4);
    for _ in 0..rounds {
        let span = if rng.gen_bool(0.8) { head.min(b.len()).max(1) } else { b.len().max(1) };
        let at = rng.gen_range(0..span).min(b.len());
        match rng.gen_range(0..7) {
            0 if !b.is_empty() && at < b.len() => b[at] ^= 1 << rng.gen_range(0..8),
            1 if at < b.len() => b[at] = [0u8, 0xff, 0x7f, 0x80, b'9', b'(', b',', b'\''][rng.gen_range(0..8)],
            2 => {
                let n = rng.gen_range(1..8);
                let ins: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                b.splice(at..at, ins);
            }
            3 if at < b.len() => {
                let end = (at + rng.gen_range(1..16)).min(b.len());
                b.drain(at..end);
            }
            4 => b.truncate(at),
            5 if at + 4 <= b.len() => b[at..at + 4].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]),
            _ if b.len() > 2 => {
                // Splice a chunk of the file onto itself.
                let from = rng.gen_range(0..b.len());
                let end = (from + rng.gen_range(1..32)).min(b.len());
                let chunk = b[from..end].to_vec();
                let at = at.min(b.len());
                b.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    b
}

/// Feeds `count` mutations of `seed` to `load` (given a file path), checking that no call
/// panics or takes long.
fn fuzz_file(name: &str, seed: &[u8], head: usize, count: usize, load: impl Fn(&Path) -> bool) {
    let dir = scratch(name);
    let path = dir.join(name);
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed ^ name.len() as u64);
    let (mut ok, mut err) = (0, 0);
    for i in 0..count {
        let bytes = mutate(seed, head, &mut rng);
        std::fs::File::create(&path).and_then(|mut f| f.write_all(&bytes)).unwrap();
        let t = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| load(&path))) {
            Ok(true) => ok += 1,
            Ok(false) => err += 1,
            Err(_) => {
                let keep = dir.join(format!("crash-{i}"));
                std::fs::write(&keep, &bytes).unwrap();
                panic!("{name}: mutation {i} panicked the loader (input kept in {})", keep.display());
            }
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{name}: mutation {i} took {:?}", t.elapsed());
    }
    // The mutations reach past the first checks: some inputs still load, most fail.
    assert!(err > count / 10, "{name}: only {err} of {count} mutations failed");
    eprintln!("{name}: {ok} loaded, {err} errors");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn npy_loader_survives_mutations() {
    let dir = scratch("npy-seed");
    let p = dir.join("a.npy");
    write_npy(&p, &[2, 3, 4], &(0..24).map(|i| i as f64 / 24.0).collect::<Vec<_>>()).unwrap();
    let seed = std::fs::read(&p).unwrap();
    fuzz_file("a.npy", &seed, 128, 1500, |p| read_npy(p).is_ok());
}

#[test]
fn idx_loader_survives_mutations_raw_and_gzip() {
    let mut idx = vec![0u8, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 4];
    idx.extend((0..48).map(|i| (i * 5) as u8));
    fuzz_file("train-images-idx3-ubyte", &idx, 16, 800, |p| read_idx_images(p, None).is_ok());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&idx).unwrap();
    let gz = gz.finish().unwrap();
    fuzz_file("train-images-idx3-ubyte.gz", &gz, gz.len(), 500, |p| read_idx_images(p, Some(2)).is_ok());
}

#[test]
fn ehtim_observation_reader_survives_mutations() {
    // The real ehtim 1.3.2 export of the test data; mutations anywhere (header and rows).
    let seed = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ehtim_crescent_obs.txt")).unwrap();
    fuzz_file("obs.txt", &seed, seed.len(), 800, |p| read_ehtim_txt(p).is_ok());
}

#[test]
fn fits_reader_survives_mutations() {
    let dir = scratch("fits-seed");
    let p = dir.join("a.fits");
    let sky = FitsSky { object: "x".into(), pixel_rad: 1e-11, ra_deg: 1.0, dec_deg: 2.0, frequency_hz: 1e9, mjd: 5e4 };
    write_fits_image(&p, &(0..12).map(|i| i as f64).collect::<Vec<_>>(), 3, 4, &sky).unwrap();
    let seed = std::fs::read(&p).unwrap();
    fuzz_file("a.fits", &seed, 800, 800, |p| read_fits_image(p).is_ok());
}

#[test]
fn png_loader_survives_mutations() {
    let dir = scratch("png-seed");
    let p = dir.join("a.png");
    write_png_gray(&p, 8, 8, &(0..64).map(|i| i as f64 / 64.0).collect::<Vec<_>>(), 0.0, 1.0).unwrap();
    let seed = std::fs::read(&p).unwrap();
    fuzz_file("a.png", &seed, seed.len(), 800, |p| read_png(p).is_ok());
}

#[test]
fn safetensors_checkpoint_loader_survives_mutations() {
    let ck = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/ncsnpp_fmnist16/ema.safetensors");
    let seed = std::fs::read(ck).unwrap();
    // The JSON header and the first tensors (the length prefix is the first 8 bytes).
    let header = 8 + u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    fuzz_file("ema.safetensors", &seed, header + 64, 150, |p| scoreprior::models::checkpoint::load_any(p).is_ok());
}

#[test]
fn run_manifest_parser_survives_mutations() {
    let dir = scratch("manifest-seed");
    std::fs::write(dir.join("x.npy"), b"x").unwrap();
    let m = RunManifest::new("train", serde_json::json!({"lr": 5e-4, "net": {"nf": 8, "ch_mult": [1, 2]}}))
        .with_seed(3)
        .with_input("--data", &dir.join("x.npy"))
        .unwrap();
    m.write(&dir).unwrap();
    let seed = std::fs::read(dir.join("run.json")).unwrap();
    fuzz_file("run.json", &seed, seed.len(), 500, |p| RunManifest::from_json(p, &std::fs::read(p).unwrap()).is_ok());
}

#[test]
fn forward_model_strings_survive_mutations() {
    use scoreprior::core::forward::{parse_chain, parse_noise};
    let seeds = [
        "gaussian_blur(sigma=1.5, size=9) | subsample(factor=2)",
        "fft2 | poisson_mask(acceleration=4, center=4, seed=1)",
        "motion_blur(length=5, angle=30, boundary=circular) | crop(top=1, height=8, width=8)",
        "pad(top=2, left=1) | gaussian_matrix(m=20, seed=3) | magnitude",
        "mask(keep=0.5, seed=2) | scale(factor=-2.5e0) | dft_lowpass(k=4)",
    ];
    let noises = ["gaussian(sigma=0.1)", "complex_gaussian(sigma=1e-2)"];
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for i in 0..2000 {
        let s = seeds[i % seeds.len()];
        let bytes = mutate(s.as_bytes(), s.len(), &mut rng);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _ = parse_chain(&text, [1, 16, 16]);
            let n = noises[i % 2];
            let nb = mutate(n.as_bytes(), n.len(), &mut ChaCha8Rng::seed_from_u64(i as u64));
            let _ = parse_noise(&String::from_utf8_lossy(&nb));
            let e = "eht(fov=160, tint=60, bandwidth=4e9, cadence=3600, pulse=triangle, obs='x.txt')";
            let eb = mutate(e.as_bytes(), e.len(), &mut ChaCha8Rng::seed_from_u64(7 + i as u64));
            let _ = scoreprior::core::forward::EhtSettings::parse(&String::from_utf8_lossy(&eb));
        }));
        assert!(r.is_ok(), "mutation {i} panicked: {text:?}");
        assert!(t.elapsed() < Duration::from_secs(2), "mutation {i} took {:?}: {text:?}", t.elapsed());
    }
}

#[test]
fn dpi_checkpoint_loader_survives_mutations() {
    use scoreprior::core::dpi::{read_checkpoint, write_checkpoint, DpiHistory};
    use scoreprior::models::realnvp::{RealNvp, RealNvpConfig};
    let flow = || RealNvp::new(RealNvpConfig::new(4).with_flows(2).with_hidden(8).with_seed(1)).unwrap();
    let dir = scratch("dpi-seed");
    let p = dir.join("checkpoint.safetensors");
    let history: DpiHistory = serde_json::from_str(
        r#"{"records":[{"step":0,"total":1.5,"data":1.0,"prior":0.25,"log_q":0.25,"data_weight":1.0,
            "lr":0.001,"grad_norm":2.0,"seconds":0.01,"beta":1.0,"time_floor":null}]}"#,
    )
    .unwrap();
    write_checkpoint(&p, &history, &flow()).unwrap();
    let back = read_checkpoint(&p, &mut flow()).unwrap();
    assert_eq!(back.records.len(), 1);
    assert_eq!((back.records[0].total, back.records[0].lr), (1.5, 0.001));
    assert!(back.records[0].time_floor.is_nan() && history.records[0].time_floor.is_nan());
    let seed = std::fs::read(&p).unwrap();
    let header = 8 + u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    fuzz_file("checkpoint.safetensors", &seed, header + 64, 600, |p| read_checkpoint(p, &mut flow()).is_ok());
}
