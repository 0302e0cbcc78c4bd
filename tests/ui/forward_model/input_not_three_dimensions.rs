// Rule: `input` is `[C, H, W]`, three numbers.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [32, 32], ops = [identity], noise = gaussian(sigma = 0.05))]
pub struct NoChannels;

fn main() {}
