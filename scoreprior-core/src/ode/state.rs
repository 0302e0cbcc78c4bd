//! What an ODE state must do: linear combinations `y ← base + Σ_j c_j k_j` and the scaled
//! squared error `Σ_i (e_i / (atol + rtol·max(|y0_i|, |y1_i|)))²` from which the
//! controller takes an RMS norm. Implemented for scalars, vectors, boxed slices, arrays
//! and tuples (augmented systems such as `(x, log p)`).

use smallvec::SmallVec;

/// The floating-point element types a state may hold.
pub trait Real: num_traits::Float + num_traits::FromPrimitive + Copy + Send + Sync + std::fmt::Debug + 'static {
    /// Converts a coefficient from `f64`.
    fn of(x: f64) -> Self;
    /// Converts to `f64` for norms.
    fn to_f64_(self) -> f64;
}
impl Real for f64 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn to_f64_(self) -> f64 {
        self
    }
}
impl Real for f32 {
    #[inline(always)]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64_(self) -> f64 {
        self as f64
    }
}

/// Terms of a linear combination; inline storage covers every tableau up to 16 stages,
/// so no step allocates.
pub type Terms<'a, S> = SmallVec<[(f64, &'a S); 16]>;

/// A vector-space element the integrator can step.
///
/// # Example
/// ```
/// use scoreprior_core::ode::State;
/// let mut y = vec![0.0_f64; 2];
/// let base = vec![1.0, 2.0];
/// let k = vec![10.0, 20.0];
/// y.set_lincomb(&base, &[(0.5, &k)]);
/// assert_eq!(y, vec![6.0, 12.0]);
/// ```
pub trait State: Clone + Send + Sync {
    /// Number of scalar components counted by the RMS norm.
    fn dim(&self) -> usize;
    /// `self ← base + Σ_j c_j · k_j`.
    fn set_lincomb(&mut self, base: &Self, terms: &[(f64, &Self)]);
    /// `Σ_i (err_i / (atol + rtol·max(|y0_i|, |y1_i|)))²`.
    fn scaled_sq_sum(err: &Self, y0: &Self, y1: &Self, atol: f64, rtol: f64) -> f64;
    /// Whether every component is finite.
    fn is_finite(&self) -> bool;

    /// `rms(err / (atol + rtol·max(|y0|, |y1|)))`, the error norm of the PID controller.
    fn scaled_rms(err: &Self, y0: &Self, y1: &Self, atol: f64, rtol: f64) -> f64 {
        let n = err.dim();
        if n == 0 {
            return 0.0;
        }
        (Self::scaled_sq_sum(err, y0, y1, atol, rtol) / n as f64).sqrt()
    }
}

#[inline]
fn lincomb_slice<T: Real>(out: &mut [T], base: &[T], terms: &[(f64, &[T])]) {
    // Fused loops for the common short combinations; longer ones as copy + axpy passes,
    // which vectorise better than one loop over a strided set of inputs.
    match terms {
        [] => out.copy_from_slice(base),
        [(c0, k0)] => {
            let c0 = T::of(*c0);
            for ((o, b), k) in out.iter_mut().zip(base).zip(k0.iter()) {
                *o = *b + c0 * *k;
            }
        }
        [(c0, k0), (c1, k1)] => {
            let (c0, c1) = (T::of(*c0), T::of(*c1));
            for (((o, b), k), l) in out.iter_mut().zip(base).zip(k0.iter()).zip(k1.iter()) {
                *o = *b + c0 * *k + c1 * *l;
            }
        }
        _ => {
            out.copy_from_slice(base);
            for pair in terms.chunks(2) {
                match pair {
                    [(c0, k0), (c1, k1)] => {
                        let (c0, c1) = (T::of(*c0), T::of(*c1));
                        for ((o, k), l) in out.iter_mut().zip(k0.iter()).zip(k1.iter()) {
                            *o = *o + c0 * *k + c1 * *l;
                        }
                    }
                    [(c0, k0)] => {
                        let c0 = T::of(*c0);
                        for (o, k) in out.iter_mut().zip(k0.iter()) {
                            *o = *o + c0 * *k;
                        }
                    }
                    _ => unreachable!("chunks(2) yields one or two items"),
                }
            }
        }
    }
}

#[inline]
fn scaled_sq_sum_slice<T: Real>(err: &[T], y0: &[T], y1: &[T], atol: f64, rtol: f64) -> f64 {
    let mut acc = 0.0;
    for ((e, a), b) in err.iter().zip(y0).zip(y1) {
        let scale = atol + rtol * a.abs().max(b.abs()).to_f64_();
        let r = e.to_f64_() / scale;
        acc += r * r;
    }
    acc
}

/// `State` for containers of `Real`s that deref to a slice (`Vec`, boxed slices, arrays):
/// every operation is the slice's.
macro_rules! slice_like_state {
    ($([$($gen:tt)*] $ty:ty),*) => {$(
        impl<$($gen)*> State for $ty {
            fn dim(&self) -> usize {
                self.len()
            }
            fn set_lincomb(&mut self, base: &Self, terms: &[(f64, &Self)]) {
                let t: SmallVec<[(f64, &[T]); 16]> = terms.iter().map(|(c, k)| (*c, &k[..])).collect();
                lincomb_slice(&mut self[..], &base[..], &t);
            }
            fn scaled_sq_sum(err: &Self, y0: &Self, y1: &Self, atol: f64, rtol: f64) -> f64 {
                scaled_sq_sum_slice(&err[..], &y0[..], &y1[..], atol, rtol)
            }
            fn is_finite(&self) -> bool {
                self.iter().all(|v| v.is_finite())
            }
        }
    )*};
}
slice_like_state!([T: Real] Vec<T>, [T: Real] Box<[T]>, [T: Real, const N: usize] [T; N]);

macro_rules! scalar_state {
    ($($ty:ty),*) => {$(
        impl State for $ty {
            fn dim(&self) -> usize {
                1
            }
            fn set_lincomb(&mut self, base: &Self, terms: &[(f64, &Self)]) {
                let mut v = *base;
                for (c, k) in terms {
                    v += (*c as $ty) * **k;
                }
                *self = v;
            }
            fn scaled_sq_sum(err: &Self, y0: &Self, y1: &Self, atol: f64, rtol: f64) -> f64 {
                scaled_sq_sum_slice(&[*err], &[*y0], &[*y1], atol, rtol)
            }
            fn is_finite(&self) -> bool {
                <$ty>::is_finite(*self)
            }
        }
    )*};
}
scalar_state!(f32, f64);

macro_rules! tuple_state {
    ($(($($name:ident $idx:tt),+))*) => {$(
        impl<$($name: State),+> State for ($($name,)+) {
            fn dim(&self) -> usize {
                0 $(+ self.$idx.dim())+
            }
            fn set_lincomb(&mut self, base: &Self, terms: &[(f64, &Self)]) {
                $(
                    let t: Terms<'_, $name> = terms.iter().map(|(c, k)| (*c, &k.$idx)).collect();
                    self.$idx.set_lincomb(&base.$idx, &t);
                )+
            }
            fn scaled_sq_sum(err: &Self, y0: &Self, y1: &Self, atol: f64, rtol: f64) -> f64 {
                0.0 $(+ $name::scaled_sq_sum(&err.$idx, &y0.$idx, &y1.$idx, atol, rtol))+
            }
            fn is_finite(&self) -> bool {
                true $(&& self.$idx.is_finite())+
            }
        }
    )*};
}
tuple_state! {
    (A 0, B 1)
    (A 0, B 1, C 2)
    (A 0, B 1, C 2, D 3)
}

/// A state component stepped like any other but left out of the error norm (a
/// "seminorm", as diffrax's `adjoint_rms_seminorm`): used for quantities that are pure
/// integrals of the rest, such as the log-density or parameter adjoints, whose error
/// should not shrink the step.
#[derive(Debug, Clone, PartialEq)]
pub struct Unnormed<S>(pub S);

impl<S: State> State for Unnormed<S> {
    fn dim(&self) -> usize {
        0
    }
    fn set_lincomb(&mut self, base: &Self, terms: &[(f64, &Self)]) {
        let t: Terms<'_, S> = terms.iter().map(|(c, k)| (*c, &k.0)).collect();
        self.0.set_lincomb(&base.0, &t);
    }
    fn scaled_sq_sum(_: &Self, _: &Self, _: &Self, _: f64, _: f64) -> f64 {
        0.0
    }
    fn is_finite(&self) -> bool {
        self.0.is_finite()
    }
}
