//! The measures of one image against the truth (reduced χ² of the closure data, normalised
//! cross-correlation at the best integer shift, with the truth and its blur to the nominal
//! resolution; ring diameter and width) and the study's table (`table.csv`, `table.md`).

use std::path::Path;

use scoreprior_core::forward::interferometry::{best_shift, gaussian_blur, ring_fit, ClosureProblem};
use scoreprior_core::io::atomic_write;
use serde::{Deserialize, Serialize};

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
    /// Wall time (s): eht-imaging's imaging time; DPI's warm start, training and sampling.
    pub seconds: f64,
    /// Mean posterior standard deviation over pixels, relative to the mean image's peak (DPI).
    pub std_rel: Option<f64>,
    /// Fraction of pixels with |truth − mean| ≤ 2·std, truth aligned to the mean (DPI).
    pub within_2std: Option<f64>,
}

/// The measures of one image against the truth on the same grid.
pub(super) fn measure(
    source: &str,
    method: String,
    image: &[f64],
    truth: &[f64],
    n: usize,
    fov: f64,
    problem: &ClosureProblem,
    resolution_uas: f64,
) -> Result<EhtRow> {
    let chi = problem.chi2(image)?;
    let blurred = gaussian_blur(truth, n, resolution_uas / (fov / n as f64));
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
        std_rel: None,
        within_2std: None,
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
    let mut md = String::from(
        "| source | method | pixels | χ² closure phase | χ² log closure amp | nxcorr (blurred truth) | nxcorr (truth) | diameter µas | width µas | seconds | std / peak | truth within 2 std |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.3} | {:.3} | {} | {} | {} | {} | {} |\n",
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
            opt(r.std_rel, 3),
            opt(r.within_2std, 2),
        ));
    }
    atomic_write(out.join("table.md"), md.as_bytes())?;
    Ok(())
}
