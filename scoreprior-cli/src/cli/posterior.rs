//! `scoreprior posterior --method dpi|score-ald|dps|sde-proj`: posterior samples of the same
//! prior, forward model and measurement (every `dpi` flag) from DPI or a diffusion-based
//! baseline; writes what `dpi` writes (samples, mean/std, metrics.json with
//! `seconds_per_sample` for the baselines).

use clap::{Args, ValueEnum};
use scoreprior_cli::baseline_run::BaselineOptions;
use scoreprior_cli::dpi_run::DpiRun;

use super::dpi::{self, DpiArgs, DpiSummary};
use super::monitor::Bars;
use super::CliResult;

/// The posterior sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Deep Probabilistic Imaging (the `dpi` command).
    Dpi,
    /// Annealed Langevin dynamics (Jalal et al. 2021).
    ScoreAld,
    /// Diffusion posterior sampling (Chung et al. 2023).
    Dps,
    /// Reverse SDE with projections onto the measurement (Song et al. 2022).
    SdeProj,
}

/// Arguments of `scoreprior posterior`.
#[derive(Debug, Clone, Args)]
pub struct PosteriorArgs {
    /// The sampler.
    #[arg(long, value_enum, default_value = "dpi")]
    pub method: Method,
    /// Reverse-diffusion steps of DPS and SDE+Proj (the papers: 1000).
    #[arg(long, default_value_t = 1000)]
    pub sampler_steps: usize,
    /// DPS step scale ζ′ (the paper: 0.1–1 for images; tune per problem).
    #[arg(long, default_value_t = 1.0)]
    pub zeta: f64,
    /// SDE+Proj consistency weight λ in [0, 1] (1: hard projection).
    #[arg(long, default_value_t = 1.0)]
    pub lambda: f64,
    /// Score-ALD noise levels L.
    #[arg(long, default_value_t = 200)]
    pub ald_levels: usize,
    /// Score-ALD Langevin steps per level K (the supplement: 5).
    #[arg(long, default_value_t = 5)]
    pub ald_steps: usize,
    /// Score-ALD base step as a fraction of the last level's σ² (stable below 2).
    #[arg(long, default_value_t = 0.5)]
    pub ald_step: f64,
    #[command(flatten)]
    pub dpi: DpiArgs,
}

/// Runs `scoreprior posterior`.
pub fn run(args: PosteriorArgs) -> CliResult {
    run_with(&args).map(|_| ())
}

/// Runs `scoreprior posterior` and returns what it measured.
pub fn run_with(args: &PosteriorArgs) -> CliResult<DpiSummary> {
    // Argument validation: Score-ALD keeps its --ald-levels noise levels in memory.
    if args.method == Method::ScoreAld {
        let what = format!("--ald-levels {}: the Score-ALD noise levels", args.ald_levels);
        scoreprior_core::limits::check_elems(&what, &[args.ald_levels], 8)?;
    }
    let name = match args.method {
        Method::Dpi => return dpi::run_with(&args.dpi),
        Method::ScoreAld => "score-ald",
        Method::Dps => "dps",
        Method::SdeProj => "sde-proj",
    };
    let method = args.baseline_options().baseline(name, args.dpi.settings.problem.noise_or_default())?;
    Ok(args.dpi.settings().run_baseline(method, &mut Bars::new(true))?.report)
}

impl PosteriorArgs {
    /// The library's [`BaselineOptions`].
    pub fn baseline_options(&self) -> BaselineOptions {
        BaselineOptions {
            sampler_steps: self.sampler_steps,
            zeta: self.zeta,
            lambda: self.lambda,
            ald_levels: self.ald_levels,
            ald_steps: self.ald_steps,
            ald_step: self.ald_step,
        }
    }
}
