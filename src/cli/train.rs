//! `scoreprior train`: trains an NCSN++ noise-prediction network by denoising score
//! matching under the VP SDE (see `scoreprior_models::train`), with a progress bar, a loss
//! CSV, periodic sample grids and resumable atomic checkpoints.

use std::time::Instant;

use super::progress::Progress;
use super::training::TrainingArgs;
use clap::Args;
use rand::SeedableRng;
use scoreprior_core::io::{
    check_outputs_distinct, check_same_run, move_aside, sweep_stale_tmp, OutputLock, RunManifest, RunState,
};
use scoreprior_core::sde::VpSde;
use scoreprior_models::checkpoint;
use scoreprior_models::data::{load_dataset, Preprocess, Split};
use scoreprior_models::ncsnpp::{NcsnppConfig, NcsnppNet};
use scoreprior_models::sample::sample_sde;
use scoreprior_models::score::NcsnppScore;
use scoreprior_models::train::{TrainConfig, Trainer};

use super::CliResult;

/// Arguments of `scoreprior train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The flags shared with `train-flow`.
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Network preset: small, reference or tiny.
    #[arg(long, default_value = "small")]
    pub config: String,
    /// Override the preset's base channel count `nf`.
    #[arg(long)]
    pub nf: Option<usize>,
    /// Override the preset's channel multipliers, e.g. `1,2,2`.
    #[arg(long, value_delimiter = ',')]
    pub ch_mult: Option<Vec<usize>>,
    /// Override the preset's residual blocks per level.
    #[arg(long)]
    pub num_res_blocks: Option<usize>,
    /// Override the preset's attention resolutions, e.g. `8`.
    #[arg(long, value_delimiter = ',')]
    pub attn_resolutions: Option<Vec<usize>>,
    /// Override the preset's dropout.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Linear warm-up steps.
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
    /// EMA rate of the inference weights, in [0, 1).
    #[arg(long, default_value_t = 0.999)]
    pub ema_rate: f64,
    /// Disable random horizontal flips.
    #[arg(long)]
    pub no_flip: bool,
    /// Steps between sample grids (0: never).
    #[arg(long, default_value_t = 1000)]
    pub sample_every: u64,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Only redraw OUT/loss.svg from OUT/loss.csv and exit.
    #[arg(long)]
    pub plot_only: bool,
}

/// One row of `loss.csv`.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct LossRow {
    step: u64,
    loss: f64,
    grad_norm: f64,
    lr: f64,
    elapsed_s: f64,
}

impl scoreprior::training::LossRow for LossRow {
    fn steps_done(&self) -> u64 {
        // `step` counts from 1: the row of the n-th step is written once n steps are done.
        self.step
    }
}

/// Draws the loss curve (per-step loss and its 100-step moving average, log scale) from
/// a loss CSV written by this command.
pub fn plot_loss(csv: &std::path::Path, svg: &std::path::Path) -> CliResult {
    let rows: Vec<LossRow> = scoreprior_core::io::read_csv(csv)?;
    let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.step as f64, r.loss)).collect();
    if pts.is_empty() {
        return Err(format!("{}: no loss rows", csv.display()).into());
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
    super::plot::Figure::new("DSM training loss (per image, ½‖ε̂ − z‖²)", "step", "loss")
        .log_axes(false, true)
        .with(super::plot::Series::points("batch loss (every 5th step)", thin))
        .with(super::plot::Series::line("100-step moving average", avg))
        .write(svg)
}

fn preset(name: &str) -> CliResult<NcsnppConfig> {
    Ok(match name {
        "small" => NcsnppConfig::small(),
        "reference" => NcsnppConfig::reference(),
        "tiny" => NcsnppConfig::tiny(),
        other => return Err(format!("--config {other}: expected small, reference or tiny").into()),
    })
}

/// Checks the flags, naming the bad one and its value, before any data are read or files
/// written (the library's `TrainConfig::validate` knows only field names).
fn validate(args: &TrainArgs) -> CliResult {
    if args.training.ckpt_every == 0 {
        return Err("--ckpt-every 0: must be at least 1 (the last step is always checkpointed)".into());
    }
    if args.training.batch_size == 0 {
        return Err("--batch-size 0: must be at least 1".into());
    }
    if !(args.training.lr.is_finite() && args.training.lr > 0.0) {
        return Err(format!("--lr {}: must be positive and finite", args.training.lr).into());
    }
    if !(0.0..1.0).contains(&args.ema_rate) {
        return Err(format!("--ema-rate {}: must be in [0, 1)", args.ema_rate).into());
    }
    if args.training.grad_clip.is_nan() || args.training.grad_clip <= 0.0 {
        return Err(format!("--grad-clip {}: must be positive (inf disables clipping)", args.training.grad_clip).into());
    }
    if args.training.size == 0 {
        return Err("--size 0: must be at least 1".into());
    }
    if let Some(p) = args.dropout.filter(|p| !(0.0..1.0).contains(p)) {
        return Err(format!("--dropout {p}: must be in [0, 1)").into());
    }
    let files =
        ["checkpoint.safetensors", "ema.safetensors", "loss.csv", "loss.svg"].map(|f| args.training.out.join(f));
    let outputs: Vec<(&str, &std::path::Path)> = files.iter().map(|p| ("--out", p.as_path())).collect();
    check_outputs_distinct(&[("--data", &args.training.data)], &outputs)?;
    Ok(())
}

/// The network configuration: the preset with the overrides applied.
fn net_config(args: &TrainArgs) -> CliResult<NcsnppConfig> {
    let mut nc = preset(&args.config)?;
    if let Some(v) = args.nf {
        nc.nf = v;
    }
    if let Some(v) = &args.ch_mult {
        nc.ch_mult = v.clone();
    }
    if let Some(v) = args.num_res_blocks {
        nc.num_res_blocks = v;
    }
    if let Some(v) = &args.attn_resolutions {
        nc.attn_resolutions = v.clone();
    }
    if let Some(v) = args.dropout {
        nc.dropout = v;
    }
    Ok(nc)
}

/// What defines a training run (compared on resume): data, image size, network, optimiser
/// and seed. `--steps`, `--ckpt-every`, `--sample-every`, `--threads` and `--quiet` may change
/// between a run and its resume.
fn manifest(args: &TrainArgs, net: &NcsnppConfig) -> CliResult<RunManifest> {
    let config = serde_json::json!({
        "size": args.training.size,
        "limit": args.training.limit,
        "config": args.config,
        "network": net,
        "batch_size": args.training.batch_size,
        "lr": args.training.lr,
        "warmup": args.warmup,
        "ema_rate": args.ema_rate,
        "grad_clip": if args.training.grad_clip.is_finite() { serde_json::json!(args.training.grad_clip) } else { serde_json::json!("inf") },
        "random_flip": !args.no_flip,
    });
    Ok(RunManifest::new("train", config).with_seed(args.training.seed).with_input("--data", &args.training.data)?)
}

/// `error` with the path it concerns.
fn at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Runs `scoreprior train`.
pub fn run(args: TrainArgs) -> CliResult {
    validate(&args)?;
    if let Some(t) = args.threads {
        // Ignore the error of a second initialisation (the pool is global).
        let _ = rayon::ThreadPoolBuilder::new().num_threads(t.max(1)).build_global();
    }
    if args.plot_only {
        return plot_loss(&args.training.out.join("loss.csv"), &args.training.out.join("loss.svg"));
    }
    if !args.training.data.exists() {
        return Err(format!("--data {}: no such file or folder", args.training.data.display()).into());
    }
    let nc = net_config(&args)?;
    // The folder is ours until we return; what killed runs left is removed; a resume must be
    // of the same problem (run.json), and --force moves the old run aside instead of mixing.
    let _lock = OutputLock::acquire("--out", &args.training.out)?;
    for p in sweep_stale_tmp(&args.training.out)? {
        eprintln!("removed {} (left by a killed run)", p.display());
    }
    let manifest = manifest(&args, &nc)?;
    let ck_path = args.training.out.join("checkpoint.safetensors");
    if args.training.force {
        if let Some(old) = move_aside(&args.training.out)? {
            eprintln!("--force: the previous run was moved to {}", old.display());
        }
    } else {
        match RunManifest::read(&args.training.out)? {
            Some(old) => check_same_run(&args.training.out, &old, &manifest, "--force")?,
            None if ck_path.exists() => {
                return Err(format!(
                    "--out {}: holds a checkpoint but no run.json (an older version wrote it), so a resume cannot be checked against its settings; use --force to start over (the old files are moved aside) or another --out",
                    args.training.out.display()
                )
                .into())
            }
            None => {}
        }
    }
    let samples_dir = args.training.out.join("samples");
    std::fs::create_dir_all(&samples_dir).map_err(at(&samples_dir))?;
    let data = load_dataset(
        &args.training.data,
        Split::Train,
        Some((args.training.size, args.training.size)),
        args.training.limit,
    )?;
    eprintln!("data: {} images of {}x{}x{} from {}", data.len(), data.c, data.h, data.w, args.training.data.display());
    let mut trainer = if ck_path.exists() {
        let (net, meta, t) = checkpoint::load_any(&ck_path)?;
        if net.image_shape() != (data.c, data.h, data.w) {
            return Err(format!(
                "{}: checkpoint is for {:?} images, the data are {}x{}x{}",
                ck_path.display(),
                net.image_shape(),
                data.c,
                data.h,
                data.w
            )
            .into());
        }
        let tr = Trainer::resume(net, &meta, t)?;
        eprintln!("resuming from {} at step {}", ck_path.display(), tr.step_count());
        tr
    } else {
        let net = NcsnppNet::new(nc, data.c, data.h, data.w)?;
        let cfg = TrainConfig {
            batch_size: args.training.batch_size,
            lr: args.training.lr,
            warmup: args.warmup,
            grad_clip: args.training.grad_clip,
            ema_rate: args.ema_rate,
            random_flip: !args.no_flip,
            seed: args.training.seed,
            ..TrainConfig::default()
        };
        let pre = Preprocess {
            source: args.training.data.display().to_string(),
            size: (data.h, data.w),
            channels: data.c,
            range: (0.0, 1.0),
            resize: "area".into(),
            random_flip: cfg.random_flip,
        };
        Trainer::new(net, cfg, pre)?
    };
    eprintln!("network: {} parameters, config {:?}", trainer.net().num_params(), trainer.net().config());
    manifest.write(&args.training.out)?;

    // Loss CSV: keep the rows up to the resumed step, so a resumed run's file matches an
    // uninterrupted one.
    let csv_path = args.training.out.join("loss.csv");
    let start = trainer.step_count();
    let mut kept: Vec<LossRow> = Vec::new();
    if start > 0 && csv_path.exists() {
        kept = scoreprior::training::resume_loss_rows(&csv_path, start)?;
    }
    // The header (and the kept rows) first, then one appended record per step.
    let header = "step,loss,grad_norm,lr,elapsed_s\n";
    let mut text = header.as_bytes().to_vec();
    if !kept.is_empty() {
        text = scoreprior_core::io::csv_bytes(&kept)?;
    }
    scoreprior_core::io::atomic_write(&csv_path, &text)?;
    let file = std::fs::OpenOptions::new().append(true).open(&csv_path).map_err(at(&csv_path))?;
    let mut csv = csv::WriterBuilder::new().has_headers(false).from_writer(file);

    // A bar on a terminal, a plain line every ~10 s otherwise (quiet: a line every 50 steps).
    let mut progress = Progress::new("train", args.training.steps, args.training.quiet);
    let t0 = Instant::now();
    let mut avg = f64::NAN;
    while trainer.step_count() < args.training.steps {
        let s = trainer.step(&data)?;
        avg = if avg.is_nan() { s.loss } else { 0.98 * avg + 0.02 * s.loss };
        let row = LossRow {
            step: s.step,
            loss: s.loss,
            grad_norm: s.grad_norm,
            lr: s.lr,
            elapsed_s: t0.elapsed().as_secs_f64(),
        };
        csv.serialize(row).map_err(|e| format!("{}: {e}", csv_path.display()))?;
        progress.update(s.step, || format!("loss {avg:.3} |g| {:.2}", s.grad_norm));
        if args.training.quiet && s.step % 50 == 0 {
            let el = t0.elapsed().as_secs_f64();
            eprintln!("step {} loss(avg) {avg:.4} {:.3} steps/s", s.step, (s.step - start) as f64 / el);
        }
        let done = s.step == args.training.steps;
        if s.step % args.training.ckpt_every == 0 || done {
            csv.flush().map_err(at(&csv_path))?;
            let (meta, t) = trainer.checkpoint(true);
            checkpoint::save(&ck_path, trainer.net(), &meta, &t)?;
            let (meta, t) = trainer.checkpoint(false);
            checkpoint::save(args.training.out.join("ema.safetensors"), trainer.net(), &meta, &t)?;
        }
        if args.sample_every > 0 && (s.step % args.sample_every == 0 || done) {
            let (_, t) = trainer.checkpoint(false);
            let (b0, b1) = trainer.config().beta;
            let sde = VpSde::new(b0, b1)?;
            let model = NcsnppScore::new(trainer.net().clone(), &t.ema, sde)?;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
            let x = sample_sde(&model, &sde, 200, 0.0, 16, 1e-3, &mut rng)?;
            let (c, h, w) = trainer.net().image_shape();
            let imgs: Vec<f64> =
                if c == 1 { x } else { x.chunks(c * h * w).flat_map(|im| im[..h * w].to_vec()).collect() };
            scoreprior_core::io::write_png_grid(
                args.training.out.join(format!("samples/step_{:06}.png", s.step)),
                &imgs,
                h,
                w,
                4,
                0.0,
                1.0,
                4,
            )?;
        }
    }
    progress.finish();
    csv.flush().map_err(at(&csv_path))?;
    plot_loss(&csv_path, &args.training.out.join("loss.svg"))?;
    manifest.with_state(RunState::Complete).write(&args.training.out)?;
    eprintln!("done: {} steps in {:.1} s", trainer.step_count() - start, t0.elapsed().as_secs_f64());
    Ok(())
}
