//! The collaboration's pre-processing, step by step, against ehtim 1.3.2 running the same
//! steps of its eht-imaging pipeline on the same files (April 11, both bands; reference
//! tables written by `benches/reference/eht_preprocess_reference.py`, see
//! `tests/data/eht-m87/README.md`): scan averages record by record, the joined bands, the
//! zero-baseline flux and rescaling, the systematic noise, the station order and the closure
//! counts.

use std::collections::HashMap;
use std::path::PathBuf;

use scoreprior_core::forward::interferometry::{
    add_fractional_noise, closure_sets_with, join_bands, median_amplitude, order_stations_by_snr, read_uvfits,
    rescale_short_baselines, scan_average, EhtimObservation, Preprocessing, ZERO_BASELINE_UV,
};
use scoreprior_core::forward::spec::EhtSettings;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/eht-m87").join(name)
}

fn band(b: &str) -> EhtimObservation {
    read_uvfits(data(&format!("SR1_M87_2017_101_{b}_hops_netcal_StokesI.uvfits"))).unwrap()
}

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data("ehtim-preprocess-101.json")).unwrap()).unwrap()
}

/// ehtim's table: (time, t1, t2) → the row's named columns.
fn csv(name: &str) -> HashMap<(String, String, String), HashMap<String, f64>> {
    let text = std::fs::read_to_string(data(name)).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let cols = head.iter().zip(&f).filter_map(|(h, v)| v.parse::<f64>().ok().map(|v| (h.to_string(), v)));
            ((format!("{:.9}", f[0].parse::<f64>().unwrap()), f[1].to_string(), f[2].to_string()), cols.collect())
        })
        .collect()
}

/// The largest relative deviations (time, uv, V, σ, tint) of `obs` from ehtim's table, every
/// record matched by time and baseline (either orientation: ehtim may turn a baseline round,
/// negating uv and conjugating V). `sigma_column` names ehtim's σ.
fn compare(obs: &EhtimObservation, table: &str, sigma_column: &str) -> [f64; 4] {
    let t = csv(table);
    assert_eq!(obs.records.len(), t.len(), "{table}: record count");
    let name = |i: usize| obs.stations[i].name.clone();
    let mut dev = [0f64; 4];
    for r in &obs.records {
        let time = format!("{:.9}", r.time_hour);
        let (row, s) = match t.get(&(time.clone(), name(r.t1), name(r.t2))) {
            Some(row) => (row, 1.0),
            None => (
                t.get(&(time.clone(), name(r.t2), name(r.t1)))
                    .unwrap_or_else(|| panic!("{table}: no row at {time} for {}–{}", name(r.t1), name(r.t2))),
                -1.0,
            ),
        };
        let rel = |a: f64, b: f64, scale: f64| (a - b).abs() / scale;
        let uv = r.u.hypot(r.v);
        dev[0] = dev[0].max(rel(s * r.u, row["u"], uv)).max(rel(s * r.v, row["v"], uv));
        let amp = r.re.hypot(r.im);
        dev[1] = dev[1].max(rel(r.re, row["vis_re"], amp)).max(rel(s * r.im, row["vis_im"], amp));
        dev[2] = dev[2].max(rel(r.sigma, row[sigma_column], row[sigma_column]));
        dev[3] = dev[3].max(rel(r.tint_s, row["tint"], row["tint"]));
    }
    dev
}

/// The file's numbers are 32-bit floats (relative precision 6e-8): ehtim averages them in
/// 32 bits where we use 64, so V and σ agree to a few units of the data's last bit, uv
/// (64-bit group parameters) to rounding.
fn within(dev: [f64; 4], what: &str) {
    println!("{what}: relative deviations uv {:.1e}, V {:.1e}, σ {:.1e}, tint {:.1e}", dev[0], dev[1], dev[2], dev[3]);
    assert!(dev[0] < 1e-12 && dev[1] < 3e-7 && dev[2] < 1e-7 && dev[3] < 1e-12, "{what}: {dev:?}");
}

#[test]
fn scan_averages_equal_ehtims_record_by_record() {
    let r = reference();
    for b in ["lo", "hi"] {
        let raw = band(b);
        assert_eq!(raw.records.len() as u64, r[b]["a_load"]["n_vis"].as_u64().unwrap());
        let avg = scan_average(&raw);
        assert_eq!(avg.records.len() as u64, r[b]["b_avg"]["n_vis"].as_u64().unwrap(), "{b}");
        let dev = compare(&avg, &format!("ehtim-preprocess-101_{b}_avg.csv"), "sigma");
        within(dev, b);
    }
}

#[test]
fn joined_bands_zero_baselines_and_systematic_noise_equal_ehtims() {
    let r = reference();
    let names = ["lo".to_string(), "hi".to_string()];
    let mut obs = join_bands(&[scan_average(&band("lo")), scan_average(&band("hi"))], &names).unwrap();
    assert_eq!(obs.records.len() as u64, r["c_join"]["n_vis"].as_u64().unwrap());
    let f0 = median_amplitude(&obs, "AA", "AP").unwrap();
    let f0_ehtim = r["c_join"]["zbl_tot"].as_f64().unwrap();
    assert!((f0 - f0_ehtim).abs() < 3e-8 * f0_ehtim, "{f0} vs {f0_ehtim}");
    let short = obs.records.iter().filter(|r| r.u.hypot(r.v) < ZERO_BASELINE_UV).count();
    assert_eq!(short as u64, r["c_join"]["n_rescaled_uvdist_lt_0.1e9"].as_u64().unwrap());
    rescale_short_baselines(&mut obs, 0.6 / f0, ZERO_BASELINE_UV);
    let dev = compare(&obs, "ehtim-preprocess-101_joined.csv", "sigma");
    within(dev, "rescaled");
    add_fractional_noise(&mut obs, 0.02);
    let dev = compare(&obs, "ehtim-preprocess-101_joined.csv", "sigma_frac");
    within(dev, "with systematic noise");

    order_stations_by_snr(&mut obs);
    let order: Vec<&str> = obs.stations.iter().filter(|s| s.name != "SR").map(|s| s.name.as_str()).collect();
    let ehtim: Vec<&str> =
        r["c_join"]["tarr_after_reorder_tarr_snr"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(order, ehtim);
}

/// The whole chain as `eht(obs='lo, hi', pipeline=eht2017)` runs it, and its closure sets:
/// with `cp_uv_min` our independent set spans what ehtim's `min-cut0bl` set spans (ehtim's
/// plain `min` loses the triangles whose edge to the reference station was cut); log closure
/// amplitudes are ehtim's minimal count.
#[test]
fn the_pipeline_setting_gives_ehtims_closure_counts() {
    let r = reference();
    let e = &r["e_closures"];
    let files = format!(
        "{}, {}",
        data("SR1_M87_2017_101_lo_hops_netcal_StokesI.uvfits").display(),
        data("SR1_M87_2017_101_hi_hops_netcal_StokesI.uvfits").display()
    );
    let settings = EhtSettings::parse(&format!("eht(obs='{files}', fov=128, pipeline=eht2017)")).unwrap().unwrap();
    assert_eq!(settings.preprocessing, Preprocessing::eht2017());
    let pre = settings.observation().unwrap().unwrap();
    assert!((pre.total_flux_jy.unwrap() - e_f0(&r)).abs() < 3e-8 * e_f0(&r));
    let cov = pre.observation.coverage();
    assert_eq!(cov.times().len() as u64, e["n_times"].as_u64().unwrap());
    let cut = closure_sets_with(&cov, ZERO_BASELINE_UV);
    let all = closure_sets_with(&cov, 0.0);
    assert_eq!(cut.triangles.len() as u64, e["n_cphase_min_cut0bl_uvmin"].as_u64().unwrap());
    assert_eq!(all.triangles.len() as u64, e["n_cphase_min"].as_u64().unwrap());
    assert_eq!(cut.quadrangles.len() as u64, e["n_logcamp_min"].as_u64().unwrap());
    // Closure σ propagated from the pre-processed visibilities, against ehtim's medians.
    let eht = settings.interferometer(32).unwrap();
    let p = eht.closure_problem(&pre.observation.visibilities(), true).unwrap();
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        0.5 * (v[(v.len() - 1) / 2] + v[v.len() / 2])
    };
    let sig = p.model.noise().sigma();
    let (cp, lca) = (median(&sig[..p.n_phases]).to_degrees(), median(&sig[p.n_phases..]));
    let (cp_ehtim, lca_ehtim) =
        (e["median_sigmacp_deg_min_uvmin"].as_f64().unwrap(), e["median_logcamp_sigma_min"].as_f64().unwrap());
    println!(
        "median closure σ: phases {cp:.4}° (ehtim {cp_ehtim:.4}°), log amplitudes {lca:.5} (ehtim {lca_ehtim:.5})"
    );
    // Not compared: the sets differ (ehtim's imager keeps 140 triangles through the reference
    // station, we keep all 217 independent ones; its quadrangles follow its own pattern), and
    // ehtim's medians are before the systematic noise. The σ of each visibility are equal
    // (above), and the propagation is the same linear formula.
    // The interferometer the forward spec builds uses the cut.
    assert_eq!(eht.closures().triangles.len(), cut.triangles.len());
    // `snrcut=1` drops the noise-dominated visibilities before closures are formed.
    let cut1 = EhtSettings::parse(&format!("eht(obs='{files}', pipeline=eht2017, snrcut=1)")).unwrap().unwrap();
    let pre1 = cut1.observation().unwrap().unwrap();
    let low = pre.observation.records.iter().filter(|r| r.re.hypot(r.im) < r.sigma).count();
    assert_eq!((pre1.dropped_low_snr, pre1.observation.records.len()), (low, 439 - low));
    println!("snrcut=1 drops {low} of 439 visibilities");
    // A gain error adds in quadrature to each station's budget.
    let g = EhtSettings::parse(&format!("eht(obs='{files}', pipeline=eht2017, gain_error=0.1)")).unwrap().unwrap();
    let pg = g.observation().unwrap().unwrap();
    for (a, b) in pre.station_noise.iter().zip(&pg.station_noise) {
        assert!((b * b - a * a - 0.01).abs() < 1e-12, "{a} {b}");
    }
    // σ of the visibility data carries the station budget on top: never below the closure σ.
    let sig = pre.visibility_sigma();
    assert!(sig.iter().zip(&cov.points).all(|(s, p)| *s >= p.sigma));
    assert!(sig.iter().zip(&cov.points).any(|(s, p)| *s > 1.5 * p.sigma));
}

fn e_f0(r: &serde_json::Value) -> f64 {
    r["c_join"]["zbl_tot"].as_f64().unwrap()
}

#[test]
fn preprocessing_settings_are_checked_before_any_file_is_read() {
    for (spec, needle) in [
        ("eht(pipeline=eht2017)", "needs `obs='FILE'`"),
        ("eht(average=scan)", "needs `obs='FILE'`"),
        ("eht(obs='a.uvfits', systematic=1.5)", "`systematic`"),
        ("eht(obs='a.uvfits', systematic=-0.1)", "`systematic`"),
        ("eht(obs='a.uvfits', zbl=0)", "`zbl`"),
        ("eht(obs='a.uvfits', cp_uv_min=-1)", "`cp_uv_min`"),
        ("eht(obs='a.uvfits', average=daily)", "`average`"),
        ("eht(obs='a.uvfits', pipeline=difmap)", "`pipeline`"),
        ("eht(obs='a.uvfits, ', fov=128)", "comma-separated"),
        ("eht(obs='a.uvfits', snrcut=-1)", "`snrcut`"),
        ("eht(obs='a.uvfits', gain_error=1)", "`gain_error`"),
        ("eht(gain_error=0.1)", "needs `obs='FILE'`"),
    ] {
        let e = EhtSettings::parse(spec).unwrap_err().to_string();
        assert!(e.contains(needle), "{spec}: {e}");
    }
    // Bands of different days are not joined; an observation without AA–AP cannot give the
    // zero-baseline flux; both name the files.
    let lo = band("lo");
    let mut other_day = band("hi");
    other_day.mjd += 1.0;
    let e = join_bands(&[lo.clone(), other_day], &["lo.uvfits".into(), "hi.uvfits".into()]).unwrap_err().to_string();
    assert!(e.contains("lo.uvfits") && e.contains("hi.uvfits") && e.contains("one day"), "{e}");
    let mut no_aa = lo;
    no_aa.stations.iter_mut().filter(|s| s.name == "AA").for_each(|s| s.name = "XX".into());
    let e = Preprocessing::eht2017().apply(&[no_aa], &["lo.uvfits".into()]).unwrap_err().to_string();
    assert!(e.contains("lo.uvfits") && e.contains("AA–AP") && e.contains("zbl"), "{e}");
}
