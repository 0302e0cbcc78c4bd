// Rule: coefficients are integers, decimals and fractions, combined with + - * /; `%` is not
// one of them.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 1,
    c = [0, 1],
    a = [[], [1]],
    b = [1/2, 3 % 2],
)]
pub struct Modulo;

fn main() {}
