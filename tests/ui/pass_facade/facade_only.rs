// A user crate that writes only `use scoreprior::prelude::*;` (no `scoreprior_core` in
// sight) declares a solver and a forward model and uses both. The generated code must name
// the run-time crate by a path this crate has; `tests/external-crate` checks the same from
// a crate whose manifest lists nothing but the (renamed) facade.
use scoreprior::prelude::*;

#[butcher_tableau(order = 3, c = [0, 1/2, 3/4], a = [[], [1/2], [0, 3/4]], b = [2/9, 1/3, 4/9])]
/// Ralston's third-order method.
pub struct Ralston3;

#[forward_model(input = [1, 2, 4], ops = [scale(factor = 2), avg_pool(factor = 2)], noise = gaussian(sigma = 0.1))]
pub struct ScalePool;

fn main() {
    // One step h = 1 of y' = y from y = 1: any 3-stage third-order method gives the cubic
    // Taylor polynomial 1 + 1 + 1/2 + 1/6 = 8/3.
    let mut f = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| dy[0] = y[0];
    let sol = solve(&mut f, &Ralston3, &mut ConstantStepSize::new(1.0), 0.0, 1.0, &vec![1.0], &SolveOptions::default())
        .unwrap();
    assert!((sol.y[0] - 8.0 / 3.0).abs() < 1e-14, "{}", sol.y[0]);
    assert_eq!(Ralston3.tableau().order, 3);

    // 2 × the means of the 2×2 blocks of [[1, 2, 3, 4], [5, 6, 7, 8]].
    assert_eq!(ScalePool::OUTPUT_SHAPE, [1, 1, 2]);
    let y = ScalePool.forward(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).unwrap();
    assert_eq!(y, vec![7.0, 11.0]);
}
