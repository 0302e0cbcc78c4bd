//! Neural-network operations on dfdx's public API, in a "rows" layout: an activation of
//! `b` images of `h × w` pixels and `c` channels is a `(b·h·w, c)` matrix whose row
//! `(i·h + y)·w + x` holds pixel `(y, x)` of image `i`.
//!
//! In this layout a 3×3 convolution is `unfold(x) · W` with `unfold` the im2col gather
//! (zero padding, stride 1) and `W` a `(9·c_in, c_out)` matrix, so one large GEMM covers the
//! whole batch (dfdx's own conv2d is nightly-only and loops over images). That GEMM, with the
//! gather inside it, and the dense layers' are one op of our own ([`matmul`](mod@matmul)) on a
//! register-tiled kernel (`gemm.rs`: AVX-512, AVX2 + FMA or plain code, picked at run time),
//! since dfdx's `gemm` runs its AVX-512 kernels only on nightly Rust. The gathers,
//! pooling, nearest upsampling, GroupNorm and concatenation are custom ops whose backward
//! is registered with `Tape::add_backward_op`; everything else composes dfdx ops.
//!
//! One file per block: [`elem`] (element types, matrices), [`tape`] (custom-op plumbing),
//! [`layout`] (the grid, NCHW ↔ rows, row gathers), [`matmul`](mod@matmul) (the product op),
//! [`conv`], [`combine`] (sums and concatenation), [`resample`], [`norm`], [`activation`],
//! [`attention`](mod@attention) and [`embedding`]; [`dual`] holds their forward-over-reverse
//! versions (tangents of VJPs) on a tape of its own, for the exact second-order term of the
//! score. Every item is re-exported here: `ops::conv3x3` is `ops::conv::conv3x3`.

/// Defines `fn $name` whose body runs compiled for AVX2 + FMA where the CPU has them (runtime
/// detection) and as the baseline x86-64 build otherwise: the body is written twice, once in a
/// `#[target_feature]` function, whose closures (a backward op's included) inherit the
/// features. The crate is built for the baseline, whose loops vectorise on SSE2 (two `f64` or
/// four `f32` per instruction); elementwise passes run twice as wide this way without building
/// for one CPU. Generics and where clauses go in brackets:
/// `avx2_dispatch! { fn f[E: Elem](x: &[E]) -> E where [Cpu: Device<E>] { … } }`.
macro_rules! avx2_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident[$($gen:tt)*]($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty
        where [$($wc:tt)*] $body:block) => {
        $(#[$m])*
        $vis fn $name<$($gen)*>($($arg: $ty),*) -> $ret where $($wc)* {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn wide<$($gen)*>($($arg: $ty),*) -> $ret where $($wc)* $body
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the features were detected above.
                    return unsafe { wide($($arg),*) };
                }
            }
            #[allow(clippy::too_many_arguments)]
            fn plain<$($gen)*>($($arg: $ty),*) -> $ret where $($wc)* $body
            plain($($arg),*)
        }
    };
}

pub mod activation;
pub mod attention;
pub mod combine;
pub mod conv;
pub mod dual;
pub mod elem;
pub mod embedding;
mod gemm;
pub mod layout;
pub mod matmul;
pub mod norm;
pub mod resample;
pub mod tape;

pub use activation::{apply_mask, dropout_mask, silu};
pub use attention::attention;
pub use combine::{add_bias, add_per_image, add_scaled, concat_cols, repeat_rows};
pub use conv::{conv3x3, dense, unfold3x3, MATMUL_FLOPS};
pub use elem::{Elem, Mat, Vec1};
pub use embedding::{fourier_embedding, sinusoidal_embedding};
pub use layout::{nchw_to_rows, rows_to_nchw, Grid};
pub use matmul::matmul_op;
pub use norm::{group_norm, group_norm_silu};
pub use resample::{avg_pool2, upsample2};
pub use tape::{custom_binary, custom_unary, put_grad, take_grad, values};
