//! Black-hole imaging side by side with eht-imaging: for each source of
//! `benches/reference/ehtim_rml.py` (its truth, observation and RML image), DPI under each
//! score prior fits the *same* closure phases and log closure amplitudes, and both are
//! measured alike — reduced χ² of the closure data, normalised cross-correlation with the
//! truth and with the truth blurred to the nominal resolution (best integer shift, since
//! closures do not fix the position), REx-style ring diameter and width, wall time — and for
//! DPI the posterior spread and whether the (aligned) truth lies within two posterior
//! standard deviations.

use std::path::{Path, PathBuf};
use std::time::Instant;

use scoreprior_core::forward::interferometry::{
    best_shift, gaussian_blur, nominal_resolution_uas, read_ehtim_txt, ring_fit, shift_image, ClosureProblem,
    Interferometer, TestSource,
};
use scoreprior_core::forward::ops::Pulse;
use scoreprior_core::io::{atomic_write, read_npy, write_npy, write_png_grid};
use serde::{Deserialize, Serialize};

use super::SubRun;
use crate::experiment::{
    invalid_setting, DsmSettings, Experiment, ExperimentResult, LaplaceStart, MapWarmStart, PosteriorSettings, Prior,
    PriorOptions, Result,
};

/// DPI settings of the study (the same for every source and prior).
#[derive(Debug, Clone, PartialEq)]
pub struct EhtDpiSettings {
    /// DPI steps after the warm start.
    pub steps: usize,
    /// Flow samples per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Affine-coupling blocks.
    pub flows: usize,
    /// Initial spread of the flow around the MAP image: with `laplace`, the factor on the
    /// Laplace approximation's `H^{-1/2}` (1: the approximation itself), else the isotropic
    /// spread in softplus⁻¹ units.
    pub init_scale: f64,
    /// Start the flow as the Laplace approximation at the MAP image (`None`: isotropic, which
    /// collapses to a point on these data; `docs/calibration.md`).
    pub laplace: Option<LaplaceStart>,
    /// FWHM (µas) of the Gaussian starting image (eht-imaging's reference script: 60).
    pub init_fwhm_uas: f64,
    /// MAP warm start: L-BFGS iterations per round and rounds.
    pub map: MapWarmStart,
    /// Weight of the total-flux penalty `W(Σx − F)²`.
    pub flux_weight: f64,
    /// Posterior samples drawn at the end.
    pub samples: usize,
    /// Seed.
    pub seed: u64,
    /// After each surrogate run, a run under the exact PF-ODE prior of the same network from
    /// the surrogate's MAP image (`<source>-<prior>-exact/`); `None`: surrogate only.
    pub exact: Option<ExactStage>,
}

/// Settings of the exact-prior run ([`EhtDpiSettings::exact`]); the others are the study's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactStage {
    /// DPI steps.
    pub steps: usize,
    /// Flow samples per step.
    pub batch: usize,
    /// Hutchinson probes of the divergence (shared by the batch).
    pub probes: usize,
}

impl Default for ExactStage {
    fn default() -> Self {
        Self { steps: 100, batch: 8, probes: 2 }
    }
}

impl Default for EhtDpiSettings {
    fn default() -> Self {
        Self {
            steps: 300,
            batch: 16,
            lr: 1e-3,
            flows: 16,
            init_scale: 1.0,
            laplace: Some(LaplaceStart::default()),
            init_fwhm_uas: 60.0,
            map: MapWarmStart { iterations: 300, rounds: 5, ..Default::default() },
            flux_weight: 10.0,
            samples: 128,
            seed: 0,
            exact: None,
        }
    }
}

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

/// What `benches/reference/ehtim_rml.py` wrote for one source.
#[derive(Debug, Clone)]
pub struct ReferenceRun {
    /// Source name (the folder's).
    pub source: String,
    /// Truth, `npix × npix`, row 0 north (Jy per pixel).
    pub truth: Vec<f64>,
    /// eht-imaging's image, same grid.
    pub image: Vec<f64>,
    /// Side of the grid.
    pub npix: usize,
    /// Field of view (µas).
    pub fov_uas: f64,
    /// eht-imaging's imaging wall time (s).
    pub seconds: f64,
    /// The observation (`obs.txt`).
    pub obs: PathBuf,
}

#[derive(Deserialize)]
struct ReferenceSummary {
    npix: usize,
    fov_uas: f64,
    imaging_seconds: f64,
}

impl ReferenceRun {
    /// Reads `dir/{truth.npy, image.npy, obs.txt, summary.json}`.
    pub fn read(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let source = dir
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .ok_or_else(|| invalid_setting("reference", format!("{}: not a source folder", dir.display())))?;
        let text = std::fs::read_to_string(dir.join("summary.json"))
            .map_err(|e| scoreprior_core::io::IoError::os(&dir.join("summary.json"), e))?;
        let s: ReferenceSummary = serde_json::from_str(&text)
            .map_err(|e| invalid_setting("reference", format!("{}: {e}", dir.join("summary.json").display())))?;
        let img = |name: &str| -> Result<Vec<f64>> {
            let a = read_npy(dir.join(name))?;
            if a.data.len() != s.npix * s.npix || a.data.iter().any(|v| !v.is_finite()) {
                return Err(invalid_setting(
                    "reference",
                    format!("{}: expected {n}×{n} finite values", dir.join(name).display(), n = s.npix),
                ));
            }
            Ok(a.data)
        };
        Ok(Self {
            source,
            truth: img("truth.npy")?,
            image: img("image.npy")?,
            npix: s.npix,
            fov_uas: s.fov_uas,
            seconds: s.imaging_seconds,
            obs: dir.join("obs.txt"),
        })
    }
}

/// Sums `f × f` blocks: an `n × n` image on an `n/f` grid with the same total flux.
pub fn bin_image(img: &[f64], n: usize, m: usize) -> Vec<f64> {
    let f = n / m;
    let mut out = vec![0.0; m * m];
    for i in 0..n {
        for j in 0..n {
            out[(i / f) * m + j / f] += img[i * n + j];
        }
    }
    out
}

/// The truth on an `n × n` grid in the priors' units: block sums, then peak 1. The priors'
/// images have peak 1; closures do not fix the scale, so only the flux target uses it.
fn prior_units(truth: &[f64], n0: usize, n: usize) -> Vec<f64> {
    let t = bin_image(truth, n0, n);
    let peak = t.iter().cloned().fold(1e-300, f64::max);
    t.iter().map(|v| v / peak).collect()
}

/// The measures of one image against the truth on the same grid.
fn measure(
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

/// The files `benches/reference/ehtim_rml.py` writes per source that the study reads.
const REFERENCE_FILES: [&str; 4] = ["truth.npy", "image.npy", "obs.txt", "summary.json"];

/// Checks everything that needs no network and no measurement, before any work: the settings'
/// ranges, each source and prior name (one plain folder name, given once), that each source's
/// reference folder holds its four files and that each checkpoint exists. [`run`] also reads
/// every reference, loads every prior and checks every run folder before the first run.
///
/// ```
/// use scoreprior::studies::eht::{validate, EhtDpiSettings};
/// let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
/// let reference = root.join("benches/reference/out");
/// let priors = vec![("sources".to_string(), root.join("assets/ncsnpp_sources32/ema.safetensors"))];
/// let s = EhtDpiSettings::default();
/// assert!(validate(&reference, &["ring".to_string()], &priors, &s).is_ok());
/// let e = validate(&reference, &["../out/ring".to_string()], &priors, &s).unwrap_err().to_string();
/// assert!(e.contains("--sources"), "{e}");
/// let bad = EhtDpiSettings { lr: f64::NAN, ..Default::default() };
/// assert!(validate(&reference, &["ring".to_string()], &priors, &bad).unwrap_err().to_string().contains("--lr"));
/// ```
///
/// # Errors
/// The first problem found, naming its flag and value.
pub fn validate(
    reference_dir: &Path,
    sources: &[String],
    priors: &[(String, PathBuf)],
    settings: &EhtDpiSettings,
) -> Result<()> {
    let s = settings;
    let count = |flag: &'static str, v: usize| -> Result<()> {
        if v == 0 {
            return Err(invalid_setting(flag, "0: must be at least 1"));
        }
        Ok(())
    };
    count("--steps", s.steps)?;
    count("--batch", s.batch)?;
    count("--samples", s.samples)?;
    count("flows", s.flows)?;
    if !(s.lr.is_finite() && s.lr > 0.0) {
        return Err(invalid_setting("--lr", format!("{}: must be positive and finite", s.lr)));
    }
    if !(s.init_scale.is_finite() && s.init_scale > 0.0) {
        return Err(invalid_setting("--init-scale", format!("{}: must be positive and finite", s.init_scale)));
    }
    if !(s.init_fwhm_uas.is_finite() && s.init_fwhm_uas > 0.0) {
        return Err(invalid_setting("init_fwhm_uas", format!("{}: must be positive and finite", s.init_fwhm_uas)));
    }
    if !(s.flux_weight.is_finite() && s.flux_weight >= 0.0) {
        return Err(invalid_setting("--flux-weight", format!("{}: must be finite and >= 0", s.flux_weight)));
    }
    if let Some(ex) = &s.exact {
        count("--exact-steps", ex.steps)?;
        count("--exact-batch", ex.batch)?;
    }
    if sources.is_empty() {
        return Err(invalid_setting("--sources", "give at least one source"));
    }
    if priors.is_empty() {
        return Err(invalid_setting("--priors", "give at least one NAME=CHECKPOINT"));
    }
    for src in sources {
        super::check_name("--sources", src)?;
    }
    super::check_unique("--sources", sources.iter().map(String::as_str))?;
    for (name, _) in priors {
        super::check_name("--priors", name)?;
    }
    super::check_unique("--priors", priors.iter().map(|(n, _)| n.as_str()))?;
    for src in sources {
        let dir = reference_dir.join(src);
        if !dir.is_dir() {
            return Err(invalid_setting(
                "--sources",
                format!(
                    "{src}: no folder {} (--reference holds one folder per source, written by \
                     benches/reference/ehtim_rml.py)",
                    dir.display()
                ),
            ));
        }
        if let Some(f) = REFERENCE_FILES.iter().find(|f| !dir.join(f).is_file()) {
            return Err(invalid_setting("--sources", format!("{src}: {} is missing", dir.join(f).display())));
        }
    }
    for (name, ckpt) in priors {
        if !ckpt.is_file() {
            let why = if ckpt.exists() { "is not a file" } else { "does not exist" };
            return Err(invalid_setting("--priors", format!("{name}={}: the checkpoint {why}", ckpt.display())));
        }
    }
    Ok(())
}

/// What defines a DPI stage of `source` under a prior (for its `settings.json`): the SHA-256 of
/// the source's reference folder and of the checkpoint, and every setting of the study (the
/// exact stage starts from the surrogate's MAP image, so its settings include the surrogate's).
fn stage_spec(
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
struct PlannedStage {
    stage: Stage,
    dir: PathBuf,
    spec: serde_json::Value,
    state: SubRun,
}

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
        let sha = super::input_sha256("--reference", &dir)?;
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
        prior_shas.push(super::input_sha256("--priors", ckpt)?);
    }
    let mut plan = Vec::new();
    for (source, (_, _, ref_sha)) in sources.iter().zip(&references) {
        for ((name, _), prior_sha) in priors.iter().zip(&prior_shas) {
            let mut stages = vec![Stage::Surrogate];
            stages.extend(settings.exact.map(Stage::Exact));
            for stage in stages {
                let dir = match stage {
                    Stage::Surrogate => out.join(format!("{source}-{name}")),
                    Stage::Exact(_) => out.join(format!("{source}-{name}-exact")),
                };
                let spec = stage_spec(source, ref_sha, prior_sha, stage, settings);
                let key = dir.join(super::SUB_RUN_SETTINGS);
                let state = super::check_sub_run("eht-study", &dir, &key, &spec, |d| d.join("row.json").exists())?;
                plan.push(PlannedStage { stage, dir, spec, state });
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| scoreprior_core::io::IoError::os(out, e))?;
    super::mark_study_folder(out, "eht-study")?;
    let mut plan = plan.into_iter();
    let mut rows = Vec::new();
    for (source, (r, obs, _)) in sources.iter().zip(&references) {
        let (coverage, vis) = (obs.coverage(), obs.visibilities());
        let resolution = nominal_resolution_uas(&coverage);
        // eht-imaging observes with bilinear (triangle) pixels; the same model fits its data.
        let problem_at = |n: usize| -> Result<ClosureProblem> {
            Ok(Interferometer::new(coverage.clone(), n, r.fov_uas)?
                .with_pulse(Pulse::Triangle)
                .closure_problem(&vis, true)?)
        };
        let n0 = r.npix;
        let p0 = problem_at(n0)?;
        let mut ehtim = measure(source, "ehtim RML".into(), &r.image, &r.truth, n0, r.fov_uas, &p0, resolution)?;
        ehtim.seconds = r.seconds;
        let mut truth_row = measure(source, "truth".into(), &r.truth, &r.truth, n0, r.fov_uas, &p0, resolution)?;
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
        let ctx = SourceRun { source, reference: r, n0, resolution, problem_at: &problem_at };
        for (name, ckpt) in priors {
            let mut stages = vec![Stage::Surrogate];
            stages.extend(settings.exact.map(Stage::Exact));
            for _ in stages {
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

/// What one source's DPI stages share.
struct SourceRun<'a> {
    source: &'a str,
    reference: &'a ReferenceRun,
    n0: usize,
    resolution: f64,
    problem_at: &'a dyn Fn(usize) -> Result<ClosureProblem>,
}

/// The DPI runs of one prior: the DSM surrogate from eht-imaging's Gaussian start through the
/// MAP warm start, then (optionally) the exact PF-ODE prior from the surrogate's MAP image.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Surrogate,
    Exact(ExactStage),
}

/// Mean, std and samples of a run with its row.
type StageOutput = (EhtRow, Vec<f64>, Vec<f64>, Vec<f64>, usize);

/// Runs one planned stage into its folder (`out/<source>-<prior>[-exact]/`, its settings
/// recorded first), or reads it back when it finished with the same settings.
fn dpi_stage(
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
            ..measure(source, stored.method.clone(), &mean, &x, n, r.fov_uas, &p, resolution)?
        };
        return Ok((row, mean, std, rd("samples.npy")?, n));
    }
    super::record_sub_run(&sub.join(super::SUB_RUN_SETTINGS), &planned.spec)?;
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
    res.save(&sub)?;
    let s = &res.summary;
    let mut row = measure(source, method, &s.mean, &x, n, r.fov_uas, &p, resolution)?;
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
