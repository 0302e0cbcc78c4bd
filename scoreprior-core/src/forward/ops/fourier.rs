//! Fourier-domain primitives on split complex data (see [`crate::forward`] for the layout).
//!
//! - [`Fft2`]: `y = S F_N P x / √(HW)` per channel, with `P` = ifftshift, `S` = fftshift and
//!   `F_N` the unnormalised DFT: the centred orthonormal transform, `fftshift(fft2(ifftshift(x),
//!   norm="ortho"))`, real image → complex. As a real map `R^N → R^{2N}` its adjoint is
//!   `Re(P⁻¹ F_N^H S⁻¹ w)/√(HW)`, i.e. [`Ifft2`], and vice versa: the pair is exactly adjoint.
//! - [`DftLowpass`]: the reference code's "deblurring", `y = (F_N x)[0..k, 0..k]` (unnormalised,
//!   unshifted, the non-negative-frequency corner), adjoint `Re(F_N^H zero-fill(w))`.
//! - [`FourierMask`]: MRI sampling masks applied to centred k-space (a [`Mask`] on split data).

use std::sync::Arc;

use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

use super::masks;
use super::Mask;
use crate::forward::{Op, Shape};
use crate::{Error, Result};

/// Unnormalised 2-D DFT plans for `h × w` arrays.
#[derive(Clone)]
pub(crate) struct Plan2d {
    h: usize,
    w: usize,
    row_f: Arc<dyn Fft<f64>>,
    col_f: Arc<dyn Fft<f64>>,
    row_i: Arc<dyn Fft<f64>>,
    col_i: Arc<dyn Fft<f64>>,
}

impl std::fmt::Debug for Plan2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plan2d({}×{})", self.h, self.w)
    }
}

impl Plan2d {
    pub(crate) fn new(h: usize, w: usize) -> Self {
        let mut p = FftPlanner::new();
        Plan2d {
            h,
            w,
            row_f: p.plan_fft_forward(w),
            col_f: p.plan_fft_forward(h),
            row_i: p.plan_fft_inverse(w),
            col_i: p.plan_fft_inverse(h),
        }
    }
    /// In place: `Σ z e^{∓2πi(…)}` (`inverse` = `+`, unnormalised).
    pub(crate) fn run(&self, z: &mut [Complex64], inverse: bool) {
        let (h, w) = (self.h, self.w);
        let (rf, cf) = if inverse { (&self.row_i, &self.col_i) } else { (&self.row_f, &self.col_f) };
        rf.process(z);
        // Columns: transpose, transform rows of length h, transpose back.
        let mut t = vec![Complex64::new(0.0, 0.0); h * w];
        for i in 0..h {
            for j in 0..w {
                t[j * h + i] = z[i * w + j];
            }
        }
        cf.process(&mut t);
        for i in 0..h {
            for j in 0..w {
                z[i * w + j] = t[j * h + i];
            }
        }
    }
}

/// `out[i] = x[(i + s) mod n]` along both axes of an `h × w` array.
fn roll(x: &[Complex64], h: usize, w: usize, sh: usize, sw: usize) -> Vec<Complex64> {
    let mut out = vec![Complex64::new(0.0, 0.0); h * w];
    for i in 0..h {
        let si = (i + sh) % h;
        for j in 0..w {
            out[i * w + j] = x[si * w + (j + sw) % w];
        }
    }
    out
}

/// Centred orthonormal transform of one `h × w` complex array: forward
/// `fftshift(F ifftshift(z))/√N`, inverse `fftshift(F^H ifftshift(z))/√N`.
fn centred(plan: &Plan2d, z: &[Complex64], inverse: bool) -> Vec<Complex64> {
    let (h, w) = (plan.h, plan.w);
    // ifftshift: out[i] = z[(i + n/2) mod n]; fftshift: out[i] = z[(i + n − n/2) mod n].
    let mut a = roll(z, h, w, h / 2, w / 2);
    plan.run(&mut a, inverse);
    let s = 1.0 / ((h * w) as f64).sqrt();
    a.iter_mut().for_each(|v| *v *= s);
    roll(&a, h, w, h - h / 2, w - w / 2)
}

/// Centred orthonormal 2-D FFT per channel: real `[C, H, W]` → split complex `[2C, H, W]`.
///
/// ```
/// use scoreprior_core::forward::{ops::Fft2, Op};
/// let f = Fft2::new([1, 4, 4].into());
/// let mut y = vec![0.0; 32];
/// f.apply(&vec![1.0; 16], &mut y);
/// // A constant image has all its energy at the centre frequency (2, 2): 16/√16 = 4.
/// assert!((y[2 * 4 + 2] - 4.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone)]
pub struct Fft2 {
    shape: Shape,
    plan: Plan2d,
}

/// Real part of the centred orthonormal inverse 2-D FFT per channel: split complex
/// `[2C, H, W]` → real `[C, H, W]`; the exact adjoint of [`Fft2`].
#[derive(Debug, Clone)]
pub struct Ifft2 {
    /// The real output shape.
    shape: Shape,
    plan: Plan2d,
}

fn real_to_complex(x: &[f64]) -> Vec<Complex64> {
    x.iter().map(|&v| Complex64::new(v, 0.0)).collect()
}
fn split_to_complex(re: &[f64], im: &[f64]) -> Vec<Complex64> {
    re.iter().zip(im).map(|(&a, &b)| Complex64::new(a, b)).collect()
}

/// Forward centred transform of each real channel of `x` into split `y`.
fn fft2c_real(plan: &Plan2d, shape: Shape, x: &[f64], y: &mut [f64], inverse: bool) {
    let hw = shape.h * shape.w;
    let (re, im) = y.split_at_mut(shape.c * hw);
    for c in 0..shape.c {
        let z = centred(plan, &real_to_complex(&x[c * hw..(c + 1) * hw]), inverse);
        for p in 0..hw {
            re[c * hw + p] = z[p].re;
            im[c * hw + p] = z[p].im;
        }
    }
}
/// Centred transform of each split complex channel of `y`, real part into `x`.
fn fft2c_split_re(plan: &Plan2d, shape: Shape, y: &[f64], x: &mut [f64], inverse: bool) {
    let hw = shape.h * shape.w;
    let (re, im) = y.split_at(shape.c * hw);
    for c in 0..shape.c {
        let z = centred(plan, &split_to_complex(&re[c * hw..(c + 1) * hw], &im[c * hw..(c + 1) * hw]), inverse);
        for p in 0..hw {
            x[c * hw + p] = z[p].re;
        }
    }
}

impl Fft2 {
    /// The transform of real images of `shape`.
    pub fn new(shape: Shape) -> Self {
        Fft2 { shape, plan: Plan2d::new(shape.h, shape.w) }
    }
}
impl Op for Fft2 {
    fn output_is_complex(&self, _input_complex: bool) -> bool {
        true
    }
    fn describe(&self) -> String {
        "fft2".into()
    }
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn output_shape(&self) -> Shape {
        Shape::new(2 * self.shape.c, self.shape.h, self.shape.w)
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        fft2c_real(&self.plan, self.shape, x, y, false)
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        fft2c_split_re(&self.plan, self.shape, y, x, true);
        Ok(())
    }
}

impl Ifft2 {
    /// The inverse transform of split complex data of `input` shape `[2C, H, W]`.
    pub fn new(input: Shape) -> Result<Self> {
        if !input.c.is_multiple_of(2) {
            return Err(Error::shape("ifft2 input", "split complex input (an even channel count)", input));
        }
        let shape = Shape::new(input.c / 2, input.h, input.w);
        Ok(Ifft2 { shape, plan: Plan2d::new(shape.h, shape.w) })
    }
}
impl Op for Ifft2 {
    fn output_is_complex(&self, _input_complex: bool) -> bool {
        false
    }
    fn describe(&self) -> String {
        "ifft2".into()
    }
    fn input_shape(&self) -> Shape {
        Shape::new(2 * self.shape.c, self.shape.h, self.shape.w)
    }
    fn output_shape(&self) -> Shape {
        self.shape
    }
    fn apply(&self, y: &[f64], x: &mut [f64]) {
        fft2c_split_re(&self.plan, self.shape, y, x, true)
    }
    fn adjoint(&self, x: &[f64], y: &mut [f64]) -> Result<()> {
        fft2c_real(&self.plan, self.shape, x, y, false);
        Ok(())
    }
}

/// The reference code's "deblurring": the top-left `k × k` block of the unnormalised,
/// unshifted 2-D DFT of each channel, real `[C, H, W]` → split complex `[2C, k, k]`.
#[derive(Debug, Clone)]
pub struct DftLowpass {
    shape: Shape,
    k: usize,
    plan: Plan2d,
}
impl DftLowpass {
    /// Keeps the `k × k` lowest non-negative frequencies; `k ≤ min(H, W)`.
    pub fn new(shape: Shape, k: usize) -> Result<Self> {
        if k == 0 || k > shape.h || k > shape.w {
            return Err(Error::count_out_of_range(
                "dft_lowpass block size k",
                k,
                format!("between 1 and the image size {}×{}", shape.h, shape.w),
            ));
        }
        Ok(DftLowpass { shape, k, plan: Plan2d::new(shape.h, shape.w) })
    }
}
impl Op for DftLowpass {
    fn output_is_complex(&self, _input_complex: bool) -> bool {
        true
    }
    fn describe(&self) -> String {
        format!("dft_lowpass(k={})", self.k)
    }
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn output_shape(&self) -> Shape {
        Shape::new(2 * self.shape.c, self.k, self.k)
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let (hw, w, k) = (self.shape.h * self.shape.w, self.shape.w, self.k);
        let half = self.shape.c * k * k;
        for c in 0..self.shape.c {
            let mut z = real_to_complex(&x[c * hw..(c + 1) * hw]);
            self.plan.run(&mut z, false);
            for i in 0..k {
                for j in 0..k {
                    y[c * k * k + i * k + j] = z[i * w + j].re;
                    y[half + c * k * k + i * k + j] = z[i * w + j].im;
                }
            }
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        let (hw, w, k) = (self.shape.h * self.shape.w, self.shape.w, self.k);
        let half = self.shape.c * k * k;
        for c in 0..self.shape.c {
            let mut z = vec![Complex64::new(0.0, 0.0); hw];
            for i in 0..k {
                for j in 0..k {
                    z[i * w + j] = Complex64::new(y[c * k * k + i * k + j], y[half + c * k * k + i * k + j]);
                }
            }
            self.plan.run(&mut z, true);
            for p in 0..hw {
                x[c * hw + p] = z[p].re;
            }
        }
        Ok(())
    }
}

/// MRI sampling masks on centred k-space, applied to split complex data `[2C, H, W]`.
pub struct FourierMask;

impl FourierMask {
    /// Cartesian: whole rows (phase-encoding lines) kept, `H/acceleration` of them, the
    /// central `center` rows always (see [`masks::cartesian`]).
    pub fn cartesian(input: Shape, acceleration: f64, center: usize, seed: u64) -> Result<Mask> {
        let m = masks::cartesian(input.h, input.w, acceleration, center, seed)?;
        Ok(Mask::new(input, m)?
            .with_label(format!("cartesian_mask(acceleration={acceleration}, center={center}, seed={seed})")))
    }
    /// Variable-density Poisson-disc with a fully sampled `center × center` block (see
    /// [`masks::poisson_disc`]).
    pub fn poisson(input: Shape, acceleration: f64, center: usize, seed: u64) -> Result<Mask> {
        let m = masks::poisson_disc(input.h, input.w, acceleration, center, seed)?;
        Ok(Mask::new(input, m)?
            .with_label(format!("poisson_mask(acceleration={acceleration}, center={center}, seed={seed})")))
    }
}
