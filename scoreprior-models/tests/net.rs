//! Whole-network checks: input gradients of NCSN++ against finite differences (f64),
//! f32 against f64, per-image independence, and a short training run whose loss falls.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use scoreprior_models::ncsnpp::{Ncsnpp, NcsnppConfig, Params};

/// The typed network for 8×8 images, fed flattened `(b, 64)` batches.
fn tiny_net() -> (Ncsnpp<1, 8, 8>, Vec<Vec<f32>>) {
    let mut cfg = NcsnppConfig::tiny();
    // Non-zero last-layer init so every block contributes to the output and gradients.
    cfg.init_scale = 1.0;
    let net = Ncsnpp::<1, 8, 8>::new(cfg).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let w = net.net().init_params(&mut rng);
    (net, w)
}

#[test]
fn input_vjp_matches_finite_differences_f64() {
    let (net, w) = tiny_net();
    let dev = Cpu::default();
    let p = Params::<f64>::from_values(&dev, net.net().specs(), &w).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let b = 2;
    let n = b * 64;
    let x: Vec<f64> = (0..n).map(|_| rng.gen::<f64>()).collect();
    let c: Vec<f64> = (0..n).map(|_| rng.gen::<f64>() - 0.5).collect();
    let v: Vec<f64> = (0..n).map(|_| rng.gen::<f64>() - 0.5).collect();
    let ts = [0.3, 0.7];
    let f = |xv: &[f64]| -> f64 {
        let xt: Tensor<(usize, usize), f64, Cpu> = dev.tensor_from_vec(xv.to_vec(), (n / 64, 64));
        let e = net.forward_flat(&p, xt, &ts, None).unwrap().as_vec();
        e.iter().zip(&c).map(|(a, b)| a * b).sum()
    };
    let x0: Tensor<(usize, usize), f64, Cpu> = dev.tensor_from_vec(x.clone(), (n / 64, 64));
    let ct: Tensor<(usize, usize), f64, Cpu> = dev.tensor_from_vec(c.clone(), (n / 64, 64));
    let e = net.forward_flat(&p, x0.leaky_trace(), &ts, None).unwrap();
    let g = (e * ct).sum::<(), _>().backward().get(&x0).as_vec();
    let ad: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
    let h = 1e-5;
    let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
    let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
    let fd = (f(&xp) - f(&xm)) / (2.0 * h);
    assert!(ad.abs() > 1e-3, "degenerate test: {ad}");
    assert!((ad - fd).abs() <= 1e-7 * fd.abs().max(1.0), "AD {ad} vs FD {fd}");
}

/// Parameters `in_x_only` (what scores use) give the same output and the same input VJP to the
/// bit, f32 and f64: skipping the weight gradients changes nothing the input's gradient reads.
#[test]
fn in_x_only_params_give_the_same_input_vjp() {
    fn check<E: scoreprior_models::ops::Elem>(net: &Ncsnpp<1, 8, 8>, w: &[Vec<f32>])
    where
        Cpu: Device<E>,
    {
        let dev = Cpu::default();
        let full = Params::<E>::from_values(&dev, net.net().specs(), w).unwrap();
        let in_x = full.clone().in_x_only();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 3 * 64;
        let x: Vec<E> = (0..n).map(|_| E::of(rng.gen::<f64>())).collect();
        let c: Vec<E> = (0..n).map(|_| E::of(rng.gen::<f64>() - 0.5)).collect();
        let run = |p: &Params<E>| {
            let x0: Tensor<(usize, usize), E, Cpu> = dev.tensor_from_vec(x.clone(), (3, 64));
            let ct: Tensor<(usize, usize), E, Cpu> = dev.tensor_from_vec(c.clone(), (3, 64));
            let e = net.forward_flat(p, x0.leaky_trace(), &[0.2, 0.5, 0.9], None).unwrap();
            let out = e.with_empty_tape().as_vec();
            (out, (e * ct).sum::<(), _>().backward().get(&x0).as_vec())
        };
        let ((e1, g1), (e2, g2)) = (run(&full), run(&in_x));
        assert!(g1.iter().any(|v| v.f64().abs() > 1e-3), "degenerate test");
        assert_eq!(e1, e2, "outputs differ");
        assert_eq!(g1, g2, "input VJPs differ");
    }
    let (net, w) = tiny_net();
    check::<f32>(&net, &w);
    check::<f64>(&net, &w);
}

#[test]
fn parameter_gradients_match_finite_differences_f64() {
    let (net, w) = tiny_net();
    let dev = Cpu::default();
    let mut p = Params::<f64>::from_values(&dev, net.net().specs(), &w).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 64;
    let x: Vec<f64> = (0..n).map(|_| rng.gen::<f64>()).collect();
    let ts = [0.5];
    let loss = |p: &Params<f64>| -> f64 {
        let xt: Tensor<(usize, usize), f64, Cpu> = dev.tensor_from_vec(x.clone(), (n / 64, 64));
        net.forward_flat(p, xt, &ts, None).unwrap().as_vec().iter().map(|v| v * v).sum()
    };
    let xt: Tensor<(usize, usize), f64, Cpu> = dev.tensor_from_vec(x.clone(), (n / 64, 64));
    let e = net.forward_flat(&p, xt.retaped::<OwnedTape<f64, Cpu>>(), &ts, None).unwrap();
    let mut grads = e.square().sum::<(), _>().backward();
    // Check a few parameters of different kinds: time embedding, conv, GroupNorm, attention.
    let names = ["temb.0.w", "conv_in.w", "down.0.block.0.gn0.gamma", "mid.attn.q.w", "up.0.block.1.conv1.b"];
    for name in names {
        let k = net.net().specs().iter().position(|s| s.name == name).unwrap_or_else(|| panic!("{name}"));
        let g = grads.get_or_alloc_mut(&p.tensors[k]).unwrap().to_vec();
        let j = g.len() / 3;
        let h = 1e-5;
        let mut vals: Vec<Vec<f32>> = w.clone();
        // FD in f64 around the f32 value: perturb through a f64 parameter set.
        let base = p.tensors[k].as_vec();
        let mut plus = base.clone();
        plus[j] += h;
        p.tensors[k].copy_from(&plus);
        let lp = loss(&p);
        let mut minus = base.clone();
        minus[j] -= h;
        p.tensors[k].copy_from(&minus);
        let lm = loss(&p);
        p.tensors[k].copy_from(&base);
        let fd = (lp - lm) / (2.0 * h);
        assert!((g[j] - fd).abs() <= 1e-6 * fd.abs().max(1e-2), "{name}[{j}]: AD {} vs FD {fd}", g[j]);
        vals.clear();
    }
}

#[test]
fn images_are_independent_and_f32_matches_f64() {
    let (net, w) = tiny_net();
    let dev = Cpu::default();
    let p64 = Params::<f64>::from_values(&dev, net.net().specs(), &w).unwrap();
    let p32 = Params::<f32>::from_values(&dev, net.net().specs(), &w).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x: Vec<f64> = (0..3 * 64).map(|_| rng.gen::<f64>()).collect();
    let run = |xs: &[f64], ts: &[f64]| -> Vec<f64> {
        let xt: Tensor<(usize, usize), f64, Cpu> = dev.tensor_from_vec(xs.to_vec(), (xs.len() / 64, 64));
        net.forward_flat(&p64, xt, ts, None).unwrap().as_vec()
    };
    let all = run(&x, &[0.2, 0.5, 0.9]);
    let second = run(&x[64..128], &[0.5]);
    for (a, b) in all[64..128].iter().zip(&second) {
        assert!((a - b).abs() < 1e-12, "batch coupling: {a} vs {b}");
    }
    let xt: Tensor<(usize, usize), f32, Cpu> =
        dev.tensor_from_vec(x.iter().map(|&v| v as f32).collect(), (x.len() / 64, 64));
    let e32 = net.forward_flat(&p32, xt, &[0.2, 0.5, 0.9], None).unwrap().as_vec();
    let scale = all.iter().map(|v| v.abs()).fold(0.0, f64::max);
    for (a, b) in all.iter().zip(&e32) {
        assert!((a - *b as f64).abs() < 1e-4 * scale.max(1.0), "{a} vs {b}");
    }
}

/// The neural-prior guide's figure for the shipped prior (`docs/src/guide/neural-prior.md`): 321,921 parameters, counted by the network and,
/// independently, as the element count of the tensors stored in the file (read from the
/// safetensors header: shapes of every tensor, F32 data).
#[test]
fn shipped_prior_has_321921_parameters() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/ncsnpp_fmnist16/ema.safetensors");
    let (net, _, t) = scoreprior_models::checkpoint::load_any(&path).unwrap();
    assert_eq!(net.num_params(), 321_921);
    assert_eq!(t.ema.iter().map(Vec::len).sum::<usize>(), 321_921);
    let bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut count = 0;
    for (name, v) in header.iter().filter(|(k, _)| *k != "__metadata__") {
        assert_eq!(v["dtype"], "F32", "{name}");
        count += v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).product::<usize>();
    }
    assert_eq!(count, 321_921);
    // "1.3 MB": four bytes per parameter plus the header.
    assert_eq!(bytes.len(), 8 + n + 4 * 321_921);
}
