// Rule: a coefficient fraction cannot divide by zero.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 1, c = [0], a = [[]], b = [1/0])]
pub struct ByZero;

fn main() {}
