//! The measures of one image against the truth (reduced χ² of the closure data, normalised
//! cross-correlation at the best integer shift, with the truth and its blur to the nominal
//! resolution; ring diameter and width; InverseBench's black-hole measures: PSNR at the best
//! integer shift, blur PSNR at 10, 15 and 20 µas, closure χ² with 1/χ² below 1) and the study's
//! table (`table.csv`, `table.md`).

use std::path::Path;

use scoreprior_core::forward::interferometry::{
    best_shift, blur_psnr, chi2_inversebench, gaussian_blur, psnr_best_shift, rescale_to_flux, ring_fit,
    ClosureProblem, EhtimObservation,
};
use scoreprior_core::io::atomic_write;
use serde::{Deserialize, Deserializer, Serialize};

use scoreprior::experiment::{invalid_setting, Result};

/// One row of the table: one method on one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EhtRow {
    /// Source (`ring`, `crescent`, `double`).
    pub source: String,
    /// `ehtim RML` or `DPI <prior>`.
    pub method: String,
    /// Image side (pixels) over the same field of view.
    pub npix: usize,
    /// Reduced χ² of the closure phases.
    pub chi2_phase: f64,
    /// Reduced χ² of the log closure amplitudes.
    pub chi2_log_amp: f64,
    /// Normalised cross-correlation with the truth blurred to the nominal resolution (best shift).
    pub nxcorr_blurred: f64,
    /// Normalised cross-correlation with the truth (best shift).
    pub nxcorr: f64,
    /// Ring diameter (µas), for rings and crescents.
    pub diameter: Option<f64>,
    /// Ring width (FWHM, µas), for rings and crescents.
    pub width: Option<f64>,
    /// Wall time (s): eht-imaging's imaging time; DPI's warm start, training and sampling; a
    /// sampler's sampling.
    pub seconds: f64,
    /// Seconds per posterior sample: a sampler's sampling time over its samples; DPI's whole
    /// run (warm start and training included) over its samples; eht-imaging's one image.
    #[serde(default)]
    pub seconds_per_sample: Option<f64>,
    /// Median over the posterior samples of their closure-phase χ² (a posterior method's mean
    /// averages over positions and shapes, so its own χ² says little of how well the samples fit).
    #[serde(default)]
    pub chi2_phase_samples: Option<f64>,
    /// Median over the posterior samples of their log-closure-amplitude χ².
    #[serde(default)]
    pub chi2_log_amp_samples: Option<f64>,
    /// Mean posterior standard deviation over pixels, relative to the mean image's peak (DPI).
    pub std_rel: Option<f64>,
    /// Fraction of pixels with |truth − mean| ≤ 2·std, truth aligned to the mean (DPI).
    pub within_2std: Option<f64>,
    /// InverseBench's PSNR (dB): both images divided by the truth's peak and clipped to
    /// [0, 1], data range 1, at the integer shift of the image (up to a quarter of the field)
    /// that maximises it ([`psnr_best_shift`]); ∞ for the truth itself.
    #[serde(default, deserialize_with = "nan_if_null")]
    pub psnr: f64,
    /// InverseBench's blur PSNR (dB) at 10 µas FWHM: both images (as for `psnr`, at its shift)
    /// blurred by a circular Gaussian ([`blur_psnr`]).
    #[serde(default, deserialize_with = "nan_if_null")]
    pub blur_psnr_10: f64,
    /// Blur PSNR at 15 µas FWHM.
    #[serde(default, deserialize_with = "nan_if_null")]
    pub blur_psnr_15: f64,
    /// Blur PSNR at 20 µas FWHM.
    #[serde(default, deserialize_with = "nan_if_null")]
    pub blur_psnr_20: f64,
    /// InverseBench's closure-phase χ²: of the image rescaled to the observed total flux,
    /// 1/χ² when below 1 ([`chi2_inversebench`]); 1 is the target.
    #[serde(default, deserialize_with = "nan_if_null")]
    pub chi2_phase_ib: f64,
    /// InverseBench's log-closure-amplitude χ², likewise.
    #[serde(default, deserialize_with = "nan_if_null")]
    pub chi2_log_amp_ib: f64,
}

/// A number of a stored row, `null` (JSON's ∞ and NaN) read as NaN: the image measures of a
/// stored row are recomputed anyway.
fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// The FWHMs (µas) of InverseBench's blur PSNR.
pub(super) const BLUR_FWHM_UAS: [f64; 3] = [10.0, 15.0, 20.0];

/// The observed total flux (Jy) as InverseBench estimates it (`estimate_flux` of
/// `devzhk/InverseBench`, `inverse_problems/blackhole.py`): the median visibility amplitude on
/// the ALMA–APEX baseline (2 km, which resolves nothing of these sources); without that
/// baseline, on the shortest one.
pub(super) fn observed_flux(obs: &EhtimObservation) -> f64 {
    let name = |i: usize| obs.stations.get(i).map_or("", |s| s.name.as_str());
    let pair = |r: &&scoreprior_core::forward::interferometry::VisRecord| {
        matches!((name(r.t1), name(r.t2)), ("ALMA", "APEX") | ("APEX", "ALMA"))
    };
    let mut amps: Vec<f64> = obs.records.iter().filter(pair).map(|r| r.re.hypot(r.im)).collect();
    if amps.is_empty() {
        let shortest = obs.records.iter().map(|r| r.u.hypot(r.v)).fold(f64::INFINITY, f64::min);
        amps = obs
            .records
            .iter()
            .filter(|r| r.u.hypot(r.v) <= shortest * (1.0 + 1e-9))
            .map(|r| r.re.hypot(r.im))
            .collect();
    }
    median(amps)
}

/// The measures of one image against the truth on the same grid (`observed_flux`: the
/// observation's total flux, [`observed_flux`], for InverseBench's χ²).
#[allow(clippy::too_many_arguments)]
pub(super) fn measure(
    source: &str,
    method: String,
    image: &[f64],
    truth: &[f64],
    n: usize,
    fov: f64,
    problem: &ClosureProblem,
    resolution_uas: f64,
    observed_flux: f64,
) -> Result<EhtRow> {
    let chi = problem.chi2(image)?;
    let blurred = gaussian_blur(truth, n, resolution_uas / (fov / n as f64));
    // InverseBench's measures: images in [0, 1] with the truth's peak at 1; its χ² of the image
    // at the observed flux (closure quantities do not depend on the scale: the same χ² up to
    // rounding, read with 1/χ² below 1).
    let peak = truth.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let unit = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x / peak).collect() };
    let (t, x) = (unit(truth), unit(image));
    let (psnr, shift) = psnr_best_shift(&t, &x, n, n / 4);
    let blur = |fwhm_uas: f64| blur_psnr(&t, &x, n, fwhm_uas / (fov / n as f64), shift);
    let chi_ib = problem.chi2(&rescale_to_flux(image, observed_flux))?;
    let ring = matches!(source, "ring" | "crescent");
    let fit = if ring { ring_fit(image, n, fov / n as f64) } else { None };
    Ok(EhtRow {
        source: source.to_string(),
        method,
        npix: n,
        chi2_phase: chi.phase,
        chi2_log_amp: chi.log_amp,
        nxcorr_blurred: best_shift(&blurred, image, n, n / 4).0,
        nxcorr: best_shift(truth, image, n, n / 4).0,
        diameter: fit.map(|f| f.diameter),
        width: fit.map(|f| f.width),
        seconds: 0.0,
        seconds_per_sample: None,
        chi2_phase_samples: None,
        chi2_log_amp_samples: None,
        std_rel: None,
        within_2std: None,
        psnr,
        blur_psnr_10: blur(BLUR_FWHM_UAS[0]),
        blur_psnr_15: blur(BLUR_FWHM_UAS[1]),
        blur_psnr_20: blur(BLUR_FWHM_UAS[2]),
        chi2_phase_ib: chi2_inversebench(chi_ib.phase),
        chi2_log_amp_ib: chi2_inversebench(chi_ib.log_amp),
    })
}

/// Writes `table.csv` and `table.md` of the rows into `out`.
pub fn write_table(rows: &[EhtRow], out: &Path) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| invalid_setting("out", e.to_string()))?;
    }
    let bytes = w.into_inner().map_err(|e| invalid_setting("out", e.to_string()))?;
    atomic_write(out.join("table.csv"), &bytes)?;
    let opt = |v: Option<f64>, p: usize| v.map_or("–".to_string(), |x| format!("{x:.p$}"));
    let db = |v: f64| if v == f64::INFINITY { "∞".to_string() } else { format!("{v:.2}") };
    let mut md = String::from(
        "| source | method | pixels | χ² closure phase | χ² log closure amp | nxcorr (blurred truth) | nxcorr (truth) | diameter µas | width µas | seconds | s / sample | χ² of samples (ψ / ln A) | std / peak | truth within 2 std | PSNR dB | blur PSNR 10 µas | blur PSNR 15 µas | blur PSNR 20 µas | IB χ² closure phase | IB χ² log closure amp |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} |\n",
            r.source,
            r.method,
            r.npix,
            r.chi2_phase,
            r.chi2_log_amp,
            r.nxcorr_blurred,
            r.nxcorr,
            opt(r.diameter, 1),
            opt(r.width, 1),
            if r.method == "truth" { "–".into() } else { format!("{:.0}", r.seconds) },
            opt(r.seconds_per_sample, if r.seconds_per_sample.is_some_and(|v| v < 10.0) { 2 } else { 0 }),
            match (r.chi2_phase_samples, r.chi2_log_amp_samples) {
                (Some(a), Some(b)) => format!("{a:.2} / {b:.2}"),
                _ => "–".into(),
            },
            opt(r.std_rel, 3),
            opt(r.within_2std, 2),
            db(r.psnr),
            db(r.blur_psnr_10),
            db(r.blur_psnr_15),
            db(r.blur_psnr_20),
            r.chi2_phase_ib,
            r.chi2_log_amp_ib,
        ));
    }
    atomic_write(out.join("table.md"), md.as_bytes())?;
    Ok(())
}

/// The medians over the samples (row-major `(k, n²)`) of their closure-phase and
/// log-closure-amplitude χ².
pub(super) fn samples_chi2(problem: &ClosureProblem, samples: &[f64], n: usize) -> Result<(f64, f64)> {
    let mut phase = Vec::new();
    let mut log_amp = Vec::new();
    for x in samples.chunks(n * n) {
        let c = problem.chi2(x)?;
        phase.push(c.phase);
        log_amp.push(c.log_amp);
    }
    Ok((median(phase), median(log_amp)))
}

/// The median of `v` (NaN when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        k if k % 2 == 1 => v[k / 2],
        k => 0.5 * (v[k / 2 - 1] + v[k / 2]),
    }
}
