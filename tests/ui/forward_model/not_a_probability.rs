// Rule: a probability parameter (the kept fraction of `mask`) lies in (0, 1].
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [mask(keep = 1.5)], noise = gaussian(sigma = 0.05))]
pub struct KeepTooMuch;

fn main() {}
