//! Image data sets for training and evaluation: IDX (MNIST / Fashion-MNIST, raw or gzip),
//! `.npy` (`(N,H,W)` or `(N,C,H,W)`: float, or `u8` scaled by 1/255 as everywhere in the CLI,
//! see [`scoreprior_core::io::read_npy_images`]; other integer dtypes are rejected) and
//! folders of PNG files, resized by area averaging (each output pixel is the overlap-weighted
//! mean of the input pixels it covers) and scaled to `[0, 1]`.

use std::path::{Path, PathBuf};

use scoreprior_core::io::{read_idx_images, read_npy_images, read_png, Array};
use serde::{Deserialize, Serialize};

use crate::ModelError;

/// A set of `n` images of `c × h × w` in `[0, 1]`, flattened row-major `(n, c·h·w)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Values, image after image, each in C order.
    pub data: Vec<f32>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim().max(1)
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Values per image.
    pub fn dim(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let d = self.dim();
        &self.data[i * d..(i + 1) * d]
    }
    /// All images as `f64`.
    pub fn to_f64(&self) -> Vec<f64> {
        self.data.iter().map(|&v| v as f64).collect()
    }
}

/// How raw images were turned into training data (stored in checkpoint metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// The source path as given.
    pub source: String,
    /// Size after resizing (`h`, `w`).
    pub size: (usize, usize),
    /// Channels.
    pub channels: usize,
    /// Pixel range of the network input.
    pub range: (f64, f64),
    /// Resampling method.
    pub resize: String,
    /// Random horizontal flips during training.
    pub random_flip: bool,
}

/// Which split to pick from a directory holding an IDX pair of files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train-images-idx3-ubyte[.gz]`.
    Train,
    /// `t10k-images-idx3-ubyte[.gz]`.
    Test,
}

/// Loads a data set: an IDX file, a directory with IDX files (the split picks
/// `train-`/`t10k-`), a `.npy` file, or a directory of PNG files. Images are resized by
/// area averaging to `size` (if given) and scaled to `[0, 1]`; `limit` keeps the first ones.
///
/// ```no_run
/// use scoreprior_models::data::{load_dataset, Split};
/// let d = load_dataset("../shared/data/fashion-mnist", Split::Test, Some((16, 16)), Some(100)).unwrap();
/// assert_eq!((d.len(), d.h, d.w), (100, 16, 16));
/// ```
pub fn load_dataset(
    path: impl AsRef<Path>,
    split: Split,
    size: Option<(usize, usize)>,
    limit: Option<usize>,
) -> Result<Dataset, ModelError> {
    let path = path.as_ref();
    let raw = read_raw(path, split, limit)?;
    let (n, c, h, w) = match raw.shape.as_slice() {
        [n, h, w] => (*n, 1, *h, *w),
        [n, c, h, w] => (*n, *c, *h, *w),
        s => {
            return Err(ModelError::shape(
                format!("the images of {}", path.display()),
                "(N,H,W) or (N,C,H,W)",
                format!("{s:?}"),
            ))
        }
    };
    if n == 0 || c == 0 || h == 0 || w == 0 {
        return Err(ModelError::data(path, format!("empty data set {:?}", raw.shape)));
    }
    let n = limit.map_or(n, |l| l.min(n));
    let (oh, ow) = size.unwrap_or((h, w));
    if oh == 0 || ow == 0 {
        return Err(ModelError::count_out_of_range("the target size", oh.min(ow), "positive"));
    }
    scoreprior_core::limits::check_elems(&format!("{n} images of {c}×{oh}×{ow} (f32)"), &[n, c, oh, ow], 4)?;
    let mut data = Vec::with_capacity(n * c * oh * ow);
    for i in 0..n {
        for ch in 0..c {
            let o = (i * c + ch) * h * w;
            let img = &raw.data[o..o + h * w];
            data.extend(area_resize(img, h, w, oh, ow).into_iter().map(|v| v as f32));
        }
    }
    Ok(Dataset { c, h: oh, w: ow, data })
}

/// Reads the source into an array with values in `[0, 1]`.
fn read_raw(path: &Path, split: Split, limit: Option<usize>) -> Result<Array, ModelError> {
    let name = path.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    if path.is_dir() {
        let prefix = match split {
            Split::Train => "train-images",
            Split::Test => "t10k-images",
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| scoreprior_core::io::IoError::os(path, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        if let Some(idx) =
            entries.iter().find(|p| p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(prefix)))
        {
            return read_idx(idx, limit);
        }
        let pngs: Vec<&PathBuf> =
            entries.iter().filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"))).collect();
        if pngs.is_empty() {
            return Err(ModelError::data(path, format!("no {prefix}-idx3-ubyte[.gz] file and no PNG images")));
        }
        let take = limit.map_or(pngs.len(), |l| l.min(pngs.len()));
        let mut data = Vec::new();
        let mut shape: Option<Vec<usize>> = None;
        for p in &pngs[..take] {
            let a = read_png(p)?;
            match &shape {
                None => shape = Some(a.shape.clone()),
                Some(s) if *s != a.shape => {
                    return Err(ModelError::shape(
                        format!("{} (the first image's shape)", p.display()),
                        format!("{s:?}"),
                        format!("{:?}", a.shape),
                    ))
                }
                _ => {}
            }
            data.extend(a.data);
        }
        let s = shape.expect("at least one png");
        let mut full = vec![take];
        full.extend(s);
        return Ok(Array::new(full, data)?);
    }
    if name.ends_with(".npy") {
        let mut a = read_npy_images(path)?;
        let max = a.data.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let min = a.data.iter().cloned().fold(f64::INFINITY, f64::min);
        if !(min.is_finite() && max.is_finite()) {
            return Err(ModelError::data(path, "non-finite values"));
        }
        if min < 0.0 || max > 255.0 {
            return Err(ModelError::data(path, format!("values in [{min}, {max}]; expected [0,1] or [0,255]")));
        }
        if max > 1.0 {
            // Byte-valued float images (a data-set convenience): scale to [0, 1].
            a.data.iter_mut().for_each(|v| *v /= 255.0);
        }
        return Ok(a);
    }
    if name.contains("idx3") {
        return read_idx(path, limit);
    }
    Err(ModelError::data(path, "unknown data format (expected an IDX file, a .npy file or a directory)"))
}

fn read_idx(path: &Path, limit: Option<usize>) -> Result<Array, ModelError> {
    let mut a = read_idx_images(path, limit)?;
    a.data.iter_mut().for_each(|v| *v /= 255.0);
    Ok(a)
}

/// Area-averaging resize of one `h × w` channel to `oh × ow`: output pixel `(i, j)` is the
/// mean over the input rectangle `[i·h/oh, (i+1)·h/oh) × [j·w/ow, (j+1)·w/ow)`, weighting
/// partly covered pixels by their overlap (exact for any ratio; separable).
pub fn area_resize(img: &[f64], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f64> {
    let weights = |n: usize, on: usize| -> Vec<Vec<(usize, f64)>> {
        (0..on)
            .map(|i| {
                let (a, b) = (i as f64 * n as f64 / on as f64, (i + 1) as f64 * n as f64 / on as f64);
                let mut v = Vec::new();
                let mut k = a.floor() as usize;
                while (k as f64) < b && k < n {
                    let ov = (b.min(k as f64 + 1.0) - a.max(k as f64)).max(0.0);
                    if ov > 0.0 {
                        v.push((k, ov / (b - a)));
                    }
                    k += 1;
                }
                v
            })
            .collect()
    };
    let (wy, wx) = (weights(h, oh), weights(w, ow));
    let mut tmp = vec![0.0; oh * w];
    for (i, ws) in wy.iter().enumerate() {
        for &(k, a) in ws {
            for x in 0..w {
                tmp[i * w + x] += a * img[k * w + x];
            }
        }
    }
    let mut out = vec![0.0; oh * ow];
    for i in 0..oh {
        for (j, ws) in wx.iter().enumerate() {
            out[i * ow + j] = ws.iter().map(|&(k, a)| a * tmp[i * w + k]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_resize_matches_block_means_and_preserves_mean() {
        // Integer ratio: 4x4 -> 2x2 is the 2x2 block mean.
        let img: Vec<f64> = (0..16).map(|v| v as f64).collect();
        let r = area_resize(&img, 4, 4, 2, 2);
        assert_eq!(r, vec![2.5, 4.5, 10.5, 12.5]);
        // Non-integer ratio (28 -> 16) keeps the image mean exactly.
        let img: Vec<f64> = (0..28 * 28).map(|v| ((v * 37) % 101) as f64).collect();
        let r = area_resize(&img, 28, 28, 16, 16);
        let m0 = img.iter().sum::<f64>() / img.len() as f64;
        let m1 = r.iter().sum::<f64>() / r.len() as f64;
        assert!((m0 - m1).abs() < 1e-9, "{m0} vs {m1}");
        // A constant image stays constant.
        let r = area_resize(&[3.0; 28 * 28], 28, 28, 16, 16);
        assert!(r.iter().all(|v| (v - 3.0).abs() < 1e-12));
    }

    #[test]
    fn npy_sources_are_scaled_and_bad_files_are_errors() {
        let dir = std::env::temp_dir().join(format!("spm-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let vals: Vec<f64> = (0..2 * 4 * 4).map(|v| (v * 8 % 256) as f64).collect();
        scoreprior_core::io::write_npy(&p, &[2, 4, 4], &vals).unwrap();
        let d = load_dataset(&p, Split::Train, Some((2, 2)), None).unwrap();
        assert_eq!((d.len(), d.c, d.h, d.w), (2, 1, 2, 2));
        assert!(d.data.iter().all(|v| (0.0..=1.0).contains(v)));
        let bad = dir.join("bad.npy");
        std::fs::write(&bad, b"\x93NUMPY garbage").unwrap();
        assert!(load_dataset(&bad, Split::Train, None, None).is_err());
        let neg = dir.join("neg.npy");
        scoreprior_core::io::write_npy(&neg, &[1, 2, 2], &[-1.0, 0.0, 0.0, 0.0]).unwrap();
        assert!(matches!(load_dataset(&neg, Split::Train, None, None), Err(ModelError::Data { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }
}
