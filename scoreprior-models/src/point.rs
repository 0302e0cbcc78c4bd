//! A point mass as a DPI [`Posterior`]: every sample is the same learnable image `u`, with
//! `log q = 0`. Running the DPI loop on it minimises `E(u) = w_d·data(u) + w_p·prior(u)`:
//! the MAP estimate under the same energies, by dfdx's Adam. DPI uses it as a warm start for
//! problems whose data term begins orders of magnitude above its optimum (closure quantities
//! at high S/N), where a flow started from a flat or Gaussian image needs thousands of steps.

use std::collections::HashMap;

use dfdx::prelude::*;
use rand::RngCore;
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};

use scoreprior_core::dpi::{Batch, Posterior};
use scoreprior_core::{Error, Result};

type Param = Tensor<(usize,), f64, Cpu>;

/// A learnable point `u` with Adam state (see the module documentation).
///
/// ```
/// use scoreprior_core::dpi::Posterior;
/// use scoreprior_models::point::PointPosterior;
/// let mut p = PointPosterior::new(vec![1.0, 2.0]).unwrap();
/// let mut rng = rand::rngs::mock::StepRng::new(0, 1);
/// let b = p.sample_for_training(3, &mut rng).unwrap();
/// assert_eq!(b.x, vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]);
/// // Minimise ½‖u‖²: the gradient is u itself.
/// for _ in 0..2000 {
///     let b = p.sample_for_training(1, &mut rng).unwrap();
///     p.backward(&b.x, &[0.0]).unwrap();
///     p.apply_update(1e-2, None).unwrap();
/// }
/// assert!(p.point().iter().all(|v| v.abs() < 1e-2));
/// ```
pub struct PointPosterior {
    dev: Cpu,
    u: Param,
    acc: Gradients<f64, Cpu>,
    m1: Gradients<f64, Cpu>,
    m2: Gradients<f64, Cpu>,
    t: i32,
}

impl std::fmt::Debug for PointPosterior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointPosterior").field("dim", &self.u.shape().0).field("adam_steps", &self.t).finish()
    }
}

fn dev_err(e: CpuError) -> Error {
    Error::invalid(format!("dfdx CPU error: {e:?}"))
}

fn st_err(e: safetensors::SafeTensorError) -> Error {
    Error::Io(format!("point posterior checkpoint: {e}"))
}

impl PointPosterior {
    /// Starts at `start` (finite values).
    pub fn new(start: Vec<f64>) -> Result<Self> {
        if start.is_empty() {
            return Err(Error::invalid("point posterior: empty start"));
        }
        if let Some(i) = start.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("point posterior: start[{i}] = {} is not finite", start[i])));
        }
        let dev = Cpu::default();
        let n = start.len();
        let u = dev.tensor_from_vec(start, (n,));
        let mut acc = Gradients::leaky();
        acc.try_alloc_for(&u).map_err(dev_err)?;
        Ok(Self { dev, u, acc, m1: Gradients::leaky(), m2: Gradients::leaky(), t: 0 })
    }
    /// The current point.
    pub fn point(&self) -> Vec<f64> {
        self.u.as_vec()
    }
}

impl Posterior for PointPosterior {
    fn dim(&self) -> usize {
        self.u.shape().0
    }
    fn sample_for_training(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
        self.sample(n, rng)
    }
    fn backward(&mut self, grad_x: &[f64], grad_log_q: &[f64]) -> Result<()> {
        let d = self.dim();
        if grad_x.len() != grad_log_q.len() * d {
            return Err(Error::shape("point posterior gradient", grad_log_q.len() * d, grad_x.len()));
        }
        let acc = self.acc.get_or_alloc_mut(&self.u).map_err(dev_err)?;
        for row in grad_x.chunks(d) {
            acc.iter_mut().zip(row).for_each(|(a, g)| *a += g);
        }
        Ok(())
    }
    fn apply_update(&mut self, lr: f64, max_grad_norm: Option<f64>) -> Result<f64> {
        let g = self.acc.get_or_alloc_mut(&self.u).map_err(dev_err)?;
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        if !norm.is_finite() {
            return Err(Error::NonFiniteData {
                what: "point posterior gradient norm at Adam step",
                index: self.t as usize,
            });
        }
        if let Some(c) = max_grad_norm.filter(|&c| norm > c) {
            let s = c / (norm + 1e-6);
            g.iter_mut().for_each(|v| *v *= s);
        }
        self.t += 1;
        let cfg = AdamConfig { lr, betas: [0.9, 0.999], eps: 1e-8, weight_decay: None };
        let Self { u, acc, m1, m2, t, .. } = self;
        let g: &_ = acc.get_or_alloc_mut(u).map_err(dev_err)?;
        let m = m1.get_or_alloc_mut(u).map_err(dev_err)?;
        let v = m2.get_or_alloc_mut(u).map_err(dev_err)?;
        cfg.try_update(*t, u, m, v, g).map_err(dev_err)?;
        acc.get_or_alloc_mut(u).map_err(dev_err)?.iter_mut().for_each(|v| *v = 0.0);
        Ok(norm)
    }
    fn sample(&mut self, n: usize, _rng: &mut dyn RngCore) -> Result<Batch> {
        let u = self.u.as_vec();
        let d = u.len();
        Ok(Batch { n, dim: d, x: u.iter().cycle().take(n * d).cloned().collect(), log_q: vec![0.0; n] })
    }
    /// A point mass has no density; its "score" is taken as 0, so score-function terms vanish.
    fn grad_log_q(&mut self, x: &[f64], _n: usize) -> Result<Vec<f64>> {
        Ok(vec![0.0; x.len()])
    }
    fn save_state(&self) -> Result<Vec<u8>> {
        let bytes = |v: Vec<f64>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut tensors = vec![("point".to_string(), bytes(self.u.as_vec()))];
        if self.t > 0 {
            tensors.push(("adam_m1".into(), bytes(self.m1.get(&self.u).as_vec())));
            tensors.push(("adam_m2".into(), bytes(self.m2.get(&self.u).as_vec())));
        }
        let d = self.dim();
        let views = tensors
            .iter()
            .map(|(n, b)| Ok((n.clone(), TensorView::new(StDtype::F64, vec![d], b).map_err(st_err)?)))
            .collect::<Result<Vec<_>>>()?;
        let meta = HashMap::from([
            ("format".to_string(), "scoreprior-point-1".to_string()),
            ("adam_t".to_string(), self.t.to_string()),
        ]);
        safetensors::serialize(views, &Some(meta)).map_err(st_err)
    }
    fn load_state(&mut self, bytes: &[u8]) -> Result<()> {
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(st_err)?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some("scoreprior-point-1") {
            return Err(Error::Io("not a point-posterior checkpoint (format scoreprior-point-1)".into()));
        }
        let t: i32 = meta.get("adam_t").and_then(|s| s.parse().ok()).ok_or_else(|| Error::Io("bad adam_t".into()))?;
        let st = SafeTensors::deserialize(bytes).map_err(st_err)?;
        let d = self.dim();
        let read = |name: &str| -> Result<Vec<f64>> {
            let v = st.tensor(name).map_err(st_err)?;
            if v.dtype() != StDtype::F64 || v.shape() != [d] {
                return Err(Error::Io(format!("point posterior checkpoint: {name} is not f64 of length {d}")));
            }
            Ok(v.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
        };
        let u = read("point")?;
        let mut fresh = Self::new(u)?;
        if t > 0 {
            fresh.m1.get_or_alloc_mut(&fresh.u).map_err(dev_err)?.copy_from_slice(&read("adam_m1")?);
            fresh.m2.get_or_alloc_mut(&fresh.u).map_err(dev_err)?.copy_from_slice(&read("adam_m2")?);
        }
        fresh.t = t;
        let _ = &self.dev;
        *self = fresh;
        Ok(())
    }
}
