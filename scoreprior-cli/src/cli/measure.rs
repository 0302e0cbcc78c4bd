//! `scoreprior measure`: simulate a measurement `y = A(x) + n` of an image and write `y` and
//! the naive reconstruction `Aᵀy` (the dirty image for interferometry).
//!
//! `--forward` is a preset or a chain of primitives in the text syntax of
//! [`scoreprior_core::forward::spec`]:
//! - `denoising` — identity, default noise `gaussian(sigma=0.1)`;
//! - `deblurring(k=8)` — the reference code's top-left `k×k` block of the unnormalised DFT,
//!   default noise `complex_gaussian(sigma=0.1)`;
//! - `mri(acceleration=8, center=4, seed=1, mask=poisson|cartesian)` — centred orthonormal
//!   FFT and a k-space mask, default noise `complex_gaussian(sigma=0.01)`;
//! - `eht(fov=160, tint=10, bandwidth=4e9, cutoff=10, cadence=600, start=0, stop=24)` — EHT
//!   2017 observing a Sgr A*-like source at 230 GHz as eht-imaging's `observe` does,
//!   visibilities with thermal noise (the noise is the radiometer equation; `--noise` does not
//!   apply), or `eht(obs='file.txt', fov=160)` on the coverage and σ of an ehtim text export
//!   ([`scoreprior_core::forward::spec::EhtSettings`]); also writes `uv.npy` and the closure
//!   phases and log closure amplitudes of the noisy visibilities (`closures.npy`) and the
//!   first dirty image as FITS (`aty.fits`);
//! - anything else, e.g. `gaussian_blur(sigma=1.5, size=9) | subsample(factor=2)`, with
//!   default noise `gaussian(sigma=0.05)`.
//!
//! The output files beyond `y` are written by [`scoreprior::measurement`].

use std::path::PathBuf;

use clap::Args;
use rand::SeedableRng;
use scoreprior::measurement::{max, min, sky_header, write_adjoint, write_interferometry};
use scoreprior_core::forward::interferometry::Interferometer;
use scoreprior_core::forward::{
    expand_preset, parse_chain, parse_noise, EhtSettings, ForwardModel, Model, PrimitiveSpec, Shape,
};
use scoreprior_core::io::{image_batch_shape, read_npy_images, read_png, write_npy, Array, FitsSky};

use super::monitor::Bars;
use super::CliResult;

/// Arguments of `scoreprior measure`.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// Forward model: a preset (`denoising`, `deblurring(k=8)`, `mri(acceleration=8)`,
    /// `eht(fov=160)`) or a chain like `gaussian_blur(sigma=1.5, size=9) | subsample(factor=2)`.
    #[arg(long)]
    pub forward: String,
    /// Noise, `gaussian(sigma=S)` or `complex_gaussian(sigma=S)` (default depends on --forward).
    /// `complex_gaussian` (σ/√2 per real and imaginary part) needs a complex-valued operator
    /// output (after `fft2`, `dft_lowpass`, a k-space mask); on real outputs it is an error.
    #[arg(long)]
    pub noise: Option<String>,
    /// Image: PNG (8/16-bit gray or RGB, scaled to [0, 1]) or .npy of shape (H, W), (N, H, W)
    /// (N gray images, as in every command) or (N, C, H, W): f32/f64 values as they are, u8
    /// scaled by 1/255; other integer dtypes are rejected (convert them to float in [0, 1]).
    #[arg(long)]
    pub x: PathBuf,
    /// Seed of the noise draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// Reads `--x` as `(N, [C, H, W])`.
fn read_images(path: &std::path::Path) -> CliResult<(usize, Shape, Vec<f64>)> {
    if !path.exists() {
        return Err(format!("--x: file {} does not exist", path.display()).into());
    }
    let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let a: Array = if is_npy { read_npy_images(path) } else { read_png(path) }.map_err(|e| format!("--x: {e}"))?;
    // A PNG is (C, H, W): one image. A .npy follows the one shape rule of every command.
    let (n, c, h, w) = match (is_npy, a.shape.as_slice()) {
        (false, &[c, h, w]) => (1, c, h, w),
        _ => image_batch_shape("--x", &a.shape)?,
    };
    let shape = Shape::new(c, h, w);
    if a.data.iter().any(|v| !v.is_finite()) {
        return Err("--x: the image has NaN or infinite values".into());
    }
    Ok((n, shape, a.data))
}

/// What was built from `--forward`.
pub(crate) struct Built {
    pub(crate) model: Model,
    pub(crate) interferometer: Option<Interferometer>,
    /// The sky header of the FITS dirty image (interferometry only).
    pub(crate) sky: Option<FitsSky>,
}

pub(crate) fn build(args: &MeasureArgs, shape: Shape) -> CliResult<Built> {
    // A single call `name(k=v, …)` may be a preset; a chain `a | b` is not one.
    let name = PrimitiveSpec::parse(&args.forward).map(|s| s.name).unwrap_or_default();
    let noise =
        |default: &str| parse_noise(args.noise.as_deref().unwrap_or(default)).map_err(|e| format!("--noise: {e}"));
    let chain_model = |chain: &str, default_noise: &str| -> CliResult<Model> {
        let c =
            parse_chain(chain, shape).map_err(|e| format!("--forward `{}` on a {shape} image: {e}", args.forward))?;
        Ok(Model::with_spec(c, &noise(default_noise)?)?)
    };
    let model = match name.as_str() {
        "eht" => {
            let settings = EhtSettings::parse(&args.forward)
                .map_err(|e| format!("--forward {}: {e}", args.forward))?
                .ok_or_else(|| format!("--forward {}: expected `eht(key=value, ...)`", args.forward))?;
            if args.noise.is_some() {
                return Err(
                    "--noise does not apply to eht: its noise is the radiometer equation of each baseline".into()
                );
            }
            if shape.c != 1 || shape.h != shape.w {
                return Err(format!("--forward eht needs a square gray image, got {shape}").into());
            }
            let eht = settings.interferometer(shape.h).map_err(|e| format!("--forward {}: {e}", args.forward))?;
            let sky = sky_header(&settings, &eht)?;
            return Ok(Built { model: eht.visibility_model()?, interferometer: Some(eht), sky: Some(sky) });
        }
        // denoising, deblurring, mri: the library's presets, shared with `dpi`.
        _ => match expand_preset(&args.forward).map_err(|e| format!("--forward {}: {e}", args.forward))? {
            Some(p) => chain_model(&p.chain, p.default_noise)?,
            None => chain_model(&args.forward, "gaussian(sigma=0.05)")?,
        },
    };
    Ok(Built { model, interferometer: None, sky: None })
}

/// Runs `scoreprior measure`.
pub fn run(args: MeasureArgs) -> CliResult {
    // Checks first: inputs, model and output paths, before anything is simulated or written.
    let names = ["y.npy", "aty.npy", "aty.png", "aty.fits", "uv.npy", "closures.npy"];
    let files: Vec<PathBuf> = names.iter().map(|f| args.out.join(f)).collect();
    let outputs: Vec<(&str, &std::path::Path)> = files.iter().map(|p| ("--out", p.as_path())).collect();
    let forward_files = scoreprior_cli::run_folder::forward_files(&args.forward);
    let mut inputs: Vec<(&str, &std::path::Path)> = vec![("--x", &args.x)];
    inputs.extend(forward_files.iter().map(|p| ("--forward", p.as_path())));
    let guard = super::guard("measure", &inputs, &outputs);
    guard.clone().plain_folder("--out", &args.out).check()?;
    let (n, shape, x) = read_images(&args.x)?;
    let Built { model, interferometer, sky } = build(&args, shape)?;
    let claim = super::claim_plain(guard, "--out", &args.out)?;
    let out_shape = model.output_shape();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let y = model.simulate(&x, &mut rng)?;
    // A huge σ overflows the draw; a measurement with inf/NaN is useless downstream.
    if let Some(k) = y.iter().position(|v| !v.is_finite()) {
        let noise = args.noise.as_deref().unwrap_or("the default noise");
        return Err(format!(
            "--noise {noise}: the simulated measurement has a non-finite value ({} at index {k}); \
             use a smaller noise level",
            y[k]
        )
        .into());
    }
    let y_path = args.out.join("y.npy");
    write_npy(&y_path, &[n, out_shape.c, out_shape.h, out_shape.w], &y)?;
    let chi2: f64 = model.chi_squared(&y, &x)?.iter().sum();
    println!("forward:  {}", model.describe());
    println!(
        "noise:    σ in [{:.3e}, {:.3e}] on {} measurements per image",
        min(model.noise().sigma()),
        max(model.noise().sigma()),
        model.measurement_count()
    );
    println!("x:        {} ({n} image(s) of shape {shape})", args.x.display());
    println!(
        "y:        shape {out_shape} per image, seed {}, χ²/dof of the draw = {:.4}",
        args.seed,
        chi2 / (n * model.measurement_count()) as f64
    );
    println!("wrote     {}", y_path.display());

    let mut lines = Bars::new(false);
    if let Some(eht) = &interferometer {
        write_interferometry(&args.out, eht, &y, n, &mut lines)?;
    }
    let shot = (y.as_slice(), n, shape);
    write_adjoint(&args.out, &model, shot, sky.as_ref(), interferometer.is_some(), &mut lines)?;
    Ok(claim.finish()?)
}
