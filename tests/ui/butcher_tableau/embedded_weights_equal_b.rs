// Rule: the embedded weights differ from `b` (else the error estimate b − b_hat is always 0).
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 2,
    embedded_order = 1,
    c = [0, 1],
    a = [[], [1]],
    b = [1/2, 1/2],
    b_hat = [1/2, 1/2],
)]
pub struct NoEstimate;

fn main() {}
