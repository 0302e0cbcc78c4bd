//! Per-step gradient variance of the DSM surrogate prior for the estimator options of
//! `DsmBoundPrior` (time draws per image, stratification, antithetic noise, time density),
//! at fixed images, so the options can be compared at equal cost.
//!
//! For each setting it evaluates the bound's gradient `R` times (fresh draws each) on `n`
//! images — noisy versions of test images, standing in for DPI samples early in a run — and
//! reports the relative variance `E‖g − ḡ‖² / ‖ḡ‖²` (averaged over images), the network
//! passes per image (`S + 1`), and their product (variance at equal cost: lower is better).
//!
//! ```text
//! cargo run --release -p scoreprior-models --example dsm_variance -- \
//!     assets/ncsnpp_fmnist16/ema.safetensors assets/fashion16_test.npy [eps] [reps]
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use scoreprior_core::dpi::{Energy, PriorEnergy};
use scoreprior_core::prior_dsm::{DsmBoundPrior, TimeDensity};

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let common::DsmArgs { model, sde, d, images: test, images_path, eps, reps } =
        common::dsm_args("usage: dsm_variance <checkpoint> <test.npy> [eps] [reps]", 32)?;
    let n = 8;
    if test.data.len() < n * d {
        return Err(format!("{images_path}: fewer than {n} images of {d} values").into());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // Test images plus σ = 0.1 noise: off the data manifold, as DPI samples are.
    let x: Vec<f64> = test.data[..n * d].iter().map(|v| v + 0.1 * rng.sample::<f64, _>(StandardNormal)).collect();
    println!("eps {eps}, {n} images, {reps} repetitions");
    println!("{:<34} {:>8} {:>12} {:>14}", "estimator", "passes", "rel. var", "var x passes");
    let settings: Vec<(&str, usize, bool, bool, TimeDensity)> = vec![
        ("1 draw, g2/sigma2 (reference)", 1, false, false, TimeDensity::G2OverSigma2),
        ("1 draw, log-uniform", 1, false, false, TimeDensity::LogUniform),
        ("1 draw, uniform", 1, false, false, TimeDensity::Uniform),
        ("2 draws, g2, stratified", 2, true, false, TimeDensity::G2OverSigma2),
        ("2 draws, g2, antithetic", 2, false, true, TimeDensity::G2OverSigma2),
        ("4 draws, g2, independent", 4, false, false, TimeDensity::G2OverSigma2),
        ("4 draws, g2, stratified", 4, true, false, TimeDensity::G2OverSigma2),
        ("4 draws, g2, strat.+antithetic", 4, true, true, TimeDensity::G2OverSigma2),
        ("4 draws, log-uniform, stratified", 4, true, false, TimeDensity::LogUniform),
        ("4 draws, log-unif., strat.+anti.", 4, true, true, TimeDensity::LogUniform),
    ];
    for (name, s, strat, anti, dens) in settings {
        let p = DsmBoundPrior::new(model.clone(), sde, eps, s)?
            .with_density(dens)
            .with_stratified(strat)
            .with_antithetic(anti)?;
        let mut gs = Vec::with_capacity(reps);
        for r in 0..reps {
            let (mut e, mut g) = (vec![0.0; n], vec![0.0; n * d]);
            PriorEnergy::new(&p).energy_and_grad(&x, &mut ChaCha8Rng::seed_from_u64(100 + r as u64), &mut e, &mut g)?;
            gs.push(g);
        }
        let mut rel = 0.0;
        for i in 0..n {
            let mean: Vec<f64> = (0..d).map(|k| gs.iter().map(|g| g[i * d + k]).sum::<f64>() / reps as f64).collect();
            let m2: f64 = mean.iter().map(|v| v * v).sum();
            let var: f64 =
                gs.iter().map(|g| (0..d).map(|k| (g[i * d + k] - mean[k]).powi(2)).sum::<f64>()).sum::<f64>()
                    / (reps - 1) as f64;
            rel += var / m2 / n as f64;
        }
        println!("{name:<34} {:>8} {rel:>12.3} {:>14.3}", s + 1, rel * (s + 1) as f64);
    }
    Ok(())
}
