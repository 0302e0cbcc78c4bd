//! File formats shared by the library and the CLI: `.npy` arrays, IDX image files
//! (MNIST / Fashion-MNIST, raw or gzip), PNG images, FITS sky images, and atomic writes (temp file +
//! rename) so an interrupted run never leaves a half-written result, and checks of output
//! paths (no output overwrites an input; the destination is writable), and the bookkeeping of
//! output folders (`run.json` manifests, locks, stale temporaries: [`RunManifest`],
//! [`OutputLock`]).

mod atomic;
mod csv_table;
mod fits;
mod idx;
mod npy;
mod paths;
mod png;
mod run;

pub use atomic::{atomic_write, atomic_write_with};
pub use csv_table::{csv_bytes, read_csv, write_csv};
pub use fits::{fits_image_bytes, read_fits_image, write_fits_image, FitsImage, FitsSky};
pub use idx::read_idx_images;
pub use npy::{image_batch_shape, read_npy, read_npy_images, write_npy, write_npy_f32, Array};
pub use paths::{check_outputs_distinct, ensure_writable_dir, path_key, prefix_png_npy, PathError};
pub use png::{read_png, write_png_gray, write_png_grid};
pub use run::{
    check_same_run, compare, hash_path, move_aside, process_alive, sweep_stale_tmp, InputHash, OutputLock, RunManifest,
    RunState, LOCK_FILE, MANIFEST_FILE,
};

use std::path::Path;

/// Errors of file input and output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// The operating system refused a read or write.
    #[error("{path}: {source}")]
    Os { path: String, source: std::io::Error },
    /// The file exists but its contents are not what the format requires.
    #[error("{path}: malformed {format} file: {why}")]
    Malformed { path: String, format: &'static str, why: String },
    /// The file is well-formed but holds an unsupported type or shape.
    #[error("{path}: {why}")]
    Unsupported { path: String, why: String },
}

impl IoError {
    /// The operating system's error `source` on `path`.
    pub fn os(path: &Path, source: std::io::Error) -> Self {
        IoError::Os { path: path.display().to_string(), source }
    }
    /// `path` is not a well-formed `format` file, because `why`.
    pub fn malformed(path: &Path, format: &'static str, why: impl Into<String>) -> Self {
        IoError::Malformed { path: path.display().to_string(), format, why: why.into() }
    }
    pub(crate) fn unsupported(path: &Path, why: impl Into<String>) -> Self {
        IoError::Unsupported { path: path.display().to_string(), why: why.into() }
    }
}
