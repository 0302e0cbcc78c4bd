//! Evidence for DPI with the exact score-based prior on 2-D problems with known posteriors.
//!
//! Prior: the analytic score of a Gaussian or of the reference mixture (±0.5, std 0.1)
//! pushed through the probability-flow ODE (exact trace, adjoint gradient) — i.e. the same
//! `ScorePrior` a network would use. Likelihood: `y = aᵀx + n`, `a = [−2, 1.7]`, `σ = 0.2`.
//! Truth: the closed-form Gaussian posterior, or the mixture posterior on a grid. A RealNVP
//! fitted by DPI must match it: KL(q‖p) on the grid, mean and covariance errors.

use rand::RngCore;
use scoreprior_core::dpi::{draw_samples, run_dpi, Annealing, DpiConfig, Energy, PriorEnergy};
use scoreprior_core::prior::{ScorePrior, ScorePriorConfig};
use scoreprior_core::score::{Gaussian, GaussianMixture};
use scoreprior_core::sde::{AnySde, VpSde};
use scoreprior_core::Result;
use scoreprior_models::realnvp::{RealNvp, RealNvpConfig};

const A: [f64; 2] = [-2.0, 1.7];
const SIGMA: f64 = 0.2;
const Y: f64 = 0.3;

/// `−log p(y|x) = (y − aᵀx)² / 2σ²`.
struct LinearLikelihood;

impl Energy for LinearLikelihood {
    fn dim(&self) -> usize {
        2
    }
    fn energy_and_grad(&self, x: &[f64], _: &mut dyn RngCore, e: &mut [f64], g: &mut [f64]) -> Result<()> {
        for i in 0..e.len() {
            let r = Y - A[0] * x[2 * i] - A[1] * x[2 * i + 1];
            e[i] = 0.5 * r * r / (SIGMA * SIGMA);
            g[2 * i] = -r * A[0] / (SIGMA * SIGMA);
            g[2 * i + 1] = -r * A[1] / (SIGMA * SIGMA);
        }
        Ok(())
    }
}

fn log_lik(x: [f64; 2]) -> f64 {
    let r = Y - A[0] * x[0] - A[1] * x[1];
    -0.5 * r * r / (SIGMA * SIGMA)
}

struct Fit {
    kl: f64,
    mean_err: f64,
    cov_err: f64,
    seconds: f64,
    true_mean: [f64; 2],
    true_cov: [f64; 3],
    /// The flow's samples (row-major `(n, 2)`) the moments come from.
    q_samples: Vec<f64>,
    /// Grid points and normalised log-posterior on them.
    grid: (Vec<f64>, Vec<f64>),
}

/// Fits a flow by DPI and compares it with the unnormalised log-posterior on a grid over `box_`.
fn fit(
    prior: &dyn Energy,
    log_post: &dyn Fn([f64; 2]) -> f64,
    box_: [f64; 4],
    cfg: DpiConfig,
    flows: usize,
    init_std: f64,
) -> Fit {
    let t = std::time::Instant::now();
    let steps = cfg.steps;
    let mut rc = RealNvpConfig::new(2).with_flows(flows).with_hidden(64).with_seed(1);
    rc.init_std = init_std;
    let mut flow = RealNvp::new(rc).unwrap();
    let hist = run_dpi(&cfg, &mut flow, Some(&LinearLikelihood), Some(prior), &mut |_| {}).unwrap();
    let seconds = t.elapsed().as_secs_f64();
    assert_eq!(hist.records.len(), steps);

    // Grid quadrature of both densities, each normalised on the grid.
    let m = 160;
    let (x0, x1, y0, y1) = (box_[0], box_[1], box_[2], box_[3]);
    let (hx, hy) = ((x1 - x0) / m as f64, (y1 - y0) / m as f64);
    let pts: Vec<f64> =
        (0..m * m).flat_map(|k| [x0 + (k % m) as f64 * hx + 0.5 * hx, y0 + (k / m) as f64 * hy + 0.5 * hy]).collect();
    let (lq, _) = flow.log_prob_and_grad(&pts, m * m).unwrap();
    let lp: Vec<f64> = pts.chunks(2).map(|p| log_post([p[0], p[1]])).collect();
    let norm = |l: &[f64]| {
        let mx = l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = l.iter().map(|v| (v - mx).exp()).sum();
        l.iter().map(|v| v - mx - z.ln()).collect::<Vec<f64>>()
    };
    let (lq, lp) = (norm(&lq), norm(&lp));
    let kl: f64 = lq.iter().zip(&lp).map(|(a, b)| a.exp() * (a - b)).sum();
    let moments = |w: &[f64]| {
        let (mut m0, mut m1) = (0.0, 0.0);
        for (k, l) in w.iter().enumerate() {
            m0 += l.exp() * pts[2 * k];
            m1 += l.exp() * pts[2 * k + 1];
        }
        let (mut c00, mut c01, mut c11) = (0.0, 0.0, 0.0);
        for (k, l) in w.iter().enumerate() {
            let (a, b) = (pts[2 * k] - m0, pts[2 * k + 1] - m1);
            c00 += l.exp() * a * a;
            c01 += l.exp() * a * b;
            c11 += l.exp() * b * b;
        }
        ([m0, m1], [c00, c01, c11])
    };
    let (true_mean, true_cov) = moments(&lp);
    // The flow's moments from its own samples (what a user gets), not from the grid.
    let s = draw_samples(&mut flow, 4000, 1000, 9).unwrap();
    let mut qm = [0.0; 2];
    for p in s.x.chunks(2) {
        qm[0] += p[0] / s.n as f64;
        qm[1] += p[1] / s.n as f64;
    }
    let mut qc = [0.0; 3];
    for p in s.x.chunks(2) {
        let (a, b) = (p[0] - qm[0], p[1] - qm[1]);
        qc[0] += a * a / s.n as f64;
        qc[1] += a * b / s.n as f64;
        qc[2] += b * b / s.n as f64;
    }
    let mean_err = ((qm[0] - true_mean[0]).powi(2) + (qm[1] - true_mean[1]).powi(2)).sqrt();
    let cn = (true_cov[0].powi(2) + 2.0 * true_cov[1].powi(2) + true_cov[2].powi(2)).sqrt();
    let cov_err = ((qc[0] - true_cov[0]).powi(2) + 2.0 * (qc[1] - true_cov[1]).powi(2) + (qc[2] - true_cov[2]).powi(2))
        .sqrt()
        / cn;
    Fit { kl, mean_err, cov_err, seconds, true_mean, true_cov, q_samples: s.x, grid: (pts, lp) }
}

/// The optimisation both 2-D cases share.
fn config(steps: usize, lr: f64) -> DpiConfig {
    DpiConfig {
        steps,
        batch: 64,
        lr,
        warmup: 50,
        lr_final_fraction: 0.1,
        grad_clip: Some(1.0),
        seed: 5,
        ..Default::default()
    }
}

/// The optimisation budget of the 2-D Gaussian case (release, as CI runs it: 23 s there).
fn steps() -> usize {
    1500
}

#[test]
fn dpi_recovers_gaussian_posterior_through_the_ode_prior() {
    let sde = AnySde::Vp(VpSde::default());
    let mean = vec![0.2, -0.1];
    let cov = [0.09, 0.03, 0.03, 0.04];
    let g = Gaussian::new(mean.clone(), &cov, sde).unwrap();
    let prior = ScorePrior::new(g.clone(), ScorePriorConfig::default().with_exact_trace().with_t0(1e-5))
        .unwrap()
        .with_exact_terminal(g.clone());
    let energy = PriorEnergy::new(prior);
    let inv = {
        let det = cov[0] * cov[3] - cov[1] * cov[2];
        [cov[3] / det, -cov[1] / det, -cov[2] / det, cov[0] / det]
    };
    let log_post = |x: [f64; 2]| {
        let (a, b) = (x[0] - mean[0], x[1] - mean[1]);
        -0.5 * (inv[0] * a * a + 2.0 * inv[1] * a * b + inv[3] * b * b) + log_lik(x)
    };
    // Closed form: Σ_post = (Σ⁻¹ + aaᵀ/σ²)⁻¹, μ_post = Σ_post (Σ⁻¹μ + a y/σ²).
    let s2 = SIGMA * SIGMA;
    let p = [inv[0] + A[0] * A[0] / s2, inv[1] + A[0] * A[1] / s2, inv[3] + A[1] * A[1] / s2];
    let det = p[0] * p[2] - p[1] * p[1];
    let c = [p[2] / det, -p[1] / det, p[0] / det];
    let r = [inv[0] * mean[0] + inv[1] * mean[1] + A[0] * Y / s2, inv[1] * mean[0] + inv[3] * mean[1] + A[1] * Y / s2];
    let mu = [c[0] * r[0] + c[1] * r[1], c[1] * r[0] + c[2] * r[1]];
    let box_ =
        [mu[0] - 7.0 * c[0].sqrt(), mu[0] + 7.0 * c[0].sqrt(), mu[1] - 7.0 * c[2].sqrt(), mu[1] + 7.0 * c[2].sqrt()];
    let f = fit(&energy, &log_post, box_, config(steps(), 2e-3), 6, 0.05);
    // The grid truth agrees with the closed form (checks the quadrature itself).
    assert!((f.true_mean[0] - mu[0]).abs() < 1e-4 && (f.true_mean[1] - mu[1]).abs() < 1e-4);
    assert!((f.true_cov[0] - c[0]).abs() < 1e-4 && (f.true_cov[1] - c[1]).abs() < 1e-4);
    eprintln!(
        "gaussian: KL(q||p) = {:.4}, |mean err| = {:.4} (post. std {:.3}), rel. cov err = {:.3}, {:.1} s",
        f.kl,
        f.mean_err,
        c[2].sqrt(),
        f.cov_err,
        f.seconds
    );
    // Measured (release): KL 0.0041, mean error 0.0151 (0.08 posterior std), covariance error
    // 2.5 %; each bound is about twice that.
    assert!(f.kl < 0.01, "KL {}", f.kl);
    assert!(f.mean_err < 0.032, "mean error {}", f.mean_err);
    assert!(f.cov_err < 0.05, "covariance error {}", f.cov_err);
}

#[test]
fn dpi_recovers_mixture_posterior_through_the_ode_prior() {
    let sde = AnySde::Vp(VpSde::default());
    let mix = GaussianMixture::new(&[0.5, 0.5], &[-0.5, -0.5, 0.5, 0.5], &[0.1, 0.1], sde).unwrap();
    let prior = ScorePrior::new(mix.clone(), ScorePriorConfig::default().with_exact_trace().with_t0(1e-5))
        .unwrap()
        .with_exact_terminal(mix.clone());
    let energy = PriorEnergy::new(prior);
    let log_post = |x: [f64; 2]| {
        let mut out = [0.0];
        mix.log_prob(&x, &mut out).unwrap();
        out[0] + log_lik(x)
    };
    // Reverse KL is mode-seeking and its reparameterisation gradient moves mass between
    // separated modes only through the rare samples in the gap, so the plain optimisation
    // keeps one mode (KL 0.37, the heavier mode alone being 0.36). Tempering (β from 0.01,
    // geometric, over the first half) lets the flow cover both modes while the target is
    // broad; the score-function term (weight 100, so that it dominates the per-sample noise
    // of the reparameterised one) sets their masses. Hidden weights at std 0.3 rather than
    // 0.05 let the couplings form the steep transition between the modes within the budget.
    let steps = 3000;
    let cfg = DpiConfig {
        tempering: Annealing::Geometric { start: 0.01, steps: steps / 2 },
        score_function_weight: 100.0,
        ..config(steps, 1e-3)
    };
    let f = fit(&energy, &log_post, [-1.0, 1.0, -1.0, 1.0], cfg, 6, 0.3);
    // The posterior has two modes, split by the line x0 + x1 = 0; their masses and means.
    let (pts, lp) = &f.grid;
    let mut mass = [0.0; 2];
    let mut mean = [[0.0; 2]; 2];
    for (k, l) in lp.iter().enumerate() {
        let side = usize::from(pts[2 * k] + pts[2 * k + 1] > 0.0);
        mass[side] += l.exp();
        mean[side][0] += l.exp() * pts[2 * k];
        mean[side][1] += l.exp() * pts[2 * k + 1];
    }
    for s in 0..2 {
        mean[s] = [mean[s][0] / mass[s], mean[s][1] / mass[s]];
    }
    // The flow's masses: the share of its samples on each side.
    let n_q = f.q_samples.len() / 2;
    let q1 = f.q_samples.chunks(2).filter(|p| p[0] + p[1] > 0.0).count() as f64 / n_q as f64;
    let q_mass = [1.0 - q1, q1];
    // Samples in the gap |x0 + x1| < 0.4, where the posterior has almost no mass.
    let gap_q = f.q_samples.chunks(2).filter(|p| (p[0] + p[1]).abs() < 0.4).count() as f64 / n_q as f64;
    eprintln!(
        "mixture: KL(q||p) = {:.4}, |mean err| = {:.4}, rel. cov err = {:.3}, {:.1} s; mode masses under q \
         {:.3}/{:.3} vs grid truth {:.3}/{:.3}; mode means {:?}, {:?}; q in the gap {:.4}",
        f.kl, f.mean_err, f.cov_err, f.seconds, q_mass[0], q_mass[1], mass[0], mass[1], mean[0], mean[1], gap_q
    );
    // Both modes, with their masses: a flow on one mode alone has KL ≥ −ln(0.70) = 0.36.
    // Measured (release, seed 5, adjoint on the forward grid): KL 0.052, masses 0.695/0.305
    // vs 0.696/0.304, mean error 0.0046, covariance error 1.5 %. The KL of the final flow
    // varies from run to run with any change of the prior's gradient at solver accuracy: over
    // seeds 5–8 and both adjoint step rules it was 0.0096–0.052 (median 0.014; the adaptive
    // adjoint gave 0.0106 at seed 5), mass differences ≤ 0.011, mean errors ≤ 0.015,
    // covariance errors ≤ 3.0 %. The KL bound sits above that spread and far below one
    // mode's 0.36; the masses come from 4000 samples (standard error 0.007), so their bound
    // is 2 s.e.
    assert!(f.kl < 0.065, "KL {}", f.kl);
    for s in 0..2 {
        assert!((q_mass[s] - mass[s]).abs() < 0.015, "mode {s}: mass under q {} vs {}", q_mass[s], mass[s]);
    }
    assert!(f.mean_err < 0.02, "mean error {}", f.mean_err);
    assert!(f.cov_err < 0.03, "covariance error {}", f.cov_err);
}

/// 16×16 denoising (σ = 0.2) of a Fashion-MNIST test image under the shipped Gaussian prior
/// (closed form, so the test stays fast; the PF-ODE prior's own accuracy is tested in core,
/// and the same problem with the PF-ODE prior is the command-reproduced row of `docs/src/results/dpi-evidence.md`):
/// the flow's mean and per-pixel std must match the closed-form posterior
/// `Σ_post = V diag(λσ²/(λ+σ²)) Vᵀ`, `μ_post = μ + V diag(λ/(λ+σ²)) Vᵀ (y − μ)`.
#[test]
fn dpi_matches_closed_form_gaussian_denoising_posterior_at_16x16() {
    use rand::SeedableRng;
    use scoreprior_core::dpi::{summarize_samples, LikelihoodEnergy, PriorEnergy};
    use scoreprior_core::forward::{ForwardModel, Model};
    use scoreprior_core::io::read_npy;
    use scoreprior_core::prior::GaussianPrior;

    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let mean = read_npy(assets.join("gaussian16/mean.npy")).unwrap().data;
    let cov = read_npy(assets.join("gaussian16/cov.npy")).unwrap().data;
    let truth = read_npy(assets.join("fashion16_test.npy")).unwrap().data[..256].to_vec();
    let g = Gaussian::new(mean.clone(), &cov, AnySde::Vp(VpSde::default())).unwrap();
    let sigma = 0.2;
    let model = Model::denoising([1, 16, 16], sigma).unwrap();
    let y = model.simulate(&truth, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0)).unwrap();

    let (lam, v) = (g.eigenvalues().to_vec(), g.eigenvectors().clone());
    let d = 256;
    let proj: Vec<f64> = (0..d).map(|j| (0..d).map(|i| v[(i, j)] * (y[i] - mean[i])).sum::<f64>()).collect();
    let post_mean: Vec<f64> = (0..d)
        .map(|i| mean[i] + (0..d).map(|j| v[(i, j)] * lam[j] / (lam[j] + sigma * sigma) * proj[j]).sum::<f64>())
        .collect();
    let post_std: Vec<f64> = (0..d)
        .map(|i| {
            (0..d).map(|j| v[(i, j)].powi(2) * lam[j] * sigma * sigma / (lam[j] + sigma * sigma)).sum::<f64>().sqrt()
        })
        .collect();

    let steps = 400;
    let mut flow = RealNvp::new(RealNvpConfig::new(d).with_flows(8).with_seed(3)).unwrap();
    flow.set_initial_affine(mean.iter().sum::<f64>() / d as f64, 0.2).unwrap();
    let cfg =
        DpiConfig { steps, batch: 64, lr: 1e-3, warmup: 50, lr_final_fraction: 0.1, seed: 1, ..Default::default() };
    let data = LikelihoodEnergy::new(model, y).unwrap();
    let prior = PriorEnergy::new(GaussianPrior::from_gaussian(g));
    let t = std::time::Instant::now();
    run_dpi(&cfg, &mut flow, Some(&data), Some(&prior), &mut |_| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let s = draw_samples(&mut flow, 2048, 512, 4).unwrap();
    let sum = summarize_samples(&s.x, d, 2.0).unwrap();
    let rmse = (sum.mean.iter().zip(&post_mean).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / d as f64).sqrt();
    let rel = sum.std.iter().zip(&post_std).map(|(a, b)| (a - b).abs() / b).sum::<f64>() / d as f64;
    let avg_std = post_std.iter().sum::<f64>() / d as f64;
    eprintln!("16x16 closed-form Gaussian: mean RMSE {rmse:.4} (posterior std {avg_std:.3}), std rel. err {rel:.3}, {steps} steps in {secs:.1} s");
    // Measured (release): RMSE 0.0047, std relative error 6.2 % (28 s); bounds about twice.
    assert!(rmse < 0.0095, "mean RMSE {rmse}");
    assert!(rel < 0.12, "std relative error {rel}");
    assert_eq!(sum.n_dropped, 0);
}
