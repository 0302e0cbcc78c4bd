//! `scoreprior logprob`: log-probabilities (and optionally their gradients) of images under a
//! score-based prior (analytic Gaussian or mixture, or a trained NCSN++ checkpoint), `log p_{t0}(x) = log p_T(x_T) + ∫_{t0}^{T} div f̃(x_t, t) dt` by the
//! probability-flow ODE, `∇x log p` by the continuous adjoint.
//!
//! Bits per dimension are those of the continuous density of the input values,
//! `bpd = −log p(x) / (D ln 2)`; with `--dequantized` the data are taken as 8-bit images
//! scaled to `[0, 1]` and `log2 256 = 8` bits are added (`P(bin) ≈ p(x)·256^{−D}`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use scoreprior_core::divergence::{Divergence, Hutchinson, ProbeNoise};
use scoreprior_core::io::{atomic_write, check_outputs_distinct, read_npy, read_npy_images, write_npy, Array};
use scoreprior_core::ode::{PidController, Tableau};
use scoreprior_core::prior::{evaluate_in_batches, Controller, LogProbGrad, ScorePrior, ScorePriorConfig, Terminal};
use scoreprior_core::score::{Gaussian, GaussianMixture, ScoreModel};
use scoreprior_core::sde::AnySde;
use scoreprior_models::score::{NcsnppScore, Precision};
use serde::Serialize;

use super::progress::Progress;
use super::CliResult;

/// The SDE a prior was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SdeName {
    /// Variance preserving, β from 0.1 to 20.
    Vp,
    /// Sub-variance preserving, β from 0.1 to 20.
    Subvp,
    /// Variance exploding, σ from 0.01 to 50.
    Ve,
}

impl SdeName {
    /// The name as accepted by [`AnySde::from_name`].
    pub fn as_str(self) -> &'static str {
        match self {
            SdeName::Vp => "vp",
            SdeName::Subvp => "subvp",
            SdeName::Ve => "ve",
        }
    }
    /// The SDE with its default parameters.
    pub fn sde(self) -> CliResult<AnySde> {
        Ok(AnySde::from_name(self.as_str())?)
    }
}

/// Probe distribution of the Hutchinson estimator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeName {
    /// ±1 entries.
    Rademacher,
    /// Standard normal entries.
    Gaussian,
}

impl From<ProbeName> for ProbeNoise {
    fn from(p: ProbeName) -> Self {
        match p {
            ProbeName::Rademacher => ProbeNoise::Rademacher,
            ProbeName::Gaussian => ProbeNoise::Gaussian,
        }
    }
}

/// Solver and divergence options shared by `logprob` and the studies.
#[derive(Debug, Clone, Args)]
pub struct OdeArgs {
    /// SDE of the score model.
    #[arg(long, value_enum, default_value_t = SdeName::Vp)]
    pub sde: SdeName,
    /// Runge–Kutta solver of the probability-flow ODE (euler, heun, rk4, bosh3, tsit5, dopri5,
    /// dopri8). Solvers without an error estimate (euler, rk4) run with fixed steps `--dt`.
    #[arg(long, default_value = "dopri5")]
    pub solver: String,
    /// Relative tolerance of the adaptive step-size controller.
    #[arg(long, default_value_t = 1e-3)]
    pub rtol: f64,
    /// Absolute tolerance of the adaptive step-size controller.
    #[arg(long, default_value_t = 1e-5)]
    pub atol: f64,
    /// First step of the adaptive forward solve: a number, or `auto` for Hairer's heuristic
    /// (the backward adjoint solve always uses the heuristic). Default: the reference
    /// script's 0.001.
    #[arg(long, default_value = "0.001", value_parser = parse_dt0)]
    pub dt0: FirstStep,
    /// Fixed step size for solvers without an error estimate; at most the integration
    /// interval T − t0 (a larger step would jump past the interval in one step).
    #[arg(long, default_value_t = 1.0 / 4092.0)]
    pub dt: f64,
    /// Lower integration limit `t0` (the density returned is that of the marginal at t0).
    #[arg(long, default_value_t = 1e-3)]
    pub t0: f64,
    /// Maximum number of steps of each solve.
    #[arg(long, default_value_t = 4096)]
    pub max_steps: usize,
    /// Divergence estimator: `exact` trace, or `hutchinson` (see --hutchinson). Default:
    /// hutchinson for `logprob` (as the reference code), exact for the solver study.
    #[arg(long, value_parser = ["exact", "hutchinson"])]
    pub trace: Option<String>,
    /// Number of Hutchinson probes K (with --trace hutchinson, the default).
    #[arg(long, default_value_t = 16)]
    pub hutchinson: usize,
    /// Distribution of the Hutchinson probes.
    #[arg(long, value_enum, default_value_t = ProbeName::Rademacher)]
    pub probe: ProbeName,
    /// Seed of the Hutchinson probes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The `--dt0` value: a fixed first step or Hairer's automatic choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FirstStep {
    /// Hairer's heuristic.
    Auto,
    /// This step.
    Fixed(f64),
}

fn parse_dt0(s: &str) -> Result<FirstStep, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(FirstStep::Auto);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(FirstStep::Fixed(v)),
        Ok(v) => Err(format!("the first step must be finite and positive, got {v}")),
        Err(_) => Err(format!("expected a positive number or `auto`, got `{s}`")),
    }
}

/// Looks up a shipped solver by its (case-insensitive) name.
pub fn solver_tableau(name: &str) -> CliResult<&'static Tableau> {
    Ok(scoreprior_core::ode::solver_by_name(name)?.tableau())
}

impl OdeArgs {
    /// `exact` or `hutchinson` (the default when `--trace` is not given).
    pub fn trace_kind(&self) -> &str {
        self.trace.as_deref().unwrap_or("hutchinson")
    }

    /// The divergence estimator selected by `--trace`, `--hutchinson`, `--probe`, `--seed`.
    pub fn divergence(&self) -> CliResult<Divergence> {
        Ok(match self.trace_kind() {
            "exact" => Divergence::ExactTrace,
            _ => Divergence::Hutchinson(Hutchinson::new(self.hutchinson, self.probe.into(), self.seed)?),
        })
    }

    /// The prior configuration: forward and adjoint solves use the same solver and
    /// tolerances (as the reference code, which uses Dopri5 with rtol 1e-3 / atol 1e-5 for both).
    pub fn config(&self) -> CliResult<ScorePriorConfig> {
        let tab = solver_tableau(&self.solver)?;
        let (controller, adjoint_controller) = if tab.is_adaptive() {
            let forward = match self.dt0 {
                FirstStep::Auto => Controller::pid_auto(self.rtol, self.atol),
                FirstStep::Fixed(dt0) => Controller::Pid(PidController::new(self.rtol, self.atol).with_dt0(dt0)),
            };
            (forward, Controller::pid_auto(self.rtol, self.atol))
        } else {
            (Controller::constant(self.dt), Controller::constant(self.dt))
        };
        let cfg = ScorePriorConfig {
            sde: self.sde.sde()?,
            solver: tab,
            controller,
            t0: self.t0,
            max_steps: self.max_steps,
            divergence: self.divergence()?,
            adjoint_solver: tab,
            adjoint_controller,
            ..ScorePriorConfig::default()
        };
        cfg.validate()?;
        // One step larger than the whole interval is a single, silently inaccurate step.
        if !tab.is_adaptive() && self.dt > cfg.t1 - cfg.t0 {
            return Err(format!(
                "--dt {}: larger than the integration interval T − t0 = {} − {} = {}; use --dt at most that",
                self.dt,
                cfg.t1,
                cfg.t0,
                cfg.t1 - cfg.t0
            )
            .into());
        }
        Ok(cfg)
    }

    /// A JSON description of the estimator.
    pub fn trace_json(&self) -> serde_json::Value {
        match self.trace_kind() {
            "exact" => serde_json::json!({ "kind": "exact" }),
            _ => serde_json::json!({
                "kind": "hutchinson",
                "probes": self.hutchinson,
                "noise": format!("{:?}", self.probe).to_lowercase(),
                "seed": self.seed,
            }),
        }
    }
}

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

/// A relative path that does not exist from the working directory is also looked up in the
/// source tree (so the shipped `assets/` defaults work when the binary runs elsewhere).
pub fn resolve(path: &Path) -> PathBuf {
    if !path.exists() && path.is_relative() {
        let alt = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        if alt.exists() {
            return alt;
        }
    }
    path.to_path_buf()
}

/// Reads an `.npy` file, naming the flag it came from in errors.
pub fn load(flag: &str, path: &Path) -> CliResult<Array> {
    let path = &resolve(path);
    if !path.exists() {
        return Err(format!("--{flag}: file {} does not exist", path.display()).into());
    }
    read_npy(path).map_err(|e| format!("--{flag}: {e}").into())
}

/// Reads an `.npy` file of images, naming the flag it came from in errors, with the image
/// rule of [`read_npy_images`]: floats as they are, u8 scaled by 1/255, other integers
/// rejected.
pub fn load_images(flag: &str, path: &Path) -> CliResult<Array> {
    let path = &resolve(path);
    if !path.exists() {
        return Err(format!("--{flag}: file {} does not exist", path.display()).into());
    }
    read_npy_images(path).map_err(|e| format!("--{flag}: {e}").into())
}

/// Checks an image batch of shape (N, D), (N, H, W) or (N, C, H, W); returns `(N, D)`.
pub fn image_rows(flag: &str, a: &Array) -> CliResult<(usize, usize)> {
    if !(2..=4).contains(&a.shape.len()) {
        return Err(
            format!("--{flag}: array of shape {:?}: expected (N, D), (N, H, W) or (N, C, H, W)", a.shape).into()
        );
    }
    let (n, d) = a.rows();
    if n == 0 || d == 0 {
        return Err(format!("--{flag}: array of shape {:?} is empty", a.shape).into());
    }
    Ok((n, d))
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

/// Loads a Gaussian `N(mean, cov)` from two `.npy` files.
pub fn load_gaussian(mean: &Path, cov: &Path, sde: AnySde) -> CliResult<Gaussian> {
    let m = load("mean", mean)?;
    let c = load("cov", cov)?;
    let d = m.data.len();
    if m.shape.len() != 1 {
        return Err(format!("--mean: shape {:?}: expected a vector (D,)", m.shape).into());
    }
    // Checked here so that a bad mean is not reported against --cov by Gaussian::new.
    if let Some(i) = m.data.iter().position(|v| !v.is_finite()) {
        return Err(format!("--mean {}: entry {i} is {}; the mean must be finite", mean.display(), m.data[i]).into());
    }
    if c.shape != [d, d] {
        return Err(format!("--cov: shape {:?} does not match the mean: expected ({d}, {d})", c.shape).into());
    }
    Gaussian::new(m.data, &c.data, sde).map_err(|e| format!("--cov {}: {e}", cov.display()).into())
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

/// Bits per dimension of a log-density (see the module docs).
pub fn bits_per_dim(log_prob: f64, d: usize, dequantized: bool) -> f64 {
    -log_prob / (d as f64 * std::f64::consts::LN_2) + if dequantized { 8.0 } else { 0.0 }
}

#[derive(Serialize)]
struct Output {
    prior: String,
    sde: SdeName,
    solver: String,
    rtol: f64,
    atol: f64,
    dt: Option<f64>,
    t0: f64,
    terminal: &'static str,
    trace: serde_json::Value,
    shape: Vec<usize>,
    dim: usize,
    bits_per_dim_definition: &'static str,
    log_prob: Vec<f64>,
    bits_per_dim: Vec<f64>,
    nfe: usize,
    accepted_steps: usize,
    rejected_steps: usize,
    forward: scoreprior_core::ode::Stats,
    adjoint: Option<scoreprior_core::ode::Stats>,
    grad: Option<String>,
    batches: usize,
    wall_seconds: f64,
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
    check_outputs_distinct(&inputs, &outputs)?;
    let x = load_images("x", &args.x)?;
    let (n, d) = image_rows("x", &x)?;
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
    let start = Instant::now();
    let total_batches = n.div_ceil(args.batch) as u64;
    let mut progress = Progress::new("logprob", total_batches, false);
    let mut batches = 0;
    let r = evaluate_in_batches(&prior, &x.data, args.batch, args.grad.is_some(), &mut |done, so_far| {
        batches += 1;
        progress.update(batches as u64, || {
            let mean = so_far.log_prob.iter().sum::<f64>() / done.max(1) as f64;
            format!("{done} images, mean log p {mean:.2}, NFE {}", so_far.stats.nfe())
        });
    })?;
    progress.finish();
    let LogProbGrad { log_prob, grad, stats } = r;
    let wall = start.elapsed().as_secs_f64();
    if let Some(g) = &args.grad {
        write_npy(g, &x.shape, &grad)?;
    }
    let bpd: Vec<f64> = log_prob.iter().map(|&l| bits_per_dim(l, d, args.dequantized)).collect();
    let out = Output {
        prior: args.prior.clone(),
        sde: args.ode.sde,
        solver: cfg.solver.name.to_string(),
        rtol: args.ode.rtol,
        atol: args.ode.atol,
        dt: (!cfg.solver.is_adaptive()).then_some(args.ode.dt),
        t0: args.ode.t0,
        terminal: if args.exact_terminal { "exact p_T of the analytic prior" } else { "SDE prior N(0, sigma_T^2 I)" },
        trace: args.ode.trace_json(),
        shape: x.shape.clone(),
        dim: d,
        bits_per_dim_definition: if args.dequantized {
            "-log p(x) / (D ln 2) + 8 (8-bit data scaled to [0,1], uniformly dequantised)"
        } else {
            "-log p(x) / (D ln 2) (continuous density of the input values)"
        },
        log_prob,
        bits_per_dim: bpd,
        nfe: stats.nfe(),
        accepted_steps: stats.forward.accepted_steps + stats.adjoint.accepted_steps,
        rejected_steps: stats.forward.rejected_steps + stats.adjoint.rejected_steps,
        forward: stats.forward,
        adjoint: args.grad.is_some().then_some(stats.adjoint),
        grad: args.grad.as_ref().map(|p| p.display().to_string()),
        batches,
        wall_seconds: wall,
    };
    let json = serde_json::to_string_pretty(&out)?;
    atomic_write(&args.out, json.as_bytes())?;
    let mean_lp = out.log_prob.iter().sum::<f64>() / n as f64;
    let mean_bpd = out.bits_per_dim.iter().sum::<f64>() / n as f64;
    println!(
        "{n} images (D = {d}): mean log p = {mean_lp:.4}, mean bits/dim = {mean_bpd:.4}; NFE {} ({} accepted, {} rejected steps), {wall:.2} s → {}",
        out.nfe,
        out.accepted_steps,
        out.rejected_steps,
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_per_dim_of_uniform_density_is_zero() {
        // The uniform density on [0,1]^D has log p = 0: 0 bits/dim, 8 once dequantised.
        assert_eq!(bits_per_dim(0.0, 256, false), 0.0);
        assert_eq!(bits_per_dim(0.0, 256, true), 8.0);
        // log p = −D ln 2 is one bit per dimension.
        assert!((bits_per_dim(-(10.0 * std::f64::consts::LN_2), 10, false) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn image_rows_rejects_bad_shapes() {
        let ok = Array::new(vec![2, 3, 4], vec![0.0; 24]).unwrap();
        assert_eq!(image_rows("x", &ok).unwrap(), (2, 12));
        let flat = Array::new(vec![5], vec![0.0; 5]).unwrap();
        assert!(image_rows("x", &flat).unwrap_err().to_string().contains("expected (N, D)"));
        let five = Array::new(vec![1, 1, 1, 1, 2], vec![0.0; 2]).unwrap();
        assert!(image_rows("x", &five).is_err());
    }
}
