//! The EHT collaboration's pre-processing of calibrated visibilities before imaging, as its
//! eht-imaging pipeline for M87 (2019-D01-02) does it with ehtim 1.3.2:
//! - scans are runs of integrations with gaps ≤ 0.0165 h between them; each baseline of a scan
//!   is averaged coherently: `V̄ = (1/N) Σ V`, `σ̄ = √(Σ σ²)/N`, `(ū, v̄)` the mean, time the first;
//! - bands are joined, band `b` shifted by `b·10⁻⁵ h`, so closures never mix bands;
//! - intra-site ("zero") baselines, `|uv| < 0.1 Gλ`, are rescaled by `F/F₀` (visibility and σ),
//!   `F₀` the median AA–AP amplitude and `F` the compact flux (0.6 Jy), since they see the
//!   extended jet too; closure phases are formed without them (`cp_uv_min`);
//! - fractional systematic noise: `σ² ← σ² + (f |V|)²`, `f = 0.02`;
//! - a per-station error budget `s_i = ((1 + b_i)^½ − 1)/4` (+0.15 at LMT) adds
//!   `(s_i² + s_j²)|V|²` to σ² of visibility and amplitude data only: gains cancel in closures.
//! Stations are ordered by their median SNR, so minimal closure sets run through the best one.
//! Optionally (not the pipeline's), visibilities below an SNR cut are dropped before closures.

use std::collections::BTreeMap;

use super::{EhtimObservation, VisRecord};
use crate::{Error, Result};

/// ehtim's `add_scans` gap: integrations further apart than this (hours) start a new scan.
pub const SCAN_GAP_HOURS: f64 = 0.0165;
/// The time shift per band when bands are joined (hours; the pipeline's `0.00001`).
pub const BAND_OFFSET_HOURS: f64 = 1e-5;
/// Baselines shorter than this (wavelengths) are intra-site: the pipeline's `uv_zblcut`.
pub const ZERO_BASELINE_UV: f64 = 0.1e9;

/// How visibilities are averaged in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Averaging {
    /// The integrations as they are in the file.
    None,
    /// One coherent average per baseline and scan (ehtim's `avg_coherent(0, scan_avg=True)`).
    Scan,
}

/// The pre-processing of an observation before imaging: one description, applied by
/// [`Preprocessing::apply`]; [`Preprocessing::eht2017`] is the collaboration's M87 pipeline,
/// `Default` touches nothing.
///
/// ```
/// use scoreprior_core::forward::interferometry::{Averaging, Preprocessing};
/// let p = Preprocessing::eht2017();
/// assert_eq!((p.averaging, p.compact_flux_jy, p.fractional_noise), (Averaging::Scan, Some(0.6), 0.02));
/// assert_eq!(Preprocessing::default().averaging, Averaging::None);
/// // the LMT's budget: ((1 + 0.22)^½ − 1)/4 + 0.15
/// let lm = p.station_noise.iter().find(|(s, _)| s == "LM").unwrap().1;
/// assert!((lm - ((1.22f64).sqrt() - 1.0) / 4.0 - 0.15).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocessing {
    /// Time averaging.
    pub averaging: Averaging,
    /// Compact flux `F` (Jy) the zero baselines are rescaled to; `None` leaves them.
    pub compact_flux_jy: Option<f64>,
    /// The intra-site pair whose median amplitude is the total flux `F₀`.
    pub zero_baseline: (String, String),
    /// Baselines shorter than this (λ) are intra-site: rescaled, and left out of closure phases.
    pub zero_baseline_uv: f64,
    /// Closure phases use no baseline shorter than this (λ); 0 keeps all.
    pub closure_phase_uv_min: f64,
    /// Fractional systematic noise `f` added to every σ.
    pub fractional_noise: f64,
    /// Per-station fractional noise `s_i` for visibility and amplitude data (not closures).
    pub station_noise: Vec<(String, f64)>,
    /// A fractional gain error `g` of every station on top of `station_noise` (amplitude data
    /// only): `s_i² ← s_i² + g²`; the residual calibration error the pipeline's self-calibration
    /// absorbs. 0 by default.
    pub gain_error: f64,
    /// Order stations by median SNR (minimal closure sets through the best station).
    pub order_by_snr: bool,
    /// Visibilities with `|V|/σ` below this (after the systematic noise) are dropped: at low
    /// SNR a log closure amplitude's debiasing term `½/snr²` explodes and its Gaussian
    /// likelihood is wrong. 0 keeps all (the pipeline's choice).
    pub snr_cut: f64,
}

impl Default for Preprocessing {
    fn default() -> Self {
        Preprocessing {
            averaging: Averaging::None,
            compact_flux_jy: None,
            zero_baseline: ("AA".into(), "AP".into()),
            zero_baseline_uv: ZERO_BASELINE_UV,
            closure_phase_uv_min: 0.0,
            fractional_noise: 0.0,
            station_noise: vec![],
            gain_error: 0.0,
            order_by_snr: false,
            snr_cut: 0.0,
        }
    }
}

/// The EHT 2017 SEFD error budget (M87 Paper III), fraction per station.
pub const EHT2017_SEFD_BUDGET: [(&str, f64); 8] =
    [("AA", 0.10), ("AP", 0.11), ("AZ", 0.07), ("LM", 0.22), ("PV", 0.10), ("SM", 0.15), ("JC", 0.14), ("SP", 0.07)];

/// Per-station fractional visibility noise from an SEFD budget `b`: `((1 + b)^½ − 1)/4` (an
/// SEFD error `b` is a visibility-amplitude error `(1 + b)^½ − 1`; the pipeline takes a quarter
/// of it), plus 0.15 at the LMT, whose gains vary far beyond its budget.
pub fn eht2017_station_noise() -> Vec<(String, f64)> {
    EHT2017_SEFD_BUDGET
        .iter()
        .map(|&(s, b)| {
            let extra = if s == "LM" { 0.15 } else { 0.0 };
            (s.to_string(), ((1.0 + b).sqrt() - 1.0) * 0.25 + extra)
        })
        .collect()
}

impl Preprocessing {
    /// The collaboration's fiducial eht-imaging settings for M87 (scan averaging, 0.6 Jy
    /// compact flux, closure phases above 0.1 Gλ, 2 % systematic noise, the SEFD budget).
    pub fn eht2017() -> Self {
        Preprocessing {
            averaging: Averaging::Scan,
            compact_flux_jy: Some(0.6),
            closure_phase_uv_min: ZERO_BASELINE_UV,
            fractional_noise: 0.02,
            station_noise: eht2017_station_noise(),
            order_by_snr: true,
            ..Preprocessing::default()
        }
    }

    /// Checks the numbers (finite, in range) before any file is read.
    pub fn validate(&self) -> Result<()> {
        if let Some(f) = self.compact_flux_jy {
            if !(f.is_finite() && f > 0.0 && f < 1e6) {
                return Err(Error::out_of_range("`zbl` (the compact flux)", f, "in (0, 1e6) Jy"));
            }
        }
        if !(self.fractional_noise.is_finite() && (0.0..1.0).contains(&self.fractional_noise)) {
            return Err(Error::out_of_range(
                "`systematic` (the fractional systematic noise)",
                self.fractional_noise,
                "in [0, 1)",
            ));
        }
        for (what, v) in [
            ("the zero-baseline uv cut", self.zero_baseline_uv),
            ("`cp_uv_min` (the closure phases' shortest baseline)", self.closure_phase_uv_min),
        ] {
            if !(v.is_finite() && (0.0..1e13).contains(&v)) {
                return Err(Error::out_of_range(what, v, "in [0, 1e13) wavelengths"));
            }
        }
        if !(self.gain_error.is_finite() && (0.0..1.0).contains(&self.gain_error)) {
            return Err(Error::out_of_range("`gain_error` (the gain error per station)", self.gain_error, "in [0, 1)"));
        }
        if !(self.snr_cut.is_finite() && (0.0..1e6).contains(&self.snr_cut)) {
            return Err(Error::out_of_range(
                "`snrcut` (the smallest visibility SNR kept)",
                self.snr_cut,
                "in [0, 1e6)",
            ));
        }
        if let Some((s, v)) = self.station_noise.iter().find(|(_, v)| !(v.is_finite() && (0.0..1.0).contains(v))) {
            return Err(Error::out_of_range(format!("the station noise of {s}"), *v, "in [0, 1)"));
        }
        Ok(())
    }

    /// Pre-processes the observations of one day (one per band) into one: averaged, joined,
    /// rescaled, with systematic noise, in this order (the pipeline's). `names` label errors.
    pub fn apply(&self, bands: &[EhtimObservation], names: &[String]) -> Result<PreprocessedObservation> {
        self.validate()?;
        let averaged: Vec<EhtimObservation> = bands
            .iter()
            .map(|o| match self.averaging {
                Averaging::None => o.clone(),
                Averaging::Scan => scan_average(o),
            })
            .collect();
        let mut obs = join_bands(&averaged, names)?;
        let mut total_flux_jy = None;
        if let Some(flux) = self.compact_flux_jy {
            let f0 = median_amplitude(&obs, &self.zero_baseline.0, &self.zero_baseline.1).ok_or_else(|| {
                Error::inconsistent(
                    format!("{}: the compact flux (zbl)", names.join(" + ")),
                    format!(
                        "no {}–{} (zero-baseline) visibility to measure the total flux from; leave out the compact \
                         flux or give an observation with that baseline",
                        self.zero_baseline.0, self.zero_baseline.1
                    ),
                )
            })?;
            rescale_short_baselines(&mut obs, flux / f0, self.zero_baseline_uv);
            total_flux_jy = Some(f0);
        }
        if self.order_by_snr {
            order_stations_by_snr(&mut obs);
        }
        add_fractional_noise(&mut obs, self.fractional_noise);
        let before = obs.records.len();
        obs.records.retain(|r| r.re.hypot(r.im) >= self.snr_cut * r.sigma);
        let dropped_low_snr = before - obs.records.len();
        if obs.records.is_empty() {
            return Err(Error::empty(
                format!("{}: the observation after the SNR cut {}", names.join(" + "), self.snr_cut),
                "every visibility has an SNR below the cut",
            ));
        }
        let station_noise = obs
            .stations
            .iter()
            .map(|s| {
                let budget = self.station_noise.iter().find(|(n, _)| *n == s.name).map_or(0.0, |(_, v)| *v);
                budget.hypot(self.gain_error)
            })
            .collect();
        Ok(PreprocessedObservation {
            observation: obs,
            total_flux_jy,
            closure_phase_uv_min: self.closure_phase_uv_min,
            station_noise,
            dropped_low_snr,
        })
    }
}

/// An observation after [`Preprocessing::apply`], with what imaging needs beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessedObservation {
    /// The pre-processed visibilities (σ with the fractional noise).
    pub observation: EhtimObservation,
    /// The zero-baseline total flux `F₀` (Jy) the rescaling measured, if it ran.
    pub total_flux_jy: Option<f64>,
    /// Closure phases use no baseline shorter than this (λ).
    pub closure_phase_uv_min: f64,
    /// `s_i` per station of [`EhtimObservation::stations`].
    pub station_noise: Vec<f64>,
    /// Visibilities dropped by the SNR cut.
    pub dropped_low_snr: usize,
}

impl PreprocessedObservation {
    /// σ of each visibility for visibility or amplitude data, in the order of
    /// [`EhtimObservation::coverage`]: `√(σ² + (s_i² + s_j²)|V|²)`.
    pub fn visibility_sigma(&self) -> Vec<f64> {
        let e = self.station_variance();
        self.observation
            .coverage()
            .points
            .iter()
            .zip(self.observation.coverage_order())
            .zip(e)
            .map(|((p, k), e)| {
                let r = &self.observation.records[k];
                (p.sigma * p.sigma + e * (r.re * r.re + r.im * r.im)).sqrt()
            })
            .collect()
    }

    /// The stations' fractional amplitude variance `s_i² + s_j²` of each visibility, in the
    /// order of [`EhtimObservation::coverage`].
    pub fn station_variance(&self) -> Vec<f64> {
        self.observation
            .coverage_order()
            .into_iter()
            .map(|k| {
                let r = &self.observation.records[k];
                self.station_noise[r.t1].powi(2) + self.station_noise[r.t2].powi(2)
            })
            .collect()
    }
}

/// Scan index of each record: integrations (distinct times) further apart than
/// [`SCAN_GAP_HOURS`] start a new scan (ehtim's `add_scans(info='self')`).
pub fn scan_index(obs: &EhtimObservation) -> Vec<usize> {
    let mut times: Vec<f64> = obs.records.iter().map(|r| r.time_hour).collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let mut scan_of_time = Vec::with_capacity(times.len());
    let mut scan = 0;
    for (k, t) in times.iter().enumerate() {
        if k > 0 && t - times[k - 1] > SCAN_GAP_HOURS {
            scan += 1;
        }
        scan_of_time.push(scan);
    }
    obs.records
        .iter()
        .map(|r| scan_of_time[times.binary_search_by(|t| t.total_cmp(&r.time_hour)).expect("a time of the table")])
        .collect()
}

/// Coherent scan averages: one record per (scan, first station, second station), as ehtim's
/// `avg_coherent(0, scan_avg=True)` with its predicted errors: mean of `V`, `u`, `v`; the
/// first time; summed integration time; `σ = √(Σ σ²)/N`. Ordered by scan, then stations.
///
/// ```
/// use scoreprior_core::forward::interferometry::{scan_average, EhtimObservation, VisRecord};
/// let rec = |t: f64, re: f64| VisRecord { time_hour: t, tint_s: 10.0, t1: 0, t2: 1, u: 1e9, v: 0.0, re, im: 0.0, sigma: 0.1 };
/// let obs = EhtimObservation { source: "M87".into(), ra_hours: 12.5, dec_deg: 12.4, mjd: 57854.0,
///     frequency_hz: 229e9, bandwidth_hz: 2e9, stations: vec![],
///     records: vec![rec(1.0, 1.0), rec(1.003, 3.0), rec(2.0, 5.0)] };
/// let avg = scan_average(&obs);
/// assert_eq!(avg.records.len(), 2); // two scans: the gap of 1 h exceeds 0.0165 h
/// assert_eq!((avg.records[0].re, avg.records[0].time_hour, avg.records[0].tint_s), (2.0, 1.0, 20.0));
/// assert!((avg.records[0].sigma - 0.1 / 2f64.sqrt()).abs() < 1e-15);
/// ```
pub fn scan_average(obs: &EhtimObservation) -> EhtimObservation {
    let scans = scan_index(obs);
    let mut groups: BTreeMap<(usize, usize, usize), Vec<usize>> = BTreeMap::new();
    for (k, r) in obs.records.iter().enumerate() {
        groups.entry((scans[k], r.t1, r.t2)).or_default().push(k);
    }
    let records = groups
        .into_iter()
        .map(|((_, t1, t2), ks)| {
            let n = ks.len() as f64;
            let rs = ks.iter().map(|&k| &obs.records[k]);
            let mean = |f: fn(&VisRecord) -> f64| rs.clone().map(f).sum::<f64>() / n;
            VisRecord {
                time_hour: rs.clone().map(|r| r.time_hour).fold(f64::INFINITY, f64::min),
                tint_s: rs.clone().map(|r| r.tint_s).sum(),
                t1,
                t2,
                u: mean(|r| r.u),
                v: mean(|r| r.v),
                re: mean(|r| r.re),
                im: mean(|r| r.im),
                sigma: rs.clone().map(|r| r.sigma * r.sigma).sum::<f64>().sqrt() / n,
            }
        })
        .collect();
    EhtimObservation { records, ..obs.clone() }
}

/// Joins the bands of one observation: stations merged by name, band `b` shifted by
/// `b ·` [`BAND_OFFSET_HOURS`] so that no closure mixes bands; the frequency is the bands'
/// mean. Refused when the bands observe different sources or days (`names` label the files).
pub fn join_bands(bands: &[EhtimObservation], names: &[String]) -> Result<EhtimObservation> {
    let first = bands.first().ok_or_else(|| Error::empty("the bands to join", "give at least one observation"))?;
    let name = |b: usize| names.get(b).cloned().unwrap_or_else(|| format!("observation {}", b + 1));
    let mut out = EhtimObservation { records: vec![], stations: vec![], ..first.clone() };
    for (b, o) in bands.iter().enumerate() {
        if o.source.trim() != first.source.trim() {
            return Err(Error::inconsistent(
                "the bands to join",
                format!(
                    "{} observes `{}` but {} observes `{}`: only bands of one source are joined",
                    name(b),
                    o.source.trim(),
                    name(0),
                    first.source.trim()
                ),
            ));
        }
        if (o.mjd - first.mjd).abs() > 0.5 || (o.ra_hours - first.ra_hours).abs() > 1e-6 {
            return Err(Error::inconsistent(
                "the bands to join",
                format!(
                    "{} (MJD {}) and {} (MJD {}) are not one day's observation of one position: image each day alone",
                    name(b),
                    o.mjd,
                    name(0),
                    first.mjd
                ),
            ));
        }
        let map: Vec<usize> = o
            .stations
            .iter()
            .map(|s| match out.stations.iter().position(|t| t.name == s.name) {
                Some(i) => i,
                None => {
                    out.stations.push(s.clone());
                    out.stations.len() - 1
                }
            })
            .collect();
        let shift = b as f64 * BAND_OFFSET_HOURS;
        out.records.extend(o.records.iter().map(|r| VisRecord {
            time_hour: r.time_hour + shift,
            t1: map[r.t1],
            t2: map[r.t2],
            ..*r
        }));
    }
    out.frequency_hz = bands.iter().map(|o| o.frequency_hz).sum::<f64>() / bands.len() as f64;
    Ok(out)
}

/// The median amplitude of baseline `a`–`b` (either orientation), `None` if it has no data.
pub fn median_amplitude(obs: &EhtimObservation, a: &str, b: &str) -> Option<f64> {
    let ia = obs.stations.iter().position(|s| s.name == a)?;
    let ib = obs.stations.iter().position(|s| s.name == b)?;
    let mut amps: Vec<f64> = obs
        .records
        .iter()
        .filter(|r| (r.t1, r.t2) == (ia, ib) || (r.t1, r.t2) == (ib, ia))
        .map(|r| r.re.hypot(r.im))
        .collect();
    if amps.is_empty() {
        return None;
    }
    amps.sort_by(f64::total_cmp);
    let n = amps.len();
    Some(if n % 2 == 1 { amps[n / 2] } else { 0.5 * (amps[n / 2 - 1] + amps[n / 2]) })
}

/// Multiplies visibility and σ of every baseline shorter than `uv_max` by `factor`.
pub fn rescale_short_baselines(obs: &mut EhtimObservation, factor: f64, uv_max: f64) {
    for r in obs.records.iter_mut().filter(|r| r.u.hypot(r.v) < uv_max) {
        r.re *= factor;
        r.im *= factor;
        r.sigma *= factor;
    }
}

/// `σ ← √(σ² + (f |V|)²)`.
pub fn add_fractional_noise(obs: &mut EhtimObservation, f: f64) {
    if f > 0.0 {
        for r in &mut obs.records {
            r.sigma = r.sigma.hypot(f * r.re.hypot(r.im));
        }
    }
}

/// Reorders the station table by the median SNR `|V|/σ` of each station's visibilities,
/// highest first (ehtim's `reorder_tarr_snr`); stations without data go last.
pub fn order_stations_by_snr(obs: &mut EhtimObservation) {
    let n = obs.stations.len();
    let median = |i: usize| {
        let mut snr: Vec<f64> =
            obs.records.iter().filter(|r| r.t1 == i || r.t2 == i).map(|r| r.re.hypot(r.im) / r.sigma).collect();
        if snr.is_empty() {
            return f64::NEG_INFINITY;
        }
        snr.sort_by(f64::total_cmp);
        let m = snr.len();
        if m % 2 == 1 {
            snr[m / 2]
        } else {
            0.5 * (snr[m / 2 - 1] + snr[m / 2])
        }
    };
    let medians: Vec<f64> = (0..n).map(median).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| medians[b].total_cmp(&medians[a]));
    let mut new_index = vec![0; n];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    obs.stations = order.iter().map(|&i| obs.stations[i].clone()).collect();
    for r in &mut obs.records {
        r.t1 = new_index[r.t1];
        r.t2 = new_index[r.t2];
    }
}
