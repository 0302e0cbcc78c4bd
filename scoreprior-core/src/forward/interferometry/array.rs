//! Station arrays, observation settings and uv-coverage (see the module docs of
//! [`super`] for the geometry and the noise formula).

use crate::{Error, Result};

/// Speed of light, m/s.
const C: f64 = 299_792_458.0;

/// One telescope.
#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    /// Name as in the table (`ALMA`).
    pub name: String,
    /// ITRF position, metres.
    pub xyz: [f64; 3],
    /// System equivalent flux density, Jy (mean of the R and L feeds).
    pub sefd: f64,
    /// SEFD of the right-circular feed, Jy.
    pub sefd_r: f64,
    /// SEFD of the left-circular feed, Jy.
    pub sefd_l: f64,
}

/// An array of stations.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The stations, in table order.
    pub stations: Vec<Station>,
}

/// The EHT 2017 table shipped in `assets/eht/` (from eht-imaging; see its `SOURCE.md`).
const EHT2017: &str = include_str!("../../../../assets/eht/EHT2017.txt");

impl Array {
    /// The 8 stations of the 2017 EHT campaign (embedded; no file needed).
    ///
    /// ```
    /// let a = scoreprior_core::forward::interferometry::Array::eht2017();
    /// assert_eq!(a.stations.len(), 8);
    /// assert_eq!(a.stations[4].name, "ALMA");
    /// ```
    pub fn eht2017() -> Self {
        Self::parse(EHT2017).expect("the embedded EHT 2017 table parses")
    }

    /// Parses an eht-imaging array table: `NAME X Y Z SEFDR SEFDL ...` per line, `#`
    /// comments.
    pub fn parse(text: &str) -> Result<Self> {
        let mut stations = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let num = |i: usize| -> Result<f64> {
                f.get(i).and_then(|s| s.parse::<f64>().ok()).filter(|v| v.is_finite()).ok_or_else(|| {
                    Error::syntax(format!("array table line {}", n + 1), format!("column {} is not a number", i + 1))
                })
            };
            let (r, l) = (num(4)?, num(5)?);
            if r <= 0.0 || l <= 0.0 {
                return Err(Error::syntax(format!("array table line {}", n + 1), "SEFDs must be positive"));
            }
            stations.push(Station {
                name: f[0].to_string(),
                xyz: [num(1)?, num(2)?, num(3)?],
                sefd: 0.5 * (r + l),
                sefd_r: r,
                sefd_l: l,
            });
        }
        if stations.len() < 2 {
            return Err(Error::syntax("array table", "an array needs at least two stations"));
        }
        Ok(Array { stations })
    }

    /// The uv-coverage of an observation, sampled as eht-imaging's `observe` does: scans at
    /// `start + i·cadence` in `[start, stop)`, a baseline kept when both stations see the
    /// source strictly between the elevation limits, `(u, v) = (r_i − r_j)·(ê, n̂)/λ` for
    /// `i < j` in table order, Stokes I σ from the R and L SEFDs (module docs of [`super`]).
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::{Array, Observation};
    /// let cov = Array::eht2017().observe(&Observation::sgr_a_star()).unwrap();
    /// assert_eq!(cov.points.len(), 1023); // as ehtim 1.3.2 `observe` of the same settings
    /// ```
    pub fn observe(&self, obs: &Observation) -> Result<UvCoverage> {
        obs.validate()?;
        let step_h = obs.cadence_s / 3600.0;
        // numpy's `arange(start, stop, step)` length, which ehtim uses for the scan times.
        let scans = ((obs.stop_hour - obs.start_hour) / step_h).ceil().max(0.0);
        let pairs = self.stations.len() * self.stations.len().saturating_sub(1) / 2;
        let points = scans * pairs as f64;
        // Scans × baselines points of (u, v, σ, …): estimate before the loop, so a tiny cadence
        // is an error rather than minutes of work and an allocation failure. Each point later
        // becomes a row of the D-column NUDFT matrix: count 1 KiB per point here.
        crate::limits::check_bytes(
            &format!("the uv coverage of {scans} scans (cadence {} s)", obs.cadence_s),
            (points * (std::mem::size_of::<UvPoint>() as f64 + 1024.0)).min(u128::MAX as f64) as u128,
        )?;
        let (ra, dec) = (obs.ra_deg.to_radians(), obs.dec_deg.to_radians());
        let lambda = C / obs.frequency_hz;
        let mut points = Vec::new();
        for scan in 0..scans as usize {
            let t = obs.start_hour + scan as f64 * step_h;
            let theta = gmst_rad(obs.mjd, t);
            let h = ra - theta;
            let s = [dec.cos() * h.cos(), dec.cos() * h.sin(), dec.sin()];
            let e = [-h.sin(), h.cos(), 0.0];
            let nv = [-dec.sin() * h.cos(), -dec.sin() * h.sin(), dec.cos()];
            let up: Vec<bool> = self
                .stations
                .iter()
                .map(|st| {
                    let r = st.xyz;
                    let norm = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
                    let el = ((r[0] * s[0] + r[1] * s[1] + r[2] * s[2]) / norm).clamp(-1.0, 1.0).asin().to_degrees();
                    el > obs.elevation_cutoff_deg && el < obs.elevation_max_deg
                })
                .collect();
            for i in 0..self.stations.len() {
                for j in i + 1..self.stations.len() {
                    if !(up[i] && up[j]) {
                        continue;
                    }
                    let (a, b) = (&self.stations[i], &self.stations[j]);
                    let bl = [a.xyz[0] - b.xyz[0], a.xyz[1] - b.xyz[1], a.xyz[2] - b.xyz[2]];
                    let dot = |v: [f64; 3]| bl[0] * v[0] + bl[1] * v[1] + bl[2] * v[2];
                    let sigma = obs.stokes_i_sigma(a, b);
                    points.push(UvPoint { time_hour: t, i, j, u: dot(e) / lambda, v: dot(nv) / lambda, sigma });
                }
            }
        }
        Ok(UvCoverage { stations: self.stations.iter().map(|s| s.name.clone()).collect(), points })
    }
}

/// Greenwich mean sidereal time (radians) at `hour` UTC of the day `mjd` (USNO
/// low-precision formula; see the module docs).
fn gmst_rad(mjd: f64, hour: f64) -> f64 {
    let d = mjd + hour / 24.0 + 2_400_000.5 - 2_451_545.0;
    let gmst_h = (18.697374558 + 24.06570982441908 * d).rem_euclid(24.0);
    gmst_h * std::f64::consts::PI / 12.0
}

/// What is observed, when, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Right ascension, degrees (J2000, used as of date).
    pub ra_deg: f64,
    /// Declination, degrees.
    pub dec_deg: f64,
    /// Observing frequency, Hz.
    pub frequency_hz: f64,
    /// Bandwidth `Δν`, Hz.
    pub bandwidth_hz: f64,
    /// Modified Julian date of the observing day (UTC 0 h).
    pub mjd: f64,
    /// First scan, hours UTC.
    pub start_hour: f64,
    /// Scans are strictly before this, hours UTC (may exceed 24 to cross midnight).
    pub stop_hour: f64,
    /// Integration time `τ` of one visibility, seconds.
    pub integration_s: f64,
    /// Time between scans, seconds.
    pub cadence_s: f64,
    /// Stations observe only above this elevation, degrees (strictly, as ehtim's `elevmin`).
    pub elevation_cutoff_deg: f64,
    /// Stations observe only below this elevation, degrees (ehtim's `elevmax`, 85°).
    pub elevation_max_deg: f64,
    /// Correlator efficiency `η` (0.88 for 2-bit quantisation).
    pub efficiency: f64,
}

impl Observation {
    /// A Sgr A*-like track: RA 17h45m40s, Dec −29°00′28″, 230 GHz, 4 GHz bandwidth, on
    /// 2017-04-07 (MJD 57850) over 24 h, 10 s integrations every 10 minutes, observed between
    /// 10° and 85° elevation.
    pub fn sgr_a_star() -> Self {
        Observation {
            ra_deg: 15.0 * (17.0 + 45.0 / 60.0 + 40.0 / 3600.0),
            dec_deg: -(29.0 + 0.0 / 60.0 + 28.0 / 3600.0),
            frequency_hz: 230e9,
            bandwidth_hz: 4e9,
            mjd: 57850.0,
            start_hour: 0.0,
            stop_hour: 24.0,
            integration_s: 10.0,
            cadence_s: 600.0,
            elevation_cutoff_deg: 10.0,
            elevation_max_deg: 85.0,
            efficiency: 0.88,
        }
    }
    /// Thermal σ of Stokes I on the baseline `a`–`b`, per real and imaginary part, Jy:
    /// `½ √(σ_RR² + σ_LL²)` with `σ_PP = √(SEFD_P,a · SEFD_P,b / (2 Δν τ)) / η` (ehtim's
    /// `blnoise` per polarisation product; I = (RR + LL)/2 averages two independent products).
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::{Array, Observation};
    /// let st = Array::eht2017().stations; // ALMA and APEX: 90 and 3500 Jy on both feeds
    /// let s = Observation::sgr_a_star().stokes_i_sigma(&st[4], &st[6]);
    /// let one_feed = (90.0f64 * 3500.0 / (2.0 * 4e9 * 10.0)).sqrt() / 0.88;
    /// assert!((s - one_feed / 2f64.sqrt()).abs() < 1e-15);
    /// ```
    pub fn stokes_i_sigma(&self, a: &Station, b: &Station) -> f64 {
        let per_product =
            |s1: f64, s2: f64| (s1 * s2 / (2.0 * self.bandwidth_hz * self.integration_s)).sqrt() / self.efficiency;
        let (rr, ll) = (per_product(a.sefd_r, b.sefd_r), per_product(a.sefd_l, b.sefd_l));
        0.5 * (rr * rr + ll * ll).sqrt()
    }

    /// Checks every setting (positive finite rates and times, limits in range).
    pub fn validate(&self) -> Result<()> {
        let pos = [
            ("frequency", self.frequency_hz),
            ("bandwidth", self.bandwidth_hz),
            ("integration time", self.integration_s),
            ("cadence", self.cadence_s),
            ("efficiency", self.efficiency),
        ];
        for (name, v) in pos {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::out_of_range(format!("observation {name}"), v, "positive"));
            }
        }
        if self.dec_deg.is_nan() || self.dec_deg.abs() > 90.0 {
            return Err(Error::out_of_range("observation Dec (degrees)", self.dec_deg, "in [−90, 90]"));
        }
        for (name, v) in [("RA", self.ra_deg), ("MJD", self.mjd), ("start hour", self.start_hour)] {
            if !v.is_finite() {
                return Err(Error::out_of_range(format!("observation {name}"), v, "finite"));
            }
        }
        if !(self.stop_hour > self.start_hour && self.stop_hour - self.start_hour <= 240.0) {
            let expected = format!("after the start ({} h) and at most 240 h later", self.start_hour);
            return Err(Error::out_of_range("observation stop hour", self.stop_hour, expected));
        }
        if !(-90.0..90.0).contains(&self.elevation_cutoff_deg) {
            return Err(Error::out_of_range("elevation cutoff (degrees)", self.elevation_cutoff_deg, "in [−90, 90)"));
        }
        if !(self.elevation_max_deg > self.elevation_cutoff_deg && self.elevation_max_deg <= 90.0) {
            let expected = format!("above the cutoff ({}°) and at most 90", self.elevation_cutoff_deg);
            return Err(Error::out_of_range("elevation max (degrees)", self.elevation_max_deg, expected));
        }
        Ok(())
    }
}

/// One visibility sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UvPoint {
    /// Time of the scan, hours UTC.
    pub time_hour: f64,
    /// First station (index in the array), `i < j`.
    pub i: usize,
    /// Second station.
    pub j: usize,
    /// `u`, wavelengths.
    pub u: f64,
    /// `v`, wavelengths.
    pub v: f64,
    /// Thermal noise per real/imaginary part, Jy.
    pub sigma: f64,
}

/// All visibility samples of an observation, ordered by time then baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct UvCoverage {
    /// Station names (indices of [`UvPoint::i`], [`UvPoint::j`]).
    pub stations: Vec<String>,
    /// The samples.
    pub points: Vec<UvPoint>,
}

impl UvCoverage {
    /// Distinct station pairs with at least one sample.
    pub fn baselines(&self) -> Vec<(usize, usize)> {
        let mut b: Vec<(usize, usize)> = self.points.iter().map(|p| (p.i, p.j)).collect();
        b.sort_unstable();
        b.dedup();
        b
    }
    /// Longest projected baseline `max √(u² + v²)`, wavelengths.
    pub fn max_baseline(&self) -> f64 {
        self.points.iter().map(|p| p.u.hypot(p.v)).fold(0.0, f64::max)
    }
    /// Distinct scan times, in order.
    pub fn times(&self) -> Vec<f64> {
        let mut t: Vec<f64> = self.points.iter().map(|p| p.time_hour).collect();
        t.dedup();
        t
    }
}
