//! Black-hole imaging runs (`forward: eht(…)`): the interferometer of the `measure` preset on
//! the image grid, the noisy visibilities (simulated or read), the data imaged (closure
//! quantities or visibilities), and `closures.json`, the closure χ² and cross-correlation
//! report of a finished run.

use std::path::Path;

use rand::SeedableRng;
use scoreprior_core::forward::interferometry::{
    nominal_resolution_uas, nxcorr, ClosureCovariance, ClosureProblem, Interferometer, UAS,
};
use scoreprior_core::forward::{EhtSettings, ForwardModel, Model};
use scoreprior_core::io::{atomic_write, read_npy, FitsSky, IoError};

use super::error::conflict;
use super::inputs::resolve;
use super::{invalid, DpiSettings, EhtData, ExperimentResult, Result};

/// The model and data of an `eht(…)` run.
pub struct EhtProblem {
    /// Image → data.
    pub model: Model,
    /// The data.
    pub y: Vec<f64>,
    /// The closure problem (`data: closures`), for its χ².
    pub closures: Option<ClosureProblem>,
    /// Field of view (µas).
    pub fov_uas: f64,
    /// The array's nominal resolution (µas).
    pub resolution_uas: f64,
    /// The sky header of FITS outputs.
    pub sky: FitsSky,
    /// A note for the user when the source name had to be changed for FITS.
    pub sky_note: Option<String>,
    /// What is imaged and with which noise, for the report (`metrics.json`'s `forward`).
    pub label: String,
}

/// With `settings.problem.forward` an `eht(…)` call: the interferometer of the `measure`
/// preset on the `h × w` grid, the noisy visibilities (read from `problem.y`; else with
/// `eht(obs=FILE)` the file's own visibilities, `truth` then serving only the metrics; else
/// simulated from `truth` with the settings' seed), and the model and data of `problem.data`.
/// The noise is the interferometer's own thermal σ (`problem.noise` does not apply: a noise
/// given is an error). `None` for any other forward model.
///
/// ```
/// use scoreprior::experiment::{eht::eht_problem, DpiSettings};
///
/// let mut s = DpiSettings::default();
/// s.problem.forward = "eht(fov=160)".into();
/// let truth = vec![0.01; 16 * 16];
/// let p = eht_problem(&s, 16, 16, Some(&truth)).unwrap().unwrap();
/// assert!(p.closures.is_some() && p.fov_uas > 0.0);
/// ```
///
/// # Errors
/// A non-square grid, a bad `eht(…)` specification, a `problem.noise`, a measurement file of the
/// wrong length, no data (neither truth, `y` nor observation file), an unknown `data`, an
/// observation whose FITS header would be invalid.
pub fn eht_problem(settings: &DpiSettings, h: usize, w: usize, truth: Option<&[f64]>) -> Result<Option<EhtProblem>> {
    let p = &settings.problem;
    let forward = p.forward.as_str();
    if !scoreprior_core::forward::PrimitiveSpec::parse(forward).is_ok_and(|s| s.name == "eht") {
        return Ok(None);
    }
    if h != w {
        return Err(conflict(
            &["problem.forward", "problem.x_true", "problem.size"],
            format!("problem.forward eht needs a square image, got {h}x{w}"),
        ));
    }
    let eht_settings = EhtSettings::parse(forward)
        .map_err(|e| invalid("problem.forward", format!("{forward}: {e}")))?
        .ok_or_else(|| invalid("problem.forward", format!("{forward}: expected `eht(key=value, ...)`")))?;
    if let Some(noise) = &p.noise {
        return Err(conflict(
            &["problem.noise", "problem.forward"],
            format!(
                "problem.noise {}: does not apply to problem.forward eht(…), whose noise is each visibility's thermal \
                 σ (the radiometer equation of its baseline, or the σ of an observation file); leave problem.noise out",
                noise
            ),
        ));
    }
    let eht = eht_settings.interferometer(h).map_err(|e| invalid("problem.forward", e.to_string()))?;
    let (sky, sky_note) = crate::measurement::sky_header_noted(&eht_settings, &eht)?;
    let observation = eht_settings.observation()?;
    // Visibility data carry the per-station error budget too (closures cancel it).
    let vis_model = match &observation {
        Some(o) if o.station_noise.iter().any(|&s| s > 0.0) => {
            let sig = o.visibility_sigma();
            scoreprior_core::forward::Model::new(
                eht.visibility_chain()?,
                scoreprior_core::forward::Noise::per_measurement([sig.clone(), sig].concat())?,
            )?
        }
        _ => eht.visibility_model()?,
    };
    let file = observation.as_ref().map(|_| eht_settings.observation_label());
    let (vis, source) = match (truth, &p.y, &file) {
        (_, None, Some(obs)) => {
            let o = observation.as_ref().expect("an observation with its label");
            (o.observation.visibilities(), format!("the visibilities of {obs} (with its σ)"))
        }
        (Some(x), _, None) => (
            vis_model.simulate(x, &mut rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed))?,
            "visibilities simulated from --x-true with thermal noise (the radiometer equation of each baseline)"
                .to_string(),
        ),
        (_, Some(path), _) => {
            let v = read_npy(resolve(path)).map_err(|e| invalid("problem.y", e.to_string()))?.data;
            if v.len() != vis_model.output_dim() {
                return Err(invalid(
                    "problem.y",
                    format!(
                        "{} values, but this eht coverage has {} visibilities ({} values [Re V; Im V]); give the \
                         y.npy that `scoreprior measure --forward {forward}` wrote",
                        v.len(),
                        vis_model.output_dim() / 2,
                        vis_model.output_dim(),
                    ),
                ));
            }
            let sigma = if file.is_some() { "the observation file's σ" } else { "σ from the radiometer equation" };
            (v, format!("the visibilities of {} ({sigma})", path.display()))
        }
        (None, None, None) => {
            return Err(conflict(&["problem.y", "problem.x_true"], "give exactly one of problem.y and problem.x_true"))
        }
    };
    let (fov_uas, resolution_uas) = (fov(&eht), nominal_resolution_uas(eht.coverage()));
    match p.data {
        EhtData::Closures | EhtData::ClosuresAndAmplitudes => {
            let with_amplitudes = p.data == EhtData::ClosuresAndAmplitudes;
            let (ratios, extra, what) = if with_amplitudes {
                let zero = &eht_settings.preprocessing.zero_baseline;
                // A simulation names its stations in full; observation files by their codes.
                let (a, b) = if observation.is_some() {
                    (zero.0.clone(), zero.1.clone())
                } else {
                    ("ALMA".to_string(), "APEX".to_string())
                };
                let ratios = eht.amplitude_ratios(&a, &b);
                if ratios.is_empty() {
                    return Err(conflict(
                        &["problem.data", "problem.forward"],
                        format!(
                            "problem.data closures+amplitudes: the observation has no {a}–{b} (zero-baseline) \
                             visibility to normalise amplitudes by; use problem.data closures"
                        ),
                    ));
                }
                let extra = observation.as_ref().map(|o| o.station_variance()).unwrap_or_default();
                (ratios, extra, format!(" and visibility amplitudes over {a}–{b}'s"))
            } else {
                (vec![], vec![], String::new())
            };
            let c = match eht_settings.closure_covariance {
                ClosureCovariance::Diagonal => eht.closure_problem_with_ratios(&vis, !p.no_debias, &ratios, &extra)?,
                // Gains per station (they cancel in closures, and correlate a station's ratios).
                ClosureCovariance::Scan => {
                    // A simulation has no station budget (as `extra` above): thermal noise only.
                    let gain = observation.as_ref().map(|o| o.station_noise.clone()).unwrap_or_default();
                    let gain = if with_amplitudes { gain } else { vec![] };
                    eht.closure_problem_scan(&vis, !p.no_debias, &ratios, &gain)?
                }
            };
            let debiased = if p.no_debias { "" } else { "debiased " };
            Ok(Some(EhtProblem {
                model: c.model.clone(),
                y: c.y.clone(),
                closures: Some(c),
                fov_uas,
                resolution_uas,
                sky,
                sky_note,
                label: format!("{forward}: closure phases and {debiased}log closure amplitudes{what} of {source}"),
            }))
        }
        EhtData::Visibilities => {
            if p.no_debias {
                return Err(conflict(
                    &["problem.no_debias", "problem.data"],
                    "problem.no_debias applies to problem.data closures only",
                ));
            }
            let label = format!("{forward}: {source}");
            Ok(Some(EhtProblem {
                model: vis_model,
                y: vis,
                closures: None,
                fov_uas,
                resolution_uas,
                sky,
                sky_note,
                label,
            }))
        }
    }
}

fn fov(eht: &Interferometer) -> f64 {
    eht.pixel_size() / UAS * eht.image_shape().w as f64
}

/// Writes `out/closures.json` for a finished closure run: reduced closure χ² of the posterior
/// mean, of the samples (mean) and of the truth; flux of the mean; mean posterior std; the
/// normalised cross-correlation of the mean with the truth. Returns a one-line summary.
///
/// ```no_run
/// use scoreprior::experiment::{eht::{eht_problem, write_closure_report}, DpiSettings};
///
/// let mut s = DpiSettings::default();
/// s.problem.forward = "eht(fov=160)".into();
/// s.output.out = "out/eht".into();
/// let (experiment, _) = s.build()?;
/// let result = experiment.run()?;
/// let (h, w) = result.shape;
/// let p = eht_problem(&s, h, w, result.x_true.as_deref())?.unwrap();
/// println!("{}", write_closure_report(p.closures.as_ref().unwrap(), &result, &s.output.out)?);
/// # Ok::<(), scoreprior::experiment::ExperimentError>(())
/// ```
///
/// # Errors
/// The χ² of a sample of the wrong size; the file cannot be written.
pub fn write_closure_report(p: &ClosureProblem, res: &ExperimentResult, out: &Path) -> Result<String> {
    let d = res.shape.0 * res.shape.1;
    let mean = &res.summary.mean;
    let chi_mean = p.chi2(mean)?;
    let kept: Vec<_> = res.summary.kept.chunks(d).map(|x| p.chi2(x)).collect::<Result<_, _>>()?;
    let k = kept.len().max(1) as f64;
    let chi_samples = (kept.iter().map(|c| c.phase).sum::<f64>() / k, kept.iter().map(|c| c.log_amp).sum::<f64>() / k);
    let truth = res.x_true.as_ref().map(|t| p.chi2(t)).transpose()?;
    let ncc = res.x_true.as_ref().map(|t| nxcorr(t, mean, res.shape.0, res.shape.0 / 4));
    let std_mean = res.summary.std.iter().sum::<f64>() / d as f64;
    let j = serde_json::json!({
        "closure_phases": p.n_phases, "log_closure_amplitudes": p.y.len() - p.n_phases - p.n_ratios,
        "amplitude_ratios": p.n_ratios,
        "chi2_mean": chi_mean, "chi2_samples": {"phase": chi_samples.0, "log_amp": chi_samples.1},
        "chi2_truth": truth, "flux_mean": mean.iter().sum::<f64>(), "posterior_std_mean": std_mean,
        "nxcorr": ncc.map(|c| c.0), "nxcorr_best_shift": ncc.map(|c| c.1),
        "seconds_training": res.report.seconds_training,
    });
    let path = out.join("closures.json");
    let text = serde_json::to_string_pretty(&j).map_err(|e| IoError::encode(&path, "JSON", e))?;
    atomic_write(path, text.as_bytes())?;
    Ok(format!(
        "closures: χ² of the mean {:.3} (phases) / {:.3} (log amplitudes), of the samples {:.3} / {:.3}{}; flux {:.3}; \
         mean posterior std {:.4}{}",
        chi_mean.phase,
        chi_mean.log_amp,
        chi_samples.0,
        chi_samples.1,
        truth.map(|t| format!(", of the truth {:.3} / {:.3}", t.phase, t.log_amp)).unwrap_or_default(),
        mean.iter().sum::<f64>(),
        std_mean,
        ncc.map(|c| format!("; nxcorr with the truth {:.4} (best shift {:.4})", c.0, c.1)).unwrap_or_default()
    ))
}
