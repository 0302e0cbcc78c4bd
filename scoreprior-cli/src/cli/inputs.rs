//! Reading the input files of a command: `.npy` arrays and images (relative paths also looked
//! up in the source tree) and Gaussian priors from mean and covariance files; errors name the
//! flag the file came from. (The score model that `--prior` names is built by the command that
//! takes it, from these loaders; nothing here depends on a command's arguments.)

use std::path::Path;

use scoreprior_core::io::{read_npy, read_npy_images, Array};

pub use scoreprior::experiment::inputs::{load_gaussian, resolve};

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
