//! The exact `∇x(εᵀJε)` of `NcsnppScore` (the tangent along `ε` of the VJP `Jᵀε`) against
//! central differences of VJPs in f64, on small networks perturbed off their initialisation
//! (biases ≠ 0, γ ≠ 1, β ≠ 0) so that the second derivatives are far from zero.

mod common;

use common::{adjoint_call_errors, rel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scoreprior_core::score::{second_order_by_differences, ScoreModel};
use scoreprior_core::sde::{Sde, VpSde};
use scoreprior_models::ncsnpp::{Embedding, NcsnppConfig, NcsnppNet, ProgressiveInput};
use scoreprior_models::score::{NcsnppScore, Precision, SecondOrder};

/// The tiny configuration on 8×8 images (attention at 4×4, residual input pyramid,
/// positional embedding), or a variant with the other branches: Fourier features, no
/// pyramid, centered inputs, no skip rescaling, attention at 8×8.
fn config(variant: bool) -> NcsnppConfig {
    let mut cfg = NcsnppConfig::tiny();
    cfg.init_scale = 1.0;
    if variant {
        cfg.embedding_type = Embedding::Fourier;
        cfg.progressive_input = ProgressiveInput::None;
        cfg.centered = true;
        cfg.skip_rescale = false;
        cfg.attn_resolutions = vec![8];
    }
    cfg
}

fn model(variant: bool, prec: Precision, method: SecondOrder) -> NcsnppScore {
    build(variant, prec, method, true)
}

/// The network at its initialisation (zero biases, γ = 1, β = 0) or perturbed off it.
fn build(variant: bool, prec: Precision, method: SecondOrder, perturb: bool) -> NcsnppScore {
    let net = NcsnppNet::new(config(variant), 1, 8, 8).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut w = net.init_params(&mut rng);
    // Biases, γ and β (the 1-D tensors) off 0 and 1; matrices 1.5× their initial scale.
    for (s, v) in net.specs().iter().zip(w.iter_mut()).filter(|_| perturb) {
        let one_d = s.shape.len() == 1;
        v.iter_mut().for_each(|x| *x = if one_d { *x + 0.3 * (rng.gen::<f32>() - 0.5) } else { 1.5 * *x });
    }
    NcsnppScore::new(net, &w, VpSde::default()).unwrap().with_precision(prec).with_second_order(method).with_chunk(2)
}

fn rms(a: &[f64]) -> f64 {
    (a.iter().map(|v| v * v).sum::<f64>() / a.len() as f64).sqrt()
}

/// Noisy images `α_t x + σ_t z` with `x` uniform in [0, 1], and Rademacher probes.
fn inputs(d: usize, n: usize, k: usize, t: f64, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let sde = VpSde::default();
    let (a, s) = (sde.marginal_mean_coef(t), sde.marginal_std(t));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * d).map(|_| a * rng.gen::<f64>() + s * rng.sample::<f64, _>(rand_distr::StandardNormal)).collect();
    let p = (0..k * d).map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 }).collect();
    (x, p)
}

/// Exact against the difference with h = 1e-3 and 1e-4 (relative 2-norm errors): what
/// separates them is the difference's O(h²) truncation, which falls 100× from one step to
/// the next (measured 2.0e-7 to 2.4e-6 at h = 1e-4, ratios 100.0), and the Richardson
/// extrapolation `(100·q(1e-4) − q(1e-3))/99`, which cancels it, agrees to 1e-11 to 1.0e-9.
#[test]
fn exact_second_order_matches_differences_f64() {
    for variant in [false, true] {
        let exact = model(variant, Precision::F64, SecondOrder::Exact);
        let diff = model(variant, Precision::F64, SecondOrder::Differences);
        let d = exact.dim();
        let (n, k) = (3, 2);
        for (i, t) in [0.01, 0.1, 0.5].into_iter().enumerate() {
            let (x, probes) = inputs(d, n, k, t, 20 + i as u64);
            let mut q = vec![0.0; n * d];
            exact.second_order(&x, t, &probes, &mut q).unwrap();
            let (mut q3, mut q4) = (vec![0.0; n * d], vec![0.0; n * d]);
            second_order_by_differences(&diff, &x, t, &probes, 1e-3, &mut q3).unwrap();
            second_order_by_differences(&diff, &x, t, &probes, 1e-4, &mut q4).unwrap();
            let mut s = vec![0.0; n * d];
            exact.score(&x, t, &mut s).unwrap();
            let (e3, e4) = (rel(&q, &q3), rel(&q, &q4));
            // Richardson: the h² term cancels in (100·q4 − q3)/99.
            let qr: Vec<f64> = q4.iter().zip(&q3).map(|(a, b)| (100.0 * a - b) / 99.0).collect();
            let er = rel(&q, &qr);
            eprintln!(
                "variant {variant}, t = {t}: rms score {:.2e}, rms second-order {:.2e}; \
                 exact vs difference h = 1e-3: {e3:.2e}, h = 1e-4: {e4:.2e}, extrapolated {er:.2e}",
                rms(&s),
                rms(&q)
            );
            assert!(rms(&q) > 1e-2 * rms(&s), "the second-order term is too small to test");
            assert!(e4 < 5e-6, "variant {variant}, t = {t}: {e4:.2e}");
            assert!((90.0..110.0).contains(&(e3 / e4)), "variant {variant}, t = {t}: not O(h²): {e3:.2e}, {e4:.2e}");
            assert!(er < 5e-9, "variant {variant}, t = {t}: extrapolated {er:.2e}");
        }
    }
}

/// The exact adjoint call (one pass with the cotangent `a` alongside the probes) gives the
/// score and `aᵀJ` of the taped network to round-off, and `aᵀJ + ∇x(εᵀJε)` equals
/// `score_and_vjp` plus `second_order`; bad shapes are errors.
#[test]
fn exact_adjoint_matches_separate_calls() {
    for variant in [false, true] {
        let m = model(variant, Precision::F64, SecondOrder::Exact);
        let d = m.dim();
        let (n, k, t) = (3, 2, 0.05);
        let (x, probes) = inputs(d, n, k, t, 30);
        let a: Vec<f64> = inputs(d, n, k, t, 31).0.iter().map(|v| v - 0.5).collect();
        let (es, ev) = adjoint_call_errors(&m, &x, t, &a, &probes);
        eprintln!("variant {variant}: score {es:.2e}, adjoint term {ev:.2e}");
        assert!(es < 1e-13 && ev < 1e-13, "variant {variant}: score {es:.2e}, adjoint term {ev:.2e}");
        let (mut s1, mut v1, mut q2) = (vec![0.0; n * d], vec![0.0; n * d], vec![0.0; n * d]);
        assert!(m.second_order(&x, t, &probes, &mut q2[..d]).is_err());
        let mut bad = probes.clone();
        bad[1] = f64::NAN;
        assert!(m.second_order(&x, t, &bad, &mut q2).is_err());
        let mut bad = a.clone();
        bad[2] = f64::INFINITY;
        assert!(m.score_and_adjoint_vjp(&x, t, &bad, &probes, &mut s1, &mut v1).is_err());
    }
}

/// The exact term in f32 against f64.
#[test]
fn exact_second_order_f32_matches_f64() {
    let m64 = model(false, Precision::F64, SecondOrder::Exact);
    let m32 = model(false, Precision::F32, SecondOrder::Exact);
    let d = m64.dim();
    let (n, k) = (2, 2);
    for (i, t) in [1e-3, 0.1, 1.0].into_iter().enumerate() {
        let (x, probes) = inputs(d, n, k, t, 40 + i as u64);
        let (mut q64, mut q32) = (vec![0.0; n * d], vec![0.0; n * d]);
        m64.second_order(&x, t, &probes, &mut q64).unwrap();
        m32.second_order(&x, t, &probes, &mut q32).unwrap();
        let e = rel(&q32, &q64);
        eprintln!("t = {t}: f32 exact vs f64 exact {e:.2e}");
        assert!(e < 1e-4, "t = {t}: {e:.2e}");
    }
}

/// On a flat image, through a network with zero biases (as initialised), the GroupNorms see
/// almost constant groups (`r = (σ² + eps)^{−1/2}` near `1/√eps`), where the score bends on a scale far below the difference's default step: the
/// exact term is what the difference converges to as `h → 0` (its error falls 100× per
/// decade of `h`; measured 1.6e-3 at 1e-6, 1.6e-5 at 1e-7), while at `h = 1e-4` the
/// difference is off by 8× its own size.
#[test]
fn exact_second_order_is_the_small_step_limit_on_a_flat_image() {
    let exact = build(false, Precision::F64, SecondOrder::Exact, false);
    let diff = build(false, Precision::F64, SecondOrder::Differences, false);
    let d = exact.dim();
    let (x, probe) = (vec![0.5; d], vec![1.0; d]);
    let mut q = vec![0.0; d];
    exact.second_order(&x, 0.5, &probe, &mut q).unwrap();
    let errs: Vec<f64> = [1e-4, 1e-6, 1e-7]
        .iter()
        .map(|&h| {
            let mut qh = vec![0.0; d];
            second_order_by_differences(&diff, &x, 0.5, &probe, h, &mut qh).unwrap();
            rel(&q, &qh)
        })
        .collect();
    eprintln!("rms second-order {:.2e}; difference h = 1e-4, 1e-6, 1e-7: {errs:?}", rms(&q));
    assert!(errs[0] > 0.3, "the default step should fail here: {:.2e}", errs[0]);
    assert!(errs[2] < 5e-5 && (50.0..200.0).contains(&(errs[1] / errs[2])), "{errs:?}");
}
