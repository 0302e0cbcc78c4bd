// Row 3 of `a` sums to 1/2 + 1/4 = 3/4, but the node c_3 says 1/2: the error is spanned
// on the offending row.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 1,
    c = [0, 1/2, 1/2],
    a = [[],
         [1/2],
         [1/2, 1/4]],
    b = [1, 0, 0],
)]
pub struct RowSum;

fn main() {}
