// Rule: `order` lies between 1 and the largest order the macro checks.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 0, c = [0], a = [[]], b = [1])]
pub struct OrderZero;

fn main() {}
