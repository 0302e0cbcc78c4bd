//! The analytic score models against finite differences of their own closed forms:
//! score = ∇ log p_t, VJP = ∂s/∂x products, trace, trace gradient and the second-order term;
//! the trait's default (central-difference) second-order term against the exact one;
//! input validation.

mod common;

use common::*;
use scoreprior_core::score::{Gaussian, GaussianMixture, MarginalDensity, ScoreModel};
use scoreprior_core::Error;

fn check_model<M: ScoreModel + MarginalDensity>(m: &M, x: &[f64], t: f64, tol: f64) {
    let d = ScoreModel::dim(m);
    let mut r = rng(11);
    use rand::Rng;
    // score = ∇ log p_t
    let logp = |y: &[f64]| {
        let mut o = [0.0];
        m.marginal_log_prob(y, t, &mut o).unwrap();
        o[0]
    };
    let mut s = vec![0.0; d];
    m.score(x, t, &mut s).unwrap();
    let fd = fd_grad(&logp, x, 1e-5);
    assert!(rel_err(&fd, &s) < tol, "score vs FD at t={t}: {}", rel_err(&fd, &s));
    // VJP = vᵀ ∂s/∂x, two cotangents at once
    let v: Vec<f64> = (0..2 * d).map(|_| r.gen_range(-1.0..1.0)).collect();
    let mut s2 = vec![0.0; d];
    let mut vjp = vec![0.0; 2 * d];
    m.score_and_vjp(x, t, &v, &mut s2, &mut vjp).unwrap();
    assert_eq!(s, s2);
    for j in 0..2 {
        let vj = &v[j * d..(j + 1) * d];
        let sv = |y: &[f64]| {
            let mut o = vec![0.0; d];
            m.score(y, t, &mut o).unwrap();
            o.iter().zip(vj).map(|(a, b)| a * b).sum::<f64>()
        };
        let fd = fd_grad(&sv, x, 1e-5);
        assert!(rel_err(&fd, &vjp[j * d..(j + 1) * d]) < tol, "vjp vs FD: {}", rel_err(&fd, &vjp[j * d..(j + 1) * d]));
    }
    // trace = Σ_l e_lᵀ J e_l
    let mut basis = vec![0.0; d * d];
    for l in 0..d {
        basis[l * d + l] = 1.0;
    }
    let mut bv = vec![0.0; d * d];
    m.score_and_vjp(x, t, &basis, &mut s2, &mut bv).unwrap();
    let tr_basis: f64 = (0..d).map(|l| bv[l * d + l]).sum();
    let mut tr = [0.0];
    assert!(m.jacobian_trace(x, t, &mut tr).unwrap());
    assert!((tr[0] - tr_basis).abs() < 1e-9 * tr_basis.abs().max(1.0), "trace {} vs {}", tr[0], tr_basis);
    // trace gradient vs FD of the trace
    let trf = |y: &[f64]| {
        let mut o = [0.0];
        m.jacobian_trace(y, t, &mut o).unwrap();
        o[0]
    };
    let mut tg = vec![0.0; d];
    assert!(m.jacobian_trace_grad(x, t, &mut tg).unwrap());
    let fd = fd_grad(&trf, x, 1e-5);
    let scale = fd.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-8);
    let err = tg.iter().zip(&fd).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt() / scale.max(1.0);
    assert!(err < tol, "trace grad vs FD: {err}");
    // second-order term vs FD of (1/K) Σ εᵀ J ε
    let probes: Vec<f64> = (0..3 * d).map(|_| r.gen_range(-1.0..1.0)).collect();
    let q = |y: &[f64]| {
        let mut o = vec![0.0; 3 * d];
        let mut sc = vec![0.0; d];
        let mut cot = probes.clone();
        cot.truncate(3 * d);
        m.score_and_vjp(y, t, &cot, &mut sc, &mut o).unwrap();
        o.iter().zip(&probes).map(|(a, b)| a * b).sum::<f64>() / 3.0
    };
    let mut so = vec![0.0; d];
    m.second_order(x, t, &probes, &mut so).unwrap();
    let fd = fd_grad(&q, x, 1e-5);
    let err = so.iter().zip(&fd).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt()
        / fd.iter().map(|v| v * v).sum::<f64>().sqrt().max(1.0);
    assert!(err < tol, "second order vs FD: {err}");
}

#[test]
fn mixture_derivatives_match_finite_differences() {
    for sde in all_sdes() {
        let m = random_mixture(5, 21, sde);
        let x: Vec<f64> = vec![0.3, -0.2, 0.5, 0.1, -0.7];
        for t in [1e-3, 0.1, 0.5, 0.9] {
            check_model(&m, &x, t, 1e-6);
        }
    }
    let m = GaussianMixture::reference_2d(vp());
    for x in [[0.1, 0.2], [0.45, 0.5], [-0.3, 0.35]] {
        for t in [1e-3, 0.05, 0.3] {
            check_model(&m, &x, t, 1e-5);
        }
    }
}

#[test]
fn gaussian_derivatives_match_finite_differences() {
    for sde in all_sdes() {
        let (g, x) = gaussian_and_samples(6, 22, sde, 1);
        for t in [1e-3, 0.3, 1.0] {
            check_model(&g, &x, t, 1e-5);
        }
    }
}

/// log N(x; μ, Σ) through the eigendecomposition against a Cholesky evaluation.
#[test]
fn gaussian_density_matches_cholesky() {
    let d = 12;
    let (mean, cov) = random_cov(d, 24);
    let g = Gaussian::new(mean.clone(), &cov, vp()).unwrap();
    let back = g.covariance();
    assert!(rel_err(&back, &cov) < 1e-12);
    let x = g.sample(&mut rng(25), 2);
    let mut lp = vec![0.0; 2];
    g.log_prob(&x, &mut lp).unwrap();
    let c = nalgebra::DMatrix::from_row_slice(d, d, &cov).cholesky().unwrap();
    for i in 0..2 {
        let diff = nalgebra::DVector::from_iterator(d, (0..d).map(|l| x[i * d + l] - mean[l]));
        let sol = c.solve(&diff);
        let logdet = 2.0 * c.l().diagonal().iter().map(|v| v.ln()).sum::<f64>();
        let want = -0.5 * diff.dot(&sol) - 0.5 * logdet - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
        assert!((lp[i] - want).abs() < 1e-10, "{} vs {want}", lp[i]);
    }
    // The mixture with one component is that Gaussian when diagonal.
    let var: Vec<f64> = (0..d).map(|l| 0.05 + 0.01 * l as f64).collect();
    let gd = Gaussian::diagonal(mean.clone(), &var, vp()).unwrap();
    let stds: Vec<f64> = var.iter().map(|v| v.sqrt()).collect();
    let m = GaussianMixture::new(&[2.0], &mean, &stds, vp()).unwrap();
    let (mut a, mut b) = (vec![0.0; 2], vec![0.0; 2]);
    gd.marginal_log_prob(&x, 0.2, &mut a).unwrap();
    m.marginal_log_prob(&x, 0.2, &mut b).unwrap();
    assert!((a[0] - b[0]).abs() < 1e-10 && (a[1] - b[1]).abs() < 1e-10);
}

/// The default `second_order` (central difference of VJPs, h = 1e-4·max(1, rms x)) against
/// the analytic term; prints the measured relative errors (recorded in the trait's docs).
#[test]
fn default_second_order_matches_analytic() {
    use rand::Rng;
    let cases = [(GaussianMixture::reference_2d(vp()), vec![0.1, 0.2, 0.45, 0.5, -0.3, 0.35]), {
        let m = random_mixture(8, 26, vp());
        let x = m.sample(&mut rng(27), 3);
        (m, x)
    }];
    for (m, x) in cases {
        let d = ScoreModel::dim(&m);
        let mut r = rng(28);
        let probes: Vec<f64> = (0..4 * d).map(|_| if r.gen::<bool>() { 1.0 } else { -1.0 }).collect();
        let fdm = ScoreAndVjpOnly(m.clone());
        for t in [1e-3, 0.01, 0.1, 0.5] {
            let mut exact = vec![0.0; x.len()];
            let mut approx = vec![0.0; x.len()];
            m.second_order(&x, t, &probes, &mut exact).unwrap();
            fdm.second_order(&x, t, &probes, &mut approx).unwrap();
            let e = rel_err(&approx, &exact);
            eprintln!(
                "D={d} t={t}: default second_order relative error {e:.2e} (|exact| = {:.2e})",
                exact.iter().map(|v| v * v).sum::<f64>().sqrt()
            );
            assert!(e < 1e-3, "t={t}: {e}");
        }
    }
}

#[test]
fn invalid_inputs_are_errors() {
    let sde = vp();
    // Not positive definite / not symmetric / NaN / wrong shapes.
    assert!(matches!(Gaussian::new(vec![0.0; 2], &[1.0, 2.0, 2.0, 1.0], sde), Err(Error::NotPositiveDefinite { .. })));
    assert!(matches!(Gaussian::new(vec![0.0; 2], &[1.0, 0.5, 0.0, 1.0], sde), Err(Error::NotPositiveDefinite { .. })));
    assert!(matches!(Gaussian::new(vec![0.0; 2], &[1.0, 0.0, 0.0, 0.0], sde), Err(Error::NotPositiveDefinite { .. })));
    assert!(matches!(
        Gaussian::new(vec![0.0; 2], &[1.0, f64::NAN, f64::NAN, 1.0], sde),
        Err(Error::NonFiniteData { .. })
    ));
    assert!(matches!(Gaussian::new(vec![0.0; 2], &[1.0, 0.0, 0.0], sde), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(Gaussian::diagonal(vec![0.0; 2], &[1.0, -1.0], sde), Err(Error::NotPositiveDefinite { .. })));
    assert!(matches!(
        GaussianMixture::new(&[1.0], &[0.0, 0.0], &[0.1, 0.1, 0.1], sde),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(
        GaussianMixture::new(&[1.0, 1.0], &[0.0, 0.0, 1.0], &[0.1, 0.1], sde),
        Err(Error::ShapeMismatch { .. })
    ));
    assert!(matches!(GaussianMixture::new(&[1.0, 0.0], &[0.0, 1.0], &[0.1, 0.1], sde), Err(Error::OutOfRange { .. })));
    assert!(matches!(GaussianMixture::new(&[1.0], &[0.0, 1.0], &[0.0], sde), Err(Error::OutOfRange { .. })));
    assert!(matches!(
        GaussianMixture::new(&[1.0], &[f64::INFINITY, 1.0], &[0.1], sde),
        Err(Error::NonFiniteData { .. })
    ));
    let g = Gaussian::diagonal(vec![0.0; 2], &[1.0, 1.0], sde).unwrap();
    let mut out = vec![0.0; 2];
    assert!(matches!(g.score(&[0.0; 3], 0.5, &mut out), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(g.score(&[0.0, f64::NAN], 0.5, &mut out), Err(Error::NonFiniteData { .. })));
    let mut v = vec![0.0; 3];
    assert!(matches!(g.score_and_vjp(&[0.0; 2], 0.5, &[1.0; 3], &mut out, &mut v), Err(Error::ShapeMismatch { .. })));
}

/// The Gaussian's shortcut for cotangent blocks that repeat one vector (shared probes) gives
/// the same VJPs as image-by-image calls.
#[test]
fn gaussian_shared_cotangents_match_per_image() {
    use rand::Rng;
    let d = 10;
    let (g, x) = gaussian_and_samples(d, 29, vp(), 3);
    let mut r = rng(31);
    let probes: Vec<f64> = (0..2 * d).map(|_| r.gen_range(-1.0..1.0)).collect();
    let mut cot = Vec::new();
    for j in 0..2 {
        for _ in 0..3 {
            cot.extend_from_slice(&probes[j * d..(j + 1) * d]);
        }
    }
    let (mut s, mut v) = (vec![0.0; 3 * d], vec![0.0; 6 * d]);
    g.score_and_vjp(&x, 0.4, &cot, &mut s, &mut v).unwrap();
    for i in 0..3 {
        for j in 0..2 {
            let (mut s1, mut v1) = (vec![0.0; d], vec![0.0; d]);
            g.score_and_vjp(&x[i * d..(i + 1) * d], 0.4, &probes[j * d..(j + 1) * d], &mut s1, &mut v1).unwrap();
            let row = &v[(j * 3 + i) * d..(j * 3 + i + 1) * d];
            assert!(rel_err(row, &v1) < 1e-13);
            assert!(rel_err(&s[i * d..(i + 1) * d], &s1) < 1e-13);
        }
    }
}

/// The Gaussian's `score_and_probe_forms` (one `Jε` per probe) equals the trait's default (one
/// VJP per probe and image), seen through a wrapper that only forwards score and VJPs.
#[test]
fn gaussian_probe_forms_match_the_default_path() {
    // n·D² large enough for the threaded path, and a small case for the serial one.
    for (d, n, k) in [(40, 3, 2), (128, 24, 5)] {
        let (g, x) = gaussian_and_samples(d, 71, vp(), n);
        let probes: Vec<f64> = g.sample(&mut rng(73), k);
        let (mut s1, mut s2) = (vec![0.0; n * d], vec![0.0; n * d]);
        let (mut f1, mut f2) = (vec![0.0; k * n], vec![0.0; k * n]);
        g.score_and_probe_forms(&x, 0.2, &probes, &mut s1, &mut f1).unwrap();
        ScoreAndVjpOnly(g.clone()).score_and_probe_forms(&x, 0.2, &probes, &mut s2, &mut f2).unwrap();
        assert!(rel_err(&s1, &s2) < 1e-13 && rel_err(&f1, &f2) < 1e-12, "D={d} n={n} K={k}");
        // Bad shapes are errors.
        assert!(g.score_and_probe_forms(&x, 0.2, &probes[1..], &mut s1, &mut f1).is_err());
        assert!(g.score_and_probe_forms(&x, 0.2, &probes, &mut s1, &mut f1[1..]).is_err());
    }
}
