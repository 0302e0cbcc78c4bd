//! `NcsnppScore` through the batched score API: per-image times equal shared-time calls,
//! score-dependent VJPs from one pass equal `score` + `score_and_vjp`, several cotangents
//! equal single ones, and chunking over worker pools changes nothing.

mod common;

use common::{adjoint_call_errors, rel};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scoreprior_core::score::ScoreModel;
use scoreprior_core::sde::VpSde;
use scoreprior_models::ncsnpp::{NcsnppConfig, NcsnppNet};
use scoreprior_models::score::{NcsnppScore, Precision, SecondOrder};

fn model(chunk: usize) -> NcsnppScore {
    let mut cfg = NcsnppConfig::tiny();
    cfg.init_scale = 1.0;
    let net = NcsnppNet::new(cfg, 1, 8, 8).unwrap();
    let w = net.init_params(&mut ChaCha8Rng::seed_from_u64(1));
    NcsnppScore::new(net, &w, VpSde::default()).unwrap().with_precision(Precision::F64).with_chunk(chunk)
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1e-300);
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * scale, "{what}[{k}]: {x} vs {y}");
    }
}

#[test]
fn per_image_times_equal_shared_time_calls() {
    let m = model(3);
    let d = m.dim();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let n = 7;
    let x: Vec<f64> = (0..n * d).map(|_| rng.gen()).collect();
    let t: Vec<f64> = (0..n).map(|i| [0.01, 0.2, 0.6][i % 3]).collect();
    let mut out = vec![0.0; n * d];
    // Two workers over chunks of 3 images.
    rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| m.score_at(&x, &t, &mut out).unwrap());
    for i in 0..n {
        let mut o = vec![0.0; d];
        m.score(&x[i * d..(i + 1) * d], t[i], &mut o).unwrap();
        close(&out[i * d..(i + 1) * d], &o, 1e-12, "score_at");
    }
    assert!(m.score_at(&x, &t[..n - 1], &mut out).is_err());
    assert!(m.score_at(&x, &vec![0.0; n], &mut out).is_err(), "t = 0 is outside (0, T]");
}

#[test]
fn score_then_vjp_from_one_pass_equals_score_and_vjp() {
    let m = model(4);
    let d = m.dim();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 6;
    let x: Vec<f64> = (0..n * d).map(|_| rng.gen()).collect();
    let z: Vec<f64> = (0..n * d).map(|_| rng.gen::<f64>() - 0.5).collect();
    let t: Vec<f64> = (0..n).map(|i| 0.05 + 0.15 * i as f64).collect();
    let cot = |i: usize, s: &[f64], c: &mut [f64]| {
        for k in 0..c.len() {
            c[k] = s[k] + 3.0 * z[i * c.len() + k];
        }
    };
    let (mut s, mut v) = (vec![0.0; n * d], vec![0.0; n * d]);
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| m.score_then_vjp(&x, &t, &cot, &mut s, &mut v).unwrap());
    for i in 0..n {
        let r = i * d..(i + 1) * d;
        let mut s1 = vec![0.0; d];
        m.score(&x[r.clone()], t[i], &mut s1).unwrap();
        close(&s[r.clone()], &s1, 1e-12, "score");
        let mut c = vec![0.0; d];
        cot(i, &s1, &mut c);
        let (mut s2, mut v2) = (vec![0.0; d], vec![0.0; d]);
        m.score_and_vjp(&x[r.clone()], t[i], &c, &mut s2, &mut v2).unwrap();
        close(&v[r], &v2, 1e-12, "vjp");
    }
}

#[test]
fn several_cotangents_equal_single_ones() {
    let m = model(16);
    let d = m.dim();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (n, k) = (2, 3);
    let x: Vec<f64> = (0..n * d).map(|_| rng.gen()).collect();
    let c: Vec<f64> = (0..k * n * d).map(|_| rng.gen::<f64>() - 0.5).collect();
    let (mut s, mut v) = (vec![0.0; n * d], vec![0.0; k * n * d]);
    m.score_and_vjp(&x, 0.3, &c, &mut s, &mut v).unwrap();
    for j in 0..k {
        for i in 0..n {
            let o = (j * n + i) * d;
            let (mut s1, mut v1) = (vec![0.0; d], vec![0.0; d]);
            m.score_and_vjp(&x[i * d..(i + 1) * d], 0.3, &c[o..o + d], &mut s1, &mut v1).unwrap();
            close(&v[o..o + d], &v1, 1e-12, "vjp");
        }
    }
}

/// The f32 second-order term of the shipped checkpoint, exact (forward-over-reverse) and by
/// the fallback central difference (h = 0.01·σ_t), against an f64 difference with h = 1e-5
/// (accurate to ~1e-6), on noisy test images `α_t x + σ_t z` at small, middle and large t;
/// the same for the adjoint term `aᵀJ + ∇x(εᵀJε)` and its score. Measured: difference
/// 0.6–1.2e-4 relative (adjoint term up to 2.0e-4); exact 1.9e-7–3.1e-6 (adjoint term up to
/// 7.2e-6, at t = 1e-3, where the f64 reference's own truncation counts).
#[test]
fn second_order_f32_matches_f64() {
    use scoreprior_core::score::second_order_by_differences;
    use scoreprior_core::sde::Sde;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ckpt = root.join("assets/ncsnpp_fmnist16/ema.safetensors");
    let m64 = NcsnppScore::load(&ckpt).unwrap().with_precision(Precision::F64);
    let images = scoreprior_core::io::read_npy(root.join("assets/fashion16_test.npy")).unwrap().data;
    let d = m64.dim();
    let (n, k) = (2, 2);
    for (method, tol) in [(SecondOrder::Differences, 5e-4), (SecondOrder::Exact, 2e-5)] {
        let m32 = NcsnppScore::load(&ckpt).unwrap().with_second_order(method);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let probes: Vec<f64> = (0..k * d).map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 }).collect();
        let sde = *m32.sde();
        for t in [1e-3, 0.1, 1.0] {
            let (a, s) = (sde.marginal_mean_coef(t), sde.marginal_std(t));
            let x: Vec<f64> =
                images[..n * d].iter().map(|v| a * v + s * rng.sample::<f64, _>(rand_distr::StandardNormal)).collect();
            let mut want = vec![0.0; n * d];
            second_order_by_differences(&m64, &x, t, &probes, 1e-5, &mut want).unwrap();
            let mut got = vec![0.0; n * d];
            m32.second_order(&x, t, &probes, &mut got).unwrap();
            let e = rel(&got, &want);
            eprintln!("{method:?}, t = {t}: relative error {e:.2e}");
            assert!(e < tol, "{method:?}, t = {t}: relative error {e:.2e}");
            // The adjoint term aᵀJ + ∇x(εᵀJε) in f32 against the exact f64 VJP plus the f64
            // difference, with a cotangent of the score's size (as a(t) is).
            let (mut s64, mut v64) = (vec![0.0; n * d], vec![0.0; n * d]);
            m64.score(&x, t, &mut s64).unwrap();
            let adj: Vec<f64> = s64.iter().map(|v| -v).collect();
            m64.score_and_vjp(&x, t, &adj, &mut s64, &mut v64).unwrap();
            v64.iter_mut().zip(&want).for_each(|(v, q)| *v += q);
            let (mut s32, mut v32) = (vec![0.0; n * d], vec![0.0; n * d]);
            m32.score_and_adjoint_vjp(&x, t, &adj, &probes, &mut s32, &mut v32).unwrap();
            let (es, ev) = (rel(&s32, &s64), rel(&v32, &v64));
            eprintln!("{method:?}, t = {t}: adjoint score {es:.2e}, adjoint term {ev:.2e}");
            assert!(es < tol && ev < tol, "{method:?}, t = {t}: adjoint score {es:.2e}, adjoint term {ev:.2e}");
        }
    }
}

/// The adjoint call (`ScoreModel::score_and_adjoint_vjp`: the `2·K·n`-pair stencil, or the
/// exact pass with `a` as an extra cotangent) against the exact VJP at `x` plus the
/// second-order term, in both precisions; bad shapes are errors.
#[test]
fn adjoint_stencil_matches_separate_calls() {
    for method in [SecondOrder::Differences, SecondOrder::Exact] {
        for prec in [Precision::F64, Precision::F32] {
            let m = model(3).with_precision(prec).with_second_order(method);
            let d = m.dim();
            let n = 3;
            let mut rng = ChaCha8Rng::seed_from_u64(8);
            let x: Vec<f64> = (0..n * d).map(|_| rng.gen()).collect();
            let a: Vec<f64> = (0..n * d).map(|_| rng.gen::<f64>() - 0.5).collect();
            let probes: Vec<f64> = (0..2 * d).map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 }).collect();
            let t = 0.05;
            let (es, ev) = adjoint_call_errors(&m, &x, t, &a, &probes);
            eprintln!("{method:?}, {prec:?}: score {es:.2e}, adjoint term {ev:.2e}");
            // Measured: the stencil 5.7e-7 (f64) and 1.7e-4 (f32) for the score, less for the
            // adjoint term; the exact pass is the separate calls' arithmetic summed in another
            // order (score identical, adjoint term 8e-16 in f64 and 5.6e-7 in f32).
            let tol = match (method, prec) {
                (SecondOrder::Differences, Precision::F64) => 2e-6,
                (SecondOrder::Differences, Precision::F32) => 5e-4,
                (SecondOrder::Exact, Precision::F64) => 1e-14,
                (SecondOrder::Exact, Precision::F32) => 1e-6,
            };
            assert!(es < tol, "{method:?}, {prec:?} score: {es:.2e}");
            assert!(ev < tol, "{method:?}, {prec:?} adjoint term: {ev:.2e}");
        }
    }
}

/// The probes' quadratic forms from the forward pass with the probes as tangents
/// (`score_and_probe_forms`, no backward pass) equal `εᵀ(Jᵀε)` from the VJPs, in both
/// precisions and over chunks; bad shapes and non-finite probes are errors.
#[test]
fn probe_forms_from_the_forward_pass_equal_the_vjp_forms() {
    for prec in [Precision::F64, Precision::F32] {
        let m = model(2).with_precision(prec);
        let d = m.dim();
        let (n, k) = (5, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x: Vec<f64> = (0..n * d).map(|_| rng.gen()).collect();
        let probes: Vec<f64> = (0..k * d).map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 }).collect();
        let t = 0.3;
        let (mut s, mut f) = (vec![0.0; n * d], vec![0.0; k * n]);
        m.score_and_probe_forms(&x, t, &probes, &mut s, &mut f).unwrap();
        // The reference: one VJP per image and probe.
        let mut cot = Vec::with_capacity(k * n * d);
        for eps in probes.chunks(d) {
            (0..n).for_each(|_| cot.extend_from_slice(eps));
        }
        let (mut s_ref, mut v) = (vec![0.0; n * d], vec![0.0; k * n * d]);
        m.score_and_vjp(&x, t, &cot, &mut s_ref, &mut v).unwrap();
        let f_ref: Vec<f64> =
            v.chunks(d).zip(cot.chunks(d)).map(|(v, e)| v.iter().zip(e).map(|(a, b)| a * b).sum()).collect();
        let (es, ef) = (rel(&s, &s_ref), rel(&f, &f_ref));
        eprintln!("{prec:?}: score {es:.2e}, forms {ef:.2e}");
        // Measured: scores identical (the same forward arithmetic), forms 2.0e-15 (f64) and
        // 8.9e-7 (f32; the products summed in another order).
        let tol = if prec == Precision::F64 { 1e-12 } else { 2e-5 };
        assert!(es < tol && ef < tol, "{prec:?}: score {es:.2e}, forms {ef:.2e}");
        assert!(m.score_and_probe_forms(&x, t, &probes[1..], &mut s, &mut f).is_err());
        assert!(m.score_and_probe_forms(&x, t, &probes, &mut s, &mut f[1..]).is_err());
        let mut bad = probes.clone();
        bad[3] = f64::NAN;
        assert!(m.score_and_probe_forms(&x, t, &bad, &mut s, &mut f).is_err());
    }
}
