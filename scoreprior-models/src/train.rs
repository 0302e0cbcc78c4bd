//! Denoising score matching under the VP SDE, as the reference's continuous loss:
//! `t ~ U(ε, 1)`, `x_t = α(t) x₀ + σ(t) z`, loss `= mean_batch ½‖ε̂(x_t, t) − z‖²`
//! (`= ½‖σ s + z‖²` with `s = −ε̂/σ`), optimised by dfdx's Adam (the RealNVP flows' too)
//! with linear warm-up and global gradient-norm clipping; an exponential moving average of
//! the weights is kept for inference. One ChaCha8 RNG drives batches, times, noise and flips, so a run resumed
//! from a checkpoint continues exactly as the uninterrupted run.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use scoreprior_core::sde::{Sde, VpSde};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Meta, Tensors, TrainMeta};
use crate::data::{Dataset, Preprocess};
use crate::ncsnpp::{AnyNcsnpp, NcsnppNet, Params};
use crate::ops::Elem;
use crate::ModelError;

/// Training hyper-parameters (reference values in brackets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Images per step \[128\].
    pub batch_size: usize,
    /// Peak learning rate [2e-4].
    pub lr: f64,
    /// Linear warm-up steps \[5000\].
    pub warmup: u64,
    /// Global gradient-norm clip [1.0].
    pub grad_clip: f64,
    /// EMA rate [0.9999].
    pub ema_rate: f64,
    /// Adam β₁, β₂, ε [0.9, 0.999, 1e-8].
    pub adam: (f64, f64, f64),
    /// Smallest training time [1e-5].
    pub t_eps: f64,
    /// VP SDE β_min, β_max [0.1, 20].
    pub beta: (f64, f64),
    /// Random horizontal flips.
    pub random_flip: bool,
    /// RNG seed.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch_size: 128,
            lr: 2e-4,
            warmup: 5000,
            grad_clip: 1.0,
            ema_rate: 0.9999,
            adam: (0.9, 0.999, 1e-8),
            t_eps: 1e-5,
            beta: (0.1, 20.0),
            random_flip: true,
            seed: 42,
        }
    }
}

impl TrainConfig {
    /// Checks every field, naming the first bad one and its value.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.batch_size == 0 {
            return Err(ModelError::count_out_of_range("batch_size", 0, "at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ModelError::out_of_range("lr", self.lr, "positive and finite"));
        }
        if !(0.0..1.0).contains(&self.ema_rate) {
            return Err(ModelError::out_of_range("ema_rate", self.ema_rate, "in [0, 1)"));
        }
        // `inf` disables clipping; NaN would too, silently (no comparison with NaN holds).
        if self.grad_clip.is_nan() || self.grad_clip <= 0.0 {
            return Err(ModelError::out_of_range("grad_clip", self.grad_clip, "positive (inf: no clipping)"));
        }
        if !(self.t_eps > 0.0 && self.t_eps < 1.0) {
            return Err(ModelError::out_of_range("t_eps", self.t_eps, "in (0, 1)"));
        }
        Ok(())
    }
}

/// Statistics of one optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Step number after the update (1-based).
    pub step: u64,
    /// DSM loss of the batch before the update.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// A training run: network, weights, EMA, Adam moments, step and RNG.
pub struct Trainer {
    /// The typed network every training pass goes through.
    net: AnyNcsnpp,
    cfg: TrainConfig,
    preprocess: Preprocess,
    sde: VpSde,
    dev: Cpu,
    params: Params<f32>,
    values: Vec<Vec<f32>>,
    ema: Vec<Vec<f32>>,
    /// Adam's first and second moments, one buffer per tensor of `params` (dfdx's Adam, as the
    /// RealNVP flows use it).
    m: Gradients<f32, Cpu>,
    v: Gradients<f32, Cpu>,
    step: u64,
    rng: ChaCha8Rng,
}

impl Trainer {
    /// A fresh run with weights initialised from the seed.
    pub fn new(net: NcsnppNet, cfg: TrainConfig, preprocess: Preprocess) -> Result<Self, ModelError> {
        cfg.validate()?;
        check_training_memory(&net, cfg.batch_size)?;
        let sde = VpSde::new(cfg.beta.0, cfg.beta.1)?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let values = net.init_params(&mut rng);
        let net = AnyNcsnpp::new(net)?;
        let dev = Cpu::default();
        let params = net.params(&dev, &values)?;
        let (m, v) = adam_moments(&params, None)?;
        Ok(Self { ema: values.clone(), m, v, values, params, dev, net, cfg, preprocess, sde, step: 0, rng })
    }

    /// Resumes from a checkpoint written by [`Trainer::checkpoint`].
    ///
    /// Its memory is checked like [`Trainer::new`]'s (see [`check_training_memory`]).
    pub fn resume(net: NcsnppNet, meta: &Meta, t: Tensors) -> Result<Self, ModelError> {
        let bad = |why: &str, source: Option<crate::error::Source>| ModelError::TrainState { why: why.into(), source };
        let tm = meta.train.as_ref().ok_or_else(|| bad("none stored (an EMA-only checkpoint)", None))?;
        if t.params.is_empty() || t.adam_m.is_empty() || t.adam_v.is_empty() {
            return Err(bad("no weights or optimiser state", None));
        }
        let cfg: TrainConfig = serde_json::from_value(tm.train_config.clone())
            .map_err(|e| bad("bad training configuration", Some(e.into())))?;
        check_training_memory(&net, cfg.batch_size)?;
        let mut seed = [0u8; 32];
        let hex = tm.rng_seed.as_bytes();
        if hex.len() != 64 {
            return Err(bad("bad RNG seed (not 64 hexadecimal digits)", None));
        }
        for (i, s) in seed.iter_mut().enumerate() {
            *s = u8::from_str_radix(std::str::from_utf8(&hex[2 * i..2 * i + 2]).unwrap_or("zz"), 16)
                .map_err(|e| bad("bad RNG seed", Some(e.into())))?;
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(tm.rng_stream);
        rng.set_word_pos(tm.rng_word_pos.parse::<u128>().map_err(|e| bad("bad RNG position", Some(e.into())))?);
        let net = AnyNcsnpp::new(net)?;
        let dev = Cpu::default();
        let params = net.params(&dev, &t.params)?;
        let (m, v) = adam_moments(&params, Some(&t))?;
        Ok(Self {
            sde: VpSde::new(cfg.beta.0, cfg.beta.1)?,
            net,
            cfg,
            preprocess: meta.preprocess.clone(),
            dev,
            params,
            values: t.params,
            ema: t.ema,
            m,
            v,
            step: tm.step,
            rng,
        })
    }

    /// The network.
    pub fn net(&self) -> &NcsnppNet {
        self.net.net()
    }
    /// Steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }
    /// Current weights.
    pub fn weights(&self) -> &[Vec<f32>] {
        &self.values
    }
    /// EMA weights.
    pub fn ema(&self) -> &[Vec<f32>] {
        &self.ema
    }
    /// Training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// The metadata and tensors of a resumable checkpoint (`full`) or of an
    /// inference-only one (EMA weights only).
    pub fn checkpoint(&self, full: bool) -> (Meta, Tensors) {
        let (c, h, w) = self.net.image_shape();
        let train = full.then(|| TrainMeta {
            step: self.step,
            rng_seed: self.rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
            train_config: serde_json::to_value(&self.cfg).expect("config serialises"),
        });
        let meta = Meta {
            config: self.net.net().config().clone(),
            image: (c, h, w),
            sde: self.cfg.beta,
            preprocess: self.preprocess.clone(),
            train,
        };
        let t = if full {
            Tensors {
                ema: self.ema.clone(),
                params: self.values.clone(),
                adam_m: self.params.tensors.iter().map(|t| self.m.get(t).as_vec()).collect(),
                adam_v: self.params.tensors.iter().map(|t| self.v.get(t).as_vec()).collect(),
            }
        } else {
            Tensors { ema: self.ema.clone(), ..Default::default() }
        };
        (meta, t)
    }

    /// One optimiser step on a random batch of `data`.
    pub fn step(&mut self, data: &Dataset) -> Result<StepStats, ModelError> {
        let (c, h, w) = self.net.image_shape();
        check_data_shape(data, (c, h, w))?;
        if data.is_empty() {
            return Err(ModelError::count_out_of_range("the images of the data set", 0, "at least 1"));
        }
        let b = self.cfg.batch_size;
        let hw = h * w;
        // Flattened C-order images, one row per image.
        let mut xt = vec![0f32; b * hw * c];
        let mut z = vec![0f32; b * hw * c];
        let mut ts = vec![0f64; b];
        for i in 0..b {
            let img = data.image(self.rng.gen_range(0..data.len()));
            let flip = self.cfg.random_flip && self.rng.gen_bool(0.5);
            let t = self.cfg.t_eps + (1.0 - self.cfg.t_eps) * self.rng.gen::<f64>();
            ts[i] = t;
            let (a, s) = (self.sde.marginal_mean_coef(t), self.sde.marginal_std(t));
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let sx = if flip { w - 1 - x } else { x };
                        let zz: f64 = self.rng.sample(StandardNormal);
                        let r = (i * c + ch) * hw + y * w + x;
                        z[r] = zz as f32;
                        xt[r] = (a * img[(ch * h + y) * w + sx] as f64 + s * zz) as f32;
                    }
                }
            }
        }
        let x: Tensor<(usize, usize), f32, Cpu> = self.dev.tensor_from_vec(xt, (b, c * hw));
        let zt: Tensor<(usize, usize), f32, Cpu> = self.dev.tensor_from_vec(z, (b, c * hw));
        let x = x.retaped::<OwnedTape<f32, Cpu>>();
        let eps = self.net.forward_flat(&self.params, x, &ts, Some(&mut self.rng))?;
        let loss = (eps - zt).square().sum::<(), _>() * (0.5 / b as f32);
        let lv = loss.array() as f64;
        if !lv.is_finite() {
            return Err(ModelError::NonFiniteLoss { step: self.step + 1 });
        }
        let mut grads = loss.backward();
        let mut norm_sq = 0.0;
        for t in &self.params.tensors {
            let g = grads.get_or_alloc_mut(t).map_err(buffer_err)?;
            norm_sq += g.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>();
        }
        let norm = norm_sq.sqrt();
        let clip = if norm > self.cfg.grad_clip { self.cfg.grad_clip / norm } else { 1.0 };
        self.step += 1;
        let lr = self.cfg.lr * (self.step as f64 / self.cfg.warmup.max(1) as f64).min(1.0);
        let (beta1, beta2, eps) = self.cfg.adam;
        let adam = AdamConfig { lr, betas: [beta1, beta2], eps, weight_decay: None };
        let step = i32::try_from(self.step)
            .map_err(|_| ModelError::out_of_range("the Adam step", self.step as f64, "below 2³¹"))?;
        let er = self.cfg.ema_rate;
        let Self { params, values, ema, m, v, .. } = self;
        for (k, t) in params.tensors.iter_mut().enumerate() {
            let g = grads.get_or_alloc_mut(t).map_err(buffer_err)?;
            if clip != 1.0 {
                g.iter_mut().for_each(|x| *x = (*x as f64 * clip) as f32);
            }
            let g: &_ = g;
            let (mk, vk) = (m.get_or_alloc_mut(t).map_err(buffer_err)?, v.get_or_alloc_mut(t).map_err(buffer_err)?);
            adam.try_update(step, t, mk, vk, g).map_err(buffer_err)?;
            values[k] = t.as_vec();
            for (e, p) in ema[k].iter_mut().zip(&values[k]) {
                *e = (er * *e as f64 + (1.0 - er) * *p as f64) as f32;
            }
        }
        Ok(StepStats { step: self.step, loss: lv, grad_norm: norm, lr })
    }

    /// The DSM loss of the EMA weights on `n` fixed-seed batches of `data` (evaluation,
    /// no dropout, the training RNG untouched).
    pub fn eval_loss(&self, data: &Dataset, n_images: usize, seed: u64) -> Result<f64, ModelError> {
        dsm_loss::<f32>(self.net.net(), &self.ema, &self.sde, data, n_images, seed)
    }
}

fn buffer_err(e: CpuError) -> ModelError {
    ModelError::Buffer(e)
}

/// Errors unless the data set's images are `c × h × w`, the network's shape.
fn check_data_shape(data: &Dataset, (c, h, w): (usize, usize, usize)) -> Result<(), ModelError> {
    if (data.c, data.h, data.w) != (c, h, w) {
        return Err(ModelError::shape(
            "the data's images",
            format!("{c}x{h}x{w}"),
            format!("{}x{}x{}", data.c, data.h, data.w),
        ));
    }
    Ok(())
}

/// Adam's first and second moments, keyed by parameter tensor.
type Moments = (Gradients<f32, Cpu>, Gradients<f32, Cpu>);

/// Adam's moment buffers for every tensor of `params`: zero, or the moments of a checkpoint's
/// tensors (one vector per tensor, each of the tensor's length).
fn adam_moments(params: &Params<f32>, init: Option<&Tensors>) -> Result<Moments, ModelError> {
    let (mut m, mut v) = (Gradients::leaky(), Gradients::leaky());
    if let Some(Tensors { adam_m: m0, adam_v: v0, .. }) = init {
        if m0.len() != params.tensors.len() || v0.len() != params.tensors.len() {
            return Err(ModelError::shape(
                "optimiser state (first and second moments)",
                format!("{} tensors each", params.tensors.len()),
                format!("{} and {}", m0.len(), v0.len()),
            ));
        }
    }
    for (k, t) in params.tensors.iter().enumerate() {
        let (mk, vk) = (m.get_or_alloc_mut(t).map_err(buffer_err)?, v.get_or_alloc_mut(t).map_err(buffer_err)?);
        if let Some(Tensors { adam_m: m0, adam_v: v0, .. }) = init {
            if m0[k].len() != mk.len() || v0[k].len() != vk.len() {
                return Err(ModelError::shape(
                    format!("optimiser state of tensor {k} (first and second moments)"),
                    format!("{} values each", mk.len()),
                    format!("{} and {}", m0[k].len(), v0[k].len()),
                ));
            }
            mk.copy_from_slice(&m0[k]);
            vk.copy_from_slice(&v0[k]);
        }
    }
    Ok((m, v))
}

/// Mean DSM loss of `weights` on the first `n_images` of `data` with fixed-seed times and
/// noise (a reproducible evaluation metric).
pub fn dsm_loss<E: Elem>(
    net: &NcsnppNet,
    weights: &[Vec<f32>],
    sde: &VpSde,
    data: &Dataset,
    n_images: usize,
    seed: u64,
) -> Result<f64, ModelError>
where
    Cpu: Device<E>,
{
    let (c, h, w) = net.image_shape();
    check_data_shape(data, (c, h, w))?;
    let net = AnyNcsnpp::new(net.clone())?;
    let dev = Cpu::default();
    let p = net.params::<E>(&dev, weights)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = n_images.min(data.len());
    let hw = h * w;
    let mut total = 0.0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let b = chunk.len();
        let mut xt = vec![E::zero(); b * hw * c];
        let mut z = vec![E::zero(); b * hw * c];
        let mut ts = vec![0.0; b];
        for (i, &k) in chunk.iter().enumerate() {
            let img = data.image(k);
            let t = 1e-5 + (1.0 - 1e-5) * rng.gen::<f64>();
            ts[i] = t;
            let (a, s) = (sde.marginal_mean_coef(t), sde.marginal_std(t));
            for ch in 0..c {
                for pix in 0..hw {
                    let zz: f64 = rng.sample(StandardNormal);
                    let r = (i * c + ch) * hw + pix;
                    z[r] = E::of(zz);
                    xt[r] = E::of(a * img[ch * hw + pix] as f64 + s * zz);
                }
            }
        }
        let x: Tensor<(usize, usize), E, Cpu> = dev.tensor_from_vec(xt, (b, c * hw));
        let eps = net.forward_flat(&p, x, &ts, None)?.as_vec();
        total += eps.iter().zip(&z).map(|(a, b)| 0.5 * (a.f64() - b.f64()).powi(2)).sum::<f64>();
    }
    Ok(total / n as f64)
}

/// Refuses a network or batch whose training state would not fit the memory limit
/// ([`scoreprior_core::limits`]), before anything is allocated: six `f32` copies of the
/// parameters (weights, tensors, gradients, EMA, two Adam moments) and a lower bound on the
/// activations kept for the backward pass (about eight feature maps per residual block and
/// level, down and up).
///
/// ```
/// use scoreprior_models::ncsnpp::{NcsnppConfig, NcsnppNet};
/// use scoreprior_models::train::check_training_memory;
/// let net = NcsnppNet::new(NcsnppConfig::tiny(), 1, 8, 8).unwrap();
/// assert!(check_training_memory(&net, 4).is_ok());
/// assert!(check_training_memory(&net, usize::MAX / 2).is_err());
/// ```
pub fn check_training_memory(net: &NcsnppNet, batch_size: usize) -> Result<(), ModelError> {
    let p = net.num_params() as u128;
    scoreprior_core::limits::check_bytes(
        &format!("the training state of a network of {p} parameters (nf = {})", net.config().nf),
        p.saturating_mul(6 * 4),
    )?;
    let cfg = net.config();
    let (_, h, w) = net.image_shape();
    let mut per_image = 0u128;
    for (l, &mult) in cfg.ch_mult.iter().enumerate() {
        let side = (h >> l.min(63)) as u128 * (w >> l.min(63)) as u128;
        per_image = per_image.saturating_add(
            side.saturating_mul((cfg.nf as u128).saturating_mul(mult as u128))
                .saturating_mul((cfg.num_res_blocks as u128 + 1).saturating_mul(16)),
        );
    }
    scoreprior_core::limits::check_bytes(
        &format!("the activations of a batch of {batch_size} images (--batch-size {batch_size})"),
        per_image.saturating_mul(batch_size as u128).saturating_mul(4),
    )?;
    Ok(())
}
