//! `scoreprior solver-study`: the supplement's Table 1 on the ground-truth Gaussian
//! `q = N(μ, Σ)`. For each solver, `log p_ODE(x)` of `n` exact samples `x ~ q` (one batch =
//! one ODE state), then `KL(q‖p) ≈ (1/n) Σ [log q(x) − log p_ODE(x)]`, the mean
//! `|log p_ODE − log p_{t0}|` against the closed-form marginal at `t0`, NFE and wall time.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::io::write_csv;
use scoreprior_core::prior::{evaluate_in_batches, PriorStats, ScorePrior};
use scoreprior_core::score::{Gaussian, MarginalDensity};
use scoreprior_core::stats::mean_se;

use super::logprob::{load_gaussian, OdeArgs};
use super::plot::{Figure, Series};
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

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Solver name.
    pub solver: String,
    /// Fixed step size, if the solver ran with fixed steps.
    pub dt: Option<f64>,
    /// Solver statistics summed over batches.
    pub stats: PriorStats,
    /// KL(q‖p_ODE) estimate and its standard error.
    pub kl: (f64, f64),
    /// Mean and max |log p_ODE − log p_t0|.
    pub abs_err: (f64, f64),
    /// Wall time in seconds.
    pub wall: f64,
}

/// Runs the study and returns the table rows; writes CSV and plot into `args.out`.
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
        ode.solver = name.clone();
        ode.config().map_err(|e| format!("--solvers {}: solver `{name}`: {e}", args.solvers.join(",")))?;
    }
    // Exact trace unless asked otherwise: the study compares solvers, and for a Gaussian the
    // Hutchinson error is one probe-dependent offset shared by all samples.
    let mut args = args.clone();
    args.ode.trace.get_or_insert_with(|| "exact".to_string());
    let args = &args;
    let _lock = super::own_folder("--out", &args.out)?;
    let sde = args.ode.sde.sde()?;
    let q: Gaussian = load_gaussian(&args.mean, &args.cov, sde)?;
    let d = q.mean().len();
    let mut rng = ChaCha8Rng::seed_from_u64(args.sample_seed);
    let x = q.sample(&mut rng, args.samples);
    let n = args.samples;
    let mut log_q = vec![0.0; n];
    q.log_prob(&x, &mut log_q)?;
    let mut log_pt0 = vec![0.0; n];
    q.marginal_log_prob(&x, args.ode.t0, &mut log_pt0)?;
    let floor: Vec<f64> = log_q.iter().zip(&log_pt0).map(|(a, b)| a - b).collect();
    let floor = mean_se(&floor);
    let kl_t0 = kl_to_marginal(&q, args.ode.t0);

    println!(
        "solver study: D = {d}, {n} samples of q (seed {}), {} per ODE solve; SDE {}, t0 = {}, rtol = {}, atol = {}, \
         fixed-step dt = {:.3e}, trace {}, terminal {}",
        args.sample_seed,
        batch.min(n),
        args.ode.sde.as_str(),
        args.ode.t0,
        args.ode.rtol,
        args.ode.atol,
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
        ode.solver = name.clone();
        let cfg = ode.config()?;
        let dt = (!cfg.solver.is_adaptive()).then_some(ode.dt);
        let mut prior = ScorePrior::new(q.clone(), cfg.clone())?;
        if args.exact_terminal {
            prior = prior.with_exact_terminal(q.clone());
        }
        let start = Instant::now();
        let r = evaluate_in_batches(&prior, &x, batch, false, &mut |_, so_far| {
            done += 1;
            progress.update(done, || format!("solver {name}, NFE {}", so_far.stats.forward.rhs_evaluations));
        })
        .map_err(|e| format!("solver {name}: {e}"))?;
        let (lp, stats) = (r.log_prob, r.stats);
        let wall = start.elapsed().as_secs_f64();
        let kl: Vec<f64> = log_q.iter().zip(&lp).map(|(a, b)| a - b).collect();
        let err: Vec<f64> = lp.iter().zip(&log_pt0).map(|(a, b)| (a - b).abs()).collect();
        let row = Row {
            solver: cfg.solver.name.to_string(),
            dt,
            stats,
            kl: mean_se(&kl),
            abs_err: (err.iter().sum::<f64>() / n as f64, err.iter().copied().fold(0.0, f64::max)),
            wall,
        };
        println!(
            "  {:<8} NFE {:>5}  KL {:>9.5} ± {:.5}  mean|Δlog p| {:.3e}  {:.2} s",
            row.solver, row.stats.forward.rhs_evaluations, row.kl.0, row.kl.1, row.abs_err.0, row.wall
        );
        rows.push(row);
    }
    print_table(&rows, floor);
    println!("Closed-form KL(q‖p_t0) = {kl_t0:.5} nats (the floor row is its estimate from the same samples).");
    write_outputs(args, &rows, floor)?;
    Ok(rows)
}

/// `KL(N(μ, Σ) ‖ N(α μ, α² Σ + σ² I))` at `t0` in closed form: in the eigenbasis of `Σ`, with
/// `v_i = α² λ_i + σ²` and `m = (1 − α) Uᵀ μ`,
/// `½ Σ_i [λ_i / v_i − 1 + ln(v_i / λ_i) + m_i² / v_i]`.
pub fn kl_to_marginal(q: &Gaussian, t0: f64) -> f64 {
    use scoreprior_core::sde::Sde;
    let (a, s) = (q.sde().marginal_mean_coef(t0), q.sde().marginal_std(t0));
    let u = q.eigenvectors();
    let mu = q.mean();
    q.eigenvalues()
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let v = a * a * l + s * s;
            let m = (1.0 - a) * (0..mu.len()).map(|k| u[(k, i)] * mu[k]).sum::<f64>();
            0.5 * (l / v - 1.0 + (v / l).ln() + m * m / v)
        })
        .sum()
}

/// Prints the Markdown table.
pub fn print_table(rows: &[Row], floor: (f64, f64)) {
    println!();
    println!("| solver | step size | NFE | accepted | rejected | KL(q‖p) (nats) | ± s.e. | mean abs(Δ log p) | max abs(Δ log p) | wall (s) |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.5} | {:.5} | {:.3e} | {:.3e} | {:.2} |",
            r.solver,
            r.dt.map_or("adaptive".to_string(), |dt| format!("1/{:.0}", 1.0 / dt)),
            r.stats.forward.rhs_evaluations,
            r.stats.forward.accepted_steps,
            r.stats.forward.rejected_steps,
            r.kl.0,
            r.kl.1,
            r.abs_err.0,
            r.abs_err.1,
            r.wall
        );
    }
    println!("| exact p_t0 (no solver) | – | – | – | – | {:.5} | {:.5} | 0 | 0 | – |", floor.0, floor.1);
    println!();
    println!(
        "KL(q‖p) = mean over samples of log q(x) − log p_ODE(x); Δ log p = log p_ODE − log p_t0 (closed-form \
         marginal at t0, the ODE's exact target). The last row is the KL floor of stopping at t0 > 0."
    );
}

fn write_outputs(args: &SolverStudyArgs, rows: &[Row], floor: (f64, f64)) -> CliResult {
    /// One row of solver_study.csv (the last one is the KL floor of stopping at t0).
    #[derive(serde::Serialize)]
    struct CsvRow<'a> {
        solver: &'a str,
        dt: Option<f64>,
        nfe: usize,
        accepted_steps: usize,
        rejected_steps: usize,
        kl: f64,
        kl_se: f64,
        mean_abs_dlogp: f64,
        max_abs_dlogp: f64,
        wall_seconds: f64,
        samples: usize,
    }
    let mut table: Vec<CsvRow> = rows
        .iter()
        .map(|r| CsvRow {
            solver: &r.solver,
            dt: r.dt,
            nfe: r.stats.forward.rhs_evaluations,
            accepted_steps: r.stats.forward.accepted_steps,
            rejected_steps: r.stats.forward.rejected_steps,
            kl: r.kl.0,
            kl_se: r.kl.1,
            mean_abs_dlogp: r.abs_err.0,
            max_abs_dlogp: r.abs_err.1,
            wall_seconds: r.wall,
            samples: args.samples,
        })
        .collect();
    table.push(CsvRow {
        solver: "exact_p_t0",
        dt: None,
        nfe: 0,
        accepted_steps: 0,
        rejected_steps: 0,
        kl: floor.0,
        kl_se: floor.1,
        mean_abs_dlogp: 0.0,
        max_abs_dlogp: 0.0,
        wall_seconds: 0.0,
        samples: args.samples,
    });
    let csv_path = args.out.join("solver_study.csv");
    write_csv(&csv_path, &table)?;
    // KL against NFE, one labelled point per solver, and the t0 floor as a line.
    let mut fig =
        Figure::new("KL(q‖p_ODE) vs NFE (ground-truth Gaussian)", "NFE", "KL(q‖p) (nats)").log_axes(true, false);
    for r in rows {
        fig = fig.with(Series::points(r.solver.clone(), vec![(r.stats.forward.rhs_evaluations.max(1) as f64, r.kl.0)]));
    }
    let nfes: Vec<f64> = rows.iter().map(|r| r.stats.forward.rhs_evaluations.max(1) as f64).collect();
    let (lo, hi) = (nfes.iter().copied().fold(f64::INFINITY, f64::min), nfes.iter().copied().fold(0.0, f64::max));
    fig = fig.with(Series::line("exact p_t0 (floor)", vec![(lo, floor.0), (hi.max(lo * 1.01), floor.0)]));
    let svg_path = args.out.join("solver_study.svg");
    fig.write(&svg_path)?;
    // Error against the closed form, log–log (KL estimates can be negative; this cannot).
    let mut err =
        Figure::new("mean abs(log p_ODE − log p_t0) vs NFE", "NFE", "mean abs error (nats)").log_axes(true, true);
    for r in rows {
        err = err
            .with(Series::points(r.solver.clone(), vec![(r.stats.forward.rhs_evaluations.max(1) as f64, r.abs_err.0)]));
    }
    let err_path = args.out.join("solver_study_error.svg");
    err.write(&err_path)?;
    println!("wrote {}, {} and {}", csv_path.display(), svg_path.display(), err_path.display());
    Ok(())
}

/// Runs `scoreprior solver-study`.
pub fn run(args: SolverStudyArgs) -> CliResult {
    study(&args).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use scoreprior_core::sde::{AnySde, VpSde};

    #[test]
    fn closed_form_kl_matches_monte_carlo() {
        let cov = [0.30, 0.10, 0.05, 0.10, 0.20, 0.02, 0.05, 0.02, 0.25];
        let q = Gaussian::new(vec![0.5, -0.2, 0.8], &cov, AnySde::Vp(VpSde::default())).unwrap();
        let t = 0.2;
        let kl = kl_to_marginal(&q, t);
        let n = 20000;
        let x = q.sample(&mut ChaCha8Rng::seed_from_u64(3), n);
        let (mut lq, mut lp) = (vec![0.0; n], vec![0.0; n]);
        q.log_prob(&x, &mut lq).unwrap();
        q.marginal_log_prob(&x, t, &mut lp).unwrap();
        let d: Vec<f64> = lq.iter().zip(&lp).map(|(a, b)| a - b).collect();
        let (m, se) = mean_se(&d);
        assert!(kl > 0.01, "{kl}");
        assert!((m - kl).abs() < 3.0 * se, "closed form {kl} vs Monte Carlo {m} ± {se}");
        assert_eq!(kl_to_marginal(&q, 0.0), 0.0);
    }
}
