//! A positive posterior: `x = softplus(u) = ln(1 + eᵘ)` applied to every output `u` of another
//! [`Posterior`], with `log q(x) = log q(u) − Σ_i ln σ(u_i)` (`σ` the logistic function,
//! `dx_i/du_i = σ(u_i)`), as DPI does for interferometric images whose flux must be positive.
//! Back-propagation: `∂L/∂u = σ(u)·∂L/∂x − (1 − σ(u))·∂L/∂log q`.

use super::*;

/// `softplus(u) = ln(1 + eᵘ)`, without overflow.
pub fn softplus(u: f64) -> f64 {
    if u > 30.0 {
        u + (-u).exp().ln_1p()
    } else {
        u.exp().ln_1p()
    }
}

/// The inverse of [`softplus`] for `x > 0`: `u = ln(eˣ − 1)`.
pub fn softplus_inverse(x: f64) -> f64 {
    if x > 30.0 {
        x + (-(-x).exp()).ln_1p()
    } else {
        x.exp_m1().ln()
    }
}

/// `ln σ(u) = −softplus(−u)`, the log-derivative of [`softplus`], without overflow.
///
/// ```
/// assert!((scoreprior_core::dpi::ln_sigmoid(0.0) + 2f64.ln()).abs() < 1e-15);
/// ```
pub fn ln_sigmoid(u: f64) -> f64 {
    -softplus(-u)
}

/// The logistic function `σ(u) = 1/(1 + e⁻ᵘ) = d softplus(u)/du`, without overflow.
///
/// ```
/// use scoreprior_core::dpi::sigmoid;
/// assert_eq!((sigmoid(0.0), sigmoid(-800.0), sigmoid(800.0)), (0.5, 0.0, 1.0));
/// ```
pub fn sigmoid(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

/// Any posterior followed by an elementwise softplus (see the module documentation).
///
/// ```
/// use scoreprior_core::dpi::{softplus, Posterior, SoftplusPosterior, Batch};
/// use rand::RngCore;
/// /// The identity "posterior" u = z.
/// struct Id(usize);
/// impl Posterior for Id {
///     fn dim(&self) -> usize { self.0 }
///     fn sample_for_training(&mut self, n: usize, r: &mut dyn RngCore) -> scoreprior_core::Result<Batch> { self.sample(n, r) }
///     fn backward(&mut self, _: &[f64], _: &[f64]) -> scoreprior_core::Result<()> { Ok(()) }
///     fn apply_update(&mut self, _: f64, _: Option<f64>) -> scoreprior_core::Result<f64> { Ok(0.0) }
///     fn sample(&mut self, n: usize, _: &mut dyn RngCore) -> scoreprior_core::Result<Batch> {
///         Ok(Batch { n, dim: self.0, x: vec![0.0; n * self.0], log_q: vec![0.0; n] })
///     }
///     fn save_state(&self) -> scoreprior_core::Result<Vec<u8>> { Ok(vec![]) }
///     fn load_state(&mut self, _: &[u8]) -> scoreprior_core::Result<()> { Ok(()) }
/// }
/// let mut q = SoftplusPosterior::new(Id(2));
/// let b = q.sample(1, &mut rand::rngs::mock::StepRng::new(0, 1)).unwrap();
/// assert_eq!(b.x, vec![softplus(0.0); 2]); // ln 2
/// assert!((b.log_q[0] - 2.0 * 2f64.ln()).abs() < 1e-12); // −Σ ln σ(0) = 2 ln 2
/// ```
#[derive(Debug)]
pub struct SoftplusPosterior<P> {
    inner: P,
    /// The last training batch's pre-softplus values `u`.
    u: Vec<f64>,
}

impl<P: Posterior> SoftplusPosterior<P> {
    /// Wraps `inner`.
    pub fn new(inner: P) -> Self {
        Self { inner, u: Vec::new() }
    }
    /// The wrapped posterior.
    pub fn inner(&self) -> &P {
        &self.inner
    }
    /// The wrapped posterior, mutably.
    pub fn inner_mut(&mut self) -> &mut P {
        &mut self.inner
    }
    /// The wrapped posterior, unwrapped.
    pub fn into_inner(self) -> P {
        self.inner
    }

    fn transform(&self, mut b: Batch) -> Batch {
        let d = b.dim;
        for (xi, lq) in b.x.chunks_mut(d).zip(b.log_q.iter_mut()) {
            for v in xi.iter_mut() {
                *lq -= ln_sigmoid(*v);
                *v = softplus(*v);
            }
        }
        b
    }
}

impl<P: Posterior> Posterior for SoftplusPosterior<P> {
    forward_to_inner!(except_training transform);
    fn sample_for_training(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
        let b = self.inner.sample_for_training(n, rng)?;
        self.u = b.x.clone();
        Ok(self.transform(b))
    }
    fn backward(&mut self, grad_x: &[f64], grad_log_q: &[f64]) -> Result<()> {
        let d = self.dim();
        if grad_x.len() != self.u.len() || grad_log_q.len() * d != self.u.len() {
            return Err(Error::shape("softplus posterior gradient", self.u.len(), grad_x.len()));
        }
        let mut gu = vec![0.0; grad_x.len()];
        for (k, g) in gu.iter_mut().enumerate() {
            let s = sigmoid(self.u[k]);
            *g = s * grad_x[k] - (1.0 - s) * grad_log_q[k / d];
        }
        self.inner.backward(&gu, grad_log_q)
    }
    /// `∇x log q(x) = (∇u log q(u) − (1 − σ(u))) / σ(u)` at `u = softplus⁻¹(x)`; every `x`
    /// must be positive.
    fn grad_log_q(&mut self, x: &[f64], n: usize) -> Result<Vec<f64>> {
        if let Some(i) = x.iter().position(|v| !(*v > 0.0)) {
            return Err(Error::out_of_range(format!("softplus posterior: x[{i}]"), x[i], "positive"));
        }
        let u: Vec<f64> = x.iter().map(|&v| softplus_inverse(v)).collect();
        let g = self.inner.grad_log_q(&u, n)?;
        Ok(g.iter().zip(&u).map(|(gu, &ui)| (gu - (1.0 - sigmoid(ui))) / sigmoid(ui)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_and_its_inverse_agree_over_the_range() {
        for &u in &[-40.0, -5.0, -0.3, 0.0, 0.7, 12.0, 35.0, 80.0] {
            let x = softplus(u);
            assert!(x > 0.0);
            assert!((softplus_inverse(x) - u).abs() < 1e-9 * (1.0 + u.abs()), "{u}");
            let h = 1e-6;
            let fd = (softplus(u + h) - softplus(u - h)) / (2.0 * h);
            assert!((fd - sigmoid(u)).abs() < 1e-8, "{u}");
            assert!((ln_sigmoid(u) - sigmoid(u).ln()).abs() < 1e-12, "{u}");
        }
    }
}
