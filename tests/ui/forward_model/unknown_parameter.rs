// Rule: parameters must be ones the primitive takes; the error lists the valid ones.
use scoreprior_core::forward::forward_model;

#[forward_model(
    input = [1, 32, 32],
    ops = [gaussian_blur(sigma = 1.5, width = 9)],
    noise = gaussian(sigma = 0.05),
)]
pub struct WrongKey;

fn main() {}
