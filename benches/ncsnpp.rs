//! NCSN++ throughput (small configuration): forward and forward+VJP images/s at 16×16 and
//! 32×32, one thread vs two. Forward: a batch of 64 images. Forward+VJP: 4 images × 16
//! probes = 64 image–probe pairs per call (the pairs are stacked into one batch, as the
//! Hutchinson estimator does), reported per pair. Each run also prints the achieved matrix
//! product GFLOP/s (FLOPs counted by `ops::MATMUL_FLOPS`).

use std::sync::atomic::Ordering;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use scoreprior::core::score::ScoreModel;
use scoreprior::core::sde::VpSde;
use scoreprior::models::ncsnpp::{NcsnppConfig, NcsnppNet};
use scoreprior::models::ops::MATMUL_FLOPS;
use scoreprior::models::score::NcsnppScore;

fn model(size: usize) -> NcsnppScore {
    let mut cfg = NcsnppConfig::small();
    cfg.init_scale = 1.0;
    let net = NcsnppNet::new(cfg, 1, size, size).unwrap();
    let w = net.init_params(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    // Chunks of 32 pairs: two parallel tasks per call.
    NcsnppScore::new(net, &w, VpSde::default()).unwrap().with_chunk(32)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ncsnpp_small");
    g.sample_size(10);
    for size in [16usize, 32] {
        let m = model(size);
        let d = m.dim();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let x64: Vec<f64> = (0..64 * d).map(|_| rng.gen()).collect();
        let x4 = x64[..4 * d].to_vec();
        let probes: Vec<f64> = (0..16 * 4 * d).map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 }).collect();
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut out = vec![0.0; 64 * d];
            // One untimed call to report GFLOP/s.
            let f0 = MATMUL_FLOPS.load(Ordering::Relaxed);
            let t0 = Instant::now();
            pool.install(|| m.score(&x64, 0.5, &mut out).unwrap());
            let fl = (MATMUL_FLOPS.load(Ordering::Relaxed) - f0) as f64;
            eprintln!(
                "{size}x{size} forward, {threads} thread(s): {:.2} GFLOP per call, {:.1} GFLOP/s",
                fl / 1e9,
                fl / 1e9 / t0.elapsed().as_secs_f64()
            );
            g.throughput(Throughput::Elements(64));
            g.bench_function(format!("forward/{size}x{size}/threads{threads}"), |b| {
                b.iter(|| pool.install(|| m.score(&x64, 0.5, &mut out).unwrap()))
            });
            let mut s = vec![0.0; 4 * d];
            let mut v = vec![0.0; 64 * d];
            let f0 = MATMUL_FLOPS.load(Ordering::Relaxed);
            let t0 = Instant::now();
            pool.install(|| m.score_and_vjp(&x4, 0.5, &probes, &mut s, &mut v).unwrap());
            let fl = (MATMUL_FLOPS.load(Ordering::Relaxed) - f0) as f64 * 3.0; // backward ≈ 2× forward products
            eprintln!(
                "{size}x{size} fwd+VJP, {threads} thread(s): ~{:.2} GFLOP per call, ~{:.1} GFLOP/s",
                fl / 1e9,
                fl / 1e9 / t0.elapsed().as_secs_f64()
            );
            g.bench_function(format!("forward_vjp/{size}x{size}/threads{threads}"), |b| {
                b.iter(|| pool.install(|| m.score_and_vjp(&x4, 0.5, &probes, &mut s, &mut v).unwrap()))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
