//! Element types and matrices: an activation is a `(rows, channels)` matrix [`Mat`], a
//! parameter a flat vector [`Vec1`]; [`Elem`] converts `E ↔ f64` (`E::of(v)` rounds to `E`,
//! `e.f64()` is exact).

use dfdx::prelude::*;

/// A `(rows, channels)` activation or weight matrix on the CPU.
pub type Mat<E, T = NoneTape> = Tensor<(usize, usize), E, Cpu, T>;
/// A flat parameter vector on the CPU.
pub type Vec1<E, T = NoneTape> = Tensor<(usize,), E, Cpu, T>;

/// The element types the networks run in (`f32` for speed, `f64` for accuracy).
pub trait Elem: Dtype + num_traits::Float + Send + Sync + std::fmt::Debug + super::gemm::GemmElem + 'static
where
    Cpu: Device<Self>,
{
    /// Converts from `f64` (rounding for `f32`).
    fn of(v: f64) -> Self;
    /// Converts to `f64`.
    fn f64(self) -> f64;
    /// The CPU gradient buffer as a slice (the storage type only normalises for a
    /// concrete element type, hence a method per type).
    fn buf(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut [Self];
    /// The CPU gradient buffer as its `Vec`, so that a backward op can move an output
    /// gradient out of [`Gradients`] (see [`take_grad`](super::take_grad)).
    fn vec(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut Vec<Self>;
}

/// The same four methods for `f32` and `f64` (`as f64` is the identity for `f64`).
macro_rules! impl_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            fn of(v: f64) -> Self {
                v as $t
            }
            fn f64(self) -> f64 {
                self as f64
            }
            fn buf(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut [Self] {
                &mut v[..]
            }
            fn vec(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut Vec<Self> {
                v
            }
        }
    )*};
}
impl_elem!(f32, f64);
