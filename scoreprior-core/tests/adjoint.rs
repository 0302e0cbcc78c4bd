//! The continuous-adjoint gradient of the probability-flow log-density against central finite
//! differences of the forward log-density (exact trace and Hutchinson with the same probes), on
//! Gaussian mixtures, and the exact-trace fallbacks (basis VJPs, basis second-order terms) of a
//! model that provides neither trace nor trace gradient.

mod common;

use common::*;
use scoreprior_core::divergence::ProbeNoise;
use scoreprior_core::prior::{Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::{GaussianMixture, MarginalDensity};
use scoreprior_core::Error;

fn tight(cfg: ScorePriorConfig) -> ScorePriorConfig {
    cfg.with_tolerances(1e-10, 1e-10).with_adjoint_tolerances(1e-9, 1e-9).with_max_steps(100_000)
}

/// 2-D reference mixture (±0.5, std 0.1), exact trace, standard normal terminal: the adjoint
/// gradient equals the finite-difference gradient of the computed log p, and the exact score at t0.
#[test]
fn mixture_2d_gradient_matches_finite_differences() {
    let m = GaussianMixture::reference_2d(vp());
    let cfg = tight(ScorePriorConfig::default().with_sde(vp()).with_exact_trace());
    let prior = ScorePrior::new(m.clone(), cfg.clone()).unwrap();
    for x in [[0.1, 0.2], [0.45, 0.55], [-0.6, -0.3]] {
        let out = prior.grad_log_prob(&x).unwrap();
        let fd = fd_grad_logp(&prior, &x, 1e-4);
        let e = rel_err(&out.grad, &fd);
        let mut exact = [0.0; 2];
        m.marginal_grad_log_prob(&x, cfg.t0, &mut exact).unwrap();
        let e2 = rel_err(&out.grad, &exact);
        eprintln!(
            "x={x:?}: adjoint {:?}, FD {fd:?}, exact {exact:?}: rel err {e:.1e} / {e2:.1e}; {:?}",
            out.grad, out.stats
        );
        assert!(e < 1e-5, "vs FD: {e}");
        assert!(e2 < 1e-3, "vs exact score: {e2}");
    }
}

/// Diagonal 3-component mixture in D = 6 with Hutchinson (4 Gaussian probes): the adjoint
/// (which uses the model's second-order term with the same probes) is the derivative of the
/// Hutchinson log p for those probes.
#[test]
fn hutchinson_gradient_matches_finite_differences() {
    let m = random_mixture(6, 31, vp());
    let x = m.sample(&mut rng(32), 1);
    for noise in [ProbeNoise::Gaussian, ProbeNoise::Rademacher] {
        let cfg = tight(ScorePriorConfig::default().with_sde(vp()).with_hutchinson(4, noise, 33));
        let prior = ScorePrior::new(m.clone(), cfg).unwrap();
        let out = prior.grad_log_prob(&x).unwrap();
        let fd = fd_grad_logp(&prior, &x, 1e-4);
        let e = rel_err(&out.grad, &fd);
        eprintln!("{noise:?}: rel err {e:.1e}");
        assert!(e < 1e-5, "{noise:?}: {e}");
    }
}

#[test]
fn exact_trace_fallbacks_match_analytic() {
    let m = random_mixture(5, 34, vp());
    let x = m.sample(&mut rng(35), 2);
    let cfg = exact_vp_config(1e-8);
    let a = ScorePrior::new(m.clone(), cfg.clone()).unwrap().grad_log_prob(&x).unwrap();
    let b = ScorePrior::new(ScoreAndVjpOnly(m), cfg).unwrap().grad_log_prob(&x).unwrap();
    for (u, v) in a.log_prob.iter().zip(&b.log_prob) {
        assert!((u - v).abs() < 1e-8, "{u} vs {v}");
    }
    let e = rel_err(&b.grad, &a.grad);
    assert!(e < 1e-6, "{e}");
}

#[test]
fn errors_not_panics() {
    let m = random_mixture(3, 36, vp());
    let prior = ScorePrior::new(m.clone(), ScorePriorConfig::default()).unwrap();
    assert!(matches!(prior.log_prob(&[0.0; 4]), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(prior.log_prob(&[]), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(prior.grad_log_prob(&[0.0, f64::NAN, 0.0]), Err(Error::NonFinite { .. })));
    assert!(matches!(prior.log_prob(&[0.0, f64::INFINITY, 0.0]), Err(Error::NonFinite { .. })));
    let small = ScorePrior::new(m.clone(), ScorePriorConfig::default().with_max_steps(3)).unwrap();
    assert!(matches!(small.log_prob(&[0.1, 0.2, 0.3]), Err(Error::MaxStepsExceeded { .. })));
    assert!(matches!(small.grad_log_prob(&[0.1, 0.2, 0.3]), Err(Error::MaxStepsExceeded { .. })));
    assert!(ScorePrior::new(m.clone(), ScorePriorConfig::default().with_t0(2.0)).is_err());
    assert!(
        ScorePrior::new(m.clone(), ScorePriorConfig::default().with_hutchinson(0, ProbeNoise::Rademacher, 0)).is_err()
    );
    assert!(ScorePrior::new(m.clone(), ScorePriorConfig::default().with_tolerances(-1.0, 1e-3)).is_err());
    // Terminal density of the wrong dimension.
    let other = random_mixture(4, 37, vp());
    let p = ScorePrior::new(m, ScorePriorConfig::default()).unwrap().with_exact_terminal(other);
    assert!(matches!(p.log_prob(&[0.1, 0.2, 0.3]), Err(Error::ShapeMismatch { .. })));
}

/// The closed-form priors: gradients against finite differences of their log-densities, and
/// the mixture's against the ODE prior (t0 tiny, exact trace, exact terminal).
#[test]
fn closed_form_priors_match_finite_differences_and_the_ode() {
    use scoreprior_core::prior::{GaussianPrior, MixturePrior};
    let (mean, cov) = random_cov(5, 38);
    let gp = GaussianPrior::new(mean, &cov).unwrap();
    let m = random_mixture(4, 39, vp());
    let mp = MixturePrior::new(m.clone());
    let priors: [(&dyn Prior, Vec<f64>); 2] = [(&gp, vec![0.4, 0.5, 0.3, 0.6, 0.5]), (&mp, vec![0.2, -0.1, 0.3, 0.0])];
    for (p, x) in priors {
        let g = p.grad_log_prob(&x).unwrap();
        let fd: Vec<f64> = (0..x.len())
            .map(|l| {
                let (mut a, mut b) = (x.clone(), x.clone());
                a[l] += 1e-5;
                b[l] -= 1e-5;
                (p.log_prob(&a).unwrap().log_prob[0] - p.log_prob(&b).unwrap().log_prob[0]) / 2e-5
            })
            .collect();
        assert!(rel_err(&g.grad, &fd) < 1e-7);
    }
    let x = vec![0.2, -0.1, 0.3, 0.0];
    let cfg = ScorePriorConfig::default()
        .with_sde(vp())
        .with_exact_trace()
        .with_t0(1e-6)
        .with_tolerances(1e-8, 1e-8)
        .with_adjoint_tolerances(1e-8, 1e-8);
    let ode = ScorePrior::new(m.clone(), cfg).unwrap().with_exact_terminal(m).grad_log_prob(&x).unwrap();
    let exact = mp.grad_log_prob(&x).unwrap();
    assert!((ode.log_prob[0] - exact.log_prob[0]).abs() < 1e-4, "{} vs {}", ode.log_prob[0], exact.log_prob[0]);
    assert!(rel_err(&ode.grad, &exact.grad) < 1e-4);
}
