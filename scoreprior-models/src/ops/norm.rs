//! GroupNorm per image and channel group: `x̂ = (x − μ)/√(σ² + eps)`, `y = γ·x̂ + β`,
//! optionally followed by SiLU `y·σ(y)`; backward with `d = γ·dy`,
//! `dx = (d − mean(d) − x̂·mean(d·x̂))/√(σ² + eps)` per group.

use dfdx::prelude::*;

use super::activation::sigmoid_in_place;
use super::tape::{put_grad, take_grad, values};
use super::{Elem, Grid, Mat, Vec1};

avx2_dispatch! {
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
    /// Without `param_grads` the backward pass forms `dx` only (a pass differentiated in its
    /// input alone, as [`linear_in_x`](super::conv::linear_in_x)): `γ` and `β` get no gradient.
    pub(crate) fn group_norm_fused[E: Elem, T: Tape<E, Cpu>](
        x: Mat<E, T>,
        g: Grid,
        groups: usize,
        gamma: Vec1<E, T>,
        beta: Vec1<E, T>,
        eps: f64,
        with_silu: bool,
        param_grads: bool,
    ) -> Mat<E, T>
    where [Cpu: Device<E>] {
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
        // Per image, the group's mean and 1/σ spread over its channels, so that every inner loop
        // runs along a pixel's contiguous channels with per-channel operands and vectorises
        // (a loop over a group's slice of each row, with one accumulator per group, does not).
        let mut inv_c = vec![0.0f64; g.b * c];
        let (mut s1, mut s2, mut mu_c) = (vec![0.0f64; c], vec![0.0f64; c], vec![0.0f64; c]);
        for (img, inv_c) in xhat.chunks_exact_mut(hw * c).zip(inv_c.chunks_exact_mut(c)) {
            s1.fill(0.0);
            s2.fill(0.0);
            for row in img.chunks_exact(c) {
                for ((a, b), v) in s1.iter_mut().zip(s2.iter_mut()).zip(row) {
                    let v = v.f64();
                    *a += v;
                    *b += v * v;
                }
            }
            for ((m, iv), (a, b)) in
                mu_c.chunks_exact_mut(cg).zip(inv_c.chunks_exact_mut(cg)).zip(s1.chunks_exact(cg).zip(s2.chunks_exact(cg)))
            {
                let mu = a.iter().sum::<f64>() / n;
                let var = (b.iter().sum::<f64>() / n - mu * mu).max(0.0);
                m.fill(mu);
                iv.fill(1.0 / (var + eps).sqrt());
            }
            for row in img.chunks_exact_mut(c) {
                for ((v, m), iv) in row.iter_mut().zip(&mu_c).zip(inv_c.iter()) {
                    *v = E::of((v.f64() - m) * iv);
                }
            }
        }
        let mut out = vec![E::zero(); rows * c];
        let mut sig = Vec::new();
        for (orow, xrow) in out.chunks_exact_mut(c).zip(xhat.chunks_exact(c)) {
            for ((o, xh), (ga, be)) in orow.iter_mut().zip(xrow).zip(gv.iter().zip(&bv)) {
                *o = *xh * *ga + *be;
            }
        }
        if with_silu {
            // σ(y) kept for the SiLU backward (y itself is recomputed from x̂); without a tape,
            // a block at a time.
            let block = if T::OWNS_TAPE { rows * c } else { 4096 };
            sig = vec![E::zero(); block.min(rows * c)];
            for (i, ob) in out.chunks_mut(block).enumerate() {
                let s = if T::OWNS_TAPE { &mut sig[i * block..i * block + ob.len()] } else { &mut sig[..ob.len()] };
                s.copy_from_slice(ob);
                sigmoid_in_place(s);
                ob.iter_mut().zip(s.iter()).for_each(|(o, s)| *o *= *s);
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
                let (mut m1, mut m2) = (vec![0.0f64; c], vec![0.0f64; c]);
                let (mut a_c, mut b_c) = (vec![0.0f64; c], vec![0.0f64; c]);
                let mut dyr = vec![E::zero(); c];
                let gx = E::buf(grads.get_or_alloc_mut(&xg)?);
                for (i, (gx, go)) in gx.chunks_exact_mut(hw * c).zip(go.chunks_exact(hw * c)).enumerate() {
                    let xh = &xhat[i * hw * c..(i + 1) * hw * c];
                    m1.fill(0.0);
                    m2.fill(0.0);
                    for (p, ((gor, xhr), dr)) in
                        go.chunks_exact(c).zip(xh.chunks_exact(c)).zip(d.chunks_exact_mut(c)).enumerate()
                    {
                        if with_silu {
                            let sr = &sig[(i * hw + p) * c..(i * hw + p + 1) * c];
                            for ((((dy, go), s), xh), (ga, be)) in
                                dyr.iter_mut().zip(gor).zip(sr).zip(xhr).zip(gv.iter().zip(&bv))
                            {
                                let y = *xh * *ga + *be;
                                *dy = *go * (*s + y * *s * (E::one() - *s));
                            }
                        } else {
                            dyr.copy_from_slice(gor);
                        }
                        if param_grads {
                            for ((dy, xh), (db, dg)) in dyr.iter().zip(xhr).zip(dbeta.iter_mut().zip(dgamma.iter_mut())) {
                                *db += dy.f64();
                                *dg += (*dy * *xh).f64();
                            }
                        }
                        for ((((dy, xh), ga), dv), (a, b)) in
                            dyr.iter().zip(xhr).zip(&gv).zip(dr.iter_mut()).zip(m1.iter_mut().zip(m2.iter_mut()))
                        {
                            *dv = *dy * *ga;
                            *a += dv.f64();
                            *b += (*dv * *xh).f64();
                        }
                    }
                    for ((ac, bc), (a, b)) in a_c
                        .chunks_exact_mut(cg)
                        .zip(b_c.chunks_exact_mut(cg))
                        .zip(m1.chunks_exact(cg).zip(m2.chunks_exact(cg)))
                    {
                        ac.fill(a.iter().sum::<f64>() / n);
                        bc.fill(b.iter().sum::<f64>() / n);
                    }
                    let iv = &inv_c[i * c..(i + 1) * c];
                    for ((gxr, dr), xhr) in gx.chunks_exact_mut(c).zip(d.chunks_exact(c)).zip(xh.chunks_exact(c)) {
                        for ((((o, dv), xv), (a, b)), v) in
                            gxr.iter_mut().zip(dr).zip(xhr).zip(a_c.iter().zip(&b_c)).zip(iv)
                        {
                            *o += E::of((dv.f64() - a - xv.f64() * b) * v);
                        }
                    }
                }
                if param_grads {
                    let gga = E::buf(grads.get_or_alloc_mut(&gg)?);
                    gga.iter_mut().zip(&dgamma).for_each(|(a, v)| *a += E::of(*v));
                    let gbe = E::buf(grads.get_or_alloc_mut(&bg)?);
                    gbe.iter_mut().zip(&dbeta).for_each(|(a, v)| *a += E::of(*v));
                }
                put_grad(grads.get_or_alloc_mut(&og)?, go);
                Ok(())
            });
        }
        out.put_tape(tape)
    }
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
            group_norm_fused(x, g, groups, gamma, beta, GROUP_NORM_EPS, $with_silu, true)
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
