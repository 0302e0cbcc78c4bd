//! Each forward-over-reverse op (`ops::dual`) against its taped op in f64: values and VJPs
//! `Jᵀc` equal, tangents `Jẋ` = central differences of the values, tangents of the VJPs =
//! central differences `d/dh J(x + hẋ)ᵀ(c + hċ)` of the taped VJPs (2 tangents, 3 cotangents);
//! on a summed tape (`DualTape::summed`), the summed block equals the separate tape's VJP of the
//! cotangent it is seeded with plus the tangents of the VJPs.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scoreprior_models::ops::dual::*;
use scoreprior_models::ops::*;

type Tp = OwnedTape<f64, Cpu>;
/// The taped op on traced inputs.
type Taped<'a> = &'a dyn Fn(Vec<Mat<f64, Tp>>) -> Mat<f64, Tp>;
/// The same op on a dual tape.
type OnTape<'a> = &'a dyn Fn(&mut DualTape<f64>, &[Dual<f64>]) -> Dual<f64>;

const K: usize = 2;
const M: usize = 3;

fn rand_vec(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| scale * (r.gen::<f64>() * 2.0 - 1.0)).collect()
}

/// Values of the taped op and the VJPs of `cot` w.r.t. each input.
fn taped(xs: &[Vec<f64>], shapes: &[(usize, usize)], cot: &[f64], f: Taped) -> (Vec<f64>, Vec<Vec<f64>>) {
    let dev = Cpu::default();
    let ts: Vec<Mat<f64>> = xs.iter().zip(shapes).map(|(x, s)| dev.tensor_from_vec(x.clone(), *s)).collect();
    let y = f(ts.iter().map(|t| t.retaped::<Tp>()).collect());
    let s = *y.shape();
    let vals = y.with_empty_tape().as_vec();
    let ct: Mat<f64> = dev.tensor_from_vec(cot.to_vec(), s);
    let g = (y * ct).sum::<(), _>().backward();
    (vals, ts.iter().map(|t| g.get(t).as_vec()).collect())
}

/// `max |a − b| / max |b|`.
fn rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let d = a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    d / b.iter().fold(1e-300f64, |m, v| m.max(v.abs()))
}

/// Runs the checks with non-zero tangents of the cotangents and, for a nonlinear op, also
/// with zero ones (then the tangents of the VJPs are the second-derivative terms alone);
/// each bounded in `check_with`.
fn check(name: &str, xs: &[Vec<f64>], shapes: &[(usize, usize)], f: Taped, fd: OnTape) {
    check_with(name, xs, shapes, f, fd, 1.0);
    if name.starts_with("group_norm") || name == "attention" {
        check_with(&format!("{name} (ċ = 0)"), xs, shapes, f, fd, 0.0);
    }
}

fn check_with(name: &str, xs: &[Vec<f64>], shapes: &[(usize, usize)], f: Taped, fd: OnTape, cdot: f64) {
    let r = xs.len();
    // Tangents per input, the output size from a plain run, cotangents and their tangents.
    let tans: Vec<Vec<Vec<f64>>> = (0..K)
        .map(|k| xs.iter().enumerate().map(|(j, x)| rand_vec(x.len(), 100 + 10 * k as u64 + j as u64, 1.0)).collect())
        .collect();
    let mut tape = DualTape::<f64>::new(K, M);
    let ins: Vec<Dual<f64>> = (0..r)
        .map(|j| {
            let mut s = xs[j].clone();
            (0..K).for_each(|k| s.extend(&tans[k][j]));
            tape.input(s, shapes[j].0, shapes[j].1)
        })
        .collect();
    let out = fd(&mut tape, &ins);
    let ny = out.block_len();
    let cots: Vec<Vec<f64>> = (0..M).map(|j| rand_vec(ny, 200 + j as u64, 1.0)).collect();
    let cdots: Vec<Vec<f64>> = (0..K).map(|k| rand_vec(ny, 300 + k as u64, cdot)).collect();
    let mut seed: Vec<f64> = cots.concat();
    cdots.iter().for_each(|c| seed.extend(c));
    let grads = tape.backward(&out, seed);

    let h = 1e-5;
    let shifted = |k: usize, s: f64| -> Vec<Vec<f64>> {
        xs.iter().zip(&tans[k]).map(|(x, t)| x.iter().zip(t).map(|(a, b)| a + s * b).collect()).collect()
    };
    let (mut e_val, mut e_tan, mut e_vjp, mut e_tvjp) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (j, cot) in cots.iter().enumerate() {
        let (vals, vjps) = taped(xs, shapes, cot, f);
        e_val = e_val.max(rel(out.values(), &vals));
        for (i, x) in ins.iter().enumerate() {
            let n = x.block_len();
            e_vjp = e_vjp.max(rel(&grads.get(x)[j * n..(j + 1) * n], &vjps[i]));
        }
    }
    for k in 0..K {
        let cp: Vec<f64> = cots[k].iter().zip(&cdots[k]).map(|(c, d)| c + h * d).collect();
        let cm: Vec<f64> = cots[k].iter().zip(&cdots[k]).map(|(c, d)| c - h * d).collect();
        let (vp, gp) = taped(&shifted(k, h), shapes, &cp, f);
        let (vm, gm) = taped(&shifted(k, -h), shapes, &cm, f);
        let dv: Vec<f64> = vp.iter().zip(&vm).map(|(a, b)| (a - b) / (2.0 * h)).collect();
        e_tan = e_tan.max(rel(out.tangent(k), &dv));
        for (i, x) in ins.iter().enumerate() {
            let n = x.block_len();
            let dg: Vec<f64> = gp[i].iter().zip(&gm[i]).map(|(a, b)| (a - b) / (2.0 * h)).collect();
            e_tvjp = e_tvjp.max(rel(&grads.get(x)[(M + k) * n..(M + k + 1) * n], &dg));
        }
    }
    // The summed tape: [A_0 | A_1 | S] seeded with [c_0 | c_1 | c_2 + ċ_0 + ċ_1] returns
    // [A_0 | A_1 | A_2 + Ȧ_0 + Ȧ_1] of the separate tape.
    let mut st = DualTape::<f64>::summed(K);
    let sins: Vec<Dual<f64>> = ins.iter().map(|x| st.input(x.stack().to_vec(), x.rows(), x.cols())).collect();
    let sout = fd(&mut st, &sins);
    let mut sseed: Vec<f64> = cots[..K].concat();
    sseed.extend((0..ny).map(|i| cots[K][i] + cdots.iter().map(|c| c[i]).sum::<f64>()));
    let sgrads = st.backward(&sout, sseed);
    let mut e_sum = 0.0f64;
    for (x, sx) in ins.iter().zip(&sins) {
        let (n, sep, sum) = (x.block_len(), grads.get(x), sgrads.get(sx));
        let mut want = sep[..(K + 1) * n].to_vec();
        for k in 0..K {
            want[K * n..].iter_mut().zip(&sep[(M + k) * n..(M + k + 1) * n]).for_each(|(w, v)| *w += v);
        }
        e_sum = e_sum.max(rel(&sum, &want));
    }
    eprintln!(
        "{name}: values {e_val:.1e}, VJPs {e_vjp:.1e}, tangents {e_tan:.1e}, tangents of VJPs {e_tvjp:.1e}, \
         summed {e_sum:.1e}"
    );
    assert!(e_sum < 1e-12, "{name}: summed tape {e_sum:.1e}");
    assert!(e_val < 1e-12 && e_vjp < 1e-12, "{name}: values {e_val:.1e}, VJPs {e_vjp:.1e}");
    // Central differences with h = 1e-5: truncation ~1e-10, round-off ~1e-11 (measured: at
    // most 1.5e-10 over the ops).
    assert!(e_tan < 1e-9 && e_tvjp < 1e-9, "{name}: tangents {e_tan:.1e}, tangents of VJPs {e_tvjp:.1e}");
}

fn g2() -> Grid {
    Grid { b: 2, h: 4, w: 4 }
}

#[test]
fn linear_ops_match_taped_ops() {
    let dev = Cpu::default();
    let g = g2();
    let (ci, co) = (3, 5);
    let x = rand_vec(g.rows() * ci, 1, 1.0);
    let sh = [(g.rows(), ci)];
    check("affine", std::slice::from_ref(&x), &sh, &|mut v| v.remove(0) * 2.0 + (-1.0), &|t, v| {
        dual_affine(t, &v[0], 2.0, -1.0)
    });
    let (w, b) = (rand_vec(ci * co, 2, 1.0), rand_vec(co, 3, 1.0));
    let (wt, bt): (Mat<f64>, Vec1<f64>) =
        (dev.tensor_from_vec(w.clone(), (ci, co)), dev.tensor_from_vec(b.clone(), (co,)));
    check("dense", std::slice::from_ref(&x), &sh, &|mut v| dense(v.remove(0), wt.retaped(), bt.retaped()), &|t, v| {
        dual_dense(t, &v[0], &wt, &b)
    });
    let w9 = rand_vec(9 * ci * co, 4, 1.0);
    let w9t: Mat<f64> = dev.tensor_from_vec(w9, (9 * ci, co));
    check(
        "conv3x3",
        std::slice::from_ref(&x),
        &sh,
        &|mut v| conv3x3(v.remove(0), g, w9t.retaped(), bt.retaped()),
        &|t, v| dual_conv3x3(t, &v[0], g, &w9t, &b),
    );
    check("avg_pool2", std::slice::from_ref(&x), &sh, &|mut v| avg_pool2(v.remove(0), g), &|t, v| {
        dual_avg_pool2(t, &v[0], g)
    });
    check("upsample2", std::slice::from_ref(&x), &sh, &|mut v| upsample2(v.remove(0), g), &|t, v| {
        dual_upsample2(t, &v[0], g)
    });
    let hw = g.h * g.w;
    check(
        "nchw_to_rows",
        std::slice::from_ref(&x),
        &[(g.b, ci * hw)],
        &|mut v| nchw_to_rows(v.remove(0), ci, g),
        &|t, v| dual_nchw_to_rows(t, &v[0], ci, g),
    );
    check(
        "rows_to_nchw",
        std::slice::from_ref(&x),
        &sh,
        &|mut v| rows_to_nchw(v.remove(0), g, (g.b, ci * hw)),
        &|t, v| dual_rows_to_nchw(t, &v[0], g),
    );
    let y = rand_vec(g.rows() * ci, 5, 1.0);
    let z = rand_vec(g.rows() * co, 6, 1.0);
    check(
        "add_scaled",
        &[x.clone(), y],
        &[sh[0], sh[0]],
        &|mut v| add_scaled(v.remove(0), v.remove(0), 0.7),
        &|t, v| dual_add_scaled(t, &v[0], &v[1], 0.7),
    );
    check(
        "concat_cols",
        &[x.clone(), z],
        &[sh[0], (g.rows(), co)],
        &|mut v| concat_cols(v.remove(0), v.remove(0)),
        &|t, v| dual_concat_cols(t, &v[0], &v[1]),
    );
    let e = rand_vec(g.b * ci, 7, 1.0);
    let et: Mat<f64> = dev.tensor_from_vec(e.clone(), (g.b, ci));
    check("add_per_image", &[x], &sh, &|mut v| add_per_image(v.remove(0), et.retaped(), hw), &|t, v| {
        dual_add_per_image(t, &v[0], &e, hw)
    });
}

#[test]
fn group_norm_matches_taped_op() {
    let dev = Cpu::default();
    let g = Grid { b: 2, h: 3, w: 3 };
    let (c, groups) = (8, 2);
    // Offset and spread so that the statistics matter; γ, β away from 1, 0.
    let x: Vec<f64> = rand_vec(g.rows() * c, 8, 2.0).iter().map(|v| v + 0.5).collect();
    let gamma: Vec<f64> = rand_vec(c, 9, 1.0).iter().map(|v| 1.0 + v).collect();
    let beta = rand_vec(c, 10, 1.0);
    let (gt, bt): (Vec1<f64>, Vec1<f64>) =
        (dev.tensor_from_vec(gamma.clone(), (c,)), dev.tensor_from_vec(beta.clone(), (c,)));
    let sh = [(g.rows(), c)];
    check(
        "group_norm",
        std::slice::from_ref(&x),
        &sh,
        &|mut v| group_norm(v.remove(0), g, groups, gt.retaped(), bt.retaped()),
        &|t, v| dual_group_norm(t, &v[0], g, groups, &gamma, &beta, 1e-6, false),
    );
    check(
        "group_norm_silu",
        &[x],
        &sh,
        &|mut v| group_norm_silu(v.remove(0), g, groups, gt.retaped(), bt.retaped()),
        &|t, v| dual_group_norm(t, &v[0], g, groups, &gamma, &beta, 1e-6, true),
    );
}

#[test]
fn attention_matches_taped_op() {
    let g = Grid { b: 2, h: 2, w: 3 };
    let c = 4;
    let n = g.rows() * c;
    // Logits of order one, so that the softmax is neither flat nor saturated.
    let xs = [rand_vec(n, 12, 1.5), rand_vec(n, 13, 1.5), rand_vec(n, 14, 1.0)];
    let sh = [(g.rows(), c); 3];
    check("attention", &xs, &sh, &|mut v| attention(v.remove(0), v.remove(0), v.remove(0), g), &|t, v| {
        dual_attention(t, &v[0], &v[1], &v[2], g)
    });
}
