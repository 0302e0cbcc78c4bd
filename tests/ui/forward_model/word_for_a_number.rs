// Rule: numeric parameters take numbers, not words.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [scale(factor = two)], noise = gaussian(sigma = 0.05))]
pub struct Wordy;

fn main() {}
