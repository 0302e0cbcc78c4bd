//! A run that starts from another run's trained flow (`PosteriorSettings::init_flow`): the
//! flow and its map to the image (MAP point, Laplace factor, softplus) come back exactly, the
//! continued run trains under its own prior to that prior's closed-form posterior, and folders
//! or settings that cannot work are refused before any work.

use scoreprior::experiment::{ExperimentError, LaplaceStart, MapWarmStart};
use scoreprior::prelude::*;

#[forward_model(input = [1, 4, 4], ops = [gaussian_blur(sigma = 1.0, size = 3)], noise = gaussian(sigma = 0.05))]
struct Blur;

fn truth() -> Vec<f64> {
    (0..16).map(|i| 0.4 + 0.03 * i as f64).collect()
}

fn prior(mean: f64) -> Gaussian {
    let var: Vec<f64> = (0..16).map(|i| 0.02 + 0.002 * i as f64).collect();
    Gaussian::diagonal(vec![mean; 16], &var, AnySde::Vp(VpSde::default())).unwrap()
}

/// The first run: positive images, MAP warm start and Laplace start, 80 steps into `dir`.
fn first_run(dir: &std::path::Path) -> ExperimentResult {
    Experiment::builder(Blur)
        .truth(truth(), 4, 4)
        .prior(Prior::gaussian(prior(0.6)))
        .posterior(PosteriorSettings {
            positive: true,
            flows: 4,
            hidden: 32,
            init_scale: 1.0,
            init_image: Some(vec![0.5; 16]),
            map_warm_start: Some(MapWarmStart { iterations: 200, ..Default::default() }),
            laplace: Some(LaplaceStart::default()),
            ..Default::default()
        })
        .steps(80)
        .batch(16)
        .samples(256)
        .seed(3)
        .configure(|c| c.out_dir = Some(dir.to_path_buf()))
        .build()
        .unwrap()
        .run()
        .unwrap()
}

/// A run from `dir`'s trained flow under a prior of mean `mean`.
fn continued(dir: &std::path::Path, mean: f64, steps: usize, lr: f64) -> ExperimentResult {
    Experiment::builder(Blur)
        .truth(truth(), 4, 4)
        .prior(Prior::gaussian(prior(mean)))
        .posterior(PosteriorSettings { positive: true, init_flow: Some(dir.to_path_buf()), ..Default::default() })
        .steps(steps)
        .batch(16)
        .lr(lr)
        .samples(256)
        .seed(3)
        .build()
        .unwrap()
        .run()
        .unwrap()
}

#[test]
fn a_run_starts_from_another_runs_trained_flow_and_trains_under_its_own_prior() {
    let dir = tempfile::tempdir().unwrap();
    let first = first_run(dir.path());
    for f in ["flow_map.json", "flow_offset.npy", "flow_factor.npy", "checkpoint.safetensors"] {
        assert!(dir.path().join(f).is_file(), "{f} was not written");
    }
    // One step at a negligible rate, the same sampling seed: the same samples, so the flow,
    // the MAP offset, the Laplace factor and the softplus all came back (any one of them
    // missing moves the samples by far more than the step).
    let same = continued(dir.path(), 0.6, 1, 1e-12);
    let gap = first.samples.x.iter().zip(&same.samples.x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(gap < 1e-6, "max |Δx| between the first run's samples and the restored flow's: {gap:e}");

    // Continued under a prior whose mean is twice as high, the flow moves to that prior's
    // posterior: from 1.06 posterior std away (per pixel, on average) to 0.05, std within 7 %
    // (measured); the bounds leave room for the softplus's non-Gaussian q.
    let moved = continued(dir.path(), 1.2, 300, 2e-3);
    let g = prior(1.2);
    let (mean, cov, _) =
        scoreprior::core::denoise::linear_gaussian_posterior(&Blur, &moved.y, g.mean(), &g.covariance()).unwrap();
    let sd: Vec<f64> = (0..16).map(|i| cov[i * 16 + i].sqrt()).collect();
    let s = &moved.summary;
    let mean_err = (0..16).map(|i| (s.mean[i] - mean[i]).abs() / sd[i]).sum::<f64>() / 16.0;
    let std_err = (0..16).map(|i| (s.std[i] / sd[i] - 1.0).abs()).sum::<f64>() / 16.0;
    // Where it started: the first prior's posterior.
    let start_err = (0..16).map(|i| (first.summary.mean[i] - mean[i]).abs() / sd[i]).sum::<f64>() / 16.0;
    assert!(start_err > 0.8, "the two priors' posteriors are too close to tell apart: {start_err}");
    assert!(mean_err < 0.12, "mean error {mean_err} posterior std (started at {start_err})");
    assert!(std_err < 0.12, "std relative error {std_err}");
}

#[test]
fn folders_and_settings_that_cannot_start_a_run_are_refused() {
    let build = |p: PosteriorSettings| {
        Experiment::builder(Blur).truth(truth(), 4, 4).prior(Prior::gaussian(prior(0.6))).posterior(p).steps(2).build()
    };
    let empty = tempfile::tempdir().unwrap();
    let e =
        build(PosteriorSettings { init_flow: Some(empty.path().to_path_buf()), ..Default::default() }).err().unwrap();
    assert!(matches!(e, ExperimentError::Invalid { field: "posterior.init_flow", .. }), "{e}");
    assert!(e.to_string().contains("flow_map.json"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    first_run(dir.path());
    // The first run's images were positive; a run on unconstrained images cannot use its map.
    let e = build(PosteriorSettings { init_flow: Some(dir.path().to_path_buf()), ..Default::default() }).err().unwrap();
    assert!(e.to_string().contains("positive"), "{e}");
    // The folder decides where the flow starts: a starting image as well is a conflict.
    let e = build(PosteriorSettings {
        positive: true,
        init_flow: Some(dir.path().to_path_buf()),
        init_image: Some(vec![0.5; 16]),
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(matches!(e, ExperimentError::Conflict { .. }), "{e}");
    assert!(e.to_string().contains("init_image"), "{e}");
    // A damaged factor is an error naming the file, not a panic.
    std::fs::write(dir.path().join("flow_factor.npy"), b"not npy").unwrap();
    let e =
        build(PosteriorSettings { positive: true, init_flow: Some(dir.path().to_path_buf()), ..Default::default() })
            .unwrap()
            .run()
            .err()
            .unwrap();
    assert!(e.to_string().contains("flow_factor.npy"), "{e}");
}
