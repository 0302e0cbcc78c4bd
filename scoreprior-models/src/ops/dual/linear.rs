//! The linear (and affine) ops on a [`DualTape`]: for `y = L x + c` the tangent is `L ẋ`, the
//! adjoint `Lᵀ a` and its tangent `Lᵀ ȧ` (no second derivative), so each applies one map to
//! every block of the stack; constants (biases, the time embedding) touch the values only.

use dfdx::prelude::*;

use super::super::conv::count_flops;
use super::super::gemm::Packed;
use super::super::layout::{for_each_tap, for_each_tap_run};
use super::super::matmul::{conv3x3_rows, conv3x3_rows_transpose, DFDX_PRODUCTS};
use super::super::tape::{accumulate, values};
use super::super::{Elem, Grid, Mat};
use super::{matmul_weight, Dual, DualTape, Key};

/// A linear (or affine) op whose forward map `fwd(stack_in, blocks)` and transpose
/// `bwd(adj_out, adj_in, blocks)` act block by block on stacks of `blocks` blocks (`fwd`
/// adds any constant to the values block only).
fn linear_op<E: Elem>(
    tape: &mut DualTape<E>,
    x: &Dual<E>,
    out_rows: usize,
    out_cols: usize,
    fwd: impl FnOnce(&[E], usize) -> Vec<E>,
    bwd: impl FnOnce(&[E], &mut [E], usize) + 'static,
) -> Dual<E>
where
    Cpu: Device<E>,
{
    let fb = tape.tangents() + 1;
    let bb = tape.adjoint_blocks();
    let out = fwd(x.stack(), fb);
    let out = tape.node(out, out_rows, out_cols);
    let xi = x.key();
    tape.on_backward(&out, move |go, g| bwd(&go, g.acc(xi), bb));
    out
}

/// `y = a·x + b` elementwise (the input map `2x − 1`); see [`DualTape`] for an example.
pub fn dual_affine<E: Elem>(tape: &mut DualTape<E>, x: &Dual<E>, a: E, b: E) -> Dual<E>
where
    Cpu: Device<E>,
{
    let n = x.block_len();
    linear_op(
        tape,
        x,
        x.rows(),
        x.cols(),
        |xs, _| xs.iter().enumerate().map(|(i, v)| if i < n { a * *v + b } else { a * *v }).collect(),
        move |go, gi, _| gi.iter_mut().zip(go).for_each(|(o, v)| *o += a * *v),
    )
}

/// A dense layer `y = x·W + b` (`W` of shape `(cols, out)`), the whole stack in one GEMM;
/// backward `a·Wᵀ` likewise.
///
/// ```
/// use scoreprior_models::ops::dual::*;
/// use dfdx::prelude::*;
/// let w: Tensor<(usize, usize), f64, Cpu> = Cpu::default().tensor_from_vec(vec![1.0, 2.0], (2, 1));
/// let mut tape = DualTape::new(1, 1);
/// let x = tape.input(vec![1.0, 1.0, 0.5, 0.0], 1, 2);
/// let y = dual_dense(&mut tape, &x, &w, &[10.0]);
/// assert_eq!((y.values(), y.tangent(0)), (&[13.0][..], &[0.5][..])); // the bias only in V
/// assert_eq!(tape.backward(&y, vec![1.0, 0.0]).get(&x), vec![1.0, 2.0, 0.0, 0.0]);
/// ```
pub fn dual_dense<E: Elem>(tape: &mut DualTape<E>, x: &Dual<E>, w: &Mat<E>, b: &[E]) -> Dual<E>
where
    Cpu: Device<E>,
{
    dense_keyed(tape, x.stack().to_vec(), x.key(), x.rows(), x.cols(), w, b)
}

/// [`dual_dense`] on a stack moved in (the im2col of a convolution, read by nothing else).
fn dense_keyed<E: Elem>(
    tape: &mut DualTape<E>,
    xs: Vec<E>,
    key: Key,
    rows: usize,
    cols: usize,
    w: &Mat<E>,
    b: &[E],
) -> Dual<E>
where
    Cpu: Device<E>,
{
    let (ci, co) = *w.shape();
    assert!(cols == ci && b.len() == co, "dual_dense: shapes");
    let blocks = xs.len() / (rows * cols);
    let mut y = matmul_weight(xs, blocks * rows, w, false);
    for row in y[..rows * co].chunks_exact_mut(co) {
        accumulate(b, row);
    }
    let out = tape.node(y, rows, co);
    let (wb, bb) = (w.clone(), tape.adjoint_blocks());
    tape.on_backward(&out, move |go, g| g.add(key, matmul_weight(go, bb * rows, &wb, true)));
    out
}

/// A linear op that visits the taps of every output pixel of every block (see
/// `layout::for_each_tap`): forward, `fwd(out_row, k, x_row)` for each row of the grid `o`
/// (`n` columns) and each tap `k` that reads input row `src(i, y, x, k)`; backward,
/// `bwd(gi_row, k, go_row)`, its transpose. The row gather and the average pooling differ only
/// in what one tap does.
#[allow(clippy::too_many_arguments)]
fn dual_tap_op<E: Elem>(
    tape: &mut DualTape<E>,
    x: &Dual<E>,
    o: Grid,
    taps: usize,
    n: usize,
    src: impl Fn(usize, usize, usize, usize) -> Option<usize> + Copy + 'static,
    fwd: impl Fn(&mut [E], usize, &[E]),
    bwd: impl Fn(&mut [E], usize, &[E]) + 'static,
) -> Dual<E>
where
    Cpu: Device<E>,
{
    let c = x.cols();
    // The blocks are a batch of `blocks·b` images: `src` maps image `i` of any block.
    let grid = move |blocks: usize| Grid { b: blocks * o.b, ..o };
    linear_op(
        tape,
        x,
        o.rows(),
        n,
        |xs, blocks| {
            let go = grid(blocks);
            let mut out = vec![E::zero(); go.rows() * n];
            for_each_tap(go, taps, src, |r, k, s| fwd(&mut out[r * n..(r + 1) * n], k, &xs[s * c..(s + 1) * c]));
            out
        },
        move |go, gi, blocks| {
            for_each_tap(grid(blocks), taps, src, |r, k, s| {
                bwd(&mut gi[s * c..(s + 1) * c], k, &go[r * n..(r + 1) * n])
            });
        },
    )
}

/// A row gather on every block (see `layout::gather_rows`): output row `r` of the grid `o`
/// holds in columns `k·c..(k + 1)·c` input row `src(i, y, x, k)` (zeros where `None`).
fn dual_gather<E: Elem>(
    tape: &mut DualTape<E>,
    x: &Dual<E>,
    o: Grid,
    taps: usize,
    src: impl Fn(usize, usize, usize, usize) -> Option<usize> + Copy + 'static,
) -> Dual<E>
where
    Cpu: Device<E>,
{
    let c = x.cols();
    dual_tap_op(
        tape,
        x,
        o,
        taps,
        taps * c,
        src,
        |out, k, xr| out[k * c..(k + 1) * c].copy_from_slice(xr),
        move |gi, k, go| accumulate(&go[k * c..(k + 1) * c], gi),
    )
}

/// 3×3 convolution (zero padding, stride 1): `im2col(x)·W + b` on every block of the stack, the
/// im2col gathered in cache-sized blocks of rows and never kept (the weights are constants here).
///
/// ```
/// use scoreprior_models::ops::dual::*;
/// use scoreprior_models::ops::Grid;
/// use dfdx::prelude::*;
/// // The centre tap alone: the identity.
/// let mut w = vec![0.0; 9];
/// w[4] = 1.0;
/// let w: Tensor<(usize, usize), f64, Cpu> = Cpu::default().tensor_from_vec(w, (9, 1));
/// let g = Grid { b: 1, h: 2, w: 2 };
/// let mut tape = DualTape::new(1, 1);
/// let x = tape.input((0..8).map(f64::from).collect(), 4, 1);
/// let y = dual_conv3x3(&mut tape, &x, g, &w, &[0.0]);
/// assert_eq!(y.stack(), x.stack());
/// ```
pub fn dual_conv3x3<E: Elem>(tape: &mut DualTape<E>, x: &Dual<E>, g: Grid, w: &Mat<E>, b: &[E]) -> Dual<E>
where
    Cpu: Device<E>,
{
    assert_eq!(x.rows(), g.rows(), "dual_conv3x3: rows do not match the grid");
    let c = x.cols();
    let (ci, co) = *w.shape();
    assert!(ci == 9 * c && b.len() == co, "dual_conv3x3: shapes");
    if DFDX_PRODUCTS.load(std::sync::atomic::Ordering::Relaxed) {
        // The bench's old path: the whole stack's im2col as a node, then the dense layer.
        let cols = linear_op(
            tape,
            x,
            g.rows(),
            9 * c,
            |xs, blocks| {
                let mut out = vec![E::zero(); blocks * g.rows() * 9 * c];
                for_each_tap_run(g, blocks, c, |dst, src, len| {
                    out[dst..dst + len].copy_from_slice(&xs[src..src + len])
                });
                out
            },
            move |go, gi, blocks| {
                for_each_tap_run(g, blocks, c, |dst, src, len| {
                    accumulate(&go[dst..dst + len], &mut gi[src..src + len])
                });
            },
        );
        let (key, rows, n) = (cols.key(), cols.rows(), cols.cols());
        return dense_keyed(tape, cols.into_stack(), key, rows, n, w, b);
    }
    // The weights are constants of the dual pass, so the backward needs no im2col: the
    // forward gathers it block by block into cache, the adjoint scatters `a·Wᵀ` likewise.
    let grid = move |blocks: usize| Grid { b: blocks * g.b, ..g };
    let (fb, bb) = (tape.tangents() + 1, tape.adjoint_blocks());
    let wv = values(w);
    count_flops(2 * fb * g.rows() * ci * co);
    let mut y = vec![E::zero(); fb * g.rows() * co];
    conv3x3_rows(x.stack(), grid(fb), c, Packed::new(&wv, ci, co, false).rhs(), &mut y);
    for row in y[..g.rows() * co].chunks_exact_mut(co) {
        accumulate(b, row);
    }
    let out = tape.node(y, g.rows(), co);
    let xi = x.key();
    tape.on_backward(&out, move |go, grads| {
        count_flops(2 * bb * g.rows() * ci * co);
        let wt = Packed::new(&wv, co, ci, true);
        conv3x3_rows_transpose(&go, grid(bb), c, wt.rhs(), grads.acc(xi), &[], |_, _, _| {});
    });
    out
}

/// Nearest-neighbour 2× upsampling.
///
/// ```
/// use scoreprior_models::ops::dual::*;
/// use scoreprior_models::ops::Grid;
/// let g = Grid { b: 1, h: 2, w: 2 };
/// let mut tape = DualTape::new(1, 1);
/// let x = tape.input((0..8).map(f64::from).collect(), 4, 1);
/// let u = dual_upsample2(&mut tape, &x, g);
/// // Pooling undoes it, on the tangent as well.
/// assert_eq!(dual_avg_pool2(&mut tape, &u, g.up()).stack(), x.stack());
/// ```
pub fn dual_upsample2<E: Elem>(tape: &mut DualTape<E>, x: &Dual<E>, g: Grid) -> Dual<E>
where
    Cpu: Device<E>,
{
    assert_eq!(x.rows(), g.rows(), "dual_upsample2: rows do not match the grid");
    dual_gather(tape, x, g.up(), 1, move |i, y, xx, _| Some((i * g.h + y / 2) * g.w + xx / 2))
}

/// 2×2 average pooling (stride 2).
///
/// ```
/// use scoreprior_models::ops::dual::*;
/// use scoreprior_models::ops::Grid;
/// let mut tape = DualTape::new(1, 1);
/// let x = tape.input(vec![1.0, 2.0, 3.0, 6.0, 0.0, 0.0, 0.0, 4.0], 4, 1);
/// let y = dual_avg_pool2(&mut tape, &x, Grid { b: 1, h: 2, w: 2 });
/// assert_eq!((y.values(), y.tangent(0)), (&[3.0][..], &[1.0][..]));
/// ```
pub fn dual_avg_pool2<E: Elem>(tape: &mut DualTape<E>, x: &Dual<E>, g: Grid) -> Dual<E>
where
    Cpu: Device<E>,
{
    assert!(
        x.rows() == g.rows() && g.h.is_multiple_of(2) && g.w.is_multiple_of(2),
        "dual_avg_pool2 needs an even grid"
    );
    let q = E::of(0.25);
    let map = move |i: usize, y: usize, xx: usize, k: usize| Some((i * g.h + 2 * y + k / 2) * g.w + 2 * xx + k % 2);
    dual_tap_op(
        tape,
        x,
        g.down(),
        4,
        x.cols(),
        map,
        move |out, _, xr| out.iter_mut().zip(xr).for_each(|(o, v)| *o += q * *v),
        move |gi, _, go| gi.iter_mut().zip(go).for_each(|(o, v)| *o += q * *v),
    )
}

/// The per-image transpose `(c, hw) ↔ (hw, c)` of every image of every block.
fn dual_transpose<E: Elem>(tape: &mut DualTape<E>, x: &Dual<E>, c: usize, g: Grid, to_rows: bool) -> Dual<E>
where
    Cpu: Device<E>,
{
    let hw = g.h * g.w;
    // Calls f(nchw index, rows index) for every value of `imgs` images.
    let each = move |imgs: usize, f: &mut dyn FnMut(usize, usize)| {
        for i in 0..imgs {
            for ch in 0..c {
                for p in 0..hw {
                    f((i * c + ch) * hw + p, (i * hw + p) * c + ch);
                }
            }
        }
    };
    let io = move |n: usize, r: usize| if to_rows { (r, n) } else { (n, r) };
    let (rows, cols) = if to_rows { (g.rows(), c) } else { (g.b, c * hw) };
    linear_op(
        tape,
        x,
        rows,
        cols,
        |xs, blocks| {
            let mut out = vec![E::zero(); xs.len()];
            each(blocks * g.b, &mut |n, r| {
                let (o, s) = io(n, r);
                out[o] = xs[s];
            });
            out
        },
        move |go, gi, blocks| {
            each(blocks * g.b, &mut |n, r| {
                let (o, s) = io(n, r);
                gi[s] += go[o];
            })
        },
    )
}

/// `(b, c·h·w)` images (C order) to the rows layout `(b·h·w, c)`.
///
/// ```
/// use scoreprior_models::ops::dual::*;
/// use scoreprior_models::ops::Grid;
/// let g = Grid { b: 1, h: 1, w: 2 };
/// let mut tape = DualTape::new(1, 1);
/// // Two channels of two pixels: [c0p0, c0p1, c1p0, c1p1], then the tangent.
/// let x = tape.input(vec![1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 1.0], 1, 4);
/// let r = dual_nchw_to_rows(&mut tape, &x, 2, g);
/// assert_eq!(r.values(), &[1.0, 3.0, 2.0, 4.0]);
/// assert_eq!(dual_rows_to_nchw(&mut tape, &r, g).stack(), x.stack());
/// ```
pub fn dual_nchw_to_rows<E: Elem>(tape: &mut DualTape<E>, x: &Dual<E>, c: usize, g: Grid) -> Dual<E>
where
    Cpu: Device<E>,
{
    assert_eq!(x.block_len(), g.rows() * c, "dual_nchw_to_rows: size");
    dual_transpose(tape, x, c, g, true)
}

/// The rows layout back to `(b, c·h·w)` images (see [`dual_nchw_to_rows`] for an example).
pub fn dual_rows_to_nchw<E: Elem>(tape: &mut DualTape<E>, x: &Dual<E>, g: Grid) -> Dual<E>
where
    Cpu: Device<E>,
{
    assert_eq!(x.rows(), g.rows(), "dual_rows_to_nchw: rows do not match the grid");
    dual_transpose(tape, x, x.cols(), g, false)
}

/// `(a + b)·s` for two stacks of one shape.
///
/// ```
/// use scoreprior_models::ops::dual::*;
/// let mut tape = DualTape::new(1, 1);
/// let a = tape.input(vec![1.0, 1.0], 1, 1);
/// let b = tape.input(vec![3.0, 0.0], 1, 1);
/// let y = dual_add_scaled(&mut tape, &a, &b, 0.5);
/// assert_eq!(y.stack(), &[2.0, 0.5]);
/// let g = tape.backward(&y, vec![1.0, 0.0]);
/// assert_eq!((g.get(&a), g.get(&b)), (vec![0.5, 0.0], vec![0.5, 0.0]));
/// ```
pub fn dual_add_scaled<E: Elem>(tape: &mut DualTape<E>, a: &Dual<E>, b: &Dual<E>, s: E) -> Dual<E>
where
    Cpu: Device<E>,
{
    assert!(a.rows() == b.rows() && a.cols() == b.cols(), "dual_add_scaled: shapes differ");
    let out: Vec<E> = a.stack().iter().zip(b.stack()).map(|(x, y)| (*x + *y) * s).collect();
    let out = tape.node(out, a.rows(), a.cols());
    let (ai, bi) = (a.key(), b.key());
    tape.on_backward(&out, move |mut go, g| {
        if s != E::one() {
            go.iter_mut().for_each(|v| *v *= s);
        }
        g.add(ai, go.clone());
        g.add(bi, go);
    });
    out
}

/// `[a | b]` along channels, block by block.
///
/// ```
/// use scoreprior_models::ops::dual::*;
/// let mut tape = DualTape::new(1, 1);
/// let a = tape.input(vec![1.0, 2.0], 1, 1);
/// let b = tape.input(vec![3.0, 4.0, 5.0, 6.0], 1, 2);
/// assert_eq!(dual_concat_cols(&mut tape, &a, &b).stack(), &[1.0, 3.0, 4.0, 2.0, 5.0, 6.0]);
/// ```
pub fn dual_concat_cols<E: Elem>(tape: &mut DualTape<E>, a: &Dual<E>, b: &Dual<E>) -> Dual<E>
where
    Cpu: Device<E>,
{
    assert_eq!(a.rows(), b.rows(), "dual_concat_cols: row counts differ");
    let (c1, c2) = (a.cols(), b.cols());
    let c = c1 + c2;
    let mut out = Vec::with_capacity(a.stack().len() + b.stack().len());
    for (ra, rb) in a.stack().chunks_exact(c1).zip(b.stack().chunks_exact(c2)) {
        out.extend_from_slice(ra);
        out.extend_from_slice(rb);
    }
    let out = tape.node(out, a.rows(), c);
    let (ai, bi) = (a.key(), b.key());
    tape.on_backward(&out, move |go, g| {
        for (ga, r) in g.acc(ai).chunks_exact_mut(c1).zip(go.chunks_exact(c)) {
            accumulate(&r[..c1], ga);
        }
        for (gb, r) in g.acc(bi).chunks_exact_mut(c2).zip(go.chunks_exact(c)) {
            accumulate(&r[c1..], gb);
        }
    });
    out
}

/// `x + e` with a constant per-image vector `e` (`(b, cols)`, e.g. the time embedding's
/// projection) added to every pixel of image `i`'s values; tangents and adjoints pass.
///
/// ```
/// use scoreprior_models::ops::dual::*;
/// let mut tape = DualTape::new(1, 1);
/// // One image of two pixels, one channel.
/// let x = tape.input(vec![1.0, 2.0, 0.5, 0.5], 2, 1);
/// assert_eq!(dual_add_per_image(&mut tape, &x, &[10.0], 2).stack(), &[11.0, 12.0, 0.5, 0.5]);
/// ```
pub fn dual_add_per_image<E: Elem>(tape: &mut DualTape<E>, x: &Dual<E>, e: &[E], pixels: usize) -> Dual<E>
where
    Cpu: Device<E>,
{
    let c = x.cols();
    assert_eq!(e.len() * pixels, x.block_len(), "dual_add_per_image: shapes do not match");
    let mut out = x.stack().to_vec();
    for (img, ei) in out[..x.block_len()].chunks_exact_mut(pixels * c).zip(e.chunks_exact(c)) {
        for row in img.chunks_exact_mut(c) {
            accumulate(ei, row);
        }
    }
    let out = tape.node(out, x.rows(), c);
    let xi = x.key();
    tape.on_backward(&out, move |go, g| g.add(xi, go));
    out
}
