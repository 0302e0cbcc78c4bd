//! 2× resampling of rows-layout activations: average pooling `y(p) = ¼·Σ x(q)` over the
//! 2×2 block `q` of output pixel `p` (backward: `dx(q) += ¼·dy(p)`), and nearest
//! upsampling `y(y, x) = x(⌊y/2⌋, ⌊x/2⌋)` (backward: the sum over each 2×2 block).

use dfdx::prelude::*;

use super::layout::{for_each_tap, gather_rows};
use super::{custom_unary, Elem, Grid, Mat};

/// 2×2 average pooling (stride 2) of a rows-layout activation; `h`, `w` must be even.
pub fn avg_pool2<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    assert!(rows == g.rows() && g.h % 2 == 0 && g.w % 2 == 0, "avg_pool2 needs an even grid");
    let o = g.down();
    let map = move |i: usize, y: usize, xx: usize, k: usize| Some((i * g.h + 2 * y + k / 2) * g.w + 2 * xx + k % 2);
    let q = E::of(0.25);
    custom_unary(
        x,
        (o.rows(), c),
        move |xv| {
            let mut out = vec![E::zero(); o.rows() * c];
            for_each_tap(o, 4, map, |r, _, s| {
                for ch in 0..c {
                    out[r * c + ch] += q * xv[s * c + ch];
                }
            });
            out
        },
        move |go, gi| {
            for_each_tap(o, 4, map, |r, _, s| {
                for ch in 0..c {
                    gi[s * c + ch] += q * go[r * c + ch];
                }
            });
        },
    )
}

/// Nearest-neighbour 2× upsampling of a rows-layout activation.
pub fn upsample2<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    assert_eq!(x.shape().0, g.rows(), "upsample2: rows do not match the grid");
    let map = move |i: usize, y: usize, xx: usize, _: usize| Some((i * g.h + y / 2) * g.w + xx / 2);
    gather_rows(x, g.up(), 1, map)
}
