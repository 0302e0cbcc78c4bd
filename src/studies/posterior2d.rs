//! The 2-D posterior study (supplement Fig. 5, main Fig. 4): DPI under the exact score-based
//! prior (PF-ODE, exact trace) against Score-ALD, DPS and SDE+Proj, all on the same exact score,
//! for `y = aᵀx + n` with a Gaussian prior (low and high noise) and the reference two-component
//! mixture. The true posterior is a Gaussian mixture in closed form ([`Mixture2::posterior`]).
//!
//! Each method's samples become a density on a grid by a KDE ([`kde_log_density`]) with
//! Scott's rule and with a fixed 0.03 kernel; `KL(p‖q)` and `KL(q‖p)` on the grid. DPI also has
//! its own density: `KL(q‖p) = E_q[log q − log p]` over its samples and `KL(p‖q)` on the grid
//! from `log q`. Each baseline's knob (Score-ALD's step, DPS's ζ′, SDE+Proj's λ) is chosen by a
//! grid search on the low-noise Gaussian case by the symmetrised KL (Scott), then reused
//! unchanged for high noise (as the paper did); the mixture case is searched on itself (with
//! the 0.03 kernel). A row "exact samples" puts samples of the true posterior through the same
//! KDE: the floor the KDE itself sets.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use scoreprior_core::baselines::{Dps, ScoreAld, SdeProj};
use scoreprior_core::divergence::Divergence;
use scoreprior_core::dpi::{Annealing, DpiConfig};
use scoreprior_core::forward::{ops::DenseMatrix, Chain, Model, NoiseSpec};
use scoreprior_core::prior::ScorePriorConfig;
use scoreprior_core::score::{Gaussian, GaussianMixture, ScoreModel};
use scoreprior_core::sde::{AnySde, VpSde};
use scoreprior_core::Error;

use super::kde::{kde_log_density, kl_on_grid, normalise_log, Bandwidth, Grid};
use super::mix2::Mixture2;
use crate::experiment::{Experiment, ExperimentError, PosteriorSettings, Prior, Result};

/// An invalid-argument error of the study.
fn bad(why: impl Into<String>) -> ExperimentError {
    Error::invalid(why).into()
}

/// One 2-D problem.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short name (`gaussian-low`, `gaussian-high`, `mixture`).
    pub name: String,
    /// The prior.
    pub prior: Mixture2,
    /// The measurement vector `a` of `y = aᵀx + n`.
    pub a: [f64; 2],
    /// Measurement noise σ.
    pub sigma: f64,
    /// The measurement.
    pub y: f64,
    /// Where densities are compared.
    pub grid: Grid,
    /// The kernel the baselines are tuned by and the figure shows.
    pub bandwidth: Bandwidth,
    /// The case the baselines' knobs are tuned on (itself when equal to `name`).
    pub tuned_on: String,
}

impl Case {
    /// The study's three cases. Gaussian prior `N((0.3, −0.2), [[0.09, 0.03], [0.03, 0.04]])`
    /// with `a = (−2, 1.7)`, `y = 0.3` and σ = 0.05 (low) or 0.5 (high); the reference mixture
    /// (components at ±(0.5, 0.5), std 0.1, equal weights) with the same `a`, `y` and σ = 0.2,
    /// on the reference's grid `[−0.8, 0.8]²`.
    pub fn reference() -> Vec<Case> {
        let gauss = Mixture2::new(vec![1.0], vec![[0.3, -0.2]], vec![[0.09, 0.03, 0.03, 0.04]]).expect("SPD");
        let mix = Mixture2::new(
            vec![0.5, 0.5],
            vec![[-0.5, -0.5], [0.5, 0.5]],
            vec![[0.01, 0.0, 0.0, 0.01], [0.01, 0.0, 0.0, 0.01]],
        )
        .expect("SPD");
        let (a, y) = ([-2.0, 1.7], 0.3);
        let box_around = |p: &Mixture2| {
            let (m, c) = p.moments();
            let (s0, s1) = (5.0 * c[0].sqrt(), 5.0 * c[2].sqrt());
            Grid { x: (m[0] - s0, m[0] + s0), y: (m[1] - s1, m[1] + s1), n: 128 }
        };
        let gcase = |name: &str, sigma: f64| {
            let post = gauss.posterior(a, sigma, y).expect("valid");
            Case {
                name: name.into(),
                prior: gauss.clone(),
                a,
                sigma,
                y,
                grid: box_around(&post),
                bandwidth: Bandwidth::Scott,
                tuned_on: "gaussian-low".into(),
            }
        };
        vec![
            gcase("gaussian-low", 0.05),
            gcase("gaussian-high", 0.5),
            Case {
                name: "mixture".into(),
                prior: mix,
                a,
                sigma: 0.2,
                y,
                grid: Grid { x: (-0.8, 0.8), y: (-0.8, 0.8), n: 128 },
                bandwidth: Bandwidth::Fixed(0.03),
                tuned_on: "mixture".into(),
            },
        ]
    }

    /// The exact posterior.
    pub fn posterior(&self) -> Result<Mixture2> {
        Ok(self.prior.posterior(self.a, self.sigma, self.y)?)
    }

    /// The prior's exact score model under the VP SDE.
    pub fn score_model(&self) -> Result<Arc<dyn ScoreModel>> {
        let sde = AnySde::Vp(VpSde::default());
        let p = &self.prior;
        if p.weights.len() == 1 {
            return Ok(Arc::new(Gaussian::new(p.means[0].to_vec(), &p.covs[0], sde)?));
        }
        let mut stds = Vec::new();
        for c in &p.covs {
            if c[1] != 0.0 || c[2] != 0.0 {
                return Err(bad("the study's mixture score needs diagonal component covariances"));
            }
            stds.extend([c[0].sqrt(), c[3].sqrt()]);
        }
        let means: Vec<f64> = p.means.iter().flatten().copied().collect();
        Ok(Arc::new(GaussianMixture::new(&p.weights, &means, &stds, sde)?))
    }

    /// `y = aᵀx + n` as a forward model on 1×2 "images".
    pub fn forward(&self) -> Result<Model> {
        let shape = [1, 1, 2];
        let mut chain = Chain::new(shape);
        chain.push(Arc::new(DenseMatrix::new(shape.into(), 1, self.a.to_vec())?))?;
        Ok(Model::with_spec(chain, &NoiseSpec::Gaussian { sigma: self.sigma })?)
    }
}

/// A method of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Method {
    /// Samples of the true posterior (the KDE's floor).
    Exact,
    /// DPI under the exact PF-ODE prior.
    Dpi,
    /// Annealed Langevin dynamics.
    ScoreAld,
    /// Diffusion posterior sampling.
    Dps,
    /// Reverse SDE with relaxed projections.
    SdeProj,
}

impl Method {
    /// The name in tables.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Exact => "exact samples",
            Method::Dpi => "DPI (ours)",
            Method::ScoreAld => "Score-ALD",
            Method::Dps => "DPS",
            Method::SdeProj => "SDE+Proj",
        }
    }
    /// The knob a grid search tunes, if any.
    pub fn knob(&self) -> Option<&'static str> {
        match self {
            Method::ScoreAld => Some("step"),
            Method::Dps => Some("zeta"),
            Method::SdeProj => Some("lambda"),
            _ => None,
        }
    }
}

/// Settings of [`run`]; `Default` is the full study (10,000 samples per method).
#[derive(Debug, Clone, PartialEq)]
pub struct StudySettings {
    /// Samples per method and case.
    pub samples: usize,
    /// Samples per value during the grid search.
    pub search_samples: usize,
    /// Reverse-diffusion steps of DPS and SDE+Proj.
    pub sampler_steps: usize,
    /// Score-ALD noise levels (5 Langevin steps each).
    pub ald_levels: usize,
    /// Score-ALD base steps searched (each must keep step·‖a‖² < 1.9).
    pub ald_steps: Vec<f64>,
    /// DPS ζ′ searched.
    pub zetas: Vec<f64>,
    /// SDE+Proj λ searched.
    pub lambdas: Vec<f64>,
    /// DPI optimisation steps.
    pub dpi_steps: usize,
    /// DPI samples per step.
    pub dpi_batch: usize,
    /// DPI coupling blocks.
    pub dpi_flows: usize,
    /// DPI peak learning rate.
    pub dpi_lr: f64,
    /// Initial spread of the DPI flow around 0.
    pub dpi_init_scale: f64,
    /// Steps of DPI's linear data-weight ramp from 0 (0: none).
    pub dpi_anneal_data: usize,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for StudySettings {
    fn default() -> Self {
        Self {
            samples: 10_000,
            search_samples: 2_000,
            sampler_steps: 1000,
            ald_levels: 200,
            ald_steps: vec![0.01, 0.02, 0.05, 0.1, 0.2],
            zetas: vec![0.01, 0.03, 0.1, 0.3, 1.0],
            lambdas: vec![0.01, 0.03, 0.1, 0.3, 1.0],
            dpi_steps: 1500,
            dpi_batch: 256,
            dpi_flows: 8,
            dpi_lr: 1e-3,
            dpi_init_scale: 1.0,
            dpi_anneal_data: 0,
            seed: 0,
        }
    }
}

impl StudySettings {
    /// A small version for tests (≈ 20 s): fewer samples, steps and knob values.
    pub fn quick() -> Self {
        Self {
            samples: 2_000,
            search_samples: 1_000,
            sampler_steps: 200,
            ald_levels: 50,
            ald_steps: vec![0.05, 0.2],
            zetas: vec![0.03, 0.3],
            lambdas: vec![0.1, 1.0],
            dpi_steps: 400,
            dpi_batch: 128,
            dpi_flows: 4,
            dpi_lr: 1e-3,
            dpi_init_scale: 1.0,
            dpi_anneal_data: 0,
            seed: 0,
        }
    }
    /// Checks every setting before any work, naming each by its `posterior-2d` flag where it
    /// has one (the study used to fail on a bad DPI setting only after the cases before it ran).
    ///
    /// ```
    /// use scoreprior::studies::posterior2d::StudySettings;
    /// assert!(StudySettings::quick().validate().is_ok());
    /// let e = StudySettings { dpi_lr: f64::NAN, ..StudySettings::quick() }.validate().unwrap_err();
    /// assert!(e.to_string().contains("--dpi-lr"), "{e}");
    /// ```
    ///
    /// # Errors
    /// The first setting out of range.
    pub fn validate(&self) -> Result<()> {
        if self.samples < 2 {
            return Err(bad(format!(
                "--samples {}: the 2-D study needs at least two samples per method",
                self.samples
            )));
        }
        if self.search_samples < 2 {
            return Err(bad(format!("search_samples {}: the grid search needs at least two", self.search_samples)));
        }
        for (flag, v) in
            [("--dpi-steps", self.dpi_steps), ("--dpi-batch", self.dpi_batch), ("--dpi-flows", self.dpi_flows)]
        {
            if v == 0 {
                return Err(bad(format!("{flag} 0: must be at least 1")));
            }
        }
        for (flag, v) in [("--dpi-lr", self.dpi_lr), ("--dpi-init-scale", self.dpi_init_scale)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(bad(format!("{flag} {v}: must be positive and finite")));
            }
        }
        if self.ald_steps.is_empty() || self.zetas.is_empty() || self.lambdas.is_empty() {
            return Err(bad("each baseline needs at least one knob value to search"));
        }
        // Every knob value the search will try, checked by its sampler.
        let sde = AnySde::Vp(VpSde::default());
        for &v in &self.ald_steps {
            ScoreAld { levels: self.ald_levels, step_rel: v, ..ScoreAld::new(1.0) }.validate(&sde)?;
        }
        for &v in &self.zetas {
            Dps { steps: self.sampler_steps, zeta: v, ..Dps::new() }.validate(&sde)?;
        }
        for &v in &self.lambdas {
            SdeProj { steps: self.sampler_steps, lambda: v, ..SdeProj::new() }.validate(&sde)?;
        }
        Ok(())
    }

    /// What defines a study's results (for its folder's `run.json`; a rerun in the folder must
    /// match it): the cases by name and every setting, the seed as the manifest's.
    ///
    /// ```
    /// use scoreprior::studies::posterior2d::{Case, StudySettings};
    /// let m = StudySettings::quick().manifest(&Case::reference());
    /// assert_eq!((m.command.as_str(), m.seed), ("posterior-2d", Some(0)));
    /// assert_eq!(m.config["samples"], 2000);
    /// ```
    pub fn manifest(&self, cases: &[Case]) -> scoreprior_core::io::RunManifest {
        let config = serde_json::json!({
            "cases": cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            "samples": self.samples, "search_samples": self.search_samples, "sampler_steps": self.sampler_steps,
            "ald_levels": self.ald_levels, "ald_steps": self.ald_steps, "zetas": self.zetas,
            "lambdas": self.lambdas, "dpi_steps": self.dpi_steps, "dpi_batch": self.dpi_batch,
            "dpi_flows": self.dpi_flows, "dpi_lr": self.dpi_lr, "dpi_init_scale": self.dpi_init_scale,
            "dpi_anneal_data": self.dpi_anneal_data,
        });
        scoreprior_core::io::RunManifest::new("posterior-2d", config).with_seed(self.seed)
    }
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Case name.
    pub case: String,
    /// Method name.
    pub method: String,
    /// The knob and its value (`zeta=0.1`), empty when none.
    pub setting: String,
    /// `KL(p‖q)` with Scott's bandwidth.
    pub kl_pq_scott: f64,
    /// `KL(q‖p)` with Scott's bandwidth.
    pub kl_qp_scott: f64,
    /// `KL(p‖q)` with the 0.03 kernel.
    pub kl_pq_fixed: f64,
    /// `KL(q‖p)` with the 0.03 kernel.
    pub kl_qp_fixed: f64,
    /// DPI: `KL(q‖p)` from its own density (Monte Carlo over its samples).
    pub exact_kl_qp: Option<f64>,
    /// DPI: `KL(p‖q)` from its own density on the grid.
    pub exact_kl_pq: Option<f64>,
    /// Sample mean.
    pub mean: [f64; 2],
    /// Sample standard deviations.
    pub std: [f64; 2],
    /// Samples drawn.
    pub samples: usize,
    /// Wall time (DPI: training and sampling).
    pub seconds: f64,
}

/// One value tried by the grid search.
#[derive(Debug, Clone, Serialize)]
pub struct SearchRow {
    /// Case searched on.
    pub case: String,
    /// Method.
    pub method: String,
    /// Knob value.
    pub value: f64,
    /// `KL(p‖q)` with the case's kernel (infinite when the sampler failed).
    pub kl_pq: f64,
    /// `KL(q‖p)` with the case's kernel.
    pub kl_qp: f64,
}

/// The study's outcome.
#[derive(Debug, Clone)]
pub struct Study {
    /// The cases run.
    pub cases: Vec<Case>,
    /// The table.
    pub rows: Vec<Row>,
    /// The grid search.
    pub search: Vec<SearchRow>,
    /// Samples per case and method, row-major `(n, 2)`.
    pub samples: Vec<(String, Method, Vec<f64>)>,
    /// Wall time of the whole study.
    pub seconds: f64,
}

fn baseline_samples(
    case: &Case,
    method: Method,
    value: f64,
    n: usize,
    s: &StudySettings,
    seed: u64,
) -> Result<Vec<f64>> {
    let model = case.score_model()?;
    let sde = AnySde::Vp(VpSde::default());
    let forward = case.forward()?;
    let y = [case.y];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = match method {
        Method::ScoreAld => ScoreAld { levels: s.ald_levels, step_rel: value, ..ScoreAld::new(case.sigma) }.sample(
            model.as_ref(),
            &sde,
            &forward,
            &y,
            n,
            &mut rng,
        ),
        Method::Dps => Dps { steps: s.sampler_steps, zeta: value, ..Dps::new() }.sample(
            model.as_ref(),
            &sde,
            &forward,
            &y,
            n,
            &mut rng,
        ),
        Method::SdeProj => SdeProj { steps: s.sampler_steps, lambda: value, ..SdeProj::new() }.sample(
            model.as_ref(),
            &sde,
            &forward,
            &y,
            n,
            &mut rng,
        ),
        Method::Exact => Ok(case.posterior()?.sample(&mut rng, n)),
        Method::Dpi => return Err(bad("DPI is not a baseline")),
    }?;
    Ok(x)
}

fn true_log_density(case: &Case) -> Result<Vec<f64>> {
    let post = case.posterior()?;
    let mut lp: Vec<f64> = case.grid.points().iter().map(|x| post.log_pdf(*x)).collect();
    normalise_log(&mut lp, case.grid.cell_area());
    Ok(lp)
}

/// KL both ways with one kernel; infinite when the samples cannot be estimated (a failed or
/// collapsed sampler).
fn kls(case: &Case, truth: &[f64], x: &[f64], bw: Bandwidth) -> (f64, f64) {
    match kde_log_density(x, bw, &case.grid) {
        Ok(q) => (kl_on_grid(truth, &q, case.grid.cell_area()), kl_on_grid(&q, truth, case.grid.cell_area())),
        Err(_) => (f64::INFINITY, f64::INFINITY),
    }
}

fn moments(x: &[f64]) -> ([f64; 2], [f64; 2]) {
    let n = (x.len() / 2) as f64;
    let m = [x.iter().step_by(2).sum::<f64>() / n, x.iter().skip(1).step_by(2).sum::<f64>() / n];
    let v0 = x.iter().step_by(2).map(|v| (v - m[0]).powi(2)).sum::<f64>() / n;
    let v1 = x.iter().skip(1).step_by(2).map(|v| (v - m[1]).powi(2)).sum::<f64>() / n;
    (m, [v0.sqrt(), v1.sqrt()])
}

fn dpi(case: &Case, s: &StudySettings) -> Result<(Vec<f64>, Vec<f64>, Arc<scoreprior_models::realnvp::RealNvp>)> {
    let sde = AnySde::Vp(VpSde::default());
    let config = ScorePriorConfig::default().with_sde(sde).with_divergence(Divergence::ExactTrace);
    let experiment = Experiment::builder(case.forward()?)
        .prior(Prior::score_ode_with(case.score_model()?, config))
        .measurement(vec![case.y], 1, 2)
        .posterior(PosteriorSettings {
            positive: false,
            flows: s.dpi_flows,
            hidden: 32,
            batch_norm: false,
            init_scale: s.dpi_init_scale,
            init_loc: Some(0.0),
            init_image: None,
            map_warm_start: None,
            laplace: None,
        })
        .dpi_config(DpiConfig {
            steps: s.dpi_steps,
            batch: s.dpi_batch,
            lr: s.dpi_lr,
            warmup: 50,
            lr_final_fraction: 0.05,
            grad_clip: Some(1.0),
            seed: s.seed,
            checkpoint_every: 0,
            // The reference's data-weight annealing, off by default: on the mixture it did not
            // help (a wide start, init scale 1, is what keeps both modes; scale 0.3 fell into
            // the larger one, KL(q‖p) 0.37 = −log 0.695 its weight).
            data_annealing: if s.dpi_anneal_data == 0 {
                Annealing::None
            } else {
                Annealing::Linear { start: 0.0, steps: s.dpi_anneal_data }
            },
            ..DpiConfig::default()
        })
        .samples(s.samples)
        .outlier_threshold(1e6)
        .build()?;
    let res = experiment.run()?;
    let flow = res.flow.ok_or_else(|| bad("DPI returned no flow"))?;
    Ok((res.samples.x, res.samples.log_q, flow))
}

/// Runs the study; `progress` gets one line per finished piece of work.
///
/// # Errors
/// Invalid settings, or a failure of DPI (a baseline that diverges during the search is
/// recorded with an infinite KL instead).
pub fn run(cases: &[Case], s: &StudySettings, progress: &mut dyn FnMut(&str)) -> Result<Study> {
    s.validate()?;
    let t_all = Instant::now();
    let (mut rows, mut search, mut all_samples) = (Vec::new(), Vec::new(), Vec::new());
    let mut tuned: Vec<(String, Method, f64)> = Vec::new();
    for case in cases {
        let truth = true_log_density(case)?;
        let tune_here = case.tuned_on == case.name || !cases.iter().any(|c| c.name == case.tuned_on);
        for method in [Method::Exact, Method::Dpi, Method::ScoreAld, Method::Dps, Method::SdeProj] {
            let t0 = Instant::now();
            let (x, exact_kl, value) = match method {
                Method::Dpi => {
                    let (x, log_q, flow) = dpi(case, s)?;
                    let post = case.posterior()?;
                    // KL(q‖p) = E_q[log q − log p], over every sample (none is dropped).
                    let kl_qp = x.chunks(2).zip(&log_q).map(|(v, lq)| lq - post.log_pdf([v[0], v[1]])).sum::<f64>()
                        / log_q.len() as f64;
                    let pts: Vec<f64> = case.grid.points().iter().flatten().copied().collect();
                    let (lq_grid, _) =
                        flow.log_prob_and_grad(&pts, pts.len() / 2).map_err(|e| bad(format!("flow density: {e}")))?;
                    let kl_pq = kl_on_grid(&truth, &lq_grid, case.grid.cell_area());
                    (x, Some((kl_qp, kl_pq)), None)
                }
                Method::Exact => (baseline_samples(case, method, 0.0, s.samples, s, s.seed ^ 0xE)?, None, None),
                _ => {
                    let value = if tune_here {
                        let values = match method {
                            Method::ScoreAld => &s.ald_steps,
                            Method::Dps => &s.zetas,
                            _ => &s.lambdas,
                        };
                        let mut best = (f64::INFINITY, values[0]);
                        for &v in values {
                            let (pq, qp) = match baseline_samples(case, method, v, s.search_samples, s, s.seed ^ 0x5) {
                                Ok(x) => kls(case, &truth, &x, case.bandwidth),
                                Err(_) => (f64::INFINITY, f64::INFINITY),
                            };
                            search.push(SearchRow {
                                case: case.name.clone(),
                                method: method.name().into(),
                                value: v,
                                kl_pq: pq,
                                kl_qp: qp,
                            });
                            if pq + qp < best.0 {
                                best = (pq + qp, v);
                            }
                        }
                        tuned.push((case.name.clone(), method, best.1));
                        best.1
                    } else {
                        tuned
                            .iter()
                            .find(|(c, m, _)| *c == case.tuned_on && *m == method)
                            .map(|t| t.2)
                            .ok_or_else(|| bad(format!("case {} is tuned on a later case", case.name)))?
                    };
                    (baseline_samples(case, method, value, s.samples, s, s.seed ^ 0xF)?, None, Some(value))
                }
            };
            let seconds = t0.elapsed().as_secs_f64();
            let (pq_s, qp_s) = kls(case, &truth, &x, Bandwidth::Scott);
            let (pq_f, qp_f) = kls(case, &truth, &x, Bandwidth::Fixed(0.03));
            let (mean, std) = moments(&x);
            let row = Row {
                case: case.name.clone(),
                method: method.name().into(),
                setting: match (method.knob(), value) {
                    (Some(k), Some(v)) => format!("{k}={v}"),
                    _ => String::new(),
                },
                kl_pq_scott: pq_s,
                kl_qp_scott: qp_s,
                kl_pq_fixed: pq_f,
                kl_qp_fixed: qp_f,
                exact_kl_qp: exact_kl.map(|k| k.0),
                exact_kl_pq: exact_kl.map(|k| k.1),
                mean,
                std,
                samples: x.len() / 2,
                seconds,
            };
            progress(&format!(
                "{}: {} {} KL(p‖q) {:.4} KL(q‖p) {:.4} (scott) in {:.1} s",
                row.case, row.method, row.setting, row.kl_pq_scott, row.kl_qp_scott, row.seconds
            ));
            rows.push(row);
            all_samples.push((case.name.clone(), method, x));
        }
    }
    Ok(Study { cases: cases.to_vec(), rows, search, samples: all_samples, seconds: t_all.elapsed().as_secs_f64() })
}

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "∞".into()
    }
}

impl Study {
    /// The table in Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| case | method | setting | KL(p‖q) scott | KL(q‖p) scott | KL(p‖q) h=0.03 | KL(q‖p) h=0.03 | exact KL(q‖p) | exact KL(p‖q) | mean | std | s |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for c in &self.cases {
            if let Ok(post) = c.posterior() {
                let (m, v) = post.moments();
                s += &format!(
                    "| {} | true posterior | σ={} | 0 | 0 | 0 | 0 | | | ({:.3}, {:.3}) | ({:.3}, {:.3}) | |\n",
                    c.name,
                    c.sigma,
                    m[0],
                    m[1],
                    v[0].sqrt(),
                    v[2].sqrt()
                );
            }
            for r in self.rows.iter().filter(|r| r.case == c.name) {
                s += &format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | ({:.3}, {:.3}) | ({:.3}, {:.3}) | {:.1} |\n",
                    r.case,
                    r.method,
                    r.setting,
                    fmt(r.kl_pq_scott),
                    fmt(r.kl_qp_scott),
                    fmt(r.kl_pq_fixed),
                    fmt(r.kl_qp_fixed),
                    r.exact_kl_qp.map(fmt).unwrap_or_default(),
                    r.exact_kl_pq.map(fmt).unwrap_or_default(),
                    r.mean[0],
                    r.mean[1],
                    r.std[0],
                    r.std[1],
                    r.seconds
                );
            }
        }
        s
    }

    /// Writes `table.csv`, `table.md`, `search.csv`, `samples_<case>_<method>.npy` and one
    /// contour figure per case, `contours_<case>.svg`, into `dir` (each file atomically).
    ///
    /// # Errors
    /// File-system or plotting errors.
    pub fn write(&self, dir: &Path) -> Result<()> {
        use scoreprior_core::io::{atomic_write, write_csv, write_npy};
        std::fs::create_dir_all(dir).map_err(|e| scoreprior_core::io::IoError::os(dir, e))?;
        #[derive(Serialize)]
        struct CsvRow<'a> {
            case: &'a str,
            method: &'a str,
            setting: &'a str,
            kl_pq_scott: f64,
            kl_qp_scott: f64,
            kl_pq_h003: f64,
            kl_qp_h003: f64,
            exact_kl_qp: Option<f64>,
            exact_kl_pq: Option<f64>,
            mean_x1: f64,
            mean_x2: f64,
            std_x1: f64,
            std_x2: f64,
            samples: usize,
            seconds: f64,
        }
        let rows: Vec<CsvRow> = self
            .rows
            .iter()
            .map(|r| CsvRow {
                case: &r.case,
                method: &r.method,
                setting: &r.setting,
                kl_pq_scott: r.kl_pq_scott,
                kl_qp_scott: r.kl_qp_scott,
                kl_pq_h003: r.kl_pq_fixed,
                kl_qp_h003: r.kl_qp_fixed,
                exact_kl_qp: r.exact_kl_qp,
                exact_kl_pq: r.exact_kl_pq,
                mean_x1: r.mean[0],
                mean_x2: r.mean[1],
                std_x1: r.std[0],
                std_x2: r.std[1],
                samples: r.samples,
                seconds: r.seconds,
            })
            .collect();
        write_csv(dir.join("table.csv"), &rows)?;
        atomic_write(dir.join("table.md"), self.markdown().as_bytes())?;
        write_csv(dir.join("search.csv"), &self.search)?;
        for (case, method, x) in &self.samples {
            let tag = format!("{method:?}").to_lowercase();
            write_npy(dir.join(format!("samples_{case}_{tag}.npy")), &[x.len() / 2, 2], x)?;
        }
        for case in &self.cases {
            super::contours::figure(self, case, &dir.join(format!("contours_{}.svg", case.name)))
                .map_err(|e| ExperimentError::Plot(e.to_string()))?;
        }
        Ok(())
    }
}
