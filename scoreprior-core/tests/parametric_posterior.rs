//! The parametric posterior within the compact-source family (`forward::interferometry::
//! parametric`): the adaptive Metropolis sampler against posteriors computed on a grid by brute
//! force, the family's parameters against the generator's own images, and bad inputs.

use scoreprior_core::forward::interferometry::{
    adaptive_metropolis, Array, CompactSources, Interferometer, McmcSettings, Observation, ParametricPosterior,
    SourceFamily, TestSource,
};
use scoreprior_core::forward::ForwardModel;

/// The `q`-quantile of a density tabulated on an evenly spaced grid `xs` (weights `w`), by
/// linear interpolation of its cumulative sum at cell centres.
fn grid_quantile(xs: &[f64], w: &[f64], q: f64) -> f64 {
    let total: f64 = w.iter().sum();
    let mut acc = 0.0;
    for k in 0..xs.len() {
        let next = acc + w[k] / total;
        if next >= q {
            let h = if k + 1 < xs.len() { xs[k + 1] - xs[k] } else { xs[k] - xs[k - 1] };
            // The mass of cell k is spread over [x_k − h/2, x_k + h/2].
            return xs[k] - h / 2.0 + h * (q - acc) / (next - acc).max(1e-300);
        }
        acc = next;
    }
    xs[xs.len() - 1]
}

fn sample_quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let h = q * (v.len() - 1) as f64;
    let lo = h.floor() as usize;
    v[lo] + (h - lo as f64) * (v[(lo + 1).min(v.len() - 1)] - v[lo])
}

#[test]
fn metropolis_recovers_a_truncated_correlated_gaussian() {
    // A correlated Gaussian cut by the unit square, so that its marginals are skewed: the
    // sampler must get the truncation and the correlation right, not only the moments.
    let (mu, sd, rho) = ([0.3, 0.8], [0.15, 0.1], 0.7);
    let log_p = |t: &[f64]| -> f64 {
        if !(0.0..=1.0).contains(&t[0]) || !(0.0..=1.0).contains(&t[1]) {
            return f64::NEG_INFINITY;
        }
        let (a, b) = ((t[0] - mu[0]) / sd[0], (t[1] - mu[1]) / sd[1]);
        -(a * a - 2.0 * rho * a * b + b * b) / (2.0 * (1.0 - rho * rho))
    };
    let target = |batch: &[Vec<f64>]| Ok(batch.iter().map(|t| log_p(t)).collect());
    let s = McmcSettings { chains: 4, warmup: 2000, steps: 20_000, candidates: 4, seed: 3 };
    let starts = vec![vec![0.1, 0.9], vec![0.5, 0.5], vec![0.9, 0.95], vec![0.2, 0.6]];
    let run = adaptive_metropolis(&target, &starts, &[0.01, 0.01], &s).unwrap();
    assert!(run.acceptance.iter().all(|&a| (0.1..0.6).contains(&a)), "{:?}", run.acceptance);
    assert!(run.rhat.iter().all(|&r| r < 1.02), "{:?}", run.rhat);
    assert!(run.ess.iter().all(|&e| e > 2000.0), "{:?}", run.ess);
    let n = 400;
    let xs: Vec<f64> = (0..n).map(|k| (k as f64 + 0.5) / n as f64).collect();
    for p in 0..2 {
        // The marginal of parameter p on the grid.
        let w: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| log_p(&if p == 0 { [xs[i], xs[j]] } else { [xs[j], xs[i]] }).exp()).sum())
            .collect();
        let mut v: Vec<f64> = run.draws.iter().flatten().map(|t| t[p]).collect();
        for q in [0.05, 0.5, 0.95] {
            let (exact, mc) = (grid_quantile(&xs, &w, q), sample_quantile(&mut v, q));
            // Monte Carlo error of a quantile at ESS > 2000: under 0.1 σ.
            assert!((exact - mc).abs() < 0.15 * sd[p], "parameter {p}, q {q}: grid {exact}, MCMC {mc}");
        }
    }
}

#[test]
fn closure_posterior_of_a_ring_matches_the_grid() {
    // A ring at the centre (offset range 0: two of its four parameters fixed), observed by the
    // EHT 2017 array at a low flux (0.2 Jy: large closure σ's), so that its posterior spans many
    // grid cells: the sampler's marginals of diameter and width fraction must be the grid's.
    let g = CompactSources { offset: 0.0, supersample: 2, ..Default::default() };
    let (npix, fov) = (32, 160.0);
    let cov = Array::eht2017().observe(&Observation { cadence_s: 1800.0, ..Observation::sgr_a_star() }).unwrap();
    let eht = Interferometer::new(cov, npix, fov).unwrap();
    let truth = TestSource::Shifted {
        east: 0.0,
        north: 0.0,
        source: Box::new(TestSource::Ring { radius: 21.0, width: 42.0 * 0.12 }),
    };
    let x = g.render(&truth, npix, fov).unwrap();
    let flux: f64 = x.iter().sum();
    let jy: Vec<f64> = x.iter().map(|v| v * 0.2 / flux).collect();
    // Noiseless data: the posterior is centred on the truth, its spread set by the σ's. (From
    // noisy visibilities at this S/N the closure likelihood prefers a ring of half the width.)
    let vis = eht.visibility_model().unwrap().forward(&jy).unwrap();
    let problem = eht.closure_problem(&vis, false).unwrap();
    let post = ParametricPosterior::new(&problem.model, &problem.y, SourceFamily::Ring, g.clone(), npix, fov).unwrap();
    let s = McmcSettings { chains: 4, warmup: 2000, steps: 10_000, candidates: 64, seed: 11 };
    let run = post.sample(&s).unwrap();
    assert!(run.rhat[..2].iter().all(|&r| r < 1.05), "{:?}", run.rhat);
    assert!(run.ess[..2].iter().all(|&e| e > 800.0), "{:?}", run.ess);
    assert!(run.draws.iter().flatten().all(|t| t[2] == 0.0 && t[3] == 0.0), "the fixed offset moved");
    // The grid: coarse over the whole prior to find the mode, then fine around it.
    let eval = |d: &[f64], f: &[f64]| -> Vec<f64> {
        let thetas: Vec<Vec<f64>> = d.iter().flat_map(|&a| f.iter().map(move |&b| vec![a, b, 0.0, 0.0])).collect();
        post.log_posterior(&thetas).unwrap()
    };
    let lin =
        |a: f64, b: f64, n: usize| (0..n).map(|k| a + (b - a) * (k as f64 + 0.5) / n as f64).collect::<Vec<f64>>();
    let (cd, cf) = (lin(g.diameter.0, g.diameter.1, 80), lin(g.width.0, g.width.1, 30));
    let coarse = eval(&cd, &cf);
    let best = (0..coarse.len()).max_by(|&a, &b| coarse[a].total_cmp(&coarse[b])).unwrap();
    let (d0, f0) = (cd[best / cf.len()], cf[best % cf.len()]);
    // The sampler's spread sets the window's size only; the window is centred on the grid's
    // mode and must hold the sampler's whole range (else the test fails below).
    let spread = |p: usize| {
        let mut v: Vec<f64> = run.draws.iter().flatten().map(|t| t[p]).collect();
        sample_quantile(&mut v, 0.999) - sample_quantile(&mut v, 0.001)
    };
    let (hd, hf) = (spread(0).max(0.5), spread(1).max(0.002));
    let clamp = |v: f64, (a, b): (f64, f64)| v.clamp(a, b);
    let (fd, ff) = (
        lin(clamp(d0 - 2.0 * hd, g.diameter), clamp(d0 + 2.0 * hd, g.diameter), 160),
        lin(clamp(f0 - 2.0 * hf, g.width), clamp(f0 + 2.0 * hf, g.width), 160),
    );
    let fine = eval(&fd, &ff);
    let top = fine.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert!(top >= coarse[best] - 1e-9, "the fine grid misses the coarse mode");
    let w: Vec<f64> = fine.iter().map(|l| (l - top).exp()).collect();
    // The window must hold the posterior: its edges carry (almost) no mass.
    let edge: f64 = (0..160).map(|i| w[i * 160] + w[i * 160 + 159] + w[i] + w[159 * 160 + i]).sum::<f64>();
    assert!(edge < 1e-3 * w.iter().sum::<f64>(), "the grid window cuts the posterior");
    for (p, xs) in [(0, &fd), (1, &ff)] {
        let marg: Vec<f64> =
            (0..160).map(|i| (0..160).map(|j| if p == 0 { w[i * 160 + j] } else { w[j * 160 + i] }).sum()).collect();
        let mean = xs.iter().zip(&marg).map(|(x, m)| x * m).sum::<f64>() / marg.iter().sum::<f64>();
        let sd =
            (xs.iter().zip(&marg).map(|(x, m)| (x - mean).powi(2) * m).sum::<f64>() / marg.iter().sum::<f64>()).sqrt();
        let mut v: Vec<f64> = run.draws.iter().flatten().map(|t| t[p]).collect();
        for q in [0.05, 0.5, 0.95] {
            let (exact, mc) = (grid_quantile(xs, &marg, q), sample_quantile(&mut v, q));
            assert!((exact - mc).abs() < 0.2 * sd, "parameter {p}, q {q}: grid {exact}, MCMC {mc} (sd {sd})");
        }
    }
}

#[test]
fn the_truths_parameters_render_the_generators_images() {
    let g = CompactSources::default();
    let (npix, fov, seed) = (32, 160.0, 1_000_000);
    let images = g.images(12, npix, fov, seed).unwrap();
    let cov = Array::eht2017().observe(&Observation { cadence_s: 7200.0, ..Observation::sgr_a_star() }).unwrap();
    let model = Interferometer::new(cov, npix, fov).unwrap().visibility_model().unwrap();
    let y = model.forward(&images[..npix * npix]).unwrap();
    let mut families = vec![];
    for i in 0..12 {
        let src = g.source(seed, i as u64).unwrap();
        let Ok((family, theta)) = SourceFamily::of(&src) else {
            assert!(matches!(&src, TestSource::Shifted { source, .. } if matches!(**source, TestSource::Blobs(_))));
            continue;
        };
        families.push(family);
        let post = ParametricPosterior::new(&model, &y, family, g.clone(), npix, fov).unwrap();
        assert_eq!(post.log_prior(&theta), 0.0, "source {i}: the truth lies outside its prior");
        let img = post.image(&theta).unwrap();
        let want = &images[i * npix * npix..(i + 1) * npix * npix];
        let err = img.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-12, "source {i} ({family}): largest pixel difference {err}");
    }
    // The calibration study's first sources: crescent, blobs, ring, ring, crescent, crescent+blob.
    assert_eq!(
        families[..5],
        [
            SourceFamily::Crescent,
            SourceFamily::Ring,
            SourceFamily::Ring,
            SourceFamily::Crescent,
            SourceFamily::CrescentBlob
        ]
    );
}

#[test]
fn bad_inputs_are_clear_errors() {
    let g = CompactSources::default();
    let cov = Array::eht2017().observe(&Observation { cadence_s: 7200.0, ..Observation::sgr_a_star() }).unwrap();
    let model = Interferometer::new(cov, 8, 160.0).unwrap().visibility_model().unwrap();
    let y = vec![0.0; model.output_dim()];
    let err = |r: Result<ParametricPosterior<'_>, scoreprior_core::Error>| r.err().unwrap().to_string();
    assert!(err(ParametricPosterior::new(&model, &y, SourceFamily::Ring, g.clone(), 16, 160.0)).contains("npix"));
    assert!(err(ParametricPosterior::new(&model, &y[1..], SourceFamily::Ring, g.clone(), 8, 160.0)).contains("data"));
    let mut bad = y.clone();
    bad[3] = f64::NAN;
    assert!(err(ParametricPosterior::new(&model, &bad, SourceFamily::Ring, g.clone(), 8, 160.0)).contains("entry 3"));
    let wide = CompactSources { diameter: (30.0, 20.0), ..g.clone() };
    assert!(err(ParametricPosterior::new(&model, &y, SourceFamily::Ring, wide, 8, 160.0)).contains("diameter"));
    let post = ParametricPosterior::new(&model, &y, SourceFamily::Crescent, g.clone(), 8, 160.0).unwrap();
    let e = post.log_posterior(&[vec![40.0, 0.1]]).unwrap_err().to_string();
    assert!(e.contains("crescent parameters"), "{e}");
    // Outside the prior: −∞, not an error.
    assert_eq!(post.log_posterior(&[vec![90.0, 0.1, 0.5, 0.0, 0.0, 0.0]]).unwrap(), [f64::NEG_INFINITY]);
    let e = post.sample(&McmcSettings { chains: 1, ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("chains"), "{e}");
    let e = post.sample(&McmcSettings { candidates: 3, ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("candidates"), "{e}");
    let blobs =
        TestSource::Shifted { east: 0.0, north: 0.0, source: Box::new(TestSource::Blobs(vec![(0.0, 0.0, 20.0, 1.0)])) };
    assert!(SourceFamily::of(&blobs).unwrap_err().to_string().contains("blob mixtures"));
    assert_eq!("crescent+blob".parse::<SourceFamily>().unwrap(), SourceFamily::CrescentBlob);
    // The sampler itself.
    let flat = |b: &[Vec<f64>]| Ok(b.iter().map(|t| if t[0].abs() < 1.0 { 0.0 } else { f64::NEG_INFINITY }).collect());
    let s = McmcSettings { chains: 2, warmup: 0, steps: 10, candidates: 2, seed: 0 };
    let e = adaptive_metropolis(&flat, &[vec![0.0], vec![5.0]], &[0.1], &s).unwrap_err().to_string();
    assert!(e.contains("start of MCMC chain 1"), "{e}");
    let e = adaptive_metropolis(&flat, &[vec![0.0], vec![0.5]], &[f64::NAN], &s).unwrap_err().to_string();
    assert!(e.contains("proposal scale"), "{e}");
    let e = adaptive_metropolis(&flat, &[vec![0.0]], &[0.1], &s).unwrap_err().to_string();
    assert!(e.contains("one per chain"), "{e}");
}
