//! `scoreprior make-sources`: a seeded training set of compact radio sources (rings,
//! crescents, Gaussian blobs and mixtures, see
//! [`scoreprior_core::forward::interferometry::CompactSources`]) rendered on the
//! interferometric pixel grid, each image scaled to peak 1 (`x ∈ [0, 1]`, the network's data
//! convention; an image's physical flux `F` is restored as `x · F / Σx`), written as an f32
//! `.npy` of shape `(N, S, S)` that `scoreprior train --data` reads.

use std::path::{Path, PathBuf};

use clap::Args;
use scoreprior_core::forward::interferometry::CompactSources;
use scoreprior_core::io::{ensure_writable_dir, write_npy_f32, write_png_grid};

use super::CliResult;

/// Arguments of `scoreprior make-sources`.
#[derive(Debug, Args)]
pub struct MakeSourcesArgs {
    /// Number of images.
    #[arg(long, default_value_t = 20_000)]
    pub n: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Field of view in µas (160 µas over 32 pixels: 5 µas pixels).
    #[arg(long, default_value_t = 160.0)]
    pub fov: f64,
    /// Seed: image i is drawn from its own stream (seed, i), so a larger --n extends a set.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Smallest and largest ring/crescent diameter in µas, e.g. `20,60`.
    #[arg(long, value_delimiter = ',', default_values_t = [20.0, 60.0])]
    pub diameter: Vec<f64>,
    /// Which sources: `all` (20 % rings, 40 % crescents, 25 % blob mixtures, 15 % crescent +
    /// blob), or only `ring`, `crescent`, `blobs` or `crescent+blob` (e.g. a test source).
    #[arg(long, default_value = "all")]
    pub kind: String,
    /// Output `.npy` file (f32, (N, S, S)); a grid of the first 64 images is written next to
    /// it with the extension `.png`.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    pub force: bool,
}

/// Runs `scoreprior make-sources`.
pub fn run(args: MakeSourcesArgs) -> CliResult {
    if args.n == 0 || args.size == 0 {
        return Err("--n and --size must be positive".into());
    }
    // The images as f64, the grid PNG's pixels and the writes' copies, before any is drawn.
    let what = format!("--n {} images of --size {} × {} pixels", args.n, args.size, args.size);
    scoreprior_core::limits::check_elems(&what, &[args.n, args.size, args.size], 16)?;
    if !(args.fov > 0.0 && args.fov.is_finite()) {
        return Err(format!("--fov {}: must be a positive number of µas", args.fov).into());
    }
    if args.out.extension().is_none_or(|e| e != "npy") || args.out.is_dir() {
        return Err(format!("--out {}: give a file name ending in .npy", args.out.display()).into());
    }
    let png = args.out.with_extension("png");
    super::guard("make-sources", &[], &[("--out", &args.out), ("--out (grid)", &png)]).check()?;
    for p in [&args.out, &png] {
        if p.exists() && !args.force {
            return Err(format!("{} exists; pass --force to replace it", p.display()).into());
        }
    }
    if args.diameter.len() != 2 || !(args.diameter[0] > 0.0 && args.diameter[0] <= args.diameter[1]) {
        return Err(format!("--diameter {:?}: give two increasing positive values, e.g. 20,60", args.diameter).into());
    }
    let mut gen = CompactSources { diameter: (args.diameter[0], args.diameter[1]), ..Default::default() };
    (gen.ring, gen.crescent, gen.blobs) = match args.kind.as_str() {
        "all" => (gen.ring, gen.crescent, gen.blobs),
        "ring" => (1.0, 0.0, 0.0),
        "crescent" => (0.0, 1.0, 0.0),
        "blobs" => (0.0, 0.0, 1.0),
        "crescent+blob" => (0.0, 0.0, 0.0),
        other => return Err(format!("--kind {other}: expected all, ring, crescent, blobs or crescent+blob").into()),
    };
    if gen.diameter.1 > args.fov {
        return Err(format!("--diameter {:?}: larger than the field of view {} µas", args.diameter, args.fov).into());
    }
    ensure_writable_dir("--out", args.out.parent().unwrap_or(Path::new("")))?;
    let t0 = std::time::Instant::now();
    let x = gen.images(args.n, args.size, args.fov, args.seed).map_err(|e| format!("make-sources: {e}"))?;
    write_npy_f32(&args.out, &[args.n, args.size, args.size], &x)?;
    let k = args.n.min(64);
    let cols = (k as f64).sqrt().ceil() as usize;
    write_png_grid(&png, &x[..k * args.size * args.size], args.size, args.size, cols, 0.0, 1.0, 2)?;
    eprintln!(
        "wrote {} images {}×{} ({} µas pixels) to {} and a grid to {} in {:.1} s",
        args.n,
        args.size,
        args.size,
        args.fov / args.size as f64,
        args.out.display(),
        png.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
