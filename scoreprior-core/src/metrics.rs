//! Image-quality metrics against a ground truth: `MSE = mean (x − x*)²`,
//! `PSNR = 10 log10(R² / MSE)` for data range `R`, and SSIM (Wang et al. 2004) with an
//! 11-tap Gaussian window (σ = 1.5), `K1 = 0.01`, `K2 = 0.03`, population statistics,
//! borders mirrored with the edge pixel repeated (scipy.ndimage `reflect`) and the border of half a window cropped — the conventions of
//! scikit-image's `structural_similarity(gaussian_weights=True)`.

use crate::{Error, Result};

fn check_same(a: &[f64], b: &[f64]) -> Result<()> {
    if a.len() != b.len() || a.is_empty() {
        return Err(Error::shape("metric inputs", a.len(), b.len()));
    }
    Ok(())
}

/// Mean squared error.
pub fn mse(x: &[f64], truth: &[f64]) -> Result<f64> {
    check_same(x, truth)?;
    Ok(x.iter().zip(truth).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / x.len() as f64)
}

/// Peak signal-to-noise ratio in dB for data range `range` (1 for images in [0, 1]).
/// Infinite when the images are equal.
pub fn psnr(x: &[f64], truth: &[f64], range: f64) -> Result<f64> {
    let m = mse(x, truth)?;
    Ok(10.0 * (range * range / m).log10())
}

/// Gaussian weights of the SSIM window (normalised, `2r+1` taps).
fn gaussian_window(sigma: f64, radius: usize) -> Vec<f64> {
    let w: Vec<f64> = (0..=2 * radius)
        .map(|i| {
            let u = i as f64 - radius as f64;
            (-0.5 * u * u / (sigma * sigma)).exp()
        })
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Index mirrored at the borders with the edge pixel repeated, `d c b a | a b c d | d c b a`:
/// NumPy's `symmetric`, which scipy.ndimage (whose SSIM conventions these are) calls
/// `reflect`. Not the forward models' [`Boundary::Reflect`](crate::forward::ops::Boundary),
/// which does not repeat the edge.
fn symmetric(i: isize, n: usize) -> usize {
    let n = n as isize;
    let period = 2 * n;
    let mut j = i.rem_euclid(period);
    if j >= n {
        j = period - 1 - j;
    }
    j as usize
}

/// Separable filtering of an `h × w` image with `k` along both axes.
fn filter2(img: &[f64], h: usize, w: usize, k: &[f64]) -> Vec<f64> {
    let r = (k.len() / 2) as isize;
    let mut tmp = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            tmp[y * w + x] =
                k.iter().enumerate().map(|(t, kv)| kv * img[y * w + symmetric(x as isize + t as isize - r, w)]).sum();
        }
    }
    let mut out = vec![0.0; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] =
                k.iter().enumerate().map(|(t, kv)| kv * tmp[symmetric(y as isize + t as isize - r, h) * w + x]).sum();
        }
    }
    out
}

/// Structural similarity of two `h × w` grayscale images with data range `range`.
/// Needs `h, w ≥ 11` (the window must fit).
pub fn ssim(x: &[f64], truth: &[f64], h: usize, w: usize, range: f64) -> Result<f64> {
    check_same(x, truth)?;
    if x.len() != h * w {
        return Err(Error::shape("ssim image", h * w, x.len()));
    }
    let radius = 5; // int(3.5·σ + 0.5) with σ = 1.5
    if h < 2 * radius + 1 || w < 2 * radius + 1 {
        return Err(Error::shape("SSIM images", "at least 11x11", format!("{h}x{w}")));
    }
    let k = gaussian_window(1.5, radius);
    let prod = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).collect::<Vec<_>>();
    let ux = filter2(x, h, w, &k);
    let uy = filter2(truth, h, w, &k);
    let uxx = filter2(&prod(x, x), h, w, &k);
    let uyy = filter2(&prod(truth, truth), h, w, &k);
    let uxy = filter2(&prod(x, truth), h, w, &k);
    let c1 = (0.01 * range).powi(2);
    let c2 = (0.03 * range).powi(2);
    let mut acc = 0.0;
    let mut count = 0usize;
    for yy in radius..h - radius {
        for xx in radius..w - radius {
            let i = yy * w + xx;
            let (mx, my) = (ux[i], uy[i]);
            let vx = uxx[i] - mx * mx;
            let vy = uyy[i] - my * my;
            let vxy = uxy[i] - mx * my;
            acc += (2.0 * mx * my + c1) * (2.0 * vxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2));
            count += 1;
        }
    }
    Ok(acc / count as f64)
}

/// MSE, PSNR and SSIM of one image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageMetrics {
    /// Mean squared error.
    pub mse: f64,
    /// PSNR in dB.
    pub psnr: f64,
    /// SSIM (NaN when the image is smaller than the window).
    pub ssim: f64,
}

/// All three metrics of an `h × w` image against the truth.
pub fn image_metrics(x: &[f64], truth: &[f64], h: usize, w: usize, range: f64) -> Result<ImageMetrics> {
    let s = if h >= 11 && w >= 11 { ssim(x, truth, h, w, range)? } else { f64::NAN };
    Ok(ImageMetrics { mse: mse(x, truth)?, psnr: psnr(x, truth, range)?, ssim: s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mse_psnr_closed_form() {
        let t = vec![0.0; 100];
        let x = vec![0.1; 100];
        assert!((mse(&x, &t).unwrap() - 0.01).abs() < 1e-15);
        assert!((psnr(&x, &t, 1.0).unwrap() - 20.0).abs() < 1e-12);
        assert!(mse(&x, &t[..50]).is_err());
    }

    #[test]
    fn ssim_of_constant_images_is_the_luminance_term() {
        // Constant images: all variances vanish, SSIM = (2ab + C1) / (a² + b² + C1).
        let (a, b) = (0.3, 0.6);
        let s = ssim(&vec![a; 256], &vec![b; 256], 16, 16, 1.0).unwrap();
        let c1: f64 = 1e-4;
        assert!((s - (2.0 * a * b + c1) / (a * a + b * b + c1)).abs() < 1e-12);
    }

    #[test]
    fn ssim_is_one_for_equal_and_lower_for_noisy() {
        let x: Vec<f64> = (0..256).map(|i| ((i * 37 % 17) as f64) / 17.0).collect();
        assert!((ssim(&x, &x, 16, 16, 1.0).unwrap() - 1.0).abs() < 1e-12);
        let y: Vec<f64> = x.iter().enumerate().map(|(i, v)| v + if i % 2 == 0 { 0.2 } else { -0.2 }).collect();
        let s = ssim(&y, &x, 16, 16, 1.0).unwrap();
        assert!(s < 0.95 && s > 0.0);
        assert!((s - ssim(&x, &y, 16, 16, 1.0).unwrap()).abs() < 1e-12, "symmetric");
        assert!(ssim(&x[..100], &x[..100], 10, 10, 1.0).is_err());
    }

    #[test]
    fn symmetric_matches_scipy_ndimage_reflect() {
        let got: Vec<usize> = (-3..7).map(|i| symmetric(i, 4)).collect();
        assert_eq!(got, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }
}
