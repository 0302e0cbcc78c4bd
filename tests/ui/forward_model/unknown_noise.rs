// Rule: the noise is `gaussian` or `complex_gaussian`.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [identity], noise = poisson(sigma = 0.05))]
pub struct PoissonNoise;

fn main() {}
