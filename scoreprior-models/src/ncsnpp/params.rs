//! Parameters: each tensor has a name, shape and initialiser ([`ParamSpec`]; DDPM's
//! `variance_scaling(scale, fan_avg, uniform)` draws `U(±√(3·scale/fan_avg))`), and
//! [`Params`] holds their values, applying the layers `x·W + b`, `conv3x3` and GroupNorm.

use dfdx::prelude::*;

use crate::ops::conv::linear_in_x;
use crate::ops::dual::*;
use crate::ops::norm::{group_norm_fused, GROUP_NORM_EPS};
use crate::ops::*;
use crate::ModelError;

/// How a parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// DDPM `variance_scaling(scale, fan_avg, uniform)`: `U(±√(3·scale/fan_avg))`.
    FanAvg { fan_in: usize, fan_out: usize, scale: f64 },
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
}

/// Name, shape and initialiser of one parameter tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// Unique dotted name, e.g. `down.0.block.0.conv0.w`.
    pub name: String,
    /// Shape (matrices are `(fan_in, fan_out)`, 3×3 kernels `(9·c_in, c_out)`).
    pub shape: Vec<usize>,
    /// Initialiser.
    pub init: Init,
}

impl ParamSpec {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the tensor is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Collects the parameter specifications while the architecture is built.
#[derive(Default)]
pub(super) struct Builder {
    pub(super) specs: Vec<ParamSpec>,
}

impl Builder {
    fn add(&mut self, name: String, shape: Vec<usize>, init: Init) -> usize {
        self.specs.push(ParamSpec { name, shape, init });
        self.specs.len() - 1
    }
    pub(super) fn dense(&mut self, name: &str, i: usize, o: usize, scale: f64) -> Dense {
        let w = self.add(format!("{name}.w"), vec![i, o], Init::FanAvg { fan_in: i, fan_out: o, scale });
        let b = self.add(format!("{name}.b"), vec![o], Init::Zeros);
        Dense { w, b, i }
    }
    pub(super) fn conv(&mut self, name: &str, i: usize, o: usize, scale: f64) -> Dense {
        let w = self.add(format!("{name}.w"), vec![9 * i, o], Init::FanAvg { fan_in: 9 * i, fan_out: 9 * o, scale });
        let b = self.add(format!("{name}.b"), vec![o], Init::Zeros);
        Dense { w, b, i: 9 * i }
    }
    pub(super) fn gn(&mut self, name: &str, c: usize) -> Gn {
        let g = self.add(format!("{name}.gamma"), vec![c], Init::Ones);
        let b = self.add(format!("{name}.beta"), vec![c], Init::Zeros);
        Gn { g, b, groups: (c / 4).clamp(1, 32) }
    }
}

/// A dense or 3×3 convolution layer: the indices of its weight and bias, and its fan-in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dense {
    w: usize,
    b: usize,
    i: usize,
}

/// A GroupNorm layer: the indices of `γ` and `β`, and its number of groups.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gn {
    g: usize,
    b: usize,
    groups: usize,
}

/// Parameter tensors of one element type, in the order of [`NcsnppNet::specs`](super::NcsnppNet::specs).
#[derive(Debug, Clone)]
pub struct Params<E: Elem>
where
    Cpu: Device<E>,
{
    /// One flat tensor per parameter.
    pub tensors: Vec<Vec1<E>>,
    shapes: Vec<Vec<usize>>,
    /// Whether a taped pass forms the weights' gradients (see [`Params::in_x_only`]).
    weight_grads: bool,
}

impl<E: Elem> Params<E>
where
    Cpu: Device<E>,
{
    /// Parameter tensors from flat `f32` values; errors if the sizes do not match `specs`.
    pub fn from_values(dev: &Cpu, specs: &[ParamSpec], values: &[Vec<f32>]) -> Result<Self, ModelError> {
        if specs.len() != values.len() {
            return Err(ModelError::shape("parameter tensors", specs.len(), values.len()));
        }
        let mut tensors = Vec::with_capacity(specs.len());
        for (s, v) in specs.iter().zip(values) {
            if s.len() != v.len() {
                let expected = format!("{} values ({:?})", s.len(), s.shape);
                return Err(ModelError::shape(format!("parameter {}", s.name), expected, v.len()));
            }
            tensors.push(dev.tensor_from_vec(v.iter().map(|&a| E::of(a as f64)).collect(), (v.len(),)));
        }
        Ok(Self { tensors, shapes: specs.iter().map(|s| s.shape.clone()).collect(), weight_grads: true })
    }
    /// The same parameters for passes differentiated in the input alone (a score's VJPs): the
    /// convolutions' and dense layers' backward passes then skip the weight gradients `Aᵀ·dC`,
    /// a third of their products, and a tape's gradients hold none for these weights.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use rand::SeedableRng;
    /// use scoreprior_models::ncsnpp::{Ncsnpp, NcsnppConfig, Params};
    /// let net = Ncsnpp::<1, 8, 8>::new(NcsnppConfig::tiny()).unwrap();
    /// let w = net.net().init_params(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    /// let p = Params::<f32>::from_values(&Cpu::default(), net.net().specs(), &w).unwrap().in_x_only();
    /// let x: Tensor<(usize, usize), f32, Cpu> = Cpu::default().tensor_from_vec(vec![0.5; 64], (1, 64));
    /// let eps = net.forward_flat(&p, x.leaky_trace(), &[0.5], None).unwrap();
    /// let g = eps.sum::<(), _>().backward();
    /// assert_eq!(g.get(&x).as_vec().len(), 64); // the input's gradient, not the weights'
    /// ```
    pub fn in_x_only(mut self) -> Self {
        self.weight_grads = false;
        self
    }
    /// Overwrites the values in place (same shapes).
    pub fn set_values(&mut self, values: &[Vec<f32>]) {
        for (t, v) in self.tensors.iter_mut().zip(values) {
            let e: Vec<E> = v.iter().map(|&a| E::of(a as f64)).collect();
            t.copy_from(&e);
        }
    }
    fn vec<T: Tape<E, Cpu>>(&self, i: usize) -> Vec1<E, T> {
        self.tensors[i].retaped::<T>()
    }
    fn mat<T: Tape<E, Cpu>>(&self, i: usize) -> Mat<E, T> {
        let s = &self.shapes[i];
        self.tensors[i].retaped::<T>().reshape_like(&(s[0], s[1]))
    }
    pub(super) fn dense<T: Tape<E, Cpu>>(&self, x: Mat<E, T>, d: &Dense) -> Mat<E, T> {
        debug_assert_eq!(x.shape().1, d.i);
        if self.weight_grads {
            dense(x, self.mat(d.w), self.vec(d.b))
        } else {
            linear_in_x(x, None, self.mat(d.w), self.vec(d.b))
        }
    }
    pub(super) fn conv<T: Tape<E, Cpu>>(&self, x: Mat<E, T>, g: Grid, d: &Dense) -> Mat<E, T> {
        if self.weight_grads {
            conv3x3(x, g, self.mat(d.w), self.vec(d.b))
        } else {
            linear_in_x(x, Some(g), self.mat(d.w), self.vec(d.b))
        }
    }
    pub(super) fn group_norm<T: Tape<E, Cpu>>(&self, x: Mat<E, T>, g: Grid, n: &Gn) -> Mat<E, T> {
        let (gamma, beta) = (self.vec(n.g), self.vec(n.b));
        group_norm_fused(x, g, n.groups, gamma, beta, GROUP_NORM_EPS, false, self.weight_grads)
    }
    pub(super) fn group_norm_silu<T: Tape<E, Cpu>>(&self, x: Mat<E, T>, g: Grid, n: &Gn) -> Mat<E, T> {
        let (gamma, beta) = (self.vec(n.g), self.vec(n.b));
        group_norm_fused(x, g, n.groups, gamma, beta, GROUP_NORM_EPS, true, self.weight_grads)
    }

    // The same layers on a forward-over-reverse tape (`ops::dual`): weights are constants.
    pub(super) fn dual_dense(&self, tape: &mut DualTape<E>, x: &Dual<E>, d: &Dense) -> Dual<E> {
        debug_assert_eq!(x.cols(), d.i);
        dual_dense(tape, x, &self.mat(d.w), &values(&self.tensors[d.b]))
    }
    pub(super) fn dual_conv(&self, tape: &mut DualTape<E>, x: &Dual<E>, g: Grid, d: &Dense) -> Dual<E> {
        dual_conv3x3(tape, x, g, &self.mat(d.w), &values(&self.tensors[d.b]))
    }
    pub(super) fn dual_group_norm(&self, tape: &mut DualTape<E>, x: &Dual<E>, g: Grid, n: &Gn, silu: bool) -> Dual<E> {
        let (ga, be) = (values(&self.tensors[n.g]), values(&self.tensors[n.b]));
        dual_group_norm(tape, x, g, n.groups, &ga, &be, GROUP_NORM_EPS, silu)
    }
}
