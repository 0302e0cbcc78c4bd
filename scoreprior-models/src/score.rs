//! [`ScoreModel`] for a trained NCSN++: `s(x, t) = −ε̂(x, t)/σ(t)` under the VP SDE the
//! network was trained with. Batches (and, for VJPs, the `m·n` image–cotangent pairs,
//! stacked into one batch because a dfdx tape is consumed by its backward pass) are split
//! into chunks evaluated in parallel with rayon, since elementwise ops are single-threaded.
//! Scores and VJPs run in `f32` or `f64`; the second-order term is always a central
//! difference of `f64` VJPs (in `f32` the difference would be dominated by round-off).

use std::path::Path;

use dfdx::prelude::*;
use rayon::prelude::*;
use scoreprior_core::score::{check_batch, ScoreModel};
use scoreprior_core::sde::{Sde, VpSde};

use crate::checkpoint::{self, Meta};
use crate::ncsnpp::{NcsnppNet, Params};
use crate::ops::Elem;
use crate::ModelError;

/// Arithmetic used for scores and VJPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Single precision (fast; relative error ~1e-6).
    #[default]
    F32,
    /// Double precision.
    F64,
}

/// A trained NCSN++ as a batched score model on flattened `(n, C·H·W)` images in `[0, 1]`
/// (C order within an image).
pub struct NcsnppScore {
    net: NcsnppNet,
    p32: Params<f32>,
    p64: Params<f64>,
    sde: VpSde,
    precision: Precision,
    chunk: usize,
    meta: Option<Meta>,
}

impl std::fmt::Debug for NcsnppScore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NcsnppScore")
            .field("image", &self.net.image_shape())
            .field("precision", &self.precision)
            .field("sde", &self.sde)
            .finish()
    }
}

impl NcsnppScore {
    /// A score model from a network, its weights and the VP SDE it was trained for.
    pub fn new(net: NcsnppNet, weights: &[Vec<f32>], sde: VpSde) -> Result<Self, ModelError> {
        let dev = Cpu::default();
        let p32 = Params::from_values(&dev, net.specs(), weights)?;
        let p64 = Params::from_values(&dev, net.specs(), weights)?;
        Ok(Self { net, p32, p64, sde, precision: Precision::F32, chunk: 16, meta: None })
    }

    /// Loads the EMA weights of a checkpoint (the network is rebuilt from its metadata).
    ///
    /// ```no_run
    /// use scoreprior_core::score::ScoreModel;
    /// let m = scoreprior_models::score::NcsnppScore::load("assets/ncsnpp_fmnist16/ema.safetensors").unwrap();
    /// assert_eq!(m.dim(), 256);
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let (net, meta, t) = checkpoint::load_any(path)?;
        let sde = VpSde::new(meta.sde.0, meta.sde.1)?;
        let mut s = Self::new(net, &t.ema, sde)?;
        s.meta = Some(meta);
        Ok(s)
    }

    /// Sets the arithmetic of scores and VJPs.
    pub fn with_precision(mut self, p: Precision) -> Self {
        self.precision = p;
        self
    }
    /// Sets how many images one parallel task evaluates (default 16).
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }
    /// The network.
    pub fn net(&self) -> &NcsnppNet {
        &self.net
    }
    /// The VP SDE of the model.
    pub fn sde(&self) -> &VpSde {
        &self.sde
    }
    /// Checkpoint metadata, when loaded from one.
    pub fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }

    fn sigma(&self, t: f64) -> scoreprior_core::Result<f64> {
        if !(t > 0.0 && t <= self.sde.t_max()) || !t.is_finite() {
            return Err(scoreprior_core::Error::invalid(format!("time t = {t} outside (0, {}]", self.sde.t_max())));
        }
        Ok(self.sde.marginal_std(t))
    }

    /// `ε̂` for images given in C order, evaluated in chunks in parallel.
    fn eps<E: Elem>(&self, p: &Params<E>, x: &[f64], t: f64) -> Vec<f64>
    where
        Cpu: Device<E>,
    {
        let d = self.dim();
        let mut out = vec![0.0; x.len()];
        out.par_chunks_mut(self.chunk * d).zip(x.par_chunks(self.chunk * d)).for_each(|(o, xc)| {
            let b = xc.len() / d;
            let dev = Cpu::default();
            let rows = self.to_rows::<E>(xc);
            let xt: Tensor<(usize, usize), E, Cpu> =
                dev.tensor_from_vec(rows, (b * d / self.net.image_shape().0, self.net.image_shape().0));
            let e = self.net.forward_rows(p, xt, &vec![t; b], None).as_vec();
            self.from_rows(&e, o);
        });
        out
    }

    /// `(ε̂, cᵀ ∂ε̂/∂x)` for pairs of images and cotangents, chunked in parallel.
    fn eps_vjp<E: Elem>(&self, p: &Params<E>, x: &[f64], cot: &[f64], t: f64) -> (Vec<f64>, Vec<f64>)
    where
        Cpu: Device<E>,
    {
        let d = self.dim();
        let c = self.net.image_shape().0;
        let mut eps = vec![0.0; x.len()];
        let mut vjp = vec![0.0; x.len()];
        let cs = self.chunk * d;
        eps.par_chunks_mut(cs).zip(vjp.par_chunks_mut(cs)).zip(x.par_chunks(cs).zip(cot.par_chunks(cs))).for_each(
            |((eo, vo), (xc, cc))| {
                let b = xc.len() / d;
                let dev = Cpu::default();
                let x0: Tensor<(usize, usize), E, Cpu> = dev.tensor_from_vec(self.to_rows::<E>(xc), (b * d / c, c));
                let ct: Tensor<(usize, usize), E, Cpu> = dev.tensor_from_vec(self.to_rows::<E>(cc), (b * d / c, c));
                let e = self.net.forward_rows(p, x0.leaky_trace(), &vec![t; b], None);
                let ev = e.with_empty_tape().as_vec();
                let g = (e * ct).sum::<(), _>().backward();
                let gv = g.get(&x0).as_vec();
                self.from_rows(&ev, eo);
                self.from_rows(&gv, vo);
            },
        );
        (eps, vjp)
    }

    fn to_rows<E: Elem>(&self, x: &[f64]) -> Vec<E>
    where
        Cpu: Device<E>,
    {
        let (c, h, w) = self.net.image_shape();
        let (d, hw) = (c * h * w, h * w);
        let mut out = vec![E::zero(); x.len()];
        for (i, img) in x.chunks(d).enumerate() {
            for ch in 0..c {
                for p in 0..hw {
                    out[(i * hw + p) * c + ch] = E::of(img[ch * hw + p]);
                }
            }
        }
        out
    }

    fn from_rows<E: Elem>(&self, r: &[E], out: &mut [f64])
    where
        Cpu: Device<E>,
    {
        let (c, h, w) = self.net.image_shape();
        let (d, hw) = (c * h * w, h * w);
        for (i, img) in out.chunks_mut(d).enumerate() {
            for ch in 0..c {
                for p in 0..hw {
                    img[ch * hw + p] = r[(i * hw + p) * c + ch].f64();
                }
            }
        }
    }

    fn score_vjp_in(
        &self,
        prec: Precision,
        x: &[f64],
        t: f64,
        cotangents: &[f64],
        score_out: &mut [f64],
        vjp_out: &mut [f64],
    ) -> scoreprior_core::Result<()> {
        let d = self.dim();
        let n = check_batch(x, d, "x")?;
        let m = check_batch(cotangents, d * n, "cotangents")?;
        if score_out.len() != n * d || vjp_out.len() != m * n * d {
            return Err(scoreprior_core::Error::shape(
                "score_and_vjp outputs",
                format!("({n},{d}) and ({m},{n},{d})"),
                format!("{} and {}", score_out.len(), vjp_out.len()),
            ));
        }
        let s = self.sigma(t)?;
        let mut xs = Vec::with_capacity(m * n * d);
        for _ in 0..m {
            xs.extend_from_slice(x);
        }
        let (e, v) = match prec {
            Precision::F32 => self.eps_vjp(&self.p32, &xs, cotangents, t),
            Precision::F64 => self.eps_vjp(&self.p64, &xs, cotangents, t),
        };
        for (o, e) in score_out.iter_mut().zip(&e[..n * d]) {
            *o = -e / s;
        }
        for (o, g) in vjp_out.iter_mut().zip(&v) {
            *o = -g / s;
        }
        Ok(())
    }
}

impl ScoreModel for NcsnppScore {
    fn dim(&self) -> usize {
        let (c, h, w) = self.net.image_shape();
        c * h * w
    }

    fn score(&self, x: &[f64], t: f64, out: &mut [f64]) -> scoreprior_core::Result<()> {
        let n = check_batch(x, self.dim(), "x")?;
        if out.len() != x.len() {
            return Err(scoreprior_core::Error::shape("score output", format!("({n}, {})", self.dim()), out.len()));
        }
        let s = self.sigma(t)?;
        let e = match self.precision {
            Precision::F32 => self.eps(&self.p32, x, t),
            Precision::F64 => self.eps(&self.p64, x, t),
        };
        for (o, e) in out.iter_mut().zip(&e) {
            *o = -e / s;
        }
        Ok(())
    }

    fn score_and_vjp(
        &self,
        x: &[f64],
        t: f64,
        cotangents: &[f64],
        score_out: &mut [f64],
        vjp_out: &mut [f64],
    ) -> scoreprior_core::Result<()> {
        self.score_vjp_in(self.precision, x, t, cotangents, score_out, vjp_out)
    }

    fn second_order(&self, x: &[f64], t: f64, probes: &[f64], out: &mut [f64]) -> scoreprior_core::Result<()> {
        // The trait's central difference, run on the f64 weights.
        F64View(self).second_order(x, t, probes, out)
    }
}

/// The same model forced to `f64` VJPs (for the finite-difference second-order term).
struct F64View<'a>(&'a NcsnppScore);

impl ScoreModel for F64View<'_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn score(&self, x: &[f64], t: f64, out: &mut [f64]) -> scoreprior_core::Result<()> {
        self.0.score(x, t, out)
    }
    fn score_and_vjp(
        &self,
        x: &[f64],
        t: f64,
        cotangents: &[f64],
        score_out: &mut [f64],
        vjp_out: &mut [f64],
    ) -> scoreprior_core::Result<()> {
        self.0.score_vjp_in(Precision::F64, x, t, cotangents, score_out, vjp_out)
    }
}
