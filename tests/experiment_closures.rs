//! Closure-quantity DPI on a tiny problem: an 8×8 crescent (20 µas pixels) seen by the EHT 2017
//! coverage, imaged from its closure phases and debiased log closure amplitudes under a TV
//! prior with positive (softplus) images and a flux constraint. The loss must fall by orders of
//! magnitude, the posterior mean must fit the closures to χ² ≈ 1 and match the truth up to a
//! shift (closures do not fix the position); bad settings are errors.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior::core::forward::interferometry::{nxcorr, Array, Interferometer, Observation, TestSource};
use scoreprior::core::forward::ForwardModel;
use scoreprior::experiment::{Experiment, PosteriorSettings, Prior};

fn problem() -> (Vec<f64>, scoreprior::core::forward::interferometry::ClosureProblem) {
    let mut obs = Observation::sgr_a_star();
    // One 2 GHz band of the 2017 campaign (σ √2 above the 4 GHz preset's). At 4 GHz these
    // settings stall far from the data (χ² of the mean 198 / 260 after 800 steps, 168 / 262
    // after 1600): the higher-SNR problem needs data-weight annealing or more steps.
    obs.bandwidth_hz = 2e9;
    let cov = Array::eht2017().observe(&obs).unwrap();
    let eht = Interferometer::new(cov, 8, 160.0).unwrap();
    let img = TestSource::Crescent { radius: 22.0, width: 8.0, asymmetry: 0.6, angle_deg: 120.0 }
        .render(8, 160.0, 1.0)
        .unwrap();
    let peak = img.iter().cloned().fold(0.0, f64::max);
    let x: Vec<f64> = img.iter().map(|v| v / peak).collect();
    let vis = eht.visibility_model().unwrap().simulate(&x, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    (x, eht.closure_problem(&vis, true).unwrap())
}

#[test]
fn closure_dpi_fits_the_closures_of_a_small_crescent() {
    let (x, p) = problem();
    let flux: f64 = x.iter().sum();
    let truth_chi2 = p.chi2(&x).unwrap();
    // The truth fits its own noisy closures at about the noise level.
    assert!((0.5..1.6).contains(&truth_chi2.phase) && (0.5..1.6).contains(&truth_chi2.log_amp), "{truth_chi2:?}");
    let t0 = std::time::Instant::now();
    let res = Experiment::builder(p.model.clone())
        .truth_with_measurement(x.clone(), p.y.clone(), 8, 8)
        .prior(Prior::total_variation(1.0))
        .posterior(PosteriorSettings { flows: 4, positive: true, ..Default::default() })
        .flux_constraint(100.0, flux)
        .steps(800)
        .batch(16)
        .lr(3e-3)
        .samples(64)
        .seed(1)
        .continuation(None)
        .build()
        .unwrap()
        .run()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let r = &res.history.records;
    let mean_total = |s: &[scoreprior::core::dpi::StepRecord]| s.iter().map(|r| r.total).sum::<f64>() / s.len() as f64;
    let (first, last) = (mean_total(&r[..50]), mean_total(&r[r.len() - 50..]));
    let chi = p.chi2(&res.summary.mean).unwrap();
    let (raw, best) = nxcorr(&x, &res.summary.mean, 8, 2);
    let f_mean: f64 = res.summary.mean.iter().sum();
    eprintln!(
        "loss {first:.1} → {last:.1}; χ² of the mean {chi:?} (truth {truth_chi2:?}); nxcorr {raw:.4} / best shift \
         {best:.4}; flux {f_mean:.3} (truth {flux:.3}); {secs:.1} s"
    );
    // Measured when this test was written: loss 7.8e6 → 1.8e3, χ² of the mean 1.19 / 0.98 (truth
    // 0.91 / 0.78), nxcorr 0.39 unshifted and 0.99996 at the best shift, flux 8.0 against 6.68
    // (the flux has not settled after 800 steps), 14 s.
    assert!(last < first / 100.0, "loss {first} → {last}");
    assert!(chi.phase < 2.5 && chi.log_amp < 2.5, "{chi:?}");
    assert!(best > 0.97, "nxcorr {raw} / {best}");
    assert!((f_mean - flux).abs() < 0.35 * flux, "flux {f_mean} vs {flux}");
    assert!(res.summary.mean.iter().all(|v| *v > 0.0), "positive images");
}

#[test]
fn closure_settings_are_checked() {
    let (x, p) = problem();
    let base = || {
        Experiment::builder(p.model.clone())
            .prior(Prior::total_variation(1.0))
            .steps(1)
            .posterior(PosteriorSettings { positive: true, ..Default::default() })
    };
    let e = base().truth_with_measurement(x.clone(), p.y.clone(), 8, 8).flux_constraint(-1.0, 1.0).build();
    assert!(e.err().unwrap().to_string().contains("flux_constraint"));
    let e = base().truth_with_measurement(x.clone(), p.y.clone(), 8, 8).flux_constraint(1.0, 0.0).build();
    assert!(e.err().unwrap().to_string().contains("flux_constraint"));
    // A 16×16 image on the 8×8 closure model, and a 16×16 prior on 8×8 images.
    let e = base().truth_with_measurement(vec![0.5; 256], p.y.clone(), 16, 16).build();
    assert!(e.err().unwrap().to_string().contains("forward model takes 64"));
    let g = scoreprior::core::score::Gaussian::diagonal(
        vec![0.5; 256],
        &[0.1; 256],
        scoreprior::core::sde::AnySde::Vp(Default::default()),
    )
    .unwrap();
    let e = Experiment::builder(p.model.clone())
        .prior(Prior::gaussian(g))
        .truth_with_measurement(x.clone(), p.y.clone(), 8, 8)
        .build();
    let msg = e.err().unwrap().to_string();
    assert!(msg.contains("prior") && msg.contains("256"), "{msg}");
    // A measurement of the wrong length.
    let e = base().truth_with_measurement(x, vec![0.0; 3], 8, 8).build();
    assert!(e.err().unwrap().to_string().contains("measurement"));
}

#[test]
fn closure_dpi_from_the_laplace_start_covers_the_source() {
    use scoreprior::core::forward::interferometry::{best_shift, shift_image};
    use scoreprior::experiment::{LaplaceStart, MapWarmStart};
    let (x, p) = problem();
    let flux: f64 = x.iter().sum();
    // The start is the truth blurred to about the array's resolution: this test checks the
    // spread DPI finds around the right mode, not the search for it (a 60 µas Gaussian start
    // leaves L-BFGS in a local minimum of this coarse 8×8 problem, χ² 99 / 54).
    let start =
        scoreprior::core::forward::interferometry::gaussian_blur(&x, 8, 1.2).into_iter().map(|v| v.max(1e-4)).collect();
    let t0 = std::time::Instant::now();
    let res = Experiment::builder(p.model.clone())
        .truth_with_measurement(x.clone(), p.y.clone(), 8, 8)
        .prior(Prior::total_variation(1.0))
        .posterior(PosteriorSettings {
            flows: 4,
            positive: true,
            init_scale: 1.0,
            init_image: Some(start),
            map_warm_start: Some(MapWarmStart { iterations: 300, rounds: 5, blur_px: 1.2, ..Default::default() }),
            laplace: Some(LaplaceStart::default()),
            ..Default::default()
        })
        .flux_constraint(100.0, flux)
        .steps(300)
        .batch(16)
        .lr(1e-3)
        .samples(256)
        .seed(1)
        .outlier_threshold(1e9)
        .continuation(None)
        .build()
        .unwrap()
        .run()
        .unwrap();
    let s = &res.summary;
    let chi = p.chi2(&s.mean).unwrap();
    let (corr, (di, dj)) = best_shift(&s.mean, &x, 8, 2);
    let aligned = shift_image(&x, 8, di, dj);
    let inside = aligned.iter().zip(&s.mean).zip(&s.std).filter(|((t, m), sd)| (*t - *m).abs() <= 2.0 * *sd).count();
    let coverage = inside as f64 / 64.0;
    let on_source: Vec<usize> = (0..64).filter(|&k| aligned[k] > 0.1).collect();
    let source_cov = on_source.iter().filter(|&&k| (aligned[k] - s.mean[k]).abs() <= 2.0 * s.std[k]).count() as f64
        / on_source.len() as f64;
    eprintln!("source pixels (truth > 10 % of the peak): {}, truth within 2 std on {source_cov:.3}", on_source.len());
    let std_rel = s.std.iter().sum::<f64>() / 64.0 / s.mean.iter().cloned().fold(0.0, f64::max);
    eprintln!(
        "Laplace start: χ² of the mean {chi:?}, nxcorr {corr:.4} at shift ({di}, {dj}), truth within 2 std on \
         {coverage:.3} of the pixels, std/peak {std_rel:.4}; {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    // Measured when written: χ² 0.88 / 0.75, nxcorr 1.0000, the truth within 2 std on all 12
    // source pixels (at the Laplace approximation itself, before training: on none, its centre
    // 5 % low on the source), and on 0.31 of all pixels: the background truths are ~1e-9, and
    // the positive posterior keeps its background pixels at 2e-3 ± 4e-4 (docs/src/black-hole/calibration.md).
    assert!(chi.phase < 1.3 && chi.log_amp < 1.3, "{chi:?}");
    assert!(corr > 0.999, "nxcorr {corr}");
    assert!(source_cov >= 0.9, "source coverage {source_cov}");
    assert!(coverage > 0.25, "coverage {coverage}");
}
