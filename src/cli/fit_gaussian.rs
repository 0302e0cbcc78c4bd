//! `scoreprior fit-gaussian`: the ground-truth Gaussian of the paper's studies, fit to
//! Fashion-MNIST. Each 28×28 image is downsampled to S×S by exact area averaging
//! (`y_ij = Σ_kl w_ik w_jl x_kl`, `w_ik` = overlap of output cell `i` with input pixel `k`,
//! divided by the cell width 28/S), scaled to `[0,1]`; then `μ = mean`, `Σ = sample
//! covariance (1/(N−1)) + 0.01·I`, written as f32 `mean.npy` (D) and `cov.npy` (D×D).

use std::path::{Path, PathBuf};

use clap::Args;
use rayon::prelude::*;
use scoreprior_core::io::{atomic_write, check_outputs_distinct, read_idx_images, write_npy_f32};
use scoreprior_core::score::Gaussian;
use scoreprior_core::sde::AnySde;

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

/// Folders searched when `--data` is not given, in order.
pub const DEFAULT_DATA_DIRS: [&str; 3] =
    ["../shared/data/fashion-mnist", "/work/shared/data/fashion-mnist", "/usr/share/datasets/fashion-mnist"];

/// Finds `<stem>` or `<stem>.gz` in `dir`.
fn find_in(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()].into_iter().map(|n| dir.join(n)).find(|p| p.is_file())
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

/// Weights `(n_out, n_in)` of the exact fractional box filter: output cell `i` covers
/// `[i·r, (i+1)·r)` with `r = n_in/n_out`; each input pixel `k` (`[k, k+1)`) weighs its
/// overlap with that interval divided by `r`, so every row sums to one.
pub fn area_weights(n_in: usize, n_out: usize) -> Vec<f64> {
    let r = n_in as f64 / n_out as f64;
    let mut w = vec![0.0; n_out * n_in];
    for i in 0..n_out {
        let (a, b) = (i as f64 * r, (i + 1) as f64 * r);
        for k in (a.floor() as usize)..(b.ceil() as usize).min(n_in) {
            let overlap = (b.min(k as f64 + 1.0) - a.max(k as f64)).max(0.0);
            w[i * n_in + k] = overlap / r;
        }
    }
    w
}

/// Downsamples `n` images `(h, w)` to `(s, s)` by area averaging, scaling by `scale`.
pub fn downsample(images: &[f64], n: usize, h: usize, w: usize, s: usize, scale: f64) -> Vec<f64> {
    let wr = area_weights(h, s);
    let wc = area_weights(w, s);
    let mut out = vec![0.0; n * s * s];
    out.par_chunks_mut(s * s).enumerate().for_each(|(m, o)| {
        let img = &images[m * h * w..(m + 1) * h * w];
        // Rows first: tmp (s, w) = Wr · img, then o = tmp · Wcᵀ.
        let mut tmp = vec![0.0; s * w];
        for i in 0..s {
            for k in 0..h {
                let a = wr[i * h + k];
                if a != 0.0 {
                    for c in 0..w {
                        tmp[i * w + c] += a * img[k * w + c];
                    }
                }
            }
        }
        for i in 0..s {
            for j in 0..s {
                o[i * s + j] = scale * (0..w).map(|c| tmp[i * w + c] * wc[j * w + c]).sum::<f64>();
            }
        }
    });
    out
}

/// Sample mean and covariance (`1/(n−1)`) of `n` rows of length `d`, plus `jitter·I`.
pub fn mean_cov(x: &[f64], n: usize, d: usize, jitter: f64) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; d];
    for row in x.chunks(d) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    // Upper triangle row by row in parallel; each task owns one row of the result.
    let mut cov = vec![0.0; d * d];
    cov.par_chunks_mut(d).enumerate().for_each(|(i, ci)| {
        for row in x.chunks(d) {
            let a = row[i] - mean[i];
            for j in i..d {
                ci[j] += a * (row[j] - mean[j]);
            }
        }
        let denom = (n.max(2) - 1) as f64;
        for v in ci[i..].iter_mut() {
            *v /= denom;
        }
    });
    for i in 0..d {
        for j in 0..i {
            cov[i * d + j] = cov[j * d + i];
        }
        cov[i * d + i] += jitter;
    }
    (mean, cov)
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
    check_outputs_distinct(&inputs, &outputs)?;
    let _lock = super::own_folder("--out", &args.out)?;
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
    // `logprob` needs a positive-definite covariance: refuse to write one it would reject,
    // checked by the same constructor on the values as written (f32).
    let written: Vec<f64> = cov.iter().map(|&v| f64::from(v as f32)).collect();
    let mean32: Vec<f64> = mean.iter().map(|&v| f64::from(v as f32)).collect();
    if let Err(e) = Gaussian::new(mean32, &written, AnySde::from_name("vp")?) {
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_weights_rows_sum_to_one_and_match_hand_values() {
        let w = area_weights(28, 16);
        for i in 0..16 {
            let s: f64 = w[i * 28..(i + 1) * 28].iter().sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
        // Cell 0 covers [0, 1.75): pixel 0 fully, pixel 1 for 0.75.
        assert!((w[0] - 1.0 / 1.75).abs() < 1e-15 && (w[1] - 0.75 / 1.75).abs() < 1e-15 && w[2] == 0.0);
        // Integer factor 4 → 2 is plain 2×2 averaging.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0];
        let y = downsample(&x, 1, 4, 4, 2, 1.0);
        assert_eq!(y, vec![3.5, 5.5, 11.5, 13.5]);
        // Area averaging preserves the total mean.
        let img: Vec<f64> = (0..28 * 28).map(|i| ((i * 37) % 255) as f64).collect();
        let y = downsample(&img, 1, 28, 28, 16, 1.0);
        let m0 = img.iter().sum::<f64>() / 784.0;
        let m1 = y.iter().sum::<f64>() / 256.0;
        assert!((m0 - m1).abs() < 1e-9, "{m0} {m1}");
    }

    #[test]
    fn mean_cov_matches_two_point_formula() {
        // Rows (0,0), (2,4): mean (1,2); cov with 1/(n−1) = [[2,4],[4,8]].
        let (m, c) = mean_cov(&[0.0, 0.0, 2.0, 4.0], 2, 2, 0.5);
        assert_eq!(m, vec![1.0, 2.0]);
        assert_eq!(c, vec![2.5, 4.0, 4.0, 8.5]);
    }
}
