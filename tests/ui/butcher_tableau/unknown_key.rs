// A misspelt key (`bhat` for `b_hat`) and a declared FSAL flag (FSAL is derived from the
// coefficients, never declared) are both unknown keys.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 2, embedded_order = 1, c = [0, 1], a = [[], [1]], b = [1/2, 1/2], bhat = [1, 0],
                  fsal = false)]
pub struct Typo;

fn main() {}
