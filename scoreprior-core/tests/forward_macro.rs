//! `#[forward_model]` structs: the compile-time output shape equals the run-time chain's,
//! every primitive the macro accepts (every compile-time entry of the one table,
//! `scoreprior_primitives::PRIMITIVES`) builds in core through the macro, and the
//! generated impl computes the declared operator (impulse responses worked out by hand, exact
//! adjoint, VJP for non-linear chains).

use rand::{Rng, SeedableRng};
use scoreprior_core::forward::{forward_model, ForwardModel};

#[forward_model(
    input = [1, 32, 32],
    ops = [gaussian_blur(sigma = 1.5, size = 9), subsample(factor = 2)],
    noise = gaussian(sigma = 0.05),
)]
pub struct BlurDown;

#[forward_model(input = [1, 16, 16], ops = [identity], noise = gaussian(sigma = 0.2))]
struct Denoise;

#[forward_model(input = [1, 16, 16], ops = [fft2, poisson_mask(acceleration = 4, center = 4, seed = 1)], noise = complex_gaussian(sigma = 0.01))]
struct Mri;

#[forward_model(
    input = [3, 12, 8],
    ops = [
        scale(factor = -2.5), mask(keep = 0.8, seed = 3), box_blur(size = 3, boundary = zero),
        motion_blur(length = 4, angle = 30, boundary = circular), avg_pool(factor = 2),
        pad(top = 1, bottom = 2, left = 3), crop(top = 1, left = 2, height = 8, width = 5),
        fft2, cartesian_mask(acceleration = 2, center = 2), ifft2, dft_lowpass(k = 3),
        gaussian_matrix(m = 10, seed = 4),
    ],
    noise = gaussian(sigma = 0.1),
)]
struct EveryPrimitive;

#[forward_model(input = [1, 8, 8], ops = [gaussian_blur(sigma = 1.0, size = 3), fft2, magnitude], noise = gaussian(sigma = 0.3))]
struct PhaseRetrieval;

/// The structs above, between them, use every primitive the macro accepts.
#[test]
fn the_structs_use_every_compile_time_primitive() {
    use scoreprior_core::forward::spec::PRIMITIVES;
    let used: Vec<&str> = [BlurDown::CHAIN, Denoise::CHAIN, Mri::CHAIN, EveryPrimitive::CHAIN, PhaseRetrieval::CHAIN]
        .iter()
        .flat_map(|c| c.split(" | "))
        .map(|call| call.split('(').next().unwrap())
        .collect();
    for def in PRIMITIVES.iter().filter(|d| d.compile_time) {
        assert!(used.contains(&def.name), "no struct uses `{}`", def.name);
    }
}

fn randv(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

#[test]
fn compile_time_shapes_match_the_built_chains() {
    assert_eq!(BlurDown::OUTPUT_SHAPE, [1, 16, 16]);
    assert_eq!(BlurDown.output_dim(), 256);
    assert_eq!(Mri::OUTPUT_SHAPE, [2, 16, 16]);
    // [3,12,8] → pool 2 → [3,6,4] → pad → [3,9,7] → crop → [3,8,5] → fft2 → [6,8,5] → ifft2 → [3,8,5]
    // → dft_lowpass 3 → [6,3,3] → gaussian_matrix 10 → [1,1,10]
    assert_eq!(EveryPrimitive::OUTPUT_SHAPE, [1, 1, 10]);
    assert_eq!(PhaseRetrieval::OUTPUT_SHAPE, [1, 8, 8]);
    for (out, m) in [
        (BlurDown::OUTPUT_SHAPE, BlurDown::model()),
        (Denoise::OUTPUT_SHAPE, Denoise::model()),
        (Mri::OUTPUT_SHAPE, Mri::model()),
        (EveryPrimitive::OUTPUT_SHAPE, EveryPrimitive::model()),
        (PhaseRetrieval::OUTPUT_SHAPE, PhaseRetrieval::model()),
    ] {
        assert_eq!(m.output_shape().to_array(), out);
    }
    // The macro's compile-time linearity agrees with the built chain's.
    assert_eq!(PhaseRetrieval.is_linear(), PhaseRetrieval::model().is_linear());
    assert_eq!(EveryPrimitive.is_linear(), EveryPrimitive::model().is_linear());
    assert!(!PhaseRetrieval.is_linear() && EveryPrimitive.is_linear());
}

/// The normalised 1-D Gaussian tap `g(d)/Σ g` of `gaussian_blur(sigma = 1.5, size = 9)`,
/// written out here from the definition (zero outside the 9 taps).
fn tap(d: i64) -> f64 {
    let g = |d: i64| (-((d * d) as f64) / (2.0 * 1.5 * 1.5)).exp();
    let sum: f64 = (-4..=4).map(g).sum();
    if d.abs() > 4 {
        0.0
    } else {
        g(d) / sum
    }
}

/// `BlurDown` against outputs computed by hand: an impulse through a separable, symmetric
/// 9×9 Gaussian (reflect boundary) and then `x[::2, ::2]`; and the adjoint of an output
/// impulse (zero-fill upsampling, then the same blur).
#[test]
fn generated_model_matches_hand_computed_impulse_responses() {
    let impulse = |r: usize, c: usize, h: usize, w: usize| {
        let mut x = vec![0.0; h * w];
        x[r * w + c] = 1.0;
        x
    };
    // Interior impulse at (10, 14): output (p, q) samples the blur at (2p, 2q).
    let y = BlurDown.forward(&impulse(10, 14, 32, 32)).unwrap();
    assert_eq!(y.len(), 256);
    for p in 0..16i64 {
        for q in 0..16i64 {
            let want = tap(2 * p - 10) * tap(2 * q - 14);
            let got = y[(p * 16 + q) as usize];
            assert!((got - want).abs() < 1e-15, "({p}, {q}): {got} vs {want}");
        }
    }
    // Impulse at (1, 1): the reflect boundary reads x[-1] = x[1], so each axis sees the
    // impulse twice, at offsets d − 1 and d + 1.
    let y = BlurDown.forward(&impulse(1, 1, 32, 32)).unwrap();
    for p in 0..16i64 {
        for q in 0..16i64 {
            let row = tap(2 * p - 1) + tap(2 * p + 1);
            let col = tap(2 * q - 1) + tap(2 * q + 1);
            let got = y[(p * 16 + q) as usize];
            assert!((got - row * col).abs() < 1e-15, "({p}, {q}): {got} vs {}", row * col);
        }
    }
    // Adjoint of the output impulse at (5, 7): zero-filled to (10, 14), then blurred
    // (interior, so the transposed symmetric kernel is the kernel).
    let x = BlurDown.adjoint(&impulse(5, 7, 16, 16)).unwrap();
    for i in 0..32i64 {
        for j in 0..32i64 {
            let want = tap(i - 10) * tap(j - 14);
            let got = x[(i * 32 + j) as usize];
            assert!((got - want).abs() < 1e-15, "({i}, {j}): {got} vs {want}");
        }
    }
    // A batch of two is two independent images.
    let mut two = impulse(10, 14, 32, 32);
    two.extend(impulse(1, 1, 32, 32));
    let y2 = BlurDown.forward(&two).unwrap();
    assert_eq!(&y2[..256], &BlurDown.forward(&impulse(10, 14, 32, 32)).unwrap()[..]);
    assert_eq!(&y2[256..], &BlurDown.forward(&impulse(1, 1, 32, 32)).unwrap()[..]);
}

#[test]
fn generated_adjoint_passes_the_dot_product_test() {
    let models: [&dyn ForwardModel; 4] = [&BlurDown, &Denoise, &Mri, &EveryPrimitive];
    for (s, m) in models.into_iter().enumerate() {
        let n = 3;
        let x = randv(n * m.input_dim(), 10 + s as u64);
        let y = randv(n * m.output_dim(), 20 + s as u64);
        let ax = m.forward(&x).unwrap();
        let aty = m.adjoint(&y).unwrap();
        let l: f64 = ax.iter().zip(&y).map(|(a, b)| a * b).sum();
        let r: f64 = x.iter().zip(&aty).map(|(a, b)| a * b).sum();
        assert!((l - r).abs() < 1e-12 * l.abs().max(r.abs()), "model {s}: {l} vs {r}");
    }
}

#[test]
fn non_linear_chain_has_a_vjp_and_no_adjoint() {
    let m = PhaseRetrieval;
    assert!(m.adjoint(&vec![0.0; 64]).is_err());
    // VJP against central differences of ⟨v, A(x)⟩.
    let x = randv(64, 5);
    let v = randv(64, 6);
    let g = m.vjp(&x, &v).unwrap();
    let h = 1e-6;
    for i in [0, 9, 27, 63] {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[i] += h;
        xm[i] -= h;
        let fp: f64 = m.forward(&xp).unwrap().iter().zip(&v).map(|(a, b)| a * b).sum();
        let fm: f64 = m.forward(&xm).unwrap().iter().zip(&v).map(|(a, b)| a * b).sum();
        let fd = (fp - fm) / (2.0 * h);
        assert!((fd - g[i]).abs() < 1e-7 * (1.0 + fd.abs()), "coordinate {i}: {fd} vs {}", g[i]);
    }
}
