// Bosh3 with its embedded pair claimed to be of order 3 (it is of order 2).
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 3,
    embedded_order = 3,
    c = [0, 1/2, 3/4, 1],
    a = [[],
         [1/2],
         [0, 3/4],
         [2/9, 1/3, 4/9]],
    b = [2/9, 1/3, 4/9, 0],
    b_hat = [7/24, 1/4, 1/3, 1/8],
)]
pub struct Bosh3Embedded3;

fn main() {}
