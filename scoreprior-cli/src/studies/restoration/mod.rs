//! The restoration study (supplement Fig. 3 and the sampling-cost paragraph A.2): for each
//! task (denoising; deblurring = keep the low-frequency DFT block), each prior and each test
//! image, DPI and the diffusion-based samplers draw posterior samples (one sub-folder per
//! run, its settings and input hashes recorded beside it, so the study resumes: a finished run
//! of the same settings is read back, not redone; other settings are refused), and the closed-form
//! posterior under the prior's fitted Gaussian (same `y`) is the floor. Metrics: MSE, PSNR,
//! SSIM against the truth, averaged over samples and of the sample mean; seconds of DPI
//! training and of drawing the samples.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scoreprior_core::denoise::linear_gaussian_posterior;
use scoreprior_core::io::{atomic_write, write_csv};
use scoreprior_core::metrics::{image_metrics, ImageMetrics};
use scoreprior_core::sde::{AnySde, VpSde};
use serde::Serialize;

use super::SubRun;
use scoreprior::experiment::inputs::{load_gaussian, load_image, resolve};
use scoreprior::experiment::{conflicting_settings, invalid_setting, DpiSettings, ExperimentError, Result};
use scoreprior_core::io::IoError;

use crate::baseline_run::BaselineOptions;
use crate::dpi_run::DpiRun;
use scoreprior::monitor::Monitor;

/// The flags whose values make a case of the study (a task, a prior and an image).
mod check;

const CASE: &[&str] = &["--tasks", "--priors", "--images"];

/// An error of building the case of `task`, `prior` and `image`: each value passed
/// [`RestorationSettings::validate`], so their combination is at fault
/// ([`ExperimentError::Conflict`] naming the case); a file or folder error stays as it is.
fn in_case(e: ExperimentError, task: &str, prior: &str, image: &str) -> ExperimentError {
    match e {
        e @ (ExperimentError::Io(_) | ExperimentError::Path(_)) => e,
        e => conflicting_settings(CASE, format!("restoration-study: {task}, prior {prior}, image {image}: {e}")),
    }
}

/// A prior of the study: a name, a score-model checkpoint and, for the closed-form floor,
/// the mean and covariance files of the Gaussian fitted to the same data.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyPrior {
    /// Name in the table.
    pub name: String,
    /// The checkpoint (a `DpiSettings::prior` value).
    pub checkpoint: String,
    /// Mean and covariance files of the fitted Gaussian.
    pub gaussian: Option<(PathBuf, PathBuf)>,
}

impl StudyPrior {
    /// Parses `NAME=CHECKPOINT[:MEAN:COV]`.
    ///
    /// ```
    /// use scoreprior_cli::studies::restoration::StudyPrior;
    /// let p = StudyPrior::parse("f=net.safetensors:m.npy:c.npy").unwrap();
    /// assert_eq!((p.name.as_str(), p.gaussian.is_some()), ("f", true));
    /// assert!(StudyPrior::parse("net.safetensors").is_err());
    /// ```
    ///
    /// # Errors
    /// Any other form.
    pub fn parse(s: &str) -> Result<Self> {
        let (name, rest) = split_named("--priors", s)?;
        match rest.split(':').collect::<Vec<_>>().as_slice() {
            [ckpt] => Ok(Self { name: name.into(), checkpoint: ckpt.to_string(), gaussian: None }),
            [ckpt, m, c] => {
                Ok(Self { name: name.into(), checkpoint: ckpt.to_string(), gaussian: Some((m.into(), c.into())) })
            }
            _ => Err(invalid_setting("--priors", format!("expected NAME=CHECKPOINT[:MEAN:COV], got {s:?}"))),
        }
    }
}

/// A test image of the study: a name and image `index` of a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyImage {
    /// Name in the table.
    pub name: String,
    /// The file.
    pub file: PathBuf,
    /// Which image of the file.
    pub index: usize,
}

impl StudyImage {
    /// Parses `NAME=FILE[@INDEX]`.
    ///
    /// ```
    /// use scoreprior_cli::studies::restoration::StudyImage;
    /// assert_eq!(StudyImage::parse("a=x.npy@3").unwrap().index, 3);
    /// assert!(StudyImage::parse("a=x.npy@z").is_err());
    /// ```
    ///
    /// # Errors
    /// Any other form.
    pub fn parse(s: &str) -> Result<Self> {
        let (name, rest) = split_named("--images", s)?;
        let (file, index) = match rest.rsplit_once('@') {
            Some((f, i)) => {
                (f, i.parse::<usize>().map_err(|_| invalid_setting("--images", format!("bad index in {s:?}")))?)
            }
            None => (rest, 0),
        };
        Ok(Self { name: name.into(), file: file.into(), index })
    }
}

fn split_named<'a>(flag: &'static str, s: &'a str) -> Result<(&'a str, &'a str)> {
    s.split_once('=')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| invalid_setting(flag, format!("expected NAME=VALUE, got {s:?}")))
}

/// Settings of the study.
#[derive(Debug, Clone, PartialEq)]
pub struct RestorationSettings {
    /// `denoising` (σ = 0.2) and/or `deblurring` (`deblurring(k=8)`, complex σ = 0.1).
    pub tasks: Vec<String>,
    /// `dpi`, `score-ald`, `dps`, `sde-proj`, `daps`, `pnp-dm`.
    pub methods: Vec<String>,
    /// The priors; every prior is applied to every image.
    pub priors: Vec<StudyPrior>,
    /// The test images.
    pub images: Vec<StudyImage>,
    /// Posterior samples per method.
    pub samples: usize,
    /// DPI steps.
    pub dpi_steps: usize,
    /// The samplers' settings (DPS's ζ′ is divided by each task's ‖A‖).
    pub baselines: BaselineOptions,
    /// Seed of the measurement noise and of every sampler.
    pub seed: u64,
    /// No progress or summaries from the runs.
    pub quiet: bool,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct RestorationRow {
    /// Task.
    pub task: String,
    /// Prior name.
    pub prior: String,
    /// Test image name.
    pub image: String,
    /// Method.
    pub method: String,
    /// Mean over samples of MSE.
    pub samples_mse: f64,
    /// Mean over samples of PSNR (dB).
    pub samples_psnr: f64,
    /// Mean over samples of SSIM.
    pub samples_ssim: f64,
    /// MSE of the sample mean.
    pub mean_mse: f64,
    /// PSNR of the sample mean (dB).
    pub mean_psnr: f64,
    /// SSIM of the sample mean.
    pub mean_ssim: f64,
    /// DPI training seconds (0 for the samplers).
    pub seconds_training: f64,
    /// Seconds to draw the samples.
    pub seconds_sampling: f64,
    /// Samples drawn.
    pub samples: usize,
    /// Fraction of pixels whose truth lies within two posterior standard deviations of the
    /// posterior mean (the samples' std; the floor's exact std); NaN for a failed run.
    pub coverage_2std: f64,
}

/// The rows of a study and the runs that failed (one line each).
#[derive(Debug, Clone, Default)]
pub struct RestorationTable {
    /// One row per task, prior, image and method (a failed run: a row of NaN), then the
    /// closed-form floor.
    pub rows: Vec<RestorationRow>,
    /// `task, prior, image, method: error` of each failed run.
    pub failures: Vec<String>,
}

impl RestorationRow {
    fn new(names: [&str; 4], metrics: [f64; 6], seconds: (f64, f64), samples: usize) -> Self {
        let [task, prior, image, method] = names.map(String::from);
        let [samples_mse, samples_psnr, samples_ssim, mean_mse, mean_psnr, mean_ssim] = metrics;
        let (seconds_training, seconds_sampling) = seconds;
        #[rustfmt::skip]
        let row = Self { task, prior, image, method, samples_mse, samples_psnr, samples_ssim, mean_mse, mean_psnr,
                         mean_ssim, seconds_training, seconds_sampling, samples, coverage_2std: f64::NAN };
        row
    }

    /// Reads the row of a finished run from its `metrics.json`.
    fn from_metrics(names: [&str; 4], dir: &Path) -> Result<Self> {
        let path = dir.join("metrics.json");
        let text = std::fs::read_to_string(&path).map_err(|e| IoError::os(&path, e))?;
        let m: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| IoError::malformed(&path, "JSON", e.to_string()))?;
        let num = |p: &[&str]| p.iter().fold(&m, |v, k| &v[*k]).as_f64().unwrap_or(f64::NAN);
        let metrics = [["sample_metrics", "mse"], ["sample_metrics", "psnr"], ["sample_metrics", "ssim"]]
            .into_iter()
            .chain([["mean_metrics", "mse"], ["mean_metrics", "psnr"], ["mean_metrics", "ssim"]])
            .map(|p| num(&p));
        let metrics: Vec<f64> = metrics.collect();
        let seconds = (num(&["seconds_training"]), num(&["seconds_sampling"]));
        let samples = m["samples"].as_u64().unwrap_or(0) as usize;
        let coverage_2std = num(&["coverage_2std"]);
        Ok(Self { coverage_2std, ..Self::new(names, metrics.try_into().unwrap_or([f64::NAN; 6]), seconds, samples) })
    }
}

/// The forward model and noise of a task.
fn task(name: &str) -> Result<(&'static str, &'static str)> {
    match name {
        "denoising" => Ok(("denoising", "gaussian(sigma=0.2)")),
        "deblurring" => Ok(("deblurring(k=8)", "complex_gaussian(sigma=0.1)")),
        other => Err(invalid_setting("--tasks", format!("unknown task {other:?}; expected denoising or deblurring"))),
    }
}

fn complete(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("run.json")).is_ok_and(|t| t.contains("\"complete\""))
        && dir.join("metrics.json").exists()
}

const METHODS: [&str; 6] = ["dpi", "score-ald", "dps", "sde-proj", "daps", "pnp-dm"];

/// The folder of a task, prior and image (one sub-folder per method below it).
fn case_folder(task: &str, prior: &str, image: &str) -> String {
    format!("{task}-{prior}-on-{image}")
}

/// One run of the study, planned: its folder, where its settings are recorded, the settings,
/// and what its folder holds.
struct PlannedRun {
    method: String,
    dir: PathBuf,
    key: PathBuf,
    spec: serde_json::Value,
    state: SubRun,
}

/// One task, prior and image, planned: the settings its runs share and its runs.
struct PlannedCase<'a> {
    task: &'a str,
    noise: &'static str,
    prior: &'a StudyPrior,
    image: &'a StudyImage,
    base: DpiSettings,
    baselines: BaselineOptions,
    runs: Vec<PlannedRun>,
}

/// What defines run `method` of a case: the DPI settings the run is built from (with the
/// SHA-256 of its inputs: the test image, the checkpoint or the Gaussian's files), the seed, the
/// samples and the method's own settings (each under its flag's name).
fn run_spec(
    task: &str,
    method: &str,
    manifest: &crate::run_folder::RunManifest,
    s: &RestorationSettings,
) -> serde_json::Value {
    let inputs: serde_json::Map<String, serde_json::Value> =
        manifest.inputs.iter().map(|(flag, h)| (flag.clone(), serde_json::json!(h.sha256))).collect();
    let mut spec = serde_json::json!({
        "study": "restoration-study", "task": task, "method": method, "problem": manifest.config,
        "inputs": inputs, "seed": s.seed, "samples": s.samples,
    });
    let b = &s.baselines;
    let own = match method {
        "dpi" => serde_json::json!({"dpi_steps": s.dpi_steps}),
        "dps" => serde_json::json!({"sampler_steps": b.sampler_steps, "zeta": b.zeta}),
        "sde-proj" => serde_json::json!({"sampler_steps": b.sampler_steps, "lambda": b.lambda}),
        "daps" => serde_json::json!({
            "daps_levels": b.daps_levels, "daps_langevin_steps": b.daps_langevin_steps, "daps_step": b.daps_step
        }),
        "pnp-dm" => {
            let mut own = serde_json::json!({
                "pnp_iterations": b.pnp_iterations, "pnp_burn_in": b.pnp_burn_in, "pnp_rho_start": b.pnp_rho_start,
                "pnp_denoise_steps": b.pnp_denoise_steps
            });
            // The Langevin likelihood step's settings, recorded only when set: both tasks are
            // linear with D ≤ 2048, where PnP-DM takes the exact step and never uses them, and
            // runs recorded before they were settings stay valid.
            let d = BaselineOptions::default();
            if (b.pnp_likelihood_steps, b.pnp_likelihood_step, b.pnp_likelihood_lr)
                != (d.pnp_likelihood_steps, d.pnp_likelihood_step, d.pnp_likelihood_lr)
            {
                own["pnp_likelihood_steps"] = b.pnp_likelihood_steps.into();
                own["pnp_likelihood_step"] = b.pnp_likelihood_step.into();
                own["pnp_likelihood_lr"] = serde_json::json!(b.pnp_likelihood_lr);
            }
            // The schedule's decay and floor, likewise only when set (runs recorded before they
            // were flags used the defaults).
            if (b.pnp_rho_decay, b.pnp_rho_min, b.pnp_t_min) != (d.pnp_rho_decay, d.pnp_rho_min, d.pnp_t_min) {
                own["pnp_rho_decay"] = b.pnp_rho_decay.into();
                own["pnp_rho_min"] = b.pnp_rho_min.into();
                own["pnp_t_min"] = b.pnp_t_min.into();
            }
            own
        }
        _ => serde_json::json!({"ald_levels": b.ald_levels, "ald_steps": b.ald_steps, "ald_step": b.ald_step}),
    };
    if let (Some(m), serde_json::Value::Object(o)) = (spec.as_object_mut(), own) {
        m.extend(o);
    }
    spec
}

/// Every case built and every run's folder checked against its settings, before any runs.
fn plan<'a>(s: &'a RestorationSettings, out: &Path) -> Result<Vec<PlannedCase<'a>>> {
    let mut cases = Vec::new();
    for task_name in &s.tasks {
        let (forward, noise) = task(task_name)?;
        for prior in &s.priors {
            for image in &s.images {
                let (p, i) = (prior.name.as_str(), image.name.as_str());
                let at = |e: ExperimentError| in_case(e, task_name, p, i);
                let folder = out.join(case_folder(task_name, p, i));
                let mut base = DpiSettings::default();
                base.problem.forward = forward.into();
                base.problem.noise = Some(noise.into());
                base.problem.x_true = Some(image.file.clone());
                base.problem.index = image.index;
                base.prior.prior = prior.checkpoint.clone().into();
                base.prior.surrogate = true;
                base.prior.time_floor_from = 0.1;
                (base.seed, base.output.samples, base.optim.steps) = (s.seed, s.samples, s.dpi_steps);
                base.output.quiet = s.quiet;
                if let Some((m, c)) = &prior.gaussian {
                    (base.prior.mean, base.prior.cov) = (m.clone(), c.clone());
                }
                let (experiment, prior_file) = base.build().map_err(at)?;
                // DPS's ζ′ is the papers' for operators of norm 1 (blur kernels summing to one,
                // masks): its step grows with ‖A‖, so it is divided by ‖A‖ (16 for the
                // unnormalised 16×16 DFT of deblurring), which keeps one ζ′ for both tasks.
                let a_norm = scoreprior_core::baselines::operator_norm_sq(experiment.forward())
                    .map_err(|e| at(e.into()))?
                    .unwrap_or(1.0)
                    .sqrt();
                let baselines = BaselineOptions { zeta: s.baselines.zeta / a_norm, ..s.baselines.clone() };
                let manifest = base.manifest(&prior_file).map_err(at)?;
                let mut runs = Vec::new();
                for method in &s.methods {
                    if method != "dpi" {
                        let b = baselines.baseline(method, noise).map_err(at)?;
                        experiment.check_baseline(&b).map_err(at)?;
                    }
                    let dir = folder.join(method);
                    let key = super::sub_run_key(&dir);
                    let spec = run_spec(task_name, method, &manifest, s);
                    let state = super::check_sub_run("restoration-study", &dir, &key, &spec, complete)?;
                    runs.push(PlannedRun { method: method.clone(), dir, key, spec, state });
                }
                cases.push(PlannedCase { task: task_name, noise, prior, image, base, baselines, runs });
            }
        }
    }
    Ok(cases)
}

/// Runs the study into `out` (one sub-folder `TASK-PRIOR-on-IMAGE/METHOD` per run, its
/// settings and the SHA-256 of its inputs recorded beside it in `METHOD.settings.json`). Before
/// any run, every setting, name and file is checked ([`RestorationSettings::validate`]), every
/// case is built, and every run folder is checked against its settings: a folder of other
/// settings is an error naming each difference, never a stale row. Finished runs are read back,
/// a stopped DPI run resumes, a stopped sampler starts over. Which run starts, and which fails,
/// goes to `monitor.note`; a failed run is a row, not the end.
///
/// ```no_run
/// use scoreprior_cli::studies::restoration::{self, RestorationSettings, StudyImage, StudyPrior};
///
/// let settings = RestorationSettings {
///     tasks: vec!["deblurring".into()],
///     methods: vec!["dps".into()],
///     priors: vec![StudyPrior::parse("fmnist=assets/ncsnpp_fmnist16/ema.safetensors")?],
///     images: vec![StudyImage::parse("fmnist=assets/fashion16_test.npy@0")?],
///     samples: 16,
///     dpi_steps: 100,
///     baselines: Default::default(),
///     seed: 0,
///     quiet: true,
/// };
/// let out = std::path::Path::new("out/restoration");
/// let table = restoration::run(&settings, out, &mut scoreprior::monitor::Silent)?;
/// print!("{}", restoration::write_table(&table, out)?);
/// # Ok::<(), scoreprior::experiment::ExperimentError>(())
/// ```
///
/// # Errors
/// A setting, name or file [`RestorationSettings::validate`] refuses; a case that cannot be
/// built (an image index out of range, an unreadable checkpoint); a run folder holding other
/// settings or files the study did not record; a finished run's unreadable metrics.
pub fn run(s: &RestorationSettings, out: &Path, monitor: &mut dyn Monitor) -> Result<RestorationTable> {
    s.validate()?;
    let cases = plan(s, out)?;
    std::fs::create_dir_all(out).map_err(|e| scoreprior_core::io::IoError::os(out, e))?;
    super::mark_study_folder(out, "restoration-study")?;
    let mut table = RestorationTable::default();
    for case in cases {
        let (task_name, noise, base) = (case.task, case.noise, &case.base);
        let (p, i) = (case.prior.name.as_str(), case.image.name.as_str());
        for r in &case.runs {
            let (method, dir) = (r.method.as_str(), &r.dir);
            if r.state != SubRun::Finished {
                monitor.note(&format!("restoration-study: {task_name}, prior {p}, image {i}: {method}"));
                super::record_sub_run(&r.key, &r.spec)?;
                let mut run = base.clone();
                run.output.out = dir.clone();
                // A run the study was stopped in: DPI continues from its checkpoint, a
                // sampler (nothing to resume) starts again, the old folder moved aside.
                let stopped = r.state == SubRun::Stopped && dir.join("run.json").exists();
                (run.output.resume, run.output.force) = (stopped && method == "dpi", stopped && method != "dpi");
                let result = match method {
                    "dpi" => run.run(monitor),
                    m => case.baselines.baseline(m, noise).and_then(|b| run.run_baseline(b, monitor)),
                };
                // A sampler that diverges is a result (a row with no metrics), not the
                // end of the study.
                if let Err(e) = result {
                    monitor.note(&format!("restoration-study: {method} failed: {e}"));
                    table.failures.push(format!("{task_name}, prior {p}, image {i}, {method}: {e}"));
                    let failed = format!("{method} (failed)");
                    table.rows.push(RestorationRow::new(
                        [task_name, p, i, &failed],
                        [f64::NAN; 6],
                        (f64::NAN, f64::NAN),
                        0,
                    ));
                    continue;
                }
            }
            table.rows.push(RestorationRow::from_metrics([task_name, p, i, method], dir)?);
        }
        if let Some((m, c)) = &case.prior.gaussian {
            let fit = format!("{p} (Gaussian fit)");
            let names = [task_name, fit.as_str(), i, "closed-form Gaussian posterior"];
            table.rows.push(closed_form_row(base, (m, c), names, s.samples, s.seed)?);
        }
    }
    Ok(table)
}

/// The floor: `samples` draws of the exact posterior under the Gaussian `(mean, cov)` files,
/// given the same `y` as every method's (the experiment simulates it from the seed).
fn closed_form_row(
    base: &DpiSettings,
    (m, c): (&Path, &Path),
    names: [&str; 4],
    samples: usize,
    seed: u64,
) -> Result<RestorationRow> {
    let (experiment, _) = base.build()?;
    let g = load_gaussian(m, c, AnySde::Vp(VpSde::default()))?;
    let cov = g.covariance();
    let t0 = std::time::Instant::now();
    let (mean, _, l) = linear_gaussian_posterior(experiment.forward(), experiment.y(), g.mean(), &cov)?;
    let d = mean.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draws = Vec::with_capacity(samples * d);
    for _ in 0..samples {
        let z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
        draws.extend((0..d).map(|i| mean[i] + (0..=i).map(|j| l[i * d + j] * z[j]).sum::<f64>()));
    }
    let seconds = t0.elapsed().as_secs_f64();
    let truth = experiment.truth().ok_or_else(|| invalid_setting("--images", "the study needs a ground truth"))?;
    let side = (d as f64).sqrt() as usize;
    let per: Vec<_> = draws.chunks(d).map(|x| image_metrics(x, truth, side, side, 1.0)).collect::<Result<_, _>>()?;
    let avg = |f: &dyn Fn(&ImageMetrics) -> f64| per.iter().map(f).sum::<f64>() / per.len() as f64;
    let mm = image_metrics(&mean, truth, side, side, 1.0)?;
    let metrics = [avg(&|m| m.mse), avg(&|m| m.psnr), avg(&|m| m.ssim), mm.mse, mm.psnr, mm.ssim];
    // The exact std of pixel i: the norm of row i of the Cholesky factor.
    let inside = (0..d)
        .filter(|&i| {
            let sd = (0..=i).map(|j| l[i * d + j] * l[i * d + j]).sum::<f64>().sqrt();
            (truth[i] - mean[i]).abs() <= 2.0 * sd
        })
        .count();
    let coverage_2std = inside as f64 / d as f64;
    Ok(RestorationRow { coverage_2std, ..RestorationRow::new(names, metrics, (0.0, seconds), samples) })
}

/// Writes `out/table.csv` and `out/table.md` (with a line per failed run) and returns the
/// Markdown.
///
/// ```
/// use scoreprior_cli::studies::restoration::{write_table, RestorationTable};
/// let dir = std::env::temp_dir().join(format!("scoreprior-restoration-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let md = write_table(&RestorationTable::default(), &dir).unwrap();
/// assert!(md.starts_with("| task |") && dir.join("table.csv").exists());
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
///
/// # Errors
/// A file cannot be written.
pub fn write_table(table: &RestorationTable, out: &Path) -> Result<String> {
    write_csv(out.join("table.csv"), &table.rows)?;
    let mut md = String::from(
        "| task | prior | image | method | PSNR samples | SSIM samples | MSE samples | PSNR mean | SSIM mean | MSE mean | 2-std coverage | train s | sample s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &table.rows {
        md += &format!(
            "| {} | {} | {} | {} | {:.2} | {:.3} | {:.4} | {:.2} | {:.3} | {:.4} | {:.3} | {:.0} | {:.1} |\n",
            r.task,
            r.prior,
            r.image,
            r.method,
            r.samples_psnr,
            r.samples_ssim,
            r.samples_mse,
            r.mean_psnr,
            r.mean_ssim,
            r.mean_mse,
            r.coverage_2std,
            r.seconds_training,
            r.seconds_sampling
        );
    }
    for f in &table.failures {
        md += &format!("\nfailed: {f}");
    }
    atomic_write(out.join("table.md"), md.as_bytes())?;
    Ok(md)
}
