//! Reading uvfits (random-groups FITS): the EHT 2017 M87 release's April 11 high-band file
//! (`tests/data/eht-m87/`, ODC-PDDL public-domain data, see `LICENSE-data.txt` there) gives
//! the visibilities of the release's own ehtim text export of it, row by row, to the printed
//! precision; `eht(obs='FILE.uvfits')` images on it; malformed files are clear errors naming
//! the file.

use std::path::{Path, PathBuf};

use scoreprior_core::forward::interferometry::{read_ehtim_txt, read_uvfits};
use scoreprior_core::forward::spec::EhtSettings;

const STEM: &str = "SR1_M87_2017_101_hi_hops_netcal_StokesI";

fn data(ext: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/eht-m87").join(format!("{STEM}.{ext}"))
}

/// One row of the release's txt export: time (UTC h), T1, T2, u, v (λ), |I| (Jy), arg I (°),
/// σ_I (Jy).
struct Row {
    time: f64,
    t1: String,
    t2: String,
    u: f64,
    v: f64,
    amp: f64,
    phase: f64,
    sigma: f64,
}

fn txt_rows() -> Vec<Row> {
    let text = std::fs::read_to_string(data("txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(f.len(), 8, "{l}");
            let n = |i: usize| f[i].parse::<f64>().unwrap();
            Row { time: n(0), t1: f[1].into(), t2: f[2].into(), u: n(3), v: n(4), amp: n(5), phase: n(6), sigma: n(7) }
        })
        .collect()
}

#[test]
fn the_april_11_high_band_uvfits_gives_the_visibilities_of_its_txt_export() {
    let obs = read_uvfits(data("uvfits")).unwrap();
    let rows = txt_rows();
    assert_eq!(rows.len(), 8058);
    assert_eq!(obs.records.len(), 8058);
    // The export's header: `# SRC:M87 DATE(MJD):57854 FREQ:229.0707GHz`.
    assert_eq!((obs.source.as_str(), obs.mjd), ("M87", 57854.0));
    assert!((obs.frequency_hz - 229.0707e9).abs() < 0.00005e9, "{}", obs.frequency_hz);
    assert_eq!(obs.bandwidth_hz, 1.856e9);
    assert!((obs.ra_hours - 187.7059307575226 / 15.0).abs() < 1e-12 && (obs.dec_deg - 12.39112323919932).abs() < 1e-12);
    let names: Vec<&str> = obs.stations.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["AA", "AP", "AZ", "JC", "LM", "PV", "SM", "SR"]);
    assert!((obs.stations[0].xyz[0] - 2225060.8136).abs() < 1e-6);

    // Row by row, in file order; deviations against the printed precision.
    let (mut dt, mut duv, mut damp, mut dph, mut dsig) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let mut tint = (f64::INFINITY, 0f64);
    for (k, (r, x)) in obs.records.iter().zip(&rows).enumerate() {
        let (s1, s2) = (&obs.stations[r.t1].name, &obs.stations[r.t2].name);
        assert_eq!((s1.as_str(), s2.as_str()), (x.t1.as_str(), x.t2.as_str()), "row {k}");
        dt = dt.max((r.time_hour - x.time).abs());
        // u, v: ehtim multiplies float32 UU by the frequency in float32, so the export
        // carries float32 rounding (a relative 6e-8); compare relatively.
        for (a, b) in [(r.u, x.u), (r.v, x.v)] {
            duv = duv.max((a - b).abs() / b.abs().max(1.0));
        }
        damp = damp.max((r.re.hypot(r.im) - x.amp).abs());
        let d = (r.im.atan2(r.re).to_degrees() - x.phase).rem_euclid(360.0);
        dph = dph.max(d.min(360.0 - d));
        // σ: ehtim computes it in float32 (relative rounding of a few 1e-8): the excess over
        // the printed precision, relative to σ.
        dsig = dsig.max(((r.sigma - x.sigma).abs() - 0.5e-8).max(0.0) / x.sigma);
        tint = (tint.0.min(r.tint_s), tint.1.max(r.tint_s));
    }
    eprintln!("max |Δt| = {dt:e} h, max |Δu|/|u| = {duv:e}, max |Δ|I|| = {damp:e} Jy, max |Δφ| = {dph:e}°, max (|Δσ| − 0.5e-8 Jy)/σ = {dsig:e}, tint in {tint:?} s");
    // Printed: time to 1e-8 h, amplitudes and σ to 1e-8 Jy, phases to 1e-4°; u, v and σ
    // also carry float32 rounding (two roundings of 2^-24 for u, v).
    assert!(dt <= 0.5e-8 + 1e-12, "time: {dt:e} h");
    assert!(duv <= 1.2e-7, "u, v: relative {duv:e}");
    assert!(damp <= 0.5e-8 + 1e-12, "amplitude: {damp:e} Jy");
    assert!(dph <= 0.5e-4 + 1e-9, "phase: {dph:e}°");
    assert!(dsig <= 6e-8, "σ: {dsig:e} beyond the printed precision, relative to σ");
    // 10 s averages (INTTIM).
    assert!(tint.0 > 0.0 && tint.1 <= 10.5, "{tint:?}");
}

#[test]
fn eht_obs_takes_a_uvfits_file() {
    let path = data("uvfits");
    // `read_ehtim_txt` dispatches on the extension, so every `obs=` input takes uvfits.
    assert_eq!(read_ehtim_txt(&path).unwrap(), read_uvfits(&path).unwrap());
    let eht = EhtSettings::parse(&format!("eht(obs='{}')", path.display())).unwrap().unwrap();
    let i = eht.interferometer(32).unwrap();
    assert_eq!(i.coverage().points.len(), 8058);
    assert!(!i.closures().triangles.is_empty());
}

/// Writes `bytes` to `dir/name` and reads it, returning the error message.
fn error_of(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let t = std::time::Instant::now();
    let e = read_uvfits(&p).expect_err(name).to_string();
    assert!(t.elapsed().as_secs() < 2, "{name}: {:?}", t.elapsed());
    assert!(e.contains(&p.display().to_string()), "{name}: {e}");
    e
}

/// Replaces the value of header card `key` (in the first header) with `value`.
fn set_card(bytes: &mut [u8], key: &str, value: &str) {
    let at = (0..bytes.len() / 80)
        .map(|i| i * 80)
        .find(|&i| bytes[i..i + 8] == *format!("{key:<8}").as_bytes())
        .unwrap_or_else(|| panic!("no {key} card"));
    let card = format!("{key:<8}= {value:>20}");
    bytes[at..at + 80].copy_from_slice(format!("{card:<80}").as_bytes());
}

#[test]
fn malformed_uvfits_files_are_clear_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(data("uvfits")).unwrap();

    // Truncated: in the header, in the groups, in the antenna table. Each case: the bytes kept,
    // the file's name and what the error says.
    for (len, name, says) in [
        (1000, "head.uvfits", &["without an END card (is the file truncated?)"][..]),
        (100_000, "body.uvfits", &["declares 8058 groups of 84 bytes", "has only 100000 bytes"]),
        (694_500, "an.uvfits", &["past the end of the file"]),
        (688_320, "no-an.uvfits", &["no AIPS AN table"]),
    ] {
        let e = error_of(dir.path(), name, &good[..len]);
        assert!(says.iter().all(|s| e.contains(s)), "{e}");
    }

    // One header card changed: the card, its new value, the file's name and what the error says.
    for (key, value, name, says) in [
        // More groups than the file holds.
        ("GCOUNT", "9000", "gcount.uvfits", &["declares 9000 groups", "truncated, or GCOUNT is wrong"][..]),
        ("GCOUNT", "99999999999999999", "huge.uvfits", &["declares 99999999999999999 groups"]),
        // Not random groups.
        ("GROUPS", "F", "groups.uvfits", &["GROUPS is not T"]),
        ("NAXIS1", "4", "naxis1.uvfits", &["NAXIS1 is not 0"]),
        ("BITPIX", "-16", "bitpix.uvfits", &["BITPIX = -16 is not a FITS data type"]),
        ("CRVAL3", "-5.0", "stokes.uvfits", &["the STOKES axis holds codes [-5, -6, -7, -8]"]),
        // A frequency in the wrong unit (GHz written as Hz), and dates a millennium off.
        ("CRVAL4", "229.07", "freq.uvfits", &["reference frequency", "outside 1 MHz – 10 THz"]),
        ("PZERO6", "365250.0", "date.uvfits", &["DATE", "outside 1957–2132"]),
    ] {
        let mut b = good.clone();
        set_card(&mut b, key, value);
        let e = error_of(dir.path(), name, &b);
        assert!(says.iter().all(|s| e.contains(s)), "{e}");
    }
    let e = error_of(dir.path(), "text.uvfits", b"hello, world\n");
    assert!(e.contains("not a FITS file"), "{e}");
    let e = error_of(dir.path(), "empty.uvfits", b"");
    assert!(e.contains("not a FITS file"), "{e}");

    // A baseline naming an antenna missing from the table (group 1's BASELINE is 262).
    let mut b = good.clone();
    let at = 8640 + 3 * 4;
    assert_eq!(f32::from_be_bytes(b[at..at + 4].try_into().unwrap()), 262.0);
    b[at..at + 4].copy_from_slice(&(9.0f32 * 256.0 + 1.0).to_be_bytes());
    let e = error_of(dir.path(), "baseline.uvfits", &b);
    assert!(e.contains("group 1: antenna 9 is not in the AIPS AN table"), "{e}");

    // Every group flagged (weights set to 0).
    let mut b = good.clone();
    for g in 0..8058 {
        for s in 0..4 {
            let at = 8640 + g * 84 + (9 + 3 * s + 2) * 4;
            b[at..at + 4].copy_from_slice(&0f32.to_be_bytes());
        }
    }
    let e = error_of(dir.path(), "flagged.uvfits", &b);
    assert!(e.contains("no unflagged cross-correlation"), "{e}");

    // Not regular files.
    let e = read_uvfits(dir.path()).unwrap_err().to_string();
    assert!(e.contains("is a folder, not a regular file") && e.contains(&dir.path().display().to_string()), "{e}");
    #[cfg(unix)]
    {
        let e = read_uvfits("/dev/zero").unwrap_err().to_string();
        assert!(e.contains("/dev/zero is a character device, not a regular file"), "{e}");
    }
    let e = read_uvfits(dir.path().join("missing.uvfits")).unwrap_err().to_string();
    assert!(e.contains("missing.uvfits"), "{e}");
}
