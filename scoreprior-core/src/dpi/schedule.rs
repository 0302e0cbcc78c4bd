//! Schedules of the objective: loss weights, data-weight annealing and tempering
//! `β(step)` ([`Annealing`]), and the noise-level continuation of a score prior's time floor
//! ([`TimeFloorSchedule`], geometric in `t0`).

use super::*;

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
                if !(end.is_finite() && end > 0.0) {
                    Err(Error::out_of_range("time-floor schedule: end", end, "positive and finite"))
                } else if !(start.is_finite() && end <= start) {
                    Err(Error::out_of_range(
                        "time-floor schedule: start",
                        start,
                        format!("finite and at least end = {end}"),
                    ))
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
                Err(Error::out_of_range(format!("{what}: linear start"), start, "in [0, 1]"))
            }
            Annealing::Geometric { start, .. } if !(start.is_finite() && start > 0.0 && start <= 1.0) => {
                Err(Error::out_of_range(format!("{what}: geometric start"), start, "in (0, 1]"))
            }
            Annealing::Sigmoid { pivot, .. } if !pivot.is_finite() => {
                Err(Error::out_of_range(format!("{what}: sigmoid pivot"), pivot, "finite"))
            }
            Annealing::Sigmoid { rate, .. } if !(rate.is_finite() && rate > 0.0) => {
                Err(Error::out_of_range(format!("{what}: sigmoid rate"), rate, "positive and finite"))
            }
            _ => Ok(()),
        }
    }
}
