//! The ground-truth Gaussian of the paper's studies, fit to images: each image is downsampled
//! to S×S by exact area averaging (`y_ij = Σ_kl w_ik w_jl x_kl`, `w_ik` = overlap of output cell
//! `i` with input pixel `k`, divided by the cell width), then `μ` = sample mean and
//! `Σ` = sample covariance `(1/(N−1))` + jitter·I.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use scoreprior_core::score::Gaussian;
use scoreprior_core::sde::AnySde;

/// Folders searched for Fashion-MNIST when no data are named, in order.
pub const DEFAULT_DATA_DIRS: [&str; 3] =
    ["../shared/data/fashion-mnist", "/work/shared/data/fashion-mnist", "/usr/share/datasets/fashion-mnist"];

/// Finds `<stem>` or `<stem>.gz` in `dir` (the compressed file first).
///
/// ```
/// let dir = std::env::temp_dir();
/// assert_eq!(scoreprior_cli::gaussian_fit::find_in(&dir, "no-such-scoreprior-file"), None);
/// ```
pub fn find_in(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()].into_iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Weights `(n_out, n_in)` of the exact fractional box filter: output cell `i` covers
/// `[i·r, (i+1)·r)` with `r = n_in/n_out`; each input pixel `k` (`[k, k+1)`) weighs its
/// overlap with that interval divided by `r`, so every row sums to one.
///
/// ```
/// // 4 → 2 is plain pairwise averaging.
/// assert_eq!(scoreprior_cli::gaussian_fit::area_weights(4, 2), [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5]);
/// ```
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

/// Whether `mean` and `cov` as written in f32 make a Gaussian that `logprob` accepts (the same
/// constructor, on the rounded values): the error says why not.
///
/// # Errors
/// The rounded covariance is not symmetric positive definite (or the mean not finite).
///
/// ```
/// use scoreprior_cli::gaussian_fit::check_as_f32;
/// assert!(check_as_f32(&[0.5, 0.5], &[1.0, 0.0, 0.0, 1.0]).is_ok());
/// // Two identical pixels without jitter: singular.
/// assert!(check_as_f32(&[0.5, 0.5], &[1.0, 1.0, 1.0, 1.0]).is_err());
/// ```
pub fn check_as_f32(mean: &[f64], cov: &[f64]) -> scoreprior_core::Result<()> {
    let round = |v: &[f64]| -> Vec<f64> { v.iter().map(|&x| f64::from(x as f32)).collect() };
    Gaussian::new(round(mean), &round(cov), AnySde::from_name("vp")?).map(|_| ())
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
