// Rule: factors are positive integers; 0 is rejected at the literal.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [avg_pool(factor = 0)], noise = gaussian(sigma = 0.05))]
pub struct ZeroFactor;

fn main() {}
