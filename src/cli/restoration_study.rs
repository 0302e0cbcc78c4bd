//! `scoreprior restoration-study`: the supplement's Fig. 3 and its sampling-cost paragraph
//! (A.2) in one run. For each task (denoising, deblurring = keep the low-frequency DFT
//! block), each prior and each test image, every method draws `--samples` posterior samples
//! through `scoreprior posterior` (one sub-folder per run, so the study resumes: a finished
//! run is read back, not redone); the closed-form posterior under the fitted Gaussian prior
//! `N(μ, Σ)` (same `y`) is the floor. Metrics: MSE, PSNR, SSIM against the truth, averaged over
//! samples and of the sample mean; seconds of DPI training and of drawing the samples.

use std::path::{Path, PathBuf};

use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use scoreprior_core::denoise::linear_gaussian_posterior;
use scoreprior_core::io::{atomic_write, write_csv};
use scoreprior_core::metrics::image_metrics;
use scoreprior_core::sde::{AnySde, VpSde};
use serde::Serialize;

use super::logprob::load_gaussian;
use super::posterior::{self, PosteriorArgs};
use super::{dpi, CliResult};

/// Arguments of `scoreprior restoration-study`.
#[derive(Debug, Clone, Args)]
pub struct RestorationStudyArgs {
    /// Output folder: table.csv, table.md and one sub-folder per run.
    #[arg(long)]
    pub out: PathBuf,
    /// Tasks: denoising (σ = 0.2) and/or deblurring (deblurring(k=8), complex σ = 0.1).
    #[arg(long, value_delimiter = ',', default_value = "denoising,deblurring")]
    pub tasks: Vec<String>,
    /// Methods: dpi, score-ald, dps, sde-proj.
    #[arg(long, value_delimiter = ',', default_value = "dpi,score-ald,dps,sde-proj")]
    pub methods: Vec<String>,
    /// Priors as NAME=CHECKPOINT[:MEAN:COV] (MEAN/COV: the fitted Gaussian of the same data,
    /// for the closed-form floor). Default: the shipped Fashion-MNIST NCSN++ and Gaussian.
    #[arg(
        long,
        default_value = "fmnist=assets/ncsnpp_fmnist16/ema.safetensors:assets/gaussian16/mean.npy:assets/gaussian16/cov.npy"
    )]
    pub priors: Vec<String>,
    /// Test images as NAME=FILE[@INDEX] (.npy); every prior is applied to every image.
    #[arg(long, default_value = "fmnist=assets/fashion16_test.npy@0")]
    pub images: Vec<String>,
    /// Posterior samples per method (the supplement: 128).
    #[arg(long, default_value_t = 128)]
    pub samples: usize,
    /// DPI steps (the main job's 1500 by default).
    #[arg(long, default_value_t = 1500)]
    pub dpi_steps: usize,
    /// Reverse-diffusion steps of DPS and SDE+Proj.
    #[arg(long, default_value_t = 1000)]
    pub sampler_steps: usize,
    /// Score-ALD noise levels.
    #[arg(long, default_value_t = 200)]
    pub ald_levels: usize,
    /// DPS ζ′.
    #[arg(long, default_value_t = 1.0)]
    pub zeta: f64,
    /// SDE+Proj λ.
    #[arg(long, default_value_t = 1.0)]
    pub lambda: f64,
    /// Seed of the measurement noise and of every sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress output from the runs.
    #[arg(long)]
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
    /// Mean over samples of MSE / PSNR / SSIM.
    pub samples_mse: f64,
    /// Mean over samples of PSNR (dB).
    pub samples_psnr: f64,
    /// Mean over samples of SSIM.
    pub samples_ssim: f64,
    /// Of the sample mean.
    pub mean_mse: f64,
    /// Of the sample mean (dB).
    pub mean_psnr: f64,
    /// Of the sample mean.
    pub mean_ssim: f64,
    /// DPI training seconds (0 for the samplers).
    pub seconds_training: f64,
    /// Seconds to draw the samples.
    pub seconds_sampling: f64,
    /// Samples drawn.
    pub samples: usize,
}

impl RestorationRow {
    fn failed(task: &str, prior: &str, image: &str, method: &str) -> Self {
        RestorationRow {
            task: task.into(),
            prior: prior.into(),
            image: image.into(),
            method: format!("{method} (failed)"),
            samples_mse: f64::NAN,
            samples_psnr: f64::NAN,
            samples_ssim: f64::NAN,
            mean_mse: f64::NAN,
            mean_psnr: f64::NAN,
            mean_ssim: f64::NAN,
            seconds_training: f64::NAN,
            seconds_sampling: f64::NAN,
            samples: 0,
        }
    }
}

fn task(name: &str) -> CliResult<(&'static str, &'static str)> {
    match name {
        "denoising" => Ok(("denoising", "gaussian(sigma=0.2)")),
        "deblurring" => Ok(("deblurring(k=8)", "complex_gaussian(sigma=0.1)")),
        other => Err(format!("--tasks: unknown task {other:?}; expected denoising or deblurring").into()),
    }
}

fn split_named<'a>(flag: &str, s: &'a str) -> CliResult<(&'a str, &'a str)> {
    s.split_once('=')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
        .ok_or_else(|| format!("{flag}: expected NAME=VALUE, got {s:?}").into())
}

fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    path.iter().fold(v, |v, k| &v[*k]).as_f64().unwrap_or(f64::NAN)
}

fn row_from_metrics(task: &str, prior: &str, image: &str, method: &str, dir: &Path) -> CliResult<RestorationRow> {
    let text = std::fs::read_to_string(dir.join("metrics.json")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let m: serde_json::Value = serde_json::from_str(&text)?;
    Ok(RestorationRow {
        task: task.into(),
        prior: prior.into(),
        image: image.into(),
        method: method.into(),
        samples_mse: num(&m, &["sample_metrics", "mse"]),
        samples_psnr: num(&m, &["sample_metrics", "psnr"]),
        samples_ssim: num(&m, &["sample_metrics", "ssim"]),
        mean_mse: num(&m, &["mean_metrics", "mse"]),
        mean_psnr: num(&m, &["mean_metrics", "psnr"]),
        mean_ssim: num(&m, &["mean_metrics", "ssim"]),
        seconds_training: num(&m, &["seconds_training"]),
        seconds_sampling: num(&m, &["seconds_sampling"]),
        samples: m["samples"].as_u64().unwrap_or(0) as usize,
    })
}

fn complete(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("run.json")).is_ok_and(|t| t.contains("\"complete\""))
        && dir.join("metrics.json").exists()
}

/// Runs `scoreprior restoration-study`.
pub fn run(args: RestorationStudyArgs) -> CliResult {
    if args.samples == 0 || args.dpi_steps == 0 {
        return Err("--samples and --dpi-steps must be at least 1".into());
    }
    let tasks = args.tasks.iter().map(|t| task(t).map(|f| (t.clone(), f))).collect::<CliResult<Vec<_>>>()?;
    for m in &args.methods {
        if !["dpi", "score-ald", "dps", "sde-proj"].contains(&m.as_str()) {
            return Err(format!("--methods: unknown method {m:?}; expected dpi, score-ald, dps or sde-proj").into());
        }
    }
    let priors = args
        .priors
        .iter()
        .map(|p| {
            let (name, rest) = split_named("--priors", p)?;
            let parts: Vec<&str> = rest.split(':').collect();
            match parts.as_slice() {
                [ckpt] => Ok((name.to_string(), ckpt.to_string(), None)),
                [ckpt, m, c] => Ok((name.to_string(), ckpt.to_string(), Some((m.to_string(), c.to_string())))),
                _ => Err(format!("--priors: expected NAME=CHECKPOINT[:MEAN:COV], got {p:?}").into()),
            }
        })
        .collect::<CliResult<Vec<_>>>()?;
    let images = args
        .images
        .iter()
        .map(|s| {
            let (name, rest) = split_named("--images", s)?;
            let (file, index) = match rest.rsplit_once('@') {
                Some((f, i)) => (f, i.parse::<usize>().map_err(|_| format!("--images: bad index in {s:?}"))?),
                None => (rest, 0),
            };
            Ok((name.to_string(), file.to_string(), index))
        })
        .collect::<CliResult<Vec<_>>>()?;
    let _lock = super::own_folder("--out", &args.out)?;
    let (mut rows, mut failures) = (Vec::new(), Vec::new());
    for (task_name, (forward, noise)) in &tasks {
        for (prior_name, ckpt, gaussian) in &priors {
            for (image_name, file, index) in &images {
                let folder = args.out.join(format!("{task_name}-{prior_name}-on-{image_name}"));
                let (idx, seed, samples) = (index.to_string(), args.seed.to_string(), args.samples.to_string());
                let (steps, ss, al) =
                    (args.dpi_steps.to_string(), args.sampler_steps.to_string(), args.ald_levels.to_string());
                // DPS's ζ′ is the papers' for operators of norm 1 (blur kernels summing to one,
                // masks): its step grows with ‖A‖, so it is divided by ‖A‖ (16 for the
                // unnormalised 16×16 DFT of deblurring), which keeps one ζ′ for both tasks.
                let a_norm = {
                    let probe = PosteriorArgs::from_flags(&[
                        "--forward",
                        forward,
                        "--noise",
                        noise,
                        "--x-true",
                        file,
                        "--index",
                        &idx,
                        "--out",
                        "unused",
                    ])?;
                    let (e, _) = dpi::build_experiment(&probe.dpi)?;
                    scoreprior_core::baselines::operator_norm_sq(e.forward())?.unwrap_or(1.0).sqrt()
                };
                let (zeta, lambda) = ((args.zeta / a_norm).to_string(), args.lambda.to_string());
                let base = |method: &str, out: &str| -> CliResult<PosteriorArgs> {
                    #[rustfmt::skip]
                    let mut flags = vec!["--method", method, "--prior", ckpt, "--surrogate", "--forward", forward,
                        "--noise", noise, "--x-true", file, "--index", &idx, "--seed", &seed, "--samples", &samples,
                        "--steps", &steps, "--time-floor-from", "0.1", "--sampler-steps", &ss, "--ald-levels", &al,
                        "--zeta", &zeta, "--lambda", &lambda, "--out", out];
                    if args.quiet {
                        flags.push("--quiet");
                    }
                    if let Some((m, c)) = gaussian {
                        flags.extend(["--mean", m.as_str(), "--cov", c.as_str()]);
                    }
                    posterior::PosteriorArgs::from_flags(&flags)
                };
                for method in &args.methods {
                    let dir = folder.join(method);
                    if !complete(&dir) {
                        eprintln!("restoration-study: {task_name}, prior {prior_name}, image {image_name}: {method}");
                        // A sampler that diverges is a result (a row with no metrics), not the
                        // end of the study.
                        let mut run = base(method, &dir.to_string_lossy())?;
                        // A run the study was stopped in: DPI continues from its checkpoint, a
                        // sampler (nothing to resume) starts again, the old folder moved aside.
                        let stopped = dir.join("run.json").exists();
                        (run.dpi.resume, run.dpi.force) = (stopped && method == "dpi", stopped && method != "dpi");
                        if let Err(e) = posterior::run_with(&run) {
                            eprintln!("restoration-study: {method} failed: {e}");
                            failures
                                .push(format!("{task_name}, prior {prior_name}, image {image_name}, {method}: {e}"));
                            rows.push(RestorationRow::failed(task_name, prior_name, image_name, method));
                            continue;
                        }
                    }
                    rows.push(row_from_metrics(task_name, prior_name, image_name, method, &dir)?);
                }
                if let Some((m, c)) = gaussian {
                    // The same y as every method's: the experiment simulates it from the seed.
                    let p = base("dpi", &folder.join("gaussian").to_string_lossy())?;
                    let (experiment, _) = dpi::build_experiment(&p.dpi)?;
                    let g = load_gaussian(Path::new(m), Path::new(c), AnySde::Vp(VpSde::default()))?;
                    let cov = g.covariance();
                    let t0 = std::time::Instant::now();
                    let (mean, _, l) = linear_gaussian_posterior(experiment.forward(), experiment.y(), g.mean(), &cov)?;
                    let d = mean.len();
                    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
                    let mut draws = Vec::with_capacity(args.samples * d);
                    for _ in 0..args.samples {
                        let z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
                        draws.extend((0..d).map(|i| mean[i] + (0..=i).map(|j| l[i * d + j] * z[j]).sum::<f64>()));
                    }
                    let seconds = t0.elapsed().as_secs_f64();
                    let truth = experiment.truth().ok_or("the study needs a ground truth")?;
                    let side = (d as f64).sqrt() as usize;
                    let per: Vec<_> =
                        draws.chunks(d).map(|x| image_metrics(x, truth, side, side, 1.0)).collect::<Result<_, _>>()?;
                    let avg = |f: &dyn Fn(&scoreprior_core::metrics::ImageMetrics) -> f64| {
                        per.iter().map(f).sum::<f64>() / per.len() as f64
                    };
                    let mm = image_metrics(&mean, truth, side, side, 1.0)?;
                    rows.push(RestorationRow {
                        task: task_name.clone(),
                        prior: format!("{prior_name} (Gaussian fit)"),
                        image: image_name.clone(),
                        method: "closed-form Gaussian posterior".into(),
                        samples_mse: avg(&|m| m.mse),
                        samples_psnr: avg(&|m| m.psnr),
                        samples_ssim: avg(&|m| m.ssim),
                        mean_mse: mm.mse,
                        mean_psnr: mm.psnr,
                        mean_ssim: mm.ssim,
                        seconds_training: 0.0,
                        seconds_sampling: seconds,
                        samples: args.samples,
                    });
                }
            }
        }
    }
    write_csv(args.out.join("table.csv"), &rows)?;
    let mut md = String::from(
        "| task | prior | image | method | PSNR samples | SSIM samples | MSE samples | PSNR mean | SSIM mean | MSE mean | train s | sample s |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {} | {} | {:.2} | {:.3} | {:.4} | {:.2} | {:.3} | {:.4} | {:.0} | {:.1} |\n",
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
            r.seconds_training,
            r.seconds_sampling
        );
    }
    for f in &failures {
        md += &format!("\nfailed: {f}");
    }
    atomic_write(args.out.join("table.md"), md.as_bytes())?;
    print!("{md}");
    Ok(())
}
