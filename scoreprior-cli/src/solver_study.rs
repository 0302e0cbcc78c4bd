//! The supplement's Table 1 on a ground-truth Gaussian `q = N(μ, Σ)`: for each solver,
//! `log p_ODE(x)` of `n` exact samples `x ~ q`, then `KL(q‖p) ≈ (1/n) Σ [log q(x) − log p_ODE(x)]`
//! and the mean `|log p_ODE − log p_{t0}|` against the closed-form marginal at `t0`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::io::write_csv;
use scoreprior_core::prior::{evaluate_in_batches, LogProbGrad, PriorStats, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::{Gaussian, MarginalDensity};
use scoreprior_core::sde::Sde;
use scoreprior_core::stats::mean_se;

use crate::plot::{Figure, Series};
use scoreprior::experiment::{ExperimentError, Result};

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

/// The study's samples of `q` with their exact log-densities: under `q` itself and under its
/// marginal `p_{t0}` at the ODE's lower limit, the target every solver approximates.
#[derive(Debug, Clone)]
pub struct Samples {
    /// The ground truth.
    pub q: Gaussian,
    /// `n` samples, row-major `(n, D)`.
    pub x: Vec<f64>,
    /// `log q(x)` per sample.
    pub log_q: Vec<f64>,
    /// `log p_{t0}(x)` per sample.
    pub log_pt0: Vec<f64>,
    /// Lower integration limit `t0`.
    pub t0: f64,
}

impl Samples {
    /// `n` samples of `q` drawn with `seed`, and their log-densities at `t = 0` and `t0`.
    ///
    /// # Errors
    /// `q`'s errors.
    ///
    /// ```
    /// use scoreprior::core::score::Gaussian;
    /// use scoreprior::core::sde::{AnySde, VpSde};
    /// use scoreprior_cli::solver_study::Samples;
    /// let q = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], AnySde::Vp(VpSde::default())).unwrap();
    /// let s = Samples::draw(q, 8, 0, 1e-3).unwrap();
    /// let (floor, _) = s.floor();
    /// assert!(floor.abs() < 0.1);
    /// ```
    pub fn draw(q: Gaussian, n: usize, seed: u64, t0: f64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = q.sample(&mut rng, n);
        let mut log_q = vec![0.0; n];
        q.log_prob(&x, &mut log_q)?;
        let mut log_pt0 = vec![0.0; n];
        q.marginal_log_prob(&x, t0, &mut log_pt0)?;
        Ok(Self { q, x, log_q, log_pt0, t0 })
    }

    /// Mean and standard error of `log q − log p_{t0}`: the KL floor of stopping at `t0 > 0`,
    /// estimated from these samples.
    pub fn floor(&self) -> (f64, f64) {
        let d: Vec<f64> = self.log_q.iter().zip(&self.log_pt0).map(|(a, b)| a - b).collect();
        mean_se(&d)
    }

    /// One row: `log p_ODE` of the samples under `cfg` (`dt`: its fixed step, if any), `batch`
    /// samples per ODE solve, with the exact `p_T` as terminal density if `exact_terminal`.
    /// `on_batch` sees the running statistics after each batch.
    ///
    /// # Errors
    /// The prior's errors (a solve that fails or exceeds its steps).
    pub fn row(
        &self,
        cfg: &ScorePriorConfig,
        dt: Option<f64>,
        batch: usize,
        exact_terminal: bool,
        on_batch: &mut dyn FnMut(&LogProbGrad),
    ) -> Result<Row> {
        let mut prior = ScorePrior::new(self.q.clone(), cfg.clone())?;
        if exact_terminal {
            prior = prior.with_exact_terminal(self.q.clone());
        }
        let start = Instant::now();
        let r = evaluate_in_batches(&prior, &self.x, batch, false, &mut |_, so_far| on_batch(so_far))?;
        let (lp, stats) = (r.log_prob, r.stats);
        let wall = start.elapsed().as_secs_f64();
        let n = lp.len();
        let kl: Vec<f64> = self.log_q.iter().zip(&lp).map(|(a, b)| a - b).collect();
        let err: Vec<f64> = lp.iter().zip(&self.log_pt0).map(|(a, b)| (a - b).abs()).collect();
        Ok(Row {
            solver: cfg.solver.name.to_string(),
            dt,
            stats,
            kl: mean_se(&kl),
            abs_err: (err.iter().sum::<f64>() / n as f64, err.iter().copied().fold(0.0, f64::max)),
            wall,
        })
    }
}

/// `KL(N(μ, Σ) ‖ N(α μ, α² Σ + σ² I))` at `t0` in closed form: in the eigenbasis of `Σ`, with
/// `v_i = α² λ_i + σ²` and `m = (1 − α) Uᵀ μ`,
/// `½ Σ_i [λ_i / v_i − 1 + ln(v_i / λ_i) + m_i² / v_i]`.
///
/// ```
/// use scoreprior::core::score::Gaussian;
/// use scoreprior::core::sde::{AnySde, VpSde};
/// let q = Gaussian::diagonal(vec![0.5; 3], &[0.2; 3], AnySde::Vp(VpSde::default())).unwrap();
/// assert_eq!(scoreprior_cli::solver_study::kl_to_marginal(&q, 0.0), 0.0);
/// assert!(scoreprior_cli::solver_study::kl_to_marginal(&q, 0.1) > 0.0);
/// ```
pub fn kl_to_marginal(q: &Gaussian, t0: f64) -> f64 {
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

/// The Markdown table of `rows` and the floor row (the text `solver-study` prints).
pub fn markdown(rows: &[Row], floor: (f64, f64)) -> String {
    let mut s = String::from("\n");
    s += "| solver | step size | NFE | accepted | rejected | KL(q‖p) (nats) | ± s.e. | mean abs(Δ log p) | max abs(Δ log p) | wall (s) |\n";
    s += "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} | {:.5} | {:.5} | {:.3e} | {:.3e} | {:.2} |\n",
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
    s += &format!("| exact p_t0 (no solver) | – | – | – | – | {:.5} | {:.5} | 0 | 0 | – |\n", floor.0, floor.1);
    s += "\n";
    s += "KL(q‖p) = mean over samples of log q(x) − log p_ODE(x); Δ log p = log p_ODE − log p_t0 (closed-form \
          marginal at t0, the ODE's exact target). The last row is the KL floor of stopping at t0 > 0.\n";
    s
}

/// Writes `solver_study.csv` (the rows, then the floor as `exact_p_t0`; `samples` per row),
/// `solver_study.svg` (KL against NFE) and `solver_study_error.svg` (the error against the
/// closed form, log–log) into `dir`; returns the three paths.
///
/// # Errors
/// A file cannot be written.
pub fn write(dir: &Path, rows: &[Row], floor: (f64, f64), samples: usize) -> Result<[PathBuf; 3]> {
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
            samples,
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
        samples,
    });
    let plot_err = |e: Box<dyn std::error::Error + Send + Sync>| ExperimentError::Plot(e.to_string());
    let csv_path = dir.join("solver_study.csv");
    write_csv(&csv_path, &table)?;
    let nfe = |r: &Row| r.stats.forward.rhs_evaluations.max(1) as f64;
    // KL against NFE, one labelled point per solver, and the t0 floor as a line.
    let mut fig =
        Figure::new("KL(q‖p_ODE) vs NFE (ground-truth Gaussian)", "NFE", "KL(q‖p) (nats)").log_axes(true, false);
    for r in rows {
        fig = fig.with(Series::points(r.solver.clone(), vec![(nfe(r), r.kl.0)]));
    }
    let nfes: Vec<f64> = rows.iter().map(nfe).collect();
    let (lo, hi) = (nfes.iter().copied().fold(f64::INFINITY, f64::min), nfes.iter().copied().fold(0.0, f64::max));
    fig = fig.with(Series::line("exact p_t0 (floor)", vec![(lo, floor.0), (hi.max(lo * 1.01), floor.0)]));
    let svg_path = dir.join("solver_study.svg");
    fig.write(&svg_path).map_err(plot_err)?;
    // Error against the closed form, log–log (KL estimates can be negative; this cannot).
    let mut err =
        Figure::new("mean abs(log p_ODE − log p_t0) vs NFE", "NFE", "mean abs error (nats)").log_axes(true, true);
    for r in rows {
        err = err.with(Series::points(r.solver.clone(), vec![(nfe(r), r.abs_err.0)]));
    }
    let err_path = dir.join("solver_study_error.svg");
    err.write(&err_path).map_err(plot_err)?;
    Ok([csv_path, svg_path, err_path])
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
