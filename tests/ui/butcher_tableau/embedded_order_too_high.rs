// Heun's method with the embedded Euler weights claimed to be of order 2 (they are of order 1).
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 2, embedded_order = 2, c = [0, 1], a = [[], [1]], b = [1/2, 1/2], b_hat = [1, 0])]
pub struct HeunEmbedded2;

fn main() {}
