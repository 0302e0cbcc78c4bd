//! `scoreprior sample`: draws images from a trained NCSN++ checkpoint with the
//! probability-flow ODE (any declared Runge–Kutta solver, adaptive or fixed steps),
//! Euler–Maruyama on the reverse SDE, or predictor–corrector, and writes a PNG grid and
//! a `.npy` array `(n, C, H, W)` in `[0, 1]` (clipped).

use std::path::{Path, PathBuf};

use clap::Args;
use rand::SeedableRng;
use scoreprior_core::io::{ensure_writable_dir, prefix_png_npy};
use scoreprior_models::sample::{sample_ode, sample_sde, solver_named, OdeSteps};
use scoreprior_models::score::{NcsnppScore, Precision};

use super::CliResult;

/// Arguments of `scoreprior sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Checkpoint (`ema.safetensors` or a training checkpoint; its EMA weights are used).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Number of images.
    #[arg(long, default_value_t = 16)]
    pub n: usize,
    /// Sampler: ode, em (Euler–Maruyama) or pc (predictor–corrector).
    #[arg(long, default_value = "ode")]
    pub method: String,
    /// ODE solver (euler, heun, bosh3, rk4, tsit5, dopri5, dopri8).
    #[arg(long, default_value = "dopri5")]
    pub solver: String,
    /// Fixed ODE steps (0: adaptive with --rtol/--atol); SDE steps for em/pc.
    #[arg(long, default_value_t = 0)]
    pub steps: usize,
    /// Relative tolerance of the adaptive ODE solve.
    #[arg(long, default_value_t = 1e-3)]
    pub rtol: f64,
    /// Absolute tolerance of the adaptive ODE solve.
    #[arg(long, default_value_t = 1e-5)]
    pub atol: f64,
    /// Langevin corrector signal-to-noise ratio (pc).
    #[arg(long, default_value_t = 0.16)]
    pub snr: f64,
    /// End time of the reverse integration.
    #[arg(long, default_value_t = 1e-3)]
    pub t_end: f64,
    /// Compute scores in f64 instead of f32.
    #[arg(long)]
    pub f64: bool,
    /// RNG seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output prefix (not a folder): writes PREFIX.png and PREFIX.npy. The extension is
    /// appended to the whole prefix (`run.1` → `run.1.png`, `run.1.npy`), so distinct prefixes
    /// never collide; a prefix ending in `.png` or `.npy` has that ending replaced
    /// (`s.png` → `s.png`, `s.npy`).
    #[arg(long, default_value = "samples")]
    pub out: PathBuf,
}

/// Runs `scoreprior sample`.
pub fn run(args: SampleArgs) -> CliResult {
    // All checks before the checkpoint is loaded and the (minutes-long) sampling starts.
    if args.n == 0 {
        return Err("--n must be positive".into());
    }
    let solver = match args.method.as_str() {
        "ode" => Some(solver_named(&args.solver).map_err(|e| format!("--solver {}: {e}", args.solver))?),
        "em" | "pc" => None,
        m => return Err(format!("--method {m}: expected ode, em or pc").into()),
    };
    // A folder is not a prefix: `out/` would give the hidden files `out/.png`, `out/.npy`.
    let text = args.out.to_string_lossy();
    if text.is_empty() || text.ends_with(std::path::MAIN_SEPARATOR) || text.ends_with('/') || args.out.is_dir() {
        return Err(format!("--out {text}: give a file prefix such as {text}/samples, not a folder").into());
    }
    let (png, npy) = prefix_png_npy(&args.out);
    super::guard("sample", &[("--checkpoint", &args.checkpoint)], &[("--out", &png), ("--out (samples)", &npy)])
        .check()?;
    ensure_writable_dir("--out", png.parent().unwrap_or(Path::new("")))?;

    let prec = if args.f64 { Precision::F64 } else { Precision::F32 };
    let model = NcsnppScore::load(&args.checkpoint).map_err(|e| format!("--checkpoint: {e}"))?.with_precision(prec);
    let sde = *model.sde();
    let (c, h, w) = model.net().image_shape();
    // The images and the sampler's buffers (up to 16 copies of the batch for the ODE solvers'
    // stages), f64, before the sampling starts.
    let what = format!("--n {} images of {c}×{h}×{w} with the sampler's buffers", args.n);
    scoreprior_core::limits::check_elems(&what, &[args.n, c * h * w, 16], 8)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let t0 = std::time::Instant::now();
    let sde_steps = if args.steps == 0 { 1000 } else { args.steps };
    let x = match solver {
        Some(solver) => {
            let steps = if args.steps == 0 {
                OdeSteps::Adaptive { rtol: args.rtol, atol: args.atol }
            } else {
                OdeSteps::Fixed(args.steps)
            };
            let (x, stats) = sample_ode(&model, &sde, solver, steps, args.n, args.t_end, &mut rng)?;
            eprintln!("PF-ODE ({}) stats: {stats:?}", args.solver);
            x
        }
        None => {
            let snr = if args.method == "pc" { args.snr } else { 0.0 };
            sample_sde(&model, &sde, sde_steps, snr, args.n, args.t_end, &mut rng)?
        }
    };
    eprintln!("sampled {} images in {:.1} s", args.n, t0.elapsed().as_secs_f64());
    let x: Vec<f64> = x.into_iter().map(|v| v.clamp(0.0, 1.0)).collect();
    scoreprior_core::io::write_npy(&npy, &[args.n, c, h, w], &x)?;
    let gray: Vec<f64> = x.chunks(c * h * w).flat_map(|im| im[..h * w].to_vec()).collect();
    let cols = (args.n as f64).sqrt().ceil() as usize;
    scoreprior_core::io::write_png_grid(&png, &gray, h, w, cols, 0.0, 1.0, 4)?;
    eprintln!("wrote {} and {}", png.display(), npy.display());
    Ok(())
}
