// Rule: a boundary is `zero`, `reflect` or `circular`.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [gaussian_blur(sigma = 1.5, size = 9, boundary = mirror)], noise = gaussian(sigma = 0.05))]
pub struct Mirror;

fn main() {}
