//! Pixel-domain linear primitives: identity, scale, mask, subsample, average pooling, crop
//! and zero padding. Each is a 0/1 or constant-weight selection matrix, so its adjoint is a
//! scatter with the same weights.

use rand::{Rng, SeedableRng};

use crate::forward::{Op, Shape};
use crate::{Error, Result};

/// `A = I` (denoising).
///
/// ```
/// use scoreprior_core::forward::{ops::Identity, Op};
/// let op = Identity::new([1, 2, 2].into());
/// let mut y = [0.0; 4];
/// op.apply(&[1.0, 2.0, 3.0, 4.0], &mut y);
/// assert_eq!(y, [1.0, 2.0, 3.0, 4.0]);
/// ```
#[derive(Debug, Clone)]
pub struct Identity {
    shape: Shape,
}
impl Identity {
    /// The identity on images of `shape`.
    pub fn new(shape: Shape) -> Self {
        Identity { shape }
    }
}
impl Op for Identity {
    fn describe(&self) -> String {
        "identity".into()
    }
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn output_shape(&self) -> Shape {
        self.shape
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.copy_from_slice(x)
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        x.copy_from_slice(y);
        Ok(())
    }
}

/// `A = s·I`; self-adjoint.
#[derive(Debug, Clone)]
pub struct Scale {
    shape: Shape,
    factor: f64,
}
impl Scale {
    /// Multiplication by `factor`.
    pub fn new(shape: Shape, factor: f64) -> Self {
        Scale { shape, factor }
    }
}
impl Op for Scale {
    fn describe(&self) -> String {
        format!("scale(factor={})", self.factor)
    }
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn output_shape(&self) -> Shape {
        self.shape
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.iter_mut().zip(x).for_each(|(b, a)| *b = self.factor * a)
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        self.apply(y, x);
        Ok(())
    }
}

/// `A = diag(m)`, `m ∈ {0, 1}^{H×W}` shared by all channels (inpainting, and Fourier
/// masks on split complex data); self-adjoint. Masked entries stay in `y` as zeros, the
/// reference code's layout; they are not measurements ([`Op::observed`]): a [`crate::forward::Model`]
/// whose chain ends in a mask puts no noise there and leaves them out of the likelihood.
#[derive(Debug, Clone)]
pub struct Mask {
    shape: Shape,
    mask: Vec<bool>,
    label: String,
}
impl Mask {
    /// A given `H × W` mask (`true` = observed).
    pub fn new(shape: Shape, mask: Vec<bool>) -> Result<Self> {
        if mask.len() != shape.h * shape.w {
            return Err(Error::shape("mask", format!("{}×{} = {}", shape.h, shape.w, shape.h * shape.w), mask.len()));
        }
        let kept = mask.iter().filter(|&&b| b).count();
        Ok(Mask { shape, mask, label: format!("mask({kept} of {} pixels)", shape.h * shape.w) })
    }
    /// A random mask observing each pixel with probability `keep`, from `seed`.
    ///
    /// ```
    /// let m = scoreprior_core::forward::ops::Mask::random([1, 16, 16].into(), 0.5, 7).unwrap();
    /// let kept = m.mask().iter().filter(|&&b| b).count();
    /// assert!(kept > 90 && kept < 166);
    /// ```
    pub fn random(shape: Shape, keep: f64, seed: u64) -> Result<Self> {
        if !(keep > 0.0 && keep <= 1.0) {
            return Err(Error::out_of_range("mask keep probability", keep, "in (0, 1]"));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mask = (0..shape.h * shape.w).map(|_| rng.gen::<f64>() < keep).collect();
        let mut m = Self::new(shape, mask)?;
        m.label = format!("mask(keep={keep}, seed={seed})");
        Ok(m)
    }
    /// Renames the mask in descriptions.
    pub(crate) fn with_label(mut self, label: String) -> Self {
        self.label = label;
        self
    }
    /// The `H × W` mask, row-major.
    pub fn mask(&self) -> &[bool] {
        &self.mask
    }
}
impl Op for Mask {
    fn describe(&self) -> String {
        self.label.clone()
    }
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn output_shape(&self) -> Shape {
        self.shape
    }
    fn observed(&self) -> Option<Vec<bool>> {
        Some(self.mask.iter().copied().cycle().take(self.shape.len()).collect())
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let hw = self.mask.len();
        for (yc, xc) in y.chunks_mut(hw).zip(x.chunks(hw)) {
            for p in 0..hw {
                yc[p] = if self.mask[p] { xc[p] } else { 0.0 };
            }
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        self.apply(y, x);
        Ok(())
    }
}

/// `y[c, i, j] = x[c, f·i, f·j]`: keep every `f`-th pixel; `H` and `W` must be multiples
/// of `f`. `Aᵀ` puts `y` back at those pixels and zeros elsewhere.
#[derive(Debug, Clone)]
pub struct Subsample {
    shape: Shape,
    factor: usize,
}
impl Subsample {
    /// Subsampling by `factor`.
    pub fn new(shape: Shape, factor: usize) -> Result<Self> {
        check_factor(shape, factor, "subsample")?;
        Ok(Subsample { shape, factor })
    }
}
fn check_factor(shape: Shape, f: usize, what: &str) -> Result<()> {
    if f == 0 || !shape.h.is_multiple_of(f) || !shape.w.is_multiple_of(f) {
        let expected = format!("a divisor of the image size {}×{}", shape.h, shape.w);
        return Err(Error::count_out_of_range(format!("{what} factor"), f, expected));
    }
    Ok(())
}
impl Op for Subsample {
    fn describe(&self) -> String {
        format!("subsample(factor={})", self.factor)
    }
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn output_shape(&self) -> Shape {
        Shape::new(self.shape.c, self.shape.h / self.factor, self.shape.w / self.factor)
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let (f, o) = (self.factor, self.output_shape());
        for c in 0..o.c {
            for i in 0..o.h {
                for j in 0..o.w {
                    y[(c * o.h + i) * o.w + j] = x[(c * self.shape.h + f * i) * self.shape.w + f * j];
                }
            }
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        let (f, o) = (self.factor, self.output_shape());
        x.fill(0.0);
        for c in 0..o.c {
            for i in 0..o.h {
                for j in 0..o.w {
                    x[(c * self.shape.h + f * i) * self.shape.w + f * j] = y[(c * o.h + i) * o.w + j];
                }
            }
        }
        Ok(())
    }
}

/// `y[c, i, j] = mean of x[c, f·i .. f·i+f, f·j .. f·j+f]` (super-resolution). `Aᵀ` spreads
/// `y/f²` over each block.
#[derive(Debug, Clone)]
pub struct AvgPool {
    shape: Shape,
    factor: usize,
}
impl AvgPool {
    /// Average pooling over `factor × factor` blocks.
    pub fn new(shape: Shape, factor: usize) -> Result<Self> {
        check_factor(shape, factor, "avg_pool")?;
        Ok(AvgPool { shape, factor })
    }
}
impl Op for AvgPool {
    fn describe(&self) -> String {
        format!("avg_pool(factor={})", self.factor)
    }
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn output_shape(&self) -> Shape {
        Shape::new(self.shape.c, self.shape.h / self.factor, self.shape.w / self.factor)
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let (f, o, s) = (self.factor, self.output_shape(), self.shape);
        let inv = 1.0 / (f * f) as f64;
        for c in 0..o.c {
            for i in 0..o.h {
                for j in 0..o.w {
                    let mut acc = 0.0;
                    for a in 0..f {
                        for b in 0..f {
                            acc += x[(c * s.h + f * i + a) * s.w + f * j + b];
                        }
                    }
                    y[(c * o.h + i) * o.w + j] = acc * inv;
                }
            }
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        let (f, o, s) = (self.factor, self.output_shape(), self.shape);
        let inv = 1.0 / (f * f) as f64;
        for c in 0..s.c {
            for i in 0..s.h {
                for j in 0..s.w {
                    x[(c * s.h + i) * s.w + j] = y[(c * o.h + i / f) * o.w + j / f] * inv;
                }
            }
        }
        Ok(())
    }
}

/// `y = x[:, top..top+height, left..left+width]`; `Aᵀ` zero-pads back.
#[derive(Debug, Clone)]
pub struct Crop {
    shape: Shape,
    top: usize,
    left: usize,
    out: Shape,
}
impl Crop {
    /// A `height × width` window at `(top, left)`.
    pub fn new(shape: Shape, top: usize, left: usize, height: usize, width: usize) -> Result<Self> {
        if height == 0 || width == 0 {
            return Err(Error::count_out_of_range("crop window side", height.min(width), "at least 1"));
        }
        if top + height > shape.h || left + width > shape.w {
            return Err(Error::inconsistent(
                format!("crop window {height}×{width} at ({top}, {left})"),
                format!("does not fit in the image {}×{}", shape.h, shape.w),
            ));
        }
        Ok(Crop { shape, top, left, out: Shape::new(shape.c, height, width) })
    }
}
/// Reads the window `inner` (at `top, left` of `outer`) out of `big` into `small`.
fn window_get(outer: Shape, inner: Shape, top: usize, left: usize, big: &[f64], small: &mut [f64]) {
    for c in 0..inner.c {
        for i in 0..inner.h {
            let bo = (c * outer.h + top + i) * outer.w + left;
            let so = (c * inner.h + i) * inner.w;
            small[so..so + inner.w].copy_from_slice(&big[bo..bo + inner.w]);
        }
    }
}
/// Writes `small` into the window `inner` (at `top, left` of `outer`) of `big`.
fn window_put(outer: Shape, inner: Shape, top: usize, left: usize, big: &mut [f64], small: &[f64]) {
    for c in 0..inner.c {
        for i in 0..inner.h {
            let bo = (c * outer.h + top + i) * outer.w + left;
            let so = (c * inner.h + i) * inner.w;
            big[bo..bo + inner.w].copy_from_slice(&small[so..so + inner.w]);
        }
    }
}
impl Op for Crop {
    fn describe(&self) -> String {
        format!("crop(top={}, left={}, height={}, width={})", self.top, self.left, self.out.h, self.out.w)
    }
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn output_shape(&self) -> Shape {
        self.out
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        window_get(self.shape, self.out, self.top, self.left, x, y);
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        x.fill(0.0);
        window_put(self.shape, self.out, self.top, self.left, x, y);
        Ok(())
    }
}

/// Zero padding by `top, bottom, left, right` pixels; `Aᵀ` crops.
#[derive(Debug, Clone)]
pub struct Pad {
    shape: Shape,
    top: usize,
    left: usize,
    out: Shape,
}
impl Pad {
    /// Zero padding.
    pub fn new(shape: Shape, top: usize, bottom: usize, left: usize, right: usize) -> Self {
        Pad { shape, top, left, out: Shape::new(shape.c, shape.h + top + bottom, shape.w + left + right) }
    }
}
impl Op for Pad {
    fn describe(&self) -> String {
        format!(
            "pad(top={}, bottom={}, left={}, right={})",
            self.top,
            self.out.h - self.shape.h - self.top,
            self.left,
            self.out.w - self.shape.w - self.left
        )
    }
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn output_shape(&self) -> Shape {
        self.out
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        y.fill(0.0);
        window_put(self.out, self.shape, self.top, self.left, y, x);
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        window_get(self.out, self.shape, self.top, self.left, y, x);
        Ok(())
    }
}
