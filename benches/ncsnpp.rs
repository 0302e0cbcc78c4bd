//! NCSN++ throughput (small configuration): forward and forward+VJP images/s at 16×16 and
//! 32×32, one thread vs two. Forward: a batch of 64 images. Forward+VJP: 4 images × 16
//! probes = 64 image–probe pairs per call (the pairs are stacked into one batch, as the
//! Hutchinson estimator does), reported per pair. Each run also prints the achieved matrix
//! product GFLOP/s (FLOPs counted by `ops::MATMUL_FLOPS`; forward+VJP both by the count of a
//! VJP with weight gradients, three times the forward products, and by the products the score's
//! VJP in `x` alone executes) next to the GFLOP/s of a plain
//! f32 GEMM of the network's typical shape in the same pool, and their ratio (how close the
//! network runs to its matrix products' ceiling). Where `benches/reference/numpy_sgemm.py`
//! has been run on this machine, the lines also give OpenBLAS's rate at the same GEMM shape and
//! thread count, on the forward pass's own products and on a square 1024³ product (see
//! [`OpenBlas`]).
//!
//! The `products` group compares, back to back in one process (best of alternating calls),
//! the network's matrix products on `ops::matmul_op`'s register-tiled kernel against dfdx's
//! `matmul` at the network's shapes (forward, and forward + both VJPs), then the whole
//! network's forward and forward+VJP with the products on each path (`DFDX_PRODUCTS`).
//!
//! The `second_order` group times the adjoint's second-order term `∇x(εᵀJε)` at 16×16, batch
//! 8, 2 probes, two threads, alone and within the adjoint's call: the exact
//! forward-over-reverse pass against the central difference of `2·K·n` VJPs, and prints the
//! ratios.

mod common;

use std::sync::atomic::Ordering;

use common::best_of;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use scoreprior::core::score::ScoreModel;
use scoreprior::core::sde::VpSde;
use scoreprior::models::ncsnpp::{NcsnppConfig, NcsnppNet};
use scoreprior::models::ops::matmul::DFDX_PRODUCTS;
use scoreprior::models::ops::{conv3x3, matmul_op, Grid, MATMUL_FLOPS};
use scoreprior::models::score::{NcsnppScore, SecondOrder};

fn model(size: usize) -> NcsnppScore {
    let mut cfg = NcsnppConfig::small();
    cfg.init_scale = 1.0;
    let net = NcsnppNet::new(cfg, 1, size, size).unwrap();
    let w = net.init_params(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    NcsnppScore::new(net, &w, VpSde::default()).unwrap().with_chunk(CHUNK)
}

/// Images (or image–probe pairs) per forward pass: a call of 64 is two parallel tasks.
const CHUNK: usize = 32;

/// GFLOP/s of a plain f32 `(16·256)×288 · 288×32` product through dfdx's `matmul`, run in
/// the calling rayon pool: the im2col GEMM of a 3×3 convolution from 32 to 32 channels on
/// a chunk of 16 images of 16×16, i.e. the ceiling the network's products could reach.
fn gemm_gflops() -> f64 {
    let dev = Cpu::default();
    let (m, k, n) = (16 * 256, 288, 32);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let a: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec((0..m * k).map(|_| rng.gen()).collect(), (m, k));
    let b: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec((0..k * n).map(|_| rng.gen()).collect(), (k, n));
    let s = best_of(20, || {
        std::hint::black_box(a.clone().matmul(b.clone()));
    });
    2.0 * (m * k * n) as f64 / s / 1e9
}

/// Where `benches/reference/numpy_sgemm.py` writes its rates (by default).
const OPENBLAS_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/reference/out/numpy_sgemm.json");

/// OpenBLAS's f32 GEMM rates from `benches/reference/numpy_sgemm.py` (numpy's bundled OpenBLAS),
/// the peer these rates are measured against: dfdx's `gemm` (AVX2/FMA kernels) is the ceiling
/// the network can reach through dfdx, an AVX-512 BLAS is closer to what the hardware allows.
/// The file is machine-specific (not committed), so it is read if present and never required.
struct OpenBlas(Option<serde_json::Value>);

impl OpenBlas {
    /// Reads the rates and says where they come from, or how to produce them.
    fn load() -> Self {
        let v = std::fs::read_to_string(OPENBLAS_JSON)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
        match &v {
            Some(v) => eprintln!(
                "OpenBLAS rates from {OPENBLAS_JSON} ({}, measured {}, load average {}): compare them only if \
                 that was this machine",
                v["blas"]["config"].as_str().unwrap_or("?"),
                v["date"].as_str().unwrap_or("?"),
                v["machine"]["load_average"][0].as_f64().map_or("?".into(), |l| format!("{l:.1}")),
            ),
            None => eprintln!(
                "no OpenBLAS rates ({OPENBLAS_JSON} missing or unreadable); to print them beside ours, run \
                 `python3 benches/reference/numpy_sgemm.py` (any Python with numpy) first"
            ),
        }
        Self(v)
    }

    /// GFLOP/s of the row of `list` (`rates` or `network`) whose fields equal `key`.
    fn find(&self, list: &str, key: &[(&str, u64)]) -> Option<f64> {
        let rows = self.0.as_ref()?[list].as_array()?;
        let row = rows.iter().find(|r| key.iter().all(|(k, v)| r[*k].as_u64() == Some(*v)))?;
        row["gflops"].as_f64()
    }

    /// `; OpenBLAS …` for a line reporting `ours` GFLOP/s at `threads` on `size`×`size`: the
    /// rate at [`gemm_gflops`]'s shape, and on all products of one forward pass over a
    /// [`CHUNK`] of images (for forward+VJP only indicative: the backward products have other
    /// shapes); empty without the file.
    fn beside(&self, ours: f64, threads: usize, size: usize) -> String {
        let t = threads as u64;
        let gemm = self.find("rates", &[("m", 16 * 256), ("k", 288), ("n", 32), ("batch", 1), ("threads", t)]);
        let pass = self.find("network", &[("size", size as u64), ("images", CHUNK as u64), ("threads", t)]);
        let square = self.find("rates", &[("m", 1024), ("k", 1024), ("n", 1024), ("batch", 1), ("threads", t)]);
        let mut line = match (gemm, pass) {
            (Some(g), Some(p)) => format!(
                "; OpenBLAS {g:.1} GFLOP/s at that shape (ratio {:.2}), {p:.1} on the pass's products (ratio {:.2})",
                ours / g,
                ours / p
            ),
            (Some(g), None) => format!("; OpenBLAS {g:.1} GFLOP/s at that shape (ratio {:.2})", ours / g),
            _ => String::new(),
        };
        if let Some(q) = square {
            line += &format!(", {q:.1} at 1024³ (ratio {:.2})", ours / q);
        }
        line
    }
}

/// The model at `size` and its inputs: 64 images, their first 4, and 16 Rademacher probes for
/// each of those 4 (the forward and forward+VJP calls of every group).
fn inputs(size: usize) -> (NcsnppScore, usize, Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = model(size);
    let d = m.dim();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let x64: Vec<f64> = (0..64 * d).map(|_| rng.gen()).collect();
    let x4 = x64[..4 * d].to_vec();
    let probes: Vec<f64> = (0..16 * 4 * d).map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 }).collect();
    (m, d, x64, x4, probes)
}

fn bench(c: &mut Criterion) {
    let openblas = OpenBlas::load();
    let mut g = c.benchmark_group("ncsnpp_small");
    g.sample_size(10);
    for size in [16usize, 32] {
        let (m, d, x64, x4, probes) = inputs(size);
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut out = vec![0.0; 64 * d];
            let gemm = pool.install(gemm_gflops);
            // FLOPs of one call from the counter, time from the best of a few untimed calls.
            let f0 = MATMUL_FLOPS.load(Ordering::Relaxed);
            pool.install(|| m.score(&x64, 0.5, &mut out).unwrap());
            let fl = (MATMUL_FLOPS.load(Ordering::Relaxed) - f0) as f64;
            let forward_flops = fl;
            let gf = fl / 1e9 / best_of(3, || pool.install(|| m.score(&x64, 0.5, &mut out).unwrap()));
            eprintln!(
                "{size}x{size} forward, {threads} thread(s): {:.2} GFLOP per call, {gf:.1} GFLOP/s; \
                 plain GEMM {gemm:.1} GFLOP/s; ratio {:.2}{}",
                fl / 1e9,
                gf / gemm,
                openblas.beside(gf, threads, size)
            );
            g.throughput(Throughput::Elements(64));
            g.bench_function(format!("forward/{size}x{size}/threads{threads}"), |b| {
                b.iter(|| pool.install(|| m.score(&x64, 0.5, &mut out).unwrap()))
            });
            let mut s = vec![0.0; 4 * d];
            let mut v = vec![0.0; 64 * d];
            let f0 = MATMUL_FLOPS.load(Ordering::Relaxed);
            pool.install(|| m.score_and_vjp(&x4, 0.5, &probes, &mut s, &mut v).unwrap());
            let executed = (MATMUL_FLOPS.load(Ordering::Relaxed) - f0) as f64;
            // The work of a forward+VJP that also forms the weights' gradients (three times the
            // forward products, what dfdx's backward did and the targets count): a
            // score's VJP skips `dW`, so it executes fewer products than this for the same
            // result, and a rate by this count is its throughput, not the products' speed.
            let fl = 3.0 * forward_flops;
            let t = best_of(3, || pool.install(|| m.score_and_vjp(&x4, 0.5, &probes, &mut s, &mut v).unwrap()));
            let gf = fl / 1e9 / t;
            eprintln!(
                "{size}x{size} fwd+VJP, {threads} thread(s): {:.1} pairs/s; {:.2} GFLOP per call counting weight \
                 gradients (3x forward), {gf:.1} GFLOP/s by that count; products executed {:.2} GFLOP, {:.1} GFLOP/s; \
                 plain GEMM {gemm:.1} GFLOP/s; ratio {:.2}{}",
                64.0 / t,
                fl / 1e9,
                executed / 1e9,
                executed / 1e9 / t,
                gf / gemm,
                openblas.beside(gf, threads, size)
            );
            g.bench_function(format!("forward_vjp/{size}x{size}/threads{threads}"), |b| {
                b.iter(|| pool.install(|| m.score_and_vjp(&x4, 0.5, &probes, &mut s, &mut v).unwrap()))
            });
        }
    }
    g.finish();
}

/// Exact vs difference second-order term (f32, the default precision) on 2 threads, alone
/// and inside the adjoint's call `score_and_adjoint_vjp` (`aᵀJ + ∇x(εᵀJε)`, what the exact
/// prior's adjoint evaluates).
fn bench_second_order(c: &mut Criterion) {
    let mut g = c.benchmark_group("second_order");
    g.sample_size(10);
    let size = 16;
    let (n, k) = (8, 2);
    let exact = model(size).with_chunk(16);
    let diff = model(size).with_chunk(16).with_second_order(SecondOrder::Differences);
    let d = exact.dim();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let x: Vec<f64> = (0..n * d).map(|_| rng.gen()).collect();
    let a: Vec<f64> = (0..n * d).map(|_| rng.gen::<f64>() - 0.5).collect();
    let probes: Vec<f64> = (0..k * d).map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 }).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let (mut s, mut out) = (vec![0.0; n * d], vec![0.0; n * d]);
    let mut second = |m: &NcsnppScore| pool.install(|| m.second_order(&x, 0.5, &probes, &mut out).unwrap());
    let (te, td) = (best_of(5, || second(&exact)), best_of(5, || second(&diff)));
    let mut adjoint =
        |m: &NcsnppScore| pool.install(|| m.score_and_adjoint_vjp(&x, 0.5, &a, &probes, &mut s, &mut out).unwrap());
    let (ae, ad) = (best_of(5, || adjoint(&exact)), best_of(5, || adjoint(&diff)));
    eprintln!(
        "{size}x{size}, batch {n}, {k} probes, 2 threads (best of 5): second order exact {:.1} ms, \
         differences {:.1} ms (ratio {:.2}); adjoint call exact {:.1} ms, differences {:.1} ms (ratio {:.2})",
        te * 1e3,
        td * 1e3,
        td / te,
        ae * 1e3,
        ad * 1e3,
        ad / ae
    );
    for (name, m) in [("exact", &exact), ("differences", &diff)] {
        g.bench_function(format!("second_order/{name}/{size}x{size}/batch{n}/probes{k}/threads2"), |b| {
            b.iter(|| pool.install(|| m.second_order(&x, 0.5, &probes, &mut out).unwrap()))
        });
        g.bench_function(format!("adjoint_vjp/{name}/{size}x{size}/batch{n}/probes{k}/threads2"), |b| {
            b.iter(|| pool.install(|| m.score_and_adjoint_vjp(&x, 0.5, &a, &probes, &mut s, &mut out).unwrap()))
        });
    }
    g.finish();
}

/// `(m, k, n)` of NCSN++-small's products on a chunk of 32 images: the 3×3 convolutions at
/// 16×16 (16 → 16 channels, and 32 → 16 after a skip concatenation), the bench's GEMM shape,
/// at 8×8 (32 → 32, 64 → 32) and 4×4, and a 1×1 skip at 16×16.
const PRODUCT_SHAPES: [(usize, usize, usize); 7] = [
    (8192, 144, 16),
    (8192, 288, 16),
    (4096, 288, 32),
    (2048, 288, 32),
    (2048, 576, 32),
    (512, 288, 32),
    (8192, 16, 32),
];

/// `(images, size, c_in, c_out)` of NCSN++-small's 3×3 convolutions on a chunk of 32 images
/// of 16×16 (and 16 images for the bench's GEMM shape): 16 → 16 and 32 → 16 at full size,
/// 32 → 32 and 64 → 32 at 8×8, 32 → 32 at 4×4.
const CONV_SHAPES: [(usize, usize, usize, usize); 6] =
    [(32, 16, 16, 16), (32, 16, 32, 16), (16, 16, 32, 32), (32, 8, 32, 32), (32, 8, 64, 32), (32, 4, 32, 32)];

/// Seconds of the best of `n` rounds of `(f(true), f(false))` (old path, new path),
/// alternating so that both see the same load.
fn best_of_pair(n: usize, mut f: impl FnMut(bool)) -> (f64, f64) {
    let (mut a, mut b) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..n {
        a = a.min(best_of(1, || f(true)));
        b = b.min(best_of(1, || f(false)));
    }
    (a, b)
}

fn bench_products(c: &mut Criterion) {
    // As `NcsnppScore::new` does for the network's passes (this group runs before any).
    scoreprior::models::alloc::retain_freed_memory();
    let dev = Cpu::default();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut g = c.benchmark_group("products");
    g.sample_size(10);
    let (mut fl, mut t_old, mut t_new, mut tb_old, mut tb_new) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (m, k, n) in PRODUCT_SHAPES {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut t = |r: usize, c: usize| -> Tensor<(usize, usize), f32, Cpu> {
            dev.tensor_from_vec((0..r * c).map(|_| rng.gen::<f32>() - 0.5).collect(), (r, c))
        };
        let (a, w, dc) = (t(m, k), t(k, n), t(m, n));
        let flops = 2.0 * (m * k * n) as f64;
        let (o, nw) = pool.install(|| {
            best_of_pair(15, |old| {
                let y = if old { a.clone().matmul(w.clone()) } else { matmul_op(a.clone(), w.clone()) };
                drop(std::hint::black_box(y));
            })
        });
        // Forward and both VJPs (3 products), the output gradient `dc`.
        let fb = |old: bool| {
            let (at, wt) = (a.leaky_trace(), w.clone().retaped());
            let y = if old { at.matmul(wt) } else { matmul_op(at, wt) };
            std::hint::black_box((y * dc.clone()).sum::<(), _>().backward());
        };
        let (bo, bn) = pool.install(|| best_of_pair(7, fb));
        eprintln!(
            "product {m}x{k}x{n}, 1 thread: forward dfdx {:.1} GFLOP/s, ours {:.1} ({:.2}x); \
             forward+VJPs dfdx {:.1}, ours {:.1} ({:.2}x)",
            flops / o / 1e9,
            flops / nw / 1e9,
            o / nw,
            3.0 * flops / bo / 1e9,
            3.0 * flops / bn / 1e9,
            bo / bn
        );
        (fl, t_old, t_new, tb_old, tb_new) = (fl + flops, t_old + o, t_new + nw, tb_old + bo, tb_new + bn);
        g.throughput(Throughput::Elements((m * k * n) as u64));
        g.bench_function(format!("matmul/{m}x{k}x{n}"), |b| b.iter(|| matmul_op(a.clone(), w.clone())));
    }
    eprintln!(
        "all shapes, 1 thread: forward dfdx {:.1} GFLOP/s, ours {:.1} ({:.2}x); forward+VJPs dfdx {:.1}, ours {:.1} ({:.2}x)",
        fl / t_old / 1e9,
        fl / t_new / 1e9,
        t_old / t_new,
        3.0 * fl / tb_old / 1e9,
        3.0 * fl / tb_new / 1e9,
        tb_old / tb_new
    );
    // The 3×3 convolutions as the network runs them: im2col, product and bias on the old path
    // (`unfold3x3(x)·W` through dfdx's `matmul`) and fused in one op on the new one.
    let (mut fl, mut t_old, mut t_new, mut tb_old, mut tb_new) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (b, h, c, co) in CONV_SHAPES {
        let grid = Grid { b, h, w: h };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let mut t = |r: usize, c: usize| -> Tensor<(usize, usize), f32, Cpu> {
            dev.tensor_from_vec((0..r * c).map(|_| rng.gen::<f32>() - 0.5).collect(), (r, c))
        };
        let (x, w, dc) = (t(grid.rows(), c), t(9 * c, co), t(grid.rows(), co));
        let bias: Tensor<(usize,), f32, Cpu> = dev.tensor_from_vec(vec![0.1; co], (co,));
        let flops = 2.0 * (grid.rows() * 9 * c * co) as f64;
        let (o, nw) = pool.install(|| {
            best_of_pair(15, |old| {
                DFDX_PRODUCTS.store(old, Ordering::Relaxed);
                drop(std::hint::black_box(conv3x3(x.clone(), grid, w.clone(), bias.clone())));
            })
        });
        let (bo, bn) = pool.install(|| {
            best_of_pair(7, |old| {
                DFDX_PRODUCTS.store(old, Ordering::Relaxed);
                let y = conv3x3(x.leaky_trace(), grid, w.clone().retaped(), bias.clone().retaped());
                std::hint::black_box((y * dc.clone()).sum::<(), _>().backward());
            })
        });
        DFDX_PRODUCTS.store(false, Ordering::Relaxed);
        eprintln!(
            "conv3x3 {b}x{h}x{h}, {c}->{co} ({}x{}x{co}), 1 thread: forward old {:.1} GFLOP/s, new {:.1} ({:.2}x); \
             forward+VJPs old {:.1}, new {:.1} ({:.2}x)",
            grid.rows(),
            9 * c,
            flops / o / 1e9,
            flops / nw / 1e9,
            o / nw,
            3.0 * flops / bo / 1e9,
            3.0 * flops / bn / 1e9,
            bo / bn
        );
        (fl, t_old, t_new, tb_old, tb_new) = (fl + flops, t_old + o, t_new + nw, tb_old + bo, tb_new + bn);
    }
    eprintln!(
        "all convolutions, 1 thread: forward old {:.1} GFLOP/s, new {:.1} ({:.2}x); forward+VJPs old {:.1}, new {:.1} ({:.2}x)",
        fl / t_old / 1e9,
        fl / t_new / 1e9,
        t_old / t_new,
        3.0 * fl / tb_old / 1e9,
        3.0 * fl / tb_new / 1e9,
        tb_old / tb_new
    );
    g.finish();
    // The whole network with the products on each path, alternately.
    let rounds: usize = std::env::var("NCSNPP_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    for size in [16usize, 32] {
        let (m, d, x64, x4, probes) = inputs(size);
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut out = vec![0.0; 64 * d];
            let (mut s, mut v) = (vec![0.0; 4 * d], vec![0.0; 64 * d]);
            let path = |old: bool| DFDX_PRODUCTS.store(old, Ordering::Relaxed);
            let fwd = |old: bool| {
                path(old);
                pool.install(|| m.score(&x64, 0.5, &mut out).unwrap());
            };
            let (fo, fnw) = best_of_pair(rounds, fwd);
            let vjp = |old: bool| {
                path(old);
                pool.install(|| m.score_and_vjp(&x4, 0.5, &probes, &mut s, &mut v).unwrap());
            };
            let (vo, vn) = best_of_pair(rounds, vjp);
            path(false);
            eprintln!(
                "network {size}x{size}, {threads} thread(s), best of {rounds}: forward (64 images) dfdx products {:.1} ms, \
                 ours {:.1} ms ({:.2}x); forward+VJP (64 pairs) {:.1} ms, {:.1} ms ({:.2}x)",
                fo * 1e3,
                fnw * 1e3,
                fo / fnw,
                vo * 1e3,
                vn * 1e3,
                vo / vn
            );
        }
    }
}

criterion_group!(benches, bench_products, bench, bench_second_order);
criterion_main!(benches);
