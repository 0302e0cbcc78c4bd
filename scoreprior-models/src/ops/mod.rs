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
                if !$crate::ops::baseline_forced()
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
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

#[cfg(test)]
thread_local! {
    /// Set by tests on their own thread: `avx2_dispatch!` bodies then run their baseline copy.
    static BASELINE_FORCED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread runs the baseline copies of `avx2_dispatch!` bodies: only a test can
/// ask for it, so outside tests this is the constant `false` and the dispatch reads no state.
#[cfg(test)]
#[inline]
pub(crate) fn baseline_forced() -> bool {
    BASELINE_FORCED.with(|f| f.get())
}

#[cfg(not(test))]
#[inline(always)]
pub(crate) const fn baseline_forced() -> bool {
    false
}

/// Runs `f` on this thread with the baseline copies of the `avx2_dispatch!` bodies, so that a
/// test on an AVX2 machine checks both (the copies are one source, built for two targets).
#[cfg(test)]
pub(crate) fn with_baseline<R>(f: impl FnOnce() -> R) -> R {
    BASELINE_FORCED.with(|b| b.set(true));
    let r = f();
    BASELINE_FORCED.with(|b| b.set(false));
    r
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

#[cfg(test)]
mod tests {
    use dfdx::prelude::*;

    use super::dual::{dual_group_norm, DualTape};
    use super::*;

    /// A fixed, irregular pattern in [−1.7, 1.7].
    fn pattern(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0) * 1.7).collect()
    }

    /// Values and input gradients of GroupNorm + SiLU and of a 3×3 convolution (whose backward
    /// scatters through `conv3x3_rows_transpose`), taped, and GroupNorm's dual op (values,
    /// tangent, VJP and its tangent).
    fn run() -> Vec<Vec<f32>> {
        let dev = Cpu::default();
        let g = Grid { b: 2, h: 4, w: 4 };
        let (c, co) = (8, 16);
        let x: Mat<f32> = dev.tensor_from_vec(pattern(g.rows() * c, 1), (g.rows(), c));
        let gamma: Vec1<f32> = dev.tensor_from_vec(pattern(c, 2), (c,));
        let beta: Vec1<f32> = dev.tensor_from_vec(pattern(c, 3), (c,));
        let w: Mat<f32> = dev.tensor_from_vec(pattern(9 * c * co, 4), (9 * c, co));
        let b: Vec1<f32> = dev.tensor_from_vec(pattern(co, 5), (co,));
        type Tp = OwnedTape<f32, Cpu>;
        let y = group_norm_silu(x.leaky_trace(), g, 2, gamma.retaped::<Tp>(), beta.retaped::<Tp>());
        let z = conv3x3(y, g, w.retaped::<Tp>(), b.retaped::<Tp>());
        let zv = z.with_empty_tape().as_vec();
        let ct: Mat<f32> = dev.tensor_from_vec(pattern(g.rows() * co, 6), (g.rows(), co));
        let grads = (z * ct).sum::<(), _>().backward();
        let mut out = vec![zv, grads.get(&x).as_vec()];
        let mut tape = DualTape::new(1, 1);
        let xd = tape.input(pattern(2 * g.rows() * c, 7), g.rows(), c);
        let yd = dual_group_norm(&mut tape, &xd, g, 2, &pattern(c, 2), &pattern(c, 3), 1e-6, true);
        out.push(yd.values().to_vec());
        out.push(yd.tangent(0).to_vec());
        let n = g.rows() * c;
        out.push(tape.backward(&yd, pattern(2 * n, 8)).get(&xd).to_vec());
        out
    }

    #[test]
    fn avx2_and_baseline_copies_agree_to_the_bit() {
        let wide = run();
        let plain = with_baseline(run);
        assert!(!baseline_forced());
        assert_eq!(wide.len(), plain.len());
        for (i, (a, b)) in wide.iter().zip(&plain).enumerate() {
            assert!(a.iter().all(|v| v.is_finite()) && a.iter().any(|v| *v != 0.0), "output {i} is trivial");
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same && a.len() == b.len(), "output {i}: the AVX2 and baseline copies differ");
        }
    }
}
