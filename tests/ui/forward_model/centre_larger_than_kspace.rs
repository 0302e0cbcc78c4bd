// Rule: the fully sampled centre of an MRI mask must fit in the k-space.
use scoreprior_core::forward::forward_model;

#[forward_model(
    input = [1, 16, 16],
    ops = [fft2, cartesian_mask(acceleration = 2, center = 20)],
    noise = complex_gaussian(sigma = 0.05),
)]
pub struct BigCentre;

fn main() {}
