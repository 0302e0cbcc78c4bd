//! A custom DPI experiment in a page: deblur a Fashion-MNIST test image with the exact
//! score-based prior of the shipped Gaussian, using an operator and an ODE solver declared
//! here, a RealNVP posterior and Adam.
//!
//! `cargo run --release --example dpi_custom` (about a minute on 2 cores).

use std::error::Error;
use std::path::Path;

use rand::SeedableRng;
use scoreprior::core::divergence::ProbeNoise;
use scoreprior::core::dpi::{draw_samples, run_dpi, summarize_samples, DpiConfig, LikelihoodEnergy, ScorePriorEnergy};
use scoreprior::core::forward::{forward_model, ForwardModel};
use scoreprior::core::io::read_npy;
use scoreprior::core::metrics::image_metrics;
use scoreprior::core::prior::{ScorePrior, ScorePriorConfig};
use scoreprior::core::score::Gaussian;
use scoreprior::core::sde::{AnySde, VpSde};
use scoreprior::models::realnvp::{RealNvp, RealNvpConfig};
use scoreprior::prelude::butcher_tableau;

// The measurement: a 5×5 Gaussian blur and 5 % noise, shapes checked at compile time.
#[forward_model(input = [1, 16, 16], ops = [gaussian_blur(sigma = 1.0, size = 5)], noise = gaussian(sigma = 0.05))]
struct Blur;

// Our own solver for the prior's probability-flow ODE: Bogacki–Shampine 3(2), whose order
// conditions the macro proves at compile time; its embedded pair drives the step size.
#[butcher_tableau(
    name = "MyBs32",
    order = 3,
    embedded_order = 2,
    c = [0, 1/2, 3/4, 1],
    a = [[], [1/2], [0, 3/4], [2/9, 1/3, 4/9]],
    b = [2/9, 1/3, 4/9, 0],
    b_hat = [7/24, 1/4, 1/3, 1/8],
)]
struct MyBs32;

fn main() -> Result<(), Box<dyn Error>> {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let truth: Vec<f64> = read_npy(assets.join("fashion16_test.npy"))?.data[..256].to_vec();
    let y = Blur.simulate(&truth, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1))?;

    // Prior: the analytic score of the fitted Gaussian through the PF-ODE (8 probes, adjoint).
    let mean = read_npy(assets.join("gaussian16/mean.npy"))?.data;
    let cov = read_npy(assets.join("gaussian16/cov.npy"))?.data;
    let score = Gaussian::new(mean, &cov, AnySde::Vp(VpSde::default()))?;
    let cfg = ScorePriorConfig::default().with_solver(&MyBs32).with_adjoint_solver(&MyBs32).with_hutchinson(
        8,
        ProbeNoise::Rademacher,
        0,
    );
    let prior = ScorePriorEnergy::new(ScorePrior::new(score, cfg)?);

    // Posterior family and optimiser.
    let mut flow = RealNvp::new(RealNvpConfig::new(256).with_flows(8).with_seed(7))?;
    flow.set_initial_affine(0.3, 0.2)?;
    let dpi = DpiConfig { steps: 300, batch: 64, lr: 1e-3, warmup: 50, lr_final_fraction: 0.1, ..Default::default() };
    let data = LikelihoodEnergy::new(Blur, y)?;
    run_dpi(&dpi, &mut flow, Some(&data), Some(&prior), &mut |r| {
        if r.step % 50 == 0 {
            println!(
                "step {:4}: loss {:9.2} (data {:8.2}, prior {:8.2}, log q {:8.2})",
                r.step, r.total, r.data, r.prior, r.log_q
            );
        }
    })?;

    let samples = draw_samples(&mut flow, 128, 64, 2)?;
    let post = summarize_samples(&samples.x, 256, 2.0)?;
    let m = image_metrics(&post.mean, &truth, 16, 16, 1.0)?;
    println!(
        "posterior mean: PSNR {:.2} dB, SSIM {:.3}; mean pixel std {:.3}; {} of 128 samples kept",
        m.psnr,
        m.ssim,
        post.std.iter().sum::<f64>() / 256.0,
        post.n_kept
    );
    Ok(())
}
