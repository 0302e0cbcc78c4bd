//! The matrix-product op `ops::matmul_op` (and the convolution and dense layers built on it)
//! against dfdx's `matmul` and a naive loop, its VJPs against the dot-product identities
//! `⟨dA, A⟩ = ⟨dW, W⟩ = ⟨dC, A·W⟩` (the product is linear in each operand) and central finite
//! differences, in f64 and f32, on shapes that are no multiples of the kernel's tiles.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scoreprior_models::ops::*;

fn rand_e<E: Elem>(n: usize, seed: u64) -> Vec<E>
where
    Cpu: Device<E>,
{
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| E::of(r.gen::<f64>() * 2.0 - 1.0)).collect()
}

fn dot<E: Elem>(a: &[E], b: &[E]) -> f64
where
    Cpu: Device<E>,
{
    a.iter().zip(b).map(|(x, y)| x.f64() * y.f64()).sum()
}

fn close<E: Elem>(a: &[E], b: &[E], tol: f64, what: &str)
where
    Cpu: Device<E>,
{
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.f64().abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x.f64() - y.f64()).abs() <= tol * scale, "{what} [{i}]: {x:?} vs {y:?}");
    }
}

/// `(m, k, n)`: single rows and columns, `k = 1`, `n < 16`, `n` a multiple of 16 (the output
/// gradient read in place) and not, rows beyond one reduction block (256).
const SHAPES: [(usize, usize, usize); 8] =
    [(1, 1, 1), (7, 1, 5), (13, 3, 16), (29, 17, 33), (37, 40, 32), (300, 23, 7), (515, 9, 48), (61, 130, 64)];

/// Values and both gradients of `⟨dC, op(A, W)⟩` for `A` of `m×k`, `W` of `kw×n`.
fn run<E: Elem>(
    a: &[E],
    w: &[E],
    (m, k, n): (usize, usize, usize),
    kw: usize,
    dc: &[E],
    op: impl Fn(Mat<E, OwnedTape<E, Cpu>>, Mat<E, OwnedTape<E, Cpu>>) -> Mat<E, OwnedTape<E, Cpu>>,
) -> (Vec<E>, Vec<E>, Vec<E>)
where
    Cpu: Device<E>,
{
    let dev = Cpu::default();
    let at: Mat<E> = dev.tensor_from_vec(a.to_vec(), (m, k));
    let wt: Mat<E> = dev.tensor_from_vec(w.to_vec(), (kw, n));
    let y = op(at.leaky_trace(), wt.retaped());
    let rows = y.shape().0;
    let c = y.with_empty_tape().as_vec();
    let g = (y * dev.tensor_from_vec(dc.to_vec(), (rows, n))).sum::<(), _>().backward();
    (c, g.get(&at).as_vec(), g.get(&wt).as_vec())
}

fn matmul_against_dfdx_and_identities<E: Elem>(tol: f64)
where
    Cpu: Device<E>,
{
    for (s, &(m, k, n)) in SHAPES.iter().enumerate() {
        let what = format!("{} ({m},{k},{n})", std::any::type_name::<E>());
        let a: Vec<E> = rand_e(m * k, 10 + s as u64);
        let w: Vec<E> = rand_e(k * n, 20 + s as u64);
        let dc: Vec<E> = rand_e(m * n, 30 + s as u64);
        let (c, ga, gw) = run(&a, &w, (m, k, n), k, &dc, matmul_op);
        let (c0, ga0, gw0) = run(&a, &w, (m, k, n), k, &dc, |a, w| a.matmul(w));
        close(&c, &c0, tol, &format!("{what} values"));
        close(&ga, &ga0, tol, &format!("{what} dA"));
        close(&gw, &gw0, tol, &format!("{what} dW"));
        let form = dot(&dc, &c);
        let t = tol * (1.0 + form.abs()) * (k as f64).sqrt() * 10.0;
        assert!((dot(&ga, &a) - form).abs() <= t, "{what}: ⟨dA, A⟩ {} vs {form}", dot(&ga, &a));
        assert!((dot(&gw, &w) - form).abs() <= t, "{what}: ⟨dW, W⟩ {} vs {form}", dot(&gw, &w));
    }
}

#[test]
fn matmul_matches_dfdx_and_the_dot_product_identities_f64() {
    matmul_against_dfdx_and_identities::<f64>(1e-12);
}

#[test]
fn matmul_matches_dfdx_and_the_dot_product_identities_f32() {
    matmul_against_dfdx_and_identities::<f32>(1e-5);
}

/// Central differences of `⟨dC, A·W⟩` along random directions of `A` and of `W` (f64).
#[test]
fn matmul_gradients_match_finite_differences() {
    let (m, k, n) = (19, 11, 21);
    let (a, w, dc): (Vec<f64>, Vec<f64>, Vec<f64>) = (rand_e(m * k, 1), rand_e(k * n, 2), rand_e(m * n, 3));
    let (va, vw): (Vec<f64>, Vec<f64>) = (rand_e(m * k, 4), rand_e(k * n, 5));
    let (_, ga, gw) = run(&a, &w, (m, k, n), k, &dc, matmul_op);
    let f = |a: &[f64], w: &[f64]| {
        let dev = Cpu::default();
        let y = matmul_op(dev.tensor_from_vec(a.to_vec(), (m, k)), dev.tensor_from_vec(w.to_vec(), (k, n)));
        dot(&dc, &y.as_vec())
    };
    let h = 1e-4;
    let shift = |x: &[f64], v: &[f64], s: f64| -> Vec<f64> { x.iter().zip(v).map(|(p, q)| p + s * q).collect() };
    let fd_a = (f(&shift(&a, &va, h), &w) - f(&shift(&a, &va, -h), &w)) / (2.0 * h);
    let fd_w = (f(&a, &shift(&w, &vw, h)) - f(&a, &shift(&w, &vw, -h))) / (2.0 * h);
    assert!((fd_a - dot(&ga, &va)).abs() < 1e-8 * (1.0 + fd_a.abs()), "dA: {fd_a} vs {}", dot(&ga, &va));
    assert!((fd_w - dot(&gw, &vw)).abs() < 1e-8 * (1.0 + fd_w.abs()), "dW: {fd_w} vs {}", dot(&gw, &vw));
}

/// A tensor used twice: both products' gradients add up (the op accumulates).
#[test]
fn matmul_gradients_accumulate() {
    let (m, k, n) = (9, 5, 3);
    let (a, w, dc): (Vec<f64>, Vec<f64>, Vec<f64>) = (rand_e(m * k, 6), rand_e(k * n, 7), rand_e(m * n, 8));
    let (_, ga, gw) = run(&a, &w, (m, k, n), k, &dc, matmul_op);
    let (_, ga2, gw2) = run(&a, &w, (m, k, n), k, &dc, |a, w| {
        let w2 = w.with_empty_tape();
        matmul_op(a.with_empty_tape(), w2) + matmul_op(a, w)
    });
    let double = |v: &[f64]| v.iter().map(|x| 2.0 * x).collect::<Vec<_>>();
    close(&ga2, &double(&ga), 1e-12, "dA twice");
    close(&gw2, &double(&gw), 1e-12, "dW twice");
}

/// The convolution (im2col inside the op) and the dense layer against the composed dfdx
/// versions `unfold3x3(x)·W + b` and `x·W + b`: values, `dx` and `dW`, taped and not (the
/// forward-only convolution gathers block by block), on grids that are no multiples of the
/// gather's blocks or the kernel's tiles.
fn layers_against_dfdx<E: Elem>(tol: f64)
where
    Cpu: Device<E>,
{
    let dev = Cpu::default();
    let grids =
        [(1, 1, 1, 1, 1), (2, 3, 5, 3, 5), (3, 4, 4, 2, 16), (2, 7, 9, 4, 17), (1, 2, 100, 3, 32), (2, 16, 16, 8, 8)];
    for (s, &(b, h, wd, c, co)) in grids.iter().enumerate() {
        let g = Grid { b, h, w: wd };
        let what = format!("{} b{b} {h}x{wd} {c}->{co}", std::any::type_name::<E>());
        let s = s as u64;
        let (x, w, bias): (Vec<E>, Vec<E>, Vec<E>) =
            (rand_e(g.rows() * c, s), rand_e(9 * c * co, 50 + s), rand_e(co, 60));
        let dc: Vec<E> = rand_e(g.rows() * co, 70 + s);
        let bt: Vec1<E> = dev.tensor_from_vec(bias.clone(), (co,));
        let shape = (g.rows(), c, co);
        let new = run(&x, &w, shape, 9 * c, &dc, |x, w| conv3x3(x, g, w, bt.retaped()));
        let old = run(&x, &w, shape, 9 * c, &dc, |x, w| add_bias(unfold3x3(x, g).matmul(w), bt.retaped()));
        close(&new.0, &old.0, tol, &format!("conv {what} values"));
        close(&new.1, &old.1, tol, &format!("conv {what} dx"));
        close(&new.2, &old.2, tol, &format!("conv {what} dW"));
        let fwd = conv3x3(
            dev.tensor_from_vec(x.clone(), (g.rows(), c)),
            g,
            dev.tensor_from_vec(w.clone(), (9 * c, co)),
            bt.clone(),
        );
        close(&fwd.as_vec(), &old.0, tol, &format!("conv {what} forward only"));

        let wd: Vec<E> = rand_e(c * co, 80 + s);
        let new = run(&x, &wd, shape, c, &dc, |x, w| dense(x, w, bt.retaped()));
        let old = run(&x, &wd, shape, c, &dc, |x, w| add_bias(x.matmul(w), bt.retaped()));
        close(&new.0, &old.0, tol, &format!("dense {what} values"));
        close(&new.1, &old.1, tol, &format!("dense {what} dx"));
        close(&new.2, &old.2, tol, &format!("dense {what} dW"));
    }
}

#[test]
fn conv_and_dense_match_the_composed_dfdx_layers_f64() {
    layers_against_dfdx::<f64>(1e-12);
}

#[test]
fn conv_and_dense_match_the_composed_dfdx_layers_f32() {
    layers_against_dfdx::<f32>(1e-5);
}

/// In a two-thread pool the products split over rows; the results are those of one thread.
#[test]
fn products_split_over_threads_match_one_thread() {
    let g = Grid { b: 3, h: 16, w: 16 };
    let (c, co) = (16, 32);
    let (x, w, dc): (Vec<f32>, Vec<f32>, Vec<f32>) =
        (rand_e(g.rows() * c, 1), rand_e(9 * c * co, 2), rand_e(g.rows() * co, 3));
    let bt: Vec1<f32> = Cpu::default().tensor_from_vec(vec![0.0; co], (co,));
    let go = || run(&x, &w, (g.rows(), c, co), 9 * c, &dc, |x, w| conv3x3(x, g, w, bt.retaped()));
    let pool = |t: usize| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
    let (one, two) = (pool(1).install(go), pool(2).install(go));
    close(&two.0, &one.0, 1e-6, "values");
    close(&two.1, &one.1, 1e-6, "dx");
    close(&two.2, &one.2, 1e-6, "dW");
    // Forward only (the gather and product block by block).
    let fwd = || {
        let dev = Cpu::default();
        conv3x3(
            dev.tensor_from_vec(x.clone(), (g.rows(), c)),
            g,
            dev.tensor_from_vec(w.clone(), (9 * c, co)),
            bt.clone(),
        )
        .as_vec()
    };
    close(&pool(2).install(fwd), &one.0, 1e-6, "forward only");
}
