//! The problem `benches/reference/diffrax_logprob.py` solves in diffrax and
//! `cargo bench --bench logprob` times: log p of the first 16 test images
//! (`assets/fashion16_test.npy`) under the shipped 16×16 Gaussian (`assets/gaussian16`), VP SDE,
//! t0 = 1e-3 → T = 1, Dopri5 + PID(rtol 1e-3, atol 1e-5), first forward step 1e-3.
//!
//! The counts diffrax gives on it are read from the archived run of that script,
//! `benches/reference/out/diffrax_logprob.json` (`--dt0 0.001 --json …`, diffrax 0.7.2 /
//! JAX 0.10.2): 7 accepted and 0 rejected Dopri5 steps, 43 vector-field evaluations
//! (1 + 6·7, FSAL), and a mean log p of 221.6940139 nats, with the same first step. Ours must
//! be the same. The adjoint counts (on the forward grid, the default: 49 evaluations;
//! adaptive: 62 evaluations, 6 accepted, 4 rejected, automatic first step; 73 with a fixed
//! first step of 1e-3) are ours only: diffrax's `BacksolveAdjoint` solves a different
//! augmented system (it also integrates the parameter cotangents), so its counts are not
//! comparable and the script does not write them.

use scoreprior_core::io::read_npy;
use scoreprior_core::prior::{AdjointSteps, Controller, Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::Gaussian;
use scoreprior_core::sde::{AnySde, VpSde};

/// diffrax's forward solve of this problem with the exact trace (`runs.exact` of the archived
/// JSON): accepted steps, rejected steps, evaluations, mean log p. The settings it was run
/// with are checked to be this problem's.
fn diffrax() -> (u64, u64, u64, f64) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../benches/reference/out/diffrax_logprob.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let j: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let s = &j["settings"];
    assert_eq!(
        (s["rtol"].as_f64(), s["atol"].as_f64(), s["dt0"].as_f64(), s["batch"].as_u64()),
        (Some(1e-3), Some(1e-5), Some(1e-3), Some(16)),
        "{path}: not the reference problem's settings"
    );
    assert_eq!((j["problem"]["t0"].as_f64(), j["problem"]["t1"].as_f64()), (Some(1e-3), Some(1.0)));
    let r = &j["runs"]["exact"];
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{path}: runs.exact.{k}"));
    let mean = r["mean_log_p"].as_f64().unwrap_or_else(|| panic!("{path}: runs.exact.mean_log_p"));
    (n("accepted_steps"), n("rejected_steps"), n("rhs_evaluations"), mean)
}

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
    eprintln!("forward {s:?}, mean log p {mean:.10}");
    // diffrax with `--dt0 0.001`: 7 steps, 0 rejected, 43 evaluations (FSAL Dopri5: 1 + 6 per step).
    let (accepted, rejected, evaluations, diffrax_mean) = diffrax();
    assert_eq!(
        (s.accepted_steps as u64, s.rejected_steps as u64, s.rhs_evaluations as u64),
        (accepted, rejected, evaluations)
    );
    // Equal to 1e-10 when archived; 1e-8 leaves room for the rounding of other kernels.
    assert!((mean - diffrax_mean).abs() < 1e-8, "mean log p {mean}, diffrax {diffrax_mean}");

    // The automatic first step (Hairer's heuristic, `--dt0 auto`): one probe evaluation and
    // one more step, 50 evaluations (the book's log p guide, `docs/src/guide/logprob.md`).
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
    // The default: the forward's 7 steps, one RK4 step (4 evaluations) per restarted step.
    assert_eq!((a.accepted_steps, a.rejected_steps, a.rhs_evaluations), (7, 0, 28));
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
