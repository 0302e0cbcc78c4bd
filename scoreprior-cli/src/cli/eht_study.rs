//! `scoreprior eht-study`: closure-quantity DPI under score priors side by side with
//! eht-imaging's RML images of the same observations: argument mapping onto
//! [`scoreprior_cli::studies::eht`].

use std::path::PathBuf;

use clap::Args;
use scoreprior::experiment::MapWarmStart;
use scoreprior_cli::baseline_run::BaselineOptions;
use scoreprior_cli::studies::eht::{self, EhtDpiSettings};

use super::CliResult;

/// Arguments of `scoreprior eht-study`; the defaults are [`EhtDpiSettings`]'s.
#[derive(Debug, Clone, Args)]
pub struct EhtStudyArgs {
    /// Output folder: table.csv, table.md, <source>.png and one DPI folder per source and prior.
    #[arg(long)]
    pub out: PathBuf,
    /// Folder of `benches/reference/ehtim_rml.py` runs, one sub-folder per source (truth.npy,
    /// image.npy, obs.txt, summary.json).
    #[arg(long, default_value = "benches/reference/out")]
    pub reference: PathBuf,
    /// Sources (sub-folders of --reference).
    #[arg(long, value_delimiter = ',', default_value = "ring,crescent,double")]
    pub sources: Vec<String>,
    /// Score priors as NAME=CHECKPOINT (an NCSN++ whose grid divides the reference's).
    #[arg(long, default_value = "sources=assets/ncsnpp_sources32/ema.safetensors")]
    pub priors: Vec<String>,
    /// DPI steps after the MAP warm start.
    #[arg(long, default_value_t = EhtDpiSettings::default().steps)]
    pub steps: usize,
    /// Flow samples per step.
    #[arg(long, default_value_t = EhtDpiSettings::default().batch)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = EhtDpiSettings::default().lr)]
    pub lr: f64,
    /// L-BFGS iterations per round of the MAP warm start.
    #[arg(long, default_value_t = EhtDpiSettings::default().map.iterations)]
    pub map_steps: usize,
    /// Rounds of the MAP warm start (blurred to the nominal resolution in between).
    #[arg(long, default_value_t = EhtDpiSettings::default().map.rounds)]
    pub map_rounds: usize,
    /// Weight of the total-flux penalty.
    #[arg(long, default_value_t = EhtDpiSettings::default().flux_weight)]
    pub flux_weight: f64,
    /// Initial spread of the flow around the MAP image: the factor on the Laplace
    /// approximation N(MAP, H⁻¹) (1: the approximation itself), or with --no-laplace the
    /// isotropic spread in softplus⁻¹ units (0.05 before the Laplace start existed).
    #[arg(long, default_value_t = EhtDpiSettings::default().init_scale)]
    pub init_scale: f64,
    /// Start the flow isotropic around the MAP image instead of as the Laplace approximation
    /// (the posterior then collapses to a point; docs/src/black-hole/calibration.md).
    #[arg(long)]
    pub no_laplace: bool,
    /// Posterior samples.
    #[arg(long, default_value_t = EhtDpiSettings::default().samples)]
    pub samples: usize,
    /// Steps of a further run under the exact PF-ODE prior of each network, continuing the
    /// surrogate run's trained flow (0: none).
    #[arg(long, default_value_t = 0)]
    pub exact_steps: usize,
    /// Flow samples per step of the exact-prior run.
    #[arg(long, default_value_t = eht::ExactStage::default().batch)]
    pub exact_batch: usize,
    /// Hutchinson probes of the exact-prior run.
    #[arg(long, default_value_t = eht::ExactStage::default().probes)]
    pub exact_probes: usize,
    /// Seed.
    #[arg(long, default_value_t = EhtDpiSettings::default().seed)]
    pub seed: u64,
    /// Diffusion samplers to run on the same data with each prior's score network, after
    /// DPI: daps, pnp-dm, dps (comma-separated; none by default).
    #[arg(long, value_delimiter = ',')]
    pub samplers: Vec<String>,
    /// Samples (independent chains) per sampler run.
    #[arg(long, default_value_t = EhtDpiSettings::default().sampler_samples)]
    pub sampler_samples: usize,
    /// The samplers' own settings.
    #[command(flatten)]
    pub sampler: BaselineOptions,
}

/// Runs `scoreprior eht-study`.
pub fn run(args: EhtStudyArgs) -> CliResult {
    let priors = args
        .priors
        .iter()
        .map(|p| {
            let (name, path) = p
                .split_once('=')
                .filter(|(n, c)| !n.is_empty() && !c.is_empty())
                .ok_or_else(|| format!("--priors {p}: expected NAME=CHECKPOINT"))?;
            Ok((name.to_string(), super::logprob::resolve(std::path::Path::new(path))))
        })
        .collect::<CliResult<Vec<_>>>()?;
    // The noise argument is Score-ALD's only, which the study refuses on closure data.
    let samplers = args
        .samplers
        .iter()
        .map(|m| {
            args.sampler.baseline(m, "gaussian(sigma=1)").map_err(|e| e.to_string().replace("--method", "--samplers"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let settings = EhtDpiSettings {
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        init_scale: args.init_scale,
        laplace: (!args.no_laplace).then(Default::default),
        map: MapWarmStart { iterations: args.map_steps, rounds: args.map_rounds, ..Default::default() },
        flux_weight: args.flux_weight,
        samples: args.samples,
        seed: args.seed,
        exact: (args.exact_steps > 0).then_some(eht::ExactStage {
            steps: args.exact_steps,
            batch: args.exact_batch,
            probes: args.exact_probes,
        }),
        samplers,
        sampler_samples: args.sampler_samples,
        ..Default::default()
    };
    let reference = super::logprob::resolve(&args.reference);
    // Every setting, name, source folder and checkpoint is checked before the folder is taken.
    eht::validate(&reference, &args.sources, &priors, &settings)?;
    let mut inputs: Vec<(&str, &std::path::Path)> = vec![("--reference", &reference)];
    inputs.extend(priors.iter().map(|(_, p)| ("--priors", p.as_path())));
    let claim = super::claim(super::guard("eht-study", &inputs, &[]), "--out", &args.out, true)?;
    let rows =
        eht::run(&reference, &args.sources, &priors, &settings, &args.out, &mut |m| eprintln!("eht-study: {m}"))?;
    eht::write_table(&rows, &args.out)?;
    let table = args.out.join("table.md");
    print!("{}", std::fs::read_to_string(&table).map_err(|e| format!("{}: {e}", table.display()))?);
    Ok(claim.finish()?)
}
