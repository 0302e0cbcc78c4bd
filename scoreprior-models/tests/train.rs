//! Training, checkpoints, the `ScoreModel` implementation and the samplers.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scoreprior_core::score::ScoreModel;
use scoreprior_core::sde::{AnySde, Sde, VpSde};
use scoreprior_models::checkpoint;
use scoreprior_models::data::{Dataset, Preprocess};
use scoreprior_models::ncsnpp::{NcsnppConfig, NcsnppNet};
use scoreprior_models::score::{NcsnppScore, Precision};
use scoreprior_models::train::{TrainConfig, Trainer};
use scoreprior_models::ModelError;

/// Two kinds of 8×8 images: dark with a bright top half, and bright with a dark top half.
fn toy_data() -> Dataset {
    let mut data = Vec::new();
    for i in 0..40 {
        for p in 0..64 {
            let top = p < 32;
            let v = if (i % 2 == 0) == top { 0.9 } else { 0.1 };
            data.push(v);
        }
    }
    Dataset { c: 1, h: 8, w: 8, data }
}

fn pre() -> Preprocess {
    Preprocess {
        source: "toy".into(),
        size: (8, 8),
        channels: 1,
        range: (0.0, 1.0),
        resize: "none".into(),
        random_flip: true,
    }
}

fn cfg(steps_warmup: u64) -> TrainConfig {
    TrainConfig { batch_size: 8, lr: 2e-3, warmup: steps_warmup, ema_rate: 0.9, seed: 3, ..TrainConfig::default() }
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("spm-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn short_training_run_lowers_the_loss() {
    let data = toy_data();
    let net = NcsnppNet::new(NcsnppConfig::tiny(), 1, 8, 8).unwrap();
    let mut tr = Trainer::new(net, cfg(5), pre()).unwrap();
    let before =
        scoreprior_models::train::dsm_loss::<f32>(tr.net(), tr.weights(), &VpSde::default(), &data, 40, 1).unwrap();
    // Zero-initialised output: ε̂ = 0, so the loss is ½·E‖z‖² ≈ D/2 = 32.
    assert!((before - 32.0).abs() < 4.0, "{before}");
    for _ in 0..60 {
        tr.step(&data).unwrap();
    }
    let after =
        scoreprior_models::train::dsm_loss::<f32>(tr.net(), tr.weights(), &VpSde::default(), &data, 40, 1).unwrap();
    assert!(after < 0.6 * before, "loss did not fall: {before} -> {after}");
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let data = toy_data();
    let net = || NcsnppNet::new(NcsnppConfig::tiny(), 1, 8, 8).unwrap();
    let mut a = Trainer::new(net(), cfg(2), pre()).unwrap();
    for _ in 0..4 {
        a.step(&data).unwrap();
    }
    let mut b = Trainer::new(net(), cfg(2), pre()).unwrap();
    for _ in 0..2 {
        b.step(&data).unwrap();
    }
    let path = tmp("resume").join("ck.safetensors");
    let (meta, t) = b.checkpoint(true);
    checkpoint::save(&path, b.net(), &meta, &t).unwrap();
    drop(b);
    let (n2, meta2, t2) = checkpoint::load_any(&path).unwrap();
    let mut c = Trainer::resume(n2, &meta2, t2).unwrap();
    assert_eq!(c.step_count(), 2);
    for _ in 0..2 {
        c.step(&data).unwrap();
    }
    assert_eq!(a.weights(), c.weights(), "weights differ after resume");
    assert_eq!(a.ema(), c.ema(), "EMA differs after resume");
    assert_eq!(a.checkpoint(true).1, c.checkpoint(true).1);
}

#[test]
fn checkpoint_round_trip_and_mismatch_errors() {
    let dir = tmp("ck");
    let net = NcsnppNet::new(NcsnppConfig::tiny(), 1, 8, 8).unwrap();
    let tr = Trainer::new(net.clone(), cfg(2), pre()).unwrap();
    let (meta, t) = tr.checkpoint(true);
    let p = dir.join("a.safetensors");
    checkpoint::save(&p, &net, &meta, &t).unwrap();
    let (m2, t2) = checkpoint::load(&p, &net).unwrap();
    assert_eq!((m2, t2), (meta.clone(), t.clone()));
    // An inference checkpoint has only the EMA weights and cannot be resumed.
    let (mi, ti) = tr.checkpoint(false);
    let pi = dir.join("ema.safetensors");
    checkpoint::save(&pi, &net, &mi, &ti).unwrap();
    let (mi2, ti2) = checkpoint::load(&pi, &net).unwrap();
    assert!(ti2.params.is_empty() && ti2.ema == t.ema);
    assert!(Trainer::resume(net.clone(), &mi2, ti2).is_err());
    // Another architecture or image size: a clear mismatch error, never a silent load.
    let mut other = NcsnppConfig::tiny();
    other.nf = 16;
    let net16 = NcsnppNet::new(other, 1, 8, 8).unwrap();
    assert!(matches!(checkpoint::load(&p, &net16), Err(ModelError::ShapeMismatch { .. })));
    let big = NcsnppNet::new(NcsnppConfig::tiny(), 1, 16, 16).unwrap();
    let e = checkpoint::load(&p, &big).unwrap_err().to_string();
    assert!(e.contains("(1, 8, 8)"), "{e}");
    // Typed wrapper refuses a network for another image shape.
    assert!(scoreprior_models::ncsnpp::Ncsnpp::<1, 16, 16>::from_net(net.clone()).is_err());
    // A shape that is not compiled: the trainer and the score model refuse it at construction
    // (naming the compiled shapes), before any pass.
    let odd = NcsnppNet::new(NcsnppConfig::tiny(), 1, 8, 12).unwrap();
    let w = odd.init_params(&mut ChaCha8Rng::seed_from_u64(1));
    let e = Trainer::new(odd.clone(), TrainConfig::default(), pre()).err().unwrap().to_string();
    assert!(e.contains("(1, 8, 12)") && e.contains("(1, 16, 16)"), "{e}");
    let e = NcsnppScore::new(odd, &w, VpSde::default()).unwrap_err().to_string();
    assert!(e.contains("(1, 8, 12)") && e.contains("(1, 8, 8)"), "{e}");
    // Corrupt and truncated files.
    let bytes = std::fs::read(&p).unwrap();
    let q = dir.join("trunc.safetensors");
    std::fs::write(&q, &bytes[..bytes.len() / 2]).unwrap();
    assert!(checkpoint::load(&q, &net).is_err());
    std::fs::write(&q, b"not a checkpoint").unwrap();
    assert!(matches!(checkpoint::load(&q, &net), Err(ModelError::Checkpoint { .. })));
    assert!(checkpoint::load(dir.join("missing.safetensors"), &net).is_err());
    std::fs::remove_dir_all(&dir).ok();
}

fn model(prec: Precision) -> NcsnppScore {
    let mut c = NcsnppConfig::tiny();
    c.init_scale = 1.0;
    let net = NcsnppNet::new(c, 1, 8, 8).unwrap();
    let w = net.init_params(&mut ChaCha8Rng::seed_from_u64(9));
    NcsnppScore::new(net, &w, VpSde::default()).unwrap().with_precision(prec).with_chunk(2)
}

fn rv(n: usize, seed: u64) -> Vec<f64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.gen::<f64>()).collect()
}

#[test]
fn score_model_vjps_match_finite_differences() {
    let m = model(Precision::F64);
    let d = m.dim();
    let (n, k) = (3, 2);
    let x = rv(n * d, 1);
    let cot: Vec<f64> = rv(k * n * d, 2).iter().map(|v| v - 0.5).collect();
    let t = 0.4;
    let mut s = vec![0.0; n * d];
    let mut vjp = vec![0.0; k * n * d];
    m.score_and_vjp(&x, t, &cot, &mut s, &mut vjp).unwrap();
    let mut s2 = vec![0.0; n * d];
    m.score(&x, t, &mut s2).unwrap();
    // Same values up to the rounding of differently composed batches.
    assert!(s.iter().zip(&s2).all(|(a, b)| (a - b).abs() < 1e-12));
    // Directional FD of ⟨c_j,i, s(x_i)⟩ along v.
    let v: Vec<f64> = rv(n * d, 3).iter().map(|a| a - 0.5).collect();
    let h = 1e-5;
    let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
    let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
    let (mut sp, mut sm) = (vec![0.0; n * d], vec![0.0; n * d]);
    m.score(&xp, t, &mut sp).unwrap();
    m.score(&xm, t, &mut sm).unwrap();
    for j in 0..k {
        for i in 0..n {
            let c = &cot[(j * n + i) * d..(j * n + i + 1) * d];
            let fd: f64 = (0..d).map(|l| c[l] * (sp[i * d + l] - sm[i * d + l]) / (2.0 * h)).sum();
            let ad: f64 = (0..d).map(|l| vjp[(j * n + i) * d + l] * v[i * d + l]).sum();
            assert!((ad - fd).abs() < 1e-6 * fd.abs().max(1.0), "pair ({j},{i}): {ad} vs {fd}");
        }
    }
    // f32 agrees with f64 to single precision.
    let m32 = model(Precision::F32);
    let mut s32 = vec![0.0; n * d];
    m32.score(&x, t, &mut s32).unwrap();
    let scale = s.iter().map(|v| v.abs()).fold(0.0, f64::max);
    assert!(s.iter().zip(&s32).all(|(a, b)| (a - b).abs() < 1e-4 * scale));
    // Bad inputs are errors.
    assert!(m.score(&x[..d - 1], t, &mut s2[..d - 1]).is_err());
    assert!(m.score(&x, 0.0, &mut s2).is_err());
}

#[test]
fn second_order_term_matches_difference_of_hutchinson_terms() {
    // f64: the central difference with h = 1e-4 (the f32 path is pinned against this one in
    // `second_order_f32_matches_f64`).
    let m = model(Precision::F64);
    let d = m.dim();
    let n = 2;
    let x = rv(n * d, 4);
    let eps: Vec<f64> = rv(d, 5).iter().map(|v| if *v < 0.5 { -1.0 } else { 1.0 }).collect();
    let t = 0.3;
    let mut g = vec![0.0; n * d];
    m.second_order(&x, t, &eps, &mut g).unwrap();
    // εᵀ J(x) ε per image, from f64 VJPs.
    let m64 = model(Precision::F64);
    let quad = |xx: &[f64]| -> Vec<f64> {
        let cot: Vec<f64> = (0..n).flat_map(|_| eps.clone()).collect();
        let (mut s, mut v) = (vec![0.0; n * d], vec![0.0; n * d]);
        m64.score_and_vjp(xx, t, &cot, &mut s, &mut v).unwrap();
        (0..n).map(|i| (0..d).map(|l| v[i * d + l] * eps[l]).sum()).collect()
    };
    let dir: Vec<f64> = rv(n * d, 6).iter().map(|v| v - 0.5).collect();
    let h = 1e-4;
    let xp: Vec<f64> = x.iter().zip(&dir).map(|(a, b)| a + h * b).collect();
    let xm: Vec<f64> = x.iter().zip(&dir).map(|(a, b)| a - h * b).collect();
    let (qp, qm) = (quad(&xp), quad(&xm));
    for i in 0..n {
        let fd = (qp[i] - qm[i]) / (2.0 * h);
        let an: f64 = (0..d).map(|l| g[i * d + l] * dir[i * d + l]).sum();
        assert!((an - fd).abs() < 1e-4 * fd.abs().max(1.0), "image {i}: {an} vs {fd}");
    }
}

#[test]
fn samplers_reproduce_a_gaussian() {
    // Exact score of N(μ, s²I) under the VP SDE; every sampler must recover its moments.
    let d = 4;
    let mu = vec![0.3, 0.6, 0.5, 0.4];
    let var = vec![0.01; d];
    let sde = VpSde::default();
    let g = scoreprior_core::score::gaussian::Gaussian::diagonal(mu.clone(), &var, AnySde::Vp(sde)).unwrap();
    let n = 400;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // The samplers stop at t_end = 1e-3, where the marginal is N(α μ, α² s² + σ_t²) (the
    // exact target, not the data density). From n = 400 draws the mean has a standard error
    // of s/√n = 0.005 and the std one of s/√(2n) = 0.0035; each is allowed 4 s.e.
    let (a, sig) = (sde.marginal_mean_coef(1e-3), sde.marginal_std(1e-3));
    let sd = (a * a * 0.01 + sig * sig).sqrt();
    let (se_m, se_s) = (sd / (n as f64).sqrt(), sd / (2.0 * n as f64).sqrt());
    let check = |name: &str, x: &[f64]| {
        let mut worst = (0.0f64, 0.0f64);
        for l in 0..d {
            let m: f64 = (0..n).map(|i| x[i * d + l]).sum::<f64>() / n as f64;
            let v: f64 = (0..n).map(|i| (x[i * d + l] - m).powi(2)).sum::<f64>() / n as f64;
            let (zm, zs) = ((m - a * mu[l]) / se_m, (v.sqrt() - sd) / se_s);
            worst = (worst.0.max(zm.abs()), worst.1.max(zs.abs()));
            assert!(zm.abs() < 4.0, "{name}: mean {m} vs {} ({zm:.1} s.e.)", a * mu[l]);
            assert!(zs.abs() < 4.0, "{name}: std {} vs {sd} ({zs:.1} s.e.)", v.sqrt());
        }
        eprintln!("{name}: largest deviations {:.2} s.e. (mean), {:.2} s.e. (std)", worst.0, worst.1);
    };
    let solver = scoreprior_models::sample::solver_named("dopri5").unwrap();
    let (x, stats) = scoreprior_models::sample::sample_ode(
        &g,
        &sde,
        solver,
        scoreprior_models::sample::OdeSteps::Adaptive { rtol: 1e-5, atol: 1e-6 },
        n,
        1e-3,
        &mut rng,
    )
    .unwrap();
    assert!(stats.accepted_steps > 0);
    check("dopri5", &x);
    // Fixed steps integrate backwards from T too (the step is given as a magnitude).
    let rk4 = scoreprior_models::sample::solver_named("rk4").unwrap();
    let fixed = scoreprior_models::sample::OdeSteps::Fixed(100);
    let (x, stats) = scoreprior_models::sample::sample_ode(&g, &sde, rk4, fixed, n, 1e-3, &mut rng).unwrap();
    assert_eq!(stats.accepted_steps, 100);
    check("rk4", &x);
    let x = scoreprior_models::sample::sample_sde(&g, &sde, 500, 0.0, n, 1e-3, &mut rng).unwrap();
    check("euler-maruyama", &x);
    let x = scoreprior_models::sample::sample_sde(&g, &sde, 300, 0.16, n, 1e-3, &mut rng).unwrap();
    check("predictor-corrector", &x);
    assert!(scoreprior_models::sample::solver_named("rk45").is_err());
    let _ = sde.t_max();
}
