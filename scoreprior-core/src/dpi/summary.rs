//! After training: draw samples in chunks and summarise them (outlier filter `|x| > τ`,
//! per-pixel mean and population std).

use super::*;

/// Posterior summary from samples after the outlier filter of the supplement.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleSummary {
    /// Samples kept (row-major `(kept, D)`).
    pub kept: Vec<f64>,
    /// Number kept.
    pub n_kept: usize,
    /// Number dropped (any `|pixel| > threshold` or non-finite).
    pub n_dropped: usize,
    /// Per-pixel mean of the kept samples.
    pub mean: Vec<f64>,
    /// Per-pixel standard deviation (population) of the kept samples.
    pub std: Vec<f64>,
}

/// Drops samples with any `|x| > threshold` (the supplement uses 2) or a non-finite value
/// and returns the kept ones with their per-pixel mean and standard deviation.
/// Errors when nothing survives.
pub fn summarize_samples(x: &[f64], dim: usize, threshold: f64) -> Result<SampleSummary> {
    let n = crate::score::check_batch(x, dim, "samples")?;
    let mut kept = Vec::with_capacity(x.len());
    for i in 0..n {
        let s = &x[i * dim..(i + 1) * dim];
        if s.iter().all(|v| v.is_finite() && v.abs() <= threshold) {
            kept.extend_from_slice(s);
        }
    }
    let n_kept = kept.len() / dim;
    if n_kept == 0 {
        return Err(Error::empty(
            format!("the set of samples within |x| <= {threshold}"),
            format!("all {n} samples exceed it; the posterior fit diverged"),
        ));
    }
    let mut mean = vec![0.0; dim];
    for s in kept.chunks(dim) {
        for (m, v) in mean.iter_mut().zip(s) {
            *m += v / n_kept as f64;
        }
    }
    let mut var = vec![0.0; dim];
    for s in kept.chunks(dim) {
        for ((q, v), m) in var.iter_mut().zip(s).zip(&mean) {
            *q += (v - m) * (v - m) / n_kept as f64;
        }
    }
    Ok(SampleSummary { kept, n_kept, n_dropped: n - n_kept, mean, std: var.into_iter().map(f64::sqrt).collect() })
}

/// Draws `n` samples from a trained posterior in chunks of `chunk`.
pub fn draw_samples(posterior: &mut dyn Posterior, n: usize, chunk: usize, seed: u64) -> Result<Batch> {
    let d = posterior.dim();
    let chunk = chunk.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Batch { n: 0, dim: d, x: Vec::with_capacity(n * d), log_q: Vec::with_capacity(n) };
    while out.n < n {
        let m = chunk.min(n - out.n);
        let b = posterior.sample(m, &mut rng)?;
        out.x.extend_from_slice(&b.x);
        out.log_q.extend_from_slice(&b.log_q);
        out.n += m;
    }
    Ok(out)
}
