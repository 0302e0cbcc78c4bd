//! The one `Prior` trait: every prior (PF-ODE, DSM bound, closed form, TV) through the same
//! calls; the step RNG passed in draws the estimators' randomness; the time floor moves
//! through `&self`; and `PriorEnergy` is `−log p` of the same call.

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scoreprior_core::divergence::ProbeNoise;
use scoreprior_core::dpi::{Energy, PriorEnergy};
use scoreprior_core::prior::dsm::DsmBoundPrior;
use scoreprior_core::prior::tv::TotalVariation;
use scoreprior_core::prior::{GaussianPrior, Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::Gaussian;
use scoreprior_core::sde::{AnySde, VpSde};

fn gaussian() -> Gaussian {
    let cov = [0.5, 0.1, 0.0, 0.1, 0.3, 0.05, 0.0, 0.05, 0.4];
    Gaussian::new(vec![0.1, -0.2, 0.3], &cov, AnySde::Vp(VpSde::default())).unwrap()
}

const X: [f64; 6] = [0.3, -0.1, 0.2, -0.4, 0.5, 0.0];

#[test]
fn score_prior_draws_its_probes_from_the_step_rng() {
    let cfg = ScorePriorConfig::default().with_hutchinson(2, ProbeNoise::Rademacher, 7);
    let p = ScorePrior::new(gaussian(), cfg.clone()).unwrap();
    let a = p.grad_log_prob_with(&X, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let b = p.grad_log_prob_with(&X, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let c = p.grad_log_prob_with(&X, &mut ChaCha8Rng::seed_from_u64(2)).unwrap();
    assert_eq!(a, b, "the same RNG state gives the same probes");
    assert_ne!(a.log_prob, c.log_prob, "another RNG state gives other probes");
    // The probes are those of the configured seed `rng.next_u64()`.
    use rand::RngCore;
    let seed = ChaCha8Rng::seed_from_u64(1).next_u64();
    let fixed = ScorePrior::new(gaussian(), cfg.with_hutchinson(2, ProbeNoise::Rademacher, seed)).unwrap();
    assert_eq!(fixed.grad_log_prob(&X).unwrap(), a);
    // Without an RNG the configured seed holds: reproducible.
    assert_eq!(p.grad_log_prob(&X).unwrap(), p.grad_log_prob(&X).unwrap());
}

#[test]
fn the_time_floor_moves_through_shared_references() {
    let cfg = ScorePriorConfig::default().with_exact_trace();
    let mut p = ScorePrior::new(gaussian(), cfg).unwrap();
    assert_eq!(p.time_floor(), Some(1e-3));
    let at_1e3 = p.log_prob(&X).unwrap().log_prob;
    p.set_time_floor(0.1).unwrap();
    assert_eq!(p.time_floor(), Some(0.1));
    let at_01 = p.log_prob(&X).unwrap().log_prob;
    // The same as a prior configured with t0 = 0.1.
    let direct = ScorePrior::new(gaussian(), ScorePriorConfig::default().with_exact_trace().with_t0(0.1)).unwrap();
    assert_eq!(at_01, direct.log_prob(&X).unwrap().log_prob);
    assert_ne!(at_1e3, at_01);
    for bad in [0.0, -1.0, 1.0, 2.0, f64::NAN] {
        assert!(p.set_time_floor(bad).is_err(), "floor {bad} must be refused");
    }
    // Editing the configuration replaces the floor.
    p.config_mut().t0 = 1e-3;
    assert_eq!(p.time_floor(), Some(1e-3));
    assert_eq!(p.log_prob(&X).unwrap().log_prob, at_1e3);
    // Closed-form priors have no floor.
    let g = GaussianPrior::from_gaussian(gaussian());
    assert_eq!(g.time_floor(), None);
    assert!(g.set_time_floor(0.1).is_err());
    // The kinds a caller can act on.
    use scoreprior_core::Error;
    assert!(matches!(g.set_time_floor(0.1), Err(Error::Unsupported(_))));
    match p.set_time_floor(2.0) {
        Err(Error::OutOfRange { value, .. }) => assert_eq!(value, 2.0),
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    let cfg = scoreprior_core::dpi::DpiConfig { lr: -1.0, ..Default::default() };
    match cfg.validate() {
        Err(Error::OutOfRange { what, value, .. }) => assert_eq!((what.as_str(), value), ("DPI learning rate", -1.0)),
        other => panic!("expected OutOfRange, got {other:?}"),
    }
}

#[test]
fn dsm_bound_and_tv_are_priors_and_prior_energy_negates_them() {
    let dsm = DsmBoundPrior::new(Arc::new(gaussian()), AnySde::Vp(VpSde::default()), 1e-3, 4).unwrap();
    // Fixed draws without an RNG: reproducible.
    assert_eq!(dsm.grad_log_prob(&X).unwrap(), dsm.grad_log_prob(&X).unwrap());
    assert_eq!(dsm.log_prob(&X).unwrap().log_prob, dsm.grad_log_prob(&X).unwrap().log_prob);
    let from_rng = dsm.grad_log_prob_with(&X, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    let (mut e, mut g) = (vec![0.0; 2], vec![0.0; 6]);
    PriorEnergy::new(&dsm).energy_and_grad(&X, &mut ChaCha8Rng::seed_from_u64(3), &mut e, &mut g).unwrap();
    assert_eq!(e, from_rng.log_prob.iter().map(|v| -v).collect::<Vec<_>>());
    assert_eq!(g, from_rng.grad.iter().map(|v| -v).collect::<Vec<_>>());
    // The energy forwards the prior's time floor.
    let energy = PriorEnergy::new(&dsm);
    energy.set_time_floor(0.05).unwrap();
    assert_eq!(dsm.time_floor(), Some(0.05));

    let tv = TotalVariation::new(2, 3, 0.7, 1e-3).unwrap();
    let r = tv.grad_log_prob(&X).unwrap();
    let mut gv = vec![0.0; 6];
    let v = tv.value_and_grad(&X, &mut gv);
    assert_eq!(r.log_prob, vec![-v]);
    assert_eq!(r.grad, gv.iter().map(|v| -v).collect::<Vec<_>>());
    assert!(tv.grad_log_prob(&X[..5]).is_err(), "a batch of the wrong shape");
}
