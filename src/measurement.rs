//! Simulated measurements `y = A(x) + n` and the files that come with them: the naive
//! reconstruction `Aᵀy` of a linear operator (the dirty image for interferometry), and for an
//! interferometer its uv coverage and the closure quantities of the noisy visibilities.

use std::path::Path;

use scoreprior_core::forward::interferometry::{Interferometer, UAS};
use scoreprior_core::forward::ops::ClosureProducts;
use scoreprior_core::forward::{EhtSettings, ForwardModel, Model, Op, Shape};
use scoreprior_core::io::{write_fits_image, write_npy, write_png_grid, FitsSky};

use crate::experiment::Result;
use crate::monitor::Monitor;

/// Writes `uv.npy` (`(K, 4)`: u, v [λ], σ [Jy], time [h] of each visibility) and
/// `closures.npy` (`(N, M)`: the closure phases, then the log closure amplitudes, of each of
/// the `n` measurements in `y`) into `dir`, describing the coverage and both files through
/// `monitor.line`.
///
/// # Errors
/// A file cannot be written.
pub fn write_interferometry(
    dir: &Path,
    eht: &Interferometer,
    y: &[f64],
    n: usize,
    monitor: &mut dyn Monitor,
) -> Result<()> {
    let cov = eht.coverage();
    let uv: Vec<f64> = cov.points.iter().flat_map(|p| [p.u, p.v, p.sigma, p.time_hour]).collect();
    let uv_path = dir.join("uv.npy");
    write_npy(&uv_path, &[cov.points.len(), 4], &uv)?;
    let sets = eht.closures();
    let k = cov.points.len();
    let op = ClosureProducts::new(k, sets.triangles, sets.quadrangles)?;
    let m = op.output_shape().len();
    let mut clos = vec![0.0; n * m];
    for (ci, yi) in clos.chunks_mut(m).zip(y.chunks(2 * k)) {
        op.apply(yi, ci);
    }
    let c_path = dir.join("closures.npy");
    write_npy(&c_path, &[n, m], &clos)?;
    monitor.line(&format!(
        "eht:      {} visibilities on {} baselines over {} scans, max baseline {:.2} Gλ, pixel {:.2} µas",
        k,
        cov.baselines().len(),
        cov.times().len(),
        cov.max_baseline() / 1e9,
        eht.pixel_size() / UAS
    ));
    monitor.line(&format!("wrote     {} (u, v [λ], σ [Jy], time [h])", uv_path.display()));
    monitor.line(&format!(
        "wrote     {} ({} closure phases then {} log closure amplitudes)",
        c_path.display(),
        op.n_phases(),
        op.n_amplitudes()
    ));
    Ok(())
}

/// The FITS sky header of images taken by `eht` as `settings` describe it: the source,
/// position, frequency and date of the observation file when there is one, else of the
/// simulated observation (Sgr A*-like).
///
/// ```
/// use scoreprior::core::forward::EhtSettings;
///
/// let settings = EhtSettings::parse("eht(fov=160)").unwrap().unwrap();
/// let eht = settings.interferometer(16).unwrap();
/// let sky = scoreprior::measurement::sky_header(&settings, &eht).unwrap();
/// assert_eq!(sky.object, "SgrA");
/// ```
///
/// A source name that FITS cannot hold (not printable ASCII, or longer than a header card
/// allows) is replaced by [`FitsSky::object_name`]'s deterministic form; the header is checked
/// ([`FitsSky::check`]) here, before any work, rather than when the first FITS file is written.
///
/// # Errors
/// The observation file cannot be read; a header value does not fit FITS (e.g. a pixel size
/// of an absurd field of view).
pub fn sky_header(settings: &EhtSettings, eht: &Interferometer) -> Result<FitsSky> {
    Ok(sky_header_noted(settings, eht)?.0)
}

/// [`sky_header`], with a note for the user when the source name had to be changed for FITS.
///
/// ```
/// use scoreprior::core::forward::EhtSettings;
///
/// let settings = EhtSettings::parse("eht(fov=160)").unwrap().unwrap();
/// let eht = settings.interferometer(16).unwrap();
/// let (sky, note) = scoreprior::measurement::sky_header_noted(&settings, &eht).unwrap();
/// assert_eq!((sky.object.as_str(), note), ("SgrA", None));
/// ```
///
/// # Errors
/// As [`sky_header`].
pub fn sky_header_noted(settings: &EhtSettings, eht: &Interferometer) -> Result<(FitsSky, Option<String>)> {
    let o = &settings.observation;
    let (source, ra_deg, dec_deg, frequency_hz, mjd) = match settings.observation()? {
        Some(p) => {
            let f = p.observation;
            (f.source, f.ra_hours * 15.0, f.dec_deg, f.frequency_hz, f.mjd)
        }
        None => ("SgrA".to_string(), o.ra_deg, o.dec_deg, o.frequency_hz, o.mjd),
    };
    let object = FitsSky::object_name(&source);
    let note = (object != source).then(|| {
        let file = if settings.observation_files.is_empty() {
            String::new()
        } else {
            format!(" of {}", settings.observation_label())
        };
        format!(
            "note: the source name `{source}`{file} is not printable ASCII of at most 68 characters, which a FITS \
             header needs; the FITS files name it `{object}`"
        )
    });
    let sky = FitsSky { object, pixel_rad: eht.pixel_size(), ra_deg, dec_deg, frequency_hz, mjd };
    let shape = eht.image_shape();
    sky.check(shape.h, shape.w).map_err(|why| {
        crate::experiment::invalid_setting(
            "problem.forward",
            format!("eht: the FITS header of its images would be invalid: {why}"),
        )
    })?;
    Ok((sky, note))
}

/// For a linear `model`, writes `Aᵀy` of the `n` measurements in `y` as `aty.npy`
/// (`(N, C, H, W)` for images of `shape`), `aty.png` (one tile per channel of each image,
/// scaled to the batch's range) and, with a `sky` header, the first image as `aty.fits`;
/// `interferometric` names it the dirty image. A non-linear model has no `Aᵀy`: a note says so.
/// Each file is named through `monitor.line`.
///
/// # Errors
/// The adjoint's errors; a file cannot be written.
pub fn write_adjoint(
    dir: &Path,
    model: &Model,
    (y, n, shape): (&[f64], usize, Shape),
    sky: Option<&FitsSky>,
    interferometric: bool,
    monitor: &mut dyn Monitor,
) -> Result<()> {
    if !model.is_linear() {
        monitor.line("note:     the forward model is non-linear, so there is no Aᵀy to write");
        return Ok(());
    }
    let aty = model.adjoint(y)?;
    let npy = dir.join("aty.npy");
    write_npy(&npy, &[n, shape.c, shape.h, shape.w], &aty)?;
    // One tile per channel of each image, each scaled to the range of the whole batch.
    let png = dir.join("aty.png");
    let zoom = (256 / shape.h.max(shape.w)).clamp(1, 8);
    write_png_grid(&png, &aty, shape.h, shape.w, (n * shape.c).min(8), min(&aty), max(&aty), zoom)?;
    let what = if interferometric { "dirty image Aᵀy" } else { "naive reconstruction Aᵀy" };
    monitor.line(&format!("wrote     {} and {} ({what})", npy.display(), png.display()));
    if let Some(sky) = sky {
        let fits = dir.join("aty.fits");
        write_fits_image(&fits, &aty[..shape.h * shape.w], shape.h, shape.w, sky)?;
        monitor.line(&format!("wrote     {} (the first dirty image as FITS, RA---SIN/DEC--SIN)", fits.display()));
    }
    Ok(())
}

/// The smallest value (`+∞` for none).
///
/// ```
/// assert_eq!(scoreprior::measurement::min(&[2.0, -1.0]), -1.0);
/// ```
pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// The largest value (`−∞` for none).
pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}
