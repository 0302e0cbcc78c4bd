// The embedded weights can be given as `b_hat` or as `b_error = b - b_hat`, not both.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 2, embedded_order = 1, c = [0, 1], a = [[], [1]], b = [1/2, 1/2], b_hat = [0, 1],
                  b_error = [1/2, -1/2])]
pub struct HeunTwice;

fn main() {}
