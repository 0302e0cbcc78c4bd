//! Summary statistics of repeated measurements (seeds, samples): the mean, the sample
//! standard deviation `s = √(Σ(v − v̄)² / (n − 1))` and the standard error of the mean `s/√n`.

/// `(mean, sample standard deviation)`; the deviation is 0 for a single value, both are NaN
/// for none.
///
/// ```
/// let (m, s) = scoreprior_core::stats::mean_std(&[1.0, 2.0, 3.0]);
/// assert_eq!((m, s), (2.0, 1.0));
/// assert_eq!(scoreprior_core::stats::mean_std(&[4.0]), (4.0, 0.0));
/// ```
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

/// `(mean, standard error of the mean)`.
///
/// ```
/// let (m, se) = scoreprior_core::stats::mean_se(&[1.0, 2.0, 3.0, 4.0]);
/// assert_eq!(m, 2.5);
/// assert!((se - (5.0f64 / 3.0).sqrt() / 2.0).abs() < 1e-15);
/// ```
pub fn mean_se(v: &[f64]) -> (f64, f64) {
    let (m, s) = mean_std(v);
    (m, s / (v.len() as f64).sqrt())
}
