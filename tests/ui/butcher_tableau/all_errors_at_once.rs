// Independent mistakes are reported together, in one compile: a bad row sum, an
// unreadable coefficient and a weight vector of the wrong length.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 2,
    embedded_order = 1,
    c = [0, 2/3, 1],
    a = [[],
         [1/2],
         [0, one]],
    b = [1/4, 3/4, 0],
    b_error = [1/4, -1/4],
)]
pub struct ManyMistakes;

fn main() {}
