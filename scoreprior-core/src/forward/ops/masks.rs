//! MRI k-space sampling masks on centred `H × W` grids (DC at `(H/2, W/2)`), with a fully
//! sampled centre and about `HW / acceleration` samples.
//!
//! - Cartesian: whole rows; the central rows, then the rest drawn uniformly without
//!   replacement.
//! - Variable-density Poisson disc: points at least `r(p) = r₀ (1 + 2ρ(p))` apart, where
//!   `ρ(p) ∈ [0, 1]` is the normalised elliptical distance from the centre, so samples are
//!   three times sparser at the edge than at the centre. Points are proposed in a seeded random
//!   order and accepted when no accepted point lies within `r(p)` (random sequential
//!   adsorption, a standard approximation of Bridson's algorithm); `r₀` is found by bisection
//!   so that the count, calibration block included, is the closest to `HW / acceleration`.
//!   This plays the role of sigpy's `poisson(accel, calib)` used by the reference code but is
//!   our own construction, not a bit-for-bit port.

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::{Error, Result};

fn check(h: usize, w: usize, acceleration: f64, center: usize) -> Result<usize> {
    if !(acceleration.is_finite() && acceleration >= 1.0) {
        return Err(Error::out_of_range("acceleration", acceleration, "≥ 1"));
    }
    if center > h.min(w) {
        return Err(Error::count_out_of_range(
            "fully sampled centre",
            center,
            format!("at most the k-space size {h}×{w}"),
        ));
    }
    Ok(((h * w) as f64 / acceleration).round() as usize)
}

/// A Cartesian row mask (`true` = sampled), row-major `h × w`.
///
/// ```
/// let m = scoreprior_core::forward::ops::masks::cartesian(32, 32, 4.0, 4, 0).unwrap();
/// assert_eq!(m.iter().filter(|&&b| b).count(), 8 * 32);
/// assert!(m[16 * 32]); // the DC row is sampled
/// ```
pub fn cartesian(h: usize, w: usize, acceleration: f64, center: usize, seed: u64) -> Result<Vec<bool>> {
    let target = check(h, w, acceleration, center)?;
    let lines = ((target as f64 / w as f64).round() as usize).clamp(1, h);
    if lines < center {
        return Err(Error::inconsistent(
            "mask acceleration and centre",
            format!("acceleration {acceleration} keeps {lines} rows, fewer than the fully sampled centre of {center}"),
        ));
    }
    let lo = h / 2 - center / 2;
    let mut rows = vec![false; h];
    rows[lo..lo + center].iter_mut().for_each(|r| *r = true);
    let mut rest: Vec<usize> = (0..h).filter(|&i| !rows[i]).collect();
    rest.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    for &i in rest.iter().take(lines - center) {
        rows[i] = true;
    }
    Ok((0..h * w).map(|p| rows[p / w]).collect())
}

/// A variable-density Poisson-disc mask (`true` = sampled), row-major `h × w`.
///
/// ```
/// let m = scoreprior_core::forward::ops::masks::poisson_disc(32, 32, 4.0, 6, 1).unwrap();
/// let n = m.iter().filter(|&&b| b).count();
/// assert!((n as f64 - 256.0).abs() < 0.1 * 256.0);
/// ```
pub fn poisson_disc(h: usize, w: usize, acceleration: f64, center: usize, seed: u64) -> Result<Vec<bool>> {
    let target = check(h, w, acceleration, center)?;
    if target < center * center {
        return Err(Error::inconsistent(
            "mask acceleration and centre",
            format!("acceleration {acceleration} allows {target} samples, fewer than the {center}×{center} fully sampled centre"),
        ));
    }
    let mut order: Vec<usize> = (0..h * w).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let (ch, cw) = (h as f64 / 2.0, w as f64 / 2.0);
    let rho: Vec<f64> = (0..h * w)
        .map(|p| {
            let (di, dj) = (((p / w) as f64 - ch) / ch, ((p % w) as f64 - cw) / cw);
            ((di * di + dj * dj) / 2.0).sqrt().min(1.0)
        })
        .collect();
    let (clo_h, clo_w) = (h / 2 - center / 2, w / 2 - center / 2);
    let in_center = |p: usize| {
        let (i, j) = (p / w, p % w);
        (clo_h..clo_h + center).contains(&i) && (clo_w..clo_w + center).contains(&j)
    };
    let draw = |r0: f64| -> Vec<bool> {
        let mut acc = vec![false; h * w];
        for &p in &order {
            let r = r0 * (1.0 + 2.0 * rho[p]);
            let reach = r.ceil() as isize;
            let (i, j) = ((p / w) as isize, (p % w) as isize);
            let mut free = true;
            'scan: for a in (i - reach).max(0)..=(i + reach).min(h as isize - 1) {
                for b in (j - reach).max(0)..=(j + reach).min(w as isize - 1) {
                    let d2 = ((a - i) * (a - i) + (b - j) * (b - j)) as f64;
                    if acc[a as usize * w + b as usize] && d2 < r * r {
                        free = false;
                        break 'scan;
                    }
                }
            }
            if free {
                acc[p] = true;
            }
        }
        (0..h * w).for_each(|p| acc[p] |= in_center(p));
        acc
    };
    let count = |m: &[bool]| m.iter().filter(|&&b| b).count();
    // Larger r₀ → fewer points. Bisect on r₀, keeping the draw closest to the target.
    let (mut lo, mut hi) = (0.0_f64, h.max(w) as f64);
    let mut best = draw(lo);
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        let m = draw(mid);
        let n = count(&m);
        if n.abs_diff(target) < count(&best).abs_diff(target) {
            best = m;
        }
        if n > target {
            lo = mid;
        } else {
            hi = mid;
        }
        if n == target || hi - lo < 1e-4 {
            break;
        }
    }
    Ok(best)
}
