//! `scoreprior posterior --method dpi|score-ald|dps|sde-proj`: posterior samples of the same
//! prior, forward model and measurement (every `dpi` flag) from DPI or a diffusion-based
//! baseline; writes what `dpi` writes (samples, mean/std, metrics.json with
//! `seconds_per_sample` for the baselines).

use clap::{Args, ValueEnum};
use scoreprior::experiment::Baseline;
use scoreprior_core::baselines::{Dps, ScoreAld, SdeProj};
use scoreprior_core::forward::NoiseSpec;
use scoreprior_core::io::RunState;

use super::dpi::{self, DpiArgs, DpiSummary};
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

#[derive(Debug, clap::Parser)]
struct PosteriorOnly {
    #[command(flatten)]
    args: PosteriorArgs,
}

impl PosteriorArgs {
    /// Parses `scoreprior posterior` flags (without the subcommand name), with every default
    /// of the command line: how a study builds each of its runs.
    pub fn from_flags(flags: &[&str]) -> CliResult<Self> {
        use clap::Parser;
        Ok(PosteriorOnly::try_parse_from(std::iter::once("posterior").chain(flags.iter().copied()))?.args)
    }
}

/// Runs `scoreprior posterior`.
pub fn run(args: PosteriorArgs) -> CliResult {
    run_with(&args).map(|_| ())
}

/// Runs `scoreprior posterior` and returns what it measured.
pub fn run_with(args: &PosteriorArgs) -> CliResult<DpiSummary> {
    let d = &args.dpi;
    let method = match args.method {
        Method::Dpi => return dpi::run_with(d),
        Method::ScoreAld => {
            let sigma_y = match scoreprior_core::forward::parse_noise(&d.noise)? {
                NoiseSpec::Gaussian { sigma } => sigma,
                // σ/√2 on each real and imaginary part: the per-measurement level.
                NoiseSpec::ComplexGaussian { sigma } => sigma / std::f64::consts::SQRT_2,
                other => {
                    return Err(format!(
                        "--method score-ald needs one Gaussian noise level (gaussian or complex_gaussian), got {}",
                        other.describe()
                    )
                    .into())
                }
            };
            Baseline::ScoreAld(ScoreAld {
                steps_per_level: args.ald_steps,
                levels: args.ald_levels,
                step_rel: args.ald_step,
                ..ScoreAld::new(sigma_y)
            })
        }
        Method::Dps => Baseline::Dps(Dps { steps: args.sampler_steps, zeta: args.zeta, ..Dps::new() }),
        Method::SdeProj => {
            Baseline::SdeProj(SdeProj { steps: args.sampler_steps, lambda: args.lambda, ..SdeProj::new() })
        }
    };
    if d.resume {
        return Err(format!("--resume: {} does not train, so there is nothing to resume", method.name()).into());
    }
    // The samplers' settings are checked before the folder is taken (VP SDE: every shipped
    // score prior's; `run_baseline` checks again against the prior's own SDE).
    method
        .validate(&scoreprior_core::sde::AnySde::Vp(Default::default()))
        .map_err(|e| format!("--method {}: {e}", method.name()))?;
    let (experiment, checkpoint) = dpi::build_experiment(d)?;
    experiment.check_baseline(&method).map_err(|e| format!("--method {}: {e}", method.name()))?;
    let mut manifest = dpi::manifest(d, &checkpoint)?;
    manifest.command = format!("posterior --method {}", method.name());
    if let Some(c) = manifest.config.as_object_mut() {
        c.insert("method".into(), serde_json::json!(format!("{method:?}")));
    }
    let _lock = dpi::take_folder(d, &manifest)?;
    manifest.clone().with_state(RunState::Running).write(&d.out)?;
    let res = experiment.run_baseline(method)?;
    res.save(&d.out)?;
    manifest.with_state(RunState::Complete).write(&d.out)?;
    if !d.quiet {
        eprintln!(
            "{}: {} samples in {:.2} s ({:.3} s/sample, {} dropped by |x| > {}); outputs in {}",
            method.name(),
            res.report.samples,
            res.report.seconds_sampling,
            res.report.seconds_per_sample.unwrap_or(f64::NAN),
            res.report.samples_dropped,
            d.outlier,
            d.out.display()
        );
        eprint!("{}", res.summary_table());
    }
    Ok(res.report)
}
