//! One DPI stage of a source under a prior, in its own folder: the DSM surrogate from
//! eht-imaging's Gaussian start through the MAP warm start (and the Laplace start), or the exact
//! PF-ODE prior from the surrogate's MAP image; a finished stage of the same settings is read back.

use std::path::{Path, PathBuf};
use std::time::Instant;

use scoreprior_core::forward::interferometry::{best_shift, shift_image, ClosureProblem, TestSource};
use scoreprior_core::io::{atomic_write, read_npy};

use super::reference::{prior_units, ReferenceRun};
use super::settings::{EhtDpiSettings, ExactStage};
use super::table::{measure, EhtRow};
use crate::studies::{record_sub_run, SubRun, SUB_RUN_SETTINGS};
use scoreprior::experiment::{
    invalid_setting, DsmSettings, Experiment, ExperimentResult, MapWarmStart, PosteriorSettings, Prior, PriorOptions,
    Result,
};

/// What defines a DPI stage of `source` under a prior (for its `settings.json`): the SHA-256 of
/// the source's reference folder and of the checkpoint, and every setting of the study (the
/// exact stage starts from the surrogate's MAP image, so its settings include the surrogate's).
pub(super) fn stage_spec(
    source: &str,
    reference_sha: &str,
    prior_sha: &str,
    stage: Stage,
    s: &EhtDpiSettings,
) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "study": "eht-study", "source": source, "reference_sha256": reference_sha, "prior_sha256": prior_sha,
        "prior_estimator": "dsm (default settings)", "steps": s.steps, "batch": s.batch, "lr": s.lr,
        "flows": s.flows, "init_scale": s.init_scale, "init_fwhm_uas": s.init_fwhm_uas,
        "laplace": s.laplace.map(|l| serde_json::json!({"step": l.step, "floor": l.floor})),
        "map": {"iterations": s.map.iterations, "rounds": s.map.rounds, "memory": s.map.memory,
                "jitter": s.map.jitter, "blur": "nominal resolution"},
        "flux_weight": s.flux_weight, "samples": s.samples, "seed": s.seed,
    });
    if let Stage::Exact(ex) = stage {
        spec["exact"] = serde_json::json!({"steps": ex.steps, "batch": ex.batch, "probes": ex.probes});
    }
    spec
}

/// A planned DPI stage: its folder, settings and what the folder holds.
pub(super) struct PlannedStage {
    pub(super) stage: Stage,
    pub(super) dir: PathBuf,
    pub(super) spec: serde_json::Value,
    pub(super) state: SubRun,
}

/// What one source's DPI stages share.
pub(super) struct SourceRun<'a> {
    pub(super) source: &'a str,
    pub(super) reference: &'a ReferenceRun,
    pub(super) n0: usize,
    pub(super) resolution: f64,
    /// The observed total flux (Jy), InverseBench's estimate ([`super::table::observed_flux`]).
    pub(super) observed_flux: f64,
    pub(super) problem_at: &'a dyn Fn(usize) -> Result<ClosureProblem>,
}

/// The DPI runs of one prior: the DSM surrogate from eht-imaging's Gaussian start through the
/// MAP warm start, then (optionally) the exact PF-ODE prior from the surrogate's MAP image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Stage {
    Surrogate,
    Exact(ExactStage),
}

/// Mean, std and samples of a run with its row.
pub(super) type StageOutput = (EhtRow, Vec<f64>, Vec<f64>, Vec<f64>, usize);

/// Runs one planned stage into its folder (`out/<source>-<prior>[-exact]/`, its settings
/// recorded first), or reads it back when it finished with the same settings.
pub(super) fn dpi_stage(
    ctx: &SourceRun<'_>,
    name: &str,
    ckpt: &Path,
    planned: &PlannedStage,
    settings: &EhtDpiSettings,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<StageOutput> {
    let (source, r, n0, resolution) = (ctx.source, ctx.reference, ctx.n0, ctx.resolution);
    let surrogate_dir = out.join(format!("{source}-{name}"));
    let (stage, sub) = (planned.stage, planned.dir.clone());
    let method = match stage {
        Stage::Surrogate => format!("DPI {name}"),
        Stage::Exact(_) => format!("DPI {name} exact"),
    };
    let row_file = sub.join("row.json");
    if planned.state == SubRun::Finished {
        let text = std::fs::read_to_string(&row_file).map_err(|e| scoreprior_core::io::IoError::os(&row_file, e))?;
        let stored: EhtRow =
            serde_json::from_str(&text).map_err(|e| invalid_setting("out", format!("{}: {e}", row_file.display())))?;
        let n = stored.npix;
        let rd = |f: &str| -> Result<Vec<f64>> { Ok(read_npy(sub.join(f))?.data) };
        let (mean, std) = (rd("mean.npy")?, rd("std.npy")?);
        // The image measures are recomputed (cheap, and a fixed measure reaches old runs);
        // what only the run knew (time, spread) is kept.
        let (x, p) = (prior_units(&r.truth, n0, n), (ctx.problem_at)(n)?);
        let row = EhtRow {
            seconds: stored.seconds,
            std_rel: stored.std_rel,
            within_2std: stored.within_2std,
            ..measure(source, stored.method.clone(), &mean, &x, n, r.fov_uas, &p, resolution, ctx.observed_flux)?
        };
        return Ok((row, mean, std, rd("samples.npy")?, n));
    }
    record_sub_run(&sub.join(SUB_RUN_SETTINGS), &planned.spec)?;
    let prior = match stage {
        Stage::Exact(ex) => {
            progress(&format!("{source}: DPI under {name}, exact PF-ODE prior"));
            let options = PriorOptions { probes: ex.probes, ..Default::default() };
            Prior::ncsnpp(ckpt, options.ode_config(settings.seed)?)?
        }
        Stage::Surrogate => {
            progress(&format!("{source}: DPI under {name}"));
            Prior::ncsnpp_dsm(ckpt, DsmSettings::default())?
        }
    }
    .with_label(name.to_string());
    let (n, _) = prior.image_shape().ok_or_else(|| invalid_setting("priors", format!("{name}: no image shape")))?;
    if n > n0 || n0 % n != 0 {
        return Err(invalid_setting(
            "priors",
            format!("{name}: its {n}×{n} grid does not divide the reference's {n0}×{n0}"),
        ));
    }
    let x = prior_units(&r.truth, n0, n);
    let flux: f64 = x.iter().sum();
    let p = (ctx.problem_at)(n)?;
    let (init_image, map_warm_start, steps, batch, laplace) = match stage {
        Stage::Exact(ex) => {
            // The exact prior starts where the surrogate's MAP warm start ended: an L-BFGS MAP
            // under the exact prior would need an ODE solve and its adjoint per iteration
            // (1,500 iterations), for a start the flow then leaves anyway.
            let map = read_npy(surrogate_dir.join("map.npy"))?.data;
            (map, None, ex.steps, ex.batch, None)
        }
        Stage::Surrogate => {
            let start = TestSource::Blobs(vec![(0.0, 0.0, settings.init_fwhm_uas, 1.0)]).render(n, r.fov_uas, flux)?;
            let floor = 1e-6 * start.iter().cloned().fold(0.0, f64::max);
            let map = MapWarmStart { blur_px: resolution / (r.fov_uas / n as f64), ..settings.map };
            let start = start.into_iter().map(|v| v.max(floor)).collect();
            (start, Some(map), settings.steps, settings.batch, settings.laplace)
        }
    };
    let exact = matches!(stage, Stage::Exact(_));
    let t0 = Instant::now();
    let mut builder = Experiment::builder(p.model.clone())
        .forward_label(format!("closures of {}", r.obs.display()))
        .truth_with_measurement(x.clone(), p.y.clone(), n, n)
        .prior(prior)
        .posterior(PosteriorSettings {
            flows: settings.flows,
            positive: true,
            // The exact stage starts isotropic at the surrogate's spread of old (its Laplace start
            // would need the exact prior's Hessian: an ODE solve and adjoint per column).
            init_scale: if laplace.is_some() || !exact { settings.init_scale } else { 0.05 },
            init_image: Some(init_image),
            map_warm_start,
            laplace,
            ..Default::default()
        })
        .flux_constraint(settings.flux_weight, flux)
        .steps(steps)
        .batch(batch)
        .lr(settings.lr)
        .seed(settings.seed)
        .samples(settings.samples)
        .outlier_threshold(1e9)
        .configure(|c| {
            c.out_dir = Some(sub.clone());
            c.resume = true;
            c.checkpoint_every = if exact { 5 } else { 50 };
            if exact {
                // A short run: the learning-rate warm-up takes its first fifth, not the default
                // 100 steps (which would keep all of a 100-step run below the peak rate).
                c.warmup = c.warmup.min(steps.div_ceil(5));
            }
        });
    if exact {
        // From a MAP image the time floor stays at its final value: the continuation's large
        // early floors only smooth a prior the flow has not yet reached.
        builder = builder.continuation(None);
    }
    let res: ExperimentResult = builder.build()?.run()?;
    let seconds = t0.elapsed().as_secs_f64();
    crate::dpi_run::save_with_figures(&res, &sub)?;
    let s = &res.summary;
    let mut row = measure(source, method, &s.mean, &x, n, r.fov_uas, &p, resolution, ctx.observed_flux)?;
    row.seconds = seconds;
    let peak_mean = s.mean.iter().cloned().fold(1e-300, f64::max);
    row.std_rel = Some(s.std.iter().sum::<f64>() / (n * n) as f64 / peak_mean);
    let (_, (di, dj)) = best_shift(&s.mean, &x, n, n / 4);
    let aligned = shift_image(&x, n, di, dj);
    let inside = aligned.iter().zip(&s.mean).zip(&s.std).filter(|((t, m), sd)| (*t - *m).abs() <= 2.0 * *sd).count();
    row.within_2std = Some(inside as f64 / (n * n) as f64);
    let json = serde_json::to_string_pretty(&row).map_err(|e| invalid_setting("out", e.to_string()))?;
    atomic_write(&row_file, json.as_bytes())?;
    Ok((row, s.mean.clone(), s.std.clone(), res.samples.x.clone(), n))
}
