//! Non-uniform DFT at `K` points `(u_k, v_k)` (in wavelengths): the interferometric
//! visibilities of a gray image with point-like pixels,
//! `V_k = Σ_{i,j} x[i,j] e^{+2πi(u_k l_j + v_k m_i)}`, `l_j = ((W−1)/2 − j)·Δ` (RA offset, East
//! to the left) and `m_i = ((H−1)/2 − i)·Δ` (Dec offset, North up), `Δ` the pixel size in
//! radians, phase centre at the image centre. The kernel separates,
//! `e^{2πi(u l + v m)} = a_k[i]·b_k[j]`, so only `K(H+W)` phasors are stored and each
//! product costs `K·H·W`. Output is split complex `[2, 1, K]` (`Re V` then `Im V`); as a real
//! map its adjoint is `x[i,j] = Re Σ_k a_k[i] b_k[j] conj(w_k)`, `w = Re y + i Im y`.

use crate::forward::{Op, Shape};
use crate::{Error, Result};

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
}

impl Nudft {
    /// The NUDFT at `(u[k], v[k])`.
    pub fn new(input: Shape, u: Vec<f64>, v: Vec<f64>, psize: f64) -> Result<Self> {
        if input.c != 1 {
            return Err(Error::invalid(format!("nudft needs a gray image [1, H, W], got {input}")));
        }
        if u.len() != v.len() || u.is_empty() {
            return Err(Error::shape("(u, v) points", format!("{} v values (≥ 1)", u.len()), v.len()));
        }
        if !(psize.is_finite() && psize > 0.0) || u.iter().chain(&v).any(|t| !t.is_finite()) {
            return Err(Error::invalid("nudft needs finite (u, v) and a positive pixel size"));
        }
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
        Ok(Nudft { input, k: u.len(), psize, a, b })
    }
    /// Number of visibilities `K`.
    pub fn len(&self) -> usize {
        self.k
    }
    /// Whether there are no points (never: the constructor refuses it).
    pub fn is_empty(&self) -> bool {
        self.k == 0
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
