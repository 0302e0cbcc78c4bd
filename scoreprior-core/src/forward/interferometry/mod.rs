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
//! `σ² = Σ_k σ_k² / |V_k|²` over their visibilities, each independent by default; with
//! [`ClosureCovariance::Scan`] each scan's closures are jointly Gaussian with the covariance of
//! the visibilities and station gains they share ([`Interferometer::closure_noise_scan`]).

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

use super::noise::{CorrelatedBlock, Likelihood};
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
    transform: VisibilityTransform,
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
        Ok(Interferometer {
            coverage,
            npix,
            fov_uas,
            pulse: ops::Pulse::Delta,
            closure_phase_uv_min: 0.0,
            transform: VisibilityTransform::Auto,
        })
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
    /// The same problem with its visibilities computed by `transform` (default
    /// [`VisibilityTransform::Auto`]: the NUFFT from [`NUFFT_MIN_NPIX`] pixels on a side, the
    /// direct sum below).
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::{Array, Interferometer, Observation, VisibilityTransform};
    /// let cov = Array::eht2017().observe(&Observation::sgr_a_star()).unwrap();
    /// let small = Interferometer::new(cov.clone(), 32, 160.0).unwrap();
    /// assert!(small.visibility_op().unwrap().describe().starts_with("nudft"));
    /// let large = Interferometer::new(cov, 64, 160.0).unwrap();
    /// assert!(large.visibility_op().unwrap().describe().starts_with("nufft"));
    /// let exact = large.with_transform(VisibilityTransform::Direct);
    /// assert!(exact.visibility_op().unwrap().describe().starts_with("nudft"));
    /// ```
    pub fn with_transform(mut self, transform: VisibilityTransform) -> Self {
        self.transform = transform;
        self
    }
    /// How the visibilities are computed.
    pub fn transform(&self) -> VisibilityTransform {
        self.transform
    }
    /// Whether [`Interferometer::visibility_op`] is the NUFFT.
    pub fn uses_nufft(&self) -> bool {
        match self.transform {
            VisibilityTransform::Auto => self.npix >= NUFFT_MIN_NPIX,
            VisibilityTransform::Direct => false,
            VisibilityTransform::Nufft => true,
        }
    }
    /// The visibility operator every model of this problem uses: [`ops::Nufft`] or the direct
    /// [`ops::Nudft`], as [`Interferometer::with_transform`] chose.
    pub fn visibility_op(&self) -> Result<std::sync::Arc<dyn crate::forward::Op>> {
        if self.uses_nufft() {
            let (u, v): (Vec<f64>, Vec<f64>) = self.coverage.points.iter().map(|p| (p.u, p.v)).unzip();
            Ok(std::sync::Arc::new(ops::Nufft::with_pulse(self.image_shape(), &u, &v, self.pixel_size(), self.pulse)?))
        } else {
            Ok(std::sync::Arc::new(self.nudft()?))
        }
    }
    /// The direct NUDFT operator of this coverage (exact to rounding, whatever the transform).
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
        Model::new(self.visibility_chain()?, Noise::per_measurement(sigma)?)
    }
    /// The chain image → split complex visibilities ([`Interferometer::visibility_op`]).
    pub fn visibility_chain(&self) -> Result<Chain> {
        let mut chain = Chain::new(self.image_shape());
        chain.push(self.visibility_op()?)?;
        Ok(chain)
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
        let (sigma, kind) = self.closure_sigma(vis, ratios, extra)?;
        Model::new(self.closure_chain(ratios)?, Noise::mixed(sigma, kind)?)
    }

    /// The closure chain: image → visibilities → closure phases, log closure amplitudes, log
    /// amplitude ratios.
    fn closure_chain(&self, ratios: &[[usize; 2]]) -> Result<Chain> {
        let sets = self.closures();
        let op = ops::ClosureProducts::new(self.coverage.points.len(), sets.triangles, sets.quadrangles)?
            .with_ratios(ratios.to_vec())?;
        self.visibility_chain()?.then(op)
    }

    /// `σ_k/|V_k|` of every visibility of `vis` (split complex), checked.
    fn relative_sigma(&self, vis: &[f64]) -> Result<Vec<f64>> {
        let k = self.coverage.points.len();
        if vis.len() != 2 * k {
            return Err(Error::shape("visibilities", 2 * k, vis.len()));
        }
        Ok((0..k).map(|i| self.coverage.points[i].sigma / vis[i].hypot(vis[k + i]).max(1e-300)).collect())
    }

    /// The diagonal σ and likelihood kind of every closure quantity and ratio.
    fn closure_sigma(&self, vis: &[f64], ratios: &[[usize; 2]], extra: &[f64]) -> Result<(Vec<f64>, Vec<Likelihood>)> {
        let k = self.coverage.points.len();
        let rel = self.relative_sigma(vis)?;
        if !extra.is_empty() && extra.len() != k {
            return Err(Error::shape("fractional amplitude variances", k, extra.len()));
        }
        let sets = self.closures();
        let rel = |i: usize| rel[i];
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
        Ok((sigma, kind))
    }

    /// [`Interferometer::closure_model_with_ratios`] with each scan's closure quantities
    /// correlated ([`ClosureCovariance::Scan`]): the noise is
    /// [`Interferometer::closure_noise_scan`]'s.
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::{Array, Interferometer, Observation, TestSource};
    /// use scoreprior_core::forward::ForwardModel;
    /// let cov = Array::eht2017().observe(&Observation { cadence_s: 7200.0, ..Observation::sgr_a_star() }).unwrap();
    /// let eht = Interferometer::new(cov, 8, 160.0).unwrap();
    /// let x = TestSource::Ring { radius: 25.0, width: 6.0 }.render(8, 160.0, 2.0).unwrap();
    /// let vis = eht.visibility_model().unwrap().forward(&x).unwrap();
    /// let (diag, scan) = (eht.closure_model(&vis).unwrap(), eht.closure_model_scan(&vis, &[], &[]).unwrap());
    /// assert_eq!(diag.output_dim(), scan.output_dim());
    /// // the same marginal σ; only their correlation differs
    /// let (a, b) = (diag.noise().sigma(), scan.noise().sigma());
    /// assert!(a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-12 * a));
    /// assert!(diag.noise().is_diagonal() && !scan.noise().is_diagonal());
    /// ```
    pub fn closure_model_scan(&self, vis: &[f64], ratios: &[[usize; 2]], station_gain: &[f64]) -> Result<Model> {
        Model::new(self.closure_chain(ratios)?, self.closure_noise_scan(vis, ratios, station_gain)?)
    }

    /// The noise of the closure phases, log closure amplitudes and log amplitude ratios `ratios`
    /// of visibilities `vis` (split complex) with each scan's quantities correlated.
    ///
    /// At linear order a visibility `V_k` with noise of σ_k per part has phase and log-amplitude
    /// errors that are independent, each of variance `σ_k²/|V_k|²`. A closure phase is `S_φ φ`
    /// and the log closure amplitudes and ratios are `S_a ln|V|`, `S` the ±1 rows of
    /// [`ClosureSets`] and of the ratios; their errors therefore have the covariances
    /// `C_φ = S_φ D S_φᵀ` and `C_a = S_a (D + G Γ Gᵀ) S_aᵀ`, `D = diag(σ_k²/|V_k|²)`, within
    /// each scan (scans share no visibility), and none between phases and amplitudes. The
    /// closures of a minimal set share baselines (every triangle of the `min` set passes through
    /// the first station) and the ratios of a scan share their denominator, so `C` is not
    /// diagonal; the diagonal likelihood counts the shared noise several times.
    ///
    /// Amplitude calibration errors are station gains (an SEFD error scales every visibility of
    /// the station): a log-gain error `γ_s` of variance `g_s²` per station (`station_gain`: `g_s`
    /// per station of the coverage, empty: none), `G` the baseline–station incidence (`ln|V_ij|`
    /// gains `γ_i + γ_j`) and `Γ = diag(g_s²)`. They cancel exactly in closure amplitudes
    /// (`S_a G = 0` on those rows) and enter a ratio `ln|V_ij| − ln|V_z|` as the stations it does
    /// not share with `z`. This replaces the diagonal model's per-visibility variance
    /// `e_k = g_i² + g_j²` of [`Interferometer::closure_model_with_ratios`], which has the same
    /// marginal for `ln|V_ij|` but treats two baselines of one station as independent.
    ///
    /// The likelihood is Gaussian in the residual with closure phases wrapped to `(−π, π]`: the
    /// high-S/N limit of the diagonal model's circular one ([`Noise::with_correlated_blocks`]).
    ///
    /// With ratios over every baseline of a scan, the ratios span every log-amplitude
    /// difference, so the scan's log closure amplitudes (whose coefficients sum to zero) are
    /// linear combinations of them: the joint covariance is singular, and each measurement of
    /// the amplitude block that its earlier ones determine (in order: closure amplitudes,
    /// then ratios) gets zero weight ([`Noise::dependent_count`]). The diagonal model counts
    /// that information twice.
    ///
    /// # Errors
    /// Visibilities of the wrong length, `station_gain` neither empty nor one per station, a
    /// gain not in `[0, 1)`, or a scan whose closure-phase covariance is singular or not finite
    /// (a visibility of zero amplitude), naming its time.
    pub fn closure_noise_scan(&self, vis: &[f64], ratios: &[[usize; 2]], station_gain: &[f64]) -> Result<Noise> {
        let ns = self.coverage.stations.len();
        if !station_gain.is_empty() && station_gain.len() != ns {
            return Err(Error::shape("station gain errors", ns, station_gain.len()));
        }
        if let Some(g) = station_gain.iter().find(|g| !(g.is_finite() && (0.0..1.0).contains(*g))) {
            return Err(Error::out_of_range("a station gain error", *g, "in [0, 1)"));
        }
        let (sigma, kind) = self.closure_sigma(vis, ratios, &[])?;
        let rel = self.relative_sigma(vis)?;
        let sets = self.closures();
        let pts = &self.coverage.points;
        // Each measurement: its scan, its ±1 row over visibilities, phase (true) or amplitude.
        let mut rows: Vec<(f64, Vec<(usize, f64)>, bool)> = Vec::with_capacity(sigma.len());
        rows.extend(sets.triangles.iter().map(|t| (pts[t[0].0].time_hour, t.to_vec(), true)));
        rows.extend(
            sets.quadrangles
                .iter()
                .map(|q| (pts[q[0]].time_hour, vec![(q[0], 1.0), (q[1], 1.0), (q[2], -1.0), (q[3], -1.0)], false)),
        );
        for r in ratios {
            if r.iter().any(|&i| i >= pts.len()) {
                return Err(Error::count_out_of_range(
                    "a ratio's visibility",
                    r[0].max(r[1]),
                    "below the visibility count",
                ));
            }
            if pts[r[0]].time_hour != pts[r[1]].time_hour {
                return Err(Error::inconsistent(
                    "an amplitude ratio",
                    format!("visibilities {} and {} are of different scans", r[0], r[1]),
                ));
            }
            rows.push((pts[r[0]].time_hour, vec![(r[0], 1.0), (r[1], -1.0)], false));
        }
        // Blocks: (scan, phase?) → measurements, in order of first appearance.
        let mut groups: Vec<(f64, bool, Vec<usize>)> = vec![];
        for (m, (t, _, phase)) in rows.iter().enumerate() {
            match groups.iter_mut().find(|g| g.0 == *t && g.1 == *phase) {
                Some(g) => g.2.push(m),
                None => groups.push((*t, *phase, vec![m])),
            }
        }
        let gain2 = |s: usize| station_gain.get(s).map_or(0.0, |g| g * g);
        let blocks = groups
            .into_iter()
            .map(|(t, phase, index)| {
                let n = index.len();
                // Station vectors of the amplitude rows: S_a G.
                let stations: Vec<Vec<f64>> = index
                    .iter()
                    .map(|&m| {
                        let mut v = vec![0.0; ns];
                        if !phase {
                            for &(k, s) in &rows[m].1 {
                                v[pts[k].i] += s;
                                v[pts[k].j] += s;
                            }
                        }
                        v
                    })
                    .collect();
                let mut covariance = vec![0.0; n * n];
                for a in 0..n {
                    for b in 0..=a {
                        let mut c = 0.0;
                        for &(k, s) in &rows[index[a]].1 {
                            for &(l, r) in &rows[index[b]].1 {
                                if k == l {
                                    c += s * r * rel[k] * rel[k];
                                }
                            }
                        }
                        c += (0..ns).map(|s| stations[a][s] * stations[b][s] * gain2(s)).sum::<f64>();
                        covariance[a * n + b] = c;
                        covariance[b * n + a] = c;
                    }
                }
                let what = if phase { "closure phases" } else { "log closure amplitudes and amplitude ratios" };
                // With ratios over every baseline of a scan, its log closure amplitudes are their
                // combinations (coefficients summing to zero): determined, given zero weight.
                let allow_dependent = !phase && !ratios.is_empty();
                CorrelatedBlock {
                    label: format!("the {what} of the scan at {t} h"),
                    index,
                    covariance,
                    allow_dependent,
                }
            })
            .collect();
        Noise::mixed(sigma, kind)?.with_correlated_blocks(blocks)
    }
}

/// Image side, in pixels, from which [`VisibilityTransform::Auto`] uses the NUFFT: there it is
/// 4.8 times as fast as the GEMM path at batch 64 (`cargo bench --bench eht_nudft`), and the
/// results of smaller problems stay those of the exact sum.
pub const NUFFT_MIN_NPIX: usize = 64;

/// How an [`Interferometer`] computes visibilities (`transform=…` of `eht(…)`).
///
/// ```
/// use scoreprior_core::forward::interferometry::VisibilityTransform;
/// assert_eq!("nufft".parse::<VisibilityTransform>().unwrap(), VisibilityTransform::Nufft);
/// assert_eq!(VisibilityTransform::default().to_string(), "auto");
/// assert!("fft".parse::<VisibilityTransform>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VisibilityTransform {
    /// The NUFFT from [`NUFFT_MIN_NPIX`] pixels on a side, the direct sum below.
    #[default]
    Auto,
    /// The direct sum ([`ops::Nudft`]): exact to rounding, `4·H·W·K` multiply–adds per image.
    Direct,
    /// The non-uniform FFT ([`ops::Nufft`]): about 1e-7 relative to the direct sum, an FFT of
    /// the twice-oversampled grid plus `64·K` per image.
    Nufft,
}

named_variants!(VisibilityTransform, "visibility transform", {
    Auto => "auto",
    Direct => "direct",
    Nufft => "nufft",
});

/// How the noise of a scan's closure quantities is modelled: `eht(…, closure_covariance=…)`.
///
/// ```
/// use scoreprior_core::forward::interferometry::ClosureCovariance;
/// assert_eq!("scan".parse::<ClosureCovariance>().unwrap(), ClosureCovariance::Scan);
/// assert_eq!(ClosureCovariance::default().to_string(), "diagonal");
/// assert!("full".parse::<ClosureCovariance>().unwrap_err().contains("diagonal or scan"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClosureCovariance {
    /// Each closure quantity independent, σ propagated from its visibilities; closure phases
    /// with the circular likelihood ([`Interferometer::closure_model_with_ratios`]).
    #[default]
    Diagonal,
    /// Each scan's closure phases, and its log closure amplitudes and ratios, jointly Gaussian
    /// with the covariance of their shared visibilities and station gains
    /// ([`Interferometer::closure_noise_scan`]).
    Scan,
}

impl ClosureCovariance {
    /// The names, as written in `closure_covariance=…`.
    pub const NAMES: [&'static str; 2] = ["diagonal", "scan"];
}

impl std::fmt::Display for ClosureCovariance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Diagonal => "diagonal",
            Self::Scan => "scan",
        })
    }
}

impl std::str::FromStr for ClosureCovariance {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "diagonal" => Ok(Self::Diagonal),
            "scan" => Ok(Self::Scan),
            other => Err(format!("unknown closure covariance {other:?}; expected diagonal or scan")),
        }
    }
}
