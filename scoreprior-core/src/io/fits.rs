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

/// The longest value of a FITS string card: 80 characters less `KEYWORD = '` and the closing
/// quote (FITS standard 4.0, §4.2.1), counting a doubled `''` as two.
const MAX_STRING: usize = 68;

impl FitsSky {
    /// `name` as a FITS `OBJECT` value: each character that is not printable ASCII becomes
    /// `_`, and the name is cut where its quoted form would pass the 68 characters of a card;
    /// the same name always gives the same result, and a valid name is kept as it is.
    ///
    /// ```
    /// use scoreprior_core::io::FitsSky;
    /// assert_eq!(FitsSky::object_name("Sgr A*"), "Sgr A*");
    /// assert_eq!(FitsSky::object_name("M87★ jet"), "M87_ jet");
    /// assert_eq!(FitsSky::object_name(&"x".repeat(100)).len(), 68);
    /// ```
    pub fn object_name(name: &str) -> String {
        let mut out = String::new();
        let mut quoted = 0;
        for c in name.chars() {
            let c = if c.is_ascii() && !c.is_ascii_control() { c } else { '_' };
            quoted += if c == '\'' { 2 } else { 1 };
            if quoted > MAX_STRING {
                break;
            }
            out.push(c);
        }
        out
    }

    /// Checks that this header fits FITS cards for a `height × width` image, the checks of
    /// [`fits_image_bytes`] (so a run can make them before its work): `OBJECT` printable ASCII
    /// of at most 68 characters quoted; a pixel size (`CDELT`, degrees) between 1e-20° and the
    /// size at which the image spans 180° of sky; a declination in [−90°, 90°]; every number
    /// finite and short enough for the 20-character value field.
    ///
    /// ```
    /// use scoreprior_core::io::FitsSky;
    /// let sky = FitsSky { object: "SgrA".into(), pixel_rad: 2.4e-11, ra_deg: 266.4, dec_deg: -29.0,
    ///     frequency_hz: 230e9, mjd: 57850.0 };
    /// assert!(sky.check(16, 16).is_ok());
    /// let huge = FitsSky { pixel_rad: 1e288, ..sky.clone() };
    /// assert!(huge.check(16, 16).unwrap_err().contains("CDELT"));
    /// ```
    ///
    /// # Errors
    /// What is wrong, in the header's terms (`OBJECT`, `CDELT`, `FREQ`, …).
    pub fn check(&self, height: usize, width: usize) -> Result<(), String> {
        if FitsSky::object_name(&self.object) != self.object {
            return Err(format!(
                "OBJECT must be printable ASCII of at most {MAX_STRING} characters (a FITS header rule), got `{}`",
                self.object
            ));
        }
        let deg = self.pixel_rad.to_degrees();
        let span = deg * height.max(width).max(1) as f64;
        if !(deg.is_finite() && deg >= 1e-20 && span <= 180.0) {
            return Err(format!(
                "CDELT (the pixel size) of {deg:e}° is not a sky pixel: it must be at least 1e-20° and the {height} × \
                 {width} image may span at most 180° (a field of view of {span:e}°)"
            ));
        }
        let values =
            [("CRVAL1", self.ra_deg), ("CRVAL2", self.dec_deg), ("FREQ", self.frequency_hz), ("MJD", self.mjd)];
        for (key, v) in values {
            if !v.is_finite() || real(v).len() > 20 {
                return Err(format!(
                    "{key} = {v:e} does not fit the 20 characters of a FITS header value (it must be finite)"
                ));
            }
        }
        if !(-90.0..=90.0).contains(&self.dec_deg) {
            return Err(format!("CRVAL2 (the declination) must be in [-90°, 90°], got {}", self.dec_deg));
        }
        Ok(())
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
    fits_bytes(data, None, height, width, sky)
}

/// A FITS cube of `depth` images of `height × width` (`NAXIS3 = depth`, e.g. posterior
/// samples), each image stored as [`fits_image_bytes`] stores one.
///
/// ```
/// use scoreprior_core::io::{fits_cube_bytes, FitsSky};
/// let sky = FitsSky { object: "M87".into(), pixel_rad: 2.4e-11, ra_deg: 187.7, dec_deg: 12.4,
///     frequency_hz: 229e9, mjd: 57854.0 };
/// let b = fits_cube_bytes(&[0.0; 3 * 2 * 2], 3, 2, 2, &sky).unwrap();
/// assert_eq!(b.len(), 2 * 2880);
/// assert!(String::from_utf8_lossy(&b[..2880]).contains("NAXIS3  =                    3"));
/// assert!(fits_cube_bytes(&[0.0; 5], 3, 2, 2, &sky).is_err());
/// ```
pub fn fits_cube_bytes(
    data: &[f64],
    depth: usize,
    height: usize,
    width: usize,
    sky: &FitsSky,
) -> Result<Vec<u8>, String> {
    if depth == 0 || data.len() != depth * height * width {
        return Err(format!(
            "a FITS cube needs depth × height × width = {depth} × {height} × {width} values, got {}",
            data.len()
        ));
    }
    fits_bytes(data, Some(depth), height, width, sky)
}

/// Writes a FITS cube ([`fits_cube_bytes`]), atomically.
pub fn write_fits_cube(
    path: impl AsRef<Path>,
    data: &[f64],
    depth: usize,
    height: usize,
    width: usize,
    sky: &FitsSky,
) -> Result<(), IoError> {
    let path = path.as_ref();
    let bytes = fits_cube_bytes(data, depth, height, width, sky).map_err(|why| IoError::unsupported(path, why))?;
    super::atomic_write(path, &bytes)
}

fn fits_bytes(
    data: &[f64],
    depth: Option<usize>,
    height: usize,
    width: usize,
    sky: &FitsSky,
) -> Result<Vec<u8>, String> {
    let planes = depth.unwrap_or(1);
    if height == 0 || width == 0 || data.len() != planes * height * width {
        return Err(format!("a FITS image needs height × width = {height} × {width} pixels, got {}", data.len()));
    }
    sky.check(height, width)?;
    let deg = sky.pixel_rad.to_degrees();
    let axes = if depth.is_some() { "3" } else { "2" };
    let mut cards = vec![
        card("SIMPLE", "T"),
        card("BITPIX", "-64"),
        card("NAXIS", axes),
        card("NAXIS1", &width.to_string()),
        card("NAXIS2", &height.to_string()),
    ];
    if let Some(d) = depth {
        cards.push(card("NAXIS3", &d.to_string()));
    }
    cards.extend([
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
    ]);
    let mut out =
        Vec::with_capacity((cards.len() * 80).div_ceil(BLOCK) * BLOCK + (data.len() * 8).div_ceil(BLOCK) * BLOCK);
    for c in &cards {
        out.extend_from_slice(format!("{c:<80}").as_bytes());
    }
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, b' ');
    // FITS rows go up from the bottom (south) row, in each plane.
    for plane in data.chunks(height * width) {
        for row in plane.chunks(width).rev() {
            for v in row {
                out.extend_from_slice(&v.to_be_bytes());
            }
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
///
/// The header is read block by block up to its `END` card; the image size it declares is
/// checked against the file's size and the memory limit before the pixels are read.
pub fn read_fits_image(path: impl AsRef<Path>) -> Result<FitsImage, IoError> {
    use std::io::Read;
    let path = path.as_ref();
    let (file, len) = super::open_input(path)?;
    let mut r = std::io::BufReader::new(file).take(len);
    let bad = |why: String| IoError::malformed(path, FORMAT, why);
    // Header blocks until the one holding the END card (at most the file's size).
    let mut head = Vec::new();
    loop {
        let at = head.len();
        head.resize(at + BLOCK, 0);
        let got = super::read_full(&mut r, &mut head[at..]).map_err(|e| IoError::os(path, e))?;
        head.truncate(at + got);
        if got < BLOCK || head[at..].chunks(80).any(|c| c.starts_with(b"END     ")) {
            break;
        }
    }
    let h = parse_fits_header(&head).map_err(bad)?;
    let body = h.width as u128 * h.height as u128 * h.size as u128;
    if (h.start as u128 + body) > len as u128 {
        return Err(bad(format!("the data are truncated: {len} bytes, {} needed", h.start as u128 + body)));
    }
    super::check_input_size(
        path,
        &format!("the {} × {} image", h.width, h.height),
        (h.width as u128 * h.height as u128).saturating_mul(8 + h.size as u128),
    )?;
    // The rest of the header's last block, then the pixels.
    let skip = (h.start - head.len().min(h.start)) as u64;
    std::io::copy(&mut (&mut r).take(skip), &mut std::io::sink()).map_err(|e| IoError::os(path, e))?;
    let mut raw = vec![0u8; body as usize];
    super::read_full(&mut r, &mut raw).map_err(|e| IoError::os(path, e)).and_then(|got| {
        if got == raw.len() {
            Ok(())
        } else {
            Err(bad("the data are truncated".into()))
        }
    })?;
    let data = decode_pixels(&raw, h.width, h.height, h.size);
    Ok(FitsImage { header: h.cards, height: h.height, width: h.width, data })
}

/// What a primary header declares: its cards, the image size, the bytes per pixel and where
/// the data start.
struct FitsHeader {
    cards: Vec<(String, String)>,
    width: usize,
    height: usize,
    size: usize,
    start: usize,
}

fn parse_fits_header(bytes: &[u8]) -> Result<FitsHeader, String> {
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
    let size = match bitpix {
        -64 => 8,
        -32 => 4,
        b => return Err(format!("BITPIX = {b} is not supported (only -64 and -32)")),
    };
    let start = (end * 80).div_ceil(BLOCK) * BLOCK;
    Ok(FitsHeader { cards: header, width: w as usize, height: h as usize, size, start })
}

/// Big-endian pixels (`size` 8 or 4 bytes), FITS rows bottom first, as `f64` in image order
/// (top row first).
fn decode_pixels(raw: &[u8], w: usize, h: usize, size: usize) -> Vec<f64> {
    let mut data = vec![0.0; w * h];
    for (r, row) in raw.chunks(w * size).take(h).enumerate() {
        let dst = &mut data[(h - 1 - r) * w..(h - r) * w];
        for (v, c) in dst.iter_mut().zip(row.chunks(size)) {
            *v = match c.try_into() {
                Ok(b) => f64::from_be_bytes(b),
                Err(_) => f32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f64,
            };
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A primary header declaring a `w × h` image of `BITPIX = -64`.
    fn header(w: usize, h: usize) -> Vec<u8> {
        let cards = [
            card("SIMPLE", "T"),
            card("BITPIX", "-64"),
            card("NAXIS", "2"),
            card("NAXIS1", &w.to_string()),
            card("NAXIS2", &h.to_string()),
            "END".to_string(),
        ];
        let mut b: Vec<u8> = cards.iter().flat_map(|c| format!("{c:<80}").into_bytes()).collect();
        b.resize(BLOCK, b' ');
        b
    }

    #[test]
    fn the_declared_image_size_is_checked_before_the_pixels_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.fits");
        // 2^20 × 2^20 pixels (8 TiB) declared, one block of data stored.
        let mut b = header(1 << 20, 1 << 20);
        b.resize(2 * BLOCK, 0);
        std::fs::write(&p, &b).unwrap();
        let e = read_fits_image(&p).unwrap_err().to_string();
        assert!(e.contains("the data are truncated: 5760 bytes, 8796093025088 needed"), "{e}");
        // The image as declared, with its padding: read (rows bottom first in the file).
        let mut b = header(2, 2);
        b.extend([1.0f64, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_be_bytes()));
        b.resize(2 * BLOCK, 0);
        std::fs::write(&p, &b).unwrap();
        assert_eq!(read_fits_image(&p).unwrap().data, [3.0, 4.0, 1.0, 2.0]);
        // A header without END (no end of blocks to read), and a file cut inside the header.
        std::fs::write(&p, vec![b' '; 3 * BLOCK]).unwrap();
        assert!(read_fits_image(&p).unwrap_err().to_string().contains("no END card"));
        std::fs::write(&p, &header(2, 2)[..100]).unwrap();
        assert!(read_fits_image(&p).unwrap_err().to_string().contains("no END card"));
    }
}
