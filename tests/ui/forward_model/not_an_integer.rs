// Rule: sizes are integers.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [box_blur(size = 4.5)], noise = gaussian(sigma = 0.05))]
pub struct HalfPixel;

fn main() {}
