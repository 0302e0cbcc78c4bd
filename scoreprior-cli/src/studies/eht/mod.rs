//! Black-hole imaging side by side with eht-imaging: for each source of
//! `benches/reference/ehtim_rml.py` (its truth, observation and RML image), DPI under each
//! score prior fits the *same* closure phases and log closure amplitudes, and both are
//! measured alike — reduced χ² of the closure data, normalised cross-correlation with the
//! truth and with the truth blurred to the nominal resolution (best integer shift, since
//! closures do not fix the position), REx-style ring diameter and width, wall time — and for
//! DPI the posterior spread and whether the (aligned) truth lies within two posterior
//! standard deviations — and InverseBench's black-hole measures: PSNR at the best integer
//! shift and blur PSNR at 10, 15 and 20 µas (images in [0, 1] with the truth's peak at 1), and
//! the closure χ² of the image at the observed flux with 1/χ² below 1.
//!
//! - `settings.rs`: the DPI settings ([`EhtDpiSettings`], [`ExactStage`]) and [`validate`];
//! - `reference.rs`: eht-imaging's outputs per source ([`ReferenceRun`]) and re-binning;
//! - `table.rs`: the measures of one image ([`EhtRow`]) and [`write_table`];
//! - `stage.rs`: one DPI stage (DSM surrogate, or exact PF-ODE prior) of a source and prior;
//! - `study.rs`: the whole study ([`run`]): plan and check every folder, run, draw the figures.

mod reference;
mod settings;
mod stage;
mod study;
mod table;

pub use reference::{bin_image, ReferenceRun};
pub use settings::{validate, EhtDpiSettings, ExactStage};
pub use study::run;
pub use table::{write_table, EhtRow};
