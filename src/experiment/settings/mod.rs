//! A `scoreprior dpi` run as plain data: [`DpiSettings`] holds every setting of the command,
//! grouped as its `--help` groups them, with the command's defaults (declared once, in each
//! group's `Default`). With the `cli` feature the same types are the command line's flags
//! (`x_true` is `--x-true`); the run manifest is their serde value. [`DpiSettings::build`]
//! checks them (errors name each setting by its path, `prior.time_floor`) and builds the
//! [`Experiment`]. The application (`scoreprior-cli`) adds the run folder: the manifest, the
//! lock, the outputs.
//!
//! [`Experiment`]: super::Experiment

mod fit;
mod output;
mod prior;
mod problem;

use serde::{Deserialize, Serialize};

pub use fit::{DataRamp, FlowOptions, LaplaceMode, ObjectiveOptions, OptimOptions};
pub use output::OutputOptions;
pub use prior::{PriorKind, PriorOptions, SolveOptions};
pub use problem::{EhtData, ProblemOptions};

/// Everything that defines a `scoreprior dpi` run (with the `cli` feature, also its flags).
///
/// ```
/// use scoreprior::experiment::{DpiSettings, PriorKind};
///
/// let mut s = DpiSettings::default();
/// s.problem.x_true = Some("assets/fashion16_test.npy".into());
/// s.prior.prior = PriorKind::Gaussian;
/// s.optim.steps = 5;
/// let (experiment, _prior_file) = s.build().unwrap();
/// assert_eq!(experiment.y().len(), 256);
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[serde(default)]
pub struct DpiSettings {
    /// The prior `p(x)` and how its log-density is estimated.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub prior: PriorOptions,
    /// The measurement: forward model, noise, data, truth or `y`, constraints on the image.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub problem: ProblemOptions,
    /// Adam's schedule.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub optim: OptimOptions,
    /// The RealNVP posterior family, its starting point and the MAP warm start.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub flow: FlowOptions,
    /// Weights and schedules of the loss terms.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub objective: ObjectiveOptions,
    /// Samples, checkpoints and the output folder.
    #[cfg_attr(feature = "cli", command(flatten))]
    pub output: OutputOptions,
    /// Seed of the measurement noise, the flow and the optimisation.
    #[cfg_attr(feature = "cli", arg(long, default_value_t = 0))]
    pub seed: u64,
}

/// The command line's parser of a value among `names` (listed in `--help`), read by its
/// `FromStr`: the flag and the library accept the same names.
#[cfg(feature = "cli")]
pub(crate) fn names<T>(names: &'static [&'static str]) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = scoreprior_core::Error> + Clone + Send + Sync + 'static,
{
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names).try_map(|s| s.parse::<T>())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serde value reads back as the same settings (what the studies' `settings.json`
    /// files hold).
    #[test]
    fn settings_round_trip_through_json() {
        let mut s = DpiSettings::default();
        s.prior.prior = PriorKind::Flow("f.safetensors".into());
        s.problem.data = EhtData::ClosuresAndAmplitudes;
        s.objective.anneal_data_schedule = DataRamp::Sigmoid;
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""prior":"flow:f.safetensors""#) && text.contains(r#""data":"closures+amplitudes""#));
        assert_eq!(serde_json::from_str::<DpiSettings>(&text).unwrap(), s);
    }
}
