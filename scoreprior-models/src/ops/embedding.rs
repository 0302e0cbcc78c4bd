//! Time embeddings: `[sin θ_0 … sin θ_{n−1}, cos θ_0 … cos θ_{n−1}]` per time label `τ`,
//! with `θ_i = τ·exp(−ln(10⁴)·i/(n − 1))` (sinusoidal) or `θ_i = 2π·ln(τ)·W_i` for fixed
//! Gaussian frequencies `W_i` (random Fourier features).

/// The sines, then the cosines, of `arg(l, i)` for `i < n`, label after label.
fn sin_cos(labels: &[f64], n: usize, capacity: usize, arg: impl Fn(f64, usize) -> f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(capacity);
    for &l in labels {
        for i in 0..n {
            out.push(arg(l, i).sin());
        }
        for i in 0..n {
            out.push(arg(l, i).cos());
        }
    }
    out
}

/// Sinusoidal embedding of the time labels (`dim` even): `[sin(τ·f_i), cos(τ·f_i)]` with
/// `f_i = exp(−ln(10⁴)·i/(dim/2 − 1))`, as the reference's `get_timestep_embedding`.
pub fn sinusoidal_embedding(labels: &[f64], dim: usize) -> Vec<f64> {
    let half = dim / 2;
    let scale = (10000f64).ln() / ((half.max(2) - 1) as f64);
    sin_cos(labels, half, labels.len() * dim, |tau, i| tau * (-scale * i as f64).exp())
}

/// Gaussian random Fourier features `[sin(2π τ W_i), cos(2π τ W_i)]` for fixed frequencies
/// `W ~ N(0, scale²)` (the reference's `GaussianFourierProjection`, applied to `ln τ`).
pub fn fourier_embedding(labels: &[f64], freqs: &[f64]) -> Vec<f64> {
    let logs: Vec<f64> = labels.iter().map(|tau| tau.max(1e-12).ln()).collect();
    sin_cos(&logs, freqs.len(), labels.len() * 2 * freqs.len(), |a, i| 2.0 * std::f64::consts::PI * a * freqs[i])
}
