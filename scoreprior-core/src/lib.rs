//! # scoreprior-core
//!
//! The numerical heart of scoreprior: explicit Runge–Kutta solvers declared as data
//! (`#[butcher_tableau]`), a generic adaptive integrator, SDEs, score models and the
//! probability-flow log-density `log p0(x0) = log pT(xT) + ∫ div f̃(xt,t) dt`, forward
//! models `y = A(x) + n`, and the DPI algorithms over traits. Nothing here knows dfdx.

// The proc macros emit absolute paths into `::scoreprior_core`; this lets the crate use
// its own macros.
extern crate self as scoreprior_core;

/// Builder methods that each set one field (or a field of a field) and return `self`, written
/// `$(#[doc])* pub fn name(value: Type) => field.path;` inside an `impl`: the settings types of
/// the workspace have runs of them, and one definition keeps them alike. Exported for the
/// other crates of the workspace, not part of the documented API.
#[doc(hidden)]
#[macro_export]
macro_rules! setters {
    ($($(#[$attr:meta])* $vis:vis fn $name:ident($value:ident: $ty:ty) => $($field:ident).+;)*) => {
        $(
            $(#[$attr])*
            $vis fn $name(mut self, $value: $ty) -> Self {
                self.$($field).+ = $value;
                self
            }
        )*
    };
}

/// `NAMES`, `name()`, `Display` and `FromStr` of a fieldless enum from one table of its
/// variants' names (the names of run descriptions and of the command line), so that the four
/// cannot disagree. `FromStr` takes exactly a name; anything else is [`Error::unknown`] naming
/// `$what` and listing the names (`a, b or c`). Declared before the modules so that all of
/// them can use it.
macro_rules! named_variants {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The names of the variants, in declaration order.
            pub const NAMES: [&'static str; [$($name),+].len()] = [$($name),+];

            /// Its name, one of [`Self::NAMES`].
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::Error;
            fn from_str(s: &str) -> $crate::Result<Self> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err($crate::Error::unknown($what, other, $crate::error::one_of(&Self::NAMES))),
                }
            }
        }
    };
}

pub mod adjoint;
pub mod baselines;
pub mod denoise;
pub mod divergence;
pub mod dpi;
pub mod error;
pub mod forward;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod ode;
pub mod pf_ode;
pub mod prior;
/// The DSM-bound prior under its first path (now [`prior::dsm`]).
pub use prior::dsm as prior_dsm;
/// Total variation under its first path (now [`prior::tv`]).
pub use prior::tv as prior_tv;
pub mod score;
pub mod sde;
pub mod stats;

pub use error::{Error, Result};
pub use scoreprior_macros::butcher_tableau;

/// Helpers of the crate's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// The central difference `(f(x + h·e_k) − f(x − h·e_k)) / 2h`: the finite-difference
    /// reference the unit tests check analytic gradients against.
    pub(crate) fn central_difference(f: impl Fn(&[f64]) -> f64, x: &[f64], k: usize, h: f64) -> f64 {
        let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
        xp[k] += h;
        xm[k] -= h;
        (f(&xp) - f(&xm)) / (2.0 * h)
    }
}
