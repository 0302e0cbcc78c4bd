//! `scoreprior solver-study`: the supplement's Table 1 on the ground-truth Gaussian
//! `q = N(μ, Σ)`. For each solver, `log p_ODE(x)` of `n` exact samples `x ~ q` (one batch =
//! one ODE state), then `KL(q‖p) ≈ (1/n) Σ [log q(x) − log p_ODE(x)]`, the mean
//! `|log p_ODE − log p_{t0}|` against the closed-form marginal at `t0`, NFE and wall time.
//! The study's parts are [`scoreprior_cli::solver_study`]; this file maps the flags onto them.

use std::path::PathBuf;

use clap::Args;
use scoreprior_cli::solver_study::{kl_to_marginal, markdown, write, Row, Samples};
use scoreprior_core::score::Gaussian;

use super::inputs::load_gaussian;
use super::ode_args::OdeArgs;
use super::progress::Progress;
use super::CliResult;

/// Arguments of `scoreprior solver-study`.
#[derive(Debug, Clone, Args)]
pub struct SolverStudyArgs {
    /// Mean of the ground-truth Gaussian, (D,) .npy.
    #[arg(long, default_value = "assets/gaussian16/mean.npy")]
    pub mean: PathBuf,
    /// Covariance of the ground-truth Gaussian, (D, D) .npy.
    #[arg(long, default_value = "assets/gaussian16/cov.npy")]
    pub cov: PathBuf,
    /// Number of samples of q (the paper: 512).
    #[arg(long, default_value_t = 512)]
    pub samples: usize,
    /// Samples per ODE solve (each batch is one ODE state); default: all in one.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Seed of the samples of q.
    #[arg(long, default_value_t = 0)]
    pub sample_seed: u64,
    /// Comma-separated solvers, in table order.
    #[arg(long, value_delimiter = ',', default_value = "euler,heun,bosh3,tsit5,dopri5,dopri8")]
    pub solvers: Vec<String>,
    /// Use the exact marginal p_T as terminal density instead of the SDE prior N(0, σ_T² I),
    /// which leaves only the solver's (and estimator's) error.
    #[arg(long)]
    pub exact_terminal: bool,
    #[command(flatten)]
    pub ode: OdeArgs,
    /// Output folder for solver_study.csv and solver_study.svg.
    #[arg(long, default_value = "out/solver-study")]
    pub out: PathBuf,
}

/// Runs the study and returns the table rows; writes CSV and plots into `args.out`.
pub fn study(args: &SolverStudyArgs) -> CliResult<Vec<Row>> {
    if args.samples == 0 {
        return Err("--samples must be at least 1".into());
    }
    let batch = args.batch.unwrap_or(args.samples);
    if batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    if args.solvers.is_empty() {
        return Err("--solvers: give at least one solver".into());
    }
    // Every solver name (and its step-size settings) is checked before the first, possibly
    // long, solve: a typo in the last name must not cost the whole table.
    for name in &args.solvers {
        let mut ode = args.ode.clone();
        ode.solve.solver =
            name.parse().map_err(|e| format!("--solvers {}: solver `{name}`: {e}", args.solvers.join(",")))?;
        ode.config().map_err(|e| format!("--solvers {}: solver `{name}`: {e}", args.solvers.join(",")))?;
    }
    // Exact trace unless asked otherwise: the study compares solvers, and for a Gaussian the
    // Hutchinson error is one probe-dependent offset shared by all samples.
    let mut args = args.clone();
    args.ode.trace.get_or_insert_with(|| "exact".to_string());
    let args = &args;
    let inputs: [(&str, &std::path::Path); 2] = [("--mean", &args.mean), ("--cov", &args.cov)];
    let claim = super::claim(super::guard("solver-study", &inputs, &[]), "--out", &args.out, true)?;
    let sde = args.ode.sde.sde()?;
    let q: Gaussian = load_gaussian(&args.mean, &args.cov, sde)?;
    let d = q.mean().len();
    let n = args.samples;
    // The samples with their log-densities, and one solve's states and stages (up to 16
    // copies of the batch), before any is drawn.
    let what = format!("--samples {n} of D = {d} values");
    scoreprior_core::limits::check_elems(&what, &[n, d.saturating_add(4)], 8)?;
    let what = format!("--batch {} of D = {d} values with the solver's stages", batch.min(n));
    scoreprior_core::limits::check_elems(&what, &[batch.min(n), d, 16], 8)?;
    let samples = Samples::draw(q, n, args.sample_seed, args.ode.t0)?;
    let floor = samples.floor();
    let kl_t0 = kl_to_marginal(&samples.q, args.ode.t0);

    println!(
        "solver study: D = {d}, {n} samples of q (seed {}), {} per ODE solve; SDE {}, t0 = {}, rtol = {}, atol = {}, \
         fixed-step dt = {:.3e}, trace {}, terminal {}",
        args.sample_seed,
        batch.min(n),
        args.ode.sde.as_str(),
        args.ode.t0,
        args.ode.solve.rtol,
        args.ode.solve.atol,
        args.ode.dt,
        args.ode.trace_json(),
        if args.exact_terminal { "exact p_T" } else { "SDE prior N(0, σ_T² I)" },
    );
    let mut rows = Vec::new();
    let chunks = n.div_ceil(batch) as u64;
    let mut progress = Progress::new("solver-study", chunks * args.solvers.len() as u64, false);
    let mut done = 0u64;
    for name in &args.solvers {
        let mut ode = args.ode.clone();
        ode.solve.solver = name.parse()?;
        let cfg = ode.config()?;
        let dt = (!cfg.solver.is_adaptive()).then_some(ode.dt);
        let row = samples
            .row(&cfg, dt, batch, args.exact_terminal, &mut |so_far| {
                done += 1;
                progress.update(done, || format!("solver {name}, NFE {}", so_far.stats.forward.rhs_evaluations));
            })
            .map_err(|e| format!("solver {name}: {e}"))?;
        println!(
            "  {:<8} NFE {:>5}  KL {:>9.5} ± {:.5}  mean|Δlog p| {:.3e}  {:.2} s",
            row.solver, row.stats.forward.rhs_evaluations, row.kl.0, row.kl.1, row.abs_err.0, row.wall
        );
        rows.push(row);
    }
    print!("{}", markdown(&rows, floor));
    println!("Closed-form KL(q‖p_t0) = {kl_t0:.5} nats (the floor row is its estimate from the same samples).");
    let [csv, svg, err] = write(&args.out, &rows, floor, args.samples)?;
    println!("wrote {}, {} and {}", csv.display(), svg.display(), err.display());
    claim.finish()?;
    Ok(rows)
}

/// Runs `scoreprior solver-study`.
pub fn run(args: SolverStudyArgs) -> CliResult {
    study(&args).map(|_| ())
}
