//! Log-determinants against brute-force Jacobians (central differences): the RealNVP `G`'s
//! own `log|det ∂G/∂z|`, with and without BatchNorm; and the positive posterior
//! `x = softplus(G(z))`, whose `log q(x)` equals `log N(z) − log|det ∂x/∂z|` for the whole
//! map (D = 4), and whose backward pass equals finite differences of the loss in θ.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scoreprior_core::dpi::{softplus, softplus_inverse, Posterior, SoftplusPosterior};
use scoreprior_models::realnvp::{RealNvp, RealNvpConfig};

/// log|det A| by Gaussian elimination with partial pivoting.
fn log_abs_det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut s = 0.0;
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs())).unwrap();
        for k in 0..n {
            a.swap(c * n + k, p * n + k);
        }
        let piv = a[c * n + c];
        s += piv.abs().ln();
        for r in c + 1..n {
            let f = a[r * n + c] / piv;
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
        }
    }
    s
}

#[test]
fn log_det_matches_brute_force_jacobian() {
    for (d, bn) in [(6, false), (5, true)] {
        let cfg = RealNvpConfig::new(d).with_flows(2).with_hidden(8).with_batch_norm(bn).with_seed(3);
        let mut f = RealNvp::new(cfg).unwrap();
        f.randomize(0.3, 11);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let z: Vec<f64> = (0..d).map(|_| rng.sample::<f64, _>(rand_distr::StandardNormal)).collect();
        let (_, ld) = f.forward(&z, 1).unwrap();
        // Central differences, one column per latent coordinate (batched as 2D inputs).
        let h = 1e-6;
        let mut zs = Vec::new();
        for j in 0..d {
            for sgn in [1.0, -1.0] {
                let mut zz = z.clone();
                zz[j] += sgn * h;
                zs.extend(zz);
            }
        }
        let (xs, _) = f.forward(&zs, 2 * d).unwrap();
        let mut jac = vec![0.0; d * d];
        for j in 0..d {
            for i in 0..d {
                jac[i * d + j] = (xs[(2 * j) * d + i] - xs[(2 * j + 1) * d + i]) / (2.0 * h);
            }
        }
        let brute = log_abs_det(jac, d);
        assert!((brute - ld[0]).abs() < 1e-7, "d={d}: brute {brute} vs {}", ld[0]);
    }
}

#[test]
fn softplus_flow_log_density_matches_a_brute_force_jacobian() {
    let d = 4;
    let mk = || {
        let mut f = RealNvp::new(RealNvpConfig::new(d).with_flows(2).with_hidden(8).with_seed(3)).unwrap();
        f.randomize(0.3, 5);
        f
    };
    let reference = mk();
    let mut q = SoftplusPosterior::new(mk());
    let b = q.sample(3, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let map = |z: &[f64]| -> Vec<f64> { reference.forward(z, 1).unwrap().0.into_iter().map(softplus).collect() };
    for i in 0..3 {
        let x = &b.x[i * d..(i + 1) * d];
        assert!(x.iter().all(|v| *v > 0.0));
        let u: Vec<f64> = x.iter().map(|&v| softplus_inverse(v)).collect();
        let z = reference.inverse(&u, 1).unwrap().0;
        let h = 1e-5;
        let mut jac = vec![0.0; d * d];
        for c in 0..d {
            let (mut zp, mut zm) = (z.clone(), z.clone());
            zp[c] += h;
            zm[c] -= h;
            let (fp, fm) = (map(&zp), map(&zm));
            for r in 0..d {
                jac[r * d + c] = (fp[r] - fm[r]) / (2.0 * h);
            }
        }
        let log_n: f64 = z.iter().map(|v| -0.5 * v * v - 0.5 * (2.0 * std::f64::consts::PI).ln()).sum();
        let brute = log_n - log_abs_det(jac, d);
        assert!((brute - b.log_q[i]).abs() < 1e-6, "sample {i}: brute force {brute} vs {}", b.log_q[i]);
        // ∇x log q against central differences of log q along x, through the inverse.
        let g = q.grad_log_q(x, 1).unwrap();
        let log_q_at = |x: &[f64]| {
            let u: Vec<f64> = x.iter().map(|&v| softplus_inverse(v)).collect();
            let (z, ld) = reference.inverse(&u, 1).unwrap();
            let lsig: f64 = u.iter().map(|&v| (1.0 / (1.0 + (-v).exp())).ln()).sum();
            z.iter().map(|v| -0.5 * v * v - 0.5 * (2.0 * std::f64::consts::PI).ln()).sum::<f64>() + ld[0] - lsig
        };
        assert!((log_q_at(x) - b.log_q[i]).abs() < 1e-8);
        for c in 0..d {
            let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
            xp[c] += 1e-6;
            xm[c] -= 1e-6;
            let fd = (log_q_at(&xp) - log_q_at(&xm)) / 2e-6;
            assert!((fd - g[c]).abs() < 1e-4 * (1.0 + fd.abs()), "∇x log q [{c}]: {fd} vs {}", g[c]);
        }
    }
}

#[test]
fn softplus_backward_matches_finite_differences_in_the_parameters() {
    // L(θ) = Σ_i [a·x_i + b·log q(x_i)] over a batch drawn with a fixed seed.
    let d = 3;
    let mk = |theta: Option<&[f64]>| {
        let mut f = RealNvp::new(RealNvpConfig::new(d).with_flows(1).with_hidden(4).with_seed(2)).unwrap();
        f.randomize(0.3, 9);
        if let Some(t) = theta {
            f.set_parameters(t).unwrap();
        }
        f
    };
    let a = [0.7, -1.3, 0.4];
    let b = 0.6;
    let loss = |theta: &[f64]| {
        let mut q = SoftplusPosterior::new(mk(Some(theta)));
        let s = q.sample_for_training(2, &mut ChaCha8Rng::seed_from_u64(4)).unwrap();
        s.x.chunks(d)
            .zip(&s.log_q)
            .map(|(x, lq)| x.iter().zip(&a).map(|(v, w)| v * w).sum::<f64>() + b * lq)
            .sum::<f64>()
    };
    let mut q = SoftplusPosterior::new(mk(None));
    q.sample_for_training(2, &mut ChaCha8Rng::seed_from_u64(4)).unwrap();
    let gx: Vec<f64> = (0..2).flat_map(|_| a).collect();
    q.backward(&gx, &[b, b]).unwrap();
    let g = q.inner_mut().accumulated_gradient().unwrap();
    let theta = mk(None).parameters();
    let mut checked = 0;
    for k in (0..theta.len()).step_by(theta.len().div_ceil(12)) {
        let h = 1e-5;
        let (mut tp, mut tm) = (theta.clone(), theta.clone());
        tp[k] += h;
        tm[k] -= h;
        let fd = (loss(&tp) - loss(&tm)) / (2.0 * h);
        assert!((fd - g[k]).abs() < 1e-5 * (1.0 + fd.abs()), "θ[{k}]: finite difference {fd} vs backward {}", g[k]);
        checked += 1;
    }
    assert!(checked >= 10);
}
