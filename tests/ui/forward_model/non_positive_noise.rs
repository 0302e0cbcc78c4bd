// Rule: the noise level must be positive; zero and negative values are rejected at the literal.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [identity], noise = gaussian(sigma = 0.0))]
pub struct ZeroNoise;

#[forward_model(input = [1, 32, 32], ops = [fft2], noise = complex_gaussian(sigma = -0.1))]
pub struct NegativeNoise;

fn main() {}
