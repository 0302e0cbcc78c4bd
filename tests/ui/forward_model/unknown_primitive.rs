// Rule: every primitive must be one the library knows; the error names the known ones.
use scoreprior_core::forward::forward_model;

#[forward_model(
    input = [1, 32, 32],
    ops = [gaussian_blur(sigma = 1.5, size = 9), downsample(factor = 2)],
    noise = gaussian(sigma = 0.05),
)]
pub struct Typo;

fn main() {}
