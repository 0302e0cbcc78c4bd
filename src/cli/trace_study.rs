//! `scoreprior trace-study`: the supplement's Figs. 1 and 2 with analytic ground truths.
//!
//! Fig. 1: for `K = 1, 2, 4, …` Hutchinson probes, `log p(x)` of one image over many probe
//! seeds; mean and standard deviation against the exact-trace value (the estimator is unbiased
//! in the trace, and `Var ∝ 1/K`). Fig. 2: the adjoint gradient `∇x log p(x)` over seeds for
//! `K = 10, 50`: relative standard deviation `σ_i/|μ_i|` (median over pixels) and cosine
//! distance `1 − cos(g, g*)` to the exact gradient of the data density (`−Σ⁻¹(x − μ)` for the
//! Gaussian). For a Gaussian the divergence does not depend on `x`, so Hutchinson adds no
//! gradient variance at all; a Gaussian mixture (whose Jacobian does depend on `x`) shows it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use scoreprior_core::io::write_csv;
use scoreprior_core::prior::{Prior, ScorePrior};
use scoreprior_core::score::{Gaussian, GaussianMixture, MarginalDensity, ScoreModel};
use scoreprior_core::stats::mean_std;

use super::logprob::{image_rows, load_gaussian, load_images, OdeArgs};
use super::plot::{Figure, Series};
use super::progress::Progress;
use super::CliResult;

/// Which ground-truth models the gradient study runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GradModels {
    /// The Gaussian only.
    Gaussian,
    /// The Gaussian mixture only.
    Gmm,
    /// Both.
    Both,
    /// Skip the gradient study.
    None,
}

/// Arguments of `scoreprior trace-study`.
#[derive(Debug, Clone, Args)]
pub struct TraceStudyArgs {
    /// Mean of the ground-truth Gaussian, (D,) .npy.
    #[arg(long, default_value = "assets/gaussian16/mean.npy")]
    pub mean: PathBuf,
    /// Covariance of the ground-truth Gaussian, (D, D) .npy.
    #[arg(long, default_value = "assets/gaussian16/cov.npy")]
    pub cov: PathBuf,
    /// Images (N, D), (N, H, W) or (N, C, H, W) .npy; the one at --index is evaluated.
    /// Default: a sample of the Gaussian (seed --sample-seed), as the paper.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Index of the evaluated image in --images.
    #[arg(long, default_value_t = 0)]
    pub index: usize,
    /// Seed of the evaluated sample when --images is not given.
    #[arg(long, default_value_t = 0)]
    pub sample_seed: u64,
    /// Probe counts of the log-density study.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64,128")]
    pub ks: Vec<usize>,
    /// Number of probe seeds per K (the paper: 50).
    #[arg(long, default_value_t = 50)]
    pub seeds: usize,
    /// Probe counts of the gradient study.
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    pub grad_ks: Vec<usize>,
    /// Number of probe seeds per K in the gradient study.
    #[arg(long, default_value_t = 50)]
    pub grad_seeds: usize,
    /// Models of the gradient study.
    #[arg(long, value_enum, default_value_t = GradModels::Both)]
    pub grad_models: GradModels,
    /// Components of the mixture (at least 1): the first N images of --gmm-images.
    #[arg(long, default_value_t = 16)]
    pub gmm_components: usize,
    /// Isotropic standard deviation of each mixture component.
    #[arg(long, default_value_t = 0.2)]
    pub gmm_std: f64,
    /// Images whose first --gmm-components rows are the mixture means (float .npy in [0, 1],
    /// or u8 scaled by 1/255); a file given here must exist, match D and hold enough images.
    /// Default: the shipped Fashion-MNIST test images when they match D, else draws of the
    /// Gaussian.
    #[arg(long)]
    pub gmm_images: Option<PathBuf>,
    #[command(flatten)]
    pub ode: OdeArgs,
    /// Output folder for CSVs and plots.
    #[arg(long, default_value = "out/trace-study")]
    pub out: PathBuf,
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

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn cos_dist(a: &[f64], b: &[f64]) -> f64 {
    1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / (norm(a) * norm(b)).max(f64::MIN_POSITIVE)
}

/// Checks the sizes of the study.
fn validate(args: &TraceStudyArgs) -> CliResult {
    if args.ks.is_empty() || args.ks.contains(&0) {
        return Err("--ks: give positive probe counts".into());
    }
    if args.grad_ks.contains(&0) {
        return Err("--grad-ks: give positive probe counts".into());
    }
    if args.seeds < 2 || args.grad_seeds < 2 {
        return Err("--seeds and --grad-seeds must be at least 2 (a standard deviation needs two)".into());
    }
    if !(args.gmm_std > 0.0 && args.gmm_std.is_finite()) {
        return Err("--gmm-std must be positive".into());
    }
    if args.gmm_components == 0 {
        return Err("--gmm-components 0: the mixture needs at least 1 component".into());
    }
    // Solver, tolerances and step size fail here rather than inside the first solve.
    args.ode.config()?;
    Ok(())
}

/// The evaluated image: row `index` of `--images`, or a sample of `q`.
fn evaluated_image(args: &TraceStudyArgs, q: &Gaussian) -> CliResult<(Vec<f64>, String)> {
    let d = q.mean().len();
    match &args.images {
        Some(p) => {
            let a = load_images("images", p)?;
            let (n, di) = image_rows("images", &a)?;
            if di != d {
                return Err(format!("--images: D = {di} does not match the Gaussian's D = {d}").into());
            }
            if args.index >= n {
                return Err(format!("--index {} is out of range for {n} images", args.index).into());
            }
            Ok((a.data[args.index * d..(args.index + 1) * d].to_vec(), format!("{}[{}]", p.display(), args.index)))
        }
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(args.sample_seed);
            Ok((q.sample(&mut rng, 1), format!("a sample of q (seed {})", args.sample_seed)))
        }
    }
}

/// The log-density study (Fig. 1). Returns rows, the exact-trace value and the closed form.
pub fn logp_study(args: &TraceStudyArgs, q: &Gaussian, x: &[f64]) -> CliResult<(Vec<LogpRow>, f64, f64)> {
    let mut exact_args = args.ode.clone();
    exact_args.trace = Some("exact".into());
    let exact_prior = ScorePrior::new(q.clone(), exact_args.config()?)?;
    let exact = exact_prior.log_prob(x)?;
    let mut closed = [0.0];
    q.marginal_log_prob(x, args.ode.t0, &mut closed)?;
    let model: Arc<dyn ScoreModel> = Arc::new(q.clone());
    let mut rows = Vec::new();
    let mut progress = Progress::new("trace-study log p", args.ks.len() as u64, false);
    for (done, &k) in args.ks.iter().enumerate() {
        let mut ode = args.ode.clone();
        ode.trace = Some("hutchinson".into());
        ode.hutchinson = k;
        // Seeds are independent solves: one rayon task each (the model parallelises inside too).
        let results: Vec<CliResult<(f64, usize)>> = (0..args.seeds as u64)
            .into_par_iter()
            .map(|s| {
                let mut o = ode.clone();
                o.seed = args.ode.seed.wrapping_add(s);
                let p = ScorePrior::from_arc(model.clone(), o.config()?)?;
                let r = p.log_prob(x)?;
                Ok((r.log_prob[0], r.stats.nfe()))
            })
            .collect();
        let mut lps = Vec::with_capacity(args.seeds);
        let mut nfe = 0usize;
        for r in results {
            let (lp, n) = r?;
            lps.push(lp);
            nfe += n;
        }
        let (mean, std) = mean_std(&lps);
        rows.push(LogpRow { k, mean, std, nfe: nfe as f64 / args.seeds as f64 });
        progress.update(done as u64 + 1, || format!("K = {k}: log p {mean:.3} ± {std:.3}"));
    }
    progress.finish();
    Ok((rows, exact.log_prob[0], closed[0]))
}

/// The gradient study (Fig. 2) on one model: exact data gradient `g0`, exact `t0` gradient `gt0`.
fn grad_study(
    args: &TraceStudyArgs,
    name: &str,
    model: Arc<dyn ScoreModel>,
    x: &[f64],
    g0: &[f64],
    gt0: &[f64],
) -> CliResult<Vec<GradRow>> {
    let mut rows = Vec::new();
    // K = 0 stands for the exact trace: one solve, no seeds.
    let mut ks = vec![0];
    ks.extend(&args.grad_ks);
    let mut progress = Progress::new(&format!("trace-study gradients ({name})"), ks.len() as u64, false);
    for (done, &k) in ks.iter().enumerate() {
        let seeds = if k == 0 { 1 } else { args.grad_seeds };
        let results: Vec<CliResult<Vec<f64>>> = (0..seeds as u64)
            .into_par_iter()
            .map(|s| {
                let mut o = args.ode.clone();
                if k == 0 {
                    o.trace = Some("exact".into());
                } else {
                    o.trace = Some("hutchinson".into());
                    o.hutchinson = k;
                    o.seed = args.ode.seed.wrapping_add(s);
                }
                let p = ScorePrior::from_arc(model.clone(), o.config()?)?;
                Ok(p.grad_log_prob(x)?.grad)
            })
            .collect();
        let grads: Vec<Vec<f64>> = results.into_iter().collect::<CliResult<_>>()?;
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
        progress.update(done as u64 + 1, || format!("K = {k}: median relative std {median:.3}"));
    }
    progress.finish();
    Ok(rows)
}

/// The default means file of the mixture, used only when it matches `D`.
const DEFAULT_GMM_IMAGES: &str = "assets/fashion16_test.npy";

/// The mixture of the gradient study: isotropic components at the first images of
/// `--gmm-images`, equal weights. A file given with `--gmm-images` must be usable; without
/// it, the shipped test images are used when they match `D`, else draws of `q`.
fn build_mixture(args: &TraceStudyArgs, q: &Gaussian) -> CliResult<(GaussianMixture, String)> {
    let d = q.mean().len();
    let k = args.gmm_components;
    let (means, what) = match &args.gmm_images {
        Some(p) => {
            let a = load_images("gmm-images", p)?;
            let (n, di) = image_rows("gmm-images", &a)?;
            if di != d {
                return Err(
                    format!("--gmm-images {}: D = {di} does not match the Gaussian's D = {d}", p.display()).into()
                );
            }
            if n < k {
                return Err(format!("--gmm-images {}: {n} images, fewer than --gmm-components {k}", p.display()).into());
            }
            (a.data[..k * d].to_vec(), format!("the first {k} images of {}", p.display()))
        }
        None => {
            let path = std::path::Path::new(DEFAULT_GMM_IMAGES);
            let shipped = load_images("gmm-images", path).ok().filter(|a| a.rows().1 == d && a.rows().0 >= k);
            match shipped {
                Some(a) => (a.data[..k * d].to_vec(), format!("the first {k} images of {DEFAULT_GMM_IMAGES}")),
                None => {
                    let mut rng = ChaCha8Rng::seed_from_u64(12345);
                    (q.sample(&mut rng, k), format!("{k} draws of q"))
                }
            }
        }
    };
    let m = GaussianMixture::new(&vec![1.0; k], &means, &vec![args.gmm_std; k], *q.sde())?;
    Ok((m, format!("{k} equal components at {what}, std {}", args.gmm_std)))
}

/// Runs the whole study and writes its outputs.
pub fn study(args: &TraceStudyArgs) -> CliResult<(Vec<LogpRow>, Vec<GradRow>)> {
    validate(args)?;
    let sde = args.ode.sde.sde()?;
    let q = load_gaussian(&args.mean, &args.cov, sde)?;
    let (x, what) = evaluated_image(args, &q)?;
    let d = x.len();
    // Built (and its --gmm-images checked) before the log-density study, which takes minutes.
    let mixture = if matches!(args.grad_models, GradModels::Gmm | GradModels::Both) && !args.grad_ks.is_empty() {
        Some(build_mixture(args, &q)?)
    } else {
        None
    };
    let _lock = super::own_folder("--out", &args.out)?;
    println!(
        "trace study: D = {d}, image {what}; SDE {}, solver {}, rtol {}, atol {}, t0 {}, probes {:?}; \
         K = {:?} × {} seeds; gradients K = {:?} × {} seeds",
        args.ode.sde.as_str(),
        args.ode.solver,
        args.ode.rtol,
        args.ode.atol,
        args.ode.t0,
        args.ode.probe,
        args.ks,
        args.seeds,
        args.grad_ks,
        args.grad_seeds
    );
    let start = Instant::now();
    let (rows, exact, closed) = logp_study(args, &q, &x)?;
    println!("\nlog p of one image vs number of Hutchinson probes ({:.1} s)\n", start.elapsed().as_secs_f64());
    println!("| K | mean log p | std log p | std·√K | mean − exact | NFE/solve |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {:.4} | {:.4} | {:.3} | {:+.4} | {:.0} |",
            r.k,
            r.mean,
            r.std,
            r.std * (r.k as f64).sqrt(),
            r.mean - exact,
            r.nfe
        );
    }
    println!("| exact trace | {exact:.4} | – | – | 0 | – |");
    println!("| closed form log p_t0 | {closed:.4} | – | – | {:+.4} | – |", closed - exact);

    let mut grad_rows = Vec::new();
    if args.grad_models != GradModels::None && !args.grad_ks.is_empty() {
        let start = Instant::now();
        let xs = [x.clone()];
        if matches!(args.grad_models, GradModels::Gaussian | GradModels::Both) {
            let mut g0 = vec![0.0; d];
            q.grad_log_prob(&xs[0], &mut g0)?;
            let mut gt0 = vec![0.0; d];
            q.marginal_grad_log_prob(&xs[0], args.ode.t0, &mut gt0)?;
            grad_rows.extend(grad_study(args, "gaussian", Arc::new(q.clone()), &x, &g0, &gt0)?);
        }
        if let Some((m, desc)) = mixture {
            // Evaluate at a draw of the mixture, as the paper evaluates at a draw of p0.
            let mut rng = ChaCha8Rng::seed_from_u64(args.sample_seed.wrapping_add(1));
            let xm = m.sample(&mut rng, 1);
            let mut g0 = vec![0.0; d];
            m.grad_log_prob(&xm, &mut g0)?;
            let mut gt0 = vec![0.0; d];
            m.marginal_grad_log_prob(&xm, args.ode.t0, &mut gt0)?;
            println!("\nmixture: {desc}; evaluated at one of its draws");
            grad_rows.extend(grad_study(args, "gmm", Arc::new(m), &xm, &g0, &gt0)?);
        }
        println!(
            "\nadjoint gradient vs number of probes ({:.1} s; K = 0 is the exact trace)\n",
            start.elapsed().as_secs_f64()
        );
        println!("| model | K | median σ/abs(μ) | ‖σ‖/‖μ‖ | mean cos. dist. to exact | max cos. dist. | ‖mean − ∇log p_t0‖/‖∇log p_t0‖ |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for r in &grad_rows {
            println!(
                "| {} | {} | {:.3e} | {:.3e} | {:.3e} | {:.3e} | {:.3e} |",
                r.model, r.k, r.median_rel_std, r.norm_rel_std, r.cos_dist.0, r.cos_dist.1, r.rel_err_t0
            );
        }
        println!(
            "\nexact gradient: ∇ log q(x) of the data density (−Σ⁻¹(x − μ) for the Gaussian); the last column \
                  compares the mean with the ODE's exact target ∇ log p_t0."
        );
    }
    write_outputs(args, &rows, exact, closed, &grad_rows)?;
    Ok((rows, grad_rows))
}

fn write_outputs(args: &TraceStudyArgs, rows: &[LogpRow], exact: f64, closed: f64, grad: &[GradRow]) -> CliResult {
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
    let table: Vec<LogpCsv> = rows
        .iter()
        .map(|r| LogpCsv {
            k: r.k,
            mean_log_p: r.mean,
            std_log_p: r.std,
            exact_trace_log_p: exact,
            closed_form_log_p_t0: closed,
            mean_nfe: r.nfe,
            seeds: args.seeds,
        })
        .collect();
    let p1 = args.out.join("trace_study_logp.csv");
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
    let s1 = args.out.join("trace_study_logp.svg");
    fig.write(&s1)?;
    println!("\nwrote {} and {}", p1.display(), s1.display());
    if !grad.is_empty() {
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
        let p2 = args.out.join("trace_study_grad.csv");
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
        let s2 = args.out.join("trace_study_grad.svg");
        if any {
            fig.write(&s2)?;
        }
        println!("wrote {}{}", p2.display(), if any { format!(" and {}", s2.display()) } else { String::new() });
    }
    Ok(())
}

/// Runs `scoreprior trace-study`.
pub fn run(args: TraceStudyArgs) -> CliResult {
    study(&args).map(|_| ())
}
