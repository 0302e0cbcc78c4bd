//! The supplement's Figs. 1 and 2 with analytic ground truths: the variance of `log p(x)`
//! over Hutchinson probe seeds for `K` probes (`Var ∝ 1/K`, unbiased in the trace), and the
//! spread of the adjoint gradient `∇x log p(x)` over seeds against the exact data gradient.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use rayon::prelude::*;
use scoreprior_core::divergence::{Divergence, Hutchinson, ProbeNoise};
use scoreprior_core::io::write_csv;
use scoreprior_core::prior::{Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::{Gaussian, GaussianMixture, MarginalDensity, ScoreModel};
use scoreprior_core::stats::mean_std;

use crate::plot::{Figure, Series};
use scoreprior::experiment::{ExperimentError, Result};
use scoreprior::monitor::Monitor;

/// The estimator settings of the study: a prior configuration whose divergence the study
/// replaces by the exact trace or `K` Hutchinson probes of `noise`, seeded from `seed`.
#[derive(Debug, Clone)]
pub struct Probes {
    /// Solver, tolerances and SDE of every solve.
    pub base: ScorePriorConfig,
    /// Distribution of the probes.
    pub noise: ProbeNoise,
    /// Seed of the first solve; solve `s` uses `seed + s`.
    pub seed: u64,
}

impl Probes {
    /// The configuration with `k` probes seeded `seed + s` (`k = 0`: the exact trace).
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn config(&self, k: usize, s: u64) -> Result<ScorePriorConfig> {
        let divergence = if k == 0 {
            Divergence::ExactTrace
        } else {
            Divergence::Hutchinson(Hutchinson::new(k, self.noise, self.seed.wrapping_add(s))?)
        };
        let cfg = ScorePriorConfig { divergence, ..self.base.clone() };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Summary of `log p` over seeds for one `K`.
#[derive(Debug, Clone)]
pub struct LogpRow {
    /// Number of probes.
    pub k: usize,
    /// Mean over seeds.
    pub mean: f64,
    /// Standard deviation over seeds.
    pub std: f64,
    /// Mean NFE per solve.
    pub nfe: f64,
}

/// Summary of the gradients over seeds for one model and `K`.
#[derive(Debug, Clone)]
pub struct GradRow {
    /// Model name.
    pub model: String,
    /// Number of probes (0 = exact trace).
    pub k: usize,
    /// Median over pixels of `σ_i / |μ_i|`.
    pub median_rel_std: f64,
    /// `‖σ‖ / ‖μ‖`.
    pub norm_rel_std: f64,
    /// Mean and max over seeds of the cosine distance to the exact data gradient.
    pub cos_dist: (f64, f64),
    /// Relative error `‖mean g − g*_{t0}‖/‖g*_{t0}‖` of the mean gradient against the exact
    /// gradient of the marginal at `t0` (the ODE's exact target).
    pub rel_err_t0: f64,
    /// Per-seed cosine distances.
    pub cos_all: Vec<f64>,
}

/// What the log-density study found: its rows, the exact-trace value and the closed form.
#[derive(Debug, Clone)]
pub struct LogpStudy {
    /// One row per `K`.
    pub rows: Vec<LogpRow>,
    /// `log p` with the exact trace.
    pub exact: f64,
    /// The closed-form `log p_{t0}`.
    pub closed: f64,
    /// Probe seeds per `K`.
    pub seeds: usize,
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn cos_dist(a: &[f64], b: &[f64]) -> f64 {
    1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / (norm(a) * norm(b)).max(f64::MIN_POSITIVE)
}

/// The log-density study (Fig. 1) of the image `x` under `q`: `seeds` solves per `K` in `ks`,
/// one progress stage (`trace-study log p`) with a step per `K`.
///
/// # Errors
/// The solves' errors.
///
/// ```
/// use scoreprior::core::divergence::ProbeNoise;
/// use scoreprior::core::prior::ScorePriorConfig;
/// use scoreprior::core::score::Gaussian;
/// use scoreprior::core::sde::{AnySde, VpSde};
/// use scoreprior_cli::trace_study::{logp_study, Probes};
/// let sde = AnySde::Vp(VpSde::default());
/// let q = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], sde).unwrap();
/// let base = ScorePriorConfig { sde, ..ScorePriorConfig::default() };
/// let probes = Probes { base, noise: ProbeNoise::Rademacher, seed: 0 };
/// let s = logp_study(&q, &[0.3, -0.2], &probes, &[1, 4], 3, &mut scoreprior::monitor::Silent).unwrap();
/// // Hutchinson is unbiased: the means straddle the exact-trace value.
/// assert_eq!(s.rows.len(), 2);
/// assert!((s.rows[1].mean - s.exact).abs() < 4.0 * s.rows[1].std.max(1e-9));
/// ```
pub fn logp_study(
    q: &Gaussian,
    x: &[f64],
    probes: &Probes,
    ks: &[usize],
    seeds: usize,
    monitor: &mut dyn Monitor,
) -> Result<LogpStudy> {
    let exact = ScorePrior::new(q.clone(), probes.config(0, 0)?)?.log_prob(x)?;
    let mut closed = [0.0];
    q.marginal_log_prob(x, probes.base.t0, &mut closed)?;
    let model: Arc<dyn ScoreModel> = Arc::new(q.clone());
    let mut rows = Vec::new();
    monitor.stage("trace-study log p", ks.len() as u64);
    for (done, &k) in ks.iter().enumerate() {
        // Seeds are independent solves: one rayon task each (the model parallelises inside too).
        let results: Vec<Result<(f64, usize)>> = (0..seeds as u64)
            .into_par_iter()
            .map(|s| {
                let r = ScorePrior::from_arc(model.clone(), probes.config(k, s)?)?.log_prob(x)?;
                Ok((r.log_prob[0], r.stats.nfe()))
            })
            .collect();
        let mut lps = Vec::with_capacity(seeds);
        let mut nfe = 0usize;
        for r in results {
            let (lp, n) = r?;
            lps.push(lp);
            nfe += n;
        }
        let (mean, std) = mean_std(&lps);
        rows.push(LogpRow { k, mean, std, nfe: nfe as f64 / seeds as f64 });
        monitor.update(done as u64 + 1, &|| format!("K = {k}: log p {mean:.3} ± {std:.3}"));
    }
    monitor.finish();
    Ok(LogpStudy { rows, exact: exact.log_prob[0], closed: closed[0], seeds })
}

/// The gradient study (Fig. 2) on one model at `x`: `K = 0` (the exact trace, one solve) and
/// each `K` in `ks` over `seeds` seeds, against the exact data gradient `g0` and the exact
/// gradient `gt0` of the marginal at `t0`; one progress stage with a step per `K`.
///
/// # Errors
/// The solves' errors.
#[allow(clippy::too_many_arguments)]
pub fn grad_study(
    name: &str,
    model: Arc<dyn ScoreModel>,
    x: &[f64],
    (g0, gt0): (&[f64], &[f64]),
    probes: &Probes,
    ks: &[usize],
    seeds: usize,
    monitor: &mut dyn Monitor,
) -> Result<Vec<GradRow>> {
    let mut rows = Vec::new();
    // K = 0 stands for the exact trace: one solve, no seeds.
    let mut all = vec![0];
    all.extend(ks);
    monitor.stage(&format!("trace-study gradients ({name})"), all.len() as u64);
    for (done, &k) in all.iter().enumerate() {
        let n_seeds = if k == 0 { 1 } else { seeds };
        let results: Vec<Result<Vec<f64>>> = (0..n_seeds as u64)
            .into_par_iter()
            .map(|s| Ok(ScorePrior::from_arc(model.clone(), probes.config(k, s)?)?.grad_log_prob(x)?.grad))
            .collect();
        let grads: Vec<Vec<f64>> = results.into_iter().collect::<Result<_>>()?;
        let d = x.len();
        let mut mu = vec![0.0; d];
        let mut sd = vec![0.0; d];
        for i in 0..d {
            let col: Vec<f64> = grads.iter().map(|g| g[i]).collect();
            let (m, s) = if col.len() > 1 { mean_std(&col) } else { (col[0], 0.0) };
            mu[i] = m;
            sd[i] = s;
        }
        let mut rel: Vec<f64> = mu.iter().zip(&sd).map(|(m, s)| s / m.abs().max(f64::MIN_POSITIVE)).collect();
        rel.sort_by(|a, b| a.total_cmp(b));
        let median = if d % 2 == 1 { rel[d / 2] } else { 0.5 * (rel[d / 2 - 1] + rel[d / 2]) };
        let cos_all: Vec<f64> = grads.iter().map(|g| cos_dist(g, g0)).collect();
        let cd = (cos_all.iter().sum::<f64>() / cos_all.len() as f64, cos_all.iter().copied().fold(0.0, f64::max));
        let diff: Vec<f64> = mu.iter().zip(gt0).map(|(a, b)| a - b).collect();
        rows.push(GradRow {
            model: name.to_string(),
            k,
            median_rel_std: median,
            norm_rel_std: norm(&sd) / norm(&mu),
            cos_dist: cd,
            rel_err_t0: norm(&diff) / norm(gt0),
            cos_all,
        });
        monitor.update(done as u64 + 1, &|| format!("K = {k}: median relative std {median:.3}"));
    }
    monitor.finish();
    Ok(rows)
}

impl LogpStudy {
    /// The Markdown table of the log-density study (the text `trace-study` prints).
    pub fn markdown(&self) -> String {
        let (exact, closed) = (self.exact, self.closed);
        let mut s = String::from("| K | mean log p | std log p | std·√K | mean − exact | NFE/solve |\n");
        s += "| ---: | ---: | ---: | ---: | ---: | ---: |\n";
        for r in &self.rows {
            let sqrt_k = (r.k as f64).sqrt();
            s += &format!(
                "| {} | {:.4} | {:.4} | {:.3} | {:+.4} | {:.0} |\n",
                r.k,
                r.mean,
                r.std,
                r.std * sqrt_k,
                r.mean - exact,
                r.nfe
            );
        }
        s += &format!("| exact trace | {exact:.4} | – | – | 0 | – |\n");
        s += &format!("| closed form log p_t0 | {closed:.4} | – | – | {:+.4} | – |\n", closed - exact);
        s
    }

    /// Writes `trace_study_logp.csv` and `trace_study_logp.svg` into `dir`; returns their paths.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<[PathBuf; 2]> {
        #[derive(serde::Serialize)]
        struct LogpCsv {
            k: usize,
            mean_log_p: f64,
            std_log_p: f64,
            exact_trace_log_p: f64,
            closed_form_log_p_t0: f64,
            mean_nfe: f64,
            seeds: usize,
        }
        let (rows, exact) = (&self.rows, self.exact);
        let table: Vec<LogpCsv> = rows
            .iter()
            .map(|r| LogpCsv {
                k: r.k,
                mean_log_p: r.mean,
                std_log_p: r.std,
                exact_trace_log_p: exact,
                closed_form_log_p_t0: self.closed,
                mean_nfe: r.nfe,
                seeds: self.seeds,
            })
            .collect();
        let p1 = dir.join("trace_study_logp.csv");
        write_csv(&p1, &table)?;
        let band: Vec<(f64, f64, f64)> = rows.iter().map(|r| (r.k as f64, r.mean - r.std, r.mean + r.std)).collect();
        let kmin = rows.iter().map(|r| r.k).min().unwrap_or(1) as f64;
        let kmax = rows.iter().map(|r| r.k).max().unwrap_or(1) as f64;
        let fig = Figure::new("log p vs number of trace estimators (mean ± 1 std over seeds)", "probes K", "log p(x)")
            .log_axes(true, false)
            .with(
                Series::line_points("Hutchinson mean ± std", rows.iter().map(|r| (r.k as f64, r.mean)).collect())
                    .with_band(band),
            )
            .with(Series::line("exact trace", vec![(kmin, exact), (kmax.max(kmin * 1.01), exact)]));
        let s1 = dir.join("trace_study_logp.svg");
        fig.write(&s1).map_err(|e| ExperimentError::Plot(e.to_string()))?;
        Ok([p1, s1])
    }
}

/// The Markdown table of the gradient study (the text `trace-study` prints).
pub fn grad_markdown(rows: &[GradRow]) -> String {
    let mut s = String::from(
        "| model | K | median σ/abs(μ) | ‖σ‖/‖μ‖ | mean cos. dist. to exact | max cos. dist. | ‖mean − ∇log p_t0‖/‖∇log p_t0‖ |\n",
    );
    s += "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    for r in rows {
        s += &format!(
            "| {} | {} | {:.3e} | {:.3e} | {:.3e} | {:.3e} | {:.3e} |\n",
            r.model, r.k, r.median_rel_std, r.norm_rel_std, r.cos_dist.0, r.cos_dist.1, r.rel_err_t0
        );
    }
    s
}

/// Writes `trace_study_grad.csv` and, when some row has `K ≥ 1`, `trace_study_grad.svg` (the
/// empirical CDF of the per-seed cosine distances) into `dir`; returns the paths written.
///
/// # Errors
/// A file cannot be written.
pub fn write_grad(dir: &Path, grad: &[GradRow]) -> Result<Vec<PathBuf>> {
    #[derive(serde::Serialize)]
    struct GradCsv<'a> {
        model: &'a str,
        k: usize,
        median_rel_std: f64,
        norm_rel_std: f64,
        mean_cos_dist: f64,
        max_cos_dist: f64,
        rel_err_vs_t0_grad: f64,
        seeds: usize,
    }
    let table: Vec<GradCsv> = grad
        .iter()
        .map(|r| GradCsv {
            model: &r.model,
            k: r.k,
            median_rel_std: r.median_rel_std,
            norm_rel_std: r.norm_rel_std,
            mean_cos_dist: r.cos_dist.0,
            max_cos_dist: r.cos_dist.1,
            rel_err_vs_t0_grad: r.rel_err_t0,
            seeds: r.cos_all.len(),
        })
        .collect();
    let p2 = dir.join("trace_study_grad.csv");
    write_csv(&p2, &table)?;
    // Empirical CDF of the per-seed cosine distances, one curve per (model, K ≥ 1).
    let mut fig = Figure::new(
        "cosine distance of adjoint gradients to the exact gradient",
        "cosine distance",
        "fraction of seeds ≤",
    )
    .log_axes(true, false);
    let mut any = false;
    for r in grad.iter().filter(|r| r.k > 0) {
        let mut c: Vec<f64> = r.cos_all.iter().map(|v| v.max(1e-16)).collect();
        c.sort_by(|a, b| a.total_cmp(b));
        let n = c.len() as f64;
        let pts: Vec<(f64, f64)> = c.iter().enumerate().map(|(i, v)| (*v, (i + 1) as f64 / n)).collect();
        fig = fig.with(Series::line_points(format!("{} K={}", r.model, r.k), pts));
        any = true;
    }
    let mut written = vec![p2];
    if any {
        let s2 = dir.join("trace_study_grad.svg");
        fig.write(&s2).map_err(|e| ExperimentError::Plot(e.to_string()))?;
        written.push(s2);
    }
    Ok(written)
}

/// The whole study: which parts run, with how many probes and seeds.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The estimator.
    pub probes: Probes,
    /// Probe counts of the log-density study.
    pub ks: Vec<usize>,
    /// Seeds per `K` of the log-density study.
    pub seeds: usize,
    /// Probe counts of the gradient study (empty: no gradient study).
    pub grad_ks: Vec<usize>,
    /// Seeds per `K` of the gradient study.
    pub grad_seeds: usize,
    /// Run the gradient study on the Gaussian.
    pub grad_gaussian: bool,
    /// Seed of the mixture draw the mixture's gradients are evaluated at (plus one).
    pub sample_seed: u64,
}

/// What [`run`] found.
#[derive(Debug, Clone)]
pub struct Study {
    /// The log-density study.
    pub logp: LogpStudy,
    /// The gradient study's rows (Gaussian first, then the mixture).
    pub grad: Vec<GradRow>,
}

/// Runs the study on the image `x` under the Gaussian `q` and, if given, the gradient study on
/// the mixture (with its description) at one of its draws; prints both tables through
/// `monitor.line` as `scoreprior trace-study` shows them.
///
/// # Errors
/// The solves' errors.
pub fn run(
    q: &Gaussian,
    x: &[f64],
    mixture: Option<(GaussianMixture, String)>,
    s: &Settings,
    monitor: &mut dyn Monitor,
) -> Result<Study> {
    let start = Instant::now();
    let logp = logp_study(q, x, &s.probes, &s.ks, s.seeds, monitor)?;
    monitor.line(&format!(
        "\nlog p of one image vs number of Hutchinson probes ({:.1} s)\n",
        start.elapsed().as_secs_f64()
    ));
    monitor.line(logp.markdown().trim_end());
    let mut grad = Vec::new();
    let (ks, seeds, t0, d) = (&s.grad_ks, s.grad_seeds, s.probes.base.t0, x.len());
    if (s.grad_gaussian || mixture.is_some()) && !ks.is_empty() {
        let start = Instant::now();
        if s.grad_gaussian {
            let (mut g0, mut gt0) = (vec![0.0; d], vec![0.0; d]);
            q.grad_log_prob(x, &mut g0)?;
            q.marginal_grad_log_prob(x, t0, &mut gt0)?;
            grad.extend(grad_study("gaussian", Arc::new(q.clone()), x, (&g0, &gt0), &s.probes, ks, seeds, monitor)?);
        }
        if let Some((m, desc)) = mixture {
            // Evaluate at a draw of the mixture, as the paper evaluates at a draw of p0.
            let mut rng = ChaCha8Rng::seed_from_u64(s.sample_seed.wrapping_add(1));
            let xm = m.sample(&mut rng, 1);
            let (mut g0, mut gt0) = (vec![0.0; d], vec![0.0; d]);
            m.grad_log_prob(&xm, &mut g0)?;
            m.marginal_grad_log_prob(&xm, t0, &mut gt0)?;
            monitor.line(&format!("\nmixture: {desc}; evaluated at one of its draws"));
            grad.extend(grad_study("gmm", Arc::new(m), &xm, (&g0, &gt0), &s.probes, ks, seeds, monitor)?);
        }
        monitor.line(&format!(
            "\nadjoint gradient vs number of probes ({:.1} s; K = 0 is the exact trace)\n",
            start.elapsed().as_secs_f64()
        ));
        monitor.line(grad_markdown(&grad).trim_end());
        monitor.line(
            "\nexact gradient: ∇ log q(x) of the data density (−Σ⁻¹(x − μ) for the Gaussian); the last column \
             compares the mean with the ODE's exact target ∇ log p_t0.",
        );
    }
    Ok(Study { logp, grad })
}

impl Study {
    /// Writes the log-density files and, with gradient rows, the gradient files into `dir`
    /// ([`LogpStudy::write`], [`write_grad`]), naming them through `monitor.line`.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write(&self, dir: &Path, monitor: &mut dyn Monitor) -> Result<()> {
        let [csv, svg] = self.logp.write(dir)?;
        monitor.line(&format!("\nwrote {} and {}", csv.display(), svg.display()));
        if !self.grad.is_empty() {
            let written = write_grad(dir, &self.grad)?;
            let svg = written.get(1).map(|p| format!(" and {}", p.display())).unwrap_or_default();
            monitor.line(&format!("wrote {}{svg}", written[0].display()));
        }
        Ok(())
    }
}

/// The mixture of the gradient study: `k` isotropic components of standard deviation `std`
/// with equal weights, on `q`'s SDE, at `means` (row-major `(k, D)`, with their description),
/// or without them at `k` draws of `q` (seed 12345). Returns it with its description.
///
/// # Errors
/// Means of the wrong length, a non-positive `std`.
///
/// ```
/// use scoreprior::core::score::Gaussian;
/// use scoreprior::core::sde::{AnySde, VpSde};
/// let q = Gaussian::diagonal(vec![0.0; 2], &[1.0; 2], AnySde::Vp(VpSde::default())).unwrap();
/// let (_, what) = scoreprior_cli::trace_study::mixture(&q, None, 3, 0.2).unwrap();
/// assert_eq!(what, "3 equal components at 3 draws of q, std 0.2");
/// ```
pub fn mixture(
    q: &Gaussian,
    means: Option<(Vec<f64>, String)>,
    k: usize,
    std: f64,
) -> Result<(GaussianMixture, String)> {
    let (means, what) = means.unwrap_or_else(|| {
        let mut rng = ChaCha8Rng::seed_from_u64(12345);
        (q.sample(&mut rng, k), format!("{k} draws of q"))
    });
    let m = GaussianMixture::new(&vec![1.0; k], &means, &vec![std; k], *q.sde())?;
    Ok((m, format!("{k} equal components at {what}, std {std}")))
}
