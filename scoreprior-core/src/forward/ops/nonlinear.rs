//! Non-linear primitives on split complex data; each supplies its VJP.
//!
//! - [`Magnitude`]: `|z|`, with `∂|z|/∂(Re z, Im z) = (Re z, Im z)/|z|` (0 at `z = 0`).
//! - [`ClosureProducts`]: closure phases `ψ_t = Σ_{k∈t} s_k arg V_k` (`s_k = ±1` orients
//!   each baseline around the triangle) and log closure amplitudes
//!   `ℓ_q = ln|V₁| + ln|V₂| − ln|V₃| − ln|V₄|`, with `∂ arg V/∂(Re, Im) = (−Im, Re)/|V|²`
//!   and `∂ ln|V|/∂(Re, Im) = (Re, Im)/|V|²`.

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
            return Err(Error::invalid(format!(
                "magnitude needs split complex input (an even channel count), got {input}"
            )));
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

/// Closure phases on triangles then log closure amplitudes on quadrangles, from `K` split
/// complex visibilities `[2, 1, K]` → `[1, 1, T + Q]`.
#[derive(Debug, Clone)]
pub struct ClosureProducts {
    k: usize,
    triangles: Vec<[(usize, f64); 3]>,
    quadrangles: Vec<[usize; 4]>,
}

impl ClosureProducts {
    /// `triangles[t] = [(visibility index, ±1); 3]`, `quadrangles[q] = [num₁, num₂, den₁, den₂]`.
    pub fn new(k: usize, triangles: Vec<[(usize, f64); 3]>, quadrangles: Vec<[usize; 4]>) -> Result<Self> {
        let bad = triangles.iter().flatten().any(|&(i, s)| i >= k || (s != 1.0 && s != -1.0))
            || quadrangles.iter().flatten().any(|&i| i >= k);
        if bad {
            return Err(Error::invalid(format!("closure indices must be < {k} and signs ±1")));
        }
        if triangles.is_empty() && quadrangles.is_empty() {
            return Err(Error::invalid("no closure triangles or quadrangles"));
        }
        Ok(ClosureProducts { k, triangles, quadrangles })
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
        format!("closures({} phases, {} log amplitudes)", self.triangles.len(), self.quadrangles.len())
    }
    fn input_shape(&self) -> Shape {
        Shape::new(2, 1, self.k)
    }
    fn output_shape(&self) -> Shape {
        Shape::vector(self.triangles.len() + self.quadrangles.len())
    }
    fn is_linear(&self) -> bool {
        false
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) {
        let k = self.k;
        let arg = |i: usize| x[k + i].atan2(x[i]);
        let lnabs = |i: usize| x[i].hypot(x[k + i]).ln();
        let t = self.triangles.len();
        for (yt, tri) in y.iter_mut().zip(&self.triangles) {
            *yt = wrap_angle(tri.iter().map(|&(i, s)| s * arg(i)).sum());
        }
        for (yq, q) in y[t..].iter_mut().zip(&self.quadrangles) {
            *yq = lnabs(q[0]) + lnabs(q[1]) - lnabs(q[2]) - lnabs(q[3]);
        }
    }
    fn vjp(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Result<()> {
        let k = self.k;
        out.fill(0.0);
        let t = self.triangles.len();
        for (g, tri) in v.iter().zip(&self.triangles) {
            for &(i, s) in tri {
                let r2 = x[i] * x[i] + x[k + i] * x[k + i];
                if r2 > 0.0 {
                    out[i] -= g * s * x[k + i] / r2;
                    out[k + i] += g * s * x[i] / r2;
                }
            }
        }
        for (g, q) in v[t..].iter().zip(&self.quadrangles) {
            for (n, &i) in q.iter().enumerate() {
                let s = if n < 2 { 1.0 } else { -1.0 };
                let r2 = x[i] * x[i] + x[k + i] * x[k + i];
                if r2 > 0.0 {
                    out[i] += g * s * x[i] / r2;
                    out[k + i] += g * s * x[k + i] / r2;
                }
            }
        }
        Ok(())
    }
}
