//! NCSN++ (Song et al. 2021) noise-prediction network `ε̂(x, t)` with BigGAN residual
//! blocks, GroupNorm, SiLU, self-attention, down/up-sampling with skip connections and a
//! sinusoidal or Gaussian-Fourier time embedding. With the reference's conventions the
//! input `x ∈ [0,1]` is mapped to `2x − 1`, the time label is `999·t`, and the score is
//! `s(x, t) = −ε̂(x, t)/σ(t)`.
//!
//! Deviations from the reference (documented choices): resampling is naive (2×2 average
//! pooling / nearest upsampling) instead of the FIR `[1,3,3,1]` kernel, and the residual
//! input pyramid downsamples with average pooling followed by a 3×3 convolution.
//!
//! The network, `L = ch_mult.len()` levels whose side halves from one to the next:
//!
//! ```text
//! x → 2x − 1 → conv_in
//!   → down: per level, num_res_blocks × (ResBlock [→ Attn]), then (but at the last level) a
//!           down-sampling ResBlock [+ the input pyramid: pooled image → conv, added];
//!           conv_in's and every block's output kept as a skip
//!   → mid:  ResBlock → Attn → ResBlock
//!   → up:   per level, (num_res_blocks + 1) × ResBlock on [h | skip] [→ Attn], then (but at
//!           the first level) an up-sampling ResBlock
//!   → GroupNorm → SiLU → conv_out = ε̂
//! time: features(999·t) → Dense → SiLU → Dense → SiLU, projected into every ResBlock
//! ```
//! (`[…]`: where the configuration asks for it; sums scaled by 1/√2 under `skip_rescale`.)
//!
//! One file per block: the configuration (`ncsnpp/config.rs`), the parameters
//! (`params.rs`), the residual block (`resblock.rs`), the attention block (`attn.rs`), the
//! architecture and its inner pass (`net.rs`); this file holds the typed network
//! [`Ncsnpp<C, H, W>`], and [`AnyNcsnpp`] picks one for a shape known at run time.

use dfdx::prelude::*;

mod attn;
mod config;
mod net;
mod params;
mod resblock;

pub use crate::any_ncsnpp::AnyNcsnpp;
pub use config::{Embedding, NcsnppConfig, ProgressiveInput};
pub use net::NcsnppNet;
pub use params::{Init, ParamSpec, Params};

use crate::ops::*;
use crate::ModelError;

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
            return Err(ModelError::shape(
                "the network's image shape",
                format!("({C}, {H}, {W})"),
                format!("{:?}", net.image_shape()),
            ));
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
    /// [`ModelError::ShapeMismatch`] unless there is one time per image and `p` holds this
    /// network's parameters (the image shape itself is checked by the type),
    /// [`ModelError::OutOfRange`] for a non-finite time.
    // The compile-fail ui tests quote this signature as rustc prints it: kept on one line, at
    // a three-digit line number (the width of the number decides where rustc cuts the line).
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
    /// [`ModelError::ShapeMismatch`] if a row is not `C·H·W` long, and the errors of
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
            return Err(ModelError::shape("values per image", format!("{} ({C}x{H}x{W})", C * H * W), d));
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
            return Err(ModelError::shape(format!("times for {b} images (one time per image)"), b, t.len()));
        }
        if let Some(bad) = t.iter().find(|v| !v.is_finite()) {
            return Err(ModelError::out_of_range("time", *bad, "finite"));
        }
        if p.tensors.len() != self.net.specs().len() {
            return Err(ModelError::shape("parameter tensors", self.net.specs().len(), p.tensors.len()));
        }
        let g = Grid { b, h: H, w: W };
        let rows = nchw_to_rows(x, C, g);
        let out = self.net.forward_rows(p, rows, t, dropout);
        Ok(rows_to_nchw(out, g, (b, Const, Const, Const)))
    }
}
