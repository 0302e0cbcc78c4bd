//! DPI costs at 16×16 (D = 256), batch 64: one full optimisation step (flow sample with
//! tape → prior and data gradients → backprop through the flow → clipped Adam update) for
//! each prior mode, and drawing 128 posterior samples from the flow. The prior is the
//! shipped Fashion-MNIST Gaussian (`assets/gaussian16`), in closed form, as the exact
//! score-based prior (its analytic score through the PF-ODE with 16 Hutchinson probes and the
//! adjoint), its denoising-score-matching bound (the cheap surrogate), and TV; then the same
//! step under the shipped NCSN++ prior (surrogate and exact).

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use rand::SeedableRng;
use scoreprior::core::divergence::ProbeNoise;
use scoreprior::core::dpi::{draw_samples, run_dpi, DpiConfig, Energy, LikelihoodEnergy, PriorEnergy};
use scoreprior::core::forward::{ForwardModel, Model};
use scoreprior::core::io::read_npy;
use scoreprior::core::prior::{GaussianPrior, ScorePrior, ScorePriorConfig};
use scoreprior::core::prior_dsm::{DsmBoundPrior, TimeDensity};
use scoreprior::core::prior_tv::TotalVariation;
use scoreprior::core::score::Gaussian;
use scoreprior::core::sde::{AnySde, VpSde};
use scoreprior::models::realnvp::{RealNvp, RealNvpConfig};
use scoreprior::models::score::NcsnppScore;

fn gaussian() -> Gaussian {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/gaussian16");
    let mean = read_npy(root.join("mean.npy")).expect("assets/gaussian16/mean.npy").data;
    let cov = read_npy(root.join("cov.npy")).expect("assets/gaussian16/cov.npy").data;
    Gaussian::new(mean, &cov, AnySde::Vp(VpSde::default())).expect("SPD covariance")
}

fn bench(c: &mut Criterion) {
    scoreprior::models::alloc::retain_freed_memory();
    let g = gaussian();
    let model = Model::denoising([1, 16, 16], 0.2).unwrap();
    let x: Vec<f64> = g.mean().to_vec();
    let y = model.simulate(&x, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();
    let data = LikelihoodEnergy::new(model, y).unwrap();
    let priors: Vec<(&str, Box<dyn Energy>)> = vec![
        ("gaussian_closed_form", Box::new(PriorEnergy::new(GaussianPrior::from_gaussian(g.clone())))),
        (
            "score_ode_hutchinson16",
            Box::new(PriorEnergy::new(ScorePrior::new(g.clone(), ScorePriorConfig::default()).unwrap())),
        ),
        (
            "score_dsm_bound",
            Box::new(PriorEnergy::new(
                DsmBoundPrior::new(std::sync::Arc::new(g.clone()), AnySde::Vp(VpSde::default()), 1e-3, 1).unwrap(),
            )),
        ),
        ("tv", Box::new(PriorEnergy::new(TotalVariation::new(16, 16, 1.0, 1e-3).unwrap()))),
    ];
    let mut group = c.benchmark_group("dpi_step_16x16_batch64");
    group.sample_size(10);
    for (name, prior) in &priors {
        let mut flow = RealNvp::new(RealNvpConfig::new(256).with_flows(16)).unwrap();
        flow.set_initial_affine(0.3, 0.2).unwrap();
        let cfg = DpiConfig { steps: 1, batch: 64, lr: 1e-4, ..Default::default() };
        group.bench_function(*name, |b| {
            b.iter(|| run_dpi(&cfg, &mut flow, Some(&data), Some(prior.as_ref()), &mut |_| {}).unwrap())
        });
    }
    group.finish();
    // The shipped NCSN++ prior: one surrogate step at the old main job's estimator (batch 64,
    // one g²/σ² draw) and at the main job's (batch 32, 2 stratified antithetic log-uniform
    // draws), and one exact PF-ODE step (batch 8, 2 Hutchinson probes, adjoint).
    let ckpt = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/ncsnpp_fmnist16/ema.safetensors");
    let net = std::sync::Arc::new(NcsnppScore::load(&ckpt).expect("shipped checkpoint"));
    let sde = AnySde::Vp(*net.sde());
    let nn_priors: Vec<(&str, usize, Box<dyn Energy>)> = vec![
        (
            "surrogate_1draw_g2_batch64",
            64,
            Box::new(PriorEnergy::new(DsmBoundPrior::new(net.clone(), sde, 1e-3, 1).unwrap())),
        ),
        (
            "surrogate_main_job_batch32",
            32,
            Box::new(PriorEnergy::new(
                DsmBoundPrior::new(net.clone(), sde, 1e-3, 2)
                    .unwrap()
                    .with_density(TimeDensity::LogUniform)
                    .with_stratified(true)
                    .with_antithetic(true)
                    .unwrap(),
            )),
        ),
        (
            "exact_pf_ode_hutchinson2_batch8",
            8,
            Box::new(PriorEnergy::new(
                ScorePrior::from_arc(
                    net.clone(),
                    ScorePriorConfig::default().with_sde(sde).with_hutchinson(2, ProbeNoise::Rademacher, 0),
                )
                .unwrap(),
            )),
        ),
    ];
    let mut group = c.benchmark_group("dpi_step_ncsnpp_16x16");
    group.sample_size(10);
    for (name, batch, prior) in &nn_priors {
        let mut flow = RealNvp::new(RealNvpConfig::new(256).with_flows(16)).unwrap();
        flow.set_initial_affine(0.3, 0.2).unwrap();
        let cfg = DpiConfig { steps: 1, batch: *batch, lr: 1e-4, ..Default::default() };
        group.bench_function(*name, |b| {
            b.iter(|| run_dpi(&cfg, &mut flow, Some(&data), Some(prior.as_ref()), &mut |_| {}).unwrap())
        });
    }
    group.finish();

    let mut flow = RealNvp::new(RealNvpConfig::new(256).with_flows(16)).unwrap();
    flow.set_initial_affine(0.3, 0.2).unwrap();
    let mut group = c.benchmark_group("dpi_sampling_16x16");
    group.sample_size(10);
    group.bench_function("128_samples", |b| b.iter(|| draw_samples(&mut flow, 128, 128, 1).unwrap()));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
