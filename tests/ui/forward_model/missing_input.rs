// Rule: `input = [C, H, W]` is required (the output shape is computed from it).
use scoreprior_core::forward::forward_model;

#[forward_model(ops = [identity], noise = gaussian(sigma = 0.05))]
pub struct NoInput;

fn main() {}
