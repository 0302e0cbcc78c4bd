//! What an experiment returns: the samples and their summary, the loss history, metrics of
//! the posterior mean and samples against the truth, and — for Gaussian denoising — the two
//! closed-form yardsticks on the same `y` (Wiener under a Gaussian, Tweedie under the score
//! model), plus the calibration `P(|x − mean| ≤ 2·std)`.

use std::path::Path;
use std::sync::Arc;

use scoreprior_core::dpi::{Batch, DpiHistory, SampleSummary, StepRecord};
use scoreprior_core::forward::ForwardModel;
use scoreprior_core::io::{atomic_write, write_npy, write_png_grid, IoError};
use scoreprior_core::metrics::{image_metrics, ImageMetrics};
use scoreprior_core::score::{Gaussian, ScoreModel};
use scoreprior_core::sde::AnySde;

use super::{ExperimentError, Result};

/// What a run measured (written to `metrics.json`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The posterior sampler: `dpi` or a baseline (`score-ald`, `dps`, `sde-proj`).
    pub method: String,
    /// Seconds per posterior sample of a baseline sampler (DPI: see `seconds_sampling`).
    pub seconds_per_sample: Option<f64>,
    /// The prior's label.
    pub prior: String,
    /// Whether the prior was the DSM surrogate.
    pub surrogate: bool,
    /// The forward model's label.
    pub forward: String,
    /// Optimisation steps in the history (a resumed run counts all).
    pub steps: usize,
    /// Wall time of the training steps run in this process.
    pub seconds_training: f64,
    /// Wall time of every training step in the history: over all the sessions of a resumed
    /// run (the sum of `losses.csv`'s `seconds`).
    pub seconds_training_total: f64,
    /// Per step run in this process.
    pub seconds_per_step: f64,
    /// Wall time of drawing the samples.
    pub seconds_sampling: f64,
    /// Samples drawn.
    pub samples: usize,
    /// Samples kept by the outlier filter.
    pub samples_kept: usize,
    /// Samples dropped by it.
    pub samples_dropped: usize,
    /// The last step's record.
    pub final_loss: Option<StepRecord>,
    /// Metrics of the posterior mean against the ground truth.
    pub mean_metrics: Option<ImageMetrics>,
    /// Metrics averaged over the kept samples.
    pub sample_metrics: Option<ImageMetrics>,
    /// Metrics of the naive reconstruction Aᵀy (denoising: y itself).
    pub naive_metrics: Option<ImageMetrics>,
    /// Against the closed-form posterior (Gaussian prior, Gaussian denoising).
    pub closed_form: Option<ClosedFormErrors>,
    /// Mean over pixels of the posterior std.
    pub mean_pixel_std: f64,
    /// Fraction of pixels with `|x_true − mean| ≤ 2·std` (calibration; ≈ 0.95 for a
    /// well-calibrated Gaussian-like posterior).
    pub coverage_2std: Option<f64>,
    /// Reference estimates on the same `y` (Gaussian denoising only).
    pub references: Option<DenoisingReferences>,
}

/// The two yardsticks of a denoising run, computed on the same `y`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct DenoisingReferences {
    /// Posterior mean under the reference Gaussian (the Wiener filter).
    pub wiener: Option<ImageMetrics>,
    /// Tweedie's posterior mean under the score prior (one network evaluation at `t*`,
    /// `σ_{t*}/α_{t*} = σ`): the exact posterior mean if the score is exact.
    pub tweedie: Option<ImageMetrics>,
    /// The matching time `t*` of Tweedie's estimate.
    pub tweedie_t: Option<f64>,
}

/// Errors of the DPI posterior against the closed-form Gaussian posterior (a Gaussian prior
/// with any linear forward model and Gaussian noise).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct ClosedFormErrors {
    /// RMSE of the DPI mean vs the exact posterior mean.
    pub mean_rmse: f64,
    /// Root mean square over pixels of (DPI mean − exact mean) / exact std: the mean's error
    /// in posterior standard deviations.
    pub mean_err_in_std: f64,
    /// Mean over pixels of |std_dpi − std_exact| / std_exact.
    pub std_rel_err: f64,
    /// Mean exact posterior per-pixel std (scale of the above).
    pub exact_mean_std: f64,
}

/// The outcome of [`Experiment::run`](super::Experiment::run).
#[derive(Debug, Clone)]
pub struct ExperimentResult {
    /// Image height and width.
    pub shape: (usize, usize),
    /// The measurement.
    pub y: Vec<f64>,
    /// The ground truth, when the measurement was simulated from one.
    pub x_true: Option<Vec<f64>>,
    /// Every sample drawn (`samples.x` is row-major `(n, H·W)`).
    pub samples: Batch,
    /// Mean, std and kept samples after the outlier filter.
    pub summary: SampleSummary,
    /// The loss history of every step (resumed runs included).
    pub history: DpiHistory,
    /// The measured numbers.
    pub report: Report,
    /// Wiener's posterior mean (Gaussian denoising with a reference Gaussian).
    pub wiener: Option<Vec<f64>>,
    /// Tweedie's posterior mean (Gaussian denoising with a score prior).
    pub tweedie: Option<Vec<f64>>,
    /// The exact posterior mean and std (Gaussian prior, Gaussian denoising).
    pub exact: Option<(Vec<f64>, Vec<f64>)>,
    /// The trained posterior flow `q` (DPI runs; `None` for the baseline samplers, which have
    /// no density, and for positive (softplus) posteriors): its `log_prob_and_grad` evaluates
    /// `log q` anywhere.
    pub flow: Option<std::sync::Arc<scoreprior_models::realnvp::RealNvp>>,
}

pub(crate) struct Timing {
    pub seconds_training: f64,
    pub seconds_per_step: f64,
    pub seconds_sampling: f64,
}

pub(crate) struct Parts<'a> {
    pub forward: &'a dyn ForwardModel,
    pub forward_label: String,
    pub prior_label: String,
    pub surrogate: bool,
    pub score: Option<(Arc<dyn ScoreModel>, AnySde)>,
    pub exact_gaussian: Option<Gaussian>,
    pub wiener_reference: Option<Gaussian>,
    pub h: usize,
    pub w: usize,
    pub y: Vec<f64>,
    pub truth: Option<Vec<f64>>,
    pub naive: Option<Vec<f64>>,
    pub samples: Batch,
    pub summary: SampleSummary,
    pub history: DpiHistory,
    pub timing: Timing,
    pub outlier: f64,
}

/// Largest image (pixels) whose closed-form Gaussian posterior a run computes for a
/// non-denoising linear model.
const CLOSED_FORM_MAX_DIM: usize = 4096;

/// Metrics, yardsticks and calibration of a finished run.
pub(crate) fn measure(p: Parts<'_>) -> Result<ExperimentResult> {
    let (h, w) = (p.h, p.w);
    let d = h * w;
    let summary = &p.summary;
    let metrics = |img: &[f64]| -> Result<Option<ImageMetrics>> {
        p.truth.as_ref().map(|x| image_metrics(img, x, h, w, 1.0)).transpose().map_err(ExperimentError::from)
    };
    let mean_metrics = metrics(&summary.mean)?;
    let sample_metrics = match &p.truth {
        Some(x) if summary.n_kept > 0 => {
            let mut acc = [0.0; 3];
            for s in summary.kept.chunks(d) {
                let m = image_metrics(s, x, h, w, 1.0)?;
                acc[0] += m.mse;
                acc[1] += m.psnr;
                acc[2] += m.ssim;
            }
            let k = summary.n_kept as f64;
            Some(ImageMetrics { mse: acc[0] / k, psnr: acc[1] / k, ssim: acc[2] / k })
        }
        _ => None,
    };
    let naive_metrics = match &p.naive {
        Some(n) if n.len() == d => metrics(n)?,
        _ => None,
    };
    let coverage_2std = p.truth.as_ref().map(|x| {
        let inside =
            x.iter().zip(&summary.mean).zip(&summary.std).filter(|((x, m), s)| (*x - *m).abs() <= 2.0 * *s).count();
        inside as f64 / d as f64
    });
    let sigma = p.forward.denoising_sigma();
    let (mut wiener, mut tweedie, mut exact, mut references) = (None, None, None, None);
    if let Some(sigma) = sigma {
        let mut refs = DenoisingReferences { wiener: None, tweedie: None, tweedie_t: None };
        if let Some(g) = p.wiener_reference.as_ref().filter(|g| g.mean().len() == d) {
            let (wm, _) = scoreprior_core::denoise::wiener(g.mean(), &g.covariance(), sigma, &p.y)?;
            refs.wiener = metrics(&wm)?;
            wiener = Some(wm);
        }
        if let Some((m, sde)) = &p.score {
            let tm = scoreprior_core::denoise::tweedie(m.as_ref(), sde, sigma, &p.y)?;
            refs.tweedie_t = Some(scoreprior_core::denoise::matching_time(sde, sigma)?);
            refs.tweedie = metrics(&tm)?;
            tweedie = Some(tm);
        }
        if let Some(g) = &p.exact_gaussian {
            exact = Some(scoreprior_core::denoise::wiener(g.mean(), &g.covariance(), sigma, &p.y)?);
        }
        references = Some(refs);
    } else if let Some(g) = p.exact_gaussian.as_ref().filter(|g| g.mean().len() == d && p.forward.is_linear()) {
        // Any other linear model with Gaussian noise: the posterior is still Gaussian, in
        // closed form (`O(D³)`; skipped above the size where that stops being cheap).
        if d <= CLOSED_FORM_MAX_DIM {
            let (pm, pc, _) =
                scoreprior_core::denoise::linear_gaussian_posterior(p.forward, &p.y, g.mean(), &g.covariance())?;
            let ps = (0..d).map(|i| pc[i * d + i].max(0.0).sqrt()).collect();
            exact = Some((pm, ps));
        }
    }
    let closed_form = exact.as_ref().map(|(pm, ps)| {
        let rmse = (pm.iter().zip(&summary.mean).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / d as f64).sqrt();
        let rel = ps.iter().zip(&summary.std).map(|(a, b)| (a - b).abs() / a).sum::<f64>() / d as f64;
        let in_std = (pm.iter().zip(&summary.mean).zip(ps).map(|((a, b), s)| ((a - b) / s).powi(2)).sum::<f64>()
            / d as f64)
            .sqrt();
        ClosedFormErrors {
            mean_rmse: rmse,
            mean_err_in_std: in_std,
            std_rel_err: rel,
            exact_mean_std: ps.iter().sum::<f64>() / d as f64,
        }
    });
    let _ = p.outlier;
    let report = Report {
        method: "dpi".into(),
        seconds_per_sample: None,
        prior: p.prior_label,
        surrogate: p.surrogate,
        forward: p.forward_label,
        steps: p.history.records.len(),
        seconds_training: p.timing.seconds_training,
        seconds_training_total: p.history.records.iter().map(|r| r.seconds).sum(),
        seconds_per_step: p.timing.seconds_per_step,
        seconds_sampling: p.timing.seconds_sampling,
        samples: p.samples.n,
        samples_kept: summary.n_kept,
        samples_dropped: summary.n_dropped,
        final_loss: p.history.records.last().copied(),
        mean_metrics,
        sample_metrics,
        naive_metrics,
        closed_form,
        mean_pixel_std: summary.std.iter().sum::<f64>() / d as f64,
        coverage_2std,
        references,
    };
    Ok(ExperimentResult {
        shape: (h, w),
        y: p.y,
        x_true: p.truth,
        samples: p.samples,
        summary: p.summary,
        history: p.history,
        report,
        wiener,
        tweedie,
        exact,
        flow: None,
    })
}

impl ExperimentResult {
    /// Writes the run's arrays and pictures into `dir` (created if missing), each file
    /// atomically: `samples.npy`, `mean.npy`, `std.npy`, `y.npy` (and `x_true.npy`,
    /// `wiener.npy`, `tweedie.npy`, `exact_mean.npy`, `exact_std.npy` when known), the PNGs
    /// `samples.png` (up to 64 kept samples), `mean.png`, `std.png`, `y.png` (when `y` is an
    /// image), `x_true.png`, `wiener.png`, `tweedie.png`, and last `metrics.json` (the [`Report`]).
    ///
    /// # Errors
    /// File-system errors, naming the path.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let out = dir.as_ref();
        std::fs::create_dir_all(out).map_err(|e| IoError::os(out, e))?;
        let (h, w) = self.shape;
        let d = h * w;
        let s = &self.summary;
        write_npy(out.join("samples.npy"), &[self.samples.n, h, w], &self.samples.x)?;
        write_npy(out.join("mean.npy"), &[h, w], &s.mean)?;
        write_npy(out.join("std.npy"), &[h, w], &s.std)?;
        let shown = s.n_kept.min(64);
        if shown > 0 {
            write_png_grid(out.join("samples.png"), &s.kept[..shown * d], h, w, 8, 0.0, 1.0, 4)?;
        }
        write_png_grid(out.join("mean.png"), &s.mean, h, w, 1, 0.0, 1.0, 8)?;
        let smax = s.std.iter().cloned().fold(1e-12, f64::max);
        write_png_grid(out.join("std.png"), &s.std, h, w, 1, 0.0, smax, 8)?;
        if let Some(x) = &self.x_true {
            write_png_grid(out.join("x_true.png"), x, h, w, 1, 0.0, 1.0, 8)?;
            write_npy(out.join("x_true.npy"), &[h, w], x)?;
        }
        write_npy(out.join("y.npy"), &[self.y.len()], &self.y)?;
        if self.y.len() == d {
            write_png_grid(out.join("y.png"), &self.y, h, w, 1, 0.0, 1.0, 8)?;
        }
        for (name, img) in [("wiener", &self.wiener), ("tweedie", &self.tweedie)] {
            if let Some(img) = img {
                write_npy(out.join(format!("{name}.npy")), &[h, w], img)?;
                write_png_grid(out.join(format!("{name}.png")), img, h, w, 1, 0.0, 1.0, 8)?;
            }
        }
        if let Some((m, sd)) = &self.exact {
            write_npy(out.join("exact_mean.npy"), &[h, w], m)?;
            write_npy(out.join("exact_std.npy"), &[h, w], sd)?;
        }
        let metrics = out.join("metrics.json");
        let json = serde_json::to_string_pretty(&self.report).map_err(|e| IoError::encode(&metrics, "JSON", e))?;
        atomic_write(&metrics, json.as_bytes())?;
        Ok(())
    }

    /// The one-screen table of the run's estimates against the truth (empty without one).
    pub fn summary_table(&self) -> String {
        summary_table(&self.report)
    }
}

/// The one-screen table of a report (empty without a ground truth).
pub fn summary_table(res: &Report) -> String {
    let Some(mean) = res.mean_metrics else { return String::new() };
    let who = if res.method == "dpi" { "DPI".to_string() } else { res.method.clone() };
    let (mean_label, samples_label) = (format!("{who} posterior mean"), format!("{who} samples (average)"));
    let mut rows: Vec<(&str, ImageMetrics)> = vec![(&mean_label, mean)];
    if let Some(m) = res.sample_metrics {
        rows.push((&samples_label, m));
    }
    if let Some(r) = &res.references {
        if let Some(m) = r.tweedie {
            rows.push(("Tweedie E[x|y] (score prior)", m));
        }
        if let Some(m) = r.wiener {
            rows.push(("Wiener (Gaussian prior)", m));
        }
    }
    if let Some(m) = res.naive_metrics {
        rows.push(("measurement y / A^T y", m));
    }
    let mut s = String::from("estimate                          MSE      PSNR (dB)  SSIM\n");
    for (name, m) in rows {
        s.push_str(&format!("{name:<32}  {:.5}  {:>8.2}  {:.3}\n", m.mse, m.psnr, m.ssim));
    }
    if let Some(c) = res.coverage_2std {
        s.push_str(&format!(
            "calibration: {:.1} % of pixels within 2 posterior std of the truth (mean std {:.4})\n",
            100.0 * c,
            res.mean_pixel_std
        ));
    }
    s
}
