//! `scoreprior posterior --method dpi|score-ald|dps|sde-proj|daps|pnp-dm`: posterior samples of the same
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
    /// Decoupled annealing posterior sampling (Zhang et al. 2024).
    Daps,
    /// Plug-and-play split-Gibbs sampling with the diffusion model as denoiser (Wu et al. 2024).
    PnpDm,
}

/// Arguments of `scoreprior posterior`.
#[derive(Debug, Clone, Args)]
pub struct PosteriorArgs {
    /// The sampler.
    #[arg(long, value_enum, default_value = "dpi")]
    pub method: Method,
    /// The diffusion samplers' settings.
    #[command(flatten)]
    pub baselines: BaselineOptions,
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
        let what = format!("--ald-levels {}: the Score-ALD noise levels", args.baselines.ald_levels);
        scoreprior_core::limits::check_elems(&what, &[args.baselines.ald_levels], 8)?;
    }
    if args.method == Method::Dpi {
        return dpi::run_with(&args.dpi);
    }
    // A baseline's name is its `--method` value (`score-ald`, …), as clap spells it.
    let value = args.method.to_possible_value().expect("every method is a --method value");
    let method = args.baselines.baseline(value.get_name(), args.dpi.settings.problem.noise_or_default())?;
    Ok(args.dpi.settings().run_baseline(method, &mut Bars::new(true))?.report)
}
