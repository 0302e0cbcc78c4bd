//! Interoperability with eht-imaging: reading an `Obsdata.save_txt` export (a real one, made
//! by ehtim 1.3.2 through `benches/reference/ehtim_rml.py --export-small`: a 32×32 crescent
//! observed by EHT 2017 every 2 h with thermal noise, 81 visibilities) gives exactly the
//! numbers the file holds, the `eht(obs=…)` preset images on its coverage with ehtim's sign
//! conventions, malformed files are clear errors; and FITS images read back exactly.

use std::path::PathBuf;

use scoreprior_core::forward::interferometry::{read_ehtim_txt, Array, EhtimObservation, Observation, TestSource};
use scoreprior_core::forward::spec::EhtSettings;
use scoreprior_core::forward::ForwardModel;
use scoreprior_core::io::{read_fits_image, write_fits_image, FitsSky};

fn data_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/ehtim_crescent_obs.txt")
}

#[test]
fn reading_an_ehtim_export_gives_the_numbers_it_holds() {
    let path = data_file();
    let obs = read_ehtim_txt(&path).unwrap();
    assert_eq!(obs.source, "SgrA");
    assert!((obs.ra_hours - (17.0 + 45.0 / 60.0 + 40.0 / 3600.0)).abs() < 1e-12);
    assert!((obs.dec_deg + (29.0 + 28.0 / 3600.0)).abs() < 1e-12);
    assert_eq!((obs.mjd, obs.frequency_hz, obs.bandwidth_hz), (57850.0, 230e9, 4e9));
    let names: Vec<&str> = obs.stations.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["ALMA", "LMT", "PV", "APEX", "SMA", "SMT", "SPT", "JCMT"]); // ehtim's SEFD order
                                                                                   // Independently of the reader: split every data row and compare field by field.
    let text = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<Vec<&str>> =
        text.lines().filter(|l| !l.starts_with('#')).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 81);
    assert_eq!(obs.records.len(), 81);
    for (r, f) in obs.records.iter().zip(&rows) {
        let num = |i: usize| f[i].parse::<f64>().unwrap();
        assert_eq!(r.time_hour, num(0));
        assert_eq!(r.tint_s, num(1));
        assert_eq!((names[r.t1], names[r.t2]), (f[2], f[3]));
        assert_eq!((r.u, r.v, r.sigma), (num(6), num(7), num(16)));
        let (amp, ph) = (num(8), num(9).to_radians());
        assert_eq!((r.re, r.im), (amp * ph.cos(), amp * ph.sin()));
    }
    // The first row as printed by ehtim.
    let r0 = obs.records[0];
    assert_eq!((r0.time_hour, r0.u, r0.v, r0.sigma), (2.0, -2729865627.3783, 8191620716.2729, 0.00751634));
    // The coverage keeps every record, orientated to the lower table index, in time order.
    let cov = obs.coverage();
    let vis = obs.visibilities();
    assert_eq!((cov.points.len(), vis.len()), (81, 162));
    for (p, q) in cov.points.iter().zip(&obs.records) {
        // Records are already in time order and ehtim keeps each baseline's lower index first.
        assert!(p.i < p.j && (p.i, p.j) == (q.t1, q.t2) && p.u == q.u && p.sigma == q.sigma);
    }
}

#[test]
fn the_export_agrees_with_our_own_simulation_of_the_same_observation() {
    // Same (u, v) as our coverage of the same track (to the UT1 − UTC difference of GMST),
    // and same σ to the printed digits.
    let obs = read_ehtim_txt(data_file()).unwrap();
    let ours = Array::eht2017().observe(&Observation { cadence_s: 7200.0, ..Observation::sgr_a_star() }).unwrap();
    assert_eq!(ours.points.len(), obs.records.len());
    let mut worst = 0.0f64;
    for r in &obs.records {
        let (a, b) = (&obs.stations[r.t1].name, &obs.stations[r.t2].name);
        let p = ours
            .points
            .iter()
            .find(|p| {
                p.time_hour == r.time_hour && {
                    let (x, y) = (&ours.stations[p.i], &ours.stations[p.j]);
                    (x == a && y == b) || (x == b && y == a)
                }
            })
            .unwrap_or_else(|| panic!("{a}-{b} at {} h missing from our coverage", r.time_hour));
        // Our table order may put the pair the other way round: then (u, v) are negated.
        let s = if &ours.stations[p.i] == a { 1.0 } else { -1.0 };
        worst = worst.max((s * p.u - r.u).hypot(s * p.v - r.v) / r.u.hypot(r.v).max(1e7));
        assert!((p.sigma - r.sigma).abs() <= 5e-9, "σ {} vs {}", p.sigma, r.sigma);
    }
    eprintln!("(u, v): ours vs ehtim, worst relative difference {worst:.2e}");
    assert!(worst < 1e-4, "{worst:e}");
}

#[test]
fn eht_obs_preset_fits_the_exported_crescent_with_unit_chi_squared() {
    // The export holds noisy visibilities of this crescent (same grid and parametrisation in
    // the script): χ²/dof on the file's coverage ≈ 1 only if (u, v), the sign of the Fourier
    // kernel and the sky orientation all agree with ehtim's.
    let path = data_file();
    // ehtim's `observe` treats pixels as triangle pulses: `pulse=triangle` models the same.
    let settings =
        EhtSettings::parse(&format!("eht(obs='{}', fov=160, pulse=triangle)", path.display())).unwrap().unwrap();
    let eht = settings.interferometer(32).unwrap();
    let model = eht.visibility_model().unwrap();
    let obs = read_ehtim_txt(&path).unwrap();
    let y = obs.visibilities();
    let truth = TestSource::Crescent { radius: 25.0, width: 5.0, asymmetry: 0.6, angle_deg: 150.0 }
        .render(32, 160.0, 1.0)
        .unwrap();
    let dof = model.output_dim() as f64;
    let chi2 = model.chi_squared(&y, &truth).unwrap()[0] / dof;
    // Point pixels miss the pulse's taper at long baselines (up to 11 % at 8 Gλ, S/N ~ 100).
    let point = EhtSettings::parse(&format!("eht(obs='{}')", path.display())).unwrap().unwrap();
    let pm = point.interferometer(32).unwrap().visibility_model().unwrap();
    let chi2_point = pm.chi_squared(&y, &truth).unwrap()[0] / dof;
    eprintln!("χ²/dof with point pixels: {chi2_point:.2}");
    assert!(chi2_point > 5.0, "{chi2_point}");
    // The same crescent turned by 180° (the image of a sign error) does not fit.
    let flipped: Vec<f64> = truth.iter().rev().copied().collect();
    let chi2_flipped = model.chi_squared(&y, &flipped).unwrap()[0] / dof;
    eprintln!("χ²/dof: crescent {chi2:.3}, rotated by 180° {chi2_flipped:.1} ({dof} values)");
    // 162 values: the s.d. of χ²/dof is √(2/162) = 0.11; allow 4 s.d.
    assert!((chi2 - 1.0).abs() < 0.45, "χ²/dof = {chi2}");
    assert!(chi2_flipped > 20.0, "χ²/dof of the rotated crescent = {chi2_flipped}");
    // Observing parameters come from the file: giving them too is an error.
    let e = EhtSettings::parse(&format!("eht(obs='{}', tint=60)", path.display())).unwrap_err().to_string();
    assert!(e.contains("tint"), "{e}");
}

#[test]
fn malformed_exports_are_clear_errors() {
    let good = std::fs::read_to_string(data_file()).unwrap();
    let lines: Vec<&str> = good.lines().collect();
    let last = lines.len() - 1;
    let with = |i: usize, new: &str| {
        let mut l = lines.clone();
        l[i] = new;
        l.join("\n")
    };
    let cases: Vec<(String, &str)> = vec![
        (lines[..last].join("\n").replace("Iamp", "RRamp"), "polrep 'stokes'"),
        (with(last, "1.0 10.0 ALMA"), "20 columns"),
        (with(last, &lines[last].replacen(lines[last].split_whitespace().nth(2).unwrap(), "XXXX", 1)), "XXXX"),
        (with(last, &lines[last].replacen("10.00", "nan", 1)), "tint"),
        (lines.iter().filter(|l| !l.starts_with("# RF")).copied().collect::<Vec<_>>().join("\n"), "RF:"),
        (lines.iter().filter(|l| l.starts_with('#')).copied().collect::<Vec<_>>().join("\n"), "no data rows"),
        (String::new(), "SRC:"),
        ("\u{0}\u{1}garbage".into(), "SRC:"),
    ];
    for (text, want) in cases {
        let e = EhtimObservation::parse(&text, "t.txt").unwrap_err().to_string();
        assert!(e.contains(want), "expected `{want}` in: {e}");
    }
    let e = read_ehtim_txt("/nonexistent/obs.txt").unwrap_err().to_string();
    assert!(e.contains("/nonexistent/obs.txt"), "{e}");
}

#[test]
fn fits_images_read_back_with_ehtims_sky_conventions() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("img.fits");
    let (h, w) = (5, 3);
    let img: Vec<f64> = (0..h * w).map(|i| i as f64 * 0.125 - 0.3).collect();
    let psize = 5.0 * std::f64::consts::PI / (180.0 * 3600.0 * 1e6);
    let sky = FitsSky {
        object: "SgrA".into(),
        pixel_rad: psize,
        ra_deg: 266.41667,
        dec_deg: -29.00778,
        frequency_hz: 230e9,
        mjd: 57850.0,
    };
    write_fits_image(&p, &img, h, w, &sky).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(bytes.len() % 2880, 0);
    assert_eq!(bytes.len(), 2 * 2880);
    // The first value of the data block is the bottom-left pixel (FITS rows go up, south first).
    assert_eq!(f64::from_be_bytes(bytes[2880..2888].try_into().unwrap()), img[(h - 1) * w]);
    let back = read_fits_image(&p).unwrap();
    assert_eq!((back.height, back.width), (h, w));
    assert_eq!(back.data, img);
    for (k, v) in [("BITPIX", "-64"), ("NAXIS1", "3"), ("NAXIS2", "5"), ("CTYPE1", "RA---SIN"), ("BUNIT", "JY/PIXEL")] {
        assert_eq!(back.get(k), Some(v), "{k}");
    }
    assert_eq!(back.get("OBJECT"), Some("SgrA"));
    let deg = psize.to_degrees();
    assert!((back.number("CDELT1").unwrap() + deg).abs() < 1e-13 * deg, "RA decreases to the right");
    assert!((back.number("CDELT2").unwrap() - deg).abs() < 1e-13 * deg);
    assert_eq!((back.number("CRPIX1"), back.number("CRPIX2")), (Some(2.0), Some(3.0)));
    assert!((back.number("CRVAL1").unwrap() - 266.41667).abs() < 1e-9);
    assert!((back.number("FREQ").unwrap() - 230e9).abs() < 1.0);
    // Refused: wrong pixel count, a non-positive pixel size; a truncated file reads as an error.
    assert!(write_fits_image(&p, &img[1..], h, w, &sky).is_err());
    assert!(write_fits_image(&p, &img, h, w, &FitsSky { pixel_rad: 0.0, ..sky.clone() }).is_err());
    std::fs::write(&p, &bytes[..2880 + 100]).unwrap();
    assert!(read_fits_image(&p).unwrap_err().to_string().contains("truncated"));
}
