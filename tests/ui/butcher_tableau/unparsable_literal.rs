// Coefficients must be exact numbers: not a float with a type suffix, a function call or
// a string. All three are reported in one compile.
use scoreprior_core::butcher_tableau;

#[butcher_tableau(
    order = 2,
    c = [0, 0.5f32],
    a = [[],
         [f64::sqrt(0.25)]],
    b = ["1/2", 1/2],
)]
pub struct NotANumber;

fn main() {}
