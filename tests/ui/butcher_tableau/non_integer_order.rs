// Rule: `order` is a positive integer literal.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 2.5, c = [0], a = [[]], b = [1])]
pub struct HalfOrder;

fn main() {}
