//! Imaging an observation's own data (`scoreprior eht-image`): a DPI run on the closure phases
//! and log closure amplitudes of `eht(obs=…)`, then its outputs in the sky's units. Closures
//! do not fix the scale, so DPI images in the prior's units (peak ≈ 1, total flux `F_p`, the
//! median flux of the prior's training images) and the results are scaled to the compact flux
//! `F` in Jy by `F/Σ mean`. The posterior of ring measures (diameter `d`, width `w`, position
//! angle of the brightest part, asymmetry) comes from one ring fit per sample: central
//! credible intervals are the samples' 2.5/16/50/84/97.5 % quantiles (the angle's around its
//! circular mean).

use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use scoreprior_core::forward::interferometry::{
    bilinear, gaussian_blur, nxcorr, shift_image, ClosureChi2, ClosureProblem, CompactSources,
};
use scoreprior_core::io::{
    atomic_write, read_fits_image, write_fits_cube, write_fits_image, write_npy, write_png_grid, IoError,
};

use crate::studies::calibration::{central_interval, circular_interval, ring_measures_on, RingMeasures};
use scoreprior::experiment::eht::EhtProblem;
use scoreprior::experiment::{invalid_setting, ExperimentResult, Result};

/// `value` written as JSON to `path`.
fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| IoError::encode(path, "JSON", e))?;
    atomic_write(path, text.as_bytes())?;
    Ok(())
}

/// The median total flux of the compact-source training images (peak 1) on an `npix × npix`
/// grid over `fov_uas`: the flux target of DPI in the prior's units. 256 images of a seed
/// that `make-sources` training sets do not use by default.
///
/// ```
/// let f = scoreprior_cli::eht_image::prior_flux(32, 160.0).unwrap();
/// assert!(f > 5.0 && f < 100.0, "{f}");
/// ```
pub fn prior_flux(npix: usize, fov_uas: f64) -> Result<f64> {
    let n = 256;
    let imgs = CompactSources::default().images(n, npix, fov_uas, 0x6d38_37)?;
    let mut flux: Vec<f64> = imgs.chunks(npix * npix).map(|x| x.iter().sum()).collect();
    flux.sort_by(f64::total_cmp);
    Ok(0.5 * (flux[n / 2 - 1] + flux[n / 2]))
}

/// The median and the central 68 % and 95 % credible intervals of one measure over the
/// posterior samples ([`central_interval`]; for angles [`circular_interval`], around the
/// circular mean, the median reported in `[0, 360)` and the bounds beside it, possibly past 0°
/// or 360°).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Credible {
    /// The median.
    pub median: f64,
    /// 16 % and 84 % quantiles.
    pub p68: (f64, f64),
    /// 2.5 % and 97.5 % quantiles.
    pub p95: (f64, f64),
}

impl Credible {
    /// Of values; `None` if empty.
    ///
    /// ```
    /// use scoreprior_cli::eht_image::Credible;
    /// let c = Credible::of(&(0..=100).map(f64::from).collect::<Vec<_>>()).unwrap();
    /// assert!(c.median == 50.0 && (c.p95.0 - 2.5).abs() < 1e-9 && (c.p95.1 - 97.5).abs() < 1e-9);
    /// let a = Credible::of_angles(&[350.0, 355.0, 0.0, 5.0, 10.0]).unwrap();
    /// assert!(a.median.abs() < 1e-9 && a.p95.0 < 0.0 && a.p95.1 > 0.0, "{a:?}");
    /// ```
    pub fn of(v: &[f64]) -> Option<Self> {
        let at = |level: f64| central_interval(v, level, f64::NAN).map(|i| (i.lo, i.hi));
        Some(Credible { median: at(0.0)?.0, p68: at(0.68)?, p95: at(0.95)? })
    }

    /// Of angles in degrees; `None` if empty.
    pub fn of_angles(deg: &[f64]) -> Option<Self> {
        let at = |level: f64| circular_interval(deg, level, f64::NAN).map(|i| (i.lo, i.hi));
        let median = at(0.0)?.0;
        let shift = median.rem_euclid(360.0) - median;
        let (a, b) = (at(0.68)?, at(0.95)?);
        Some(Credible { median: median + shift, p68: (a.0 + shift, a.1 + shift), p95: (b.0 + shift, b.1 + shift) })
    }
}

/// The posterior of the ring measures ([`ring_measures_on`] of each sample).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RingPosterior {
    /// Samples with a ring fit, of all samples.
    pub fitted: (usize, usize),
    /// Diameter, µas.
    pub diameter: Credible,
    /// Width (FWHM of the radial profile), µas.
    pub width: Credible,
    /// Position angle of the brightest part, degrees east of north.
    pub position_angle: Credible,
    /// Brightness asymmetry.
    pub asymmetry: Credible,
}

/// Ring measures of each of the `samples` (`n × n` images, row-major) and their intervals;
/// `None` when no sample has a ring fit.
pub fn ring_posterior(samples: &[f64], n: usize, pixel_uas: f64) -> Option<RingPosterior> {
    // Each fit is independent and costs milliseconds (its profile search interpolates the
    // image thousands of times): spread over the cores, in the samples' order.
    let fits: Vec<RingMeasures> = samples.par_chunks(n * n).filter_map(|x| ring_measures_on(x, n, pixel_uas)).collect();
    let col = |f: fn(&RingMeasures) -> f64| fits.iter().map(f).collect::<Vec<f64>>();
    Some(RingPosterior {
        fitted: (fits.len(), samples.len() / (n * n)),
        diameter: Credible::of(&col(|f| f.diameter))?,
        width: Credible::of(&col(|f| f.width))?,
        position_angle: Credible::of_angles(&col(|f| f.position_angle))?,
        asymmetry: Credible::of(&col(|f| f.asymmetry))?,
    })
}

/// `img` (`n × n`) moved by whole pixels so that the brightness centroid of its pixels above
/// `frac` of its peak lands on the grid centre `(n − 1)/2` (zero-filled): closure phases, log
/// closure amplitudes and normalised amplitudes do not depend on the position, so each image
/// is shown centred, as the field does.
///
/// ```
/// use scoreprior_cli::eht_image::centre_image;
/// let mut img = vec![0.0; 64];
/// img[8 * 1 + 1] = 1.0; // (1, 1)
/// let c = centre_image(&img, 8, 0.2);
/// assert_eq!(c[8 * 4 + 4], 1.0); // to (4, 4), the nearest pixel to the centre 3.5
/// ```
pub fn centre_image(img: &[f64], n: usize, frac: f64) -> Vec<f64> {
    let peak = img.iter().cloned().fold(0.0, f64::max);
    let (mut w, mut ci, mut cj) = (0.0, 0.0, 0.0);
    for (p, &v) in img.iter().enumerate() {
        if v > frac * peak && v > 0.0 {
            w += v;
            ci += v * (p / n) as f64;
            cj += v * (p % n) as f64;
        }
    }
    if !(w > 0.0) {
        return img.to_vec();
    }
    let c = (n as f64 - 1.0) / 2.0;
    let (di, dj) = ((c - ci / w).round() as isize, (c - cj / w).round() as isize);
    shift_image(img, n, di, dj)
}

/// The posterior of a run with every kept sample centred ([`centre_image`], above 20 % of its
/// peak), and the mean and std of the centred samples.
#[derive(Debug, Clone, PartialEq)]
pub struct CentredPosterior {
    /// Image side.
    pub n: usize,
    /// The centred samples, row-major `(m, n·n)`.
    pub samples: Vec<f64>,
    /// Their mean.
    pub mean: Vec<f64>,
    /// Their standard deviation (population).
    pub std: Vec<f64>,
}

impl CentredPosterior {
    /// Of a finished run (its kept samples are finite, so all stay kept).
    pub fn of(res: &ExperimentResult) -> Result<Self> {
        Self::of_runs(std::slice::from_ref(res))
    }

    /// Of independent runs of the same problem, their kept samples pooled (each run weighted by
    /// its number of kept samples: equal weights for runs of equal `--samples` without
    /// outliers). Each run of reverse-KL DPI keeps to the mode it started in; the pool is the
    /// equal-weight mixture of those local posteriors.
    ///
    /// # Errors
    /// No run; runs of different image shapes.
    pub fn of_runs(runs: &[ExperimentResult]) -> Result<Self> {
        let first = runs.first().ok_or_else(|| invalid_setting("restarts", "at least one run to pool"))?;
        let (n, _) = first.shape;
        if let Some(r) = runs.iter().find(|r| r.shape != first.shape) {
            return Err(invalid_setting(
                "restarts",
                format!("runs of {:?} and {:?} pixels cannot be pooled", first.shape, r.shape),
            ));
        }
        let samples: Vec<f64> =
            runs.iter().flat_map(|r| r.summary.kept.chunks(n * n)).flat_map(|x| centre_image(x, n, 0.2)).collect();
        let s = scoreprior_core::dpi::summarize_samples(&samples, n * n, f64::INFINITY)?;
        Ok(CentredPosterior { n, samples: s.kept, mean: s.mean, std: s.std })
    }
}

/// One of the runs an `eht-image` posterior pools (`eht_image.json` → `restarts`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartSummary {
    /// Its DPI seed.
    pub seed: u64,
    /// Ring fit of its own centred mean.
    pub ring_mean: Option<RingMeasures>,
    /// The posterior of its own ring measures.
    pub ring_samples: Option<RingPosterior>,
    /// Reduced χ² of its mean as DPI drew it.
    pub chi2_mean: ClosureChi2,
    /// Its DPI loss (`−ELBO` estimate, nats) averaged over the last tenth of its steps, and the
    /// standard error of that average (steps taken as independent): not precise enough to
    /// weight the runs by, which is why the pool weights them equally.
    pub final_loss: (f64, f64),
}

/// What `eht-image` measured (`eht_image.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EhtImageReport {
    /// What was imaged.
    pub forward: String,
    /// Jy per prior unit: `F / Σ mean`.
    pub flux_scale: f64,
    /// The compact flux `F` the FITS images hold, Jy.
    pub compact_flux_jy: f64,
    /// Pixel size, µas.
    pub pixel_uas: f64,
    /// The array's nominal resolution `1/max|uv|`, µas.
    pub resolution_uas: f64,
    /// Closure phases and log closure amplitudes imaged.
    pub closure_counts: (usize, usize),
    /// Reduced χ² of the posterior mean as DPI drew it (uncentred; of several runs pooled, of
    /// their centred mean): closure phases, log closure amplitudes and, with
    /// `--data closures+amplitudes`, normalised amplitudes (`null` without them).
    pub chi2_mean: ClosureChi2,
    /// Reduced χ² of the centred mean (the FITS image).
    pub chi2_mean_centred: ClosureChi2,
    /// Mean over the kept samples of their reduced χ².
    pub chi2_samples: ClosureChi2,
    /// Log amplitude ratios imaged (0 without `--data closures+amplitudes`).
    pub amplitude_ratios: usize,
    /// Ring fit of the posterior mean.
    pub ring_mean: Option<RingMeasures>,
    /// The posterior of the ring measures.
    pub ring_samples: Option<RingPosterior>,
    /// Samples kept (finite, within the outlier bound).
    pub samples: usize,
    /// Seconds of DPI training (of all runs pooled).
    pub seconds_training: f64,
    /// The runs pooled (one without `--restarts`).
    pub restarts: Vec<RestartSummary>,
}

/// The closure problem of a run; without one (a run on other data), an error on
/// `problem.data` that says `why` it is needed.
fn closures_of<'a>(problem: &'a EhtProblem, why: &str) -> Result<&'a ClosureProblem> {
    problem.closures.as_ref().ok_or_else(|| invalid_setting("problem.data", why))
}

/// What one pooled run measured on its own.
/// `centred`: this run's own centred samples, its slice of the pool (`n × n` images).
fn restart_summary(
    res: &ExperimentResult,
    centred: &[f64],
    n: usize,
    seed: u64,
    c: &ClosureProblem,
    pixel_uas: f64,
) -> Result<RestartSummary> {
    let m = (centred.len() / (n * n)).max(1) as f64;
    let mut own_mean = vec![0.0; n * n];
    for x in centred.chunks(n * n) {
        own_mean.iter_mut().zip(x).for_each(|(a, b)| *a += b / m);
    }
    let tail = &res.history.records[res.history.records.len() - res.history.records.len().div_ceil(10)..];
    let losses: Vec<f64> = tail.iter().map(|r| r.total).filter(|v| v.is_finite()).collect();
    let k = losses.len() as f64;
    let mean = if losses.is_empty() { f64::NAN } else { losses.iter().sum::<f64>() / k };
    let var = losses.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0).max(1.0);
    Ok(RestartSummary {
        seed,
        ring_mean: ring_measures_on(&own_mean, n, pixel_uas),
        ring_samples: ring_posterior(centred, n, pixel_uas),
        chi2_mean: c.chi2(&res.summary.mean)?,
        final_loss: (mean, (var / k).sqrt()),
    })
}

/// Writes the outputs of an `eht-image` run into `out`, from the DPI runs it pooled (`runs`,
/// made with `seeds`; one run, or `--restarts`) and their centred posterior `post`: `mean.fits`, `std.fits` and `samples.fits` (a cube) in Jy per pixel with
/// the observation's sky header; `samples_jy.npy`; `eht_image.json` ([`EhtImageReport`]). The
/// run's own `.npy` and PNGs stay as DPI drew them, uncentred and in the prior's units (PNGs
/// are displayed as the sky: north up, east left).
///
/// # Errors
/// A run without closure data (`problem.data`); a posterior mean without positive flux; a file
/// cannot be written.
pub fn write_outputs(
    out: &Path,
    runs: &[ExperimentResult],
    seeds: &[u64],
    post: &CentredPosterior,
    problem: &EhtProblem,
    compact_flux_jy: f64,
) -> Result<EhtImageReport> {
    if runs.is_empty() || runs.len() != seeds.len() {
        return Err(invalid_setting("restarts", format!("{} runs for {} seeds", runs.len(), seeds.len())));
    }
    let c = closures_of(problem, "eht-image images closure data only")?;
    let n = post.n;
    let d = n * n;
    let mean = &post.mean;
    let total: f64 = mean.iter().sum();
    if !(total > 0.0) {
        return Err(scoreprior_core::Error::OutOfRange {
            what: "the total flux of the posterior mean".into(),
            value: total,
            expected: "positive, to scale it to Jy".into(),
        }
        .into());
    }
    let k = compact_flux_jy / total;
    let scaled = |v: &[f64]| v.iter().map(|x| x * k).collect::<Vec<f64>>();
    let kept = &post.samples;
    let m = kept.len() / d;
    write_fits_image(out.join("mean.fits"), &scaled(mean), n, n, &problem.sky)?;
    write_fits_image(out.join("std.fits"), &scaled(&post.std), n, n, &problem.sky)?;
    if m > 0 {
        write_fits_cube(out.join("samples.fits"), &scaled(kept), m, n, n, &problem.sky)?;
        write_npy(out.join("samples_jy.npy"), &[m, 1, n, n], &scaled(kept))?;
    }
    let pixel_uas = problem.fov_uas / n as f64;
    // χ² of the images as DPI drew them: a whole-pixel centring moves faint emission off the
    // field, which changes the data of an image (the centred mean's χ² is reported beside).
    // Of several runs, the pooled mean is the centred one (each run's mode sits where its MAP
    // put it, so their uncentred means do not average to an image of the source). A mean of
    // runs in different modes is a blend that need not fit the data: `restarts` keeps each
    // run's own, and `chi2_samples` is the posterior's.
    let chi_centred = c.chi2(mean)?;
    let chi = if runs.len() == 1 { c.chi2(&runs[0].summary.mean)? } else { chi_centred };
    let per: Vec<_> =
        runs.iter().flat_map(|r| r.summary.kept.chunks(d)).map(|x| c.chi2(x)).collect::<std::result::Result<_, _>>()?;
    let avg = |f: fn(&ClosureChi2) -> f64| per.iter().map(f).sum::<f64>() / per.len().max(1) as f64;
    let report = EhtImageReport {
        forward: problem.label.clone(),
        flux_scale: k,
        compact_flux_jy,
        pixel_uas,
        resolution_uas: problem.resolution_uas,
        closure_counts: (c.n_phases, c.y.len() - c.n_phases - c.n_ratios),
        chi2_mean: chi,
        chi2_mean_centred: chi_centred,
        chi2_samples: ClosureChi2 {
            phase: avg(|c| c.phase),
            log_amp: avg(|c| c.log_amp),
            amp_ratio: avg(|c| c.amp_ratio),
        },
        amplitude_ratios: c.n_ratios,
        ring_mean: ring_measures_on(mean, n, pixel_uas),
        ring_samples: ring_posterior(kept, n, pixel_uas),
        samples: m,
        seconds_training: runs.iter().map(|r| r.report.seconds_training_total).sum(),
        restarts: {
            // The pool holds every run's samples in order (all finite, so all kept).
            let mut start = 0;
            runs.iter()
                .zip(seeds)
                .map(|(r, &seed)| {
                    let len = r.summary.kept.len();
                    let own = post.samples.get(start..start + len).ok_or_else(|| {
                        invalid_setting("restarts", "the pooled samples do not hold every run's kept samples")
                    })?;
                    start += len;
                    restart_summary(r, own, n, seed, c, pixel_uas)
                })
                .collect::<Result<_>>()?
        },
    };
    write_json(&out.join("eht_image.json"), &report)?;
    Ok(report)
}

/// A reference image on our grid: the FITS image's intensity (Jy per its pixel) averaged over
/// 5 × 5 points of each of our `n × n` pixels of `pixel_uas` (bilinear between its pixel
/// centres), times our pixel's area; both grids centred on their `CRPIX` (FITS) and `(n−1)/2`.
///
/// # Errors
/// The file cannot be read as a FITS image, or has no pixel size (`CDELT2`).
pub fn regrid_fits(path: &Path, n: usize, pixel_uas: f64) -> Result<Vec<f64>> {
    let img = read_fits_image(path)?;
    let num = |k: &str| img.get(k).and_then(|v| v.trim().parse::<f64>().ok());
    let cdelt = num("CDELT2")
        .filter(|v| v.is_finite() && *v != 0.0)
        .ok_or_else(|| IoError::malformed(path, "FITS", "no pixel size (CDELT2) in the header"))?;
    let p_ref = cdelt.abs() * 3600.0 * 1e6; // degrees → µas
    let (h, w) = (img.height, img.width);
    // FITS CRPIX counts from 1 and from the bottom row; `data` has the top row first.
    let cx = num("CRPIX1").map_or((w as f64 - 1.0) / 2.0, |c| c - 1.0);
    let cy = num("CRPIX2").map_or((h as f64 - 1.0) / 2.0, |c| h as f64 - c);
    let at = |i: f64, j: f64| bilinear(&img.data, h, w, i, j);
    let c = (n as f64 - 1.0) / 2.0;
    let ss = 5;
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let mut acc = 0.0;
            for a in 0..ss {
                for b in 0..ss {
                    let di = (i as f64 - c + (a as f64 + 0.5) / ss as f64 - 0.5) * pixel_uas / p_ref;
                    let dj = (j as f64 - c + (b as f64 + 0.5) / ss as f64 - 0.5) * pixel_uas / p_ref;
                    acc += at(cy + di, cx + dj);
                }
            }
            out[i * n + j] = acc / (ss * ss) as f64 * (pixel_uas / p_ref).powi(2);
        }
    }
    Ok(out)
}

/// The DPI posterior beside a reference image of the same data (`comparison.json`,
/// `comparison.png`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The reference FITS file.
    pub reference: String,
    /// Ring fit of the reference (on our grid).
    pub ring_reference: Option<RingMeasures>,
    /// Ring fit of the DPI mean.
    pub ring_mean: Option<RingMeasures>,
    /// The DPI posterior's ring measures.
    pub ring_samples: Option<RingPosterior>,
    /// Normalised cross-correlation of mean and reference, both blurred to `blur_uas` (best shift).
    pub nxcorr_blurred: f64,
    /// The same without blurring.
    pub nxcorr: f64,
    /// The blur, µas FWHM.
    pub blur_uas: f64,
    /// Reduced χ² of the reference image on our grid, as [`EhtImageReport::chi2_mean`].
    pub chi2_reference: ClosureChi2,
    /// Total flux of the reference, Jy.
    pub reference_flux_jy: f64,
}

/// Compares an `eht-image` run with a reference image (e.g. the collaboration's pipeline's
/// FITS) by the same measures on the same grid, and writes `comparison.json` and
/// `comparison.png` (top row: reference, DPI mean, std, three samples; bottom row: each
/// blurred to `blur_uas`; every panel scaled to its own peak, north up, east left).
///
/// # Errors
/// The reference cannot be read; a run without closure data; a file cannot be written.
pub fn compare_with_reference(
    out: &Path,
    reference: &Path,
    post: &CentredPosterior,
    problem: &EhtProblem,
    report: &EhtImageReport,
    blur_uas: f64,
) -> Result<Comparison> {
    let c = closures_of(problem, "eht-image compares closure runs only")?;
    let n = post.n;
    let p = report.pixel_uas;
    let r = regrid_fits(reference, n, p)?;
    let mean: Vec<f64> = post.mean.iter().map(|v| v * report.flux_scale).collect();
    let fwhm_px = blur_uas / p;
    let (rb, mb) = (gaussian_blur(&r, n, fwhm_px), gaussian_blur(&mean, n, fwhm_px));
    let shift = n / 4;
    let chi = c.chi2(&r)?;
    let cmp = Comparison {
        reference: reference.display().to_string(),
        ring_reference: ring_measures_on(&r, n, p),
        ring_mean: report.ring_mean,
        ring_samples: report.ring_samples.clone(),
        nxcorr_blurred: nxcorr(&rb, &mb, n, shift).0,
        nxcorr: nxcorr(&r, &mean, n, shift).0,
        blur_uas,
        chi2_reference: chi,
        reference_flux_jy: r.iter().sum(),
    };
    let d = n * n;
    let mut panels: Vec<Vec<f64>> = vec![r.clone(), mean.clone(), post.std.clone()];
    // Three samples spread over the pool (from different runs when it pools several).
    let m = post.samples.len() / d;
    panels.extend((0..m.min(3)).map(|i| post.samples[i * m / 3 * d..][..d].to_vec()));
    let blurred: Vec<Vec<f64>> = panels.iter().map(|x| gaussian_blur(x, n, fwhm_px)).collect();
    let norm = |x: &Vec<f64>| {
        let peak = x.iter().cloned().fold(1e-300, f64::max);
        x.iter().map(|v| v / peak).collect::<Vec<f64>>()
    };
    let flat: Vec<f64> = panels.iter().chain(&blurred).flat_map(norm).collect();
    write_png_grid(out.join("comparison.png"), &flat, n, n, panels.len(), 0.0, 1.0, 6)?;
    write_json(&out.join("comparison.json"), &cmp)?;
    Ok(cmp)
}
