//! Activations: SiLU `y = x·σ(x)` with `σ(x) = 1/(1 + e^{−x})` (backward
//! `dx = dy·(σ + x·σ·(1 − σ))`), and inverted dropout `y = x·m` with `m` 0 or `1/(1 − p)`.

use dfdx::prelude::*;

use super::tape::{put_grad, take_grad, values};
use super::{Elem, Mat};

/// `σ(x) = 1/(1 + e^{−x})`, as dfdx's `sigmoid`.
#[inline(always)]
pub(crate) fn sigmoid<E: Elem>(x: E) -> E
where
    Cpu: Device<E>,
{
    E::one() / (E::one() + (-x).exp())
}

/// SiLU / swish `y = x·σ(x)` as one op (dfdx's `x.sigmoid() * x` is two ops and two
/// tensors). Backward: `dx = dy·(σ + x·σ·(1 − σ))`, with `σ(x)` kept from the forward pass.
pub fn silu<S: Shape, E: Elem, T: Tape<E, Cpu>>(x: Tensor<S, E, Cpu, T>) -> Tensor<S, E, Cpu, T>
where
    Cpu: Device<E>,
{
    let shape = *x.shape();
    let (x, mut tape) = x.split_tape();
    let mut xv = values(&x);
    if !T::OWNS_TAPE {
        xv.iter_mut().for_each(|v| *v = *v * sigmoid(*v));
        return x.device().tensor_from_vec(xv, shape).put_tape(tape);
    }
    let sig: Vec<E> = xv.iter().map(|v| sigmoid(*v)).collect();
    let out: Vec<E> = xv.iter().zip(&sig).map(|(v, s)| *v * *s).collect();
    let out = x.device().tensor_from_vec(out, shape);
    let (xg, og) = (x.ghost(), out.ghost());
    tape.add_backward_op(move |grads| {
        let go = take_grad(grads.get_or_alloc_mut(&og)?);
        let gi = E::buf(grads.get_or_alloc_mut(&xg)?);
        for (((a, g), x), s) in gi.iter_mut().zip(&go).zip(&xv).zip(&sig) {
            *a += *g * (*s + *x * *s * (E::one() - *s));
        }
        put_grad(grads.get_or_alloc_mut(&og)?, go);
        Ok(())
    });
    out.put_tape(tape)
}

/// Multiplies by a fixed mask (dropout: entries 0 or `1/(1−p)`, drawn by the caller so
/// that runs are reproducible from the training RNG).
pub fn apply_mask<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, mask: Vec<E>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let s = *x.shape();
    let m = x.device().tensor_from_vec(mask, s);
    x * m
}

/// Draws an inverted-dropout mask with drop probability `p`.
pub fn dropout_mask<E: Elem>(len: usize, p: f64, rng: &mut impl rand::Rng) -> Vec<E>
where
    Cpu: Device<E>,
{
    let keep = E::of(1.0 / (1.0 - p));
    (0..len).map(|_| if rng.gen::<f64>() < p { E::zero() } else { keep }).collect()
}
