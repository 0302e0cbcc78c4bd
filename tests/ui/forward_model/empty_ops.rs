// Rule: `ops` lists at least one primitive (use `identity` for denoising).
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [], noise = gaussian(sigma = 0.05))]
pub struct NoPrimitive;

fn main() {}
