//! `ScorePrior::log_prob` and `grad_log_prob` on the shipped 16×16 Fashion-MNIST Gaussian
//! (`assets/gaussian16`, D = 256) for a batch of the first 16 test images
//! (`assets/fashion16_test.npy`): the problem `benches/reference/diffrax_logprob.py` times with
//! diffrax. VP SDE (β 0.1→20), t0 = 1e-3 → T = 1, Dopri5 + PID(rtol 1e-3, atol 1e-5) for both
//! solves (first forward step 1e-3 as the reference script; Hairer's automatic first step for
//! the adjoint), exact trace and Hutchinson with 16 Rademacher probes. The NFE of each
//! configuration is printed once before timing, and so are the packed kernel's GFLOP/s and the
//! cost of injecting a fork–join into the rayon pool (the figures of `benches/RESULTS.md`).
//!
//! Run: `cargo bench --bench logprob -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use scoreprior_core::divergence::ProbeNoise;
use scoreprior_core::io::read_npy;
use scoreprior_core::prior::{Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::Gaussian;
use scoreprior_core::sde::{AnySde, VpSde};

fn setup() -> (Gaussian, Vec<f64>) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mean = read_npy(format!("{root}/assets/gaussian16/mean.npy")).expect("mean.npy");
    let cov = read_npy(format!("{root}/assets/gaussian16/cov.npy")).expect("cov.npy");
    let x = read_npy(format!("{root}/assets/fashion16_test.npy")).expect("fashion16_test.npy");
    let sde = AnySde::Vp(VpSde::default());
    let g = Gaussian::new(mean.data, &cov.data, sde).expect("SPD covariance");
    let (_, d) = x.rows();
    (g, x.data[..16 * d].to_vec())
}

/// Prints the two costs `benches/RESULTS.md` quotes for this problem: the Gaussian score's two
/// `16×256×256` products on one thread (packed kernel, `score/packed.rs`), in GFLOP/s, and a
/// fork–join (`rayon::join`) issued from outside the pool (injected) against one issued from
/// inside it.
fn print_kernel_and_pool_costs(g: &Gaussian, x: &[f64]) {
    use scoreprior_core::score::ScoreModel;
    let best_of = |reps: usize, f: &mut dyn FnMut()| {
        (0..7)
            .map(|_| {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    f();
                }
                t.elapsed().as_secs_f64() / reps as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut out = vec![0.0; x.len()];
    let secs = one.install(|| best_of(2000, &mut || g.score(black_box(x), 0.5, &mut out).unwrap()));
    let flops = 2.0 * 2.0 * 16.0 * 256.0 * 256.0;
    eprintln!(
        "Gaussian score, 16 images, one thread: {:.1} µs per call, {:.0} GFLOP/s (two 16x256x256 products)",
        secs * 1e6,
        flops / secs / 1e9
    );
    let outside = best_of(20000, &mut || {
        rayon::join(|| black_box(1), || black_box(2));
    });
    let inside = rayon::scope(|_| {
        best_of(20000, &mut || {
            rayon::join(|| black_box(1), || black_box(2));
        })
    });
    eprintln!(
        "rayon::join from outside the pool (injected): {:.2} µs; from inside: {:.2} µs",
        outside * 1e6,
        inside * 1e6
    );
}

fn logprob(c: &mut Criterion) {
    let (g, x) = setup();
    print_kernel_and_pool_costs(&g, &x);
    let base = ScorePriorConfig::default();
    let configs = [
        ("exact", base.clone().with_exact_trace()),
        ("hutchinson16", base.with_hutchinson(16, ProbeNoise::Rademacher, 0)),
    ];
    let mut group = c.benchmark_group("logprob_gaussian16_batch16");
    for (name, cfg) in configs {
        let prior = ScorePrior::new(g.clone(), cfg).unwrap();
        let lp = prior.log_prob(&x).unwrap();
        let gr = prior.grad_log_prob(&x).unwrap();
        let mean = lp.log_prob.iter().sum::<f64>() / lp.log_prob.len() as f64;
        eprintln!(
            "{name}: log_prob NFE {} ({} accepted, {} rejected), mean log p {mean:.4}; \
             grad_log_prob NFE forward {} + adjoint {} ({} accepted, {} rejected)",
            lp.stats.forward.rhs_evaluations,
            lp.stats.forward.accepted_steps,
            lp.stats.forward.rejected_steps,
            gr.stats.forward.rhs_evaluations,
            gr.stats.adjoint.rhs_evaluations,
            gr.stats.adjoint.accepted_steps,
            gr.stats.adjoint.rejected_steps
        );
        group.bench_function(format!("log_prob/{name}"), |b| b.iter(|| prior.log_prob(black_box(&x)).unwrap()));
        group.bench_function(format!("grad_log_prob/{name}"), |b| {
            b.iter(|| prior.grad_log_prob(black_box(&x)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, logprob);
criterion_main!(benches);
