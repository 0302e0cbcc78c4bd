//! Butcher tableaux as data: `c`, strictly lower-triangular `a`, weights `b` and the error
//! weights `b − b̂` of an embedded pair.
//!
//! ```text
//!  c_1 = 0 |
//!  c_2     | a_21
//!  c_3     | a_31  a_32
//!   ⋮      |  ⋮           ⋱
//!  c_s     | a_s1  a_s2  …  a_s,s-1
//!  --------+-------------------------
//!          | b_1   b_2   …  b_s        (order p)
//!          | e_1   e_2   …  e_s        e = b − b̂ (b̂ of order p̂)
//! ```
//! Tableaux are normally declared with `#[butcher_tableau]`, which checks every order
//! condition with exact rational arithmetic at compile time and derives FSAL.

/// The coefficients of an explicit Runge–Kutta method, in `f64`.
///
/// Built by `#[butcher_tableau]`; hand-built tableaux are accepted by the integrator too,
/// but only the macro checks them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tableau {
    /// Name of the method, e.g. `"Dopri5"`.
    pub name: &'static str,
    /// Classical order `p` of the solution weights `b`.
    pub order: u32,
    /// Order `p̂` of the embedded weights `b̂`, if the method has an error estimate.
    pub embedded_order: Option<u32>,
    /// Nodes `c_i`, one per stage (`c_1 = 0`).
    pub c: &'static [f64],
    /// Rows of the strictly lower-triangular matrix: row `i` has `i` entries (row 0 is empty).
    pub a: &'static [&'static [f64]],
    /// Solution weights `b_i`.
    pub b: &'static [f64],
    /// Error weights `e_i = b_i − b̂_i`, if the method is adaptive.
    pub b_error: Option<&'static [f64]>,
    /// First same as last: the last stage is evaluated at the new solution (`a_s = b`,
    /// `c_s = 1`), so it is the next step's first stage. Derived by the macro.
    pub fsal: bool,
    /// Tolerance the order conditions were checked to at compile time (0 = exactly).
    pub tolerance: f64,
}

impl Tableau {
    /// Number of stages `s`.
    pub const fn stages(&self) -> usize {
        self.c.len()
    }
    /// Whether the method has an embedded error estimate and so supports adaptive steps.
    pub const fn is_adaptive(&self) -> bool {
        self.b_error.is_some()
    }
    /// Right-hand-side evaluations per accepted step once FSAL reuse is counted.
    pub const fn evaluations_per_step(&self) -> usize {
        if self.fsal {
            self.c.len() - 1
        } else {
            self.c.len()
        }
    }
    /// The order with which the local error estimate scales, used by step-size control:
    /// `min(p, p̂) + 1` for an embedded pair of orders `p(p̂)`, and `p` for a method
    /// without an embedded estimate.
    ///
    /// diffrax computes the same number as `solver.order()` under its assumption `p̂ = p − 1`
    /// (Dopri5: 5, Bosh3: 3, Heun: 2); we derive it from the declared embedded order instead,
    /// so a user's pair with `p̂ = p` (or `p̂ < p − 1`) is controlled correctly too.
    pub fn error_order(&self) -> f64 {
        match self.embedded_order {
            Some(q) => (self.order.min(q) + 1) as f64,
            None => self.order as f64,
        }
    }
}

/// A Runge–Kutta method usable by [`crate::ode::solve`].
///
/// `#[butcher_tableau]` implements it for the unit struct it is placed on. It is object
/// safe, so solvers can be picked at run time (`&dyn ExplicitRk`).
pub trait ExplicitRk: Send + Sync {
    /// The method's coefficients.
    fn tableau(&self) -> &'static Tableau;
}

impl<T: ExplicitRk + ?Sized> ExplicitRk for &T {
    fn tableau(&self) -> &'static Tableau {
        (**self).tableau()
    }
}

impl ExplicitRk for &'static Tableau {
    fn tableau(&self) -> &'static Tableau {
        self
    }
}
