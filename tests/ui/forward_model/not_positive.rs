// Rule: a blur width is positive.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [gaussian_blur(sigma = -1.5, size = 9)], noise = gaussian(sigma = 0.05))]
pub struct NegativeBlur;

fn main() {}
