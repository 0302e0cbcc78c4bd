//! The per-image-time score API and the batched DSM bound agree with their one-image,
//! one-time counterparts: `score_at` with mixed times equals `score` per time,
//! `score_then_vjp` equals `score` + `score_and_vjp` with the cotangent formed from the score,
//! and the DSM bound evaluated as one batch equals the bound evaluated image by image for the
//! same draws.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::dpi::{Energy, PriorEnergy};
use scoreprior_core::prior::dsm::{DsmBoundPrior, TimeDensity};
use scoreprior_core::prior::Prior;
use scoreprior_core::score::{GaussianMixture, ScoreModel};
use scoreprior_core::sde::{AnySde, VpSde};
use scoreprior_core::Result;

fn mixture() -> GaussianMixture {
    let sde = AnySde::Vp(VpSde::default());
    GaussianMixture::new(&[0.3, 0.7], &[0.1, 0.2, 0.3, 0.6, 0.5, 0.4], &[0.1, 0.2], sde).unwrap()
}

fn points(n: usize, d: usize) -> Vec<f64> {
    (0..n * d).map(|k| 0.5 + 0.4 * ((k as f64) * 0.77).sin()).collect()
}

/// A model that answers every batched call one image at a time (the reference the batched
/// paths must reproduce).
struct OneAtATime<M>(M);

impl<M: ScoreModel> ScoreModel for OneAtATime<M> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn score(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<()> {
        let d = self.dim();
        for (xi, oi) in x.chunks(d).zip(out.chunks_mut(d)) {
            self.0.score(xi, t, oi)?;
        }
        Ok(())
    }
    fn score_and_vjp(&self, x: &[f64], t: f64, c: &[f64], s: &mut [f64], v: &mut [f64]) -> Result<()> {
        let d = self.dim();
        let n = x.len() / d;
        assert_eq!(c.len(), x.len(), "one cotangent per image here");
        for i in 0..n {
            let r = i * d..(i + 1) * d;
            self.0.score_and_vjp(&x[r.clone()], t, &c[r.clone()], &mut s[r.clone()], &mut v[r])?;
        }
        Ok(())
    }
    fn score_then_vjp(
        &self,
        x: &[f64],
        t: &[f64],
        cot: &(dyn Fn(usize, &[f64], &mut [f64]) + Sync),
        s: &mut [f64],
        v: &mut [f64],
    ) -> Result<()> {
        let d = self.dim();
        for i in 0..t.len() {
            let r = i * d..(i + 1) * d;
            let shifted = |_: usize, sc: &[f64], c: &mut [f64]| cot(i, sc, c);
            self.0.score_then_vjp(&x[r.clone()], &t[i..i + 1], &shifted, &mut s[r.clone()], &mut v[r])?;
        }
        Ok(())
    }
}

#[test]
fn score_at_mixed_times_equals_score_per_time() {
    let m = mixture();
    let d = m.dim();
    let x = points(5, d);
    let t = [0.1, 0.5, 0.1, 0.9, 0.5];
    let mut out = vec![0.0; 5 * d];
    m.score_at(&x, &t, &mut out).unwrap();
    for i in 0..5 {
        let mut o = vec![0.0; d];
        m.score(&x[i * d..(i + 1) * d], t[i], &mut o).unwrap();
        assert_eq!(&out[i * d..(i + 1) * d], &o[..], "image {i}");
    }
    // Shape and value errors, not panics.
    assert!(m.score_at(&x, &t[..4], &mut out).is_err());
    assert!(m.score_at(&x, &[0.1, f64::NAN, 0.1, 0.2, 0.3], &mut out).is_err());
}

#[test]
fn score_then_vjp_equals_score_and_vjp_with_the_formed_cotangent() {
    let m = mixture();
    let d = m.dim();
    let x = points(4, d);
    let t = [0.05, 0.3, 0.05, 0.7];
    let cot = |i: usize, s: &[f64], c: &mut [f64]| {
        for (k, (c, s)) in c.iter_mut().zip(s).enumerate() {
            *c = 0.5 * s + (i + k) as f64 * 0.1;
        }
    };
    let (mut s, mut v) = (vec![0.0; 4 * d], vec![0.0; 4 * d]);
    m.score_then_vjp(&x, &t, &cot, &mut s, &mut v).unwrap();
    for i in 0..4 {
        let r = i * d..(i + 1) * d;
        let mut s1 = vec![0.0; d];
        m.score(&x[r.clone()], t[i], &mut s1).unwrap();
        let mut c = vec![0.0; d];
        cot(i, &s1, &mut c);
        let (mut s2, mut v2) = (vec![0.0; d], vec![0.0; d]);
        m.score_and_vjp(&x[r.clone()], t[i], &c, &mut s2, &mut v2).unwrap();
        assert_eq!(&s[r.clone()], &s1[..]);
        for k in 0..d {
            assert!((v[i * d + k] - v2[k]).abs() <= 1e-12 * (1.0 + v2[k].abs()), "image {i}, k {k}");
        }
    }
}

#[test]
fn batched_dsm_bound_equals_the_per_image_bound_for_the_same_draws() {
    let sde = AnySde::Vp(VpSde::default());
    for (density, antithetic) in [(TimeDensity::G2OverSigma2, false), (TimeDensity::LogUniform, true)] {
        let batched = DsmBoundPrior::new(Arc::new(mixture()), sde, 1e-3, 4)
            .unwrap()
            .with_density(density)
            .with_stratified(true)
            .with_antithetic(antithetic)
            .unwrap();
        let single = DsmBoundPrior::new(Arc::new(OneAtATime(mixture())), sde, 1e-3, 4)
            .unwrap()
            .with_density(density)
            .with_stratified(true)
            .with_antithetic(antithetic)
            .unwrap();
        let n = 6;
        let x = points(n, 3);
        let (mut e1, mut g1) = (vec![0.0; n], vec![0.0; n * 3]);
        let (mut e2, mut g2) = (vec![0.0; n], vec![0.0; n * 3]);
        PriorEnergy::new(&batched).energy_and_grad(&x, &mut ChaCha8Rng::seed_from_u64(4), &mut e1, &mut g1).unwrap();
        PriorEnergy::new(&single).energy_and_grad(&x, &mut ChaCha8Rng::seed_from_u64(4), &mut e2, &mut g2).unwrap();
        for i in 0..n {
            assert!((e1[i] - e2[i]).abs() <= 1e-9 * (1.0 + e2[i].abs()), "energy {i}: {} vs {}", e1[i], e2[i]);
        }
        for k in 0..n * 3 {
            assert!((g1[k] - g2[k]).abs() <= 1e-9 * (1.0 + g2[k].abs()), "grad {k}: {} vs {}", g1[k], g2[k]);
        }
    }
}

#[test]
fn stratified_antithetic_draws_pair_up_and_cover_the_strata() {
    let sde = AnySde::Vp(VpSde::default());
    let p = DsmBoundPrior::new(Arc::new(mixture()), sde, 1e-2, 4)
        .unwrap()
        .with_stratified(true)
        .with_antithetic(true)
        .unwrap();
    let n = 3;
    let dr = p.draw(n, &mut ChaCha8Rng::seed_from_u64(1));
    for i in 0..n {
        // Draws 0/1 and 2/3 share a time and have opposite noise.
        assert_eq!(dr.t[i], dr.t[n + i]);
        assert_eq!(dr.t[2 * n + i], dr.t[3 * n + i]);
        assert!(dr.t[i] < dr.t[2 * n + i], "strata are ordered");
        assert!(dr.t.iter().all(|t| (1e-2..=1.0).contains(t)));
    }
    for k in 0..n * 3 {
        assert_eq!(dr.z[k], -dr.z[n * 3 + k]);
    }
    // Moving the floor moves every draw above it.
    p.set_time_floor(0.2).unwrap();
    let dr = p.draw(50, &mut ChaCha8Rng::seed_from_u64(2));
    assert!(dr.t.iter().all(|t| *t >= 0.2 - 1e-12));
    assert!(p.set_time_floor(1e-3).is_err(), "below the table's floor");
    assert!(p.set_time_floor(f64::NAN).is_err());
    // An odd number of antithetic draws is an error.
    assert!(DsmBoundPrior::new(Arc::new(mixture()), sde, 1e-2, 3).unwrap().with_antithetic(true).is_err());
}
