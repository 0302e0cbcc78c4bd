//! Observations in uvfits, the random-groups FITS files of AIPS, DIFMAP and eht-imaging (the
//! format of the EHT's public data releases), read into the same [`EhtimObservation`] as an
//! ehtim text export, with eht-imaging's conventions (its `load_uvfits`):
//!
//! - The primary HDU has `GROUPS = T`, `NAXIS1 = 0`, and `GCOUNT` groups of `PCOUNT`
//!   parameters then an array (FITS standard 4.0, §6). Parameter `n` is named by `PTYPEn` and
//!   scaled as `PZEROn + PSCALn · raw`; parameters of the same name add (`DATE` is a Julian
//!   date split over two). `UU…`/`VV…` are in seconds of light travel and become
//!   wavelengths times the reference frequency (`CRVAL` of the `FREQ` axis); `BASELINE` is
//!   `256 · a1 + a2` (+ the subarray as a fraction, ignored), the antennas' `NOSTA` numbers in
//!   the `AIPS AN` binary table, which also gives the station names (`ANNAME`) and positions
//!   (`STABXYZ`); `INTTIM` (optional) the integration time.
//! - The array's axes are found by `CTYPEn`: `COMPLEX` (real, imaginary, weight), `STOKES`
//!   (`CRVAL + (k + 1 − CRPIX) · CDELT` for entry `k`: −1, −2 = RR, LL; 1 = I), `FREQ`
//!   (channels), `IF` (an axis without `CTYPE` of length above 1 is taken as the IF axis, as
//!   eht-imaging indexes it by position), `RA`, `DEC`; any other axis must have length 1.
//!   Data are big-endian with `BITPIX` 8, 16, 32, 64, −32 or −64, scaled by `BSCALE`/`BZERO`.
//! - A product with a weight that is not positive and finite is flagged (eht-imaging takes
//!   an infinite weight as valid, with σ = 0, which no likelihood can use). Per product
//!   (RR, LL or I), the unflagged channels of each IF are averaged, then the IFs that have
//!   any, and `σ = √(Σ 1/w) / n` over the `n` unflagged channels of all IFs (eht-imaging's
//!   average). Stokes I is `(RR + LL)/2` with `σ_I = ½ √(σ_RR² + σ_LL²)` when both hands are
//!   unflagged, the one hand when only one is, and the `I` product itself when the file has
//!   Stokes I; a group with neither is dropped (as eht-imaging does), and so is an
//!   autocorrelation (`a1 = a2`), which holds no image information.
//! - Times are hours from 0 h UTC of `mjd`, the integer MJD of the earliest kept group;
//!   the bandwidth is `|CDELT| ·` channels `·` IFs of the `FREQ` axis (eht-imaging counts
//!   the channels only); RA and Dec come from `OBSRA`/`OBSDEC` or the `RA`/`DEC` axes;
//!   station SEFDs from the `AN` table's `SEFD` column, 0 where there is none (unknown, as
//!   in eht-imaging).
//!
//! The files of the EHT 2017 M87 release hold one IF and one channel (already averaged over
//! the 32 IFs), RR and LL both equal to Stokes I with weights `1/(2σ_I²)`, and RL, LR zero with
//! infinite weight; they read to the release's ehtim text exports to the printed digits
//! (`tests/uvfits_m87.rs`).
//!
//! Written here (not a crate): no maintained pure-Rust FITS crate on crates.io was found that
//! is established and reads both random groups and binary tables (`fitsio` binds the C library
//! cfitsio; `fitrs`, `fitsrs`, `rustronomy-fits` read images and tables, not random groups;
//! the young `fits-well` 0.1 does both), and this reader keeps the project's bounded input
//! checks: the file is read with [`crate::io::read_input`], the sizes its headers declare are
//! checked against the file before any data are read, and what it builds against the memory
//! limit.
//!
//! Split by reading step: `cards.rs` reads FITS header cards and big-endian values,
//! `antenna.rs` the `AIPS AN` station table; this module walks the file and averages the
//! visibilities.

mod antenna;
mod cards;

use std::path::Path;

use super::{EhtimObservation, VisRecord};
use crate::io::IoError;
use crate::Result;
use antenna::antenna_table;
use cards::{bad, header, value, width, BLOCK, CARD};

/// The Julian date of MJD 0.
const MJD0: f64 = 2_400_000.5;

/// Whether `path` names a uvfits file by its extension (`.uvfits`, `.uvf`, `.fits`, any case).
///
/// ```
/// use scoreprior_core::forward::interferometry::is_uvfits_path;
/// assert!(is_uvfits_path("obs/SR1_M87_2017_101_hi.UVFITS".as_ref()));
/// assert!(!is_uvfits_path("obs.txt".as_ref()));
/// ```
pub fn is_uvfits_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["uvfits", "uvf", "fits"].iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Reads a uvfits (random-groups FITS) observation into an [`EhtimObservation`] (see the
/// module docs for the conventions); errors name the file and the cause. The path must be a
/// regular file within the memory limit ([`crate::io::read_input`]).
///
/// ```
/// use scoreprior_core::forward::interferometry::read_uvfits;
/// let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
///     .join("tests/data/eht-m87/SR1_M87_2017_101_hi_hops_netcal_StokesI.uvfits");
/// let obs = read_uvfits(&p).unwrap();
/// assert_eq!((obs.records.len(), obs.stations.len(), obs.mjd), (8058, 8, 57854.0));
/// assert!(read_uvfits("no/such/file.uvfits").is_err());
/// ```
pub fn read_uvfits(path: impl AsRef<Path>) -> Result<EhtimObservation> {
    let path = path.as_ref();
    let bytes = crate::io::read_input(path)?;
    Ok(parse(&bytes, path)?)
}
/// One axis of the group array.
struct Axis {
    ctype: String,
    len: usize,
    stride: usize,
    crval: f64,
    cdelt: f64,
    crpix: f64,
}
/// The mean visibility and σ of one product over IFs and channels (see the module docs),
/// `None` when every channel is flagged; `at(i, c)` gives `(re, im, weight)`.
fn average(
    nif: usize,
    nchan: usize,
    at: impl Fn(usize, usize) -> (f64, f64, f64),
) -> std::result::Result<Option<(f64, f64, f64)>, String> {
    let (mut re, mut im, mut nif_used, mut var, mut n) = (0.0, 0.0, 0usize, 0.0, 0usize);
    for i in 0..nif {
        let (mut r, mut m, mut k) = (0.0, 0.0, 0usize);
        for c in 0..nchan {
            let (a, b, w) = at(i, c);
            if !(w.is_finite() && w > 0.0) {
                continue;
            }
            if !(a.is_finite() && b.is_finite()) {
                return Err(format!("an unflagged visibility (IF {}, channel {}) is not finite", i + 1, c + 1));
            }
            r += a;
            m += b;
            k += 1;
            var += 1.0 / w;
        }
        if k > 0 {
            re += r / k as f64;
            im += m / k as f64;
            nif_used += 1;
            n += k;
        }
    }
    if n == 0 {
        return Ok(None);
    }
    Ok(Some((re / nif_used as f64, im / nif_used as f64, var.sqrt() / n as f64)))
}

fn parse(bytes: &[u8], path: &Path) -> std::result::Result<EhtimObservation, IoError> {
    if !bytes.starts_with(b"SIMPLE  = ") {
        return Err(bad(path, "not a FITS file: it does not start with a `SIMPLE =` card"));
    }
    let (h, data_at) = header(bytes, 0, path)?;
    if h.text("SIMPLE") != "T" {
        return Err(bad(path, "SIMPLE is not T: the file does not conform to FITS"));
    }
    if h.text("GROUPS") != "T" {
        return Err(IoError::unsupported(
            path,
            "GROUPS is not T: this is a FITS image or table, not a random-groups uvfits file",
        ));
    }
    let bitpix = h.int("BITPIX", path)?;
    let w = width(bitpix, path)?;
    let naxis = h.size("NAXIS", path)?;
    if !(2..=999).contains(&naxis) {
        return Err(bad(path, format!("NAXIS = {naxis}: random groups need 2 to 999 axes")));
    }
    if h.size("NAXIS1", path)? != 0 {
        return Err(bad(path, "NAXIS1 is not 0, as random groups require"));
    }
    let (pcount, gcount) = (h.size("PCOUNT", path)?, h.size("GCOUNT", path)?);
    let mut axes = Vec::new();
    let mut stride = 1usize;
    for n in 2..=naxis {
        let len = h.size(&format!("NAXIS{n}"), path)?;
        axes.push(Axis {
            ctype: h.text(&format!("CTYPE{n}")).to_ascii_uppercase(),
            len,
            stride,
            crval: h.number_or(&format!("CRVAL{n}"), 0.0, path)?,
            cdelt: h.number_or(&format!("CDELT{n}"), 1.0, path)?,
            crpix: h.number_or(&format!("CRPIX{n}"), 1.0, path)?,
        });
        stride = stride.checked_mul(len).ok_or_else(|| bad(path, "the group array's size overflows"))?;
    }
    let array_len = stride;
    let group = (pcount as u128 + array_len as u128) * w as u128;
    let data_bytes = group * gcount as u128;
    let end = data_at as u128 + data_bytes;
    if end > bytes.len() as u128 {
        return Err(bad(
            path,
            format!(
                "the header declares {gcount} groups of {group} bytes ({data_bytes} bytes of data from byte {data_at}), \
                 but the file has only {} bytes: it is truncated, or GCOUNT is wrong",
                bytes.len()
            ),
        ));
    }
    crate::io::check_input_size(
        path,
        &format!("the {gcount} visibilities of the file"),
        gcount as u128 * std::mem::size_of::<VisRecord>() as u128,
    )?;
    let (group, end) = (group as usize, end as usize);

    // The axes.
    let find = |name: &str| axes.iter().position(|a| a.ctype == name);
    let Some(complex) = find("COMPLEX") else {
        return Err(bad(path, "no COMPLEX axis (CTYPEn = 'COMPLEX')"));
    };
    if axes[complex].len < 3 {
        return Err(IoError::unsupported(
            path,
            format!("the COMPLEX axis has length {}: without weights (length 3) σ is unknown", axes[complex].len),
        ));
    }
    let stokes = find("STOKES").ok_or_else(|| bad(path, "no STOKES axis (CTYPEn = 'STOKES')"))?;
    let freq = find("FREQ").ok_or_else(|| bad(path, "no FREQ axis (CTYPEn = 'FREQ'): the frequency is unknown"))?;
    let mut ifs = find("IF");
    for (k, a) in axes.iter().enumerate() {
        if [Some(complex), Some(stokes), Some(freq), ifs].contains(&Some(k)) || a.len == 1 {
            continue;
        }
        if a.ctype.is_empty() && ifs.is_none() {
            ifs = Some(k);
        } else {
            return Err(IoError::unsupported(
                path,
                format!(
                    "axis {} (CTYPE '{}') has length {}; only COMPLEX, STOKES, FREQ and IF may",
                    k + 2,
                    a.ctype,
                    a.len
                ),
            ));
        }
    }
    if gcount > 0 && array_len == 0 {
        return Err(bad(path, "an axis of the group array has length 0"));
    }
    let code = |k: usize| {
        let a = &axes[stokes];
        (a.crval + (k as f64 + 1.0 - a.crpix) * a.cdelt).round() as i64
    };
    let codes: Vec<i64> = (0..axes[stokes].len).map(code).collect();
    let pos = |c: i64| codes.iter().position(|&x| x == c);
    let products: Vec<usize> = match (pos(1), pos(-1), pos(-2)) {
        (Some(i), _, _) => vec![i],
        (None, rr, ll) if rr.is_some() || ll.is_some() => rr.into_iter().chain(ll).collect(),
        _ => {
            return Err(IoError::unsupported(
                path,
                format!("the STOKES axis holds codes {codes:?}: neither Stokes I (1) nor RR, LL (-1, -2)"),
            ))
        }
    };
    let rf = axes[freq].crval;
    // Radio interferometry spans about 10 MHz to 1 THz; beyond, the axis is not a frequency in Hz.
    if !(1e6..=1e13).contains(&rf) {
        return Err(bad(
            path,
            format!("the reference frequency (CRVAL of the FREQ axis) is {rf:e} Hz, outside 1 MHz – 10 THz"),
        ));
    }
    let (nchan, nif) = (axes[freq].len, ifs.map_or(1, |k| axes[k].len));
    let bandwidth_hz = axes[freq].cdelt.abs() * (nchan * nif) as f64;
    if !(bandwidth_hz > 0.0 && bandwidth_hz.is_finite()) {
        return Err(bad(path, "the bandwidth (CDELT of the FREQ axis) is not positive"));
    }

    // The parameters.
    let mut scale = Vec::with_capacity(pcount.min(999));
    for n in 1..=pcount {
        if n > 999 {
            return Err(bad(path, format!("PCOUNT = {pcount}: FITS allows at most 999 group parameters")));
        }
        scale.push((
            h.text(&format!("PTYPE{n}")).to_ascii_uppercase(),
            h.number_or(&format!("PSCAL{n}"), 1.0, path)?,
            h.number_or(&format!("PZERO{n}"), 0.0, path)?,
        ));
    }
    let params = |pred: &dyn Fn(&str) -> bool| -> Vec<usize> {
        scale.iter().enumerate().filter(|(_, (t, _, _))| pred(t)).map(|(i, _)| i).collect()
    };
    let (uu, vv) = (params(&|t| t.starts_with("UU")), params(&|t| t.starts_with("VV")));
    let (base, date, inttim) = (params(&|t| t == "BASELINE"), params(&|t| t == "DATE"), params(&|t| t == "INTTIM"));
    for (what, p) in [("UU", &uu), ("VV", &vv), ("BASELINE", &base), ("DATE", &date)] {
        if p.is_empty() {
            return Err(IoError::unsupported(path, format!("no {what} group parameter (PTYPEn)")));
        }
    }
    let bscale = h.number_or("BSCALE", 1.0, path)?;
    let bzero = h.number_or("BZERO", 0.0, path)?;

    // The extensions: the AIPS AN table.
    let mut an = None;
    let mut at = end.div_ceil(BLOCK) * BLOCK;
    while bytes.len() >= at + CARD && bytes[at..].starts_with(b"XTENSION") {
        let (x, data) = header(bytes, at, path)?;
        let bp = x.int("BITPIX", path)?;
        let mut size = width(bp, path)? as u128 * x.size("GCOUNT", path).unwrap_or(1) as u128;
        let mut elems = 1u128;
        for n in 1..=x.size("NAXIS", path)?.min(999) {
            elems = elems.saturating_mul(x.size(&format!("NAXIS{n}"), path)? as u128);
        }
        size = size.saturating_mul(elems.saturating_add(x.size("PCOUNT", path).unwrap_or(0) as u128));
        if data as u128 + size > bytes.len() as u128 {
            return Err(bad(
                path,
                format!("the extension at byte {at} declares {size} bytes of data, past the end of the file"),
            ));
        }
        if an.is_none() && x.text("EXTNAME") == "AIPS AN" {
            if x.text("XTENSION") != "BINTABLE" {
                return Err(bad(path, "the AIPS AN extension is not a binary table"));
            }
            an = Some(antenna_table(&x, &bytes[data..data + size as usize], path)?);
        }
        at = (data + size as usize).div_ceil(BLOCK) * BLOCK;
    }
    let Some((stations, number)) = an else {
        return Err(bad(path, "no AIPS AN table (binary-table extension): the station names are unknown"));
    };
    if stations.len() < 2 {
        return Err(bad(path, "the AIPS AN table has fewer than two stations"));
    }

    // The groups.
    let mut records = Vec::new();
    let mut jds = Vec::new();
    for g in 0..gcount {
        let b = &bytes[data_at + g * group..data_at + (g + 1) * group];
        let p = |i: usize| scale[i].2 + scale[i].1 * value(&b[i * w..], bitpix);
        let sum = |ix: &[usize]| ix.iter().map(|&i| p(i)).sum::<f64>();
        let at_group = |why: String| bad(path, format!("group {}: {why}", g + 1));
        let bl = p(base[0]);
        if !(bl.is_finite() && bl >= 257.0) {
            return Err(at_group(format!("BASELINE = {bl} is not 256 × antenna 1 + antenna 2")));
        }
        let bl = bl.floor() as i64;
        let (a1, a2) = (bl / 256, bl % 256);
        let station = |a: i64| {
            number.get(&a).copied().ok_or_else(|| at_group(format!("antenna {a} is not in the AIPS AN table")))
        };
        let (t1, t2) = (station(a1)?, station(a2)?);
        let (u, v, jd) = (p(uu[0]) * rf, p(vv[0]) * rf, sum(&date));
        if !(u.is_finite() && v.is_finite() && jd.is_finite() && jd > MJD0) {
            return Err(at_group(format!("u = {u}, v = {v} or the date {jd} (JD) is not finite")));
        }
        if t1 == t2 {
            continue;
        }
        let arr = &b[pcount * w..];
        let elem = |s: usize, i: usize, c: usize, k: usize| {
            let mut o = s * axes[stokes].stride + c * axes[freq].stride + k * axes[complex].stride;
            if let Some(f) = ifs {
                o += i * axes[f].stride;
            }
            bzero + bscale * value(&arr[o * w..], bitpix)
        };
        let mut hands = Vec::with_capacity(2);
        for &s in &products {
            hands.push(
                average(nif, nchan, |i, c| (elem(s, i, c, 0), elem(s, i, c, 1), elem(s, i, c, 2))).map_err(at_group)?,
            );
        }
        let (re, im, sigma) = match hands.as_slice() {
            [Some(a), Some(b)] => (0.5 * (a.0 + b.0), 0.5 * (a.1 + b.1), 0.5 * a.2.hypot(b.2)),
            [Some(a), None] | [None, Some(a)] | [Some(a)] => *a,
            _ => continue, // flagged
        };
        if !(sigma > 0.0 && sigma.is_finite()) {
            return Err(at_group(format!("σ = {sigma} Jy is not positive and finite")));
        }
        let tint_s = if inttim.is_empty() { 0.0 } else { sum(&inttim) };
        jds.push(jd);
        records.push(VisRecord { time_hour: 0.0, tint_s, t1, t2, u, v, re, im, sigma });
    }
    if records.is_empty() {
        return Err(bad(path, "no unflagged cross-correlation (RR, LL or I with a positive weight)"));
    }
    let mjd = (jds.iter().copied().fold(f64::INFINITY, f64::min) - MJD0).floor();
    let last = jds.iter().copied().fold(f64::NEG_INFINITY, f64::max) - MJD0;
    // MJD 36,000 is 1957, before any VLBI; 100,000 is 2132. A date outside is a unit or offset error.
    if !(36_000.0..100_000.0).contains(&mjd) || last - mjd > 366.0 {
        return Err(bad(
            path,
            format!(
                "the dates (DATE group parameters) run from MJD {mjd} to {last:.1}: outside 1957–2132 or longer than a \
                 year, not one observation"
            ),
        ));
    }
    for (r, jd) in records.iter_mut().zip(&jds) {
        r.time_hour = (jd - MJD0 - mjd) * 24.0;
    }
    let ra_deg = match h.number("OBSRA", path)? {
        Some(x) => x,
        None => find("RA").map(|k| axes[k].crval).ok_or_else(|| bad(path, "no OBSRA card nor RA axis"))?,
    };
    let dec_deg = match h.number("OBSDEC", path)? {
        Some(x) => x,
        None => find("DEC").map(|k| axes[k].crval).ok_or_else(|| bad(path, "no OBSDEC card nor DEC axis"))?,
    };
    if !((0.0..=360.0).contains(&ra_deg) && (-90.0..=90.0).contains(&dec_deg)) {
        return Err(bad(path, format!("RA {ra_deg}° or Dec {dec_deg}° is out of range")));
    }
    Ok(EhtimObservation {
        source: h.text("OBJECT"),
        ra_hours: ra_deg / 15.0,
        dec_deg,
        mjd,
        frequency_hz: rf,
        bandwidth_hz,
        stations,
        records,
    })
}
