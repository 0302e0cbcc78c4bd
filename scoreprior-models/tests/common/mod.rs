//! Shared checks of the score-model integration tests: the relative error, and the one
//! adjoint call against the two calls it replaces.
#![allow(dead_code)]

use scoreprior_core::score::ScoreModel;

/// Relative L2 error of `a` against `b`.
pub fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (num / b.iter().map(|y| y * y).sum::<f64>()).sqrt()
}

/// `score_and_adjoint_vjp` at `(x, t)` against `score_and_vjp` with the same cotangents `a`
/// plus `second_order` with the same probes: the relative errors `(score, adjoint term)`.
/// Also checks that a short `a`, short probes, `t = 0` and a short score output are errors
/// (after the comparison: a failed call may have written part of its outputs).
pub fn adjoint_call_errors(m: &dyn ScoreModel, x: &[f64], t: f64, a: &[f64], probes: &[f64]) -> (f64, f64) {
    let (nd, d) = (x.len(), m.dim());
    let (mut s1, mut v1) = (vec![0.0; nd], vec![0.0; nd]);
    m.score_and_adjoint_vjp(x, t, a, probes, &mut s1, &mut v1).unwrap();
    let (mut s2, mut v2, mut q2) = (vec![0.0; nd], vec![0.0; nd], vec![0.0; nd]);
    m.score_and_vjp(x, t, a, &mut s2, &mut v2).unwrap();
    m.second_order(x, t, probes, &mut q2).unwrap();
    v2.iter_mut().zip(&q2).for_each(|(v, q)| *v += q);
    let errors = (rel(&s1, &s2), rel(&v1, &v2));
    assert!(m.score_and_adjoint_vjp(x, t, &a[..d], probes, &mut s1, &mut v1).is_err());
    assert!(m.score_and_adjoint_vjp(x, t, a, &probes[..d - 1], &mut s1, &mut v1).is_err());
    assert!(m.score_and_adjoint_vjp(x, 0.0, a, probes, &mut s1, &mut v1).is_err());
    assert!(m.score_and_adjoint_vjp(x, t, a, probes, &mut s1[..d], &mut v1).is_err());
    errors
}
