// Rule: `name` is a string literal.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(name = Euler, order = 1, c = [0], a = [[]], b = [1])]
pub struct Named;

fn main() {}
