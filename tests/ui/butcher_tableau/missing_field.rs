// `order` and `b` are required.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    c = [0, 1],
    a = [[],
         [1]],
)]
pub struct Incomplete;

fn main() {}
