//! The adjoint solve on the forward grid ([`AdjointSteps::ForwardGrid`], the default): one
//! backward step per forward step, each restarted from the forward state. It is the
//! derivative of the computed log p when the forward grid is fine, it is about as accurate
//! as the adaptive backward solve at the default tolerances while costing fewer evaluations,
//! and its step count follows the forward solve's.

mod common;

use common::*;
use scoreprior_core::divergence::ProbeNoise;
use scoreprior_core::ode::Dopri5;
use scoreprior_core::prior::{AdjointSteps, Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::{GaussianMixture, ScoreModel};

/// With a fine forward grid (rtol = atol = 1e-9), the forward-grid adjoint is the derivative
/// of the Hutchinson log p for the same probes (D = 6, 3 components, 4 probes).
#[test]
fn forward_grid_gradient_matches_finite_differences() {
    let m = random_mixture(6, 31, vp());
    let x = m.sample(&mut rng(32), 1);
    let cfg = ScorePriorConfig::default()
        .with_sde(vp())
        .with_hutchinson(4, ProbeNoise::Rademacher, 33)
        .with_tolerances(1e-9, 1e-9)
        .with_max_steps(100_000);
    assert_eq!(cfg.adjoint_steps, AdjointSteps::ForwardGrid, "the default");
    let prior = ScorePrior::new(m.clone(), cfg).unwrap();
    let out = prior.grad_log_prob(&x).unwrap();
    let fd = fd_grad_logp(&prior, &x, 1e-4);
    let e = rel_err(&out.grad, &fd);
    eprintln!("rel err {e:.1e}, {:?}", out.stats);
    assert!(e < 1e-6, "{e}");
    // One backward step per forward step (the last may be merged): one evaluation per stage of
    // the grid solver (no FSAL across a restart), no rejection.
    let (f, a) = (out.stats.forward, out.stats.adjoint);
    assert_eq!(a.rejected_steps, 0);
    assert!(a.accepted_steps == f.accepted_steps || a.accepted_steps + 1 == f.accepted_steps, "{f:?} {a:?}");
    assert_eq!(a.rhs_evaluations, 4 * a.accepted_steps, "RK4, the default");
    // The same with Dopri5 on the grid: 7 evaluations per step, the same derivative.
    let dopri = ScorePrior::new(m.clone(), prior.config().clone().with_grid_solver(&Dopri5)).unwrap();
    let out5 = dopri.grad_log_prob(&x).unwrap();
    assert_eq!(out5.stats.adjoint.rhs_evaluations, 7 * out5.stats.adjoint.accepted_steps);
    let e5 = rel_err(&out5.grad, &fd);
    assert!(e5 < 1e-6, "{e5}");
}

/// At the default tolerances (rtol 1e-3, atol 1e-5) on the 2-D reference mixture (exact trace)
/// and a 6-D random mixture (Hutchinson), the forward-grid gradient (Dopri5 steps) is as close
/// to a tight solve's as the adaptive backward solve's, within a factor 2, with fewer
/// evaluations; with RK4 steps (the default) within a factor 5, with 4/7 of Dopri5's.
/// Measured: 2-D 1.82e-2 (Dopri5 steps), 2.09e-2 (RK4) vs 1.91e-2 adaptive (91, 52 vs 140
/// evaluations), 6-D 4.75e-3, 1.16e-2 vs 2.69e-3 (42, 24 vs 68); on the shipped NCSN++
/// (`benches/RESULTS.md`) 5.4e-3, 4.6e-3 vs 2.0e-2 (91, 52 vs 116).
#[test]
fn forward_grid_is_as_accurate_as_adaptive_at_default_tolerances() {
    let cases: Vec<(GaussianMixture, ScorePriorConfig, Vec<f64>)> = vec![
        (
            GaussianMixture::reference_2d(vp()),
            ScorePriorConfig::default().with_sde(vp()).with_exact_trace(),
            vec![0.1, 0.2, 0.45, 0.55, -0.6, -0.3],
        ),
        {
            let m = random_mixture(6, 41, vp());
            let x = m.sample(&mut rng(42), 3);
            (m, ScorePriorConfig::default().with_sde(vp()).with_hutchinson(2, ProbeNoise::Rademacher, 43), x)
        },
    ];
    for (m, cfg, x) in cases {
        let tight = ScorePrior::new(
            m.clone(),
            cfg.clone().with_tolerances(1e-10, 1e-10).with_adjoint_tolerances(1e-10, 1e-10).with_max_steps(100_000),
        )
        .unwrap()
        .grad_log_prob(&x)
        .unwrap();
        let grid =
            ScorePrior::new(m.clone(), cfg.clone().with_grid_solver(&Dopri5)).unwrap().grad_log_prob(&x).unwrap();
        let rk4 = ScorePrior::new(m.clone(), cfg.clone()).unwrap().grad_log_prob(&x).unwrap();
        let adaptive = ScorePrior::new(m.clone(), cfg.clone().with_adjoint_steps(AdjointSteps::Adaptive))
            .unwrap()
            .grad_log_prob(&x)
            .unwrap();
        let (eg, ea) = (rel_err(&grid.grad, &tight.grad), rel_err(&adaptive.grad, &tight.grad));
        eprintln!(
            "d = {}: forward grid {eg:.2e} ({:?}), adaptive {ea:.2e} ({:?})",
            m.dim(),
            grid.stats.adjoint,
            adaptive.stats.adjoint
        );
        let er = rel_err(&rk4.grad, &tight.grad);
        eprintln!("  RK4 on the grid {er:.2e} ({:?})", rk4.stats.adjoint);
        assert!(eg <= 2.0 * ea, "forward grid {eg:.2e} vs adaptive {ea:.2e}");
        assert!(er <= 5.0 * ea && er <= 2.5 * eg, "RK4 grid {er:.2e} vs adaptive {ea:.2e}, Dopri5 grid {eg:.2e}");
        assert!(grid.stats.adjoint.rhs_evaluations < adaptive.stats.adjoint.rhs_evaluations);
        assert_eq!(7 * rk4.stats.adjoint.rhs_evaluations, 4 * grid.stats.adjoint.rhs_evaluations);
        // The log-densities are the forward solve's, the same in both.
        assert_eq!(grid.log_prob, adaptive.log_prob);
    }
}
