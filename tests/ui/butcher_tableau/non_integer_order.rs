// Rule: `order` is a positive integer literal.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 2.5,
    c = [0, 1],
    a = [[], [1]],
    b = [1/2, 1/2],
)]
pub struct HalfOrder;

fn main() {}
