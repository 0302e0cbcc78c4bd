//! FITS header cards and data values: the 80-character `KEYWORD = value / comment` cards of
//! a header up to `END` (string values unquoted, `''` a quote), padded to 2880-byte blocks,
//! and the big-endian values of each `BITPIX` type.

use std::path::Path;

use crate::io::IoError;

const FORMAT: &str = "uvfits";
/// The FITS block size: headers and data are padded to a multiple of it.
pub(super) const BLOCK: usize = 2880;
/// The length of a header card.
pub(super) const CARD: usize = 80;

/// A header: `(keyword, value)` per card before `END`, string values unquoted.
pub(super) struct Header {
    cards: Vec<(String, String)>,
    at: usize,
}

impl Header {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.cards.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    pub(super) fn text(&self, key: &str) -> String {
        self.get(key).map(|s| s.trim().to_string()).unwrap_or_default()
    }
    pub(super) fn number(&self, key: &str, path: &Path) -> std::result::Result<Option<f64>, IoError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.trim().replace(['D', 'd'], "E").parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(bad(
                    path,
                    format!("{key} = `{}` (header at byte {}) is not a finite number", v.trim(), self.at),
                )),
            },
        }
    }
    pub(super) fn number_or(&self, key: &str, default: f64, path: &Path) -> std::result::Result<f64, IoError> {
        Ok(self.number(key, path)?.unwrap_or(default))
    }
    pub(super) fn int(&self, key: &str, path: &Path) -> std::result::Result<i64, IoError> {
        let v = self.get(key).ok_or_else(|| bad(path, format!("the header at byte {} has no {key} card", self.at)))?;
        v.trim()
            .parse::<i64>()
            .map_err(|_| bad(path, format!("{key} = `{}` (header at byte {}) is not an integer", v.trim(), self.at)))
    }
    pub(super) fn size(&self, key: &str, path: &Path) -> std::result::Result<usize, IoError> {
        let v = self.int(key, path)?;
        usize::try_from(v).map_err(|_| bad(path, format!("{key} = {v} (header at byte {}) is negative", self.at)))
    }
}

pub(super) fn bad(path: &Path, why: impl Into<String>) -> IoError {
    IoError::malformed(path, FORMAT, why)
}

/// The header starting at byte `at`, and the offset of its data (the next block boundary).
pub(super) fn header(bytes: &[u8], at: usize, path: &Path) -> std::result::Result<(Header, usize), IoError> {
    let mut cards = Vec::new();
    let mut pos = at;
    loop {
        let Some(card) = bytes.get(pos..pos + CARD) else {
            return Err(bad(
                path,
                format!(
                    "the header at byte {at} ends at byte {} without an END card (is the file truncated?)",
                    bytes.len()
                ),
            ));
        };
        pos += CARD;
        if let Some(k) = card.iter().position(|c| !(0x20..=0x7e).contains(c)) {
            return Err(bad(
                path,
                format!(
                    "header card at byte {} holds a byte that is not printable ASCII (0x{:02x})",
                    pos - CARD + k,
                    card[k]
                ),
            ));
        }
        // Printable ASCII, hence UTF-8.
        let card = std::str::from_utf8(card).unwrap_or_default();
        let key = card[..8].trim_end();
        if key == "END" {
            break;
        }
        if &card[8..10] != "= " {
            continue; // COMMENT, HISTORY, blank
        }
        let v = card[10..].trim_start();
        let value = if let Some(s) = v.strip_prefix('\'') {
            // A string: up to the closing quote, `''` is a quote.
            let mut out = String::new();
            let mut it = s.chars().peekable();
            while let Some(c) = it.next() {
                if c == '\'' {
                    if it.peek() == Some(&'\'') {
                        it.next();
                    } else {
                        break;
                    }
                }
                out.push(c);
            }
            out.trim_end().to_string()
        } else {
            v.split('/').next().unwrap_or_default().trim().to_string()
        };
        cards.push((key.to_string(), value));
    }
    Ok((Header { cards, at }, pos.div_ceil(BLOCK) * BLOCK))
}

/// Bytes per value of `BITPIX`.
pub(super) fn width(bitpix: i64, path: &Path) -> std::result::Result<usize, IoError> {
    match bitpix {
        8 => Ok(1),
        16 => Ok(2),
        32 | -32 => Ok(4),
        64 | -64 => Ok(8),
        b => Err(bad(path, format!("BITPIX = {b} is not a FITS data type (8, 16, 32, 64, -32 or -64)"))),
    }
}

/// The big-endian value of type `bitpix` at the start of `b` (which holds enough bytes).
pub(super) fn value(b: &[u8], bitpix: i64) -> f64 {
    let a = |n: usize| -> [u8; 8] {
        let mut x = [0u8; 8];
        x[..n].copy_from_slice(&b[..n]);
        x
    };
    match bitpix {
        8 => b[0] as f64,
        16 => i16::from_be_bytes([b[0], b[1]]) as f64,
        32 => i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
        64 => i64::from_be_bytes(a(8)) as f64,
        -32 => f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
        _ => f64::from_be_bytes(a(8)),
    }
}
