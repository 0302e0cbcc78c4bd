//! `scoreprior logprob`: log-probabilities (and optionally their gradients) of images under a
//! score-based prior (analytic Gaussian or mixture, or a trained NCSN++ checkpoint), `log p_{t0}(x) = log p_T(x_T) + ∫_{t0}^{T} div f̃(x_t, t) dt` by the
//! probability-flow ODE, `∇x log p` by the continuous adjoint.
//!
//! Bits per dimension are those of the continuous density of the input values,
//! `bpd = −log p(x) / (D ln 2)`; with `--dequantized` the data are taken as 8-bit images
//! scaled to `[0, 1]` and `log2 256 = 8` bits are added (`P(bin) ≈ p(x)·256^{−D}`).
//! The evaluation and its record are [`scoreprior::logprob`]; this file maps the flags onto it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use scoreprior::logprob::{evaluate, Estimator, Report};
use scoreprior_core::io::write_npy;
use scoreprior_core::prior::{ScorePrior, Terminal};
use scoreprior_core::score::{Gaussian, GaussianMixture, ScoreModel};
use scoreprior_core::sde::AnySde;
use scoreprior_models::score::{NcsnppScore, Precision};

// The loaders and the estimator flags live in their own files, shared by several commands;
// they stay reachable here, where the other commands have always found them.
pub use super::inputs::{image_rows, load_images, resolve};
use super::inputs::{load, load_gaussian};
use super::monitor::Bars;
pub use super::ode_args::OdeArgs;
use super::ode_args::SdeName;
use super::CliResult;

/// Arguments of `scoreprior logprob`.
#[derive(Debug, Args)]
pub struct LogprobArgs {
    /// The prior: `gaussian` (needs --mean, --cov), `gmm` (needs --weights, --means, --stds),
    /// or an NCSN++ checkpoint file (from `scoreprior train`; its VP SDE is used).
    #[arg(long)]
    pub prior: String,
    /// Gaussian mean, (D,) .npy.
    #[arg(long)]
    pub mean: Option<PathBuf>,
    /// Gaussian covariance, (D, D) .npy, symmetric positive definite.
    #[arg(long)]
    pub cov: Option<PathBuf>,
    /// Mixture weights, (K,) .npy.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Mixture means, (K, D) .npy (or (K, H, W), (K, C, H, W)).
    #[arg(long)]
    pub means: Option<PathBuf>,
    /// Mixture standard deviations, (K,) isotropic or (K, D) diagonal .npy.
    #[arg(long)]
    pub stds: Option<PathBuf>,
    /// Images, .npy of shape (N, D), (N, H, W) or (N, C, H, W): f32 or f64 values taken as they
    /// are (images in [0, 1]), u8 scaled by 1/255 as 8-bit images; other integer dtypes are
    /// rejected (convert them to float in [0, 1]).
    #[arg(long)]
    pub x: PathBuf,
    #[command(flatten)]
    pub ode: OdeArgs,
    /// Also compute ∇x log p by the continuous adjoint and write it (f64, shape of --x) here.
    #[arg(long)]
    pub grad: Option<PathBuf>,
    /// Images per ODE solve (each batch is one ODE state with one step size).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Analytic priors only: use the exact marginal p_T of the model as terminal density instead
    /// of the SDE prior N(0, σ_T² I), so that only solver and estimator errors remain (testing).
    #[arg(long)]
    pub exact_terminal: bool,
    /// Network priors: compute scores and VJPs in f64 instead of f32.
    #[arg(long)]
    pub f64: bool,
    /// Treat the input as 8-bit images scaled to [0, 1]: add log2(256) = 8 to bits/dim.
    #[arg(long)]
    pub dequantized: bool,
    /// Result file (JSON, written atomically).
    #[arg(long)]
    pub out: PathBuf,
}

/// A score model selected by `--prior`. New kinds (trained networks) plug in here: the
/// checkpoint branch of [`build_model`] is the extension point.
pub enum LoadedModel {
    /// Analytic Gaussian.
    Gaussian(Gaussian),
    /// Analytic Gaussian mixture.
    Mixture(GaussianMixture),
    /// A trained network and the SDE it was trained with (from its checkpoint).
    Network {
        /// The score model.
        model: Arc<dyn ScoreModel>,
        /// Its SDE, which replaces the `--sde` default.
        sde: AnySde,
    },
}

impl LoadedModel {
    /// The model as a shared trait object.
    pub fn into_arc(self) -> Arc<dyn ScoreModel> {
        match self {
            LoadedModel::Gaussian(g) => Arc::new(g),
            LoadedModel::Mixture(m) => Arc::new(m),
            LoadedModel::Network { model, .. } => model,
        }
    }
}

fn need<'a>(p: &'a Option<PathBuf>, flag: &str, prior: &str) -> CliResult<&'a Path> {
    p.as_deref().ok_or_else(|| format!("--prior {prior} needs --{flag}").into())
}

/// Builds the score model named by `--prior`.
pub fn build_model(args: &LogprobArgs, sde: AnySde, sde_name: SdeName) -> CliResult<LoadedModel> {
    match args.prior.as_str() {
        "gaussian" => {
            let (m, c) = (need(&args.mean, "mean", "gaussian")?, need(&args.cov, "cov", "gaussian")?);
            Ok(LoadedModel::Gaussian(load_gaussian(m, c, sde)?))
        }
        "gmm" => {
            let w = load("weights", need(&args.weights, "weights", "gmm")?)?;
            let mu = load("means", need(&args.means, "means", "gmm")?)?;
            let s = load("stds", need(&args.stds, "stds", "gmm")?)?;
            if w.shape.len() != 1 {
                return Err(format!("--weights: shape {:?}: expected (K,)", w.shape).into());
            }
            let k = w.data.len();
            if mu.shape.first() != Some(&k) || mu.shape.len() < 2 {
                return Err(format!("--means: shape {:?}: expected ({k}, D) for {k} weights", mu.shape).into());
            }
            Ok(LoadedModel::Mixture(GaussianMixture::new(&w.data, &mu.data, &s.data, sde)?))
        }
        other => {
            let p = Path::new(other);
            if !p.exists() {
                return Err(
                    format!("--prior {other}: expected `gaussian`, `gmm` or an existing checkpoint file").into()
                );
            }
            // Trained NCSN++ networks; other network kinds plug in here as further
            // `LoadedModel::Network` sources.
            if sde_name != SdeName::Vp {
                return Err(format!("--prior {other}: NCSN++ checkpoints are VP models; --sde must be vp").into());
            }
            let prec = if args.f64 { Precision::F64 } else { Precision::F32 };
            let m = NcsnppScore::load(p).map_err(|e| format!("--prior {other}: {e}"))?.with_precision(prec);
            let sde = AnySde::Vp(*m.sde());
            Ok(LoadedModel::Network { model: Arc::new(m), sde })
        }
    }
}

/// Runs `scoreprior logprob`.
pub fn run(args: LogprobArgs) -> CliResult {
    // All flag checks first: nothing is solved or written before they pass.
    if args.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    let mut cfg = args.ode.config()?;
    let prior_file = Path::new(&args.prior);
    let mut inputs: Vec<(&str, &Path)> = vec![("--x", &args.x)];
    for (flag, p) in [
        ("--mean", &args.mean),
        ("--cov", &args.cov),
        ("--weights", &args.weights),
        ("--means", &args.means),
        ("--stds", &args.stds),
    ] {
        if let Some(p) = p {
            inputs.push((flag, p));
        }
    }
    if !matches!(args.prior.as_str(), "gaussian" | "gmm") {
        inputs.push(("--prior", prior_file));
    }
    let mut outputs: Vec<(&str, &Path)> = vec![("--out", &args.out)];
    if let Some(g) = &args.grad {
        outputs.push(("--grad", g));
    }
    super::guard("logprob", &inputs, &outputs).check()?;
    let x = load_images("x", &args.x)?;
    let (n, d) = image_rows("x", &x)?;
    if let scoreprior_core::divergence::Divergence::Hutchinson(h) = &cfg.divergence {
        // The probes and, per solve of --batch images, their cotangents and products.
        let b = args.batch.min(n);
        let what = format!("--hutchinson {}: the probes for --batch {b} image(s) of D = {d} values", h.probes);
        scoreprior_core::limits::check_elems(&what, &[h.probes, b.saturating_mul(2).saturating_add(1), d], 8)?;
    }
    let loaded = build_model(&args, cfg.sde, args.ode.sde)?;
    if let LoadedModel::Network { sde, .. } = &loaded {
        cfg.sde = *sde;
    }
    let terminal = match (&loaded, args.exact_terminal) {
        (_, false) => Terminal::Sde,
        (LoadedModel::Gaussian(g), true) => Terminal::Exact(Arc::new(g.clone())),
        (LoadedModel::Mixture(m), true) => Terminal::Exact(Arc::new(m.clone())),
        (LoadedModel::Network { .. }, true) => {
            return Err("--exact-terminal needs an analytic prior (gaussian or gmm)".into());
        }
    };
    let model = loaded.into_arc();
    if model.dim() != d {
        return Err(format!(
            "--x: images of shape {:?} have D = {d} values but the prior has dimension {}",
            &x.shape[1..],
            model.dim()
        )
        .into());
    }
    let prior = ScorePrior::from_arc(model, cfg.clone())?.with_terminal(terminal);
    let e = evaluate(&prior, &x.data, args.batch, args.grad.is_some(), &mut Bars::new(false))?;
    if let Some(g) = &args.grad {
        write_npy(g, &x.shape, &e.grad)?;
    }
    let estimator = Estimator {
        prior: args.prior.clone(),
        sde: args.ode.sde.as_str().to_string(),
        solver: cfg.solver.name.to_string(),
        rtol: args.ode.solve.rtol,
        atol: args.ode.solve.atol,
        dt: (!cfg.solver.is_adaptive()).then_some(args.ode.dt),
        t0: args.ode.t0,
        terminal: Estimator::terminal_words(args.exact_terminal),
        trace: args.ode.trace_json(),
    };
    let report = Report::new(estimator, x.shape.clone(), e, args.dequantized, args.grad.as_deref());
    report.write(&args.out)?;
    println!("{}", report.summary(&args.out));
    Ok(())
}
