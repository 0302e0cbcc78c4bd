//! The station table of a uvfits file: the `AIPS AN` binary-table extension, whose rows give
//! each antenna's name (`ANNAME`), number (`NOSTA`, what the `BASELINE` parameter refers
//! to), position (`STABXYZ`) and, where present, SEFD.

use std::collections::HashMap;
use std::path::Path;

use super::cards::{bad, value, Header};
use crate::forward::interferometry::Station;
use crate::io::IoError;

/// The station table of an `AIPS AN` binary table: stations, and `NOSTA` → index.
pub(super) fn antenna_table(
    h: &Header,
    data: &[u8],
    path: &Path,
) -> std::result::Result<(Vec<Station>, HashMap<i64, usize>), IoError> {
    let (row, rows, fields) = (h.size("NAXIS1", path)?, h.size("NAXIS2", path)?, h.size("TFIELDS", path)?);
    let mut cols: HashMap<String, (usize, char, usize)> = HashMap::new();
    let mut off = 0usize;
    for n in 1..=fields.min(999) {
        let form = h.text(&format!("TFORM{n}"));
        let digits = form.chars().take_while(|c| c.is_ascii_digit()).count();
        let repeat: usize = if digits == 0 { 1 } else { form[..digits].parse().unwrap_or(usize::MAX) };
        let kind = form[digits..].chars().next().unwrap_or(' ');
        let each = match kind {
            'L' | 'B' | 'A' => 1,
            'I' => 2,
            'J' | 'E' => 4,
            'K' | 'D' | 'C' | 'P' => 8,
            'M' | 'Q' => 16,
            'X' => 0,
            _ => return Err(bad(path, format!("AIPS AN column {n} has TFORM `{form}`, not a binary-table format"))),
        };
        let bytes = if kind == 'X' { repeat.div_ceil(8) } else { repeat.saturating_mul(each) };
        cols.insert(h.text(&format!("TTYPE{n}")).to_ascii_uppercase(), (off, kind, repeat));
        off = off.saturating_add(bytes);
    }
    if off != row {
        return Err(bad(path, format!("the AIPS AN table's columns take {off} bytes a row, NAXIS1 says {row}")));
    }
    let col = |name: &str, kinds: &[char], min: usize| -> std::result::Result<Option<(usize, char)>, IoError> {
        match cols.get(name) {
            None => Ok(None),
            Some(&(o, k, r)) if kinds.contains(&k) && r >= min => Ok(Some((o, k))),
            Some(&(_, k, r)) => Err(bad(path, format!("the AIPS AN column {name} has format {r}{k}"))),
        }
    };
    let name_col = cols.get("ANNAME").filter(|c| c.1 == 'A').map(|c| (c.0, c.2));
    let Some((name_at, name_len)) = name_col else {
        return Err(bad(path, "the AIPS AN table has no ANNAME column of characters"));
    };
    let xyz = col("STABXYZ", &['D', 'E'], 3)?;
    let nosta = col("NOSTA", &['J', 'I'], 1)?;
    let sefd = col("SEFD", &['D', 'E'], 1)?;
    let num = |r: &[u8], (o, k): (usize, char), i: usize| -> f64 {
        match k {
            'D' => value(&r[o + 8 * i..], -64),
            'E' => value(&r[o + 4 * i..], -32),
            'J' => value(&r[o..], 32),
            _ => value(&r[o..], 16),
        }
    };
    let mut stations = Vec::with_capacity(rows.min(data.len()));
    let mut index = HashMap::new();
    for (i, r) in data.chunks_exact(row.max(1)).take(rows).enumerate() {
        let raw = &r[name_at..name_at + name_len];
        let name: String = raw
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| if (0x21..=0x7e).contains(&c) { c as char } else { '_' })
            .collect::<String>()
            .trim_matches('_')
            .to_string();
        let number = nosta.map_or((i + 1) as f64, |c| num(r, c, 0));
        if !(number.fract() == 0.0 && number >= 1.0) {
            return Err(bad(path, format!("AIPS AN row {}: NOSTA = {number} is not a positive integer", i + 1)));
        }
        if index.insert(number as i64, stations.len()).is_some() {
            return Err(bad(path, format!("AIPS AN row {}: antenna number {number} appears twice", i + 1)));
        }
        let pos = xyz.map_or([0.0; 3], |c| [num(r, c, 0), num(r, c, 1), num(r, c, 2)]);
        let s = sefd.map(|c| num(r, c, 0)).filter(|s| s.is_finite() && *s > 0.0).unwrap_or(0.0);
        let name = if name.is_empty() { format!("#{number}") } else { name };
        stations.push(Station {
            name,
            xyz: pos.map(|x| if x.is_finite() { x } else { 0.0 }),
            sefd: s,
            sefd_r: s,
            sefd_l: s,
        });
    }
    Ok((stations, index))
}
