// Euler's method claimed to be of order 2: the order-1 condition holds, so the error is on
// the claimed order and names the first failing order-2 tree.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 2, c = [0], a = [[]], b = [1])]
pub struct EulerIsNotSecondOrder;

fn main() {}
