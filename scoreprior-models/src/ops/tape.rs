//! Custom ops on dfdx's tape: the output `y = f(x)` (or `f(a, b)`) is computed on host
//! buffers, and the registered backward op accumulates the vector–Jacobian products
//! `dx += (∂f/∂x)ᵀ dy` into the input gradients.

use dfdx::prelude::*;

use super::Elem;

/// The values of a contiguous tensor in one `memcpy` of its buffer. Why not `as_vec`: it
/// walks dfdx's strided iterator element by element (3.6% of the NCSN++ profile), and dfdx
/// has no public way to borrow a CPU tensor's data. Like the gradient buffers dfdx
/// allocates, this is the *physical* layout, hence the contiguity requirement of the custom
/// ops (every activation here is the fresh output of an op, so contiguous).
pub fn values<S: Shape, E: Elem, T>(x: &Tensor<S, E, Cpu, T>) -> Vec<E>
where
    Cpu: Device<E>,
{
    let mut v = vec![E::zero(); x.shape().num_elements()];
    x.copy_into(&mut v);
    v
}

/// Moves a gradient buffer's values out of [`Gradients`], leaving it empty: dfdx's public
/// API lends one gradient at a time (`get_or_alloc_mut`), and a backward op must read the
/// output gradient while it writes the input gradients. Moving it out instead of copying
/// it (`to_vec`) saves a copy per op; [`put_grad`] returns it afterwards, so a leaky tape
/// still reports it.
pub fn take_grad<E: Elem>(buf: &mut <Cpu as Storage<E>>::Vec) -> Vec<E>
where
    Cpu: Device<E>,
{
    std::mem::take(E::vec(buf))
}

/// Returns a buffer moved out by [`take_grad`].
pub fn put_grad<E: Elem>(buf: &mut <Cpu as Storage<E>>::Vec, v: Vec<E>)
where
    Cpu: Device<E>,
{
    *E::vec(buf) = v;
}

/// `dst += src`, elementwise (a forward sum, or a gradient passed through unchanged).
#[inline(always)]
pub(crate) fn accumulate<E: Elem>(src: &[E], dst: &mut [E])
where
    Cpu: Device<E>,
{
    dst.iter_mut().zip(src).for_each(|(a, v)| *a += *v);
}

/// A custom unary op: `fwd` maps the input values (logical C order) to the output values;
/// `bwd(grad_out, grad_in)` accumulates the input gradient. The input must be contiguous,
/// because dfdx allocates its gradient in the input's physical layout.
///
/// The input values are copied once (see [`values`]) and dropped after `fwd`, since none of
/// the gathers here needs them backward; the output gradient is moved, not copied.
pub fn custom_unary<E: Elem, S: Shape, S2: Shape, T: Tape<E, Cpu>>(
    x: Tensor<S, E, Cpu, T>,
    out_shape: S2,
    fwd: impl FnOnce(&[E]) -> Vec<E>,
    bwd: impl FnOnce(&[E], &mut [E]) + 'static,
) -> Tensor<S2, E, Cpu, T>
where
    Cpu: Device<E>,
{
    let (x, mut tape) = x.split_tape();
    let outv = fwd(&values(&x));
    assert_eq!(outv.len(), out_shape.num_elements(), "custom op produced the wrong number of values");
    let out = x.device().tensor_from_vec(outv, out_shape);
    if T::OWNS_TAPE {
        let (xg, og) = (x.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad(grads.get_or_alloc_mut(&og)?);
            bwd(&go, E::buf(grads.get_or_alloc_mut(&xg)?));
            put_grad(grads.get_or_alloc_mut(&og)?, go);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// A custom binary op: `fwd` maps the values of `a` and `b` (moved in, so that it may
/// write the output in place of one of them) to the output values; `bwd_a(grad_out,
/// grad_a)`, then `bwd_b(grad_out, grad_b)`, accumulate the input gradients. The inputs
/// must be contiguous (see [`custom_unary`]); the tapes are merged `a` first.
pub fn custom_binary<E: Elem, S1: Shape, S2: Shape, S3: Shape, T: Tape<E, Cpu>>(
    a: Tensor<S1, E, Cpu, T>,
    b: Tensor<S2, E, Cpu, T>,
    out_shape: S3,
    fwd: impl FnOnce(Vec<E>, Vec<E>) -> Vec<E>,
    bwd_a: impl FnOnce(&[E], &mut [E]) + 'static,
    bwd_b: impl FnOnce(&[E], &mut [E]) + 'static,
) -> Tensor<S3, E, Cpu, T>
where
    Cpu: Device<E>,
{
    let (a, ta) = a.split_tape();
    let (b, tb) = b.split_tape();
    let mut tape = ta.merge(tb);
    let outv = fwd(values(&a), values(&b));
    assert_eq!(outv.len(), out_shape.num_elements(), "custom op produced the wrong number of values");
    let out = a.device().tensor_from_vec(outv, out_shape);
    if T::OWNS_TAPE {
        let (ag, bg, og) = (a.ghost(), b.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad(grads.get_or_alloc_mut(&og)?);
            bwd_a(&go, E::buf(grads.get_or_alloc_mut(&ag)?));
            bwd_b(&go, E::buf(grads.get_or_alloc_mut(&bg)?));
            put_grad(grads.get_or_alloc_mut(&og)?, go);
            Ok(())
        });
    }
    out.put_tape(tape)
}
