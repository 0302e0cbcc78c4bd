//! The rows layout and its gathers: pixel `(y, x)` of image `i` on a `b × h × w` [`Grid`] is
//! row `(i·h + y)·w + x`; NCHW ↔ rows is the per-image transpose `(c, hw) ↔ (hw, c)`, and a
//! row gather copies whole source rows forward and adds them back backward.

use dfdx::prelude::*;

use super::tape::accumulate;
use super::{custom_unary, Elem, Mat};

/// Spatial layout of a rows-layout activation: `b` images of `h × w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Images.
    pub b: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Grid {
    /// Rows of an activation on this grid.
    pub fn rows(&self) -> usize {
        self.b * self.h * self.w
    }
    /// The grid after 2× downsampling.
    pub fn down(&self) -> Grid {
        Grid { b: self.b, h: self.h / 2, w: self.w / 2 }
    }
    /// The grid after 2× upsampling.
    pub fn up(&self) -> Grid {
        Grid { b: self.b, h: self.h * 2, w: self.w * 2 }
    }
}

/// Calls `f(r, k, s)` for every output row `r` of the grid `o` (pixel `(i, y, x)`, in row
/// order) and tap `k < taps` whose source row `s = src(i, y, x, k)` exists.
#[inline(always)]
pub(crate) fn for_each_tap(
    o: Grid,
    taps: usize,
    src: impl Fn(usize, usize, usize, usize) -> Option<usize>,
    mut f: impl FnMut(usize, usize, usize),
) {
    for i in 0..o.b {
        for y in 0..o.h {
            for x in 0..o.w {
                let r = (i * o.h + y) * o.w + x;
                for k in 0..taps {
                    if let Some(s) = src(i, y, x, k) {
                        f(r, k, s);
                    }
                }
            }
        }
    }
}

/// The im2col of a 3×3 convolution (zero padding, stride 1) on `blocks·g.b` images of `c`
/// channels as runs of contiguous copies: `f(dst, src, len)` for output offset `dst` (row
/// `r`, column `(3ky + kx)·c`) and input offset `src`. Why runs: the taps `kx = 0, 1, 2` of a
/// pixel read three neighbouring pixels of one source row, which are contiguous in the rows
/// layout, so each (pixel, ky) is one copy of up to `3c` values instead of three of `c`.
#[inline(always)]
pub(crate) fn for_each_tap_run(g: Grid, blocks: usize, c: usize, f: impl FnMut(usize, usize, usize)) {
    for_each_tap_run_rows(g, c, 0, blocks * g.b * g.h, f)
}

/// [`for_each_tap_run`] for the image rows `r0..r0 + nr` only (row `r` of image `r / h`), with
/// output offsets in that block's im2col (`nr·w × 9c`): the blocked products gather one block
/// at a time, while it stays in cache.
#[inline(always)]
pub(crate) fn for_each_tap_run_rows(g: Grid, c: usize, r0: usize, nr: usize, mut f: impl FnMut(usize, usize, usize)) {
    for_each_tap_segment_rows(g, c, r0, nr, |dst, src, len| {
        if let Some(src) = src {
            f(dst, src, len)
        }
    })
}

/// [`for_each_tap_run_rows`] with the zero padding as well: `f(dst, Some(src), len)` for each
/// run of copies and `f(dst, None, len)` for each run of the im2col that the 3×3
/// neighbourhood leaves outside the image, so that together they cover every output value once.
#[inline(always)]
pub(crate) fn for_each_tap_segment_rows(
    g: Grid,
    c: usize,
    r0: usize,
    nr: usize,
    mut f: impl FnMut(usize, Option<usize>, usize),
) {
    let (h, w, n) = (g.h, g.w, 9 * c);
    for (lr, r) in (r0..r0 + nr).enumerate() {
        let (i, y) = (r / h, r % h);
        for ky in 0..3 {
            let sy = (y + ky).checked_sub(1).filter(|sy| *sy < h);
            for x in 0..w {
                let dst = (lr * w + x) * n + 3 * ky * c;
                let Some(sy) = sy else {
                    f(dst, None, 3 * c);
                    continue;
                };
                // Source pixels x − 1 ..= x + 1 clipped to the row; the first is tap kx0.
                let (lo, hi) = (x.saturating_sub(1), (x + 2).min(w));
                let kx0 = lo + 1 - x;
                let len = (hi - lo) * c;
                if kx0 > 0 {
                    f(dst, None, kx0 * c);
                }
                f(dst + kx0 * c, Some(((i * h + sy) * w + lo) * c), len);
                if kx0 * c + len < 3 * c {
                    f(dst + kx0 * c + len, None, 3 * c - kx0 * c - len);
                }
            }
        }
    }
}

/// A row gather: output row `r` of the grid `o` (pixel `(i, y, x)`) holds in columns
/// `k·c..(k + 1)·c` the `c` values of input row `src(i, y, x, k)`, or zeros where that is
/// `None`, for `k < taps`: `(·, c)` → `(o.rows(), taps·c)`. Backward adds each block of the
/// output gradient into its source row.
pub(crate) fn gather_rows<E: Elem, T: Tape<E, Cpu>>(
    x: Mat<E, T>,
    o: Grid,
    taps: usize,
    src: impl Fn(usize, usize, usize, usize) -> Option<usize> + Copy + 'static,
) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let c = x.shape().1;
    let n = taps * c;
    custom_unary(
        x,
        (o.rows(), n),
        move |xv| {
            let mut out = vec![E::zero(); o.rows() * n];
            for_each_tap(o, taps, src, |r, k, s| {
                out[r * n + k * c..r * n + (k + 1) * c].copy_from_slice(&xv[s * c..(s + 1) * c]);
            });
            out
        },
        move |go, gi| {
            for_each_tap(o, taps, src, |r, k, s| {
                accumulate(&go[r * n + k * c..r * n + (k + 1) * c], &mut gi[s * c..(s + 1) * c]);
            });
        },
    )
}

/// Calls `f(n, r)` for every value of `b` images of `c` channels and `hw` pixels, with `n`
/// its NCHW index `(i·c + ch)·hw + p` and `r` its rows-layout index `(i·hw + p)·c + ch`.
#[inline(always)]
fn for_each_nchw_row(b: usize, c: usize, hw: usize, mut f: impl FnMut(usize, usize)) {
    for i in 0..b {
        for ch in 0..c {
            for p in 0..hw {
                f((i * c + ch) * hw + p, (i * hw + p) * c + ch);
            }
        }
    }
}

/// The per-image transpose between NCHW and rows (`to_rows`: NCHW → rows), as one op;
/// backward is the inverse transpose, added into the input gradient.
fn transpose_nchw<E: Elem, S: Shape, S2: Shape, T: Tape<E, Cpu>>(
    x: Tensor<S, E, Cpu, T>,
    shape: S2,
    c: usize,
    g: Grid,
    to_rows: bool,
) -> Tensor<S2, E, Cpu, T>
where
    Cpu: Device<E>,
{
    let (b, hw) = (g.b, g.h * g.w);
    // (output index, input index) from (NCHW index, rows index).
    let io = move |n: usize, r: usize| if to_rows { (r, n) } else { (n, r) };
    custom_unary(
        x,
        shape,
        move |xv| {
            let mut out = vec![E::zero(); xv.len()];
            for_each_nchw_row(b, c, hw, |n, r| {
                let (o, s) = io(n, r);
                out[o] = xv[s];
            });
            out
        },
        move |go, gi| {
            for_each_nchw_row(b, c, hw, |n, r| {
                let (o, s) = io(n, r);
                gi[s] += go[o];
            });
        },
    )
}

/// Converts `(b, c, h, w)` images (flattened, C order) to the rows layout.
pub fn nchw_to_rows<E: Elem, S: Shape, T: Tape<E, Cpu>>(x: Tensor<S, E, Cpu, T>, c: usize, g: Grid) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    assert_eq!(x.shape().num_elements(), g.b * c * (g.h * g.w));
    transpose_nchw(x, (g.rows(), c), c, g, true)
}

/// Converts a rows-layout activation back to `(b, c, h, w)` images of shape `S`.
pub fn rows_to_nchw<E: Elem, S: Shape, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid, shape: S) -> Tensor<S, E, Cpu, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    assert_eq!(rows, g.rows());
    transpose_nchw(x, shape, c, g, false)
}
