//! Sums and concatenations of rows-layout matrices, each one op: `y + b` (a bias per
//! column; backward `db = Σ_rows dout`), `(a + b)·s`, `x + e` (a vector per image), row
//! repetition and `[a | b]` along channels.

use dfdx::prelude::*;

use super::layout::gather_rows;
use super::tape::accumulate;
use super::{custom_binary, Elem, Grid, Mat, Vec1};

/// Adds a bias vector `(n,)` to every row of `(rows, n)`: `out[r, j] = y[r, j] + b[j]`, as
/// one op. Backward: `dy = dout`, `db[j] = Σ_r dout[r, j]` (column sums). Why not
/// `y + b.broadcast_like(..)`: dfdx's generic broadcasting kernel walks both operands with
/// strided index arithmetic per element, forward and backward (the largest non-GEMM cost of
/// the network before fusing).
pub fn add_bias<E: Elem, T: Tape<E, Cpu>>(y: Mat<E, T>, b: Vec1<E, T>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, n) = *y.shape();
    assert_eq!(b.shape().0, n, "add_bias: bias length does not match the columns");
    custom_binary(
        y,
        b,
        (rows, n),
        move |mut out, bv| {
            for row in out.chunks_exact_mut(n) {
                accumulate(&bv, row);
            }
            out
        },
        accumulate,
        move |go, gb| {
            for row in go.chunks_exact(n) {
                accumulate(row, gb);
            }
        },
    )
}

/// `(a + b)·s` for two matrices of one shape and a constant `s` (the scaled residual sums
/// of NCSN++), as one op. Backward: `da = db = s·dout`.
pub fn add_scaled<E: Elem, T: Tape<E, Cpu>>(a: Mat<E, T>, b: Mat<E, T>, s: E) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let shape = *a.shape();
    assert_eq!(shape, *b.shape(), "add_scaled: shapes differ");
    let scaled = move |go: &[E], gi: &mut [E]| gi.iter_mut().zip(go).for_each(|(a, g)| *a += *g * s);
    custom_binary(
        a,
        b,
        shape,
        move |mut out, bv| {
            out.iter_mut().zip(&bv).for_each(|(o, b)| *o = (*o + *b) * s);
            out
        },
        scaled,
        scaled,
    )
}

/// Adds a per-image vector to every pixel: `out[i·k + p, j] = x[i·k + p, j] + e[i, j]` for
/// `x` of shape `(b·k, c)` and `e` of shape `(b, c)` (the time-embedding projection added
/// inside each residual block), as one op: `x + repeat_rows(e, k)` without the repeated
/// tensor. Backward: `dx = dout`, `de[i] = Σ_p dout[i·k + p]`.
pub fn add_per_image<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, e: Mat<E, T>, k: usize) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    let (b, c2) = *e.shape();
    assert!(c == c2 && rows == b * k, "add_per_image: shapes do not match");
    custom_binary(
        x,
        e,
        (rows, c),
        move |mut out, ev| {
            for (img, ei) in out.chunks_exact_mut(k * c).zip(ev.chunks_exact(c)) {
                for row in img.chunks_exact_mut(c) {
                    accumulate(ei, row);
                }
            }
            out
        },
        accumulate,
        move |go, ge| {
            for (img, gi) in go.chunks_exact(k * c).zip(ge.chunks_exact_mut(c)) {
                for row in img.chunks_exact(c) {
                    accumulate(row, gi);
                }
            }
        },
    )
}

/// Repeats each row of `(b, c)` `k` times: `(b·k, c)` (broadcasts a per-image vector to
/// every pixel). Backward sums over the copies.
pub fn repeat_rows<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, k: usize) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    // Image `i` as a 1 × k grid whose pixels all read row `i`.
    let b = x.shape().0;
    gather_rows(x, Grid { b, h: 1, w: k }, 1, |i, _, _, _| Some(i))
}

/// Concatenates `(r, c1)` and `(r, c2)` along channels: `(r, c1 + c2)`.
pub fn concat_cols<E: Elem, T: Tape<E, Cpu>>(a: Mat<E, T>, b: Mat<E, T>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (r, c1) = *a.shape();
    let (r2, c2) = *b.shape();
    assert_eq!(r, r2, "concat_cols: row counts differ");
    let c = c1 + c2;
    custom_binary(
        a,
        b,
        (r, c),
        move |av, bv| {
            let mut out = Vec::with_capacity(r * c);
            for i in 0..r {
                out.extend_from_slice(&av[i * c1..(i + 1) * c1]);
                out.extend_from_slice(&bv[i * c2..(i + 1) * c2]);
            }
            out
        },
        move |go, ga| {
            for (ga, go) in ga.chunks_exact_mut(c1).zip(go.chunks_exact(c)) {
                accumulate(&go[..c1], ga);
            }
        },
        move |go, gb| {
            for (gb, go) in gb.chunks_exact_mut(c2).zip(go.chunks_exact(c)) {
                accumulate(&go[c1..], gb);
            }
        },
    )
}
