//! Image-domain measures of interferometric reconstructions, as the EHT papers report them:
//! the truth blurred by a circular Gaussian of the array's nominal resolution `1/max|u|`;
//! alignment by the integer shift that maximises the normalised cross-correlation (closure
//! quantities do not fix the position); and a REx-style ring fit — the centre that makes the
//! radius of peak brightness most uniform over position angle, the diameter `2·mean r_pk`, and
//! the width as the FWHM of the angle-averaged radial profile above its outer floor.

use super::{UvCoverage, UAS};

/// The array's nominal resolution `1/max√(u²+v²)` in µas (eht-imaging's `Obsdata.res()`).
pub fn nominal_resolution_uas(coverage: &UvCoverage) -> f64 {
    let max = coverage.points.iter().map(|p| p.u.hypot(p.v)).fold(0.0, f64::max);
    1.0 / max / UAS
}

/// `img` (`n × n`, row-major) convolved with a circular Gaussian of FWHM `fwhm_px` pixels,
/// zero outside the image; the total flux of pixels away from the edges is kept.
///
/// ```
/// use scoreprior_core::forward::interferometry::gaussian_blur;
/// let mut img = vec![0.0; 15 * 15];
/// img[7 * 15 + 7] = 1.0;
/// let b = gaussian_blur(&img, 15, 3.0);
/// assert!((b.iter().sum::<f64>() - 1.0).abs() < 1e-9);
/// // FWHM 3 px: the neighbour 1.5 px away would be at half maximum; 1 px away, 2^(-4/9).
/// assert!((b[7 * 15 + 8] / b[7 * 15 + 7] - 0.5f64.powf(4.0 / 9.0)).abs() < 1e-12);
/// ```
pub fn gaussian_blur(img: &[f64], n: usize, fwhm_px: f64) -> Vec<f64> {
    assert_eq!(img.len(), n * n, "gaussian_blur: image is not n × n");
    if !(fwhm_px > 0.0) {
        return img.to_vec();
    }
    let sigma = fwhm_px / (8.0 * std::f64::consts::LN_2).sqrt();
    let r = (4.0 * sigma).ceil() as isize;
    let k: Vec<f64> = (-r..=r).map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp()).collect();
    let s: f64 = k.iter().sum();
    let k: Vec<f64> = k.iter().map(|v| v / s).collect();
    // Separable: rows, then columns.
    let pass = |src: &[f64], along_rows: bool| {
        let mut out = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                let mut acc = 0.0;
                for (t, kv) in k.iter().enumerate() {
                    let o = t as isize - r;
                    let (a, b) = if along_rows { (i as isize, j as isize + o) } else { (i as isize + o, j as isize) };
                    if (0..n as isize).contains(&a) && (0..n as isize).contains(&b) {
                        acc += kv * src[a as usize * n + b as usize];
                    }
                }
                out[i * n + j] = acc;
            }
        }
        out
    };
    pass(&pass(img, true), false)
}

/// `img` moved by `(di, dj)` pixels (down, right), zero-filled.
pub fn shift_image(img: &[f64], n: usize, di: isize, dj: isize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n as isize {
        for j in 0..n as isize {
            let (si, sj) = (i - di, j - dj);
            if (0..n as isize).contains(&si) && (0..n as isize).contains(&sj) {
                out[(i * n as isize + j) as usize] = img[(si * n as isize + sj) as usize];
            }
        }
    }
    out
}

/// Normalised cross-correlation of two images of equal size (0 when either is constant).
pub fn ncc(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (a.iter().sum::<f64>() / a.len() as f64, b.iter().sum::<f64>() / b.len() as f64);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    if aa > 0.0 && bb > 0.0 {
        ab / (aa * bb).sqrt()
    } else {
        0.0
    }
}

/// The shift `(di, dj)` with `|di|, |dj| ≤ max_shift` that maximises `ncc(a, shift(b))`, and
/// that correlation.
///
/// ```
/// use scoreprior_core::forward::interferometry::best_shift;
/// let a = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
/// let b = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]; // a moved one pixel down
/// let (c, shift) = best_shift(&a, &b, 3, 1);
/// assert_eq!((shift, c), ((-1, 0), 1.0));
/// ```
pub fn best_shift(a: &[f64], b: &[f64], n: usize, max_shift: usize) -> (f64, (isize, isize)) {
    best_shift_by(b, n, max_shift, |shifted| ncc(a, shifted))
}

/// The integer shift `(di, dj)`, `|di|, |dj| ≤ max_shift`, of the `n × n` image `img` (zeros
/// shifted in) that maximises `score` of the shifted image, and that score; on ties the first
/// in row-major order from `(−max_shift, −max_shift)`.
fn best_shift_by(img: &[f64], n: usize, max_shift: usize, score: impl Fn(&[f64]) -> f64) -> (f64, (isize, isize)) {
    let s = max_shift as isize;
    let mut best = (f64::NEG_INFINITY, (0, 0));
    for di in -s..=s {
        for dj in -s..=s {
            let c = score(&shift_image(img, n, di, dj));
            if c > best.0 {
                best = (c, (di, dj));
            }
        }
    }
    best
}

/// `img` clipped to `[0, 1]`.
fn clip_unit(img: &[f64]) -> Vec<f64> {
    img.iter().map(|v| v.clamp(0.0, 1.0)).collect()
}

/// PSNR (dB, data range 1) of `image` against `truth`, both clipped to `[0, 1]`; `∞` when they
/// are equal there. The convention of InverseBench's black-hole evaluator (Zheng et al. 2025,
/// `devzhk/InverseBench`, `inverse_problems/blackhole.py`), whose images are in `[0, 1]` with
/// the truth's peak at 1: divide both images by the truth's peak first.
fn psnr_unit(truth: &[f64], image: &[f64]) -> f64 {
    crate::metrics::psnr(&clip_unit(image), &clip_unit(truth), 1.0).expect("psnr_unit: two n × n images")
}

/// PSNR (dB, data range 1, both images clipped to `[0, 1]` as InverseBench's black-hole
/// evaluator does) of `image` moved by the integer shift `(di, dj)`, `|di|, |dj| ≤ max_shift`
/// (zeros shifted in), that maximises it, against `truth`; and that shift. Closure quantities
/// do not fix the position, so the position is searched (InverseBench searches a 30 × 30 grid of
/// bilinear sub-pixel shifts over ±¼ of the field, `max_shift = n/4` here; integer shifts
/// need no interpolation, so a shifted copy scores `∞`). Divide both images by the truth's peak
/// first for InverseBench's units.
///
/// ```
/// use scoreprior_core::forward::interferometry::{psnr_best_shift, shift_image};
/// let mut truth = vec![0.0; 8 * 8];
/// truth[3 * 8 + 3] = 1.0;
/// truth[3 * 8 + 4] = 0.5;
/// // A copy moved one pixel right and two up: found exactly.
/// let moved = shift_image(&truth, 8, -2, 1);
/// assert_eq!(psnr_best_shift(&truth, &moved, 8, 2), (f64::INFINITY, (2, -1)));
/// // Out of the search range (|shift| ≤ 1): finite, at least the unshifted PSNR.
/// let (p, _) = psnr_best_shift(&truth, &moved, 8, 1);
/// let (p0, _) = psnr_best_shift(&truth, &moved, 8, 0);
/// assert!(p.is_finite() && p >= p0);
/// // Values above 1 are clipped: 2·truth scores as truth itself.
/// let twice: Vec<f64> = truth.iter().map(|v| 2.0 * v).collect();
/// let (p2, _) = psnr_best_shift(&truth, &twice, 8, 0);
/// // Only the 0.5 pixel differs (1 after clipping): MSE = 0.25/64, PSNR = 10·log10(256).
/// assert!((p2 - 10.0 * 256f64.log10()).abs() < 1e-12);
/// ```
pub fn psnr_best_shift(truth: &[f64], image: &[f64], n: usize, max_shift: usize) -> (f64, (isize, isize)) {
    assert!(n > 0 && truth.len() == n * n && image.len() == n * n, "psnr_best_shift: two n × n images");
    best_shift_by(image, n, max_shift, |shifted| psnr_unit(truth, shifted))
}

/// InverseBench's "blur PSNR": `image` moved by `shift` (the one [`psnr_best_shift`] chose:
/// InverseBench aligns once, unblurred), both images clipped to `[0, 1]`, blurred with a
/// circular Gaussian of FWHM `fwhm_px` pixels ([`gaussian_blur`]; eht-imaging's `blur_circ`,
/// which InverseBench calls, is scipy's `gaussian_filter` with mirrored borders, where this is
/// zero outside the image), clipped again, then the PSNR (dB, data range 1).
///
/// ```
/// use scoreprior_core::forward::interferometry::blur_psnr;
/// // Far from the edges, a blur keeps a constant: the centre of a constant patch.
/// let (n, c) = (32, 0.3);
/// let patch: Vec<f64> = (0..n * n).map(|k| if (8..24).contains(&(k / n)) && (8..24).contains(&(k % n)) { c } else { 0.0 }).collect();
/// let b = scoreprior_core::forward::interferometry::gaussian_blur(&patch, n, 2.0);
/// assert!((b[16 * n + 16] - c).abs() < 1e-12);
/// // The same image at the same position: ∞ at any FWHM.
/// assert_eq!(blur_psnr(&patch, &patch, n, 4.0, (0, 0)), f64::INFINITY);
/// // A one-pixel shift costs less after a wider blur.
/// let moved = scoreprior_core::forward::interferometry::shift_image(&patch, n, 0, 1);
/// let (p2, p6) = (blur_psnr(&patch, &moved, n, 2.0, (0, 0)), blur_psnr(&patch, &moved, n, 6.0, (0, 0)));
/// assert!(p2.is_finite() && p6 > p2);
/// ```
pub fn blur_psnr(truth: &[f64], image: &[f64], n: usize, fwhm_px: f64, shift: (isize, isize)) -> f64 {
    assert!(n > 0 && truth.len() == n * n && image.len() == n * n, "blur_psnr: two n × n images");
    let moved = shift_image(image, n, shift.0, shift.1);
    let t = gaussian_blur(&clip_unit(truth), n, fwhm_px);
    let x = gaussian_blur(&clip_unit(&moved), n, fwhm_px);
    psnr_unit(&t, &x)
}

/// A reduced χ² as InverseBench reports it: `χ²` when at least 1, else `1/χ²`, so that 1 is the
/// target and over-fitting counts as much as under-fitting (`normalize_chisq` of
/// `devzhk/InverseBench`, `inverse_problems/blackhole.py`; it computes the χ² of the image
/// rescaled to the observed total flux, [`rescale_to_flux`]).
///
/// ```
/// use scoreprior_core::forward::interferometry::chi2_inversebench;
/// assert_eq!(chi2_inversebench(2.0), 2.0);
/// assert_eq!(chi2_inversebench(0.5), 2.0);
/// assert_eq!(chi2_inversebench(1.0), 1.0);
/// ```
pub fn chi2_inversebench(chi2: f64) -> f64 {
    if chi2 < 1.0 {
        1.0 / chi2
    } else {
        chi2
    }
}

/// `img` scaled to total flux `flux` (`img · flux / Σimg`); unchanged when its sum is not
/// positive.
///
/// ```
/// use scoreprior_core::forward::interferometry::rescale_to_flux;
/// assert_eq!(rescale_to_flux(&[1.0, 3.0], 2.0), vec![0.5, 1.5]);
/// assert_eq!(rescale_to_flux(&[0.0, 0.0], 2.0), vec![0.0, 0.0]);
/// ```
pub fn rescale_to_flux(img: &[f64], flux: f64) -> Vec<f64> {
    let total: f64 = img.iter().sum();
    if total > 0.0 {
        img.iter().map(|v| v * flux / total).collect()
    } else {
        img.to_vec()
    }
}

/// A ring fit (see the module documentation), lengths in µas.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RingFit {
    /// `2·mean_θ r_pk(θ)`.
    pub diameter: f64,
    /// FWHM of the angle-averaged radial profile around its peak, above the profile's floor.
    pub width: f64,
    /// Centre, pixels (row, column), sub-pixel.
    pub center: (f64, f64),
}

/// Bilinear interpolation of an `n × n` image at fractional pixel `(y, x)`, zero outside.
fn sample(img: &[f64], n: usize, y: f64, x: f64) -> f64 {
    bilinear(img, n, n, y, x)
}

/// Bilinear interpolation of the row-major `h × w` image `img` at the fractional pixel
/// `(y, x)` (row, column; pixel centres at integers), with zeros outside the image.
///
/// ```
/// use scoreprior_core::forward::interferometry::bilinear;
/// let img = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]; // 2 × 3
/// assert_eq!(bilinear(&img, 2, 3, 0.5, 1.5), 3.0); // the mean of 1, 2, 4 and 5
/// assert_eq!(bilinear(&img, 2, 3, 1.0, 2.5), 2.5); // half of the last pixel, half outside
/// ```
pub fn bilinear(img: &[f64], h: usize, w: usize, y: f64, x: f64) -> f64 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let at = |i: f64, j: f64| {
        if i < 0.0 || j < 0.0 || i >= h as f64 || j >= w as f64 {
            0.0
        } else {
            img[i as usize * w + j as usize]
        }
    };
    at(y0, x0) * (1.0 - fy) * (1.0 - fx)
        + at(y0, x0 + 1.0) * (1.0 - fy) * fx
        + at(y0 + 1.0, x0) * fy * (1.0 - fx)
        + at(y0 + 1.0, x0 + 1.0) * fy * fx
}

/// REx-style ring fit of an `n × n` image with pixels of `pixel_uas`; `None` for an image
/// without positive flux or whose angle-averaged profile has no peak above its floor. Radial profiles are sampled at 0.1-pixel steps from 2 pixels out
/// to half the field over 72 position angles (so diameters below 4 pixels are not found);
/// centres are searched on a 0.25-pixel grid around the brightness centroid, among points
/// darker than half the mean brightness of the ring they define.
///
/// ```
/// use scoreprior_core::forward::interferometry::{ring_fit, TestSource};
/// let img = TestSource::Ring { radius: 25.0, width: 4.0 }.render(64, 160.0, 1.0).unwrap();
/// let fit = ring_fit(&img, 64, 2.5).unwrap();
/// assert!((fit.diameter - 50.0).abs() < 2.0, "{fit:?}");
/// // A Gaussian radial profile of σ 4 µas has FWHM 2.355 · 4 = 9.4 µas.
/// assert!((fit.width - 9.4).abs() < 1.5, "{fit:?}");
/// // A crescent (brighter to the east) keeps its diameter: the bright side does not pull
/// // the centre onto itself.
/// let c = TestSource::Crescent { radius: 22.0, width: 4.0, asymmetry: 0.6, angle_deg: 90.0 };
/// let fit = ring_fit(&c.render(32, 160.0, 1.0).unwrap(), 32, 5.0).unwrap();
/// assert!((fit.diameter - 44.0).abs() < 4.0, "{fit:?}");
/// ```
pub fn ring_fit(img: &[f64], n: usize, pixel_uas: f64) -> Option<RingFit> {
    let total: f64 = img.iter().map(|v| v.max(0.0)).sum();
    if !(total > 0.0) || img.len() != n * n {
        return None;
    }
    let (mut cy, mut cx) = (0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let v = img[i * n + j].max(0.0);
            cy += v * i as f64;
            cx += v * j as f64;
        }
    }
    let (cy, cx) = (cy / total, cx / total);
    let (angles, dr) = (72, 0.1);
    let rmax = n as f64 / 2.0;
    let nr = (rmax / dr) as usize;
    let k_min = (2.0 / dr) as usize;
    let peaks = |y: f64, x: f64| -> Vec<f64> {
        (0..angles)
            .map(|a| {
                let th = 2.0 * std::f64::consts::PI * a as f64 / angles as f64;
                let (s, c) = th.sin_cos();
                let mut best = (f64::NEG_INFINITY, 0.0);
                // From 2 pixels out: a centre on a bright spot would otherwise give r_pk ≈ 0 at
                // every angle, a perfectly "uniform" radius (a crescent's bright side).
                for k in k_min..nr {
                    let r = k as f64 * dr;
                    let v = sample(img, n, y + r * s, x + r * c);
                    if v > best.0 {
                        best = (v, r);
                    }
                }
                best.1
            })
            .collect()
    };
    let spread = |r: &[f64]| {
        let m = r.iter().sum::<f64>() / r.len() as f64;
        let var = r.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / r.len() as f64;
        if m > 0.0 {
            var.sqrt() / m
        } else {
            f64::INFINITY
        }
    };
    let search = (n as f64 / 8.0).max(2.0);
    let mut best = (f64::INFINITY, cy, cx);
    let steps = (search / 0.25) as isize;
    for a in -steps..=steps {
        for b in -steps..=steps {
            let (y, x) = (cy + a as f64 * 0.25, cx + b as f64 * 0.25);
            let r = peaks(y, x);
            // A ring's centre is a depression: a candidate on the bright arc itself (whose rays
            // all peak right next to it, a "uniform" radius) is not one.
            let rim = r
                .iter()
                .enumerate()
                .map(|(a, &rk)| {
                    let th = 2.0 * std::f64::consts::PI * a as f64 / angles as f64;
                    sample(img, n, y + rk * th.sin(), x + rk * th.cos())
                })
                .sum::<f64>()
                / angles as f64;
            if sample(img, n, y, x) > 0.5 * rim {
                continue;
            }
            let s = spread(&r);
            if s < best.0 {
                best = (s, y, x);
            }
        }
    }
    let (_, y, x) = best;
    let r_pk = peaks(y, x);
    let diameter = 2.0 * r_pk.iter().sum::<f64>() / r_pk.len() as f64 * pixel_uas;
    // Angle-averaged profile, its peak and the half-maximum crossings above the floor.
    let profile: Vec<f64> = (0..nr)
        .map(|k| {
            let r = k as f64 * dr;
            (0..angles)
                .map(|a| {
                    let th = 2.0 * std::f64::consts::PI * a as f64 / angles as f64;
                    sample(img, n, y + r * th.sin(), x + r * th.cos())
                })
                .sum::<f64>()
                / angles as f64
        })
        .collect();
    let (kp, &peak) = profile.iter().enumerate().skip(1).max_by(|a, b| a.1.total_cmp(b.1))?;
    let floor = profile[kp..].iter().cloned().fold(f64::INFINITY, f64::min).max(0.0);
    // A profile that never rises above the floor (an image mostly below zero, e.g. a noisy
    // sample) has no half maximum to cross.
    if !(peak > floor) {
        return None;
    }
    let half = floor + 0.5 * (peak - floor);
    let crossing = |range: &mut dyn Iterator<Item = usize>| -> Option<f64> {
        let mut prev = kp;
        for k in range {
            if profile[k] < half {
                // Linear interpolation between the last sample above and this one below.
                let (a, b) = (profile[prev], profile[k]);
                let f = (a - half) / (a - b);
                return Some((prev as f64 + f * (k as f64 - prev as f64)) * dr);
            }
            prev = k;
        }
        None
    };
    let outer = crossing(&mut (kp + 1..nr))?;
    let inner = crossing(&mut (0..kp).rev()).unwrap_or(0.0);
    if !(outer > inner && outer.is_finite()) {
        return None;
    }
    Some(RingFit { diameter, width: (outer - inner) * pixel_uas, center: (y, x) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A noisy image below zero but for a few bright pixels (a diffusion sampler's failed
    /// sample) has no ring: no fit, or one of finite positive width, never a negative width.
    #[test]
    fn ring_fit_of_a_mostly_negative_image_is_none_or_sane() {
        let n = 32;
        for seed in 0..20u64 {
            let img: Vec<f64> = (0..n * n)
                .map(|k| {
                    let h = (k as u64 ^ seed.wrapping_mul(0x9E37_79B9)).wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
                    let u = h as f64 / (1u64 << 24) as f64;
                    if k % 97 == 0 {
                        3.0 * u
                    } else {
                        -u
                    }
                })
                .collect();
            if let Some(f) = ring_fit(&img, n, 5.0) {
                assert!(f.width.is_finite() && f.width > 0.0 && f.diameter.is_finite(), "seed {seed}: {f:?}");
            }
        }
    }

    /// `max(0, 1 − r²/R²)` around `(ci, cj)`: zero away from it, so a shift within the image
    /// loses nothing.
    fn blob(n: usize, ci: f64, cj: f64, radius: f64) -> Vec<f64> {
        (0..n * n)
            .map(|k| {
                let (i, j) = ((k / n) as f64 - ci, (k % n) as f64 - cj);
                (1.0 - (i * i + j * j) / (radius * radius)).max(0.0)
            })
            .collect()
    }

    #[test]
    fn psnr_best_shift_finds_a_shifted_copy_and_never_loses_to_no_shift() {
        let n = 16;
        let truth = blob(n, 7.0, 8.0, 3.5);
        let moved = shift_image(&truth, n, 2, -3);
        // Exactly undone: infinite PSNR at the opposite shift.
        assert_eq!(psnr_best_shift(&truth, &moved, n, 4), (f64::INFINITY, (-2, 3)));
        let other = blob(n, 9.0, 6.0, 4.5);
        let (p0, _) = psnr_best_shift(&truth, &other, n, 0);
        let (p, _) = psnr_best_shift(&truth, &other, n, 4);
        assert!(p > p0, "{p} {p0}");
        // Hand-computed: truth 0 everywhere, image 0.1 everywhere → MSE 0.01, PSNR 20 dB
        // unshifted; a shift brings zeros in, so the search takes the largest, (±2, ±2), which
        // leaves 14 × 14 of the 16 × 16 pixels at 0.1: PSNR 10·log10(256 / 1.96), the first
        // found of the four.
        let (z, c) = (vec![0.0; n * n], vec![0.1; n * n]);
        assert!((psnr_best_shift(&z, &c, n, 0).0 - 20.0).abs() < 1e-12);
        let (p, s) = psnr_best_shift(&z, &c, n, 2);
        assert!((p - 10.0 * (256.0f64 / 1.96).log10()).abs() < 1e-12 && s == (-2, -2), "{p} {s:?}");
        // Negative values are clipped to 0: −1 everywhere scores as the truth 0.
        assert_eq!(psnr_best_shift(&z, &vec![-1.0; n * n], n, 0).0, f64::INFINITY);
    }

    #[test]
    fn blur_psnr_keeps_constants_and_counts_the_shift_it_is_given() {
        let n = 24;
        // Constant interior: the blur keeps it where the kernel stays inside the image.
        let c = vec![0.4; n * n];
        let b = gaussian_blur(&c, n, 3.0);
        assert!((b[12 * n + 12] - 0.4).abs() < 1e-12);
        // Two constants 0.4 and 0.2 away from the edges: blurring averages a constant to
        // itself, so the difference stays 0.2 at the centre.
        let d = gaussian_blur(&vec![0.2; n * n], n, 3.0);
        assert!((b[12 * n + 12] - d[12 * n + 12] - 0.2).abs() < 1e-12);
        let truth = blob(n, 11.0, 12.0, 4.0);
        let moved = shift_image(&truth, n, 1, 1);
        // With the shift that undoes the move: ∞; without it: finite, better with more blur.
        assert_eq!(blur_psnr(&truth, &moved, n, 4.0, (-1, -1)), f64::INFINITY);
        let p: Vec<f64> = [2.0, 4.0, 6.0].iter().map(|&f| blur_psnr(&truth, &moved, n, f, (0, 0))).collect();
        assert!(p[0] < p[1] && p[1] < p[2], "{p:?}");
        // FWHM 0: the PSNR itself.
        let (p0, _) = psnr_best_shift(&truth, &moved, n, 0);
        assert_eq!(blur_psnr(&truth, &moved, n, 0.0, (0, 0)), p0);
    }

    #[test]
    fn chi2_inversebench_targets_one_from_both_sides() {
        assert_eq!(chi2_inversebench(4.0), 4.0);
        assert_eq!(chi2_inversebench(0.25), 4.0);
        assert_eq!(chi2_inversebench(1.0), 1.0);
        for c in [0.3, 0.9, 1.0, 1.1, 7.0] {
            assert!(chi2_inversebench(c) >= 1.0);
        }
        // Over-fitting by a factor counts as under-fitting by it.
        assert!((chi2_inversebench(0.8) - 1.25).abs() < 1e-15);
        let r = rescale_to_flux(&[1.0, 2.0, 1.0], 1.0);
        assert_eq!(r, vec![0.25, 0.5, 0.25]);
    }
}
