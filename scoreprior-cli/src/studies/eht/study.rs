//! The whole study: every source under every prior, everything checked and every run folder
//! planned before the first run; eht-imaging's and the truth's rows, then each DPI stage's, and
//! a figure per source (truth, blurred truth, eht-imaging, then per prior its mean, std, samples).

use std::path::{Path, PathBuf};

use scoreprior_core::forward::interferometry::{
    best_shift, gaussian_blur, nominal_resolution_uas, read_ehtim_txt, ClosureProblem, Interferometer,
};
use scoreprior_core::forward::ops::Pulse;
use scoreprior_core::io::{write_npy, write_png_grid};

use super::reference::ReferenceRun;
use super::settings::{validate, EhtDpiSettings};
use super::stage::{dpi_stage, stage_spec, PlannedStage, SourceRun, Stage};
use super::table::{measure, observed_flux, EhtRow};
use crate::studies::{check_sub_run, input_sha256, mark_study_folder, SUB_RUN_SETTINGS};
use scoreprior::experiment::{invalid_setting, DsmSettings, Prior, Result};

/// Runs the study: every source in `reference_dir/<source>/` under every `(name, checkpoint)`
/// prior, DPI outputs in `out/<source>-<prior>/`, a figure `out/<source>.png` (truth, truth
/// blurred to the nominal resolution, eht-imaging, then per prior its DPI mean, std and three
/// samples; each panel scaled to its own maximum), and returns the rows (eht-imaging's first
/// for each source).
///
/// Before the first run, everything is checked: the settings and names ([`validate`]), every
/// reference is read, every prior loaded (its grid must divide each reference's), and every
/// run folder compared with its settings (`settings.json`: the settings and the SHA-256 of the
/// reference folder and the checkpoint). A folder whose `row.json` exists and whose settings
/// match is read back, not rerun; one of other settings is an error naming each difference.
///
/// # Errors
/// A setting, name, reference or checkpoint [`validate`] refuses; an unreadable reference or
/// checkpoint, a prior whose grid does not divide a reference's; a run folder of other
/// settings; a run's errors.
pub fn run(
    reference_dir: &Path,
    sources: &[String],
    priors: &[(String, PathBuf)],
    settings: &EhtDpiSettings,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<EhtRow>> {
    validate(reference_dir, sources, priors, settings)?;
    let mut references = Vec::with_capacity(sources.len());
    for source in sources {
        let dir = reference_dir.join(source);
        let r = ReferenceRun::read(&dir)?;
        let obs = read_ehtim_txt(&r.obs)?;
        let sha = input_sha256("--reference", &dir)?;
        references.push((r, obs, sha));
    }
    let mut prior_shas = Vec::with_capacity(priors.len());
    for (name, ckpt) in priors {
        let prior = Prior::ncsnpp_dsm(ckpt, DsmSettings::default())
            .map_err(|e| invalid_setting("--priors", format!("{name}={}: {e}", ckpt.display())))?;
        let (n, _) =
            prior.image_shape().ok_or_else(|| invalid_setting("--priors", format!("{name}: no image shape")))?;
        for (r, _, _) in &references {
            let n0 = r.npix;
            if n > n0 || n0 % n != 0 {
                return Err(invalid_setting(
                    "--priors",
                    format!("{name}: its {n}×{n} grid does not divide the {n0}×{n0} of source {}", r.source),
                ));
            }
        }
        prior_shas.push(input_sha256("--priors", ckpt)?);
    }
    let mut plan = Vec::new();
    for (source, (_, _, ref_sha)) in sources.iter().zip(&references) {
        for ((name, _), prior_sha) in priors.iter().zip(&prior_shas) {
            for stage in Stage::all(settings) {
                let dir = stage.dir(out, source, name);
                let spec = stage_spec(source, ref_sha, prior_sha, stage, settings);
                let key = dir.join(SUB_RUN_SETTINGS);
                let state = check_sub_run("eht-study", &dir, &key, &spec, |d| d.join("row.json").exists())?;
                plan.push(PlannedStage { stage, dir, spec, state });
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| scoreprior_core::io::IoError::os(out, e))?;
    mark_study_folder(out, "eht-study")?;
    let mut plan = plan.into_iter();
    let mut rows = Vec::new();
    for (source, (r, obs, _)) in sources.iter().zip(&references) {
        let (coverage, vis) = (obs.coverage(), obs.visibilities());
        let resolution = nominal_resolution_uas(&coverage);
        let flux_obs = observed_flux(obs);
        // eht-imaging observes with bilinear (triangle) pixels; the same model fits its data.
        let problem_at = |n: usize| -> Result<ClosureProblem> {
            Ok(Interferometer::new(coverage.clone(), n, r.fov_uas)?
                .with_pulse(Pulse::Triangle)
                .closure_problem(&vis, true)?)
        };
        let n0 = r.npix;
        let p0 = problem_at(n0)?;
        let mut ehtim =
            measure(source, "ehtim RML".into(), &r.image, &r.truth, n0, r.fov_uas, &p0, resolution, flux_obs)?;
        ehtim.seconds = r.seconds;
        ehtim.seconds_per_sample = Some(r.seconds);
        let mut truth_row =
            measure(source, "truth".into(), &r.truth, &r.truth, n0, r.fov_uas, &p0, resolution, flux_obs)?;
        truth_row.nxcorr_blurred =
            best_shift(&gaussian_blur(&r.truth, n0, resolution / (r.fov_uas / n0 as f64)), &r.truth, n0, 0).0;
        let scale = |v: &[f64]| {
            let m = v.iter().cloned().fold(1e-300, f64::max);
            v.iter().map(|x| x / m).collect::<Vec<f64>>()
        };
        let blurred0 = gaussian_blur(&r.truth, n0, resolution / (r.fov_uas / n0 as f64));
        let mut panels: Vec<Vec<f64>> = vec![scale(&r.truth), scale(&blurred0), scale(&r.image)];
        rows.push(truth_row);
        rows.push(ehtim);
        let ctx = SourceRun { source, reference: r, n0, resolution, observed_flux: flux_obs, problem_at: &problem_at };
        for (name, ckpt) in priors {
            for _ in Stage::all(settings) {
                let planned = plan.next().expect("one planned stage per source, prior and stage");
                let (row, mean, std, samples, n) = dpi_stage(&ctx, name, ckpt, &planned, settings, out, progress)?;
                // Panels on the reference grid (nearest-neighbour upsampling of coarser priors).
                let up = |v: &[f64]| -> Vec<f64> {
                    let f = n0 / n;
                    (0..n0 * n0).map(|k| v[(k / n0 / f) * n + (k % n0) / f]).collect()
                };
                panels.push(scale(&up(&mean)));
                panels.push(scale(&up(&std)));
                for k in 0..3.min(samples.len() / (n * n)) {
                    panels.push(scale(&up(&samples[k * n * n..(k + 1) * n * n])));
                }
                rows.push(row);
            }
        }
        let flat: Vec<f64> = panels.concat();
        write_png_grid(out.join(format!("{source}.png")), &flat, n0, n0, panels.len(), 0.0, 1.0, 4)?;
        write_npy(out.join(format!("{source}_panels.npy")), &[panels.len(), n0, n0], &flat)?;
    }
    Ok(rows)
}
