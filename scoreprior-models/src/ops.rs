//! Neural-network operations on dfdx's public API, in a "rows" layout: an activation of
//! `b` images of `h × w` pixels and `c` channels is a `(b·h·w, c)` matrix whose row
//! `(i·h + y)·w + x` holds pixel `(y, x)` of image `i`.
//!
//! In this layout a 3×3 convolution is `unfold(x) · W` with `unfold` the im2col gather
//! (zero padding, stride 1) and `W` a `(9·c_in, c_out)` matrix, so one large GEMM covers the
//! whole batch (dfdx's own conv2d is nightly-only and loops over images). The gathers,
//! pooling, nearest upsampling, GroupNorm and concatenation are custom ops whose backward
//! is registered with `Tape::add_backward_op`; everything else composes dfdx ops.

use dfdx::prelude::*;

/// A `(rows, channels)` activation or weight matrix on the CPU.
pub type Mat<E, T = NoneTape> = Tensor<(usize, usize), E, Cpu, T>;
/// A flat parameter vector on the CPU.
pub type Vec1<E, T = NoneTape> = Tensor<(usize,), E, Cpu, T>;

/// The element types the networks run in (`f32` for speed, `f64` for accuracy).
pub trait Elem: Dtype + num_traits::Float + Send + Sync + std::fmt::Debug + 'static
where
    Cpu: Device<Self>,
{
    /// Converts from `f64` (rounding for `f32`).
    fn of(v: f64) -> Self;
    /// Converts to `f64`.
    fn f64(self) -> f64;
    /// The CPU gradient buffer as a slice (the storage type only normalises for a
    /// concrete element type, hence a method per type).
    fn buf(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut [Self];
    /// The CPU gradient buffer as its `Vec`, so that a backward op can move an output
    /// gradient out of [`Gradients`] (see [`take_grad`]).
    fn vec(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut Vec<Self>;
}
impl Elem for f32 {
    fn of(v: f64) -> Self {
        v as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn buf(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut [Self] {
        &mut v[..]
    }
    fn vec(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut Vec<Self> {
        v
    }
}
impl Elem for f64 {
    fn of(v: f64) -> Self {
        v
    }
    fn f64(self) -> f64 {
        self
    }
    fn buf(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut [Self] {
        &mut v[..]
    }
    fn vec(v: &mut <Cpu as Storage<Self>>::Vec) -> &mut Vec<Self> {
        v
    }
}

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

/// `σ(x) = 1/(1 + e^{−x})`, as dfdx's `sigmoid`.
#[inline(always)]
fn sigmoid<E: Elem>(x: E) -> E
where
    Cpu: Device<E>,
{
    E::one() / (E::one() + (-x).exp())
}

/// Multiply–add work done by [`conv3x3`], [`dense`] and [`attention`] so far, in FLOPs
/// (`2·m·k·n` per matrix product), for throughput reports; relaxed atomic, negligible cost.
pub static MATMUL_FLOPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn count_flops(f: usize) {
    MATMUL_FLOPS.fetch_add(f as u64, std::sync::atomic::Ordering::Relaxed);
}

/// Spatial layout of a rows-layout activation: `b` images of `h × w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Images.
    pub b: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Grid {
    /// Rows of an activation on this grid.
    pub fn rows(&self) -> usize {
        self.b * self.h * self.w
    }
    /// The grid after 2× downsampling.
    pub fn down(&self) -> Grid {
        Grid { b: self.b, h: self.h / 2, w: self.w / 2 }
    }
    /// The grid after 2× upsampling.
    pub fn up(&self) -> Grid {
        Grid { b: self.b, h: self.h * 2, w: self.w * 2 }
    }
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

/// im2col for a 3×3 kernel with zero padding 1 and stride 1: `(b·h·w, c)` →
/// `(b·h·w, 9c)`, column `(ky·3 + kx)·c + ci` holding channel `ci` of pixel
/// `(y + ky − 1, x + kx − 1)`.
pub fn unfold3x3<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    assert_eq!(rows, g.rows(), "unfold3x3: rows do not match the grid");
    let Grid { b, h, w } = g;
    // For each output row and tap, the source row (or None at the border).
    let src = move |i: usize, y: usize, xx: usize, k: usize| -> Option<usize> {
        let (ky, kx) = (k / 3, k % 3);
        let (sy, sx) = (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
        if sy < 0 || sx < 0 || sy >= h as isize || sx >= w as isize {
            None
        } else {
            Some((i * h + sy as usize) * w + sx as usize)
        }
    };
    custom_unary(
        x,
        (rows, 9 * c),
        move |xv| {
            let mut out = vec![E::zero(); rows * 9 * c];
            for i in 0..b {
                for y in 0..h {
                    for xx in 0..w {
                        let r = (i * h + y) * w + xx;
                        for k in 0..9 {
                            if let Some(s) = src(i, y, xx, k) {
                                out[r * 9 * c + k * c..r * 9 * c + (k + 1) * c]
                                    .copy_from_slice(&xv[s * c..(s + 1) * c]);
                            }
                        }
                    }
                }
            }
            out
        },
        move |go, gi| {
            for i in 0..b {
                for y in 0..h {
                    for xx in 0..w {
                        let r = (i * h + y) * w + xx;
                        for k in 0..9 {
                            if let Some(s) = src(i, y, xx, k) {
                                let g = &go[r * 9 * c + k * c..r * 9 * c + (k + 1) * c];
                                for (a, v) in gi[s * c..(s + 1) * c].iter_mut().zip(g) {
                                    *a += *v;
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Adds a bias vector `(n,)` to every row of `(rows, n)`: `out[r, j] = y[r, j] + b[j]`, as
/// one op. Backward: `dy = dout`, `db[j] = Σ_r dout[r, j]` (column sums). Why not
/// `y + b.broadcast_like(..)`: dfdx's generic broadcasting kernel walks both operands with
/// strided index arithmetic per element, forward and backward (the largest non-GEMM cost of
/// the network before fusing).
pub fn add_bias<E: Elem, T: Tape<E, Cpu>>(y: Mat<E, T>, b: Vec1<E, T>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, n) = *y.shape();
    assert_eq!(b.shape().0, n, "add_bias: bias length does not match the columns");
    let (y, ty) = y.split_tape();
    let (b, tb) = b.split_tape();
    let mut tape = ty.merge(tb);
    let mut out = values(&y);
    let bv = values(&b);
    for row in out.chunks_exact_mut(n) {
        row.iter_mut().zip(&bv).for_each(|(o, b)| *o += *b);
    }
    let out = y.device().tensor_from_vec(out, (rows, n));
    if T::OWNS_TAPE {
        let (yg, bg, og) = (y.ghost(), b.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad(grads.get_or_alloc_mut(&og)?);
            let gy = E::buf(grads.get_or_alloc_mut(&yg)?);
            gy.iter_mut().zip(&go).for_each(|(a, g)| *a += *g);
            let gb = E::buf(grads.get_or_alloc_mut(&bg)?);
            for row in go.chunks_exact(n) {
                gb.iter_mut().zip(row).for_each(|(a, g)| *a += *g);
            }
            put_grad(grads.get_or_alloc_mut(&og)?, go);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// `(a + b)·s` for two matrices of one shape and a constant `s` (the scaled residual sums
/// of NCSN++), as one op. Backward: `da = db = s·dout`.
pub fn add_scaled<E: Elem, T: Tape<E, Cpu>>(a: Mat<E, T>, b: Mat<E, T>, s: E) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let shape = *a.shape();
    assert_eq!(shape, *b.shape(), "add_scaled: shapes differ");
    let (a, ta) = a.split_tape();
    let (b, tb) = b.split_tape();
    let mut tape = ta.merge(tb);
    let mut out = values(&a);
    let bv = values(&b);
    out.iter_mut().zip(&bv).for_each(|(o, b)| *o = (*o + *b) * s);
    drop(bv);
    let out = a.device().tensor_from_vec(out, shape);
    if T::OWNS_TAPE {
        let (ag, bg, og) = (a.ghost(), b.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad(grads.get_or_alloc_mut(&og)?);
            for g in [&ag, &bg] {
                let gi = E::buf(grads.get_or_alloc_mut(g)?);
                gi.iter_mut().zip(&go).for_each(|(a, g)| *a += *g * s);
            }
            put_grad(grads.get_or_alloc_mut(&og)?, go);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// Adds a per-image vector to every pixel: `out[i·k + p, j] = x[i·k + p, j] + e[i, j]` for
/// `x` of shape `(b·k, c)` and `e` of shape `(b, c)` (the time-embedding projection added
/// inside each residual block), as one op: `x + repeat_rows(e, k)` without the repeated
/// tensor. Backward: `dx = dout`, `de[i] = Σ_p dout[i·k + p]`.
pub fn add_per_image<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, e: Mat<E, T>, k: usize) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    let (b, c2) = *e.shape();
    assert!(c == c2 && rows == b * k, "add_per_image: shapes do not match");
    let (x, tx) = x.split_tape();
    let (e, te) = e.split_tape();
    let mut tape = tx.merge(te);
    let mut out = values(&x);
    let ev = values(&e);
    for (img, ei) in out.chunks_exact_mut(k * c).zip(ev.chunks_exact(c)) {
        for row in img.chunks_exact_mut(c) {
            row.iter_mut().zip(ei).for_each(|(o, v)| *o += *v);
        }
    }
    let out = x.device().tensor_from_vec(out, (rows, c));
    if T::OWNS_TAPE {
        let (xg, eg, og) = (x.ghost(), e.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad(grads.get_or_alloc_mut(&og)?);
            let gx = E::buf(grads.get_or_alloc_mut(&xg)?);
            gx.iter_mut().zip(&go).for_each(|(a, g)| *a += *g);
            let ge = E::buf(grads.get_or_alloc_mut(&eg)?);
            for (img, gi) in go.chunks_exact(k * c).zip(ge.chunks_exact_mut(c)) {
                for row in img.chunks_exact(c) {
                    gi.iter_mut().zip(row).for_each(|(a, g)| *a += *g);
                }
            }
            put_grad(grads.get_or_alloc_mut(&og)?, go);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// 3×3 convolution, stride 1, zero padding 1: `unfold3x3(x) · w + b`, with `w` of shape
/// `(9·c_in, c_out)`.
pub fn conv3x3<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid, w: Mat<E, T>, b: Vec1<E, T>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    count_flops(2 * g.rows() * w.shape().0 * w.shape().1);
    add_bias(unfold3x3(x, g).matmul(w), b)
}

/// 1×1 convolution / dense layer on rows: `x · w + b`, `w` of shape `(c_in, c_out)`.
pub fn dense<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, w: Mat<E, T>, b: Vec1<E, T>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    count_flops(2 * x.shape().0 * w.shape().0 * w.shape().1);
    add_bias(x.matmul(w), b)
}

/// 2×2 average pooling (stride 2) of a rows-layout activation; `h`, `w` must be even.
pub fn avg_pool2<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    assert!(rows == g.rows() && g.h % 2 == 0 && g.w % 2 == 0, "avg_pool2 needs an even grid");
    let o = g.down();
    let map = move |i: usize, y: usize, xx: usize, k: usize| (i * g.h + 2 * y + k / 2) * g.w + 2 * xx + k % 2;
    let q = E::of(0.25);
    custom_unary(
        x,
        (o.rows(), c),
        move |xv| {
            let mut out = vec![E::zero(); o.rows() * c];
            for i in 0..o.b {
                for y in 0..o.h {
                    for xx in 0..o.w {
                        let r = (i * o.h + y) * o.w + xx;
                        for k in 0..4 {
                            let s = map(i, y, xx, k);
                            for ch in 0..c {
                                out[r * c + ch] += q * xv[s * c + ch];
                            }
                        }
                    }
                }
            }
            out
        },
        move |go, gi| {
            for i in 0..o.b {
                for y in 0..o.h {
                    for xx in 0..o.w {
                        let r = (i * o.h + y) * o.w + xx;
                        for k in 0..4 {
                            let s = map(i, y, xx, k);
                            for ch in 0..c {
                                gi[s * c + ch] += q * go[r * c + ch];
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Nearest-neighbour 2× upsampling of a rows-layout activation.
pub fn upsample2<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    assert_eq!(rows, g.rows(), "upsample2: rows do not match the grid");
    let o = g.up();
    let map = move |i: usize, y: usize, xx: usize| (i * g.h + y / 2) * g.w + xx / 2;
    custom_unary(
        x,
        (o.rows(), c),
        move |xv| {
            let mut out = vec![E::zero(); o.rows() * c];
            for i in 0..o.b {
                for y in 0..o.h {
                    for xx in 0..o.w {
                        let r = (i * o.h + y) * o.w + xx;
                        let s = map(i, y, xx);
                        out[r * c..(r + 1) * c].copy_from_slice(&xv[s * c..(s + 1) * c]);
                    }
                }
            }
            out
        },
        move |go, gi| {
            for i in 0..o.b {
                for y in 0..o.h {
                    for xx in 0..o.w {
                        let r = (i * o.h + y) * o.w + xx;
                        let s = map(i, y, xx);
                        for ch in 0..c {
                            gi[s * c + ch] += go[r * c + ch];
                        }
                    }
                }
            }
        },
    )
}

/// Repeats each row of `(b, c)` `k` times: `(b·k, c)` (broadcasts a per-image vector to
/// every pixel). Backward sums over the copies.
pub fn repeat_rows<E: Elem, T: Tape<E, Cpu>>(x: Mat<E, T>, k: usize) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (b, c) = *x.shape();
    custom_unary(
        x,
        (b * k, c),
        move |xv| {
            let mut out = Vec::with_capacity(b * k * c);
            for i in 0..b {
                for _ in 0..k {
                    out.extend_from_slice(&xv[i * c..(i + 1) * c]);
                }
            }
            out
        },
        move |go, gi| {
            for i in 0..b {
                for j in 0..k {
                    let r = i * k + j;
                    for ch in 0..c {
                        gi[i * c + ch] += go[r * c + ch];
                    }
                }
            }
        },
    )
}

/// Concatenates `(r, c1)` and `(r, c2)` along channels: `(r, c1 + c2)`.
pub fn concat_cols<E: Elem, T: Tape<E, Cpu>>(a: Mat<E, T>, b: Mat<E, T>) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (r, c1) = *a.shape();
    let (r2, c2) = *b.shape();
    assert_eq!(r, r2, "concat_cols: row counts differ");
    let (a, ta) = a.split_tape();
    let (b, tb) = b.split_tape();
    let mut tape = ta.merge(tb);
    let (av, bv) = (values(&a), values(&b));
    let c = c1 + c2;
    let mut out = Vec::with_capacity(r * c);
    for i in 0..r {
        out.extend_from_slice(&av[i * c1..(i + 1) * c1]);
        out.extend_from_slice(&bv[i * c2..(i + 1) * c2]);
    }
    let out = a.device().tensor_from_vec(out, (r, c));
    if T::OWNS_TAPE {
        let (ag, bg, og) = (a.ghost(), b.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad(grads.get_or_alloc_mut(&og)?);
            let ga = E::buf(grads.get_or_alloc_mut(&ag)?);
            for (ga, go) in ga.chunks_exact_mut(c1).zip(go.chunks_exact(c)) {
                ga.iter_mut().zip(&go[..c1]).for_each(|(a, g)| *a += *g);
            }
            let gb = E::buf(grads.get_or_alloc_mut(&bg)?);
            for (gb, go) in gb.chunks_exact_mut(c2).zip(go.chunks_exact(c)) {
                gb.iter_mut().zip(&go[c1..]).for_each(|(a, g)| *a += *g);
            }
            put_grad(grads.get_or_alloc_mut(&og)?, go);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// Group normalisation with per-channel scale `γ` and shift `β`, optionally followed by
/// SiLU, as one op. For each image and each of `groups` channel groups (`m` values: the
/// group's channels at all pixels), `x̂ = (x − μ)/√(σ² + eps)` with `μ, σ²` the group's
/// mean and (biased) variance, `y = γ·x̂ + β`, and the output is `y` or `y·σ(y)`.
///
/// Backward, with `dy = dout` or `dout·(s + y·s·(1 − s))`, `s = σ(y)`:
/// `dβ = Σ dy`, `dγ = Σ dy·x̂` (over images and pixels), and with `d = γ·dy`,
/// `dx = (d − mean(d) − x̂·mean(d·x̂))/√(σ² + eps)` per group.
///
/// Statistics and gradient means accumulate in `f64` (for `f32` the sums over a group of
/// `hw·c/groups` values would otherwise lose digits); the per-element work stays in `E`.
fn group_norm_fused<E: Elem, T: Tape<E, Cpu>>(
    x: Mat<E, T>,
    g: Grid,
    groups: usize,
    gamma: Vec1<E, T>,
    beta: Vec1<E, T>,
    eps: f64,
    with_silu: bool,
) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    assert!(rows == g.rows() && groups > 0 && c % groups == 0, "group_norm: bad shape");
    assert!(gamma.shape().0 == c && beta.shape().0 == c, "group_norm: gamma/beta length");
    let (x, tx) = x.split_tape();
    let (gamma, tg) = gamma.split_tape();
    let (beta, tb) = beta.split_tape();
    let mut tape = tx.merge(tg).merge(tb);
    let (gv, bv) = (values(&gamma), values(&beta));
    // x̂ is computed in place of the copied input values.
    let mut xhat = values(&x);
    let hw = g.h * g.w;
    let cg = c / groups;
    let n = (hw * cg) as f64;
    let mut inv = vec![0.0f64; g.b * groups];
    let (mut mu, mut s2) = (vec![0.0f64; groups], vec![0.0f64; groups]);
    for (img, inv) in xhat.chunks_exact_mut(hw * c).zip(inv.chunks_exact_mut(groups)) {
        mu.fill(0.0);
        s2.fill(0.0);
        // Row by row (one pixel's channels are contiguous), each group's slice of the row.
        for row in img.chunks_exact(c) {
            for (gr, part) in row.chunks_exact(cg).enumerate() {
                for v in part {
                    let v = v.f64();
                    mu[gr] += v;
                    s2[gr] += v * v;
                }
            }
        }
        for gr in 0..groups {
            mu[gr] /= n;
            let var = (s2[gr] / n - mu[gr] * mu[gr]).max(0.0);
            inv[gr] = 1.0 / (var + eps).sqrt();
        }
        for row in img.chunks_exact_mut(c) {
            for (gr, part) in row.chunks_exact_mut(cg).enumerate() {
                for v in part {
                    *v = E::of((v.f64() - mu[gr]) * inv[gr]);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(rows * c);
    // σ(y) for the SiLU backward (y itself is recomputed from x̂).
    let mut sig = Vec::with_capacity(if with_silu && T::OWNS_TAPE { rows * c } else { 0 });
    for row in xhat.chunks_exact(c) {
        for ((xh, ga), be) in row.iter().zip(&gv).zip(&bv) {
            let y = *xh * *ga + *be;
            if with_silu {
                let s = sigmoid(y);
                if T::OWNS_TAPE {
                    sig.push(s);
                }
                out.push(y * s);
            } else {
                out.push(y);
            }
        }
    }
    let out = x.device().tensor_from_vec(out, (rows, c));
    if T::OWNS_TAPE {
        let (xg, gg, bg, og) = (x.ghost(), gamma.ghost(), beta.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let go = take_grad(grads.get_or_alloc_mut(&og)?);
            let (mut dgamma, mut dbeta) = (vec![0.0f64; c], vec![0.0f64; c]);
            // γ·dy of one image, for the second pass.
            let mut d = vec![E::zero(); hw * c];
            let (mut m1, mut m2) = (vec![0.0f64; groups], vec![0.0f64; groups]);
            let gx = E::buf(grads.get_or_alloc_mut(&xg)?);
            for (i, (gx, go)) in gx.chunks_exact_mut(hw * c).zip(go.chunks_exact(hw * c)).enumerate() {
                let xh = &xhat[i * hw * c..(i + 1) * hw * c];
                m1.fill(0.0);
                m2.fill(0.0);
                for (p, (gor, xhr)) in go.chunks_exact(c).zip(xh.chunks_exact(c)).enumerate() {
                    let dr = &mut d[p * c..(p + 1) * c];
                    for ch in 0..c {
                        let mut dy = gor[ch];
                        if with_silu {
                            let s = sig[(i * hw + p) * c + ch];
                            let y = xhr[ch] * gv[ch] + bv[ch];
                            dy = dy * (s + y * s * (E::one() - s));
                        }
                        dbeta[ch] += dy.f64();
                        dgamma[ch] += (dy * xhr[ch]).f64();
                        let dv = dy * gv[ch];
                        dr[ch] = dv;
                        m1[ch / cg] += dv.f64();
                        m2[ch / cg] += (dv * xhr[ch]).f64();
                    }
                }
                for gr in 0..groups {
                    m1[gr] /= n;
                    m2[gr] /= n;
                }
                let iv = &inv[i * groups..(i + 1) * groups];
                for ((gxr, dr), xhr) in gx.chunks_exact_mut(c).zip(d.chunks_exact(c)).zip(xh.chunks_exact(c)) {
                    for (gr, ((gxp, dp), xhp)) in
                        gxr.chunks_exact_mut(cg).zip(dr.chunks_exact(cg)).zip(xhr.chunks_exact(cg)).enumerate()
                    {
                        let (a, b, v) = (m1[gr], m2[gr], iv[gr]);
                        for ((o, dv), xv) in gxp.iter_mut().zip(dp).zip(xhp) {
                            *o += E::of((dv.f64() - a - xv.f64() * b) * v);
                        }
                    }
                }
            }
            let gga = E::buf(grads.get_or_alloc_mut(&gg)?);
            gga.iter_mut().zip(&dgamma).for_each(|(a, v)| *a += E::of(*v));
            let gbe = E::buf(grads.get_or_alloc_mut(&bg)?);
            gbe.iter_mut().zip(&dbeta).for_each(|(a, v)| *a += E::of(*v));
            put_grad(grads.get_or_alloc_mut(&og)?, go);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// GroupNorm with per-channel scale `gamma` and shift `beta` (eps 1e-6 as the reference),
/// one op (see [`group_norm_silu`] for the math).
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
    group_norm_fused(x, g, groups, gamma, beta, 1e-6, false)
}

/// `silu(group_norm(x))`, one op: the normalisation `x̂ = (x − μ)/√(σ² + eps)` per image
/// and channel group, the affine `y = γ·x̂ + β` and SiLU `y·σ(y)`. Backward with
/// `dy = dout·(s + y·s·(1 − s))`, `s = σ(y)`: `dβ = Σ dy`, `dγ = Σ dy·x̂`, and with
/// `d = γ·dy`, `dx = (d − mean(d) − x̂·mean(d·x̂))/√(σ² + eps)` per group.
pub fn group_norm_silu<E: Elem, T: Tape<E, Cpu>>(
    x: Mat<E, T>,
    g: Grid,
    groups: usize,
    gamma: Vec1<E, T>,
    beta: Vec1<E, T>,
) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    group_norm_fused(x, g, groups, gamma, beta, 1e-6, true)
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

/// Single-head self-attention over the `h·w` positions of each image (the reference's
/// `AttnBlockpp` core, without the norm and residual): `softmax(q kᵀ/√c) v`, with
/// `q, k, v` of shape `(b·hw, c)`. Returns `(b·hw, c)`.
pub fn attention<E: Elem, T: Tape<E, Cpu>>(q: Mat<E, T>, k: Mat<E, T>, v: Mat<E, T>, g: Grid) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *q.shape();
    let hw = g.h * g.w;
    count_flops(4 * g.b * hw * hw * c);
    let s3 = (g.b, hw, c);
    let q3 = q.reshape_like(&s3);
    let k3 = k.reshape_like(&s3);
    let v3 = v.reshape_like(&s3);
    let kt = k3.permute::<(usize, usize, usize), Axes3<0, 2, 1>>();
    let w = q3.matmul(kt) * E::of(1.0 / (c as f64).sqrt());
    let w = w.softmax::<Axis<2>>();
    w.matmul(v3).reshape_like(&(rows, c))
}

/// Sinusoidal embedding of the time labels (`dim` even): `[sin(τ·f_i), cos(τ·f_i)]` with
/// `f_i = exp(−ln(10⁴)·i/(dim/2 − 1))`, as the reference's `get_timestep_embedding`.
pub fn sinusoidal_embedding(labels: &[f64], dim: usize) -> Vec<f64> {
    let half = dim / 2;
    let scale = (10000f64).ln() / ((half.max(2) - 1) as f64);
    let mut out = Vec::with_capacity(labels.len() * dim);
    for &tau in labels {
        for i in 0..half {
            out.push((tau * (-scale * i as f64).exp()).sin());
        }
        for i in 0..half {
            out.push((tau * (-scale * i as f64).exp()).cos());
        }
    }
    out
}

/// Gaussian random Fourier features `[sin(2π τ W_i), cos(2π τ W_i)]` for fixed frequencies
/// `W ~ N(0, scale²)` (the reference's `GaussianFourierProjection`, applied to `ln τ`).
pub fn fourier_embedding(labels: &[f64], freqs: &[f64]) -> Vec<f64> {
    let mut out = Vec::with_capacity(labels.len() * 2 * freqs.len());
    for &tau in labels {
        let a = tau.max(1e-12).ln();
        for f in freqs {
            out.push((2.0 * std::f64::consts::PI * a * f).sin());
        }
        for f in freqs {
            out.push((2.0 * std::f64::consts::PI * a * f).cos());
        }
    }
    out
}

/// Converts `(b, c, h, w)` images (flattened, C order) to the rows layout.
pub fn nchw_to_rows<E: Elem, S: Shape, T: Tape<E, Cpu>>(x: Tensor<S, E, Cpu, T>, c: usize, g: Grid) -> Mat<E, T>
where
    Cpu: Device<E>,
{
    let hw = g.h * g.w;
    assert_eq!(x.shape().num_elements(), g.b * c * hw);
    custom_unary(
        x,
        (g.rows(), c),
        move |xv| {
            let mut out = vec![E::zero(); xv.len()];
            for i in 0..g.b {
                for ch in 0..c {
                    for p in 0..hw {
                        out[(i * hw + p) * c + ch] = xv[(i * c + ch) * hw + p];
                    }
                }
            }
            out
        },
        move |go, gi| {
            for i in 0..g.b {
                for ch in 0..c {
                    for p in 0..hw {
                        gi[(i * c + ch) * hw + p] += go[(i * hw + p) * c + ch];
                    }
                }
            }
        },
    )
}

/// Converts a rows-layout activation back to `(b, c, h, w)` images of shape `S`.
pub fn rows_to_nchw<E: Elem, S: Shape, T: Tape<E, Cpu>>(x: Mat<E, T>, g: Grid, shape: S) -> Tensor<S, E, Cpu, T>
where
    Cpu: Device<E>,
{
    let (rows, c) = *x.shape();
    assert_eq!(rows, g.rows());
    let hw = g.h * g.w;
    custom_unary(
        x,
        shape,
        move |xv| {
            let mut out = vec![E::zero(); xv.len()];
            for i in 0..g.b {
                for ch in 0..c {
                    for p in 0..hw {
                        out[(i * c + ch) * hw + p] = xv[(i * hw + p) * c + ch];
                    }
                }
            }
            out
        },
        move |go, gi| {
            for i in 0..g.b {
                for ch in 0..c {
                    for p in 0..hw {
                        gi[(i * hw + p) * c + ch] += go[(i * c + ch) * hw + p];
                    }
                }
            }
        },
    )
}

/// The composed dfdx versions of the fused ops above, kept as references for the tests
/// (each fused op must match its composition in values and in every gradient).
pub mod composed {
    use super::*;

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

    /// `silu(group_norm(x))` composed.
    pub fn group_norm_silu<E: Elem, T: Tape<E, Cpu>>(
        x: Mat<E, T>,
        g: Grid,
        groups: usize,
        gamma: Vec1<E, T>,
        beta: Vec1<E, T>,
    ) -> Mat<E, T>
    where
        Cpu: Device<E>,
    {
        silu(group_norm(x, g, groups, gamma, beta))
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
}
