//! One stage of a source under a prior, in its own folder: DPI under the DSM surrogate from
//! eht-imaging's Gaussian start through the MAP warm start (and the Laplace start), DPI under the
//! exact PF-ODE prior from the surrogate's trained flow, or a diffusion sampler (DAPS, PnP-DM, DPS)
//! with the prior's score network; a finished stage of the same settings is read back.

use std::path::{Path, PathBuf};
use std::time::Instant;

use scoreprior_core::forward::interferometry::{best_shift, shift_image, ClosureProblem, TestSource};
use scoreprior_core::io::{atomic_write, read_npy};

use super::reference::{prior_units, ReferenceRun};
use super::settings::{EhtDpiSettings, ExactStage};
use super::table::{measure, samples_chi2, EhtRow};
use crate::studies::{record_sub_run, SubRun, SUB_RUN_SETTINGS};
use scoreprior::experiment::{
    invalid_setting, Baseline, DsmSettings, Experiment, ExperimentResult, MapWarmStart, PosteriorSettings, Prior,
    PriorOptions, Result,
};

/// What defines a DPI stage of `source` under a prior (for its `settings.json`): the SHA-256 of
/// the source's reference folder and of the checkpoint, and every setting of the study (the
/// exact stage starts from the surrogate's trained flow, so its settings include the surrogate's).
pub(super) fn stage_spec(
    source: &str,
    reference_sha: &str,
    prior_sha: &str,
    stage: Stage,
    s: &EhtDpiSettings,
) -> serde_json::Value {
    if let Stage::Sampler(b) = stage {
        // A sampler's run depends on neither DPI's settings nor its outputs.
        return serde_json::json!({
            "study": "eht-study", "source": source, "reference_sha256": reference_sha, "prior_sha256": prior_sha,
            "sampler": format!("{b:?}"), "samples": s.sampler_samples, "flux_weight": s.flux_weight, "seed": s.seed,
        });
    }
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
        spec["exact"] = serde_json::json!({
            "steps": ex.steps, "batch": ex.batch, "probes": ex.probes, "start": "the surrogate run's trained flow",
        });
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
/// MAP warm start, then (optionally) the exact PF-ODE prior from the surrogate's trained flow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Stage {
    Surrogate,
    Exact(ExactStage),
    /// A diffusion sampler with the prior's score network, on the same data.
    Sampler(Baseline),
}

impl Stage {
    /// The stages of one source under one prior, in order: the surrogate DPI run, the exact
    /// one (optional), then each sampler.
    pub(super) fn all(settings: &EhtDpiSettings) -> Vec<Stage> {
        let mut stages = vec![Stage::Surrogate];
        stages.extend(settings.exact.map(Stage::Exact));
        stages.extend(settings.samplers.iter().copied().map(Stage::Sampler));
        stages
    }

    /// The stage's folder under `out`: `<source>-<prior>[-exact|-<sampler>]`.
    pub(super) fn dir(&self, out: &Path, source: &str, prior: &str) -> PathBuf {
        match self {
            Stage::Surrogate => out.join(format!("{source}-{prior}")),
            Stage::Exact(_) => out.join(format!("{source}-{prior}-exact")),
            Stage::Sampler(b) => out.join(format!("{source}-{prior}-{}", b.name())),
        }
    }

    /// The stage's name in the table: `DPI <prior>`, `DPI <prior> exact`, `<sampler> <prior>`.
    fn method(&self, prior: &str) -> String {
        match self {
            Stage::Surrogate => format!("DPI {prior}"),
            Stage::Exact(_) => format!("DPI {prior} exact"),
            Stage::Sampler(b) => format!("{} {prior}", b.sampler().name()),
        }
    }
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
    let method = stage.method(name);
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
        let samples = rd("samples.npy")?;
        // Runs from before the column: the whole run's time over its samples.
        let per_sample = stored.seconds_per_sample.or(Some(stored.seconds / (samples.len() / (n * n)).max(1) as f64));
        let (cp, cl) = samples_chi2(&p, &samples, n)?;
        let row = EhtRow {
            seconds: stored.seconds,
            seconds_per_sample: per_sample,
            chi2_phase_samples: Some(cp),
            chi2_log_amp_samples: Some(cl),
            std_rel: stored.std_rel,
            within_2std: stored.within_2std,
            ..measure(source, stored.method.clone(), &mean, &x, n, r.fov_uas, &p, resolution, ctx.observed_flux)?
        };
        return Ok((row, mean, std, samples, n));
    }
    record_sub_run(&sub.join(SUB_RUN_SETTINGS), &planned.spec)?;
    if let Stage::Sampler(b) = stage {
        return sampler_stage(ctx, name, ckpt, b, &sub, settings, method, progress);
    }
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
        Stage::Sampler(_) => unreachable!("a sampler's stage returned above"),
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
    let (init_image, map_warm_start, steps, batch, laplace, init_flow) = match stage {
        Stage::Exact(ex) => {
            // The exact prior starts where the surrogate's DPI ended, from its trained flow (and
            // its Laplace map): its few dozen steps, each an ODE solve and adjoint per sample,
            // then move a posterior towards the exact prior's instead of spreading a point (the
            // start of old: the surrogate's MAP image at a fixed 0.05, which stayed a point).
            (None, None, ex.steps, ex.batch, None, Some(surrogate_dir.clone()))
        }
        Stage::Sampler(_) => unreachable!("a sampler's stage returned above"),
        Stage::Surrogate => {
            let start = TestSource::Blobs(vec![(0.0, 0.0, settings.init_fwhm_uas, 1.0)]).render(n, r.fov_uas, flux)?;
            let floor = 1e-6 * start.iter().cloned().fold(0.0, f64::max);
            let map = MapWarmStart { blur_px: resolution / (r.fov_uas / n as f64), ..settings.map };
            let start = start.into_iter().map(|v| v.max(floor)).collect();
            (Some(start), Some(map), settings.steps, settings.batch, settings.laplace, None)
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
            init_scale: settings.init_scale,
            init_image,
            map_warm_start,
            laplace,
            init_flow,
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
    finish_stage(ctx, method, &res, &x, n, &p, seconds, seconds / res.samples.n.max(1) as f64, &sub)
}

/// Measures a finished run (its mean's measures, its spread: std/peak and the fraction of
/// pixels where the truth, aligned to the mean, lies within 2 std), writes `row.json` and
/// returns the stage's output.
#[allow(clippy::too_many_arguments)]
fn finish_stage(
    ctx: &SourceRun<'_>,
    method: String,
    res: &ExperimentResult,
    x: &[f64],
    n: usize,
    p: &ClosureProblem,
    seconds: f64,
    seconds_per_sample: f64,
    sub: &Path,
) -> Result<StageOutput> {
    let r = ctx.reference;
    let s = &res.summary;
    let mut row = measure(ctx.source, method, &s.mean, x, n, r.fov_uas, p, ctx.resolution, ctx.observed_flux)?;
    row.seconds = seconds;
    row.seconds_per_sample = Some(seconds_per_sample);
    let (cp, cl) = samples_chi2(p, &res.samples.x, n)?;
    (row.chi2_phase_samples, row.chi2_log_amp_samples) = (Some(cp), Some(cl));
    let peak_mean = s.mean.iter().cloned().fold(1e-300, f64::max);
    row.std_rel = Some(s.std.iter().sum::<f64>() / (n * n) as f64 / peak_mean);
    let (_, (di, dj)) = best_shift(&s.mean, x, n, n / 4);
    let aligned = shift_image(x, n, di, dj);
    let inside = aligned.iter().zip(&s.mean).zip(&s.std).filter(|((t, m), sd)| (*t - *m).abs() <= 2.0 * *sd).count();
    row.within_2std = Some(inside as f64 / (n * n) as f64);
    let json = serde_json::to_string_pretty(&row).map_err(|e| invalid_setting("out", e.to_string()))?;
    atomic_write(sub.join("row.json"), json.as_bytes())?;
    Ok((row, s.mean.clone(), s.std.clone(), res.samples.x.clone(), n))
}

/// A diffusion sampler's run: the prior's score network (the network the DPI runs' surrogate
/// is built on, used as a score), the same closure data and flux term, `sampler_samples`
/// independent chains; its time is the sampling time.
#[allow(clippy::too_many_arguments)]
fn sampler_stage(
    ctx: &SourceRun<'_>,
    name: &str,
    ckpt: &Path,
    sampler: Baseline,
    sub: &Path,
    settings: &EhtDpiSettings,
    method: String,
    progress: &mut dyn FnMut(&str),
) -> Result<StageOutput> {
    let (r, n0) = (ctx.reference, ctx.n0);
    progress(&format!("{}: {} under {name}", ctx.source, sampler.sampler().name()));
    let prior = Prior::ncsnpp_dsm(ckpt, DsmSettings::default())?.with_label(name.to_string());
    let (n, _) = prior.image_shape().ok_or_else(|| invalid_setting("priors", format!("{name}: no image shape")))?;
    let x = prior_units(&r.truth, n0, n);
    let flux: f64 = x.iter().sum();
    let p = (ctx.problem_at)(n)?;
    let t0 = Instant::now();
    let res = Experiment::builder(p.model.clone())
        .forward_label(format!("closures of {}", r.obs.display()))
        .truth_with_measurement(x.clone(), p.y.clone(), n, n)
        .prior(prior)
        .flux_constraint(settings.flux_weight, flux)
        .seed(settings.seed)
        .samples(settings.sampler_samples)
        .outlier_threshold(1e9)
        .build()?
        .run_baseline(sampler)?;
    let seconds = t0.elapsed().as_secs_f64();
    crate::dpi_run::save_with_figures(&res, sub)?;
    let per_sample = res.report.seconds_per_sample.unwrap_or(seconds / settings.sampler_samples as f64);
    finish_stage(ctx, method, &res, &x, n, &p, seconds, per_sample, sub)
}
