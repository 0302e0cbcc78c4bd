// Rule: a Cartesian mask keeps H·W/acceleration samples, i.e. 256/16 = 16 = one row of a
// 16×16 k-space: fewer rows than its fully sampled centre of 8.
use scoreprior_core::forward::forward_model;

#[forward_model(
    input = [1, 16, 16],
    ops = [fft2, cartesian_mask(acceleration = 16, center = 8)],
    noise = complex_gaussian(sigma = 0.05),
)]
pub struct TooFewRows;

fn main() {}
