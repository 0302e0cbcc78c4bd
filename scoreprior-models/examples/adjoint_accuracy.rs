//! Accuracy and cost of the exact prior's gradient on the shipped NCSN++: `∇x log p` of 8
//! noisy Fashion-MNIST test images (2 Rademacher probes, Dopri5 rtol 1e-3 / atol 1e-5) with
//! the adjoint on the forward grid (RK4 steps, the default, and Dopri5 steps) and with its own
//! adaptive steps, each against a tight solve (rtol 1e-6 / atol 1e-8 both ways, about 2
//! minutes on 2 cores).
//!
//! `cargo run --release -p scoreprior-models --example adjoint_accuracy`

use std::time::Instant;

use scoreprior_core::divergence::ProbeNoise;
use scoreprior_core::ode::Dopri5;
use scoreprior_core::prior::{AdjointSteps, LogProbGrad, Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::ScoreModel;
use scoreprior_core::sde::AnySde;
use scoreprior_models::score::NcsnppScore;

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let net = std::sync::Arc::new(NcsnppScore::load(&root.join("assets/ncsnpp_fmnist16/ema.safetensors"))?);
    let sde = AnySde::Vp(*net.sde());
    let base = ScorePriorConfig::default().with_sde(sde).with_hutchinson(2, ProbeNoise::Rademacher, 0);
    let images = scoreprior_core::io::read_npy(root.join("assets/fashion16_test.npy"))?.data;
    let (d, n) = (net.dim(), 8);
    // Test images plus a fixed ±0.05 pattern: off the data, as a DPI sample is.
    let x: Vec<f64> = images[..n * d]
        .iter()
        .enumerate()
        .map(|(i, v)| v + 0.1 * (((i * 7919) % 1000) as f64 / 1000.0 - 0.5))
        .collect();
    let run = |name: &str, cfg: ScorePriorConfig| -> Result<LogProbGrad, Box<dyn std::error::Error>> {
        let p = ScorePrior::from_arc(net.clone(), cfg)?;
        let t = Instant::now();
        let g = p.grad_log_prob(&x)?;
        println!(
            "{name:>12}: {:6.1} s, forward {:4} evaluations, adjoint {:4} ({} accepted, {} rejected)",
            t.elapsed().as_secs_f64(),
            g.stats.forward.rhs_evaluations,
            g.stats.adjoint.rhs_evaluations,
            g.stats.adjoint.accepted_steps,
            g.stats.adjoint.rejected_steps
        );
        Ok(g)
    };
    let grid = run("grid, RK4", base.clone().with_adjoint_steps(AdjointSteps::ForwardGrid))?;
    let grid5 = run("grid, Dopri5", base.clone().with_grid_solver(&Dopri5))?;
    let adaptive = run("adaptive", base.clone().with_adjoint_steps(AdjointSteps::Adaptive))?;
    let tight = run("tight", base.with_tolerances(1e-6, 1e-8).with_adjoint_tolerances(1e-6, 1e-8))?;
    println!(
        "relative gradient error against the tight solve: forward grid with RK4 {:.2e}, with Dopri5 {:.2e}, \
         adaptive {:.2e}",
        rel(&grid.grad, &tight.grad),
        rel(&grid5.grad, &tight.grad),
        rel(&adaptive.grad, &tight.grad)
    );
    Ok(())
}
