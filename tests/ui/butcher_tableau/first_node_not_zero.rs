// Rule: c_1 = 0 for an explicit method (its row of `a` is empty, so its row sum is 0).
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 1,
    c = [1/2, 1/2],
    a = [[], [1/2]],
    b = [0, 1],
)]
pub struct ShiftedStart;

fn main() {}
