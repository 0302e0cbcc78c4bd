// Rule: a primitive without parameters (`fft2`) rejects any, and says it takes none.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [fft2(norm = 1)], noise = complex_gaussian(sigma = 0.05))]
pub struct NormedFft;

fn main() {}
