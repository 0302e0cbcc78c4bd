//! Single-head self-attention over the `h·w` positions of each image:
//! `softmax(q·kᵀ/√c)·v`, composed from dfdx's batched matmul and softmax.

use dfdx::prelude::*;

use super::conv::count_flops;
use super::{Elem, Grid, Mat};

/// Single-head self-attention over the `h·w` positions of each image (the reference's
/// `AttnBlockpp` core, without the norm and residual): `softmax(q kᵀ/√c) v`, with
/// `q, k, v` of shape `(b·hw, c)`. Returns `(b·hw, c)`.
pub fn attention<E: Elem, T: Tape<E, Cpu>>(q: Mat<E, T>, k: Mat<E, T>, v: Mat<E, T>, g: Grid) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *q.shape();
    let hw = g.h * g.w;
    count_flops(4 * g.b * hw * hw * c);
    let s3 = (g.b, hw, c);
    let q3 = q.reshape_like(&s3);
    let k3 = k.reshape_like(&s3);
    let v3 = v.reshape_like(&s3);
    let kt = k3.permute::<(usize, usize, usize), Axes3<0, 2, 1>>();
    let w = q3.matmul(kt) * E::of(1.0 / (c as f64).sqrt());
    let w = w.softmax::<Axis<2>>();
    let (out, mut tape) = w.matmul(v3).reshape_like(&(rows, c)).split_tape();
    if T::OWNS_TAPE {
        // dfdx's backward of the two products forms four (dS·K, dSᵀ·Q, dO·Vᵀ, Pᵀ·dO).
        let flops = 8 * g.b * hw * hw * c;
        tape.add_backward_op(move |_| {
            count_flops(flops);
            Ok(())
        });
    }
    out.put_tape(tape)
}
