//! Forward + adjoint throughput of the measurement operators on a batch of 64 images at
//! 32×32 and 64×64: Gaussian blur (9×9 kernel, reflect) followed by 2× subsampling, MRI
//! (centred FFT and a Poisson-disc mask at 8× acceleration), and EHT 2017 interferometry
//! (NUDFT at the Sgr A* uv-coverage, 10-minute cadence over 24 h).
//!
//! Run: `cargo bench --bench forward`. Throughput is images per second for one forward
//! and one adjoint (VJP) per image.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use scoreprior_core::forward::interferometry::{Array, Interferometer, Observation};
use scoreprior_core::forward::{parse_model, ForwardModel, Model};

const BATCH: usize = 64;

fn models(n: usize) -> Vec<(&'static str, Model)> {
    let cov = Array::eht2017().observe(&Observation::sgr_a_star()).unwrap();
    let eht = Interferometer::new(cov, n, 160.0).unwrap();
    vec![
        (
            "blur",
            parse_model("gaussian_blur(sigma=1.5, size=9) | subsample(factor=2)", "gaussian(sigma=0.05)", [1, n, n])
                .unwrap(),
        ),
        (
            "mri",
            parse_model(
                "fft2 | poisson_mask(acceleration=8, center=4, seed=1)",
                "complex_gaussian(sigma=0.01)",
                [1, n, n],
            )
            .unwrap(),
        ),
        ("eht", eht.visibility_model().unwrap()),
    ]
}

fn forward_adjoint(c: &mut Criterion) {
    for n in [32usize, 64] {
        let mut group = c.benchmark_group(format!("forward_adjoint_{n}x{n}_batch{BATCH}"));
        group.throughput(Throughput::Elements(BATCH as u64));
        group.sample_size(10);
        for (name, m) in models(n) {
            let x: Vec<f64> = (0..BATCH * n * n).map(|i| ((i * 31) % 97) as f64 / 97.0).collect();
            let y = m.forward(&x).unwrap();
            group.bench_with_input(
                BenchmarkId::from_parameter(format!("{name} (M={})", m.output_dim())),
                &x,
                |b, x| {
                    b.iter(|| {
                        let fx = m.forward(black_box(x)).unwrap();
                        let aty = m.adjoint(black_box(&y)).unwrap();
                        black_box((fx, aty))
                    })
                },
            );
        }
        group.finish();
    }
}

criterion_group!(benches, forward_adjoint);
criterion_main!(benches);
