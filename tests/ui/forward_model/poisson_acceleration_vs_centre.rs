// Rule: a Poisson-disc mask keeps H·W/acceleration = 16 samples here, fewer than its fully
// sampled 8×8 centre.
use scoreprior_core::forward::forward_model;

#[forward_model(
    input = [1, 16, 16],
    ops = [fft2, poisson_mask(acceleration = 16, center = 8)],
    noise = complex_gaussian(sigma = 0.05),
)]
pub struct TooFewSamples;

fn main() {}
