//! The settings of the `eht(…)` preset ([`EhtSettings`]): a simulated EHT 2017 observation
//! or observation files with their pre-processing, and the image grid; they build the
//! [`Interferometer`](crate::forward::interferometry::Interferometer) that `measure` and
//! `eht-image` use.

use super::{parse_call, ParamValue, Params};
use crate::{Error, Result};

/// The fields of view (µas) `eht(fov=…)` accepts: from a thousandth of a µas to 1000
/// arcseconds, beyond any VLBI image (and far from the absurd pixel sizes, `1e288°`, a FITS
/// header would otherwise record).
pub const EHT_FOV_UAS: (f64, f64) = (1e-3, 1e9);

/// The settings of the `eht(...)` preset: EHT 2017 observing a Sgr A*-like source
/// ([`crate::forward::interferometry::Observation::sgr_a_star`]) and the image grid.
///
/// `eht(fov=160, tint=10, bandwidth=4e9, cutoff=10, cadence=600, start=0, stop=24,
/// pulse=delta)`: field of view (µas), integration time (s), bandwidth (Hz), elevation cutoff
/// (degrees), scan cadence (s), first scan and end of the track (hours UTC, scans in
/// `[start, stop)`), pixel shape (`delta` or ehtim's `triangle`, [`crate::forward::ops::Pulse`]); all
/// optional with these defaults. `eht(obs='file.txt', fov=160)` instead takes the coverage, σ and
/// data of an observation exported by ehtim's `Obsdata.save_txt`
/// ([`crate::forward::interferometry::read_ehtim_txt`]); the observing parameters then
/// come from the file and may not be given. `closure_covariance=diagonal|scan` (either
/// observation) says how closure data are modelled: each closure independent (`diagonal`, the
/// default) or each scan's closures jointly Gaussian
/// ([`ClosureCovariance`](crate::forward::interferometry::ClosureCovariance)).
///
/// ```
/// use scoreprior_core::forward::spec::EhtSettings;
/// let s = EhtSettings::parse("eht(fov=160, tint=60, bandwidth=2e9)").unwrap().unwrap();
/// assert_eq!((s.fov_uas, s.observation.integration_s, s.observation.bandwidth_hz), (160.0, 60.0, 2e9));
/// assert!(EhtSettings::parse("mri").unwrap().is_none());
/// let e = EhtSettings::parse("eht(tint=-1)").unwrap_err().to_string();
/// assert!(e.contains("tint") && e.contains("positive"), "{e}");
/// use scoreprior_core::forward::interferometry::ClosureCovariance;
/// assert_eq!(s.closure_covariance, ClosureCovariance::Diagonal);
/// let s = EhtSettings::parse("eht(closure_covariance=scan)").unwrap().unwrap();
/// assert_eq!(s.closure_covariance, ClosureCovariance::Scan);
/// let e = EhtSettings::parse("eht(closure_covariance=full)").unwrap_err().to_string();
/// assert!(e.contains("closure_covariance") && e.contains("diagonal") && e.contains("scan"), "{e}");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct EhtSettings {
    /// Field of view of the image, µas.
    pub fov_uas: f64,
    /// The simulated observation (ignored when `observation_file` is set).
    pub observation: crate::forward::interferometry::Observation,
    /// Observation files (ehtim text exports or uvfits; the bands of one day) whose data,
    /// coverage and σ are used instead of a simulation; empty for the simulation.
    pub observation_files: Vec<std::path::PathBuf>,
    /// What is done to the files' visibilities before imaging (nothing by default;
    /// `pipeline=eht2017` is the collaboration's M87 pre-processing).
    pub preprocessing: crate::forward::interferometry::Preprocessing,
    /// Pixel shape: point pixels (`delta`, default) or ehtim's bilinear `triangle`.
    pub pulse: crate::forward::ops::Pulse,
    /// How closure data are modelled (`closure_covariance`; independent by default).
    pub closure_covariance: crate::forward::interferometry::ClosureCovariance,
    /// How visibilities are computed (`transform`; the NUFFT from 64 pixels on a side by default).
    pub transform: crate::forward::interferometry::VisibilityTransform,
}

impl EhtSettings {
    /// `Some(settings)` when `text` is one `eht(...)` call, `None` for anything else, an
    /// error for an unknown key or a bad value (non-positive or non-finite `fov`, `tint`,
    /// `bandwidth`, `cadence`; cutoff outside (−90°, 85°); `stop ≤ start`).
    pub fn parse(text: &str) -> Result<Option<Self>> {
        if text.contains('|') {
            return Ok(None);
        }
        let Ok(spec) = parse_call(text) else { return Ok(None) };
        if spec.name != "eht" {
            return Ok(None);
        }
        let q = Params::new(&spec, scoreprior_primitives::preset("eht").expect("`eht` in the table of presets"))?;
        let pos = |k: &str, d: f64| -> Result<f64> {
            match q.get(k) {
                None => Ok(d),
                Some(_) => q.positive(k),
            }
        };
        let num = |k: &str, d: f64| -> Result<f64> { Ok(q.num_opt(k)?.unwrap_or(d)) };
        let fov_uas = pos("fov", q.num_or_default("fov")?)?;
        if !(EHT_FOV_UAS.0..=EHT_FOV_UAS.1).contains(&fov_uas) {
            return Err(Error::out_of_range(
                "parameter `fov` of `eht` (the field of view)",
                fov_uas,
                format!("between {} and {:e} µas (1000 arcseconds)", EHT_FOV_UAS.0, EHT_FOV_UAS.1),
            ));
        }
        let observation_files: Vec<std::path::PathBuf> = match q.get("obs") {
            None => vec![],
            Some(ParamValue::Word(w) | ParamValue::Text(w)) => {
                let files: Vec<std::path::PathBuf> = w.split(',').map(|f| f.trim().into()).collect();
                if files.iter().any(|f| f.as_os_str().is_empty()) {
                    return Err(Error::syntax(
                        "`eht`",
                        format!("parameter `obs` is a file or a comma-separated list of files, got `{w}`"),
                    ));
                }
                files
            }
            Some(v) => return Err(Error::syntax("`eht`", format!("parameter `obs` must be a file path, got `{v}`"))),
        };
        const FILE_KEYS: [&str; 13] = [
            "obs",
            "fov",
            "pulse",
            "closure_covariance",
            "transform",
            "pipeline",
            "average",
            "zbl",
            "systematic",
            "cp_uv_min",
            "station_noise",
            "snrcut",
            "gain_error",
        ];
        if !observation_files.is_empty() {
            if let Some((k, _)) = spec.params.iter().find(|(k, _)| !FILE_KEYS.contains(&k.as_str())) {
                return Err(Error::inconsistent(
                    format!("`{k}` of `eht(obs=…)`"),
                    format!("`eht(obs=…)` takes the observation from the file: `{k}` may not be given with it"),
                ));
            }
        } else if let Some((k, _)) = spec.params.iter().find(|(k, _)| FILE_KEYS[5..].contains(&k.as_str())) {
            return Err(Error::inconsistent(
                format!("`{k}` of `eht`"),
                "it pre-processes an observation file: it needs `obs='FILE'` (the simulation has nothing to \
                 pre-process)",
            ));
        }
        let preprocessing = eht_preprocessing(&q)?;
        let base = crate::forward::interferometry::Observation::sgr_a_star();
        let observation = crate::forward::interferometry::Observation {
            integration_s: pos("tint", base.integration_s)?,
            bandwidth_hz: pos("bandwidth", base.bandwidth_hz)?,
            cadence_s: pos("cadence", base.cadence_s)?,
            elevation_cutoff_deg: num("cutoff", base.elevation_cutoff_deg)?,
            start_hour: num("start", base.start_hour)?,
            stop_hour: num("stop", base.stop_hour)?,
            ..base
        };
        observation.validate()?;
        let bad_pulse =
            |v: &dyn std::fmt::Display| Error::unknown_of("pulse", v.to_string(), "eht", "delta or triangle");
        let pulse = match q.get("pulse") {
            None => q.default("pulse").expect("a default pulse in the table"),
            Some(ParamValue::Word(w)) => w.as_str(),
            Some(v) => return Err(bad_pulse(v)),
        };
        let pulse = match pulse {
            "delta" => crate::forward::ops::Pulse::Delta,
            "triangle" => crate::forward::ops::Pulse::Triangle,
            other => return Err(bad_pulse(&other)),
        };
        use crate::forward::interferometry::{ClosureCovariance, VisibilityTransform};
        let closure_covariance = word_key(&q, "closure_covariance", &ClosureCovariance::NAMES)?;
        let transform = word_key(&q, "transform", &VisibilityTransform::NAMES)?;
        Ok(Some(EhtSettings {
            fov_uas,
            observation,
            observation_files,
            preprocessing,
            pulse,
            closure_covariance,
            transform,
        }))
    }

    /// The observation files read, checked and pre-processed ([`Preprocessing::apply`]);
    /// `None` for the simulated observation. Errors name the files.
    ///
    /// [`Preprocessing::apply`]: crate::forward::interferometry::Preprocessing::apply
    pub fn observation(&self) -> Result<Option<crate::forward::interferometry::PreprocessedObservation>> {
        if self.observation_files.is_empty() {
            return Ok(None);
        }
        let bands = self
            .observation_files
            .iter()
            .map(crate::forward::interferometry::read_ehtim_txt)
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<String> = self.observation_files.iter().map(|p| p.display().to_string()).collect();
        self.preprocessing.apply(&bands, &names).map(Some)
    }

    /// How the observation files are named in messages: `eht(obs='A, B')`.
    pub fn observation_label(&self) -> String {
        let files: Vec<String> = self.observation_files.iter().map(|p| p.display().to_string()).collect();
        format!("eht(obs='{}')", files.join(", "))
    }

    /// The interferometer on an `npix × npix` grid: the EHT 2017 coverage of
    /// [`EhtSettings::observation`], or that of the observation file.
    ///
    /// # Errors
    /// The file cannot be read; the coverage is empty or has a thermal σ out of range
    /// ([`Interferometer::new`](crate::forward::interferometry::Interferometer::new)); no scan
    /// has three stations observing together, so there are no closure quantities (what `eht`
    /// images and `measure` writes). Errors name the observation file.
    pub fn interferometer(&self, npix: usize) -> Result<crate::forward::interferometry::Interferometer> {
        use crate::forward::interferometry::{Array, Interferometer};
        let (coverage, what, cp_uv_min) = match self.observation()? {
            Some(p) => (p.observation.coverage(), self.observation_label(), p.closure_phase_uv_min),
            None => {
                (Array::eht2017().observe(&self.observation)?, "eht: the simulated EHT 2017 observation".into(), 0.0)
            }
        };
        let eht = Interferometer::new(coverage, npix, self.fov_uas)
            .map_err(|e| e.context(what.clone()))?
            .with_closure_phase_uv_min(cp_uv_min);
        let sets = eht.closures();
        if sets.triangles.is_empty() && sets.quadrangles.is_empty() {
            let cov = eht.coverage();
            let mut used: Vec<usize> = cov.points.iter().flat_map(|p| [p.i, p.j]).collect();
            used.sort_unstable();
            used.dedup();
            let names: Vec<&str> = used.iter().filter_map(|&i| cov.stations.get(i).map(String::as_str)).collect();
            let most = sets.per_scan.iter().map(|s| s.1).max().unwrap_or(0);
            return Err(Error::unsupported(format!(
                "{what}: the observation has {} station(s) with data ({}) over {} scan(s), at most {most} observing \
                 in one scan, so it has no closure phases (they need 3 stations in one scan) and no closure \
                 amplitudes (4 stations), which `eht` images and `measure` writes",
                names.len(),
                names.join(", "),
                cov.times().len(),
            )));
        }
        Ok(eht.with_pulse(self.pulse).with_transform(self.transform))
    }
}

/// The value of the word-valued key `key` of `eht` (its table default when absent), one of
/// `names`: an error naming the key and its choices otherwise.
fn word_key<T: std::str::FromStr>(q: &Params, key: &'static str, names: &[&str]) -> Result<T> {
    let bad = |v: &dyn std::fmt::Display| Error::unknown_of(key, v.to_string(), "eht", names.join(" or "));
    let word = match q.get(key) {
        None => q.default(key).expect("every word key of `eht` has a default in the table"),
        Some(ParamValue::Word(w)) => w.as_str(),
        Some(v) => return Err(bad(v)),
    };
    word.parse().map_err(|_| bad(&word))
}

/// The pre-processing keys of `eht(obs=…)`: `pipeline=eht2017` starts from the
/// collaboration's settings, each other key overrides one of them.
fn eht_preprocessing(q: &Params) -> Result<crate::forward::interferometry::Preprocessing> {
    use crate::forward::interferometry::{eht2017_station_noise, Averaging, Preprocessing};
    let word = |k: &str| -> Result<Option<String>> {
        match q.get(k) {
            None => Ok(None),
            Some(ParamValue::Word(w)) => Ok(Some(w.clone())),
            Some(v) => Err(Error::syntax("`eht`", format!("parameter `{k}` must be a word, got `{v}`"))),
        }
    };
    let one_of = |k: &str, words: &[&str]| -> Result<Option<String>> {
        match word(k)? {
            Some(w) if !words.contains(&w.as_str()) => {
                Err(Error::unknown_of("value", w, k, words.join(" or ")).context("`eht`"))
            }
            w => Ok(w),
        }
    };
    let mut p = match one_of("pipeline", &["none", "eht2017"])?.as_deref() {
        Some("eht2017") => Preprocessing::eht2017(),
        _ => Preprocessing::default(),
    };
    if let Some(a) = one_of("average", &["none", "scan"])? {
        p.averaging = if a == "scan" { Averaging::Scan } else { Averaging::None };
    }
    if q.get("zbl").is_some() {
        p.compact_flux_jy = Some(q.positive("zbl")?);
    }
    // The ranges are checked once, by `Preprocessing::validate`, whose messages name these keys.
    if let Some(f) = q.num_opt("systematic")? {
        p.fractional_noise = f;
    }
    if let Some(uv) = q.num_opt("cp_uv_min")? {
        p.closure_phase_uv_min = uv;
    }
    if let Some(g) = q.num_opt("gain_error")? {
        p.gain_error = g;
    }
    if let Some(c) = q.num_opt("snrcut")? {
        p.snr_cut = c;
    }
    if let Some(w) = one_of("station_noise", &["none", "eht2017"])? {
        p.station_noise = if w == "eht2017" { eht2017_station_noise() } else { vec![] };
    }
    p.validate().map_err(|e| e.context("`eht`"))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::parse_chain;

    /// A preset inside a chain is named as a preset that stands alone, not as an unknown
    /// primitive; `eht`'s field of view is bounded to physical values.
    #[test]
    fn presets_stand_alone_and_the_eht_field_of_view_is_bounded() {
        for chain in ["eht(fov=160) | scale(factor=2)", "scale(factor=2) | eht", "mri | identity"] {
            let e = parse_chain(chain, [1, 16, 16]).unwrap_err().to_string();
            assert!(e.contains("is a preset, not a primitive") && e.contains("stand alone"), "{chain}: {e}");
            assert!(!e.contains("unknown primitive"), "{e}");
        }
        assert!(parse_chain("eht(fov=160) | scale(factor=2)", [1, 16, 16]).unwrap_err().to_string().contains("`eht`"));
        for fov in ["1e300", "2e9", "1e-4"] {
            let e = EhtSettings::parse(&format!("eht(fov={fov})")).unwrap_err().to_string();
            assert!(e.contains("`fov`") && e.contains("µas"), "{fov}: {e}");
        }
        assert!(EhtSettings::parse("eht(fov=1e6)").unwrap().is_some());
    }

    /// `closure_covariance` applies to the simulation and to observation files alike, and is
    /// not a pre-processing key; a bad value names the key and its choices.
    #[test]
    fn closure_covariance_is_a_key_of_either_observation() {
        use crate::forward::interferometry::ClosureCovariance;
        for spec in ["eht(closure_covariance=scan)", "eht(obs='a.txt', closure_covariance=scan)"] {
            let s = EhtSettings::parse(spec).unwrap().unwrap();
            assert_eq!(s.closure_covariance, ClosureCovariance::Scan, "{spec}");
        }
        let s = EhtSettings::parse("eht(obs='a.txt', pipeline=eht2017)").unwrap().unwrap();
        assert_eq!(s.closure_covariance, ClosureCovariance::Diagonal);
        for bad in ["eht(closure_covariance=full)", "eht(closure_covariance=1)", "eht(closure_covariance='scan ')"] {
            let e = EhtSettings::parse(bad).unwrap_err().to_string();
            assert!(e.contains("closure_covariance") && e.contains("diagonal") && e.contains("scan"), "{bad}: {e}");
        }
    }

    /// `transform` applies to the simulation and to observation files alike; `auto` picks the
    /// NUFFT from 64 pixels on a side; a bad value names the key and its choices.
    #[test]
    fn transform_is_a_key_of_either_observation() {
        use crate::forward::interferometry::VisibilityTransform;
        for (spec, want) in [
            ("eht", VisibilityTransform::Auto),
            ("eht(transform=direct)", VisibilityTransform::Direct),
            ("eht(obs='a.txt', transform=nufft)", VisibilityTransform::Nufft),
        ] {
            assert_eq!(EhtSettings::parse(spec).unwrap().unwrap().transform, want, "{spec}");
        }
        let s = EhtSettings::parse("eht(tint=600)").unwrap().unwrap();
        assert!(!s.interferometer(32).unwrap().uses_nufft());
        assert!(s.interferometer(64).unwrap().uses_nufft());
        let s = EhtSettings::parse("eht(tint=600, transform=direct)").unwrap().unwrap();
        assert!(!s.interferometer(64).unwrap().uses_nufft());
        for bad in ["eht(transform=fft)", "eht(transform=2)"] {
            let e = EhtSettings::parse(bad).unwrap_err().to_string();
            assert!(e.contains("transform") && e.contains("auto") && e.contains("nufft"), "{bad}: {e}");
        }
    }

    /// `eht(obs=…)` on a file without closure quantities, or with an absurd σ, is refused
    /// when the interferometer is built, naming the file.
    #[test]
    fn eht_observation_files_are_checked_when_the_operator_is_built() {
        let header = [
            "# SRC: SgrA",
            "# RA: 17 h 45 m 40.0000 s",
            "# DEC: -29 deg  0 m 28.0000 s",
            "# MJD: 57850",
            "# RF: 230.0000 GHz",
            "# BW: 4.0000 GHz",
            "# ----------",
            "# Site X(m) Y(m) Z(m) SEFDR SEFDL FR_PAR FR_EL FR_OFF DR_RE DR_IM DL_RE DL_IM",
            "# ALMA 2225061.16 -5440057.37 -2481681.15 90.00 90.00 1.00 0.00 0.00 0.0 0.0 0.0 0.0",
            "# APEX 2225039.53 -5441197.63 -2479303.36 3500.00 3500.00 1.00 0.00 0.00 0.0 0.0 0.0 0.0",
            "# ----------",
            "# time (hr) tint T1 T2 Tau1 Tau2 U (lambda) V (lambda) Iamp (Jy) Iphase(d) Qamp (Jy) ...",
        ]
        .join("\n");
        let row = |t: f64, sigma: &str| {
            format!("{t} 10.00 ALMA APEX 0.00 0.00 100.0 -200.0 0.5 90.0 0 0 0 0 0 0 {sigma} 0.01 0.01 0.01")
        };
        let dir = tempfile::tempdir().unwrap();
        let two = dir.path().join("two.txt");
        std::fs::write(&two, format!("{header}\n{}\n{}\n", row(1.0, "0.01"), row(2.0, "0.01"))).unwrap();
        let settings = EhtSettings::parse(&format!("eht(obs='{}')", two.display())).unwrap().unwrap();
        let e = settings.interferometer(8).unwrap_err().to_string();
        assert!(e.contains("two.txt") && e.contains("2 station(s)") && e.contains("2 scan(s)"), "{e}");
        assert!(e.contains("no closure phases"), "{e}");
        let tiny = dir.path().join("tiny.txt");
        std::fs::write(&tiny, format!("{header}\n{}\n", row(1.0, "1e-300"))).unwrap();
        let settings = EhtSettings::parse(&format!("eht(obs='{}')", tiny.display())).unwrap().unwrap();
        let e = settings.interferometer(8).unwrap_err().to_string();
        assert!(e.contains("tiny.txt") && e.contains("thermal σ") && e.contains("1e-300"), "{e}");
    }
}
