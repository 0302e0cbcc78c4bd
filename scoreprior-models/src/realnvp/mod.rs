//! RealNVP normalising flow on dfdx: a generator `x = G(z)`, `z ~ N(0, I_D)`, with the exact
//! `log q(x) = log N(z; 0, I) − log|det ∂G/∂z|`. `G` is a stack of flow steps, each
//! `permute → ActNorm → coupling → reverse → ActNorm → coupling → reverse`; a coupling keeps
//! `x_a` and maps `x_b ↦ x_b ⊙ exp(tanh(ŝ(x_a))) + t(x_a)`, so its log-det is `Σ tanh(ŝ)`.
//!
//! The layout follows the reference DPI code (scalar ActNorm, MLP `D/2 → H → H → 2·D/2` with
//! LeakyReLU(0.01) and optional BatchNorm, zero-initialised gain-scaled output layer, fixed
//! seeded permutations), written in the generative direction so that sampling and its
//! gradient need one pass. At initialisation `G` is the identity.
//!
//! Tensors are stored feature-major `(D, n)`: permutations and splits are then gathers along
//! axis 0, and every linear layer is one `W · X` matmul. All parameters are 1-D `f64`
//! tensors (reshaped at use), which keeps the optimiser, clipping and checkpoints a loop.

mod ops;
mod posterior;

use std::sync::Arc;

use dfdx::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use scoreprior_core::{Error, Result};

pub use posterior::{AdamSettings, FlowPrior};

/// A parameter: a flat `f64` tensor on the CPU.
pub(crate) type Param = Tensor<(usize,), f64, Cpu>;
/// A traced `(features, batch)` activation.
pub(crate) type Act = Tensor<(usize, usize), f64, Cpu, OwnedTape<f64, Cpu>>;
/// A traced per-sample vector.
pub(crate) type PerSample = Tensor<(usize,), f64, Cpu, OwnedTape<f64, Cpu>>;

const BN_EPS: f64 = 1e-2;
const BN_MOMENTUM: f64 = 0.9;
const LEAK: f64 = 0.01;

/// Shape and initialisation of a [`RealNvp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealNvpConfig {
    /// Dimension `D ≥ 2` of one (flattened) sample.
    pub dim: usize,
    /// Flow steps; each holds two affine couplings (the paper: 32 steps for images).
    pub n_flow: usize,
    /// Hidden width of the coupling MLPs.
    pub hidden: usize,
    /// BatchNorm after each hidden layer of the coupling MLPs (batch statistics while
    /// training, running averages when sampling).
    pub batch_norm: bool,
    /// Standard deviation of the initial hidden-layer weights (the reference: 0.05).
    pub init_std: f64,
    /// Seed of the weights and of the fixed permutations.
    pub seed: u64,
}

impl RealNvpConfig {
    /// Defaults for dimension `dim`: 16 flow steps, hidden width `max(D/8, 32)` (the
    /// reference's `D/(2·4)` for images, wider for small `D`), no BatchNorm.
    pub fn new(dim: usize) -> Self {
        Self { dim, n_flow: 16, hidden: (dim / 8).max(32), batch_norm: false, init_std: 0.05, seed: 0 }
    }
    scoreprior_core::setters! {
        /// Sets the number of flow steps.
        pub fn with_flows(n_flow: usize) => n_flow;
        /// Sets the hidden width.
        pub fn with_hidden(hidden: usize) => hidden;
        /// Turns BatchNorm on or off.
        pub fn with_batch_norm(on: bool) => batch_norm;
        /// Sets the seed.
        pub fn with_seed(seed: u64) => seed;
    }
    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        if self.dim < 2 {
            return Err(Error::count_out_of_range("RealNVP dimension", self.dim, ">= 2"));
        }
        for (what, n) in [("RealNVP flow steps", self.n_flow), ("RealNVP hidden width", self.hidden)] {
            if n == 0 {
                return Err(Error::count_out_of_range(what, n, "at least 1"));
            }
        }
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return Err(Error::out_of_range("init_std", self.init_std, "finite and >= 0"));
        }
        Ok(())
    }
}

/// BatchNorm of one hidden layer: affine parameters and running statistics.
#[derive(Debug, Clone)]
pub(crate) struct BatchNorm {
    pub gamma: usize,
    pub beta: usize,
    pub running_mean: Vec<f64>,
    pub running_var: Vec<f64>,
}

/// Parameter indices of one affine coupling.
#[derive(Debug, Clone)]
pub(crate) struct Coupling {
    pub w: [usize; 3],
    pub b: [usize; 3],
    /// Per-output log-gain of the zero-initialised output layer (`× exp(3·g)`).
    pub gain: usize,
    pub bn: Option<[BatchNorm; 2]>,
}

/// One layer of the generator.
#[derive(Debug, Clone)]
pub(crate) enum Layer {
    /// `x ↦ exp(s)·x + loc` with scalar `s`, `loc`.
    ActNorm { loc: usize, log_scale: usize },
    /// Affine coupling on the halves `[0, D/2)` (kept) and `[D/2, D)` (transformed).
    Coupling(Coupling),
    /// `x ↦ x[perm]` (output feature `j` is input feature `perm[j]`); `seeded` tells the
    /// random per-step permutations from the fixed reversals.
    Permute { perm: Arc<Vec<usize>>, inv: Arc<Vec<usize>>, seeded: bool },
}

fn permute(perm: Vec<usize>, seeded: bool) -> Layer {
    let mut inv = vec![0; perm.len()];
    for (j, &p) in perm.iter().enumerate() {
        inv[p] = j;
    }
    Layer::Permute { perm: Arc::new(perm), inv: Arc::new(inv), seeded }
}

/// Batch statistics seen by the BatchNorm layers in one training pass, in layer order.
pub(crate) type BnStats = Vec<(Vec<f64>, Vec<f64>)>;

/// A RealNVP flow with exact log-determinant (see the module docs).
///
/// ```
/// use scoreprior_models::realnvp::{RealNvp, RealNvpConfig};
/// let flow = RealNvp::new(RealNvpConfig::new(4).with_flows(2)).unwrap();
/// let z = vec![0.3, -1.0, 2.0, 0.5];
/// let (x, logdet) = flow.forward(&z, 1).unwrap();
/// // Zero-initialised output layers: the flow starts as the identity.
/// assert_eq!(x, z);
/// assert_eq!(logdet, vec![0.0]);
/// ```
pub struct RealNvp {
    pub(crate) cfg: RealNvpConfig,
    pub(crate) dev: Cpu,
    pub(crate) params: Vec<Param>,
    pub(crate) names: Vec<String>,
    pub(crate) layers: Vec<Layer>,
    pub(crate) d_a: usize,
    pub(crate) idx_a: Arc<Vec<usize>>,
    pub(crate) idx_b: Arc<Vec<usize>>,
    pub(crate) idx_s: Arc<Vec<usize>>,
    pub(crate) idx_t: Arc<Vec<usize>>,
    pub(crate) opt: posterior::TrainState,
}

impl std::fmt::Debug for RealNvp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealNvp").field("cfg", &self.cfg).field("n_params", &self.num_params()).finish()
    }
}

impl RealNvp {
    /// Builds the flow (identity map) with weights and permutations drawn from `cfg.seed`.
    pub fn new(cfg: RealNvpConfig) -> Result<Self> {
        cfg.validate()?;
        let dev = Cpu::default();
        let d = cfg.dim;
        let d_a = d / 2;
        let d_b = d - d_a;
        let h = cfg.hidden;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut params: Vec<Param> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut add = |name: String, v: Vec<f64>, params: &mut Vec<Param>| {
            let n = v.len();
            params.push(dev.tensor_from_vec(v, (n,)));
            names.push(name);
            params.len() - 1
        };
        let normal = |n: usize, std: f64, rng: &mut ChaCha8Rng| -> Vec<f64> {
            (0..n).map(|_| std * rng.sample::<f64, _>(StandardNormal)).collect()
        };
        let mut layers = Vec::new();
        for k in 0..cfg.n_flow {
            // Fixed permutation per step, from its own stream so the weights do not shift it.
            let mut prng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5EED_0F9E_37AB);
            prng.set_stream(k as u64);
            let mut perm: Vec<usize> = (0..d).collect();
            perm.shuffle(&mut prng);
            layers.push(permute(perm, true));
            for half in 0..2 {
                let p = format!("flow{k}.{half}");
                let loc = add(format!("{p}.actnorm.loc"), vec![0.0], &mut params);
                let log_scale = add(format!("{p}.actnorm.log_scale"), vec![0.0], &mut params);
                layers.push(Layer::ActNorm { loc, log_scale });
                let w0 = add(format!("{p}.coupling.w0"), normal(h * d_a, cfg.init_std, &mut rng), &mut params);
                let b0 = add(format!("{p}.coupling.b0"), vec![0.0; h], &mut params);
                let w1 = add(format!("{p}.coupling.w1"), normal(h * h, cfg.init_std, &mut rng), &mut params);
                let b1 = add(format!("{p}.coupling.b1"), vec![0.0; h], &mut params);
                // Zero output layer: the coupling starts as the identity but still receives
                // gradients through its weights (upstream × hidden activations).
                let w2 = add(format!("{p}.coupling.w2"), vec![0.0; 2 * d_b * h], &mut params);
                let b2 = add(format!("{p}.coupling.b2"), vec![0.0; 2 * d_b], &mut params);
                let gain = add(format!("{p}.coupling.gain"), vec![0.0; 2 * d_b], &mut params);
                let bn = if cfg.batch_norm {
                    let mut mk = |i: usize| BatchNorm {
                        gamma: add(format!("{p}.coupling.bn{i}.gamma"), vec![1.0; h], &mut params),
                        beta: add(format!("{p}.coupling.bn{i}.beta"), vec![0.0; h], &mut params),
                        running_mean: vec![0.0; h],
                        running_var: vec![1.0; h],
                    };
                    Some([mk(0), mk(1)])
                } else {
                    None
                };
                layers.push(Layer::Coupling(Coupling { w: [w0, w1, w2], b: [b0, b1, b2], gain, bn }));
                layers.push(permute((0..d).rev().collect(), false));
            }
        }
        // A last fixed permutation undoes the composition of all others, so that the
        // initial flow is exactly the identity (not just a permutation of it).
        let mut cur: Vec<usize> = (0..d).collect();
        for l in &layers {
            if let Layer::Permute { perm, .. } = l {
                cur = perm.iter().map(|&p| cur[p]).collect();
            }
        }
        let mut undo = vec![0; d];
        for (j, &c) in cur.iter().enumerate() {
            undo[c] = j;
        }
        layers.push(permute(undo, false));
        let opt = posterior::TrainState::new(&params);
        Ok(Self {
            idx_a: Arc::new((0..d_a).collect()),
            idx_b: Arc::new((d_a..d).collect()),
            idx_s: Arc::new((0..d_b).collect()),
            idx_t: Arc::new((d_b..2 * d_b).collect()),
            cfg,
            dev,
            params,
            names,
            layers,
            d_a,
            opt,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RealNvpConfig {
        &self.cfg
    }

    /// Dimension `D`.
    pub fn dim(&self) -> usize {
        self.cfg.dim
    }

    /// Number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.shape().0).sum()
    }

    /// The fixed permutations, one per flow step (stored in checkpoints).
    pub fn permutations(&self) -> Vec<Vec<usize>> {
        self.layers
            .iter()
            .filter_map(|l| match l {
                Layer::Permute { perm, seeded: true, .. } => Some(perm.to_vec()),
                _ => None,
            })
            .collect()
    }

    /// Starts the flow at `x = loc + scale·z` (instead of `x = z`) by setting the first
    /// ActNorm, applied to the latent. Images in `[0, 1]` are far from `N(0, I)`; starting
    /// near their scale saves the thousands of Adam steps (each moves a log-scale by about
    /// the learning rate) the flow would otherwise spend shrinking its output.
    pub fn set_initial_affine(&mut self, loc: f64, scale: f64) -> Result<()> {
        if !loc.is_finite() {
            return Err(Error::out_of_range("the loc of the initial affine map", loc, "finite"));
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::out_of_range("the scale of the initial affine map", scale, "finite and > 0"));
        }
        let first = self.layers.iter().find_map(|l| match l {
            Layer::ActNorm { loc, log_scale } => Some((*loc, *log_scale)),
            _ => None,
        });
        let (l, s) = first.expect("every flow step has ActNorm layers");
        self.params[l].copy_from(&[loc]);
        self.params[s].copy_from(&[scale.ln()]);
        Ok(())
    }

    /// Overwrites every parameter with `N(0, scale²)` noise (ActNorm log-scales with a tenth
    /// of it): a generic, non-identity flow for tests and diagnostics.
    pub fn randomize(&mut self, scale: f64, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (p, name) in self.params.iter_mut().zip(&self.names) {
            let n = p.shape().0;
            let s = if name.ends_with("log_scale") { 0.1 * scale } else { scale };
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    let e: f64 = rng.sample(StandardNormal);
                    if name.ends_with("gamma") {
                        1.0 + s * e
                    } else {
                        s * e
                    }
                })
                .collect();
            p.copy_from(&v);
        }
    }

    fn traced(&self, i: usize) -> PerSample {
        self.params[i].leaky_trace()
    }

    /// `y = W·x + b` with `W` stored flat `(out, inp)`.
    fn linear(&self, w: usize, b: usize, out: usize, inp: usize, x: Act) -> Act {
        let n = x.shape().1;
        let _ = n;
        let wm = self.traced(w).reshape_like(&(out, inp));
        ops::add_bias(&self.dev, wm.matmul(x), &self.params[b])
    }

    fn batch_norm(&self, bn: &BatchNorm, x: Act, train: bool, stats: &mut BnStats) -> Act {
        let (h, n) = *x.shape();
        let normed = if train {
            // Record the batch statistics (population variance, as the normalisation uses).
            let v = ops::phys(&x);
            let mut mean = vec![0.0; h];
            let mut var = vec![0.0; h];
            for j in 0..h {
                let row = &v[j * n..(j + 1) * n];
                let m = row.iter().sum::<f64>() / n as f64;
                mean[j] = m;
                var[j] = row.iter().map(|r| (r - m) * (r - m)).sum::<f64>() / n as f64;
            }
            stats.push((mean, var));
            x.normalize::<Axis<1>>(BN_EPS)
        } else {
            let a: Vec<f64> = bn.running_var.iter().map(|v| 1.0 / (v + BN_EPS).sqrt()).collect();
            let c: Vec<f64> = bn.running_mean.iter().zip(&a).map(|(m, a)| -m * a).collect();
            let a = self.dev.tensor_from_vec(a, (h,)).broadcast_like::<_, Axis<1>>(&(h, n));
            let c = self.dev.tensor_from_vec(c, (h,)).broadcast_like::<_, Axis<1>>(&(h, n));
            x * a + c
        };
        let g = self.traced(bn.gamma).broadcast_like::<_, Axis<1>>(&(h, n));
        let b = self.traced(bn.beta).broadcast_like::<_, Axis<1>>(&(h, n));
        normed * g + b
    }

    /// The coupling network: `(ŝ, t)` from the kept half, each `(d_b, n)`.
    fn coupling_net(&self, c: &Coupling, xa: Act, train: bool, stats: &mut BnStats) -> (Act, Act) {
        let d = self.cfg.dim;
        let (d_a, d_b, h) = (self.d_a, d - self.d_a, self.cfg.hidden);
        let n = xa.shape().1;
        let mut hid = leakyrelu(self.linear(c.w[0], c.b[0], h, d_a, xa), LEAK);
        if let Some(bn) = &c.bn {
            hid = self.batch_norm(&bn[0], hid, train, stats);
        }
        hid = leakyrelu(self.linear(c.w[1], c.b[1], h, h, hid), LEAK);
        if let Some(bn) = &c.bn {
            hid = self.batch_norm(&bn[1], hid, train, stats);
        }
        let out = self.linear(c.w[2], c.b[2], 2 * d_b, h, hid);
        let _ = n;
        let out = ops::gain(&self.dev, out, &self.params[c.gain]);
        let s: Act = ops::take_rows(&self.dev, out.with_empty_tape(), self.idx_s.clone());
        let t: Act = ops::take_rows(&self.dev, out, self.idx_t.clone());
        (s, t)
    }

    /// Runs the generator on a traced `(D, n)` input; returns `x` and `log|det ∂x/∂z|`.
    pub(crate) fn generate(&self, z: Act, train: bool) -> (Act, PerSample, BnStats) {
        self.run_layers(z, false, train)
    }

    /// Runs the inverse map `z = G⁻¹(x)` on a traced `(D, n)` input (BatchNorm with running
    /// statistics); returns `z` and `log|det ∂z/∂x| = −log|det ∂G/∂z|`.
    pub(crate) fn invert(&self, x: Act) -> (Act, PerSample) {
        let (z, fwd_ld, _) = self.run_layers(x, true, false);
        (z, fwd_ld.negate())
    }

    /// The layers on a traced `(D, n)` input: in order, the generator (BatchNorm on batch
    /// statistics when `train`), or in reverse order each layer's inverse (`inverse`). Returns
    /// the output, the generator's `log|det ∂x/∂z|` (coupling terms summed in the order run,
    /// then the ActNorm terms) and the BatchNorm statistics.
    fn run_layers(&self, input: Act, inverse: bool, train: bool) -> (Act, PerSample, BnStats) {
        let (d, n) = *input.shape();
        let mut stats = BnStats::new();
        let mut x = input;
        let mut ld: Option<PerSample> = None;
        let mut act_ld: Option<Tensor<(), f64, Cpu, OwnedTape<f64, Cpu>>> = None;
        let layers: Box<dyn Iterator<Item = &Layer>> =
            if inverse { Box::new(self.layers.iter().rev()) } else { Box::new(self.layers.iter()) };
        for layer in layers {
            match layer {
                Layer::Permute { perm, inv, .. } => {
                    x = ops::take_rows(&self.dev, x, if inverse { inv } else { perm }.clone());
                }
                Layer::ActNorm { loc, log_scale } => {
                    let s = self.traced(*log_scale).sum::<(), _>();
                    // `s` carries the tape of the log-scale's contribution to the log-det.
                    act_ld = Some(match act_ld {
                        None => s,
                        Some(a) => a + s,
                    });
                    x = ops::actnorm(&self.dev, x, &self.params[*log_scale], &self.params[*loc], inverse);
                }
                Layer::Coupling(c) => {
                    let xa: Act = ops::take_rows(&self.dev, x.with_empty_tape(), self.idx_a.clone());
                    let xb: Act = ops::take_rows(&self.dev, x, self.idx_b.clone());
                    let (s_raw, t) = self.coupling_net(c, xa.with_empty_tape(), train, &mut stats);
                    let log_s = s_raw.tanh();
                    let term = log_s.with_empty_tape().sum::<(usize,), Axis<0>>();
                    ld = Some(match ld {
                        None => term,
                        Some(l) => l + term,
                    });
                    // x_b ← x_b·e^{log s} + t, or its inverse (x_b − t)·e^{−log s}.
                    let xb = if inverse { (xb - t) * log_s.negate().exp() } else { xb * log_s.exp() + t };
                    x = (xa, xb).concat_along(Axis::<0>);
                }
            }
        }
        let act = act_ld.expect("every flow step has ActNorm layers") * d as f64;
        let act = act.broadcast_like::<_, Axis<0>>(&(n,));
        let ld = match ld {
            Some(l) => l + act,
            None => act,
        };
        (x, ld, stats)
    }

    /// Transposes row-major `(n, D)` into a feature-major traced tensor.
    pub(crate) fn to_feature_major(&self, v: &[f64], n: usize) -> Act {
        let d = self.cfg.dim;
        let mut t = vec![0.0; n * d];
        for i in 0..n {
            for j in 0..d {
                t[j * n + i] = v[i * d + j];
            }
        }
        self.dev.tensor_from_vec(t, (d, n)).leaky_traced()
    }

    /// Reads a feature-major `(D, n)` tensor back as row-major `(n, D)`.
    pub(crate) fn to_row_major<T>(&self, t: &Tensor<(usize, usize), f64, Cpu, T>) -> Vec<f64> {
        let (d, n) = *t.shape();
        let v = ops::phys(t);
        let mut out = vec![0.0; n * d];
        for j in 0..d {
            for i in 0..n {
                out[i * d + j] = v[j * n + i];
            }
        }
        out
    }

    fn check(&self, v: &[f64], n: usize, what: &str) -> Result<()> {
        if n == 0 || v.len() != n * self.cfg.dim {
            return Err(Error::shape(what, format!("({n}, {})", self.cfg.dim), v.len()));
        }
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(Error::NonFiniteData { what: "RealNVP input", index });
        }
        Ok(())
    }

    /// `x = G(z)` and `log|det ∂G/∂z|` for `n` row-major inputs, BatchNorm in evaluation mode.
    pub fn forward(&self, z: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        self.check(z, n, "z")?;
        let (x, ld, _) = self.generate(self.to_feature_major(z, n), false);
        Ok((self.to_row_major(&x), ld.as_vec()))
    }

    /// `z = G⁻¹(x)` and `log|det ∂G⁻¹/∂x|` for `n` row-major inputs.
    pub fn inverse(&self, x: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        self.check(x, n, "x")?;
        let (z, ld) = self.invert(self.to_feature_major(x, n));
        Ok((self.to_row_major(&z), ld.as_vec()))
    }

    /// The flow's density `log q(x) = log N(G⁻¹(x); 0, I) + log|det ∂G⁻¹/∂x|` and its gradient
    /// in `x` (used when a trained RealNVP serves as a prior).
    pub fn log_prob_and_grad(&self, x: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        self.check(x, n, "x")?;
        let xt = self.to_feature_major(x, n);
        let x_ghost = xt.retaped::<NoneTape>();
        let (z, ld) = self.invert(xt);
        let d = self.cfg.dim as f64;
        let zsq = z.square().sum::<(usize,), Axis<0>>();
        let lp = ld - zsq * 0.5 - 0.5 * d * (2.0 * std::f64::consts::PI).ln();
        let values = lp.as_vec();
        let grads = lp.sum::<(), _>().backward();
        let g = grads.get(&x_ghost);
        Ok((values, self.to_row_major(&g)))
    }

    /// Applies the running-statistics update of the BatchNorm layers from one training pass.
    pub(crate) fn update_running_stats(&mut self, stats: BnStats) {
        let mut it = stats.into_iter();
        for layer in &mut self.layers {
            if let Layer::Coupling(Coupling { bn: Some(bns), .. }) = layer {
                for bn in bns.iter_mut() {
                    if let Some((m, v)) = it.next() {
                        for j in 0..m.len() {
                            bn.running_mean[j] = BN_MOMENTUM * bn.running_mean[j] + (1.0 - BN_MOMENTUM) * m[j];
                            bn.running_var[j] = BN_MOMENTUM * bn.running_var[j] + (1.0 - BN_MOMENTUM) * v[j];
                        }
                    }
                }
            }
        }
    }

    /// Draws `n` standard-normal latents (row-major `(n, D)`) and their `log N(z; 0, I)`.
    pub(crate) fn draw_latents(&self, n: usize, rng: &mut dyn rand::RngCore) -> (Vec<f64>, Vec<f64>) {
        let d = self.cfg.dim;
        let z: Vec<f64> = (0..n * d).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        let c = -0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
        let lp = z.chunks(d).map(|r| c - 0.5 * r.iter().map(|v| v * v).sum::<f64>()).collect();
        (z, lp)
    }
}

#[cfg(test)]
mod tests;
