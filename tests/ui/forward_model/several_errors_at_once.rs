// Rule: independent mistakes are reported together, in one compile (here a non-integer size,
// an unknown boundary and a fraction above 1; each rule alone has its own case).
use scoreprior_core::forward::forward_model;

#[forward_model(
    input = [1, 32, 32],
    ops = [gaussian_blur(sigma = 1.5, size = 4.5, boundary = mirror), mask(keep = 1.5)],
    noise = gaussian(sigma = 0.05),
)]
pub struct WrongKinds;

fn main() {}
