// Rule: each key is given once; the second `input` is the error.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], input = [1, 16, 16], ops = [identity], noise = gaussian(sigma = 0.05))]
pub struct TwoInputs;

fn main() {}
