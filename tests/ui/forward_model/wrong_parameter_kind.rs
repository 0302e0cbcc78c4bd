// Rule: each parameter has a kind: sizes and factors are integers, probabilities lie in
// (0, 1], boundaries are `zero`, `reflect` or `circular`. All three errors are reported at once.
use scoreprior_core::forward::forward_model;

#[forward_model(
    input = [1, 32, 32],
    ops = [gaussian_blur(sigma = 1.5, size = 4.5, boundary = mirror), mask(keep = 1.5)],
    noise = gaussian(sigma = 0.05),
)]
pub struct WrongKinds;

fn main() {}
