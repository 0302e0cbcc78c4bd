//! Observations exported by eht-imaging's `Obsdata.save_txt` (Stokes representation): a
//! `#`-commented header (source, RA, Dec, MJD, RF and BW in GHz, the station table) and one
//! row per visibility, `time tint T1 T2 tau1 tau2 u v |I| arg I(°) |Q| … σ_I σ_Q σ_U σ_V`;
//! the visibility is `V = |I| e^{i·arg I}` and σ_I its thermal noise per real/imaginary part.
//!
//! Why the text table and not uvfits: uvfits is a random-groups FITS file, and no maintained
//! pure-Rust FITS crate reads random groups (`fitsio` binds the C library cfitsio; `fitrs` and
//! `fits-rs` read images and tables only). The text table is ehtim's own loss-free export of
//! the Stokes-I data (amplitudes to 1e-8 Jy, phases to 1e-4°), read back by its `load_txt`.
//! uvfits files are read too, by a reader of our own ([`super::read_uvfits`]), into the same
//! [`EhtimObservation`].

use std::path::Path;

use super::{Station, UvCoverage, UvPoint};
use crate::io::IoError;
use crate::{Error, Result};

const FORMAT: &str = "ehtim text observation";

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VisRecord {
    /// Time, hours UTC.
    pub time_hour: f64,
    /// Integration time, seconds.
    pub tint_s: f64,
    /// First station, index into [`EhtimObservation::stations`].
    pub t1: usize,
    /// Second station.
    pub t2: usize,
    /// `u`, wavelengths (ehtim: `(r_1 − r_2)·ê/λ`).
    pub u: f64,
    /// `v`, wavelengths.
    pub v: f64,
    /// `Re V = |I| cos(arg I)`, Jy.
    pub re: f64,
    /// `Im V = |I| sin(arg I)`, Jy.
    pub im: f64,
    /// Thermal σ of Stokes I per real/imaginary part, Jy.
    pub sigma: f64,
}

/// An observation read from an ehtim text export.
///
/// ```
/// use scoreprior_core::forward::interferometry::EhtimObservation;
/// let text = [
///     "# SRC: SgrA", "# RA: 17 h 45 m 40.0000 s", "# DEC: -29 deg  0 m 28.0000 s", "# MJD: 57850",
///     "# RF: 230.0000 GHz", "# BW: 4.0000 GHz", "# PHASECAL: 1", "# AMPCAL: 1", "# OPACITYCAL: 1",
///     "# DCAL: 1", "# FRCAL: 1", "# ----------",
///     "# Site X(m) Y(m) Z(m) SEFDR SEFDL FR_PAR FR_EL FR_OFF DR_RE DR_IM DL_RE DL_IM",
///     "# ALMA 2225061.16 -5440057.37 -2481681.15 90.00 90.00 1.00 0.00 0.00 0.0 0.0 0.0 0.0",
///     "# APEX 2225039.53 -5441197.63 -2479303.36 3500.00 3500.00 1.00 0.00 0.00 0.0 0.0 0.0 0.0",
///     "# ----------",
///     "# time (hr) tint T1 T2 Tau1 Tau2 U (lambda) V (lambda) Iamp (Jy) Iphase(d) Qamp (Jy) ...",
///     "1.5 10.00 ALMA APEX 0.00 0.00 100.0 -200.0 0.5 90.0 0 0 0 0 0 0 0.01 0.01 0.01 0.01",
/// ]
/// .join("\n");
/// let obs = EhtimObservation::parse(&text, "example").unwrap();
/// assert_eq!(obs.records.len(), 1);
/// assert!((obs.records[0].im - 0.5).abs() < 1e-15 && obs.records[0].re.abs() < 1e-15);
/// assert_eq!(obs.coverage().points[0].sigma, 0.01);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EhtimObservation {
    /// Source name.
    pub source: String,
    /// Right ascension, hours.
    pub ra_hours: f64,
    /// Declination, degrees.
    pub dec_deg: f64,
    /// Modified Julian date.
    pub mjd: f64,
    /// Observing frequency, Hz.
    pub frequency_hz: f64,
    /// Bandwidth, Hz.
    pub bandwidth_hz: f64,
    /// The station table of the header, in its order.
    pub stations: Vec<Station>,
    /// The visibilities, in file order.
    pub records: Vec<VisRecord>,
}

/// Reads an ehtim `Obsdata.save_txt` file (see [`EhtimObservation`]); errors name the file
/// and the line. The path must be a regular file within the memory limit
/// ([`crate::io::read_input`]).
///
/// ```
/// use scoreprior_core::forward::interferometry::read_ehtim_txt;
/// let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/ehtim_crescent_obs.txt");
/// let obs = read_ehtim_txt(&p).unwrap();
/// assert_eq!((obs.records.len(), obs.stations.len()), (81, 8));
/// assert!(read_ehtim_txt("no/such/file.txt").is_err());
/// ```
///
/// A path ending in `.uvfits`, `.uvf` or `.fits` is read as uvfits instead
/// ([`super::read_uvfits`]), so every `obs=` input takes both formats.
pub fn read_ehtim_txt(path: impl AsRef<Path>) -> Result<EhtimObservation> {
    let path = path.as_ref();
    if super::is_uvfits_path(path) {
        return super::read_uvfits(path);
    }
    // A regular file within the memory limit, read with a bounded reader (a device or a pipe
    // is an error at once, not a read that never ends).
    let bytes = crate::io::read_input(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::from(IoError::malformed(path, FORMAT, "the file is not UTF-8 text")))?;
    EhtimObservation::parse(&text, &path.display().to_string())
        .map_err(|e| Error::from(IoError::malformed(path, FORMAT, e.to_string())))
}

fn num(s: Option<&&str>, what: &str, line: usize) -> Result<f64> {
    s.and_then(|s| s.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .ok_or_else(|| Error::syntax(format!("line {line}"), format!("{what} is not a finite number")))
}

impl EhtimObservation {
    /// Parses the text of an export; `name` labels errors.
    pub fn parse(text: &str, name: &str) -> Result<Self> {
        let bad = |line: usize, why: String| Error::syntax(format!("{name} line {line}"), why);
        let mut header = Vec::new();
        let mut rows = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if let Some(h) = t.strip_prefix('#') {
                header.push((n + 1, h.trim()));
            } else if !t.is_empty() {
                rows.push((n + 1, t));
            }
        }
        let field = |key: &str| -> Result<(usize, Vec<&str>)> {
            header
                .iter()
                .find(|(_, h)| h.starts_with(key))
                .map(|(n, h)| (*n, h[key.len()..].split_whitespace().collect()))
                .ok_or_else(|| Error::syntax(name, format!("the header has no `{key}` line")))
        };
        let source = field("SRC:")?.1.join(" ");
        // RA: `17 h 45 m 40.0000 s`; DEC: `-29 deg  0 m 28.0000 s` (sign on the degrees).
        let (n, ra) = field("RA:")?;
        let ra_hours = num(ra.first(), "RA hours", n)?
            + num(ra.get(2), "RA minutes", n)? / 60.0
            + num(ra.get(4), "RA seconds", n)? / 3600.0;
        let (n, dec) = field("DEC:")?;
        let d = num(dec.first(), "Dec degrees", n)?;
        let sign = if dec.first().is_some_and(|s| s.starts_with('-')) { -1.0 } else { 1.0 };
        let dec_deg =
            sign * (d.abs() + num(dec.get(2), "Dec minutes", n)? / 60.0 + num(dec.get(4), "Dec seconds", n)? / 3600.0);
        let (n, mjd) = field("MJD:")?;
        let mjd = num(mjd.first(), "MJD", n)?;
        let (n, rf) = field("RF:")?;
        let frequency_hz = num(rf.first(), "RF (GHz)", n)? * 1e9;
        let (n, bw) = field("BW:")?;
        let bandwidth_hz = num(bw.first(), "BW (GHz)", n)? * 1e9;
        if !(ra_hours >= 0.0 && ra_hours <= 24.0 && dec_deg.abs() <= 90.0 && frequency_hz > 0.0 && bandwidth_hz > 0.0) {
            return Err(Error::syntax(
                name,
                format!(
                    "header values out of range (RA {ra_hours} h, Dec {dec_deg}°, RF {frequency_hz} Hz, BW {bandwidth_hz} Hz)"
                ),
            ));
        }
        // Station table: between the first and second dashed lines, after the `Site` title.
        let dashes: Vec<usize> =
            header.iter().enumerate().filter(|(_, (_, h))| h.starts_with("---")).map(|(i, _)| i).collect();
        if dashes.len() < 2 {
            return Err(Error::syntax(name, "the header lacks the dashed lines around the station table"));
        }
        let mut stations = Vec::new();
        for &(n, h) in &header[dashes[0] + 1..dashes[1]] {
            let f: Vec<&str> = h.split_whitespace().collect();
            if f.first() == Some(&"Site") {
                continue;
            }
            // `NAME X Y Z SEFD` (old exports) or `NAME X Y Z SEFDR SEFDL FR_PAR FR_EL FR_OFF DR DR DL DL`.
            if f.len() != 5 && f.len() != 13 {
                return Err(bad(n, format!("a station line has 5 or 13 fields, found {}", f.len())));
            }
            let (r, l) = (num(f.get(4), "SEFDR", n)?, num(f.get(if f.len() == 5 { 4 } else { 5 }), "SEFDL", n)?);
            if !(r > 0.0 && l > 0.0) {
                return Err(bad(n, "SEFDs must be positive".into()));
            }
            stations.push(Station {
                name: f[0].to_string(),
                xyz: [num(f.get(1), "X", n)?, num(f.get(2), "Y", n)?, num(f.get(3), "Z", n)?],
                sefd: 0.5 * (r + l),
                sefd_r: r,
                sefd_l: l,
            });
        }
        if stations.len() < 2 {
            return Err(Error::syntax(name, "the station table has fewer than two stations"));
        }
        // Column titles: `time (hr) tint T1 T2 Tau1 Tau2 U (lambda) V (lambda) Iamp (Jy) …`.
        match header.get(dashes[1] + 1) {
            Some((_, h)) if h.split_whitespace().nth(11) == Some("Iamp") => {}
            Some((n, h)) if h.split_whitespace().nth(11) == Some("RRamp") => {
                return Err(bad(
                    *n,
                    "the export holds circular polarisations (RR, LL, …); save it with polrep 'stokes' \
                     (obs.switch_polrep('stokes').save_txt(...))"
                        .into(),
                ))
            }
            _ => return Err(Error::syntax(name, "no `time (hr) tint T1 T2 … Iamp …` column line")),
        }
        let station = |s: &str, n: usize| {
            stations
                .iter()
                .position(|st| st.name == s)
                .ok_or_else(|| bad(n, format!("station `{s}` is not in the header's table")))
        };
        let mut records = Vec::with_capacity(rows.len());
        for &(n, row) in &rows {
            let f: Vec<&str> = row.split_whitespace().collect();
            if f.len() != 20 {
                return Err(bad(n, format!("a data row has 20 columns, found {}", f.len())));
            }
            let (t1, t2) = (station(f[2], n)?, station(f[3], n)?);
            if t1 == t2 {
                return Err(bad(n, format!("baseline {}–{} joins a station to itself", f[2], f[3])));
            }
            let (amp, phase) = (num(f.get(8), "Iamp", n)?, num(f.get(9), "Iphase", n)?.to_radians());
            let sigma = num(f.get(16), "Isigma", n)?;
            if !(sigma > 0.0) {
                return Err(bad(n, format!("Isigma must be positive, got {sigma}")));
            }
            records.push(VisRecord {
                time_hour: num(f.first(), "time", n)?,
                tint_s: num(f.get(1), "tint", n)?,
                t1,
                t2,
                u: num(f.get(6), "u", n)?,
                v: num(f.get(7), "v", n)?,
                re: amp * phase.cos(),
                im: amp * phase.sin(),
                sigma,
            });
        }
        if records.is_empty() {
            return Err(Error::syntax(name, "no data rows"));
        }
        Ok(EhtimObservation { source, ra_hours, dec_deg, mjd, frequency_hz, bandwidth_hz, stations, records })
    }

    /// The coverage in this crate's convention: each baseline with its lower table index
    /// first (a record stored the other way round has `(u, v)` negated, the same baseline seen
    /// from the other end), records sorted by time (stably), so that closure sets find every
    /// baseline of a scan.
    pub fn coverage(&self) -> UvCoverage {
        let mut points: Vec<UvPoint> = self
            .records
            .iter()
            .map(|r| {
                let s = if r.t1 < r.t2 { 1.0 } else { -1.0 };
                UvPoint {
                    time_hour: r.time_hour,
                    i: r.t1.min(r.t2),
                    j: r.t1.max(r.t2),
                    u: s * r.u,
                    v: s * r.v,
                    sigma: r.sigma,
                }
            })
            .collect();
        let order = self.coverage_order();
        points = order.iter().map(|&k| points[k]).collect();
        UvCoverage { stations: self.stations.iter().map(|s| s.name.clone()).collect(), points }
    }

    /// The visibilities `[Re V; Im V]` in the order and orientation of
    /// [`EhtimObservation::coverage`] (conjugated where a record's baseline is turned round).
    pub fn visibilities(&self) -> Vec<f64> {
        let order = self.coverage_order();
        let re = order.iter().map(|&k| self.records[k].re);
        let im = order.iter().map(|&k| {
            let r = &self.records[k];
            if r.t1 < r.t2 {
                r.im
            } else {
                -r.im
            }
        });
        re.chain(im).collect()
    }

    /// The record behind each point of [`EhtimObservation::coverage`]: records stably sorted
    /// by time.
    pub fn coverage_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.records.len()).collect();
        order.sort_by(|&a, &b| self.records[a].time_hour.total_cmp(&self.records[b].time_hour));
        order
    }
}
