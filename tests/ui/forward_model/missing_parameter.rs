// Rule: required parameters must be given; the error spans the whole primitive call.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [subsample], noise = gaussian(sigma = 0.05))]
pub struct NoFactor;

fn main() {}
