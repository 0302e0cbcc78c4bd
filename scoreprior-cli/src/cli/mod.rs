//! Subcommands of the `scoreprior` binary. Each lives in its own file with a clap `Args`
//! struct and a `run` function; with no subcommand the program runs its main job.

use clap::{Parser, Subcommand};

pub mod calibration_study;
pub mod dpi;
pub mod eht_image;
pub mod eht_study;
pub mod fit_gaussian;
pub mod flags;
pub mod inputs;
pub mod logprob;
pub mod m87_study;
pub mod make_sources;
pub mod measure;
pub mod monitor;
pub mod ode_args;
pub mod posterior;
pub mod posterior_2d;
pub mod progress;
pub mod restoration_study;
pub mod sample;
pub mod solver_study;
pub mod trace_study;
pub mod train;
pub mod train_flow;
pub mod training;

/// Errors of the command-line program: any library error, reported with its chain.
pub type CliResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Makes `dir` this run's own output folder until the returned lock is dropped: another
/// run on it fails at once, and temporaries of killed runs are removed. Call it after the
/// flags are validated and before the first write.
pub(crate) fn own_folder(flag: &str, dir: &std::path::Path) -> CliResult<scoreprior_cli::run_folder::OutputLock> {
    Ok(scoreprior_cli::run_folder::own_folder(flag, dir, &mut monitor::Bars::new(true))?)
}

/// The output guard of a command that reads `inputs` and writes `files` (pairs of flag and
/// path); add its output folder with `.folder(…)` or pass it to [`claim`].
pub(crate) fn guard(
    command: &str,
    inputs: &[(&str, &std::path::Path)],
    files: &[(&str, &std::path::Path)],
) -> scoreprior_cli::run_folder::OutputGuard {
    let mut g = scoreprior_cli::run_folder::OutputGuard::new(command);
    for (flag, p) in inputs {
        g = g.input(flag, p);
    }
    for (flag, p) in files {
        g = g.file(flag, p);
    }
    g
}

/// Checks `guard` with the output folder `dir` (given by `flag`) and owns the folder until
/// the claim is dropped; with `mark`, the folder's `run.json` names the command (see
/// [`scoreprior_cli::run_folder::claim_folder`]).
pub(crate) fn claim(
    guard: scoreprior_cli::run_folder::OutputGuard,
    flag: &str,
    dir: &std::path::Path,
    mark: bool,
) -> CliResult<scoreprior_cli::run_folder::FolderClaim> {
    let guard = guard.folder(flag, dir);
    Ok(scoreprior_cli::run_folder::claim_folder(&guard, flag, dir, mark, &mut monitor::Bars::new(true))?)
}

/// As [`claim`] for a command that writes its named files into `dir` beside other files
/// (`OutputGuard::plain_folder`); the folder is marked as the command's.
pub(crate) fn claim_plain(
    guard: scoreprior_cli::run_folder::OutputGuard,
    flag: &str,
    dir: &std::path::Path,
) -> CliResult<scoreprior_cli::run_folder::FolderClaim> {
    let guard = guard.plain_folder(flag, dir);
    Ok(scoreprior_cli::run_folder::claim_folder(&guard, flag, dir, true, &mut monitor::Bars::new(true))?)
}

#[derive(Debug, Parser)]
#[command(
    name = "scoreprior",
    version,
    about = "Score-based diffusion models as principled priors for inverse imaging"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Largest allocation a command may plan, in GiB, at least 0.000001 (default: the
    /// environment variable SCOREPRIOR_MAX_MEMORY, checked as this flag is, else half of
    /// physical memory). Sizes estimated above it (an operator matrix, a kernel, a network, a
    /// batch, an input file) are errors before anything is allocated.
    #[arg(long, global = true, value_name = "GIB")]
    pub max_memory: Option<f64>,
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
    /// Write a seeded training set of compact radio sources (rings, crescents, blobs) as .npy.
    MakeSources(make_sources::MakeSourcesArgs),
    /// Train an NCSN++ score network by denoising score matching (resumable).
    Train(train::TrainArgs),
    /// Draw images from a trained score network (PF-ODE, Euler–Maruyama, predictor–corrector).
    Sample(sample::SampleArgs),
    /// Simulate a measurement y = A(x) + n; write y and the naive reconstruction Aᵀy.
    Measure(measure::MeasureArgs),
    /// Deep Probabilistic Imaging: fit a RealNVP posterior under a prior and sample it.
    Dpi(dpi::DpiArgs),
    /// Posterior samples from DPI or a diffusion-based baseline (score-ald, dps, sde-proj).
    Posterior(posterior::PosteriorArgs),
    /// The 2-D posterior study: DPI vs Score-ALD, DPS, SDE+Proj against closed-form posteriors.
    #[command(name = "posterior-2d")]
    Posterior2d(posterior_2d::Posterior2dArgs),
    /// Black-hole imaging from closure quantities: DPI under score priors side by side with
    /// eht-imaging's RML images of the same observations (table, figures).
    EhtStudy(eht_study::EhtStudyArgs),
    /// Image an observation's own data (uvfits; the bands of one day) from its closure
    /// quantities after the collaboration's pre-processing: posterior mean, std and samples in
    /// Jy (FITS), ring measures with credible intervals, optionally beside a reference image.
    EhtImage(eht_image::EhtImageArgs),
    /// `eht-image` on every day of the EHT 2017 M87 release beside the collaboration's
    /// pipeline images of the same files: one table of ring measures, χ² and correlations.
    #[command(name = "m87-study")]
    M87Study(m87_study::M87StudyArgs),
    /// Fig. 3 and A.2: restoration metrics and sampling cost of every method, per task and prior.
    RestorationStudy(restoration_study::RestorationStudyArgs),
    /// Calibration of DPI posteriors where the truth is known: observed against nominal coverage
    /// of credible intervals over many EHT or denoising problems (tables, coverage plot).
    CalibrationStudy(calibration_study::CalibrationStudyArgs),
    /// Train a RealNVP image density by maximum likelihood (the discrete-flow prior; resumable).
    TrainFlow(train_flow::TrainFlowArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> CliResult {
    // The flag wins; without it SCOREPRIOR_MAX_MEMORY, validated as the flag is.
    match cli.max_memory {
        Some(g) => scoreprior_core::limits::set_memory_limit_gib("--max-memory", g)?,
        None => scoreprior_core::limits::apply_env_limit()?,
    }
    match cli.command {
        None => main_job(),
        Some(c) => match c {
            Command::Logprob(a) => logprob::run(a),
            Command::SolverStudy(a) => solver_study::run(a),
            Command::TraceStudy(a) => trace_study::run(a),
            Command::FitGaussian(a) => fit_gaussian::run(a),
            Command::MakeSources(a) => make_sources::run(a),
            Command::Train(a) => train::run(a),
            Command::Sample(a) => sample::run(a),
            Command::Measure(a) => measure::run(a),
            Command::Dpi(a) => dpi::run(a),
            Command::Posterior(a) => posterior::run(a),
            Command::Posterior2d(a) => posterior_2d::run(a),
            Command::EhtStudy(a) => eht_study::run(a),
            Command::EhtImage(a) => eht_image::run(a),
            Command::M87Study(a) => m87_study::run(a),
            Command::RestorationStudy(a) => restoration_study::run(a),
            Command::CalibrationStudy(a) => calibration_study::run(a),
            Command::TrainFlow(a) => train_flow::run(a),
        },
    }
}

/// The main job run by `cargo run --release` with no arguments: DPI on a denoising problem
/// (σ = 0.2) for the first Fashion-MNIST 16×16 test image shipped in `assets/`, under the
/// shipped NCSN++ prior, next to its two yardsticks on the same `y`: Tweedie's posterior mean
/// under the same prior and the Wiener filter of the fitted Gaussian prior.
///
/// The prior enters through the denoising-score-matching bound on log p (`--surrogate`), with
/// noise-level continuation (its lower time limit falls from 0.1 to 1e-3 over the first half
/// of the steps, so the flow does not settle in the spurious optima of the small-noise prior)
/// and four stratified, antithetic, log-uniform time draws per image (1/27 of the reference
/// estimator's gradient variance at 2.5× its network passes). The exact PF-ODE prior stays one
/// flag away (`scoreprior dpi` without `--surrogate`) at about 20–25× the cost per step (`benches/RESULTS.md`).
///
/// The environment variables `SCOREPRIOR_MAIN_JOB_STEPS` and `SCOREPRIOR_MAIN_JOB_BATCH`
/// (positive whole numbers; a bad value is an error before anything runs) replace the steps
/// and batch, everything else unchanged: the test suite's shortened main job
/// (`scoreprior-cli/tests/main_job.rs`). Unset, the job is the full one.
fn main_job() -> CliResult {
    let out = std::path::PathBuf::from("out/main-dpi");
    let out_s = out.to_string_lossy().into_owned();
    let steps = main_job_size("SCOREPRIOR_MAIN_JOB_STEPS", MAIN_JOB_STEPS)?.to_string();
    let batch = main_job_size("SCOREPRIOR_MAIN_JOB_BATCH", MAIN_JOB_BATCH)?.to_string();
    println!(
        "scoreprior main job: DPI denoising (σ = 0.2) of Fashion-MNIST test image 0 (16×16) under the shipped \
         NCSN++ prior (DSM surrogate with noise-level continuation), {steps} steps of batch {batch} with a \
         16-flow RealNVP; outputs in {out_s}"
    );
    // The main job owns this folder: a previous main-job run is replaced, not resumed.
    if out.join("run.json").exists() {
        std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let args = dpi::DpiArgs::from_flags(&[
        "--prior",
        "assets/ncsnpp_fmnist16/ema.safetensors",
        "--surrogate",
        "--x-true",
        "assets/fashion16_test.npy",
        "--index",
        "0",
        "--seed",
        "0",
        "--steps",
        &steps,
        "--batch",
        &batch,
        "--time-floor-from",
        "0.1",
        "--out",
        &out_s,
    ])?;
    dpi::run_with(&args)?;
    println!(
        "outputs: {out_s}/{{mean,std,samples,x_true,y,tweedie,wiener}}.png, {{samples,mean,std,y,x_true,tweedie,wiener}}.npy, \
         metrics.json, losses.csv, losses.svg"
    );
    Ok(())
}

/// Steps and batch of the main job (about 8.5 minutes on 2 idle cores); the estimator
/// options are `dpi`'s defaults.
const MAIN_JOB_STEPS: usize = 1500;
const MAIN_JOB_BATCH: usize = 16;

/// The main job's steps or batch: the environment variable `var` if set (a positive whole
/// number, else an error naming it), else `default`.
fn main_job_size(var: &str, default: usize) -> CliResult<usize> {
    match std::env::var(var) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{var}={v:?}: expected a positive whole number (unset: {default})").into()),
        },
        Err(std::env::VarError::NotUnicode(v)) => Err(format!("{var}={v:?}: expected a positive whole number").into()),
    }
}
