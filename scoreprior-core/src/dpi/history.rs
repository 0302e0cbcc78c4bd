//! What a run records: one [`StepRecord`] per step (loss terms, weights, lr, gradient norm,
//! time floor), the [`DpiHistory`] and its CSV, and the per-step random stream
//! `ChaCha8(seed, stream = step + 1)` that makes a resumed run equal an uninterrupted one.

use super::*;

/// JSON writes non-finite numbers as `null`; read them back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// What one optimisation step measured (unweighted batch means). The field order is the
/// column order of `losses.csv`.
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
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    #[serde(deserialize_with = "nan_if_null")]
    pub grad_norm: f64,
    /// Wall time of the step in seconds.
    pub seconds: f64,
    /// Inverse temperature `β` of [`DpiConfig::tempering`] (1 when not tempering; also for
    /// histories written before tempering existed).
    #[serde(default = "one")]
    pub beta: f64,
    /// Lower time limit of the prior at this step ([`DpiConfig::time_floor`]; NaN for priors
    /// without one).
    #[serde(default = "nan", deserialize_with = "nan_if_null")]
    pub time_floor: f64,
}

fn one() -> f64 {
    1.0
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
        if self.records.is_empty() {
            return "step,total,data,prior,log_q,data_weight,lr,grad_norm,seconds,beta,time_floor\n".into();
        }
        // Plain numbers and no strings: the writer cannot fail, and its output is UTF-8.
        let bytes = crate::io::csv_bytes(&self.records).expect("a step record is a flat row of numbers");
        String::from_utf8(bytes).expect("CSV of numbers is UTF-8")
    }
}

/// The per-step random stream: depends only on the run seed and the step.
pub fn step_rng(seed: u64, step: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(step as u64 + 1);
    r
}
