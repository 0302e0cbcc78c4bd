//! The whole `scoreprior dpi` run of a [`DpiSettings`]: the experiment built and checked, the
//! output folder taken ([`take_folder`]), the manifest `run.json` (the settings' serde value
//! less what may change on a resume, and the input files by content), training, sampling and
//! the outputs with their figures. [`DpiRun`] adds these to the library's settings type.

use std::path::Path;

use scoreprior::experiment::eht::{eht_problem, write_closure_report};
use scoreprior::experiment::inputs::resolve;
use scoreprior::experiment::{
    invalid_setting, Baseline, DpiSettings, ExperimentError, ExperimentResult, PriorKind, PriorOptions, ProblemOptions,
    Result,
};
use scoreprior::monitor::Monitor;
use scoreprior_core::io::{write_fits_image, IoError};
use scoreprior_core::ode::SolverKind;
use scoreprior_core::prior::AdjointSteps;

use crate::plot::{Figure, Series};
use crate::run_folder::{forward_files, take_folder, RunManifest, RunState, MANIFEST_FILE};

/// Keys of the groups' serde values that [`DpiRun::manifest`] leaves out of `config`:
/// `steps` (a resume may extend a run), the files recorded by content as inputs instead
/// (`mean`, `cov`, `y`, `x_true`), and the two settings recorded only where they apply
/// (`adjoint_steps` for PF-ODE priors, `laplace` when the Laplace start is on, `init_flow` when a
/// run starts from another's flow), so that runs written before they existed still resume. The
/// output group is not in `config` at all.
const NOT_IN_MANIFEST: [&str; 9] =
    ["steps", "mean", "cov", "y", "x_true", "laplace", "adjoint_steps", "adjoint_grid_solver", "init_flow"];

/// The run-folder side of a [`DpiSettings`]: its manifest, the whole run, and a diffusion
/// sampler's run in place of DPI.
pub trait DpiRun {
    /// What defines the run (compared on resume): data, forward model, prior, estimator, flow
    /// and optimiser, and the input files by content (`prior_file`, the resolved prior path
    /// [`build`](DpiSettings::build) returns, is hashed when it is a file). The steps (a resume
    /// may extend a run), samples, outlier threshold, checkpoint cadence and `quiet` may change
    /// between a run and its resume.
    ///
    /// ```no_run
    /// use scoreprior::experiment::DpiSettings;
    /// use scoreprior_cli::dpi_run::DpiRun;
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
    fn manifest(&self, prior_file: &Path) -> Result<RunManifest>;

    /// The whole run: builds the experiment, takes the output folder (see
    /// [`take_folder`](crate::run_folder::take_folder)), records the manifest, trains
    /// (progress through `monitor`, stage `DPI`), samples and saves; for `eht(…)` also
    /// `closures.json` and the mean and std as FITS. Unless `output.quiet`, a summary goes to
    /// `monitor.note`.
    ///
    /// ```no_run
    /// use scoreprior::experiment::DpiSettings;
    /// use scoreprior_cli::dpi_run::DpiRun;
    ///
    /// let mut s = DpiSettings::default();
    /// s.problem.x_true = Some("assets/fashion16_test.npy".into());
    /// s.output.out = "out/dpi".into();
    /// let result = s.run(&mut scoreprior::monitor::Silent)?;
    /// println!("{}", result.summary_table());
    /// # Ok::<(), scoreprior::experiment::ExperimentError>(())
    /// ```
    ///
    /// # Errors
    /// As [`build`](DpiSettings::build); an output folder that holds another run; the
    /// experiment's errors.
    fn run(&self, monitor: &mut dyn Monitor) -> Result<ExperimentResult>;

    /// Draws the run's samples with `method` instead of DPI (see
    /// [`run_baseline`](crate::baseline_run::run_baseline)).
    fn run_baseline(&self, method: Baseline, monitor: &mut dyn Monitor) -> Result<ExperimentResult>;
}

impl DpiRun for DpiSettings {
    fn manifest(&self, prior_file: &Path) -> Result<RunManifest> {
        manifest(self, prior_file)
    }
    fn run(&self, monitor: &mut dyn Monitor) -> Result<ExperimentResult> {
        run(self, monitor)
    }
    fn run_baseline(&self, method: Baseline, monitor: &mut dyn Monitor) -> Result<ExperimentResult> {
        crate::baseline_run::run_baseline(self, method, monitor)
    }
}

fn manifest(s: &DpiSettings, prior_file: &Path) -> Result<RunManifest> {
    let (p, m, f) = (&s.prior, &s.problem, &s.flow);
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
        serde_json::to_value(&s.optim),
        serde_json::to_value(f),
        serde_json::to_value(&s.objective),
    ] {
        let group = group.map_err(|e| IoError::encode(&s.output.out.join(MANIFEST_FILE), "JSON", e))?;
        if let serde_json::Value::Object(g) = group {
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
        // Runs before the setting stepped the grid with Dopri5: recorded only when another.
        if p.adjoint_steps == AdjointSteps::ForwardGrid && p.adjoint_grid_solver != SolverKind::Dopri5 {
            config["adjoint_grid_solver"] = serde_json::json!(p.adjoint_grid_solver);
        }
    }
    // Recorded only when on, so that runs from before the Laplace start still resume.
    if f.laplace.resolve(f.map_steps > 0, m.is_eht()) {
        config["laplace"] = serde_json::json!(true);
    } else if let Some(c) = config.as_object_mut() {
        c.remove("laplace_scale");
    }
    if f.init_flow.is_some() {
        config["init_flow"] = serde_json::json!(true);
    }
    let mut manifest = RunManifest::new("dpi", config).with_seed(s.seed);
    // The trained flow a run starts from, by content: a resume re-reads its map (offset and
    // Laplace factor), which must be the one the run started with.
    if let Some(dir) = &f.init_flow {
        let dir = resolve(Path::new(dir));
        for file in ["checkpoint.safetensors", "flow_map.json", "flow_offset.npy", "flow_factor.npy"] {
            let path = dir.join(file);
            if path.is_file() {
                manifest = manifest.with_input(&format!("--init-flow ({file})"), &path)?;
            }
        }
    }
    for (flag, path) in [("--x-true", &m.x_true), ("--y", &m.y)] {
        if let Some(path) = path {
            manifest = manifest.with_input(flag, &resolve(path))?;
        }
    }
    // The files the forward model reads (`matrix(file=…)`, `eht(obs=…)`): a resume must see
    // the same operator and observation, not only the same file names.
    for (k, file) in forward_files(&m.forward).into_iter().enumerate() {
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

fn run(s: &DpiSettings, monitor: &mut dyn Monitor) -> Result<ExperimentResult> {
    let out = &s.output.out;
    if out.as_os_str().is_empty() {
        return Err(invalid_setting("output.out", "give the output folder"));
    }
    let (experiment, checkpoint) = s.build()?;
    // The interferometer's problem (closure χ², FITS header), built once before the work.
    let (h, w) = experiment.shape();
    let eht = eht_problem(s, h, w, experiment.truth())?;
    // The folder is this run's until it returns; a resume must be of the same problem.
    let manifest = manifest(s, &checkpoint)?;
    let _lock = take_folder(&s.output, &manifest, monitor)?;
    if let Some(note) = eht.as_ref().and_then(|e| e.sky_note.as_deref()) {
        monitor.note(note);
    }
    manifest.clone().with_state(RunState::Running).write(out)?;
    monitor.stage("DPI", s.optim.steps as u64);
    let res = experiment.run_observed(&mut |r| {
        monitor.update(r.step as u64 + 1, &|| {
            let floor = if r.time_floor.is_finite() { format!(", t0 {:.1e}", r.time_floor) } else { String::new() };
            format!("loss {:.2} = data {:.2} + prior {:.2} + logq {:.2}{floor}", r.total, r.data, r.prior, r.log_q)
        });
    });
    monitor.finish();
    let res = res?;
    save_with_figures(&res, out)?;
    let (h, w) = res.shape;
    let quiet = s.output.quiet;
    if let Some(eht) = eht {
        if let Some(p) = &eht.closures {
            let line = write_closure_report(p, &res, out)?;
            if !quiet {
                monitor.note(&line);
            }
        }
        // Radio astronomers' viewers open FITS: the posterior mean and std as well.
        for (name, img) in [("mean.fits", &res.summary.mean), ("std.fits", &res.summary.std)] {
            write_fits_image(out.join(name), img, h, w, &eht.sky)?;
        }
    }
    manifest.with_state(RunState::Complete).write(out)?;
    if !quiet {
        summarise(s, &res, monitor);
    }
    Ok(res)
}

fn summarise(s: &DpiSettings, res: &ExperimentResult, monitor: &mut dyn Monitor) {
    let rep = &res.report;
    monitor.note(&format!(
        "DPI done: {} steps in {:.1} s ({:.3} s/step), {} samples in {:.2} s ({} dropped by |x| > {}); outputs in {}",
        rep.steps,
        rep.seconds_training,
        rep.seconds_per_step,
        rep.samples,
        rep.seconds_sampling,
        rep.samples_dropped,
        s.output.outlier,
        s.output.out.display()
    ));
    let table = res.summary_table();
    if !table.is_empty() {
        monitor.note(table.trim_end_matches('\n'));
    }
    if let Some(c) = &rep.closed_form {
        monitor.note(&format!(
            "vs closed-form posterior: mean RMSE {:.4}, per-pixel std rel. error {:.3} (exact std {:.4})",
            c.mean_rmse, c.std_rel_err, c.exact_mean_std
        ));
    }
}

/// [`ExperimentResult::save`], with the loss curve `losses.svg` (the finite total losses by
/// step) written first.
///
/// # Errors
/// As `save`; the figure cannot be written.
pub fn save_with_figures(res: &ExperimentResult, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| scoreprior_core::io::IoError::os(out, e))?;
    // Non-finite losses (a gradient-only prior term) are left out of the curve.
    let pts: Vec<(f64, f64)> =
        res.history.records.iter().filter(|r| r.total.is_finite()).map(|r| (r.step as f64, r.total)).collect();
    if !pts.is_empty() {
        let fig = Figure::new("DPI loss", "step", "loss (data + prior + log q)").with(Series::line("total", pts));
        fig.write(out.join("losses.svg")).map_err(|e| ExperimentError::Plot(e.to_string()))?;
    }
    res.save(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scoreprior::experiment::{DpiSettings, LaplaceMode};

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
            "adjoint_grid_solver",
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
            ("adjoint_grid_solver", "rk4"),
            ("dsm_time_density", "log-uniform"),
            ("anneal_data_schedule", "linear"),
            ("data", "closures"),
            ("noise", "gaussian(sigma=0.2)"),
        ] {
            assert_eq!(config[key], name, "{key}");
        }
        assert!(m.inputs.contains_key("--x-true") && m.inputs.contains_key("--mean"));
        // Dopri5 on the grid (what runs before the setting used) is not recorded, so they resume.
        s.prior.adjoint_grid_solver = SolverKind::Dopri5;
        let config = s.manifest(Path::new("gaussian-ode")).unwrap().config;
        assert!(config.get("adjoint_grid_solver").is_none() && config["adjoint_steps"] == "grid");
        // A surrogate run does not record the adjoint rule; a Laplace start records itself.
        s.prior.surrogate = true;
        s.flow.laplace = LaplaceMode::On;
        s.flow.map_steps = 10;
        let config = s.manifest(Path::new("gaussian-ode")).unwrap().config;
        assert!(config.get("adjoint_steps").is_none() && config.get("adjoint_grid_solver").is_none());
        assert_eq!((config["laplace"].clone(), config["laplace_scale"].clone()), (true.into(), 1.0.into()));
    }
}
