//! Divergence of the score, `tr ∂s/∂x`, exactly or by Hutchinson–Skilling:
//! `tr J ≈ (1/K) Σ_k ε_kᵀ J ε_k` with `E[ε εᵀ] = I` (Rademacher or Gaussian probes), and the
//! gradient the adjoint needs, `∇x tr J` or `∇x (1/K) Σ_k ε_kᵀ J ε_k` with the same probes.
//! As in the reference code, one set of `K` probes is drawn per solve (seeded, ChaCha8), applied
//! to every image of the batch and held fixed at every time of the solve, so the integrand is a
//! smooth function of `t` and the forward and adjoint solves see the same estimator.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::score::{check_batch, ScoreModel};
use crate::{Error, Result};

/// The distribution of Hutchinson probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum ProbeNoise {
    /// Entries ±1 with probability ½ (the reference default; least variance, exact for a
    /// diagonal Jacobian).
    #[default]
    Rademacher,
    /// Standard normal entries.
    Gaussian,
}

impl ProbeNoise {
    /// Parses `rademacher` or `gaussian`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "rademacher" => Ok(Self::Rademacher),
            "gaussian" | "normal" => Ok(Self::Gaussian),
            other => Err(Error::unknown("probe distribution", other, "rademacher or gaussian")),
        }
    }
}

/// The Hutchinson–Skilling estimator with `probes` probes from `noise`, seeded by `seed`.
///
/// ```
/// use scoreprior_core::divergence::{Hutchinson, ProbeNoise};
/// let h = Hutchinson::new(16, ProbeNoise::Rademacher, 7).unwrap();
/// let p = h.draw(4);
/// assert_eq!(p.len(), 16 * 4);
/// assert_eq!(p, h.draw(4)); // reproducible
/// assert!(p.iter().all(|v| *v == 1.0 || *v == -1.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Hutchinson {
    /// Number of probes `K ≥ 1`.
    pub probes: usize,
    /// Probe distribution.
    pub noise: ProbeNoise,
    /// Seed of the ChaCha8 generator the probes are drawn from.
    pub seed: u64,
}

impl Hutchinson {
    /// An estimator with `probes ≥ 1` probes.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for `probes == 0`.
    pub fn new(probes: usize, noise: ProbeNoise, seed: u64) -> Result<Self> {
        if probes == 0 {
            return Err(Error::count_out_of_range("Hutchinson probes", probes, "at least 1"));
        }
        Ok(Self { probes, noise, seed })
    }

    /// The `K` probes for dimension `d`, row-major `(K, d)`; a pure function of
    /// `(seed, noise, K, d)`.
    pub fn draw(&self, d: usize) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let n = self.probes * d;
        match self.noise {
            ProbeNoise::Rademacher => (0..n).map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 }).collect(),
            ProbeNoise::Gaussian => (0..n).map(|_| rng.sample::<f64, _>(StandardNormal)).collect(),
        }
    }
}

/// How the divergence of the score is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Divergence {
    /// `tr ∂s/∂x` exactly: the model's [`ScoreModel::jacobian_trace`], or else `D` VJPs with
    /// the basis vectors (in blocks of [`BASIS_BLOCK`]).
    ExactTrace,
    /// Hutchinson–Skilling estimate.
    Hutchinson(Hutchinson),
}

impl Default for Divergence {
    /// Hutchinson with 16 Rademacher probes and seed 0, as the reference code.
    fn default() -> Self {
        Divergence::Hutchinson(Hutchinson { probes: 16, noise: ProbeNoise::Rademacher, seed: 0 })
    }
}

/// Basis vectors per VJP call in the exact-trace fallbacks (bounds memory to
/// `BASIS_BLOCK·n·D` values).
pub const BASIS_BLOCK: usize = 64;

/// The `D` basis vectors in blocks of at most [`BASIS_BLOCK`], as `(first index, count)`: one
/// model call per block in both exact fallbacks (trace and trace gradient).
fn basis_blocks(d: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..d).step_by(BASIS_BLOCK).map(move |start| (start, BASIS_BLOCK.min(d - start)))
}

impl Divergence {
    /// Draws the probes (if any) for a solve in dimension `d`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for zero probes or `d == 0`.
    pub fn plan(&self, d: usize) -> Result<DivergencePlan> {
        if d == 0 {
            return Err(Error::count_out_of_range("divergence dimension", d, "at least 1"));
        }
        let probes = match self {
            Divergence::ExactTrace => None,
            Divergence::Hutchinson(h) => {
                if h.probes == 0 {
                    return Err(Error::count_out_of_range("Hutchinson probes", h.probes, "at least 1"));
                }
                Some(h.draw(d))
            }
        };
        Ok(DivergencePlan { d, probes, cot: Vec::new(), vjp: Vec::new() })
    }
}

/// A divergence estimator with its probes fixed for one solve, plus scratch buffers.
#[derive(Debug, Clone)]
pub struct DivergencePlan {
    d: usize,
    probes: Option<Vec<f64>>,
    cot: Vec<f64>,
    vjp: Vec<f64>,
}

impl DivergencePlan {
    /// The probes `(K, D)`, or `None` for the exact trace.
    pub fn probes(&self) -> Option<&[f64]> {
        self.probes.as_deref()
    }

    /// Writes the scores `s(x_i, t)` into `score_out` (`(n, D)`) and `tr ∂s/∂x` (exact or
    /// estimated) into `trace_out` (`(n,)`), with one model call for Hutchinson.
    ///
    /// # Errors
    /// Shape mismatches and the model's errors.
    pub fn score_and_trace(
        &mut self,
        model: &dyn ScoreModel,
        x: &[f64],
        t: f64,
        score_out: &mut [f64],
        trace_out: &mut [f64],
    ) -> Result<()> {
        let d = self.d;
        if model.dim() != d {
            return Err(Error::shape("score model dimension", d, model.dim()));
        }
        let n = check_batch(x, d, "x")?;
        if score_out.len() != x.len() || trace_out.len() != n {
            return Err(Error::shape(
                "score/trace outputs",
                format!("{} and {n}", x.len()),
                format!("{} and {}", score_out.len(), trace_out.len()),
            ));
        }
        match &self.probes {
            Some(p) => {
                let k = p.len() / d;
                self.vjp.resize(k * n, 0.0);
                model.score_and_probe_forms(x, t, p, score_out, &mut self.vjp[..k * n])?;
                trace_out.iter_mut().for_each(|v| *v = 0.0);
                for forms in self.vjp[..k * n].chunks(n) {
                    for (tr, f) in trace_out.iter_mut().zip(forms) {
                        *tr += f;
                    }
                }
                trace_out.iter_mut().for_each(|v| *v /= k as f64);
                Ok(())
            }
            None => {
                model.score(x, t, score_out)?;
                if model.jacobian_trace(x, t, trace_out)? {
                    return Ok(());
                }
                trace_out.iter_mut().for_each(|v| *v = 0.0);
                let mut scratch = vec![0.0; x.len()];
                for (start, b) in basis_blocks(d) {
                    self.cot.clear();
                    self.cot.resize(b * n * d, 0.0);
                    self.vjp.resize(b * n * d, 0.0);
                    for j in 0..b {
                        for i in 0..n {
                            self.cot[(j * n + i) * d + start + j] = 1.0;
                        }
                    }
                    model.score_and_vjp(x, t, &self.cot, &mut scratch, &mut self.vjp)?;
                    for j in 0..b {
                        for (i, tr) in trace_out.iter_mut().enumerate() {
                            *tr += self.vjp[(j * n + i) * d + start + j];
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The adjoint's model term: the scores into `score_out` and `a_iᵀ ∂s/∂x_i` plus the trace
    /// gradient of [`DivergencePlan::trace_grad`] into `out`; with probes, one
    /// [`ScoreModel::score_and_adjoint_vjp`] call.
    ///
    /// # Errors
    /// Shape mismatches and the model's errors.
    pub fn adjoint_terms(
        &mut self,
        model: &dyn ScoreModel,
        x: &[f64],
        t: f64,
        a: &[f64],
        score_out: &mut [f64],
        out: &mut [f64],
    ) -> Result<()> {
        check_batch(x, self.d, "x")?;
        if out.len() != x.len() {
            return Err(Error::shape("adjoint-term output", x.len(), out.len()));
        }
        match &self.probes {
            Some(p) => model.score_and_adjoint_vjp(x, t, a, p, score_out, out),
            None => {
                let mut tg = vec![0.0; x.len()];
                self.trace_grad(model, x, t, &mut tg)?;
                model.score_and_vjp(x, t, a, score_out, out)?;
                out.iter_mut().zip(&tg).for_each(|(o, g)| *o += g);
                Ok(())
            }
        }
    }

    /// The gradient of the trace term: `∇x tr ∂s/∂x` (exact: the model's
    /// [`ScoreModel::jacobian_trace_grad`], or else `D ×` [`ScoreModel::second_order`] over
    /// the basis vectors in blocks) or `∇x (1/K) Σ_k ε_kᵀ ∂s/∂x ε_k` with this plan's probes.
    ///
    /// # Errors
    /// Shape mismatches and the model's errors.
    pub fn trace_grad(&mut self, model: &dyn ScoreModel, x: &[f64], t: f64, out: &mut [f64]) -> Result<()> {
        let d = self.d;
        check_batch(x, d, "x")?;
        if out.len() != x.len() {
            return Err(Error::shape("trace-gradient output", x.len(), out.len()));
        }
        match &self.probes {
            Some(p) => model.second_order(x, t, p, out),
            None => {
                if model.jacobian_trace_grad(x, t, out)? {
                    return Ok(());
                }
                out.iter_mut().for_each(|v| *v = 0.0);
                let mut part = vec![0.0; x.len()];
                for (start, b) in basis_blocks(d) {
                    let mut basis = vec![0.0; b * d];
                    for j in 0..b {
                        basis[j * d + start + j] = 1.0;
                    }
                    // second_order averages over its b probes.
                    model.second_order(x, t, &basis, &mut part)?;
                    for (o, v) in out.iter_mut().zip(&part) {
                        *o += b as f64 * v;
                    }
                }
                Ok(())
            }
        }
    }
}
