//! Training runs that write a loss CSV and resume from checkpoints: the NCSN++ score network
//! by denoising score matching ([`ScoreTraining`]), and the loss-CSV resume it shares with the
//! RealNVP density of `train-flow` ([`resume_loss_rows`]): a resumed run keeps the rows of the
//! steps its checkpoint holds, so its files match an uninterrupted run's.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::run_folder::{RunManifest, RunState};
use rand::SeedableRng;
use scoreprior_core::io::IoError;
use scoreprior_core::sde::VpSde;
use scoreprior_models::checkpoint;
use scoreprior_models::data::{load_dataset, Dataset, Preprocess, Split};
use scoreprior_models::ncsnpp::{NcsnppConfig, NcsnppNet};
use scoreprior_models::sample::sample_sde;
use scoreprior_models::score::NcsnppScore;
use scoreprior_models::train::{TrainConfig, Trainer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::plot::{Figure, Series};
use scoreprior::experiment::{ExperimentError, Result};
use scoreprior::monitor::Monitor;

/// A row of a loss CSV, which knows how many optimiser steps are done once it is written.
pub trait LossRow: Serialize + DeserializeOwned {
    /// Steps done after this row's step: a checkpoint taken after `n` steps holds exactly the
    /// rows with `steps_done() ≤ n`.
    fn steps_done(&self) -> u64;
}

/// The rows of the loss CSV at `path` that a run resumed from a checkpoint after `done` steps
/// keeps: a killed run may have logged steps its last checkpoint does not hold, and those are
/// redone, so keeping them would log them twice.
///
/// # Errors
/// The file cannot be read or parsed.
///
/// ```
/// use scoreprior_cli::training::{resume_loss_rows, LossRow};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Row {
///     step: u64,
///     loss: f64,
/// }
/// impl LossRow for Row {
///     fn steps_done(&self) -> u64 {
///         self.step
///     }
/// }
/// let path = std::env::temp_dir().join(format!("scoreprior-doc-loss-{}.csv", std::process::id()));
/// std::fs::write(&path, "step,loss\n1,0.5\n2,0.4\n3,0.3\n").unwrap();
/// let kept: Vec<Row> = resume_loss_rows(&path, 2).unwrap();
/// assert_eq!(kept.len(), 2);
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn resume_loss_rows<R: LossRow>(path: &Path, done: u64) -> Result<Vec<R>> {
    let mut rows: Vec<R> = scoreprior_core::io::read_csv(path)?;
    rows.retain(|r| r.steps_done() <= done);
    Ok(rows)
}

/// One row of the NCSN++ run's `loss.csv`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ScoreLossRow {
    /// The step, counted from 1.
    pub step: u64,
    /// The batch's DSM loss per image.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Seconds since this process started training.
    pub elapsed_s: f64,
}

impl LossRow for ScoreLossRow {
    fn steps_done(&self) -> u64 {
        // `step` counts from 1: the row of the n-th step is written once n steps are done.
        self.step
    }
}

/// Draws the loss curve (per-step loss and its 100-step moving average, log scale) from a
/// loss CSV of [`ScoreLossRow`]s.
///
/// # Errors
/// The CSV cannot be read or holds no rows; the figure cannot be written.
pub fn plot_loss(csv: &Path, svg: &Path) -> Result<()> {
    let rows: Vec<ScoreLossRow> = scoreprior_core::io::read_csv(csv)?;
    let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.step as f64, r.loss)).collect();
    if pts.is_empty() {
        return Err(plain(csv, "no loss rows".into()));
    }
    let w = 100usize;
    let avg: Vec<(f64, f64)> = (0..pts.len())
        .step_by(10)
        .map(|i| {
            let lo = i.saturating_sub(w - 1);
            let m = pts[lo..=i].iter().map(|p| p.1).sum::<f64>() / (i - lo + 1) as f64;
            (pts[i].0, m)
        })
        .collect();
    let thin: Vec<(f64, f64)> = pts.iter().step_by(5).cloned().collect();
    Figure::new("DSM training loss (per image, ½‖ε̂ − z‖²)", "step", "loss")
        .log_axes(false, true)
        .with(Series::points("batch loss (every 5th step)", thin))
        .with(Series::line("100-step moving average", avg))
        .write(svg)
        .map_err(|e| ExperimentError::Plot(e.to_string()))
}

/// An NCSN++ training run by denoising score matching under the VP SDE: what defines it (data,
/// image size, network, optimiser, seed; compared on resume through [`ScoreTraining::manifest`])
/// and how long and how often it checkpoints and samples (free to change between resumes).
#[derive(Debug, Clone)]
pub struct ScoreTraining {
    /// Training images (IDX, `.npy` or a PNG folder, as [`load_dataset`] reads them).
    pub data: PathBuf,
    /// Image side after area-averaging resize.
    pub size: usize,
    /// Use only the first images.
    pub limit: Option<usize>,
    /// Name of the network preset the network came from (recorded in the manifest).
    pub preset: String,
    /// The network.
    pub network: NcsnppConfig,
    /// The optimiser and its seed.
    pub config: TrainConfig,
    /// Total optimiser steps (a resumed run continues up to this count).
    pub steps: u64,
    /// Steps between checkpoints (the last step is always checkpointed).
    pub ckpt_every: u64,
    /// Steps between sample grids (0: never).
    pub sample_every: u64,
    /// Log lines every 50 steps (for runs without a progress display).
    pub log_lines: bool,
}

impl ScoreTraining {
    /// What defines the run, for `run.json`: data, image size, network, optimiser and seed.
    ///
    /// # Errors
    /// The data cannot be fingerprinted.
    pub fn manifest(&self) -> Result<RunManifest> {
        let c = &self.config;
        let config = serde_json::json!({
            "size": self.size,
            "limit": self.limit,
            "config": self.preset,
            "network": self.network,
            "batch_size": c.batch_size,
            "lr": c.lr,
            "warmup": c.warmup,
            "ema_rate": c.ema_rate,
            "grad_clip": if c.grad_clip.is_finite() { serde_json::json!(c.grad_clip) } else { serde_json::json!("inf") },
            "random_flip": c.random_flip,
        });
        Ok(RunManifest::new("train", config).with_seed(c.seed).with_input("--data", &self.data)?)
    }

    /// Trains in `out` (already this run's own folder, checked against `manifest`, which is
    /// written once the trainer is ready and marked complete at the end): resumes from
    /// `out/checkpoint.safetensors` if there is one, appends to `out/loss.csv` (see
    /// [`resume_loss_rows`]), checkpoints `checkpoint.safetensors` and `ema.safetensors`, and
    /// writes sample grids to `out/samples/` and the loss curve to `out/loss.svg`.
    ///
    /// # Errors
    /// Unreadable data, a checkpoint for other images, the trainer's and the files' errors.
    pub fn run(&self, out: &Path, manifest: RunManifest, monitor: &mut dyn Monitor) -> Result<()> {
        let data = load_dataset(&self.data, Split::Train, Some((self.size, self.size)), self.limit)?;
        monitor.note(&format!(
            "data: {} images of {}x{}x{} from {}",
            data.len(),
            data.c,
            data.h,
            data.w,
            self.data.display()
        ));
        let ck_path = out.join("checkpoint.safetensors");
        let mut trainer = self.trainer(&data, &ck_path, monitor)?;
        monitor.note(&format!(
            "network: {} parameters, config {:?}",
            trainer.net().num_params(),
            trainer.net().config()
        ));
        manifest.write(out)?;
        // Made only once the manifest marks the folder as this run's: a run refused while the
        // trainer is built (sizes, checkpoint) leaves no folder of unknown origin behind.
        let samples_dir = out.join("samples");
        std::fs::create_dir_all(&samples_dir).map_err(|e| plain(&samples_dir, e.to_string()))?;
        let csv_path = out.join("loss.csv");
        let start = trainer.step_count();
        let mut csv = open_loss_csv::<ScoreLossRow>(&csv_path, start, "step,loss,grad_norm,lr,elapsed_s\n")?;
        monitor.stage("train", self.steps);
        let t0 = Instant::now();
        let mut avg = f64::NAN;
        while trainer.step_count() < self.steps {
            let s = trainer.step(&data)?;
            avg = if avg.is_nan() { s.loss } else { 0.98 * avg + 0.02 * s.loss };
            let elapsed_s = t0.elapsed().as_secs_f64();
            let row = ScoreLossRow { step: s.step, loss: s.loss, grad_norm: s.grad_norm, lr: s.lr, elapsed_s };
            csv.serialize(row).map_err(|e| plain(&csv_path, e.to_string()))?;
            monitor.update(s.step, &|| format!("loss {avg:.3} |g| {:.2}", s.grad_norm));
            if self.log_lines && s.step % 50 == 0 {
                let rate = (s.step - start) as f64 / t0.elapsed().as_secs_f64();
                monitor.note(&format!("step {} loss(avg) {avg:.4} {rate:.3} steps/s", s.step));
            }
            let done = s.step == self.steps;
            if s.step % self.ckpt_every == 0 || done {
                csv.flush().map_err(|e| plain(&csv_path, e.to_string()))?;
                let (meta, t) = trainer.checkpoint(true);
                checkpoint::save(&ck_path, trainer.net(), &meta, &t)?;
                let (meta, t) = trainer.checkpoint(false);
                checkpoint::save(out.join("ema.safetensors"), trainer.net(), &meta, &t)?;
            }
            if self.sample_every > 0 && (s.step % self.sample_every == 0 || done) {
                sample_grid(&trainer, &out.join(format!("samples/step_{:06}.png", s.step)))?;
            }
        }
        monitor.finish();
        csv.flush().map_err(|e| plain(&csv_path, e.to_string()))?;
        plot_loss(&csv_path, &out.join("loss.svg"))?;
        manifest.with_state(RunState::Complete).write(out)?;
        monitor.note(&format!("done: {} steps in {:.1} s", trainer.step_count() - start, t0.elapsed().as_secs_f64()));
        Ok(())
    }

    /// The trainer: resumed from `ck_path` when it exists (it must be for the data's image
    /// shape), else a new network with this run's optimiser.
    fn trainer(&self, data: &Dataset, ck_path: &Path, monitor: &mut dyn Monitor) -> Result<Trainer> {
        if ck_path.exists() {
            let (net, meta, t) = checkpoint::load_any(ck_path)?;
            if net.image_shape() != (data.c, data.h, data.w) {
                let (c, h, w) = (data.c, data.h, data.w);
                let why = format!("checkpoint is for {:?} images, the data are {c}x{h}x{w}", net.image_shape());
                return Err(plain(ck_path, why));
            }
            let tr = Trainer::resume(net, &meta, t)?;
            monitor.note(&format!("resuming from {} at step {}", ck_path.display(), tr.step_count()));
            return Ok(tr);
        }
        let net = NcsnppNet::new(self.network.clone(), data.c, data.h, data.w)?;
        let pre = Preprocess {
            source: self.data.display().to_string(),
            size: (data.h, data.w),
            channels: data.c,
            range: (0.0, 1.0),
            resize: "area".into(),
            random_flip: self.config.random_flip,
        };
        Ok(Trainer::new(net, self.config.clone(), pre)?)
    }
}

/// Starts the loss CSV of a run resumed after `start` steps (0: a new run): the header and
/// the kept rows ([`resume_loss_rows`]) are written atomically, then the file is opened for
/// one appended record per step.
fn open_loss_csv<R: LossRow>(path: &Path, start: u64, header: &str) -> Result<csv::Writer<std::fs::File>> {
    let mut kept: Vec<R> = Vec::new();
    if start > 0 && path.exists() {
        kept = resume_loss_rows(path, start)?;
    }
    let text = if kept.is_empty() { header.as_bytes().to_vec() } else { scoreprior_core::io::csv_bytes(&kept)? };
    scoreprior_core::io::atomic_write(path, &text)?;
    let file = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| plain(path, e.to_string()))?;
    Ok(csv::WriterBuilder::new().has_headers(false).from_writer(file))
}

/// A 4×4 grid of EMA-network samples (200 Euler–Maruyama steps, seed 7, first channel of
/// colour images), the run's visual check.
fn sample_grid(trainer: &Trainer, path: &Path) -> Result<()> {
    let (_, t) = trainer.checkpoint(false);
    let (b0, b1) = trainer.config().beta;
    let sde = VpSde::new(b0, b1)?;
    let model = NcsnppScore::new(trainer.net().clone(), &t.ema, sde)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let x = sample_sde(&model, &sde, 200, 0.0, 16, 1e-3, &mut rng)?;
    let (c, h, w) = trainer.net().image_shape();
    let imgs: Vec<f64> = if c == 1 { x } else { x.chunks(c * h * w).flat_map(|im| im[..h * w].to_vec()).collect() };
    Ok(scoreprior_core::io::write_png_grid(path, &imgs, h, w, 4, 0.0, 1.0, 4)?)
}

/// `path: why` as the error's whole message, with no separate cause (the command printed
/// these as one line before the loop moved here).
fn plain(path: &Path, why: String) -> ExperimentError {
    IoError::Unsupported { path: path.display().to_string(), why }.into()
}
