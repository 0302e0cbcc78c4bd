//! `scoreprior train-flow`: a RealNVP as an image density (the supplement's discrete-flow prior,
//! App. C), trained by maximum likelihood `min −(1/n) Σ log q(x_i + u_i)` on uniformly
//! dequantised data (`u ~ U(0, 1/256)^D`, so 8-bit pixels become a continuous density on
//! `[0, 1]^D`), resumable; the result serves as `dpi --prior flow:FILE`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use scoreprior_cli::run_folder::{check_same_run, RunManifest, RunState};
use scoreprior_cli::training::resume_loss_rows;
use scoreprior_core::io::{atomic_write, write_csv, write_png_grid};
use scoreprior_models::data::{load_dataset, Split};
use scoreprior_models::realnvp::{RealNvp, RealNvpConfig};
use serde::{Deserialize, Serialize};

use super::logprob::load_images;
use super::training::{in_order, TrainingArgs};
use super::CliResult;

/// Arguments of `scoreprior train-flow`.
#[derive(Debug, Clone, Args)]
// The shared flags in a flow's words and defaults (`--grad-clip 0` is no clip here, and
// `--force` has no `--restart` alias), so `train-flow --help` reads as before the sharing.
#[command(
    mut_arg("data", |a| a.help("Training images (as for `train`: IDX, .npy or a PNG folder)")),
    mut_arg("out", |a| a.help("Output folder: flow.safetensors (with optimiser state), loss.csv, samples.png, metrics.json")),
    mut_arg("steps", |a| a.default_value("3000")),
    mut_arg("batch_size", |a| a.help("Images per step")),
    mut_arg("lr", |a| a.help("Adam learning rate").default_value("0.001")),
    mut_arg("grad_clip", |a| a.help("Global gradient-norm clip (0: none)")),
    mut_arg("seed", |a| a.help("Seed of the initialisation, batches and dequantisation noise")),
    mut_arg("ckpt_every", |a| a.help("Steps between checkpoints")),
    mut_arg("force", |a| a.help("Start over, moving an existing run aside").alias(None)),
    mut_arg("quiet", |a| a.help("No progress lines")),
    mut_args(|a| in_order(a, &[
        "data", "out", "size", "flows", "hidden", "steps", "batch_size", "lr", "grad_clip", "limit", "ckpt_every",
        "test", "seed", "force", "quiet",
    ]))
)]
pub struct TrainFlowArgs {
    /// The flags shared with `train`.
    #[command(flatten)]
    pub training: TrainingArgs,
    /// Affine-coupling blocks (the supplement: 64).
    #[arg(long, default_value_t = 32)]
    pub flows: usize,
    /// Hidden width of the coupling networks (0: max(D/8, 32)).
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Test images for the final log-likelihood.
    #[arg(long, default_value = "assets/fashion16_test.npy")]
    pub test: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LossRow {
    step: usize,
    nll: f64,
    bits_per_dim: f64,
    elapsed_s: f64,
}

impl scoreprior_cli::training::LossRow for LossRow {
    fn steps_done(&self) -> u64 {
        // `step` counts from 0: the row of step k is written once k + 1 steps are done.
        self.step as u64 + 1
    }
}

/// Reads the training images, naming `--data` in errors; a file that holds no images says so.
fn load_data(args: &TrainingArgs) -> CliResult<scoreprior_models::data::Dataset> {
    let path = &args.data;
    let data = load_dataset(path, Split::Train, Some((args.size, args.size)), args.limit).map_err(|e| {
        // An empty .npy array has no pixel values at all, which the loader reports as
        // non-finite ones: say what is wrong instead.
        let empty = path.extension().is_some_and(|x| x.eq_ignore_ascii_case("npy"))
            && scoreprior_core::io::read_npy(path).is_ok_and(|a| a.data.is_empty());
        if empty {
            format!("--data {}: the file holds no images (an empty array)", path.display())
        } else {
            format!("--data: {e}")
        }
    })?;
    if data.is_empty() {
        return Err(format!("--data {}: the file holds no images", path.display()).into());
    }
    Ok(data)
}

/// What defines a flow's training (`run.json`; a resume must match it): the data (by content),
/// image size, `--limit`, the flow's shape and the optimiser. `--steps`, `--ckpt-every`,
/// `--test` and `--quiet` may change between a run and its resume.
fn manifest(args: &TrainingArgs, flows: usize, hidden: usize) -> CliResult<RunManifest> {
    let config = serde_json::json!({
        "size": args.size,
        "limit": args.limit,
        "flows": flows,
        "hidden": hidden,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "grad_clip": args.grad_clip,
        "dequantisation": "uniform(0, 1/256)",
    });
    Ok(RunManifest::new("train-flow", config).with_seed(args.seed).with_input("--data", &args.data)?)
}

/// Runs `scoreprior train-flow`.
pub fn run(flow_args: TrainFlowArgs) -> CliResult {
    let TrainFlowArgs { training: args, flows, hidden, test: test_path } = flow_args;
    // The shared counts are u64 (as `train`'s); a flow counts its steps in usize.
    let (steps, ckpt_every) = (args.steps as usize, args.ckpt_every as usize);
    if steps == 0 || args.batch_size == 0 || ckpt_every == 0 || flows == 0 || args.size == 0 {
        return Err("--steps, --batch-size, --ckpt-every, --flows and --size must be at least 1".into());
    }
    if !(args.lr.is_finite() && args.lr > 0.0) || !(args.grad_clip.is_finite() && args.grad_clip >= 0.0) {
        return Err("--lr must be positive and --grad-clip finite and >= 0".into());
    }
    if args.limit == Some(0) {
        return Err("--limit 0: must be at least 1 (the number of images to train on)".into());
    }
    if !args.data.exists() {
        return Err(format!("--data {}: no such file or folder", args.data.display()).into());
    }
    let data = load_data(&args)?;
    let d = data.dim();
    let hidden = if hidden == 0 { (d / 8).max(32) } else { hidden };
    let test = load_images("test", &test_path)?;
    let (n_test, d_test) = test.rows();
    if n_test == 0 {
        return Err(format!("--test {}: the file holds no images", test_path.display()).into());
    }
    if d_test != d {
        return Err(format!("--test: images of {d_test} pixels, the training data have {d}").into());
    }
    let ck = args.out.join("flow.safetensors");
    // The folder is ours until we return; a resume must be of the same training (run.json),
    // and --force moves the old run aside instead of mixing.
    let inputs: [(&str, &std::path::Path); 2] = [("--data", &args.data), ("--test", &test_path)];
    super::guard("train-flow", &inputs, &[]).folder("--out", &args.out).check()?;
    let _lock = super::own_folder("--out", &args.out)?;
    let manifest = manifest(&args, flows, hidden)?;
    if args.force {
        if let Some(moved) = scoreprior_cli::run_folder::move_aside(&args.out)? {
            eprintln!("--force: moved the previous run to {}", moved.display());
        }
    } else {
        match RunManifest::read(&args.out)? {
            Some(old) => check_same_run(&args.out, &old, &manifest, "--force")?,
            None if ck.exists() => {
                return Err(format!(
                    "--out {}: holds a flow but no run.json (an older version wrote it), so a resume cannot be \
                     checked against its settings; use --force to start over (the old files are moved aside) or \
                     another --out",
                    args.out.display()
                )
                .into())
            }
            None => {}
        }
    }
    let (mut flow, mut history) = if ck.exists() {
        let flow = RealNvp::load_file(&ck)?;
        if flow.dim() != d {
            return Err(format!("{}: a flow over {} pixels, the data have {d}", ck.display(), flow.dim()).into());
        }
        let rows: Vec<LossRow> = resume_loss_rows(&args.out.join("loss.csv"), flow.steps_taken() as u64)?;
        (flow, rows)
    } else {
        let cfg = RealNvpConfig::new(d).with_flows(flows).with_hidden(hidden).with_seed(args.seed);
        scoreprior_core::limits::check_elems(
            "the flow's parameters and activations",
            &[flows, hidden, d, args.batch_size],
            8,
        )?;
        let mut flow = RealNvp::new(cfg)?;
        // Start as N(0.5, 0.3²): the data's range, so the first steps are not spent moving mass.
        flow.set_initial_affine(0.5, 0.3)?;
        (flow, Vec::new())
    };
    manifest.clone().with_state(RunState::Running).write(&args.out)?;
    let start = flow.steps_taken();
    eprintln!(
        "data: {} images of {} pixels; flow: {} blocks, hidden {}, {} parameters; steps {start}..{}",
        data.len(),
        d,
        flow.config().n_flow,
        flow.config().hidden,
        flow.num_params(),
        steps
    );
    let x_all = data.to_f64();
    let t0 = Instant::now();
    let offset = history.last().map(|r| r.elapsed_s).unwrap_or(0.0);
    let clip = (args.grad_clip > 0.0).then_some(args.grad_clip);
    let bpd = |nll: f64| nll / (d as f64 * std::f64::consts::LN_2);
    let mut batch = vec![0.0; args.batch_size * d];
    for step in start..steps {
        // One generator per step: a resumed run draws the same batches as a straight one.
        let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for b in 0..args.batch_size {
            let i = rng.gen_range(0..data.len());
            for (o, v) in batch[b * d..(b + 1) * d].iter_mut().zip(&x_all[i * d..(i + 1) * d]) {
                *o = v + rng.gen::<f64>() / 256.0;
            }
        }
        let nll = flow.density_step(&batch, args.batch_size, args.lr, clip)?;
        if !nll.is_finite() {
            return Err(format!("step {step}: the negative log-likelihood is {nll}; lower --lr").into());
        }
        history.push(LossRow { step, nll, bits_per_dim: bpd(nll), elapsed_s: offset + t0.elapsed().as_secs_f64() });
        if (step + 1) % ckpt_every == 0 || step + 1 == steps {
            // Loss first, then the flow: a crash between them leaves a loss file ahead of the
            // checkpoint, which the resume trims.
            write_csv(args.out.join("loss.csv"), &history)?;
            flow.save_file(&ck)?;
            if !args.quiet {
                let k = history.len().min(ckpt_every);
                let mean = history[history.len() - k..].iter().map(|r| r.nll).sum::<f64>() / k as f64;
                eprintln!("step {} nll(avg) {mean:.2} ({:.3} bits/dim)", step + 1, bpd(mean));
            }
        }
    }
    // Test log-likelihood of the (undequantised) test images, and a grid of samples.
    let (lp, _) = flow.log_prob_and_grad(&test.data, n_test)?;
    let (mean, sd) = scoreprior_core::stats::mean_std(&lp);
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x5A);
    let z: Vec<f64> = (0..36 * d).map(|_| rng.sample(StandardNormal)).collect();
    let (x, _) = flow.forward(&z, 36)?;
    let side = args.size;
    write_png_grid(args.out.join("samples.png"), &x, side, side, 6, 0.0, 1.0, 4)?;
    let metrics = serde_json::json!({
        "steps": flow.steps_taken(),
        "parameters": flow.num_params(),
        "test_images": n_test,
        "test_log_p_mean": mean,
        "test_log_p_sd": sd,
        "test_bits_per_dim": -mean / (d as f64 * std::f64::consts::LN_2),
        "final_train_nll": history.last().map(|r| r.nll),
        "seconds": offset + t0.elapsed().as_secs_f64(),
    });
    atomic_write(args.out.join("metrics.json"), serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    manifest.with_state(RunState::Complete).write(&args.out)?;
    println!(
        "train-flow: {} steps; test log p {mean:.1} ± {sd:.1} nats ({:.3} bits/dim) on {n_test} images; outputs in {}",
        flow.steps_taken(),
        -mean / (d as f64 * std::f64::consts::LN_2),
        args.out.display()
    );
    Ok(())
}
