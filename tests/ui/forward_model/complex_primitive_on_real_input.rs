// Rule: `ifft2` and `magnitude` take split complex data (an even channel count), i.e. the
// output of `fft2`, not a real 1-channel image.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [magnitude], noise = gaussian(sigma = 0.05))]
pub struct NotComplex;

fn main() {}
