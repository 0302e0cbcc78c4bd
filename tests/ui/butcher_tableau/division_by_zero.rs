// Rule: a coefficient fraction cannot divide by zero.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 1,
    c = [0, 1],
    a = [[], [1]],
    b = [1/2, 1/0],
)]
pub struct ByZero;

fn main() {}
