// Row 2 of `a` carries a diagonal entry (an implicit method) and row 3 is missing one:
// explicit tableaux are strictly lower triangular, row i holding i - 1 entries.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 2,
    c = [0, 1/2, 1],
    a = [[],
         [1/4, 1/4],
         [1]],
    b = [0, 1, 0],
)]
pub struct Implicit;

fn main() {}
