//! Closure-quantity imaging data: closure phases `ψ` and log closure amplitudes `ℓ` of noisy
//! visibilities, with `ℓ` debiased as eht-imaging does (`ℓ + ½(1/snr₁² + 1/snr₂² − 1/snr₃² −
//! 1/snr₄²)`, `snr_k = |V_k|/σ_k`, numerator baselines 1, 2), and their reduced χ²:
//! `χ²_ψ = (1/T) Σ 2(1 − cos(ψ − ψ̂))/σ²`, `χ²_ℓ = (1/Q) Σ ((ℓ − ℓ̂)/σ)²`; and the normalised
//! cross-correlation of two images, best over shifts (closures do not fix the position).

use super::Interferometer;
use crate::forward::{ForwardModel, Model};
use crate::{Error, Result};

/// A closure-quantity problem: the model (image → closure phases then log closure
/// amplitudes, σ from the observed visibilities) and its data.
#[derive(Debug, Clone)]
pub struct ClosureProblem {
    /// Image → `[ψ; ℓ]`, circular likelihood on `ψ`, Gaussian on `ℓ`.
    pub model: Model,
    /// The measured `[ψ; ℓ]` (ℓ debiased when asked).
    pub y: Vec<f64>,
    /// Number of closure phases `T` (the first `T` entries).
    pub n_phases: usize,
    /// Number of log amplitude ratios (the last entries, after the log closure amplitudes).
    pub n_ratios: usize,
}

/// Reduced χ² of closure phases and of log closure amplitudes for one image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ClosureChi2 {
    /// `χ²_ψ` per closure phase.
    pub phase: f64,
    /// `χ²_ℓ` per log closure amplitude.
    pub log_amp: f64,
    /// `χ²_ρ` per log amplitude ratio (NaN without any).
    pub amp_ratio: f64,
}

impl Interferometer {
    /// The closure problem of split complex visibilities `vis` (`[Re V; Im V]`, typically
    /// noisy: closure σ are propagated from them, as the reference code does), debiasing the
    /// log closure amplitudes when `debias`.
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::{Array, Interferometer, Observation, TestSource};
    /// use scoreprior_core::forward::ForwardModel;
    /// let cov = Array::eht2017().observe(&Observation::sgr_a_star()).unwrap();
    /// let eht = Interferometer::new(cov, 8, 160.0).unwrap();
    /// let x = TestSource::Ring { radius: 25.0, width: 6.0 }.render(8, 160.0, 2.0).unwrap();
    /// let vis = eht.visibility_model().unwrap().forward(&x).unwrap();
    /// let raw = eht.closure_problem(&vis, false).unwrap();
    /// assert_eq!(raw.y.len(), raw.model.output_dim());
    /// // noiseless data: the truth fits them exactly …
    /// let c = raw.chi2(&x).unwrap();
    /// assert!(c.phase < 1e-9 && c.log_amp < 1e-9, "{c:?}");
    /// // … and debiasing moves ℓ by a fraction of its σ (χ²_ℓ 0.08 here)
    /// let c = eht.closure_problem(&vis, true).unwrap().chi2(&x).unwrap();
    /// assert!(c.phase < 1e-9 && c.log_amp > 0.01 && c.log_amp < 0.2, "{c:?}");
    /// ```
    pub fn closure_problem(&self, vis: &[f64], debias: bool) -> Result<ClosureProblem> {
        self.closure_problem_with_ratios(vis, debias, &[], &[])
    }

    /// [`Interferometer::closure_problem`] with log amplitude ratios after the closure
    /// quantities ([`Interferometer::closure_model_with_ratios`]), debiased as the log closure
    /// amplitudes are (`+½(1/snr_a² − 1/snr_b²)`).
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::{Array, Interferometer, Observation, TestSource};
    /// use scoreprior_core::forward::ForwardModel;
    /// let cov = Array::eht2017().observe(&Observation::sgr_a_star()).unwrap();
    /// let eht = Interferometer::new(cov, 8, 160.0).unwrap();
    /// let ratios = eht.amplitude_ratios("ALMA", "APEX");
    /// assert!(!ratios.is_empty());
    /// let x = TestSource::Ring { radius: 25.0, width: 6.0 }.render(8, 160.0, 2.0).unwrap();
    /// let vis = eht.visibility_model().unwrap().forward(&x).unwrap();
    /// let p = eht.closure_problem_with_ratios(&vis, false, &ratios, &[]).unwrap();
    /// assert_eq!(p.n_ratios, ratios.len());
    /// let c = p.chi2(&x).unwrap(); // noiseless: the truth fits exactly, whatever its flux
    /// assert!(c.amp_ratio < 1e-9 && p.chi2(&x.iter().map(|v| 3.0 * v).collect::<Vec<_>>()).unwrap().amp_ratio < 1e-9);
    /// ```
    pub fn closure_problem_with_ratios(
        &self,
        vis: &[f64],
        debias: bool,
        ratios: &[[usize; 2]],
        extra: &[f64],
    ) -> Result<ClosureProblem> {
        let model = self.closure_model_with_ratios(vis, ratios, extra)?;
        self.closure_problem_of(model, vis, debias, ratios)
    }

    /// [`Interferometer::closure_problem_with_ratios`] with each scan's closure quantities
    /// correlated ([`Interferometer::closure_model_scan`]; `station_gain`: the log-gain error of
    /// each station of the coverage, empty: none), the same data.
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::{Array, Interferometer, Observation, TestSource};
    /// use scoreprior_core::forward::ForwardModel;
    /// use rand::SeedableRng;
    /// let cov = Array::eht2017().observe(&Observation { cadence_s: 3600.0, ..Observation::sgr_a_star() }).unwrap();
    /// let eht = Interferometer::new(cov, 8, 160.0).unwrap();
    /// let x = TestSource::Ring { radius: 25.0, width: 6.0 }.render(8, 160.0, 2.0).unwrap();
    /// let vis = eht.visibility_model().unwrap().simulate(&x, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1)).unwrap();
    /// let (diag, scan) = (eht.closure_problem(&vis, true).unwrap(), eht.closure_problem_scan(&vis, true, &[], &[]).unwrap());
    /// assert_eq!(diag.y, scan.y);
    /// // the truth's χ² per datum under each likelihood
    /// let (a, b) = (diag.reduced_chi2(&x).unwrap(), scan.reduced_chi2(&x).unwrap());
    /// assert!(a.is_finite() && b.is_finite() && a != b);
    /// ```
    pub fn closure_problem_scan(
        &self,
        vis: &[f64],
        debias: bool,
        ratios: &[[usize; 2]],
        station_gain: &[f64],
    ) -> Result<ClosureProblem> {
        let model = self.closure_model_scan(vis, ratios, station_gain)?;
        self.closure_problem_of(model, vis, debias, ratios)
    }

    /// The closure problem of `model` (phases, log closure amplitudes, then `ratios`) with the
    /// data of `vis`.
    fn closure_problem_of(
        &self,
        model: Model,
        vis: &[f64],
        debias: bool,
        ratios: &[[usize; 2]],
    ) -> Result<ClosureProblem> {
        let mut y = self.closure_data(vis)?;
        let k = self.coverage().points.len();
        let lnabs = |i: usize| vis[i].hypot(vis[k + i]).ln();
        y.extend(ratios.iter().map(|r| lnabs(r[0]) - lnabs(r[1])));
        let sets = self.closures();
        let t = sets.triangles.len();
        if debias {
            let k = self.coverage().points.len();
            let inv_snr2 = |i: usize| {
                let a2 = vis[i] * vis[i] + vis[k + i] * vis[k + i];
                let s = self.coverage().points[i].sigma;
                s * s / a2.max(1e-300)
            };
            for (yq, q) in y[t..].iter_mut().zip(&sets.quadrangles) {
                *yq += 0.5 * (inv_snr2(q[0]) + inv_snr2(q[1]) - inv_snr2(q[2]) - inv_snr2(q[3]));
            }
            for (yr, r) in y[t + sets.quadrangles.len()..].iter_mut().zip(ratios) {
                *yr += 0.5 * (inv_snr2(r[0]) - inv_snr2(r[1]));
            }
        }
        if let Some(index) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "closure quantities (a visibility of zero amplitude?)", index });
        }
        Ok(ClosureProblem { model, y, n_phases: t, n_ratios: ratios.len() })
    }
}

impl ClosureProblem {
    /// `χ²/M` of image `x` under the model's own likelihood (`−2 log p / M` up to a constant,
    /// `M` the number of independent closure quantities and ratios): the diagonal χ² of
    /// [`ClosureProblem::chi2`] in total for a diagonal model, `rᵀ C⁻¹ r / M` under
    /// [`Interferometer::closure_model_scan`] (`M` without the measurements it gives zero weight).
    pub fn reduced_chi2(&self, x: &[f64]) -> Result<f64> {
        let c = self.model.chi_squared(&self.y, x)?;
        Ok(c[0] / (self.y.len() - self.model.noise().dependent_count()).max(1) as f64)
    }

    /// Reduced χ² of the closure phases and log closure amplitudes of image `x`, each
    /// quantity with its own (marginal) σ as if independent: the diagonal likelihood's χ², also
    /// for a model with correlated scans (whose marginal σ are the same).
    pub fn chi2(&self, x: &[f64]) -> Result<ClosureChi2> {
        if x.len() != self.model.input_dim() {
            return Err(Error::shape("image", self.model.input_dim(), x.len()));
        }
        let f = self.model.forward(x)?;
        let sigma = self.model.noise().sigma();
        let t = self.n_phases;
        let q_end = self.y.len() - self.n_ratios;
        let mut c = ClosureChi2 { phase: 0.0, log_amp: 0.0, amp_ratio: 0.0 };
        for (k, (yk, fk)) in self.y.iter().zip(&f).enumerate() {
            let r = yk - fk;
            let s2 = sigma[k] * sigma[k];
            if k < t {
                c.phase += 2.0 * (1.0 - r.cos()) / s2;
            } else if k < q_end {
                c.log_amp += r * r / s2;
            } else {
                c.amp_ratio += r * r / s2;
            }
        }
        c.phase /= t.max(1) as f64;
        c.log_amp /= (q_end - t).max(1) as f64;
        c.amp_ratio = if self.n_ratios > 0 { c.amp_ratio / self.n_ratios as f64 } else { f64::NAN };
        Ok(c)
    }
}

/// Normalised cross-correlation `Σ(a − ā)(b − b̄)/√(Σ(a − ā)² Σ(b − b̄)²)` of two images, and
/// its maximum over integer shifts of `b` by up to `max_shift` pixels (zeros shifted in), since
/// closure quantities do not fix the image position.
///
/// ```
/// use scoreprior_core::forward::interferometry::nxcorr;
/// let a = [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
/// let b = [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]; // a moved one pixel down
/// let (raw, best) = nxcorr(&a, &b, 3, 1);
/// assert!(raw < 0.0 && (best - 1.0).abs() < 1e-12);
/// ```
pub fn nxcorr(a: &[f64], b: &[f64], n: usize, max_shift: usize) -> (f64, f64) {
    (super::ncc(a, b), super::best_shift(a, b, n, max_shift).0)
}
