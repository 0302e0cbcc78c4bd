//! Non-uniform DFT at `K` points `(u_k, v_k)` (in wavelengths): the interferometric
//! visibilities of a gray image with point-like pixels,
//! `V_k = Σ_{i,j} x[i,j] e^{+2πi(u_k l_j + v_k m_i)}`, `l_j = ((W−1)/2 − j)·Δ` (RA offset, East
//! to the left) and `m_i = ((H−1)/2 − i)·Δ` (Dec offset, North up), `Δ` the pixel size in
//! radians, phase centre at the image centre (eht-imaging's `ftmatrix` conventions). As a
//! real map `x ↦ [Re V; Im V] = [C; S] x` with `C_kp = cos φ_kp`, `S_kp = sin φ_kp`, and the
//! adjoint is `x = Cᵀ Re y + Sᵀ Im y`.
//!
//! Optionally each `V_k` carries the Fourier transform of the pixel shape, [`Pulse`] (ehtim's
//! default triangle pulse; point pixels by default here).
//!
//! Two evaluations. One image at a time ([`Op::apply`]): the kernel separates,
//! `e^{iφ_kp} = a_k[i]·b_k[j]`, so only `K(H+W)` phasors are stored and a product costs
//! `K·H·W` complex multiply–adds. A batch ([`Op::apply_batch`], `n ≥ 4` images): one dense
//! real GEMM `Y = X·[C; S]ᵀ` (`n×D · D×2K`) and `X = Y·[C; S]` for the adjoint, on the
//! matrix packed once (lazily, on the first batch) into the register-tiled panels of
//! `score::packed`, the columns split over the threads. The dense matrix and its transpose take
//! `2·D·2K·8` bytes (35 MB at 32×32 with the 1023 EHT points); above [`DENSE_MAX_BYTES`] the
//! batch runs the separable kernel per image instead.

use std::sync::{Arc, OnceLock};

use rayon::prelude::*;

use crate::forward::{Op, Shape};
use crate::score::packed::{PackedMatrix, NR};
use crate::{Error, Result};

/// The Fourier transform of one pixel's brightness profile, a per-visibility factor `P(u, v)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pulse {
    /// Point-like pixels, `P = 1` (the default).
    #[default]
    Delta,
    /// eht-imaging's default `trianglePulse2D` (bilinear pixels):
    /// `P = sinc²(π u Δ) · sinc²(π v Δ)`, `sinc(t) = sin t / t`.
    Triangle,
}

impl Pulse {
    /// `P(u, v)` for pixels of size `psize` radians.
    ///
    /// ```
    /// use scoreprior_core::forward::ops::Pulse;
    /// assert_eq!(Pulse::Triangle.factor(0.0, 0.0, 1e-10), 1.0);
    /// // Half a cycle per pixel along u: sinc²(π/2) = 4/π².
    /// let p = Pulse::Triangle.factor(0.5e10, 0.0, 1e-10);
    /// assert!((p - 4.0 / std::f64::consts::PI.powi(2)).abs() < 1e-15);
    /// ```
    pub fn factor(self, u: f64, v: f64, psize: f64) -> f64 {
        let sinc2 = |f: f64| {
            let t = std::f64::consts::PI * f * psize;
            if t == 0.0 {
                1.0
            } else {
                (t.sin() / t).powi(2)
            }
        };
        match self {
            Pulse::Delta => 1.0,
            Pulse::Triangle => sinc2(u) * sinc2(v),
        }
    }
}

/// Largest dense matrix pair (forward and adjoint packing) a [`Nudft`] builds for batches:
/// 1 GiB, i.e. `D·K ≤ 2^25` (64×64 images with up to 8192 points, 128×128 with 2048).
pub const DENSE_MAX_BYTES: usize = 1 << 30;

/// Batches of fewer images run the separable kernel: one GEMM row streams the whole dense
/// matrix from memory for `4·D·K` flops, no faster than the separable sum.
const DENSE_MIN_BATCH: usize = 4;

/// Column panels per parallel task of a batched product (`8 × 16` columns).
const PANELS_PER_TASK: usize = 8;

/// The dense `[C; S]ᵀ` (`D × 2K`) and `[C; S]` (`2K × D`), packed.
#[derive(Debug)]
struct Dense {
    fwd: PackedMatrix,
    adj: PackedMatrix,
}

/// Visibilities at `(u, v)` points of a `[1, H, W]` image with pixel size `psize` radians.
///
/// ```
/// use scoreprior_core::forward::{ops::Nudft, Op};
/// let a = Nudft::new([1, 4, 4].into(), vec![0.0], vec![0.0], 1e-10).unwrap();
/// let mut y = [0.0; 2];
/// a.apply(&vec![0.25; 16], &mut y);
/// assert!((y[0] - 4.0).abs() < 1e-12 && y[1].abs() < 1e-12); // zero spacing = total flux
/// ```
#[derive(Debug, Clone)]
pub struct Nudft {
    input: Shape,
    k: usize,
    psize: f64,
    /// `a[k·H + i]` = (cos, sin) parts of `e^{2πi v_k m_i}`.
    a: Vec<(f64, f64)>,
    /// `b[k·W + j]` = parts of `e^{2πi u_k l_j}`.
    b: Vec<(f64, f64)>,
    /// The packed dense matrices, built on the first batched call that uses them.
    dense: Arc<OnceLock<Option<Dense>>>,
}

/// The arguments of a transform at the points `(u[k], v[k])` ([`Nudft`] and its fast
/// [`super::Nufft`]): a gray image, as many `v` as `u` values and at least one, a positive
/// finite pixel size and finite points. `name` names the transform in the errors, `points`
/// its points in the error on a non-finite one.
pub(super) fn check_uv_transform(
    name: &str,
    points: &'static str,
    input: Shape,
    u: &[f64],
    v: &[f64],
    psize: f64,
) -> Result<()> {
    if input.c != 1 {
        return Err(Error::shape(format!("{name} input"), "a gray image [1, H, W]", input));
    }
    if u.len() != v.len() || u.is_empty() {
        return Err(Error::shape("(u, v) points", format!("{} v values (≥ 1)", u.len()), v.len()));
    }
    if !(psize.is_finite() && psize > 0.0) {
        return Err(Error::out_of_range(format!("{name} pixel size"), psize, "positive and finite"));
    }
    match u.iter().chain(v).position(|t| !t.is_finite()) {
        Some(index) => Err(Error::NonFiniteData { what: points, index }),
        None => Ok(()),
    }
}

impl Nudft {
    /// The NUDFT at `(u[k], v[k])`.
    pub fn new(input: Shape, u: Vec<f64>, v: Vec<f64>, psize: f64) -> Result<Self> {
        check_uv_transform("nudft", "nudft (u, v) points (u first, then v)", input, &u, &v, psize)?;
        let (h, w) = (input.h, input.w);
        let tau = 2.0 * std::f64::consts::PI;
        let phasor = |f: f64, pos: f64| {
            let ph = tau * f * pos;
            (ph.cos(), ph.sin())
        };
        let mut a = Vec::with_capacity(u.len() * h);
        let mut b = Vec::with_capacity(u.len() * w);
        for k in 0..u.len() {
            a.extend((0..h).map(|i| phasor(v[k], ((h as f64 - 1.0) / 2.0 - i as f64) * psize)));
            b.extend((0..w).map(|j| phasor(u[k], ((w as f64 - 1.0) / 2.0 - j as f64) * psize)));
        }
        Ok(Nudft { input, k: u.len(), psize, a, b, dense: Arc::new(OnceLock::new()) })
    }
    /// Number of visibilities `K`.
    pub fn len(&self) -> usize {
        self.k
    }
    /// Whether there are no points (never: the constructor refuses it).
    pub fn is_empty(&self) -> bool {
        self.k == 0
    }
    /// The same operator with every visibility multiplied by the pixel pulse `P(u_k, v_k)`
    /// (`V_k = P_k Σ x e^{iφ}`; [`Pulse::Triangle`] is what ehtim's `observe` computes).
    ///
    /// ```
    /// use scoreprior_core::forward::{ops::{Nudft, Pulse}, Op};
    /// let (u, v) = (vec![0.0, 2e9], vec![0.0, 0.0]);
    /// let op = Nudft::new([1, 2, 2].into(), u.clone(), v.clone(), 1e-10).unwrap()
    ///     .with_pulse(Pulse::Triangle, &u, &v).unwrap();
    /// let mut y = [0.0; 4];
    /// op.apply(&[0.25; 4], &mut y);
    /// assert!((y[0] - 1.0).abs() < 1e-15); // the zero spacing keeps the total flux
    /// ```
    pub fn with_pulse(mut self, pulse: Pulse, u: &[f64], v: &[f64]) -> Result<Self> {
        if u.len() != self.k || v.len() != self.k {
            return Err(Error::shape("pulse (u, v) points", self.k, u.len().min(v.len())));
        }
        let h = self.input.h;
        for k in 0..self.k {
            let f = pulse.factor(u[k], v[k], self.psize);
            self.a[k * h..(k + 1) * h].iter_mut().for_each(|z| *z = (z.0 * f, z.1 * f));
        }
        self.dense = Arc::new(OnceLock::new());
        Ok(self)
    }
    /// `e^{iφ_kp}` for pixel `p = i·W + j`, from the separable phasors.
    fn phasor(&self, k: usize, p: usize) -> (f64, f64) {
        let (h, w) = (self.input.h, self.input.w);
        let (a, b) = (self.a[k * h + p / w], self.b[k * w + p % w]);
        (a.0 * b.0 - a.1 * b.1, a.0 * b.1 + a.1 * b.0)
    }
    /// The packed dense matrices, or `None` above [`DENSE_MAX_BYTES`].
    fn dense(&self) -> Option<&Dense> {
        self.dense
            .get_or_init(|| {
                let (d, k) = (self.input.len(), self.k);
                if 2 * d * 2 * k * std::mem::size_of::<f64>() > DENSE_MAX_BYTES {
                    return None;
                }
                let part = |kk: usize, p: usize| {
                    let z = self.phasor(kk % k, p);
                    if kk < k {
                        z.0
                    } else {
                        z.1
                    }
                };
                let (fwd, adj) = rayon::join(
                    || PackedMatrix::new(d, 2 * k, |p, kk| part(kk, p)),
                    || PackedMatrix::new(2 * k, d, |kk, p| part(kk, p)),
                );
                Some(Dense { fwd, adj })
            })
            .as_ref()
    }
    /// Whether a batch of `n` images runs as a dense GEMM (else the separable kernel).
    ///
    /// ```
    /// use scoreprior_core::forward::{ops::Nudft, Op};
    /// let op = Nudft::new([1, 4, 4].into(), vec![1e9, 2e9], vec![0.0, 3e9], 1e-11).unwrap();
    /// assert!(op.uses_gemm(8) && !op.uses_gemm(1));
    /// let x: Vec<f64> = (0..8 * 16).map(|i| (i % 7) as f64).collect();
    /// let (mut batch, mut one) = (vec![0.0; 8 * 4], vec![0.0; 4]);
    /// op.apply_batch(&x, &mut batch);
    /// op.apply(&x[16..32], &mut one);
    /// assert!(one.iter().zip(&batch[4..8]).all(|(a, b)| (a - b).abs() < 1e-12));
    /// ```
    pub fn uses_gemm(&self, n: usize) -> bool {
        n >= DENSE_MIN_BATCH && self.dense().is_some()
    }
}

/// `C = A·B` (`A`: `n × K` rows, `C`: `n × M`) with the columns of the packed `B` split into
/// blocks of [`PANELS_PER_TASK`] panels over the rayon pool, each block written to its own
/// buffer and copied into place.
fn par_gemm(b: &PackedMatrix, m: usize, a: &[f64], n: usize, c: &mut [f64]) {
    let np = b.panel_count();
    let tasks: Vec<(usize, usize)> =
        (0..np).step_by(PANELS_PER_TASK).map(|p0| (p0, (p0 + PANELS_PER_TASK).min(np))).collect();
    let blocks: Vec<(usize, usize, Vec<f64>)> = tasks
        .par_iter()
        .map(|&(p0, p1)| {
            let first = p0 * NR;
            let width = (p1 * NR).min(m) - first;
            let mut block = vec![0.0; n * width];
            b.mul_rows_panels(a, p0, p1, &mut block);
            (first, width, block)
        })
        .collect();
    for (first, width, block) in blocks {
        for (row, src) in c.chunks_mut(m).zip(block.chunks(width)) {
            row[first..first + width].copy_from_slice(src);
        }
    }
}

impl Op for Nudft {
    fn output_is_complex(&self, _input_complex: bool) -> bool {
        true
    }
    fn describe(&self) -> String {
        format!("nudft({} points, pixel={:.4e} rad)", self.k, self.psize)
    }
    fn input_shape(&self) -> Shape {
        self.input
    }
    fn output_shape(&self) -> Shape {
        Shape::new(2, 1, self.k)
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let (h, w, kk) = (self.input.h, self.input.w, self.k);
        for k in 0..kk {
            let (ak, bk) = (&self.a[k * h..(k + 1) * h], &self.b[k * w..(k + 1) * w]);
            let (mut vr, mut vi) = (0.0, 0.0);
            for i in 0..h {
                let row = &x[i * w..(i + 1) * w];
                let (mut sr, mut si) = (0.0, 0.0);
                for j in 0..w {
                    sr += row[j] * bk[j].0;
                    si += row[j] * bk[j].1;
                }
                vr += ak[i].0 * sr - ak[i].1 * si;
                vi += ak[i].0 * si + ak[i].1 * sr;
            }
            y[k] = vr;
            y[kk + k] = vi;
        }
    }
    fn apply_batch(&self, x: &[f64], y: &mut [f64]) {
        let (d, m) = (self.input.len(), 2 * self.k);
        let n = x.len() / d;
        match (n >= DENSE_MIN_BATCH).then(|| self.dense()).flatten() {
            Some(dense) => par_gemm(&dense.fwd, m, x, n, y),
            None => y.par_chunks_mut(m).zip(x.par_chunks(d)).for_each(|(yi, xi)| self.apply(xi, yi)),
        }
    }
    fn adjoint_batch(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        let (d, m) = (self.input.len(), 2 * self.k);
        let n = y.len() / m;
        match (n >= DENSE_MIN_BATCH).then(|| self.dense()).flatten() {
            Some(dense) => {
                par_gemm(&dense.adj, d, y, n, x);
                Ok(())
            }
            None => x.par_chunks_mut(d).zip(y.par_chunks(m)).try_for_each(|(xi, yi)| self.adjoint(yi, xi)),
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        let (h, w, kk) = (self.input.h, self.input.w, self.k);
        x.fill(0.0);
        for k in 0..kk {
            let (cr, ci) = (y[k], -y[kk + k]); // conj(w_k)
            let (ak, bk) = (&self.a[k * h..(k + 1) * h], &self.b[k * w..(k + 1) * w]);
            for i in 0..h {
                let (tr, ti) = (ak[i].0 * cr - ak[i].1 * ci, ak[i].0 * ci + ak[i].1 * cr);
                let row = &mut x[i * w..(i + 1) * w];
                for j in 0..w {
                    row[j] += tr * bk[j].0 - ti * bk[j].1;
                }
            }
        }
        Ok(())
    }
}
