// Euler's method claimed to be of order 4: its weight sums to one but every condition of
// orders 2 to 4 fails, each reported with its tree and residual on `b` (the first six, then
// a count).
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 4, c = [0], a = [[]], b = [1])]
pub struct EulerIsNotFourthOrder;

fn main() {}
