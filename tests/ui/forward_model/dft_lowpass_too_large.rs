// Rule: the kept `k × k` block of `dft_lowpass` must fit in the image.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [dft_lowpass(k = 40)], noise = complex_gaussian(sigma = 0.05))]
pub struct BigBlock;

fn main() {}
