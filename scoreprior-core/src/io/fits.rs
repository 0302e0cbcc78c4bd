//! Images as FITS primary HDUs, the format radio astronomers' viewers open: 2880-byte blocks
//! of 80-character header cards, then the pixels as big-endian IEEE doubles (`BITPIX = -64`),
//! first FITS row = the bottom (south) image row. Sky axes as eht-imaging's `save_fits`:
//! `RA---SIN`/`DEC--SIN`, `CDELT1 = −Δ` (RA decreases to the right), `CDELT2 = +Δ` (degrees),
//! reference pixel at the image centre (`CRPIX = N/2 + 0.5`), `BUNIT = 'JY/PIXEL'`.
//!
//! Written by hand: the maintained Rust FITS crate, `fitsio`, binds the C library cfitsio;
//! a primary image HDU is a few dozen lines.

use std::path::Path;

use super::IoError;

const BLOCK: usize = 2880;
const FORMAT: &str = "FITS";

/// What a sky image is, for its FITS header.
#[derive(Debug, Clone, PartialEq)]
pub struct FitsSky {
    /// Source name (`OBJECT`).
    pub object: String,
    /// Pixel size, radians.
    pub pixel_rad: f64,
    /// Right ascension of the image centre, degrees (`CRVAL1`, `OBSRA`).
    pub ra_deg: f64,
    /// Declination of the image centre, degrees (`CRVAL2`, `OBSDEC`).
    pub dec_deg: f64,
    /// Observing frequency, Hz (`FREQ`).
    pub frequency_hz: f64,
    /// Modified Julian date (`MJD`).
    pub mjd: f64,
}

/// A FITS image read back: its header cards and its pixels in image order (row 0 = top).
#[derive(Debug, Clone, PartialEq)]
pub struct FitsImage {
    /// `(keyword, value)` of every card before `END`, values as written (strings unquoted).
    pub header: Vec<(String, String)>,
    /// Rows (`NAXIS2`).
    pub height: usize,
    /// Columns (`NAXIS1`).
    pub width: usize,
    /// `height × width` pixels, row-major, top row first.
    pub data: Vec<f64>,
}

impl FitsImage {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.header.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// The value of `key` as a number, if present and numeric.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|v| v.replace('D', "E").parse().ok())
    }
}

fn card(key: &str, value: &str) -> String {
    format!("{key:<8}= {value:>20}")
}
fn text_card(key: &str, value: &str) -> String {
    let v = value.replace('\'', "''");
    format!("{key:<8}= '{v:<8}'")
}
/// 14 significant digits, at most 20 characters (the fixed-format value field).
fn real(v: f64) -> String {
    format!("{v:.13E}")
}

/// The bytes of a FITS file holding the `height × width` image `data` (row-major, top row
/// first, Jy per pixel).
///
/// ```
/// use scoreprior_core::io::{fits_image_bytes, FitsSky};
/// let sky = FitsSky { object: "SgrA".into(), pixel_rad: 2.4e-11, ra_deg: 266.4, dec_deg: -29.0,
///     frequency_hz: 230e9, mjd: 57850.0 };
/// let b = fits_image_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3, &sky).unwrap();
/// assert_eq!(b.len(), 2 * 2880); // one header block, one data block
/// assert!(b.starts_with(b"SIMPLE  =                    T"));
/// ```
pub fn fits_image_bytes(data: &[f64], height: usize, width: usize, sky: &FitsSky) -> Result<Vec<u8>, String> {
    if height == 0 || width == 0 || data.len() != height * width {
        return Err(format!("a FITS image needs height × width = {height} × {width} pixels, got {}", data.len()));
    }
    let finite = [sky.pixel_rad, sky.ra_deg, sky.dec_deg, sky.frequency_hz, sky.mjd];
    if !finite.iter().all(|v| v.is_finite()) || !(sky.pixel_rad > 0.0) {
        return Err("a FITS sky header needs a positive pixel size and finite coordinates".into());
    }
    if !sky.object.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) || sky.object.len() > 60 {
        return Err(format!("OBJECT must be printable ASCII of at most 60 characters, got `{}`", sky.object));
    }
    let deg = sky.pixel_rad.to_degrees();
    let cards = [
        card("SIMPLE", "T"),
        card("BITPIX", "-64"),
        card("NAXIS", "2"),
        card("NAXIS1", &width.to_string()),
        card("NAXIS2", &height.to_string()),
        text_card("OBJECT", &sky.object),
        text_card("CTYPE1", "RA---SIN"),
        text_card("CTYPE2", "DEC--SIN"),
        card("CDELT1", &real(-deg)),
        card("CDELT2", &real(deg)),
        card("CRPIX1", &real(width as f64 / 2.0 + 0.5)),
        card("CRPIX2", &real(height as f64 / 2.0 + 0.5)),
        card("CRVAL1", &real(sky.ra_deg)),
        card("CRVAL2", &real(sky.dec_deg)),
        card("OBSRA", &real(sky.ra_deg)),
        card("OBSDEC", &real(sky.dec_deg)),
        card("FREQ", &real(sky.frequency_hz)),
        card("MJD", &real(sky.mjd)),
        text_card("TELESCOP", "VLBI"),
        text_card("BUNIT", "JY/PIXEL"),
        text_card("STOKES", "I"),
        "END".to_string(),
    ];
    let mut out =
        Vec::with_capacity((cards.len() * 80).div_ceil(BLOCK) * BLOCK + (data.len() * 8).div_ceil(BLOCK) * BLOCK);
    for c in &cards {
        out.extend_from_slice(format!("{c:<80}").as_bytes());
    }
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, b' ');
    // FITS rows go up from the bottom (south) row.
    for row in data.chunks(width).rev() {
        for v in row {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    Ok(out)
}

/// Writes the image as a FITS file, atomically ([`super::atomic_write`]).
///
/// ```
/// use scoreprior_core::io::{read_fits_image, write_fits_image, FitsSky};
/// let p = std::env::temp_dir().join("scoreprior-doc-fits").join("ring.fits");
/// let sky = FitsSky { object: "ring".into(), pixel_rad: 2.4e-11, ra_deg: 266.4, dec_deg: -29.0,
///     frequency_hz: 230e9, mjd: 57850.0 };
/// write_fits_image(&p, &[0.0, 1.0, 2.0, 3.0], 2, 2, &sky).unwrap();
/// let back = read_fits_image(&p).unwrap();
/// assert_eq!(back.data, [0.0, 1.0, 2.0, 3.0]);
/// assert_eq!(back.get("BUNIT"), Some("JY/PIXEL"));
/// ```
pub fn write_fits_image(
    path: impl AsRef<Path>,
    data: &[f64],
    height: usize,
    width: usize,
    sky: &FitsSky,
) -> Result<(), IoError> {
    let path = path.as_ref();
    let bytes = fits_image_bytes(data, height, width, sky).map_err(|why| IoError::unsupported(path, why))?;
    super::atomic_write(path, &bytes)
}

/// Reads a 2-D primary-HDU FITS image of `BITPIX = -64` or `-32` (extensions are ignored).
pub fn read_fits_image(path: impl AsRef<Path>) -> Result<FitsImage, IoError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| IoError::os(path, e))?;
    parse_fits_image(&bytes).map_err(|why| IoError::malformed(path, FORMAT, why))
}

fn parse_fits_image(bytes: &[u8]) -> Result<FitsImage, String> {
    let mut header = Vec::new();
    let mut end = None;
    for (i, c) in bytes.chunks(80).enumerate() {
        if c.len() < 80 {
            break;
        }
        if !c.is_ascii() {
            return Err(format!("header card {} is not ASCII", i + 1));
        }
        let c = std::str::from_utf8(c).map_err(|_| format!("header card {} is not ASCII", i + 1))?;
        let key = c[..8].trim_end().to_string();
        if key == "END" {
            end = Some(i + 1);
            break;
        }
        if c.get(8..10) == Some("= ") {
            let raw = c[10..].trim();
            let value = if let Some(q) = raw.strip_prefix('\'') {
                q.find('\'').map_or(q, |e| &q[..e]).trim_end().to_string()
            } else {
                raw.split('/').next().unwrap_or("").trim().to_string()
            };
            header.push((key, value));
        }
    }
    let end = end.ok_or("no END card")?;
    let get = |k: &str| header.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    if get("SIMPLE") != Some("T") {
        return Err("the first card is not SIMPLE = T".into());
    }
    let int = |k: &str| -> Result<i64, String> {
        get(k).and_then(|v| v.parse().ok()).ok_or_else(|| format!("{k} is missing or not an integer"))
    };
    let bitpix = int("BITPIX")?;
    if int("NAXIS")? != 2 {
        return Err("only 2-D images are read (NAXIS = 2)".into());
    }
    let (w, h) = (int("NAXIS1")?, int("NAXIS2")?);
    if !(1..=1 << 20).contains(&w) || !(1..=1 << 20).contains(&h) {
        return Err(format!("image size {w} × {h} out of range"));
    }
    let (w, h) = (w as usize, h as usize);
    let size = match bitpix {
        -64 => 8,
        -32 => 4,
        b => return Err(format!("BITPIX = {b} is not supported (only -64 and -32)")),
    };
    let start = (end * 80).div_ceil(BLOCK) * BLOCK;
    let need = start + w * h * size;
    if bytes.len() < need {
        return Err(format!("the data are truncated: {} bytes, {need} needed", bytes.len()));
    }
    let vals: Vec<f64> = bytes[start..need]
        .chunks(size)
        .map(|c| match c.try_into() {
            Ok(b) => f64::from_be_bytes(b),
            Err(_) => f32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64,
        })
        .collect();
    let mut data = Vec::with_capacity(w * h);
    for row in vals.chunks(w).rev() {
        data.extend_from_slice(row);
    }
    Ok(FitsImage { header, height: h, width: w, data })
}
