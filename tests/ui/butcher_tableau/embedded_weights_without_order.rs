// Embedded weights need the order they are verified to.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 2, c = [0, 1], a = [[], [1]], b = [1/2, 1/2], b_hat = [1, 0])]
pub struct NoEmbeddedOrder;

fn main() {}
