//! Explicit Runge–Kutta integration of `dy/dt = f(t, y)`.
//!
//! A solve is four swappable pieces, as in diffrax: a [`VectorField`] `f`, a solver given
//! as data (a [`Tableau`], declared with `#[butcher_tableau]` and run by the one generic
//! stepper in [`integrate`]), a [`StepSizeController`] ([`ConstantStepSize`] or
//! [`PidController`]) and a state type implementing [`State`]. One step computes
//! `k_i = f(t + c_i h, y + h Σ_j a_ij k_j)`, `y1 = y + h Σ b_i k_i` and the error
//! estimate `h Σ (b_i − b̂_i) k_i`.

pub mod controller;
pub mod integrate;
pub mod solvers;
pub mod state;
pub mod tableau;
pub mod test_models;
pub mod trees;

pub use controller::{
    ConstantStepSize, Controller, PidController, StepDecision, StepSizeController, StepTo, DEFAULT_DT0,
};
pub use integrate::{solve, SaveAt, Solution, SolveOptions, Stats, VectorField};
pub use solvers::*;
pub use state::{Real, State, Unnormed};
pub use tableau::{ExplicitRk, Tableau};
