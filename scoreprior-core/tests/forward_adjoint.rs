//! Dot-product tests `⟨A x, y⟩ = ⟨x, Aᵀ y⟩` for every linear primitive and for chains, on
//! random shapes and random vectors (property tests), to 1e-12 of the products' scale in f64. A wrong
//! index, a missed boundary preimage or a wrong FFT normalisation breaks the identity by
//! O(1), far above round-off.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use scoreprior_core::forward::ops::{self, Boundary, Kernel};
use scoreprior_core::forward::{parse_chain, Chain, Op, Shape};

fn randv(n: usize, rng: &mut impl Rng) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `|⟨Ax, y⟩ − ⟨x, Aᵀy⟩|` relative to the Cauchy–Schwarz scale `max(‖Ax‖‖y‖, ‖x‖‖Aᵀy‖)`,
/// the size of the round-off in either sum. Relative to `|⟨Ax, y⟩|` itself the gap is
/// unbounded when the two products cancel (a 1-point NUDFT gave ⟨Ax, y⟩ = 2.6e-4 at a scale
/// of 7, a round-off gap of 5.7e-16 and a "relative" mismatch of 2e-12); a wrong index or
/// normalisation still gives O(1) at this scale.
fn relative_gap(x: &[f64], y: &[f64], ax: &[f64], aty: &[f64]) -> f64 {
    let norm = |v: &[f64]| dot(v, v).sqrt();
    let scale = (norm(ax) * norm(y)).max(norm(x) * norm(aty)).max(1e-300);
    (dot(ax, y) - dot(x, aty)).abs() / scale
}

/// Relative mismatch of the dot-product identity for one random pair, for an operator
/// `R^d → R^m` given by its two products (a primitive [`Op`] or a [`Chain`], which is not one).
fn identity_gap(
    d: usize,
    m: usize,
    seed: u64,
    apply: impl Fn(&[f64], &mut [f64]),
    adjoint: impl Fn(&[f64], &mut [f64]),
) -> f64 {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = randv(d, &mut rng);
    let y = randv(m, &mut rng);
    let mut ax = vec![0.0; m];
    apply(&x, &mut ax);
    let mut aty = vec![0.0; d];
    adjoint(&y, &mut aty);
    relative_gap(&x, &y, &ax, &aty)
}

/// [`identity_gap`] of a primitive.
fn mismatch(op: &dyn Op, seed: u64) -> f64 {
    let (d, m) = (op.input_shape().len(), op.output_shape().len());
    identity_gap(d, m, seed, |x, ax| op.apply(x, ax), |y, aty| op.adjoint(y, aty).unwrap())
}

/// [`identity_gap`] of a chain.
fn chain_mismatch(chain: &Chain, seed: u64) -> f64 {
    let (d, m) = (chain.input_shape().len(), chain.output_shape().len());
    identity_gap(d, m, seed, |x, ax| chain.apply(x, ax), |y, aty| chain.adjoint(y, aty).unwrap())
}

const TOL: f64 = 1e-12;

fn shape() -> impl Strategy<Value = Shape> {
    (1usize..=3, 1usize..=12, 1usize..=12).prop_map(|(c, h, w)| Shape::new(c, h, w))
}
fn boundary() -> impl Strategy<Value = Boundary> {
    prop_oneof![Just(Boundary::Zero), Just(Boundary::Reflect), Just(Boundary::Circular)]
}

proptest! {
    // 256 cases per property: the boundaries, kernels and shapes are drawn together, so a
    // rare combination needs many draws to be hit.
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn identity_scale_mask(s in shape(), f in -3.0f64..3.0, keep in 0.1f64..1.0, seed in 0u64..1000) {
        prop_assert!(mismatch(&ops::Identity::new(s), seed) < TOL);
        prop_assume!(f.abs() > 1e-3);
        prop_assert!(mismatch(&ops::Scale::new(s, f), seed) < TOL);
        let m = ops::Mask::random(s, keep, seed).unwrap();
        prop_assume!(m.mask().iter().any(|&b| b));
        prop_assert!(mismatch(&m, seed) < TOL);
    }

    #[test]
    fn subsample_and_pool(c in 1usize..=3, hf in 1usize..=5, wf in 1usize..=5, f in 1usize..=4, seed in 0u64..1000) {
        let s = Shape::new(c, hf * f, wf * f);
        prop_assert!(mismatch(&ops::Subsample::new(s, f).unwrap(), seed) < TOL);
        prop_assert!(mismatch(&ops::AvgPool::new(s, f).unwrap(), seed) < TOL);
    }

    #[test]
    fn crop_and_pad(s in shape(), t in 0usize..4, b in 0usize..4, l in 0usize..4, r in 0usize..4, seed in 0u64..1000) {
        prop_assert!(mismatch(&ops::Pad::new(s, t, b, l, r), seed) < TOL);
        let (h, w) = (s.h.saturating_sub(t).max(1), s.w.saturating_sub(l).max(1));
        let (t, l) = (t.min(s.h - h), l.min(s.w - w));
        prop_assert!(mismatch(&ops::Crop::new(s, t, l, h, w).unwrap(), seed) < TOL);
    }

    #[test]
    fn convolution_every_kernel_and_boundary(
        s in shape(), bd in boundary(), kh in 1usize..=5, kw in 1usize..=5, sigma in 0.3f64..3.0,
        len in 1usize..=5, angle in 0.0f64..180.0, seed in 0u64..1000,
    ) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let kernels = [
            Kernel::custom(randv(kh * kw, &mut rng), kh, kw).unwrap(),
            Kernel::gaussian(sigma, kh).unwrap(),
            Kernel::boxcar(kw).unwrap(),
            Kernel::motion(len, angle).unwrap(),
        ];
        for k in kernels {
            let (a, b) = k.size();
            if a <= s.h && b <= s.w {
                let conv = ops::Conv2d::new(s, k, bd).unwrap();
                prop_assert!(mismatch(&conv, seed) < TOL, "{}", conv.describe());
            }
        }
    }

    #[test]
    fn fourier_primitives(c in 1usize..=2, h in 1usize..=12, w in 1usize..=12, k in 1usize..=12, seed in 0u64..1000) {
        let s = Shape::new(c, h, w);
        prop_assert!(mismatch(&ops::Fft2::new(s), seed) < TOL);
        prop_assert!(mismatch(&ops::Ifft2::new(Shape::new(2 * c, h, w)).unwrap(), seed) < TOL);
        if k <= h.min(w) {
            prop_assert!(mismatch(&ops::DftLowpass::new(s, k).unwrap(), seed) < TOL);
        }
    }

    #[test]
    fn dense_and_nudft(h in 1usize..=8, w in 1usize..=8, m in 1usize..=20, seed in 0u64..1000) {
        let s = Shape::new(1, h, w);
        prop_assert!(mismatch(&ops::DenseMatrix::gaussian(s, m, seed).unwrap(), seed) < TOL);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let psize = 2e-11;
        let u: Vec<f64> = (0..m).map(|_| rng.gen_range(-8e9..8e9)).collect();
        let v: Vec<f64> = (0..m).map(|_| rng.gen_range(-8e9..8e9)).collect();
        prop_assert!(mismatch(&ops::Nudft::new(s, u, v, psize).unwrap(), seed) < TOL);
    }

    #[test]
    fn random_chains(hf in 1usize..=4, wf in 1usize..=4, which in 0usize..6, seed in 0u64..1000) {
        // Shapes are multiples of 4 so every factor below divides them.
        let s = [1, 4 * hf, 4 * wf];
        let text = [
            "gaussian_blur(sigma=1.0, size=3) | subsample(factor=2)",
            "box_blur(size=3, boundary=circular) | avg_pool(factor=2) | scale(factor=-0.5)",
            "fft2 | cartesian_mask(acceleration=2, center=2)",
            "fft2 | poisson_mask(acceleration=2, center=2, seed=3) | ifft2",
            "pad(top=1, left=2) | crop(top=1, left=1, height=3, width=3) | gaussian_matrix(m=7, seed=1)",
            "motion_blur(length=3, angle=45, boundary=zero) | mask(keep=0.7, seed=2) | dft_lowpass(k=2)",
        ][which];
        let chain = parse_chain(text, s).unwrap();
        prop_assert!(chain_mismatch(&chain, seed) < TOL, "{text}");
    }
}

#[test]
fn fft2_is_orthonormal_and_inverted_by_ifft2() {
    // Parseval and the inverse on an odd × even shape (fftshift ≠ ifftshift there).
    let s = Shape::new(2, 5, 6);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let x = randv(s.len(), &mut rng);
    let f = ops::Fft2::new(s);
    let mut y = vec![0.0; 2 * s.len()];
    f.apply(&x, &mut y);
    assert!((dot(&x, &x) - dot(&y, &y)).abs() < 1e-12 * dot(&x, &x));
    let mut back = vec![0.0; s.len()];
    ops::Ifft2::new(f.output_shape()).unwrap().apply(&y, &mut back);
    for (a, b) in x.iter().zip(&back) {
        assert!((a - b).abs() < 1e-13);
    }
}

/// One coefficient of a DFT by the direct sum over the `h × w` image `x`: the real and
/// imaginary parts of `Σ x[i,j] e^{i·phase(i, j)}` (the reference of the Fourier operators).
fn direct_dft(x: &[f64], h: usize, w: usize, phase: impl Fn(usize, usize) -> f64) -> (f64, f64) {
    let (mut re, mut im) = (0.0, 0.0);
    for i in 0..h {
        for j in 0..w {
            let ph = phase(i, j);
            re += x[i * w + j] * ph.cos();
            im += x[i * w + j] * ph.sin();
        }
    }
    (re, im)
}

#[test]
fn fft2_matches_a_direct_centred_dft() {
    // Direct sum with centred indices: Y[p,q] = Σ x[i,j] e^{−2πi((p−h/2)(i−h/2)/h + (q−w/2)(j−w/2)/w)}/√(hw).
    let (h, w) = (4, 6);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let x = randv(h * w, &mut rng);
    let mut y = vec![0.0; 2 * h * w];
    ops::Fft2::new(Shape::new(1, h, w)).apply(&x, &mut y);
    let tau = 2.0 * std::f64::consts::PI;
    for p in 0..h {
        for q in 0..w {
            let (re, im) = direct_dft(&x, h, w, |i, j| {
                -tau * ((p as f64 - (h / 2) as f64) * (i as f64 - (h / 2) as f64) / h as f64
                    + (q as f64 - (w / 2) as f64) * (j as f64 - (w / 2) as f64) / w as f64)
            });
            let n = ((h * w) as f64).sqrt();
            assert!((y[p * w + q] - re / n).abs() < 1e-12);
            assert!((y[h * w + p * w + q] - im / n).abs() < 1e-12);
        }
    }
}

#[test]
fn dft_lowpass_matches_unnormalised_unshifted_dft() {
    let (h, w, k) = (6, 5, 3);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let x = randv(h * w, &mut rng);
    let mut y = vec![0.0; 2 * k * k];
    ops::DftLowpass::new(Shape::new(1, h, w), k).unwrap().apply(&x, &mut y);
    let tau = 2.0 * std::f64::consts::PI;
    for p in 0..k {
        for q in 0..k {
            let (re, im) = direct_dft(&x, h, w, |i, j| -tau * ((p * i) as f64 / h as f64 + (q * j) as f64 / w as f64));
            assert!((y[p * k + q] - re).abs() < 1e-12 && (y[k * k + p * k + q] - im).abs() < 1e-12);
        }
    }
}

#[test]
fn reflect_boundary_mirrors_without_repeating_the_edge() {
    // A 1×3 kernel [1, 0, 0] reads x[j−1]; at j = 0 reflect reads x[1] (NumPy "reflect").
    let k = Kernel::custom(vec![1.0, 0.0, 0.0], 1, 3).unwrap();
    let conv = ops::Conv2d::new(Shape::new(1, 1, 4), k, Boundary::Reflect).unwrap();
    let mut y = [0.0; 4];
    conv.apply(&[10.0, 20.0, 30.0, 40.0], &mut y);
    assert_eq!(y, [20.0, 10.0, 20.0, 30.0]);
}

#[test]
fn masks_have_the_requested_density_and_a_full_centre() {
    for (h, w, acc, c) in [(32, 32, 4.0, 4), (64, 64, 8.0, 6), (16, 24, 3.0, 2)] {
        let m = ops::masks::poisson_disc(h, w, acc, c, 1).unwrap();
        let n = m.iter().filter(|&&b| b).count() as f64;
        let target = (h * w) as f64 / acc;
        assert!((n - target).abs() < 0.1 * target, "{h}×{w} accel {acc}: {n} vs {target}");
        for i in h / 2 - c / 2..h / 2 - c / 2 + c {
            for j in w / 2 - c / 2..w / 2 - c / 2 + c {
                assert!(m[i * w + j]);
            }
        }
        // Variable density: the central quarter is sampled more densely than the rest.
        let (mut inner, mut n_in) = (0.0, 0.0);
        for i in 0..h {
            for j in 0..w {
                if (i as f64 - h as f64 / 2.0).abs() < h as f64 / 4.0
                    && (j as f64 - w as f64 / 2.0).abs() < w as f64 / 4.0
                {
                    n_in += 1.0;
                    inner += m[i * w + j] as u8 as f64;
                }
            }
        }
        assert!(inner / n_in > n / (h * w) as f64);
    }
    assert!(ops::masks::poisson_disc(16, 16, 64.0, 4, 0).is_err());
    assert!(ops::masks::cartesian(16, 16, 8.0, 4, 0).is_err());
}

#[test]
fn separable_fast_path_equals_the_dense_sum() {
    // Gaussian and box kernels run as two 1-D passes; the same taps as a custom (dense)
    // kernel must give the same image and the same adjoint, for every boundary.
    let s = Shape::new(2, 9, 7);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let x = randv(s.len(), &mut rng);
    for k in [Kernel::gaussian(1.3, 5).unwrap(), Kernel::boxcar(4).unwrap(), Kernel::gaussian(2.0, 7).unwrap()] {
        let (kh, kw) = k.size();
        let dense = Kernel::custom(k.data().to_vec(), kh, kw).unwrap();
        for bd in [Boundary::Zero, Boundary::Reflect, Boundary::Circular] {
            let (a, b) = (ops::Conv2d::new(s, k.clone(), bd).unwrap(), ops::Conv2d::new(s, dense.clone(), bd).unwrap());
            let (mut ya, mut yb) = (vec![0.0; s.len()], vec![0.0; s.len()]);
            a.apply(&x, &mut ya);
            b.apply(&x, &mut yb);
            let (mut xa, mut xb) = (vec![0.0; s.len()], vec![0.0; s.len()]);
            a.adjoint(&x, &mut xa).unwrap();
            b.adjoint(&x, &mut xb).unwrap();
            for (p, q) in ya.iter().zip(&yb).chain(xa.iter().zip(&xb)) {
                assert!((p - q).abs() < 1e-14, "{bd:?}: {p} vs {q}");
            }
        }
    }
}
