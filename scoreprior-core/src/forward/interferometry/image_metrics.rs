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
    let s = max_shift as isize;
    let mut best = (f64::NEG_INFINITY, (0, 0));
    for di in -s..=s {
        for dj in -s..=s {
            let c = ncc(a, &shift_image(b, n, di, dj));
            if c > best.0 {
                best = (c, (di, dj));
            }
        }
    }
    best
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

/// Bilinear interpolation at fractional pixel `(y, x)`, zero outside.
fn sample(img: &[f64], n: usize, y: f64, x: f64) -> f64 {
    let (y0, x0) = (y.floor(), x.floor());
    let (fy, fx) = (y - y0, x - x0);
    let at = |i: f64, j: f64| {
        if i < 0.0 || j < 0.0 || i >= n as f64 || j >= n as f64 {
            0.0
        } else {
            img[i as usize * n + j as usize]
        }
    };
    at(y0, x0) * (1.0 - fy) * (1.0 - fx)
        + at(y0, x0 + 1.0) * (1.0 - fy) * fx
        + at(y0 + 1.0, x0) * fy * (1.0 - fx)
        + at(y0 + 1.0, x0 + 1.0) * fy * fx
}

/// REx-style ring fit of an `n × n` image with pixels of `pixel_uas`; `None` for an image
/// without positive flux. Radial profiles are sampled at 0.1-pixel steps from 2 pixels out
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
    Some(RingFit { diameter, width: (outer - inner) * pixel_uas, center: (y, x) })
}
