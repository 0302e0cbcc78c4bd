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

/// `σ(v)` in place, for every entry. In `f32` the exponential is a polynomial (Cephes'
/// `expf` reduction: `eˣ = 2ⁿ·e^r`, `|r| ≤ ln2/2`, degree-6 fit, within 2 ulp of `expf`)
/// that the compiler vectorises, under AVX2 + FMA where the CPU has them: a call to libm's
/// `expf` per value was a twentieth of a network pass.
pub(crate) fn sigmoid_in_place<E: Elem>(v: &mut [E])
where
    Cpu: Device<E>,
{
    if std::any::TypeId::of::<E>() == std::any::TypeId::of::<f32>() {
        // SAFETY: `E` is `f32`, so the slice's layout is that of `[f32]`.
        let v = unsafe { &mut *(v as *mut [E] as *mut [f32]) };
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected above.
            unsafe { sigmoid_f32_avx2(v) };
            return;
        }
        sigmoid_f32(v);
    } else {
        v.iter_mut().for_each(|x| *x = sigmoid(*x));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sigmoid_f32_avx2(v: &mut [f32]) {
    sigmoid_f32(v)
}

#[inline(always)]
fn sigmoid_f32(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = 1.0 / (1.0 + exp_f32(-*x)));
}

/// `eˣ` in `f32` by range reduction and a polynomial, branch-free so that it vectorises;
/// `x` is clamped to `[−87, 88]`, where `2ⁿ` stays a normal number (`σ` saturates there anyway).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `n·LN2_HI` is exact for the `n` that occur.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    // 2ⁿ from the integer `n` read off the mantissa of `n + 1.5·2²³` (an `as i32` would
    // saturate lane by lane and keep the loop from vectorising).
    let i = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    e * f32::from_bits(i.wrapping_add(127) << 23)
}

/// SiLU / swish `y = x·σ(x)` as one op (dfdx's `x.sigmoid() * x` is two ops and two
/// tensors). Backward: `dx = dy·(σ + x·σ·(1 − σ))`, with `σ(x)` kept from the forward pass.
pub fn silu<S: Shape, E: Elem, T: Tape<E, Cpu>>(x: Tensor<S, E, Cpu, T>) -> Tensor<S, E, Cpu, T>
where
    Cpu: Device<E>,
{
    let shape = *x.shape();
    let (x, mut tape) = x.split_tape();
    let xv = values(&x);
    let mut sig = xv.clone();
    sigmoid_in_place(&mut sig);
    let out: Vec<E> = xv.iter().zip(&sig).map(|(v, s)| *v * *s).collect();
    let out = x.device().tensor_from_vec(out, shape);
    if !T::OWNS_TAPE {
        return out.put_tape(tape);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The polynomial exponential against `f64`'s over the range σ uses, in units of `f32`'s
    /// epsilon relative to the value; σ through it against σ in `f64`; and the host's
    /// dispatched path against the plain one.
    #[test]
    fn the_vectorised_exponential_is_within_2_ulp_of_libm() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs() / f32::EPSILON as f64);
            x += 0.001_37;
        }
        assert!(worst < 2.0, "worst relative error {worst} ulp");
        let xs: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.05).collect();
        let mut s = xs.clone();
        sigmoid_in_place(&mut s);
        let mut plain = xs.clone();
        sigmoid_f32(&mut plain);
        for ((x, a), b) in xs.iter().zip(&s).zip(&plain) {
            let want = 1.0 / (1.0 + (-(*x as f64)).exp());
            // Below −87 the clamp holds σ at e⁻⁸⁸ ≈ 6e-39 instead of a subnormal or zero.
            let bound = if *x > -87.0 { 3.0 * f32::EPSILON as f64 * want } else { 1e-38 };
            assert!((*a as f64 - want).abs() <= bound, "σ({x}) = {a}, want {want}");
            assert!((a - b).abs() <= 2.0 * f32::EPSILON * b, "σ({x}): dispatched {a}, plain {b}");
        }
    }
}
