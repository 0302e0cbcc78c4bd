//! Probability-flow log-density and adjoint gradient of an analytic Gaussian against the
//! closed forms `log N(x; α μ, α² Σ + σ² I)` and `−Σ⁻¹(x − μ)`.

mod common;

use common::*;
use scoreprior_core::prior::{LogProb, Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::{Gaussian, MarginalDensity};

/// The PF-ODE log-density of `x` under `g`'s score with `g`'s own terminal density (no
/// terminal mismatch), and `g`'s closed-form `log p_{t0}(x)` it must equal.
fn exact_terminal_log_prob(g: &Gaussian, cfg: &ScorePriorConfig, x: &[f64]) -> (LogProb, Vec<f64>) {
    let prior = ScorePrior::new(g.clone(), cfg.clone()).unwrap().with_exact_terminal(g.clone());
    let out = prior.log_prob(x).unwrap();
    let mut exact = vec![0.0; out.log_prob.len()];
    g.marginal_log_prob(x, cfg.t0, &mut exact).unwrap();
    (out, exact)
}

/// D = 256 (16×16), full random SPD covariance, exact trace, rtol = atol = 1e-6, exact p_T:
/// log p matches log p_{t0} within 1e-3 nats; with the standard normal p_T the gap is the
/// terminal mismatch, small but visible.
#[test]
fn log_prob_d256_matches_closed_form() {
    let d = 256;
    let (g, x) = gaussian_and_samples(d, 1, vp(), 4);
    let cfg = ScorePriorConfig::default().with_sde(vp()).with_exact_trace().with_tolerances(1e-6, 1e-6);
    let (out, exact) = exact_terminal_log_prob(&g, &cfg, &x);
    for (a, b) in out.log_prob.iter().zip(&exact) {
        assert!((a - b).abs() < 1e-3, "log p {a} vs exact {b}");
    }
    eprintln!(
        "D=256 exact-terminal: |err| = {:?}, stats {:?}",
        out.log_prob.iter().zip(&exact).map(|(a, b)| (a - b).abs()).collect::<Vec<_>>(),
        out.stats.forward
    );

    // With the standard normal p_T the result differs by log N(x_T; 0, I) − log p_T(x_T). For a
    // Gaussian the flow map is known: in the eigenbasis x_t − α_t μ scales like
    // √(α_t² λ + σ_t²), so the gap can be predicted exactly.
    let sde_prior = ScorePrior::new(g.clone(), cfg.clone()).unwrap();
    let out2 = sde_prior.log_prob(&x).unwrap();
    let sde = vp();
    use scoreprior_core::sde::Sde;
    let (a0, s0) = (sde.marginal_mean_coef(cfg.t0), sde.marginal_std(cfg.t0));
    let (a1, s1) = (sde.marginal_mean_coef(1.0), sde.marginal_std(1.0));
    let u = g.eigenvectors();
    let mu = g.mean();
    let mut x_t = vec![0.0; x.len()];
    for (xi, xo) in x.chunks(d).zip(x_t.chunks_mut(d)) {
        let diff: Vec<f64> = xi.iter().zip(mu).map(|(v, m)| v - a0 * m).collect();
        let mut yt = vec![0.0; d];
        for (j, l) in g.eigenvalues().iter().enumerate() {
            let y: f64 = (0..d).map(|i| u[(i, j)] * diff[i]).sum();
            yt[j] = y * ((a1 * a1 * l + s1 * s1) / (a0 * a0 * l + s0 * s0)).sqrt();
        }
        for i in 0..d {
            xo[i] = a1 * mu[i] + (0..d).map(|j| u[(i, j)] * yt[j]).sum::<f64>();
        }
    }
    let mut lp_t = vec![0.0; 4];
    g.marginal_log_prob(&x_t, 1.0, &mut lp_t).unwrap();
    for i in 0..4 {
        let predicted = sde.prior_log_prob(&x_t[i * d..(i + 1) * d]) - lp_t[i];
        let gap = out2.log_prob[i] - exact[i];
        eprintln!("D=256 N(0,I) terminal: gap {gap:.5} nats, predicted {predicted:.5}");
        assert!((gap - predicted).abs() < 1e-3, "gap {gap} vs predicted {predicted}");
    }
}

/// Every SDE, smaller D: the PF-ODE transports p_{t0} exactly onto p_T.
#[test]
fn log_prob_exact_for_every_sde() {
    let d = 16;
    for sde in all_sdes() {
        let (g, x) = gaussian_and_samples(d, 3, sde, 3);
        let cfg = ScorePriorConfig::default().with_sde(sde).with_exact_trace().with_tolerances(1e-7, 1e-7);
        let (out, exact) = exact_terminal_log_prob(&g, &cfg, &x);
        for (a, b) in out.log_prob.iter().zip(&exact) {
            assert!((a - b).abs() < 1e-4, "{sde:?}: {a} vs {b}");
        }
    }
}

/// Adjoint gradient: against the exact score at t0 (default t0), and against −Σ⁻¹(x − μ)
/// with t0 = 1e-5 where p_{t0} and the data density differ by a relative 1e-4.
#[test]
fn adjoint_gradient_d256_matches_closed_form() {
    let d = 256;
    let (g, x) = gaussian_and_samples(d, 5, vp(), 2);
    let base = exact_vp_config(1e-6);
    for (t0, tol) in [(1e-3, 1e-4), (1e-5, 1e-3)] {
        let cfg = base.clone().with_t0(t0);
        let prior = ScorePrior::new(g.clone(), cfg).unwrap().with_exact_terminal(g.clone());
        let out = prior.grad_log_prob(&x).unwrap();
        let mut at_t0 = vec![0.0; x.len()];
        g.marginal_grad_log_prob(&x, t0, &mut at_t0).unwrap();
        let mut data = vec![0.0; x.len()];
        g.grad_log_prob(&x, &mut data).unwrap();
        let e_t0 = rel_err(&out.grad, &at_t0);
        let e_data = rel_err(&out.grad, &data);
        eprintln!("t0={t0}: rel err vs score(t0) {e_t0:.2e}, vs -Σ⁻¹(x-μ) {e_data:.2e}, stats {:?}", out.stats);
        assert!(e_t0 < tol, "t0={t0}: {e_t0}");
        if t0 == 1e-5 {
            assert!(e_data < 1e-3, "vs data gradient: {e_data}");
        }
    }
}

/// The standard-normal terminal path: a(T) = −x_T; gradient still close to the exact one
/// (the terminal mismatch is tiny).
#[test]
fn adjoint_with_standard_normal_terminal() {
    let d = 32;
    let (g, x) = gaussian_and_samples(d, 7, vp(), 3);
    let cfg = exact_vp_config(1e-7);
    let out = ScorePrior::new(g.clone(), cfg.clone()).unwrap().grad_log_prob(&x).unwrap();
    let mut at_t0 = vec![0.0; x.len()];
    g.marginal_grad_log_prob(&x, cfg.t0, &mut at_t0).unwrap();
    let e = rel_err(&out.grad, &at_t0);
    eprintln!("standard-normal terminal: relative gradient error {e:.3e}");
    // Measured 4.3e-3 (the terminal mismatch, pulled back by the flow); about 2×.
    assert!(e < 8e-3, "{e}");
}

/// A batch is one ODE state; results match per-image solves within the tolerances.
#[test]
fn batch_matches_single_images() {
    let d = 16;
    let (g, x) = gaussian_and_samples(d, 9, vp(), 3);
    let cfg = ScorePriorConfig::default().with_sde(vp()).with_exact_trace().with_tolerances(1e-7, 1e-7);
    let prior = ScorePrior::new(g.clone(), cfg).unwrap();
    let batch = prior.log_prob(&x).unwrap();
    for i in 0..3 {
        let one = prior.log_prob(&x[i * d..(i + 1) * d]).unwrap();
        assert!((one.log_prob[0] - batch.log_prob[i]).abs() < 1e-5);
    }
}

/// Any shipped solver plugs in: adaptive ones with PID control, fixed-step ones (Euler, RK4)
/// with a constant step. Each error is bounded at about twice its measured value; at the same
/// tolerance a higher-order method needs fewer evaluations (Heun > Bosh3 > Dopri5), and the
/// fixed-step errors fall at the methods' orders (log–log slope over 3 step sizes).
#[test]
fn every_solver_computes_the_closed_form() {
    use scoreprior_core::ode::solver_by_name;
    use scoreprior_core::prior::Controller;
    let d = 16;
    let (g, x) = gaussian_and_samples(d, 11, vp(), 2);
    let base = ScorePriorConfig::default().with_sde(vp()).with_exact_trace();
    let mut exact = vec![0.0; 2];
    g.marginal_log_prob(&x, base.t0, &mut exact).unwrap();
    let run = |name: &str, ctrl: Controller| {
        let solver = solver_by_name(name).unwrap();
        let cfg = base.clone().with_solver(solver).with_controller(ctrl);
        let prior = ScorePrior::new(g.clone(), cfg).unwrap().with_exact_terminal(g.clone());
        let out = prior.log_prob(&x).unwrap();
        let err = out.log_prob.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        eprintln!("{name}: max |err| {err:.2e}, {:?}", out.stats.forward);
        (err, out.stats.forward.rhs_evaluations)
    };
    // Measured max |err|: euler 7.9e-2, rk4 4.3e-5, heun 2.2e-5, bosh3 9.3e-6, tsit5 2.0e-5,
    // dopri5 2.1e-5, dopri8 3.7e-7.
    let mut nfe = std::collections::HashMap::new();
    for (name, ctrl, tol) in [
        ("euler", Controller::constant(1e-3), 0.16),
        ("rk4", Controller::constant(1e-2), 9e-5),
        ("heun", Controller::pid(1e-6, 1e-6), 5e-5),
        ("bosh3", Controller::pid(1e-6, 1e-6), 2e-5),
        ("tsit5", Controller::pid(1e-6, 1e-6), 5e-5),
        ("dopri5", Controller::pid(1e-6, 1e-6), 5e-5),
        ("dopri8", Controller::pid(1e-6, 1e-6), 1e-6),
    ] {
        let (err, evals) = run(name, ctrl);
        assert!(err < tol, "{name}: {err}");
        nfe.insert(name, evals);
    }
    assert!(nfe["heun"] > nfe["bosh3"] && nfe["bosh3"] > nfe["dopri5"], "{nfe:?}");
    // Orders of the fixed-step solvers on this problem: the error halves (Euler) or falls
    // 16-fold (RK4) per halving of dt.
    for (name, dts, order) in [("euler", [4e-3, 2e-3, 1e-3], 1.0), ("rk4", [4e-2, 2e-2, 1e-2], 4.0)] {
        let pts: Vec<(f64, f64)> = dts.iter().map(|&dt| (dt, run(name, Controller::constant(dt)).0)).collect();
        let slope = (pts[2].1.ln() - pts[0].1.ln()) / (pts[2].0.ln() - pts[0].0.ln());
        let mid = (pts[1].1.ln() - pts[0].1.ln()) / (pts[1].0.ln() - pts[0].0.ln());
        eprintln!("{name}: slopes {mid:.3} (first half), {slope:.3} (overall); {pts:?}");
        assert!((slope - order).abs() < 0.15 * order && (mid - order).abs() < 0.15 * order, "{name}: {pts:?}");
    }
    // An adaptive controller with a fixed-step solver is a configuration error.
    let bad = base.with_solver(solver_by_name("rk4").unwrap());
    assert!(ScorePrior::new(g, bad).is_err());
}
