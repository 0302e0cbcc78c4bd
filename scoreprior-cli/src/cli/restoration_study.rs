//! `scoreprior restoration-study`: the supplement's Fig. 3 and its sampling-cost paragraph
//! (A.2) in one run. For each task (denoising, deblurring = keep the low-frequency DFT
//! block), each prior and each test image, every method draws `--samples` posterior samples
//! through `scoreprior posterior` (one sub-folder per run, so the study resumes: a finished
//! run of the same settings is read back, not redone, and a run of other settings is an error
//! naming each difference); the closed-form posterior under the fitted Gaussian prior
//! `N(μ, Σ)` (same `y`) is the floor. Metrics: MSE, PSNR, SSIM against the truth, averaged over
//! samples and of the sample mean; seconds of DPI training and of drawing the samples.
//! Argument mapping onto [`scoreprior_cli::studies::restoration`].

use std::path::PathBuf;

use clap::Args;
use scoreprior_cli::baseline_run::BaselineOptions;
use scoreprior_cli::studies::restoration::{self, RestorationSettings, StudyImage, StudyPrior};

use super::monitor::Bars;
use super::CliResult;

/// Arguments of `scoreprior restoration-study`.
#[derive(Debug, Clone, Args)]
pub struct RestorationStudyArgs {
    /// Output folder: table.csv, table.md and one sub-folder per run.
    #[arg(long)]
    pub out: PathBuf,
    /// Tasks: denoising (σ = 0.2) and/or deblurring (deblurring(k=8), complex σ = 0.1).
    #[arg(long, value_delimiter = ',', default_value = "denoising,deblurring")]
    pub tasks: Vec<String>,
    /// Methods: dpi, score-ald, dps, sde-proj, daps, pnp-dm.
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
    /// The diffusion samplers' settings.
    #[command(flatten)]
    pub baselines: BaselineOptions,
    /// Seed of the measurement noise and of every sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// No progress output from the runs.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `scoreprior restoration-study`.
pub fn run(args: RestorationStudyArgs) -> CliResult {
    let settings = RestorationSettings {
        priors: args.priors.iter().map(|p| StudyPrior::parse(p)).collect::<Result<_, _>>()?,
        images: args.images.iter().map(|i| StudyImage::parse(i)).collect::<Result<_, _>>()?,
        tasks: args.tasks,
        methods: args.methods,
        samples: args.samples,
        dpi_steps: args.dpi_steps,
        baselines: args.baselines,
        seed: args.seed,
        quiet: args.quiet,
    };
    // Every setting, name and file is checked before the folder is taken.
    settings.validate()?;
    let mut inputs: Vec<(&str, &std::path::Path)> = Vec::new();
    for p in &settings.priors {
        if !p.checkpoint.is_empty() {
            inputs.push(("--priors", std::path::Path::new(&p.checkpoint)));
        }
        if let Some((m, c)) = &p.gaussian {
            inputs.extend([("--priors", m.as_path()), ("--priors", c.as_path())]);
        }
    }
    inputs.extend(settings.images.iter().map(|i| ("--images", i.file.as_path())));
    let claim = super::claim(super::guard("restoration-study", &inputs, &[]), "--out", &args.out, true)?;
    let table = restoration::run(&settings, &args.out, &mut Bars::new(args.quiet))?;
    print!("{}", restoration::write_table(&table, &args.out)?);
    Ok(claim.finish()?)
}
