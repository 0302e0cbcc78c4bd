//! [`ScoreModel`] for a trained NCSN++: `s(x, t) = −ε̂(x, t)/σ(t)` under the VP SDE the
//! network was trained with. Batches (and, for VJPs, the `m·n` image–cotangent pairs,
//! stacked into one batch because a dfdx tape is consumed by its backward pass) are split
//! into chunks evaluated in parallel with rayon, since elementwise ops are single-threaded.
//! Scores and VJPs run in `f32` or `f64`. The adjoint's second-order term `∇x(εᵀJε)` is,
//! by default, the exact tangent of the VJP `Jᵀε` along `ε` from one forward-over-reverse
//! pass (`ops::dual`); a central difference of VJPs remains as a checked fallback
//! ([`SecondOrder`]).
//!
//! One type and its settings: the file runs past 600 lines because the chunked score, its VJP
//! and the second-order pass share the one chunking and precision machinery of
//! [`NcsnppScore`], which splitting would have to expose between files.

use std::borrow::Cow;
use std::path::Path;

use dfdx::prelude::*;
use scoreprior_core::score::{check_batch, ScoreModel};
use scoreprior_core::sde::{Sde, VpSde};

use crate::checkpoint::{self, Meta};
use crate::ncsnpp::{AnyNcsnpp, NcsnppNet, Params};
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

/// How [`NcsnppScore`] computes the adjoint's second-order term `∇x(εᵀJε)` (and with it
/// [`ScoreModel::score_and_adjoint_vjp`]).
///
/// ```
/// use scoreprior_models::score::SecondOrder;
/// assert_eq!(SecondOrder::default(), SecondOrder::Exact);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecondOrder {
    /// Forward-over-reverse: the tangent of the VJP `J(x)ᵀε` along `ε`, exact up to
    /// round-off, from one pass per image with all `K` probes (`K` tangents and `K`
    /// cotangents, plus the adjoint's own cotangent). Measured cost: see
    /// `benches/ncsnpp.rs` (`second_order` group).
    #[default]
    Exact,
    /// The central difference `[J(x + hε)ᵀε − J(x − hε)ᵀε]/2h` of `2·K·n` VJPs
    /// (truncation error `O(h²)`; see `difference_step` for `h`).
    Differences,
}

/// What the exact pass returns: the score and `aᵀJ` (when `a` is given) plus the second-order
/// term, each `(n, D)`.
type ExactParts = (Vec<f64>, Vec<f64>);

/// A trained NCSN++ as a batched score model on flattened `(n, C·H·W)` images in `[0, 1]`
/// (C order within an image).
pub struct NcsnppScore {
    net: AnyNcsnpp,
    p32: Params<f32>,
    p64: Params<f64>,
    sde: VpSde,
    precision: Precision,
    second_order: SecondOrder,
    chunk: usize,
    meta: Option<Meta>,
    /// One-thread pools of [`NcsnppScore::parallel_chunks`].
    pools: std::sync::Mutex<Vec<std::sync::Arc<rayon::ThreadPool>>>,
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
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] if the weights do not fit the network,
    /// [`ModelError::UncompiledShape`] if its image shape is not one of [`AnyNcsnpp::SHAPES`].
    pub fn new(net: NcsnppNet, weights: &[Vec<f32>], sde: VpSde) -> Result<Self, ModelError> {
        crate::alloc::retain_freed_memory();
        let net = AnyNcsnpp::new(net)?;
        let dev = Cpu::default();
        // Scores are differentiated in x only, never in the weights.
        let p32 = net.params(&dev, weights)?.in_x_only();
        let p64 = net.params(&dev, weights)?.in_x_only();
        Ok(Self {
            net,
            p32,
            p64,
            sde,
            precision: Precision::F32,
            second_order: SecondOrder::default(),
            chunk: 16,
            meta: None,
            pools: Default::default(),
        })
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

    scoreprior_core::setters! {
        /// Sets the arithmetic of scores and VJPs.
        pub fn with_precision(p: Precision) => precision;
        /// Sets how the second-order term is computed (default [`SecondOrder::Exact`]).
        ///
        /// ```
        /// use scoreprior_core::score::ScoreModel;
        /// use scoreprior_core::sde::VpSde;
        /// use scoreprior_models::ncsnpp::{NcsnppConfig, NcsnppNet};
        /// use scoreprior_models::score::{NcsnppScore, Precision, SecondOrder};
        /// // An initial scale of 1 (not the reference's ~0) for an output far from zero.
        /// let cfg = NcsnppConfig { init_scale: 1.0, ..NcsnppConfig::tiny() };
        /// let net = NcsnppNet::new(cfg, 1, 8, 8).unwrap();
        /// // A fixed seed: a random draw can put GroupNorm near its singular point, where the
        /// // difference stencil itself is off (scoreprior-models/tests/second_order.rs).
        /// let w = net.init_params(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0));
        /// let exact = NcsnppScore::new(net.clone(), &w, VpSde::default()).unwrap().with_precision(Precision::F64);
        /// let diff = NcsnppScore::new(net, &w, VpSde::default())
        ///     .unwrap()
        ///     .with_precision(Precision::F64)
        ///     .with_second_order(SecondOrder::Differences);
        /// let x: Vec<f64> = (0..64).map(|i| (i % 7) as f64 / 7.0).collect();
        /// let probe: Vec<f64> = (0..64).map(|i| if i % 3 == 0 { 1.0 } else { -1.0 }).collect();
        /// let (mut q1, mut q2) = (vec![0.0; 64], vec![0.0; 64]);
        /// exact.second_order(&x, 0.5, &probe, &mut q1).unwrap();
        /// diff.second_order(&x, 0.5, &probe, &mut q2).unwrap();
        /// // The difference's truncation error is O(h²), h = 1e-4.
        /// let scale = q1.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        /// assert!(scale > 1e-3 && q1.iter().zip(&q2).all(|(a, b)| (a - b).abs() < 1e-5 * scale));
        /// ```
        pub fn with_second_order(method: SecondOrder) => second_order;
    }
    /// How the second-order term is computed.
    pub fn second_order_method(&self) -> SecondOrder {
        self.second_order
    }
    /// Sets how many images one parallel task evaluates (default 16).
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = chunk.max(1);
        self
    }
    /// The network.
    pub fn net(&self) -> &NcsnppNet {
        self.net.net()
    }
    /// The typed network every pass goes through.
    pub fn typed_net(&self) -> &AnyNcsnpp {
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
            return Err(scoreprior_core::Error::out_of_range("time t", t, format!("in (0, {}]", self.sde.t_max())));
        }
        Ok(self.sde.marginal_std(t))
    }

    /// Runs `f` on consecutive chunks of `n` images (at most `chunk` each), spread over
    /// `rayon::current_num_threads()` workers, and returns the chunks' results in order.
    ///
    /// Each worker takes one contiguous part of the batch and runs it inside its own
    /// one-thread rayon pool. Why not `par_chunks`: dfdx runs every matrix product through
    /// `gemm` with `Parallelism::Rayon(current_num_threads())`, so inside a `par_chunks` task
    /// each product splits again over the same pool; the nested fork–joins of small products
    /// left idle workers spinning in `sched_yield` (measured: 2 threads slower than 1). Inside
    /// a one-thread pool `current_num_threads()` is 1 and each product runs sequentially, so
    /// the parallelism is only over images, which the elementwise ops (single-threaded in
    /// dfdx) need anyway.
    fn parallel_chunks<R: Send>(&self, n: usize, f: &(dyn Fn(std::ops::Range<usize>) -> R + Sync)) -> Vec<R> {
        let chunk = self.chunk;
        let run_part = |r: std::ops::Range<usize>| -> Vec<R> {
            let mut out = Vec::new();
            let mut a = r.start;
            while a < r.end {
                let b = (a + chunk).min(r.end);
                out.push(f(a..b));
                a = b;
            }
            out
        };
        // One part per worker even when the batch is smaller than a chunk: the exact prior's
        // calls are small (8–32 images) and would otherwise leave a core idle in every
        // elementwise op.
        let w = rayon::current_num_threads().min(n).max(1);
        if w == 1 {
            // One worker: `current_num_threads()` is already 1 or a single image remains.
            return run_part(0..n);
        }
        let pools = self.pools(w);
        let part = |k: usize| k * n / w..(k + 1) * n / w;
        let in_pool = |k: usize| -> Vec<R> {
            match pools.get(k) {
                Some(pool) => pool.install(|| run_part(part(k))),
                None => run_part(part(k)),
            }
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = (1..w).map(|k| s.spawn(move || in_pool(k))).collect();
            let mut out = in_pool(0);
            for h in handles {
                match h.join() {
                    Ok(v) => out.extend(v),
                    Err(e) => std::panic::resume_unwind(e),
                }
            }
            out
        })
    }

    /// `w` one-thread pools, created on first use and kept (empty if the OS refuses threads:
    /// the chunks then run on the calling threads).
    fn pools(&self, w: usize) -> Vec<std::sync::Arc<rayon::ThreadPool>> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        while pools.len() < w {
            match rayon::ThreadPoolBuilder::new().num_threads(1).thread_name(|i| format!("ncsnpp-worker-{i}")).build() {
                Ok(p) => pools.push(std::sync::Arc::new(p)),
                Err(_) => return Vec::new(),
            }
        }
        pools[..w].to_vec()
    }

    /// `ε̂(x_i, t_i)` for images given in C order at per-image times.
    fn eps_at<E: Elem>(&self, p: &Params<E>, x: &[f64], t: &[f64]) -> Result<Vec<f64>, ModelError>
    where
        Cpu: Device<E>,
    {
        let d = self.dim();
        let parts = self.parallel_chunks(t.len(), &|r| {
            let dev = Cpu::default();
            let xt = images::<E>(&dev, &x[r.start * d..r.end * d], d);
            let e = self.net.forward_flat(p, xt, &t[r.clone()], None)?;
            Ok(to_f64(&e.as_vec()))
        });
        Ok(parts.into_iter().collect::<Result<Vec<_>, ModelError>>()?.concat())
    }

    /// `(ε̂, cᵀ ∂ε̂/∂x)` for pairs of images and cotangents at one shared time.
    fn eps_vjp<E: Elem>(
        &self,
        p: &Params<E>,
        x: &[f64],
        cot: &[f64],
        t: f64,
    ) -> Result<(Vec<f64>, Vec<f64>), ModelError>
    where
        Cpu: Device<E>,
    {
        let d = self.dim();
        let parts = self.parallel_chunks(x.len() / d, &|r| {
            let (lo, hi) = (r.start * d, r.end * d);
            self.traced_pass(p, &x[lo..hi], &vec![t; r.len()], |_| Cow::Borrowed(&cot[lo..hi]))
        });
        let (mut eps, mut vjp) = (Vec::with_capacity(x.len()), Vec::with_capacity(x.len()));
        for part in parts {
            let (e, v) = part?;
            eps.extend(e);
            vjp.extend(v);
        }
        Ok((eps, vjp))
    }

    /// Scores and VJPs whose cotangents depend on the scores, from one forward pass per
    /// chunk: the tape records the forward pass, the cotangent is formed from its output, and
    /// the backward pass runs on the recorded activations.
    #[allow(clippy::too_many_arguments)]
    fn score_then_vjp_in<E: Elem>(
        &self,
        p: &Params<E>,
        x: &[f64],
        t: &[f64],
        sigma: &[f64],
        cotangent: &(dyn Fn(usize, &[f64], &mut [f64]) + Sync),
        score_out: &mut [f64],
        vjp_out: &mut [f64],
    ) -> Result<(), ModelError>
    where
        Cpu: Device<E>,
    {
        let d = self.dim();
        let parts = self.parallel_chunks(t.len(), &|r| {
            let b = r.len();
            self.traced_pass(p, &x[r.start * d..r.end * d], &t[r.clone()], |so| {
                // s = −ε̂/σ, so the cotangent of ε̂ is −c/σ and the VJP comes out in score units.
                let mut cot = vec![0.0; b * d];
                for i in 0..b {
                    let si = sigma[r.start + i];
                    let sc = &mut so[i * d..(i + 1) * d];
                    sc.iter_mut().for_each(|v| *v = -*v / si);
                    let ci = &mut cot[i * d..(i + 1) * d];
                    cotangent(r.start + i, sc, ci);
                    ci.iter_mut().for_each(|v| *v = -*v / si);
                }
                Cow::Owned(cot)
            })
        });
        let mut at = 0;
        for part in parts {
            let (so, vo) = part?;
            score_out[at..at + so.len()].copy_from_slice(&so);
            vjp_out[at..at + vo.len()].copy_from_slice(&vo);
            at += so.len();
        }
        Ok(())
    }

    /// One recorded pass over the images `x` (C order) at per-image times `t`: `ε̂` (as
    /// `f64`) goes to `cotangent`, which may rewrite it in place (into scores) and returns the
    /// cotangent `c` of `ε̂`; the backward pass then gives `cᵀ ∂ε̂/∂x`. Returns the (rewritten)
    /// `ε̂` and that VJP.
    fn traced_pass<'c, E: Elem>(
        &self,
        p: &Params<E>,
        x: &[f64],
        t: &[f64],
        cotangent: impl FnOnce(&mut [f64]) -> Cow<'c, [f64]>,
    ) -> Result<(Vec<f64>, Vec<f64>), ModelError>
    where
        Cpu: Device<E>,
    {
        let d = self.dim();
        let dev = Cpu::default();
        let x0 = images::<E>(&dev, x, d);
        let e = self.net.forward_flat(p, x0.leaky_trace(), t, None)?;
        let mut ev = to_f64(&e.with_empty_tape().as_vec());
        let ct = images::<E>(&dev, &cotangent(&mut ev), d);
        let g = (e * ct).sum::<(), _>().backward();
        Ok((ev, to_f64(&g.get(&x0).as_vec())))
    }

    /// The exact second-order term `(1/K) Σ_k ∇x(ε_kᵀJε_k)` of the score, plus the VJP `aᵀJ`
    /// when `a` is given, with the score, from one forward-over-reverse pass per chunk of
    /// images on a summed tape ([`DualTape::summed`](crate::ops::dual::DualTape::summed)):
    /// tangents `ε_k`, cotangents `ε_k/K` and `a_i` seeding the summed block, all in score
    /// units (the cotangents of `ε̂` are `−c/σ`). The backward pass carries `K + 1` blocks where
    /// separate tangents of the VJPs took `2K + 1`. Returns `(score, aᵀJ + second-order term)`.
    fn exact_second_order<E: Elem>(
        &self,
        p: &Params<E>,
        x: &[f64],
        t: f64,
        probes: &[f64],
        a: Option<&[f64]>,
    ) -> scoreprior_core::Result<ExactParts>
    where
        Cpu: Device<E>,
    {
        let d = self.dim();
        let n = check_batch(x, d, "x")?;
        if probes.is_empty() || !probes.len().is_multiple_of(d) {
            return Err(scoreprior_core::Error::shape("probes", format!("(K, {d})"), probes.len()));
        }
        if let Some(a) = a {
            if a.len() != x.len() {
                return Err(scoreprior_core::Error::shape("adjoint cotangents", x.len(), a.len()));
            }
        }
        // As the VJP path's checks: a NaN probe or cotangent is an error, not a NaN result.
        for (v, what) in [(probes, "probes"), (a.unwrap_or(&[]), "adjoint cotangents")] {
            if let Some(index) = v.iter().position(|v| !v.is_finite()) {
                return Err(scoreprior_core::Error::NonFiniteData { what, index });
            }
        }
        let sig = self.sigma(t)?;
        let k = probes.len() / d;
        let parts = self.parallel_chunks(n, &|r| {
            let b = r.len();
            let (lo, hi) = (r.start * d, r.end * d);
            let mut tape = crate::ops::dual::DualTape::<E>::summed(k);
            let xin = tape.input(probe_stack(&x[lo..hi], probes, b), b, d);
            let out = self.net.net().forward_dual(p, &mut tape, &xin, &vec![t; b]);
            let score: Vec<f64> = out.values().iter().map(|v| -v.f64() / sig).collect();
            // Cotangents −ε_k/(σK) of ε̂ per probe, then −a/σ (or zero) in the summed block.
            let mut seed = Vec::with_capacity((k + 1) * b * d);
            for eps in probes.chunks_exact(d) {
                for _ in 0..b {
                    seed.extend(eps.iter().map(|&v| E::of(-v / (sig * k as f64))));
                }
            }
            match a {
                Some(a) => seed.extend(a[lo..hi].iter().map(|&v| E::of(-v / sig))),
                None => seed.resize((k + 1) * b * d, E::zero()),
            }
            let gx = tape.backward(&out, seed).get(&xin);
            let total: Vec<f64> = gx[k * b * d..(k + 1) * b * d].iter().map(|v| v.f64()).collect();
            (score, total)
        });
        let (mut s, mut v) = (Vec::with_capacity(x.len()), Vec::with_capacity(x.len()));
        for (ps, pv) in parts {
            s.extend(ps);
            v.extend(pv);
        }
        Ok((s, v))
    }

    /// The scores and the probes' quadratic forms `ε_kᵀJε_k` from the network's forward pass
    /// with the probes as tangents ([`DualTape::forward_only`](crate::ops::dual::DualTape::forward_only)):
    /// `J ε_k` is the output's tangent, so no backward pass runs, and the images go through
    /// once with `K` tangents instead of `K` times forward and backward. Returns the scores
    /// `(n, D)` and the forms `(K, n)`.
    fn forward_probe_forms<E: Elem>(
        &self,
        p: &Params<E>,
        x: &[f64],
        t: f64,
        probes: &[f64],
    ) -> scoreprior_core::Result<(Vec<f64>, Vec<f64>)>
    where
        Cpu: Device<E>,
    {
        let d = self.dim();
        let n = check_batch(x, d, "x")?;
        if let Some(index) = probes.iter().position(|v| !v.is_finite()) {
            return Err(scoreprior_core::Error::NonFiniteData { what: "probes", index });
        }
        let sig = self.sigma(t)?;
        let k = probes.len() / d;
        let parts = self.parallel_chunks(n, &|r| {
            let b = r.len();
            let mut tape = crate::ops::dual::DualTape::<E>::forward_only(k);
            let xin = tape.input(probe_stack(&x[r.start * d..r.end * d], probes, b), b, d);
            let out = self.net.net().forward_dual(p, &mut tape, &xin, &vec![t; b]);
            let score: Vec<f64> = out.values().iter().map(|v| -v.f64() / sig).collect();
            // forms[kk][i] = ε_kᵀ (J ε_k)_i, J of the score = −(1/σ) J of ε̂.
            let forms: Vec<Vec<f64>> = probes
                .chunks_exact(d)
                .enumerate()
                .map(|(kk, eps)| {
                    out.tangent(kk)
                        .chunks_exact(d)
                        .map(|jt| -jt.iter().zip(eps).map(|(j, e)| j.f64() * e).sum::<f64>() / sig)
                        .collect()
                })
                .collect();
            (score, forms)
        });
        let mut s = Vec::with_capacity(x.len());
        let mut forms = vec![Vec::with_capacity(n); k];
        for (ps, pf) in parts {
            s.extend(ps);
            forms.iter_mut().zip(pf).for_each(|(f, pf)| f.extend(pf));
        }
        Ok((s, forms.concat()))
    }

    /// [`Self::exact_second_order`] in the model's precision.
    fn exact_in_precision(
        &self,
        x: &[f64],
        t: f64,
        probes: &[f64],
        a: Option<&[f64]>,
    ) -> scoreprior_core::Result<ExactParts> {
        match self.precision {
            Precision::F32 => self.exact_second_order(&self.p32, x, t, probes, a),
            Precision::F64 => self.exact_second_order(&self.p64, x, t, probes, a),
        }
    }

    /// Checks per-image times and returns `σ(t_i)`.
    fn sigmas(&self, x: &[f64], t: &[f64], out_len: usize) -> scoreprior_core::Result<Vec<f64>> {
        scoreprior_core::score::check_times(self.dim(), x, t, out_len)?;
        t.iter().map(|&ti| self.sigma(ti)).collect()
    }
}

impl ScoreModel for NcsnppScore {
    fn dim(&self) -> usize {
        self.net.dim()
    }

    fn score(&self, x: &[f64], t: f64, out: &mut [f64]) -> scoreprior_core::Result<()> {
        // One shared time is the per-image path with equal times (same passes, same chunks).
        let n = check_batch(x, self.dim(), "x")?;
        self.score_at(x, &vec![t; n], out)
    }

    fn score_and_vjp(
        &self,
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
        let (e, v) = match self.precision {
            Precision::F32 => self.eps_vjp(&self.p32, &xs, cotangents, t)?,
            Precision::F64 => self.eps_vjp(&self.p64, &xs, cotangents, t)?,
        };
        for (o, e) in score_out.iter_mut().zip(&e[..n * d]) {
            *o = -e / s;
        }
        for (o, g) in vjp_out.iter_mut().zip(&v) {
            *o = -g / s;
        }
        Ok(())
    }

    fn score_at(&self, x: &[f64], t: &[f64], out: &mut [f64]) -> scoreprior_core::Result<()> {
        let sig = self.sigmas(x, t, out.len())?;
        let e = match self.precision {
            Precision::F32 => self.eps_at(&self.p32, x, t)?,
            Precision::F64 => self.eps_at(&self.p64, x, t)?,
        };
        let d = self.dim();
        for (i, (o, e)) in out.chunks_mut(d).zip(e.chunks(d)).enumerate() {
            o.iter_mut().zip(e).for_each(|(o, e)| *o = -e / sig[i]);
        }
        Ok(())
    }

    fn score_then_vjp(
        &self,
        x: &[f64],
        t: &[f64],
        cotangent: &(dyn Fn(usize, &[f64], &mut [f64]) + Sync),
        score_out: &mut [f64],
        vjp_out: &mut [f64],
    ) -> scoreprior_core::Result<()> {
        let sig = self.sigmas(x, t, score_out.len())?;
        if vjp_out.len() != x.len() {
            return Err(scoreprior_core::Error::shape("vjp output", x.len(), vjp_out.len()));
        }
        match self.precision {
            Precision::F32 => self.score_then_vjp_in(&self.p32, x, t, &sig, cotangent, score_out, vjp_out)?,
            Precision::F64 => self.score_then_vjp_in(&self.p64, x, t, &sig, cotangent, score_out, vjp_out)?,
        }
        Ok(())
    }

    /// The forms from the forward pass with the probes as tangents (no backward pass); see
    /// `forward_probe_forms`.
    fn score_and_probe_forms(
        &self,
        x: &[f64],
        t: f64,
        probes: &[f64],
        score_out: &mut [f64],
        forms_out: &mut [f64],
    ) -> scoreprior_core::Result<()> {
        scoreprior_core::score::check_probe_forms(self.dim(), x, probes, score_out, forms_out)?;
        let (s, f) = match self.precision {
            Precision::F32 => self.forward_probe_forms(&self.p32, x, t, probes)?,
            Precision::F64 => self.forward_probe_forms(&self.p64, x, t, probes)?,
        };
        score_out.copy_from_slice(&s);
        forms_out.copy_from_slice(&f);
        Ok(())
    }

    fn second_order(&self, x: &[f64], t: f64, probes: &[f64], out: &mut [f64]) -> scoreprior_core::Result<()> {
        if self.second_order == SecondOrder::Exact {
            if out.len() != x.len() {
                return Err(scoreprior_core::Error::shape("second-order output", x.len(), out.len()));
            }
            let (_, q) = self.exact_in_precision(x, t, probes, None)?;
            out.copy_from_slice(&q);
            return Ok(());
        }
        let h = self.difference_step(x, t)?;
        scoreprior_core::score::second_order_by_differences(self, x, t, probes, h, out)
    }

    fn score_and_adjoint_vjp(
        &self,
        x: &[f64],
        t: f64,
        a: &[f64],
        probes: &[f64],
        score_out: &mut [f64],
        out: &mut [f64],
    ) -> scoreprior_core::Result<()> {
        if self.second_order == SecondOrder::Exact {
            // One pass: the adjoint's cotangent `a` rides along as an extra cotangent.
            if score_out.len() != x.len() || out.len() != x.len() {
                return Err(scoreprior_core::Error::shape(
                    "adjoint outputs",
                    x.len(),
                    format!("{}, {}", score_out.len(), out.len()),
                ));
            }
            let (s, v) = self.exact_in_precision(x, t, probes, Some(a))?;
            score_out.copy_from_slice(&s);
            out.copy_from_slice(&v);
            return Ok(());
        }
        // 2·K·n network pairs per adjoint evaluation instead of (2K + 1)·n: see
        // `adjoint_vjp_by_differences` for the stencil and its error.
        let h = self.difference_step(x, t)?;
        scoreprior_core::score::adjoint_vjp_by_differences(self, x, t, a, probes, h, score_out, out)
    }
}

impl NcsnppScore {
    /// The step of the second-order central difference, in the precision of the model's VJPs
    /// (the stencil's VJPs are the model's own). In `f64`, the trait's
    /// `h = 1e-4·max(1, rms x)`. In `f32` the step must be large enough for round-off (u ≈
    /// 6e-8, amplified by the network) and small against the score's length scale, which
    /// near t = 0 is the noise level σ_t: `h = 0.01·σ_t·max(1, rms x)`. Against the f64
    /// difference with h = 1e-5 (itself accurate to ~1e-6) on noisy test images the relative
    /// error is 0.7–1.8e-4 at every t from 1e-3 to 1 (h = 0.003·σ_t: 0.5–2e-4; 0.03·σ_t:
    /// 0.6–1.6e-3; `second_order_f32_matches_f64` pins it): the accuracy of the f64
    /// difference at t = 1e-3 (7e-5), and far below the spread of a Hutchinson estimate.
    fn difference_step(&self, x: &[f64], t: f64) -> scoreprior_core::Result<f64> {
        let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt();
        Ok(match self.precision {
            Precision::F64 => 1e-4 * rms.max(1.0),
            Precision::F32 => 0.01 * self.sigma(t)? * rms.max(1.0),
        })
    }
}

/// Flattened C-order images as a `(b, d)` tensor, the layout of [`AnyNcsnpp::forward_flat`].
fn images<E: Elem>(dev: &Cpu, x: &[f64], d: usize) -> Tensor<(usize, usize), E, Cpu>
where
    Cpu: Device<E>,
{
    dev.tensor_from_vec(x.iter().map(|&v| E::of(v)).collect(), (x.len() / d, d))
}

fn to_f64<E: Elem>(v: &[E]) -> Vec<f64>
where
    Cpu: Device<E>,
{
    v.iter().map(|e| e.f64()).collect()
}

/// The dual input stack `[x | ε_0 per image | … | ε_{K−1} per image]` of `b` images `x`
/// (`(b, D)`) and probes `(K, D)`.
fn probe_stack<E: Elem>(x: &[f64], probes: &[f64], b: usize) -> Vec<E>
where
    Cpu: Device<E>,
{
    let d = x.len() / b;
    let mut stack: Vec<E> = Vec::with_capacity(x.len() + b * probes.len());
    stack.extend(x.iter().map(|&v| E::of(v)));
    for eps in probes.chunks_exact(d) {
        for _ in 0..b {
            stack.extend(eps.iter().map(|&v| E::of(v)));
        }
    }
    stack
}
