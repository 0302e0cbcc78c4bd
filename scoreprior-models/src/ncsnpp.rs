//! NCSN++ (Song et al. 2021) noise-prediction network `ε̂(x, t)` with BigGAN residual
//! blocks, GroupNorm, SiLU, self-attention, down/up-sampling with skip connections and a
//! sinusoidal or Gaussian-Fourier time embedding. With the reference's conventions the
//! input `x ∈ [0,1]` is mapped to `2x − 1`, the time label is `999·t`, and the score is
//! `s(x, t) = −ε̂(x, t)/σ(t)`.
//!
//! Deviations from the reference (documented choices): resampling is naive (2×2 average
//! pooling / nearest upsampling) instead of the FIR `[1,3,3,1]` kernel, and the residual
//! input pyramid downsamples with average pooling followed by a 3×3 convolution.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub use crate::any_ncsnpp::AnyNcsnpp;
use crate::ops::*;
use crate::ModelError;

/// Time-embedding type (`embedding_type` of the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Embedding {
    /// Sinusoidal embedding of `999·t` (the reference default).
    Positional,
    /// Gaussian random Fourier features of `ln(999·t)`.
    Fourier,
}

/// Input pyramid (`progressive_input` of the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressiveInput {
    /// No input pyramid.
    None,
    /// Downsampled copies of the input added to each level's features, `(h + p)/√2`.
    Residual,
}

/// Network hyper-parameters; field names mirror the reference's `config.model`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NcsnppConfig {
    /// Base channel count.
    pub nf: usize,
    /// Channel multiplier per resolution level (`len` levels, `len − 1` downsamplings).
    pub ch_mult: Vec<usize>,
    /// Residual blocks per level.
    pub num_res_blocks: usize,
    /// Resolutions (side lengths) with self-attention.
    pub attn_resolutions: Vec<usize>,
    /// Dropout probability inside residual blocks (training only).
    pub dropout: f64,
    /// Time-embedding type.
    pub embedding_type: Embedding,
    /// Scale of the Gaussian-Fourier frequencies.
    pub fourier_scale: f64,
    /// Whether the network is conditioned on time (the reference: always).
    pub conditional: bool,
    /// Scale residual sums by `1/√2` (`skip_rescale`).
    pub skip_rescale: bool,
    /// Input pyramid.
    pub progressive_input: ProgressiveInput,
    /// Input in `[0,1]` and mapped to `2x − 1` inside (`centered = false` in the reference).
    pub centered: bool,
    /// Initial scale of the last convolution of each block and of the output
    /// (`init_scale`; 0 in the reference makes each block start as the identity).
    pub init_scale: f64,
}

impl Default for NcsnppConfig {
    /// The reference configuration (`configs/score_config.py`).
    fn default() -> Self {
        Self::reference()
    }
}

impl NcsnppConfig {
    /// The reference configuration: nf 64, ch_mult (1,2,2,2), 4 residual blocks per level,
    /// attention at 16×16, dropout 0.1, positional embedding, residual input pyramid.
    ///
    /// ```
    /// let c = scoreprior_models::ncsnpp::NcsnppConfig::reference();
    /// assert_eq!((c.nf, c.num_res_blocks), (64, 4));
    /// ```
    pub fn reference() -> Self {
        Self {
            nf: 64,
            ch_mult: vec![1, 2, 2, 2],
            num_res_blocks: 4,
            attn_resolutions: vec![16],
            dropout: 0.1,
            embedding_type: Embedding::Positional,
            fourier_scale: 16.0,
            conditional: true,
            skip_rescale: true,
            progressive_input: ProgressiveInput::Residual,
            centered: false,
            init_scale: 0.0,
        }
    }

    /// A CPU-sized configuration for 16×16 images: nf 16, ch_mult (1,2,2), 1 block per
    /// level, attention at 8×8, no dropout (short runs do not overfit). About 330k
    /// parameters and 37 MFLOP of matrix products per 16×16 image; on a shared 2-core
    /// machine a smaller network trained for more steps beat a wider one trained for fewer.
    ///
    /// ```
    /// let c = scoreprior_models::ncsnpp::NcsnppConfig::small();
    /// assert_eq!(c.ch_mult, vec![1, 2, 2]);
    /// ```
    pub fn small() -> Self {
        Self {
            nf: 16,
            ch_mult: vec![1, 2, 2],
            num_res_blocks: 1,
            attn_resolutions: vec![8],
            dropout: 0.0,
            ..Self::reference()
        }
    }

    /// A tiny configuration for tests: nf 8, ch_mult (1,2), 1 block, attention at the
    /// coarsest level of 8×8 inputs.
    pub fn tiny() -> Self {
        Self {
            nf: 8,
            ch_mult: vec![1, 2],
            num_res_blocks: 1,
            attn_resolutions: vec![4],
            dropout: 0.0,
            ..Self::reference()
        }
    }

    /// Checks the configuration against an image size.
    pub fn validate(&self, c: usize, h: usize, w: usize) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.nf < 8 || self.nf % 8 != 0 {
            return bad(format!("nf must be a positive multiple of 8, got {}", self.nf));
        }
        if self.ch_mult.is_empty() || self.ch_mult.contains(&0) {
            return bad("ch_mult must be non-empty and positive".into());
        }
        if self.num_res_blocks == 0 {
            return bad("num_res_blocks must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        let f = 1usize << (self.ch_mult.len() - 1);
        if c == 0 || h == 0 || w == 0 || h % f != 0 || w % f != 0 {
            return bad(format!(
                "image {c}x{h}x{w}: height and width must be multiples of {f} for {} levels",
                self.ch_mult.len()
            ));
        }
        Ok(())
    }
}

/// How a parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// DDPM `variance_scaling(scale, fan_avg, uniform)`: `U(±√(3·scale/fan_avg))`.
    FanAvg { fan_in: usize, fan_out: usize, scale: f64 },
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
}

/// Name, shape and initialiser of one parameter tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Unique dotted name, e.g. `down.0.block.0.conv0.w`.
    pub name: String,
    /// Shape (matrices are `(fan_in, fan_out)`, 3×3 kernels `(9·c_in, c_out)`).
    pub shape: Vec<usize>,
    /// Initialiser.
    pub init: Init,
}

impl ParamSpec {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the tensor is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Default)]
struct Builder {
    specs: Vec<ParamSpec>,
}

impl Builder {
    fn add(&mut self, name: String, shape: Vec<usize>, init: Init) -> usize {
        self.specs.push(ParamSpec { name, shape, init });
        self.specs.len() - 1
    }
    fn dense(&mut self, name: &str, i: usize, o: usize, scale: f64) -> Dense {
        let w = self.add(format!("{name}.w"), vec![i, o], Init::FanAvg { fan_in: i, fan_out: o, scale });
        let b = self.add(format!("{name}.b"), vec![o], Init::Zeros);
        Dense { w, b, i }
    }
    fn conv(&mut self, name: &str, i: usize, o: usize, scale: f64) -> Dense {
        let w = self.add(format!("{name}.w"), vec![9 * i, o], Init::FanAvg { fan_in: 9 * i, fan_out: 9 * o, scale });
        let b = self.add(format!("{name}.b"), vec![o], Init::Zeros);
        Dense { w, b, i: 9 * i }
    }
    fn gn(&mut self, name: &str, c: usize) -> Gn {
        let g = self.add(format!("{name}.gamma"), vec![c], Init::Ones);
        let b = self.add(format!("{name}.beta"), vec![c], Init::Zeros);
        Gn { g, b, groups: (c / 4).clamp(1, 32) }
    }
}

#[derive(Debug, Clone, Copy)]
struct Dense {
    w: usize,
    b: usize,
    i: usize,
}

#[derive(Debug, Clone, Copy)]
struct Gn {
    g: usize,
    b: usize,
    groups: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Resample {
    None,
    Up,
    Down,
}

#[derive(Debug, Clone)]
struct ResBlock {
    gn0: Gn,
    conv0: Dense,
    temb: Option<Dense>,
    gn1: Gn,
    conv1: Dense,
    skip: Option<Dense>,
    resample: Resample,
}

#[derive(Debug, Clone)]
struct Attn {
    gn: Gn,
    q: Dense,
    k: Dense,
    v: Dense,
    o: Dense,
}

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

fn resblock(
    b: &mut Builder,
    name: &str,
    i: usize,
    o: usize,
    temb: Option<usize>,
    resample: Resample,
    init_scale: f64,
) -> ResBlock {
    let gn0 = b.gn(&format!("{name}.gn0"), i);
    let conv0 = b.conv(&format!("{name}.conv0"), i, o, 1.0);
    let temb = temb.map(|t| b.dense(&format!("{name}.temb"), t, o, 1.0));
    let gn1 = b.gn(&format!("{name}.gn1"), o);
    let conv1 = b.conv(&format!("{name}.conv1"), o, o, init_scale.max(1e-10));
    let skip = (i != o || resample != Resample::None).then(|| b.dense(&format!("{name}.skip"), i, o, 1.0));
    ResBlock { gn0, conv0, temb, gn1, conv1, skip, resample }
}

fn attn(b: &mut Builder, name: &str, c: usize, init_scale: f64) -> Attn {
    Attn {
        gn: b.gn(&format!("{name}.gn"), c),
        q: b.dense(&format!("{name}.q"), c, c, 1.0),
        k: b.dense(&format!("{name}.k"), c, c, 1.0),
        v: b.dense(&format!("{name}.v"), c, c, 1.0),
        o: b.dense(&format!("{name}.o"), c, c, init_scale.max(1e-10)),
    }
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

    /// Forward pass on `b` images in the rows layout `(b·h·w, c)` at per-image times `t`
    /// (`t.len() == b`). `dropout_rng` enables dropout (training). Returns `ε̂` in the
    /// rows layout.
    ///
    /// The unchecked inner pass, private: every caller goes through the typed [`Ncsnpp`]
    /// (directly or through [`AnyNcsnpp`]), which checks the batch, the times and the
    /// parameters and returns errors; the asserts here only guard that invariant.
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
        let (temb, temb_tape) = match &self.temb {
            Some((d0, d1)) => {
                let f: Vec<E> = self.time_features(t).into_iter().map(E::of).collect();
                let f: Mat<E, T> = dev.tensor_from_vec(f, (b, self.config.nf)).retaped::<T>();
                let e = silu(p.dense(f, d0));
                let e = silu(p.dense(e, d1));
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

/// Parameter tensors of one element type, in the order of [`NcsnppNet::specs`].
#[derive(Debug, Clone)]
pub struct Params<E: Elem>
where
    Cpu: Device<E>,
{
    /// One flat tensor per parameter.
    pub tensors: Vec<Vec1<E>>,
    shapes: Vec<Vec<usize>>,
}

impl<E: Elem> Params<E>
where
    Cpu: Device<E>,
{
    /// Parameter tensors from flat `f32` values; errors if the sizes do not match `specs`.
    pub fn from_values(dev: &Cpu, specs: &[ParamSpec], values: &[Vec<f32>]) -> Result<Self, ModelError> {
        if specs.len() != values.len() {
            return Err(ModelError::Mismatch(format!(
                "{} parameter tensors for a network with {}",
                values.len(),
                specs.len()
            )));
        }
        let mut tensors = Vec::with_capacity(specs.len());
        for (s, v) in specs.iter().zip(values) {
            if s.len() != v.len() {
                return Err(ModelError::Mismatch(format!(
                    "parameter {}: {} values, the network needs {:?}",
                    s.name,
                    v.len(),
                    s.shape
                )));
            }
            tensors.push(dev.tensor_from_vec(v.iter().map(|&a| E::of(a as f64)).collect(), (v.len(),)));
        }
        Ok(Self { tensors, shapes: specs.iter().map(|s| s.shape.clone()).collect() })
    }
    /// Overwrites the values in place (same shapes).
    pub fn set_values(&mut self, values: &[Vec<f32>]) {
        for (t, v) in self.tensors.iter_mut().zip(values) {
            let e: Vec<E> = v.iter().map(|&a| E::of(a as f64)).collect();
            t.copy_from(&e);
        }
    }
    fn vec<T: Tape<E, Cpu>>(&self, i: usize) -> Vec1<E, T> {
        self.tensors[i].retaped::<T>()
    }
    fn mat<T: Tape<E, Cpu>>(&self, i: usize) -> Mat<E, T> {
        let s = &self.shapes[i];
        self.tensors[i].retaped::<T>().reshape_like(&(s[0], s[1]))
    }
    fn dense<T: Tape<E, Cpu>>(&self, x: Mat<E, T>, d: &Dense) -> Mat<E, T> {
        debug_assert_eq!(x.shape().1, d.i);
        dense(x, self.mat(d.w), self.vec(d.b))
    }
    fn conv<T: Tape<E, Cpu>>(&self, x: Mat<E, T>, g: Grid, d: &Dense) -> Mat<E, T> {
        conv3x3(x, g, self.mat(d.w), self.vec(d.b))
    }
    fn group_norm<T: Tape<E, Cpu>>(&self, x: Mat<E, T>, g: Grid, n: &Gn) -> Mat<E, T> {
        group_norm(x, g, n.groups, self.vec(n.g), self.vec(n.b))
    }
    fn group_norm_silu<T: Tape<E, Cpu>>(&self, x: Mat<E, T>, g: Grid, n: &Gn) -> Mat<E, T> {
        group_norm_silu(x, g, n.groups, self.vec(n.g), self.vec(n.b))
    }
}

struct Ctx<'a, E: Elem>
where
    Cpu: Device<E>,
{
    p: &'a Params<E>,
    g: Grid,
    temb: Option<&'a Mat<E>>,
    dropout: f64,
    rng: Option<&'a mut rand_chacha::ChaCha8Rng>,
}

impl<E: Elem> Ctx<'_, E>
where
    Cpu: Device<E>,
{
    fn resblock<T: Tape<E, Cpu>>(&mut self, x: Mat<E, T>, g: Grid, rb: &ResBlock, sr: E) -> Mat<E, T> {
        let p = self.p;
        let mut h = p.group_norm_silu(x.with_empty_tape(), g, &rb.gn0);
        let mut x = x;
        let mut g = g;
        match rb.resample {
            Resample::Up => {
                h = upsample2(h, g);
                x = upsample2(x, g);
                g = g.up();
            }
            Resample::Down => {
                h = avg_pool2(h, g);
                x = avg_pool2(x, g);
                g = g.down();
            }
            Resample::None => {}
        }
        h = p.conv(h, g, &rb.conv0);
        if let (Some(d), Some(te)) = (&rb.temb, self.temb) {
            let e = p.dense(te.clone().retaped::<T>(), d);
            h = add_per_image(h, e, g.h * g.w);
        }
        h = p.group_norm_silu(h, g, &rb.gn1);
        if let (Some(rng), true) = (self.rng.as_deref_mut(), self.dropout > 0.0) {
            let n = h.shape().0 * h.shape().1;
            h = apply_mask(h, dropout_mask(n, self.dropout, rng));
        }
        h = p.conv(h, g, &rb.conv1);
        if let Some(s) = &rb.skip {
            x = p.dense(x, s);
        }
        add_scaled(x, h, sr)
    }

    fn attn<T: Tape<E, Cpu>>(&mut self, x: Mat<E, T>, g: Grid, a: &Attn, sr: E) -> Mat<E, T> {
        let p = self.p;
        let hn = p.group_norm(x.with_empty_tape(), g, &a.gn);
        let q = p.dense(hn.with_empty_tape(), &a.q);
        let k = p.dense(hn.with_empty_tape(), &a.k);
        let v = p.dense(hn, &a.v);
        let h = p.dense(attention(q, k, v, g), &a.o);
        add_scaled(x, h, sr)
    }
}

/// NCSN++ for `C × H × W` images fixed at compile time; the batch is a run-time
/// dimension. Feeding images of another shape is a type error.
///
/// ```
/// use dfdx::prelude::*;
/// use scoreprior_models::ncsnpp::{Ncsnpp, NcsnppConfig};
/// let net = Ncsnpp::<1, 8, 8>::new(NcsnppConfig::tiny()).unwrap();
/// let dev = Cpu::default();
/// let p = net.params::<f32>(&dev, &net.net().init_params(&mut rand::thread_rng())).unwrap();
/// let x: Tensor<(usize, Const<1>, Const<8>, Const<8>), f32, Cpu> = dev.zeros_like(&(2, Const, Const, Const));
/// let eps = net.forward(&p, x.clone(), &[0.5, 0.5]).unwrap();
/// assert_eq!(eps.shape().0, 2);
/// // One time per image, or an error (not a panic).
/// assert!(net.forward(&p, x, &[0.5]).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Ncsnpp<const C: usize, const H: usize, const W: usize> {
    net: NcsnppNet,
}

/// A batch of `C × H × W` images.
pub type Images<const C: usize, const H: usize, const W: usize, E, T = NoneTape> =
    Tensor<(usize, Const<C>, Const<H>, Const<W>), E, Cpu, T>;

impl<const C: usize, const H: usize, const W: usize> Ncsnpp<C, H, W> {
    /// Builds the network; errors if the configuration does not fit `C × H × W`.
    pub fn new(config: NcsnppConfig) -> Result<Self, ModelError> {
        Ok(Self { net: NcsnppNet::new(config, C, H, W)? })
    }
    /// Wraps a run-time network whose image shape must be `C × H × W`.
    pub fn from_net(net: NcsnppNet) -> Result<Self, ModelError> {
        if net.image_shape() != (C, H, W) {
            return Err(ModelError::Mismatch(format!(
                "network is for {:?} images, expected ({C}, {H}, {W})",
                net.image_shape()
            )));
        }
        Ok(Self { net })
    }
    /// The run-time network.
    pub fn net(&self) -> &NcsnppNet {
        &self.net
    }
    /// Parameter tensors from flat values.
    pub fn params<E: Elem>(&self, dev: &Cpu, values: &[Vec<f32>]) -> Result<Params<E>, ModelError>
    where
        Cpu: Device<E>,
    {
        Params::from_values(dev, self.net.specs(), values)
    }
    /// `ε̂(x, t)` for a batch of images (time `t[i]` for image `i`).
    ///
    /// # Errors
    /// [`ModelError::Mismatch`] unless there is one finite time per image and `p` holds this
    /// network's parameters (the image shape itself is checked by the type).
    #[rustfmt::skip] // one line: the compile-fail ui test quotes this signature
    pub fn forward<E: Elem, T: Tape<E, Cpu>>(&self, p: &Params<E>, x: Images<C, H, W, E, T>, t: &[f64]) -> Result<Images<C, H, W, E, T>, ModelError>
    where
        Cpu: Device<E>,
    {
        self.run(p, x, t, None)
    }

    /// [`Ncsnpp::forward`] with dropout (at the configuration's rate) drawn from `rng`: the
    /// training pass.
    pub fn forward_with_dropout<E: Elem, T: Tape<E, Cpu>>(
        &self,
        p: &Params<E>,
        x: Images<C, H, W, E, T>,
        t: &[f64],
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Result<Images<C, H, W, E, T>, ModelError>
    where
        Cpu: Device<E>,
    {
        self.run(p, x, t, Some(rng))
    }

    /// The same on flattened images `(b, C·H·W)` (C order within an image), as score models
    /// and data sets hold them: the batch is viewed as `Images<C, H, W>` (no copy) and run
    /// through the typed pass.
    ///
    /// # Errors
    /// [`ModelError::Mismatch`] if a row is not `C·H·W` long, and the errors of
    /// [`Ncsnpp::forward`].
    pub fn forward_flat<E: Elem, T: Tape<E, Cpu>>(
        &self,
        p: &Params<E>,
        x: Tensor<(usize, usize), E, Cpu, T>,
        t: &[f64],
        dropout: Option<&mut rand_chacha::ChaCha8Rng>,
    ) -> Result<Tensor<(usize, usize), E, Cpu, T>, ModelError>
    where
        Cpu: Device<E>,
    {
        let (b, d) = *x.shape();
        if d != C * H * W {
            return Err(ModelError::Mismatch(format!("images of {d} values, the network takes {C}x{H}x{W}")));
        }
        let images: Images<C, H, W, E, T> = x.reshape_like(&(b, Const, Const, Const));
        Ok(self.run(p, images, t, dropout)?.reshape_like(&(b, d)))
    }

    fn run<E: Elem, T: Tape<E, Cpu>>(
        &self,
        p: &Params<E>,
        x: Images<C, H, W, E, T>,
        t: &[f64],
        dropout: Option<&mut rand_chacha::ChaCha8Rng>,
    ) -> Result<Images<C, H, W, E, T>, ModelError>
    where
        Cpu: Device<E>,
    {
        let b = x.shape().0;
        if b != t.len() {
            return Err(ModelError::Mismatch(format!("{b} images but {} times (one time per image)", t.len())));
        }
        if let Some(bad) = t.iter().find(|v| !v.is_finite()) {
            return Err(ModelError::Mismatch(format!("non-finite time {bad}")));
        }
        if p.tensors.len() != self.net.specs().len() {
            return Err(ModelError::Mismatch(format!(
                "{} parameter tensors for a network of {}",
                p.tensors.len(),
                self.net.specs().len()
            )));
        }
        let g = Grid { b, h: H, w: W };
        let rows = nchw_to_rows(x, C, g);
        let out = self.net.forward_rows(p, rows, t, dropout);
        Ok(rows_to_nchw(out, g, (b, Const, Const, Const)))
    }
}
