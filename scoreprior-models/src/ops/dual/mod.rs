//! Forward-over-reverse differentiation on a tape of our own: for `y = f(x)`, tangents `ẋ`
//! and cotangents `c`, the forward pass carries `(f(x), J ẋ)` and the backward pass carries
//! `(Jᵀc, d/dh J(x + hẋ)ᵀc)`, so `∇x(εᵀJε)` is the tangent of the VJP `Jᵀε` along `ε`.
//!
//! Layout: an activation is a stack of blocks of one `(rows, cols)` rows-layout matrix each.
//! Forward, `[V | T_0 … T_{K−1}]`: the values and `K` tangents. Backward, `[A_0 … A_{M−1} |
//! Ȧ_0 … Ȧ_{K−1}]`: `M ≥ K` primal adjoints (the VJPs of `M` cotangents) and the tangents of
//! the first `K` of them, `Ȧ_k` along `T_k`; or, on a [summed](DualTape::summed) tape,
//! `[A_0 … A_{K−1} | S]` with one block `S` for `Σ_k Ȧ_k` plus any cotangent seeded into it
//! (every block but the second-derivative terms goes through the same transposed Jacobian, so
//! the sum propagates as one block: `K + 1` backward blocks instead of `2K + 1` for the
//! adjoint's `aᵀJ + Σ_k ∇x(ε_kᵀJε_k)`). A linear op applies the same map to every block (the
//! blocks are a larger batch); a nonlinear one applies its transposed Jacobian to every block,
//! then adds the second-derivative term `D²f[T_k]ᵀA_k` to `Ȧ_k` (or to `S`).
//!
//! Why not dfdx's tape: its backward pass is not itself differentiable, and its element
//! types cannot carry a tangent; the ops here reuse the rows layout and dfdx's GEMM.

use std::sync::Arc;

use dfdx::prelude::*;

use super::Elem;

pub mod attention;
pub mod linear;
pub mod norm;

pub use attention::dual_attention;
pub use linear::{
    dual_add_per_image, dual_add_scaled, dual_affine, dual_avg_pool2, dual_concat_cols, dual_conv3x3, dual_dense,
    dual_nchw_to_rows, dual_rows_to_nchw, dual_upsample2,
};
pub use norm::dual_group_norm;

/// One activation on a [`DualTape`]: the values and tangents `[V | T_0 … T_{K−1}]`, each
/// block a `(rows, cols)` matrix. Cloning shares the buffer.
#[derive(Debug, Clone)]
pub struct Dual<E> {
    id: usize,
    data: Arc<Vec<E>>,
    rows: usize,
    cols: usize,
}

impl<E: Copy> Dual<E> {
    /// Rows of one block.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns (channels).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Values of one block.
    pub fn block_len(&self) -> usize {
        self.rows * self.cols
    }
    /// The values `V`.
    pub fn values(&self) -> &[E] {
        &self.data[..self.block_len()]
    }
    /// Tangent `T_k`.
    pub fn tangent(&self, k: usize) -> &[E] {
        let n = self.block_len();
        &self.data[(k + 1) * n..(k + 2) * n]
    }
    /// The whole stack `[V | T_0 …]`.
    pub fn stack(&self) -> &[E] {
        &self.data
    }
    /// The node's handle for its adjoint (without keeping its values alive).
    pub(crate) fn key(&self) -> Key {
        Key(self.id)
    }
    /// The stack, moved out when this is the last handle on it (copied otherwise).
    pub(crate) fn into_stack(self) -> Vec<E>
    where
        E: Clone,
    {
        Arc::try_unwrap(self.data).unwrap_or_else(|a| (*a).clone())
    }
}

/// A node of a [`DualTape`], as a backward op names its inputs: the id alone, so that the
/// values of inputs that a backward op does not read (every linear op's) are dropped after
/// the forward pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key(usize);

/// A backward op: reads its output's adjoint stack and adds into its inputs'.
type BackwardOp<E> = Box<dyn FnOnce(&mut DualGrads<E>)>;

/// The tape of one forward-over-reverse pass with `K` tangents and `M ≥ K` cotangents.
///
/// ```
/// use scoreprior_models::ops::dual::{dual_affine, DualTape};
/// // One tangent, two cotangents (the second without a tangent).
/// let mut tape = DualTape::<f64>::new(1, 2);
/// // [V | T_0] of a 1 × 2 matrix.
/// let x = tape.input(vec![1.0, 2.0, 1.0, 0.0], 1, 2);
/// let y = dual_affine(&mut tape, &x, 2.0, -1.0);
/// assert_eq!((y.values(), y.tangent(0)), (&[1.0, 3.0][..], &[2.0, 0.0][..]));
/// // Seed [A_0 | A_1 | Ȧ_0]: adjoints 2·c, and the tangent 2·ċ (no second derivative).
/// let g = tape.backward(&y, vec![1.0, 1.0, 0.5, 0.0, 0.0, 3.0]).get(&x);
/// assert_eq!(g, vec![2.0, 2.0, 1.0, 0.0, 0.0, 6.0]);
/// ```
pub struct DualTape<E> {
    k: usize,
    m: usize,
    summed: bool,
    record: bool,
    sizes: Vec<usize>,
    ops: Vec<BackwardOp<E>>,
}

impl<E: Elem> DualTape<E>
where
    Cpu: Device<E>,
{
    /// A tape for `k` tangents and `m ≥ k` cotangents (the first `k` cotangents pair with
    /// the tangents).
    pub fn new(k: usize, m: usize) -> Self {
        assert!(m >= k, "DualTape: fewer cotangents than tangents");
        Self { k, m, summed: false, record: true, sizes: Vec::new(), ops: Vec::new() }
    }
    /// A tape for `k` tangents whose backward stack is `[A_0 … A_{K−1} | S]`: `K` cotangents
    /// paired with the tangents, and one block that carries the sum of their tangents `Σ_k Ȧ_k`
    /// plus the VJP of whatever cotangent it is seeded with.
    ///
    /// ```
    /// use scoreprior_models::ops::dual::{dual_group_norm, DualTape};
    /// use scoreprior_models::ops::Grid;
    /// let g = Grid { b: 1, h: 1, w: 3 };
    /// let stack = vec![0.5, -1.0, 2.0, 1.0, 0.0, -1.0, 0.0, 2.0, 1.0];
    /// let seeds = [[1.0, 2.0, -1.0], [0.5, 0.0, 1.0], [0.0, 1.0, 3.0]];
    /// // Separate tangents of the VJPs, two tangents and three cotangents (the third alone).
    /// let mut tape = DualTape::<f64>::new(2, 3);
    /// let x = tape.input(stack.clone(), 3, 1);
    /// let y = dual_group_norm(&mut tape, &x, g, 1, &[1.0], &[0.0], 1e-6, true);
    /// let zero = [0.0; 6];
    /// let sep = tape.backward(&y, [&seeds.concat()[..], &zero[..]].concat()).get(&x);
    /// // Summed: the third cotangent seeds S, which returns its VJP plus Ȧ_0 + Ȧ_1.
    /// let mut tape = DualTape::<f64>::summed(2);
    /// let x = tape.input(stack, 3, 1);
    /// let y = dual_group_norm(&mut tape, &x, g, 1, &[1.0], &[0.0], 1e-6, true);
    /// let sum = tape.backward(&y, seeds.concat()).get(&x);
    /// for i in 0..3 {
    ///     assert!((sum[6 + i] - (sep[6 + i] + sep[9 + i] + sep[12 + i])).abs() < 1e-12);
    /// }
    /// ```
    pub fn summed(k: usize) -> Self {
        Self { k, m: k, summed: true, record: true, sizes: Vec::new(), ops: Vec::new() }
    }
    /// A tape for the forward pass alone with `k` tangents (values and `J·T_k`): no backward
    /// op is kept, so nothing holds the activations.
    pub fn forward_only(k: usize) -> Self {
        Self { k, m: k, summed: false, record: false, sizes: Vec::new(), ops: Vec::new() }
    }
    /// Blocks of an adjoint stack: `M + K`, or `K + 1` on a summed tape.
    pub fn adjoint_blocks(&self) -> usize {
        if self.summed {
            self.m + 1
        } else {
            self.m + self.k
        }
    }
    /// The adjoint block that receives tangent `k`'s second-derivative term: `M + k`, or the
    /// summed block.
    pub fn tangent_block(&self, k: usize) -> usize {
        if self.summed {
            self.m
        } else {
            self.m + k
        }
    }
    /// Number of tangents `K`.
    pub fn tangents(&self) -> usize {
        self.k
    }
    /// Number of cotangents `M`.
    pub fn cotangents(&self) -> usize {
        self.m
    }
    /// An input: the stack `[V | T_0 … T_{K−1}]` of `(rows, cols)` blocks.
    pub fn input(&mut self, stack: Vec<E>, rows: usize, cols: usize) -> Dual<E> {
        assert_eq!(stack.len(), (self.k + 1) * rows * cols, "DualTape::input: stack length");
        self.node(stack, rows, cols)
    }

    /// A new node (no backward op yet).
    pub(crate) fn node(&mut self, stack: Vec<E>, rows: usize, cols: usize) -> Dual<E> {
        debug_assert_eq!(stack.len(), (self.k + 1) * rows * cols);
        self.sizes.push(rows * cols);
        Dual { id: self.sizes.len() - 1, data: Arc::new(stack), rows, cols }
    }

    /// Registers the backward op of `out`, called with `out`'s adjoint stack
    /// `[A_0 … A_{M−1} | Ȧ_0 … Ȧ_{K−1}]` (moved out of the gradients: nothing reads it
    /// afterwards, so an op may reuse it) and the gradients.
    pub(crate) fn on_backward(&mut self, out: &Dual<E>, f: impl FnOnce(Vec<E>, &mut DualGrads<E>) + 'static) {
        if !self.record {
            return;
        }
        let id = out.id;
        self.ops.push(Box::new(move |g: &mut DualGrads<E>| {
            let go = g.take(id);
            f(go, g);
        }));
    }

    /// Runs the backward pass from `out` with the adjoint stack `seed` (`M` cotangents, then
    /// their `K` tangents, usually zero, or the summed block) and returns every node's adjoint
    /// stack.
    pub fn backward(self, out: &Dual<E>, seed: Vec<E>) -> DualGrads<E> {
        assert!(self.record, "DualTape::backward on a forward-only tape");
        let blocks = self.adjoint_blocks();
        assert_eq!(seed.len(), blocks * out.block_len(), "DualTape::backward: seed length");
        let mut g = DualGrads { bufs: vec![None; self.sizes.len()], sizes: self.sizes, blocks };
        g.bufs[out.id] = Some(seed);
        for op in self.ops.into_iter().rev() {
            op(&mut g);
        }
        g
    }
}

/// Adjoint stacks `[A_0 … A_{M−1} | Ȧ_0 … Ȧ_{K−1}]` (or `[A_0 … A_{K−1} | S]`) of the nodes of
/// a [`DualTape`].
pub struct DualGrads<E> {
    bufs: Vec<Option<Vec<E>>>,
    sizes: Vec<usize>,
    blocks: usize,
}

impl<E: Elem> DualGrads<E>
where
    Cpu: Device<E>,
{
    /// The adjoint stack of `x` (zeros if nothing reached it).
    pub fn get(&self, x: &Dual<E>) -> Vec<E> {
        self.bufs[x.id].clone().unwrap_or_else(|| vec![E::zero(); self.blocks * self.sizes[x.id]])
    }
    /// Moves a node's adjoint stack out (zeros if nothing reached it).
    fn take(&mut self, id: usize) -> Vec<E> {
        self.bufs[id].take().unwrap_or_else(|| vec![E::zero(); self.blocks * self.sizes[id]])
    }
    /// The adjoint stack of a node, to add into.
    pub(crate) fn acc(&mut self, x: Key) -> &mut [E] {
        let n = self.blocks * self.sizes[x.0];
        self.bufs[x.0].get_or_insert_with(|| vec![E::zero(); n])
    }
    /// Adds `v` to a node's adjoint stack (moved in when it is the first contribution, which
    /// saves zeroing a buffer and adding into it).
    pub(crate) fn add(&mut self, x: Key, v: Vec<E>) {
        debug_assert_eq!(v.len(), self.blocks * self.sizes[x.0]);
        match &mut self.bufs[x.0] {
            Some(b) => super::tape::accumulate(&v, b),
            slot => *slot = Some(v),
        }
    }
}

/// `a · w` (or `a · wᵀ`) for `a` of `(m, k)` row-major and a weight matrix, on the kernel
/// the taped products use (`ops::gemm`, the weights packed per call); counted in
/// [`MATMUL_FLOPS`](super::MATMUL_FLOPS).
pub(crate) fn matmul_weight<E: Elem>(a: Vec<E>, m: usize, w: &super::Mat<E>, transpose: bool) -> Vec<E>
where
    Cpu: Device<E>,
{
    let (wr, wc) = *w.shape();
    let (k, n) = if transpose { (wc, wr) } else { (wr, wc) };
    assert_eq!(a.len(), m * k, "matmul_weight: shapes");
    super::conv::count_flops(2 * m * k * n);
    if super::matmul::DFDX_PRODUCTS.load(std::sync::atomic::Ordering::Relaxed) {
        let at = w.device().tensor_from_vec(a, (m, k));
        let y = if transpose { at.matmul(w.clone().permute::<_, Axes2<1, 0>>()) } else { at.matmul(w.clone()) };
        return super::values(&y);
    }
    let packed = super::gemm::Packed::new(&super::values(w), k, n, transpose);
    let mut y = vec![E::zero(); m * n];
    super::gemm::gemm(super::gemm::Lhs::rows(&a, m), packed.rhs(), &mut y, n, false);
    y
}
