//! The EHT runs: truth `i` of the compact-source stream observed by the EHT 2017 array (Sgr A*
//! track, thermal noise), DPI on its closures from a MAP warm start, and the run's measures with
//! the truth aligned to the posterior mean (closures do not fix the position).

use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::forward::interferometry::{
    nominal_resolution_uas, Array, ClosureCovariance, ClosureProblem, CompactSources, Interferometer, Observation,
    TestSource,
};
use scoreprior_core::forward::ForwardModel;

use super::denoising::{finite_samples_and_mean, pixel_row};
use super::measures::{finite, pixel_measures, ring_coverage, ring_measures};
use super::report::CalibrationRow;
use super::settings::{CalibrationSettings, EHT_FOV_UAS, EHT_NPIX};
use scoreprior::experiment::{DsmSettings, Experiment, ExperimentResult, MapWarmStart, PosteriorSettings, Result};

/// Outlier threshold of the EHT runs (none dropped), as in [`super::eht`](crate::studies::eht).
const EHT_OUTLIER: f64 = 1e9;

/// What every EHT run shares: the interferometer, the truths and their kinds.
pub(super) struct EhtContext {
    eht: Interferometer,
    resolution_uas: f64,
    truths: Vec<f64>,
    pub(super) kinds: Vec<&'static str>,
    /// The sources themselves (for sub-pixel alignment), and the renderer's supersampling.
    sources: Vec<TestSource>,
    supersample: usize,
}

impl EhtContext {
    pub(super) fn new(s: &CalibrationSettings) -> Result<Self> {
        let coverage = Array::eht2017().observe(&Observation::sgr_a_star())?;
        let resolution_uas = nominal_resolution_uas(&coverage);
        let eht = Interferometer::new(coverage, EHT_NPIX, EHT_FOV_UAS)?;
        let g = CompactSources::default();
        let truths = g.images(s.n, EHT_NPIX, EHT_FOV_UAS, s.source_seed)?;
        let sources =
            (0..s.n).map(|i| g.source(s.source_seed, i as u64)).collect::<std::result::Result<Vec<_>, _>>()?;
        let kinds = (0..s.n)
            .map(|i| {
                let src = sources[i].clone();
                let inner = match src {
                    TestSource::Shifted { source, .. } => *source,
                    other => other,
                };
                Ok(match inner {
                    TestSource::Ring { .. } => "ring",
                    TestSource::Crescent { .. } => "crescent",
                    TestSource::Blobs(_) => "blobs",
                    _ => "crescent+blob",
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { eht, resolution_uas, truths, kinds, sources, supersample: g.supersample })
    }

    pub(super) fn truth(&self, i: usize) -> &[f64] {
        let d = EHT_NPIX * EHT_NPIX;
        &self.truths[i * d..(i + 1) * d]
    }

    /// Source `i` as the generator drew it.
    pub(super) fn source(&self, i: usize) -> &TestSource {
        &self.sources[i]
    }

    /// The closure data of truth `i` (DPI's, and the parametric reference's): the truth given
    /// `flux_jy`, observed with thermal noise of seed `seed + i`, its log closure amplitudes
    /// debiased.
    pub(super) fn closure_problem(&self, s: &CalibrationSettings, i: usize) -> Result<ClosureProblem> {
        let x = self.truth(i);
        let flux: f64 = x.iter().sum();
        let jy: Vec<f64> = x.iter().map(|v| v * s.flux_jy / flux).collect();
        let seed = s.seed.wrapping_add(i as u64);
        let vis = self.eht.visibility_model()?.simulate(&jy, &mut ChaCha8Rng::seed_from_u64(seed))?;
        Ok(match s.closure_covariance {
            ClosureCovariance::Diagonal => self.eht.closure_problem(&vis, true)?,
            ClosureCovariance::Scan => self.eht.closure_problem_scan(&vis, true, &[], &[])?,
        })
    }

    /// Truth `i` moved by `(east, north)` µas, rendered as the study's truths are (supersampled
    /// and binned) and scaled to the unmoved truth's flux.
    fn moved_truth(&self, i: usize, east: f64, north: f64) -> Result<Vec<f64>> {
        let (n, ss) = (EHT_NPIX, self.supersample.max(1));
        let moved = TestSource::Shifted { east, north, source: Box::new(self.sources[i].clone()) };
        let fine = moved.render(n * ss, EHT_FOV_UAS, 1.0)?;
        let mut img = vec![0.0; n * n];
        for (k, v) in fine.iter().enumerate() {
            let (r, c) = (k / (n * ss), k % (n * ss));
            img[(r / ss) * n + c / ss] += v;
        }
        let flux: f64 = self.truth(i).iter().sum();
        let total: f64 = img.iter().sum();
        Ok(img.into_iter().map(|v| v * flux / total).collect())
    }

    /// Truth `i` aligned to `mean` to a tenth of a pixel: closure data do not fix the position,
    /// so the posterior is compared with the truth where it places it. The source is re-rendered
    /// at each trial offset (no interpolation blur): whole pixels over a quarter of the field,
    /// then tenths around the best. Returns the moved truth and its offset (east, north) µas.
    pub(super) fn aligned_truth(&self, i: usize, mean: &[f64]) -> Result<(Vec<f64>, (f64, f64))> {
        let px = EHT_FOV_UAS / EHT_NPIX as f64;
        let score = |img: &[f64]| {
            let (ab, aa, bb) =
                img.iter().zip(mean).fold((0.0, 0.0, 0.0), |(ab, aa, bb), (a, b)| (ab + a * b, aa + a * a, bb + b * b));
            ab / (aa * bb).sqrt().max(1e-300)
        };
        let mut best = (f64::NEG_INFINITY, (0.0, 0.0));
        let reach = (EHT_NPIX / 4) as i32;
        for (grid, step, centre) in [(reach, px, (0.0, 0.0)), (5, px / 10.0, (f64::NAN, f64::NAN))] {
            let c = if centre.0.is_nan() { best.1 } else { centre };
            for a in -grid..=grid {
                for b in -grid..=grid {
                    let off = (c.0 + a as f64 * step, c.1 + b as f64 * step);
                    let v = score(&self.moved_truth(i, off.0, off.1)?);
                    if v > best.0 {
                        best = (v, off);
                    }
                }
            }
        }
        Ok((self.moved_truth(i, best.1 .0, best.1 .1)?, best.1))
    }
}

/// The settings of EHT run `i` (`settings.json`).
pub(super) fn eht_run_settings(s: &CalibrationSettings, i: usize, kind: &str, prior_sha256: &str) -> serde_json::Value {
    let d = s.eht_dpi();
    let seed = s.seed.wrapping_add(i as u64);
    let mut spec = serde_json::json!({
        "problem": "eht", "index": i, "kind": kind, "source_seed": s.source_seed, "flux_jy": s.flux_jy,
        "sources": "CompactSources::default()", "npix": EHT_NPIX, "fov_uas": EHT_FOV_UAS,
        "array": "EHT2017", "observation": "sgr_a_star", "pulse": "delta", "data": "closures (debiased)",
        "noise_seed": seed, "dpi_seed": seed, "prior": s.prior.display().to_string(),
        "prior_sha256": prior_sha256, "prior_estimator": "dsm (default settings)",
        "steps": d.steps, "batch": d.batch, "lr": d.lr, "samples": d.samples, "flows": d.flows,
        "init_scale": d.init_scale, "init_fwhm_uas": d.init_fwhm_uas, "flux_weight": d.flux_weight,
        "map": {"iterations": d.map.iterations, "rounds": d.map.rounds, "memory": d.map.memory,
                "jitter": d.map.jitter, "blur": "nominal resolution"},
        "laplace": d.laplace.map(|l| serde_json::json!({"step": l.step, "floor": l.floor})),
        "outlier": EHT_OUTLIER, "levels": s.levels, "ring_pixel_uas": EHT_FOV_UAS / EHT_NPIX as f64,
    });
    // Recorded only when not the default, so that runs from before the setting still resume.
    if s.time_floor != DsmSettings::default().eps {
        spec["time_floor"] = serde_json::json!(s.time_floor);
    }
    if !s.continuation {
        spec["continuation"] = serde_json::json!(false);
    }
    if s.closure_covariance != ClosureCovariance::Diagonal {
        spec["closure_covariance"] = serde_json::json!(s.closure_covariance.to_string());
    }
    spec
}

/// Runs EHT source `i` into `dir` and measures it.
pub(super) fn eht_run(
    s: &CalibrationSettings,
    ctx: &EhtContext,
    i: usize,
    dir: &Path,
) -> Result<(ExperimentResult, CalibrationRow)> {
    let (n, fov) = (EHT_NPIX, EHT_FOV_UAS);
    let d = s.eht_dpi();
    let x = ctx.truth(i).to_vec();
    let seed = s.seed.wrapping_add(i as u64);
    let flux: f64 = x.iter().sum();
    let problem = ctx.closure_problem(s, i)?;
    // eht-imaging's start: a Gaussian of the truth's flux, floored so that softplus⁻¹ is finite.
    let start = TestSource::Blobs(vec![(0.0, 0.0, d.init_fwhm_uas, 1.0)]).render(n, fov, flux)?;
    let floor = 1e-6 * start.iter().cloned().fold(0.0, f64::max);
    let start: Vec<f64> = start.into_iter().map(|v| v.max(floor)).collect();
    let map = MapWarmStart { blur_px: ctx.resolution_uas / (fov / n as f64), ..d.map };
    let t0 = Instant::now();
    let res = Experiment::builder(problem.model.clone())
        .forward_label(format!("closures (EHT 2017, Sgr A* track) of compact source {i} of seed {}", s.source_seed))
        .truth_with_measurement(x.clone(), problem.y.clone(), n, n)
        .prior(s.load_prior()?.with_label("sources"))
        .posterior(PosteriorSettings {
            flows: d.flows,
            positive: true,
            init_scale: d.init_scale,
            init_image: Some(start),
            map_warm_start: Some(map),
            laplace: d.laplace,
            ..Default::default()
        })
        .flux_constraint(d.flux_weight, flux)
        .steps(d.steps)
        .batch(d.batch)
        .lr(d.lr)
        .seed(seed)
        .samples(d.samples)
        .outlier_threshold(EHT_OUTLIER)
        .continuation(s.continuation.then(Default::default))
        .configure(|c| {
            c.out_dir = Some(dir.to_path_buf());
            c.resume = true;
            c.checkpoint_every = 50;
        })
        .build()?
        .run()?;
    let seconds = t0.elapsed().as_secs_f64();
    crate::dpi_run::save_with_figures(&res, dir)?;
    let dim = n * n;
    let (samples, mean) = finite_samples_and_mean(&res.samples.x, dim, "--steps", dir)?;
    let (aligned, offset) = ctx.aligned_truth(i, &mean)?;
    let pm = pixel_measures(&samples, &aligned, &mean, &s.levels);
    let chi = problem.chi2(&pm.mean)?;
    let kind = ctx.kinds[i];
    let ring = if kind == "blobs" { None } else { ring_measures(&x).map(|t| ring_coverage(&samples, t, &s.levels)) };
    let row = CalibrationRow {
        chi2_phase: finite(chi.phase),
        chi2_log_amp: finite(chi.log_amp),
        offset_uas: Some(offset),
        ring,
        ..pixel_row(format!("eht-{i}"), i, kind.to_string(), &s.levels, pm, samples.len(), seconds)
    };
    Ok((res, row))
}

/// The per-pixel measures of a finished EHT run `i` again, from its saved `samples.npy`.
pub(super) fn remeasure_eht(
    s: &CalibrationSettings,
    ctx: &EhtContext,
    i: usize,
    dir: &Path,
    row: CalibrationRow,
) -> Result<CalibrationRow> {
    let n = EHT_NPIX;
    let saved = scoreprior_core::io::read_npy(dir.join("samples.npy"))?.data;
    let (samples, mean) = finite_samples_and_mean(&saved, n * n, "--out", dir)?;
    let (aligned, offset) = ctx.aligned_truth(i, &mean)?;
    let pm = pixel_measures(&samples, &aligned, &mean, &s.levels);
    Ok(CalibrationRow {
        pixel_coverage: pm.coverage,
        source_coverage: pm.source_coverage,
        within_2std: pm.within_2std,
        std_rel: pm.std_rel,
        samples_used: samples.len(),
        shift: None,
        offset_uas: Some(offset),
        ..row
    })
}
