//! Reading the input files of a command: `.npy` arrays and images (relative paths also looked
//! up in the source tree), Gaussian priors from mean and covariance files, and the score model
//! that `--prior` names; errors name the flag the file came from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use scoreprior_core::io::{read_npy, read_npy_images, Array};
use scoreprior_core::score::{Gaussian, GaussianMixture, ScoreModel};
use scoreprior_core::sde::AnySde;
use scoreprior_models::score::{NcsnppScore, Precision};

pub use scoreprior::experiment::inputs::{load_gaussian, resolve};

use super::logprob::LogprobArgs;
use super::ode_args::SdeName;
use super::CliResult;

/// Reads an `.npy` file, naming the flag it came from in errors.
pub fn load(flag: &str, path: &Path) -> CliResult<Array> {
    let path = &resolve(path);
    if !path.exists() {
        return Err(format!("--{flag}: file {} does not exist", path.display()).into());
    }
    read_npy(path).map_err(|e| format!("--{flag}: {e}").into())
}

/// Reads an `.npy` file of images, naming the flag it came from in errors, with the image
/// rule of [`read_npy_images`]: floats as they are, u8 scaled by 1/255, other integers
/// rejected.
pub fn load_images(flag: &str, path: &Path) -> CliResult<Array> {
    let path = &resolve(path);
    if !path.exists() {
        return Err(format!("--{flag}: file {} does not exist", path.display()).into());
    }
    read_npy_images(path).map_err(|e| format!("--{flag}: {e}").into())
}

/// Checks an image batch of shape (N, D), (N, H, W) or (N, C, H, W); returns `(N, D)`.
pub fn image_rows(flag: &str, a: &Array) -> CliResult<(usize, usize)> {
    if !(2..=4).contains(&a.shape.len()) {
        return Err(
            format!("--{flag}: array of shape {:?}: expected (N, D), (N, H, W) or (N, C, H, W)", a.shape).into()
        );
    }
    let (n, d) = a.rows();
    if n == 0 || d == 0 {
        return Err(format!("--{flag}: array of shape {:?} is empty", a.shape).into());
    }
    Ok((n, d))
}

/// A score model selected by `--prior`. New kinds (trained networks) plug in here: the
/// checkpoint branch of [`build_model`] is the extension point.
pub enum LoadedModel {
    /// Analytic Gaussian.
    Gaussian(Gaussian),
    /// Analytic Gaussian mixture.
    Mixture(GaussianMixture),
    /// A trained network and the SDE it was trained with (from its checkpoint).
    Network {
        /// The score model.
        model: Arc<dyn ScoreModel>,
        /// Its SDE, which replaces the `--sde` default.
        sde: AnySde,
    },
}

impl LoadedModel {
    /// The model as a shared trait object.
    pub fn into_arc(self) -> Arc<dyn ScoreModel> {
        match self {
            LoadedModel::Gaussian(g) => Arc::new(g),
            LoadedModel::Mixture(m) => Arc::new(m),
            LoadedModel::Network { model, .. } => model,
        }
    }
}

fn need<'a>(p: &'a Option<PathBuf>, flag: &str, prior: &str) -> CliResult<&'a Path> {
    p.as_deref().ok_or_else(|| format!("--prior {prior} needs --{flag}").into())
}

/// Builds the score model named by `--prior`.
pub fn build_model(args: &LogprobArgs, sde: AnySde, sde_name: SdeName) -> CliResult<LoadedModel> {
    match args.prior.as_str() {
        "gaussian" => {
            let (m, c) = (need(&args.mean, "mean", "gaussian")?, need(&args.cov, "cov", "gaussian")?);
            Ok(LoadedModel::Gaussian(load_gaussian(m, c, sde)?))
        }
        "gmm" => {
            let w = load("weights", need(&args.weights, "weights", "gmm")?)?;
            let mu = load("means", need(&args.means, "means", "gmm")?)?;
            let s = load("stds", need(&args.stds, "stds", "gmm")?)?;
            if w.shape.len() != 1 {
                return Err(format!("--weights: shape {:?}: expected (K,)", w.shape).into());
            }
            let k = w.data.len();
            if mu.shape.first() != Some(&k) || mu.shape.len() < 2 {
                return Err(format!("--means: shape {:?}: expected ({k}, D) for {k} weights", mu.shape).into());
            }
            Ok(LoadedModel::Mixture(GaussianMixture::new(&w.data, &mu.data, &s.data, sde)?))
        }
        other => {
            let p = Path::new(other);
            if !p.exists() {
                return Err(
                    format!("--prior {other}: expected `gaussian`, `gmm` or an existing checkpoint file").into()
                );
            }
            // Trained NCSN++ networks; other network kinds plug in here as further
            // `LoadedModel::Network` sources.
            if sde_name != SdeName::Vp {
                return Err(format!("--prior {other}: NCSN++ checkpoints are VP models; --sde must be vp").into());
            }
            let prec = if args.f64 { Precision::F64 } else { Precision::F32 };
            let m = NcsnppScore::load(p).map_err(|e| format!("--prior {other}: {e}"))?.with_precision(prec);
            let sde = AnySde::Vp(*m.sde());
            Ok(LoadedModel::Network { model: Arc::new(m), sde })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_rows_rejects_bad_shapes() {
        let ok = Array::new(vec![2, 3, 4], vec![0.0; 24]).unwrap();
        assert_eq!(image_rows("x", &ok).unwrap(), (2, 12));
        let flat = Array::new(vec![5], vec![0.0; 5]).unwrap();
        assert!(image_rows("x", &flat).unwrap_err().to_string().contains("expected (N, D)"));
        let five = Array::new(vec![1, 1, 1, 1, 2], vec![0.0; 2]).unwrap();
        assert!(image_rows("x", &five).is_err());
    }
}
