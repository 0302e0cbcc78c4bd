//! GroupNorm (and SiLU) on a [`DualTape`]: `x̂ = r(x − μ)`, `r = (σ² + eps)^{−1/2}` per image
//! and group, has the symmetric Jacobian `r(I − 𝟙𝟙ᵀ/n − x̂x̂ᵀ/n)`, so the tangent `x̂̇` and the
//! adjoint `dx` share one form; the adjoint's tangent adds `ṙ` and `φ''` (see [`dual_group_norm`]).

use dfdx::prelude::*;

use super::super::activation::sigmoid;
use super::super::{Elem, Grid};
use super::{Dual, DualTape};

/// Calls `f(index, channel, group)` for every value of a rows-layout block on `g`, `group`
/// being `image·groups + channel/(c/groups)` (loops by group, so no division per value).
#[inline(always)]
fn for_each_in_group(g: Grid, c: usize, groups: usize, mut f: impl FnMut(usize, usize, usize)) {
    let (hw, cg) = (g.h * g.w, c / groups);
    for i in 0..g.b {
        for p in 0..hw {
            let base = (i * hw + p) * c;
            for gr in 0..groups {
                for ch in gr * cg..(gr + 1) * cg {
                    f(base + ch, ch, i * groups + gr);
                }
            }
        }
    }
}

/// Per image and group, the means of the `N` values of `f(index, channel)` (in `f64`), in one
/// pass.
fn group_means<const N: usize>(
    g: Grid,
    c: usize,
    groups: usize,
    mut f: impl FnMut(usize, usize) -> [f64; N],
) -> Vec<[f64; N]> {
    let mut s = vec![[0.0; N]; g.b * groups];
    for_each_in_group(g, c, groups, |i, ch, gr| {
        let v = f(i, ch);
        for (a, b) in s[gr].iter_mut().zip(v) {
            *a += b;
        }
    });
    let n = (g.h * g.w * (c / groups)) as f64;
    s.iter_mut().for_each(|v| v.iter_mut().for_each(|x| *x /= n));
    s
}

/// `(φ(y), φ'(y), φ''(y))` of `φ(y) = y·σ(y)`: `yσ`, `σ + yσ'` and `σ'·(2 + y(1 − 2σ))`,
/// `σ' = σ(1 − σ)`.
#[inline(always)]
fn silu_derivs<E: Elem>(y: E) -> (E, E, E)
where
    Cpu: Device<E>,
{
    let s = sigmoid(y);
    let ds = s * (E::one() - s);
    let two = E::of(2.0);
    (y * s, s + y * ds, ds * (two + y * (E::one() - two * s)))
}

/// GroupNorm with scale `gamma`, shift `beta` and the given `eps`, followed by SiLU when
/// `with_silu`, on a [`DualTape`]. With `y = γx̂ + β` and `φ(y) = y·σ(y)` (or `y`):
///
/// - tangent `x̂̇ = r(ẋ − mean ẋ − x̂·mean(x̂ẋ))`, output tangent `φ'(y)·γ·x̂̇`;
/// - adjoint `dx = r(d − mean d − x̂·mean(x̂d))` with `d = γ·φ'(y)·dz`;
/// - its tangent, with `ṙ = −κr`, `κ = r·mean(x̂ẋ)` and `ḋ = γ(φ'·ḋz + φ''·γx̂̇·dz)`:
///   `ḋx = −κ·dx + r(ḋ − mean ḋ − x̂̇·mean(x̂d) − x̂·(mean(x̂̇d) + mean(x̂ḋ)))`.
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
pub fn dual_group_norm<E: Elem>(
    tape: &mut DualTape<E>,
    x: &Dual<E>,
    g: Grid,
    groups: usize,
    gamma: &[E],
    beta: &[E],
    eps: f64,
    with_silu: bool,
) -> Dual<E>
where
    Cpu: Device<E>,
{
    let c = x.cols();
    assert!(x.rows() == g.rows() && groups > 0 && c.is_multiple_of(groups), "dual_group_norm: bad shape");
    assert!(gamma.len() == c && beta.len() == c, "dual_group_norm: gamma/beta length");
    let (k, m) = (tape.tangents(), tape.cotangents());
    let n = x.block_len();
    let xv = x.values();
    let stats = group_means(g, c, groups, |i, _| {
        let v = xv[i].f64();
        [v, v * v]
    });
    let mu: Vec<f64> = stats.iter().map(|s| s[0]).collect();
    let r: Vec<f64> = stats.iter().map(|s| 1.0 / ((s[1] - s[0] * s[0]).max(0.0) + eps).sqrt()).collect();
    // x̂, φ'(y), φ''(y) per value (φ' = 1 and φ'' = 0 without the SiLU), and the output.
    let mut xhat = vec![E::zero(); n];
    let (mut d1, mut d2) = (vec![E::one(); n], vec![E::zero(); n]);
    let mut out = vec![E::zero(); (k + 1) * n];
    for_each_in_group(g, c, groups, |i, ch, gr| {
        let xh = E::of((xv[i].f64() - mu[gr]) * r[gr]);
        xhat[i] = xh;
        let y = xh * gamma[ch] + beta[ch];
        out[i] = if with_silu {
            let (z, a, b) = silu_derivs(y);
            (d1[i], d2[i]) = (a, b);
            z
        } else {
            y
        };
    });
    // Tangents: x̂̇ per tangent, and κ = r·mean(x̂ẋ) per tangent, image and group.
    let mut xhat_t = vec![E::zero(); k * n];
    let mut kappa = Vec::with_capacity(k);
    for kk in 0..k {
        let xt = x.tangent(kk);
        let ab = group_means(g, c, groups, |i, _| {
            let t = xt[i].f64();
            [t, xhat[i].f64() * t]
        });
        let ht = &mut xhat_t[kk * n..(kk + 1) * n];
        let ot = &mut out[(kk + 1) * n..(kk + 2) * n];
        for_each_in_group(g, c, groups, |i, ch, gr| {
            let h = E::of(r[gr] * (xt[i].f64() - ab[gr][0] - xhat[i].f64() * ab[gr][1]));
            ht[i] = h;
            ot[i] = d1[i] * gamma[ch] * h;
        });
        kappa.push(ab.iter().zip(&r).map(|(v, r)| v[1] * r).collect::<Vec<f64>>());
    }
    let out = tape.node(out, x.rows(), c);
    let xi = x.key();
    let gamma = gamma.to_vec();
    tape.on_backward(&out, move |go, grads| {
        let gi = grads.acc(xi);
        // Primal adjoints; for the first K keep d, mean(x̂d) and dx for their tangents.
        let mut kept = Vec::with_capacity(k);
        for j in 0..m {
            let dz = &go[j * n..(j + 1) * n];
            let mut d = vec![E::zero(); n];
            let mm = group_means(g, c, groups, |i, ch| {
                let v = gamma[ch] * d1[i] * dz[i];
                d[i] = v;
                [v.f64(), xhat[i].f64() * v.f64()]
            });
            let gj = &mut gi[j * n..(j + 1) * n];
            let mut dx = vec![E::zero(); if j < k { n } else { 0 }];
            for_each_in_group(g, c, groups, |i, _, gr| {
                let v = E::of(r[gr] * (d[i].f64() - mm[gr][0] - xhat[i].f64() * mm[gr][1]));
                gj[i] += v;
                if j < k {
                    dx[i] = v;
                }
            });
            if j < k {
                kept.push((d, mm, dx));
            }
        }
        for (kk, (d, mm, dx)) in kept.into_iter().enumerate() {
            let (dz, dzt) = (&go[kk * n..(kk + 1) * n], &go[(m + kk) * n..(m + kk + 1) * n]);
            let ht = &xhat_t[kk * n..(kk + 1) * n];
            // ḋ = γ(φ'·ḋz + φ''·ẏ·dz), ẏ = γ·x̂̇; then mean ḋ, mean(x̂ḋ), mean(x̂̇d).
            let mut dt = vec![E::zero(); n];
            let nn = group_means(g, c, groups, |i, ch| {
                let ga = gamma[ch];
                let v = ga * (d1[i] * dzt[i] + d2[i] * ga * ht[i] * dz[i]);
                dt[i] = v;
                [v.f64(), xhat[i].f64() * v.f64(), ht[i].f64() * d[i].f64()]
            });
            let kap = &kappa[kk];
            let gt = &mut gi[(m + kk) * n..(m + kk + 1) * n];
            for_each_in_group(g, c, groups, |i, _, gr| {
                let [n1, n2, n3] = nn[gr];
                let v = -kap[gr] * dx[i].f64()
                    + r[gr] * (dt[i].f64() - n1 - ht[i].f64() * mm[gr][1] - xhat[i].f64() * (n3 + n2));
                gt[i] += E::of(v);
            });
        }
    });
    out
}
