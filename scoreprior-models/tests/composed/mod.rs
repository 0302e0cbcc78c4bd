//! Test oracles: the composed dfdx versions of the fused ops (each fused op must match its
//! composition in values and in every gradient). Test-only, hence outside the library.

use dfdx::prelude::*;
use scoreprior_models::ops::*;

/// `x.sigmoid() * x`.
pub fn silu<S: Shape, E: Elem, T: Tape<E, Cpu>>(x: Tensor<S, E, Cpu, T>) -> Tensor<S, E, Cpu, T>
where
    Cpu: Device<E>,
{
    let xe = x.with_empty_tape();
    x.sigmoid() * xe
}

/// `y + b.broadcast_like(y)`.
pub fn add_bias<E: Elem, T: Tape<E, Cpu>>(y: Mat<E, T>, b: Vec1<E, T>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let s = *y.shape();
    let bb: Mat<E, T> = b.broadcast_like::<(usize, usize), Axis<0>>(&s);
    y + bb
}

/// Group normalisation without the affine part: for each image and each of `groups`
/// channel groups, `(x − μ)/√(σ² + eps)` with `μ, σ²` over the group's channels and all
/// pixels. Backward: `dx = (dy − mean(dy) − x̂·mean(dy·x̂)) / √(σ² + eps)` per group.
pub fn group_norm_core<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid, groups: usize, eps: f64) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    assert!(rows == g.rows() && groups > 0 && c % groups == 0, "group_norm: bad shape");
    let (x, mut tape) = x.split_tape();
    let xv = x.as_vec();
    let hw = g.h * g.w;
    let cg = c / groups;
    let n = (hw * cg) as f64;
    let mut xhat = vec![E::zero(); rows * c];
    let mut inv = vec![0.0f64; g.b * groups];
    for i in 0..g.b {
        for gr in 0..groups {
            let (mut s, mut s2) = (0.0f64, 0.0f64);
            for p in 0..hw {
                let base = (i * hw + p) * c + gr * cg;
                for v in &xv[base..base + cg] {
                    let v = v.f64();
                    s += v;
                    s2 += v * v;
                }
            }
            let mu = s / n;
            let var = (s2 / n - mu * mu).max(0.0);
            let iv = 1.0 / (var + eps).sqrt();
            inv[i * groups + gr] = iv;
            for p in 0..hw {
                let base = (i * hw + p) * c + gr * cg;
                for j in base..base + cg {
                    xhat[j] = E::of((xv[j].f64() - mu) * iv);
                }
            }
        }
    }
    let out = x.device().tensor_from_vec(xhat.clone(), (rows, c));
    if T::OWNS_TAPE {
        let (xg, og) = (x.ghost(), out.ghost());
        let b = g.b;
        tape.add_backward_op(move |grads| {
            let go: Vec<E> = E::buf(grads.get_or_alloc_mut(&og)?).to_vec();
            let gi = E::buf(grads.get_or_alloc_mut(&xg)?);
            for i in 0..b {
                for gr in 0..groups {
                    let (mut m1, mut m2) = (0.0f64, 0.0f64);
                    for p in 0..hw {
                        let base = (i * hw + p) * c + gr * cg;
                        for j in base..base + cg {
                            m1 += go[j].f64();
                            m2 += go[j].f64() * Elem::f64(xhat[j]);
                        }
                    }
                    m1 /= n;
                    m2 /= n;
                    let iv = inv[i * groups + gr];
                    for p in 0..hw {
                        let base = (i * hw + p) * c + gr * cg;
                        for j in base..base + cg {
                            gi[j] += E::of((go[j].f64() - m1 - Elem::f64(xhat[j]) * m2) * iv);
                        }
                    }
                }
            }
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// `group_norm_core(x)·γ + β` with broadcasts.
pub fn group_norm<E: Elem, T: Tape<E, Cpu>>(
    x: Mat<E, T>,
    g: Grid,
    groups: usize,
    gamma: Vec1<E, T>,
    beta: Vec1<E, T>,
) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let y = group_norm_core(x, g, groups, 1e-6);
    let s = *y.shape();
    let gm: Mat<E, T> = gamma.broadcast_like::<(usize, usize), Axis<0>>(&s);
    add_bias(y * gm, beta)
}

/// `(a + b)·s`.
pub fn add_scaled<E: Elem, T: Tape<E, Cpu>>(a: Mat<E, T>, b: Mat<E, T>, s: E) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    (a + b) * s
}

/// `x + repeat_rows(e, k)`.
pub fn add_per_image<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, e: Mat<E, T>, k: usize) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    x + repeat_rows(e, k)
}
