// Three stages but two weights in `b`, and four in `b_hat`.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 1, embedded_order = 1, c = [0, 0, 0], a = [[], [0], [0, 0]], b = [1/2, 1/2],
                  b_hat = [1, 0, 0, 0])]
pub struct ShortB;

fn main() {}
