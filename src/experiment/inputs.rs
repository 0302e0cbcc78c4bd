//! Reading the input files of a run: paths also looked up in the source tree, gray images
//! from `.npy` or PNG, and Gaussian priors from mean and covariance files; errors are
//! [`ExperimentError::Invalid`](super::ExperimentError::Invalid) naming the setting the file
//! came from.

use std::path::{Path, PathBuf};

use scoreprior_core::io::{read_npy, read_npy_images, read_png, Array};
use scoreprior_core::score::Gaussian;
use scoreprior_core::sde::AnySde;

use super::{invalid, Result};

/// A relative path that does not exist from the working directory is also looked up in the
/// source tree (so the shipped `assets/` defaults work when a program runs elsewhere).
///
/// ```
/// use std::path::Path;
/// let p = scoreprior::experiment::inputs::resolve(Path::new("assets/gaussian16/mean.npy"));
/// assert!(p.exists());
/// ```
pub fn resolve(path: &Path) -> PathBuf {
    if !path.exists() && path.is_relative() {
        let alt = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        if alt.exists() {
            return alt;
        }
    }
    path.to_path_buf()
}

fn load(field: &'static str, path: &Path) -> Result<Array> {
    let path = &resolve(path);
    if !path.exists() {
        return Err(invalid(field, format!("file {} does not exist", path.display())));
    }
    read_npy(path).map_err(|e| invalid(field, e.to_string()))
}

/// Loads a Gaussian `N(mean, cov)` from a `(D,)` and a `(D, D)` `.npy` file (errors name
/// `prior.mean` and `prior.cov`, which the command line shows as `--mean` and `--cov`).
///
/// ```
/// use std::path::Path;
/// use scoreprior::core::sde::{AnySde, VpSde};
/// use scoreprior::experiment::inputs::load_gaussian;
///
/// let (m, c) = (Path::new("assets/gaussian16/mean.npy"), Path::new("assets/gaussian16/cov.npy"));
/// let g = load_gaussian(m, c, AnySde::Vp(VpSde::default())).unwrap();
/// assert_eq!(g.mean().len(), 256);
/// ```
///
/// # Errors
/// A missing or unreadable file, a mean that is not a finite vector, a covariance of the
/// wrong shape or not symmetric positive definite.
pub fn load_gaussian(mean: &Path, cov: &Path, sde: AnySde) -> Result<Gaussian> {
    let m = load("prior.mean", mean)?;
    let c = load("prior.cov", cov)?;
    let d = m.data.len();
    if m.shape.len() != 1 {
        return Err(invalid("prior.mean", format!("shape {:?}: expected a vector (D,)", m.shape)));
    }
    // Checked here so that a bad mean is not reported against prior.cov by Gaussian::new.
    if let Some(i) = m.data.iter().position(|v| !v.is_finite()) {
        let why = format!("{}: entry {i} is {}; the mean must be finite", mean.display(), m.data[i]);
        return Err(invalid("prior.mean", why));
    }
    if c.shape != [d, d] {
        return Err(invalid("prior.cov", format!("shape {:?} does not match the mean: expected ({d}, {d})", c.shape)));
    }
    Gaussian::new(m.data, &c.data, sde).map_err(|e| invalid("prior.cov", format!("{}: {e}", cov.display())))
}

/// Reads image `index` of a gray `.npy` ((H, W), (N, H, W) or (N, 1, H, W); floats as they
/// are, u8 / 255, other integers an error) or PNG file, as `(H, W, pixels)`; errors are
/// [`ExperimentError::Invalid`](super::ExperimentError::Invalid) naming `field` (the setting's
/// path, such as `problem.x_true`, or a flag), or `problem.index` for an index past a
/// `problem.x_true` batch.
///
/// ```
/// use std::path::Path;
/// use scoreprior::experiment::inputs::load_image;
///
/// let (h, w, x) = load_image("problem.x_true", Path::new("assets/fashion16_test.npy"), 0).unwrap();
/// assert_eq!((h, w, x.len()), (16, 16, 256));
/// ```
///
/// # Errors
/// A missing or unreadable file, a colour PNG, a shape that is not a gray image batch, an
/// index past the batch, non-finite pixels.
pub fn load_image(field: &'static str, path: &Path, index: usize) -> Result<(usize, usize, Vec<f64>)> {
    let path = resolve(path);
    if !path.exists() {
        return Err(invalid(field, format!("{} does not exist", path.display())));
    }
    let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    // .npy images follow the one rule of `read_npy_images` (floats as they are, u8 / 255,
    // other integers an error); a colour PNG is an error, not three gray images.
    let a = if is_npy { read_npy_images(&path) } else { read_png(&path) }.map_err(|e| invalid(field, e.to_string()))?;
    if !is_npy && a.shape.first() == Some(&3) {
        let why = format!("{} is a colour PNG; the priors are gray: convert it to gray first", path.display());
        return Err(invalid(field, why));
    }
    let (n, h, w) = match a.shape.as_slice() {
        [h, w] | [1, h, w] => (1, *h, *w),
        [n, h, w] | [n, 1, h, w] => (*n, *h, *w),
        s => return Err(invalid(field, format!("shape {s:?}: expected (H, W), (N, H, W) or (N, 1, H, W)"))),
    };
    if index >= n {
        return Err(if field == "problem.x_true" {
            invalid("problem.index", format!("{index}: the file holds {n} images"))
        } else {
            invalid(field, format!("index {index}: the file holds {n} images"))
        });
    }
    let d = h * w;
    let x = a.data[index * d..(index + 1) * d].to_vec();
    if x.iter().any(|v| !v.is_finite()) {
        return Err(invalid(field, "non-finite pixels"));
    }
    Ok((h, w, x))
}
