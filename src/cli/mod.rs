//! Subcommands of the `scoreprior` binary. Each lives in its own file with a clap `Args`
//! struct and a `run` function; with no subcommand the program runs its main job.

use clap::{Parser, Subcommand};

pub mod dpi;
pub mod fit_gaussian;
pub mod logprob;
pub mod measure;
pub mod plot;
pub mod sample;
pub mod solver_study;
pub mod trace_study;
pub mod train;

/// Errors of the command-line program: any library error, reported with its chain.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Parser)]
#[command(name = "scoreprior", version, about = "Score-based diffusion models as principled priors for inverse imaging")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log-probabilities (and gradients) of images under a score-based prior.
    Logprob(logprob::LogprobArgs),
    /// Table 1: KL and NFE of each ODE solver on the ground-truth Gaussian.
    SolverStudy(solver_study::SolverStudyArgs),
    /// Figs. 1–2: variance of log p and of its gradient vs the number of Hutchinson probes.
    TraceStudy(trace_study::TraceStudyArgs),
    /// Fit the ground-truth Gaussian to Fashion-MNIST (rebuilds assets/gaussian16).
    FitGaussian(fit_gaussian::FitGaussianArgs),
    /// Train an NCSN++ score network by denoising score matching (resumable).
    Train(train::TrainArgs),
    /// Draw images from a trained score network (PF-ODE, Euler–Maruyama, predictor–corrector).
    Sample(sample::SampleArgs),
    /// Simulate a measurement y = A(x) + n; write y and the naive reconstruction Aᵀy.
    Measure(measure::MeasureArgs),
    /// Deep Probabilistic Imaging: fit a RealNVP posterior under a prior and sample it.
    Dpi(dpi::DpiArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> CliResult {
    match cli.command {
        None => main_job(),
        Some(c) => match c {
            Command::Logprob(a) => logprob::run(a),
            Command::SolverStudy(a) => solver_study::run(a),
            Command::TraceStudy(a) => trace_study::run(a),
            Command::FitGaussian(a) => fit_gaussian::run(a),
            Command::Train(a) => train::run(a),
            Command::Sample(a) => sample::run(a),
            Command::Measure(a) => measure::run(a),
            Command::Dpi(a) => dpi::run(a),
        },
    }
}

/// The main job run by `cargo run --release` with no arguments: for now the solver study
/// (Table 1) at a size that runs in about a minute (see [`solver_study::main_job`]).
fn main_job() -> CliResult {
    solver_study::main_job()
}
