//! The paper's comparative studies as library calls: each takes its settings, runs, and
//! returns a value that writes its table (CSV + Markdown) and figures into a folder.
//!
//! - [`posterior2d`]: DPI against Score-ALD, DPS and SDE+Proj on 2-D posteriors known in
//!   closed form (supplement Fig. 5, main Fig. 4), KL divergences from KDEs on a grid.
//! - [`eht`]: closure-quantity DPI under score priors side by side with eht-imaging's RML
//!   imager on the same observations of a ring, a crescent and a double blob.
//! - [`restoration`]: denoising and deblurring of test images by DPI and the diffusion-based
//!   samplers against the closed-form Gaussian floor (supplement Fig. 3, A.2).
//! - [`calibration`]: observed against nominal coverage of DPI's credible intervals (per pixel,
//!   and of ring diameter, width and position angle) over many EHT or denoising problems.

pub mod calibration;
mod contours;
pub mod eht;
mod kde;
mod mix2;
pub mod posterior2d;
pub mod restoration;

pub use kde::{kde_log_density, kl_on_grid, normalise_log, Bandwidth, Grid};
pub use mix2::{log_sum_exp, Mixture2};
