//! Each op against a naive loop (values) and its gradient against central finite
//! differences of a random linear functional, in f64.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scoreprior_models::ops::*;

/// The composed dfdx versions of the fused ops (test oracles, `tests/composed/mod.rs`).
mod composed;

type Tp = OwnedTape<f64, Cpu>;

fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| r.gen::<f64>() * 2.0 - 1.0).collect()
}

fn mat(dev: &Cpu, v: &[f64], r: usize, c: usize) -> Mat<f64> {
    dev.tensor_from_vec(v.to_vec(), (r, c))
}

/// Checks `d/dh ⟨c, f(x + h v)⟩` from AD against a central difference.
fn grad_check(x: Vec<f64>, shape: (usize, usize), f: impl Fn(Mat<f64, Tp>) -> Mat<f64, Tp>) {
    let dev = Cpu::default();
    let x0 = mat(&dev, &x, shape.0, shape.1);
    let y = f(x0.leaky_trace());
    let ys = *y.shape();
    let c = rand_vec(ys.0 * ys.1, 99);
    let v = rand_vec(x.len(), 98);
    let ct = mat(&dev, &c, ys.0, ys.1);
    let g = (y * ct).sum::<(), _>().backward().get(&x0).as_vec();
    let ad: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
    let eval = |s: f64| -> f64 {
        let xs: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + s * b).collect();
        let out = f(mat(&dev, &xs, shape.0, shape.1).leaky_trace()).as_vec();
        out.iter().zip(&c).map(|(a, b)| a * b).sum()
    };
    let h = 1e-5;
    let fd = (eval(h) - eval(-h)) / (2.0 * h);
    assert!(ad.abs() > 1e-6, "degenerate gradient check");
    assert!((ad - fd).abs() <= 1e-7 * fd.abs().max(1.0), "AD {ad} vs FD {fd}");
}

fn close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "entry {i}: {x} vs {y}");
    }
}

/// `(row, image, y, x)` of every pixel of `g`, in row order.
fn pixels(g: Grid) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (0..g.b).flat_map(move |i| (0..g.h).flat_map(move |y| (0..g.w).map(move |x| ((i * g.h + y) * g.w + x, i, y, x))))
}

/// Naive 3×3 "same" convolution of rows-layout input with a (9·cin, cout) kernel.
fn naive_conv(x: &[f64], g: Grid, cin: usize, w: &[f64], b: &[f64], cout: usize) -> Vec<f64> {
    let mut out = vec![0.0; g.rows() * cout];
    for (r, i, y, xx) in pixels(g) {
        for o in 0..cout {
            let mut s = b[o];
            for ky in 0..3 {
                for kx in 0..3 {
                    let (sy, sx) = (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                    if sy < 0 || sx < 0 || sy >= g.h as isize || sx >= g.w as isize {
                        continue;
                    }
                    let sr = (i * g.h + sy as usize) * g.w + sx as usize;
                    for ci in 0..cin {
                        s += x[sr * cin + ci] * w[((ky * 3 + kx) * cin + ci) * cout + o];
                    }
                }
            }
            out[r * cout + o] = s;
        }
    }
    out
}

#[test]
fn conv3x3_matches_naive_loop_and_finite_differences() {
    let dev = Cpu::default();
    let g = Grid { b: 2, h: 5, w: 4 };
    let (cin, cout) = (3, 4);
    let x = rand_vec(g.rows() * cin, 1);
    let w = rand_vec(9 * cin * cout, 2);
    let b = rand_vec(cout, 3);
    let y =
        conv3x3(mat(&dev, &x, g.rows(), cin), g, mat(&dev, &w, 9 * cin, cout), dev.tensor_from_vec(b.clone(), (cout,)));
    close(&y.as_vec(), &naive_conv(&x, g, cin, &w, &b, cout), 1e-12);
    // Gradient w.r.t. the input and (through a closure over the input) w.r.t. the kernel.
    let (wt, bt) = (mat(&dev, &w, 9 * cin, cout), dev.tensor_from_vec(b.clone(), (cout,)));
    grad_check(x.clone(), (g.rows(), cin), |xt| conv3x3(xt, g, wt.retaped(), bt.retaped()));
    let xt = mat(&dev, &x, g.rows(), cin);
    grad_check(w.clone(), (9 * cin, cout), |wt| conv3x3(xt.retaped(), g, wt, bt.retaped()));
}

#[test]
fn conv1x1_dense_matches_naive_loop_and_finite_differences() {
    let dev = Cpu::default();
    let (r, i, o) = (7, 3, 5);
    let x = rand_vec(r * i, 4);
    let w = rand_vec(i * o, 5);
    let b = rand_vec(o, 6);
    let y = dense(mat(&dev, &x, r, i), mat(&dev, &w, i, o), dev.tensor_from_vec(b.clone(), (o,))).as_vec();
    let mut want = vec![0.0; r * o];
    for a in 0..r {
        for c in 0..o {
            want[a * o + c] = b[c] + (0..i).map(|k| x[a * i + k] * w[k * o + c]).sum::<f64>();
        }
    }
    close(&y, &want, 1e-12);
    let (wt, bt) = (mat(&dev, &w, i, o), dev.tensor_from_vec(b, (o,)));
    grad_check(x, (r, i), |xt| dense(xt, wt.retaped(), bt.retaped()));
}

#[test]
fn avg_pool_and_upsample_match_naive_loops_and_finite_differences() {
    let dev = Cpu::default();
    let g = Grid { b: 2, h: 4, w: 6 };
    let c = 3;
    let x = rand_vec(g.rows() * c, 7);
    let p = avg_pool2(mat(&dev, &x, g.rows(), c), g).as_vec();
    let o = g.down();
    for (r, i, y, xx) in pixels(o) {
        for ch in 0..c {
            let at = |dy: usize, dx: usize| x[((i * g.h + 2 * y + dy) * g.w + 2 * xx + dx) * c + ch];
            let want = (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0;
            assert!((p[r * c + ch] - want).abs() < 1e-14);
        }
    }
    grad_check(x.clone(), (g.rows(), c), |xt| avg_pool2(xt, g));
    let u = upsample2(mat(&dev, &x, g.rows(), c), g).as_vec();
    let o = g.up();
    for (r, i, y, xx) in pixels(o) {
        for ch in 0..c {
            assert_eq!(u[r * c + ch], x[((i * g.h + y / 2) * g.w + xx / 2) * c + ch]);
        }
    }
    grad_check(x, (g.rows(), c), |xt| upsample2(xt, g));
}

#[test]
fn group_norm_matches_naive_loop_and_finite_differences() {
    let dev = Cpu::default();
    let g = Grid { b: 2, h: 3, w: 3 };
    let (c, groups) = (8, 2);
    let x: Vec<f64> = rand_vec(g.rows() * c, 8).iter().map(|v| 3.0 * v + 1.0).collect();
    let gamma = rand_vec(c, 9);
    let beta = rand_vec(c, 10);
    let (gt, bt) = (dev.tensor_from_vec(gamma.clone(), (c,)), dev.tensor_from_vec(beta.clone(), (c,)));
    let y = group_norm(mat(&dev, &x, g.rows(), c), g, groups, gt.clone(), bt.clone()).as_vec();
    let hw = 9;
    let cg = c / groups;
    for i in 0..g.b {
        for gr in 0..groups {
            let vals: Vec<f64> = (0..hw)
                .flat_map(|p| (0..cg).map(move |j| (p, j)))
                .map(|(p, j)| x[(i * hw + p) * c + gr * cg + j])
                .collect();
            let mu = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / vals.len() as f64;
            for p in 0..hw {
                for j in 0..cg {
                    let ch = gr * cg + j;
                    let k = (i * hw + p) * c + ch;
                    let want = (x[k] - mu) / (var + 1e-6).sqrt() * gamma[ch] + beta[ch];
                    assert!((y[k] - want).abs() < 1e-12, "{} vs {want}", y[k]);
                }
            }
        }
    }
    grad_check(x, (g.rows(), c), |xt| group_norm(xt, g, groups, gt.retaped(), bt.retaped()));
}

#[test]
fn silu_matches_formula_and_finite_differences() {
    let dev = Cpu::default();
    let x = rand_vec(12, 11).iter().map(|v| 4.0 * v).collect::<Vec<_>>();
    let y = silu(mat(&dev, &x, 3, 4)).as_vec();
    for (a, b) in x.iter().zip(&y) {
        assert!((a / (1.0 + (-a).exp()) - b).abs() < 1e-14);
    }
    grad_check(x, (3, 4), silu);
}

#[test]
fn attention_matches_naive_loop_and_finite_differences() {
    let dev = Cpu::default();
    let g = Grid { b: 2, h: 2, w: 3 };
    let c = 4;
    let n = g.rows() * c;
    let (q, k, v) = (rand_vec(n, 12), rand_vec(n, 13), rand_vec(n, 14));
    let y = attention(mat(&dev, &q, g.rows(), c), mat(&dev, &k, g.rows(), c), mat(&dev, &v, g.rows(), c), g).as_vec();
    let hw = 6;
    for i in 0..g.b {
        for a in 0..hw {
            let ra = i * hw + a;
            let logits: Vec<f64> = (0..hw)
                .map(|bb| (0..c).map(|ch| q[ra * c + ch] * k[(i * hw + bb) * c + ch]).sum::<f64>() / (c as f64).sqrt())
                .collect();
            let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
            for ch in 0..c {
                let want: f64 = (0..hw).map(|bb| (logits[bb] - m).exp() / z * v[(i * hw + bb) * c + ch]).sum();
                assert!((y[ra * c + ch] - want).abs() < 1e-12);
            }
        }
    }
    let (kt, vt) = (mat(&dev, &k, g.rows(), c), mat(&dev, &v, g.rows(), c));
    grad_check(q.clone(), (g.rows(), c), |qt| attention(qt, kt.retaped(), vt.retaped(), g));
    let qt = mat(&dev, &q, g.rows(), c);
    grad_check(k, (g.rows(), c), |kt| attention(qt.retaped(), kt, vt.retaped(), g));
    // Self-attention: one tensor feeds q, k and v (tape reuse through with_empty_tape; the
    // scalings give the operands distinct ids, as the q/k/v projections do in the network).
    grad_check(v, (g.rows(), c), |x| attention(x.with_empty_tape() * 0.5, x.with_empty_tape() * 2.0, x, g));
}

#[test]
fn gathers_concat_and_layout_round_trip() {
    let dev = Cpu::default();
    let a = rand_vec(10, 15);
    let b = rand_vec(15, 16);
    let cat = concat_cols(mat(&dev, &a, 5, 2), mat(&dev, &b, 5, 3)).as_vec();
    for r in 0..5 {
        assert_eq!(&cat[r * 5..r * 5 + 2], &a[r * 2..r * 2 + 2]);
        assert_eq!(&cat[r * 5 + 2..r * 5 + 5], &b[r * 3..r * 3 + 3]);
    }
    let bt = mat(&dev, &b, 5, 3);
    grad_check(a.clone(), (5, 2), |at| concat_cols(at, bt.retaped()));
    let at = mat(&dev, &a, 5, 2);
    grad_check(b, (5, 3), |bt| concat_cols(at.retaped(), bt));
    let rep = repeat_rows(mat(&dev, &a, 5, 2), 3).as_vec();
    assert_eq!(&rep[2 * 3 * 2..2 * 3 * 2 + 2], &a[4..6]);
    grad_check(a, (5, 2), |t| repeat_rows(t, 3));
    // (b, c, h, w) -> rows -> (b, c, h, w) is the identity.
    let g = Grid { b: 2, h: 3, w: 2 };
    let x = rand_vec(2 * 3 * 6, 17);
    let xt: Tensor<(usize,), f64, Cpu> = dev.tensor_from_vec(x.clone(), (x.len(),));
    let rows = nchw_to_rows(xt, 3, g);
    assert_eq!(rows.as_vec()[3 + 1], x[6 + 1]); // row 1, channel 1 = image 0, channel 1, pixel 1
    let back = rows_to_nchw(rows, g, (x.len(),)).as_vec();
    assert_eq!(back, x);
    grad_check(x, (2, 18), move |t| {
        let r = nchw_to_rows(t, 3, g);
        let s = *r.shape();
        silu(r).reshape_like(&s)
    });
}

#[test]
fn embeddings_and_dropout() {
    let e = sinusoidal_embedding(&[0.0, 2.0], 8);
    assert_eq!(&e[..8], &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    // Frequencies exp(−ln(1e4)·i/3): the last is 1e-4.
    assert!((e[8 + 3] - (2.0f64 * 1e-4).sin()).abs() < 1e-15);
    assert!((e[8] - 2.0f64.sin()).abs() < 1e-15);
    let f = fourier_embedding(&[std::f64::consts::E], &[0.25]);
    assert!((f[0] - (std::f64::consts::PI / 2.0).sin()).abs() < 1e-12 && f[1].abs() < 1e-12);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let m: Vec<f64> = dropout_mask(100_000, 0.1, &mut rng);
    let zeros = m.iter().filter(|v| **v == 0.0).count() as f64 / m.len() as f64;
    let mean = m.iter().sum::<f64>() / m.len() as f64;
    assert!((zeros - 0.1).abs() < 0.005 && (mean - 1.0).abs() < 0.01, "{zeros} {mean}");
    let mk = m[..6].to_vec();
    grad_check(rand_vec(6, 18), (2, 3), move |t| apply_mask(t, mk.clone()));
}

// ---- Fused ops against their composed dfdx versions (the `composed` oracles), f64 and f32 ----

/// A GroupNorm op (fused or oracle) on traced inputs: `(x, grid, groups, γ, β)`.
type NormOp<E> = fn(
    Mat<E, OwnedTape<E, Cpu>>,
    Grid,
    usize,
    Vec1<E, OwnedTape<E, Cpu>>,
    Vec1<E, OwnedTape<E, Cpu>>,
) -> Mat<E, OwnedTape<E, Cpu>>;

/// Values and the gradients of `⟨c, out⟩` w.r.t. every input, converted to f64.
type Run = (Vec<f64>, Vec<Vec<f64>>);

fn rand_e<E: Elem>(n: usize, seed: u64, scale: f64, shift: f64) -> Vec<E>
where
    Cpu: Device<E>,
{
    rand_vec(n, seed).into_iter().map(|v| E::of(scale * v + shift)).collect()
}

fn to64<E: Elem>(v: Vec<E>) -> Vec<f64>
where
    Cpu: Device<E>,
{
    v.into_iter().map(Elem::f64).collect()
}

/// Runs `f` on a traced matrix `x` and traced vectors `vs` (each on its own tape, as the
/// network's parameters are), and returns the values and the gradients of `⟨c, f⟩`.
fn run_op<E: Elem>(
    x: (&[E], usize, usize),
    vs: &[&[E]],
    f: &dyn Fn(Mat<E, OwnedTape<E, Cpu>>, Vec<Vec1<E, OwnedTape<E, Cpu>>>) -> Mat<E, OwnedTape<E, Cpu>>,
) -> Run
where
    Cpu: Device<E>,
{
    let dev = Cpu::default();
    let xt: Mat<E> = dev.tensor_from_vec(x.0.to_vec(), (x.1, x.2));
    let vts: Vec<Vec1<E>> = vs.iter().map(|v| dev.tensor_from_vec(v.to_vec(), (v.len(),))).collect();
    let y = f(xt.leaky_trace(), vts.iter().map(|v| v.retaped()).collect());
    let s = *y.shape();
    let vals = to64(y.with_empty_tape().as_vec());
    let ct: Mat<E> = dev.tensor_from_vec(rand_e(s.0 * s.1, 77, 1.0, 0.0), s);
    let grads = (y * ct).sum::<(), _>().backward();
    let mut gs = vec![to64(grads.get(&xt).as_vec())];
    gs.extend(vts.iter().map(|v| to64(grads.get(v).as_vec())));
    (vals, gs)
}

/// Fused and composed runs agree to `tol` relative to each output's largest entry.
fn same(name: &str, a: Run, b: Run, tol: f64) {
    let check = |what: String, a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * scale, "{what}[{i}]: fused {x} vs composed {y}");
        }
    };
    check(format!("{name} values"), &a.0, &b.0);
    assert_eq!(a.1.len(), b.1.len());
    for (k, (ga, gb)) in a.1.iter().zip(&b.1).enumerate() {
        check(format!("{name} gradient of input {k}"), ga, gb);
    }
}

fn fused_vs_composed<E: Elem>(tol: f64)
where
    Cpu: Device<E>,
{
    let g = Grid { b: 3, h: 4, w: 3 };
    let (c, groups) = (12, 3);
    let r = g.rows();
    let x: Vec<E> = rand_e(r * c, 21, 3.0, 0.5);
    let gamma: Vec<E> = rand_e(c, 22, 1.0, 0.2);
    let beta: Vec<E> = rand_e(c, 23, 1.0, 0.0);
    let xin = (&x[..], r, c);
    // The two GroupNorm ops against their oracles.
    let norms: [(&str, NormOp<E>, NormOp<E>); 2] = [
        ("group_norm", group_norm, composed::group_norm),
        ("group_norm_silu", group_norm_silu, |x, g, groups, gm, b| {
            composed::silu(composed::group_norm(x, g, groups, gm, b))
        }),
    ];
    for (what, fused, oracle) in norms {
        let run = |op: NormOp<E>| {
            run_op(xin, &[&gamma, &beta], &|x, mut v| {
                let (b, gm) = (v.pop().unwrap(), v.pop().unwrap());
                op(x, g, groups, gm, b)
            })
        };
        same(what, run(fused), run(oracle), tol);
    }
    same("silu", run_op(xin, &[], &|x, _| silu(x)), run_op(xin, &[], &|x, _| composed::silu(x)), tol);
    same(
        "add_bias",
        run_op(xin, &[&beta], &|x, mut v| add_bias(x, v.pop().unwrap())),
        run_op(xin, &[&beta], &|x, mut v| composed::add_bias(x, v.pop().unwrap())),
        tol,
    );
    // Two-matrix ops: the second operand enters as a vector reshaped to a matrix.
    let e: Vec<E> = rand_e(g.b * c, 24, 1.0, 0.0);
    same(
        "add_per_image",
        run_op(xin, &[&e], &|x, mut v| add_per_image(x, v.pop().unwrap().reshape_like(&(g.b, c)), g.h * g.w)),
        run_op(xin, &[&e], &|x, mut v| composed::add_per_image(x, v.pop().unwrap().reshape_like(&(g.b, c)), g.h * g.w)),
        tol,
    );
    let y: Vec<E> = rand_e(r * c, 25, 1.0, 0.0);
    let s = E::of(std::f64::consts::FRAC_1_SQRT_2);
    same(
        "add_scaled",
        run_op(xin, &[&y], &|x, mut v| add_scaled(x, v.pop().unwrap().reshape_like(&(r, c)), s)),
        run_op(xin, &[&y], &|x, mut v| composed::add_scaled(x, v.pop().unwrap().reshape_like(&(r, c)), s)),
        tol,
    );
    // Whole conv and dense layers (im2col/matmul plus the fused bias) against the composed bias.
    let w: Vec<E> = rand_e(9 * c * 5, 26, 0.3, 0.0);
    let b5: Vec<E> = rand_e(5, 27, 1.0, 0.0);
    same(
        "conv3x3",
        run_op(xin, &[&w, &b5], &|x, mut v| {
            let (b, w) = (v.pop().unwrap(), v.pop().unwrap());
            conv3x3(x, g, w.reshape_like(&(9 * c, 5)), b)
        }),
        run_op(xin, &[&w, &b5], &|x, mut v| {
            let (b, w) = (v.pop().unwrap(), v.pop().unwrap());
            composed::add_bias(unfold3x3(x, g).matmul(w.reshape_like(&(9 * c, 5))), b)
        }),
        tol,
    );
}

#[test]
fn fused_ops_match_composed_dfdx_versions_f64() {
    fused_vs_composed::<f64>(1e-12);
}

#[test]
fn fused_ops_match_composed_dfdx_versions_f32() {
    fused_vs_composed::<f32>(2e-5);
}

#[test]
fn fused_parameter_gradients_match_finite_differences() {
    let dev = Cpu::default();
    let g = Grid { b: 2, h: 3, w: 3 };
    let (c, groups) = (8, 2);
    let x = rand_vec(g.rows() * c, 31).iter().map(|v| 2.0 * v - 0.3).collect::<Vec<_>>();
    let (gamma, beta) = (rand_vec(c, 32), rand_vec(c, 33));
    let xt = mat(&dev, &x, g.rows(), c);
    let (gt, bt) = (dev.tensor_from_vec(gamma.clone(), (c,)), dev.tensor_from_vec(beta.clone(), (c,)));
    grad_check(x.clone(), (g.rows(), c), |x| group_norm_silu(x, g, groups, gt.retaped(), bt.retaped()));
    grad_check(gamma, (1, c), |gm| group_norm_silu(xt.retaped(), g, groups, gm.reshape_like(&(c,)), bt.retaped()));
    grad_check(beta.clone(), (1, c), |b| group_norm_silu(xt.retaped(), g, groups, gt.retaped(), b.reshape_like(&(c,))));
    grad_check(beta, (1, c), |b| add_bias(xt.retaped(), b.reshape_like(&(c,))));
    let e = rand_vec(2 * c, 34);
    grad_check(e, (2, c), |e| add_per_image(xt.retaped(), e, 9));
    grad_check(x, (g.rows(), c), |y| add_scaled(xt.retaped(), y, 0.7));
}
