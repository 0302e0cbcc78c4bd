// Rule: `c` lists at least one node.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 1,
    c = [],
    a = [],
    b = [],
)]
pub struct NoStages;

fn main() {}
