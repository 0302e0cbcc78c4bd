//! A posterior whose answer is known, at EHT scale: the complex visibilities of the EHT 2017
//! coverage of a 32×32 image over 160 µas (thermal noise) under a squared-exponential Gaussian
//! prior at about the array's resolution. The posterior is Gaussian in closed form
//! (`denoise::linear_gaussian_posterior`), and DPI with `eht-study`'s flow and optimiser (16
//! flows, batch 16, lr 1e-3, MAP warm start, Laplace start) must reproduce its per-pixel mean
//! and standard deviation. The flow starts from a Laplace factor scaled by 0.6 (its spread
//! 40 % short everywhere), so the test holds only if training moves the spread to the right
//! one; the isotropic start of old is shown to fail on the same problem.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior::core::forward::interferometry::{Array, Interferometer, Observation, TestSource};
use scoreprior::core::forward::ForwardModel;
use scoreprior::core::score::gaussian::squared_exponential_covariance;
use scoreprior::core::score::Gaussian;
use scoreprior::core::sde::{AnySde, VpSde};
use scoreprior::experiment::{Experiment, ExperimentResult, LaplaceStart, MapWarmStart, PosteriorSettings, Prior};

const N: usize = 32;
const FOV: f64 = 160.0;

fn run(laplace: bool, init_scale: f64, steps: usize) -> ExperimentResult {
    let eht = Interferometer::new(Array::eht2017().observe(&Observation::sgr_a_star()).unwrap(), N, FOV).unwrap();
    let model = eht.visibility_model().unwrap();
    // ℓ = 2 px = 10 µas: a correlation FWHM of 24 µas, the array's nominal resolution.
    let cov = squared_exponential_covariance(N, N, 2.0, 0.1, 1e-4).unwrap();
    let blob = TestSource::Blobs(vec![(0.0, 0.0, 60.0, 1.0)]).render(N, FOV, 1.0).unwrap();
    let peak = blob.iter().cloned().fold(0.0, f64::max);
    let mean: Vec<f64> = blob.iter().map(|v| 0.3 * v / peak).collect();
    let ring = TestSource::Ring { radius: 22.0, width: 4.0 }.render(N, FOV, 1.0).unwrap();
    let peak = ring.iter().cloned().fold(0.0, f64::max);
    let truth: Vec<f64> = ring.iter().map(|v| v / peak).collect();
    let y = model.simulate(&truth, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let g = Gaussian::new(mean, &cov, AnySde::Vp(VpSde::default())).unwrap();
    Experiment::builder(model)
        .truth_with_measurement(truth, y, N, N)
        .prior(Prior::gaussian(g))
        .posterior(PosteriorSettings {
            flows: 16,
            init_scale,
            map_warm_start: Some(MapWarmStart { iterations: 300, rounds: 1, ..Default::default() }),
            laplace: laplace.then(LaplaceStart::default),
            ..Default::default()
        })
        .steps(steps)
        .batch(16)
        .lr(1e-3)
        .samples(512)
        .seed(0)
        .outlier_threshold(1e9)
        .continuation(None)
        .build()
        .unwrap()
        .run()
        .unwrap()
}

#[test]
fn dpi_reproduces_the_closed_form_posterior_of_eht_visibilities() {
    let t0 = std::time::Instant::now();
    let res = run(true, 0.6, 400);
    let cf = res.report.closed_form.expect("a Gaussian prior with a linear model has a closed form");
    let (ex_mean, ex_std) = res.exact.as_ref().unwrap();
    let d = N * N;
    let ratio = res.summary.std.iter().zip(ex_std).map(|(a, b)| a / b).sum::<f64>() / d as f64;
    let coverage = res.report.coverage_2std.unwrap();
    let exact_coverage = res
        .x_true
        .as_ref()
        .unwrap()
        .iter()
        .zip(ex_mean)
        .zip(ex_std)
        .filter(|((x, m), s)| (*x - *m).abs() <= 2.0 * *s)
        .count() as f64
        / d as f64;
    eprintln!(
        "mean error {:.3} posterior std (rms), std relative error {:.3}, std ratio {ratio:.3}, exact mean std {:.4}; \
         coverage {coverage:.3} (exact posterior {exact_coverage:.3}); {:.0} s",
        cf.mean_err_in_std,
        cf.std_rel_err,
        cf.exact_mean_std,
        t0.elapsed().as_secs_f64()
    );
    // Measured when written: mean error 0.06 std, std relative error 0.03, ratio 0.99.
    assert!(cf.mean_err_in_std < 0.1, "{cf:?}");
    assert!(cf.std_rel_err < 0.1, "{cf:?}");
    assert!((ratio - 1.0).abs() < 0.05, "std ratio {ratio}");
    assert!((coverage - exact_coverage).abs() < 0.05, "coverage {coverage} vs the exact posterior's {exact_coverage}");
}

#[test]
fn the_isotropic_start_collapses_on_the_same_problem() {
    // The start before the Laplace start existed (eht-study's 0.05 around the MAP): the flow
    // must shrink the well-measured Fourier directions by orders of magnitude, and reverse KL
    // pulls every pixel in with them.
    let res = run(false, 0.05, 200);
    let cf = res.report.closed_form.unwrap();
    let (_, ex_std) = res.exact.as_ref().unwrap();
    let ratio = res.summary.std.iter().zip(ex_std).map(|(a, b)| a / b).sum::<f64>() / (N * N) as f64;
    eprintln!("isotropic start: std ratio {ratio:.3}, {cf:?}");
    // Measured when written: the data term is still ~1e8 nats above its optimum after 200
    // steps (the flow is broad along the measured directions, narrow along the rest).
    // Measured: std relative error 0.57 (the Laplace start: 0.03).
    assert!(cf.std_rel_err > 0.4, "{cf:?}");
}
