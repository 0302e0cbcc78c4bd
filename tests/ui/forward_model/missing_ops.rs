// Rule: `ops = [...]` is required.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], noise = gaussian(sigma = 0.05))]
pub struct NoOps;

fn main() {}
