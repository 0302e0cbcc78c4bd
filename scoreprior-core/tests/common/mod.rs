//! Shared helpers of the score-prior integration tests: random SPD Gaussians and mixtures, and
//! a mixture seen only through its score and VJPs.
#![allow(dead_code)]

pub mod linear2d;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use scoreprior_core::prior::{Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::{Gaussian, GaussianMixture, ScoreModel};
use scoreprior_core::sde::{AnySde, SubVpSde, VeSde, VpSde};

/// Central difference of a scalar function of one image.
pub fn fd_grad(f: &dyn Fn(&[f64]) -> f64, x: &[f64], h: f64) -> Vec<f64> {
    (0..x.len())
        .map(|l| {
            let mut p = x.to_vec();
            let mut m = x.to_vec();
            p[l] += h;
            m[l] -= h;
            (f(&p) - f(&m)) / (2.0 * h)
        })
        .collect()
}

/// Central difference of a prior's log-density at one image.
pub fn fd_grad_logp(prior: &ScorePrior, x: &[f64], h: f64) -> Vec<f64> {
    fd_grad(&|y| prior.log_prob(y).unwrap().log_prob[0], x, h)
}

pub fn vp() -> AnySde {
    AnySde::Vp(VpSde::default())
}

/// The exact-trace prior under the VP SDE with PID control at `rtol = atol = tol` forward
/// and backward (adaptive adjoint steps): the configuration the gradient tests check against
/// closed forms.
pub fn exact_vp_config(tol: f64) -> ScorePriorConfig {
    ScorePriorConfig::default()
        .with_sde(vp())
        .with_exact_trace()
        .with_tolerances(tol, tol)
        .with_adjoint_tolerances(tol, tol)
}

pub fn all_sdes() -> Vec<AnySde> {
    vec![AnySde::Vp(VpSde::default()), AnySde::SubVp(SubVpSde::default()), AnySde::Ve(VeSde::default())]
}

/// A random image-like Gaussian in dimension `d`: mean in [0.2, 0.8], covariance
/// `0.05·A Aᵀ + 0.01 I` with `A` standard normal / √d (eigenvalues in about [0.01, 0.21]).
pub fn random_cov(d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mean: Vec<f64> = (0..d).map(|_| rng.gen_range(0.2..0.8)).collect();
    let a: Vec<f64> = (0..d * d).map(|_| rng.sample::<f64, _>(StandardNormal) / (d as f64).sqrt()).collect();
    let mut cov = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let v: f64 = (0..d).map(|k| a[i * d + k] * a[j * d + k]).sum::<f64>() * 0.05;
            cov[i * d + j] = v;
            cov[j * d + i] = v;
        }
        cov[i * d + i] += 0.01;
    }
    (mean, cov)
}

pub fn random_gaussian(d: usize, seed: u64, sde: AnySde) -> Gaussian {
    let (mean, cov) = random_cov(d, seed);
    Gaussian::new(mean, &cov, sde).unwrap()
}

/// [`random_gaussian`] of `seed` and `n` of its samples drawn with seed `seed + 1`.
pub fn gaussian_and_samples(d: usize, seed: u64, sde: AnySde, n: usize) -> (Gaussian, Vec<f64>) {
    let g = random_gaussian(d, seed, sde);
    let x = g.sample(&mut rng(seed + 1), n);
    (g, x)
}

/// A 3-component diagonal mixture in dimension `d`.
pub fn random_mixture(d: usize, seed: u64, sde: AnySde) -> GaussianMixture {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let k = 3;
    let w = [0.5, 0.3, 0.2];
    let means: Vec<f64> = (0..k * d).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let stds: Vec<f64> = (0..k * d).map(|_| rng.gen_range(0.2..0.6)).collect();
    GaussianMixture::new(&w, &means, &stds, sde).unwrap()
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den
}

/// A model seen only through its score and VJPs: the trait's defaults give everything else
/// (exact trace by basis VJPs, trace gradient and second-order term by central differences,
/// probe forms by one VJP per probe and image), to be checked against the model's own.
pub struct ScoreAndVjpOnly<M>(pub M);

impl<M: ScoreModel> ScoreModel for ScoreAndVjpOnly<M> {
    fn dim(&self) -> usize {
        ScoreModel::dim(&self.0)
    }
    fn score(&self, x: &[f64], t: f64, out: &mut [f64]) -> scoreprior_core::Result<()> {
        self.0.score(x, t, out)
    }
    fn score_and_vjp(&self, x: &[f64], t: f64, c: &[f64], s: &mut [f64], v: &mut [f64]) -> scoreprior_core::Result<()> {
        self.0.score_and_vjp(x, t, c, s, v)
    }
}
