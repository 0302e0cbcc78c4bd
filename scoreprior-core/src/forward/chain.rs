//! A run-time composition of primitives, `A = A_k ∘ … ∘ A_1`, with the adjoint composed in
//! reverse, `Aᵀ = A_1ᵀ ∘ … ∘ A_kᵀ`, and for non-linear chains the VJP by the chain rule,
//! `J_A(x)ᵀ v = J_1(x_0)ᵀ ⋯ J_k(x_{k−1})ᵀ v` with the intermediates `x_j` kept from a forward pass.

use std::sync::Arc;

use super::{Op, Shape};
use crate::{Error, Result};

/// A chain of primitives on one image; shapes are checked as ops are appended.
///
/// # Examples
/// ```
/// use scoreprior_core::forward::{ops, Chain};
/// let chain = Chain::new([1, 8, 8])
///     .then(ops::Scale::new([1, 8, 8].into(), 2.0)).unwrap()
///     .then(ops::Subsample::new([1, 8, 8].into(), 2).unwrap()).unwrap();
/// assert_eq!(chain.output_shape().to_array(), [1, 4, 4]);
/// let mut y = vec![0.0; 16];
/// chain.apply(&vec![1.0; 64], &mut y);
/// assert!(y.iter().all(|&v| v == 2.0));
/// ```
#[derive(Debug, Clone)]
pub struct Chain {
    input: Shape,
    ops: Vec<Arc<dyn Op>>,
}

impl Chain {
    /// An empty chain (the identity) on images of shape `input`.
    pub fn new(input: impl Into<Shape>) -> Self {
        Chain { input: input.into(), ops: Vec::new() }
    }

    /// Appends `op`, checking that its input shape is this chain's output shape.
    pub fn then(mut self, op: impl Op + 'static) -> Result<Self> {
        self.push(Arc::new(op))?;
        Ok(self)
    }

    /// Appends a shared `op`, checking shapes.
    pub fn push(&mut self, op: Arc<dyn Op>) -> Result<()> {
        let cur = self.output_shape();
        if op.input_shape() != cur {
            return Err(Error::shape(
                format!("input of {}", op.describe()),
                cur.to_string(),
                op.input_shape().to_string(),
            ));
        }
        // One output per image is allocated by every apply: refuse absurd shapes (a huge
        // `pad`) here rather than in the allocator.
        let out = op.output_shape();
        crate::limits::check_elems(&format!("the output {out} of `{}`", op.describe()), &[out.c, out.h, out.w], 8)?;
        self.ops.push(op);
        Ok(())
    }

    /// Shape of one input image.
    pub fn input_shape(&self) -> Shape {
        self.input
    }
    /// Shape of one output.
    pub fn output_shape(&self) -> Shape {
        self.ops.last().map_or(self.input, |o| o.output_shape())
    }
    /// The primitives, first applied first.
    pub fn ops(&self) -> &[Arc<dyn Op>] {
        &self.ops
    }
    /// Whether every primitive is linear.
    pub fn is_linear(&self) -> bool {
        self.ops.iter().all(|o| o.is_linear())
    }
    /// Whether the output is split complex data (images in, so the input is real).
    pub fn output_is_complex(&self) -> bool {
        self.ops.iter().fold(false, |c, o| o.output_is_complex(c))
    }
    /// Which outputs are measurements: those of the last primitive's [`Op::observed`] (a
    /// chain ending in a mask); `None` when all are.
    pub fn observed(&self) -> Option<Vec<bool>> {
        self.ops.last().and_then(|o| o.observed()).filter(|m| m.len() == self.output_shape().len())
    }
    /// `a | b | c` descriptions, `identity` for an empty chain.
    pub fn describe(&self) -> String {
        if self.ops.is_empty() {
            return "identity".into();
        }
        self.ops.iter().map(|o| o.describe()).collect::<Vec<_>>().join(" | ")
    }

    /// `y = A(x)` for one image (`x.len() = D`, `y.len() = M`).
    pub fn apply(&self, x: &[f64], y: &mut [f64]) {
        match self.ops.len() {
            0 => y.copy_from_slice(x),
            1 => self.ops[0].apply(x, y),
            _ => {
                let mut cur = x.to_vec();
                for (j, op) in self.ops.iter().enumerate() {
                    if j + 1 == self.ops.len() {
                        op.apply(&cur, y);
                    } else {
                        let mut next = vec![0.0; op.output_shape().len()];
                        op.apply(&cur, &mut next);
                        cur = next;
                    }
                }
            }
        }
    }

    /// `x = Aᵀ y` for one measurement: primitive adjoints in reverse order.
    pub fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        if !self.is_linear() {
            return Err(Error::unsupported(format!("chain `{}` is non-linear: use the VJP", self.describe())));
        }
        match self.ops.len() {
            0 => {
                x.copy_from_slice(y);
                Ok(())
            }
            1 => self.ops[0].adjoint(y, x),
            k => {
                let mut cur = y.to_vec();
                for (j, op) in self.ops.iter().enumerate().rev() {
                    if j == 0 {
                        return op.adjoint(&cur, x);
                    }
                    let mut prev = vec![0.0; op.input_shape().len()];
                    op.adjoint(&cur, &mut prev)?;
                    cur = prev;
                }
                unreachable!("a chain of {k} ops returns from its first op")
            }
        }
    }

    /// `y = A(x)` for a batch `(n, D)` → `(n, M)`, one primitive at a time over the whole
    /// batch ([`Op::apply_batch`]: products per batch, parallel inside each primitive).
    ///
    /// ```
    /// use scoreprior_core::forward::{ops, Chain};
    /// let c = Chain::new([1, 4, 4]).then(ops::Subsample::new([1, 4, 4].into(), 2).unwrap()).unwrap();
    /// let x: Vec<f64> = (0..32).map(f64::from).collect(); // two images
    /// let mut y = vec![0.0; 8];
    /// c.apply_batch(&x, &mut y);
    /// assert_eq!(y, [0.0, 2.0, 8.0, 10.0, 16.0, 18.0, 24.0, 26.0]);
    /// let mut back = vec![0.0; 32];
    /// c.adjoint_batch(&y, &mut back).unwrap();
    /// assert_eq!((back[16], back[17]), (16.0, 0.0));
    /// ```
    pub fn apply_batch(&self, x: &[f64], y: &mut [f64]) {
        let n = x.len() / self.input.len().max(1);
        let mut cur = std::borrow::Cow::Borrowed(x);
        for (j, op) in self.ops.iter().enumerate() {
            if j + 1 == self.ops.len() {
                op.apply_batch(&cur, y);
                return;
            }
            let mut next = vec![0.0; n * op.output_shape().len()];
            op.apply_batch(&cur, &mut next);
            cur = std::borrow::Cow::Owned(next);
        }
        y.copy_from_slice(x);
    }

    /// `x = Aᵀ y` for a batch `(n, M)` → `(n, D)`: batched primitive adjoints in reverse.
    pub fn adjoint_batch(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        if !self.is_linear() {
            return Err(Error::unsupported(format!("chain `{}` is non-linear: use the VJP", self.describe())));
        }
        let n = y.len() / self.output_shape().len().max(1);
        let mut cur = std::borrow::Cow::Borrowed(y);
        for (j, op) in self.ops.iter().enumerate().rev() {
            if j == 0 {
                return op.adjoint_batch(&cur, x);
            }
            let mut prev = vec![0.0; n * op.input_shape().len()];
            op.adjoint_batch(&cur, &mut prev)?;
            cur = std::borrow::Cow::Owned(prev);
        }
        x.copy_from_slice(y);
        Ok(())
    }

    /// `A(x)` for a batch with the input of every primitive kept (for
    /// [`Chain::vjp_traced`]); a linear chain keeps nothing (its VJP is the adjoint).
    pub fn apply_traced(&self, x: &[f64]) -> (Vec<Vec<f64>>, Vec<f64>) {
        let n = x.len() / self.input.len().max(1);
        if self.is_linear() {
            let mut y = vec![0.0; n * self.output_shape().len()];
            self.apply_batch(x, &mut y);
            return (Vec::new(), y);
        }
        let mut inputs = Vec::with_capacity(self.ops.len());
        let mut cur = x.to_vec();
        for op in &self.ops {
            let mut next = vec![0.0; n * op.output_shape().len()];
            op.apply_batch(&cur, &mut next);
            inputs.push(std::mem::replace(&mut cur, next));
        }
        (inputs, cur)
    }

    /// `out = J_A(x)ᵀ v` for a batch, from the trace of [`Chain::apply_traced`] at `x`.
    pub fn vjp_traced(&self, inputs: &[Vec<f64>], v: &[f64], out: &mut [f64]) -> Result<()> {
        if self.is_linear() {
            return self.adjoint_batch(v, out);
        }
        if inputs.len() != self.ops.len() {
            return Err(Error::shape("chain trace", self.ops.len(), inputs.len()));
        }
        let mut cot = std::borrow::Cow::Borrowed(v);
        for (j, (op, xin)) in self.ops.iter().zip(inputs).enumerate().rev() {
            if j == 0 {
                return op.vjp_batch(xin, &cot, out);
            }
            let mut prev = vec![0.0; xin.len()];
            op.vjp_batch(xin, &cot, &mut prev)?;
            cot = std::borrow::Cow::Owned(prev);
        }
        out.copy_from_slice(v);
        Ok(())
    }

    /// `out = J_A(x)ᵀ v` for a batch (`x`: `(n, D)`, `v`: `(n, M)`).
    pub fn vjp_batch(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        let (inputs, _) = self.apply_traced(x);
        self.vjp_traced(&inputs, v, out)
    }

    /// `out = J_A(x)ᵀ v` for one image; for linear chains this is [`Chain::adjoint`].
    pub fn vjp(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        if self.is_linear() {
            return self.adjoint(v, out);
        }
        // Forward pass keeping every op's input (only non-linear ops need theirs, but the
        // memory is one image per op).
        let mut inputs: Vec<Vec<f64>> = Vec::with_capacity(self.ops.len());
        let mut cur = x.to_vec();
        for op in &self.ops {
            let mut next = vec![0.0; op.output_shape().len()];
            op.apply(&cur, &mut next);
            inputs.push(std::mem::replace(&mut cur, next));
        }
        let mut cot = v.to_vec();
        for (op, xin) in self.ops.iter().zip(&inputs).rev() {
            let mut prev = vec![0.0; op.input_shape().len()];
            op.vjp(xin, &cot, &mut prev)?;
            cot = prev;
        }
        out.copy_from_slice(&cot);
        Ok(())
    }
}
