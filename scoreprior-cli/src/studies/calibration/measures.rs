//! The measures of a run's samples against its truth: empirical quantiles (numpy's linear
//! interpolation), central intervals `[q_{(1−L)/2}, q_{(1+L)/2}]` (circular ones for angles),
//! per-pixel coverage, and the ring measures (diameter, width, position angle) with theirs.

use rayon::prelude::*;
use scoreprior_core::forward::interferometry::{bilinear, ring_fit, RingFit};
use serde::{Deserialize, Serialize};

use super::settings::{EHT_FOV_UAS, EHT_NPIX};

/// A central credible interval and whether the truth lies in it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end (for a position angle, `lo ≤ hi` and the arc may extend past 0° or 360°).
    pub hi: f64,
    /// Whether the truth lies in `[lo, hi]` (for a position angle, on the arc).
    pub inside: bool,
}

/// Ring measures of one image ([`ring_fit`] and [`position_angle`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RingMeasures {
    /// Diameter (µas).
    pub diameter: f64,
    /// Width (FWHM, µas).
    pub width: f64,
    /// Position angle of the brightest part (degrees east of north, `[0, 360)`).
    pub position_angle: f64,
    /// Length of the brightness-weighted mean unit vector, in `[0, 1]` (0: symmetric ring, whose
    /// position angle means nothing).
    pub asymmetry: f64,
}

/// The ring measures of an EHT run whose truth has a ring fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingCoverage {
    /// The truth's measures.
    pub truth: RingMeasures,
    /// Samples with a ring fit (the intervals are over these).
    pub fitted: usize,
    /// Posterior median diameter (µas), circular mean position angle (degrees); `None` without
    /// fitted samples.
    pub median_diameter: Option<f64>,
    /// Posterior median width (µas).
    pub median_width: Option<f64>,
    /// Circular mean of the samples' position angles (degrees).
    pub mean_position_angle: Option<f64>,
    /// Diameter interval at each level (empty without fitted samples).
    pub diameter: Vec<Interval>,
    /// Width interval at each level.
    pub width: Vec<Interval>,
    /// Position-angle interval at each level (circular).
    pub position_angle: Vec<Interval>,
}

impl RingCoverage {
    /// Whether the truth's diameter, width and position angle lie in their intervals at level
    /// `k` (false without fitted samples).
    pub fn inside(&self, k: usize) -> [bool; 3] {
        let at = |v: &[Interval]| v.get(k).is_some_and(|i| i.inside);
        [at(&self.diameter), at(&self.width), at(&self.position_angle)]
    }
}

/// The `q`-quantile (`0 ≤ q ≤ 1`) of ascending `sorted` values, interpolating linearly between
/// order statistics (position `q·(m − 1)`, numpy's default); NaN when empty.
///
/// ```
/// use scoreprior_cli::studies::calibration::quantile;
/// assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.25), 1.75);
/// ```
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        m => {
            let h = q.clamp(0.0, 1.0) * (m - 1) as f64;
            let lo = (h.floor() as usize).min(m - 2);
            sorted[lo] + (h - lo as f64) * (sorted[lo + 1] - sorted[lo])
        }
    }
}

/// The central interval `[quantile((1 − level)/2), quantile((1 + level)/2)]` of `values` (any
/// order), and whether `truth` lies in it; `None` without values.
///
/// ```
/// use scoreprior_cli::studies::calibration::central_interval;
/// let i = central_interval(&[4.0, 0.0, 2.0, 1.0, 3.0], 0.5, 3.2).unwrap();
/// assert_eq!((i.lo, i.hi, i.inside), (1.0, 3.0, false));
/// ```
pub fn central_interval(values: &[f64], level: f64, truth: f64) -> Option<Interval> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let q = (1.0 - level) / 2.0;
    let (lo, hi) = (quantile(&v, q), quantile(&v, 1.0 - q));
    Some(Interval { lo, hi, inside: lo <= truth && truth <= hi })
}

/// `a` wrapped into `(−180, 180]` degrees.
fn wrap180(a: f64) -> f64 {
    let r = a.rem_euclid(360.0);
    if r > 180.0 {
        r - 360.0
    } else {
        r
    }
}

/// Circular mean of angles (degrees), in `[0, 360)`; NaN without angles.
///
/// ```
/// use scoreprior_cli::studies::calibration::circular_mean;
/// assert!((circular_mean(&[350.0, 10.0]) - 0.0).abs() < 1e-9);
/// ```
pub fn circular_mean(angles_deg: &[f64]) -> f64 {
    if angles_deg.is_empty() {
        return f64::NAN;
    }
    let (s, c) = angles_deg.iter().fold((0.0, 0.0), |(s, c), a| (s + a.to_radians().sin(), c + a.to_radians().cos()));
    let m = s.atan2(c).to_degrees();
    let m = m.rem_euclid(360.0);
    if m >= 360.0 {
        0.0
    } else {
        m
    }
}

/// The central interval of angles (degrees) at `level`: the angles are centred on their
/// circular mean `μ` (differences wrapped into `(−180, 180]`), the quantiles taken, and the arc
/// `[μ + d_lo, μ + d_hi]` returned (`lo ≤ hi`, possibly past 0° or 360°); `truth` is inside when
/// its wrapped difference from `μ` lies in `[d_lo, d_hi]`. `None` without angles.
///
/// ```
/// use scoreprior_cli::studies::calibration::circular_interval;
/// // Angles around north: the interval straddles 0°, and 5° lies in it.
/// let i = circular_interval(&[350.0, 355.0, 0.0, 5.0, 10.0], 0.5, 5.0).unwrap();
/// assert!((i.lo + 5.0).abs() < 1e-9 && (i.hi - 5.0).abs() < 1e-9 && i.inside, "{i:?}");
/// ```
pub fn circular_interval(angles_deg: &[f64], level: f64, truth_deg: f64) -> Option<Interval> {
    if angles_deg.is_empty() {
        return None;
    }
    let mu = circular_mean(angles_deg);
    let d: Vec<f64> = angles_deg.iter().map(|a| wrap180(a - mu)).collect();
    let i = central_interval(&d, level, wrap180(truth_deg - mu))?;
    Some(Interval { lo: mu + i.lo, hi: mu + i.hi, inside: i.inside })
}

/// Position angle of the brightest part of an `n × n` image around `center` (pixels `(row,
/// column)`, sub-pixel), in degrees east of north in `[0, 360)`, and the length of the mean
/// vector in `[0, 1]`: the direction of `Σ_p v_p û_p / Σ_p v_p` over pixels with positive value
/// at least half a pixel from the centre, `û_p` the unit vector from the centre to pixel `p`
/// with east `= center.1 − j` and north `= center.0 − i` (row 0 is north, east is to the left,
/// the [`TestSource`](scoreprior_core::forward::interferometry::TestSource) grid).
///
/// ```
/// use scoreprior_cli::studies::calibration::position_angle;
/// // 3×3, centre pixel (1, 1): one bright pixel above (north) and one to the left (east).
/// let mut img = vec![0.0; 9];
/// img[1] = 1.0; // (0, 1): north
/// img[3] = 1.0; // (1, 0): east
/// let (pa, r) = position_angle(&img, 3, (1.0, 1.0));
/// assert!((pa - 45.0).abs() < 1e-9 && (r - 0.5f64.sqrt()).abs() < 1e-12);
/// ```
pub fn position_angle(img: &[f64], n: usize, center: (f64, f64)) -> (f64, f64) {
    let (mut e, mut no, mut total) = (0.0, 0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let v = img[i * n + j];
            let (de, dn) = (center.1 - j as f64, center.0 - i as f64);
            let r = de.hypot(dn);
            if v > 0.0 && r >= 0.5 {
                e += v * de / r;
                no += v * dn / r;
                total += v;
            }
        }
    }
    if total.is_nan() || total <= 0.0 {
        return (f64::NAN, 0.0);
    }
    let pa = e.atan2(no).to_degrees().rem_euclid(360.0);
    (if pa >= 360.0 { 0.0 } else { pa }, e.hypot(no) / total)
}

/// Position angle of the brightest part *of the ring* `fit` (degrees east of north in
/// `[0, 360)`) and its brightness asymmetry: the first angular moment
/// `Σ_θ I(θ) e^{iθ} / Σ_θ I(θ)` of the angular profile `I(θ)`, the image averaged (bilinear)
/// over radii within the ring's half-maximum band `R ± w/2` around its centre, at 360 angles,
/// as eht-imaging's ring extractor (REx) measures the M87 papers' position angle. Unlike
/// [`position_angle`] over the whole image, emission off the ring (a knot, a haze, a blob at
/// 50 µas) does not move it. Returns `(NaN, 0)` for a ring without brightness.
///
/// ```
/// use scoreprior::core::forward::interferometry::{ring_fit, TestSource};
/// use scoreprior_cli::studies::calibration::ring_angle;
/// // A crescent brighter to the south-east (135°), and a bright blob to the north, off the ring.
/// let c = TestSource::Crescent { radius: 20.0, width: 4.0, asymmetry: 0.5, angle_deg: 135.0 };
/// let blob = TestSource::Shifted { east: 0.0, north: 55.0, source: Box::new(TestSource::Blobs(vec![(0.0, 0.0, 10.0, 1.0)])) };
/// let img = TestSource::Sum(vec![(0.6, c), (0.4, blob)]).render(32, 160.0, 1.0).unwrap();
/// let fit = ring_fit(&img, 32, 5.0).unwrap();
/// let (pa, asym) = ring_angle(&img, 32, &fit, 5.0);
/// assert!((pa - 135.0).abs() < 10.0 && asym > 0.1, "{pa} {asym}");
/// // The whole image's moment is pulled towards the blob.
/// let (whole, _) = scoreprior_cli::studies::calibration::position_angle(&img, 32, fit.center);
/// assert!((whole - 135.0).abs() > 45.0, "{whole}");
/// ```
pub fn ring_angle(img: &[f64], n: usize, fit: &RingFit, pixel_uas: f64) -> (f64, f64) {
    let (radius, half) = (0.5 * fit.diameter / pixel_uas, 0.5 * fit.width / pixel_uas);
    // Radii every quarter pixel across the band (at least the ridge itself).
    let (lo, hi) = ((radius - half).max(0.0), radius + half);
    let nr = ((hi - lo) / 0.25).ceil().max(1.0) as usize;
    let (mut e, mut no, mut total) = (0.0, 0.0, 0.0);
    for a in 0..360 {
        // θ east of north: east is −column, north is −row.
        let th = (a as f64).to_radians();
        let (se, cn) = th.sin_cos();
        let profile: f64 = (0..=nr)
            .map(|k| {
                let r = lo + (hi - lo) * k as f64 / nr as f64;
                bilinear(img, n, n, fit.center.0 - r * cn, fit.center.1 - r * se).max(0.0)
            })
            .sum();
        e += profile * se;
        no += profile * cn;
        total += profile;
    }
    if !(total > 0.0) {
        return (f64::NAN, 0.0);
    }
    let pa = e.atan2(no).to_degrees().rem_euclid(360.0);
    (if pa >= 360.0 { 0.0 } else { pa }, e.hypot(no) / total)
}

/// Ring measures of an EHT image (5 µas pixels); `None` without a ring fit.
pub(super) fn ring_measures(img: &[f64]) -> Option<RingMeasures> {
    ring_measures_on(img, EHT_NPIX, EHT_FOV_UAS / EHT_NPIX as f64)
}

/// Ring measures of an `n × n` image of `pixel_uas` pixels: [`ring_fit`]'s diameter and width,
/// [`ring_angle`]'s position angle and asymmetry on the ring; `None` without a finite ring fit.
///
/// ```
/// use scoreprior::core::forward::interferometry::TestSource;
/// use scoreprior_cli::studies::calibration::ring_measures_on;
/// // A crescent brighter to the east: position angle 90°.
/// let c = TestSource::Crescent { radius: 22.0, width: 4.0, asymmetry: 0.6, angle_deg: 90.0 };
/// let m = ring_measures_on(&c.render(32, 160.0, 1.0).unwrap(), 32, 5.0).unwrap();
/// assert!((m.diameter - 44.0).abs() < 4.0 && (m.position_angle - 90.0).abs() < 10.0, "{m:?}");
/// ```
pub fn ring_measures_on(img: &[f64], n: usize, pixel_uas: f64) -> Option<RingMeasures> {
    let fit = ring_fit(img, n, pixel_uas)?;
    let (position_angle, asymmetry) = ring_angle(img, n, &fit, pixel_uas);
    [fit.diameter, fit.width, position_angle].iter().all(|v| v.is_finite()).then_some(RingMeasures {
        diameter: fit.diameter,
        width: fit.width,
        position_angle,
        asymmetry,
    })
}

/// The rows of `x` (`n × d`) whose pixels are all finite.
pub(super) fn finite_samples(x: &[f64], d: usize) -> Vec<&[f64]> {
    x.chunks(d).filter(|s| s.len() == d && s.iter().all(|v| v.is_finite())).collect()
}

/// Per-pixel measures: coverage at each level, 2-std coverage, mean, std.
pub(super) struct PixelMeasures {
    pub(super) coverage: Vec<f64>,
    pub(super) source_coverage: Vec<f64>,
    pub(super) within_2std: f64,
    pub(super) mean: Vec<f64>,
    pub(super) std_rel: f64,
}

/// Pixels whose truth exceeds this fraction of the truth's peak count as the source: there a
/// central interval can cover the truth, where a positive posterior's interval never reaches
/// a background truth of (numerically) zero.
pub const SOURCE_FRACTION: f64 = 0.01;

/// Per-pixel coverage of `truth` by the `samples` at each level (all pixels, and the source's,
/// [`SOURCE_FRACTION`]), and the 2-std coverage.
pub(super) fn pixel_measures(samples: &[&[f64]], truth: &[f64], mean: &[f64], levels: &[f64]) -> PixelMeasures {
    let d = truth.len();
    let m = samples.len().max(1) as f64;
    let std: Vec<f64> =
        (0..d).map(|p| (samples.iter().map(|s| (s[p] - mean[p]).powi(2)).sum::<f64>() / m).sqrt()).collect();
    let mut inside = vec![0usize; levels.len()];
    let mut inside_source = vec![0usize; levels.len()];
    let truth_peak = truth.iter().cloned().fold(0.0, f64::max);
    let is_source = |p: usize| truth[p] > SOURCE_FRACTION * truth_peak;
    let n_source = (0..d).filter(|&p| is_source(p)).count();
    let mut column = Vec::with_capacity(samples.len());
    for p in 0..d {
        column.clear();
        column.extend(samples.iter().map(|s| s[p]));
        column.sort_by(f64::total_cmp);
        for (k, &l) in levels.iter().enumerate() {
            let q = (1.0 - l) / 2.0;
            if quantile(&column, q) <= truth[p] && truth[p] <= quantile(&column, 1.0 - q) {
                inside[k] += 1;
                if is_source(p) {
                    inside_source[k] += 1;
                }
            }
        }
    }
    let within = (0..d).filter(|&p| (truth[p] - mean[p]).abs() <= 2.0 * std[p]).count();
    let peak = mean.iter().cloned().fold(1e-300, f64::max);
    PixelMeasures {
        coverage: inside.iter().map(|&c| c as f64 / d as f64).collect(),
        source_coverage: inside_source.iter().map(|&c| c as f64 / n_source.max(1) as f64).collect(),
        within_2std: within as f64 / d as f64,
        mean: mean.to_vec(),
        std_rel: std.iter().sum::<f64>() / d as f64 / peak,
    }
}

pub(super) fn mean_of(samples: &[&[f64]], d: usize) -> Vec<f64> {
    let m = samples.len().max(1) as f64;
    (0..d).map(|p| samples.iter().map(|s| s[p]).sum::<f64>() / m).collect()
}

/// The ring coverage of the `samples` for a truth with measures `truth`.
pub(super) fn ring_coverage(samples: &[&[f64]], truth: RingMeasures, levels: &[f64]) -> RingCoverage {
    let fits: Vec<RingMeasures> = samples.par_iter().filter_map(|s| ring_measures(s)).collect();
    let pick = |f: fn(&RingMeasures) -> f64| fits.iter().map(f).collect::<Vec<f64>>();
    let (d, w, pa) = (pick(|m| m.diameter), pick(|m| m.width), pick(|m| m.position_angle));
    let per_level = |v: &[f64], t: f64, circular: bool| -> Vec<Interval> {
        levels
            .iter()
            .filter_map(|&l| if circular { circular_interval(v, l, t) } else { central_interval(v, l, t) })
            .collect()
    };
    let median = |v: &[f64]| central_interval(v, 1e-12, 0.0).map(|i| 0.5 * (i.lo + i.hi));
    RingCoverage {
        truth,
        fitted: fits.len(),
        median_diameter: median(&d),
        median_width: median(&w),
        mean_position_angle: (!pa.is_empty()).then(|| circular_mean(&pa)),
        diameter: per_level(&d, truth.diameter, false),
        width: per_level(&w, truth.width, false),
        position_angle: per_level(&pa, truth.position_angle, true),
    }
}

/// `Some(v)` when `v` is finite (JSON has no NaN).
pub(super) fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scoreprior_core::forward::interferometry::TestSource;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        // numpy.quantile([1..5], q): position q·4.
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 5.0);
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert!((quantile(&v, 0.1) - 1.4).abs() < 1e-12);
        assert!((quantile(&v, 0.975) - 4.9).abs() < 1e-12);
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
        // 10 values 0..9, level 0.9: q 0.05 → 0.45, q 0.95 → 8.55.
        let v: Vec<f64> = (0..10).rev().map(f64::from).collect();
        let i = central_interval(&v, 0.9, 8.5).unwrap();
        assert!((i.lo - 0.45).abs() < 1e-12 && (i.hi - 8.55).abs() < 1e-12 && i.inside, "{i:?}");
        assert!(!central_interval(&v, 0.9, 0.4).unwrap().inside);
        assert!(central_interval(&[], 0.9, 0.0).is_none());
    }

    #[test]
    fn circular_intervals_centre_on_the_circular_mean() {
        assert!((circular_mean(&[10.0, 30.0]) - 20.0).abs() < 1e-9);
        assert!(
            (circular_mean(&[340.0, 20.0]) - 0.0).abs() < 1e-9 || (circular_mean(&[340.0, 20.0]) - 360.0).abs() < 1e-9
        );
        assert!((circular_mean(&[170.0, 190.0]) - 180.0).abs() < 1e-9);
        // Around 0°: differences −20, −10, 0, 10, 20; level 0.5 → quantiles 0.25, 0.75 → ±10.
        let a = [340.0, 350.0, 0.0, 10.0, 20.0];
        let i = circular_interval(&a, 0.5, 355.0).unwrap();
        assert!((i.lo + 10.0).abs() < 1e-9 && (i.hi - 10.0).abs() < 1e-9 && i.inside, "{i:?}");
        assert!(!circular_interval(&a, 0.5, 15.0).unwrap().inside);
        // A truth across the wrap from the samples is measured the short way round.
        assert!(circular_interval(&a, 0.99, 359.0).unwrap().inside);
        assert!(!circular_interval(&a, 0.99, 180.0).unwrap().inside);
    }

    #[test]
    fn position_angle_is_east_of_north() {
        let n = 5;
        let c = (2.0, 2.0);
        let at = |i: usize, j: usize| {
            let mut img = vec![0.0; n * n];
            img[i * n + j] = 1.0;
            position_angle(&img, n, c)
        };
        // North (row above): 0°; east (column to the left): 90°; south: 180°; west: 270°.
        for ((i, j), want) in [((0, 2), 0.0), ((2, 0), 90.0), ((4, 2), 180.0), ((2, 4), 270.0), ((0, 0), 45.0)] {
            let (pa, r) = at(i, j);
            assert!((pa - want).abs() < 1e-9 && (r - 1.0).abs() < 1e-12, "({i}, {j}): {pa} {r}");
        }
        // A symmetric ring has no direction; the centre pixel is ignored.
        let mut img = vec![0.0; n * n];
        for (i, j) in [(0, 2), (2, 0), (4, 2), (2, 4), (2, 2)] {
            img[i * n + j] = 1.0;
        }
        assert!(position_angle(&img, n, c).1 < 1e-12);
        // A crescent brighter towards position angle 120°: the measured angle is 120°.
        let src = TestSource::Crescent { radius: 20.0, width: 4.0, asymmetry: 0.6, angle_deg: 120.0 };
        let img = src.render(EHT_NPIX, EHT_FOV_UAS, 1.0).unwrap();
        let m = ring_measures(&img).unwrap();
        assert!((m.position_angle - 120.0).abs() < 3.0, "{m:?}");
        assert!((m.diameter - 40.0).abs() < 4.0, "{m:?}");
    }

    #[test]
    fn pixel_coverage_counts_truths_inside_the_interval() {
        // 2 pixels, 5 samples 0..4 in pixel 0 and 10..14 in pixel 1.
        let rows: Vec<Vec<f64>> = (0..5).map(|k| vec![k as f64, 10.0 + k as f64]).collect();
        let samples: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        let mean = mean_of(&samples, 2);
        assert_eq!(mean, [2.0, 12.0]);
        // Level 0.5: [1, 3] and [11, 13]; truth 2.5 inside, 13.5 outside.
        let pm = pixel_measures(&samples, &[2.5, 13.5], &mean, &[0.5, 0.99]);
        assert_eq!(pm.coverage, [0.5, 1.0]);
        // std √2: |13.5 − 12| ≤ 2√2 and |2.5 − 2| too.
        assert_eq!(pm.within_2std, 1.0);
        assert!((pm.std_rel - 2f64.sqrt() / 12.0).abs() < 1e-12);
    }
}
