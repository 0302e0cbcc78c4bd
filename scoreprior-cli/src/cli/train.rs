//! `scoreprior train`: trains an NCSN++ noise-prediction network by denoising score
//! matching under the VP SDE (see `scoreprior_models::train`), with a progress bar, a loss
//! CSV, periodic sample grids and resumable atomic checkpoints. The loop is
//! [`scoreprior_cli::training::ScoreTraining`]; this file checks the flags and owns the run folder.

use clap::Args;
use scoreprior_cli::run_folder::{check_same_run, move_aside, RunManifest};
use scoreprior_cli::training::{plot_loss, ScoreTraining};
use scoreprior_core::io::check_outputs_distinct;
use scoreprior_models::ncsnpp::NcsnppConfig;
use scoreprior_models::train::TrainConfig;

use super::monitor::Bars;
use super::training::{in_order, TrainingArgs};
use super::CliResult;

/// Arguments of `scoreprior train`.
#[derive(Debug, Args)]
#[command(mut_args(|a| in_order(a, &[
    "data", "out", "size", "config", "nf", "ch_mult", "num_res_blocks", "attn_resolutions", "dropout", "steps",
    "batch_size", "lr", "warmup", "ema_rate", "grad_clip", "no_flip", "limit", "seed", "ckpt_every", "sample_every",
    "force", "threads", "quiet", "plot_only",
])))]
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
    // Each thread has its own stack (MiBs): more threads than a machine could run is a typo.
    if let Some(t) = args.threads.filter(|&t| t == 0 || t > 4096) {
        return Err(format!("--threads {t}: must be between 1 and 4096").into());
    }
    // Residual blocks are built before the network's memory check; each holds at least two
    // 3×3 convolutions of nf² weights per level (a lower bound on its bytes).
    if let Some(b) = args.num_res_blocks {
        let nf = args.nf.unwrap_or(1).max(1);
        scoreprior_core::limits::check_elems(
            "--num-res-blocks (residual blocks × 3×3 weights)",
            &[b, 2, 9, nf, nf, 4],
            4,
        )
        .map_err(|e| e.to_string())?;
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

/// The run as the library describes it. What defines it (compared on resume) is data, image
/// size, network, optimiser and seed; `--steps`, `--ckpt-every`, `--sample-every`, `--threads`
/// and `--quiet` may change between a run and its resume.
fn training(args: &TrainArgs) -> CliResult<ScoreTraining> {
    let t = &args.training;
    let config = TrainConfig {
        batch_size: t.batch_size,
        lr: t.lr,
        warmup: args.warmup,
        grad_clip: t.grad_clip,
        ema_rate: args.ema_rate,
        random_flip: !args.no_flip,
        seed: t.seed,
        ..TrainConfig::default()
    };
    Ok(ScoreTraining {
        data: t.data.clone(),
        size: t.size,
        limit: t.limit,
        preset: args.config.clone(),
        network: net_config(args)?,
        config,
        steps: t.steps,
        ckpt_every: t.ckpt_every,
        sample_every: args.sample_every,
        log_lines: t.quiet,
    })
}

/// Runs `scoreprior train`.
pub fn run(args: TrainArgs) -> CliResult {
    validate(&args)?;
    if let Some(t) = args.threads {
        // Ignore the error of a second initialisation (the pool is global).
        let _ = rayon::ThreadPoolBuilder::new().num_threads(t.max(1)).build_global();
    }
    let out = &args.training.out;
    if args.plot_only {
        return Ok(plot_loss(&out.join("loss.csv"), &out.join("loss.svg"))?);
    }
    if !args.training.data.exists() {
        return Err(format!("--data {}: no such file or folder", args.training.data.display()).into());
    }
    let run = training(&args)?;
    // The folder is ours until we return; what killed runs left is removed; a resume must be
    // of the same problem (run.json), and --force moves the old run aside instead of mixing.
    super::guard("train", &[("--data", &args.training.data)], &[]).folder("--out", out).check()?;
    let _lock = super::own_folder("--out", out)?;
    let manifest = run.manifest()?;
    if args.training.force {
        if let Some(old) = move_aside(out)? {
            eprintln!("--force: the previous run was moved to {}", old.display());
        }
    } else {
        match RunManifest::read(out)? {
            Some(old) => check_same_run(out, &old, &manifest, "--force")?,
            None if out.join("checkpoint.safetensors").exists() => {
                return Err(format!(
                    "--out {}: holds a checkpoint but no run.json (an older version wrote it), so a resume cannot be checked against its settings; use --force to start over (the old files are moved aside) or another --out",
                    out.display()
                )
                .into())
            }
            None => {}
        }
    }
    run.run(out, manifest, &mut Bars::new(args.training.quiet))?;
    Ok(())
}
