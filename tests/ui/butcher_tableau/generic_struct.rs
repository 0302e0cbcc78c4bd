// Rule: the struct cannot be generic (the tableau is one constant).
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 1,
    c = [0],
    a = [[]],
    b = [1],
)]
pub struct Generic<const N: usize>;

fn main() {}
