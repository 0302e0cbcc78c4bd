//! PNG images (and the other formats the `image` crate reads) as `(C, H, W)` arrays in
//! `[0, 1]`, and gray images and image grids written as 8-bit PNGs, atomically.

use std::path::Path;

use super::{atomic_write, npy::Array, IoError};

/// Reads a PNG (8- or 16-bit, gray or RGB(A)) as a `(C, H, W)` array in `[0, 1]`, with
/// `C = 1` for gray images and `C = 3` for colour ones (alpha is dropped).
///
/// The file is read through [`super::read_input`] (a regular file within the memory limit),
/// and the image size its header declares is checked against the memory limit before the
/// pixels are decoded.
pub fn read_png(path: impl AsRef<Path>) -> Result<Array, IoError> {
    let path = path.as_ref();
    let bytes = super::read_input(path)?;
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(&bytes[..]))
            .with_guessed_format()
            .map_err(|e| IoError::os(path, e))
    };
    let (w, h) = reader()?.into_dimensions().map_err(|e| IoError::malformed(path, "image", e.to_string()))?;
    // The decoded image (up to 8 bytes a pixel), its 16-bit copy and the f64 array.
    super::check_input_size(path, &format!("the {w} × {h} image"), w as u128 * h as u128 * 38)?;
    let img = reader()?.decode().map_err(|e| IoError::malformed(path, "image", e.to_string()))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let gray = matches!(
        img.color(),
        image::ColorType::L8 | image::ColorType::L16 | image::ColorType::La8 | image::ColorType::La16
    );
    if gray {
        let g = img.to_luma16();
        let data = g.pixels().map(|p| p.0[0] as f64 / 65535.0).collect();
        Ok(Array { shape: vec![1, h, w], data })
    } else {
        let rgb = img.to_rgb16();
        let mut data = vec![0.0; 3 * h * w];
        for (i, p) in rgb.pixels().enumerate() {
            for c in 0..3 {
                data[c * h * w + i] = p.0[c] as f64 / 65535.0;
            }
        }
        Ok(Array { shape: vec![3, h, w], data })
    }
}

fn encode_gray(path: &Path, w: usize, h: usize, px: Vec<u8>) -> Result<(), IoError> {
    let img = image::GrayImage::from_raw(w as u32, h as u32, px)
        .ok_or_else(|| IoError::unsupported(path, "pixel count does not match the image size"))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png).map_err(|e| IoError::unsupported(path, e.to_string()))?;
    atomic_write(path, bytes.get_ref())
}

fn to_u8(v: f64, lo: f64, hi: f64) -> u8 {
    let s = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
    (s.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Writes an `h × w` gray image to PNG, mapping `[lo, hi]` to black–white (clipping),
/// atomically.
pub fn write_png_gray(
    path: impl AsRef<Path>,
    h: usize,
    w: usize,
    data: &[f64],
    lo: f64,
    hi: f64,
) -> Result<(), IoError> {
    let path = path.as_ref();
    if data.len() != h * w {
        return Err(IoError::unsupported(path, format!("{h}×{w} image needs {} values, got {}", h * w, data.len())));
    }
    encode_gray(path, w, h, data.iter().map(|&v| to_u8(v, lo, hi)).collect())
}

/// Writes `n` gray `h × w` images as a grid with `cols` columns and a 1-pixel gap,
/// scaling each pixel, as a PNG upscaled by `zoom` (nearest neighbour) so small images are
/// visible.
#[allow(clippy::too_many_arguments)]
pub fn write_png_grid(
    path: impl AsRef<Path>,
    images: &[f64],
    h: usize,
    w: usize,
    cols: usize,
    lo: f64,
    hi: f64,
    zoom: usize,
) -> Result<(), IoError> {
    let path = path.as_ref();
    if h * w == 0 || images.len() % (h * w) != 0 || cols == 0 || zoom == 0 {
        return Err(IoError::unsupported(path, "grid needs whole images and positive cols/zoom"));
    }
    let n = images.len() / (h * w);
    let rows = n.div_ceil(cols);
    let (gw, gh) = (cols * (w + 1) + 1, rows * (h + 1) + 1);
    let mut px = vec![128u8; gw * gh];
    for k in 0..n {
        let (r, c) = (k / cols, k % cols);
        for i in 0..h {
            for j in 0..w {
                px[(r * (h + 1) + 1 + i) * gw + c * (w + 1) + 1 + j] = to_u8(images[k * h * w + i * w + j], lo, hi);
            }
        }
    }
    let (zw, zh) = (gw * zoom, gh * zoom);
    let mut big = vec![0u8; zw * zh];
    for y in 0..zh {
        for x in 0..zw {
            big[y * zw + x] = px[(y / zoom) * gw + x / zoom];
        }
    }
    encode_gray(path, zw, zh, big)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip() {
        let dir = std::env::temp_dir().join(format!("scoreprior-png-{}", std::process::id()));
        let p = dir.join("g.png");
        let data: Vec<f64> = (0..12).map(|i| i as f64 / 11.0).collect();
        write_png_gray(&p, 3, 4, &data, 0.0, 1.0).unwrap();
        let a = read_png(&p).unwrap();
        assert_eq!(a.shape, vec![1, 3, 4]);
        for (x, y) in a.data.iter().zip(&data) {
            assert!((x - y).abs() <= 0.5 / 255.0 + 1e-9);
        }
        write_png_grid(dir.join("grid.png"), &data, 2, 3, 2, 0.0, 1.0, 2).unwrap();
        std::fs::write(&p, b"garbage").unwrap();
        assert!(read_png(&p).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
