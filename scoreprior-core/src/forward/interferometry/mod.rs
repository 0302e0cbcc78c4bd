//! Radio interferometry as in black-hole imaging (EHT): uv-coverage of a station array,
//! thermal noise, visibilities `V(u, v) = Σ_p x_p e^{−2πi(u l_p + v m_p)}` ([`ops::Nudft`]),
//! and the calibration-insensitive closure phases `ψ = arg V_ab + arg V_bc + arg V_ca` and log
//! closure amplitudes `ln(|V_ab||V_cd| / |V_ac||V_bd|)` on a minimal independent set.
//!
//! # Geometry (and its approximations)
//! Stations are ITRF positions `r` (metres). At UTC time `t` the Greenwich mean sidereal
//! time is `θ = 18.697374558 h + 24.06570982441908 h · D` (`D` = days since J2000.0, the
//! USNO low-precision formula: ~0.1 s, no nutation, no precession of the source coordinates
//! from J2000 to date, no polar motion). The source direction in the Earth-fixed frame is
//! `s = (cos δ cos(α−θ), cos δ sin(α−θ), sin δ)`; a station sees it at elevation
//! `asin(r̂·s)` (geocentric vertical, no refraction). For the baseline `B = r_j − r_i` of
//! stations `i < j`, `(u, v) = (B·ê, B·n̂)/λ` with `ê = (−sin(α−θ), cos(α−θ), 0)` (east) and
//! `n̂ = s × ê` (north), the textbook `(u, v)` with hour angle `H = θ − α`.
//!
//! # Noise
//! Per visibility and per real/imaginary part (as eht-imaging does), the radiometer
//! equation `σ_ij = (1/η) √(SEFD_i SEFD_j) / √(2 Δν τ)` Jy with `η = 0.88` (2-bit
//! quantisation efficiency), bandwidth `Δν` and integration time `τ`. Closure quantities get
//! the linearised `σ² = Σ_k σ_k² / |V_k|²` over their visibilities.

mod array;
mod closure;
mod imaging;
mod sources;

pub use array::{Array, Observation, Station, UvCoverage, UvPoint};
pub use closure::{closure_sets, ClosureSets};
pub use imaging::{nxcorr, ClosureChi2, ClosureProblem};
pub use sources::{CompactSources, TestSource};

use super::noise::Likelihood;
use super::{ops, Chain, Model, Noise, Op, Shape};
use crate::{Error, Result};

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
}

impl Interferometer {
    /// The problem of imaging `npix × npix` pixels over `fov_uas` µas from `coverage`.
    pub fn new(coverage: UvCoverage, npix: usize, fov_uas: f64) -> Result<Self> {
        if coverage.points.is_empty() {
            return Err(Error::invalid(
                "the uv-coverage is empty: no baseline sees the source above the elevation cutoff",
            ));
        }
        if npix == 0 || !(fov_uas.is_finite() && fov_uas > 0.0) {
            return Err(Error::invalid(format!("need npix ≥ 1 and a positive field of view, got {npix}, {fov_uas}")));
        }
        Ok(Interferometer { coverage, npix, fov_uas })
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
    /// The NUDFT operator of this coverage.
    pub fn nudft(&self) -> Result<ops::Nudft> {
        let (u, v) = self.coverage.points.iter().map(|p| (p.u, p.v)).unzip();
        ops::Nudft::new(self.image_shape(), u, v, self.pixel_size())
    }
    /// Complex visibilities with thermal noise: linear, `y = [Re V; Im V]`, per-part σ.
    pub fn visibility_model(&self) -> Result<Model> {
        let sig: Vec<f64> = self.coverage.points.iter().map(|p| p.sigma).collect();
        let sigma = [sig.clone(), sig].concat();
        Model::new(Chain::new(self.image_shape()).then(self.nudft()?)?, Noise::per_measurement(sigma)?)
    }
    /// The closure sets of this coverage (minimal independent per time).
    pub fn closures(&self) -> ClosureSets {
        closure_sets(&self.coverage)
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
        let k = self.coverage.points.len();
        if vis.len() != 2 * k {
            return Err(Error::shape("visibilities", 2 * k, vis.len()));
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
        let op = ops::ClosureProducts::new(k, sets.triangles, sets.quadrangles)?;
        let chain = Chain::new(self.image_shape()).then(self.nudft()?)?.then(op)?;
        Model::new(chain, Noise::mixed(sigma, kind)?)
    }
}
