//! GroupNorm (and SiLU) on a [`DualTape`]: `x̂ = r(x − μ)`, `r = (σ² + eps)^{−1/2}` per image
//! and group, has the symmetric Jacobian `r(I − 𝟙𝟙ᵀ/n − x̂x̂ᵀ/n)`, so the tangent `x̂̇` and the
//! adjoint `dx` share one form; the adjoint's tangent adds `ṙ` and `φ''` (see [`dual_group_norm`]).

use dfdx::prelude::*;

use super::super::activation::sigmoid_in_place;
use super::super::{Elem, Grid};
use super::{Dual, DualTape};

/// Per image and channel group, the means of `N` per-value quantities, spread back over the
/// group's channels: `out[q][i·c + ch]` is the mean of quantity `q` over image `i`'s group of
/// channel `ch`. `row(r, acc)` adds row `r`'s values into the per-channel sums `acc` (`N`
/// arrays of `c`): loops along a pixel's contiguous channels with independent accumulators
/// vectorise, where one running sum per group was a chain of dependent additions. Sums in
/// `f64`, as the taped op.
fn channel_means<const N: usize>(
    g: Grid,
    c: usize,
    groups: usize,
    mut row: impl FnMut(usize, &mut [Vec<f64>; N]),
) -> [Vec<f64>; N] {
    let (hw, cg) = (g.h * g.w, c / groups);
    let n = (hw * cg) as f64;
    let mut acc: [Vec<f64>; N] = std::array::from_fn(|_| vec![0.0; c]);
    let mut out: [Vec<f64>; N] = std::array::from_fn(|_| vec![0.0; g.b * c]);
    for i in 0..g.b {
        acc.iter_mut().for_each(|a| a.fill(0.0));
        for p in 0..hw {
            row(i * hw + p, &mut acc);
        }
        for (o, a) in out.iter_mut().zip(&acc) {
            for (og, ag) in o[i * c..(i + 1) * c].chunks_exact_mut(cg).zip(a.chunks_exact(cg)) {
                og.fill(ag.iter().sum::<f64>() / n);
            }
        }
    }
    out
}

/// Row `r` of a per-value array of rows of `c` (sliced as `[r·c..][..c]`, whose length the
/// compiler knows to be `c`, so that loops over several rows drop their bounds checks and
/// vectorise; `[r·c..(r + 1)·c]` might overflow, and its length is not known).
#[inline(always)]
fn at<T>(v: &[T], r: usize, c: usize) -> &[T] {
    &v[r * c..][..c]
}

/// Row `r`'s slice of a per-image, per-channel array (`g.b·c`, images of `hw` rows).
#[inline(always)]
fn per_image(v: &[f64], r: usize, hw: usize, c: usize) -> &[f64] {
    at(v, r / hw, c)
}

/// `(φ(y), φ'(y), φ''(y))` of `φ(y) = y·σ(y)` from `y` and `s = σ(y)`: `yσ`, `σ + yσ'` and
/// `σ'·(2 + y(1 − 2σ))`, `σ' = σ(1 − σ)`.
#[inline(always)]
fn silu_derivs<E: Elem>(y: E, s: E) -> (E, E, E)
where
    Cpu: Device<E>,
{
    let ds = s * (E::one() - s);
    let two = E::of(2.0);
    (y * s, s + y * ds, ds * (two + y * (E::one() - two * s)))
}

avx2_dispatch! {
    /// GroupNorm with scale `gamma`, shift `beta` and the given `eps`, followed by SiLU when
    /// `with_silu`, on a [`DualTape`]. With `y = γx̂ + β` and `φ(y) = y·σ(y)` (or `y`):
    ///
    /// - tangent `x̂̇ = r(ẋ − mean ẋ − x̂·mean(x̂ẋ))`, output tangent `φ'(y)·γ·x̂̇`;
    /// - adjoint `dx = r(d − mean d − x̂·mean(x̂d))` with `d = γ·φ'(y)·dz`;
    /// - its tangent, with `ṙ = −κr`, `κ = r·mean(x̂ẋ)` and `ḋ = γ(φ'·ḋz + φ''·γx̂̇·dz)`:
    ///   `ḋx = −κ·dx + r(ḋ − mean ḋ − x̂̇·mean(x̂d) − x̂·(mean(x̂̇d) + mean(x̂ḋ)))`, which is the
    ///   adjoint map of `ḋz` plus the same expression with `ḋz = 0` (the second-derivative term).
    ///
    /// Means run over each image's group; statistics and means accumulate in `f64`, as the taped
    /// op.
    ///
    /// ```
    /// use scoreprior_models::ops::dual::*;
    /// use scoreprior_models::ops::Grid;
    /// let g = Grid { b: 1, h: 1, w: 4 };
    /// let mut tape = DualTape::new(1, 1);
    /// let x = tape.input(vec![1.0, 2.0, 4.0, 9.0, 1.0, 0.0, 0.0, 0.0], 4, 1);
    /// let y = dual_group_norm(&mut tape, &x, g, 1, &[1.0], &[0.0], 1e-6, false);
    /// // Normalised values and tangents have zero mean.
    /// assert!(y.values().iter().sum::<f64>().abs() < 1e-12);
    /// assert!(y.tangent(0).iter().sum::<f64>().abs() < 1e-12);
    /// // A constant cotangent (a shift of the output) pulls back to zero, as does its tangent.
    /// let gx = tape.backward(&y, vec![1.0; 8]).get(&x);
    /// assert!(gx.iter().all(|v| v.abs() < 1e-12));
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn dual_group_norm[E: Elem](
        tape: &mut DualTape<E>,
        x: &Dual<E>,
        g: Grid,
        groups: usize,
        gamma: &[E],
        beta: &[E],
        eps: f64,
        with_silu: bool,
    ) -> Dual<E>
    where [Cpu: Device<E>] {
        let c = x.cols();
        assert!(x.rows() == g.rows() && groups > 0 && c.is_multiple_of(groups), "dual_group_norm: bad shape");
        assert!(gamma.len() == c && beta.len() == c, "dual_group_norm: gamma/beta length");
        let k = tape.tangents();
        let n = x.block_len();
        let hw = g.h * g.w;
        let xv = x.values();
        let [mu, sq] = channel_means(g, c, groups, |r, [a, b]| {
            for ((a, b), v) in a.iter_mut().zip(b.iter_mut()).zip(at(xv, r, c)) {
                let v = v.f64();
                *a += v;
                *b += v * v;
            }
        });
        let rs: Vec<f64> = mu.iter().zip(&sq).map(|(m, s)| 1.0 / ((s - m * m).max(0.0) + eps).sqrt()).collect();
        // x̂, φ'(y), φ''(y) per value (φ' = 1 and φ'' = 0 without the SiLU), and the output.
        let mut xhat = vec![E::zero(); n];
        let (mut d1, mut d2) = (vec![E::one(); n], vec![E::zero(); n]);
        let mut out = vec![E::zero(); (k + 1) * n];
        for r in 0..n / c {
            let (m, rr, v) = (per_image(&mu, r, hw, c), per_image(&rs, r, hw, c), at(xv, r, c));
            let (xh, o) = (&mut xhat[r * c..][..c], &mut out[r * c..][..c]);
            for ((xh, v), (m, rr)) in xh.iter_mut().zip(v).zip(m.iter().zip(rr)) {
                *xh = E::of((v.f64() - m) * rr);
            }
            for ((o, xh), (ga, be)) in o.iter_mut().zip(xh.iter()).zip(gamma.iter().zip(beta)) {
                *o = *xh * *ga + *be;
            }
        }
        if with_silu {
            // σ(y) for all values at once, on the vectorised exponential.
            let mut sig = out[..n].to_vec();
            sigmoid_in_place(&mut sig);
            for (((o, s), a), b) in out[..n].iter_mut().zip(&sig).zip(d1.iter_mut()).zip(d2.iter_mut()) {
                (*o, *a, *b) = silu_derivs(*o, *s);
            }
        }
        // Tangents: x̂̇ per tangent, and κ = r·mean(x̂ẋ) per tangent, image and channel.
        let mut xhat_t = vec![E::zero(); k * n];
        let mut kappa = Vec::with_capacity(k);
        for kk in 0..k {
            let xt = x.tangent(kk);
            let [ta, tb] = channel_means(g, c, groups, |r, [a, b]| {
                for ((a, b), (t, xh)) in a.iter_mut().zip(b.iter_mut()).zip(at(xt, r, c).iter().zip(at(&xhat, r, c))) {
                    let t = t.f64();
                    *a += t;
                    *b += xh.f64() * t;
                }
            });
            let ht = &mut xhat_t[kk * n..(kk + 1) * n];
            let ot = &mut out[(kk + 1) * n..(kk + 2) * n];
            for r in 0..n / c {
                let (ta, tb, rr) = (per_image(&ta, r, hw, c), per_image(&tb, r, hw, c), per_image(&rs, r, hw, c));
                let (t, xh, d1) = (at(xt, r, c), at(&xhat, r, c), at(&d1, r, c));
                let (h, o) = (&mut ht[r * c..][..c], &mut ot[r * c..][..c]);
                for ((h, (t, xh)), (ta, (tb, rr))) in h.iter_mut().zip(t.iter().zip(xh)).zip(ta.iter().zip(tb.iter().zip(rr))) {
                    *h = E::of(rr * (t.f64() - ta - xh.f64() * tb));
                }
                for ((o, h), (d1, ga)) in o.iter_mut().zip(h.iter()).zip(d1.iter().zip(gamma)) {
                    *o = *d1 * *ga * *h;
                }
            }
            kappa.push(tb.iter().zip(&rs).map(|(b, r)| b * r).collect::<Vec<f64>>());
        }
        let out = tape.node(out, x.rows(), c);
        let xi = x.key();
        let gamma = gamma.to_vec();
        let blocks = tape.adjoint_blocks();
        let targets: Vec<usize> = (0..k).map(|kk| tape.tangent_block(kk)).collect();
        tape.on_backward(&out, move |go, grads| {
            let gi = grads.acc(xi);
            // The transposed Jacobian on every block (a tangent's `ḋz` part is this map too); for
            // the first K keep d, mean(x̂d) and dx for the second-derivative terms.
            let mut kept = Vec::with_capacity(k);
            for j in 0..blocks {
                let dz = &go[j * n..(j + 1) * n];
                let mut d = vec![E::zero(); n];
                for (r, dr) in d.chunks_exact_mut(c).enumerate() {
                    for (((dv, ga), d1), dz) in dr.iter_mut().zip(&gamma).zip(at(&d1, r, c)).zip(at(dz, r, c)) {
                        *dv = *ga * *d1 * *dz;
                    }
                }
                let [m0, m1] = channel_means(g, c, groups, |r, [a, b]| {
                    for ((a, b), (dv, xh)) in a.iter_mut().zip(b.iter_mut()).zip(at(&d, r, c).iter().zip(at(&xhat, r, c))) {
                        let dv = dv.f64();
                        *a += dv;
                        *b += xh.f64() * dv;
                    }
                });
                let gj = &mut gi[j * n..(j + 1) * n];
                let mut dx = vec![E::zero(); if j < k { n } else { 0 }];
                // Index loops over rows sliced to `c`: they vectorise, where an enumerated zip
                // writing `dx[r·c + p]` did not.
                for r in 0..n / c {
                    let (m0r, m1r, rr) = (per_image(&m0, r, hw, c), per_image(&m1, r, hw, c), per_image(&rs, r, hw, c));
                    let (dr, xr, gr) = (at(&d, r, c), at(&xhat, r, c), &mut gj[r * c..][..c]);
                    let terms = dr.iter().zip(xr).zip(m0r.iter().zip(m1r.iter().zip(rr)));
                    let v = |((dv, xh), (a, (b, rr))): ((&E, &E), (&f64, (&f64, &f64)))| {
                        E::of(rr * (dv.f64() - a - xh.f64() * b))
                    };
                    if j < k {
                        let dxr = &mut dx[r * c..][..c];
                        for (o, t) in dxr.iter_mut().zip(terms) {
                            *o = v(t);
                        }
                        gr.iter_mut().zip(dxr.iter()).for_each(|(g, d)| *g += *d);
                    } else {
                        for (g, t) in gr.iter_mut().zip(terms) {
                            *g += v(t);
                        }
                    }
                }
                if j < k {
                    kept.push((d, m1, dx));
                }
            }
            // The second-derivative terms, with ḋz = 0: ḋ = γ·φ''·ẏ·dz, ẏ = γ·x̂̇; then mean ḋ,
            // mean(x̂ḋ), mean(x̂̇d) (ḋ = 0 without the SiLU).
            for (kk, (d, mm1, dx)) in kept.into_iter().enumerate() {
                let dz = &go[kk * n..(kk + 1) * n];
                let ht = &xhat_t[kk * n..(kk + 1) * n];
                let mut dt = vec![E::zero(); n];
                if with_silu {
                    for (r, dr) in dt.chunks_exact_mut(c).enumerate() {
                        for (((v, ga), d2), (dz, h)) in
                            dr.iter_mut().zip(&gamma).zip(at(&d2, r, c)).zip(at(dz, r, c).iter().zip(at(ht, r, c)))
                        {
                            *v = *ga * *d2 * *ga * *h * *dz;
                        }
                    }
                }
                let [n1, n2, n3] = channel_means(g, c, groups, |r, [a, b, e]| {
                    for (((a, b), e), ((v, xh), (h, dv))) in a
                        .iter_mut()
                        .zip(b.iter_mut())
                        .zip(e.iter_mut())
                        .zip(at(&dt, r, c).iter().zip(at(&xhat, r, c)).zip(at(ht, r, c).iter().zip(at(&d, r, c))))
                    {
                        let v = v.f64();
                        *a += v;
                        *b += xh.f64() * v;
                        *e += h.f64() * dv.f64();
                    }
                });
                let kap = &kappa[kk];
                let tb = targets[kk];
                let gt = &mut gi[tb * n..(tb + 1) * n];
                for r in 0..n / c {
                    let (n1, n2, n3, mm1, kap, rr) = (
                        per_image(&n1, r, hw, c),
                        per_image(&n2, r, hw, c),
                        per_image(&n3, r, hw, c),
                        per_image(&mm1, r, hw, c),
                        per_image(kap, r, hw, c),
                        per_image(&rs, r, hw, c),
                    );
                    let (dxr, dtr, htr, xr) = (at(&dx, r, c), at(&dt, r, c), at(ht, r, c), at(&xhat, r, c));
                    let gr = &mut gt[r * c..][..c];
                    let data = gr.iter_mut().zip(dxr.iter().zip(dtr)).zip(htr.iter().zip(xr));
                    let coefs = kap.iter().zip(rr).zip(n1.iter().zip(mm1)).zip(n2.iter().zip(n3));
                    for (((g, (dxv, dtv)), (htv, xv)), (((kap, rr), (n1, mm1)), (n2, n3))) in data.zip(coefs) {
                        let v = -kap * dxv.f64() + rr * (dtv.f64() - n1 - htv.f64() * mm1 - xv.f64() * (n3 + n2));
                        *g += E::of(v);
                    }
                }
            }
        });
        out
    }
}
