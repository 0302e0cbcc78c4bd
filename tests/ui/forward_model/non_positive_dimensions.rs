// Rule: the image dimensions are positive integers.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 0, 32], ops = [identity], noise = gaussian(sigma = 0.05))]
pub struct EmptyImage;

fn main() {}
