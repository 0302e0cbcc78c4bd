//! `scoreprior m87-study`: `eht-image` on every day of the public EHT 2017 M87 release (both
//! bands of April 5, 6, 10, 11), each beside the collaboration's eht-imaging pipeline image of
//! the same files when one is given (`benches/reference/eht_imaging_pipeline_m87.py` writes
//! them), and one table of the measures: ring diameter (mean image, and the posterior's median
//! and 95 % interval), position angle, closure χ² of the samples and of the mean, cross-correlation with the pipeline image
//! at 20 µas, minutes of DPI training per day (the same whether run or read back). Resumable: a finished day with the same settings is read back;
//! a day whose settings differ is refused.

use std::path::{Path, PathBuf};

use clap::Args;
use scoreprior_cli::studies::{check_sub_run, input_sha256, record_sub_run, SubRun};

use super::eht_image::{image, EhtImageArgs, EhtImagingArgs};
use super::CliResult;

/// Arguments of `scoreprior m87-study`.
#[derive(Debug, Clone, Args)]
pub struct M87StudyArgs {
    /// The release's uvfits folder (files `SR1_M87_2017_DAY_{lo,hi}_hops_netcal_StokesI.uvfits`).
    #[arg(long)]
    pub data: PathBuf,
    /// Days of 2017 (day of year), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "095,096,100,101")]
    pub days: Vec<String>,
    /// Folder of the pipeline's images `pipeline_DAY.fits` (compared where present).
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// How each day is imaged, as `eht-image`.
    #[command(flatten)]
    pub imaging: EhtImagingArgs,
    /// Output folder: `DAY/` per day, `table.md`, `table.json`.
    #[arg(long)]
    pub out: PathBuf,
    /// `dpi` flags after `--`, as for `eht-image`.
    #[arg(last = true)]
    pub dpi: Vec<String>,
}

/// One day's row.
#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    day: String,
    ring_mean_diameter: Option<f64>,
    diameter_median: Option<f64>,
    diameter_p95: Option<(f64, f64)>,
    width_median: Option<f64>,
    position_angle_median: Option<f64>,
    position_angle_p95: Option<(f64, f64)>,
    chi2_mean: (f64, f64, Option<f64>),
    chi2_samples: (f64, f64, Option<f64>),
    pipeline_diameter: Option<f64>,
    pipeline_position_angle: Option<f64>,
    pipeline_chi2: Option<(f64, f64, Option<f64>)>,
    nxcorr_blurred: Option<f64>,
    minutes: f64,
}

fn day_files(data: &Path, day: &str) -> CliResult<Vec<PathBuf>> {
    if day.len() != 3 || !day.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("--days {day}: expected a day of the year as three digits (095)").into());
    }
    let files: Vec<PathBuf> =
        ["lo", "hi"].iter().map(|b| data.join(format!("SR1_M87_2017_{day}_{b}_hops_netcal_StokesI.uvfits"))).collect();
    for f in &files {
        if !f.is_file() {
            return Err(format!("--data {}: no {} for day {day}", data.display(), f.display()).into());
        }
    }
    Ok(files)
}

/// Runs `scoreprior m87-study`.
pub fn run(args: M87StudyArgs) -> CliResult {
    if args.days.is_empty() {
        return Err("--days: give at least one day".into());
    }
    // Every day's files, and its settings, checked before any run.
    let mut plan = vec![];
    for day in &args.days {
        let files = day_files(&args.data, day)?;
        let reference = args.pipeline.as_ref().map(|p| p.join(format!("pipeline_{day}.fits"))).filter(|p| p.is_file());
        let image_args = EhtImageArgs {
            files: files.clone(),
            imaging: args.imaging.clone(),
            reference: reference.clone(),
            out: args.out.join(day),
            dpi: [args.dpi.clone(), vec!["--quiet".into()]].concat(),
        };
        let hashes =
            files.iter().map(|f| input_sha256("--data", f)).collect::<scoreprior::experiment::Result<Vec<_>>>()?;
        let mut spec = serde_json::json!({
            "flags": image_args.dpi_flags(0.0)?, "files_sha256": hashes,
            "reference_sha256": reference.as_ref().map(|r| input_sha256("--pipeline", r)).transpose()?,
        });
        // Recorded only when pooling, so the days of single runs still read back.
        image_args.restart_flags(0.0)?;
        if args.imaging.restarts > 1 {
            spec["restarts"] = serde_json::json!(args.imaging.restarts);
        }
        let key = args.out.join(format!("{day}.settings.json"));
        let dir = args.out.join(day);
        let state = check_sub_run("m87-study", &dir, &key, &spec, |d| d.join("eht_image.json").is_file())?;
        plan.push((day.clone(), image_args, key, spec, state));
    }
    let mut inputs: Vec<(&str, &Path)> = vec![("--data", args.data.as_path())];
    inputs.extend(args.pipeline.as_deref().map(|p| ("--pipeline", p)));
    let claim = super::claim(super::guard("m87-study", &inputs, &[]), "--out", &args.out, true)?;
    let mut rows = vec![];
    for (day, mut image_args, key, spec, state) in plan {
        let (report, cmp) = match state {
            SubRun::Finished => {
                eprintln!("m87-study: day {day} finished before; read back");
                let read = |f: &str| -> CliResult<serde_json::Value> {
                    let p = image_args.out.join(f);
                    let t = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                    Ok(serde_json::from_str(&t).map_err(|e| format!("{}: {e}", p.display()))?)
                };
                let r = read("eht_image.json")?;
                let c = image_args.reference.as_ref().map(|_| read("comparison.json")).transpose()?;
                rows.push(row_from_json(&day, &r, c.as_ref()));
                continue;
            }
            SubRun::Stopped => {
                image_args.dpi.push("--resume".into());
                record_sub_run(&key, &spec)?;
                image(&image_args)?
            }
            SubRun::New => {
                record_sub_run(&key, &spec)?;
                eprintln!("m87-study: day {day}");
                image(&image_args)?
            }
        };
        let r = serde_json::to_value(&report).map_err(|e| e.to_string())?;
        let c = cmp.map(|c| serde_json::to_value(&c)).transpose().map_err(|e| e.to_string())?;
        rows.push(row_from_json(&day, &r, c.as_ref()));
    }
    write_table(&args.out, &rows)?;
    let table = args.out.join("table.md");
    print!("{}", std::fs::read_to_string(&table).map_err(|e| format!("{}: {e}", table.display()))?);
    Ok(claim.finish()?)
}

fn row_from_json(day: &str, r: &serde_json::Value, c: Option<&serde_json::Value>) -> Row {
    let f = |v: &serde_json::Value| v.as_f64();
    let pair = |v: &serde_json::Value| Some((v.get(0)?.as_f64()?, v.get(1)?.as_f64()?));
    let chi = |v: &serde_json::Value| Some((v["phase"].as_f64()?, v["log_amp"].as_f64()?, v["amp_ratio"].as_f64()));
    let rs = &r["ring_samples"];
    Row {
        day: day.to_string(),
        ring_mean_diameter: f(&r["ring_mean"]["diameter"]),
        diameter_median: f(&rs["diameter"]["median"]),
        diameter_p95: pair(&rs["diameter"]["p95"]),
        width_median: f(&rs["width"]["median"]),
        position_angle_median: f(&rs["position_angle"]["median"]),
        position_angle_p95: pair(&rs["position_angle"]["p95"]),
        chi2_mean: chi(&r["chi2_mean"]).unwrap_or((f64::NAN, f64::NAN, None)),
        chi2_samples: chi(&r["chi2_samples"]).unwrap_or((f64::NAN, f64::NAN, None)),
        pipeline_diameter: c.and_then(|c| f(&c["ring_reference"]["diameter"])),
        pipeline_position_angle: c.and_then(|c| f(&c["ring_reference"]["position_angle"])),
        pipeline_chi2: c.and_then(|c| chi(&c["chi2_reference"])),
        nxcorr_blurred: c.and_then(|c| f(&c["nxcorr_blurred"])),
        minutes: f(&r["seconds_training"]).unwrap_or(0.0) / 60.0,
    }
}

fn write_table(out: &Path, rows: &[Row]) -> CliResult {
    let o = |v: Option<f64>, p: usize| v.map_or("—".to_string(), |x| format!("{x:.p$}"));
    let chi3 = |c: Option<(f64, f64, Option<f64>)>| match c {
        None => "—".to_string(),
        Some((a, b, None)) => format!("{a:.2} / {b:.2}"),
        Some((a, b, Some(r))) => format!("{a:.2} / {b:.2} / {r:.2}"),
    };
    let iv = |v: Option<(f64, f64)>| v.map_or("—".to_string(), |(a, b)| format!("{a:.1}–{b:.1}"));
    let mut md = String::from(
        "| day | DPI mean d (µas) | DPI d: median (95 %) | width (µas) | PA (°): median (95 %) | closure χ² of the samples \
         (ψ / ln A / amp.) | of the mean | pipeline d (µas) | pipeline PA (°) | pipeline χ² (ψ / ln A / amp.) | nxcorr at 20 µas | \
         DPI training (min) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} ({}) | {} | {} ({}) | {} | {} | {} | {} | {} | {} | {:.1} |\n",
            r.day,
            o(r.ring_mean_diameter, 1),
            o(r.diameter_median, 1),
            iv(r.diameter_p95),
            o(r.width_median, 1),
            o(r.position_angle_median, 0),
            iv(r.position_angle_p95),
            chi3(Some(r.chi2_samples)),
            chi3(Some(r.chi2_mean)),
            o(r.pipeline_diameter, 1),
            o(r.pipeline_position_angle, 0),
            chi3(r.pipeline_chi2),
            o(r.nxcorr_blurred, 3),
            r.minutes,
        ));
    }
    scoreprior_core::io::atomic_write(out.join("table.md"), md.as_bytes())?;
    let json = serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?;
    scoreprior_core::io::atomic_write(out.join("table.json"), json.as_bytes())?;
    Ok(())
}
