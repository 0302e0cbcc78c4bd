//! A `scoreprior dpi` run as plain data: [`DpiSettings`] holds every setting of the command,
//! grouped as its `--help` groups them, with the command's defaults (declared once, in each
//! group's `Default`). With the `cli` feature the same types are the command line's flags
//! (`x_true` is `--x-true`); the run manifest is their serde value. [`DpiSettings::build`]
//! checks them (errors name each setting by its path, `prior.time_floor`) and builds the
//! [`Experiment`], [`DpiSettings::run`] also takes the output folder, trains, samples and
//! writes the results.
//!
//! [`Experiment`]: super::Experiment

mod fit;
mod output;
mod prior;
mod problem;

use std::path::Path;

use scoreprior_core::io::RunManifest;
use serde::{Deserialize, Serialize};

pub use fit::{DataRamp, FlowOptions, LaplaceMode, ObjectiveOptions, OptimOptions};
pub use output::OutputOptions;
pub use prior::{PriorKind, PriorOptions, SolveOptions};
pub use problem::{EhtData, ProblemOptions};

use super::inputs::resolve;
use super::Result;

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

/// Keys of the groups' serde values that [`DpiSettings::manifest`] leaves out of `config`:
/// `steps` (a resume may extend a run), the files recorded by content as inputs instead
/// (`mean`, `cov`, `y`, `x_true`), and the two settings recorded only where they apply
/// (`adjoint_steps` for PF-ODE priors, `laplace` when the Laplace start is on), so that runs
/// written before they existed still resume. The output group is not in `config` at all.
const NOT_IN_MANIFEST: [&str; 7] = ["steps", "mean", "cov", "y", "x_true", "laplace", "adjoint_steps"];

impl DpiSettings {
    /// What defines the run (compared on resume): data, forward model, prior, estimator, flow
    /// and optimiser, and the input files by content (`prior_file`, the resolved prior path
    /// [`build`](DpiSettings::build) returns, is hashed when it is a file). The steps (a resume
    /// may extend a run), samples, outlier threshold, checkpoint cadence and `quiet` may change
    /// between a run and its resume.
    ///
    /// ```no_run
    /// use scoreprior::experiment::DpiSettings;
    ///
    /// let s = DpiSettings::default();
    /// let (_, prior_file) = s.build()?;
    /// let manifest = s.manifest(&prior_file)?;
    /// assert_eq!(manifest.command, "dpi");
    /// # Ok::<(), scoreprior::experiment::ExperimentError>(())
    /// ```
    ///
    /// # Errors
    /// An input file cannot be read (for its hash).
    pub fn manifest(&self, prior_file: &Path) -> Result<RunManifest> {
        let (p, m, f) = (&self.prior, &self.problem, &self.flow);
        // The groups' serde values, flattened into one object; the output group is not the
        // run's definition. The input files are recorded by content below, not as paths
        // (which need not be UTF-8).
        let files_out = |p: &PriorOptions, m: &ProblemOptions| {
            let mut p = p.clone();
            (p.mean, p.cov) = Default::default();
            (p, ProblemOptions { x_true: None, y: None, ..m.clone() })
        };
        let (p_value, m_value) = files_out(p, m);
        let mut config = serde_json::Map::new();
        for group in [
            serde_json::to_value(&p_value),
            serde_json::to_value(&m_value),
            serde_json::to_value(&self.optim),
            serde_json::to_value(f),
            serde_json::to_value(&self.objective),
        ] {
            if let serde_json::Value::Object(g) = group.map_err(|e| super::ExperimentError::Settings(e.to_string()))? {
                config.extend(g);
            }
        }
        for key in NOT_IN_MANIFEST {
            config.remove(key);
        }
        config.insert("noise".into(), m.noise_or_default().into());
        let mut config = serde_json::Value::Object(config);
        // The adjoint rule only matters to the PF-ODE priors; recorded only for them, so that
        // the runs of other priors written before the setting existed still resume.
        if !p.surrogate && !matches!(p.prior, PriorKind::Gaussian | PriorKind::Tv | PriorKind::Flow(_)) {
            config["adjoint_steps"] = serde_json::json!(p.adjoint_steps);
        }
        // Recorded only when on, so that runs from before the Laplace start still resume.
        if f.laplace.resolve(f.map_steps > 0, m.is_eht()) {
            config["laplace"] = serde_json::json!(true);
        } else if let Some(c) = config.as_object_mut() {
            c.remove("laplace_scale");
        }
        let mut manifest = RunManifest::new("dpi", config).with_seed(self.seed);
        for (flag, path) in [("--x-true", &m.x_true), ("--y", &m.y)] {
            if let Some(path) = path {
                manifest = manifest.with_input(flag, &resolve(path))?;
            }
        }
        // The files the forward model reads (`matrix(file=…)`, `eht(obs=…)`): a resume must see
        // the same operator and observation, not only the same file names.
        for (k, file) in super::run_folder::forward_files(&m.forward).into_iter().enumerate() {
            let flag = if k == 0 { "--forward".to_string() } else { format!("--forward ({})", k + 1) };
            manifest = manifest.with_input(&flag, &resolve(&file))?;
        }
        if matches!(p.prior, PriorKind::Gaussian | PriorKind::GaussianOde) {
            manifest = manifest.with_input("--mean", &resolve(&p.mean))?.with_input("--cov", &resolve(&p.cov))?;
        } else if let PriorKind::Flow(file) = &p.prior {
            manifest = manifest.with_input("--prior", &resolve(file))?;
        } else if prior_file.is_file() {
            manifest = manifest.with_input("--prior", prior_file)?;
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest's `config` is the settings' serde value less [`NOT_IN_MANIFEST`]: the
    /// keys and the names of the enumerated settings are those of the runs written before the
    /// settings were typed, so that those runs still resume.
    #[test]
    fn manifest_keeps_the_keys_and_names_of_earlier_runs() {
        let mut s = DpiSettings::default();
        s.problem.x_true = Some("assets/fashion16_test.npy".into());
        let m = s.manifest(Path::new("gaussian-ode")).unwrap();
        let config = m.config.as_object().unwrap();
        let keys: Vec<&str> = config.keys().map(String::as_str).collect();
        let expected = [
            "adjoint_steps",
            "anneal_data",
            "anneal_data_from",
            "anneal_data_rate",
            "anneal_data_schedule",
            "atol",
            "batch",
            "batch_norm",
            "clip",
            "data",
            "dsm_antithetic",
            "dsm_draws",
            "dsm_stratified",
            "dsm_time_density",
            "flows",
            "flux",
            "flux_weight",
            "forward",
            "hidden",
            "index",
            "init_gaussian",
            "init_image",
            "init_level",
            "init_scale",
            "lr",
            "lr_final",
            "map_blur",
            "map_jitter",
            "map_rounds",
            "map_steps",
            "no_debias",
            "noise",
            "positive",
            "prior",
            "probes",
            "rtol",
            "score_function_weight",
            "size",
            "solver",
            "surrogate",
            "temper_from",
            "temper_steps",
            "time_floor",
            "time_floor_from",
            "time_floor_steps",
            "tv_weight",
            "w_data",
            "w_entropy",
            "w_prior",
            "warmup",
        ];
        assert_eq!(keys, expected);
        for (key, name) in [
            ("prior", "gaussian-ode"),
            ("solver", "dopri5"),
            ("adjoint_steps", "grid"),
            ("dsm_time_density", "log-uniform"),
            ("anneal_data_schedule", "linear"),
            ("data", "closures"),
            ("noise", "gaussian(sigma=0.2)"),
        ] {
            assert_eq!(config[key], name, "{key}");
        }
        assert!(m.inputs.contains_key("--x-true") && m.inputs.contains_key("--mean"));
        // A surrogate run does not record the adjoint rule; a Laplace start records itself.
        s.prior.surrogate = true;
        s.flow.laplace = LaplaceMode::On;
        s.flow.map_steps = 10;
        let config = s.manifest(Path::new("gaussian-ode")).unwrap().config;
        assert!(config.get("adjoint_steps").is_none());
        assert_eq!((config["laplace"].clone(), config["laplace_scale"].clone()), (true.into(), 1.0.into()));
    }

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
