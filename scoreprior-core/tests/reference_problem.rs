//! The problem `benches/reference/diffrax_logprob.py` solves in diffrax and
//! `cargo bench --bench logprob` times: log p of the first 16 test images
//! (`assets/fashion16_test.npy`) under the shipped 16×16 Gaussian (`assets/gaussian16`), VP SDE,
//! t0 = 1e-3 → T = 1, Dopri5 + PID(rtol 1e-3, atol 1e-5), first forward step 1e-3.
//!
//! The counts diffrax gives on it are recorded in the README (its script prints them): 7
//! accepted and 0 rejected Dopri5 steps, i.e. 1 + 6·7 = 43 evaluations (FSAL), and a mean
//! log p of 221.6940 nats when it is given the same first step. Ours must be the same. The
//! adjoint counts (on the forward grid, the default: 49 evaluations; adaptive: 62 evaluations,
//! 6 accepted, 4 rejected, automatic first step; 73 with a fixed first step of 1e-3) are ours
//! only: diffrax's `BacksolveAdjoint` solves a different
//! augmented system (it also integrates the parameter cotangents), so its counts are not
//! comparable and the script does not print them.

use scoreprior_core::io::read_npy;
use scoreprior_core::prior::{AdjointSteps, Controller, Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::Gaussian;
use scoreprior_core::sde::{AnySde, VpSde};

fn setup() -> (Gaussian, Vec<f64>) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mean = read_npy(format!("{root}/assets/gaussian16/mean.npy")).unwrap();
    let cov = read_npy(format!("{root}/assets/gaussian16/cov.npy")).unwrap();
    let x = read_npy(format!("{root}/assets/fashion16_test.npy")).unwrap();
    let g = Gaussian::new(mean.data, &cov.data, AnySde::Vp(VpSde::default())).unwrap();
    let (_, d) = x.rows();
    (g, x.data[..16 * d].to_vec())
}

#[test]
fn forward_counts_and_mean_log_p_equal_diffrax() {
    let (g, x) = setup();
    let cfg = ScorePriorConfig::default().with_exact_trace();
    let prior = ScorePrior::new(g.clone(), cfg.clone()).unwrap();
    let lp = prior.log_prob(&x).unwrap();
    let s = &lp.stats.forward;
    let mean = lp.log_prob.iter().sum::<f64>() / lp.log_prob.len() as f64;
    eprintln!("forward {s:?}, mean log p {mean:.6}");
    // diffrax: steps=7 rejected=0 (FSAL Dopri5: 1 + 6 per step).
    assert_eq!((s.accepted_steps, s.rejected_steps, s.rhs_evaluations), (7, 0, 43));
    // diffrax prints 221.6940 (4 decimals) with `--dt0 0.001`.
    assert!((mean - 221.6940).abs() < 5e-5, "mean log p {mean}");

    // The automatic first step (Hairer's heuristic, `--dt0 auto`): one probe evaluation and
    // one more step, 50 evaluations (README).
    let auto = ScorePrior::new(g.clone(), cfg.clone().with_controller(Controller::pid_auto(1e-3, 1e-5))).unwrap();
    let s = auto.log_prob(&x).unwrap().stats.forward;
    eprintln!("forward, automatic dt0: {s:?}");
    assert_eq!((s.accepted_steps, s.rejected_steps, s.rhs_evaluations), (8, 0, 50));
}

#[test]
fn adjoint_counts_with_automatic_and_fixed_first_step() {
    let (g, x) = setup();
    let grid = ScorePriorConfig::default().with_exact_trace();
    let gr = ScorePrior::new(g.clone(), grid.clone()).unwrap().grad_log_prob(&x).unwrap();
    let a = &gr.stats.adjoint;
    eprintln!("adjoint on the forward grid: {a:?}");
    // The default: the forward's 7 steps, 7 evaluations per restarted step.
    assert_eq!((a.accepted_steps, a.rejected_steps, a.rhs_evaluations), (7, 0, 49));
    let cfg = grid.with_adjoint_steps(AdjointSteps::Adaptive);
    let gr = ScorePrior::new(g.clone(), cfg.clone()).unwrap().grad_log_prob(&x).unwrap();
    let a = &gr.stats.adjoint;
    eprintln!("adjoint, automatic dt0: {a:?}");
    assert_eq!((a.accepted_steps, a.rejected_steps, a.rhs_evaluations), (6, 4, 62));
    let fixed = ScorePriorConfig { adjoint_controller: Controller::pid(1e-3, 1e-5), ..cfg };
    let gr = ScorePrior::new(g, fixed).unwrap().grad_log_prob(&x).unwrap();
    let a = &gr.stats.adjoint;
    eprintln!("adjoint, dt0 1e-3: {a:?}");
    assert_eq!(a.rhs_evaluations, 73);
}
