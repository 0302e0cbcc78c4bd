//! Fused custom dfdx ops for the flow: row gathers (permutations and splits), per-row bias,
//! scalar ActNorm and the gain of the output layer. dfdx's generic broadcast kernels walk
//! strided indices element by element; these contiguous loops made a flow step several
//! times faster. Each op computes its output on raw data and registers its backward pass
//! with `Tape::add_backward_op`, adding into the gradients of its input and parameters.

use std::sync::Arc;

use dfdx::prelude::*;

use super::{Act, Param};

type Plain = Tensor<(usize, usize), f64, Cpu>;

/// The data of a contiguous tensor (a plain copy; dfdx's `as_vec` walks strided indices).
/// Every input of these ops is a fresh output of a dfdx op or a parameter, hence contiguous.
pub(crate) fn phys<S: Shape, T>(t: &Tensor<S, f64, Cpu, T>) -> Vec<f64> {
    let mut v = vec![0.0; t.shape().num_elements()];
    t.copy_into(&mut v);
    v
}

/// Wraps a raw output: `bwd(grad_out, grads, x)` must add `∂L/∂x` (and parameter gradients).
fn custom<F>(dev: &Cpu, x: Act, out: Vec<f64>, shape: (usize, usize), bwd: F) -> Act
where
    F: 'static + FnOnce(&[f64], &mut Gradients<f64, Cpu>, &Plain) -> Result<(), CpuError>,
{
    let (x, mut tape) = x.split_tape();
    let out = dev.tensor_from_vec(out, shape);
    let key = out.clone();
    tape.add_backward_op(move |grads| {
        let go = grads.get_or_alloc_mut(&key)?.to_vec();
        bwd(&go, grads, &x)
    });
    out.put_tape(tape)
}

fn add_into(grads: &mut Gradients<f64, Cpu>, t: &Plain, v: &[f64]) -> Result<(), CpuError> {
    let g = grads.get_or_alloc_mut(t)?;
    for (a, b) in g.iter_mut().zip(v) {
        *a += b;
    }
    Ok(())
}

fn add_into_param(grads: &mut Gradients<f64, Cpu>, p: &Param, v: &[f64]) -> Result<(), CpuError> {
    let g = grads.get_or_alloc_mut(p)?;
    for (a, b) in g.iter_mut().zip(v) {
        *a += b;
    }
    Ok(())
}

/// `out[r, :] = x[idx[r], :]` for a `(D, n)` input.
pub(crate) fn take_rows(dev: &Cpu, x: Act, idx: Arc<Vec<usize>>) -> Act {
    let (d, n) = *x.shape();
    let xv = phys(&x);
    let mut out = vec![0.0; idx.len() * n];
    for (r, &i) in idx.iter().enumerate() {
        out[r * n..(r + 1) * n].copy_from_slice(&xv[i * n..(i + 1) * n]);
    }
    let rows = idx.len();
    custom(dev, x, out, (rows, n), move |go, grads, x| {
        let mut gx = vec![0.0; d * n];
        for (r, &i) in idx.iter().enumerate() {
            for k in 0..n {
                gx[i * n + k] += go[r * n + k];
            }
        }
        add_into(grads, x, &gx)
    })
}

/// `out = x + b[:, None]`.
pub(crate) fn add_bias(dev: &Cpu, x: Act, b: &Param) -> Act {
    let (h, n) = *x.shape();
    let bv = phys(b);
    let mut out = phys(&x);
    for j in 0..h {
        for v in &mut out[j * n..(j + 1) * n] {
            *v += bv[j];
        }
    }
    let b = b.clone();
    custom(dev, x, out, (h, n), move |go, grads, x| {
        add_into(grads, x, go)?;
        let gb: Vec<f64> = (0..h).map(|j| go[j * n..(j + 1) * n].iter().sum()).collect();
        add_into_param(grads, &b, &gb)
    })
}

/// Scalar ActNorm: `y = x·exp(s) + loc` (or its inverse `(x − loc)·exp(−s)`).
pub(crate) fn actnorm(dev: &Cpu, x: Act, log_scale: &Param, loc: &Param, inverse: bool) -> Act {
    let shape = *x.shape();
    let s = phys(log_scale)[0];
    let l = phys(loc)[0];
    let xv = phys(&x);
    let e = if inverse { (-s).exp() } else { s.exp() };
    let out: Vec<f64> = xv.iter().map(|v| if inverse { (v - l) * e } else { v * e + l }).collect();
    let (ps, pl) = (log_scale.clone(), loc.clone());
    custom(dev, x, out, shape, move |go, grads, x| {
        let gx: Vec<f64> = go.iter().map(|g| g * e).collect();
        add_into(grads, x, &gx)?;
        // Forward: ∂/∂s = Σ g·x·e, ∂/∂loc = Σ g. Inverse: ∂/∂s = −Σ g·(x − loc)·e, ∂/∂loc = −Σ g·e.
        let (gs, gl) = if inverse {
            (-go.iter().zip(&xv).map(|(g, v)| g * (v - l) * e).sum::<f64>(), -go.iter().sum::<f64>() * e)
        } else {
            (go.iter().zip(&xv).map(|(g, v)| g * v * e).sum::<f64>(), go.iter().sum::<f64>())
        };
        add_into_param(grads, &ps, &[gs])?;
        add_into_param(grads, &pl, &[gl])
    })
}

/// Output-layer gain: `y = x·exp(3·g)[:, None]`.
pub(crate) fn gain(dev: &Cpu, x: Act, g: &Param) -> Act {
    let (h, n) = *x.shape();
    let e: Vec<f64> = phys(g).iter().map(|v| (3.0 * v).exp()).collect();
    let xv = phys(&x);
    let mut out = xv.clone();
    for j in 0..h {
        for v in &mut out[j * n..(j + 1) * n] {
            *v *= e[j];
        }
    }
    let g = g.clone();
    custom(dev, x, out, (h, n), move |go, grads, x| {
        let mut gx = vec![0.0; h * n];
        let mut gg = vec![0.0; h];
        for j in 0..h {
            for k in 0..n {
                let i = j * n + k;
                gx[i] = go[i] * e[j];
                gg[j] += 3.0 * go[i] * xv[i] * e[j];
            }
        }
        add_into(grads, x, &gx)?;
        add_into_param(grads, &g, &gg)
    })
}
