//! The `dpi` flags of the problem: the prior and its estimator, the forward model and noise,
//! the measurement or ground truth, and the seed; each group maps onto its part of
//! [`scoreprior::experiment::DpiSettings`].

use std::path::PathBuf;

use clap::Args;
use scoreprior::experiment::{PriorOptions, ProblemOptions};

use super::solver_args::SolverArgs;

/// `dpi`: the prior and how its log-density is estimated.
#[derive(Debug, Clone, Args)]
// The shared solver flags in `dpi`'s words (it runs them for a forward and an adjoint solve).
#[command(
    mut_arg("solver", |a| a.help("ODE solver of the score-based prior (forward and adjoint solves)")),
    mut_arg("rtol", |a| a.help("Relative tolerance of both solves")),
    mut_arg("atol", |a| a.help("Absolute tolerance of both solves"))
)]
pub struct PriorArgs {
    /// Prior: `gaussian-ode` (exact score-based prior from the analytic score of --mean/--cov
    /// through the PF-ODE), `gaussian` (closed form of the same Gaussian), `tv` (total
    /// variation, --tv-weight), `flow:FILE` (a RealNVP density saved with
    /// `RealNvp::save_file`, the supplement's flow prior), or an NCSN++ checkpoint file
    /// (PF-ODE + adjoint).
    #[arg(long, default_value = "gaussian-ode")]
    pub prior: String,
    /// Mean of the Gaussian priors (.npy).
    #[arg(long, default_value = "assets/gaussian16/mean.npy")]
    pub mean: PathBuf,
    /// Covariance of the Gaussian priors (.npy, D×D).
    #[arg(long, default_value = "assets/gaussian16/cov.npy")]
    pub cov: PathBuf,
    /// Hutchinson probes of the score-based prior (fresh Rademacher probes each step);
    /// 0 for the exact trace.
    #[arg(long, default_value_t = 16)]
    pub probes: usize,
    /// The solver of both solves (forward and adjoint) and their tolerances.
    #[command(flatten)]
    pub solve: SolverArgs,
    /// PF-ODE priors: steps of the adjoint solve, `grid` (one backward step per forward step,
    /// restarted from the forward's states) or `adaptive` (its own PID control at
    /// --rtol/--atol; more evaluations and rejected steps, a larger gradient error).
    #[arg(long, default_value = "grid", value_parser = ["grid", "adaptive"])]
    pub adjoint_steps: String,
    /// Score priors (`gaussian-ode`, NCSN++): use the cheap denoising-score-matching lower
    /// bound on log p (one time draw per image, first-order VJPs only) instead of the PF-ODE.
    #[arg(long)]
    pub surrogate: bool,
    /// Score priors: lower time limit of the prior at the end of the run (`ε` of the DSM
    /// bound, `t0` of the PF-ODE).
    #[arg(long, default_value_t = 1e-3)]
    pub time_floor: f64,
    /// Noise-level continuation of score priors: start the prior's time floor at this value
    /// and lower it geometrically to --time-floor over --time-floor-steps (0: off; ignored for
    /// priors without a time floor). A large floor (0.1) smooths the prior's landscape so the
    /// flow does not settle in a spurious optimum far from the data.
    #[arg(long, default_value_t = 0.1)]
    pub time_floor_from: f64,
    /// Length of the continuation ramp in steps (0: half of --steps).
    #[arg(long, default_value_t = 0)]
    pub time_floor_steps: usize,
    /// DSM surrogate: time draws per image per step (all in one network batch with the
    /// decoder term: draws + 1 passes per image). The reference uses 1; 4 stratified antithetic
    /// log-uniform draws have 1/27 of its gradient variance at 2.5× its cost
    /// (`scoreprior-models/examples/dsm_variance.rs`).
    #[arg(long, default_value_t = 4)]
    pub dsm_draws: usize,
    /// DSM surrogate: density of the time draws: `g2` (∝ g²/σ², the reference),
    /// `log-uniform` (∝ 1/t) or `uniform`.
    #[arg(long, default_value = "log-uniform")]
    pub dsm_time_density: String,
    /// DSM surrogate: stratify the time draws of each image.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub dsm_stratified: bool,
    /// DSM surrogate: antithetic noise pairs (z, −z) (needs an even --dsm-draws).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub dsm_antithetic: bool,
    /// Weight of the TV prior.
    #[arg(long, default_value_t = 1.0)]
    pub tv_weight: f64,
}

impl PriorArgs {
    /// The library's [`PriorOptions`].
    pub fn options(&self) -> PriorOptions {
        PriorOptions {
            prior: self.prior.clone(),
            mean: self.mean.clone(),
            cov: self.cov.clone(),
            probes: self.probes,
            solver: self.solve.solver.clone(),
            rtol: self.solve.rtol,
            atol: self.solve.atol,
            adjoint_steps: self.adjoint_steps.clone(),
            surrogate: self.surrogate,
            time_floor: self.time_floor,
            time_floor_from: self.time_floor_from,
            time_floor_steps: self.time_floor_steps,
            dsm_draws: self.dsm_draws,
            dsm_time_density: self.dsm_time_density.clone(),
            dsm_stratified: self.dsm_stratified,
            dsm_antithetic: self.dsm_antithetic,
            tv_weight: self.tv_weight,
        }
    }
}

/// `dpi`: the forward model, the data, constraints on the image, the measurement and the seed.
#[derive(Debug, Clone, Args)]
pub struct ProblemArgs {
    /// Forward model: `denoising` or a chain of primitives such as
    /// `gaussian_blur(sigma=1.5, size=9) | subsample(factor=2)`.
    #[arg(long, default_value = "denoising")]
    pub forward: String,
    /// Measurement noise (default gaussian(sigma=0.2)); an error with `eht`, whose noise is
    /// each visibility's thermal σ (the radiometer equation of its baseline, or the σ of an
    /// observation file).
    #[arg(long)]
    pub noise: Option<String>,
    /// With `--forward eht(…)`: the data imaged, `closures` (closure phases and debiased log
    /// closure amplitudes of the noisy visibilities), `closures+amplitudes` (and each
    /// visibility's log amplitude over the zero baseline's of its scan, σ with the stations'
    /// error budget: normalised amplitudes, which fix the source's size) or `visibilities`
    /// (complex visibilities).
    /// With --y, the file holds the noisy visibilities `[Re V; Im V]` (`measure`'s y.npy).
    #[arg(long, default_value = "closures")]
    pub data: String,
    /// With `--data closures`: keep the log closure amplitudes as measured (no debiasing).
    #[arg(long)]
    pub no_debias: bool,
    /// Positive images: the flow's output goes through softplus (with its log-determinant);
    /// --init-scale then is the spread before the softplus.
    #[arg(long)]
    pub positive: bool,
    /// Weight W ≥ 0 of the total-flux constraint W(Σx − F)², added to the prior term (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub flux_weight: f64,
    /// Target total flux F (image units, e.g. Σx of the prior's training images) of --flux-weight.
    #[arg(long)]
    pub flux: Option<f64>,
    /// Measurement (.npy of length M); alternative to --x-true.
    #[arg(long)]
    pub y: Option<PathBuf>,
    /// Ground-truth image (.npy (H, W) or (N, H, W) with --index, or PNG): y is simulated
    /// (with `eht(obs=FILE)` the data are the file's own visibilities, and the truth serves
    /// only the metrics; neither --y nor --x-true is then needed).
    #[arg(long)]
    pub x_true: Option<PathBuf>,
    /// Which image of a batch given to --x-true.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// Image height and width when only --y is given (default: the prior's own shape, e.g.
    /// 16×16 for a 256-dimensional prior, 1×2 for a 2-D one).
    #[arg(long)]
    pub size: Option<usize>,
    /// Seed of the measurement noise, the flow and the optimisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl ProblemArgs {
    /// Checks what the library cannot see: a `--noise` given with `--forward eht(…)` (even
    /// the default level), which the interferometer's own noise replaces.
    pub fn check(&self) -> super::CliResult {
        let eht = scoreprior_core::forward::PrimitiveSpec::parse(&self.forward).is_ok_and(|s| s.name == "eht");
        match &self.noise {
            Some(noise) if eht => Err(format!(
                "--noise {noise}: does not apply to --forward eht(…), whose noise is each visibility's thermal σ \
                 (the radiometer equation of its baseline, or the σ of an observation file); leave --noise out"
            )
            .into()),
            _ => Ok(()),
        }
    }

    /// The library's [`ProblemOptions`].
    pub fn options(&self) -> ProblemOptions {
        ProblemOptions {
            forward: self.forward.clone(),
            noise: self.noise.clone().unwrap_or_else(|| ProblemOptions::default().noise),
            data: self.data.clone(),
            no_debias: self.no_debias,
            positive: self.positive,
            flux_weight: self.flux_weight,
            flux: self.flux,
            y: self.y.clone(),
            x_true: self.x_true.clone(),
            index: self.index,
            size: self.size,
        }
    }
}
