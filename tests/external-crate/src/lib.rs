//! What a downstream crate does with the macros when its only dependency is the
//! `scoreprior` facade, here renamed `sp`: declare its own Runge–Kutta method and its own
//! measurement operator, then run them through the shipped integrator and model code. That
//! it compiles at all shows the expansions reach `scoreprior-core` as `::sp::core`; the
//! tests check the numbers against values worked out by hand.

use sp::prelude::*;

#[butcher_tableau(order = 3, c = [0, 1/2, 3/4], a = [[], [1/2], [0, 3/4]], b = [2/9, 1/3, 4/9])]
/// Ralston's third-order method (no embedded pair: constant steps).
pub struct Ralston3;

#[butcher_tableau(
    name = "HeunEulerFsal",
    order = 2,
    embedded_order = 1,
    c = [0, 1, 1],
    a = [[], [1], [1/2, 1/2]],
    b = [1/2, 1/2, 0],
    b_hat = [1, 0, 0],
)]
/// Heun's method with the embedded Euler step and a third stage `f(t₁, y₁)`, so that the
/// tableau is FSAL; declared here to exercise the adaptive (embedded) path.
pub struct HeunEulerFsal;

#[forward_model(
    input = [1, 2, 4],
    ops = [scale(factor = 2), avg_pool(factor = 2)],
    noise = gaussian(sigma = 0.1),
)]
/// Doubles the image, then averages 2×2 blocks: `[1, 2, 4] → [1, 1, 2]`.
pub struct ScalePool;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_tableau_runs_in_the_shipped_integrator() {
        assert_eq!(Ralston3.tableau().order, 3);
        assert_eq!(Ralston3::TABLEAU.embedded_order, None);
        assert!(!Ralston3::TABLEAU.fsal);

        // One step h = 1 of y' = y, y(0) = 1: k₁ = 1, k₂ = 1 + ½·1 = 3/2,
        // k₃ = 1 + ¾·3/2 = 17/8, y₁ = 1 + 2/9 + (1/3)(3/2) + (4/9)(17/8) = 8/3
        // (the cubic Taylor polynomial, as for any 3-stage third-order method).
        let mut exp = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| dy[0] = y[0];
        let opts = SolveOptions::default();
        let sol = solve(&mut exp, &Ralston3, &mut ConstantStepSize::new(1.0), 0.0, 1.0, &vec![1.0], &opts).unwrap();
        assert!((sol.y[0] - 8.0 / 3.0).abs() < 1e-14, "{}", sol.y[0]);

        // y' = 3t², y(0) = 0: third-order quadrature (nodes 0, ½, ¾ with weights b) is
        // exact for quadratics, so two steps of ½ land on y(1) = 1.
        let mut cubic = |t: f64, _y: &Vec<f64>, dy: &mut Vec<f64>| dy[0] = 3.0 * t * t;
        let sol = solve(&mut cubic, &Ralston3, &mut ConstantStepSize::new(0.5), 0.0, 1.0, &vec![0.0], &opts).unwrap();
        assert!((sol.y[0] - 1.0).abs() < 1e-14, "{}", sol.y[0]);
    }

    #[test]
    fn user_embedded_pair_runs_adaptively() {
        assert_eq!(HeunEulerFsal::TABLEAU.name, "HeunEulerFsal");
        assert_eq!(HeunEulerFsal::TABLEAU.embedded_order, Some(1));
        // c₃ = 1, last row of a = b, b₃ = 0: FSAL is derived.
        assert!(HeunEulerFsal::TABLEAU.fsal);
        let mut exp = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| dy[0] = y[0];
        let sol = solve(
            &mut exp,
            &HeunEulerFsal,
            // Second order: a looser tolerance than a 3(2) pair needs for the same accuracy.
            &mut PidController::new(1e-7, 1e-10),
            0.0,
            1.0,
            &vec![1.0],
            &SolveOptions::default(),
        )
        .unwrap();
        assert!((sol.y[0] - 1f64.exp()).abs() < 1e-6, "{}", sol.y[0]);
    }

    #[test]
    fn user_forward_model_matches_hand_computation() {
        assert_eq!(ScalePool::INPUT_SHAPE, [1, 2, 4]);
        assert_eq!(ScalePool::OUTPUT_SHAPE, [1, 1, 2]);
        assert!(ScalePool::LINEAR);
        assert_eq!(ScalePool.input_dim(), 8);
        assert_eq!(ScalePool.output_dim(), 2);

        // Image rows [1, 2, 3, 4] and [5, 6, 7, 8]: block means (1+2+5+6)/4 = 3.5 and
        // (3+4+7+8)/4 = 5.5, doubled.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(ScalePool.forward(&x).unwrap(), vec![7.0, 11.0]);

        // Adjoint: y/4 spread over each block, doubled, so (1, 10) → 0.5 on the left block
        // and 5 on the right one.
        let at = ScalePool.adjoint(&[1.0, 10.0]).unwrap();
        assert_eq!(at, vec![0.5, 0.5, 5.0, 5.0, 0.5, 0.5, 5.0, 5.0]);
        // Linear, so the VJP at any x is the adjoint.
        assert_eq!(ScalePool.vjp(&x, &[1.0, 10.0]).unwrap(), at);
    }

    #[test]
    fn user_operator_runs_in_a_typed_experiment() {
        // The operator's input shape [1, 2, 4] is the prior's, checked by the types.
        let g = Gaussian::diagonal(vec![0.5; 8], &[0.04; 8], AnySde::Vp(VpSde::default())).unwrap();
        let prior = ShapedPrior::<1, 2, 4>::new(Prior::gaussian(g));
        let truth = vec![0.3, 0.4, 0.5, 0.6, 0.7, 0.6, 0.5, 0.4];
        let res = Experiment::typed(ScalePool, prior)
            .with_truth(truth)
            .steps(200)
            .batch(32)
            .samples(256)
            .build()
            .unwrap()
            .run()
            .unwrap();
        assert_eq!(res.report.steps, 200);
        assert_eq!(res.samples.x.len(), 256 * 8);
        // Two measurements of σ = 0.1 fit well: the data term ends near its expectation (1).
        let last = res.history.records.last().unwrap();
        assert!(last.data < 3.0, "{last:?}");
    }

    #[test]
    fn user_tableau_steps_the_adjoint_on_the_forward_grid() {
        // The adjoint on the forward grid takes any tableau, the user's Ralston3 (no embedded
        // pair) included: one step per forward step, 3 evaluations each against RK4's 4.
        use sp::core::prior::{Prior as _, ScorePrior};
        use sp::core::score::MarginalDensity as _;
        let g = Gaussian::diagonal(vec![0.5; 4], &[0.04; 4], AnySde::Vp(VpSde::default())).unwrap();
        let x = vec![0.3, 0.6, 0.5, 0.4];
        let mut exact = vec![0.0; 4];
        g.marginal_grad_log_prob(&x, 1e-3, &mut exact).unwrap();
        let base = ScorePriorConfig::default().with_exact_trace();
        assert_eq!(base.grid_solver.name, "RK4", "the default");
        let mut errors = Vec::new();
        for (solver, stages) in [(&Ralston3 as &dyn ExplicitRk, 3), (&Rk4, 4)] {
            // The exact terminal density: what remains is the solves' error.
            let prior =
                ScorePrior::new(g.clone(), base.clone().with_grid_solver(solver)).unwrap().with_exact_terminal(g.clone());
            let out = prior.grad_log_prob(&x).unwrap();
            let a = out.stats.adjoint;
            assert_eq!((a.rejected_steps, a.rhs_evaluations), (0, stages * a.accepted_steps));
            errors.push(out.grad.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max));
        }
        // Measured on the 7 forward steps: 0.126 (Ralston3) and 0.032 (RK4) against a gradient
        // of size 5 (Dopri5 steps: 0.0037); the third-order method is the less accurate one.
        assert!(errors[0] < 0.2 && errors[1] < 0.05 && errors[0] > 2.0 * errors[1], "{errors:?}");
    }

    #[test]
    fn the_uvfits_reader_from_outside() {
        // The M87 release file the workspace tests with: read through the facade alone.
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scoreprior-core/tests/data/eht-m87/SR1_M87_2017_101_hi_hops_netcal_StokesI.uvfits");
        let obs = sp::core::forward::interferometry::read_uvfits(&file).unwrap();
        assert_eq!(obs.records.len(), 8058);
        assert!(obs.source.contains("M87"), "{}", obs.source);
    }

    #[test]
    fn the_collaborations_preprocessing_from_outside() {
        use sp::core::forward::interferometry::{read_uvfits, Preprocessing};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scoreprior-core/tests/data/eht-m87");
        let bands: Vec<_> = ["lo", "hi"]
            .iter()
            .map(|b| read_uvfits(dir.join(format!("SR1_M87_2017_101_{b}_hops_netcal_StokesI.uvfits"))).unwrap())
            .collect();
        let pre = Preprocessing::eht2017().apply(&bands, &["lo".into(), "hi".into()]).unwrap();
        // ehtim's count after scan averaging and joining the bands.
        assert_eq!(pre.observation.records.len(), 439);
        assert!((pre.total_flux_jy.unwrap() - 1.2000129).abs() < 1e-6);
    }
}
