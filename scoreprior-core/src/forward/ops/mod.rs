//! The primitive operators. Each is a struct implementing [`super::Op`] with an exact
//! adjoint (linear) or VJP (non-linear), and a matrix comment giving `A` and `Aᵀ`.
//!
//! | primitive | `A` | `Aᵀ` |
//! | --- | --- | --- |
//! | [`Identity`], [`Scale`] | `x`, `s·x` | same |
//! | [`Mask`] | `m ⊙ x`, `m ∈ {0,1}` | same |
//! | [`Subsample`] | `x[:, ::f, ::f]` | zero-fill |
//! | [`AvgPool`] | mean of `f×f` blocks | spread `y/f²` over the block |
//! | [`Crop`] / [`Pad`] | window / zero-pad | zero-pad / window |
//! | [`Conv2d`] | `Σ k[a,b] x[B(i+a−cᵢ), B(j+b−cⱼ)]` | scatter of the same taps |
//! | [`Fft2`] / [`Ifft2`] | centred orthonormal DFT (real → split complex) / its real part of the inverse | each other |
//! | [`DftLowpass`] | top-left `k×k` of the unnormalised DFT | `Re(F^H zero-fill)` |
//! | [`DenseMatrix`] | `G x` | `Gᵀ y` |
//! | [`Nudft`] | `Σ x_p e^{2πi(u l_p + v m_p)}` | `Re Σ_k e^{2πi(u_k l + v_k m)} conj(w_k)` |
//! | [`Nufft`] | the same sum by a non-uniform FFT (about 1e-7 relative) | its exact transpose |
//! | [`Magnitude`], [`ClosureProducts`] (non-linear) | `|z|`; closure phases, log closure amplitudes | VJPs |

mod basic;
mod conv;
mod dense;
mod fourier;
pub mod masks;
mod nonlinear;
mod nudft;
mod nufft;

pub use basic::{AvgPool, Crop, Identity, Mask, Pad, Scale, Subsample};
pub use conv::{Boundary, Conv2d, Kernel};
pub use dense::DenseMatrix;
pub use fourier::{DftLowpass, Fft2, FourierMask, Ifft2};
pub use nonlinear::{ClosureProducts, Magnitude};
pub use nudft::{Nudft, Pulse, DENSE_MAX_BYTES};
pub use nufft::Nufft;
