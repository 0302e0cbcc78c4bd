//! GroupNorm per image and channel group: `x̂ = (x − μ)/√(σ² + eps)`, `y = γ·x̂ + β`,
//! optionally followed by SiLU `y·σ(y)`; backward with `d = γ·dy`,
//! `dx = (d − mean(d) − x̂·mean(d·x̂))/√(σ² + eps)` per group.

use dfdx::prelude::*;

use super::activation::sigmoid;
use super::tape::{put_grad, take_grad, values};
use super::{Elem, Grid, Mat, Vec1};

/// Group normalisation with per-channel scale `γ` and shift `β`, optionally followed by
/// SiLU, as one op. For each image and each of `groups` channel groups (`m` values: the
/// group's channels at all pixels), `x̂ = (x − μ)/√(σ² + eps)` with `μ, σ²` the group's
/// mean and (biased) variance, `y = γ·x̂ + β`, and the output is `y` or `y·σ(y)`.
///
/// Backward, with `dy = dout` or `dout·(s + y·s·(1 − s))`, `s = σ(y)`:
/// `dβ = Σ dy`, `dγ = Σ dy·x̂` (over images and pixels), and with `d = γ·dy`,
/// `dx = (d − mean(d) − x̂·mean(d·x̂))/√(σ² + eps)` per group.
///
/// Statistics and gradient means accumulate in `f64` (for `f32` the sums over a group of
/// `hw·c/groups` values would otherwise lose digits); the per-element work stays in `E`.
fn group_norm_fused<E: Elem, T: Tape<E, Cpu>>(
    x: Mat<E, T>,
    g: Grid,
    groups: usize,
    gamma: Vec1<E, T>,
    beta: Vec1<E, T>,
    eps: f64,
    with_silu: bool,
) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    assert!(rows == g.rows() && groups > 0 && c % groups == 0, "group_norm: bad shape");
    assert!(gamma.shape().0 == c && beta.shape().0 == c, "group_norm: gamma/beta length");
    let (x, tx) = x.split_tape();
    let (gamma, tg) = gamma.split_tape();
    let (beta, tb) = beta.split_tape();
    let mut tape = tx.merge(tg).merge(tb);
    let (gv, bv) = (values(&gamma), values(&beta));
    // x̂ is computed in place of the copied input values.
    let mut xhat = values(&x);
    let hw = g.h * g.w;
    let cg = c / groups;
    let n = (hw * cg) as f64;
    let mut inv = vec![0.0f64; g.b * groups];
    let (mut mu, mut s2) = (vec![0.0f64; groups], vec![0.0f64; groups]);
    for (img, inv) in xhat.chunks_exact_mut(hw * c).zip(inv.chunks_exact_mut(groups)) {
        mu.fill(0.0);
        s2.fill(0.0);
        // Row by row (one pixel's channels are contiguous), each group's slice of the row.
        for row in img.chunks_exact(c) {
            for (gr, part) in row.chunks_exact(cg).enumerate() {
                for v in part {
                    let v = v.f64();
                    mu[gr] += v;
                    s2[gr] += v * v;
                }
            }
        }
        for gr in 0..groups {
            mu[gr] /= n;
            let var = (s2[gr] / n - mu[gr] * mu[gr]).max(0.0);
            inv[gr] = 1.0 / (var + eps).sqrt();
        }
        for row in img.chunks_exact_mut(c) {
            for (gr, part) in row.chunks_exact_mut(cg).enumerate() {
                for v in part {
                    *v = E::of((v.f64() - mu[gr]) * inv[gr]);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(rows * c);
    // σ(y) for the SiLU backward (y itself is recomputed from x̂).
    let mut sig = Vec::with_capacity(if with_silu && T::OWNS_TAPE { rows * c } else { 0 });
    for row in xhat.chunks_exact(c) {
        for ((xh, ga), be) in row.iter().zip(&gv).zip(&bv) {
            let y = *xh * *ga + *be;
            if with_silu {
                let s = sigmoid(y);
                if T::OWNS_TAPE {
                    sig.push(s);
                }
                out.push(y * s);
            } else {
                out.push(y);
            }
        }
    }
    let out = x.device().tensor_from_vec(out, (rows, c));
    if T::OWNS_TAPE {
        let (xg, gg, bg, og) = (x.ghost(), gamma.ghost(), beta.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad(grads.get_or_alloc_mut(&og)?);
            let (mut dgamma, mut dbeta) = (vec![0.0f64; c], vec![0.0f64; c]);
            // γ·dy of one image, for the second pass.
            let mut d = vec![E::zero(); hw * c];
            let (mut m1, mut m2) = (vec![0.0f64; groups], vec![0.0f64; groups]);
            let gx = E::buf(grads.get_or_alloc_mut(&xg)?);
            for (i, (gx, go)) in gx.chunks_exact_mut(hw * c).zip(go.chunks_exact(hw * c)).enumerate() {
                let xh = &xhat[i * hw * c..(i + 1) * hw * c];
                m1.fill(0.0);
                m2.fill(0.0);
                for (p, (gor, xhr)) in go.chunks_exact(c).zip(xh.chunks_exact(c)).enumerate() {
                    let dr = &mut d[p * c..(p + 1) * c];
                    for ch in 0..c {
                        let mut dy = gor[ch];
                        if with_silu {
                            let s = sig[(i * hw + p) * c + ch];
                            let y = xhr[ch] * gv[ch] + bv[ch];
                            dy = dy * (s + y * s * (E::one() - s));
                        }
                        dbeta[ch] += dy.f64();
                        dgamma[ch] += (dy * xhr[ch]).f64();
                        let dv = dy * gv[ch];
                        dr[ch] = dv;
                        m1[ch / cg] += dv.f64();
                        m2[ch / cg] += (dv * xhr[ch]).f64();
                    }
                }
                for gr in 0..groups {
                    m1[gr] /= n;
                    m2[gr] /= n;
                }
                let iv = &inv[i * groups..(i + 1) * groups];
                for ((gxr, dr), xhr) in gx.chunks_exact_mut(c).zip(d.chunks_exact(c)).zip(xh.chunks_exact(c)) {
                    for (gr, ((gxp, dp), xhp)) in
                        gxr.chunks_exact_mut(cg).zip(dr.chunks_exact(cg)).zip(xhr.chunks_exact(cg)).enumerate()
                    {
                        let (a, b, v) = (m1[gr], m2[gr], iv[gr]);
                        for ((o, dv), xv) in gxp.iter_mut().zip(dp).zip(xhp) {
                            *o += E::of((dv.f64() - a - xv.f64() * b) * v);
                        }
                    }
                }
            }
            let gga = E::buf(grads.get_or_alloc_mut(&gg)?);
            gga.iter_mut().zip(&dgamma).for_each(|(a, v)| *a += E::of(*v));
            let gbe = E::buf(grads.get_or_alloc_mut(&bg)?);
            gbe.iter_mut().zip(&dbeta).for_each(|(a, v)| *a += E::of(*v));
            put_grad(grads.get_or_alloc_mut(&og)?, go);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// The reference's GroupNorm eps.
pub(crate) const GROUP_NORM_EPS: f64 = 1e-6;

// The public GroupNorm ops: `group_norm_fused` with the reference's eps `1e-6`, without
// and with the SiLU (one signature, hence one definition).
macro_rules! group_norm_ops {
    ($($(#[$doc:meta])* $name:ident => $with_silu:expr;)*) => {$(
        $(#[$doc])*
        pub fn $name<E: Elem, T: Tape<E, Cpu>>(
            x: Mat<E, T>,
            g: Grid,
            groups: usize,
            gamma: Vec1<E, T>,
            beta: Vec1<E, T>,
        ) -> Mat<E, T>
        where
            Cpu: Device<E>,
        {
            group_norm_fused(x, g, groups, gamma, beta, GROUP_NORM_EPS, $with_silu)
        }
    )*};
}

group_norm_ops! {
    /// GroupNorm with per-channel scale `gamma` and shift `beta` (eps 1e-6 as the reference),
    /// one op (see [`group_norm_silu`] for the math).
    group_norm => false;
    /// `silu(group_norm(x))`, one op: the normalisation `x̂ = (x − μ)/√(σ² + eps)` per image
    /// and channel group, the affine `y = γ·x̂ + β` and SiLU `y·σ(y)`. Backward with
    /// `dy = dout·(s + y·s·(1 − s))`, `s = σ(y)`: `dβ = Σ dy`, `dγ = Σ dy·x̂`, and with
    /// `d = γ·dy`, `dx = (d − mean(d) − x̂·mean(d·x̂))/√(σ² + eps)` per group.
    group_norm_silu => true;
}
