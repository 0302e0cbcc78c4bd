//! The denoising runs: run `j` is `scoreprior dpi` on test image `j · stride` with the main
//! job's settings (σ = 0.2, NCSN++ DSM surrogate), then measured against the image itself.

use std::path::Path;
use std::time::Instant;

use super::measures::{finite, finite_samples, mean_of, pixel_measures, PixelMeasures};
use super::report::CalibrationRow;
use super::settings::CalibrationSettings;
use scoreprior::experiment::{invalid_setting, ExperimentResult, Result};
use scoreprior::monitor::Monitor;

use crate::dpi_run::DpiRun;

/// The settings of denoising run `j` (`settings.json`): its `DpiSettings` (folder-independent).
pub(super) fn denoising_run_settings(
    s: &CalibrationSettings,
    j: usize,
    prior_sha256: &str,
) -> Result<serde_json::Value> {
    let mut d = s.denoising_run(j, Path::new(""));
    d.output.resume = false;
    d.output.force = false;
    let dpi = serde_json::to_value(&d).map_err(|e| invalid_setting("--out", e.to_string()))?;
    Ok(serde_json::json!({
        "problem": "denoising", "index": j * s.stride, "dpi": dpi, "prior_sha256": prior_sha256,
        "levels": s.levels,
    }))
}

/// Forwards a run's notes to the study's progress callback.
struct Notes<'a>(&'a mut dyn FnMut(&str));

impl Monitor for Notes<'_> {
    fn note(&mut self, text: &str) {
        (self.0)(text)
    }
}

/// Runs denoising run `j` into `dir` (through [`DpiSettings::run`]) and measures it.
///
/// [`DpiSettings::run`]: scoreprior::experiment::DpiSettings::run
pub(super) fn denoising_run(
    s: &CalibrationSettings,
    j: usize,
    dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(ExperimentResult, CalibrationRow)> {
    // The DPI run owns its own sub-folder (`dpi/`): the study's `settings.json` and `row.json`
    // beside it are not files of a `dpi` run, and the output guard refuses a run folder that
    // holds files no run wrote.
    let dpi_dir = dir.join("dpi");
    let mut dpi = s.denoising_run(j, &dpi_dir);
    // A run stopped part-way continues from its checkpoint (its manifest must match).
    dpi.output.resume = dpi_dir.join("run.json").exists();
    let t0 = Instant::now();
    let res = dpi.run(&mut Notes(progress))?;
    let seconds = t0.elapsed().as_secs_f64();
    let (h, w) = res.shape;
    let truth = res.x_true.clone().ok_or_else(|| invalid_setting("test_images", "the run has no ground truth"))?;
    let (samples, mean) = finite_samples_and_mean(&res.samples.x, h * w, "--steps", dir)?;
    let pm = pixel_measures(&samples, &truth, &mean, &s.levels);
    let rep = &res.report;
    let row = CalibrationRow {
        mean_psnr: rep.mean_metrics.and_then(|m| finite(m.psnr)),
        wiener_psnr: rep.references.and_then(|r| r.wiener).and_then(|m| finite(m.psnr)),
        ..pixel_row(
            format!("denoising-{}", j * s.stride),
            j * s.stride,
            "image".into(),
            &s.levels,
            pm,
            samples.len(),
            seconds,
        )
    };
    Ok((res, row))
}

/// The samples (`d` pixels each) of the run in `dir` whose pixels are all finite, and their
/// mean; none is an error of `flag`. (Shared with the EHT runs.)
pub(super) fn finite_samples_and_mean<'a>(
    x: &'a [f64],
    d: usize,
    flag: &'static str,
    dir: &Path,
) -> Result<(Vec<&'a [f64]>, Vec<f64>)> {
    let samples = finite_samples(x, d);
    if samples.is_empty() {
        return Err(invalid_setting(flag, format!("{}: no sample has finite pixels", dir.display())));
    }
    let mean = mean_of(&samples, d);
    Ok((samples, mean))
}

/// The row of run `run` (`index`, `kind`) at `levels`: its per-pixel measures `pm` over
/// `samples_used` samples and its wall time; the problem's own measures (PSNR, χ², offset,
/// ring) are left empty for the caller to set. (Shared with the EHT runs.)
pub(super) fn pixel_row(
    run: String,
    index: usize,
    kind: String,
    levels: &[f64],
    pm: PixelMeasures,
    samples_used: usize,
    seconds: f64,
) -> CalibrationRow {
    CalibrationRow {
        run,
        index,
        kind,
        levels: levels.to_vec(),
        pixel_coverage: pm.coverage,
        source_coverage: pm.source_coverage,
        within_2std: pm.within_2std,
        std_rel: pm.std_rel,
        samples_used,
        mean_psnr: None,
        wiener_psnr: None,
        chi2_phase: None,
        chi2_log_amp: None,
        shift: None,
        offset_uas: None,
        ring: None,
        mcmc: None,
        seconds,
    }
}
