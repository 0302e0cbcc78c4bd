//! Diffusion-based posterior samplers that the paper compares DPI against: each draws
//! approximate samples of `p(x|y) ∝ p(y|x) p(x)` from a score model `s(x, t) ≈ ∇ log p_t(x)`
//! and a forward model, with no density of its own (so, unlike DPI, no `log q`).
//!
//! - [`ScoreAld`]: annealed Langevin dynamics with an annealed likelihood (Jalal et al. 2021).
//! - [`Dps`]: reverse diffusion with a gradient step through Tweedie's estimate (Chung et al. 2023).
//! - [`SdeProj`]: reverse diffusion with a relaxed projection onto the noisy measurement's
//!   affine set (Song et al. 2022).

mod dps;
mod score_ald;
mod sde_proj;

pub use dps::Dps;
pub use score_ald::ScoreAld;
pub use sde_proj::SdeProj;
