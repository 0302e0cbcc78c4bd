//! A custom DPI experiment in a page: deblur a Fashion-MNIST test image with the exact
//! score-based prior of the shipped Gaussian, using an operator and an ODE solver declared
//! here, a RealNVP posterior and Adam.
//!
//! `cargo run --release --example dpi_custom` (about a minute on 2 cores).

use scoreprior::prelude::*;

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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let truth = read_npy(assets.join("fashion16_test.npy"))?.data[..256].to_vec();

    // Prior: the analytic score of the fitted Gaussian through the PF-ODE (8 probes, adjoint).
    let mean = read_npy(assets.join("gaussian16/mean.npy"))?.data;
    let cov = read_npy(assets.join("gaussian16/cov.npy"))?.data;
    let gaussian = Gaussian::new(mean, &cov, AnySde::Vp(VpSde::default()))?;
    let ode = ScorePriorConfig::default().with_solver(&MyBs32).with_adjoint_solver(&MyBs32).with_hutchinson(
        8,
        ProbeNoise::Rademacher,
        0,
    );

    let result = Experiment::builder(Blur)
        .truth(truth, 16, 16)
        .seed(1)
        .prior(Prior::gaussian_ode_with(gaussian, ode))
        .posterior(PosteriorSettings { flows: 8, init_loc: Some(0.3), ..Default::default() })
        .configure(|c| {
            (c.steps, c.batch, c.warmup) = (300, 64, 50);
        })
        .continuation(None)
        .build()?
        .run_observed(&mut |r| {
            if r.step % 50 == 0 {
                println!(
                    "step {:4}: loss {:9.2} (data {:8.2}, prior {:8.2}, log q {:8.2})",
                    r.step, r.total, r.data, r.prior, r.log_q
                );
            }
        })?;
    result.save("out/dpi_custom")?;
    print!("{}", result.summary_table());
    Ok(())
}
