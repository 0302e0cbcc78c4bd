// Rule: parameters are written `key = value`.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [subsample(2)], noise = gaussian(sigma = 0.05))]
pub struct Positional;

fn main() {}
