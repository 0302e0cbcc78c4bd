// Rule: `tolerance` (for published, rounded coefficients) lies in [1e-100, 1).
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 1,
    c = [0, 1],
    a = [[], [1]],
    b = [1/2, 1/2],
    tolerance = 2,
)]
pub struct LooseTolerance;

fn main() {}
