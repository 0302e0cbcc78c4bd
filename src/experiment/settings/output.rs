//! What a DPI run draws and writes, and where: the number of posterior samples, the outlier
//! filter on them, the checkpoint cadence, and how an output folder that holds a run is
//! treated (resumed, moved aside, or refused).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `dpi`: samples, checkpoints and the output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct OutputOptions {
    /// Posterior samples drawn after training.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = OutputOptions::default().samples))]
    pub samples: usize,
    /// Outlier filter: drop samples with any |pixel| above this.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = OutputOptions::default().outlier))]
    pub outlier: f64,
    /// Checkpoint every this many steps.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = OutputOptions::default().checkpoint_every))]
    pub checkpoint_every: usize,
    /// Resume from OUT/checkpoint.safetensors if present.
    #[cfg_attr(feature = "cli", arg(long))]
    pub resume: bool,
    /// Start over in an --out that holds a previous run: its files are moved to
    /// OUT.old-N first (never mixed with the new run's).
    #[cfg_attr(feature = "cli", arg(long))]
    pub force: bool,
    /// Hide the progress bar.
    #[cfg_attr(feature = "cli", arg(long))]
    pub quiet: bool,
    /// Output folder.
    #[cfg_attr(feature = "cli", arg(long, required = true))]
    pub out: PathBuf,
}

impl Default for OutputOptions {
    fn default() -> Self {
        Self {
            samples: 128,
            outlier: 2.0,
            checkpoint_every: 100,
            resume: false,
            force: false,
            quiet: false,
            out: PathBuf::new(),
        }
    }
}
