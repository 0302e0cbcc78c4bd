//! The EHT visibility operator, forward and adjoint, on a batch of 64 images at 32×32 and
//! 64×64 (EHT 2017 observing Sgr A*, 1023 visibilities): the dense GEMM path of
//! `ops::Nudft` (`Y = X·[C; S]ᵀ`, `X = Y·[C; S]`, `8·n·D·K` flops per forward + adjoint)
//! next to a plain f64 GEMM of the same two shapes (dfdx's `matmul`, i.e. the `gemm` crate,
//! both threads) in the same run, and the ratio of the two GFLOP/s; then the separable
//! per-image kernel (the algorithm before the GEMM path) and the non-uniform FFT
//! (`ops::Nufft`, images in parallel) with its relative error against the GEMM path.
//!
//! Run: `cargo bench --bench eht_nudft`.

mod common;

use common::best_of;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use scoreprior_core::forward::interferometry::{Array, Interferometer, Observation, VisibilityTransform};
use scoreprior_core::forward::ops::Nufft;
use scoreprior_core::forward::{ForwardModel, Op};

const BATCH: usize = 64;

/// Seconds of the best plain f64 `(n×d)·(d×m)` then `(n×m)·(m×d)` pair through dfdx/gemm.
fn plain_gemm_seconds(n: usize, d: usize, m: usize) -> f64 {
    let dev = Cpu::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut t = |r: usize, c: usize| -> Tensor<(usize, usize), f64, Cpu> {
        dev.tensor_from_vec((0..r * c).map(|_| rng.gen_range(-1.0..1.0)).collect(), (r, c))
    };
    let (x, f, y, ft) = (t(n, d), t(d, m), t(n, m), t(m, d));
    best_of(10, || {
        black_box(x.clone().matmul(f.clone()));
        black_box(y.clone().matmul(ft.clone()));
    })
}

fn bench(c: &mut Criterion) {
    let cov = Array::eht2017().observe(&Observation::sgr_a_star()).unwrap();
    let mut g = c.benchmark_group("eht_nudft_batch64");
    g.sample_size(10);
    g.throughput(Throughput::Elements(BATCH as u64));
    for npix in [32usize, 64] {
        let eht = Interferometer::new(cov.clone(), npix, 160.0).unwrap().with_transform(VisibilityTransform::Direct);
        let model = eht.visibility_model().unwrap();
        let op = eht.nudft().unwrap();
        let (d, k) = (npix * npix, op.len());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let x: Vec<f64> = (0..BATCH * d).map(|_| rng.gen_range(0.0..1.0)).collect();
        let y = model.forward(&x).unwrap(); // also packs the dense matrices once
        let flops = 8.0 * (BATCH * d * k) as f64;
        let ours = best_of(10, || {
            black_box(model.forward(black_box(&x)).unwrap());
            black_box(model.adjoint(black_box(&y)).unwrap());
        });
        let plain = plain_gemm_seconds(BATCH, d, 2 * k);
        let separable = best_of(3, || {
            let mut fy = vec![0.0; BATCH * 2 * k];
            fy.par_chunks_mut(2 * k).zip(x.par_chunks(d)).for_each(|(yi, xi)| op.apply(xi, yi));
            let mut ax = vec![0.0; BATCH * d];
            ax.par_chunks_mut(d).zip(y.par_chunks(2 * k)).for_each(|(xi, yi)| op.adjoint(yi, xi).unwrap());
            black_box((fy, ax));
        });
        let (u, v): (Vec<f64>, Vec<f64>) = cov.points.iter().map(|p| (p.u, p.v)).unzip();
        let nufft = Nufft::new(eht.image_shape(), &u, &v, eht.pixel_size()).unwrap();
        let (mut fy, mut ax) = (vec![0.0; BATCH * 2 * k], vec![0.0; BATCH * d]);
        let fast = best_of(10, || {
            nufft.apply_batch(black_box(&x), &mut fy);
            nufft.adjoint_batch(black_box(&y), &mut ax).unwrap();
        });
        let ax_gemm = model.adjoint(&y).unwrap();
        let rel = |a: &[f64], b: &[f64]| {
            let e: f64 = a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum();
            (e / b.iter().map(|b| b * b).sum::<f64>()).sqrt()
        };
        println!(
            "{npix}×{npix}, batch {BATCH}, K = {k}: forward+adjoint {:.2} ms = {:.1} GFLOP/s; plain f64 GEMM of the \
             same shapes {:.2} ms = {:.1} GFLOP/s; ratio {:.2}; separable per-image kernel {:.1} ms ({:.1}× slower); \
             NUFFT {:.2} ms ({:.2}× the GEMM path's time; relative difference forward {:.1e}, adjoint {:.1e})",
            ours * 1e3,
            flops / ours / 1e9,
            plain * 1e3,
            flops / plain / 1e9,
            plain / ours,
            separable * 1e3,
            separable / ours,
            fast * 1e3,
            fast / ours,
            rel(&fy, &y),
            rel(&ax, &ax_gemm)
        );
        g.bench_with_input(BenchmarkId::new("forward+adjoint", format!("{npix}x{npix}")), &x, |b, x| {
            b.iter(|| {
                black_box(model.forward(black_box(x)).unwrap());
                black_box(model.adjoint(black_box(&y)).unwrap());
            })
        });
        g.bench_with_input(BenchmarkId::new("nufft forward+adjoint", format!("{npix}x{npix}")), &x, |b, x| {
            let (mut fy, mut ax) = (vec![0.0; BATCH * 2 * k], vec![0.0; BATCH * d]);
            b.iter(|| {
                nufft.apply_batch(black_box(x), &mut fy);
                nufft.adjoint_batch(black_box(&y), &mut ax).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
