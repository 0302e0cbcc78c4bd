//! Deep Probabilistic Imaging: fit a sampler `q_θ` with tractable `log q` to the posterior
//! `p(x|y) ∝ p(y|x) p(x)` by minimising, over batches `x_i ~ q_θ`,
//! `L(θ) = (1/n) Σ_i [w_d·(−log p(y|x_i)) + w_p·(−log p(x_i)) + w_e·log q_θ(x_i)]`,
//! which for `w = 1` is `KL(q‖p(·|y))` up to a constant. Gradients w.r.t. the samples come
//! from the energies; the sampler back-propagates them (reparameterisation trick).
//!
//! The loop here knows only traits: a [`Posterior`] (RealNVP on dfdx implements it in
//! `scoreprior-models`) and [`Energy`] terms (a forward model's negative log-likelihood,
//! a prior's negative log-density, total variation, …). Entry point: [`run_dpi`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::io::atomic_write;
use crate::{Error, Result};

/// A batch drawn from a [`Posterior`]: `x` is row-major `(n, D)`, `log_q[i] = log q(x_i)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Number of samples `n`.
    pub n: usize,
    /// Dimension `D` of one sample.
    pub dim: usize,
    /// Samples, row-major `(n, D)`.
    pub x: Vec<f64>,
    /// `log q(x_i)` per sample.
    pub log_q: Vec<f64>,
}

/// A trainable sampler with exact log-density: the variational family of DPI.
///
/// Training protocol per step: [`sample_for_training`](Posterior::sample_for_training)
/// (records what back-propagation needs), then [`backward`](Posterior::backward) with
/// `∂L/∂x` and `∂L/∂log q` (gradients accumulate across calls), then
/// [`apply_update`](Posterior::apply_update).
pub trait Posterior {
    /// Dimension `D` of one sample.
    fn dim(&self) -> usize;
    /// Draws `n` samples with gradient tracking (training mode).
    fn sample_for_training(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch>;
    /// Back-propagates `∂L/∂x` (`(n, D)`) and `∂L/∂log q` (`(n)`) of the last training batch
    /// into the parameter gradients (accumulating).
    fn backward(&mut self, grad_x: &[f64], grad_log_q: &[f64]) -> Result<()>;
    /// One optimiser step with learning rate `lr`, after scaling the accumulated gradient to
    /// global norm at most `max_grad_norm`; clears the gradients. Returns the norm before clipping.
    fn apply_update(&mut self, lr: f64, max_grad_norm: Option<f64>) -> Result<f64>;
    /// Draws `n` samples without gradient tracking (evaluation mode).
    fn sample(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch>;
    /// `∇x log q(x)` of the current sampler at `n` row-major points `x` (`(n, D)`), without
    /// touching the accumulated gradients. Only [`DpiConfig::score_function_weight`] needs it;
    /// the default reports it unsupported.
    fn grad_log_q(&mut self, x: &[f64], n: usize) -> Result<Vec<f64>> {
        let _ = (x, n);
        Err(Error::invalid(
            "this posterior cannot evaluate the gradient of its log-density; set score_function_weight to 0",
        ))
    }
    /// Serialises parameters, optimiser state and anything needed to resume.
    fn save_state(&self) -> Result<Vec<u8>>;
    /// Restores what [`save_state`](Posterior::save_state) wrote.
    fn load_state(&mut self, bytes: &[u8]) -> Result<()>;
}

/// A term `e(x)` of the DPI objective with its gradient: typically a negative log-density
/// (up to a constant) such as `−log p(y|x)` or `−log p(x)`.
pub trait Energy {
    /// Dimension `D` of one sample.
    fn dim(&self) -> usize;
    /// For the batch `x` (`(n, D)`) writes `energy[i] = e(x_i)` and `grad[i,:] = ∇e(x_i)`.
    /// Stochastic estimators draw from `rng`. A term that can only give gradients writes
    /// `NaN` energies (they are then only missing from the logs, not from the optimisation).
    fn energy_and_grad(&self, x: &[f64], rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()>;

    /// The current lower time limit of a score-based prior (`ε` of the DSM bound, `t0` of the
    /// PF-ODE prior), or `None` for terms without one. A term that returns `Some` accepts
    /// [`Energy::set_time_floor`], which a [`TimeFloorSchedule`] uses for noise-level
    /// continuation.
    fn time_floor(&self) -> Option<f64> {
        None
    }

    /// Moves the lower time limit (see [`Energy::time_floor`]).
    ///
    /// # Errors
    /// If the term has no time floor or `t0` is outside what it supports.
    fn set_time_floor(&self, t0: f64) -> Result<()> {
        Err(Error::invalid(format!("this energy has no time floor to set (asked for {t0})")))
    }
}

/// Noise-level continuation of a score-based prior: its lower time limit `t0(step)` (the
/// DSM bound's `ε`, the PF-ODE prior's `t0`) falls geometrically from `start` to `end` over
/// `steps` steps, then stays at `end`.
///
/// Why: at a small `t0` the prior is the density of nearly clean data, a rugged landscape
/// whose gradients at images far from the data point in unhelpful directions, and reverse-KL
/// DPI started from a broad flow can settle in a spurious optimum there. At a large `t0` it is
/// the density of data smoothed by `N(0, σ_{t0}²)` noise, smooth and with informative
/// gradients everywhere. Tracking the optimum while the smoothing shrinks is the classical
/// continuation (graduated non-convexity) remedy. A geometric ladder spends equal numbers of
/// steps per decade of `t0` (σ_t ∝ √t for small t), where a linear one would pass the small
/// times in a few steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum TimeFloorSchedule {
    /// Leave the prior's own time floor alone.
    #[default]
    Off,
    /// `t0 = start^(1−f)·end^f`, `f = min(step/steps, 1)`.
    Geometric {
        /// Time floor at step 0.
        start: f64,
        /// Final time floor (from step `steps` on).
        end: f64,
        /// Length of the ramp.
        steps: usize,
    },
}

impl TimeFloorSchedule {
    /// The time floor at `step` (`None` when off).
    ///
    /// ```
    /// use scoreprior_core::dpi::TimeFloorSchedule;
    /// let s = TimeFloorSchedule::Geometric { start: 0.1, end: 1e-3, steps: 200 };
    /// assert_eq!(s.at(0), Some(0.1));
    /// assert!((s.at(100).unwrap() - 1e-2).abs() < 1e-12);
    /// assert_eq!(s.at(500), Some(1e-3));
    /// ```
    pub fn at(&self, step: usize) -> Option<f64> {
        match *self {
            TimeFloorSchedule::Off => None,
            TimeFloorSchedule::Geometric { start, end, steps } => {
                if steps == 0 || step >= steps {
                    Some(end)
                } else {
                    let f = step as f64 / steps as f64;
                    Some(start.powf(1.0 - f) * end.powf(f))
                }
            }
        }
    }

    /// Checks the schedule: `0 < end <= start`, both finite.
    ///
    /// # Errors
    /// A message naming the bad value.
    pub fn validate(&self) -> Result<()> {
        match *self {
            TimeFloorSchedule::Off => Ok(()),
            TimeFloorSchedule::Geometric { start, end, .. } => {
                if !(start.is_finite() && end.is_finite() && end > 0.0 && end <= start) {
                    Err(Error::invalid(format!(
                        "time-floor schedule needs finite 0 < end <= start, got start {start}, end {end}"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Weights of the three loss terms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossWeights {
    /// Weight of the data term `−log p(y|x)`.
    pub data: f64,
    /// Weight of the prior term `−log p(x)`.
    pub prior: f64,
    /// Weight of the entropy term `log q(x)` (`−H[q]`).
    pub entropy: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self { data: 1.0, prior: 1.0, entropy: 1.0 }
    }
}

/// A schedule of a factor in `[0, 1]` that multiplies loss weights: data-weight annealing
/// ([`DpiConfig::data_annealing`], lets the flow first settle on the prior) and target
/// tempering ([`DpiConfig::tempering`], lets it first cover every mode).
///
/// Unlike the reference script (which applied a sigmoid unconditionally), the factor is
/// exactly 1 for [`Annealing::None`] and, for [`Annealing::Linear`] and
/// [`Annealing::Geometric`], reaches exactly 1 at the end of the stated ramp (a sigmoid only
/// approaches it).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum Annealing {
    /// Constant factor 1.
    #[default]
    None,
    /// Linear ramp from `start` to 1 over `steps` steps, then 1.
    Linear {
        /// Factor at step 0.
        start: f64,
        /// Length of the ramp.
        steps: usize,
    },
    /// `1 / (1 + exp(−rate·(step − pivot)))`.
    Sigmoid {
        /// Step at which the factor is ½.
        pivot: f64,
        /// Slope.
        rate: f64,
    },
    /// Geometric ramp `start^(1 − step/steps)` from `start > 0` to 1 over `steps` steps, then
    /// 1: equal ratios per step, the usual inverse-temperature ladder of annealed sampling
    /// (a linear ramp from a small start would spend almost all its steps near β ≈ 1 and
    /// pass the small, mode-merging β in a few).
    Geometric {
        /// Factor at step 0 (in `(0, 1]`).
        start: f64,
        /// Length of the ramp.
        steps: usize,
    },
}

impl Annealing {
    /// Factor applied to the data weight at `step`.
    pub fn factor(&self, step: usize) -> f64 {
        match *self {
            Annealing::None => 1.0,
            Annealing::Linear { start, steps } => {
                if steps == 0 || step >= steps {
                    1.0
                } else {
                    start + (1.0 - start) * step as f64 / steps as f64
                }
            }
            Annealing::Sigmoid { pivot, rate } => 1.0 / (1.0 + (-rate * (step as f64 - pivot)).exp()),
            Annealing::Geometric { start, steps } => {
                if steps == 0 || step >= steps {
                    1.0
                } else {
                    start.powf(1.0 - step as f64 / steps as f64)
                }
            }
        }
    }

    /// Checks the schedule's parameters; `what` names it in the error.
    pub fn validate(&self, what: &str) -> Result<()> {
        match *self {
            Annealing::None => Ok(()),
            Annealing::Linear { start, .. } if !(start.is_finite() && (0.0..=1.0).contains(&start)) => {
                Err(Error::invalid(format!("{what}: linear start must be in [0, 1], got {start}")))
            }
            Annealing::Geometric { start, .. } if !(start.is_finite() && start > 0.0 && start <= 1.0) => {
                Err(Error::invalid(format!("{what}: geometric start must be in (0, 1], got {start}")))
            }
            Annealing::Sigmoid { pivot, rate } if !(pivot.is_finite() && rate.is_finite() && rate > 0.0) => {
                Err(Error::invalid(format!("{what}: sigmoid needs a finite pivot and rate > 0, got {pivot}, {rate}")))
            }
            _ => Ok(()),
        }
    }
}

/// Configuration of a DPI optimisation ([`run_dpi`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpiConfig {
    /// Number of optimisation steps in total (a resumed run continues up to this).
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Peak learning rate (Adam; the reference uses 2e-4 for denoising).
    pub lr: f64,
    /// Linear learning-rate warm-up from 0 over this many steps (0: none).
    pub warmup: usize,
    /// Learning rate at the last step as a fraction of `lr`: linear decay after the warm-up
    /// (1: constant, as the reference code). Decay lowers the stochastic-gradient noise of
    /// the final flow.
    pub lr_final_fraction: f64,
    /// Clip the gradient to this global norm (the reference: 1).
    pub grad_clip: Option<f64>,
    /// Loss weights.
    pub weights: LossWeights,
    /// Data-weight annealing.
    pub data_annealing: Annealing,
    /// Target tempering: the inverse temperature `β(step)` multiplying both energies, so that
    /// a step minimises `E_q[β·(w_d·e_data + w_p·e_prior) + w_e·log q]`, i.e. `KL(q‖p^β)` up to
    /// a constant, where `p ∝ exp(−w_d·e_data − w_p·e_prior)` is the posterior.
    ///
    /// Why: reverse KL is mode-seeking. Started at the identity, the flow slides into the
    /// nearest mode of a multimodal posterior and the objective has no gradient that moves
    /// mass across the low-density gap to another one. The tempered target `p^β` at small β
    /// is broad and unimodal, so `q` first covers all modes; as β rises to 1 the mass splits,
    /// each part following its mode. Annealing only the data weight is not the same: the
    /// prior's own modes stay sharp from step 0. [`Annealing::Geometric`] is the usual
    /// ladder; the ramp should end well before `steps` so the flow then fits `p` itself.
    #[serde(default)]
    pub tempering: Annealing,
    /// Weight `λ ≥ 0` of a score-function (REINFORCE) estimate of the same gradient, added to
    /// the reparameterisation gradient (0: off, the reference's estimator).
    ///
    /// Why: with the reparameterisation gradient alone, how much mass `q` gives each mode of a
    /// multimodal posterior is only corrected by the rare samples that fall in the gap between
    /// the modes (moving the boundary between the latent regions that feed each mode); their
    /// huge energy gradients make that correction a random walk, so the mode weights end up
    /// wherever the gap closed. The score-function estimate
    /// `(1/n) Σ_i (f_i − f̄) ∇θ log q_θ(x_i)|ₓ`, with `f = β·(w_d·e_data + w_p·e_prior) + w_e·log q`
    /// and the batch mean `f̄` as baseline, raises `log q` wherever `q` is too small relative to
    /// the target and lowers it where it is too large — at every sample, so it moves mode mass
    /// directly. Both estimators are unbiased for `∇θ L`, so their sum has the same stationary
    /// points. `∇θ log q_θ(x)|ₓ` is obtained from the sampler's outputs as
    /// `d/dθ log q(x_i(θ)) − ∇x log q(x_i)·∂x_i/∂θ`, which needs
    /// [`Posterior::grad_log_q`] and finite energies (not gradient-only priors).
    #[serde(default)]
    pub score_function_weight: f64,
    /// Noise-level continuation of the prior (moves its lower time limit each step; the prior
    /// must have one, see [`Energy::time_floor`]).
    #[serde(default)]
    pub time_floor: TimeFloorSchedule,
    /// Seed of the per-step random streams (the step's draws depend only on `seed` and the
    /// step number, so a resumed run matches an uninterrupted one).
    pub seed: u64,
    /// Write a checkpoint and the loss CSV every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Output directory for `checkpoint.dpi` and `losses.csv` (none: nothing written).
    pub out_dir: Option<PathBuf>,
    /// Resume from `out_dir/checkpoint.dpi` when it exists.
    pub resume: bool,
}

impl Default for DpiConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch: 64,
            lr: 2e-4,
            warmup: 0,
            lr_final_fraction: 1.0,
            grad_clip: Some(1.0),
            weights: LossWeights::default(),
            data_annealing: Annealing::None,
            tempering: Annealing::None,
            score_function_weight: 0.0,
            time_floor: TimeFloorSchedule::Off,
            seed: 0,
            checkpoint_every: 0,
            out_dir: None,
            resume: false,
        }
    }
}

impl DpiConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 {
            return Err(Error::invalid("DPI batch size must be positive"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(format!("DPI learning rate must be positive, got {}", self.lr)));
        }
        if let Some(c) = self.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::invalid(format!("gradient clip must be positive, got {c}")));
            }
        }
        let w = self.weights;
        if ![w.data, w.prior, w.entropy].iter().all(|v| v.is_finite() && *v >= 0.0) {
            return Err(Error::invalid(format!("loss weights must be finite and >= 0, got {w:?}")));
        }
        if !(self.lr_final_fraction.is_finite() && self.lr_final_fraction >= 0.0) {
            return Err(Error::invalid(format!("lr_final_fraction must be >= 0, got {}", self.lr_final_fraction)));
        }
        self.data_annealing.validate("data annealing")?;
        self.tempering.validate("tempering")?;
        self.time_floor.validate()?;
        let sf = self.score_function_weight;
        if !(sf.is_finite() && sf >= 0.0) {
            return Err(Error::invalid(format!("score_function_weight must be finite and >= 0, got {sf}")));
        }
        if self.resume && self.out_dir.is_none() {
            return Err(Error::invalid("resume needs an output directory"));
        }
        Ok(())
    }

    /// Learning rate at `step`: linear warm-up, then linear decay to `lr·lr_final_fraction`.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup + 1).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        self.lr * (1.0 - (1.0 - self.lr_final_fraction) * progress)
    }
}

fn one() -> f64 {
    1.0
}

/// JSON writes non-finite numbers as `null`; read them back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// What one optimisation step measured (unweighted batch means).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Step number (0-based).
    pub step: usize,
    /// Weighted total loss `w_d·data + w_p·prior + w_e·log_q` with the step's effective
    /// (annealed, tempered) weights: the objective that step minimised (NaN terms count as 0).
    #[serde(deserialize_with = "nan_if_null")]
    pub total: f64,
    /// Mean `−log p(y|x)`.
    #[serde(deserialize_with = "nan_if_null")]
    pub data: f64,
    /// Mean `−log p(x)` (NaN when the prior gives gradients only).
    #[serde(deserialize_with = "nan_if_null")]
    pub prior: f64,
    /// Mean `log q(x)` (= −entropy estimate).
    #[serde(deserialize_with = "nan_if_null")]
    pub log_q: f64,
    /// Effective data weight (after annealing and tempering).
    pub data_weight: f64,
    /// Inverse temperature `β` of [`DpiConfig::tempering`] (1 when not tempering; also for
    /// histories written before tempering existed).
    #[serde(default = "one")]
    pub beta: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_norm: f64,
    /// Wall time of the step in seconds.
    pub seconds: f64,
    /// Lower time limit of the prior at this step ([`DpiConfig::time_floor`]; NaN for priors
    /// without one).
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub time_floor: f64,
}

fn nan() -> f64 {
    f64::NAN
}

/// The result of [`run_dpi`]: the loss history (including steps of resumed runs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DpiHistory {
    /// One record per step.
    pub records: Vec<StepRecord>,
}

impl DpiHistory {
    /// The history as CSV with a header line.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("step,total,data,prior,log_q,data_weight,lr,grad_norm,seconds,beta,time_floor\n");
        for r in &self.records {
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                r.step,
                r.total,
                r.data,
                r.prior,
                r.log_q,
                r.data_weight,
                r.lr,
                r.grad_norm,
                r.seconds,
                r.beta,
                r.time_floor
            ));
        }
        s
    }
}

/// The per-step random stream: depends only on the run seed and the step.
pub fn step_rng(seed: u64, step: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(step as u64 + 1);
    r
}

const CKPT_MAGIC: &[u8; 8] = b"SPDPI01\n";
/// File name of the checkpoint inside the output directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.dpi";
/// File name of the loss CSV inside the output directory.
pub const LOSSES_FILE: &str = "losses.csv";

/// Writes a checkpoint: magic, JSON history length (u64 LE), JSON history, posterior state.
pub fn write_checkpoint(path: &Path, history: &DpiHistory, posterior: &dyn Posterior) -> Result<()> {
    let json = serde_json::to_vec(history).map_err(|e| Error::Io(format!("serialising history: {e}")))?;
    let state = posterior.save_state()?;
    let mut bytes = Vec::with_capacity(16 + json.len() + state.len());
    bytes.extend_from_slice(CKPT_MAGIC);
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(&state);
    atomic_write(path, &bytes)?;
    Ok(())
}

/// Reads a checkpoint written by [`write_checkpoint`] into `posterior`; returns the history.
pub fn read_checkpoint(path: &Path, posterior: &mut dyn Posterior) -> Result<DpiHistory> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    let bad = |why: &str| Error::Io(format!("{}: not a DPI checkpoint ({why})", path.display()));
    if bytes.len() < 16 || &bytes[..8] != CKPT_MAGIC {
        return Err(bad("bad magic"));
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    if bytes.len() < 16 + len {
        return Err(bad("truncated"));
    }
    let history: DpiHistory = serde_json::from_slice(&bytes[16..16 + len]).map_err(|e| bad(&e.to_string()))?;
    posterior.load_state(&bytes[16 + len..])?;
    Ok(history)
}

fn mean_finite(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Runs DPI: `config.steps` Adam steps of `posterior` on the weighted objective built from
/// the `data` term `−log p(y|x)` and the `prior` term `−log p(x)` (either may be absent).
/// `observer` sees every step (progress bars, logging).
///
/// With `out_dir` set, writes `checkpoint.dpi` (atomically) every `checkpoint_every` steps
/// and at the end, and `losses.csv`; with `resume`, continues from an existing checkpoint.
///
/// ```
/// use scoreprior_core::dpi::{run_dpi, DpiConfig, Energy, Posterior, Batch};
/// # use scoreprior_core::Result;
/// # use rand::RngCore;
/// // A one-parameter family q = N(θ, 1) in 1-D, fitted to the energy e(x) = (x−3)²/2.
/// struct Shift { theta: f64, z: Vec<f64>, g: f64 }
/// impl Posterior for Shift {
///     fn dim(&self) -> usize { 1 }
///     fn sample_for_training(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
///         use rand_distr::{Distribution, StandardNormal};
///         self.z = (0..n).map(|_| StandardNormal.sample(rng)).collect();
///         let x = self.z.iter().map(|z| z + self.theta).collect();
///         let log_q = self.z.iter().map(|z| -0.5 * z * z).collect();
///         Ok(Batch { n, dim: 1, x, log_q })
///     }
///     fn backward(&mut self, gx: &[f64], _gq: &[f64]) -> Result<()> { self.g += gx.iter().sum::<f64>(); Ok(()) }
///     fn apply_update(&mut self, lr: f64, _c: Option<f64>) -> Result<f64> {
///         let g = self.g; self.theta -= 100.0 * lr * g; self.g = 0.0; Ok(g.abs())
///     }
///     fn sample(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> { self.sample_for_training(n, rng) }
///     fn save_state(&self) -> Result<Vec<u8>> { Ok(self.theta.to_le_bytes().to_vec()) }
///     fn load_state(&mut self, b: &[u8]) -> Result<()> { self.theta = f64::from_le_bytes(b.try_into().unwrap()); Ok(()) }
/// }
/// struct Quad;
/// impl Energy for Quad {
///     fn dim(&self) -> usize { 1 }
///     fn energy_and_grad(&self, x: &[f64], _r: &mut dyn RngCore, e: &mut [f64], g: &mut [f64]) -> Result<()> {
///         for i in 0..x.len() { e[i] = 0.5 * (x[i] - 3.0).powi(2); g[i] = x[i] - 3.0; }
///         Ok(())
///     }
/// }
/// let mut q = Shift { theta: 0.0, z: vec![], g: 0.0 };
/// let cfg = DpiConfig { steps: 200, batch: 16, lr: 1e-3, grad_clip: None, ..Default::default() };
/// run_dpi(&cfg, &mut q, Some(&Quad), None, &mut |_| {}).unwrap();
/// assert!((q.theta - 3.0).abs() < 0.1);
/// ```
pub fn run_dpi(
    config: &DpiConfig,
    posterior: &mut dyn Posterior,
    data: Option<&dyn Energy>,
    prior: Option<&dyn Energy>,
    observer: &mut dyn FnMut(&StepRecord),
) -> Result<DpiHistory> {
    config.validate()?;
    let d = posterior.dim();
    for (name, t) in [("data term", data), ("prior term", prior)] {
        if let Some(t) = t {
            if t.dim() != d {
                return Err(Error::shape(name, d, t.dim()));
            }
        }
    }
    if config.time_floor != TimeFloorSchedule::Off && prior.and_then(|p| p.time_floor()).is_none() {
        return Err(Error::invalid(
            "a time-floor schedule needs a score-based prior with a lower time limit (DSM bound or PF-ODE)",
        ));
    }
    let ckpt_path = config.out_dir.as_ref().map(|p| p.join(CHECKPOINT_FILE));
    if let Some(dir) = &config.out_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
    }
    let mut history = DpiHistory::default();
    if config.resume {
        if let Some(p) = ckpt_path.as_ref().filter(|p| p.exists()) {
            history = read_checkpoint(p, posterior)?;
        }
    }
    let n = config.batch;
    let (mut e_data, mut g_data) = (vec![0.0; n], vec![0.0; n * d]);
    let (mut e_prior, mut g_prior) = (vec![0.0; n], vec![0.0; n * d]);
    let mut grad_x = vec![0.0; n * d];
    let start = history.records.len();
    for step in start..config.steps {
        let t0 = Instant::now();
        let mut rng = step_rng(config.seed, step);
        let batch = posterior.sample_for_training(n, &mut rng)?;
        if batch.x.len() != n * d || batch.log_q.len() != n {
            return Err(Error::shape("posterior batch", n * d, batch.x.len()));
        }
        let mut time_floor = f64::NAN;
        if let (Some(t0), Some(p)) = (config.time_floor.at(step), prior) {
            p.set_time_floor(t0)?;
            time_floor = t0;
        } else if let Some(t0) = prior.and_then(|p| p.time_floor()) {
            time_floor = t0;
        }
        let beta = config.tempering.factor(step);
        let w_data = beta * config.weights.data * config.data_annealing.factor(step);
        let w_prior = beta * config.weights.prior;
        let w_ent = config.weights.entropy;
        grad_x.iter_mut().for_each(|v| *v = 0.0);
        let inv_n = 1.0 / n as f64;
        let mut data_mean = f64::NAN;
        let mut prior_mean = f64::NAN;
        if let Some(t) = data {
            t.energy_and_grad(&batch.x, &mut rng, &mut e_data, &mut g_data)?;
            data_mean = mean_finite(&e_data);
            for (g, v) in grad_x.iter_mut().zip(&g_data) {
                *g += w_data * inv_n * v;
            }
        }
        if let Some(t) = prior {
            t.energy_and_grad(&batch.x, &mut rng, &mut e_prior, &mut g_prior)?;
            prior_mean = mean_finite(&e_prior);
            for (g, v) in grad_x.iter_mut().zip(&g_prior) {
                *g += w_prior * inv_n * v;
            }
        }
        let mut grad_q = vec![w_ent * inv_n; n];
        let sf = config.score_function_weight;
        if sf > 0.0 {
            // Per-sample objective f_i and its baseline (the batch mean, which keeps the
            // estimator unbiased up to O(1/n) and removes the constant of the energies).
            let f: Vec<f64> = (0..n)
                .map(|i| {
                    let mut v = w_ent * batch.log_q[i];
                    if data.is_some() {
                        v += w_data * e_data[i];
                    }
                    if prior.is_some() {
                        v += w_prior * e_prior[i];
                    }
                    v
                })
                .collect();
            if f.iter().any(|v| !v.is_finite()) {
                return Err(Error::invalid(
                    "score_function_weight > 0 needs finite energies and log q; a term gives gradients only",
                ));
            }
            let fbar = f.iter().sum::<f64>() * inv_n;
            let score = posterior.grad_log_q(&batch.x, n)?;
            if score.len() != n * d {
                return Err(Error::shape("grad log q", n * d, score.len()));
            }
            for i in 0..n {
                let c = sf * (f[i] - fbar) * inv_n;
                grad_q[i] += c;
                for j in 0..d {
                    grad_x[i * d + j] -= c * score[i * d + j];
                }
            }
        }
        if let Some(bad) = grad_x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { what: "DPI sample gradient", t: (bad / d) as f64 });
        }
        posterior.backward(&grad_x, &grad_q)?;
        let lr = config.lr_at(step);
        let grad_norm = posterior.apply_update(lr, config.grad_clip)?;
        let log_q = mean_finite(&batch.log_q);
        let nz = |v: f64| if v.is_finite() { v } else { 0.0 };
        let rec = StepRecord {
            step,
            total: w_data * nz(data_mean) + w_prior * nz(prior_mean) + w_ent * log_q,
            data: data_mean,
            prior: prior_mean,
            log_q,
            data_weight: w_data,
            beta,
            lr,
            grad_norm,
            seconds: t0.elapsed().as_secs_f64(),
            time_floor,
        };
        history.records.push(rec);
        observer(&rec);
        let last = step + 1 == config.steps;
        if let (Some(p), Some(dir)) = (&ckpt_path, &config.out_dir) {
            if last || (config.checkpoint_every > 0 && (step + 1) % config.checkpoint_every == 0) {
                write_checkpoint(p, &history, posterior)?;
                atomic_write(dir.join(LOSSES_FILE), history.to_csv().as_bytes())?;
            }
        }
    }
    Ok(history)
}

/// Posterior summary from samples after the outlier filter of the supplement.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSummary {
    /// Samples kept (row-major `(kept, D)`).
    pub kept: Vec<f64>,
    /// Number kept.
    pub n_kept: usize,
    /// Number dropped (any `|pixel| > threshold` or non-finite).
    pub n_dropped: usize,
    /// Per-pixel mean of the kept samples.
    pub mean: Vec<f64>,
    /// Per-pixel standard deviation (population) of the kept samples.
    pub std: Vec<f64>,
}

/// Drops samples with any `|x| > threshold` (the supplement uses 2) or a non-finite value
/// and returns the kept ones with their per-pixel mean and standard deviation.
/// Errors when nothing survives.
pub fn summarize_samples(x: &[f64], dim: usize, threshold: f64) -> Result<SampleSummary> {
    let n = crate::score::check_batch(x, dim, "samples")?;
    let mut kept = Vec::with_capacity(x.len());
    for i in 0..n {
        let s = &x[i * dim..(i + 1) * dim];
        if s.iter().all(|v| v.is_finite() && v.abs() <= threshold) {
            kept.extend_from_slice(s);
        }
    }
    let n_kept = kept.len() / dim;
    if n_kept == 0 {
        return Err(Error::invalid(format!("all {n} samples exceed |x| <= {threshold}; the posterior fit diverged")));
    }
    let mut mean = vec![0.0; dim];
    for s in kept.chunks(dim) {
        for (m, v) in mean.iter_mut().zip(s) {
            *m += v / n_kept as f64;
        }
    }
    let mut var = vec![0.0; dim];
    for s in kept.chunks(dim) {
        for ((q, v), m) in var.iter_mut().zip(s).zip(&mean) {
            *q += (v - m) * (v - m) / n_kept as f64;
        }
    }
    Ok(SampleSummary { kept, n_kept, n_dropped: n - n_kept, mean, std: var.into_iter().map(f64::sqrt).collect() })
}

/// Draws `n` samples from a trained posterior in chunks of `chunk`.
pub fn draw_samples(posterior: &mut dyn Posterior, n: usize, chunk: usize, seed: u64) -> Result<Batch> {
    let d = posterior.dim();
    let chunk = chunk.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Batch { n: 0, dim: d, x: Vec::with_capacity(n * d), log_q: Vec::with_capacity(n) };
    while out.n < n {
        let m = chunk.min(n - out.n);
        let b = posterior.sample(m, &mut rng)?;
        out.x.extend_from_slice(&b.x);
        out.log_q.extend_from_slice(&b.log_q);
        out.n += m;
    }
    Ok(out)
}

/// A measurement `y` under a [`ForwardModel`](crate::forward::ForwardModel) as the DPI data
/// term `e(x) = −log p(y|x)`, `∇e = −∇x log p(y|x)`.
#[derive(Debug)]
pub struct LikelihoodEnergy<F> {
    model: F,
    y: Vec<f64>,
}

impl<F: crate::forward::ForwardModel> LikelihoodEnergy<F> {
    /// The data term of measurement `y` (one measurement of length `M`).
    pub fn new(model: F, y: Vec<f64>) -> Result<Self> {
        if y.len() != model.output_dim() {
            return Err(Error::shape("measurement y", model.output_dim(), y.len()));
        }
        if y.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite { what: "measurement y", t: 0.0 });
        }
        Ok(Self { model, y })
    }
    /// The forward model.
    pub fn model(&self) -> &F {
        &self.model
    }
    /// The measurement.
    pub fn y(&self) -> &[f64] {
        &self.y
    }
}

impl<F: crate::forward::ForwardModel> Energy for LikelihoodEnergy<F> {
    fn dim(&self) -> usize {
        self.model.input_dim()
    }
    fn energy_and_grad(&self, x: &[f64], _rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
        let ll = self.model.log_likelihood(&self.y, x)?;
        let g = self.model.grad_log_likelihood(&self.y, x)?;
        write_negated(&ll, &g, energy, grad)
    }
}

/// A [`Prior`](crate::prior::Prior) as a DPI energy `e(x) = −log p(x)`, `∇e = −∇ log p(x)`.
///
/// ```
/// use scoreprior_core::dpi::{Energy, PriorEnergy};
/// use scoreprior_core::prior::GaussianPrior;
/// let e = PriorEnergy::new(GaussianPrior::new(vec![0.0, 0.0], &[1.0, 0.0, 0.0, 1.0]).unwrap());
/// let (mut v, mut g) = (vec![0.0], vec![0.0; 2]);
/// e.energy_and_grad(&[1.0, 2.0], &mut rand::rngs::mock::StepRng::new(0, 1), &mut v, &mut g).unwrap();
/// assert_eq!(g, vec![1.0, 2.0]);
/// ```
#[derive(Debug)]
pub struct PriorEnergy<P> {
    prior: P,
}

impl<P: crate::prior::Prior> PriorEnergy<P> {
    /// Wraps a prior.
    pub fn new(prior: P) -> Self {
        Self { prior }
    }
    /// The wrapped prior.
    pub fn prior(&self) -> &P {
        &self.prior
    }
}

impl<P: crate::prior::Prior> Energy for PriorEnergy<P> {
    fn dim(&self) -> usize {
        self.prior.dim()
    }
    fn energy_and_grad(&self, x: &[f64], _rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
        let r = self.prior.grad_log_prob(x)?;
        write_negated(&r.log_prob, &r.grad, energy, grad)
    }
}

fn write_negated(lp: &[f64], g: &[f64], energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
    if lp.len() != energy.len() || g.len() != grad.len() {
        return Err(Error::shape("prior output", energy.len(), lp.len()));
    }
    for (e, v) in energy.iter_mut().zip(lp) {
        *e = -v;
    }
    for (o, v) in grad.iter_mut().zip(g) {
        *o = -v;
    }
    Ok(())
}

/// The score-based prior ([`ScorePrior`](crate::prior::ScorePrior)) as a DPI energy, drawing
/// fresh Hutchinson probes at every step (as the reference code: one probe set per loss
/// evaluation, shared by the batch and the whole solve). With the exact trace nothing is
/// redrawn. Also records the solver work of the last call.
#[derive(Debug)]
pub struct ScorePriorEnergy {
    prior: std::sync::Mutex<crate::prior::ScorePrior>,
    last: std::sync::Mutex<crate::prior::PriorStats>,
}

impl ScorePriorEnergy {
    /// Wraps a score-based prior.
    pub fn new(prior: crate::prior::ScorePrior) -> Self {
        Self { prior: std::sync::Mutex::new(prior), last: Default::default() }
    }
    /// Solver statistics of the last evaluation (forward and adjoint solves).
    pub fn last_stats(&self) -> crate::prior::PriorStats {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Energy for ScorePriorEnergy {
    fn dim(&self) -> usize {
        use crate::prior::Prior;
        self.prior.lock().unwrap_or_else(|e| e.into_inner()).dim()
    }
    fn energy_and_grad(&self, x: &[f64], rng: &mut dyn RngCore, energy: &mut [f64], grad: &mut [f64]) -> Result<()> {
        use crate::prior::Prior;
        let mut p = self.prior.lock().unwrap_or_else(|e| e.into_inner());
        if let crate::divergence::Divergence::Hutchinson(h) = &mut p.config_mut().divergence {
            h.seed = rng.next_u64();
        }
        let r = p.grad_log_prob(x)?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = r.stats;
        write_negated(&r.log_prob, &r.grad, energy, grad)
    }

    fn time_floor(&self) -> Option<f64> {
        Some(self.prior.lock().unwrap_or_else(|e| e.into_inner()).config().t0)
    }

    fn set_time_floor(&self, t0: f64) -> Result<()> {
        let mut p = self.prior.lock().unwrap_or_else(|e| e.into_inner());
        let t1 = p.config().t1;
        if !(t0.is_finite() && t0 > 0.0 && t0 < t1) {
            return Err(Error::invalid(format!("PF-ODE prior: time floor t0 must be in (0, {t1}), got {t0}")));
        }
        p.config_mut().t0 = t0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annealing_does_what_it_says() {
        assert_eq!(Annealing::None.factor(0), 1.0);
        assert_eq!(Annealing::None.factor(123_456), 1.0);
        let lin = Annealing::Linear { start: 0.1, steps: 100 };
        assert!((lin.factor(0) - 0.1).abs() < 1e-15);
        assert!((lin.factor(50) - 0.55).abs() < 1e-12);
        assert_eq!(lin.factor(100), 1.0);
        let sig = Annealing::Sigmoid { pivot: 100.0, rate: 0.1 };
        assert!((sig.factor(100) - 0.5).abs() < 1e-15);
        assert!(sig.factor(200) > 0.9999);
    }

    #[test]
    fn geometric_schedule_is_monotone_and_ends_at_exactly_one() {
        let g = Annealing::Geometric { start: 1e-3, steps: 300 };
        assert!((g.factor(0) - 1e-3).abs() < 1e-18);
        // Equal ratios: halfway is the geometric mean of start and 1.
        assert!((g.factor(150) - 1e-3f64.sqrt()).abs() < 1e-12);
        assert_eq!(g.factor(300), 1.0);
        assert_eq!(g.factor(10_000), 1.0);
        let f: Vec<f64> = (0..=310).map(|k| g.factor(k)).collect();
        assert!(f.windows(2).all(|w| w[1] > w[0] || (w[0] == 1.0 && w[1] == 1.0)), "not monotone");
        assert!(f.iter().all(|v| (1e-3..=1.0).contains(v)));
        let r = f[1] / f[0];
        assert!(f[..300].windows(2).all(|w| (w[1] / w[0] - r).abs() < 1e-12), "ratios differ");
        assert_eq!(Annealing::Geometric { start: 0.5, steps: 0 }.factor(0), 1.0);
    }

    #[test]
    fn schedules_with_bad_parameters_are_rejected() {
        let bad = [
            Annealing::Geometric { start: 0.0, steps: 10 },
            Annealing::Geometric { start: 1.5, steps: 10 },
            Annealing::Geometric { start: f64::NAN, steps: 10 },
            Annealing::Linear { start: -0.1, steps: 10 },
            Annealing::Linear { start: f64::INFINITY, steps: 10 },
            Annealing::Sigmoid { pivot: 10.0, rate: 0.0 },
            Annealing::Sigmoid { pivot: f64::NAN, rate: 1.0 },
        ];
        for a in bad {
            let e = DpiConfig { tempering: a, ..Default::default() }.validate().unwrap_err().to_string();
            assert!(e.contains("tempering"), "{e}");
            assert!(DpiConfig { data_annealing: a, ..Default::default() }.validate().is_err());
        }
        for a in [
            Annealing::None,
            Annealing::Geometric { start: 1e-4, steps: 10 },
            Annealing::Geometric { start: 1.0, steps: 10 },
            Annealing::Linear { start: 0.0, steps: 10 },
        ] {
            DpiConfig { tempering: a, ..Default::default() }.validate().unwrap();
        }
    }

    /// A 1-D `q = N(θ, 1)` that records the sample gradients it is given.
    struct Recorder {
        theta: f64,
        grads: Vec<Vec<f64>>,
        entropy_grads: Vec<Vec<f64>>,
    }

    impl Posterior for Recorder {
        fn dim(&self) -> usize {
            1
        }
        fn sample_for_training(&mut self, n: usize, _rng: &mut dyn RngCore) -> Result<Batch> {
            Ok(Batch { n, dim: 1, x: vec![self.theta; n], log_q: vec![0.0; n] })
        }
        fn backward(&mut self, gx: &[f64], gq: &[f64]) -> Result<()> {
            self.grads.push(gx.to_vec());
            self.entropy_grads.push(gq.to_vec());
            Ok(())
        }
        fn apply_update(&mut self, _lr: f64, _c: Option<f64>) -> Result<f64> {
            Ok(0.0)
        }
        fn sample(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
            self.sample_for_training(n, rng)
        }
        fn save_state(&self) -> Result<Vec<u8>> {
            Ok(vec![])
        }
        fn load_state(&mut self, _b: &[u8]) -> Result<()> {
            Ok(())
        }
    }

    /// `e(x) = c·x`: gradient `c`.
    struct Slope(f64);

    impl Energy for Slope {
        fn dim(&self) -> usize {
            1
        }
        fn energy_and_grad(&self, x: &[f64], _r: &mut dyn RngCore, e: &mut [f64], g: &mut [f64]) -> Result<()> {
            for i in 0..x.len() {
                e[i] = self.0 * x[i];
                g[i] = self.0;
            }
            Ok(())
        }
    }

    #[test]
    fn tempering_scales_both_energies_but_not_the_entropy() {
        let tempering = Annealing::Geometric { start: 0.01, steps: 4 };
        let cfg = DpiConfig { steps: 6, batch: 2, tempering, ..Default::default() };
        let mut q = Recorder { theta: 1.0, grads: vec![], entropy_grads: vec![] };
        let h = run_dpi(&cfg, &mut q, Some(&Slope(3.0)), Some(&Slope(5.0)), &mut |_| {}).unwrap();
        for (step, (g, r)) in q.grads.iter().zip(&h.records).enumerate() {
            let beta = tempering.factor(step);
            assert_eq!(r.beta, beta);
            assert!((r.data_weight - beta).abs() < 1e-15);
            // ∂L/∂x = β·(3 + 5)/n per sample; ∂L/∂log q = 1/n whatever β.
            assert!(g.iter().all(|v| (v - beta * 8.0 / 2.0).abs() < 1e-12), "step {step}: {g:?}");
            assert!(q.entropy_grads[step].iter().all(|v| (v - 0.5).abs() < 1e-15));
            assert!((r.total - beta * 8.0).abs() < 1e-12);
        }
        assert!((h.records[0].beta - 0.01).abs() < 1e-15);
        assert_eq!(h.records[4].beta, 1.0);
        assert_eq!(h.records[5].beta, 1.0);
        assert!(h.to_csv().lines().next().unwrap().ends_with(",beta,time_floor"));
    }

    /// `q_a = π N(−2, s²) + (1 − π) N(2, s²)`, `π = sigmoid(a)`, sampled by picking a component
    /// and adding noise: the samples do not depend on `a`, so the reparameterisation gradient
    /// is blind to the mode weights (it only sees `∂a log q` through `log q`'s own output).
    struct TwoModes {
        a: f64,
        g: f64,
        x: Vec<f64>,
    }

    const S: f64 = 0.1;

    impl TwoModes {
        fn pi(&self) -> f64 {
            1.0 / (1.0 + (-self.a).exp())
        }
        /// `(log q(x), ∂a log q(x) at fixed x, ∂x log q(x))`.
        fn eval(&self, x: f64) -> (f64, f64, f64) {
            let pi = self.pi();
            let n = |m: f64| (-0.5 * ((x - m) / S).powi(2)).exp() / (S * (2.0 * std::f64::consts::PI).sqrt());
            let (na, nb) = (n(-2.0), n(2.0));
            let q = pi * na + (1.0 - pi) * nb;
            let dq_dx = pi * na * (-(x + 2.0) / (S * S)) + (1.0 - pi) * nb * (-(x - 2.0) / (S * S));
            (q.ln(), pi * (1.0 - pi) * (na - nb) / q, dq_dx / q)
        }
    }

    impl Posterior for TwoModes {
        fn dim(&self) -> usize {
            1
        }
        fn sample_for_training(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
            use rand::Rng;
            use rand_distr::StandardNormal;
            let pi = self.pi();
            self.x = (0..n)
                .map(|_| {
                    let m = if rng.gen::<f64>() < pi { -2.0 } else { 2.0 };
                    m + S * rng.sample::<f64, _>(StandardNormal)
                })
                .collect();
            let log_q = self.x.iter().map(|&x| self.eval(x).0).collect();
            Ok(Batch { n, dim: 1, x: self.x.clone(), log_q })
        }
        fn backward(&mut self, _gx: &[f64], gq: &[f64]) -> Result<()> {
            // x does not depend on a: only the log q output carries a gradient.
            self.g += self.x.iter().zip(gq).map(|(&x, g)| g * self.eval(x).1).sum::<f64>();
            Ok(())
        }
        fn apply_update(&mut self, lr: f64, _c: Option<f64>) -> Result<f64> {
            let g = self.g;
            self.a -= lr * g;
            self.g = 0.0;
            Ok(g.abs())
        }
        fn grad_log_q(&mut self, x: &[f64], _n: usize) -> Result<Vec<f64>> {
            Ok(x.iter().map(|&x| self.eval(x).2).collect())
        }
        fn sample(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
            self.sample_for_training(n, rng)
        }
        fn save_state(&self) -> Result<Vec<u8>> {
            Ok(vec![])
        }
        fn load_state(&mut self, _b: &[u8]) -> Result<()> {
            Ok(())
        }
    }

    /// `−log p` of `p = 0.8 N(−2, s²) + 0.2 N(2, s²)`: `KL(q_a‖p)` is minimal at `π = 0.8`.
    struct TwoModesTarget;

    impl Energy for TwoModesTarget {
        fn dim(&self) -> usize {
            1
        }
        fn energy_and_grad(&self, x: &[f64], _r: &mut dyn RngCore, e: &mut [f64], g: &mut [f64]) -> Result<()> {
            let t = TwoModes { a: 0.8f64.ln() - 0.2f64.ln(), g: 0.0, x: vec![] };
            for i in 0..x.len() {
                let (lq, _, dx) = t.eval(x[i]);
                e[i] = -lq;
                g[i] = -dx;
            }
            Ok(())
        }
    }

    #[test]
    fn score_function_term_moves_mode_mass_that_reparameterisation_cannot() {
        let run = |sf: f64| {
            let mut q = TwoModes { a: 0.0, g: 0.0, x: vec![] };
            let cfg = DpiConfig {
                steps: 400,
                batch: 64,
                lr: 0.5,
                grad_clip: None,
                score_function_weight: sf,
                ..Default::default()
            };
            run_dpi(&cfg, &mut q, None, Some(&TwoModesTarget), &mut |_| {}).unwrap();
            q.pi()
        };
        // Reparameterisation alone: the gradient in a has mean zero, π stays near ½.
        let pi0 = run(0.0);
        assert!((pi0 - 0.5).abs() < 0.1, "π without the score-function term: {pi0}");
        let pi1 = run(1.0);
        assert!((pi1 - 0.8).abs() < 0.03, "π with the score-function term: {pi1}");
    }

    #[test]
    fn score_function_term_needs_what_it_uses() {
        assert!(DpiConfig { score_function_weight: -1.0, ..Default::default() }.validate().is_err());
        assert!(DpiConfig { score_function_weight: f64::NAN, ..Default::default() }.validate().is_err());
        // A sampler without ∇x log q is refused with a message, not a panic.
        let cfg = DpiConfig { steps: 2, batch: 2, score_function_weight: 1.0, ..Default::default() };
        let mut q = Recorder { theta: 0.0, grads: vec![], entropy_grads: vec![] };
        let e = run_dpi(&cfg, &mut q, Some(&Slope(1.0)), None, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("score_function_weight"), "{e}");
    }

    #[test]
    fn warmup_is_linear() {
        let c = DpiConfig { lr: 1e-3, warmup: 10, ..Default::default() };
        assert!((c.lr_at(0) - 1e-4).abs() < 1e-18);
        assert!((c.lr_at(9) - 1e-3).abs() < 1e-18);
        assert_eq!(c.lr_at(500), 1e-3);
        let d = DpiConfig { lr: 1.0, warmup: 0, steps: 11, lr_final_fraction: 0.1, ..Default::default() };
        assert_eq!(d.lr_at(0), 1.0);
        assert!((d.lr_at(5) - 0.55).abs() < 1e-12);
        assert!((d.lr_at(10) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn outlier_filter_and_moments() {
        let x = vec![0.0, 1.0, 2.0, 3.0, 0.5, -1.5, 1.0, 1.0];
        let s = summarize_samples(&x, 2, 2.0).unwrap();
        assert_eq!((s.n_kept, s.n_dropped), (3, 1));
        assert!((s.mean[0] - 0.5).abs() < 1e-15 && (s.mean[1] - 1.0 / 6.0).abs() < 1e-15);
        let var0 = (0.25 + 0.0 + 0.25) / 3.0;
        assert!((s.std[0] - f64::sqrt(var0)).abs() < 1e-15);
        assert!(summarize_samples(&[5.0, 5.0], 2, 2.0).is_err());
        assert!(summarize_samples(&[f64::NAN, 0.0], 2, 2.0).is_err());
    }

    #[test]
    fn history_with_missing_terms_round_trips() {
        let r = StepRecord {
            step: 3,
            total: 1.5,
            data: f64::NAN,
            prior: 2.0,
            log_q: -0.5,
            data_weight: 1.0,
            beta: 1.0,
            lr: 1e-3,
            grad_norm: 0.7,
            seconds: 0.01,
            time_floor: f64::NAN,
        };
        let h = DpiHistory { records: vec![r] };
        let back: DpiHistory = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert!(back.records[0].data.is_nan());
        assert_eq!(back.records[0].prior, 2.0);
        assert_eq!(back.records[0].step, 3);
    }

    #[test]
    fn bad_config_is_rejected() {
        assert!(DpiConfig { batch: 0, ..Default::default() }.validate().is_err());
        assert!(DpiConfig { lr: -1.0, ..Default::default() }.validate().is_err());
        assert!(DpiConfig { resume: true, ..Default::default() }.validate().is_err());
        assert!(DpiConfig { grad_clip: Some(0.0), ..Default::default() }.validate().is_err());
    }
}
