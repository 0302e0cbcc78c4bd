//! # scoreprior-cli
//!
//! The application built on the `scoreprior` library: the `scoreprior` command (one
//! subcommand per file of `scoreprior-cli/src/cli/`), the paper's studies, training runs with checkpoints,
//! the SVG figures, and the run folders every command writes (the output guard, one run per
//! folder at a time, `run.json` manifests so that a resume never mixes two runs).
//!
//! A program that only needs posteriors depends on `scoreprior` alone; this crate is what the
//! command line and the studies add on top.

pub mod baseline_run;
pub mod dpi_run;
pub mod eht_image;
pub mod gaussian_fit;
pub mod plot;
pub mod run_folder;
pub mod solver_study;
pub mod studies;
pub mod trace_study;
pub mod training;
