// A user declares a solver in their own crate, with prelude names shadowed to check that
// the expansion uses absolute paths, and runs it through the shipped integrator: SSPRK3
// (Shu–Osher) with a constant step, and an adaptive 3(2) pair written with `b_error`.
#![allow(dead_code, non_camel_case_types)]

use scoreprior_core::butcher_tableau;
use scoreprior_core::ode::{solve, ConstantStepSize, ExplicitRk, PidController, SolveOptions};

// Shadow what generated code must not rely on.
struct Option;
struct Some;
struct None;
struct Tableau;
mod core {}
type f64 = u8;

#[butcher_tableau(
    name = "SSPRK3",
    order = 3,
    c = [0, 1, 1/2],
    a = [[],
         [1],
         [1/4, 1/4]],
    b = [1/6, 1/6, 2/3],
)]
/// Shu and Osher's strong-stability-preserving third-order method.
pub struct Ssprk3;

#[butcher_tableau(
    order = 3,
    embedded_order = 2,
    c = [0, 1/2, 3/4, 1],
    a = [[],
         [0.5],
         [0, 0.75],
         [2/9, 1/3, 4/9]],
    b = [2/9, 1/3, 4/9, 0],
    b_error = [2/9 - 7/24, 1/3 - 1/4, 4/9 - 1/3, -1/8],
)]
struct MyBosh3;

fn main() {
    let tab = Ssprk3.tableau();
    assert_eq!((tab.name, tab.order, tab.stages(), tab.fsal), ("SSPRK3", 3, 3, false));
    assert_eq!(Ssprk3::default(), Ssprk3);
    let mut field = |_t: ::core::primitive::f64, y: &Vec<::core::primitive::f64>, dy: &mut Vec<::core::primitive::f64>| {
        dy[0] = -2.0 * y[0];
    };
    let exact = (-2.0f64).exp();
    let sol = solve(&mut field, &Ssprk3, &mut ConstantStepSize::new(0.01), 0.0, 1.0, &vec![1.0], &SolveOptions::default())
        .unwrap();
    assert!((sol.y[0] - exact).abs() < 1e-5);
    assert!(MyBosh3::TABLEAU.fsal);
    let sol = solve(&mut field, &MyBosh3, &mut PidController::new(1e-8, 1e-10), 0.0, 1.0, &vec![1.0], &SolveOptions::default())
        .unwrap();
    assert!((sol.y[0] - exact).abs() < 1e-6);
}
