//! The DSM surrogate bound beside the exact log-density, at given images: the surrogate's
//! `−e(x)` (a lower bound on `log p(x)`, averaged over fresh draws) for each image of an
//! `.npy` batch, to set against `scoreprior logprob` (the exact PF-ODE `log p`) on the same
//! file. If the two rank images differently (a truth above a posterior's samples under one and
//! below under the other), the surrogate, not the optimiser, decides where DPI puts its mass.
//!
//! ```text
//! cargo run --release -p scoreprior-models --example dsm_bound_at -- \
//!     assets/ncsnpp_sources32/ema.safetensors images.npy [eps] [reps]
//! ```

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::dpi::{Energy, PriorEnergy};
use scoreprior_core::prior_dsm::DsmBoundPrior;

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let common::DsmArgs { model, sde, d, images: x, images_path, eps, reps } =
        common::dsm_args("usage: dsm_bound_at <checkpoint> <images.npy> [eps] [reps]", 64)?;
    if x.data.len() % d != 0 || x.data.is_empty() {
        return Err(format!("{images_path}: {} values are not whole images of {d} pixels", x.data.len()).into());
    }
    let n = x.data.len() / d;
    let prior = DsmBoundPrior::new(model, sde, eps, 1)?;
    let mut sum = vec![0.0; n];
    let mut sq = vec![0.0; n];
    for r in 0..reps {
        let (mut e, mut g) = (vec![0.0; n], vec![0.0; n * d]);
        PriorEnergy::new(&prior).energy_and_grad(&x.data, &mut ChaCha8Rng::seed_from_u64(r as u64), &mut e, &mut g)?;
        for i in 0..n {
            sum[i] += -e[i];
            sq[i] += e[i] * e[i];
        }
    }
    println!("image  surrogate log p (eps {eps}, {reps} draws)  ± s.e.");
    for i in 0..n {
        let m = sum[i] / reps as f64;
        let var = (sq[i] / reps as f64 - m * m).max(0.0) * reps as f64 / (reps - 1) as f64;
        println!("{i:>5}  {m:>12.1}  ± {:.1}", (var / reps as f64).sqrt());
    }
    Ok(())
}
