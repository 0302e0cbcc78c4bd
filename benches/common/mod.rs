//! Helpers shared by the benches that time calls by hand (next to criterion's own timings).

use std::time::Instant;

/// Seconds of the fastest of `n` calls (the least disturbed by other load).
pub fn best_of(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
