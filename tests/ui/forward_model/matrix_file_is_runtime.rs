// Rule: `matrix(file = …)` reads its size from a file at run time, so a compile-time
// forward model cannot use it; the error points at `matrix` and says what to use instead.
use scoreprior_core::forward::forward_model;

#[forward_model(
    input = [1, 8, 8],
    ops = [matrix(file = "A.npy")],
    noise = gaussian(sigma = 0.05),
)]
pub struct MyMatrix;

fn main() {}
