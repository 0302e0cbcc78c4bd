//! The shipped solvers, each declared with `#[butcher_tableau]`.
