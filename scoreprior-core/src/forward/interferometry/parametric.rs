//! The exact posterior of a compact source within its generator's own family: for data `y` of a
//! source drawn by [`CompactSources`] (a ring, a crescent, or a crescent plus a blob, moved by an
//! offset), `p(θ | y) ∝ p(y | x(θ)) · U(θ)` over the generator's parameters `θ`, uniform over its
//! ranges, each image `x(θ)` rendered exactly as the generator renders its draws
//! ([`CompactSources::render`]). Sampled by adaptive random-walk Metropolis
//! ([`adaptive_metropolis`]: proposals `N(θ, s²·2.38²/d·Σ)` with `Σ` and `s` learnt per chain
//! during the warm-up and frozen after it, so that the kept draws are a Markov chain with `p(θ | y)`
//! as its stationary law), checked by split-R̂ and the effective sample size over chains
//! ([`split_rhat`], [`effective_sample_size`]). A yardstick for learned priors: in its family,
//! this posterior is the right answer up to Monte Carlo error.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use super::sources::{CompactSources, TestSource, BLOB_FRACTION};
use crate::forward::ForwardModel;
use crate::{Error, Result};

/// The shapes of [`CompactSources`] with a fixed number of parameters (blob mixtures have a
/// random number of blobs, and are not a family here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceFamily {
    /// Diameter, width fraction, offset east and north.
    Ring,
    /// Diameter, width fraction, asymmetry, position angle (degrees), offset east and north.
    Crescent,
    /// The crescent's, then the blob's flux fraction, centre (east, north) and FWHM, then the
    /// offset east and north.
    CrescentBlob,
}

named_variants!(SourceFamily, "source family", {
    Ring => "ring",
    Crescent => "crescent",
    CrescentBlob => "crescent+blob",
});

impl SourceFamily {
    /// The parameters' names, in the order of a parameter vector (lengths in µas, angles in
    /// degrees east of north, `width_fraction` the radial σ over the diameter: the generator's
    /// width is `max(diameter · width_fraction, min_width)`).
    pub fn parameter_names(self) -> &'static [&'static str] {
        match self {
            Self::Ring => &["diameter", "width_fraction", "east", "north"],
            Self::Crescent => &["diameter", "width_fraction", "asymmetry", "angle_deg", "east", "north"],
            Self::CrescentBlob => &[
                "diameter",
                "width_fraction",
                "asymmetry",
                "angle_deg",
                "blob_fraction",
                "blob_east",
                "blob_north",
                "blob_fwhm",
                "east",
                "north",
            ],
        }
    }

    /// The number of parameters.
    pub fn dim(self) -> usize {
        self.parameter_names().len()
    }

    /// The family and parameters of a source as [`CompactSources::source`] draws it (a
    /// [`TestSource::Shifted`] ring, crescent, or sum of a crescent and one blob).
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::{CompactSources, SourceFamily};
    /// let g = CompactSources::default();
    /// let (family, theta) = SourceFamily::of(&g.source(1_000_000, 2).unwrap()).unwrap();
    /// assert_eq!((family, theta.len()), (SourceFamily::Ring, 4));
    /// ```
    ///
    /// # Errors
    /// [`Error::Unsupported`] for any other shape (blob mixtures among them), [`Error::OutOfRange`]
    /// for a ring of diameter 0 (its width fraction is undefined).
    pub fn of(source: &TestSource) -> Result<(SourceFamily, Vec<f64>)> {
        let not_in_family = || {
            Error::unsupported(
                "a parametric posterior needs a source drawn by CompactSources as a shifted ring, crescent or \
                 crescent plus one blob (blob mixtures have no fixed number of parameters)",
            )
        };
        let TestSource::Shifted { east, north, source } = source else { return Err(not_in_family()) };
        let ring = |radius: f64, width: f64| -> Result<[f64; 2]> {
            if !(radius > 0.0 && radius.is_finite()) {
                return Err(Error::out_of_range("the radius of a parametric ring", radius, "positive and finite"));
            }
            Ok([2.0 * radius, width / (2.0 * radius)])
        };
        let (family, mut theta) = match source.as_ref() {
            TestSource::Ring { radius, width } => (Self::Ring, ring(*radius, *width)?.to_vec()),
            TestSource::Crescent { radius, width, asymmetry, angle_deg } => {
                (Self::Crescent, [ring(*radius, *width)?.as_slice(), &[*asymmetry, *angle_deg]].concat())
            }
            TestSource::Sum(parts) => match parts.as_slice() {
                [(_, TestSource::Crescent { radius, width, asymmetry, angle_deg }), (f, TestSource::Blobs(b))]
                    if b.len() == 1 =>
                {
                    let (be, bn, fwhm, _) = b[0];
                    let r = ring(*radius, *width)?;
                    (Self::CrescentBlob, [r.as_slice(), &[*asymmetry, *angle_deg, *f, be, bn, fwhm]].concat())
                }
                _ => return Err(not_in_family()),
            },
            _ => return Err(not_in_family()),
        };
        theta.extend([*east, *north]);
        Ok((family, theta))
    }

    /// The index of the position angle (a periodic parameter), if any.
    fn angle_index(self) -> Option<usize> {
        (self != Self::Ring).then_some(3)
    }
}

/// Settings of [`adaptive_metropolis`] and [`ParametricPosterior::sample`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McmcSettings {
    /// Independent chains (at least 2, for R̂), stepped together so that their densities are
    /// evaluated as one batch.
    pub chains: usize,
    /// Warm-up steps per chain (discarded; the proposal is adapted during them).
    pub warmup: usize,
    /// Kept steps per chain (at least 4: each chain is split in halves for R̂).
    pub steps: usize,
    /// [`ParametricPosterior::sample`]: prior draws scored to start the chains from the best.
    pub candidates: usize,
    /// Seed: chain `c` draws from ChaCha8 stream `(seed, c)`, the candidates from stream
    /// `(seed, chains)`.
    pub seed: u64,
}

impl Default for McmcSettings {
    /// 8 chains of 4,000 warm-up and 4,000 kept steps, started from the best 8 of 512 prior draws.
    fn default() -> Self {
        McmcSettings { chains: 8, warmup: 4000, steps: 4000, candidates: 512, seed: 0 }
    }
}

impl McmcSettings {
    fn check(&self) -> Result<()> {
        if self.chains < 2 {
            return Err(Error::count_out_of_range("MCMC chains", self.chains, "at least 2 (R̂ compares chains)"));
        }
        if self.steps < 4 {
            return Err(Error::count_out_of_range("MCMC kept steps", self.steps, "at least 4"));
        }
        Ok(())
    }
}

/// The draws of [`adaptive_metropolis`] and their diagnostics.
#[derive(Debug, Clone, PartialEq)]
pub struct McmcRun {
    /// `draws[c][t]`: the parameters of chain `c` at kept step `t`.
    pub draws: Vec<Vec<Vec<f64>>>,
    /// The log density of every draw, as `draws`.
    pub log_density: Vec<Vec<f64>>,
    /// Fraction of accepted proposals of each chain over the kept steps.
    pub acceptance: Vec<f64>,
    /// Split-R̂ of each parameter over the chains ([`split_rhat`]; NaN for a constant one).
    pub rhat: Vec<f64>,
    /// Effective sample size of each parameter over all chains ([`effective_sample_size`]).
    pub ess: Vec<f64>,
    /// Log-density evaluations (warm-up included).
    pub evaluations: usize,
    /// Warm-up restarts of chains stuck in a minor mode ([`adaptive_metropolis`]).
    pub restarted: usize,
}

impl McmcRun {
    /// `n` draws spread evenly over the chains and their steps (every chain in turn, from the end
    /// of its run backwards), all of them when `n` is at least their number.
    pub fn thinned(&self, n: usize) -> Vec<Vec<f64>> {
        let (m, t) = (self.draws.len(), self.draws.first().map_or(0, Vec::len));
        let total = m * t;
        let n = n.min(total);
        (0..n)
            .map(|k| {
                // Evenly spaced positions in the chain-major order of all draws.
                let at = (k * total) / n.max(1);
                self.draws[at % m][t - 1 - at / m].clone()
            })
            .collect()
    }

    /// Recomputes [`McmcRun::rhat`] and [`McmcRun::ess`] from the draws.
    pub fn diagnose(&mut self) {
        let d = self.draws.first().and_then(|c| c.first()).map_or(0, Vec::len);
        let column =
            |p: usize| -> Vec<Vec<f64>> { self.draws.iter().map(|c| c.iter().map(|th| th[p]).collect()).collect() };
        self.rhat = (0..d).map(|p| split_rhat(&column(p))).collect();
        self.ess = (0..d).map(|p| effective_sample_size(&column(p))).collect();
    }
}

/// Chains split in halves (the first `⌊n/2⌋` and the last `⌊n/2⌋` draws of each).
fn split_halves(chains: &[Vec<f64>]) -> Vec<&[f64]> {
    let n = chains.iter().map(Vec::len).min().unwrap_or(0) / 2;
    chains.iter().flat_map(|c| [&c[..n], &c[c.len() - n..]]).collect()
}

/// `(W, var⁺)` of split chains of length `n`: the mean within-chain variance and the pooled
/// estimate `(n − 1)/n · W + B/n` (Gelman et al., *Bayesian Data Analysis*, 3rd ed., §11.4).
fn within_and_pooled(split: &[&[f64]]) -> (f64, f64) {
    let (m, n) = (split.len() as f64, split.first().map_or(0, |c| c.len()) as f64);
    let means: Vec<f64> = split.iter().map(|c| c.iter().sum::<f64>() / n).collect();
    let grand = means.iter().sum::<f64>() / m;
    let b_over_n = means.iter().map(|x| (x - grand).powi(2)).sum::<f64>() / (m - 1.0);
    let w = split
        .iter()
        .zip(&means)
        .map(|(c, mu)| c.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / (n - 1.0))
        .sum::<f64>()
        / m;
    (w, (n - 1.0) / n * w + b_over_n)
}

/// Split-R̂ of one parameter over chains (`chains[c][t]`): `√(var⁺/W)` over the chains' halves;
/// near 1 when the chains agree, NaN when the parameter is constant or the chains are shorter
/// than 4 draws.
///
/// ```
/// use scoreprior_core::forward::interferometry::split_rhat;
/// let a: Vec<f64> = (0..100).map(|t| ((t * 37) % 100) as f64).collect();
/// assert!((split_rhat(&[a.clone(), a.clone()]) - 1.0).abs() < 0.05);
/// let b: Vec<f64> = a.iter().map(|v| v + 200.0).collect(); // a chain somewhere else
/// assert!(split_rhat(&[a, b]) > 2.0);
/// ```
pub fn split_rhat(chains: &[Vec<f64>]) -> f64 {
    let split = split_halves(chains);
    if split.len() < 2 || split[0].len() < 2 {
        return f64::NAN;
    }
    let (w, var) = within_and_pooled(&split);
    if w > 0.0 {
        (var / w).sqrt()
    } else {
        f64::NAN
    }
}

/// Effective sample size of one parameter over chains: `m·n / (1 + 2 Σ_t ρ_t)` over the split
/// chains, `ρ_t = 1 − V_t / (2 var⁺)` from the variogram `V_t` at lag `t`, summed in pairs
/// while a pair's sum is positive (Geyer's initial positive sequence; Gelman et al., §11.5).
/// NaN when the parameter is constant or the chains are shorter than 4 draws.
///
/// ```
/// use scoreprior_core::forward::interferometry::effective_sample_size;
/// // Two chains of independent values, each repeated 10 times: about a tenth of the draws.
/// let hash = |k: u64| (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f64;
/// let c = |s: u64| (0..2000).map(|t| hash(t / 10 + 1000 * s)).collect::<Vec<f64>>();
/// let ess = effective_sample_size(&[c(0), c(1)]);
/// assert!(ess > 250.0 && ess < 600.0, "{ess}");
/// ```
pub fn effective_sample_size(chains: &[Vec<f64>]) -> f64 {
    let split = split_halves(chains);
    if split.len() < 2 || split[0].len() < 2 {
        return f64::NAN;
    }
    let (m, n) = (split.len(), split[0].len());
    let (_, var) = within_and_pooled(&split);
    if !(var > 0.0) {
        return f64::NAN;
    }
    let rho = |t: usize| {
        let v = split.iter().map(|c| (t..n).map(|i| (c[i] - c[i - t]).powi(2)).sum::<f64>()).sum::<f64>()
            / (m * (n - t)) as f64;
        1.0 - v / (2.0 * var)
    };
    let mut sum = 0.0;
    let mut t = 1;
    while t + 1 < n {
        let pair = rho(t) + rho(t + 1);
        if pair < 0.0 {
            break;
        }
        sum += pair;
        t += 2;
    }
    (m * n) as f64 / (1.0 + 2.0 * sum).max(1e-12)
}

/// The lower Cholesky factor of a symmetric positive semi-definite `d × d` matrix (row-major):
/// a non-positive pivot (a direction without variance) gives a zero column, so that a
/// parameter held fixed stays fixed.
fn cholesky_psd(a: &[f64], d: usize) -> Vec<f64> {
    let mut l = vec![0.0; d * d];
    for j in 0..d {
        let s = a[j * d + j] - (0..j).map(|k| l[j * d + k] * l[j * d + k]).sum::<f64>();
        if !(s > 0.0) {
            continue;
        }
        let ljj = s.sqrt();
        l[j * d + j] = ljj;
        for i in j + 1..d {
            let s = a[i * d + j] - (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum::<f64>();
            l[i * d + j] = s / ljj;
        }
    }
    l
}

/// A chain whose mean log density over the last quarter of its warm-up lies this far below the
/// best chain's is restarted from a better one ([`adaptive_metropolis`]).
const STUCK_NATS: f64 = 20.0;
/// Window of warm-up steps between adaptations of the proposal.
const ADAPT_EVERY: usize = 50;
/// The acceptance rate the warm-up steers the proposal scale to (optimal for random-walk
/// Metropolis on smooth targets of several dimensions).
const TARGET_ACCEPTANCE: f64 = 0.234;

/// Adaptive random-walk Metropolis: chains started at `starts` (each of finite density), stepped
/// together (one call of `log_density` per step for every chain's proposal; it returns `−∞`
/// outside the support). During `warmup` steps each chain adapts its own proposal every 50
/// steps: the scale `s` by the window's acceptance towards 0.234, and, once it accepts, the
/// covariance to `2.38²/d` times that of the latter half of its warm-up draws (Haario et al.,
/// 2001), starting from `diag(scales²)`; a parameter of scale 0 is held fixed. Halfway through
/// the warm-up and at its end, a chain whose mean log density over the last quarter of its warm-up
/// is more than 20 nats below the best chain's (a minor mode, which random-walk steps rarely
/// leave) continues from a better chain's state and proposal. Then the proposals are frozen for
/// the kept `steps`, whose draws are returned with their diagnostics.
///
/// ```
/// use scoreprior_core::forward::interferometry::{adaptive_metropolis, McmcSettings};
/// // A standard normal in 2 dimensions.
/// let target = |b: &[Vec<f64>]| Ok(b.iter().map(|t| -0.5 * (t[0] * t[0] + t[1] * t[1])).collect());
/// let s = McmcSettings { chains: 4, warmup: 1000, steps: 4000, ..Default::default() };
/// let run = adaptive_metropolis(&target, &vec![vec![1.0, -1.0]; 4], &[1.0, 1.0], &s).unwrap();
/// let mean: f64 = run.draws.iter().flatten().map(|t| t[0]).sum::<f64>() / 16000.0;
/// assert!(mean.abs() < 0.1 && run.rhat[0] < 1.05, "{mean} {:?}", run.rhat);
/// ```
///
/// # Errors
/// Settings out of range (fewer than 2 chains or 4 kept steps), `starts` not one per chain of
/// `scales.len()` parameters, a start of non-finite density, a scale that is negative or not
/// finite, and `log_density`'s own errors.
pub fn adaptive_metropolis(
    log_density: &(dyn Fn(&[Vec<f64>]) -> Result<Vec<f64>> + Sync),
    starts: &[Vec<f64>],
    scales: &[f64],
    settings: &McmcSettings,
) -> Result<McmcRun> {
    settings.check()?;
    let (m, d) = (settings.chains, scales.len());
    if starts.len() != m {
        return Err(Error::shape("MCMC starting points (one per chain)", m, starts.len()));
    }
    if let Some(s) = starts.iter().find(|s| s.len() != d) {
        return Err(Error::shape("an MCMC starting point (one value per parameter)", d, s.len()));
    }
    if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        return Err(Error::out_of_range("an MCMC proposal scale", *s, "≥ 0 and finite"));
    }
    let mut state = starts.to_vec();
    let mut lp = log_density(&state)?;
    if lp.len() != m {
        return Err(Error::shape("log densities (one per chain)", m, lp.len()));
    }
    if let Some(k) = lp.iter().position(|v| !v.is_finite()) {
        return Err(Error::out_of_range(format!("the log density at the start of MCMC chain {k}"), lp[k], "finite"));
    }
    let mut rngs: Vec<ChaCha8Rng> = (0..m)
        .map(|c| {
            let mut r = ChaCha8Rng::seed_from_u64(settings.seed);
            r.set_stream(c as u64);
            r
        })
        .collect();
    let mut chol: Vec<Vec<f64>> = (0..m)
        .map(|_| {
            let mut l = vec![0.0; d * d];
            (0..d).for_each(|i| l[i * d + i] = scales[i]);
            l
        })
        .collect();
    let mut log_s = vec![0.0f64; m];
    let mut history: Vec<Vec<Vec<f64>>> = vec![Vec::with_capacity(settings.warmup); m];
    let mut lp_history: Vec<Vec<f64>> = vec![Vec::with_capacity(settings.warmup); m];
    let mut restarted = 0;
    let mut window = vec![0usize; m];
    let mut accepted = vec![0usize; m];
    let mut draws: Vec<Vec<Vec<f64>>> = vec![Vec::with_capacity(settings.steps); m];
    let mut dens: Vec<Vec<f64>> = vec![Vec::with_capacity(settings.steps); m];
    let floor: Vec<f64> = scales.iter().map(|s| (1e-6 * s).powi(2)).collect();
    let mut evaluations = m;
    for t in 0..settings.warmup + settings.steps {
        let proposals: Vec<Vec<f64>> = (0..m)
            .map(|c| {
                let z: Vec<f64> = (0..d).map(|_| rngs[c].sample(StandardNormal)).collect();
                let s = log_s[c].exp();
                (0..d).map(|i| state[c][i] + s * (0..=i).map(|k| chol[c][i * d + k] * z[k]).sum::<f64>()).collect()
            })
            .collect();
        let lq = log_density(&proposals)?;
        if lq.len() != m {
            return Err(Error::shape("log densities (one per chain)", m, lq.len()));
        }
        evaluations += m;
        for (c, prop) in proposals.into_iter().enumerate() {
            let u: f64 = rngs[c].gen();
            // NaN compares false: a proposal of undefined density is rejected.
            if u.ln() < lq[c] - lp[c] {
                state[c] = prop;
                lp[c] = lq[c];
                if t < settings.warmup {
                    window[c] += 1;
                } else {
                    accepted[c] += 1;
                }
            }
            if t >= settings.warmup {
                draws[c].push(state[c].clone());
                dens[c].push(lp[c]);
                continue;
            }
            history[c].push(state[c].clone());
            lp_history[c].push(lp[c]);
            if (t + 1) % ADAPT_EVERY != 0 {
                continue;
            }
            let rate = window[c] as f64 / ADAPT_EVERY as f64;
            window[c] = 0;
            log_s[c] = (log_s[c] + 2.0 * (rate - TARGET_ACCEPTANCE)).clamp(-30.0, 5.0);
            if t + 1 >= 2 * ADAPT_EVERY && rate > 0.02 {
                let h = &history[c][(t + 1) / 2..];
                let n = h.len() as f64;
                let mean: Vec<f64> = (0..d).map(|i| h.iter().map(|x| x[i]).sum::<f64>() / n).collect();
                let mut cov = vec![0.0; d * d];
                for i in 0..d {
                    for j in 0..=i {
                        let v = h.iter().map(|x| (x[i] - mean[i]) * (x[j] - mean[j])).sum::<f64>() / n;
                        let v = 2.38 * 2.38 / d as f64 * v;
                        cov[i * d + j] = v;
                        cov[j * d + i] = v;
                    }
                    // Directions the chain has not explored yet keep a little spread; a fixed
                    // parameter (scale 0) none.
                    cov[i * d + i] += floor[i];
                }
                chol[c] = cholesky_psd(&cov, d);
            }
        }
        // Halfway through the warm-up and at its end, a chain whose recent log density lies far
        // below the best chain's is in a minor mode (its mass is a factor e^STUCK_NATS smaller
        // at least, up to the modes' volumes) that random-walk steps rarely leave: it continues
        // from the state and proposal of a better chain. The warm-up is discarded, so the kept
        // steps remain a Markov chain of the target.
        if t + 1 == settings.warmup / 2 || t + 1 == settings.warmup {
            let recent = |c: usize| {
                let h = &lp_history[c];
                let tail = &h[h.len() - (h.len() / 4).max(1)..];
                tail.iter().sum::<f64>() / tail.len() as f64
            };
            let level: Vec<f64> = (0..m).map(recent).collect();
            let best = level.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let good: Vec<usize> = (0..m).filter(|&c| level[c] >= best - STUCK_NATS).collect();
            for (k, c) in (0..m).filter(|&c| level[c] < best - STUCK_NATS).enumerate() {
                let from = good[k % good.len()];
                state[c] = state[from].clone();
                lp[c] = lp[from];
                chol[c] = chol[from].clone();
                log_s[c] = log_s[from];
                lp_history[c] = lp_history[from].clone();
                restarted += 1;
            }
        }
    }
    let mut run = McmcRun {
        acceptance: accepted.iter().map(|&a| a as f64 / settings.steps as f64).collect(),
        draws,
        log_density: dens,
        rhat: vec![],
        ess: vec![],
        evaluations,
        restarted,
    };
    run.diagnose();
    Ok(run)
}

/// The posterior of a source's parameters within one [`SourceFamily`] of a [`CompactSources`]
/// generator, under a measurement model of the images (`model`, data `y`): uniform prior over
/// the generator's ranges, likelihood `model.log_likelihood(y, x(θ))`.
///
/// ```
/// use scoreprior_core::forward::interferometry::{
///     Array, CompactSources, Interferometer, McmcSettings, Observation, ParametricPosterior, SourceFamily,
/// };
/// use scoreprior_core::forward::ForwardModel;
/// let cov = Array::eht2017().observe(&Observation { cadence_s: 3600.0, ..Observation::sgr_a_star() }).unwrap();
/// let eht = Interferometer::new(cov, 16, 160.0).unwrap();
/// let g = CompactSources { supersample: 2, ..Default::default() };
/// let (family, truth) = SourceFamily::of(&g.source(1_000_000, 2).unwrap()).unwrap();
/// let vis_model = eht.visibility_model().unwrap();
/// let e = ParametricPosterior::new(&vis_model, &[], family, g.clone(), 16, 160.0).err().unwrap();
/// assert!(e.to_string().contains("data"), "{e}");
/// let x = g.render(&g.source(1_000_000, 2).unwrap(), 16, 160.0).unwrap();
/// let vis = vis_model.forward(&x).unwrap();
/// let p = eht.closure_problem(&vis, false).unwrap();
/// let post = ParametricPosterior::new(&p.model, &p.y, family, g, 16, 160.0).unwrap();
/// let run = post.sample(&McmcSettings { chains: 2, warmup: 200, steps: 100, candidates: 16, seed: 1 }).unwrap();
/// assert_eq!((run.draws.len(), run.draws[0].len(), run.draws[0][0].len()), (2, 100, truth.len()));
/// ```
pub struct ParametricPosterior<'a> {
    model: &'a dyn ForwardModel,
    y: &'a [f64],
    family: SourceFamily,
    generator: CompactSources,
    npix: usize,
    fov_uas: f64,
}

impl<'a> ParametricPosterior<'a> {
    /// The posterior of `family`'s parameters of `generator` given data `y` of `model`, whose
    /// images are `npix × npix` over `fov_uas`.
    ///
    /// # Errors
    /// A generator setting out of range, `npix` of 0 or a field of view that is not positive and
    /// finite, a model whose input is not `npix²` pixels, data that are not one finite
    /// measurement of the model.
    pub fn new(
        model: &'a dyn ForwardModel,
        y: &'a [f64],
        family: SourceFamily,
        generator: CompactSources,
        npix: usize,
        fov_uas: f64,
    ) -> Result<Self> {
        generator.check()?;
        if npix == 0 {
            return Err(Error::count_out_of_range("parametric posterior npix", npix, "at least 1"));
        }
        if !(fov_uas > 0.0 && fov_uas.is_finite()) {
            return Err(Error::out_of_range("parametric posterior field of view", fov_uas, "positive and finite"));
        }
        if model.input_dim() != npix * npix {
            return Err(Error::shape("the model's input (npix² pixels)", npix * npix, model.input_dim()));
        }
        if y.len() != model.output_dim() {
            return Err(Error::shape("the data (one measurement of the model)", model.output_dim(), y.len()));
        }
        if let Some(index) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "the parametric posterior's data", index });
        }
        Ok(ParametricPosterior { model, y, family, generator, npix, fov_uas })
    }

    /// The family.
    pub fn family(&self) -> SourceFamily {
        self.family
    }

    fn check_dim(&self, theta: &[f64]) -> Result<()> {
        if theta.len() != self.family.dim() {
            return Err(Error::shape(format!("{} parameters", self.family), self.family.dim(), theta.len()));
        }
        Ok(())
    }

    /// The source of parameters `theta` (no range checks: see [`ParametricPosterior::log_prior`]).
    pub fn source(&self, theta: &[f64]) -> Result<TestSource> {
        self.check_dim(theta)?;
        let g = &self.generator;
        let (d, k) = (theta[0], theta.len());
        let width = (d * theta[1]).max(g.min_width);
        let crescent = || TestSource::Crescent { radius: d / 2.0, width, asymmetry: theta[2], angle_deg: theta[3] };
        let inner = match self.family {
            SourceFamily::Ring => TestSource::Ring { radius: d / 2.0, width },
            SourceFamily::Crescent => crescent(),
            SourceFamily::CrescentBlob => {
                let f = theta[4];
                TestSource::Sum(vec![
                    (1.0 - f, crescent()),
                    (f, TestSource::Blobs(vec![(theta[5], theta[6], theta[7], 1.0)])),
                ])
            }
        };
        Ok(TestSource::Shifted { east: theta[k - 2], north: theta[k - 1], source: Box::new(inner) })
    }

    /// The image of parameters `theta`, rendered as the generator renders its draws (peak 1).
    pub fn image(&self, theta: &[f64]) -> Result<Vec<f64>> {
        self.generator.render(&self.source(theta)?, self.npix, self.fov_uas)
    }

    /// `(low, high)` of each parameter's uniform prior, and whether it is periodic (the angle: any
    /// value, its prior uniform on the circle). Offsets and blob centres are uniform in discs
    /// ([`ParametricPosterior::log_prior`]); their boxes here circumscribe the discs.
    fn ranges(&self) -> Vec<((f64, f64), bool)> {
        let g = &self.generator;
        let disc = |r: f64| [((-r, r), false), ((-r, r), false)];
        let mut v = vec![(g.diameter, false), (g.width, false)];
        if self.family != SourceFamily::Ring {
            v.extend([(g.asymmetry, false), ((0.0, 360.0), true)]);
        }
        if self.family == SourceFamily::CrescentBlob {
            v.push((BLOB_FRACTION, false));
            v.extend(disc(g.blob_spread));
            v.push((g.blob_fwhm, false));
        }
        v.extend(disc(g.offset));
        v
    }

    /// `0` inside the prior's support, `−∞` outside (the prior is uniform: its constant does
    /// not matter to the posterior).
    pub fn log_prior(&self, theta: &[f64]) -> f64 {
        if theta.len() != self.family.dim() || theta.iter().any(|v| !v.is_finite()) {
            return f64::NEG_INFINITY;
        }
        let in_box = self.ranges().iter().zip(theta).all(|(((a, b), periodic), v)| *periodic || (*a <= *v && *v <= *b));
        let k = theta.len();
        let mut in_discs = theta[k - 2].hypot(theta[k - 1]) <= self.generator.offset;
        if self.family == SourceFamily::CrescentBlob {
            in_discs &= theta[5].hypot(theta[6]) <= self.generator.blob_spread;
        }
        if in_box && in_discs {
            0.0
        } else {
            f64::NEG_INFINITY
        }
    }

    /// The log posterior (up to a constant) of each parameter vector: `−∞` outside the prior's
    /// support or where the likelihood is not finite.
    ///
    /// # Errors
    /// A vector of the wrong length, the renderer's and the model's errors.
    pub fn log_posterior(&self, thetas: &[Vec<f64>]) -> Result<Vec<f64>> {
        thetas.iter().try_for_each(|t| self.check_dim(t))?;
        let inside: Vec<usize> = (0..thetas.len()).filter(|&k| self.log_prior(&thetas[k]).is_finite()).collect();
        let mut out = vec![f64::NEG_INFINITY; thetas.len()];
        if inside.is_empty() {
            return Ok(out);
        }
        let images: Vec<Vec<f64>> = inside.par_iter().map(|&k| self.image(&thetas[k])).collect::<Result<_>>()?;
        let ll = self.model.log_likelihood(self.y, &images.concat())?;
        for (&k, l) in inside.iter().zip(ll) {
            out[k] = if l.is_finite() { l } else { f64::NEG_INFINITY };
        }
        Ok(out)
    }

    /// A draw from the prior.
    pub fn prior_draw(&self, rng: &mut impl Rng) -> Vec<f64> {
        loop {
            let theta: Vec<f64> =
                self.ranges().iter().map(|((a, b), _)| if b > a { rng.gen_range(*a..*b) } else { *a }).collect();
            // Rejection from the circumscribing box: uniform in the discs.
            if self.log_prior(&theta).is_finite() {
                return theta;
            }
        }
    }

    /// Samples the posterior: `candidates` prior draws are scored and the chains start from the
    /// best (distinct) ones; [`adaptive_metropolis`] with initial proposal scales of 1 % of each
    /// range. The position angle is then wrapped to within 180° of its circular mean, so that
    /// its diagnostics and quantiles are those of an angle.
    ///
    /// # Errors
    /// Settings out of range (fewer candidates than chains among them), no candidate of finite
    /// posterior density, and the errors of [`ParametricPosterior::log_posterior`].
    pub fn sample(&self, settings: &McmcSettings) -> Result<McmcRun> {
        settings.check()?;
        if settings.candidates < settings.chains {
            return Err(Error::count_out_of_range(
                "MCMC starting candidates",
                settings.candidates,
                format!("at least the number of chains ({})", settings.chains),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        rng.set_stream(settings.chains as u64);
        let cands: Vec<Vec<f64>> = (0..settings.candidates).map(|_| self.prior_draw(&mut rng)).collect();
        let mut scored: Vec<(f64, usize)> = Vec::with_capacity(cands.len());
        for (b, chunk) in cands.chunks(64).enumerate() {
            scored.extend(self.log_posterior(chunk)?.into_iter().enumerate().map(|(k, l)| (l, b * 64 + k)));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        if !scored[settings.chains - 1].0.is_finite() {
            return Err(Error::empty(
                "the parametric posterior's starting points",
                format!("fewer than {} of {} prior draws have a finite likelihood", settings.chains, cands.len()),
            ));
        }
        let starts: Vec<Vec<f64>> = scored[..settings.chains].iter().map(|&(_, k)| cands[k].clone()).collect();
        let scales: Vec<f64> = self.ranges().iter().map(|((a, b), _)| 0.01 * (b - a)).collect();
        let mut run = adaptive_metropolis(&|b| self.log_posterior(b), &starts, &scales, settings)?;
        if let Some(a) = self.family.angle_index() {
            let all: Vec<f64> = run.draws.iter().flatten().map(|t| t[a]).collect();
            let (s, c) = all.iter().fold((0.0, 0.0), |(s, c), v| (s + v.to_radians().sin(), c + v.to_radians().cos()));
            let mu = s.atan2(c).to_degrees();
            for t in run.draws.iter_mut().flatten() {
                t[a] = mu + (t[a] - mu + 180.0).rem_euclid(360.0) - 180.0;
            }
            run.diagnose();
        }
        Ok(run)
    }
}
