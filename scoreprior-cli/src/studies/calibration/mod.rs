//! Calibration of DPI posteriors where the truth is known: over `n` EHT closure problems or `n`
//! denoising problems, the observed coverage of the samples' central credible intervals (per
//! pixel; for EHT also ring diameter, width and position angle) against their nominal level.
//!
//! Each run lives in `out/<problem>-<index>/` (the run's [`ExperimentResult::save`] files,
//! `settings.json` and `row.json`); a finished run with the same settings is read back, a folder
//! holding other settings is an error naming every differing key ([`super::check_sub_run`]).
//!
//! Conventions:
//! - EHT data: image `i` of [`CompactSources`] (stream seed `source_seed`), 32×32 over 160 µas at
//!   peak 1 (the prior's units, observed as they are, as `dpi --forward eht(…)` observes a truth),
//!   seen by the EHT 2017 array on the Sgr A* track ([`Observation::sgr_a_star`], point pixels)
//!   with thermal noise of seed `seed + i`; DPI fits the closure phases and debiased log closure
//!   amplitudes as `eht-study`'s surrogate stage does.
//! - Per-pixel central interval at level `L`: the empirical quantiles `q_lo = (1 − L)/2` and
//!   `q_hi = 1 − q_lo` of the samples (linear interpolation between order statistics, numpy's
//!   default), computed from every sample with finite pixels (no outlier filter); a pixel is
//!   covered when `q_lo ≤ truth ≤ q_hi`. The intervals are nested, so coverage is
//!   non-decreasing in the level.
//! - EHT: closures do not fix the position, so the truth is first moved by the integer shift (at
//!   most a quarter of the field) that best correlates it with the posterior mean, as
//!   [`super::eht`] does.
//! - Position angle of a ring (degrees, east of north, in `[0, 360)`): the direction of the
//!   brightness-weighted mean of the unit vectors from the fitted ring centre to every pixel
//!   (pixel `(i, j)` lies `c_x − j` pixels east and `c_y − i` north of a centre `(c_y, c_x)`; row 0
//!   is north, east is to the left), see [`position_angle`]. Its interval is circular: the
//!   samples' angles are centred on their circular mean before the quantiles are taken.
//! - Ring measures come from [`ring_fit`] (5 µas pixels) of the truth and of every sample; a
//!   source whose truth is a blob mixture (or has no ring fit) is left out of the ring coverage
//!   (counted in `coverage.json`); a ring truth none of whose samples has a fit counts as not
//!   covered.
//!
//! - Parametric reference (`parametric`, EHT, [`ParametricReference`]): for a ring, crescent or
//!   crescent-plus-blob truth, the exact posterior over its generator's parameters (uniform over
//!   [`CompactSources`]'s ranges) under the same closure likelihood and data, sampled by adaptive
//!   Metropolis ([`ParametricPosterior`]) and measured as DPI's samples are (each draw's shape at
//!   the truth's offset, which closures leave to the prior, at the truth's flux). Its runs live in
//!   `out/eht-<index>-parametric/`, apart from DPI's, so DPI's settings are unchanged.
//!
//! The files: `settings.rs` (the problems, [`CalibrationSettings`] and their checks),
//! `measures.rs` (quantiles, central and circular intervals, position angle, ring and pixel
//! coverage), `eht_runs.rs` and `denoising.rs` (one run of each problem, measured), `parametric.rs`
//! (the parametric reference of an EHT run), `report.rs`
//! (rows, summary, tables and figure, [`CalibrationReport`]) and `png.rs` (the PNG figure); this
//! one runs the study ([`run`]).
//!
//! [`ExperimentResult::save`]: scoreprior::experiment::ExperimentResult::save
//! [`CompactSources`]: scoreprior_core::forward::interferometry::CompactSources
//! [`Observation::sgr_a_star`]: scoreprior_core::forward::interferometry::Observation::sgr_a_star
//! [`ring_fit`]: scoreprior_core::forward::interferometry::ring_fit
//! [`ParametricPosterior`]: scoreprior_core::forward::interferometry::ParametricPosterior

mod denoising;
mod eht_runs;
mod measures;
mod parametric;
mod png;
mod report;
mod settings;

use std::path::Path;

pub use measures::{
    central_interval, circular_interval, circular_mean, position_angle, quantile, ring_angle, ring_measures_on,
    Interval, RingCoverage, RingMeasures, SOURCE_FRACTION,
};
pub use parametric::{McmcSummary, ParameterInterval, ParametricReference};
pub use report::{CalibrationReport, CalibrationRow, CoverageSummary, LevelCoverage, ParametricReport};
pub use settings::{CalibrationProblem, CalibrationSettings, EHT_FOV_UAS, EHT_NPIX};

use denoising::{denoising_run, denoising_run_settings};
use eht_runs::{eht_run, eht_run_settings, remeasure_eht, EhtContext};
use parametric::{parametric_run, parametric_run_settings};
use report::{read_json, summarise, write_json};
use scoreprior::experiment::inputs::resolve;
use scoreprior::experiment::Result;

pub use super::Difference;

/// The first key (dotted, keys in sorted order) whose value differs between two settings
/// documents, with both values; `None` when equal.
///
/// ```
/// use scoreprior_cli::studies::calibration::first_difference;
/// let a = serde_json::json!({"steps": 600, "map": {"rounds": 5}});
/// let b = serde_json::json!({"steps": 20, "map": {"rounds": 5}});
/// assert_eq!(first_difference(&a, &b).unwrap(), ("steps".into(), "600".into(), "20".into()));
/// assert!(first_difference(&a, &a).is_none());
/// ```
pub fn first_difference(old: &serde_json::Value, new: &serde_json::Value) -> Option<Difference> {
    super::settings_differences(old, new).into_iter().next()
}

/// Runs the study into `out` (one folder per run, `out/<problem>-<index>/`), or reads finished
/// runs back, and returns the rows with their summary; [`CalibrationReport::write`] then writes
/// the tables and the figure.
///
/// Resume: a run whose `row.json` exists and whose `settings.json` equals this run's settings is
/// read back; a folder whose `settings.json` differs (or that holds other files without one) is
/// an error naming it and every differing key, checked for every run before any runs; a
/// folder without `row.json` is run (DPI continues from its checkpoint).
///
/// ```no_run
/// use scoreprior_cli::studies::calibration::{self, CalibrationSettings};
/// let settings = CalibrationSettings { n: 4, ..CalibrationSettings::denoising() };
/// let out = std::path::Path::new("out/calibration");
/// let report = calibration::run(&settings, out, &mut |m| eprintln!("{m}"))?;
/// report.write(out)?;
/// # Ok::<(), scoreprior::experiment::ExperimentError>(())
/// ```
///
/// # Errors
/// A setting [`CalibrationSettings::validate`] refuses; a run folder holding other settings; a
/// run's errors; unreadable `row.json` files.
pub fn run(settings: &CalibrationSettings, out: &Path, progress: &mut dyn FnMut(&str)) -> Result<CalibrationReport> {
    let s = settings;
    s.validate()?;
    let prior_sha256 = crate::run_folder::hash_path(&resolve(&s.prior))?.sha256;
    let ctx = match s.problem {
        CalibrationProblem::Eht => Some(EhtContext::new(s)?),
        CalibrationProblem::Denoising => None,
    };
    // The parametric reference first: it is the cheaper, and the yardstick of the DPI runs.
    let mut reference = Vec::new();
    if let (Some(p), Some(c)) = (&s.parametric, &ctx) {
        for j in (0..s.n).filter(|&j| parametric::family(c.source(j)).is_some()) {
            let dir = out.join(format!("eht-{j}-parametric"));
            let spec = parametric_run_settings(s, p, j, c.kinds[j]);
            let reuse = check_folder(&dir, &spec)?;
            reference.push((j, dir, spec, reuse));
        }
    }
    let dpi_runs = if s.parametric.is_some_and(|p| p.only) { 0 } else { s.n };
    let mut plan = Vec::with_capacity(dpi_runs);
    for j in 0..dpi_runs {
        let (name, spec) = match &ctx {
            Some(c) => (format!("eht-{j}"), eht_run_settings(s, j, c.kinds[j], &prior_sha256)),
            None => (format!("denoising-{}", j * s.stride), denoising_run_settings(s, j, &prior_sha256)?),
        };
        let dir = out.join(&name);
        let reuse = check_folder(&dir, &spec)?;
        plan.push((j, dir, spec, reuse));
    }
    std::fs::create_dir_all(out).map_err(|e| scoreprior_core::io::IoError::os(out, e))?;
    super::mark_study_folder(out, "calibration-study")?;
    let mut parametric_rows = Vec::with_capacity(reference.len());
    for (j, dir, spec, reuse) in reference {
        let row_file = dir.join("row.json");
        if reuse {
            parametric_rows.push(read_json::<CalibrationRow>(&row_file)?);
            continue;
        }
        let (Some(p), Some(c)) = (&s.parametric, &ctx) else { continue };
        write_json(&dir.join("settings.json"), &spec)?;
        progress(&format!("eht-{j} ({}): parametric posterior, {} chains", c.kinds[j], p.mcmc.chains));
        let row = parametric_run(s, p, c, j)?;
        write_json(&row_file, &row)?;
        progress(&format!(
            "{}: source pixel coverage {} at levels {} ({:.0} s)",
            row.run,
            row.source_coverage.iter().map(|c| format!("{c:.2}")).collect::<Vec<_>>().join("/"),
            s.levels.iter().map(|l| format!("{l}")).collect::<Vec<_>>().join("/"),
            row.seconds,
        ));
        parametric_rows.push(row);
    }
    let mut rows = Vec::with_capacity(s.n);
    for (j, dir, spec, reuse) in plan {
        let row_file = dir.join("row.json");
        if reuse {
            let mut row = read_json::<CalibrationRow>(&row_file)?;
            if let (Some(c), true) = (&ctx, row.source_coverage.is_empty()) {
                // A row written before the source's coverage was measured: it is measured
                // from the run's saved samples.
                row = remeasure_eht(s, c, j, &dir, row)?;
                write_json(&row_file, &row)?;
            }
            rows.push(row);
            continue;
        }
        write_json(&dir.join("settings.json"), &spec)?;
        let (_, row) = match &ctx {
            Some(c) => {
                progress(&format!("eht-{j} ({}): MAP warm start, DPI, {} samples", c.kinds[j], s.samples));
                eht_run(s, c, j, &dir)?
            }
            None => {
                progress(&format!("denoising-{}: DPI, {} samples", j * s.stride, s.samples));
                denoising_run(s, j, &dir, progress)?
            }
        };
        write_json(&row_file, &row)?;
        progress(&format!(
            "{}: pixel coverage {} at levels {}",
            row.run,
            row.pixel_coverage.iter().map(|c| format!("{c:.2}")).collect::<Vec<_>>().join("/"),
            s.levels.iter().map(|l| format!("{l}")).collect::<Vec<_>>().join("/"),
        ));
        rows.push(row);
    }
    let summary = summarise(s.problem, &s.levels, &rows);
    let parametric = s.parametric.map(|_| ParametricReport {
        summary: summarise(s.problem, &s.levels, &parametric_rows),
        rows: parametric_rows,
    });
    Ok(CalibrationReport { rows, summary, parametric })
}

/// Whether the run folder `dir` holds a finished run of `spec` (read it back); `false` when it
/// is to be run. Errors when it holds another run's settings (naming every differing key) or
/// files not written by the study ([`super::check_sub_run`]).
fn check_folder(dir: &Path, spec: &serde_json::Value) -> Result<bool> {
    let key = dir.join(super::SUB_RUN_SETTINGS);
    let state = super::check_sub_run("calibration-study", dir, &key, spec, |d| d.join("row.json").exists())?;
    Ok(state == super::SubRun::Finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_differences_name_the_first_key() {
        let a = serde_json::json!({"a": 1, "dpi": {"optim": {"steps": 5}}, "levels": [0.5, 0.9]});
        let b = serde_json::json!({"a": 1, "dpi": {"optim": {"steps": 6}}, "levels": [0.5, 0.9]});
        assert_eq!(first_difference(&a, &b).unwrap().0, "dpi.optim.steps");
        let c = serde_json::json!({"a": 1, "dpi": {"optim": {"steps": 5}}, "levels": [0.5]});
        assert_eq!(first_difference(&a, &c).unwrap().0, "levels");
        let d = serde_json::json!({"a": 1, "dpi": {"optim": {"steps": 5}}, "levels": [0.5, 0.95]});
        assert_eq!(first_difference(&a, &d).unwrap(), ("levels.1".into(), "0.9".into(), "0.95".into()));
        let e = serde_json::json!({"dpi": {"optim": {"steps": 5}}, "levels": [0.5, 0.9], "laplace": null});
        assert_eq!(first_difference(&a, &e).unwrap(), ("a".into(), "1".into(), "absent".into()));
        assert_eq!(first_difference(&e, &a).unwrap().0, "a");
    }
}
