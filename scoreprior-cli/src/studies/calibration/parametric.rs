//! The parametric reference of the EHT runs: for a truth of a family with fixed parameters (a
//! ring, a crescent, a crescent plus a blob), the exact posterior over its generator's own
//! parameters (uniform over [`CompactSources::default`]'s ranges) under DPI's closure likelihood
//! and data ([`ParametricPosterior`], adaptive random-walk Metropolis), measured as DPI's samples
//! are. Where DPI misses the truth and this posterior covers it, the learned prior is the cause;
//! where both miss, the likelihood is.

use std::time::Instant;

use scoreprior_core::forward::interferometry::{
    CompactSources, McmcSettings, ParametricPosterior, SourceFamily, TestSource,
};
use serde::{Deserialize, Serialize};

use super::denoising::pixel_row;
use super::eht_runs::EhtContext;
use super::measures::{
    central_interval, circular_interval, finite, mean_of, pixel_measures, ring_coverage, ring_measures,
};
use super::report::CalibrationRow;
use super::settings::{CalibrationSettings, EHT_FOV_UAS, EHT_NPIX};
use scoreprior::experiment::{invalid_setting, Result};

/// Settings of the parametric reference (`calibration-study --parametric-reference`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParametricReference {
    /// The sampler: chains, warm-up and kept steps, starting candidates (its seed is the
    /// study's: run `i` uses `seed + i`, as its noise does).
    pub mcmc: McmcSettings,
    /// Only the reference: no DPI runs (`--parametric-only`).
    pub only: bool,
}

impl Default for ParametricReference {
    /// [`McmcSettings::default`]: 8 chains of 4,000 warm-up and 4,000 kept steps.
    fn default() -> Self {
        ParametricReference { mcmc: McmcSettings::default(), only: false }
    }
}

impl ParametricReference {
    /// Checks the settings, naming the flag.
    pub(super) fn validate(&self) -> Result<()> {
        let m = &self.mcmc;
        for (flag, v, min) in [
            ("--mcmc-chains", m.chains, 2),
            ("--mcmc-steps", m.steps, 4),
            ("--mcmc-candidates", m.candidates, m.chains),
        ] {
            if v < min {
                return Err(invalid_setting(flag, format!("must be at least {min}, got {v}")));
            }
        }
        Ok(())
    }
}

/// The source family of a truth, `None` for a blob mixture (no fixed parameters).
pub(super) fn family(source: &TestSource) -> Option<SourceFamily> {
    SourceFamily::of(source).ok().map(|(f, _)| f)
}

/// One parameter's posterior interval at 95 % against the truth's value (angles circular).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParameterInterval {
    /// The parameter's name ([`SourceFamily::parameter_names`]).
    pub name: String,
    /// The truth's value.
    pub truth: f64,
    /// Posterior median (circular mean for the angle).
    pub median: f64,
    /// The 95 % central interval.
    pub lo: f64,
    /// Its upper end.
    pub hi: f64,
    /// Whether the truth lies in it.
    pub inside: bool,
}

/// The sampler's diagnostics and the parameters' intervals (`row.json` → `mcmc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McmcSummary {
    /// `ring`, `crescent` or `crescent+blob`.
    pub family: String,
    /// Chains, and kept draws per chain.
    pub chains: usize,
    /// Kept steps per chain.
    pub steps: usize,
    /// Acceptance rate of each chain over its kept steps.
    pub acceptance: Vec<f64>,
    /// Largest split-R̂ over the parameters (`None`: no parameter varies).
    pub rhat_max: Option<f64>,
    /// Smallest effective sample size over the parameters.
    pub ess_min: Option<f64>,
    /// Each parameter's split-R̂ (`None` for a constant one).
    pub rhat: Vec<Option<f64>>,
    /// Each parameter's effective sample size.
    pub ess: Vec<Option<f64>>,
    /// Each parameter's 95 % interval against the truth.
    pub parameters: Vec<ParameterInterval>,
    /// Log-posterior evaluations.
    pub evaluations: usize,
    /// Chains restarted during the warm-up from a better chain, having stayed in a minor mode
    /// (`None` in rows written before it was recorded).
    #[serde(default)]
    pub restarted: Option<usize>,
}

/// The settings of the parametric reference of run `i` (`eht-<i>-parametric/settings.json`):
/// the data's keys as in the DPI run's, and the sampler's.
pub(super) fn parametric_run_settings(
    s: &CalibrationSettings,
    p: &ParametricReference,
    i: usize,
    kind: &str,
) -> serde_json::Value {
    let seed = s.seed.wrapping_add(i as u64);
    serde_json::json!({
        "problem": "eht", "index": i, "kind": kind, "source_seed": s.source_seed, "flux_jy": s.flux_jy,
        "sources": "CompactSources::default()", "npix": EHT_NPIX, "fov_uas": EHT_FOV_UAS,
        "array": "EHT2017", "observation": "sgr_a_star", "pulse": "delta", "data": "closures (debiased)",
        "noise_seed": seed, "levels": s.levels, "ring_pixel_uas": EHT_FOV_UAS / EHT_NPIX as f64,
        "reference": "parametric posterior: uniform prior over the generator's ranges, adaptive random-walk Metropolis",
        "pixels": "samples at the truth's offset, scaled to its flux",
        "mcmc": {"chains": p.mcmc.chains, "warmup": p.mcmc.warmup, "steps": p.mcmc.steps,
                 "candidates": p.mcmc.candidates, "seed": seed},
        "samples": s.samples,
    })
}

/// Samples the parametric posterior of EHT source `i` (the DPI run's data) and measures it on
/// `samples` draws spread evenly over the chains' kept steps (the parameters' own intervals use
/// every draw).
///
/// The closure likelihood does not depend on the position, so the sampled offsets are the
/// prior's; DPI's posterior holds one position and its truth is aligned to it. The per-pixel
/// measures therefore use every draw's shape at the truth's own offset, scaled to the truth's
/// flux (as DPI's flux constraint holds its samples), and the truth is then aligned to their
/// mean as DPI's is (an offset near 0 is the check). The ring measures do not see the position.
pub(super) fn parametric_run(
    s: &CalibrationSettings,
    p: &ParametricReference,
    ctx: &EhtContext,
    i: usize,
) -> Result<CalibrationRow> {
    let (n, fov) = (EHT_NPIX, EHT_FOV_UAS);
    let problem = ctx.closure_problem(s, i)?;
    let (family, truth) = SourceFamily::of(ctx.source(i))?;
    let post = ParametricPosterior::new(&problem.model, &problem.y, family, CompactSources::default(), n, fov)?;
    let mcmc = McmcSettings { seed: s.seed.wrapping_add(i as u64), ..p.mcmc };
    let t0 = Instant::now();
    let run = post.sample(&mcmc)?;
    let seconds = t0.elapsed().as_secs_f64();
    let x = ctx.truth(i);
    let flux: f64 = x.iter().sum();
    let k = truth.len();
    let images: Vec<Vec<f64>> = run
        .thinned(s.samples)
        .into_iter()
        .map(|mut th| {
            (th[k - 2], th[k - 1]) = (truth[k - 2], truth[k - 1]);
            let img = post.image(&th)?;
            let total: f64 = img.iter().sum();
            Ok(img.into_iter().map(|v| v * flux / total).collect())
        })
        .collect::<Result<_>>()?;
    let samples: Vec<&[f64]> = images.iter().map(Vec::as_slice).collect();
    let mean = mean_of(&samples, n * n);
    let (aligned, offset) = ctx.aligned_truth(i, &mean)?;
    let pm = pixel_measures(&samples, &aligned, &mean, &s.levels);
    let chi = problem.chi2(&pm.mean)?;
    let ring = ring_measures(x).map(|t| ring_coverage(&samples, t, &s.levels));
    let names = family.parameter_names();
    let parameters = (0..k)
        .map(|q| {
            let v: Vec<f64> = run.draws.iter().flatten().map(|th| th[q]).collect();
            let angle = names[q] == "angle_deg";
            let interval = |level: f64| {
                let iv =
                    if angle { circular_interval(&v, level, truth[q]) } else { central_interval(&v, level, truth[q]) };
                iv.ok_or_else(|| invalid_setting("--mcmc-steps", "the sampler kept no draws"))
            };
            let (iv, mid) = (interval(0.95)?, interval(1e-12)?);
            Ok(ParameterInterval {
                name: names[q].to_string(),
                truth: truth[q],
                median: 0.5 * (mid.lo + mid.hi),
                lo: iv.lo,
                hi: iv.hi,
                inside: iv.inside,
            })
        })
        .collect::<Result<_>>()?;
    let opt = |v: &[f64]| v.iter().map(|&x| finite(x)).collect::<Vec<_>>();
    let summary = McmcSummary {
        family: family.to_string(),
        chains: mcmc.chains,
        steps: mcmc.steps,
        acceptance: run.acceptance.clone(),
        rhat_max: run.rhat.iter().cloned().filter(|r| r.is_finite()).reduce(f64::max),
        ess_min: run.ess.iter().cloned().filter(|r| r.is_finite()).reduce(f64::min),
        rhat: opt(&run.rhat),
        ess: opt(&run.ess),
        parameters,
        evaluations: run.evaluations,
        restarted: Some(run.restarted),
    };
    Ok(CalibrationRow {
        chi2_phase: finite(chi.phase),
        chi2_log_amp: finite(chi.log_amp),
        offset_uas: Some(offset),
        ring,
        mcmc: Some(summary),
        ..pixel_row(format!("eht-{i}-parametric"), i, ctx.kinds[i].to_string(), &s.levels, pm, samples.len(), seconds)
    })
}

#[cfg(test)]
mod tests {
    use super::super::eht_runs::eht_run_settings;
    use super::*;

    /// The reference lives in its own folders: asking for it changes no DPI run's settings, so
    /// that a study folder of earlier runs still resumes with it.
    #[test]
    fn the_reference_leaves_the_dpi_runs_settings_alone() {
        let s = CalibrationSettings::eht();
        let with = CalibrationSettings { parametric: Some(ParametricReference::default()), ..s.clone() };
        for (i, kind) in [(0, "crescent"), (2, "ring")] {
            assert_eq!(eht_run_settings(&s, i, kind, "sha"), eht_run_settings(&with, i, kind, "sha"));
        }
        // Its own settings hold the sampler's, with run i's seed.
        let p = parametric_run_settings(&with, &ParametricReference::default(), 2, "ring");
        assert_eq!(
            (p["mcmc"]["chains"].as_u64(), p["mcmc"]["seed"].as_u64(), p["noise_seed"].as_u64()),
            (Some(8), Some(2), Some(2))
        );
    }

    #[test]
    fn bad_reference_settings_name_their_flag() {
        let mut p = ParametricReference::default();
        p.mcmc.chains = 1;
        assert!(p.validate().unwrap_err().to_string().contains("--mcmc-chains"));
        let mut p = ParametricReference::default();
        p.mcmc.candidates = 4;
        assert!(p.validate().unwrap_err().to_string().contains("--mcmc-candidates"));
        let s = CalibrationSettings {
            parametric: Some(ParametricReference::default()),
            ..CalibrationSettings::denoising()
        };
        assert!(s.validate().unwrap_err().to_string().contains("--parametric-reference"));
    }
}
