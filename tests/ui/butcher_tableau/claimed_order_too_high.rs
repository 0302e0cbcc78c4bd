// The classical RK4 tableau claimed to be of order 5: every condition up to order 4
// holds, so the error is on the claimed order and names the first failing order-5 tree.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 5,
    c = [0, 1/2, 1/2, 1],
    a = [[],
         [1/2],
         [0, 1/2],
         [0, 0, 1]],
    b = [1/6, 1/3, 1/3, 1/6],
)]
pub struct Rk4IsNotFifthOrder;

fn main() {}
