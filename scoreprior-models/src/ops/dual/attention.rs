//! Self-attention `O = PV`, `P = softmax(QKᵀ/√c)` per image on a [`DualTape`]: tangent
//! `Ṗ = P⊙(Ṡ − rowsum(P⊙Ṡ))`, `Ȯ = ṖV + PV̇`; adjoint `dS = P⊙(dP − rowsum(P⊙dP))`, `dP = dO·Vᵀ`;
//! the adjoint's tangent differentiates every product in both factors (see [`dual_attention`]).

use dfdx::prelude::*;

use super::super::conv::count_flops;
use super::super::{Elem, Grid};
use super::{Dual, DualTape};

/// `out += op(a)·op(b)` with `op(a)` of shape `(m, kd)` and `op(b)` of `(kd, n)`, `op` the
/// transpose where `ta`/`tb` (row-major storage), through dfdx's GEMM (strided operands, so
/// the transposes are views). Why not a loop: even at the network's smallest attention
/// (16 × 16 × 32 per image) the GEMM kernel is several times faster, and the copies in and
/// out are `O(m·kd + kd·n + m·n)` against `O(m·kd·n)` work.
#[allow(clippy::too_many_arguments)]
fn mm<E: Elem>(a: &[E], b: &[E], m: usize, kd: usize, n: usize, ta: bool, tb: bool, out: &mut [E])
where
    Cpu: Device<E>,
{
    debug_assert!(a.len() == m * kd && b.len() == kd * n && out.len() == m * n);
    let dev = Cpu::default();
    let at = if ta {
        dev.tensor_from_vec(a.to_vec(), (kd, m)).permute::<_, Axes2<1, 0>>()
    } else {
        dev.tensor_from_vec(a.to_vec(), (m, kd))
    };
    let bt = if tb {
        dev.tensor_from_vec(b.to_vec(), (n, kd)).permute::<_, Axes2<1, 0>>()
    } else {
        dev.tensor_from_vec(b.to_vec(), (kd, n))
    };
    let y = super::super::values(&at.matmul(bt));
    super::super::tape::accumulate(&y, out);
}

/// Row-wise `P⊙(X − rowsum(P⊙X))` (the softmax Jacobian applied to `X`), returning it and
/// the row sums.
fn softmax_jvp<E: Elem>(p: &[E], x: &[E], n: usize) -> (Vec<E>, Vec<E>)
where
    Cpu: Device<E>,
{
    let mut out = vec![E::zero(); p.len()];
    let mut sums = Vec::with_capacity(p.len() / n);
    for ((o, pr), xr) in out.chunks_exact_mut(n).zip(p.chunks_exact(n)).zip(x.chunks_exact(n)) {
        let s = pr.iter().zip(xr).fold(E::zero(), |a, (p, x)| a + *p * *x);
        o.iter_mut().zip(pr).zip(xr).for_each(|((o, p), x)| *o = *p * (*x - s));
        sums.push(s);
    }
    (out, sums)
}

/// Single-head self-attention over the `h·w` positions of each image (see
/// [`attention`](fn@crate::ops::attention)) on a [`DualTape`]; `q, k, v` of `(b·hw, c)`.
///
/// With `S = QKᵀ/√c`, `P = softmax(S)` by rows, `O = PV`: tangent `Ṡ = (Q̇Kᵀ + QK̇ᵀ)/√c`,
/// `Ṗ = P⊙(Ṡ − rowsum(P⊙Ṡ))`, `Ȯ = ṖV + PV̇`; adjoint `dP = dO·Vᵀ`, `dV = PᵀdO`,
/// `dS = P⊙(dP − ρ)`, `ρ = rowsum(P⊙dP)`, `dQ = dS·K/√c`, `dK = dSᵀQ/√c`; its tangent
/// `ḋP = ḋO·Vᵀ + dO·V̇ᵀ`, `ḋV = ṖᵀdO + PᵀḋO`, `ḋS = Ṗ⊙(dP − ρ) + P⊙(ḋP − ρ̇)` with
/// `ρ̇ = rowsum(Ṗ⊙dP + P⊙ḋP)`, `ḋQ = (ḋS·K + dS·K̇)/√c`, `ḋK = (ḋSᵀQ + dSᵀQ̇)/√c`. The
/// terms in `ḋO` are the adjoint map of `ḋO`; the rest (with `ḋO = 0`) is the second-derivative
/// term, added to the tangent's block.
///
/// ```
/// use scoreprior_models::ops::dual::*;
/// use scoreprior_models::ops::Grid;
/// let g = Grid { b: 1, h: 1, w: 2 };
/// let mut tape = DualTape::new(1, 1);
/// // Zero keys: uniform weights, so every output row is the mean of the rows of v.
/// let q = tape.input(vec![1.0, -1.0, 0.0, 0.0], 2, 1);
/// let k = tape.input(vec![0.0; 4], 2, 1);
/// let v = tape.input(vec![2.0, 4.0, 1.0, 0.0], 2, 1);
/// let o = dual_attention(&mut tape, &q, &k, &v, g);
/// assert_eq!((o.values(), o.tangent(0)), (&[3.0, 3.0][..], &[0.5, 0.5][..]));
/// ```
pub fn dual_attention<E: Elem>(tape: &mut DualTape<E>, q: &Dual<E>, k: &Dual<E>, v: &Dual<E>, g: Grid) -> Dual<E>
where
    Cpu: Device<E>,
{
    let (rows, c) = (q.rows(), q.cols());
    assert!(rows == g.rows() && k.rows() == rows && v.rows() == rows, "dual_attention: rows");
    assert!(k.cols() == c && v.cols() == c, "dual_attention: channels");
    let nk = tape.tangents();
    let blocks = tape.adjoint_blocks();
    let targets: Vec<usize> = (0..nk).map(|kk| tape.tangent_block(kk)).collect();
    let hw = g.h * g.w;
    let (blk, pm) = (hw * c, hw * hw);
    count_flops(4 * g.b * hw * hw * c * (1 + 2 * nk));
    let sc = E::of(1.0 / (c as f64).sqrt());
    // The `(hw, c)` rows of image `i` in block `s` (0: values, 1 + kk: tangent kk).
    let img = move |x: &Dual<E>, s: usize, i: usize| -> Vec<E> {
        let o = s * rows * c + i * blk;
        x.stack()[o..o + blk].to_vec()
    };
    let mut out = vec![E::zero(); (nk + 1) * rows * c];
    // P per image, Ṗ per tangent and image.
    let mut pv = vec![E::zero(); g.b * pm];
    let mut pt = vec![E::zero(); nk * g.b * pm];
    for i in 0..g.b {
        let (qi, ki, vi) = (img(q, 0, i), img(k, 0, i), img(v, 0, i));
        let p = &mut pv[i * pm..(i + 1) * pm];
        mm(&qi, &ki, hw, c, hw, false, true, p);
        for row in p.chunks_exact_mut(hw) {
            let mx = row.iter().fold(E::neg_infinity(), |a, b| a.max(*b * sc));
            let mut s = E::zero();
            row.iter_mut().for_each(|x| {
                *x = (*x * sc - mx).exp();
                s += *x;
            });
            row.iter_mut().for_each(|x| *x /= s);
        }
        mm(p, &vi, hw, hw, c, false, false, &mut out[i * blk..(i + 1) * blk]);
        for kk in 0..nk {
            let (qt, kt, vt) = (img(q, kk + 1, i), img(k, kk + 1, i), img(v, kk + 1, i));
            let mut st = vec![E::zero(); pm];
            mm(&qt, &ki, hw, c, hw, false, true, &mut st);
            mm(&qi, &kt, hw, c, hw, false, true, &mut st);
            st.iter_mut().for_each(|x| *x *= sc);
            let (ptk, _) = softmax_jvp(p, &st, hw);
            let o = &mut out[(kk + 1) * rows * c + i * blk..(kk + 1) * rows * c + (i + 1) * blk];
            mm(&ptk, &vi, hw, hw, c, false, false, o);
            mm(p, &vt, hw, hw, c, false, false, o);
            pt[(kk * g.b + i) * pm..(kk * g.b + i + 1) * pm].copy_from_slice(&ptk);
        }
    }
    let out = tape.node(out, rows, c);
    let (qi, ki, vi) = (q.clone(), k.clone(), v.clone());
    tape.on_backward(&out, move |go, grads| {
        let bn = rows * c;
        let (mut dq, mut dk, mut dv) =
            (vec![E::zero(); blocks * bn], vec![E::zero(); blocks * bn], vec![E::zero(); blocks * bn]);
        let gimg = |s: usize, i: usize| s * bn + i * blk..s * bn + (i + 1) * blk;
        for i in 0..g.b {
            let (qv, kv, vv) = (img(&qi, 0, i), img(&ki, 0, i), img(&vi, 0, i));
            let p = &pv[i * pm..(i + 1) * pm];
            // The transposed Jacobian on every block (a tangent's `ḋO` part is this map too);
            // dP, dS and ρ of the first K adjoints kept for the second-derivative terms.
            let mut kept = Vec::with_capacity(nk);
            for j in 0..blocks {
                let d_o = &go[gimg(j, i)];
                let mut dp = vec![E::zero(); pm];
                mm(d_o, &vv, hw, c, hw, false, true, &mut dp);
                mm(p, d_o, hw, hw, c, true, false, &mut dv[gimg(j, i)]);
                let (mut ds, rho) = softmax_jvp(p, &dp, hw);
                ds.iter_mut().for_each(|x| *x *= sc);
                mm(&ds, &kv, hw, hw, c, false, false, &mut dq[gimg(j, i)]);
                mm(&ds, &qv, hw, hw, c, true, false, &mut dk[gimg(j, i)]);
                if j < nk {
                    kept.push((dp, ds, rho));
                }
            }
            for (kk, (dp, ds, rho)) in kept.into_iter().enumerate() {
                let (qt, kt, vt) = (img(&qi, kk + 1, i), img(&ki, kk + 1, i), img(&vi, kk + 1, i));
                let ptk = &pt[(kk * g.b + i) * pm..(kk * g.b + i + 1) * pm];
                let d_o = &go[gimg(kk, i)];
                let s = targets[kk];
                // With ḋO = 0: ḋP = dO·V̇ᵀ; ḋV = ṖᵀdO.
                let mut dpt = vec![E::zero(); pm];
                mm(d_o, &vt, hw, c, hw, false, true, &mut dpt);
                mm(ptk, d_o, hw, hw, c, true, false, &mut dv[gimg(s, i)]);
                // ḋS = Ṗ⊙(dP − ρ) + P⊙(ḋP − ρ̇), ρ̇ = rowsum(Ṗ⊙dP + P⊙ḋP), times 1/√c.
                let mut dst = vec![E::zero(); pm];
                for (r, &rh) in rho.iter().enumerate() {
                    let row = r * hw..(r + 1) * hw;
                    let rho_t = row.clone().fold(E::zero(), |a, x| a + ptk[x] * dp[x] + p[x] * dpt[x]);
                    for x in row {
                        dst[x] = (ptk[x] * (dp[x] - rh) + p[x] * (dpt[x] - rho_t)) * sc;
                    }
                }
                // ḋQ = ḋS·K + dS·K̇; ḋK = ḋSᵀQ + dSᵀQ̇ (dS already carries 1/√c).
                mm(&dst, &kv, hw, hw, c, false, false, &mut dq[gimg(s, i)]);
                mm(&ds, &kt, hw, hw, c, false, false, &mut dq[gimg(s, i)]);
                mm(&dst, &qv, hw, hw, c, true, false, &mut dk[gimg(s, i)]);
                mm(&ds, &qt, hw, hw, c, true, false, &mut dk[gimg(s, i)]);
            }
        }
        for (x, d) in [(&qi, dq), (&ki, dk), (&vi, dv)] {
            grads.add(x.key(), d);
        }
    });
    out
}
