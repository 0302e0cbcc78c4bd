//! The experiment API as a user sees it (`scoreprior::prelude` only): a Gaussian-prior
//! denoising run must reproduce the closed-form posterior; bad settings are refused before
//! any work, naming the setting; a saved result holds what `save` promises.

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

#[test]
fn gaussian_denoising_matches_the_closed_form_posterior() {
    let res = Experiment::builder(Denoise4)
        .truth(truth(), 4, 4)
        .prior(Prior::gaussian(prior16()))
        .steps(400)
        .batch(64)
        .samples(4000)
        .outlier_threshold(10.0)
        .build()
        .unwrap()
        .run()
        .unwrap();
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
    let base = || Experiment::builder(Denoise4).truth(truth(), 4, 4).prior(Prior::gaussian(prior16()));
    assert_eq!(field(base().steps(0).build().map(|_| ())), "steps");
    assert_eq!(field(base().samples(0).build().map(|_| ())), "samples");
    assert_eq!(field(base().outlier_threshold(f64::NAN).build().map(|_| ())), "outlier_threshold");
    assert_eq!(field(base().batch(0).build().map(|_| ())), "dpi_config");
    assert_eq!(field(base().lr(-1.0).build().map(|_| ())), "dpi_config");
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
    assert_eq!(field(base().truth(bad, 4, 4).build().map(|_| ())), "truth");
    let e = Experiment::builder(Denoise4).measurement(vec![0.0; 15], 4, 4).prior(Prior::gaussian(prior16())).build();
    assert_eq!(field(e.map(|_| ())), "measurement");
    assert_eq!(field(base().prior(Prior::total_variation(-1.0)).build().map(|_| ())), "prior.tv.weight");
    let model: std::sync::Arc<dyn ScoreModel> = std::sync::Arc::new(prior16());
    let odd = DsmSettings { draws: 3, ..Default::default() };
    let e = base().prior(Prior::dsm(model.clone(), AnySde::Vp(VpSde::default()), odd)).build();
    assert_eq!(field(e.map(|_| ())), "prior.dsm.draws");
    // A continuation that starts below the prior's own floor.
    let low = Some(Continuation { from: 1e-4, steps: 0 });
    let dsm = Prior::dsm(model, AnySde::Vp(VpSde::default()), DsmSettings::default());
    assert_eq!(field(base().prior(dsm).continuation(low).build().map(|_| ())), "continuation");
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
    let e = Experiment::builder(Denoise4).truth(truth(), 4, 4).prior(Prior::gaussian(prior16())).build().unwrap();
    assert_eq!(e.dpi_config().time_floor, scoreprior::experiment::TimeFloorSchedule::Off);
}

#[test]
fn a_saved_result_holds_its_arrays_and_report() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("run");
    let res = Experiment::builder(Denoise4)
        .truth(truth(), 4, 4)
        .prior(Prior::gaussian(prior16()))
        .steps(5)
        .batch(8)
        .samples(10)
        .build()
        .unwrap()
        .run()
        .unwrap();
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
