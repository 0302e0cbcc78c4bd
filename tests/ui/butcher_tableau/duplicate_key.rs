// A key given twice.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 1, c = [0], a = [[]], b = [1], order = 2)]
pub struct Twice;

fn main() {}
