//! File formats shared by the library and the CLI: `.npy` arrays, IDX image files
//! (MNIST / Fashion-MNIST, raw or gzip), PNG images, FITS sky images, and atomic writes (temp file +
//! rename) so an interrupted run never leaves a half-written result, and checks of output
//! paths (no output overwrites an input; the destination is writable, and regular). The
//! bookkeeping of run folders (manifests, locks) belongs to the application, `scoreprior-cli`.
//!
//! Every loader opens its input with [`open_input`] (or [`read_input`]): the path must be a
//! regular file (a folder, a device such as `/dev/zero`, a named pipe or a socket is an error
//! at once, not a read that blocks or never ends), its size must be within the memory limit
//! ([`crate::limits`]), and a loader reads at most that size: a format with a header checks the
//! size the header declares against the file's before it reads the body.

mod atomic;
mod csv_table;
mod fits;
mod idx;
mod npy;
mod paths;
mod png;

pub use atomic::{atomic_write, atomic_write_with};
pub use csv_table::{csv_bytes, read_csv, write_csv};
pub use fits::{
    fits_cube_bytes, fits_image_bytes, read_fits_image, write_fits_cube, write_fits_image, FitsImage, FitsSky,
};
pub use idx::read_idx_images;
pub use npy::{image_batch_shape, read_npy, read_npy_images, write_npy, write_npy_f32, Array};
pub use paths::{
    check_outputs_distinct, check_regular_output, ensure_writable_dir, path_key, path_kind, prefix_png_npy, PathError,
    FOLDER, REGULAR_FILE,
};
pub use png::{read_png, write_png_gray, write_png_grid};

use std::io::Read;
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
    /// The path is not a regular file (a folder, a device, a named pipe, a socket): `kind`
    /// says which.
    #[error("{path} is {kind}, not a regular file; give the path of a file")]
    NotAFile { path: String, kind: &'static str },
    /// The file, or the data its header declares, is above the memory limit
    /// ([`crate::limits`]); `why` is the limit's message (the size, the limit, its origin).
    #[error("{path}: {why}")]
    TooLarge { path: String, why: String },
    /// The contents to write could not be encoded as a `format` file (a serialiser's
    /// failure, kept as the source).
    #[error("{path}: cannot encode the {format} file: {source}")]
    Encode { path: String, format: &'static str, source: Box<dyn std::error::Error + Send + Sync + 'static> },
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
    /// The contents of `path` could not be encoded as a `format` file, because `source`.
    pub fn encode(
        path: &Path,
        format: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        IoError::Encode { path: path.display().to_string(), format, source: source.into() }
    }
}

/// The entries of the folder `dir` (path and type), read lazily, each failure naming its path:
/// the one walk of the folder recursions (input hashes, the sweep of stale temporaries).
pub fn dir_entries(
    dir: &Path,
) -> Result<impl Iterator<Item = Result<(std::path::PathBuf, std::fs::FileType), IoError>> + '_, IoError> {
    let entries = std::fs::read_dir(dir).map_err(|e| IoError::os(dir, e))?;
    Ok(entries.map(move |e| {
        let e = e.map_err(|e| IoError::os(dir, e))?;
        let p = e.path();
        let ft = e.file_type().map_err(|e| IoError::os(&p, e))?;
        Ok((p, ft))
    }))
}

/// What a path that is not a regular file is, in words.
pub fn file_kind(t: &std::fs::FileType) -> Option<&'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return Some("a character device");
        }
        if t.is_block_device() {
            return Some("a block device");
        }
        if t.is_fifo() {
            return Some("a named pipe (FIFO)");
        }
        if t.is_socket() {
            return Some("a socket");
        }
    }
    if t.is_dir() {
        Some("a folder")
    } else if t.is_file() {
        None
    } else {
        Some("not a file")
    }
}

/// Fails with [`IoError::TooLarge`] naming `path` when `bytes` (of `what`, e.g. `the array of
/// shape [1000000, 1000000] as f64`) exceed the memory limit.
///
/// ```
/// use scoreprior_core::io::check_input_size;
/// let p = std::path::Path::new("big.npy");
/// assert!(check_input_size(p, "a small array", 1024).is_ok());
/// let e = check_input_size(p, "the array", u128::MAX).unwrap_err().to_string();
/// assert!(e.starts_with("big.npy: the array needs about") && e.contains("memory limit"), "{e}");
/// ```
pub fn check_input_size(path: &Path, what: &str, bytes: u128) -> Result<(), IoError> {
    crate::limits::check_bytes(what, bytes)
        .map_err(|e| IoError::TooLarge { path: path.display().to_string(), why: e.to_string() })
}

/// Opens the input file `path` for reading after checking, before any byte is read, that it
/// is a regular file (not a folder, a device such as `/dev/zero`, a named pipe or a socket,
/// whose reads could block or never end) and that its size is within the memory limit.
/// Returns the file and its size; a loader reads at most that many bytes (`file.take(len)`).
///
/// ```
/// use scoreprior_core::io::{open_input, IoError};
/// let dir = std::env::temp_dir().join("scoreprior-doc-open-input");
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("a.bin"), b"abc").unwrap();
/// assert_eq!(open_input(&dir.join("a.bin")).unwrap().1, 3);
/// assert!(matches!(open_input(&dir), Err(IoError::NotAFile { kind: "a folder", .. })));
/// # #[cfg(unix)]
/// assert!(matches!(open_input("/dev/zero".as_ref()), Err(IoError::NotAFile { .. })));
/// ```
pub fn open_input(path: &Path) -> Result<(std::fs::File, u64), IoError> {
    let check = |meta: &std::fs::Metadata| -> Result<u64, IoError> {
        if let Some(kind) = file_kind(&meta.file_type()) {
            return Err(IoError::NotAFile { path: path.display().to_string(), kind });
        }
        check_input_size(path, "reading the whole file", meta.len() as u128)?;
        Ok(meta.len())
    };
    // The path is checked before it is opened: opening a named pipe blocks until a writer comes.
    check(&std::fs::metadata(path).map_err(|e| IoError::os(path, e))?)?;
    let file = std::fs::File::open(path).map_err(|e| IoError::os(path, e))?;
    // And the opened file again, in case the path was replaced in between.
    let len = check(&file.metadata().map_err(|e| IoError::os(path, e))?)?;
    Ok((file, len))
}

/// The bytes of the input file `path`, checked as by [`open_input`] and read with a bounded
/// reader (at most the size the file had when opened).
///
/// ```
/// let p = std::env::temp_dir().join("scoreprior-doc-read-input.txt");
/// std::fs::write(&p, b"hello").unwrap();
/// assert_eq!(scoreprior_core::io::read_input(&p).unwrap(), b"hello");
/// assert!(scoreprior_core::io::read_input(std::path::Path::new("no/such/file")).is_err());
/// ```
pub fn read_input(path: &Path) -> Result<Vec<u8>, IoError> {
    let (file, len) = open_input(path)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut bytes).map_err(|e| IoError::os(path, e))?;
    Ok(bytes)
}

/// Reads into `buf` until it is full or the reader ends; the count read.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folders, devices, named pipes and files above the memory limit are refused before a
    /// byte is read (a named pipe without a writer would block the open itself).
    #[test]
    fn inputs_must_be_regular_files_within_the_memory_limit() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_input(dir.path()).unwrap_err().to_string();
        assert!(e.contains("is a folder, not a regular file"), "{e}");
        #[cfg(unix)]
        {
            let e = read_input(Path::new("/dev/zero")).unwrap_err().to_string();
            assert!(e.contains("/dev/zero is a character device"), "{e}");
            let fifo = dir.path().join("pipe");
            assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
            let e = read_input(&fifo).unwrap_err().to_string();
            assert!(e.contains("named pipe"), "{e}");
        }
        // A sparse file of 1 TiB: its size alone is an error, and nothing is read.
        let big = dir.path().join("big.bin");
        std::fs::File::create(&big).unwrap().set_len(1 << 40).unwrap();
        let t = std::time::Instant::now();
        let e = read_input(&big).unwrap_err();
        assert!(matches!(e, IoError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("big.bin: reading the whole file needs about 1024.000 GiB"), "{e}");
        assert!(t.elapsed().as_secs() < 2);
        let small = dir.path().join("small.bin");
        std::fs::write(&small, b"abc").unwrap();
        assert_eq!(read_input(&small).unwrap(), b"abc");
    }
}
