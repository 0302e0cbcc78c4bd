// Rule: each parameter of a primitive is given once.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [subsample(factor = 2, factor = 4)], noise = gaussian(sigma = 0.05))]
pub struct TwoFactors;

fn main() {}
