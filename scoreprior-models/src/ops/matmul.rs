//! The product `C = A·W` of an activation `A` (`m×k`) and a weight matrix `W` (`k×n`) as one
//! op on dfdx's tape, on the register-tiled kernel of `ops/gemm.rs`: backward
//! `dA += dC·Wᵀ` and `dW += Aᵀ·dC`. In [`conv3x3`](super::conv3x3) `A` is the im2col of the
//! op's input, gathered inside the op (and `dA` scattered back), never a tensor of its own.

use dfdx::prelude::*;

use super::conv::count_flops;
use super::gemm::{gemm, Lhs, Packed, Rhs, NR};
use super::layout::{for_each_tap_run_rows, for_each_tap_segment_rows};
use super::tape::{put_grad, take_grad, values};
use super::{Elem, Grid, Mat};

/// Which `A` the product multiplies: the input itself, or its 3×3 im2col on a grid.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    Input,
    Im2col(Grid),
}

/// `A·W` with `A` the input `a` (`m×k`) itself, on dfdx's tape (both operands
/// differentiable); dfdx's own `matmul` computes the same on `gemm`'s kernels. Both inputs
/// must be contiguous, as for every custom op (see [`custom_unary`](super::custom_unary)).
///
/// ```
/// use dfdx::prelude::*;
/// use scoreprior_models::ops::matmul_op;
/// let dev = Cpu::default();
/// let a: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0], (2, 2));
/// let w: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(vec![1.0, 0.0, 1.0, 1.0, 1.0, 0.0], (2, 3));
/// let c = matmul_op(a.leaky_trace(), w.clone().retaped());
/// assert_eq!(c.as_vec(), vec![3.0, 2.0, 1.0, 7.0, 4.0, 3.0]);
/// // dA = 1·Wᵀ: each row of A gets W's row sums.
/// let g = c.sum::<(), _>().backward();
/// assert_eq!(g.get(&a).as_vec(), vec![2.0, 2.0, 2.0, 2.0]);
/// ```
pub fn matmul_op<E: Elem, T: Tape<E, Cpu>>(a: Mat<E, T>, w: Mat<E, T>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    product(a, w, Source::Input, true)
}

/// Bench only: while set, the products go through dfdx's `matmul` as before this op existed
/// (the convolution as `unfold3x3(x)·W`), so that one process can time both paths
/// alternately. Never set by the library.
#[doc(hidden)]
pub static DFDX_PRODUCTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Rows of the im2col per block of the forward-only convolution: the block's `A` (at most
/// `9·64` columns here) then stays in L2 between being gathered and multiplied.
const IM2COL_ROWS: usize = 96;

/// The product op: `x` is the input (`A` itself or the image rows whose im2col is `A`).
/// Without `weight_grad` the backward pass forms `dA` only: a pass differentiated in its
/// input alone (a score's VJP) would spend a third of its products on `dW = Aᵀ·dC`, which
/// nothing reads, and the weight then has no gradient on the tape.
pub(crate) fn product<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, w: Mat<E, T>, lhs: Source, weight_grad: bool) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (m, c) = *x.shape();
    let (k, n) = *w.shape();
    let taps = match lhs {
        Source::Input => 1,
        Source::Im2col(g) => {
            assert_eq!(m, g.rows(), "conv3x3: rows do not match the grid");
            9
        }
    };
    assert_eq!(k, taps * c, "matmul: inner dimensions");
    if DFDX_PRODUCTS.load(std::sync::atomic::Ordering::Relaxed) {
        return match lhs {
            Source::Input => x.matmul(w),
            Source::Im2col(g) => super::unfold3x3(x, g).matmul(w),
        };
    }
    let (x, tx) = x.split_tape();
    let (w, tw) = w.split_tape();
    let mut tape = tx.merge(tw);
    let wv = values(&w);
    let packed = Packed::new(&wv, k, n, false);
    let mut out = vec![E::zero(); m * n];
    let xv = values(&x);
    match lhs {
        Source::Input => gemm(Lhs::rows(&xv, m), packed.rhs(), &mut out, n, false),
        Source::Im2col(g) => conv3x3_rows(&xv, g, c, packed.rhs(), &mut out),
    }
    let out = x.device().tensor_from_vec(out, (m, n));
    // `A` (or the input its im2col is gathered from) is kept for `dW` only.
    let xv = if weight_grad { xv } else { Vec::new() };
    if T::OWNS_TAPE {
        let (xg, wg, og) = (x.ghost(), w.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad(grads.get_or_alloc_mut(&og)?);
            // dA = dC·Wᵀ, into the input's gradient (through the im2col's transpose), and
            // dW = Aᵀ·dC: the reduction runs over the m rows; dC is read in place when its
            // rows are whole panels.
            let wt = Packed::new(&wv, n, k, true);
            let in_place = n > 0 && n.is_multiple_of(NR);
            count_flops(if weight_grad { 4 } else { 2 } * m * k * n);
            match lhs {
                Source::Input => {
                    gemm(Lhs::rows(&go, m), wt.rhs(), E::buf(grads.get_or_alloc_mut(&xg)?), k, true);
                    if !weight_grad {
                        put_grad(grads.get_or_alloc_mut(&og)?, go);
                        return Ok(());
                    }
                    let gw = E::buf(grads.get_or_alloc_mut(&wg)?);
                    if in_place {
                        gemm(Lhs::transposed(&xv, k), Rhs::in_place(&go, n), gw, n, true);
                    } else {
                        let pg = Packed::new(&go, m, n, false);
                        gemm(Lhs::transposed(&xv, k), pg.rhs(), gw, n, true);
                    }
                }
                Source::Im2col(g) => {
                    // Block by block of image rows, as the forward pass: each block of the
                    // im2col is gathered again for its share of dW, and each block of dA is
                    // scattered while in cache.
                    let mut gw =
                        if weight_grad { std::mem::take(E::vec(grads.get_or_alloc_mut(&wg)?)) } else { Vec::new() };
                    let gx = E::buf(grads.get_or_alloc_mut(&xg)?);
                    conv3x3_rows_transpose(&go, g, c, wt.rhs(), gx, &xv, |r0, rows, block| {
                        // dW's share of this block of rows, its im2col gathered again.
                        let gob = &go[r0 * n..(r0 + rows) * n];
                        if in_place {
                            gemm(Lhs::transposed(block, k), Rhs::in_place(gob, n), &mut gw, n, true);
                        } else {
                            let pg = Packed::new(gob, rows, n, false);
                            gemm(Lhs::transposed(block, k), pg.rhs(), &mut gw, n, true);
                        }
                    });
                    if weight_grad {
                        *E::vec(grads.get_or_alloc_mut(&wg)?) = gw;
                    }
                }
            }
            put_grad(grads.get_or_alloc_mut(&og)?, go);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// `out = im2col(x)·W` for the 3×3 convolution of the `c`-channel image rows `xv` on the grid
/// `g` (`W` packed, `9c × n`; `out` row-major `g.rows() × n`). The im2col is gathered and
/// multiplied block by block of image rows (whole rows, so that the gather stays a run of
/// contiguous copies), each block in cache: a whole `m × 9c` im2col would be written to
/// memory and read back.
pub(crate) fn conv3x3_rows<E: Elem>(xv: &[E], g: Grid, c: usize, w: Rhs<'_, E>, out: &mut [E])
where
    Cpu: Device<E>,
{
    let (k, n) = (9 * c, w.cols());
    let per = (IM2COL_ROWS / g.w).max(1);
    let mut cols = vec![E::zero(); per * g.w * k];
    let mut r0 = 0;
    while r0 < g.b * g.h {
        let nr = per.min(g.b * g.h - r0);
        let block = &mut cols[..nr * g.w * k];
        im2col_rows(xv, g, c, r0, nr, block);
        gemm(Lhs::rows(block, nr * g.w), w, &mut out[r0 * g.w * n..], n, false);
        r0 += nr;
    }
}

avx2_dispatch! {
    /// The transpose of [`conv3x3_rows`] in `x`: `gx += col2im(dC·Wᵀ)` for `dC` = `go` (`g.rows() ×
    /// n`) and `Wᵀ` packed (`n × 9c`), block by block of image rows, each block of `dC·Wᵀ`
    /// scattered while in cache (the scatter's sums at the AVX2 width where the CPU has it).
    /// When `xv` is not empty, `each(row0, rows, im2col)` also gets each block's im2col of `xv`
    /// (for the weight gradient), gathered again.
    pub(crate) fn conv3x3_rows_transpose[E: Elem](
        go: &[E],
        g: Grid,
        c: usize,
        wt: Rhs<'_, E>,
        gx: &mut [E],
        xv: &[E],
        each: impl FnMut(usize, usize, &[E]),
    ) -> ()
    where [Cpu: Device<E>] {
        let mut each = each;
        let k = 9 * c;
        let n = go.len() / g.rows().max(1);
        let per = (IM2COL_ROWS / g.w).max(1);
        let mut da = vec![E::zero(); per * g.w * k];
        let mut cols = vec![E::zero(); if xv.is_empty() { 0 } else { per * g.w * k }];
        let mut r0 = 0;
        while r0 < g.b * g.h {
            let nr = per.min(g.b * g.h - r0);
            let rows = nr * g.w;
            if !xv.is_empty() {
                let block = &mut cols[..rows * k];
                im2col_rows(xv, g, c, r0, nr, block);
                each(r0 * g.w, rows, block);
            }
            let block = &mut da[..rows * k];
            gemm(Lhs::rows(&go[r0 * g.w * n..(r0 * g.w + rows) * n], rows), wt, block, k, false);
            for_each_tap_run_rows(g, c, r0, nr, |o, s, len| {
                gx[s..s + len].iter_mut().zip(&block[o..o + len]).for_each(|(x, v)| *x += *v)
            });
            r0 += nr;
        }
    }
}

/// The im2col rows of image rows `r0..r0 + nr` (row `r` = image `r / h`, line `r % h`) of the
/// `c`-channel image rows `xv` on the grid `g`, into `out` (`nr·w × 9c`, zero where the
/// 3×3 neighbourhood leaves the image). Each value is written once: zeroing the whole block
/// first and then copying the taps over it wrote most of it twice.
fn im2col_rows<E: Elem>(xv: &[E], g: Grid, c: usize, r0: usize, nr: usize, out: &mut [E])
where
    Cpu: Device<E>,
{
    for_each_tap_segment_rows(g, c, r0, nr, |dst, src, len| match src {
        Some(s) => out[dst..dst + len].copy_from_slice(&xv[s..s + len]),
        None => out[dst..dst + len].fill(E::zero()),
    });
}
