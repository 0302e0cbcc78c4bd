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

/// The [`Posterior`] methods that a wrapper posterior (a fixed map `x = f(u)` of the samples
/// `u` of `self.inner`, with no parameters of its own) forwards to `self.inner`: the
/// dimension (which `f` keeps), the optimiser step and the state, and `sample` and
/// `sample_for_training`, which map the inner batch with the wrapper's method `$map`
/// (`fn(&self, Batch) -> Batch`). Invoked inside the wrapper's `impl Posterior`, which writes
/// the methods that differ. A wrapper whose backward pass needs the training batch's inputs
/// writes its own `sample_for_training` and invokes `forward_to_inner!(except_training $map)`.
macro_rules! forward_to_inner {
    ($map:ident) => {
        forward_to_inner!(except_training $map);
        fn sample_for_training(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
            let b = self.inner.sample_for_training(n, rng)?;
            Ok(self.$map(b))
        }
    };
    (except_training $map:ident) => {
        fn dim(&self) -> usize {
            self.inner.dim()
        }
        fn apply_update(&mut self, lr: f64, max_grad_norm: Option<f64>) -> Result<f64> {
            self.inner.apply_update(lr, max_grad_norm)
        }
        fn sample(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
            let b = self.inner.sample(n, rng)?;
            Ok(self.$map(b))
        }
        fn save_state(&self) -> Result<Vec<u8>> {
            self.inner.save_state()
        }
        fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
            self.inner.load_state(bytes)
        }
    };
}

/// Checks that `v` (a measurement, an offset) holds `len` values, all finite: a shape error,
/// else the first non-finite entry, both naming `what`. One rule for every vector a DPI
/// object is built around, so they fail alike.
fn check_finite_vector(v: &[f64], len: usize, what: &'static str) -> Result<()> {
    if v.len() != len {
        return Err(Error::shape(what, len, v.len()));
    }
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(Error::NonFiniteData { what, index }),
        None => Ok(()),
    }
}

mod affine;
mod checkpoint;
mod config;
mod constraints;
mod energies;
mod history;
mod positive;
mod run;
mod schedule;
mod shifted;
mod summary;
mod traits;

pub use affine::*;
pub use checkpoint::*;
pub use config::*;
pub use constraints::*;
pub use energies::*;
pub use history::*;
pub use positive::*;
pub use run::*;
pub use schedule::*;
pub use shifted::*;
pub use summary::*;
pub use traits::*;

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

    /// The [`Posterior`] methods of a test sampler without state to save: `sample` is
    /// `sample_for_training`.
    macro_rules! stateless_sampling {
        () => {
            fn sample(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
                self.sample_for_training(n, rng)
            }
            fn save_state(&self) -> Result<Vec<u8>> {
                Ok(vec![])
            }
            fn load_state(&mut self, _b: &[u8]) -> Result<()> {
                Ok(())
            }
        };
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
        stateless_sampling!();
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
        stateless_sampling!();
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
