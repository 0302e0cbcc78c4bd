//! Interferometry: visibilities against an independent direct DFT, the EHT 2017 uv-coverage
//! of a Sgr A*-like source (baseline count and maximum length), the radiometer noise
//! formula, calibration invariance of closure quantities, the size of the minimal closure
//! sets, and likelihood gradients of the visibility and closure models against finite
//! differences.

use rand::{Rng, SeedableRng};
use scoreprior_core::forward::interferometry::{Array, Interferometer, Observation, TestSource, UAS};
use scoreprior_core::forward::ops::{ClosureProducts, Nudft};
use scoreprior_core::forward::{ForwardModel, Op, Shape};

fn eht(npix: usize, cadence_s: f64) -> Interferometer {
    let obs = Observation { cadence_s, ..Observation::sgr_a_star() };
    Interferometer::new(Array::eht2017().observe(&obs).unwrap(), npix, 160.0).unwrap()
}

#[test]
fn visibilities_match_a_direct_dft() {
    // Direct sum with explicit sky coordinates, written independently of the operator:
    // V = Σ I(l, m) exp(+2πi(ul + vm)) (ehtim's sign), l east (left), m north (up).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for (h, w) in [(5, 7), (8, 8), (3, 1)] {
        let x: Vec<f64> = (0..h * w).map(|_| rng.gen_range(0.0..1.0)).collect();
        let k = 13;
        let u: Vec<f64> = (0..k).map(|_| rng.gen_range(-9e9..9e9)).collect();
        let v: Vec<f64> = (0..k).map(|_| rng.gen_range(-9e9..9e9)).collect();
        let psize = 5.0 * UAS;
        let op = Nudft::new(Shape::new(1, h, w), u.clone(), v.clone(), psize).unwrap();
        let mut y = vec![0.0; 2 * k];
        op.apply(&x, &mut y);
        for q in 0..k {
            let (mut re, mut im) = (0.0, 0.0);
            for row in 0..h {
                for col in 0..w {
                    let l = (w as f64 / 2.0 - 0.5 - col as f64) * psize;
                    let m = (h as f64 / 2.0 - 0.5 - row as f64) * psize;
                    let ph = 2.0 * std::f64::consts::PI * (u[q] * l + v[q] * m);
                    re += x[row * w + col] * ph.cos();
                    im += x[row * w + col] * ph.sin();
                }
            }
            assert!((y[q] - re).abs() < 1e-11 && (y[k + q] - im).abs() < 1e-11, "{h}×{w}, point {q}");
        }
    }
}

#[test]
fn eht2017_sgr_a_star_coverage_has_the_expected_baselines_up_to_8_73_glambda() {
    let cov = Array::eht2017().observe(&Observation::sgr_a_star()).unwrap();
    let names = &cov.stations;
    // Of the C(8, 2) = 28 station pairs, those with PV (Spain, latitude 37.4°, longitude
    // −3.4°) and the Hawaiian SMA/JCMT (19.8°, −155.5°) can never see Sgr A* (δ = −29°)
    // together: the source is above the horizon for |H| < acos(−tan φ tan δ), i.e. ±4.4 h at
    // PV and ±5.2 h in Hawaii, 9.6 h in total, less than the 10.1 h of longitude between
    // them. With the 10° cutoff the windows shrink to ±3.2 h (PV) and ±3.6 h (SMT, Arizona,
    // 7.1 h of longitude from PV), so PV–SMT disappears too: 25 baselines (26 at 0°).
    let missing = |cov: &scoreprior_core::forward::interferometry::UvCoverage| {
        let b = cov.baselines();
        let mut m = vec![];
        for i in 0..8 {
            for j in i + 1..8 {
                if !b.contains(&(i, j)) {
                    m.push(format!("{}-{}", cov.stations[i], cov.stations[j]));
                }
            }
        }
        m
    };
    assert_eq!(cov.baselines().len(), 25);
    assert_eq!(missing(&cov), ["PV-SMT", "PV-SMA", "PV-JCMT"]);
    let horizon =
        Array::eht2017().observe(&Observation { elevation_cutoff_deg: 0.0, ..Observation::sgr_a_star() }).unwrap();
    assert_eq!(missing(&horizon), ["PV-SMA", "PV-JCMT"]);
    let max = cov.max_baseline();
    eprintln!(
        "EHT 2017 / Sgr A*: {} samples, {} scans, max baseline {:.3} Gλ",
        cov.points.len(),
        cov.times().len(),
        max / 1e9
    );
    // The forward-models guide (`docs/src/guide/forward-models.md`) states 8.73 Gλ; the coverage is deterministic, so to the printed digits.
    assert!((max / 1e9 - 8.73).abs() < 0.005, "max baseline {max:e}");
    // The co-located pairs have baselines shorter than 3 km: < 3e3 / λ = 2.3 Mλ.
    let pair = |a: &str, b: &str| {
        let (i, j) = (names.iter().position(|n| n == a).unwrap(), names.iter().position(|n| n == b).unwrap());
        (i.min(j), i.max(j))
    };
    for (a, b) in [("SMA", "JCMT"), ("ALMA", "APEX")] {
        let p = pair(a, b);
        let longest = cov.points.iter().filter(|q| (q.i, q.j) == p).map(|q| q.u.hypot(q.v)).fold(0.0, f64::max);
        assert!(longest > 0.0 && longest < 2.3e6, "{a}-{b}: {longest}");
    }
    // Projected baselines never exceed the physical ones.
    let st = Array::eht2017().stations;
    let lambda = 299_792_458.0 / 230e9;
    for q in &cov.points {
        let b = (0..3).map(|c| (st[q.i].xyz[c] - st[q.j].xyz[c]).powi(2)).sum::<f64>().sqrt() / lambda;
        assert!(q.u.hypot(q.v) <= b * (1.0 + 1e-12));
    }
    // Sgr A* (Dec −29°) never rises above 90 − 37.4 − 29 ≈ 24° at PV, while SPT sees it at
    // a constant 29°: PV is up for well under half of the scans, SPT for all of them.
    let spt = names.iter().position(|n| n == "SPT").unwrap();
    let pv = names.iter().position(|n| n == "PV").unwrap();
    let scans_with = |s: usize| {
        cov.times().iter().filter(|&&t| cov.points.iter().any(|q| q.time_hour == t && (q.i == s || q.j == s))).count()
    };
    assert_eq!(scans_with(spt), cov.times().len());
    assert!(scans_with(pv) * 2 < cov.times().len());
}

#[test]
fn thermal_noise_follows_the_radiometer_equation() {
    let cov = Array::eht2017().observe(&Observation::sgr_a_star()).unwrap();
    let names = &cov.stations;
    let (alma, apex) =
        (names.iter().position(|n| n == "ALMA").unwrap(), names.iter().position(|n| n == "APEX").unwrap());
    let p = cov.points.iter().find(|q| (q.i, q.j) == (alma.min(apex), alma.max(apex))).unwrap();
    // By hand: ALMA 90 Jy and APEX 3500 Jy on both feeds, 4 GHz, 10 s, η = 0.88. Each of RR
    // and LL has √(90·3500/(2·4e9·10))/0.88 = 2.2549 mJy; Stokes I = (RR + LL)/2 has
    // ½√(2·2.2549²) = 1.5945 mJy (ehtim 1.3.2 `observe` gives 0.00159446 on this baseline).
    let per_product = (90.0f64 * 3500.0 / 8e10).sqrt() / 0.88;
    assert!((per_product - 2.2549e-3).abs() < 1e-7, "{per_product}");
    let want = 0.5 * (2.0 * per_product * per_product).sqrt();
    assert!((want - 1.59446e-3).abs() < 1e-8, "{want}");
    assert!((p.sigma - want).abs() < 1e-15 * want, "{} vs {want}", p.sigma);
    // σ ∝ 1/√(Δν τ): 60 s and 2 GHz give √(10·4/(60·2)) = 0.5774 of it.
    let slow = Array::eht2017()
        .observe(&Observation { integration_s: 60.0, bandwidth_hz: 2e9, ..Observation::sgr_a_star() })
        .unwrap();
    let q = slow.points.iter().find(|q| (q.i, q.j) == (p.i, p.j)).unwrap();
    assert!((q.sigma / p.sigma - (40.0f64 / 120.0).sqrt()).abs() < 1e-14);
}

#[test]
fn coverage_matches_ehtim_observe() {
    // ehtim 1.3.2, `Image.observe(EHT2017, tint, 600, 0, 24, 4e9, elevmin=10)` of a Sgr A*
    // image (RA 17h45m40s, Dec −29°00′28″, 230 GHz, MJD 57850): 1023 visibilities in 106
    // scans; `c_phases(count='min')` 641 and `c_amplitudes(ctype='logcamp', count='min')` 544
    // (run by `benches/reference/ehtim_rml.py --counts`).
    let cov = Array::eht2017().observe(&Observation::sgr_a_star()).unwrap();
    assert_eq!(cov.points.len(), 1023);
    assert_eq!(cov.times().len(), 106);
    let sets = scoreprior_core::forward::interferometry::closure_sets(&cov);
    assert_eq!((sets.triangles.len(), sets.quadrangles.len()), (641, 544));
    // ehtim's first point: PV–SPT at 1.8333 h, (u, v) = (−2.84975689e9, 8.13242007e9) λ
    // (PV has the lower SEFD, so ehtim keeps it first, as our table order does). Our GMST
    // uses UTC for UT1 (ehtim: astropy with IERS UT1): agreement to 1e-4 relative, not better.
    let p = cov.points[0];
    assert_eq!((cov.stations[p.i].as_str(), cov.stations[p.j].as_str()), ("PV", "SPT"));
    assert!((p.time_hour - 11.0 / 6.0).abs() < 1e-12);
    let (ue, ve) = (-2.84975689e9, 8.13242007e9);
    let rel = (p.u - ue).hypot(p.v - ve) / ue.hypot(ve);
    assert!(rel < 1e-4, "(u, v) = ({:e}, {:e}), relative difference {rel:e}", p.u, p.v);
    // ehtim: σ_I = 0.00751634 Jy on PV–SPT at tint = 10 s.
    assert!((p.sigma - 0.00751634).abs() < 1e-8, "{}", p.sigma);
    // The stop time is excluded (numpy's arange): a track ending at the first scan is empty.
    assert!(Array::eht2017().observe(&Observation { stop_hour: 0.0, ..Observation::sgr_a_star() }).is_err());
}

#[test]
fn closure_quantities_are_invariant_to_station_errors() {
    let eht = eht(16, 3600.0);
    let sets = eht.closures();
    let k = eht.coverage().points.len();
    let op = ClosureProducts::new(k, sets.triangles.clone(), sets.quadrangles.clone()).unwrap();
    let img = TestSource::Crescent { radius: 25.0, width: 5.0, asymmetry: 0.6, angle_deg: 150.0 }
        .render(16, 160.0, 2.0)
        .unwrap();
    let mut vis = vec![0.0; 2 * k];
    eht.nudft().unwrap().apply(&img, &mut vis);
    // Corrupt: V_ij → g_i conj(g_j) V_ij with independent complex gains per station and scan.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut bad = vis.clone();
    let mut last_t = f64::NAN;
    let mut gains: Vec<(f64, f64)> = vec![(0.0, 0.0); 8];
    for (q, p) in eht.coverage().points.iter().enumerate() {
        if p.time_hour != last_t {
            last_t = p.time_hour;
            gains = (0..8).map(|_| (rng.gen_range(0.5..2.0), rng.gen_range(-3.0..3.0))).collect();
        }
        let (ai, pi) = gains[p.i];
        let (aj, pj) = gains[p.j];
        let (amp, ph) = (ai * aj, pi - pj);
        let (re, im) = (vis[q], vis[k + q]);
        bad[q] = amp * (re * ph.cos() - im * ph.sin());
        bad[k + q] = amp * (re * ph.sin() + im * ph.cos());
    }
    let (mut c0, mut c1) = (vec![0.0; op.output_shape().len()], vec![0.0; op.output_shape().len()]);
    op.apply(&vis, &mut c0);
    op.apply(&bad, &mut c1);
    let t = op.n_phases();
    for (n, (a, b)) in c0.iter().zip(&c1).enumerate() {
        let d = if n < t { scoreprior_core::forward::noise::wrap_angle(a - b) } else { a - b };
        assert!(d.abs() < 1e-9, "closure {n}: {a} vs {b}");
    }
    // Sanity: the corruption did change the visibilities' phases and amplitudes.
    assert!(vis.iter().zip(&bad).any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
fn closure_sets_are_minimal_and_complete() {
    let eht = eht(8, 1800.0);
    let sets = eht.closures();
    for &(t, n, ncp, nlca) in &sets.per_scan {
        let want_cp = if n >= 3 { (n - 1) * (n - 2) / 2 } else { 0 };
        let want_lca = if n >= 4 { n * (n - 3) / 2 } else { 0 };
        assert_eq!((ncp, nlca), (want_cp, want_lca), "scan at {t} h with {n} stations");
    }
    assert_eq!(sets.triangles.len(), sets.per_scan.iter().map(|s| s.2).sum::<usize>());
    // PV and SMA/JCMT never share the sky (see the coverage test): at most 7 at once.
    assert!(sets.per_scan.iter().any(|s| s.1 == 7), "some scan has 7 stations");
}

fn check_gradient(m: &dyn ForwardModel, x: &[f64], y: &[f64], h: f64, tol: f64) {
    let d = m.input_dim();
    let g = m.grad_log_likelihood(y, x).unwrap();
    for &k in &[0, d / 3, d / 2 + 3, d - 1] {
        let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
        xp[k] += h;
        xm[k] -= h;
        let fd = (m.log_likelihood(y, &xp).unwrap()[0] - m.log_likelihood(y, &xm).unwrap()[0]) / (2.0 * h);
        assert!((fd - g[k]).abs() <= tol * (1.0 + g[k].abs()), "coordinate {k}: fd {fd} vs analytic {}", g[k]);
    }
}

#[test]
fn likelihood_gradients_match_finite_differences() {
    let eht = eht(12, 3600.0);
    let truth = TestSource::Ring { radius: 25.0, width: 5.0 }.render(12, 160.0, 2.0).unwrap();
    let guess =
        TestSource::Blobs(vec![(0.0, 0.0, 40.0, 1.0), (15.0, -10.0, 20.0, 0.5)]).render(12, 160.0, 1.5).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);

    let vis_model = eht.visibility_model().unwrap();
    assert!(vis_model.is_linear());
    let y = vis_model.simulate(&truth, &mut rng).unwrap();
    // Relative tolerance: |∇| is ~1e8 here (σ ≈ 5 mJy), so FD error is round-off dominated.
    check_gradient(&vis_model, &guess, &y, 1e-6, 1e-5);

    let clos = eht.closure_model(&y).unwrap();
    assert!(!clos.is_linear());
    let yc = clos.simulate(&truth, &mut rng).unwrap();
    check_gradient(&clos, &guess, &yc, 1e-6, 1e-5);
    // The closure likelihood is invariant to the total flux (scale of the image).
    let scaled: Vec<f64> = guess.iter().map(|v| 3.0 * v).collect();
    let (a, b) = (clos.log_likelihood(&yc, &guess).unwrap()[0], clos.log_likelihood(&yc, &scaled).unwrap()[0]);
    assert!((a - b).abs() < 1e-9 * a.abs());

    // With normalised amplitudes (log ratios over the ALMA–APEX visibility of each scan) and a
    // station budget: the gradient still matches, and the likelihood is still scale-free.
    let ratios = eht.amplitude_ratios("ALMA", "APEX");
    assert!(ratios.len() > 10, "{}", ratios.len());
    let extra = vec![0.01; eht.coverage().points.len()];
    let amps = eht.closure_model_with_ratios(&y, &ratios, &extra).unwrap();
    assert_eq!(amps.output_dim(), clos.output_dim() + ratios.len());
    let ya = amps.simulate(&truth, &mut rng).unwrap();
    check_gradient(&amps, &guess, &ya, 1e-6, 1e-5);
    let (a, b) = (amps.log_likelihood(&ya, &guess).unwrap()[0], amps.log_likelihood(&ya, &scaled).unwrap()[0]);
    assert!((a - b).abs() < 1e-9 * a.abs());
    // The ratios' σ carry the budget: √(σ_a²/|V_a|² + σ_b²/|V_b|² + 0.02) ≥ √0.02.
    let sig = amps.noise().sigma();
    assert!(sig[clos.output_dim()..].iter().all(|s| *s >= 0.02f64.sqrt()));
}

#[test]
fn simulated_visibility_noise_has_the_radiometer_sigma_and_closures_unit_chi_squared() {
    let eht = eht(12, 1200.0);
    let truth = TestSource::Crescent { radius: 25.0, width: 5.0, asymmetry: 0.5, angle_deg: 200.0 }
        .render(12, 160.0, 2.0)
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let vm = eht.visibility_model().unwrap();
    let clean = vm.forward(&truth).unwrap();
    let reps = 10;
    let x: Vec<f64> = truth.iter().cycle().take(reps * truth.len()).copied().collect();
    // Visibilities: each residual over the radiometer σ of its baseline, computed here from
    // the station SEFDs (R and L equal in `assets/eht/`, read by `Array::eht2017`), 4 GHz,
    // 10 s and η = 0.88, halved in variance for Stokes I = (RR + LL)/2, has unit standard
    // deviation on the real and imaginary parts.
    let st = Array::eht2017().stations;
    let pts = &eht.coverage().points;
    let k = pts.len();
    let sigma: Vec<f64> =
        pts.iter().map(|p| (st[p.i].sefd * st[p.j].sefd / 2.0).sqrt() / (2.0f64 * 4e9 * 10.0).sqrt() / 0.88).collect();
    let y = vm.simulate(&x, &mut rng).unwrap();
    let mut ss = 0.0;
    for r in 0..reps {
        for q in 0..2 * k {
            ss += ((y[r * 2 * k + q] - clean[q]) / sigma[q % k]).powi(2);
        }
    }
    let n = (reps * 2 * k) as f64;
    let s = (ss / n).sqrt();
    eprintln!("visibilities: residual std / radiometer σ = {s:.4} over {n} values");
    // Relative standard error of a standard deviation from n values: 1/√(2n) ≈ 0.007; 4 s.e.
    assert!((s - 1.0).abs() < 4.0 / (2.0 * n).sqrt(), "normalised visibility residual std {s} ({n} values)");
    // Closures: their σ is checked against closures of noisy visibilities in
    // `propagated_closure_sigmas_match_closures_of_noisy_visibilities`; here the χ² of the
    // closure model's own draws. Circular residuals: E[2(1 − cos r)]/σ² = 2(1 − e^{−σ²/2})/σ²
    // ≤ 1, ≈ 1 for small σ.
    let cm = eht.closure_model(&clean).unwrap();
    let yc = cm.simulate(&x, &mut rng).unwrap();
    let chi2: f64 = cm.chi_squared(&yc, &x).unwrap().iter().sum();
    let dof = (reps * cm.output_dim()) as f64;
    eprintln!("closures: χ²/dof = {:.4} over {dof} values", chi2 / dof);
    assert!((chi2 / dof - 1.0).abs() < 4.0 * (2.0 / dof).sqrt(), "χ²/dof = {}", chi2 / dof);
}

#[test]
fn test_sources_have_the_requested_flux_and_geometry() {
    let npix = 64;
    let ring = TestSource::Ring { radius: 25.0, width: 2.0 }.render(npix, 160.0, 2.0).unwrap();
    assert!((ring.iter().sum::<f64>() - 2.0).abs() < 1e-12);
    // The brightest pixel lies ~25 µas from the centre.
    let (imax, _) = ring.iter().enumerate().fold((0, 0.0), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
    let d = 160.0 / npix as f64;
    let c = (npix as f64 - 1.0) / 2.0;
    let r = ((imax / npix) as f64 - c).hypot((imax % npix) as f64 - c) * d;
    assert!((r - 25.0).abs() < 2.0 * d, "peak radius {r}");
    // A crescent brighter towards the north (angle 0) has more flux in the top half.
    let cres = TestSource::Crescent { radius: 25.0, width: 4.0, asymmetry: 0.8, angle_deg: 0.0 }
        .render(npix, 160.0, 1.0)
        .unwrap();
    let top: f64 = cres[..npix * npix / 2].iter().sum();
    assert!(top > 0.7, "north half holds {top}");
    assert!(TestSource::Ring { radius: 25.0, width: -1.0 }.render(8, 160.0, 1.0).is_err());
}

#[test]
fn propagated_closure_sigmas_match_closures_of_noisy_visibilities() {
    // Draw many noisy visibility sets, form their closure quantities, and compare the
    // empirical standard deviation of each with the linearised σ of the closure model.
    let eht = eht(16, 3600.0);
    let truth = TestSource::Blobs(vec![(0.0, 0.0, 30.0, 1.0), (20.0, 10.0, 15.0, 0.6)]).render(16, 160.0, 2.0).unwrap();
    let vm = eht.visibility_model().unwrap();
    let clean = vm.forward(&truth).unwrap();
    let cm = eht.closure_model(&clean).unwrap();
    let c0 = eht.closure_data(&clean).unwrap();
    let reps = 400;
    let x: Vec<f64> = truth.iter().cycle().take(reps * truth.len()).copied().collect();
    let noisy = vm.simulate(&x, &mut rand_chacha::ChaCha8Rng::seed_from_u64(4)).unwrap();
    let c = eht.closure_data(&noisy).unwrap();
    let m = c0.len();
    let t = eht.closures().triangles.len();
    let mut ratios = vec![];
    for q in 0..m {
        let sigma = cm.noise().sigma()[q];
        if sigma > 0.05 {
            continue; // low S/N: the linearisation does not hold there
        }
        let var: f64 = (0..reps)
            .map(|r| {
                let d = c[r * m + q] - c0[q];
                let d = if q < t { scoreprior_core::forward::noise::wrap_angle(d) } else { d };
                d * d
            })
            .sum::<f64>()
            / reps as f64;
        ratios.push(var.sqrt() / sigma);
    }
    assert!(ratios.len() > 50, "{} high-S/N closures", ratios.len());
    ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = ratios[ratios.len() / 2];
    eprintln!(
        "{} closures, ratio median {median:.3}, 5 %: {:.3}, 95 %: {:.3}",
        ratios.len(),
        ratios[ratios.len() / 20],
        ratios[ratios.len() * 19 / 20]
    );
    // With 400 draws a standard deviation is known to ±3.5 %; allow 10 % on the median and
    // 25 % on the 5th and 95th percentiles.
    assert!((median - 1.0).abs() < 0.1, "median ratio {median}");
    let (lo, hi) = (ratios[ratios.len() / 20], ratios[ratios.len() * 19 / 20]);
    assert!(lo > 0.75 && hi < 1.25, "5–95 % ratios {lo}..{hi}");
}

/// Direct DFT `V = Σ x e^{+2πi(ul + vm)}` of one image, from explicit sky coordinates.
fn direct_dft(x: &[f64], h: usize, w: usize, u: &[f64], v: &[f64], psize: f64) -> Vec<f64> {
    let k = u.len();
    let mut y = vec![0.0; 2 * k];
    for q in 0..k {
        for row in 0..h {
            for col in 0..w {
                let l = (w as f64 / 2.0 - 0.5 - col as f64) * psize;
                let m = (h as f64 / 2.0 - 0.5 - row as f64) * psize;
                let ph = 2.0 * std::f64::consts::PI * (u[q] * l + v[q] * m);
                y[q] += x[row * w + col] * ph.cos();
                y[k + q] += x[row * w + col] * ph.sin();
            }
        }
    }
    y
}

#[test]
fn batched_gemm_nudft_equals_the_direct_dft_and_passes_the_dot_product_test() {
    let eht = eht(32, 600.0);
    let op = eht.nudft().unwrap();
    let (n, d, k) = (8, 32 * 32, op.len());
    assert!(op.uses_gemm(n) && !op.uses_gemm(1), "a batch of {n} runs as a GEMM, one image does not");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let x: Vec<f64> = (0..n * d).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut y = vec![0.0; n * 2 * k];
    op.apply_batch(&x, &mut y);
    let (u, v): (Vec<f64>, Vec<f64>) = eht.coverage().points.iter().map(|p| (p.u, p.v)).unzip();
    let mut worst = 0.0f64;
    for i in 0..n {
        let want = direct_dft(&x[i * d..(i + 1) * d], 32, 32, &u, &v, eht.pixel_size());
        let got = &y[i * 2 * k..(i + 1) * 2 * k];
        let err = want.iter().zip(got).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
        let norm = want.iter().map(|a| a * a).sum::<f64>().sqrt();
        worst = worst.max(err / norm);
        // The per-image (separable) kernel agrees with the GEMM too.
        let mut one = vec![0.0; 2 * k];
        op.apply(&x[i * d..(i + 1) * d], &mut one);
        let e1 = one.iter().zip(got).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
        assert!(e1 <= 1e-12 * norm, "image {i}: separable vs GEMM {e1:e} of {norm:e}");
    }
    eprintln!("GEMM NUDFT vs direct DFT: worst relative error {worst:.2e}");
    assert!(worst < 1e-13, "relative error {worst:e}");
    // Adjoint: ⟨A X, Y⟩ = ⟨X, Aᵀ Y⟩ over the batch, and the GEMM adjoint equals the separable one.
    let w: Vec<f64> = (0..n * 2 * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let mut atw = vec![0.0; n * d];
    op.adjoint_batch(&w, &mut atw).unwrap();
    let lhs: f64 = y.iter().zip(&w).map(|(a, b)| a * b).sum();
    let rhs: f64 = x.iter().zip(&atw).map(|(a, b)| a * b).sum();
    let scale = y.iter().map(|a| a * a).sum::<f64>().sqrt() * w.iter().map(|a| a * a).sum::<f64>().sqrt();
    eprintln!("dot-product test: |⟨Ax,w⟩ − ⟨x,Aᵀw⟩| / (‖Ax‖‖w‖) = {:.2e}", (lhs - rhs).abs() / scale);
    assert!((lhs - rhs).abs() < 1e-15 * scale, "{lhs} vs {rhs}");
    let mut one = vec![0.0; d];
    op.adjoint(&w[..2 * k], &mut one).unwrap();
    let e = one.iter().zip(&atw[..d]).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(e < 1e-10 * one.iter().map(|a| a.abs()).fold(0.0, f64::max), "adjoint GEMM vs separable {e:e}");
}

#[test]
fn batched_closure_model_matches_per_image_evaluation() {
    // The batched model (GEMM NUDFT, vectorised closure products) against one image at a time
    // (separable NUDFT): values, likelihood gradients.
    let eht = eht(16, 1800.0);
    let truth = TestSource::Ring { radius: 25.0, width: 5.0 }.render(16, 160.0, 2.0).unwrap();
    let vm = eht.visibility_model().unwrap();
    let clean = vm.forward(&truth).unwrap();
    let cm = eht.closure_model(&clean).unwrap();
    let yc = eht.closure_data(&clean).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let n = 6;
    let x: Vec<f64> = (0..n * 256).map(|i| truth[i % 256] + rng.gen_range(0.0..0.01)).collect();
    let fb = cm.forward(&x).unwrap();
    let gb = cm.grad_log_likelihood(&yc, &x).unwrap();
    let m = cm.output_dim();
    for i in 0..n {
        let xi = &x[i * 256..(i + 1) * 256];
        let f1 = cm.forward(xi).unwrap();
        let g1 = cm.grad_log_likelihood(&yc, xi).unwrap();
        for (a, b) in f1.iter().zip(&fb[i * m..(i + 1) * m]) {
            assert!((a - b).abs() < 1e-9, "closure value {a} vs {b}");
        }
        let gmax = g1.iter().map(|a| a.abs()).fold(0.0, f64::max);
        for (a, b) in g1.iter().zip(&gb[i * 256..(i + 1) * 256]) {
            assert!((a - b).abs() < 1e-9 * gmax, "gradient {a} vs {b}");
        }
    }
}

/// Intensity-weighted centroid (east, north) in µas of an `npix²` image over `fov`.
fn centroid(img: &[f64], npix: usize, fov: f64) -> (f64, f64) {
    let (d, c) = (fov / npix as f64, (npix as f64 - 1.0) / 2.0);
    let s: f64 = img.iter().sum();
    let mut e = 0.0;
    let mut n = 0.0;
    for (p, v) in img.iter().enumerate() {
        e += v * (c - (p % npix) as f64) * d;
        n += v * (c - (p / npix) as f64) * d;
    }
    (e / s, n / s)
}

#[test]
fn shifted_and_summed_sources_move_and_split_the_flux() {
    use scoreprior_core::forward::interferometry::CompactSources;
    let ring = TestSource::Ring { radius: 20.0, width: 4.0 };
    let shifted = TestSource::Shifted { east: 12.0, north: -7.0, source: Box::new(ring.clone()) };
    let (e, n) = centroid(&shifted.render(64, 160.0, 1.0).unwrap(), 64, 160.0);
    assert!((e - 12.0).abs() < 0.05 && (n + 7.0).abs() < 0.05, "centroid ({e}, {n})");
    // A sum splits the flux by its fractions: the blob's centroid pulls the total's.
    let blob = TestSource::Blobs(vec![(30.0, 0.0, 10.0, 1.0)]);
    let sum = TestSource::Sum(vec![(0.75, ring.clone()), (0.25, blob)]);
    let (e, n) = centroid(&sum.render(64, 160.0, 2.0).unwrap(), 64, 160.0);
    assert!((e - 7.5).abs() < 0.05 && n.abs() < 0.05, "centroid ({e}, {n})");
    assert!(TestSource::Sum(vec![]).render(8, 160.0, 1.0).is_err());
    assert!(TestSource::Sum(vec![(-1.0, ring)]).render(8, 160.0, 1.0).is_err());

    // The generator: image i does not depend on n; every image peaks at 1; the centroids stay
    // within offset + blob spread of the centre; the kinds come in their proportions.
    let g = CompactSources::default();
    let many = g.images(400, 32, 160.0, 11).unwrap();
    assert_eq!(&many[..3 * 1024], &g.images(3, 32, 160.0, 11).unwrap()[..]);
    assert_ne!(many[..1024], g.images(1, 32, 160.0, 12).unwrap()[..]);
    let mut kinds = [0usize; 4];
    for (i, img) in many.chunks(1024).enumerate() {
        assert_eq!(img.iter().cloned().fold(0.0, f64::max), 1.0);
        let (e, n) = centroid(img, 32, 160.0);
        assert!(e.hypot(n) < g.offset + g.blob_spread + 1.0, "image {i}: centroid ({e}, {n})");
        let TestSource::Shifted { source, .. } = g.source(11, i as u64).unwrap() else { panic!("not shifted") };
        kinds[match *source {
            TestSource::Ring { radius, .. } => {
                assert!((10.0..=30.0).contains(&radius));
                0
            }
            TestSource::Crescent { radius, asymmetry, .. } => {
                assert!((10.0..=30.0).contains(&radius) && (0.2..=0.95).contains(&asymmetry));
                1
            }
            TestSource::Blobs(ref b) => {
                assert!((1..=4).contains(&b.len()));
                2
            }
            _ => 3,
        }] += 1;
    }
    // 20/40/25/15 % of 400: binomial s.d. ≤ 10 images.
    for (k, p) in kinds.iter().zip([80.0, 160.0, 100.0, 60.0]) {
        assert!((*k as f64 - p).abs() < 30.0, "kinds {kinds:?}");
    }
    let bad = CompactSources { diameter: (60.0, 20.0), ..Default::default() };
    assert!(bad.images(1, 8, 160.0, 0).is_err());
    assert!(g.images(0, 8, 160.0, 0).is_err());
}

/// Closures, then the log amplitude ratios `ratios`, of split complex visibilities `vis`
/// (`(n, 2K)`), one row per visibility set.
fn closures_and_ratios(eht: &Interferometer, vis: &[f64], ratios: &[[usize; 2]]) -> Vec<f64> {
    let k = eht.coverage().points.len();
    let c = eht.closure_data(vis).unwrap();
    let m = c.len() / (vis.len() / (2 * k));
    let mut out = vec![];
    for (row, v) in c.chunks(m).zip(vis.chunks(2 * k)) {
        out.extend_from_slice(row);
        let ln = |i: usize| v[i].hypot(v[k + i]).ln();
        out.extend(ratios.iter().map(|r| ln(r[0]) - ln(r[1])));
    }
    out
}

/// The scan covariance of the closure quantities is the covariance of closures of noisy
/// visibilities. Many noisy visibility sets (thermal noise, and a log-gain error of 5 % per
/// station and scan) of a bright compact source on the EHT 2017 coverage, their closure phases,
/// log closure amplitudes and log amplitude ratios over ALMA–APEX: whitened by the scan
/// covariance their residuals are uncorrelated unit normals (χ² per datum of mean 1 and of
/// spread √(2/M) across draws); whitened by the diagonal σ they have the right variance but stay
/// correlated within scans, so their χ² spreads far more.
#[test]
fn scan_covariance_whitens_closures_of_noisy_visibilities() {
    let eht = eht(16, 3600.0);
    let truth = TestSource::Blobs(vec![(8.0, -5.0, 15.0, 1.0)]).render(16, 160.0, 5.0).unwrap();
    let vm = eht.visibility_model().unwrap();
    let clean = vm.forward(&truth).unwrap();
    let ratios = eht.amplitude_ratios("ALMA", "APEX");
    let cov = eht.coverage();
    let (k, ns) = (cov.points.len(), cov.stations.len());
    let gain = vec![0.05; ns];
    let scan = eht.closure_noise_scan(&clean, &ratios, &gain).unwrap();
    let extra: Vec<f64> = cov.points.iter().map(|p| gain[p.i].powi(2) + gain[p.j].powi(2)).collect();
    let diag = eht.closure_model_with_ratios(&clean, &ratios, &extra).unwrap();
    let diag = diag.noise();
    // Noisy visibilities with station gains drawn per scan.
    let reps = 400;
    let x: Vec<f64> = truth.iter().cycle().take(reps * truth.len()).copied().collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(24);
    let mut noisy = vm.simulate(&x, &mut rng).unwrap();
    let times = cov.times();
    for v in noisy.chunks_mut(2 * k) {
        let g: Vec<f64> =
            (0..times.len() * ns).map(|_| 0.05 * rng.sample::<f64, _>(rand_distr::StandardNormal)).collect();
        for (q, p) in cov.points.iter().enumerate() {
            let t = times.iter().position(|&t| t == p.time_hour).unwrap();
            let a = (g[t * ns + p.i] + g[t * ns + p.j]).exp();
            v[q] *= a;
            v[k + q] *= a;
        }
    }
    let c0 = closures_and_ratios(&eht, &clean, &ratios);
    let c = closures_and_ratios(&eht, &noisy, &ratios);
    let m = c0.len();
    assert_eq!(m, scan.len());
    // The scan of every measurement, for the within-scan correlations.
    let sets = eht.closures();
    let scan_of: Vec<f64> = sets
        .triangles
        .iter()
        .map(|t| cov.points[t[0].0].time_hour)
        .chain(sets.quadrangles.iter().map(|q| cov.points[q[0]].time_hour))
        .chain(ratios.iter().map(|r| cov.points[r[0]].time_hour))
        .collect();
    // With ratios over every baseline, the scan model gives the log closure amplitudes zero
    // weight (the ratios determine them): M counts the independent data.
    let dependent = scan.dependent_count();
    assert!(dependent > 0 && dependent <= sets.quadrangles.len(), "{dependent}");
    let mut report = vec![];
    for (name, noise) in [("scan", &scan), ("diagonal", diag)] {
        let m_eff = m - noise.dependent_count();
        let mut w = vec![0.0; reps * m];
        let mut chi = vec![0.0; reps];
        for r in 0..reps {
            let y = &c[r * m..(r + 1) * m];
            noise.whiten(y, &c0, &mut w[r * m..(r + 1) * m]);
            chi[r] = w[r * m..(r + 1) * m].iter().map(|v| v * v).sum::<f64>() / m_eff as f64;
        }
        let zero: Vec<bool> = (0..m).map(|a| (0..reps).all(|r| w[r * m + a] == 0.0)).collect();
        let mean = chi.iter().sum::<f64>() / reps as f64;
        let spread = (chi.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (reps - 1) as f64).sqrt();
        // Sample correlations of whitened residuals of one scan (pairs of distinct entries).
        let (mut off, mut pairs) = (0.0, 0usize);
        for a in 0..m {
            for b in 0..a {
                if scan_of[a] == scan_of[b] && !zero[a] && !zero[b] {
                    let s: f64 = (0..reps).map(|r| w[r * m + a] * w[r * m + b]).sum::<f64>() / reps as f64;
                    off += s * s;
                    pairs += 1;
                }
            }
        }
        let off = (off / pairs as f64).sqrt();
        let var_mean =
            (0..m).map(|a| (0..reps).map(|r| w[r * m + a].powi(2)).sum::<f64>()).sum::<f64>() / (reps * m_eff) as f64;
        eprintln!(
            "{name}: M = {m_eff}, χ²/M = {mean:.4} ± {spread:.4} across draws (whitened: √(2/M) = {:.4}); whitened \
             variance {var_mean:.4}; within-scan correlation rms {off:.4} over {pairs} pairs (Monte Carlo: {:.4})",
            (2.0 / m_eff as f64).sqrt(),
            1.0 / (reps as f64).sqrt()
        );
        report.push((mean, spread, off));
    }
    let expected = (2.0 / (m - dependent) as f64).sqrt();
    let mc = 1.0 / (reps as f64).sqrt();
    let (scan_mean, scan_spread, scan_off) = report[0];
    // Mean 1 to 4 standard errors (plus 2 % for the linearisation), the spread of χ²/M that of
    // M independent unit normals to 20 %, within-scan correlations at the Monte Carlo floor.
    assert!((scan_mean - 1.0).abs() < 4.0 * expected / (reps as f64).sqrt() + 0.02, "scan: χ²/M mean {scan_mean}");
    assert!((scan_spread / expected - 1.0).abs() < 0.2, "scan: χ²/M spread {scan_spread}, expected {expected}");
    assert!(scan_off < 1.2 * mc, "scan: within-scan correlation rms {scan_off} (Monte Carlo {mc})");
    // The diagonal σ fail both: their residuals are correlated within a scan.
    let (_, diag_spread, diag_off) = report[1];
    assert!(diag_spread > 1.5 * (2.0 / m as f64).sqrt(), "diagonal: χ²/M spread {diag_spread}");
    assert!(diag_off > 3.0 * mc, "diagonal: within-scan correlation rms {diag_off}");
}

/// The gradient of the scan-covariance likelihood (closure phases, log closure amplitudes and
/// amplitude ratios with station gains) against central finite differences; its draws and
/// χ² are finite; the likelihood is invariant to the total flux, as the diagonal one.
#[test]
fn scan_covariance_likelihood_gradient_matches_finite_differences() {
    let eht = eht(12, 3600.0);
    let truth = TestSource::Ring { radius: 25.0, width: 5.0 }.render(12, 160.0, 2.0).unwrap();
    let guess =
        TestSource::Blobs(vec![(0.0, 0.0, 40.0, 1.0), (15.0, -10.0, 20.0, 0.5)]).render(12, 160.0, 1.5).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let y = eht.visibility_model().unwrap().simulate(&truth, &mut rng).unwrap();
    let ratios = eht.amplitude_ratios("ALMA", "APEX");
    let gain = vec![0.1; eht.coverage().stations.len()];
    let m = eht.closure_model_scan(&y, &ratios, &gain).unwrap();
    assert!(!m.noise().is_diagonal());
    let ym = m.simulate(&truth, &mut rng).unwrap();
    assert!(ym.iter().all(|v| v.is_finite()));
    check_gradient(&m, &guess, &ym, 1e-6, 1e-5);
    let scaled: Vec<f64> = guess.iter().map(|v| 3.0 * v).collect();
    let (a, b) = (m.log_likelihood(&ym, &guess).unwrap()[0], m.log_likelihood(&ym, &scaled).unwrap()[0]);
    assert!(a.is_finite() && (a - b).abs() < 1e-9 * a.abs());
    // Without ratios or gains too.
    let m = eht.closure_model_scan(&y, &[], &[]).unwrap();
    check_gradient(&m, &guess, &m.simulate(&truth, &mut rng).unwrap(), 1e-6, 1e-5);
}

/// A scan whose closure-phase covariance is not finite (a visibility of zero amplitude) is
/// refused with an error naming the scan, never a panic or a NaN likelihood; so are bad station
/// gains, and a singular block of the noise itself. Amplitude data that repeat a datum (a ratio
/// given twice) or that the ratios determine (log closure amplitudes) get zero weight: the
/// likelihood is that of the independent data.
#[test]
fn degenerate_scan_covariances_are_refused_or_given_zero_weight() {
    use scoreprior_core::forward::noise::{CorrelatedBlock, Noise};
    let eht = eht(8, 3600.0);
    let truth = TestSource::Ring { radius: 25.0, width: 5.0 }.render(8, 160.0, 2.0).unwrap();
    let mut vis = eht.visibility_model().unwrap().forward(&truth).unwrap();
    let ratios = eht.amplitude_ratios("ALMA", "APEX");
    let ns = eht.coverage().stations.len();
    let e = eht.closure_model_scan(&vis, &ratios, &vec![0.1; ns + 1]).unwrap_err().to_string();
    assert!(e.contains("station gain"), "{e}");
    let e = eht.closure_model_scan(&vis, &ratios, &vec![f64::NAN; ns]).unwrap_err().to_string();
    assert!(e.contains("gain"), "{e}");
    // A ratio given twice: zero weight, the same χ² as without it.
    let model = eht.closure_model_scan(&vis, &ratios, &vec![0.1; ns]).unwrap();
    let twice = [ratios.clone(), vec![ratios[0]]].concat();
    let model2 = eht.closure_model_scan(&vis, &twice, &vec![0.1; ns]).unwrap();
    assert_eq!(model2.noise().dependent_count(), model.noise().dependent_count() + 1);
    let guess = TestSource::Blobs(vec![(0.0, 0.0, 40.0, 1.0)]).render(8, 160.0, 1.5).unwrap();
    let y = model.forward(&truth).unwrap();
    let y2 = model2.forward(&truth).unwrap();
    let (a, b) = (model.chi_squared(&y, &guess).unwrap()[0], model2.chi_squared(&y2, &guess).unwrap()[0]);
    assert!(a.is_finite() && (a - b).abs() < 1e-8 * a, "{a} {b}");
    // The log closure amplitudes are determined by the ratios of every baseline of their scan.
    let lca = eht.closures().quadrangles.len();
    assert!(model.noise().dependent_count() > 0 && model.noise().dependent_count() <= lca);
    // A visibility of zero amplitude: its closures' σ are not finite.
    let k = eht.coverage().points.len();
    let q = eht.closures().triangles[0][0].0;
    vis[q] = 0.0;
    vis[k + q] = 0.0;
    let e = eht.closure_model_scan(&vis, &[], &[]).unwrap_err().to_string();
    assert!(e.contains("scan at") || e.contains("noise level"), "{e}");
    // A singular block given to the noise.
    let block =
        CorrelatedBlock { label: "scan 7".into(), index: vec![0, 1], covariance: vec![1.0; 4], allow_dependent: false };
    let e = Noise::gaussian(1.0, 3).unwrap().with_correlated_blocks(vec![block]).unwrap_err().to_string();
    assert!(e.contains("scan 7") && e.contains("not symmetric positive definite"), "{e}");
}

/// From 64 pixels on a side every model of the problem runs on the NUFFT: its visibilities,
/// closure quantities and likelihood gradients agree with the exact sum's to a stated 1e-6
/// (relative; the kernel's measured error is about 1e-7), its adjoint is exact to rounding
/// (dot-product test), and `transform=direct` keeps the exact path.
#[test]
fn from_64_pixels_the_models_run_on_the_nufft_within_1e6_of_the_direct_sum() {
    use scoreprior_core::forward::interferometry::VisibilityTransform;
    let fast = eht(64, 1800.0);
    let exact = fast.clone().with_transform(VisibilityTransform::Direct);
    assert!(fast.uses_nufft() && !exact.uses_nufft() && !eht(32, 1800.0).uses_nufft());
    let rel = |a: &[f64], b: &[f64]| {
        let e: f64 = a.iter().zip(b).map(|(a, b)| (a - b).powi(2)).sum();
        (e / b.iter().map(|b| b * b).sum::<f64>()).sqrt()
    };
    let truth = TestSource::Crescent { radius: 22.0, width: 6.0, asymmetry: 0.6, angle_deg: 40.0 }
        .render(64, 160.0, 1.0)
        .unwrap();
    let (vf, ve) = (fast.visibility_model().unwrap(), exact.visibility_model().unwrap());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let n = 4;
    let x: Vec<f64> = (0..n * 4096).map(|i| truth[i % 4096] * (1.0 + rng.gen_range(-0.2..0.2))).collect();
    let (yf, ye) = (vf.forward(&x).unwrap(), ve.forward(&x).unwrap());
    let e_vis = rel(&yf, &ye);
    let w: Vec<f64> = (0..yf.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let (af, ae) = (vf.adjoint(&w).unwrap(), ve.adjoint(&w).unwrap());
    let e_adj = rel(&af, &ae);
    let lhs: f64 = yf.iter().zip(&w).map(|(a, b)| a * b).sum();
    let rhs: f64 = x.iter().zip(&af).map(|(a, b)| a * b).sum();
    let scale = yf.iter().map(|a| a * a).sum::<f64>().sqrt() * w.iter().map(|a| a * a).sum::<f64>().sqrt();
    let dot = (lhs - rhs).abs() / scale;
    // Closure phases and log closure amplitudes of the clean truth as data; the model of each.
    let clean = ve.forward(&truth).unwrap();
    let yc = exact.closure_data(&clean).unwrap();
    let (cf, ce) = (fast.closure_model(&clean).unwrap(), exact.closure_model(&clean).unwrap());
    let e_closure = rel(&cf.forward(&x).unwrap(), &ce.forward(&x).unwrap());
    let e_grad = rel(&cf.grad_log_likelihood(&yc, &x).unwrap(), &ce.grad_log_likelihood(&yc, &x).unwrap());
    let (lf, le) = (cf.log_likelihood(&yc, &x).unwrap(), ce.log_likelihood(&yc, &x).unwrap());
    let e_like = lf.iter().zip(&le).map(|(a, b)| (a - b).abs() / b.abs().max(1.0)).fold(0.0, f64::max);
    eprintln!(
        "64×64 NUFFT against the direct sum: visibilities {e_vis:.1e}, adjoint {e_adj:.1e}, dot-product {dot:.1e}, \
         closures {e_closure:.1e}, log-likelihood {e_like:.1e}, gradient {e_grad:.1e}"
    );
    for (what, e) in [("visibilities", e_vis), ("adjoint", e_adj), ("closures", e_closure), ("gradient", e_grad)] {
        assert!(e < 1e-6, "{what}: relative difference {e:e}");
    }
    // χ² = Σ (f − y)²/σ² carries the closures' relative error amplified by |f| / |f − y|
    // (about 20 here: the images are the truth ± 20 % per pixel).
    assert!(e_like < 5e-6, "log-likelihood: {e_like:e}");
    assert!(dot < 1e-14, "dot-product test {dot:e}");
    // The chain names its transform, so a model says which one it runs.
    assert!(fast.visibility_op().unwrap().describe().starts_with("nufft"));
}
