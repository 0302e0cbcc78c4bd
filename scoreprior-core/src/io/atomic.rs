use std::io::Write;
use std::path::{Path, PathBuf};

use super::IoError;

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically: to a temporary file in the same folder, flushed to
/// disk, then renamed over `path`. Readers see the old file or the new one, never a part.
///
/// ```
/// let dir = std::env::temp_dir().join("scoreprior-doc-atomic");
/// std::fs::create_dir_all(&dir).unwrap();
/// let p = dir.join("a.txt");
/// scoreprior_core::io::atomic_write(&p, b"hello").unwrap();
/// assert_eq!(std::fs::read(&p).unwrap(), b"hello");
/// ```
pub fn atomic_write(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), IoError> {
    atomic_write_with(path, |w| w.write_all(bytes))
}

/// Like [`atomic_write`], with the contents produced by a writer callback.
pub fn atomic_write_with(
    path: impl AsRef<Path>,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<(), IoError> {
    let path = path.as_ref();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| IoError::os(dir, e))?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(IoError::os(path, e));
    }
    Ok(())
}
