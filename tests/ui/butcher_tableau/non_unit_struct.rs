// The macro declares a method, which carries no data: it only accepts unit structs.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(order = 1, c = [0], a = [[]], b = [1])]
pub struct Stateful {
    pub steps: usize,
}

fn main() {}
