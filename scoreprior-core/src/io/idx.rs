//! IDX image files (the MNIST / Fashion-MNIST format), raw or gzip-compressed.

use std::io::Read;
use std::path::Path;

use super::{npy::Array, IoError};

/// Reads an IDX3 unsigned-byte image file (MNIST / Fashion-MNIST format), raw or gzip
/// (detected from the magic bytes), as an `(N, H, W)` array with values in `[0, 255]`.
///
/// `limit` keeps only the first images. Errors name the file and the defect (bad magic,
/// truncated data, a size above the memory limit). A raw file's size is checked against the
/// `N × H × W` of its header before the pixels are read; a gzip file is decompressed through a
/// reader bounded by the memory limit.
pub fn read_idx_images(path: impl AsRef<Path>, limit: Option<usize>) -> Result<Array, IoError> {
    let path = path.as_ref();
    let (file, len) = super::open_input(path)?;
    let mut r = std::io::BufReader::new(file).take(len);
    let mut magic = [0u8; 2];
    let got = super::read_full(&mut r, &mut magic).map_err(|e| IoError::os(path, e))?;
    let head = std::io::Cursor::new(magic[..got].to_vec());
    if magic[..got] == [0x1f, 0x8b] {
        // Decompressed through a bounded reader: at most the memory limit, one byte more tells
        // that the limit is exceeded.
        let cap = crate::limits::memory_limit();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(head.chain(r))
            .take(cap.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| IoError::malformed(path, "gzip", e.to_string()))?;
        if out.len() as u64 > cap {
            super::check_input_size(path, "the decompressed IDX data", cap as u128 + 1)?;
        }
        let bytes = out.len() as u64;
        return idx_images(path, &mut &out[..], bytes, limit);
    }
    idx_images(path, &mut head.chain(r), len, limit)
}

/// The images of the uncompressed IDX stream `r` of `len` bytes in all: the header, its
/// declared size against `len`, then the first `limit` images.
fn idx_images(path: &Path, r: &mut impl Read, len: u64, limit: Option<usize>) -> Result<Array, IoError> {
    let mut header = [0u8; 16];
    if len < 16 || super::read_full(r, &mut header).map_err(|e| IoError::os(path, e))? < 16 {
        return Err(IoError::malformed(path, "IDX", "file shorter than the 16-byte header"));
    }
    let word = |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]) as usize;
    if word(0) != 0x0000_0803 {
        return Err(IoError::malformed(
            path,
            "IDX",
            format!("magic {:#010x} is not 0x00000803 (unsigned-byte images with 3 dimensions)", word(0)),
        ));
    }
    let (n, h, w) = (word(4), word(8), word(12));
    let need = n.checked_mul(h).and_then(|v| v.checked_mul(w)).unwrap_or(usize::MAX);
    if ((len - 16) as u128) < need as u128 {
        return Err(IoError::malformed(
            path,
            "IDX",
            format!("header says {n}×{h}×{w} = {need} pixels but the file holds {}", len - 16),
        ));
    }
    let keep = limit.map_or(n, |l| l.min(n));
    let pixels = keep * h * w;
    super::check_input_size(path, &format!("{keep} images of {h}×{w} as f64"), pixels as u128 * 9)?;
    let mut raw = vec![0u8; pixels];
    r.read_exact(&mut raw).map_err(|e| IoError::malformed(path, "IDX", e.to_string()))?;
    let data = raw.into_iter().map(f64::from).collect();
    Ok(Array { shape: vec![keep, h, w], data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_raw_gzip_and_errors() {
        let dir = std::env::temp_dir().join(format!("scoreprior-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut file = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        file.extend((0..12u8).collect::<Vec<_>>());
        let p = dir.join("a.idx");
        std::fs::write(&p, &file).unwrap();
        let a = read_idx_images(&p, None).unwrap();
        assert_eq!(a.shape, vec![2, 2, 3]);
        assert_eq!(a.data[11], 11.0);
        let gz = dir.join("a.idx.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &file).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read_idx_images(&gz, Some(1)).unwrap().shape, vec![1, 2, 3]);
        std::fs::write(&p, &file[..20]).unwrap();
        assert!(read_idx_images(&p, None).unwrap_err().to_string().contains("header says"));
        file[3] = 1;
        std::fs::write(&p, &file).unwrap();
        assert!(read_idx_images(&p, None).unwrap_err().to_string().contains("magic"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
