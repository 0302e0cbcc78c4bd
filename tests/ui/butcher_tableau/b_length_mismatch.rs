// Four stages but three weights in `b`, and five in `b_hat`.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 3,
    embedded_order = 2,
    c = [0, 1/2, 3/4, 1],
    a = [[],
         [1/2],
         [0, 3/4],
         [2/9, 1/3, 4/9]],
    b = [2/9, 1/3, 4/9],
    b_hat = [7/24, 1/4, 1/3, 1/8, 0],
)]
pub struct ShortB;

fn main() {}
