// RK4 with b_2 and b_4 swapped: the weights still sum to one but the order-2 and order-3
// conditions fail, each reported with its tree and residual on `b`.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 4,
    c = [0, 1/2, 1/2, 1],
    a = [[],
         [1/2],
         [0, 1/2],
         [0, 0, 1]],
    b = [1/6, 1/6, 1/3, 1/3],
)]
pub struct BrokenRk4;

fn main() {}
