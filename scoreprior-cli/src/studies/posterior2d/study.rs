//! Running the study: each method's samples (exact, DPI under the exact PF-ODE prior, the
//! baselines with their knob chosen by grid search on `KL(p‖q) + KL(q‖p)`), and their KDE
//! divergences from the true posterior on the case's grid.

use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use scoreprior_core::baselines::{Dps, ScoreAld, SdeProj};
use scoreprior_core::divergence::Divergence;
use scoreprior_core::dpi::{Annealing, DpiConfig};
use scoreprior_core::prior::ScorePriorConfig;
use scoreprior_core::sde::{AnySde, VpSde};
use scoreprior_core::Error;

use super::case::{Case, Method};
use super::settings::StudySettings;
use crate::studies::kde::{kde_log_density, kl_on_grid, normalise_log, Bandwidth};
use scoreprior::experiment::{Experiment, PosteriorSettings, Prior, Result};

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
        Method::Daps => s.daps(value).sample(model.as_ref(), &sde, &forward, &y, n, &mut rng),
        Method::PnpDm => s.pnp_dm(value).sample(model.as_ref(), &sde, &forward, &y, n, &mut rng),
        Method::Exact => Ok(case.posterior()?.sample(&mut rng, n)),
        Method::Dpi => return Err(Error::unsupported("DPI is not a baseline").into()),
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
            ..Default::default()
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
    let flow = res.flow.ok_or_else(|| Error::inconsistent("DPI", "returned no flow"))?;
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
        for method in Method::ALL {
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
                        flow.log_prob_and_grad(&pts, pts.len() / 2).map_err(|e| e.context("flow density"))?;
                    let kl_pq = kl_on_grid(&truth, &lq_grid, case.grid.cell_area());
                    (x, Some((kl_qp, kl_pq)), None)
                }
                Method::Exact => (baseline_samples(case, method, 0.0, s.samples, s, s.seed ^ 0xE)?, None, None),
                _ => {
                    let value = if tune_here {
                        let values = match method {
                            Method::ScoreAld => &s.ald_steps,
                            Method::Dps => &s.zetas,
                            Method::Daps => &s.daps_step_sizes,
                            Method::PnpDm => &s.pnp_rho_decays,
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
                        let found = tuned.iter().find(|(c, m, _)| *c == case.tuned_on && *m == method);
                        let later =
                            || Error::inconsistent("tuned_on", format!("case {} is tuned on a later case", case.name));
                        found.map(|t| t.2).ok_or_else(later)?
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
