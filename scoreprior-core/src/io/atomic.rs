//! Atomic writes: the bytes go to a named temporary file in the destination folder (so the
//! final rename stays on one file system), are flushed to disk, and the file is renamed over
//! the destination; a reader sees the old file or the new one, never a part. The temporary
//! is `tempfile`'s, named `NAME.<pid>.<random>.tmp` so that a sweep at the next start can tell
//! the leftovers of a killed process (swept by the application's run folders) from a live writer's.

use std::io::Write;
use std::path::Path;

use super::IoError;

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
    fill: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> std::io::Result<()>,
) -> Result<(), IoError> {
    let path = path.as_ref();
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| IoError::os(d, e))?;
            d
        }
        None => Path::new("."),
    };
    // A path with no file name (`/`, `..`) cannot be written as a file: say so, rather than
    // make a nameless temporary and fail at the rename.
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path (no file name)");
        return Err(IoError::os(path, e));
    };
    // A rename over a device, FIFO or socket would replace it with a plain file (`/dev/full`
    // as root became one): only regular files (or new paths) are written.
    if let Err(e) = super::check_regular_output("output", path) {
        return Err(IoError::os(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, e.0)));
    }
    let result = (|| {
        // Removed on drop unless persisted: an error on the way leaves nothing behind.
        let prefix = format!("{name}.{}.", std::process::id());
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp").rand_bytes(6);
        // A temporary file is private (0600) by default; the result is an ordinary output file,
        // readable like any other the user writes (0644 before the umask).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let tmp = builder.tempfile_in(dir)?;
        let mut w = std::io::BufWriter::new(tmp.as_file());
        fill(&mut w)?;
        w.flush()?;
        drop(w);
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    })();
    result.map_err(|e| IoError::os(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        atomic_write(&p, b"old").unwrap();
        let e = atomic_write_with(&p, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("interrupted"))
        });
        assert!(e.unwrap_err().to_string().contains("out.json"));
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.json")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Whatever the umask, an atomic write is as readable as a plain `File::create`.
            let plain = dir.path().join("plain");
            std::fs::write(&plain, b"x").unwrap();
            let mode = |q: &Path| std::fs::metadata(q).unwrap().permissions().mode() & 0o444;
            assert_eq!(mode(&p), mode(&plain));
        }
        let e = atomic_write(dir.path().join(".."), b"x").unwrap_err().to_string();
        assert!(e.contains("no file name"), "{e}");
        #[cfg(unix)]
        {
            // A FIFO stays a FIFO.
            let fifo = dir.path().join("fifo");
            assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
            let e = atomic_write(&fifo, b"x").unwrap_err().to_string();
            assert!(e.contains("FIFO") && e.contains("regular file"), "{e}");
            use std::os::unix::fs::FileTypeExt;
            assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        }
    }
}
