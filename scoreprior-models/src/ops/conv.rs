//! Convolutions as matrix products: `conv3x3(x) = unfold(x)·W + b`, with `unfold` the im2col
//! gather of each pixel's 3×3 neighbourhood (zero padding, stride 1) and `W` of shape
//! `(9·c_in, c_out)`; the 1×1 convolution / dense layer is `x·W + b`.

use dfdx::prelude::*;

use super::layout::gather_rows;
use super::matmul::{product, Source};
use super::{add_bias, Elem, Grid, Mat, Vec1};

/// Multiply–add work done by [`conv3x3`], [`dense`] and [`attention`](fn@super::attention) so
/// far, in FLOPs (`2·m·k·n` per matrix product), for throughput reports: forward products when
/// the op runs, and the backward products a taped pass actually forms (`dA`, and `dW` only where
/// the weight's gradient is wanted) when its backward runs; relaxed atomic, negligible cost.
pub static MATMUL_FLOPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn count_flops(f: usize) {
    MATMUL_FLOPS.fetch_add(f as u64, std::sync::atomic::Ordering::Relaxed);
}

/// im2col for a 3×3 kernel with zero padding 1 and stride 1: `(b·h·w, c)` →
/// `(b·h·w, 9c)`, column `(ky·3 + kx)·c + ci` holding channel `ci` of pixel
/// `(y + ky − 1, x + kx − 1)`.
pub fn unfold3x3<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    assert_eq!(x.shape().0, g.rows(), "unfold3x3: rows do not match the grid");
    let Grid { h, w, .. } = g;
    // For each output row and tap, the source row (or None at the border).
    let src = move |i: usize, y: usize, xx: usize, k: usize| -> Option<usize> {
        let (ky, kx) = (k / 3, k % 3);
        let (sy, sx) = (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
        if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
            None
        } else {
            Some((i * h + sy as usize) * w + sx as usize)
        }
    };
    gather_rows(x, g, 9, src)
}

/// 3×3 convolution, stride 1, zero padding 1: `unfold3x3(x) · w + b`, with `w` of shape
/// `(9·c_in, c_out)`; the im2col is gathered inside the product op (see [`matmul`](mod@super::matmul)),
/// never a tensor of its own.
pub fn conv3x3<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid, w: Mat<E, T>, b: Vec1<E, T>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    count_flops(2 * g.rows() * w.shape().0 * w.shape().1);
    add_bias(product(x, w, Source::Im2col(g), true), b)
}

/// 1×1 convolution / dense layer on rows: `x · w + b`, `w` of shape `(c_in, c_out)` (the
/// product on [`matmul_op`](super::matmul_op)).
pub fn dense<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, w: Mat<E, T>, b: Vec1<E, T>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    count_flops(2 * x.shape().0 * w.shape().0 * w.shape().1);
    add_bias(product(x, w, Source::Input, true), b)
}

/// [`conv3x3`] (or, without a grid, [`dense`]) whose backward pass forms the input's gradient
/// only: for passes differentiated in `x` alone; the weight gets no gradient.
pub(crate) fn linear_in_x<E: Elem, T: Tape<E, Cpu>>(
    x: Mat<E, T>,
    g: Option<Grid>,
    w: Mat<E, T>,
    b: Vec1<E, T>,
) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    count_flops(2 * x.shape().0 * w.shape().0 * w.shape().1);
    let lhs = g.map_or(Source::Input, Source::Im2col);
    add_bias(product(x, w, lhs, false), b)
}
