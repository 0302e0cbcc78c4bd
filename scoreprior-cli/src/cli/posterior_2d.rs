//! `scoreprior posterior-2d`: the 2-D posterior study (supplement Fig. 5, main Fig. 4) as one
//! command: argument mapping onto [`scoreprior_cli::studies::posterior2d`].

use std::path::{Path, PathBuf};

use clap::Args;
use scoreprior_cli::run_folder::{check_same_run, move_aside, RunManifest, RunState};
use scoreprior_cli::studies::posterior2d::{self, Case, StudySettings};

use super::CliResult;

/// Arguments of `scoreprior posterior-2d`.
#[derive(Debug, Clone, Args)]
pub struct Posterior2dArgs {
    /// Output folder: table.csv, table.md, search.csv, contours_<case>.svg, samples_*.npy.
    #[arg(long)]
    pub out: PathBuf,
    /// Samples per method and case, at least 2 (default: the paper's 10,000; 2,000 with --quick).
    #[arg(long)]
    pub samples: Option<usize>,
    /// DPI optimisation steps (default: 1500; 400 with --quick).
    #[arg(long)]
    pub dpi_steps: Option<usize>,
    /// DPI samples per step.
    #[arg(long)]
    pub dpi_batch: Option<usize>,
    /// DPI coupling blocks.
    #[arg(long)]
    pub dpi_flows: Option<usize>,
    /// DPI peak learning rate.
    #[arg(long)]
    pub dpi_lr: Option<f64>,
    /// DPI initial spread around 0.
    #[arg(long)]
    pub dpi_init_scale: Option<f64>,
    /// Steps of DPI's data-weight ramp from 0 (0: none).
    #[arg(long)]
    pub dpi_anneal_data: Option<usize>,
    /// A small, fast version (2,000 samples, short samplers, two knob values each): a smoke
    /// run, not the study. --samples and --dpi-steps still apply.
    #[arg(long)]
    pub quick: bool,
    /// Start over in an --out that holds a study of other settings: its files are first moved
    /// to a sibling folder OUT.old-N, never mixed with the new study's.
    #[arg(long)]
    pub force: bool,
    /// Seed of every sampler and of DPI.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Only the named cases (gaussian-low, gaussian-high, mixture), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub cases: Vec<String>,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// The files a study writes into its folder (besides `run.json`).
fn study_files(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            ["table.csv", "table.md", "search.csv"].contains(&n.as_str())
                || (n.starts_with("samples_") && n.ends_with(".npy"))
                || (n.starts_with("contours_") && n.ends_with(".svg"))
        })
        .collect();
    names.sort();
    names
}

/// Runs `scoreprior posterior-2d`. The folder's `run.json` records the study's settings: a
/// rerun with other settings is refused (naming each difference), a finished study with the
/// same settings is read back (its table printed, nothing recomputed), and --force moves a
/// previous study aside.
pub fn run(args: Posterior2dArgs) -> CliResult {
    let mut settings = if args.quick { StudySettings::quick() } else { StudySettings::default() };
    settings.samples = args.samples.unwrap_or(settings.samples);
    settings.dpi_steps = args.dpi_steps.unwrap_or(settings.dpi_steps);
    settings.seed = args.seed;
    settings.dpi_batch = args.dpi_batch.unwrap_or(settings.dpi_batch);
    settings.dpi_flows = args.dpi_flows.unwrap_or(settings.dpi_flows);
    settings.dpi_lr = args.dpi_lr.unwrap_or(settings.dpi_lr);
    settings.dpi_init_scale = args.dpi_init_scale.unwrap_or(settings.dpi_init_scale);
    settings.dpi_anneal_data = args.dpi_anneal_data.unwrap_or(settings.dpi_anneal_data);
    // Every setting is checked before the folder is taken and before the first case runs.
    settings.validate()?;
    // Each sampler keeps its 2-D samples with their densities and histograms (a few f64 each).
    scoreprior_core::limits::check_elems("--samples (2-D samples per sampler)", &[settings.samples, 2, 8], 8)?;
    let mut cases = Case::reference();
    if !args.cases.is_empty() {
        for c in &args.cases {
            if !cases.iter().any(|k| &k.name == c) {
                return Err(
                    format!("--cases: unknown case {c:?}; expected gaussian-low, gaussian-high or mixture").into()
                );
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(c) = args.cases.iter().find(|c| !seen.insert(c.as_str())) {
            return Err(format!("--cases: {c:?} is given twice").into());
        }
        cases.retain(|k| args.cases.contains(&k.name));
    }
    let out = &args.out;
    super::guard("posterior-2d", &[], &[]).folder("--out", out).check()?;
    let _lock = super::own_folder("--out", out)?;
    let manifest = settings.manifest(&cases);
    if args.force {
        if let Some(old) = move_aside(out)? {
            eprintln!("--force: the previous study was moved to {}", old.display());
        }
    } else {
        match RunManifest::read(out)? {
            Some(old) => {
                check_same_run(out, &old, &manifest, "--force")?;
                let table = out.join("table.md");
                if old.state == RunState::Complete && table.is_file() {
                    // The same study, finished: read back, not recomputed.
                    print!("{}", std::fs::read_to_string(&table).map_err(|e| format!("{}: {e}", table.display()))?);
                    eprintln!("2-D study: already complete with these settings; outputs in {}", out.display());
                    return Ok(());
                }
            }
            None => {
                let files = study_files(out);
                if !files.is_empty() {
                    return Err(format!(
                        "--out {}: holds a 2-D study ({}) but no run.json (an older version wrote it), so its settings \
                         cannot be checked; use another --out, or --force to start over (the old files are moved to \
                         a sibling folder)",
                        out.display(),
                        files.join(", ")
                    )
                    .into());
                }
            }
        }
    }
    manifest.clone().with_state(RunState::Running).write(out)?;
    let quiet = args.quiet;
    let study = posterior2d::run(&cases, &settings, &mut |line| {
        if !quiet {
            eprintln!("{line}");
        }
    })?;
    study.write(out)?;
    manifest.with_state(RunState::Complete).write(out)?;
    print!("{}", study.markdown());
    eprintln!("2-D study done in {:.0} s; outputs in {}", study.seconds, out.display());
    Ok(())
}
