//! `scoreprior dpi`: Deep Probabilistic Imaging — fit a RealNVP posterior `q(x) ≈ p(x|y)`
//! by minimising `E_q[−log p(y|x) − log p(x) + log q(x)]`, then sample it.
//!
//! Priors: the exact score-based prior (`gaussian-ode`: the analytic score of the shipped
//! Gaussian through the probability-flow ODE; or an NCSN++ checkpoint), its closed form
//! (`gaussian`), or total variation (`tv`). The measurement is read (`--y`) or simulated from
//! a ground truth (`--x-true`, `--seed`). Writes `samples.npy`, `mean.npy`, `std.npy`, PNGs
//! of the sample grid, mean and std, `losses.csv` and `losses.svg`, `checkpoint.safetensors`
//! (resumable) and `metrics.json` (MSE, PSNR, SSIM of the mean and averaged over samples when
//! a ground truth is given; for a Gaussian prior with denoising also the errors against the
//! closed-form posterior).
//!
//! Black-hole imaging: `--forward 'eht(fov=160, …)'` (the `measure` preset) images from the
//! closure phases (`2(1 − cos Δψ)/σ²`) and debiased log closure amplitudes (`(Δℓ/σ)²`) of
//! noisy visibilities (`--data closures`, the default; `--data visibilities` fits the complex
//! visibilities instead), typically with `--positive` (softplus output of the flow with its
//! log-determinant) and an optional `--flux-weight W --flux F` (`W(Σx − F)²`). The image grid
//! is that of `--x-true` (or `--size`) and must be the prior's; closure χ² and the normalised
//! cross-correlation with the truth go to `closures.json`.

use std::path::{Path, PathBuf};

use clap::Args;
use scoreprior::experiment::{Continuation, DsmSettings, Experiment, PosteriorSettings, Prior};
use scoreprior_core::divergence::{Divergence, Hutchinson, ProbeNoise};
use scoreprior_core::dpi::CHECKPOINT_FILE;
use scoreprior_core::dpi::{Annealing, DpiConfig, LossWeights, TimeFloorSchedule};
use scoreprior_core::forward::{parse_model, Model, Shape};
use scoreprior_core::io::{check_same_run, move_aside, read_npy, read_npy_images, read_png, RunManifest, RunState};
use scoreprior_core::prior::ScorePriorConfig;
use scoreprior_core::prior_dsm::TimeDensity;
use scoreprior_core::sde::{AnySde, VpSde};
use scoreprior_models::realnvp::RealNvp;

use super::logprob::{load_gaussian, resolve};
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
    /// Measurement noise (not used by `eht`, whose noise is each baseline's radiometer equation).
    #[arg(long, default_value = "gaussian(sigma=0.2)")]
    pub noise: String,
    /// With `--forward eht(…)`: the data imaged, `closures` (closure phases and debiased log
    /// closure amplitudes of the noisy visibilities) or `visibilities` (complex visibilities).
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
    /// Ground-truth image (.npy (H, W) or (N, H, W) with --index, or PNG): y is simulated.
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
    /// Initial pixel level of the flow (image units; default: the Gaussian prior's mean level,
    /// else the mean of Aᵀy clamped to [0, 1], else 0.5). With --positive the flow starts at
    /// softplus⁻¹ of it.
    #[arg(long)]
    pub init_level: Option<f64>,
    /// Start the flow around this image, `FILE[@INDEX]` (.npy or PNG, same size as the
    /// problem; positive with --positive) instead of a flat level.
    #[arg(long, conflicts_with_all = ["init_level", "init_gaussian"])]
    pub init_image: Option<String>,
    /// With --forward eht(…): start the flow around a centred circular Gaussian of this FWHM
    /// (µas) holding --flux, as eht-imaging starts its imager (its examples use 60 µas).
    #[arg(long, conflicts_with = "init_level")]
    pub init_gaussian: Option<f64>,
    /// MAP warm start: at most this many L-BFGS iterations on the image itself under the same
    /// data and prior terms (from the starting image, jittered), then the flow starts around
    /// the MAP image (`map.npy`, `map_losses.csv`). For closure data at high S/N; 0 = off.
    #[arg(long, default_value_t = 0)]
    pub map_steps: usize,
    /// Rounds of the MAP warm start; between rounds the image is blurred (with --forward eht(…)
    /// to the array's nominal resolution, else by --map-blur pixels) and L-BFGS restarts.
    #[arg(long, default_value_t = 1)]
    pub map_rounds: usize,
    /// FWHM (pixels) of the blur between MAP rounds without eht (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub map_blur: f64,
    /// Jitter of the MAP start (standard deviation, in softplus⁻¹ units with --positive).
    #[arg(long, default_value_t = 0.1)]
    pub map_jitter: f64,
    /// BatchNorm in the coupling networks.
    #[arg(long)]
    pub batch_norm: bool,
    /// Ramp the data weight from its start to 1 over this many steps (0: no annealing); the
    /// shape is --anneal-data-schedule.
    #[arg(long, default_value_t = 0)]
    pub anneal_data: usize,
    /// Shape of the data-weight ramp: `linear` (from 0), `geometric` (from
    /// --anneal-data-from, i.e. the DPI reference's `min(10^(−a + k/b), 1)`) or `sigmoid`
    /// (`1/(1 + e^(−r(k − N)))` with N = --anneal-data, r = --anneal-data-rate: the score_prior
    /// reference's, which uses N = 12000, r = 0.002).
    #[arg(long, default_value = "linear")]
    pub anneal_data_schedule: String,
    /// Start of the geometric data-weight ramp, in (0, 1].
    #[arg(long, default_value_t = 1e-3)]
    pub anneal_data_from: f64,
    /// Slope of the sigmoid data-weight ramp (> 0).
    #[arg(long, default_value_t = 0.002)]
    pub anneal_data_rate: f64,
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
    /// Resume from OUT/checkpoint.safetensors if present.
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds a previous run: its files are moved to
    /// OUT.old-N first (never mixed with the new run's).
    #[arg(long)]
    pub force: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// What a DPI run measured (also written to `metrics.json`).
pub use scoreprior::experiment::Report as DpiSummary;

fn load_image(path: &Path, index: usize) -> CliResult<(usize, usize, Vec<f64>)> {
    load_image_flag("--x-true", path, index)
}

fn load_image_flag(flag: &str, path: &Path, index: usize) -> CliResult<(usize, usize, Vec<f64>)> {
    let path = resolve(path);
    if !path.exists() {
        return Err(format!("{flag}: {} does not exist", path.display()).into());
    }
    let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    // .npy images follow the one rule of `read_npy_images` (floats as they are, u8 / 255,
    // other integers an error); a colour PNG is an error, not three gray images.
    let a = if is_npy { read_npy_images(&path) } else { read_png(&path) }.map_err(|e| format!("{flag}: {e}"))?;
    if !is_npy && a.shape.first() == Some(&3) {
        return Err(format!(
            "{flag}: {} is a colour PNG; the priors are gray: convert it to gray first",
            path.display()
        )
        .into());
    }
    let (n, h, w) = match a.shape.as_slice() {
        [h, w] | [1, h, w] => (1, *h, *w),
        [n, h, w] | [n, 1, h, w] => (*n, *h, *w),
        s => return Err(format!("{flag}: shape {s:?}: expected (H, W), (N, H, W) or (N, 1, H, W)").into()),
    };
    if index >= n {
        return Err(if flag == "--x-true" {
            format!("--index {index}: the file holds {n} images")
        } else {
            format!("{flag}: index {index}: the file holds {n} images")
        }
        .into());
    }
    let d = h * w;
    let x = a.data[index * d..(index + 1) * d].to_vec();
    if x.iter().any(|v| !v.is_finite()) {
        return Err(format!("{flag}: non-finite pixels").into());
    }
    Ok((h, w, x))
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
    let (experiment, checkpoint) = build_experiment(args)?;
    // The folder is this run's until it returns; a resume must be of the same problem.
    let manifest = manifest(args, &checkpoint)?;
    let _lock = take_folder(args, &manifest)?;
    manifest.clone().with_state(RunState::Running).write(&args.out)?;
    let mut progress = Progress::new("DPI", args.steps as u64, args.quiet);
    let res = experiment.run_observed(&mut |r| {
        progress.update(r.step as u64 + 1, || {
            let floor = if r.time_floor.is_finite() { format!(", t0 {:.1e}", r.time_floor) } else { String::new() };
            format!("loss {:.2} = data {:.2} + prior {:.2} + logq {:.2}{floor}", r.total, r.data, r.prior, r.log_q)
        });
    })?;
    progress.finish();
    res.save(&args.out)?;
    let (h, w) = res.shape;
    if let Some(eht) = eht_problem(args, h, w, res.x_true.as_deref())? {
        if let Some(p) = &eht.closures {
            closure_report(p, &res, &args.out, args.quiet)?;
        }
        // Radio astronomers' viewers open FITS: the posterior mean and std as well.
        for (name, img) in [("mean.fits", &res.summary.mean), ("std.fits", &res.summary.std)] {
            scoreprior_core::io::write_fits_image(args.out.join(name), img, h, w, &eht.sky)?;
        }
    }
    manifest.with_state(RunState::Complete).write(&args.out)?;
    let rep = &res.report;
    if !args.quiet {
        eprintln!(
            "DPI done: {} steps in {:.1} s ({:.3} s/step), {} samples in {:.2} s ({} dropped by |x| > {}); outputs in {}",
            rep.steps,
            rep.seconds_training,
            rep.seconds_per_step,
            rep.samples,
            rep.seconds_sampling,
            rep.samples_dropped,
            args.outlier,
            args.out.display()
        );
        eprint!("{}", res.summary_table());
        if let Some(c) = &rep.closed_form {
            eprintln!(
                "vs closed-form posterior: mean RMSE {:.4}, per-pixel std rel. error {:.3} (exact std {:.4})",
                c.mean_rmse, c.std_rel_err, c.exact_mean_std
            );
        }
    }
    Ok(res.report)
}

/// Writes `closures.json`: reduced closure χ² of the posterior mean, of the samples (mean),
/// and of the truth; flux of the mean; normalised cross-correlation of the mean with the truth.
fn closure_report(
    p: &scoreprior_core::forward::interferometry::ClosureProblem,
    res: &scoreprior::experiment::ExperimentResult,
    out: &Path,
    quiet: bool,
) -> CliResult {
    let d = res.shape.0 * res.shape.1;
    let mean = &res.summary.mean;
    let chi_mean = p.chi2(mean)?;
    let kept: Vec<_> = res.summary.kept.chunks(d).map(|x| p.chi2(x)).collect::<Result<_, _>>()?;
    let k = kept.len().max(1) as f64;
    let chi_samples = (kept.iter().map(|c| c.phase).sum::<f64>() / k, kept.iter().map(|c| c.log_amp).sum::<f64>() / k);
    let truth = res.x_true.as_ref().map(|t| p.chi2(t)).transpose()?;
    let ncc = res
        .x_true
        .as_ref()
        .map(|t| scoreprior_core::forward::interferometry::nxcorr(t, mean, res.shape.0, res.shape.0 / 4));
    let std_mean = res.summary.std.iter().sum::<f64>() / d as f64;
    let j = serde_json::json!({
        "closure_phases": p.n_phases, "log_closure_amplitudes": p.y.len() - p.n_phases,
        "chi2_mean": chi_mean, "chi2_samples": {"phase": chi_samples.0, "log_amp": chi_samples.1},
        "chi2_truth": truth, "flux_mean": mean.iter().sum::<f64>(), "posterior_std_mean": std_mean,
        "nxcorr": ncc.map(|c| c.0), "nxcorr_best_shift": ncc.map(|c| c.1),
        "seconds_training": res.report.seconds_training,
    });
    scoreprior_core::io::atomic_write(out.join("closures.json"), serde_json::to_string_pretty(&j)?.as_bytes())?;
    if !quiet {
        eprintln!(
            "closures: χ² of the mean {:.3} (phases) / {:.3} (log amplitudes), of the samples {:.3} / {:.3}{}; flux {:.3}; \
             mean posterior std {:.4}{}",
            chi_mean.phase,
            chi_mean.log_amp,
            chi_samples.0,
            chi_samples.1,
            truth.map(|t| format!(", of the truth {:.3} / {:.3}", t.phase, t.log_amp)).unwrap_or_default(),
            mean.iter().sum::<f64>(),
            std_mean,
            ncc.map(|c| format!("; nxcorr with the truth {:.4} (best shift {:.4})", c.0, c.1)).unwrap_or_default()
        );
    }
    Ok(())
}

/// What defines a DPI run (compared on `--resume`): data, forward model, prior, estimator,
/// flow and optimiser, and the input files by content. `--steps` (a resume may extend a run),
/// `--samples`, `--outlier`, `--checkpoint-every` and `--quiet` may change between a run and
/// its resume.
pub fn manifest(args: &DpiArgs, prior_file: &Path) -> CliResult<RunManifest> {
    let config = serde_json::json!({
        "prior": args.prior, "surrogate": args.surrogate, "probes": args.probes, "solver": args.solver,
        "rtol": args.rtol, "atol": args.atol, "time_floor": args.time_floor,
        "time_floor_from": args.time_floor_from, "time_floor_steps": args.time_floor_steps,
        "dsm_draws": args.dsm_draws, "dsm_time_density": args.dsm_time_density,
        "dsm_stratified": args.dsm_stratified, "dsm_antithetic": args.dsm_antithetic,
        "tv_weight": args.tv_weight, "forward": args.forward, "noise": args.noise, "index": args.index,
        "size": args.size, "batch": args.batch, "lr": args.lr, "warmup": args.warmup, "lr_final": args.lr_final,
        "clip": args.clip, "flows": args.flows, "hidden": args.hidden, "init_scale": args.init_scale,
        "batch_norm": args.batch_norm, "anneal_data": args.anneal_data, "temper_from": args.temper_from,
        "temper_steps": args.temper_steps, "score_function_weight": args.score_function_weight,
        "w_data": args.w_data, "w_prior": args.w_prior, "w_entropy": args.w_entropy,
    });
    let mut config = config;
    let extra = serde_json::json!({
        "data": args.data, "no_debias": args.no_debias, "positive": args.positive,
        "flux_weight": args.flux_weight, "flux": args.flux, "anneal_data_schedule": args.anneal_data_schedule,
        "anneal_data_from": args.anneal_data_from, "anneal_data_rate": args.anneal_data_rate,
        "init_level": args.init_level,
        "init_image": args.init_image,
        "init_gaussian": args.init_gaussian,
        "map_steps": args.map_steps,
        "map_jitter": args.map_jitter,
        "map_rounds": args.map_rounds,
        "map_blur": args.map_blur,
    });
    if let (Some(c), serde_json::Value::Object(e)) = (config.as_object_mut(), extra) {
        c.extend(e);
    }
    let mut m = RunManifest::new("dpi", config).with_seed(args.seed);
    for (flag, path) in [("--x-true", &args.x_true), ("--y", &args.y)] {
        if let Some(p) = path {
            m = m.with_input(flag, &resolve(p))?;
        }
    }
    if matches!(args.prior.as_str(), "gaussian" | "gaussian-ode") {
        m = m.with_input("--mean", &resolve(&args.mean))?.with_input("--cov", &resolve(&args.cov))?;
    } else if let Some(f) = args.prior.strip_prefix("flow:") {
        m = m.with_input("--prior", &resolve(Path::new(f)))?;
    } else if prior_file.is_file() {
        m = m.with_input("--prior", prior_file)?;
    }
    Ok(m)
}

/// Checks every `dpi` flag and builds the experiment (no file written); also returns the
/// resolved prior path (hashed into the run manifest when it is a file).
pub fn build_experiment(args: &DpiArgs) -> CliResult<(Experiment<Model>, PathBuf)> {
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
    let dsm = DsmSettings {
        eps: args.time_floor,
        draws: args.dsm_draws,
        density: match args.dsm_time_density.as_str() {
            "g2" => TimeDensity::G2OverSigma2,
            "log-uniform" => TimeDensity::LogUniform,
            "uniform" => TimeDensity::Uniform,
            other => {
                return Err(format!("--dsm-time-density: expected g2, log-uniform or uniform, got {other:?}").into())
            }
        },
        stratified: args.dsm_stratified,
        antithetic: args.dsm_antithetic,
    };
    // Prior.
    let gaussian = || load_gaussian(&resolve(&args.mean), &resolve(&args.cov), AnySde::Vp(VpSde::default()));
    let ode = {
        let solver = scoreprior_core::ode::solver_by_name(&args.solver)?;
        let div = if args.probes == 0 {
            Divergence::ExactTrace
        } else {
            Divergence::Hutchinson(Hutchinson::new(args.probes, ProbeNoise::Rademacher, args.seed)?)
        };
        ScorePriorConfig::default()
            .with_solver(solver)
            .with_adjoint_solver(solver)
            .with_tolerances(args.rtol, args.atol)
            .with_adjoint_tolerances(args.rtol, args.atol)
            .with_divergence(div)
            .with_t0(args.time_floor)
    };
    let checkpoint = resolve(Path::new(&args.prior));
    let prior = match (args.prior.as_str(), args.surrogate) {
        ("gaussian", false) => Prior::gaussian(gaussian()?),
        ("gaussian-ode", false) => Prior::gaussian_ode_with(gaussian()?, ode),
        ("gaussian-ode", true) => Prior::gaussian_dsm(gaussian()?, dsm),
        ("tv", false) => Prior::total_variation(args.tv_weight),
        (other, false) if other.starts_with("flow:") => {
            let p = resolve(Path::new(&other[5..]));
            Prior::flow(RealNvp::load_file(&p).map_err(|e| format!("--prior {other}: {e}"))?).with_label(other)
        }
        (_, true) if !checkpoint.exists() || args.prior == "gaussian" || args.prior == "tv" => {
            return Err("--surrogate needs a score prior (gaussian-ode or an NCSN++ checkpoint)".into())
        }
        (other, surrogate) => {
            if !checkpoint.exists() {
                return Err(format!(
                    "--prior {other}: expected gaussian, gaussian-ode, tv or an NCSN++ checkpoint file"
                )
                .into());
            }
            let p = if surrogate { Prior::ncsnpp_dsm(&checkpoint, dsm) } else { Prior::ncsnpp(&checkpoint, ode) };
            p.map_err(|e| format!("--prior {other}: {e}"))?.with_label(other)
        }
    };
    // Measurement and ground truth.
    let (h, w, x_true) = match (&args.x_true, &args.y) {
        (Some(p), None) => {
            let (h, w, x) = load_image(p, args.index)?;
            (h, w, Some(x))
        }
        (None, Some(_)) => match (args.size, prior.image_shape()) {
            (Some(0), _) => return Err("--size must be at least 1".into()),
            (Some(s), _) => (s, s, None),
            (None, Some((h, w))) => (h, w, None),
            (None, None) => return Err("--y without --x-true: give the image side with --size".into()),
        },
        _ => return Err("give exactly one of --y and --x-true".into()),
    };
    if !(args.flux_weight.is_finite() && args.flux_weight >= 0.0) {
        return Err(format!("--flux-weight must be finite and >= 0, got {}", args.flux_weight).into());
    }
    if args.flux_weight > 0.0 && !args.flux.is_some_and(|f| f.is_finite() && f > 0.0) {
        return Err(format!("--flux-weight needs a positive target --flux, got {:?}", args.flux).into());
    }
    if let Some(l) = args.init_level {
        if !(l.is_finite() && (l > 0.0 || !args.positive)) {
            return Err(format!("--init-level must be finite (and positive with --positive), got {l}").into());
        }
    }
    let data_annealing = match (args.anneal_data, args.anneal_data_schedule.as_str()) {
        (0, "linear" | "geometric" | "sigmoid") => Annealing::None,
        (n, "linear") => Annealing::Linear { start: 0.0, steps: n },
        (n, "geometric") => Annealing::Geometric { start: args.anneal_data_from, steps: n },
        (n, "sigmoid") => Annealing::Sigmoid { pivot: n as f64, rate: args.anneal_data_rate },
        (_, other) => {
            return Err(format!("--anneal-data-schedule: expected linear, geometric or sigmoid, got {other:?}").into())
        }
    };
    data_annealing.validate("--anneal-data")?;
    let (mut eht_fov, mut eht_blur_px) = (None, None);
    let (model, eht_data) = match eht_problem(args, h, w, x_true.as_deref())? {
        Some(p) => {
            eht_fov = Some(p.fov_uas);
            eht_blur_px = Some(p.resolution_uas / (p.fov_uas / w as f64));
            (p.model, Some(p.y))
        }
        None => {
            if args.data != "closures" || args.no_debias {
                return Err("--data and --no-debias apply to --forward eht(…) only".into());
            }
            let chain = if args.forward.trim() == "denoising" { "identity" } else { args.forward.as_str() };
            let m =
                parse_model(chain, &args.noise, Shape::new(1, h, w)).map_err(|e| format!("--forward/--noise: {e}"))?;
            (m, None)
        }
    };

    let init_image = match (&args.init_image, args.init_gaussian, eht_fov) {
        (Some(spec), _, _) => {
            let (file, index) = match spec.rsplit_once('@') {
                Some((f, i)) => (f, i.parse().map_err(|_| format!("--init-image {spec}: bad index after @"))?),
                None => (spec.as_str(), 0),
            };
            let (ih, iw, img) = load_image_flag("--init-image", Path::new(file), index)?;
            if (ih, iw) != (h, w) {
                return Err(format!("--init-image is {ih}x{iw}, the problem is {h}x{w}").into());
            }
            Some(img)
        }
        (None, Some(fwhm), Some(fov)) => {
            if !(fwhm.is_finite() && fwhm > 0.0) {
                return Err(format!("--init-gaussian must be a positive FWHM in µas, got {fwhm}").into());
            }
            let flux = args.flux.ok_or("--init-gaussian needs the total flux --flux")?;
            let blob = scoreprior_core::forward::interferometry::TestSource::Blobs(vec![(0.0, 0.0, fwhm, 1.0)]);
            // Floored at 1e-6 of the peak, so that softplus⁻¹ of the far pixels stays finite.
            let img = blob.render(h, fov, flux).map_err(|e| format!("--init-gaussian: {e}"))?;
            let floor = 1e-6 * img.iter().cloned().fold(0.0, f64::max);
            Some(img.into_iter().map(|v| v.max(floor)).collect())
        }
        (None, Some(_), None) => return Err("--init-gaussian needs --forward eht(…) (its field of view)".into()),
        (None, None, _) => None,
    };

    let mut builder = Experiment::builder(model)
        .forward_label(format!("{} + {}", args.forward, args.noise))
        .prior(prior)
        .posterior(PosteriorSettings {
            positive: args.positive,
            flows: args.flows,
            hidden: args.hidden,
            batch_norm: args.batch_norm,
            init_scale: args.init_scale,
            init_loc: match args.init_level {
                None => None,
                Some(l) if args.positive => Some(scoreprior_core::dpi::softplus_inverse(l)),
                Some(l) => Some(l),
            },
            init_image,
            map_warm_start: (args.map_steps > 0).then_some(scoreprior::experiment::MapWarmStart {
                iterations: args.map_steps,
                jitter: args.map_jitter,
                rounds: args.map_rounds,
                blur_px: eht_blur_px.unwrap_or(args.map_blur),
                ..Default::default()
            }),
        })
        .dpi_config(DpiConfig {
            steps: args.steps,
            batch: args.batch,
            lr: args.lr,
            warmup: args.warmup,
            lr_final_fraction: args.lr_final,
            grad_clip: if args.clip > 0.0 { Some(args.clip) } else { None },
            weights: LossWeights { data: args.w_data, prior: args.w_prior, entropy: args.w_entropy },
            data_annealing,
            tempering: if args.temper_from == 1.0 {
                Annealing::None
            } else {
                let steps = if args.temper_steps == 0 { args.steps / 2 } else { args.temper_steps };
                Annealing::Geometric { start: args.temper_from, steps }
            },
            score_function_weight: args.score_function_weight,
            time_floor: TimeFloorSchedule::Off,
            seed: args.seed,
            checkpoint_every: args.checkpoint_every,
            out_dir: Some(args.out.clone()),
            resume: args.resume,
        })
        .continuation(
            (args.time_floor_from > 0.0)
                .then_some(Continuation { from: args.time_floor_from, steps: args.time_floor_steps }),
        )
        .samples(args.samples)
        .outlier_threshold(args.outlier);
    if args.flux_weight > 0.0 {
        builder = builder.flux_constraint(args.flux_weight, args.flux.unwrap_or(1.0));
    }
    builder = match (x_true, &args.y, eht_data) {
        (Some(x), _, Some(y)) => builder.truth_with_measurement(x, y, h, w),
        (None, Some(_), Some(y)) => builder.measurement(y, h, w),
        (Some(x), _, None) => builder.truth(x, h, w),
        (None, Some(p), None) => builder.measurement(read_npy(resolve(p)).map_err(|e| format!("--y: {e}"))?.data, h, w),
        (None, None, _) => return Err("give exactly one of --y and --x-true".into()),
    };
    // The Wiener yardstick: the fitted Gaussian of --mean/--cov, when its files are there.
    if let Ok(g) = gaussian() {
        builder = builder.wiener_reference(g);
    }
    Ok((builder.build()?, checkpoint))
}

/// `--forward eht(…)`: the interferometer of the `measure` preset on the `h × w` grid, the
/// noisy visibilities (simulated from the truth with --seed, or read from --y), and the model
/// and data of --data. `None` for any other forward model.
pub fn eht_problem(args: &DpiArgs, h: usize, w: usize, truth: Option<&[f64]>) -> CliResult<Option<EhtProblem>> {
    use scoreprior_core::forward::{ForwardModel, PrimitiveSpec};
    if !PrimitiveSpec::parse(&args.forward).is_ok_and(|s| s.name == "eht") {
        return Ok(None);
    }
    if h != w {
        return Err(format!("--forward eht needs a square image, got {h}x{w}").into());
    }
    let margs = super::measure::MeasureArgs {
        forward: args.forward.clone(),
        noise: None,
        x: PathBuf::new(),
        seed: args.seed,
        out: PathBuf::new(),
    };
    let built = super::measure::build(&margs, Shape::new(1, h, w))?;
    let sky = built.sky.ok_or("--forward eht: no sky header was built")?;
    let eht = built.interferometer.ok_or("--forward eht: no interferometer was built")?;
    let vis_model = built.model;
    let vis = match (truth, &args.y) {
        (Some(x), _) => {
            use rand::SeedableRng;
            vis_model.simulate(x, &mut rand_chacha::ChaCha8Rng::seed_from_u64(args.seed))?
        }
        (None, Some(p)) => {
            let v = read_npy(resolve(p)).map_err(|e| format!("--y: {e}"))?.data;
            if v.len() != vis_model.output_dim() {
                return Err(format!(
                    "--y: {} values, but this eht coverage has {} visibilities ({} values [Re V; Im V]); give                      the y.npy that `scoreprior measure --forward {}` wrote",
                    v.len(),
                    vis_model.output_dim() / 2,
                    vis_model.output_dim(),
                    args.forward
                )
                .into());
            }
            v
        }
        _ => return Err("give exactly one of --y and --x-true".into()),
    };
    match args.data.as_str() {
        "closures" => {
            let p = eht.closure_problem(&vis, !args.no_debias)?;
            Ok(Some(EhtProblem {
                model: p.model.clone(),
                y: p.y.clone(),
                closures: Some(p),
                fov_uas: fov(&eht),
                resolution_uas: res(&eht),
                sky: sky.clone(),
            }))
        }
        "visibilities" => {
            if args.no_debias {
                return Err("--no-debias applies to --data closures only".into());
            }
            Ok(Some(EhtProblem {
                model: vis_model,
                y: vis,
                closures: None,
                fov_uas: fov(&eht),
                resolution_uas: res(&eht),
                sky: sky.clone(),
            }))
        }
        other => Err(format!("--data: expected closures or visibilities, got {other:?}").into()),
    }
}

/// The model and data of `--forward eht(…)`.
pub struct EhtProblem {
    /// Image → data.
    pub model: Model,
    /// The data.
    pub y: Vec<f64>,
    /// The closure problem (`--data closures`), for its χ².
    pub closures: Option<scoreprior_core::forward::interferometry::ClosureProblem>,
    /// Field of view (µas).
    pub fov_uas: f64,
    /// The array's nominal resolution (µas).
    pub resolution_uas: f64,
    /// The sky header of FITS outputs.
    pub sky: scoreprior_core::io::FitsSky,
}

fn res(eht: &scoreprior_core::forward::interferometry::Interferometer) -> f64 {
    scoreprior_core::forward::interferometry::nominal_resolution_uas(eht.coverage())
}

fn fov(eht: &scoreprior_core::forward::interferometry::Interferometer) -> f64 {
    eht.pixel_size() / scoreprior_core::forward::interferometry::UAS * eht.image_shape().w as f64
}

/// Takes `--out` for this run: the lock, the sweep of killed runs' temporaries, then a
/// previous run is resumed only if `manifest` matches it, moved aside with `--force`, and
/// otherwise refused (a folder never holds two runs).
pub fn take_folder(args: &DpiArgs, manifest: &RunManifest) -> CliResult<scoreprior_core::io::OutputLock> {
    let lock = super::own_folder("--out", &args.out)?;

    let previous = RunManifest::read(&args.out)?;
    let has_run = previous.is_some() || args.out.join(CHECKPOINT_FILE).exists();
    if args.force {
        if let Some(old) = move_aside(&args.out)? {
            eprintln!("--force: the previous run was moved to {}", old.display());
        }
    } else if has_run && !args.resume {
        return Err(format!(
            "--out {}: holds a previous run; --resume continues it (same settings), --force moves it aside and \
             starts over",
            args.out.display()
        )
        .into());
    } else if let Some(old) = &previous {
        check_same_run(&args.out, old, manifest, "--force")?;
    } else if has_run {
        return Err(format!(
            "--out {}: holds a checkpoint but no run.json (an older version wrote it), so --resume cannot check \
             its settings; use --force to start over (the old files are moved aside)",
            args.out.display()
        )
        .into());
    }
    Ok(lock)
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
}
