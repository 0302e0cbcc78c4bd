// Rule: a convolution kernel may not be larger than the image it is applied to. After
// subsampling 16×16 by 4 the image is 4×4, and the 9×9 kernel does not fit.
use scoreprior_core::forward::forward_model;

#[forward_model(
    input = [1, 16, 16],
    ops = [subsample(factor = 4), gaussian_blur(sigma = 1.5, size = 9)],
    noise = gaussian(sigma = 0.05),
)]
pub struct TooBig;

fn main() {}
