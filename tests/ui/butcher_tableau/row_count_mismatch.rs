// Rule: `a` has one row per node of `c`.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 1,
    c = [0, 1],
    a = [[], [1], [1/2, 1/2]],
    b = [1/2, 1/2],
)]
pub struct ExtraRow;

fn main() {}
