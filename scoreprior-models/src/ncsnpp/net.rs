//! The NCSN++ architecture ([`NcsnppNet`]): a 3×3 input convolution, residual and
//! attention blocks down `ch_mult.len()` levels (with an optional residual input pyramid),
//! a middle of block–attention–block, the mirrored up path fed the skips, and GroupNorm,
//! SiLU and a 3×3 output convolution.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};

use super::attn::{attn, Attn};
use super::config::{Embedding, NcsnppConfig, ProgressiveInput};
use super::params::{Builder, Dense, Gn, Init, ParamSpec, Params};
use super::resblock::{resblock, ResBlock, Resample};
use crate::ops::dual::*;
use crate::ops::*;
use crate::ModelError;

#[derive(Debug, Clone)]
struct DownLevel {
    blocks: Vec<(ResBlock, Option<Attn>)>,
    down: Option<(ResBlock, Option<Dense>)>,
}

#[derive(Debug, Clone)]
struct UpLevel {
    blocks: Vec<ResBlock>,
    attn: Option<Attn>,
    up: Option<ResBlock>,
}

/// The NCSN++ architecture for images of `c × h × w`, independent of the parameter values
/// (those live in a [`Params`] built from [`NcsnppNet::specs`]).
#[derive(Debug, Clone)]
pub struct NcsnppNet {
    config: NcsnppConfig,
    c: usize,
    h: usize,
    w: usize,
    specs: Vec<ParamSpec>,
    fourier: Vec<f64>,
    temb: Option<(Dense, Dense)>,
    conv_in: Dense,
    down: Vec<DownLevel>,
    mid: (ResBlock, Attn, ResBlock),
    up: Vec<UpLevel>,
    gn_out: Gn,
    conv_out: Dense,
}

impl NcsnppNet {
    /// Builds the architecture; errors if the configuration does not fit `c × h × w`.
    ///
    /// ```
    /// use scoreprior_models::ncsnpp::{NcsnppConfig, NcsnppNet};
    /// let net = NcsnppNet::new(NcsnppConfig::tiny(), 1, 8, 8).unwrap();
    /// assert!(net.num_params() > 1000);
    /// ```
    pub fn new(config: NcsnppConfig, c: usize, h: usize, w: usize) -> Result<Self, ModelError> {
        config.validate(c, h, w)?;
        let mut b = Builder::default();
        let nf = config.nf;
        let is = config.init_scale;
        let temb_dim = 4 * nf;
        let temb = config
            .conditional
            .then(|| (b.dense("temb.0", nf, temb_dim, 1.0), b.dense("temb.1", temb_dim, temb_dim, 1.0)));
        let tdim = config.conditional.then_some(temb_dim);
        let fourier = if config.embedding_type == Embedding::Fourier {
            // Fixed (non-trainable) frequencies from a fixed seed, so they need not be stored.
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5eed);
            (0..nf / 2).map(|_| config.fourier_scale * rng.sample::<f64, _>(rand_distr::StandardNormal)).collect()
        } else {
            Vec::new()
        };
        let conv_in = b.conv("conv_in", c, nf, 1.0);
        let levels = config.ch_mult.len();
        let mut chans = vec![nf];
        let mut ch = nf;
        let mut res = h;
        let mut pyr_ch = c;
        let mut down = Vec::new();
        for l in 0..levels {
            let out = nf * config.ch_mult[l];
            let mut blocks = Vec::new();
            for k in 0..config.num_res_blocks {
                let rb = resblock(&mut b, &format!("down.{l}.block.{k}"), ch, out, tdim, Resample::None, is);
                ch = out;
                let at =
                    config.attn_resolutions.contains(&res).then(|| attn(&mut b, &format!("down.{l}.attn.{k}"), ch, is));
                blocks.push((rb, at));
                chans.push(ch);
            }
            let dn = (l + 1 < levels).then(|| {
                let rb = resblock(&mut b, &format!("down.{l}.down"), ch, ch, tdim, Resample::Down, is);
                let pyr = (config.progressive_input == ProgressiveInput::Residual)
                    .then(|| b.conv(&format!("down.{l}.pyramid"), pyr_ch, ch, 1.0));
                if pyr.is_some() {
                    pyr_ch = ch;
                }
                res /= 2;
                chans.push(ch);
                (rb, pyr)
            });
            down.push(DownLevel { blocks, down: dn });
        }
        let mid = (
            resblock(&mut b, "mid.0", ch, ch, tdim, Resample::None, is),
            attn(&mut b, "mid.attn", ch, is),
            resblock(&mut b, "mid.1", ch, ch, tdim, Resample::None, is),
        );
        let mut up = Vec::new();
        for l in (0..levels).rev() {
            let out = nf * config.ch_mult[l];
            let mut blocks = Vec::new();
            for k in 0..=config.num_res_blocks {
                let skip = chans.pop().expect("skip channel bookkeeping");
                blocks.push(resblock(&mut b, &format!("up.{l}.block.{k}"), ch + skip, out, tdim, Resample::None, is));
                ch = out;
            }
            let at = config.attn_resolutions.contains(&res).then(|| attn(&mut b, &format!("up.{l}.attn"), ch, is));
            let u = (l > 0).then(|| {
                res *= 2;
                resblock(&mut b, &format!("up.{l}.up"), ch, ch, tdim, Resample::Up, is)
            });
            up.push(UpLevel { blocks, attn: at, up: u });
        }
        debug_assert!(chans.is_empty());
        let gn_out = b.gn("out.gn", ch);
        let conv_out = b.conv("out.conv", ch, c, is.max(1e-10));
        Ok(Self { config, c, h, w, specs: b.specs, fourier, temb, conv_in, down, mid, up, gn_out, conv_out })
    }

    /// The configuration.
    pub fn config(&self) -> &NcsnppConfig {
        &self.config
    }
    /// Image shape `(c, h, w)`.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        (self.c, self.h, self.w)
    }
    /// Parameter specifications, in a fixed order.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }
    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.specs.iter().map(|s| s.len()).sum()
    }

    /// Draws initial parameter values.
    pub fn init_params(&self, rng: &mut impl Rng) -> Vec<Vec<f32>> {
        self.specs
            .iter()
            .map(|s| match s.init {
                Init::Zeros => vec![0.0; s.len()],
                Init::Ones => vec![1.0; s.len()],
                Init::FanAvg { fan_in, fan_out, scale } => {
                    let lim = (3.0 * scale / ((fan_in + fan_out) as f64 / 2.0)).sqrt();
                    (0..s.len()).map(|_| rng.gen_range(-lim..=lim) as f32).collect()
                }
            })
            .collect()
    }

    /// The time-embedding input features for time labels `999·t`.
    fn time_features(&self, t: &[f64]) -> Vec<f64> {
        let labels: Vec<f64> = t.iter().map(|t| 999.0 * t).collect();
        match self.config.embedding_type {
            Embedding::Positional => sinusoidal_embedding(&labels, self.config.nf),
            Embedding::Fourier => fourier_embedding(&labels, &self.fourier),
        }
    }

    /// The time embedding after its SiLU, `(b, 4·nf)`: features -> Dense -> SiLU -> Dense ->
    /// SiLU (each block applies its own Dense to it); `None` for an unconditional network.
    fn time_embedding<E: Elem, T: Tape<E, Cpu>>(&self, p: &Params<E>, dev: &Cpu, t: &[f64]) -> Option<Mat<E, T>>
    where
        Cpu: Device<E>,
    {
        let (d0, d1) = self.temb.as_ref()?;
        let f: Vec<E> = self.time_features(t).into_iter().map(E::of).collect();
        let f: Mat<E, T> = dev.tensor_from_vec(f, (t.len(), self.config.nf)).retaped::<T>();
        Some(silu(p.dense(silu(p.dense(f, d0)), d1)))
    }

    /// [`NcsnppNet::forward_rows`] on a forward-over-reverse tape (`ops::dual`), op for op
    /// (without dropout): `x` holds `b = t.len()` flattened `c·h·w` images (C order) as a
    /// `(b, c·h·w)` stack with its tangents; returns `ε̂` in the same layout.
    ///
    /// Private, as `forward_rows`: the score model checks the batch, times and parameters.
    pub(crate) fn forward_dual<E: Elem>(&self, p: &Params<E>, tape: &mut DualTape<E>, x: &Dual<E>, t: &[f64]) -> Dual<E>
    where
        Cpu: Device<E>,
    {
        let b = t.len();
        let g0 = Grid { b, h: self.h, w: self.w };
        assert_eq!(x.block_len(), g0.rows() * self.c, "forward_dual: batch does not match the times");
        assert_eq!(p.tensors.len(), self.specs.len(), "parameters do not match the network");
        let x = dual_nchw_to_rows(tape, x, self.c, g0);
        let x = if self.config.centered { x } else { dual_affine(tape, &x, E::of(2.0), E::of(-1.0)) };
        let temb = self.time_embedding::<E, NoneTape>(p, &Cpu::default(), t);
        let temb = temb.as_ref();
        let sr = if self.config.skip_rescale { E::of(std::f64::consts::FRAC_1_SQRT_2) } else { E::one() };

        let mut pyramid = (self.config.progressive_input == ProgressiveInput::Residual).then(|| x.clone());
        let mut pyr_g = g0;
        let mut h = p.dual_conv(tape, &x, g0, &self.conv_in);
        let mut hs = vec![(h.clone(), g0)];
        let mut g = g0;
        for lvl in &self.down {
            for (rb, at) in &lvl.blocks {
                h = rb.dual(p, tape, &h, g, temb, sr);
                if let Some(a) = at {
                    h = a.dual(p, tape, &h, g, sr);
                }
                hs.push((h.clone(), g));
            }
            if let Some((rb, pyr)) = &lvl.down {
                h = rb.dual(p, tape, &h, g, temb, sr);
                g = g.down();
                if let (Some(pc), Some(px)) = (pyr, pyramid.take()) {
                    let pd = dual_avg_pool2(tape, &px, pyr_g);
                    pyr_g = g;
                    let pn = p.dual_conv(tape, &pd, g, pc);
                    pyramid = Some(pn.clone());
                    h = dual_add_scaled(tape, &h, &pn, sr);
                }
                hs.push((h.clone(), g));
            }
        }
        h = self.mid.0.dual(p, tape, &h, g, temb, sr);
        h = self.mid.1.dual(p, tape, &h, g, sr);
        h = self.mid.2.dual(p, tape, &h, g, temb, sr);
        for lvl in &self.up {
            for rb in &lvl.blocks {
                let (s, sg) = hs.pop().expect("skip bookkeeping");
                debug_assert_eq!(sg, g);
                let hc = dual_concat_cols(tape, &h, &s);
                h = rb.dual(p, tape, &hc, g, temb, sr);
            }
            if let Some(a) = &lvl.attn {
                h = a.dual(p, tape, &h, g, sr);
            }
            if let Some(rb) = &lvl.up {
                h = rb.dual(p, tape, &h, g, temb, sr);
                g = g.up();
            }
        }
        debug_assert!(hs.is_empty());
        let h = p.dual_group_norm(tape, &h, g, &self.gn_out, true);
        let out = p.dual_conv(tape, &h, g, &self.conv_out);
        dual_rows_to_nchw(tape, &out, g)
    }

    /// Forward pass on `b` images in the rows layout `(b·h·w, c)` at per-image times `t`
    /// (`t.len() == b`). `dropout_rng` enables dropout (training). Returns `ε̂` in the
    /// rows layout.
    ///
    /// The unchecked inner pass, private: every caller goes through the typed
    /// [`Ncsnpp`](super::Ncsnpp) (directly or through [`AnyNcsnpp`](super::AnyNcsnpp)), which
    /// checks the batch, the times and the parameters and returns errors; the asserts here
    /// only guard that invariant.
    pub(crate) fn forward_rows<E: Elem, T: Tape<E, Cpu>>(
        &self,
        p: &Params<E>,
        x: Mat<E, T>,
        t: &[f64],
        mut dropout_rng: Option<&mut rand_chacha::ChaCha8Rng>,
    ) -> Mat<E, T>
    where
        Cpu: Device<E>,
    {
        let b = t.len();
        let g0 = Grid { b, h: self.h, w: self.w };
        assert_eq!(x.shape().0, g0.rows(), "forward_rows: batch does not match the times");
        assert_eq!(p.tensors.len(), self.specs.len(), "parameters do not match the network");
        let dev = x.device().clone();
        let x = if self.config.centered { x } else { x * E::of(2.0) + E::of(-1.0) };

        // Time embedding: features (no gradient) -> Dense -> SiLU -> Dense, then SiLU once
        // for all blocks (each block applies its own Dense to it).
        let (temb, temb_tape) = match self.time_embedding::<E, T>(p, &dev, t) {
            Some(e) => {
                let (e, tape) = e.split_tape();
                (Some(e), tape)
            }
            None => (None, T::default()),
        };
        let mut ctx =
            Ctx { p, g: g0, temb: temb.as_ref(), dropout: self.config.dropout, rng: dropout_rng.as_deref_mut() };
        let sr = if self.config.skip_rescale { E::of(std::f64::consts::FRAC_1_SQRT_2) } else { E::one() };

        let mut pyramid = (self.config.progressive_input == ProgressiveInput::Residual).then(|| x.with_empty_tape());
        let mut pyr_g = g0;
        let h = p.conv(x, g0, &self.conv_in);
        let mut hs: Vec<(Mat<E, T>, Grid)> = vec![(h.with_empty_tape(), g0)];
        let mut h = h;
        let mut g = g0;
        for lvl in &self.down {
            for (rb, at) in &lvl.blocks {
                h = ctx.resblock(h, g, rb, sr);
                if let Some(a) = at {
                    h = ctx.attn(h, g, a, sr);
                }
                hs.push((h.with_empty_tape(), g));
            }
            if let Some((rb, pyr)) = &lvl.down {
                h = ctx.resblock(h, g, rb, sr);
                g = g.down();
                ctx.g = g;
                if let (Some(pc), Some(px)) = (pyr, pyramid.take()) {
                    let pd = avg_pool2(px, pyr_g);
                    pyr_g = g;
                    let pn = p.conv(pd, g, pc);
                    pyramid = Some(pn.with_empty_tape());
                    h = add_scaled(h, pn, sr);
                }
                hs.push((h.with_empty_tape(), g));
            }
        }
        h = ctx.resblock(h, g, &self.mid.0, sr);
        h = ctx.attn(h, g, &self.mid.1, sr);
        h = ctx.resblock(h, g, &self.mid.2, sr);
        for lvl in &self.up {
            for rb in &lvl.blocks {
                let (s, sg) = hs.pop().expect("skip bookkeeping");
                debug_assert_eq!(sg, g);
                h = ctx.resblock(concat_cols(h, s), g, rb, sr);
            }
            if let Some(a) = &lvl.attn {
                h = ctx.attn(h, g, a, sr);
            }
            if let Some(rb) = &lvl.up {
                h = ctx.resblock(h, g, rb, sr);
                g = g.up();
                ctx.g = g;
            }
        }
        debug_assert!(hs.is_empty());
        let h = p.group_norm_silu(h, g, &self.gn_out);
        let out = p.conv(h, g, &self.conv_out);
        // Attach the time-embedding branch's backward ops to the result.
        let (out, tape) = out.split_tape();
        out.put_tape(tape.merge(temb_tape))
    }
}

/// What the blocks of one forward pass share: the parameters, the current grid, the
/// time embedding (after its SiLU), and dropout with its RNG when training.
pub(super) struct Ctx<'a, E: Elem>
where
    Cpu: Device<E>,
{
    pub(super) p: &'a Params<E>,
    pub(super) g: Grid,
    pub(super) temb: Option<&'a Mat<E>>,
    pub(super) dropout: f64,
    pub(super) rng: Option<&'a mut rand_chacha::ChaCha8Rng>,
}
