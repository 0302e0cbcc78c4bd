// Rule: a subsample / avg_pool factor must divide the image size at that point of the chain.
// 32×32 after the blur, factor 3: the error points at the literal `3`.
use scoreprior_core::forward::forward_model;

#[forward_model(
    input = [1, 32, 32],
    ops = [gaussian_blur(sigma = 1.5, size = 9), subsample(factor = 3)],
    noise = gaussian(sigma = 0.05),
)]
pub struct BlurDown;

fn main() {}
