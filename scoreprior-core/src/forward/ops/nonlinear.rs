//! Non-linear primitives on split complex data; each supplies its VJP.
//!
//! - [`Magnitude`]: `|z|`, with `∂|z|/∂(Re z, Im z) = (Re z, Im z)/|z|` (0 at `z = 0`).
//! - [`ClosureProducts`]: closure phases `ψ_t = Σ_{k∈t} s_k arg V_k` (`s_k = ±1` orients
//!   each baseline around the triangle) and log closure amplitudes
//!   `ℓ_q = ln|V₁| + ln|V₂| − ln|V₃| − ln|V₄|`, with `∂ arg V/∂(Re, Im) = (−Im, Re)/|V|²`
//!   and `∂ ln|V|/∂(Re, Im) = (Re, Im)/|V|²`; optionally log amplitude ratios
//!   `ρ = ln|V_a| − ln|V_b|` (a visibility over a zero-baseline one: its normalised amplitude).

use crate::forward::noise::wrap_angle;
use crate::forward::{Op, Shape};
use crate::{Error, Result};

/// `|z|` of split complex `[2C, H, W]` data → `[C, H, W]`.
#[derive(Debug, Clone)]
pub struct Magnitude {
    input: Shape,
}
impl Magnitude {
    /// The magnitude of split complex input.
    pub fn new(input: Shape) -> Result<Self> {
        if !input.c.is_multiple_of(2) {
            return Err(Error::shape("magnitude input", "split complex input (an even channel count)", input));
        }
        Ok(Magnitude { input })
    }
}
impl Op for Magnitude {
    fn output_is_complex(&self, _input_complex: bool) -> bool {
        false
    }
    fn describe(&self) -> String {
        "magnitude".into()
    }
    fn input_shape(&self) -> Shape {
        self.input
    }
    fn output_shape(&self) -> Shape {
        Shape::new(self.input.c / 2, self.input.h, self.input.w)
    }
    fn is_linear(&self) -> bool {
        false
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let half = y.len();
        for p in 0..half {
            y[p] = x[p].hypot(x[half + p]);
        }
    }
    fn vjp(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        let half = v.len();
        for p in 0..half {
            let r = x[p].hypot(x[half + p]);
            let s = if r > 0.0 { v[p] / r } else { 0.0 };
            out[p] = s * x[p];
            out[half + p] = s * x[half + p];
        }
        Ok(())
    }
}

/// A visibility index `i` must name one of the `k` visibilities.
fn check_index(what: &str, i: usize, k: usize) -> Result<()> {
    if i < k {
        Ok(())
    } else {
        Err(Error::count_out_of_range(what, i, format!("less than the visibility count {k}")))
    }
}

/// Closure phases on triangles then log closure amplitudes on quadrangles, from `K` split
/// complex visibilities `[2, 1, K]` → `[1, 1, T + Q]`.
#[derive(Debug, Clone)]
pub struct ClosureProducts {
    k: usize,
    triangles: Vec<[(usize, f64); 3]>,
    quadrangles: Vec<[usize; 4]>,
    ratios: Vec<[usize; 2]>,
}

impl ClosureProducts {
    /// `triangles[t] = [(visibility index, ±1); 3]`, `quadrangles[q] = [num₁, num₂, den₁, den₂]`.
    pub fn new(k: usize, triangles: Vec<[(usize, f64); 3]>, quadrangles: Vec<[usize; 4]>) -> Result<Self> {
        for &(i, s) in triangles.iter().flatten() {
            check_index("closure phase visibility index", i, k)?;
            if s != 1.0 && s != -1.0 {
                return Err(Error::out_of_range("closure phase sign", s, "+1 or -1"));
            }
        }
        for &i in quadrangles.iter().flatten() {
            check_index("closure amplitude visibility index", i, k)?;
        }
        if triangles.is_empty() && quadrangles.is_empty() {
            return Err(Error::unsupported(
                "no closure triangles or quadrangles: no scan of the coverage has three stations observing together",
            ));
        }
        Ok(ClosureProducts { k, triangles, quadrangles, ratios: vec![] })
    }
    /// Appends log amplitude ratios `ρ = ln|V_a| − ln|V_b|` for `[a, b]` in `ratios` after the
    /// closure quantities (output `[ψ; ℓ; ρ]`).
    pub fn with_ratios(mut self, ratios: Vec<[usize; 2]>) -> Result<Self> {
        for &i in ratios.iter().flatten() {
            check_index("amplitude-ratio visibility index", i, self.k)?;
        }
        self.ratios = ratios;
        Ok(self)
    }
    /// Number of log amplitude ratios.
    pub fn n_ratios(&self) -> usize {
        self.ratios.len()
    }
    /// Number of closure phases `T`.
    pub fn n_phases(&self) -> usize {
        self.triangles.len()
    }
    /// Number of log closure amplitudes `Q`.
    pub fn n_amplitudes(&self) -> usize {
        self.quadrangles.len()
    }
}

impl Op for ClosureProducts {
    fn output_is_complex(&self, _input_complex: bool) -> bool {
        false
    }
    fn describe(&self) -> String {
        let ratios =
            if self.ratios.is_empty() { String::new() } else { format!(", {} amplitude ratios", self.ratios.len()) };
        format!("closures({} phases, {} log amplitudes{ratios})", self.triangles.len(), self.quadrangles.len())
    }
    fn input_shape(&self) -> Shape {
        Shape::new(2, 1, self.k)
    }
    fn output_shape(&self) -> Shape {
        Shape::vector(self.triangles.len() + self.quadrangles.len() + self.ratios.len())
    }
    fn is_linear(&self) -> bool {
        false
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        // Per visibility once (K atan2 and K logarithms), then sparse sums per closure.
        let k = self.k;
        let (re, im) = x.split_at(k);
        let arg: Vec<f64> = re.iter().zip(im).map(|(r, i)| i.atan2(*r)).collect();
        let lnabs: Vec<f64> = re.iter().zip(im).map(|(r, i)| r.hypot(*i).ln()).collect();
        let t = self.triangles.len();
        for (yt, tri) in y.iter_mut().zip(&self.triangles) {
            *yt = wrap_angle(tri[0].1 * arg[tri[0].0] + tri[1].1 * arg[tri[1].0] + tri[2].1 * arg[tri[2].0]);
        }
        for (yq, q) in y[t..].iter_mut().zip(&self.quadrangles) {
            *yq = lnabs[q[0]] + lnabs[q[1]] - lnabs[q[2]] - lnabs[q[3]];
        }
        for (yr, r) in y[t + self.quadrangles.len()..].iter_mut().zip(&self.ratios) {
            *yr = lnabs[r[0]] - lnabs[r[1]];
        }
    }
    fn vjp(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        // Transposed sparse sums give each visibility's cotangent on its phase (`gp`) and on
        // its log amplitude (`ga`); then one pass applies the per-visibility Jacobians
        // `∂ arg V = (−Im, Re)/|V|²`, `∂ ln|V| = (Re, Im)/|V|²` (0 at V = 0).
        let k = self.k;
        let t = self.triangles.len();
        let (mut gp, mut ga) = (vec![0.0; k], vec![0.0; k]);
        for (g, tri) in v.iter().zip(&self.triangles) {
            for &(i, s) in tri {
                gp[i] += g * s;
            }
        }
        for (g, q) in v[t..].iter().zip(&self.quadrangles) {
            ga[q[0]] += g;
            ga[q[1]] += g;
            ga[q[2]] -= g;
            ga[q[3]] -= g;
        }
        for (g, r) in v[t + self.quadrangles.len()..].iter().zip(&self.ratios) {
            ga[r[0]] += g;
            ga[r[1]] -= g;
        }
        let (re, im) = x.split_at(k);
        let (o_re, o_im) = out.split_at_mut(k);
        for i in 0..k {
            let r2 = re[i] * re[i] + im[i] * im[i];
            let (p, a) = if r2 > 0.0 { (gp[i] / r2, ga[i] / r2) } else { (0.0, 0.0) };
            o_re[i] = a * re[i] - p * im[i];
            o_im[i] = a * im[i] + p * re[i];
        }
        Ok(())
    }
}
