//! `scoreprior fit-gaussian`: the ground-truth Gaussian of the paper's studies, fit to
//! Fashion-MNIST. Each 28×28 image is downsampled to S×S by exact area averaging
//! (`y_ij = Σ_kl w_ik w_jl x_kl`, `w_ik` = overlap of output cell `i` with input pixel `k`,
//! divided by the cell width 28/S), scaled to `[0,1]`; then `μ = mean`, `Σ = sample
//! covariance (1/(N−1)) + 0.01·I`, written as f32 `mean.npy` (D) and `cov.npy` (D×D).
//! The fit is [`scoreprior_cli::gaussian_fit`]; this file finds the data and writes the files.

use std::path::{Path, PathBuf};

use clap::Args;
use scoreprior_cli::gaussian_fit::{check_as_f32, downsample, find_in, mean_cov, DEFAULT_DATA_DIRS};
use scoreprior_core::io::{atomic_write, read_idx_images, write_npy_f32};

use super::CliResult;

/// Arguments of `scoreprior fit-gaussian`.
#[derive(Debug, Args)]
pub struct FitGaussianArgs {
    /// A Fashion-MNIST folder (holding train-images-idx3-ubyte[.gz]), an IDX image file, or a
    /// `.npy` of gray images (N, H, W) or (N, 1, H, W) in [0, 1] (e.g. `make-sources`' output).
    /// Default: the first of ../shared/data/fashion-mnist and /usr/share/datasets/fashion-mnist
    /// (Debian package dataset-fashion-mnist) that exists.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Side of the downsampled square images.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Diagonal loading added to the sample covariance. With fewer images than pixels the
    /// sample covariance is singular and a positive jitter is needed: the fit fails, writing
    /// nothing, unless the result is positive definite as `logprob` requires.
    #[arg(long, default_value_t = 0.01)]
    pub jitter: f64,
    /// Use only the first N training images (default: all).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Output folder for mean.npy, cov.npy and README.md.
    #[arg(long, default_value = "assets/gaussian16")]
    pub out: PathBuf,
    /// Also write the first `--test-count` test images (t10k-images, same folder as the
    /// training file), downsampled and scaled the same way, as f32 (N, S, S) to this file.
    #[arg(long)]
    pub test_out: Option<PathBuf>,
    /// Number of test images written with `--test-out`.
    #[arg(long, default_value_t = 64)]
    pub test_count: usize,
}

/// Resolves the training IDX file from `--data` (folder or file) or the default folders.
fn resolve_train(data: Option<&Path>) -> CliResult<PathBuf> {
    const STEM: &str = "train-images-idx3-ubyte";
    match data {
        Some(p) if p.is_file() => Ok(p.to_path_buf()),
        Some(p) if p.is_dir() => {
            find_in(p, STEM).ok_or_else(|| format!("{}: no {STEM}[.gz] in this folder", p.display()).into())
        }
        Some(p) => Err(format!("{}: no such file or folder", p.display()).into()),
        None => DEFAULT_DATA_DIRS.iter().find_map(|d| find_in(Path::new(d), STEM)).ok_or_else(|| {
            format!(
                "no Fashion-MNIST found in {}; pass --data DIR (or `apt-get install dataset-fashion-mnist`)",
                DEFAULT_DATA_DIRS.join(", ")
            )
            .into()
        }),
    }
}

/// Runs `scoreprior fit-gaussian`.
pub fn run(args: FitGaussianArgs) -> CliResult {
    if args.size == 0 {
        return Err("--size must be positive".into());
    }
    if !(args.jitter >= 0.0 && args.jitter.is_finite()) {
        return Err("--jitter must be a finite non-negative number".into());
    }
    let train = resolve_train(args.data.as_deref())?;
    let files = ["mean.npy", "cov.npy", "README.md"].map(|f| args.out.join(f));
    let mut outputs: Vec<(&str, &Path)> = files.iter().map(|p| ("--out", p.as_path())).collect();
    if let Some(t) = &args.test_out {
        outputs.push(("--test-out", t));
    }
    // The test file is looked up now, so a missing one fails before anything is written.
    let is_npy = train.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let test = match &args.test_out {
        Some(_) if is_npy => {
            return Err("--test-out takes the t10k IDX file beside an IDX --data; with a .npy --data write the test \
                        images yourself (e.g. `make-sources` with another --seed)"
                .into())
        }
        Some(_) => {
            let dir = train.parent().unwrap_or(Path::new("."));
            Some(find_in(dir, "t10k-images-idx3-ubyte").ok_or_else(|| {
                format!("--test-out: no t10k-images-idx3-ubyte[.gz] beside the training file in {}", dir.display())
            })?)
        }
        None => None,
    };
    let mut inputs: Vec<(&str, &Path)> = vec![("--data", &train)];
    if let Some(t) = &test {
        inputs.push(("--data", t));
    }
    let claim = super::claim_plain(super::guard("fit-gaussian", &inputs, &outputs), "--out", &args.out)?;
    let (a, scale) = if is_npy {
        let mut a = scoreprior_core::io::read_npy_images(&train)?;
        let (n, h, w) = match a.shape.as_slice() {
            [n, h, w] | [n, 1, h, w] => (*n, *h, *w),
            s => {
                return Err(
                    format!("--data {}: shape {s:?}: expected (N, H, W) or (N, 1, H, W)", train.display()).into()
                )
            }
        };
        let n = args.limit.map_or(n, |l| l.min(n));
        a.data.truncate(n * h * w);
        a.shape = vec![n, h, w];
        (a, 1.0)
    } else {
        (read_idx_images(&train, args.limit)?, 1.0 / 255.0)
    };
    let (n, h, w) = (a.shape[0], a.shape[1], a.shape[2]);
    if n < 2 {
        return Err(format!("{}: need at least 2 images, found {n}", train.display()).into());
    }
    if args.size > h.min(w) {
        return Err(format!("--size {} is larger than the {h}×{w} images", args.size).into());
    }
    let s = args.size;
    let d = s * s;
    let small = downsample(&a.data, n, h, w, s, scale);
    let (mean, cov) = mean_cov(&small, n, d, args.jitter);
    // `logprob` needs a positive-definite covariance: refuse to write one it would reject.
    if let Err(e) = check_as_f32(&mean, &cov) {
        let hint = if n <= d {
            format!(" (with N = {n} images for D = {d} pixels the sample covariance is singular)")
        } else {
            String::new()
        };
        return Err(format!(
            "--jitter {}: the fitted covariance is not usable: {e}{hint}; use a positive --jitter such as 0.01",
            args.jitter
        )
        .into());
    }
    write_npy_f32(args.out.join("mean.npy"), &[d], &mean)?;
    write_npy_f32(args.out.join("cov.npy"), &[d, d], &cov)?;
    let mut test_note = String::new();
    if let (Some(tp), Some(test)) = (&args.test_out, &test) {
        let t = read_idx_images(test, Some(args.test_count))?;
        let (tn, th, tw) = (t.shape[0], t.shape[1], t.shape[2]);
        let ts = downsample(&t.data, tn, th, tw, s, 1.0 / 255.0);
        write_npy_f32(tp, &[tn, s, s], &ts)?;
        test_note = format!(
            "\nTest images: the first {tn} images of `{}`, processed the same way, written as f32 ({tn}, {s}, {s}) to `{}`.\n",
            test.file_name().unwrap_or_default().to_string_lossy(),
            tp.display()
        );
        println!("wrote {} ({tn} test images)", tp.display());
    }
    let trace: f64 = (0..d).map(|i| cov[i * d + i]).sum();
    let readme = format!(
        "# Gaussian fit to {} {s}×{s}\n\n\
         Ground truth of the solver and trace studies (the paper fit CelebA 16×16 the same way).\n\n\
         - `mean.npy`: f32 ({d},), `cov.npy`: f32 ({d}, {d}), row-major, pixels in [0, 1].\n\
         - Data: {n} images of `{}`{}.\n\
         - Processing: {h}×{w} → {s}×{s} by exact area averaging (fractional box filter, each output pixel the\n  \
           mean of the input area it covers){}; sample mean; sample covariance with 1/(N−1);\n  \
           plus {jitter}·I on the diagonal.\n\
         - Trace of the covariance: {trace:.4}; mean pixel value: {:.4}.\n\
         {test_note}\n\
         Rebuild with:\n\n```\ncargo run --release -- fit-gaussian --data {} --size {s}{} --out {}{}\n```\n",
        if is_npy { "the images of a .npy file" } else { "Fashion-MNIST" },
        train.file_name().unwrap_or_default().to_string_lossy(),
        if is_npy { "" } else { " (Fashion-MNIST, Zalando SE, MIT licence)" },
        if is_npy { ", values as stored (u8 files divided by 255)" } else { ", divided by 255" },
        mean.iter().sum::<f64>() / d as f64,
        if is_npy { train.display().to_string() } else { "<fashion-mnist dir>".to_string() },
        args.limit.map(|l| format!(" --limit {l}")).unwrap_or_default(),
        args.out.display(),
        args.test_out
            .as_ref()
            .map(|p| format!(" --test-out {} --test-count {}", p.display(), args.test_count))
            .unwrap_or_default(),
        jitter = args.jitter,
    );
    atomic_write(args.out.join("README.md"), readme.as_bytes())?;
    println!(
        "fit N = {n} images of {} → {s}×{s}: wrote {}/mean.npy, cov.npy, README.md",
        train.display(),
        args.out.display()
    );
    Ok(claim.finish()?)
}
