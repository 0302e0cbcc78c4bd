//! `scoreprior dpi`: Deep Probabilistic Imaging — fit a RealNVP posterior `q(x) ≈ p(x|y)`
//! by minimising `E_q[−log p(y|x) − log p(x) + log q(x)]`, then sample it.
//!
//! Priors: the exact score-based prior (`gaussian-ode`: the analytic score of the shipped
//! Gaussian through the probability-flow ODE; or an NCSN++ checkpoint), its closed form
//! (`gaussian`), or total variation (`tv`). The measurement is read (`--y`) or simulated from
//! a ground truth (`--x-true`, `--seed`). Writes `samples.npy`, `mean.npy`, `std.npy`, PNGs
//! of the sample grid, mean and std, `losses.csv` and `losses.svg`, `checkpoint.dpi`
//! (resumable) and `metrics.json` (MSE, PSNR, SSIM of the mean and averaged over samples when
//! a ground truth is given; for a Gaussian prior with denoising also the errors against the
//! closed-form posterior).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::divergence::{Divergence, Hutchinson, ProbeNoise};
use scoreprior_core::dpi::{
    draw_samples, run_dpi, summarize_samples, Annealing, DpiConfig, Energy, LikelihoodEnergy, LossWeights, PriorEnergy,
    ScorePriorEnergy, StepRecord, TimeFloorSchedule,
};
use scoreprior_core::forward::{parse_model, ForwardModel, Shape};
use scoreprior_core::io::{atomic_write, read_npy, read_npy_images, read_png, write_npy, write_png_grid};
use scoreprior_core::metrics::image_metrics;
use scoreprior_core::prior::{GaussianPrior, ScorePrior, ScorePriorConfig};
use scoreprior_core::prior_dsm::{DsmBoundPrior, TimeDensity};
use scoreprior_core::prior_tv::TotalVariation;
use scoreprior_core::sde::{AnySde, VpSde};
use scoreprior_models::realnvp::{FlowPrior, RealNvp, RealNvpConfig};
use scoreprior_models::score::NcsnppScore;

use super::logprob::{load_gaussian, resolve};
use super::plot::{Figure, Series};
use super::progress::Progress;
use super::CliResult;

/// Arguments of `scoreprior dpi`.
#[derive(Debug, Clone, Args)]
pub struct DpiArgs {
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
    /// ODE solver of the score-based prior (forward and adjoint solves).
    #[arg(long, default_value = "dopri5")]
    pub solver: String,
    /// Relative tolerance of both solves.
    #[arg(long, default_value_t = 1e-3)]
    pub rtol: f64,
    /// Absolute tolerance of both solves.
    #[arg(long, default_value_t = 1e-5)]
    pub atol: f64,
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
    /// Forward model: `denoising` or a chain of primitives such as
    /// `gaussian_blur(sigma=1.5, size=9) | subsample(factor=2)`.
    #[arg(long, default_value = "denoising")]
    pub forward: String,
    /// Measurement noise.
    #[arg(long, default_value = "gaussian(sigma=0.2)")]
    pub noise: String,
    /// Measurement (.npy of length M); alternative to --x-true.
    #[arg(long)]
    pub y: Option<PathBuf>,
    /// Ground-truth image (.npy (H, W) or (N, H, W) with --index, or PNG): y is simulated.
    #[arg(long)]
    pub x_true: Option<PathBuf>,
    /// Which image of a batch given to --x-true.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// Image height and width when only --y is given.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Seed of the measurement noise, the flow and the optimisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Optimisation steps.
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Samples per step (the reference uses 64; with the DSM surrogate's 4 draws per image, 16
    /// samples already make 80 network passes per step).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Peak Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Linear learning-rate warm-up steps.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// Final learning rate as a fraction of --lr (linear decay; 1 = constant).
    #[arg(long, default_value_t = 0.1)]
    pub lr_final: f64,
    /// Gradient-norm clip (0 = none).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Flow steps of the RealNVP (two couplings each).
    #[arg(long, default_value_t = 16)]
    pub flows: usize,
    /// Hidden width of the coupling networks (0: max(D/8, 32)).
    #[arg(long, default_value_t = 0)]
    pub hidden: usize,
    /// Initial spread of the flow: it starts as `x = loc + init_scale·z`, with `loc` the mean
    /// pixel of the prior mean (Gaussian priors) or of the naive reconstruction.
    #[arg(long, default_value_t = 0.2)]
    pub init_scale: f64,
    /// BatchNorm in the coupling networks.
    #[arg(long)]
    pub batch_norm: bool,
    /// Ramp the data weight linearly from 0 to 1 over this many steps (0: no annealing).
    #[arg(long, default_value_t = 0)]
    pub anneal_data: usize,
    /// Target tempering for multimodal posteriors: start the inverse temperature β (which
    /// multiplies both data and prior energies) at this value in (0, 1] and raise it
    /// geometrically to 1 over --temper-steps, so the flow first covers every mode (1: off).
    #[arg(long, default_value_t = 1.0)]
    pub temper_from: f64,
    /// Length of the tempering ramp in steps (0: half of --steps).
    #[arg(long, default_value_t = 0)]
    pub temper_steps: usize,
    /// Weight (>= 0) of the score-function gradient term that sets the mass of each posterior
    /// mode (0: off; needs energy values from every term, so it errors on a gradient-only
    /// prior). Costs one inverse pass of the flow per step.
    #[arg(long, default_value_t = 0.0)]
    pub score_function_weight: f64,
    /// Weight of the data term.
    #[arg(long, default_value_t = 1.0)]
    pub w_data: f64,
    /// Weight of the prior term.
    #[arg(long, default_value_t = 1.0)]
    pub w_prior: f64,
    /// Weight of the entropy term.
    #[arg(long, default_value_t = 1.0)]
    pub w_entropy: f64,
    /// Posterior samples drawn after training.
    #[arg(long, default_value_t = 128)]
    pub samples: usize,
    /// Outlier filter: drop samples with any |pixel| above this.
    #[arg(long, default_value_t = 2.0)]
    pub outlier: f64,
    /// Checkpoint every this many steps.
    #[arg(long, default_value_t = 100)]
    pub checkpoint_every: usize,
    /// Resume from OUT/checkpoint.dpi if present.
    #[arg(long)]
    pub resume: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// What a DPI run measured (also written to `metrics.json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DpiSummary {
    pub prior: String,
    pub surrogate: bool,
    pub forward: String,
    pub steps: usize,
    pub seconds_training: f64,
    pub seconds_per_step: f64,
    pub seconds_sampling: f64,
    pub samples: usize,
    pub samples_kept: usize,
    pub samples_dropped: usize,
    pub final_loss: Option<StepRecord>,
    /// Metrics of the posterior mean against the ground truth.
    pub mean_metrics: Option<scoreprior_core::metrics::ImageMetrics>,
    /// Metrics averaged over the kept samples.
    pub sample_metrics: Option<scoreprior_core::metrics::ImageMetrics>,
    /// Metrics of the naive reconstruction Aᵀy (denoising: y itself).
    pub naive_metrics: Option<scoreprior_core::metrics::ImageMetrics>,
    /// Against the closed-form posterior (Gaussian prior, denoising).
    pub closed_form: Option<ClosedFormErrors>,
    pub mean_pixel_std: f64,
    /// Fraction of pixels with `|x_true − mean| ≤ 2·std` (calibration; ≈ 0.95 for a
    /// well-calibrated Gaussian-like posterior).
    pub coverage_2std: Option<f64>,
    /// Reference estimates on the same `y` (Gaussian denoising only).
    pub references: Option<DenoisingReferences>,
}

/// The two yardsticks of a denoising run, computed on the same `y`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct DenoisingReferences {
    /// Posterior mean under the fitted Gaussian prior (`--mean`/`--cov`, the Wiener filter).
    pub wiener: Option<scoreprior_core::metrics::ImageMetrics>,
    /// Tweedie's posterior mean under the score prior (one network evaluation at `t*`,
    /// `σ_{t*}/α_{t*} = σ`): the exact posterior mean if the score is exact.
    pub tweedie: Option<scoreprior_core::metrics::ImageMetrics>,
    /// The matching time `t*` of Tweedie's estimate.
    pub tweedie_t: Option<f64>,
}

/// Errors of the DPI posterior against the closed-form Gaussian posterior.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ClosedFormErrors {
    /// RMSE of the DPI mean vs the exact posterior mean.
    pub mean_rmse: f64,
    /// Mean over pixels of |std_dpi − std_exact| / std_exact.
    pub std_rel_err: f64,
    /// Mean exact posterior per-pixel std (scale of the above).
    pub exact_mean_std: f64,
}

fn load_image(path: &Path, index: usize) -> CliResult<(usize, usize, Vec<f64>)> {
    let path = resolve(path);
    if !path.exists() {
        return Err(format!("--x-true: {} does not exist", path.display()).into());
    }
    let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    // .npy images follow the one rule of `read_npy_images` (floats as they are, u8 / 255,
    // other integers an error); a colour PNG is an error, not three gray images.
    let a = if is_npy { read_npy_images(&path) } else { read_png(&path) }.map_err(|e| format!("--x-true: {e}"))?;
    if !is_npy && a.shape.first() == Some(&3) {
        return Err(format!(
            "--x-true: {} is a colour PNG; the priors are gray: convert it to gray first",
            path.display()
        )
        .into());
    }
    let (n, h, w) = match a.shape.as_slice() {
        [h, w] | [1, h, w] => (1, *h, *w),
        [n, h, w] | [n, 1, h, w] => (*n, *h, *w),
        s => return Err(format!("--x-true: shape {s:?}: expected (H, W), (N, H, W) or (N, 1, H, W)").into()),
    };
    if index >= n {
        return Err(format!("--index {index}: the file holds {n} images").into());
    }
    let d = h * w;
    let x = a.data[index * d..(index + 1) * d].to_vec();
    if x.iter().any(|v| !v.is_finite()) {
        return Err("--x-true: non-finite pixels".into());
    }
    Ok((h, w, x))
}

/// The one-screen table of a run's estimates against the truth (empty without one).
pub fn summary_table(res: &DpiSummary) -> String {
    let Some(mean) = res.mean_metrics else { return String::new() };
    let mut rows: Vec<(&str, scoreprior_core::metrics::ImageMetrics)> = vec![("DPI posterior mean", mean)];
    if let Some(m) = res.sample_metrics {
        rows.push(("DPI samples (average)", m));
    }
    if let Some(r) = &res.references {
        if let Some(m) = r.tweedie {
            rows.push(("Tweedie E[x|y] (score prior)", m));
        }
        if let Some(m) = r.wiener {
            rows.push(("Wiener (Gaussian prior)", m));
        }
    }
    if let Some(m) = res.naive_metrics {
        rows.push(("measurement y / A^T y", m));
    }
    let mut s = String::from("estimate                          MSE      PSNR (dB)  SSIM\n");
    for (name, m) in rows {
        s.push_str(&format!("{name:<32}  {:.5}  {:>8.2}  {:.3}\n", m.mse, m.psnr, m.ssim));
    }
    if let Some(c) = res.coverage_2std {
        s.push_str(&format!(
            "calibration: {:.1} % of pixels within 2 posterior std of the truth (mean std {:.4})\n",
            100.0 * c,
            res.mean_pixel_std
        ));
    }
    s
}

fn noise_sigma(noise: &str) -> Option<f64> {
    let t = noise.trim();
    let body = t.strip_prefix("gaussian(")?.strip_suffix(')')?;
    body.trim().strip_prefix("sigma")?.trim().strip_prefix('=')?.trim().parse().ok()
}

#[derive(Debug, clap::Parser)]
struct DpiOnly {
    #[command(flatten)]
    args: DpiArgs,
}

impl DpiArgs {
    /// Parses `scoreprior dpi` flags (without the subcommand name), with every default of the
    /// command line: the way a program (e.g. the main job) builds a run.
    ///
    /// `DpiArgs::from_flags(&["--x-true", "assets/fashion16_test.npy", "--out", "out/dpi"])`
    pub fn from_flags(flags: &[&str]) -> CliResult<Self> {
        use clap::Parser;
        let argv = std::iter::once("dpi").chain(flags.iter().copied());
        Ok(DpiOnly::try_parse_from(argv)?.args)
    }
}

/// Runs `scoreprior dpi`.
pub fn run(args: DpiArgs) -> CliResult {
    run_with(&args).map(|_| ())
}

/// Runs `scoreprior dpi` and returns what it measured (the library entry point of the CLI).
pub fn run_with(args: &DpiArgs) -> CliResult<DpiSummary> {
    // Options checked before any work (DpiConfig::validate checks them again).
    if !(args.temper_from.is_finite() && args.temper_from > 0.0 && args.temper_from <= 1.0) {
        return Err(format!("--temper-from must be in (0, 1], got {}", args.temper_from).into());
    }
    if !(args.score_function_weight.is_finite() && args.score_function_weight >= 0.0) {
        return Err(
            format!("--score-function-weight must be finite and >= 0, got {}", args.score_function_weight).into()
        );
    }
    if !(args.time_floor.is_finite() && args.time_floor > 0.0 && args.time_floor < 1.0) {
        return Err(format!("--time-floor must be in (0, 1), got {}", args.time_floor).into());
    }
    if !(args.time_floor_from == 0.0
        || (args.time_floor_from.is_finite() && args.time_floor_from >= args.time_floor && args.time_floor_from < 1.0))
    {
        return Err(
            format!("--time-floor-from must be 0 (off) or in [--time-floor, 1), got {}", args.time_floor_from).into()
        );
    }
    // Checked before any work (issue 12): these used to pass and fail only after training, or
    // silently mean something else.
    if args.steps == 0 {
        return Err("--steps must be at least 1 (0 would sample an untrained flow)".into());
    }
    if args.samples == 0 {
        return Err("--samples must be at least 1".into());
    }
    if !(args.clip.is_finite() && args.clip >= 0.0) {
        return Err(format!("--clip must be finite and >= 0 (0: no clipping), got {}", args.clip).into());
    }
    if !(args.tv_weight.is_finite() && args.tv_weight > 0.0) {
        return Err(format!("--tv-weight must be positive and finite, got {}", args.tv_weight).into());
    }
    if !(args.outlier.is_finite() && args.outlier > 0.0) {
        return Err(format!("--outlier must be positive and finite, got {}", args.outlier).into());
    }
    if args.dsm_draws == 0 {
        return Err("--dsm-draws must be at least 1".into());
    }
    if args.dsm_antithetic && args.dsm_draws % 2 != 0 {
        return Err(format!(
            "--dsm-antithetic (on by default) needs an even --dsm-draws, got {}; add --dsm-antithetic false",
            args.dsm_draws
        )
        .into());
    }
    let dsm_density = match args.dsm_time_density.as_str() {
        "g2" => TimeDensity::G2OverSigma2,
        "log-uniform" => TimeDensity::LogUniform,
        "uniform" => TimeDensity::Uniform,
        other => return Err(format!("--dsm-time-density: expected g2, log-uniform or uniform, got {other:?}").into()),
    };
    let dsm = |m: std::sync::Arc<dyn scoreprior_core::score::ScoreModel>, sde: AnySde| -> CliResult<Box<dyn Energy>> {
        Ok(Box::new(
            DsmBoundPrior::new(m, sde, args.time_floor, args.dsm_draws)?
                .with_density(dsm_density)
                .with_stratified(args.dsm_stratified)
                .with_antithetic(args.dsm_antithetic)?,
        ))
    };
    // Measurement and ground truth.
    let (h, w, x_true) = match (&args.x_true, &args.y) {
        (Some(p), None) => {
            let (h, w, x) = load_image(p, args.index)?;
            (h, w, Some(x))
        }
        (None, Some(_)) => (args.size, args.size, None),
        _ => return Err("give exactly one of --y and --x-true".into()),
    };
    let d = h * w;
    let chain = if args.forward.trim() == "denoising" { "identity" } else { args.forward.as_str() };
    let model = parse_model(chain, &args.noise, Shape::new(1, h, w)).map_err(|e| format!("--forward/--noise: {e}"))?;
    let y = match (&x_true, &args.y) {
        (Some(x), _) => model.simulate(x, &mut ChaCha8Rng::seed_from_u64(args.seed))?,
        (None, Some(p)) => read_npy(resolve(p)).map_err(|e| format!("--y: {e}"))?.data,
        _ => unreachable!(),
    };
    std::fs::create_dir_all(&args.out)?;

    // Prior.
    let is_gauss = matches!(args.prior.as_str(), "gaussian" | "gaussian-ode");
    let gauss = if is_gauss {
        Some(load_gaussian(&resolve(&args.mean), &resolve(&args.cov), AnySde::Vp(VpSde::default()))?)
    } else {
        None
    };
    let prior_cfg = || -> CliResult<ScorePriorConfig> {
        let solver = scoreprior_core::ode::solver_by_name(&args.solver)?;
        let div = if args.probes == 0 {
            Divergence::ExactTrace
        } else {
            Divergence::Hutchinson(Hutchinson::new(args.probes, ProbeNoise::Rademacher, args.seed)?)
        };
        Ok(ScorePriorConfig::default()
            .with_solver(solver)
            .with_adjoint_solver(solver)
            .with_tolerances(args.rtol, args.atol)
            .with_adjoint_tolerances(args.rtol, args.atol)
            .with_divergence(div)
            .with_t0(args.time_floor))
    };
    if args.surrogate
        && !matches!(args.prior.as_str(), "gaussian-ode")
        && !Path::new(&args.prior).exists()
        && !resolve(Path::new(&args.prior)).exists()
    {
        return Err("--surrogate needs a score prior (gaussian-ode or an NCSN++ checkpoint)".into());
    }
    // The score model behind a score prior, for Tweedie's reference estimate.
    let mut score_model: Option<(std::sync::Arc<dyn scoreprior_core::score::ScoreModel>, AnySde)> =
        gauss.clone().filter(|_| args.prior == "gaussian-ode").map(|g| {
            (
                std::sync::Arc::new(g) as std::sync::Arc<dyn scoreprior_core::score::ScoreModel>,
                AnySde::Vp(VpSde::default()),
            )
        });
    let prior: Box<dyn Energy> = match args.prior.as_str() {
        "gaussian" => Box::new(PriorEnergy::new(GaussianPrior::from_gaussian(gauss.clone().unwrap()))),
        "gaussian-ode" if args.surrogate => {
            dsm(std::sync::Arc::new(gauss.clone().unwrap()), AnySde::Vp(VpSde::default()))?
        }
        "gaussian-ode" => Box::new(ScorePriorEnergy::new(ScorePrior::new(gauss.clone().unwrap(), prior_cfg()?)?)),
        "tv" => Box::new(TotalVariation::new(h, w, args.tv_weight, 1e-3)?),
        other if other.starts_with("flow:") => {
            let p = resolve(Path::new(&other[5..]));
            Box::new(FlowPrior::new(RealNvp::load_file(&p).map_err(|e| format!("--prior {other}: {e}"))?))
        }
        other => {
            let p = resolve(Path::new(other));
            if !p.exists() {
                return Err(format!(
                    "--prior {other}: expected gaussian, gaussian-ode, tv or an NCSN++ checkpoint file"
                )
                .into());
            }
            let m = std::sync::Arc::new(NcsnppScore::load(&p).map_err(|e| format!("--prior {other}: {e}"))?);
            let sde = AnySde::Vp(*m.sde());
            score_model = Some((m.clone(), sde));
            if args.surrogate {
                dsm(m, sde)?
            } else {
                Box::new(ScorePriorEnergy::new(ScorePrior::from_arc(m, prior_cfg()?.with_sde(sde))?))
            }
        }
    };
    if prior.dim() != d {
        return Err(format!("the prior has dimension {} but the images have {h}x{w} = {d} pixels", prior.dim()).into());
    }
    let data = LikelihoodEnergy::new(model, y.clone())?;

    // Flow and optimisation.
    let hidden = if args.hidden == 0 { (d / 8).max(32) } else { args.hidden };
    let mut flow = RealNvp::new(
        RealNvpConfig::new(d)
            .with_flows(args.flows)
            .with_hidden(hidden)
            .with_batch_norm(args.batch_norm)
            .with_seed(args.seed),
    )?;
    let loc = match (&gauss, data.model().adjoint(&y)) {
        (Some(g), _) => g.mean().iter().sum::<f64>() / d as f64,
        (None, Ok(naive)) => (naive.iter().sum::<f64>() / d as f64).clamp(0.0, 1.0),
        _ => 0.5,
    };
    flow.set_initial_affine(loc, args.init_scale)?;
    let cfg = DpiConfig {
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        warmup: args.warmup,
        lr_final_fraction: args.lr_final,
        grad_clip: if args.clip > 0.0 { Some(args.clip) } else { None },
        weights: LossWeights { data: args.w_data, prior: args.w_prior, entropy: args.w_entropy },
        data_annealing: if args.anneal_data > 0 {
            Annealing::Linear { start: 0.0, steps: args.anneal_data }
        } else {
            Annealing::None
        },
        tempering: if args.temper_from == 1.0 {
            Annealing::None
        } else {
            let steps = if args.temper_steps == 0 { args.steps / 2 } else { args.temper_steps };
            Annealing::Geometric { start: args.temper_from, steps }
        },
        score_function_weight: args.score_function_weight,
        time_floor: if args.time_floor_from > 0.0 && prior.time_floor().is_some() {
            let steps = if args.time_floor_steps == 0 { args.steps / 2 } else { args.time_floor_steps };
            TimeFloorSchedule::Geometric { start: args.time_floor_from, end: args.time_floor, steps }
        } else {
            TimeFloorSchedule::Off
        },
        seed: args.seed,
        checkpoint_every: args.checkpoint_every,
        out_dir: Some(args.out.clone()),
        resume: args.resume,
    };
    let mut progress = Progress::new("DPI", args.steps as u64, args.quiet);
    let t0 = Instant::now();
    let mut fresh_steps = 0usize;
    let hist = run_dpi(&cfg, &mut flow, Some(&data), Some(prior.as_ref()), &mut |r| {
        fresh_steps += 1;
        progress.update(r.step as u64 + 1, || {
            let floor = if r.time_floor.is_finite() { format!(", t0 {:.1e}", r.time_floor) } else { String::new() };
            format!("loss {:.2} = data {:.2} + prior {:.2} + logq {:.2}{floor}", r.total, r.data, r.prior, r.log_q)
        });
    })?;
    progress.finish();
    let seconds_training = t0.elapsed().as_secs_f64();

    // Sampling.
    let t1 = Instant::now();
    let batch = draw_samples(&mut flow, args.samples, 64, args.seed ^ 0xD1)?;
    let seconds_sampling = t1.elapsed().as_secs_f64();
    let summary = summarize_samples(&batch.x, d, args.outlier)?;
    let out = &args.out;
    write_npy(out.join("samples.npy"), &[batch.n, h, w], &batch.x)?;
    write_npy(out.join("mean.npy"), &[h, w], &summary.mean)?;
    write_npy(out.join("std.npy"), &[h, w], &summary.std)?;
    let shown = summary.n_kept.min(64);
    write_png_grid(out.join("samples.png"), &summary.kept[..shown * d], h, w, 8, 0.0, 1.0, 4)?;
    write_png_grid(out.join("mean.png"), &summary.mean, h, w, 1, 0.0, 1.0, 8)?;
    let smax = summary.std.iter().cloned().fold(1e-12, f64::max);
    write_png_grid(out.join("std.png"), &summary.std, h, w, 1, 0.0, smax, 8)?;
    if let Some(x) = &x_true {
        write_png_grid(out.join("x_true.png"), x, h, w, 1, 0.0, 1.0, 8)?;
        write_npy(out.join("x_true.npy"), &[h, w], x)?;
    }
    write_npy(out.join("y.npy"), &[y.len()], &y)?;
    if y.len() == d {
        write_png_grid(out.join("y.png"), &y, h, w, 1, 0.0, 1.0, 8)?;
    }
    let pts: Vec<(f64, f64)> = hist.records.iter().map(|r| (r.step as f64, r.total)).collect();
    let fig = Figure::new("DPI loss", "step", "loss (data + prior + log q)").with(Series::line("total", pts));
    if let Err(e) = fig.write(out.join("losses.svg")) {
        eprintln!("warning: loss plot not written: {e}");
    }

    // Metrics.
    let (mut mean_metrics, mut sample_metrics, mut naive_metrics) = (None, None, None);
    if let Some(x) = &x_true {
        mean_metrics = Some(image_metrics(&summary.mean, x, h, w, 1.0)?);
        let mut acc = [0.0; 3];
        for s in summary.kept.chunks(d) {
            let m = image_metrics(s, x, h, w, 1.0)?;
            acc[0] += m.mse;
            acc[1] += m.psnr;
            acc[2] += m.ssim;
        }
        let k = summary.n_kept as f64;
        sample_metrics =
            Some(scoreprior_core::metrics::ImageMetrics { mse: acc[0] / k, psnr: acc[1] / k, ssim: acc[2] / k });
        if let Ok(naive) = data.model().adjoint(&y) {
            naive_metrics = Some(image_metrics(&naive, x, h, w, 1.0)?);
        }
    }
    let sigma = noise_sigma(&args.noise).filter(|_| args.forward.trim() == "denoising");
    let coverage_2std = x_true.as_ref().map(|x| {
        let inside =
            x.iter().zip(&summary.mean).zip(&summary.std).filter(|((x, m), s)| (*x - *m).abs() <= 2.0 * *s).count();
        inside as f64 / d as f64
    });
    let references = match sigma {
        Some(sigma) => {
            // Wiener: the fitted Gaussian of --mean/--cov (when its files are there).
            let fitted = match &gauss {
                Some(g) => Some(g.clone()),
                None => load_gaussian(&resolve(&args.mean), &resolve(&args.cov), AnySde::Vp(VpSde::default())).ok(),
            };
            let mut wiener_metrics = None;
            if let Some(g) = fitted.filter(|g| g.mean().len() == d) {
                let (wm, _) = scoreprior_core::denoise::wiener(g.mean(), &g.covariance(), sigma, &y)?;
                write_npy(out.join("wiener.npy"), &[h, w], &wm)?;
                write_png_grid(out.join("wiener.png"), &wm, h, w, 1, 0.0, 1.0, 8)?;
                if let Some(x) = &x_true {
                    wiener_metrics = Some(image_metrics(&wm, x, h, w, 1.0)?);
                }
            }
            let (mut tweedie_metrics, mut tweedie_t) = (None, None);
            if let Some((m, sde)) = &score_model {
                let tm = scoreprior_core::denoise::tweedie(m.as_ref(), sde, sigma, &y)?;
                tweedie_t = Some(scoreprior_core::denoise::matching_time(sde, sigma)?);
                write_npy(out.join("tweedie.npy"), &[h, w], &tm)?;
                write_png_grid(out.join("tweedie.png"), &tm, h, w, 1, 0.0, 1.0, 8)?;
                if let Some(x) = &x_true {
                    tweedie_metrics = Some(image_metrics(&tm, x, h, w, 1.0)?);
                }
            }
            Some(DenoisingReferences { wiener: wiener_metrics, tweedie: tweedie_metrics, tweedie_t })
        }
        None => None,
    };
    let closed_form = match (&gauss, sigma) {
        (Some(g), Some(sigma)) => {
            let (m, cov) = (g.mean().to_vec(), g.covariance());
            let (pm, ps) = scoreprior_core::denoise::wiener(&m, &cov, sigma, &y)?;
            let rmse = (pm.iter().zip(&summary.mean).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / d as f64).sqrt();
            let rel = ps.iter().zip(&summary.std).map(|(a, b)| (a - b).abs() / a).sum::<f64>() / d as f64;
            write_npy(out.join("exact_mean.npy"), &[h, w], &pm)?;
            write_npy(out.join("exact_std.npy"), &[h, w], &ps)?;
            Some(ClosedFormErrors {
                mean_rmse: rmse,
                std_rel_err: rel,
                exact_mean_std: ps.iter().sum::<f64>() / d as f64,
            })
        }
        _ => None,
    };
    let res = DpiSummary {
        prior: args.prior.clone(),
        surrogate: args.surrogate,
        forward: format!("{} + {}", args.forward, args.noise),
        steps: hist.records.len(),
        seconds_training,
        seconds_per_step: if fresh_steps == 0 { f64::NAN } else { seconds_training / fresh_steps as f64 },
        seconds_sampling,
        samples: batch.n,
        samples_kept: summary.n_kept,
        samples_dropped: summary.n_dropped,
        final_loss: hist.records.last().copied(),
        mean_metrics,
        sample_metrics,
        naive_metrics,
        closed_form,
        mean_pixel_std: summary.std.iter().sum::<f64>() / d as f64,
        coverage_2std,
        references,
    };
    atomic_write(out.join("metrics.json"), serde_json::to_string_pretty(&res)?.as_bytes())?;
    if !args.quiet {
        eprintln!(
            "DPI done: {} steps in {:.1} s ({:.3} s/step), {} samples in {:.2} s ({} dropped by |x| > {}); outputs in {}",
            res.steps,
            seconds_training,
            res.seconds_per_step,
            batch.n,
            seconds_sampling,
            summary.n_dropped,
            args.outlier,
            out.display()
        );
        eprint!("{}", summary_table(&res));
        if let Some(c) = &res.closed_form {
            eprintln!(
                "vs closed-form posterior: mean RMSE {:.4}, per-pixel std rel. error {:.3} (exact std {:.4})",
                c.mean_rmse, c.std_rel_err, c.exact_mean_std
            );
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_denoising_posterior_in_1d_and_2d() {
        use scoreprior_core::denoise::wiener;
        // 2-D diagonal: independent 1-D problems.
        let (m, _) = wiener(&[0.0, 0.0], &[1.0, 0.0, 0.0, 3.0], 1.0, &[1.0, 1.0]).unwrap();
        assert!((m[0] - 0.5).abs() < 1e-12 && (m[1] - 0.75).abs() < 1e-12);
        assert!(wiener(&[0.0], &[-2.0], 1.0, &[0.0]).is_err());
    }

    #[test]
    fn flags_parse_with_defaults() {
        let a = DpiArgs::from_flags(&["--x-true", "x.npy", "--out", "o", "--steps", "7"]).unwrap();
        assert_eq!((a.steps, a.batch, a.prior.as_str(), a.probes), (7, 16, "gaussian-ode", 16));
        assert!(DpiArgs::from_flags(&["--steps", "7"]).is_err(), "--out is required");
    }

    #[test]
    fn noise_sigma_parses_gaussian_only() {
        assert_eq!(noise_sigma("gaussian(sigma=0.2)"), Some(0.2));
        assert_eq!(noise_sigma("gaussian(sigma = 0.05)"), Some(0.05));
        assert_eq!(noise_sigma("complex_gaussian(sigma=0.2)"), None);
    }
}
