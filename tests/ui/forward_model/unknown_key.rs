// Rule: the keys are `input`, `ops` and `noise`; any other is an error naming them.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [identity], noise = gaussian(sigma = 0.05), seed = 3)]
pub struct ExtraKey;

fn main() {}
