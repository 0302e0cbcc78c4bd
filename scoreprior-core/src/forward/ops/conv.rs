//! 2-D "same" convolution (correlation form) per channel:
//! `y[c,i,j] = Σ_{a,b} k[a,b] · x[c, B(i + a − cₕ), B(j + b − c_w)]`, with the kernel centre
//! `(cₕ, c_w) = ((kh−1)/2, (kw−1)/2)` and a boundary rule `B` (zero, reflect, circular).
//! `Aᵀ` scatters the same taps: `x[c, B(i+a−cₕ), B(j+b−c_w)] += k[a,b] · y[c,i,j]`, which
//! is exact for every boundary (reflect and circular maps are many-to-one, the scatter
//! adds up all preimages). Separable kernels `k[a,b] = r[a]·c[b]` (Gaussian, box) run as a
//! column pass then a row pass, `(kh + kw)` instead of `kh·kw` taps per pixel; with the same
//! boundary maps per axis this is the same sum, only regrouped.

use crate::forward::{Op, Shape};
use crate::{Error, Result};

/// How pixels outside the image are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// Zero outside the image.
    Zero,
    /// Mirror without repeating the edge pixel (`d c b | a b c d | c b a`): NumPy's
    /// `reflect`, scipy.ndimage's `mirror`. (The SSIM of [`crate::metrics`] pads the other
    /// way, repeating the edge, as scipy.ndimage's `reflect` does.)
    Reflect,
    /// Periodic.
    Circular,
}

impl Boundary {
    /// `zero`, `reflect` or `circular`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "zero" => Ok(Boundary::Zero),
            "reflect" => Ok(Boundary::Reflect),
            "circular" => Ok(Boundary::Circular),
            _ => Err(Error::unknown("boundary", s, "zero, reflect or circular")),
        }
    }
    /// The name used in specs.
    pub fn name(&self) -> &'static str {
        match self {
            Boundary::Zero => "zero",
            Boundary::Reflect => "reflect",
            Boundary::Circular => "circular",
        }
    }
    /// Index read for position `i` (possibly outside `0..n`).
    fn map(&self, i: isize, n: usize) -> Option<usize> {
        let ni = n as isize;
        match self {
            Boundary::Zero => (0..ni).contains(&i).then_some(i as usize),
            Boundary::Circular => Some(i.rem_euclid(ni) as usize),
            Boundary::Reflect => {
                if n == 1 {
                    return Some(0);
                }
                let period = 2 * (ni - 1);
                let m = i.rem_euclid(period);
                Some(if m >= ni { period - m } else { m } as usize)
            }
        }
    }
}

/// A convolution kernel `kh × kw`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    data: Vec<f64>,
    kh: usize,
    kw: usize,
    label: String,
    /// Exact factors `(r, c)` with `data[a·kw + b] = r[a]·c[b]`, when known.
    factors: Option<(Vec<f64>, Vec<f64>)>,
}

impl Kernel {
    /// A given kernel.
    pub fn custom(data: Vec<f64>, kh: usize, kw: usize) -> Result<Self> {
        if kh == 0 || kw == 0 || data.len() != kh * kw {
            return Err(Error::shape("kernel", format!("{kh}×{kw} (non-empty)"), data.len()));
        }
        if let Some(index) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "kernel", index });
        }
        Ok(Kernel { data, kh, kw, label: format!("custom {kh}×{kw}"), factors: None })
    }
    /// A normalised `size × size` Gaussian, `k[a,b] ∝ exp(−(dₐ² + d_b²)/2σ²)`, `d` measured
    /// from the centre `(size−1)/2`.
    ///
    /// ```
    /// let k = scoreprior_core::forward::ops::Kernel::gaussian(1.5, 9).unwrap();
    /// assert!((k.data().iter().sum::<f64>() - 1.0).abs() < 1e-14);
    /// ```
    pub fn gaussian(sigma: f64, size: usize) -> Result<Self> {
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(Error::out_of_range("gaussian kernel sigma", sigma, "positive and finite"));
        }
        if size == 0 {
            return Err(Error::count_out_of_range("gaussian kernel size", size, "at least 1"));
        }
        crate::limits::check_elems(&format!("the kernel of `gaussian_blur(size={size})`"), &[size, size], 8)?;
        let c = (size as f64 - 1.0) / 2.0;
        let g: Vec<f64> = (0..size).map(|a| (-((a as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp()).collect();
        let mut data = Vec::with_capacity(size * size);
        for a in 0..size {
            for b in 0..size {
                data.push(g[a] * g[b]);
            }
        }
        let mut k = Self::custom(data, size, size)?.normalised();
        let sum: f64 = g.iter().sum();
        let f: Vec<f64> = g.iter().map(|v| v / sum).collect();
        k.factors = Some((f.clone(), f));
        k.label = format!("gaussian_blur(sigma={sigma}, size={size})");
        Ok(k)
    }
    /// A normalised `size × size` box.
    pub fn boxcar(size: usize) -> Result<Self> {
        crate::limits::check_elems(&format!("the kernel of `box_blur(size={size})`"), &[size, size], 8)?;
        let mut k = Self::custom(vec![1.0; size * size], size, size)?.normalised();
        k.factors = Some((vec![1.0 / size as f64; size], vec![1.0 / size as f64; size]));
        k.label = format!("box_blur(size={size})");
        Ok(k)
    }
    /// Linear motion blur: a normalised line of `length` pixels through the centre at
    /// `angle_deg` from the horizontal (counter-clockwise), in a `length × length` kernel
    /// (`length` made odd). The line is rasterised by accumulating `8·length` evenly spaced
    /// samples into their nearest pixels.
    pub fn motion(length: usize, angle_deg: f64) -> Result<Self> {
        if length == 0 {
            return Err(Error::count_out_of_range("motion kernel length", length, "at least 1"));
        }
        if !angle_deg.is_finite() {
            return Err(Error::out_of_range("motion kernel angle", angle_deg, "finite"));
        }
        let size = if length % 2 == 1 { length } else { length + 1 };
        crate::limits::check_elems(&format!("the kernel of `motion_blur(length={length})`"), &[size, size], 8)?;
        let c = (size as f64 - 1.0) / 2.0;
        let (s, co) = angle_deg.to_radians().sin_cos();
        let mut data = vec![0.0; size * size];
        let samples = 8 * length;
        for t in 0..samples {
            let r = if samples == 1 { 0.0 } else { (t as f64 / (samples - 1) as f64 - 0.5) * (length as f64 - 1.0) };
            let (row, col) = ((c - r * s).round() as usize, (c + r * co).round() as usize);
            data[row * size + col] += 1.0;
        }
        let mut k = Self::custom(data, size, size)?.normalised();
        k.label = format!("motion_blur(length={length}, angle={angle_deg})");
        Ok(k)
    }
    fn normalised(mut self) -> Self {
        let s: f64 = self.data.iter().sum();
        self.data.iter_mut().for_each(|v| *v /= s);
        self
    }
    /// The taps, row-major.
    pub fn data(&self) -> &[f64] {
        &self.data
    }
    /// `(kh, kw)`.
    pub fn size(&self) -> (usize, usize) {
        (self.kh, self.kw)
    }
}

/// Convolution of every channel with one kernel, output the size of the input.
///
/// ```
/// use scoreprior_core::forward::ops::{Boundary, Conv2d, Kernel};
/// use scoreprior_core::forward::Op;
/// let conv = Conv2d::new([1, 8, 8].into(), Kernel::boxcar(3).unwrap(), Boundary::Circular).unwrap();
/// let mut y = vec![0.0; 64];
/// conv.apply(&vec![1.0; 64], &mut y); // a constant image is unchanged by a normalised kernel
/// assert!(y.iter().all(|v| (v - 1.0).abs() < 1e-15));
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d {
    shape: Shape,
    kernel: Kernel,
    boundary: Boundary,
    /// `rows[i·kh + a]`: input row read by output row `i` at tap row `a`.
    rows: Vec<Option<usize>>,
    cols: Vec<Option<usize>>,
}

impl Conv2d {
    /// Convolution with `kernel`; the kernel may not be larger than the image.
    pub fn new(shape: Shape, kernel: Kernel, boundary: Boundary) -> Result<Self> {
        let (kh, kw) = kernel.size();
        if kh > shape.h || kw > shape.w {
            return Err(Error::shape(
                "kernel",
                format!("at most the image size {}×{}", shape.h, shape.w),
                format!("{kh}×{kw}"),
            ));
        }
        let (ch, cw) = ((kh as isize - 1) / 2, (kw as isize - 1) / 2);
        let rows = (0..shape.h)
            .flat_map(|i| (0..kh).map(move |a| (i as isize + a as isize - ch, shape.h)))
            .map(|(p, n)| boundary.map(p, n))
            .collect();
        let cols = (0..shape.w)
            .flat_map(|j| (0..kw).map(move |b| (j as isize + b as isize - cw, shape.w)))
            .map(|(p, n)| boundary.map(p, n))
            .collect();
        Ok(Conv2d { shape, kernel, boundary, rows, cols })
    }
}

impl Conv2d {
    /// `t[i, q] = Σ_a r[a] x[R(i,a), q]`, then `y[i, j] = Σ_b c[b] t[i, C(j,b)]`.
    fn apply_separable(&self, r: &[f64], cf: &[f64], x: &[f64], y: &mut [f64]) {
        let Shape { c, h, w } = self.shape;
        let (kh, kw) = (r.len(), cf.len());
        let mut t = vec![0.0; h * w];
        for ch in 0..c {
            let xc = &x[ch * h * w..(ch + 1) * h * w];
            t.fill(0.0);
            for i in 0..h {
                let ti = &mut t[i * w..(i + 1) * w];
                for a in 0..kh {
                    if let Some(row) = self.rows[i * kh + a] {
                        let xr = &xc[row * w..(row + 1) * w];
                        ti.iter_mut().zip(xr).for_each(|(tv, xv)| *tv += r[a] * xv);
                    }
                }
            }
            let yc = &mut y[ch * h * w..(ch + 1) * h * w];
            for i in 0..h {
                let ti = &t[i * w..(i + 1) * w];
                for j in 0..w {
                    let mut acc = 0.0;
                    for b in 0..kw {
                        if let Some(q) = self.cols[j * kw + b] {
                            acc += cf[b] * ti[q];
                        }
                    }
                    yc[i * w + j] = acc;
                }
            }
        }
    }
    /// The two passes transposed, in reverse order.
    fn adjoint_separable(&self, r: &[f64], cf: &[f64], y: &[f64], x: &mut [f64]) {
        let Shape { c, h, w } = self.shape;
        let (kh, kw) = (r.len(), cf.len());
        let mut t = vec![0.0; h * w];
        x.fill(0.0);
        for ch in 0..c {
            let yc = &y[ch * h * w..(ch + 1) * h * w];
            t.fill(0.0);
            for i in 0..h {
                let ti = &mut t[i * w..(i + 1) * w];
                for j in 0..w {
                    let v = yc[i * w + j];
                    for b in 0..kw {
                        if let Some(q) = self.cols[j * kw + b] {
                            ti[q] += cf[b] * v;
                        }
                    }
                }
            }
            let xc = &mut x[ch * h * w..(ch + 1) * h * w];
            for i in 0..h {
                let ti = &t[i * w..(i + 1) * w];
                for a in 0..kh {
                    if let Some(row) = self.rows[i * kh + a] {
                        let xr = &mut xc[row * w..(row + 1) * w];
                        xr.iter_mut().zip(ti).for_each(|(xv, tv)| *xv += r[a] * tv);
                    }
                }
            }
        }
    }
}

impl Op for Conv2d {
    fn describe(&self) -> String {
        let l = &self.kernel.label;
        let l = l.strip_suffix(')').map(|s| format!("{s}, boundary={})", self.boundary.name()));
        l.unwrap_or_else(|| format!("conv2d({}, boundary={})", self.kernel.label, self.boundary.name()))
    }
    fn input_shape(&self) -> Shape {
        self.shape
    }
    fn output_shape(&self) -> Shape {
        self.shape
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        if let Some((r, cf)) = &self.kernel.factors {
            return self.apply_separable(r, cf, x, y);
        }
        let Shape { c, h, w } = self.shape;
        let (kh, kw) = self.kernel.size();
        let k = &self.kernel.data;
        for ch in 0..c {
            let xc = &x[ch * h * w..(ch + 1) * h * w];
            for i in 0..h {
                for j in 0..w {
                    let mut acc = 0.0;
                    for a in 0..kh {
                        let Some(r) = self.rows[i * kh + a] else { continue };
                        let xr = &xc[r * w..(r + 1) * w];
                        let kr = &k[a * kw..(a + 1) * kw];
                        for b in 0..kw {
                            if let Some(q) = self.cols[j * kw + b] {
                                acc += kr[b] * xr[q];
                            }
                        }
                    }
                    y[(ch * h + i) * w + j] = acc;
                }
            }
        }
    }
    fn adjoint(&self, y: &[f64], x: &mut [f64]) -> Result<()> {
        if let Some((r, cf)) = &self.kernel.factors {
            self.adjoint_separable(r, cf, y, x);
            return Ok(());
        }
        let Shape { c, h, w } = self.shape;
        let (kh, kw) = self.kernel.size();
        let k = &self.kernel.data;
        x.fill(0.0);
        for ch in 0..c {
            let xc = &mut x[ch * h * w..(ch + 1) * h * w];
            for i in 0..h {
                for j in 0..w {
                    let v = y[(ch * h + i) * w + j];
                    for a in 0..kh {
                        let Some(r) = self.rows[i * kh + a] else { continue };
                        for b in 0..kw {
                            if let Some(q) = self.cols[j * kw + b] {
                                xc[r * w + q] += k[a * kw + b] * v;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
