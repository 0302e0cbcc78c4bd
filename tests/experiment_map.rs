//! The MAP warm start against closed forms: under a Gaussian prior and a linear Gaussian
//! measurement the MAP is the posterior mean (`denoise::linear_gaussian_posterior`). Also
//! positive images (softplus) on the same problem with a mean far from 0, the image start,
//! resume from `map.npy`, and bad settings.

use scoreprior::experiment::MapWarmStart;
use scoreprior::prelude::*;

#[forward_model(input = [1, 4, 4], ops = [gaussian_blur(sigma = 1.0, size = 3)], noise = gaussian(sigma = 0.05))]
struct Blur;

fn prior() -> Gaussian {
    let var: Vec<f64> = (0..16).map(|i| 0.02 + 0.002 * i as f64).collect();
    Gaussian::diagonal(vec![0.6; 16], &var, AnySde::Vp(VpSde::default())).unwrap()
}

fn run(positive: bool, dir: &std::path::Path, iterations: usize) -> (Vec<f64>, Vec<f64>) {
    let truth: Vec<f64> = (0..16).map(|i| 0.4 + 0.03 * i as f64).collect();
    let res = Experiment::builder(Blur)
        .truth(truth, 4, 4)
        .prior(Prior::gaussian(prior()))
        .posterior(PosteriorSettings {
            positive,
            init_image: Some(vec![0.5; 16]),
            map_warm_start: Some(MapWarmStart { iterations, rounds: 2, blur_px: 1.0, ..Default::default() }),
            ..Default::default()
        })
        .steps(2)
        .batch(4)
        .samples(8)
        .configure(|c| {
            c.out_dir = Some(dir.to_path_buf());
            c.resume = true;
        })
        .build()
        .unwrap()
        .run()
        .unwrap();
    let map = scoreprior::core::io::read_npy(dir.join("map.npy")).unwrap().data;
    let g = prior();
    let (exact, _, _) =
        scoreprior::core::denoise::linear_gaussian_posterior(&Blur, &res.y, g.mean(), &g.covariance()).unwrap();
    (map, exact)
}

#[test]
fn the_map_warm_start_finds_the_gaussian_posterior_mean() {
    for positive in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (map, exact) = run(positive, dir.path(), 200);
        let err = map.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        // L-BFGS on a 16-dimensional quadratic (or its softplus reparametrisation) converges
        // to round-off; 1e-6 leaves room for the line search's stopping.
        assert!(err < 1e-6, "positive = {positive}: max |MAP − exact mean| = {err:e}");
        let costs = std::fs::read_to_string(dir.path().join("map_losses.csv")).unwrap();
        assert!(costs.lines().count() > 3, "{costs}");
        // Resuming reads map.npy back instead of optimising again: one iteration would not
        // reach the optimum, so the same answer shows the file was used.
        let (again, _) = run(positive, dir.path(), 1);
        assert_eq!(again, map);
    }
}

#[test]
fn bad_warm_start_settings_and_start_images_are_errors() {
    let base =
        || Experiment::builder(Blur).truth(vec![0.5; 16], 4, 4).prior(Prior::gaussian(prior())).steps(2).batch(2);
    let bad = |p: PosteriorSettings| base().posterior(p).build().err().map(|e| e.to_string());
    let ws = |f: fn(&mut MapWarmStart)| {
        let mut w = MapWarmStart::default();
        f(&mut w);
        PosteriorSettings { map_warm_start: Some(w), ..Default::default() }
    };
    for (p, word) in [
        (ws(|w| w.iterations = 0), "map_warm_start"),
        (ws(|w| w.rounds = 0), "map_warm_start"),
        (ws(|w| w.jitter = f64::NAN), "map_warm_start"),
        (ws(|w| w.blur_px = -1.0), "map_warm_start"),
        (PosteriorSettings { init_image: Some(vec![0.5; 15]), ..Default::default() }, "init_image"),
        (PosteriorSettings { init_image: Some(vec![f64::INFINITY; 16]), ..Default::default() }, "init_image"),
        (PosteriorSettings { positive: true, init_image: Some(vec![0.0; 16]), ..Default::default() }, "init_image"),
    ] {
        let e = bad(p.clone()).unwrap_or_else(|| panic!("{p:?} was accepted"));
        assert!(e.contains(word), "{e}");
    }
}
