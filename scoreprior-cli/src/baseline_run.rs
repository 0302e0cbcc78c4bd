//! A `scoreprior posterior` run of a diffusion-based sampler (Score-ALD, DPS, SDE+Proj) in
//! place of DPI: [`BaselineOptions`] holds the samplers' settings and picks one by name, and
//! [`run_baseline`] runs it on the prior, forward model and measurement of a
//! [`DpiSettings`], writing what `dpi` writes.

use scoreprior_core::baselines::{Daps, Dps, PnpDm, ScoreAld, SdeProj};
use scoreprior_core::forward::{parse_noise, NoiseSpec};
use serde::{Deserialize, Serialize};

use scoreprior::experiment::{
    conflicting_settings, invalid_setting, Baseline, DpiSettings, ExperimentError, ExperimentResult, Result,
};

use crate::dpi_run::{save_with_figures, DpiRun};
use crate::run_folder::{take_folder, RunState};
use scoreprior::monitor::Monitor;

/// Settings of the diffusion-based samplers (each uses its own); also the samplers' flags of
/// `posterior` and `restoration-study` (each field's doc is its `--help`, its default the
/// `Default` below).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default)]
pub struct BaselineOptions {
    /// Reverse-diffusion steps of DPS and SDE+Proj (the papers: 1000).
    #[arg(long, default_value_t = BaselineOptions::default().sampler_steps)]
    pub sampler_steps: usize,
    /// DPS step scale ζ′ (the paper: 0.1–1 for images; tune per problem).
    #[arg(long, default_value_t = BaselineOptions::default().zeta)]
    pub zeta: f64,
    /// SDE+Proj consistency weight λ in [0, 1] (1: hard projection).
    #[arg(long, default_value_t = BaselineOptions::default().lambda)]
    pub lambda: f64,
    /// Score-ALD noise levels L.
    #[arg(long, default_value_t = BaselineOptions::default().ald_levels)]
    pub ald_levels: usize,
    /// Score-ALD Langevin steps per level K (the supplement: 5).
    #[arg(long, default_value_t = BaselineOptions::default().ald_steps)]
    pub ald_steps: usize,
    /// Score-ALD base step as a fraction of the last level's σ² (stable below 2).
    #[arg(long, default_value_t = BaselineOptions::default().ald_step)]
    pub ald_step: f64,
    /// DAPS annealing levels (the reference: 200).
    #[arg(long, default_value_t = BaselineOptions::default().daps_levels)]
    pub daps_levels: usize,
    /// DAPS Langevin steps on the clean image per level (the reference: 100).
    #[arg(long, default_value_t = BaselineOptions::default().daps_langevin_steps)]
    pub daps_langevin_steps: usize,
    /// DAPS Langevin step size η₀ at the first level (decays 100× to the last; the reference: 1e-4).
    #[arg(long, default_value_t = BaselineOptions::default().daps_step)]
    pub daps_step: f64,
    /// PnP-DM Gibbs iterations (the black-hole reference: 200).
    #[arg(long, default_value_t = BaselineOptions::default().pnp_iterations)]
    pub pnp_iterations: usize,
    /// PnP-DM iterations before samples count, fewer than --pnp-iterations (the reference: 40).
    #[arg(long, default_value_t = BaselineOptions::default().pnp_burn_in)]
    pub pnp_burn_in: usize,
    /// PnP-DM coupling ρ at the first iteration (× --pnp-rho-decay per iteration down to
    /// --pnp-rho-min; the reference: 10).
    #[arg(long, default_value_t = BaselineOptions::default().pnp_rho_start)]
    pub pnp_rho_start: f64,
    /// PnP-DM factor on ρ per iteration, in (0, 1] (the reference: 0.93).
    #[arg(long, default_value_t = BaselineOptions::default().pnp_rho_decay)]
    pub pnp_rho_decay: f64,
    /// PnP-DM floor of ρ (the reference: 0.02; closure data need less, e.g. 0.005: the samples'
    /// misfit grows with the likelihood blurred by ρ).
    #[arg(long, default_value_t = BaselineOptions::default().pnp_rho_min)]
    pub pnp_rho_min: f64,
    /// PnP-DM reverse-diffusion steps of each prior (denoising) step (the reference: 100).
    #[arg(long, default_value_t = BaselineOptions::default().pnp_denoise_steps)]
    pub pnp_denoise_steps: usize,
    /// PnP-DM Langevin steps of each likelihood step, where it has no closed form (non-linear
    /// operators, D > 2048).
    #[arg(long, default_value_t = BaselineOptions::default().pnp_likelihood_steps)]
    pub pnp_likelihood_steps: usize,
    /// PnP-DM Langevin step relative to the likelihood's curvature, ε in (0, 2): η = ε/(L + 1/ρ²).
    #[arg(long, default_value_t = BaselineOptions::default().pnp_likelihood_step)]
    pub pnp_likelihood_step: f64,
    /// PnP-DM fixed Langevin step η instead of --pnp-likelihood-step's curvature-scaled one
    /// (for closure data, whose curvature varies by orders of magnitude between images).
    #[arg(long)]
    pub pnp_likelihood_lr: Option<f64>,
    /// PnP-DM time at which each prior step ends with Tweedie's mean (its error is about
    /// σ(t)/α(t) of the image range: keep it well below --pnp-rho-min; closure data at
    /// --pnp-rho-min 0.005 used 1e-6).
    #[arg(long, default_value_t = BaselineOptions::default().pnp_t_min)]
    pub pnp_t_min: f64,
}

impl Default for BaselineOptions {
    fn default() -> Self {
        let (daps, pnp) = (Daps::new(), PnpDm::new());
        Self {
            sampler_steps: 1000,
            zeta: 1.0,
            lambda: 1.0,
            ald_levels: 200,
            ald_steps: 5,
            ald_step: 0.5,
            daps_levels: daps.levels,
            daps_langevin_steps: daps.langevin_steps,
            daps_step: daps.step_size,
            pnp_iterations: pnp.iterations,
            pnp_burn_in: pnp.burn_in,
            pnp_rho_start: pnp.rho_start,
            pnp_rho_decay: pnp.rho_decay,
            pnp_rho_min: pnp.rho_min,
            pnp_denoise_steps: pnp.denoise_steps,
            pnp_likelihood_steps: pnp.likelihood_steps,
            pnp_likelihood_step: pnp.likelihood_step,
            pnp_likelihood_lr: pnp.likelihood_lr,
            pnp_t_min: pnp.t_min,
        }
    }
}

impl BaselineOptions {
    /// The sampler `method` (`score-ald`, `dps`, `sde-proj`, `daps` or `pnp-dm`) with these settings; Score-ALD
    /// takes its measurement noise level from `noise` (a `gaussian` or `complex_gaussian`
    /// specification, σ/√2 per part for the latter).
    ///
    /// ```
    /// use scoreprior::experiment::Baseline;
    /// use scoreprior_cli::baseline_run::BaselineOptions;
    ///
    /// let b = BaselineOptions::default().baseline("dps", "gaussian(sigma=0.2)").unwrap();
    /// assert!(matches!(b, Baseline::Dps(d) if d.steps == 1000));
    /// assert!(BaselineOptions::default().baseline("dpi", "gaussian(sigma=0.2)").is_err());
    /// ```
    ///
    /// # Errors
    /// An unknown method; for Score-ALD a noise that is not one Gaussian level.
    pub fn baseline(&self, method: &str, noise: &str) -> Result<Baseline> {
        Ok(match method {
            "score-ald" => {
                let sigma_y = match parse_noise(noise)? {
                    NoiseSpec::Gaussian { sigma } => sigma,
                    // σ/√2 on each real and imaginary part: the per-measurement level.
                    NoiseSpec::ComplexGaussian { sigma } => sigma / std::f64::consts::SQRT_2,
                    other => {
                        return Err(conflicting_settings(
                            &["--method", "problem.noise"],
                            format!(
                                "--method score-ald needs one Gaussian noise level (gaussian or complex_gaussian), got \
                                 {}",
                                other.describe()
                            ),
                        ))
                    }
                };
                Baseline::ScoreAld(ScoreAld {
                    steps_per_level: self.ald_steps,
                    levels: self.ald_levels,
                    step_rel: self.ald_step,
                    ..ScoreAld::new(sigma_y)
                })
            }
            "dps" => Baseline::Dps(Dps { steps: self.sampler_steps, zeta: self.zeta, ..Dps::new() }),
            "sde-proj" => {
                Baseline::SdeProj(SdeProj { steps: self.sampler_steps, lambda: self.lambda, ..SdeProj::new() })
            }
            "daps" => Baseline::Daps(Daps {
                levels: self.daps_levels,
                langevin_steps: self.daps_langevin_steps,
                step_size: self.daps_step,
                ..Daps::new()
            }),
            "pnp-dm" => Baseline::PnpDm(PnpDm {
                iterations: self.pnp_iterations,
                burn_in: self.pnp_burn_in,
                rho_start: self.pnp_rho_start,
                rho_decay: self.pnp_rho_decay,
                rho_min: self.pnp_rho_min,
                denoise_steps: self.pnp_denoise_steps,
                likelihood_steps: self.pnp_likelihood_steps,
                likelihood_step: self.pnp_likelihood_step,
                likelihood_lr: self.pnp_likelihood_lr,
                t_min: self.pnp_t_min,
                ..PnpDm::new()
            }),
            other => {
                return Err(invalid_setting(
                    "--method",
                    format!("expected score-ald, dps, sde-proj, daps or pnp-dm, got {other:?}"),
                ))
            }
        })
    }
}

/// The flags of the sampler `method`'s own settings (named in its errors).
///
/// ```
/// assert_eq!(scoreprior_cli::baseline_run::sampler_flags("dps"), "--sampler-steps, --zeta");
/// ```
pub fn sampler_flags(method: &str) -> &'static str {
    match method {
        "dps" => "--sampler-steps, --zeta",
        "sde-proj" => "--sampler-steps, --lambda",
        "daps" => "--daps-levels, --daps-langevin-steps, --daps-step",
        "pnp-dm" => {
            "--pnp-iterations, --pnp-burn-in, --pnp-rho-start, --pnp-rho-decay, --pnp-rho-min, --pnp-denoise-steps, \
             --pnp-likelihood-steps, --pnp-likelihood-step, --pnp-likelihood-lr, --pnp-t-min"
        }
        _ => "--ald-levels, --ald-steps, --ald-step",
    }
}

/// The one measurement noise level Score-ALD uses for data whose σ varies per measurement
/// (the interferometer's thermal noise differs per baseline): the smallest. Its likelihood
/// step is `η·‖A‖²/σ_k² · σ_y²/(σ_y² + ‖A‖²σ²)` along measurement `k`, at most the stable
/// `ε` of uniform noise for every `k` only when `σ_y ≤ σ_k`.
///
/// ```
/// assert_eq!(scoreprior_cli::baseline_run::noise_level(&[0.5, 0.2, 0.3]), 0.2);
/// ```
pub fn noise_level(sigma: &[f64]) -> f64 {
    sigma.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Draws the run's samples with `method` instead of DPI: checks the sampler against the
/// prior before the output folder is taken (see
/// [`take_folder`](crate::run_folder::take_folder)), records a manifest (command
/// `posterior --method NAME`), samples, saves as [`run`](crate::dpi_run::DpiRun::run) does; unless
/// `output.quiet`, a summary goes to `monitor.note`.
///
/// ```no_run
/// use scoreprior::experiment::DpiSettings;
/// use scoreprior_cli::baseline_run::BaselineOptions;
/// use scoreprior_cli::dpi_run::DpiRun;
///
/// let mut s = DpiSettings::default();
/// s.problem.x_true = Some("assets/fashion16_test.npy".into());
/// s.output.out = "out/dps".into();
/// let dps = BaselineOptions::default().baseline("dps", s.problem.noise_or_default())?;
/// let result = s.run_baseline(dps, &mut scoreprior::monitor::Silent)?;
/// assert!(result.report.seconds_per_sample.is_some());
/// # Ok::<(), scoreprior::experiment::ExperimentError>(())
/// ```
///
/// # Errors
/// `output.resume` (a sampler has nothing to resume); a prior without a score model, a
/// setting the sampler refuses or a forward model it cannot use (SDE+Proj: a non-linear
/// one); as [`run`](crate::dpi_run::DpiRun::run). All are checked before the output folder is taken.
///
/// With `eht(…)`, Score-ALD's measurement noise is the data's own σ ([`noise_level`] of the
/// interferometer's per-measurement σ, its smallest), whatever `method` was built with, and
/// `metrics.json` says so.
pub fn run_baseline(s: &DpiSettings, method: Baseline, monitor: &mut dyn Monitor) -> Result<ExperimentResult> {
    let name = method.name();
    // A prior or forward model the sampler cannot use is a conflict with them; a setting of
    // the sampler it refuses, a fault of --method's settings.
    let refused = |e: ExperimentError| {
        let settings: &'static [&'static str] = match &e {
            ExperimentError::Invalid { field: "prior", .. } => &["--method", "prior.prior"],
            ExperimentError::Invalid { field: "forward", .. } => &["--method", "problem.forward"],
            _ => return invalid_setting("--method", format!("{name} ({}): {e}", sampler_flags(name))),
        };
        conflicting_settings(settings, format!("--method {name}: {e}"))
    };
    if s.output.resume {
        return Err(invalid_setting("output.resume", format!("{name} does not train, so there is nothing to resume")));
    }
    // The samplers' settings are checked before the folder is taken (VP SDE: every shipped
    // score prior's; `run_baseline` checks again against the prior's own SDE).
    method.validate(&scoreprior_core::sde::AnySde::Vp(Default::default())).map_err(|e| refused(e.into()))?;
    let (experiment, checkpoint) = s.build()?;
    // With eht(…) the measurement's noise is the interferometer's own σ per visibility
    // (or per closure quantity), not `--noise`: Score-ALD takes its level from those.
    let eht = scoreprior_core::forward::PrimitiveSpec::parse(&s.problem.forward).is_ok_and(|s| s.name == "eht");
    let method = match method {
        Baseline::ScoreAld(s) if eht => {
            Baseline::ScoreAld(ScoreAld { sigma_y: noise_level(experiment.forward().noise().sigma()), ..s })
        }
        other => other,
    };
    experiment.check_baseline(&method).map_err(refused)?;
    let mut manifest = s.manifest(&checkpoint)?;
    manifest.command = format!("posterior --method {name}");
    let kind = match method {
        Baseline::ScoreAld(_) => "ScoreAld",
        Baseline::Dps(_) => "Dps",
        Baseline::SdeProj(_) => "SdeProj",
        Baseline::Daps(_) => "Daps",
        Baseline::PnpDm(_) => "PnpDm",
    };
    if let Some(c) = manifest.config.as_object_mut() {
        c.insert("method".into(), serde_json::json!(kind));
    }
    let out = &s.output.out;
    let _lock = take_folder(&s.output, &manifest, monitor)?;
    manifest.clone().with_state(RunState::Running).write(out)?;
    let mut res = experiment.run_baseline(method)?;
    if let (true, Baseline::ScoreAld(s)) = (eht, method) {
        res.report.forward = format!(
            "{}; score-ald sigma_y = {:.6e} (the data's own σ, the smallest; not --noise)",
            res.report.forward, s.sigma_y
        );
    }
    save_with_figures(&res, out)?;
    manifest.with_state(RunState::Complete).write(out)?;
    if !s.output.quiet {
        monitor.note(&format!(
            "{name}: {} samples in {:.2} s ({:.3} s/sample, {} dropped by |x| > {}); outputs in {}",
            res.report.samples,
            res.report.seconds_sampling,
            res.report.seconds_per_sample.unwrap_or(f64::NAN),
            res.report.samples_dropped,
            s.output.outlier,
            out.display()
        ));
        let table = res.summary_table();
        if !table.is_empty() {
            monitor.note(table.trim_end_matches('\n'));
        }
    }
    Ok(res)
}
