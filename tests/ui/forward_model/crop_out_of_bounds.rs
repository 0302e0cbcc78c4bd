// Rule: a crop window must lie inside the image: rows 8..38 of a 32-row image do not.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 32, 32], ops = [crop(top = 8, left = 0, height = 30, width = 10)], noise = gaussian(sigma = 0.05))]
pub struct OutsideCrop;

fn main() {}
