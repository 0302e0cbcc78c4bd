//! [`DpiConfig`]: steps, batch, Adam's learning-rate schedule (linear warm-up, then linear
//! decay to a fraction), clipping, weights and schedules, seed, checkpoints.

use super::*;

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
    /// Output directory for `checkpoint.safetensors` and `losses.csv` (none: nothing written).
    pub out_dir: Option<PathBuf>,
    /// Resume from `out_dir/checkpoint.safetensors` when it exists.
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
            return Err(Error::count_out_of_range("DPI batch size", self.batch, "positive"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::out_of_range("DPI learning rate", self.lr, "positive"));
        }
        if let Some(c) = self.grad_clip {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::out_of_range("gradient clip", c, "positive"));
            }
        }
        let w = self.weights;
        for (what, v) in [("weights.data", w.data), ("weights.prior", w.prior), ("weights.entropy", w.entropy)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::out_of_range(what, v, "finite and >= 0"));
            }
        }
        if !(self.lr_final_fraction.is_finite() && self.lr_final_fraction >= 0.0) {
            return Err(Error::out_of_range("lr_final_fraction", self.lr_final_fraction, ">= 0"));
        }
        self.data_annealing.validate("data annealing")?;
        self.tempering.validate("tempering")?;
        self.time_floor.validate()?;
        let sf = self.score_function_weight;
        if !(sf.is_finite() && sf >= 0.0) {
            return Err(Error::out_of_range("score_function_weight", sf, "finite and >= 0"));
        }
        if self.resume && self.out_dir.is_none() {
            return Err(Error::inconsistent("resume", "needs an output directory (out_dir)"));
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
