// Rule: every forward model needs a noise level (the likelihood is undefined without it).
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [identity])]
pub struct NoNoise;

fn main() {}
