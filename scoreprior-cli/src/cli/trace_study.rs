//! `scoreprior trace-study`: the supplement's Figs. 1 and 2 with analytic ground truths, as
//! argument mapping onto [`scoreprior_cli::trace_study`]: `log p(x)` over Hutchinson probe seeds
//! for `K = 1, 2, 4, …` probes, and the adjoint gradient's spread for a Gaussian and a mixture.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_cli::trace_study::{self, Probes, Settings};
use scoreprior_core::score::{Gaussian, GaussianMixture};

use super::inputs::{image_rows, load_gaussian, load_images};
use super::monitor::Bars;
use super::ode_args::OdeArgs;
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

/// The study's sizes against the memory limit once `D` is known, before the first solve: the
/// probes of the largest K, the seeds' results, one gradient per seed, the mixture's means.
fn check_sizes(args: &TraceStudyArgs, d: usize) -> CliResult {
    use scoreprior_core::limits::check_elems;
    for (flag, ks) in [("--ks", &args.ks), ("--grad-ks", &args.grad_ks)] {
        if let Some(&k) = ks.iter().max() {
            let what = format!("{flag} {k}: the Hutchinson probes of an image of D = {d} values");
            check_elems(&what, &[k, 3, d], 8)?;
        }
    }
    check_elems(&format!("--seeds {}: the results of each seed", args.seeds), &[args.seeds, 12], 8)?;
    let what = format!("--grad-seeds {}: one gradient of D = {d} values per seed", args.grad_seeds);
    check_elems(&what, &[args.grad_seeds, d.saturating_add(12), 2], 8)?;
    let what = format!("--gmm-components {}: the mixture's means of D = {d} values", args.gmm_components);
    check_elems(&what, &[args.gmm_components, d, 4], 8)?;
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

/// The default means file of the mixture, used only when it matches `D`.
const DEFAULT_GMM_IMAGES: &str = "assets/fashion16_test.npy";

/// The mixture of the gradient study ([`trace_study::mixture`]) at the first images of
/// `--gmm-images`. A file given with `--gmm-images` must be usable; without it, the shipped
/// test images are used when they match `D`, else draws of `q`.
fn build_mixture(args: &TraceStudyArgs, q: &Gaussian) -> CliResult<(GaussianMixture, String)> {
    let d = q.mean().len();
    let k = args.gmm_components;
    let means = match &args.gmm_images {
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
            Some((a.data[..k * d].to_vec(), format!("the first {k} images of {}", p.display())))
        }
        None => {
            let path = std::path::Path::new(DEFAULT_GMM_IMAGES);
            let shipped = load_images("gmm-images", path).ok().filter(|a| a.rows().1 == d && a.rows().0 >= k);
            shipped.map(|a| (a.data[..k * d].to_vec(), format!("the first {k} images of {DEFAULT_GMM_IMAGES}")))
        }
    };
    Ok(trace_study::mixture(q, means, k, args.gmm_std)?)
}

/// Runs `scoreprior trace-study`: the whole study, then its outputs.
pub fn run(args: TraceStudyArgs) -> CliResult {
    let args = &args;
    validate(args)?;
    let q = load_gaussian(&args.mean, &args.cov, args.ode.sde.sde()?)?;
    check_sizes(args, q.mean().len())?;
    let (x, what) = evaluated_image(args, &q)?;
    // Built (and its --gmm-images checked) before the log-density study, which takes minutes.
    let mixture = if matches!(args.grad_models, GradModels::Gmm | GradModels::Both) && !args.grad_ks.is_empty() {
        Some(build_mixture(args, &q)?)
    } else {
        None
    };
    let mut inputs: Vec<(&str, &std::path::Path)> = vec![("--mean", &args.mean), ("--cov", &args.cov)];
    if let Some(g) = &args.gmm_images {
        inputs.push(("--gmm-images", g));
    }
    let claim = super::claim(super::guard("trace-study", &inputs, &[]), "--out", &args.out, true)?;
    println!(
        "trace study: D = {}, image {what}; SDE {}, solver {}, rtol {}, atol {}, t0 {}, probes {:?}; \
         K = {:?} × {} seeds; gradients K = {:?} × {} seeds",
        x.len(),
        args.ode.sde.as_str(),
        args.ode.solve.solver,
        args.ode.solve.rtol,
        args.ode.solve.atol,
        args.ode.t0,
        args.ode.probe,
        args.ks,
        args.seeds,
        args.grad_ks,
        args.grad_seeds
    );
    let settings = Settings {
        probes: Probes { base: args.ode.config()?, noise: args.ode.probe.into(), seed: args.ode.seed },
        ks: args.ks.clone(),
        seeds: args.seeds,
        grad_ks: args.grad_ks.clone(),
        grad_seeds: args.grad_seeds,
        grad_gaussian: matches!(args.grad_models, GradModels::Gaussian | GradModels::Both),
        sample_seed: args.sample_seed,
    };
    let mut bars = Bars::new(false);
    let study = trace_study::run(&q, &x, mixture, &settings, &mut bars)?;
    study.write(&args.out, &mut bars)?;
    Ok(claim.finish()?)
}
