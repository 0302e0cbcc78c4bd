//! Mutation fuzzing of every loader and parser on stable Rust, in the normal test suite:
//! real files (a `.npy` array, an IDX file, gzip-compressed IDX, a PNG, the shipped
//! safetensors checkpoint, a run manifest, an ehtim text observation, a FITS image) and
//! forward-model strings are mutated a few
//! thousand times in all (byte flips, bytes set to extreme values, insertions, deletions,
//! truncation, splices); every load must return `Ok` or `Err`, never panic, never hang,
//! and never allocate beyond the memory limit. Seeds are fixed, so a failure reproduces.
//! The seeds cover each reader's paths: `.npy` of versions 1 and 2 and of float and integer
//! dtypes, IDX read whole or only its first images, FITS of `BITPIX = -64` and `-32` with a
//! header of one block or two, RealNVP flow files (`flow:FILE` priors). And every loader
//! refuses a device, a named pipe, a folder and a file above the memory limit at once, before
//! reading a byte.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scoreprior::core::forward::interferometry::read_ehtim_txt;
use scoreprior::core::io::{
    read_fits_image, read_idx_images, read_npy, read_png, write_fits_image, write_npy, write_png_gray, FitsSky,
};
use scoreprior_cli::run_folder::RunManifest;

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
    let seed =
        std::fs::read(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("tests/data/ehtim_crescent_obs.txt"))
            .unwrap();
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
    let ck = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("assets/ncsnpp_fmnist16/ema.safetensors");
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

/// A `.npy` file of version `major` (1: 2-byte header length, 2: 4-byte) holding `body`
/// under the header dictionary `dict`.
fn npy_bytes(major: u8, dict: &str, body: &[u8]) -> Vec<u8> {
    let len_bytes = if major == 1 { 2 } else { 4 };
    let mut header = dict.as_bytes().to_vec();
    while (8 + len_bytes + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut b = b"\x93NUMPY".to_vec();
    b.extend([major, 0]);
    if major == 1 {
        b.extend((header.len() as u16).to_le_bytes());
    } else {
        b.extend((header.len() as u32).to_le_bytes());
    }
    b.extend(header);
    b.extend(body);
    b
}

#[test]
fn npy_loader_survives_mutations_of_other_versions_and_dtypes() {
    // Version 2 (a 4-byte header length, which can claim 4 GiB), f32 values.
    let f32s: Vec<u8> = (0..12).flat_map(|i| (i as f32 / 12.0).to_le_bytes()).collect();
    let v2 = npy_bytes(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", &f32s);
    assert_eq!(read_npy_from(&v2).unwrap().shape, vec![3, 4]);
    fuzz_file("v2.npy", &v2, 64, 800, |p| read_npy(p).is_ok());
    // 8-bit images, read as images (scaled by 1/255).
    let u8s: Vec<u8> = (0..32).map(|i| (i * 8) as u8).collect();
    let img = npy_bytes(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4), }", &u8s);
    assert_eq!(read_npy_from(&img).unwrap().data[1], 8.0);
    fuzz_file("u8-images.npy", &img, 64, 800, |p| scoreprior::core::io::read_npy_images(p).is_ok());
    // i64 values.
    let i64s: Vec<u8> = (0..6i64).flat_map(|i| (i - 3).to_le_bytes()).collect();
    let ints = npy_bytes(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }", &i64s);
    assert_eq!(read_npy_from(&ints).unwrap().data[0], -3.0);
    fuzz_file("i64.npy", &ints, 64, 600, |p| read_npy(p).is_ok());
}

/// `read_npy` of `bytes` written to a scratch file.
fn read_npy_from(bytes: &[u8]) -> Result<scoreprior::core::io::Array, scoreprior::core::io::IoError> {
    let dir = scratch("npy-from");
    let p = dir.join("a.npy");
    std::fs::write(&p, bytes).unwrap();
    read_npy(&p)
}

#[test]
fn idx_loader_survives_mutations_when_reading_only_the_first_images() {
    let mut idx = vec![0u8, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 3];
    idx.extend((0..45).map(|i| (i * 3) as u8));
    fuzz_file("first-images-idx3-ubyte", &idx, 16, 600, |p| read_idx_images(p, Some(2)).is_ok());
}

/// A FITS image of `BITPIX = -32` whose header spans two blocks (40 COMMENT cards).
fn fits_f32_two_blocks(w: usize, h: usize) -> Vec<u8> {
    let mut cards: Vec<String> = vec![
        format!("{:<8}= {:>20}", "SIMPLE", "T"),
        format!("{:<8}= {:>20}", "BITPIX", "-32"),
        format!("{:<8}= {:>20}", "NAXIS", "2"),
        format!("{:<8}= {:>20}", "NAXIS1", w),
        format!("{:<8}= {:>20}", "NAXIS2", h),
    ];
    cards.extend((0..40).map(|i| format!("COMMENT card {i}")));
    cards.push("END".into());
    let mut b: Vec<u8> = cards.iter().flat_map(|c| format!("{c:<80}").into_bytes()).collect();
    b.resize(b.len().div_ceil(2880) * 2880, b' ');
    b.extend((0..w * h).flat_map(|i| (i as f32).to_be_bytes()));
    b.resize(b.len().div_ceil(2880) * 2880, 0);
    b
}

#[test]
fn fits_reader_survives_mutations_of_f32_images_with_long_headers() {
    let seed = fits_f32_two_blocks(4, 3);
    let dir = scratch("fits32-seed");
    let p = dir.join("a.fits");
    std::fs::write(&p, &seed).unwrap();
    let img = read_fits_image(&p).unwrap();
    // FITS rows go up from the bottom: the last stored row is the image's top row.
    assert_eq!((img.width, img.height, img.data[0], img.data[11]), (4, 3, 8.0, 3.0));
    // Mutations of the header (both blocks) and of the data.
    fuzz_file("b.fits", &seed, 2 * 2880 + 48, 800, |p| read_fits_image(p).is_ok());
}

#[test]
fn flow_prior_file_loader_survives_mutations() {
    use scoreprior::models::realnvp::{RealNvp, RealNvpConfig};
    let flow = RealNvp::new(RealNvpConfig::new(4).with_flows(2).with_hidden(8).with_seed(1)).unwrap();
    let dir = scratch("flow-seed");
    let p = dir.join("flow.safetensors");
    flow.save_file(&p).unwrap();
    assert!(RealNvp::load_file(&p).is_ok());
    let seed = std::fs::read(&p).unwrap();
    let header = 8 + u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    fuzz_file("flow.safetensors", &seed, header + 64, 400, |p| RealNvp::load_file(p).is_ok());
}

/// Every loader refuses, at once and naming the path: a character device (`/dev/zero`, which
/// never ends), a named pipe without a writer (whose open would block), a folder, and a file
/// above the memory limit (a sparse 1 TiB file, which nothing may read).
#[test]
fn every_loader_refuses_special_and_oversized_files_at_once() {
    use scoreprior::core::dpi::read_checkpoint;
    use scoreprior::core::io::{read_input, read_npy_images};
    use scoreprior::models::realnvp::{RealNvp, RealNvpConfig};
    use scoreprior_cli::run_folder::hash_path;
    let dir = scratch("special");
    let fifo = dir.join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let big = dir.join("big");
    std::fs::File::create(&big).unwrap().set_len(1 << 40).unwrap();
    type Loader = Box<dyn Fn(&Path) -> Result<(), String>>;
    fn err<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<(), String> {
        r.map(|_| ()).map_err(|e| e.to_string())
    }
    let loaders: Vec<(&str, Loader)> = vec![
        ("read_input", Box::new(|p| err(read_input(p)))),
        ("read_npy", Box::new(|p| err(read_npy(p)))),
        ("read_npy_images", Box::new(|p| err(read_npy_images(p)))),
        ("read_idx_images", Box::new(|p| err(read_idx_images(p, None)))),
        ("read_idx_images(2)", Box::new(|p| err(read_idx_images(p, Some(2))))),
        ("read_fits_image", Box::new(|p| err(read_fits_image(p)))),
        ("read_png", Box::new(|p| err(read_png(p)))),
        ("read_ehtim_txt", Box::new(|p| err(read_ehtim_txt(p)))),
        ("checkpoint::load_any", Box::new(|p| err(scoreprior::models::checkpoint::load_any(p)))),
        ("checkpoint::read_meta", Box::new(|p| err(scoreprior::models::checkpoint::read_meta(p)))),
        ("RealNvp::load_file", Box::new(|p| err(RealNvp::load_file(p)))),
        (
            "dpi::read_checkpoint",
            Box::new(|p| {
                let mut flow = RealNvp::new(RealNvpConfig::new(4).with_flows(2).with_hidden(8)).unwrap();
                err(read_checkpoint(p, &mut flow))
            }),
        ),
        ("hash_path", Box::new(|p| err(hash_path(p)))),
    ];
    let cases = [
        (Path::new("/dev/zero"), "/dev/zero is a character device, not a regular file"),
        (fifo.as_path(), "is a named pipe (FIFO), not a regular file"),
        (folder.as_path(), "is a folder, not a regular file"),
        (big.as_path(), "memory limit"),
    ];
    for (name, load) in &loaders {
        for (path, want) in cases {
            // A folder is a valid input to hash (its files are hashed).
            if *name == "hash_path" && path == folder.as_path() {
                continue;
            }
            let t = Instant::now();
            let e = load(path).expect_err(name);
            assert!(e.contains(want) && e.contains(&path.display().to_string()), "{name} on {}: {e}", path.display());
            assert!(t.elapsed() < Duration::from_secs(2), "{name} on {}: took {:?}", path.display(), t.elapsed());
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn uvfits_reader_survives_mutations() {
    // The real EHT 2017 M87 April 11 high-band file (random groups, then the AIPS AN and FQ
    // tables): mutations concentrated in the primary header, then anywhere (the groups and the
    // binary tables), through the reader and the `obs=` dispatch by extension.
    use scoreprior::core::forward::interferometry::read_uvfits;
    let seed = std::fs::read(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .join("scoreprior-core/tests/data/eht-m87/SR1_M87_2017_101_hi_hops_netcal_StokesI.uvfits"),
    )
    .unwrap();
    assert!(read_uvfits(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .join("scoreprior-core/tests/data/eht-m87/SR1_M87_2017_101_hi_hops_netcal_StokesI.uvfits")
    )
    .is_ok());
    fuzz_file("obs.uvfits", &seed, 8640, 400, |p| read_uvfits(p).is_ok());
    fuzz_file("tables.uvfits", &seed, seed.len(), 300, |p| read_ehtim_txt(p).is_ok());
}
