//! Training state of a [`RealNvp`] as a DPI [`Posterior`]: sampling with the tape on,
//! back-propagation of `∂L/∂x` and `∂L/∂log q` as the seed `Σ x·stop_grad(g_x) −
//! Σ log|det|·stop_grad(g_q)` (since `log q = log N(z) − log|det|` and `z` does not depend on
//! the weights), global-norm clipping `g ← g·c / max(‖g‖ + 10⁻⁶, c)`, and dfdx's Adam kernel
//! on moments we own (so they can be checkpointed). Checkpoints are safetensors.
//!
//! A state that cannot be written or read is a [`ModelError::TrainState`] (the bytes of
//! [`Posterior::save_state`] have no path), or a [`ModelError::Checkpoint`] with the path when
//! it comes from [`RealNvp::save_file`] or [`RealNvp::load_file`]; a dfdx buffer error is a
//! [`ModelError::Buffer`]. Both reach the core's traits as [`Error::Model`].

use std::collections::HashMap;
use std::path::Path;

use dfdx::prelude::*;
use rand::RngCore;
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use scoreprior_core::dpi::{Batch, Posterior};
use scoreprior_core::{Error, Result};

use super::{Act, Layer, Param, PerSample, RealNvp, RealNvpConfig};
use crate::error::Source;
use crate::ModelError;

/// Adam hyper-parameters other than the learning rate (the reference: 0.9, 0.999, 1e-8).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamSettings {
    /// `β1`.
    pub beta1: f64,
    /// `β2`.
    pub beta2: f64,
    /// `ε`.
    pub eps: f64,
}

impl Default for AdamSettings {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// Gradient accumulators, Adam moments and the pending training pass.
pub(crate) struct TrainState {
    acc: Gradients<f64, Cpu>,
    m1: Gradients<f64, Cpu>,
    m2: Gradients<f64, Cpu>,
    pub t: i32,
    pub settings: AdamSettings,
    pending: Option<(Act, PerSample)>,
}

/// A dfdx buffer error ([`ModelError::Buffer`]) as a core error.
fn dev_err(e: CpuError) -> Error {
    ModelError::Buffer(e).into()
}

/// A RealNVP state (the bytes of [`Posterior::save_state`]) that cannot be written or read,
/// because `why` (and `source`, the codec's error, if any).
fn state_err(why: impl Into<String>, source: Option<Source>) -> ModelError {
    ModelError::TrainState { why: why.into(), source }
}

/// A JSON codec error in the state's metadata entry `what`.
fn json_err(what: &str) -> impl Fn(serde_json::Error) -> ModelError + '_ {
    move |e| state_err(format!("RealNVP checkpoint entry '{what}' (JSON)"), Some(e.into()))
}

/// A safetensors codec error.
fn st_err(e: safetensors::SafeTensorError) -> ModelError {
    state_err("safetensors", Some(e.into()))
}

/// `e` with the file `path` it came from: a state error becomes [`ModelError::Checkpoint`].
fn at_path(e: ModelError, path: &Path) -> ModelError {
    match e {
        ModelError::TrainState { why, source } => ModelError::Checkpoint { path: path.to_path_buf(), why, source },
        other => other,
    }
}

impl TrainState {
    pub fn new(params: &[Param]) -> Self {
        let mut acc = Gradients::leaky();
        for p in params {
            acc.try_alloc_for(p).expect("CPU allocation");
        }
        Self {
            acc,
            m1: Gradients::leaky(),
            m2: Gradients::leaky(),
            t: 0,
            settings: AdamSettings::default(),
            pending: None,
        }
    }
}

fn to_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<f64> {
    b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

impl RealNvp {
    /// Sets Adam's `β1, β2, ε`.
    pub fn set_adam(&mut self, settings: AdamSettings) {
        self.opt.settings = settings;
    }

    /// Forgets the optimiser's state (Adam's moments and step count), keeping its settings and
    /// the parameters. Why: a flow trained under one objective and continued under another
    /// (a costlier prior started from a cheaper one's posterior) would otherwise scale its first
    /// steps by moments of the old objective's gradients, whose size can differ by orders.
    ///
    /// ```
    /// use scoreprior_models::realnvp::{RealNvp, RealNvpConfig};
    /// let mut flow = RealNvp::new(RealNvpConfig::new(4).with_flows(1).with_hidden(8)).unwrap();
    /// flow.reset_optimizer();
    /// assert_eq!(flow.steps_taken(), 0);
    /// ```
    pub fn reset_optimizer(&mut self) {
        let settings = self.opt.settings;
        self.opt = TrainState::new(&self.params);
        self.opt.settings = settings;
    }

    /// Optimiser steps taken so far.
    pub fn steps_taken(&self) -> usize {
        self.opt.t as usize
    }

    /// Global norm of the accumulated gradient.
    pub fn grad_norm(&mut self) -> Result<f64> {
        let mut sq = 0.0;
        for p in &self.params {
            let g = self.opt.acc.get_or_alloc_mut(p).map_err(dev_err)?;
            sq += g.iter().map(|v| v * v).sum::<f64>();
        }
        Ok(sq.sqrt())
    }

    /// The accumulated gradient of every parameter, flattened in parameter order (tests).
    pub fn accumulated_gradient(&mut self) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for p in &self.params {
            out.extend_from_slice(self.opt.acc.get_or_alloc_mut(p).map_err(dev_err)?);
        }
        Ok(out)
    }

    /// All parameters flattened in order (tests and diagnostics).
    pub fn parameters(&self) -> Vec<f64> {
        self.params.iter().flat_map(|p| p.as_vec()).collect()
    }

    /// Overwrites all parameters from a flat vector in [`parameters`](Self::parameters) order.
    pub fn set_parameters(&mut self, v: &[f64]) -> Result<()> {
        if v.len() != self.num_params() {
            return Err(Error::shape("RealNVP parameters", self.num_params(), v.len()));
        }
        let mut o = 0;
        for p in &mut self.params {
            let n = p.shape().0;
            p.copy_from(&v[o..o + n]);
            o += n;
        }
        Ok(())
    }

    /// Training-mode pass on given latents (row-major `(n, D)`), keeping the tape for
    /// [`Posterior::backward`]; returns `x` and `log|det ∂G/∂z|`.
    pub fn forward_for_training(&mut self, z: &[f64], n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
        if n == 0 || z.len() != n * self.cfg.dim {
            return Err(Error::shape("z", n * self.cfg.dim, z.len()));
        }
        let (x, ld, stats) = self.generate(self.to_feature_major(z, n), true);
        self.update_running_stats(stats);
        let xs = self.to_row_major(&x);
        let lds = ld.as_vec();
        if let Some(index) = xs.iter().chain(&lds).position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "RealNVP sample (values, then log-determinants)", index });
        }
        self.opt.pending = Some((x, ld));
        Ok((xs, lds))
    }
}

impl Posterior for RealNvp {
    fn dim(&self) -> usize {
        self.cfg.dim
    }

    fn sample_for_training(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
        let (z, lpz) = self.draw_latents(n, rng);
        let (x, ld) = self.forward_for_training(&z, n)?;
        let log_q = lpz.iter().zip(&ld).map(|(a, b)| a - b).collect();
        Ok(Batch { n, dim: self.cfg.dim, x, log_q })
    }

    fn backward(&mut self, grad_x: &[f64], grad_log_q: &[f64]) -> Result<()> {
        let (x, ld) = self.opt.pending.take().ok_or_else(|| {
            Error::inconsistent("backward", "called without a training batch (call sample_for_training first)")
        })?;
        let (d, n) = *x.shape();
        if grad_x.len() != n * d || grad_log_q.len() != n {
            return Err(Error::shape("DPI gradients", format!("({n}, {d}) and ({n})"), grad_x.len()));
        }
        let gx = self.to_feature_major(grad_x, n).retaped::<NoneTape>();
        // ∂ log q / ∂θ = −∂ log|det| / ∂θ.
        let gq = self.dev.tensor_from_vec(grad_log_q.iter().map(|v| -v).collect::<Vec<_>>(), (n,));
        let seed = (x * gx).sum::<(), _>() + (ld * gq).sum::<(), _>();
        let grads = seed.backward();
        for p in &self.params {
            let g = super::ops::phys(&grads.get(p));
            let acc = self.opt.acc.get_or_alloc_mut(p).map_err(dev_err)?;
            for (a, v) in acc.iter_mut().zip(&g) {
                *a += v;
            }
        }
        Ok(())
    }

    fn apply_update(&mut self, lr: f64, max_grad_norm: Option<f64>) -> Result<f64> {
        let norm = self.grad_norm()?;
        if !norm.is_finite() {
            return Err(Error::NonFiniteData {
                what: "RealNVP gradient norm at Adam step",
                index: self.opt.t as usize,
            });
        }
        let scale = match max_grad_norm {
            Some(c) if norm > c => c / (norm + 1e-6),
            _ => 1.0,
        };
        self.opt.t += 1;
        let s = self.opt.settings;
        let cfg = AdamConfig { lr, betas: [s.beta1, s.beta2], eps: s.eps, weight_decay: None };
        let t = self.opt.t;
        let Self { params, opt, .. } = self;
        for p in params.iter_mut() {
            let g = opt.acc.get_or_alloc_mut(p).map_err(dev_err)?;
            if scale != 1.0 {
                g.iter_mut().for_each(|v| *v *= scale);
            }
            let g: &_ = g;
            let m = opt.m1.get_or_alloc_mut(p).map_err(dev_err)?;
            let v = opt.m2.get_or_alloc_mut(p).map_err(dev_err)?;
            cfg.try_update(t, p, m, v, g).map_err(dev_err)?;
        }
        for p in params.iter() {
            opt.acc.get_or_alloc_mut(p).map_err(dev_err)?.iter_mut().for_each(|v| *v = 0.0);
        }
        Ok(norm)
    }

    /// Through the inverse pass (BatchNorm with running statistics, so exact for the
    /// training-mode generator only without BatchNorm).
    fn grad_log_q(&mut self, x: &[f64], n: usize) -> Result<Vec<f64>> {
        Ok(self.log_prob_and_grad(x, n)?.1)
    }

    fn sample(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
        let (z, lpz) = self.draw_latents(n, rng);
        let (x, ld) = self.forward(&z, n)?;
        let log_q = lpz.iter().zip(&ld).map(|(a, b)| a - b).collect();
        Ok(Batch { n, dim: self.cfg.dim, x, log_q })
    }

    fn save_state(&self) -> Result<Vec<u8>> {
        self.encode_state().map_err(Error::from)
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        self.decode_state(bytes).map_err(Error::from)
    }
}

impl RealNvp {
    /// [`Posterior::save_state`] with the model crate's error.
    fn encode_state(&self) -> std::result::Result<Vec<u8>, ModelError> {
        let mut tensors: Vec<(String, Vec<f64>)> = Vec::new();
        for (p, name) in self.params.iter().zip(&self.names) {
            tensors.push((format!("param/{name}"), p.as_vec()));
            if self.opt.t > 0 {
                tensors.push((format!("adam_m1/{name}"), self.opt.m1.get(p).as_vec()));
                tensors.push((format!("adam_m2/{name}"), self.opt.m2.get(p).as_vec()));
            }
        }
        for (li, layer) in self.layers.iter().enumerate() {
            if let Layer::Coupling(super::Coupling { bn: Some(bns), .. }) = layer {
                for (k, bn) in bns.iter().enumerate() {
                    tensors.push((format!("bn/{li}/{k}/mean"), bn.running_mean.clone()));
                    tensors.push((format!("bn/{li}/{k}/var"), bn.running_var.clone()));
                }
            }
        }
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
            tensors.into_iter().map(|(n, v)| (n, vec![v.len()], to_bytes(&v))).collect();
        let views = bytes
            .iter()
            .map(|(n, s, b)| Ok((n.clone(), TensorView::new(StDtype::F64, s.clone(), b).map_err(st_err)?)))
            .collect::<std::result::Result<Vec<_>, ModelError>>()?;
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), "scoreprior-realnvp-1".to_string());
        meta.insert("config".to_string(), serde_json::to_string(&self.cfg).map_err(json_err("config"))?);
        meta.insert("adam_t".to_string(), self.opt.t.to_string());
        meta.insert("adam".to_string(), serde_json::to_string(&self.opt.settings).map_err(json_err("adam"))?);
        meta.insert(
            "permutations".to_string(),
            serde_json::to_string(&self.permutations()).map_err(json_err("permutations"))?,
        );
        safetensors::serialize(views, &Some(meta)).map_err(st_err)
    }

    /// [`Posterior::load_state`] with the model crate's error.
    fn decode_state(&mut self, bytes: &[u8]) -> std::result::Result<(), ModelError> {
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
        let meta = header.metadata().clone().ok_or_else(|| state_err("RealNVP checkpoint without metadata", None))?;
        let get = |k: &str| meta.get(k).ok_or_else(|| state_err(format!("RealNVP checkpoint lacks '{k}'"), None));
        let cfg: RealNvpConfig = serde_json::from_str(get("config")?).map_err(json_err("config"))?;
        if cfg != self.cfg {
            return Err(state_err(format!("checkpoint flow {cfg:?} differs from this flow {:?}", self.cfg), None));
        }
        let perms: Vec<Vec<usize>> = serde_json::from_str(get("permutations")?).map_err(json_err("permutations"))?;
        if perms != self.permutations() {
            return Err(state_err("checkpoint permutations differ from this flow's", None));
        }
        let t: i32 =
            get("adam_t")?.parse().map_err(|e: std::num::ParseIntError| state_err("bad adam_t", Some(e.into())))?;
        self.opt.settings = serde_json::from_str(get("adam")?).map_err(json_err("adam"))?;
        let st = SafeTensors::deserialize(bytes).map_err(st_err)?;
        let read = |name: &str, len: usize| -> std::result::Result<Vec<f64>, ModelError> {
            let v = st.tensor(name).map_err(st_err)?;
            if v.dtype() != StDtype::F64 || v.data().len() != 8 * len {
                return Err(state_err(format!("checkpoint tensor {name}: wrong dtype or length"), None));
            }
            Ok(from_bytes(v.data()))
        };
        let Self { params, names, opt, layers, .. } = self;
        for (p, name) in params.iter_mut().zip(names.iter()) {
            let n = p.shape().0;
            p.copy_from(&read(&format!("param/{name}"), n)?);
            if t > 0 {
                let m = read(&format!("adam_m1/{name}"), n)?;
                opt.m1.get_or_alloc_mut(p).map_err(ModelError::Buffer)?.copy_from_slice(&m);
                let v = read(&format!("adam_m2/{name}"), n)?;
                opt.m2.get_or_alloc_mut(p).map_err(ModelError::Buffer)?.copy_from_slice(&v);
            }
            opt.acc.get_or_alloc_mut(p).map_err(ModelError::Buffer)?.iter_mut().for_each(|v| *v = 0.0);
        }
        for (li, layer) in layers.iter_mut().enumerate() {
            if let Layer::Coupling(super::Coupling { bn: Some(bns), .. }) = layer {
                for (k, bn) in bns.iter_mut().enumerate() {
                    let h = bn.running_mean.len();
                    bn.running_mean = read(&format!("bn/{li}/{k}/mean"), h)?;
                    bn.running_var = read(&format!("bn/{li}/{k}/var"), h)?;
                }
            }
        }
        opt.t = t;
        opt.pending = None;
        Ok(())
    }
}

impl RealNvp {
    /// One maximum-likelihood step on data (the flow as a density model, e.g. a RealNVP
    /// prior as in the supplement's Appendix C): minimises `−(1/n) Σ log q(x_i)` through the
    /// inverse pass, with clipping and Adam as in DPI. Returns the mean negative
    /// log-likelihood before the step.
    pub fn density_step(&mut self, x: &[f64], n: usize, lr: f64, max_grad_norm: Option<f64>) -> Result<f64> {
        if n == 0 || x.len() != n * self.cfg.dim {
            return Err(Error::shape("data batch", n * self.cfg.dim, x.len()));
        }
        if let Some(index) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "data batch", index });
        }
        let xt = self.to_feature_major(x, n);
        let (z, ld) = self.invert(xt);
        let d = self.cfg.dim as f64;
        let zsq = z.square().sum::<(usize,), Axis<0>>();
        let lp = ld - zsq * 0.5 - 0.5 * d * (2.0 * std::f64::consts::PI).ln();
        let nll = -lp.sum::<(), _>() * (1.0 / n as f64);
        let value = nll.array();
        let grads = nll.backward();
        for p in &self.params {
            let g = super::ops::phys(&grads.get(p));
            let acc = self.opt.acc.get_or_alloc_mut(p).map_err(dev_err)?;
            for (a, v) in acc.iter_mut().zip(&g) {
                *a += v;
            }
        }
        Posterior::apply_update(self, lr, max_grad_norm)?;
        Ok(value)
    }
}

/// A trained [`RealNvp`] as a prior `log q(x)` with its exact gradient (in DPI through
/// [`PriorEnergy`](scoreprior_core::dpi::PriorEnergy)).
#[derive(Debug)]
pub struct FlowPrior {
    flow: RealNvp,
}

impl FlowPrior {
    /// Wraps a flow trained as a density model (see [`RealNvp::density_step`]).
    pub fn new(flow: RealNvp) -> Self {
        Self { flow }
    }
    /// The flow.
    pub fn flow(&self) -> &RealNvp {
        &self.flow
    }
}

/// The flow's exact density as a [`Prior`](scoreprior_core::prior::Prior).
impl scoreprior_core::prior::Prior for FlowPrior {
    fn dim(&self) -> usize {
        self.flow.dim()
    }
    fn log_prob(&self, x: &[f64]) -> Result<scoreprior_core::prior::LogProb> {
        let r = self.grad_log_prob(x)?;
        Ok(scoreprior_core::prior::LogProb { log_prob: r.log_prob, stats: r.stats })
    }
    fn grad_log_prob(&self, x: &[f64]) -> Result<scoreprior_core::prior::LogProbGrad> {
        let n = scoreprior_core::score::check_batch(x, self.flow.dim(), "x")?;
        let (log_prob, grad) = self.flow.log_prob_and_grad(x, n)?;
        Ok(scoreprior_core::prior::LogProbGrad { log_prob, grad, stats: Default::default() })
    }
}

impl RealNvp {
    /// Rebuilds a flow from [`Posterior::save_state`] bytes (configuration from the metadata).
    ///
    /// # Errors
    /// Bytes that are not a RealNVP state: [`Error::Model`] holding a
    /// [`ModelError::TrainState`].
    pub fn from_state(bytes: &[u8]) -> Result<Self> {
        Self::decode_new(bytes).map_err(Error::from)
    }

    /// [`from_state`](Self::from_state) with the model crate's error.
    fn decode_new(bytes: &[u8]) -> std::result::Result<Self, ModelError> {
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
        let cfg = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("config"))
            .ok_or_else(|| state_err("RealNVP checkpoint lacks its configuration", None))?;
        let cfg: RealNvpConfig = serde_json::from_str(cfg).map_err(json_err("config"))?;
        let mut flow = RealNvp::new(cfg)?;
        flow.decode_state(bytes)?;
        Ok(flow)
    }

    /// Writes the flow (parameters, optimiser state, permutations) as safetensors, atomically.
    ///
    /// # Errors
    /// A state that cannot be encoded: [`Error::Model`] holding a [`ModelError::Checkpoint`]
    /// with `path`; the file system's errors as [`Error::File`].
    pub fn save_file(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.encode_state().map_err(|e| at_path(e, path))?;
        scoreprior_core::io::atomic_write(path, &bytes)?;
        Ok(())
    }

    /// Reads a flow written by [`save_file`](Self::save_file).
    ///
    /// # Errors
    /// A file that cannot be read ([`Error::File`]), or that is not a RealNVP state
    /// ([`Error::Model`] holding a [`ModelError::Checkpoint`] with `path`).
    pub fn load_file(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        // A regular file within the memory limit, read with a bounded reader.
        let bytes = scoreprior_core::io::read_input(p)?;
        Self::decode_new(&bytes).map_err(|e| at_path(e, p).into())
    }
}
