//! Radio interferometry as in black-hole imaging (EHT): uv-coverage of a station array,
//! thermal noise, visibilities `V(u, v) = Σ_p x_p e^{2πi(u l_p + v m_p)}` ([`ops::Nudft`]),
//! and the calibration-insensitive closure phases `ψ = arg V_ab + arg V_bc + arg V_ca` and log
//! closure amplitudes `ln(|V_ab||V_cd| / |V_ac||V_bd|)` on a minimal independent set.
//!
//! # Geometry (eht-imaging's conventions, and what differs)
//! Stations are ITRF positions `r` (metres). At UTC time `t` the Greenwich mean sidereal
//! time is `θ = 18.697374558 h + 24.06570982441908 h · D` (`D` = days since J2000.0, the
//! USNO low-precision formula, with UT1 = UTC). The source direction in the Earth-fixed
//! frame is `s = (cos δ cos(α−θ), cos δ sin(α−θ), sin δ)`; a station sees it at the
//! geocentric elevation `asin(r̂·s)` (no refraction) and observes when `10° < el < 85°`
//! (ehtim's `elevmin`/`elevmax`, both strict). For stations `i < j` in table order,
//! `(u, v) = (r_i − r_j)·(ê, n̂)/λ` with `ê = (−sin(α−θ), cos(α−θ), 0)` (east) and
//! `n̂ = s × ê` (north), and the visibility is `V = Σ x e^{+2πi(u l + v m)}` ([`ops::Nudft`]):
//! ehtim's sign conventions, so its exported `(u, v, V)` feed our operator unchanged. Scans
//! are at `start + k·cadence` in `[start, stop)` (numpy's `arange`, as ehtim).
//!
//! Against ehtim 1.3.2's `Image.observe` of the Sgr A* track of [`Observation::sgr_a_star`]
//! (`benches/reference/ehtim_rml.py` prints both): the same 1023 visibilities in the same 106
//! scans, hence the same 641 closure phases and 544 log closure amplitudes, and the same σ to
//! the last bit. Two conventions differ. (1) ehtim computes GMST with astropy from UT1 (IERS
//! tables, `UT1 − UTC ≈ 0.4 s` in 2017); we use UTC and no tables, so `(u, v)` differ by a
//! rotation of a few 1e-5 rad (measured: at most 7e-5 of `|uv|`). (2) ehtim's `Obsdata`
//! reorders each baseline so its first station has the lower SEFD (ALMA first), conjugating
//! `V` and negating `(u, v)` where it swaps; we keep table order. Both describe the same
//! data; closure phases of the same triangle then agree up to orientation.
//!
//! # Noise
//! Per visibility and per real/imaginary part, Stokes I as eht-imaging computes it: each
//! polarisation product has `σ_PP = √(SEFD_P,i SEFD_P,j / (2 Δν τ)) / η` (radiometer
//! equation, `η = 0.88` for 2-bit quantisation, R and L SEFDs from the array table), and
//! `I = (RR + LL)/2` averages two independent products, `σ_I = ½ √(σ_RR² + σ_LL²)`, i.e.
//! `σ_PP/√2` when the feeds agree. Closure quantities get the linearised
//! `σ² = Σ_k σ_k² / |V_k|²` over their visibilities.

mod array;
mod closure;
mod ehtim;
mod image_metrics;
mod imaging;
mod parametric;
mod preprocess;
mod sources;
mod uvfits;

pub use array::{Array, Observation, Station, UvCoverage, UvPoint};
pub use closure::{closure_sets, closure_sets_with, ClosureSets};
pub use ehtim::{read_ehtim_txt, EhtimObservation, VisRecord};
pub use image_metrics::{
    best_shift, bilinear, blur_psnr, chi2_inversebench, gaussian_blur, ncc, nominal_resolution_uas, psnr_best_shift,
    rescale_to_flux, ring_fit, shift_image, RingFit,
};
pub use imaging::{nxcorr, ClosureChi2, ClosureProblem};
pub use parametric::{
    adaptive_metropolis, effective_sample_size, split_rhat, McmcRun, McmcSettings, ParametricPosterior, SourceFamily,
};
pub use preprocess::{
    add_fractional_noise, eht2017_station_noise, join_bands, median_amplitude, order_stations_by_snr,
    rescale_short_baselines, scan_average, scan_index, Averaging, PreprocessedObservation, Preprocessing,
    BAND_OFFSET_HOURS, EHT2017_SEFD_BUDGET, SCAN_GAP_HOURS, ZERO_BASELINE_UV,
};
pub use sources::{CompactSources, TestSource, BLOB_FRACTION};
pub use uvfits::{is_uvfits_path, read_uvfits};

use super::noise::Likelihood;
use super::{ops, Chain, Model, Noise, Op, Shape};
use crate::{Error, Result};

/// The thermal noise levels (Jy per real and imaginary part) an [`Interferometer`] accepts:
/// real arrays have σ of about 1e-4 to 10 Jy; far outside this range χ² and the likelihood
/// lose their meaning (at σ = 1e-300, σ² underflows to 0 and χ² is NaN).
pub const THERMAL_SIGMA_JY: (f64, f64) = (1e-12, 1e12);

/// One microarcsecond in radians.
pub const UAS: f64 = std::f64::consts::PI / (180.0 * 3600.0 * 1e6);

/// An interferometric imaging problem: a uv-coverage and an `npix × npix` image grid of
/// field of view `fov_uas`.
///
/// # Examples
/// ```
/// use scoreprior_core::forward::interferometry::{Array, Interferometer, Observation};
/// use scoreprior_core::forward::ForwardModel;
/// let cov = Array::eht2017().observe(&Observation::sgr_a_star()).unwrap();
/// let eht = Interferometer::new(cov, 32, 160.0).unwrap();
/// let m = eht.visibility_model().unwrap();
/// assert_eq!(m.input_dim(), 32 * 32);
/// ```
#[derive(Debug, Clone)]
pub struct Interferometer {
    coverage: UvCoverage,
    npix: usize,
    fov_uas: f64,
    pulse: ops::Pulse,
    closure_phase_uv_min: f64,
}

impl Interferometer {
    /// The problem of imaging `npix × npix` pixels over `fov_uas` µas from `coverage`.
    pub fn new(coverage: UvCoverage, npix: usize, fov_uas: f64) -> Result<Self> {
        if coverage.points.is_empty() {
            return Err(Error::empty("the uv-coverage", "no baseline sees the source above the elevation cutoff"));
        }
        if npix == 0 {
            return Err(Error::count_out_of_range("interferometer npix", npix, "at least 1"));
        }
        if !(fov_uas.is_finite() && fov_uas > 0.0) {
            return Err(Error::out_of_range("interferometer field of view", fov_uas, "positive and finite"));
        }
        let (lo, hi) = THERMAL_SIGMA_JY;
        if let Some((k, p)) = coverage.points.iter().enumerate().find(|(_, p)| !(lo..=hi).contains(&p.sigma)) {
            let name = |i: usize| coverage.stations.get(i).map_or_else(|| format!("#{i}"), Clone::clone);
            return Err(Error::out_of_range(
                format!(
                    "the thermal σ (Jy) of visibility {} ({} h, baseline {}–{})",
                    k + 1,
                    p.time_hour,
                    name(p.i),
                    name(p.j)
                ),
                p.sigma,
                format!("between {lo:e} and {hi:e} Jy (beyond, χ² is left to rounding errors or is not finite)"),
            ));
        }
        Ok(Interferometer { coverage, npix, fov_uas, pulse: ops::Pulse::Delta, closure_phase_uv_min: 0.0 })
    }
    /// The uv-coverage.
    pub fn coverage(&self) -> &UvCoverage {
        &self.coverage
    }
    /// Pixel size in radians.
    pub fn pixel_size(&self) -> f64 {
        self.fov_uas * UAS / self.npix as f64
    }
    /// Image shape `[1, npix, npix]`.
    pub fn image_shape(&self) -> Shape {
        Shape::new(1, self.npix, self.npix)
    }
    /// The same problem with pixels of the shape `pulse` ([`ops::Pulse::Triangle`] gives
    /// the visibilities ehtim's `observe` computes of the same image; the default is point
    /// pixels, [`ops::Pulse::Delta`]).
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::{Array, Interferometer, Observation};
    /// use scoreprior_core::forward::{ops::Pulse, ForwardModel};
    /// let cov = Array::eht2017().observe(&Observation { cadence_s: 7200.0, ..Observation::sgr_a_star() }).unwrap();
    /// let point = Interferometer::new(cov.clone(), 8, 160.0).unwrap();
    /// let tri = Interferometer::new(cov, 8, 160.0).unwrap().with_pulse(Pulse::Triangle);
    /// let x = vec![1.0 / 64.0; 64];
    /// let (a, b) = (point.visibility_model().unwrap().forward(&x).unwrap(), tri.visibility_model().unwrap().forward(&x).unwrap());
    /// assert!(b[0].abs() <= a[0].abs()); // the pulse tapers long baselines
    /// ```
    pub fn with_pulse(mut self, pulse: ops::Pulse) -> Self {
        self.pulse = pulse;
        self
    }
    /// The same problem with closure phases formed only from baselines at least `uv_min`
    /// wavelengths long ([`closure_sets_with`]; log closure amplitudes keep every baseline, as
    /// eht-imaging's `cp_uv_min`).
    pub fn with_closure_phase_uv_min(mut self, uv_min: f64) -> Self {
        self.closure_phase_uv_min = uv_min;
        self
    }
    /// The shortest baseline closure phases use (λ; 0: all).
    pub fn closure_phase_uv_min(&self) -> f64 {
        self.closure_phase_uv_min
    }
    /// The pixel pulse.
    pub fn pulse(&self) -> ops::Pulse {
        self.pulse
    }
    /// The NUDFT operator of this coverage.
    pub fn nudft(&self) -> Result<ops::Nudft> {
        let (u, v): (Vec<f64>, Vec<f64>) = self.coverage.points.iter().map(|p| (p.u, p.v)).unzip();
        let op = ops::Nudft::new(self.image_shape(), u.clone(), v.clone(), self.pixel_size())?;
        match self.pulse {
            ops::Pulse::Delta => Ok(op),
            pulse => op.with_pulse(pulse, &u, &v),
        }
    }
    /// Complex visibilities with thermal noise: linear, `y = [Re V; Im V]`, per-part σ.
    pub fn visibility_model(&self) -> Result<Model> {
        let sig: Vec<f64> = self.coverage.points.iter().map(|p| p.sigma).collect();
        let sigma = [sig.clone(), sig].concat();
        Model::new(Chain::new(self.image_shape()).then(self.nudft()?)?, Noise::per_measurement(sigma)?)
    }
    /// The closure sets of this coverage (minimal independent per time).
    pub fn closures(&self) -> ClosureSets {
        closure_sets_with(&self.coverage, self.closure_phase_uv_min)
    }
    /// The closure phases then log closure amplitudes of split complex visibilities `vis`
    /// (`(n, 2K)` or `(2K)`), on [`Interferometer::closures`]: the data of
    /// [`Interferometer::closure_model`] when computed from noisy visibilities, which is how
    /// real closure data arise (the model's own `simulate` adds noise to the closure
    /// quantities directly instead).
    pub fn closure_data(&self, vis: &[f64]) -> Result<Vec<f64>> {
        let k = self.coverage.points.len();
        if vis.is_empty() || vis.len() % (2 * k) != 0 {
            return Err(Error::shape("visibilities", format!("(n, {})", 2 * k), vis.len()));
        }
        let sets = self.closures();
        let op = ops::ClosureProducts::new(k, sets.triangles, sets.quadrangles)?;
        let m = op.output_shape().len();
        let mut out = vec![0.0; vis.len() / (2 * k) * m];
        for (o, v) in out.chunks_mut(m).zip(vis.chunks(2 * k)) {
            op.apply(v, o);
        }
        Ok(out)
    }
    /// Closure phases (circular likelihood `2(1 − cos Δψ)/σ²`) and log closure amplitudes
    /// (Gaussian), with σ propagated from the thermal noise at the visibilities `vis`
    /// (split complex, typically the observed ones, as the reference code does).
    pub fn closure_model(&self, vis: &[f64]) -> Result<Model> {
        self.closure_model_with_ratios(vis, &[], &[])
    }

    /// The pairs `[k, z]` of every visibility `k` with the visibility `z` of baseline `a`–`b`
    /// (by station name) of the same scan: log amplitude ratios `ln|V_k| − ln|V_z|`. With `a`–`b`
    /// a zero baseline, which sees the total compact flux, they are normalised visibility
    /// amplitudes: they fix the source's size, which closure quantities leave to the prior,
    /// and are free of the flux scale, as closures are.
    pub fn amplitude_ratios(&self, a: &str, b: &str) -> Vec<[usize; 2]> {
        let cov = &self.coverage;
        let (Some(ia), Some(ib)) = (cov.stations.iter().position(|s| s == a), cov.stations.iter().position(|s| s == b))
        else {
            return vec![];
        };
        let (ia, ib) = (ia.min(ib), ia.max(ib));
        let pts = &cov.points;
        let mut out = vec![];
        let mut start = 0;
        while start < pts.len() {
            let t = pts[start].time_hour;
            let end = start + pts[start..].iter().take_while(|p| p.time_hour == t).count();
            if let Some(z) = (start..end).find(|&k| pts[k].i == ia && pts[k].j == ib) {
                out.extend((start..end).filter(|&k| k != z).map(|k| [k, z]));
            }
            start = end;
        }
        out
    }

    /// [`Interferometer::closure_model`] followed by the log amplitude ratios `ratios`
    /// ([`Interferometer::amplitude_ratios`]), Gaussian with `σ² = Σ (σ_k²/|V_k|² + e_k)` over
    /// their two visibilities, `e_k` a fractional amplitude variance per visibility (the
    /// stations' error budget, [`PreprocessedObservation::station_noise`]; empty: none).
    pub fn closure_model_with_ratios(&self, vis: &[f64], ratios: &[[usize; 2]], extra: &[f64]) -> Result<Model> {
        let k = self.coverage.points.len();
        if vis.len() != 2 * k {
            return Err(Error::shape("visibilities", 2 * k, vis.len()));
        }
        if !extra.is_empty() && extra.len() != k {
            return Err(Error::shape("fractional amplitude variances", k, extra.len()));
        }
        let sets = self.closures();
        let rel = |i: usize| {
            let a = vis[i].hypot(vis[k + i]);
            self.coverage.points[i].sigma / a.max(1e-300)
        };
        let mut sigma = Vec::new();
        let mut kind = Vec::new();
        for t in &sets.triangles {
            sigma.push(t.iter().map(|&(i, _)| rel(i).powi(2)).sum::<f64>().sqrt());
            kind.push(Likelihood::Circular);
        }
        for q in &sets.quadrangles {
            sigma.push(q.iter().map(|&i| rel(i).powi(2)).sum::<f64>().sqrt());
            kind.push(Likelihood::Gaussian);
        }
        let e = |i: usize| extra.get(i).copied().unwrap_or(0.0);
        for r in ratios {
            sigma.push(r.iter().map(|&i| rel(i).powi(2) + e(i)).sum::<f64>().sqrt());
            kind.push(Likelihood::Gaussian);
        }
        let op = ops::ClosureProducts::new(k, sets.triangles, sets.quadrangles)?.with_ratios(ratios.to_vec())?;
        let chain = Chain::new(self.image_shape()).then(self.nudft()?)?.then(op)?;
        Model::new(chain, Noise::mixed(sigma, kind)?)
    }
}
