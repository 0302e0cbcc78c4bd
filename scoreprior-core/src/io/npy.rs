//! `.npy` arrays (NumPy's format): read into `f64` from the common float and integer dtypes,
//! written as `f64` or `f32`, atomically. The reader checks the size the header declares
//! (shape × dtype) against the file's before it reads the body (see [`super::open_input`]).

use std::io::Read;
use std::path::Path;

use npyz::{TypeChar, WriterBuilder};

use super::{atomic_write_with, IoError};

/// An n-dimensional array of `f64` in C order, as read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Values in C (row-major) order.
    pub data: Vec<f64>,
}

impl Array {
    /// An array after checking that `shape` matches `data`.
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> crate::Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(crate::Error::shape("array", format!("{shape:?} = {n} values"), data.len()));
        }
        Ok(Self { shape, data })
    }
    /// Number of leading "images" and the size of each, for shapes (N,D), (N,H,W) and
    /// (N,C,H,W).
    pub fn rows(&self) -> (usize, usize) {
        match self.shape.as_slice() {
            [] => (1, 1),
            [n, rest @ ..] => (*n, rest.iter().product()),
        }
    }
}

/// Reads a `.npy` file of `f32`, `f64`, unsigned or signed integers into `f64`.
///
/// Errors name the file and say what is wrong (missing, truncated, unsupported dtype,
/// Fortran order).
pub fn read_npy(path: impl AsRef<Path>) -> Result<Array, IoError> {
    read_npy_typed(path.as_ref()).map(|(a, _)| a)
}

/// Reads a `.npy` file of images with the one rule the command-line programs apply to
/// image pixels: floating-point arrays (`f32`, `f64`) are taken as they are (images in
/// `[0, 1]`); `u8` arrays are 8-bit images and are scaled by `1/255`, like 8-bit PNGs; any
/// other integer dtype is an error, since its scale is unknown (a `u16` or `i64` array could
/// hold 8-bit, 16-bit or label values): convert it to float in `[0, 1]`.
///
/// ```
/// let dir = std::env::temp_dir().join("scoreprior-doc-images");
/// let p = dir.join("x.npy");
/// scoreprior_core::io::write_npy(&p, &[1, 2], &[0.25, 1.0]).unwrap();
/// assert_eq!(scoreprior_core::io::read_npy_images(&p).unwrap().data, vec![0.25, 1.0]);
/// ```
pub fn read_npy_images(path: impl AsRef<Path>) -> Result<Array, IoError> {
    let path = path.as_ref();
    let (mut a, (kind, size)) = read_npy_typed(path)?;
    match (kind, size) {
        (TypeChar::Float, _) => {}
        (TypeChar::Uint, 1) => a.data.iter_mut().for_each(|v| *v /= 255.0),
        (TypeChar::Uint, n) | (TypeChar::Int, n) => {
            let t = if kind == TypeChar::Uint { "u" } else { "i" };
            return Err(IoError::unsupported(
                path,
                format!(
                    "integer image data of dtype {t}{} have no known scale; convert the images to float in [0, 1] \
                     (u8 arrays are read as 8-bit images and scaled by 1/255)",
                    8 * n
                ),
            ));
        }
        _ => {}
    }
    Ok(a)
}

/// The bytes of the `.npy` preamble: the magic `\x93NUMPY`, the version and the header
/// length (2 bytes in version 1, 4 after).
fn read_npy_header(path: &Path, r: &mut impl Read, len: u64) -> Result<Vec<u8>, IoError> {
    let short = |what: &str| IoError::malformed(path, "npy", format!("the file ends inside {what} ({len} bytes)"));
    let mut head = vec![0u8; 8];
    r.read_exact(&mut head).map_err(|_| short("the magic string and version"))?;
    if &head[..6] != b"\x93NUMPY" {
        return Err(IoError::malformed(path, "npy", "magic not found for NPY file"));
    }
    let size_bytes = if head[6] == 1 { 2 } else { 4 };
    head.resize(8 + size_bytes, 0);
    r.read_exact(&mut head[8..]).map_err(|_| short("the header length"))?;
    let header_len = head[8..].iter().rev().fold(0u64, |acc, &b| (acc << 8) | b as u64);
    // Checked before the header is read: a 4-byte length can claim 4 GiB.
    if 8 + size_bytes as u64 + header_len > len {
        return Err(IoError::malformed(
            path,
            "npy",
            format!("the header claims {header_len} bytes but the file holds {len} bytes in all"),
        ));
    }
    let start = head.len();
    head.resize(start + header_len as usize, 0);
    r.read_exact(&mut head[start..]).map_err(|_| short("the header"))?;
    Ok(head)
}

fn read_npy_typed(path: &Path) -> Result<(Array, (TypeChar, u64)), IoError> {
    let (file, len) = super::open_input(path)?;
    let mut r = std::io::BufReader::new(file).take(len);
    let head = read_npy_header(path, &mut r, len)?;
    let npy = npyz::NpyFile::new(&head[..]).map_err(|e| IoError::malformed(path, "npy", e.to_string()))?;
    if npy.order() == npyz::Order::Fortran {
        return Err(IoError::unsupported(path, "Fortran-ordered arrays are not supported; save with C order"));
    }
    let ts = match npy.dtype() {
        npyz::DType::Plain(ts) => ts,
        other => return Err(IoError::unsupported(path, format!("unsupported dtype {}", other.descr()))),
    };
    let kind = (ts.type_char(), ts.size_field());
    let supported = matches!(kind, (TypeChar::Float, 4 | 8) | (TypeChar::Uint, 1 | 2) | (TypeChar::Int, 4 | 8));
    if !supported {
        return Err(IoError::unsupported(path, format!("unsupported dtype {ts}; use f32, f64, u8, u16, i32 or i64")));
    }
    // The body's size from the header, checked against the file before a value is read.
    let n = npy.shape().iter().fold(1u128, |acc, &s| acc.saturating_mul(s as u128));
    let body = n.saturating_mul(kind.1 as u128);
    let have = (len - head.len() as u64) as u128;
    if body != have {
        return Err(IoError::malformed(
            path,
            "npy",
            format!(
                "shape {:?} of {ts} needs {body} bytes of data after the header, the file holds {have}",
                npy.shape()
            ),
        ));
    }
    // The values as f64 (and, for other dtypes, their typed copy while they are converted).
    let as_f64 = if kind.1 == 8 && kind.0 == TypeChar::Float { 8 } else { 8 + kind.1 as u128 };
    super::check_input_size(path, &format!("the array of shape {:?} as f64", npy.shape()), n.saturating_mul(as_f64))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&s| s as usize).collect();
    let npy = npyz::NpyFile::with_header(npy.header().clone(), r);
    let bad = |e: std::io::Error| IoError::malformed(path, "npy", e.to_string());
    let data: Vec<f64> = match kind {
        (TypeChar::Float, 8) => npy.into_vec::<f64>().map_err(bad)?,
        (TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(bad)?.into_iter().map(f64::from).collect(),
        (TypeChar::Uint, 1) => npy.into_vec::<u8>().map_err(bad)?.into_iter().map(f64::from).collect(),
        (TypeChar::Uint, 2) => npy.into_vec::<u16>().map_err(bad)?.into_iter().map(f64::from).collect(),
        (TypeChar::Int, 4) => npy.into_vec::<i32>().map_err(bad)?.into_iter().map(f64::from).collect(),
        _ => npy.into_vec::<i64>().map_err(bad)?.into_iter().map(|v| v as f64).collect(),
    };
    let n: usize = shape.iter().product();
    if data.len() != n {
        return Err(IoError::malformed(path, "npy", format!("shape {shape:?} needs {n} values, found {}", data.len())));
    }
    Ok((Array { shape, data }, kind))
}

/// Writes `data` with `shape` as a little-endian `f64` `.npy` file, atomically.
pub fn write_npy(path: impl AsRef<Path>, shape: &[usize], data: &[f64]) -> Result<(), IoError> {
    write_typed(path.as_ref(), shape, data.iter().copied())
}

/// Writes `data` with `shape` as an `f32` `.npy` file, atomically.
pub fn write_npy_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f64]) -> Result<(), IoError> {
    write_typed(path.as_ref(), shape, data.iter().map(|&v| v as f32))
}

fn write_typed<T: npyz::AutoSerialize>(
    path: &Path,
    shape: &[usize],
    data: impl Iterator<Item = T> + ExactSizeIterator,
) -> Result<(), IoError> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(IoError::unsupported(path, format!("shape {shape:?} needs {n} values, got {}", data.len())));
    }
    let shape64: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
    atomic_write_with(path, |w| {
        let mut writer = npyz::WriteOptions::new().default_dtype().shape(&shape64).writer(w).begin_nd()?;
        writer.extend(data)?;
        writer.finish()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("scoreprior-npy-{}", std::process::id()));
        let p = dir.join("x.npy");
        let data: Vec<f64> = (0..24).map(|i| i as f64 * 0.5 - 3.0).collect();
        write_npy(&p, &[2, 3, 4], &data).unwrap();
        let a = read_npy(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3, 4]);
        assert_eq!(a.data, data);
        assert_eq!(a.rows(), (2, 12));
        write_npy_f32(&p, &[4, 6], &data).unwrap();
        assert_eq!(read_npy(&p).unwrap().data, data);
        assert!(write_npy(&p, &[5, 5], &data).is_err());
        std::fs::write(&p, b"not a numpy file").unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("malformed npy"), "{e}");
        assert!(read_npy(dir.join("missing.npy")).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// `.npy` bytes of version `major` with header dictionary `dict`, then `body`.
    fn npy(major: u8, dict: &str, body: &[u8]) -> Vec<u8> {
        let mut h = dict.as_bytes().to_vec();
        h.push(b'\n');
        let mut b = b"\x93NUMPY".to_vec();
        b.extend([major, 0]);
        if major == 1 {
            b.extend((h.len() as u16).to_le_bytes());
        } else {
            b.extend((h.len() as u32).to_le_bytes());
        }
        b.extend(h);
        b.extend(body);
        b
    }

    #[test]
    fn the_size_the_header_declares_is_checked_before_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }";
        // 8 TB declared, nothing stored: an error naming both sizes, at once.
        std::fs::write(&p, npy(1, dict, &[])).unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("needs 8000000000000 bytes of data after the header, the file holds 0"), "{e}");
        // One value too many, or one too few: the file's size must be the header's.
        let ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
        std::fs::write(&p, npy(2, ok, &[0u8; 8])).unwrap();
        assert_eq!(read_npy(&p).unwrap().data, vec![0.0, 0.0]);
        for len in [4, 12] {
            std::fs::write(&p, npy(2, ok, &vec![0u8; len])).unwrap();
            let e = read_npy(&p).unwrap_err().to_string();
            assert!(e.contains(&format!("needs 8 bytes of data after the header, the file holds {len}")), "{e}");
        }
        // A 4-byte header length of 4 GiB in a file of 12 bytes: refused before it is read.
        let mut b = b"\x93NUMPY\x02\x00".to_vec();
        b.extend(u32::MAX.to_le_bytes());
        std::fs::write(&p, &b).unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("the header claims 4294967295 bytes but the file holds 12 bytes"), "{e}");
        // A (sparse) u8 file within the memory limit whose values as f64 are not: refused
        // before they are read.
        let n = crate::limits::memory_limit() / 2;
        let u8s = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({n},), }}");
        let head = npy(1, &u8s, &[]);
        std::fs::write(&p, &head).unwrap();
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(head.len() as u64 + n).unwrap();
        let t = std::time::Instant::now();
        let e = read_npy(&p).unwrap_err();
        assert!(matches!(e, IoError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains(&format!("the array of shape [{n}] as f64 needs about")), "{e}");
        assert!(t.elapsed().as_secs() < 2);
    }
}

/// The one reading of image-array shapes shared by the command-line programs, as
/// `(N, C, H, W)`: `(H, W)` is one gray image, `(N, H, W)` is `N` gray images, `(N, C, H, W)`
/// is a batch with channels. A 3-D array is never `(C, H, W)`: a colour image is given as
/// `(1, C, H, W)` (or a PNG). `what` names the flag in the error.
///
/// ```
/// use scoreprior_core::io::image_batch_shape;
/// assert_eq!(image_batch_shape("--x", &[16, 16]).unwrap(), (1, 1, 16, 16));
/// assert_eq!(image_batch_shape("--x", &[3, 16, 16]).unwrap(), (3, 1, 16, 16));
/// assert_eq!(image_batch_shape("--x", &[2, 3, 16, 16]).unwrap(), (2, 3, 16, 16));
/// assert!(image_batch_shape("--x", &[16]).is_err());
/// ```
pub fn image_batch_shape(what: &str, shape: &[usize]) -> Result<(usize, usize, usize, usize), String> {
    let s = match *shape {
        [h, w] => (1, 1, h, w),
        [n, h, w] => (n, 1, h, w),
        [n, c, h, w] => (n, c, h, w),
        _ => {
            return Err(format!(
                "{what}: array of shape {shape:?}: expected (H, W), (N, H, W) gray images or (N, C, H, W)"
            ))
        }
    };
    if s.0 == 0 || s.1 == 0 || s.2 == 0 || s.3 == 0 {
        return Err(format!("{what}: empty image array of shape {shape:?}"));
    }
    Ok(s)
}
