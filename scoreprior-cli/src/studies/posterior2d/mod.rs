//! The 2-D posterior study (supplement Fig. 5, main Fig. 4): DPI under the exact score-based
//! prior (PF-ODE, exact trace) against Score-ALD, DPS, SDE+Proj, DAPS and PnP-DM, all on the
//! same exact score, for `y = aᵀx + n` with a Gaussian prior (low and high noise) and the
//! reference two-component mixture. The true posterior is a Gaussian mixture in closed form
//! ([`Mixture2::posterior`]).
//!
//! Each method's samples become a density on a grid by a KDE ([`kde_log_density`]) with
//! Scott's rule and with a fixed 0.03 kernel; `KL(p‖q)` and `KL(q‖p)` on the grid. DPI also has
//! its own density: `KL(q‖p) = E_q[log q − log p]` over its samples and `KL(p‖q)` on the grid
//! from `log q`. Each baseline's knob (Score-ALD's step, DPS's ζ′, SDE+Proj's λ, DAPS's first
//! Langevin step `η₀`, PnP-DM's decay of `ρ`) is chosen by a grid search on the
//! low-noise Gaussian case by the symmetrised KL (Scott), then reused unchanged for high noise
//! (as the paper did); the mixture case is searched on itself (with the 0.03 kernel). A row
//! "exact samples" puts samples of the true posterior through the same KDE: the floor the KDE
//! itself sets. DAPS runs with one Tweedie step as its clean estimate (`ode_steps = 0`; the
//! reference's 5-step ODE estimate widens the prior-dominated directions), PnP-DM with its
//! exact likelihood step, one sample (the last iterate) per chain.
//!
//! - `case.rs`: the three cases ([`Case`]) and the methods ([`Method`]);
//! - `settings.rs`: [`StudySettings`], their checks and the folder's manifest;
//! - `study.rs`: the samplers, the KDE divergences and [`run`], returning a [`Study`];
//! - `output.rs`: the study's tables, samples and contour figures ([`Study::write`]).
//!
//! [`Mixture2::posterior`]: super::Mixture2::posterior
//! [`kde_log_density`]: super::kde_log_density

mod case;
mod output;
mod settings;
mod study;

pub use case::{Case, Method};
pub use settings::StudySettings;
pub use study::{run, Row, SearchRow, Study};
