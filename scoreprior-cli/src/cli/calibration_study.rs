//! `scoreprior calibration-study`: observed against nominal coverage of DPI's credible intervals
//! over many EHT or denoising problems whose truth is known. Argument mapping onto
//! [`scoreprior_cli::studies::calibration`]; every default is the library's.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use scoreprior_cli::studies::calibration::{self, CalibrationProblem, CalibrationSettings, ParametricReference};

use super::CliResult;

/// Arguments of `scoreprior calibration-study`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("parametric").args(["parametric_reference", "parametric_only"]).multiple(true)))]
pub struct CalibrationStudyArgs {
    /// The problem: eht (closure quantities of simulated compact sources, 32×32 over 160 µas)
    /// or denoising (σ = 0.2, Fashion-MNIST 16×16 test images, the main job's settings).
    #[arg(long)]
    pub problem: CalibrationProblem,
    /// Output folder: table.csv, table.md, coverage.json, coverage.svg, coverage.png and one
    /// sub-folder per run (a finished run with the same settings is read back).
    #[arg(long)]
    pub out: PathBuf,
    /// Runs: EHT sources 0..N, or every 4th test image (default: 20 for eht, 16 for denoising).
    #[arg(long)]
    pub n: Option<usize>,
    /// Nominal levels of the central credible intervals, each in (0, 1)
    /// (default: 0.5,0.68,0.9,0.95,0.99).
    #[arg(long, value_delimiter = ',')]
    pub levels: Option<Vec<f64>>,
    /// DPI steps (default: 600 for eht, after the MAP warm start; 1500 for denoising).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Flow samples per step (default: 16).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Peak learning rate (default: 1e-3).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Posterior samples per run, DPI's and the parametric reference's (default: 128).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Seed: run j uses seed + j for its measurement noise and its DPI (default: 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The NCSN++ checkpoint of the prior; its grid must be the problem's (default:
    /// assets/ncsnpp_sources32/ema.safetensors for eht, assets/ncsnpp_fmnist16/ema.safetensors
    /// for denoising).
    #[arg(long)]
    pub prior: Option<PathBuf>,
    /// EHT: total flux (Jy) each truth is given before it is observed (default: 1, the
    /// eht-study references'); sets the S/N of the thermal noise.
    #[arg(long)]
    pub flux: Option<f64>,
    /// EHT: final time floor ε of the DSM surrogate prior (default: 1e-3; the continuation
    /// starts at 0.1).
    #[arg(long)]
    pub time_floor: Option<f64>,
    /// EHT: keep the surrogate's time floor at --time-floor throughout (where the MAP and the
    /// Laplace start were computed) instead of lowering it from 0.1 over the first half.
    #[arg(long)]
    pub no_continuation: bool,
    /// EHT: also sample, for every ring, crescent or crescent-plus-blob source, the exact
    /// posterior over its generator's own parameters (uniform over their ranges) under the same
    /// closure data, by adaptive Metropolis, and measure it as DPI's samples are: runs
    /// `eht-<i>-parametric/`, a second table in table.md, parametric.json.
    #[arg(long)]
    pub parametric_reference: bool,
    /// EHT: the parametric reference only, without the DPI runs (implies --parametric-reference).
    #[arg(long)]
    pub parametric_only: bool,
    /// Parametric reference: Metropolis chains (default: 8).
    #[arg(long, requires = "parametric")]
    pub mcmc_chains: Option<usize>,
    /// Parametric reference: warm-up steps per chain, discarded (default: 4000).
    #[arg(long, requires = "parametric")]
    pub mcmc_warmup: Option<usize>,
    /// Parametric reference: kept steps per chain (default: 4000).
    #[arg(long, requires = "parametric")]
    pub mcmc_steps: Option<usize>,
    /// Parametric reference: prior draws scored to start the chains from the best (default: 512).
    #[arg(long, requires = "parametric")]
    pub mcmc_candidates: Option<usize>,
    /// EHT: the closure likelihood's covariance: diagonal (each closure independent, the
    /// default) or scan (each scan's closures jointly Gaussian, with the covariance of the
    /// visibilities they share).
    #[arg(long)]
    pub closure_covariance: Option<scoreprior_core::forward::interferometry::ClosureCovariance>,
}

impl CalibrationStudyArgs {
    /// The library's settings: the problem's defaults, overridden by the flags given.
    pub fn settings(&self) -> CalibrationSettings {
        let mut s = CalibrationSettings::for_problem(self.problem);
        s.n = self.n.unwrap_or(s.n);
        if let Some(l) = &self.levels {
            s.levels = l.clone();
        }
        s.steps = self.steps.unwrap_or(s.steps);
        s.batch = self.batch.unwrap_or(s.batch);
        s.lr = self.lr.unwrap_or(s.lr);
        s.samples = self.samples.unwrap_or(s.samples);
        s.seed = self.seed.unwrap_or(s.seed);
        s.flux_jy = self.flux.unwrap_or(s.flux_jy);
        s.time_floor = self.time_floor.unwrap_or(s.time_floor);
        s.continuation = !self.no_continuation;
        s.closure_covariance = self.closure_covariance.unwrap_or(s.closure_covariance);
        if let Some(p) = &self.prior {
            s.prior = p.clone();
        }
        if self.parametric_reference || self.parametric_only {
            let mut p = ParametricReference { only: self.parametric_only, ..Default::default() };
            let m = &mut p.mcmc;
            m.chains = self.mcmc_chains.unwrap_or(m.chains);
            m.warmup = self.mcmc_warmup.unwrap_or(m.warmup);
            m.steps = self.mcmc_steps.unwrap_or(m.steps);
            m.candidates = self.mcmc_candidates.unwrap_or(m.candidates);
            s.parametric = Some(p);
        }
        s
    }
}

/// Runs `scoreprior calibration-study`.
pub fn run(args: CalibrationStudyArgs) -> CliResult {
    let settings = args.settings();
    // Every setting (the prior's grid included) is checked before the folder is taken.
    settings.validate()?;
    let inputs: Vec<(&str, &std::path::Path)> = match settings.problem {
        calibration::CalibrationProblem::Denoising => {
            vec![("--prior", &settings.prior), ("test images", &settings.test_images)]
        }
        calibration::CalibrationProblem::Eht => vec![("--prior", &settings.prior)],
    };
    let claim = super::claim(super::guard("calibration-study", &inputs, &[]), "--out", &args.out, true)?;
    let report = calibration::run(&settings, &args.out, &mut |m| eprintln!("calibration-study: {m}"))?;
    report.write(&args.out)?;
    print!("{}", report.markdown());
    Ok(claim.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Only {
        #[command(flatten)]
        args: CalibrationStudyArgs,
    }

    fn parse(flags: &[&str]) -> CalibrationStudyArgs {
        use clap::Parser;
        Only::try_parse_from(std::iter::once("calibration-study").chain(flags.iter().copied())).unwrap().args
    }

    /// Without flags the settings are the library's, per problem.
    #[test]
    fn defaults_are_the_library_defaults() {
        let a = parse(&["--problem", "eht", "--out", "o"]);
        assert_eq!(a.settings(), CalibrationSettings::eht());
        let a = parse(&["--problem", "denoising", "--out", "o"]);
        assert_eq!(a.settings(), CalibrationSettings::denoising());
        let a = parse(&["--problem", "eht", "--out", "o", "--levels", "0.5,0.9", "--steps", "7"]);
        assert_eq!((a.settings().levels, a.settings().steps), (vec![0.5, 0.9], 7));
        let a = parse(&["--problem", "eht", "--out", "o", "--parametric-only", "--mcmc-steps", "100"]);
        let p = a.settings().parametric.unwrap();
        assert!(p.only && p.mcmc.steps == 100 && p.mcmc.chains == ParametricReference::default().mcmc.chains);
        // A sampler setting without the reference it sets is refused, not ignored.
        use clap::Parser;
        let e = Only::try_parse_from(["calibration-study", "--problem", "eht", "--out", "o", "--mcmc-steps", "100"]);
        assert!(e.unwrap_err().to_string().contains("--parametric"));
    }
}
