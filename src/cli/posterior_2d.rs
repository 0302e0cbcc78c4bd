//! `scoreprior posterior-2d`: the 2-D posterior study (supplement Fig. 5, main Fig. 4) as one
//! command: argument mapping onto [`scoreprior::studies::posterior2d`].

use std::path::PathBuf;

use clap::Args;
use scoreprior::studies::posterior2d::{self, Case, StudySettings};

use super::CliResult;

/// Arguments of `scoreprior posterior-2d`.
#[derive(Debug, Clone, Args)]
pub struct Posterior2dArgs {
    /// Output folder: table.csv, table.md, search.csv, contours_<case>.svg, samples_*.npy.
    #[arg(long)]
    pub out: PathBuf,
    /// Samples per method and case (the paper: 10,000).
    #[arg(long, default_value_t = 10_000)]
    pub samples: usize,
    /// DPI optimisation steps.
    #[arg(long, default_value_t = 1500)]
    pub dpi_steps: usize,
    /// DPI samples per step.
    #[arg(long)]
    pub dpi_batch: Option<usize>,
    /// DPI coupling blocks.
    #[arg(long)]
    pub dpi_flows: Option<usize>,
    /// DPI peak learning rate.
    #[arg(long)]
    pub dpi_lr: Option<f64>,
    /// DPI initial spread around 0.
    #[arg(long)]
    pub dpi_init_scale: Option<f64>,
    /// Steps of DPI's data-weight ramp from 0 (0: none).
    #[arg(long)]
    pub dpi_anneal_data: Option<usize>,
    /// A small, fast version (2,000 samples, short samplers, two knob values each): a smoke
    /// run, not the study.
    #[arg(long)]
    pub quick: bool,
    /// Seed of every sampler and of DPI.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only the named cases (gaussian-low, gaussian-high, mixture), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub cases: Vec<String>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `scoreprior posterior-2d`.
pub fn run(args: Posterior2dArgs) -> CliResult {
    let mut settings = if args.quick { StudySettings::quick() } else { StudySettings::default() };
    if !args.quick {
        settings.samples = args.samples;
        settings.dpi_steps = args.dpi_steps;
    }
    settings.seed = args.seed;
    settings.dpi_batch = args.dpi_batch.unwrap_or(settings.dpi_batch);
    settings.dpi_flows = args.dpi_flows.unwrap_or(settings.dpi_flows);
    settings.dpi_lr = args.dpi_lr.unwrap_or(settings.dpi_lr);
    settings.dpi_init_scale = args.dpi_init_scale.unwrap_or(settings.dpi_init_scale);
    settings.dpi_anneal_data = args.dpi_anneal_data.unwrap_or(settings.dpi_anneal_data);
    if settings.dpi_steps == 0 {
        return Err("--dpi-steps must be at least 1".into());
    }
    let mut cases = Case::reference();
    if !args.cases.is_empty() {
        for c in &args.cases {
            if !cases.iter().any(|k| &k.name == c) {
                return Err(
                    format!("--cases: unknown case {c:?}; expected gaussian-low, gaussian-high or mixture").into()
                );
            }
        }
        cases.retain(|k| args.cases.contains(&k.name));
    }
    let _lock = super::own_folder("--out", &args.out)?;
    let quiet = args.quiet;
    let study = posterior2d::run(&cases, &settings, &mut |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })?;
    study.write(&args.out)?;
    print!("{}", study.markdown());
    eprintln!("2-D study done in {:.0} s; outputs in {}", study.seconds, args.out.display());
    Ok(())
}
