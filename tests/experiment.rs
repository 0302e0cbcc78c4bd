//! The experiment API as a user sees it (`scoreprior::prelude` only): a Gaussian-prior
//! denoising run must reproduce the closed-form posterior; bad settings are refused before
//! any work, naming the setting; a saved result holds what `save` promises; a baseline sampler
//! fits a flux constraint as the measurement of the total flux it is.

use scoreprior::prelude::*;

#[forward_model(input = [1, 4, 4], ops = [identity], noise = gaussian(sigma = 0.3))]
struct Denoise4;

#[forward_model(input = [1, 8, 8], ops = [identity], noise = gaussian(sigma = 0.3))]
struct Denoise8;

fn prior16() -> Gaussian {
    // A correlated Gaussian on 4×4 images: 0.04·(0.5^|i−j|) plus a diagonal.
    let d = 16;
    let cov: Vec<f64> = (0..d * d)
        .map(|k| {
            let (i, j) = ((k / d) as i32, (k % d) as i32);
            0.04 * 0.5f64.powi((i - j).abs()) + if i == j { 0.01 } else { 0.0 }
        })
        .collect();
    Gaussian::new(vec![0.4; d], &cov, AnySde::Vp(VpSde::default())).unwrap()
}

fn truth() -> Vec<f64> {
    (0..16).map(|i| 0.2 + 0.04 * i as f64).collect()
}

/// The denoising of [`truth`] under the Gaussian prior [`prior16`], every other setting the
/// default: what most tests start from.
fn gaussian_denoising() -> scoreprior::experiment::ExperimentBuilder<Denoise4> {
    Experiment::builder(Denoise4).truth(truth(), 4, 4).prior(Prior::gaussian(prior16()))
}

#[test]
fn gaussian_denoising_matches_the_closed_form_posterior() {
    let res =
        gaussian_denoising().steps(400).batch(64).samples(4000).outlier_threshold(10.0).build().unwrap().run().unwrap();
    let cf = res.report.closed_form.expect("Gaussian prior + Gaussian denoising has a closed form");
    // Measured: mean RMSE 0.0127, std relative error 0.015 (exact posterior std 0.172).
    assert!(cf.mean_rmse < 0.025, "{cf:?}");
    assert!(cf.std_rel_err < 0.03, "{cf:?}");
    // The Wiener yardstick is the same closed form here: DPI's mean is within 1 dB of it.
    let refs = res.report.references.unwrap();
    let (dpi, wiener) = (res.report.mean_metrics.unwrap(), refs.wiener.unwrap());
    assert!((dpi.psnr - wiener.psnr).abs() < 1.0, "DPI {dpi:?} vs Wiener {wiener:?}");
    assert!(refs.tweedie.is_none(), "no score model, no Tweedie estimate");
    let cov = res.report.coverage_2std.unwrap();
    assert!((0.8..=1.0).contains(&cov), "coverage {cov}");
    assert_eq!(res.history.records.len(), 400);
}

#[test]
fn bad_settings_are_refused_naming_the_setting() {
    let field = |r: Result<_, ExperimentError>| match r {
        Err(ExperimentError::Invalid { field, .. }) => field,
        Err(e) => panic!("expected an Invalid error, got {e}"),
        Ok(_) => panic!("expected an error"),
    };
    assert_eq!(field(gaussian_denoising().steps(0).build().map(|_| ())), "steps");
    assert_eq!(field(gaussian_denoising().samples(0).build().map(|_| ())), "samples");
    assert_eq!(field(gaussian_denoising().outlier_threshold(f64::NAN).build().map(|_| ())), "outlier_threshold");
    assert_eq!(field(gaussian_denoising().batch(0).build().map(|_| ())), "dpi_config");
    assert_eq!(field(gaussian_denoising().lr(-1.0).build().map(|_| ())), "dpi_config");
    assert_eq!(field(Experiment::builder(Denoise4).truth(truth(), 4, 4).build().map(|_| ())), "prior");
    assert_eq!(
        field(Experiment::builder(Denoise4).prior(Prior::gaussian(prior16())).build().map(|_| ())),
        "truth/measurement"
    );
    // An 8×8 operator with 4×4 images, and a 4×4 prior with 8×8 images.
    let e = Experiment::builder(Denoise8).truth(truth(), 4, 4).prior(Prior::gaussian(prior16())).build();
    assert_eq!(field(e.map(|_| ())), "forward");
    let e = Experiment::builder(Denoise8).truth(vec![0.5; 64], 8, 8).prior(Prior::gaussian(prior16())).build();
    assert_eq!(field(e.map(|_| ())), "prior");
    let mut bad = truth();
    bad[3] = f64::NAN;
    assert_eq!(field(gaussian_denoising().truth(bad, 4, 4).build().map(|_| ())), "truth");
    let e = Experiment::builder(Denoise4).measurement(vec![0.0; 15], 4, 4).prior(Prior::gaussian(prior16())).build();
    assert_eq!(field(e.map(|_| ())), "measurement");
    assert_eq!(field(gaussian_denoising().prior(Prior::total_variation(-1.0)).build().map(|_| ())), "prior.tv.weight");
    let model: std::sync::Arc<dyn ScoreModel> = std::sync::Arc::new(prior16());
    let odd = DsmSettings { draws: 3, ..Default::default() };
    let e = gaussian_denoising().prior(Prior::dsm(model.clone(), AnySde::Vp(VpSde::default()), odd)).build();
    assert_eq!(field(e.map(|_| ())), "prior.dsm.draws");
    // A continuation that starts below the prior's own floor.
    let low = Some(Continuation { from: 1e-4, steps: 0 });
    let dsm = Prior::dsm(model, AnySde::Vp(VpSde::default()), DsmSettings::default());
    assert_eq!(field(gaussian_denoising().prior(dsm).continuation(low).build().map(|_| ())), "continuation");
}

#[test]
fn continuation_is_resolved_only_for_score_priors() {
    let model: std::sync::Arc<dyn ScoreModel> = std::sync::Arc::new(prior16());
    let dsm = Prior::dsm(model, AnySde::Vp(VpSde::default()), DsmSettings::default());
    let e = Experiment::builder(Denoise4).truth(truth(), 4, 4).prior(dsm).steps(40).build().unwrap();
    assert_eq!(
        e.dpi_config().time_floor,
        scoreprior::experiment::TimeFloorSchedule::Geometric { start: 0.1, end: 1e-3, steps: 20 }
    );
    let e = gaussian_denoising().build().unwrap();
    assert_eq!(e.dpi_config().time_floor, scoreprior::experiment::TimeFloorSchedule::Off);
}

#[test]
fn a_saved_result_holds_its_arrays_and_report() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("run");
    let res = gaussian_denoising().steps(5).batch(8).samples(10).build().unwrap().run().unwrap();
    res.save(&dir).unwrap();
    for f in
        ["samples.npy", "mean.npy", "std.npy", "y.npy", "x_true.npy", "wiener.npy", "exact_mean.npy", "metrics.json"]
    {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let s = read_npy(dir.join("samples.npy")).unwrap();
    assert_eq!(s.shape, vec![10, 4, 4]);
    assert_eq!(s.data, res.samples.x);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(json["steps"], 5);
    assert_eq!(json["prior"], "gaussian");
    assert!(res.summary_table().contains("DPI posterior mean"));
}

#[test]
fn a_checkpoint_of_another_shape_is_refused() {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/ncsnpp_fmnist16/ema.safetensors");
    assert!(ShapedPrior::<1, 16, 16>::ncsnpp_dsm(p, DsmSettings::default()).is_ok());
    match ShapedPrior::<1, 8, 8>::ncsnpp_dsm(p, DsmSettings::default()) {
        Err(ExperimentError::Invalid { field, why }) => {
            assert_eq!(field, "prior");
            assert!(why.contains("(1, 16, 16)"), "{why}");
        }
        Err(e) => panic!("expected Invalid, got {e}"),
        Ok(_) => panic!("a 16x16 network accepted as 8x8"),
    }
}

/// `flux_constraint(w, F)` under a baseline sampler is the measurement `Σx = F` at
/// `σ_F² = 1/(2w)`: with a Gaussian prior and Gaussian denoising the posterior stays Gaussian,
/// precision `Σ⁻¹ + I/σ² + 11ᵀ/σ_F²`, and PnP-DM's samples must follow it. The flux target (10)
/// is far above the data's (about 8), so a sampler that ignored the constraint would miss the
/// flux's posterior mean (9.4) by about 1.4. At the reference's schedule (200 iterations, ρ × 0.93):
/// a faster anneal (60 iterations, × 0.8) left the flux mean 0.15 sd low, the split-Gibbs chain
/// mixing slowly once `ρ` is at its floor.
#[test]
fn a_baseline_sampler_fits_the_flux_constraint_as_a_measurement() {
    use nalgebra::{DMatrix, DVector};
    use scoreprior::core::baselines::PnpDm;
    let (weight, target, sigma) = (2.0, 10.0, 0.3);
    let prior = prior16();
    let pnp = PnpDm { denoise_steps: 50, ..PnpDm::new() };
    let res = Experiment::builder(Denoise4)
        .truth(truth(), 4, 4)
        .prior(Prior::gaussian_ode(prior.clone()))
        .flux_constraint(weight, target)
        .samples(3000)
        .seed(3)
        .outlier_threshold(10.0)
        .build()
        .unwrap()
        .run_baseline(Baseline::PnpDm(pnp))
        .unwrap();
    let d = 16;
    let cov = DMatrix::from_row_slice(d, d, &prior.covariance());
    let prec_prior = cov.clone().try_inverse().unwrap();
    let ones = DVector::from_element(d, 1.0);
    let sf2 = 0.5 / weight;
    let prec = &prec_prior + DMatrix::identity(d, d) / (sigma * sigma) + &ones * ones.transpose() / sf2;
    let post_cov = prec.try_inverse().unwrap();
    let rhs = &prec_prior * DVector::from_column_slice(prior.mean())
        + DVector::from_column_slice(&res.y) / (sigma * sigma)
        + &ones * (target / sf2);
    let mean = &post_cov * rhs;
    let flux_mean = mean.sum();
    let flux_sd = (ones.transpose() * &post_cov * &ones)[(0, 0)].sqrt();
    let fluxes: Vec<f64> = res.samples.x.chunks(d).map(|v| v.iter().sum()).collect();
    let n = fluxes.len() as f64;
    let m = fluxes.iter().sum::<f64>() / n;
    let sd = (fluxes.iter().map(|f| (f - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    assert!((flux_mean - 9.5).abs() < 0.3, "closed form {flux_mean}");
    // Measured: flux mean 9.3715 against 9.3770 (0.012 sd; Monte Carlo error 0.018 sd), sd
    // 0.455 against 0.438 (+4 %).
    assert!((m - flux_mean).abs() < 0.06 * flux_sd, "flux mean {m} vs {flux_mean} (sd {flux_sd})");
    assert!((sd / flux_sd - 1.0).abs() < 0.08, "flux sd {sd} vs {flux_sd}");
    // Every pixel's mean within 0.1 posterior sd.
    for i in 0..d {
        let mi = res.samples.x.chunks(d).map(|v| v[i]).sum::<f64>() / n;
        let si = post_cov[(i, i)].sqrt();
        assert!((mi - mean[i]).abs() < 0.1 * si, "pixel {i}: {mi} vs {} (sd {si})", mean[i]);
    }
}
