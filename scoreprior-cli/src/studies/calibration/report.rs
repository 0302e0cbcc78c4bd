//! A study's rows (`row.json`), their summary over runs (`coverage.json`: observed coverage per
//! nominal level) and its outputs: the CSV and Markdown tables and the coverage figure (SVG and
//! PNG).

use std::path::Path;

use scoreprior_core::io::atomic_write;
use serde::{Deserialize, Serialize};

use super::measures::{Interval, RingCoverage};
use super::parametric::McmcSummary;
use super::png::{self, Curve};
use super::settings::CalibrationProblem;
use crate::plot::{Figure, Series};
use scoreprior::experiment::{invalid_setting, ExperimentError, Result};

/// The measures of one run (`row.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRow {
    /// The run's folder name, `<problem>-<index>`.
    pub run: String,
    /// EHT source index (of `source_seed`) or test-image index.
    pub index: usize,
    /// EHT: `ring`, `crescent`, `blobs` or `crescent+blob`; denoising: `image`.
    pub kind: String,
    /// The levels.
    pub levels: Vec<f64>,
    /// Fraction of pixels whose (aligned) truth lies in the central interval, per level.
    pub pixel_coverage: Vec<f64>,
    /// The same over the source's pixels only (truth above [`SOURCE_FRACTION`](super::SOURCE_FRACTION) of its peak).
    #[serde(default)]
    pub source_coverage: Vec<f64>,
    /// Fraction of pixels with `|truth − mean| ≤ 2·std`.
    pub within_2std: f64,
    /// Mean posterior std over pixels divided by the posterior mean's peak.
    pub std_rel: f64,
    /// Samples with finite pixels (used for every measure).
    pub samples_used: usize,
    /// Denoising: PSNR (dB) of the posterior mean.
    pub mean_psnr: Option<f64>,
    /// Denoising: PSNR (dB) of the Wiener filter on the same `y`.
    pub wiener_psnr: Option<f64>,
    /// EHT: reduced χ² of the mean's closure phases.
    pub chi2_phase: Option<f64>,
    /// EHT: reduced χ² of the mean's log closure amplitudes.
    pub chi2_log_amp: Option<f64>,
    /// EHT, rows of the first version: the whole-pixel shift `(down, right)` that aligned the
    /// truth with the mean (superseded by `offset_uas`).
    #[serde(default)]
    pub shift: Option<(isize, isize)>,
    /// EHT: the offset `(east, north)` µas, to a tenth of a pixel, by which the truth was moved
    /// to align it with the mean (closures do not fix the position).
    #[serde(default)]
    pub offset_uas: Option<(f64, f64)>,
    /// EHT, ring-like truths with a ring fit: the ring measures' coverage.
    pub ring: Option<RingCoverage>,
    /// The parametric reference's rows: the sampler's diagnostics and the parameters' intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcmc: Option<McmcSummary>,
    /// Wall time of the run (s; DPI with its warm start, and sampling).
    pub seconds: f64,
}

/// Observed coverage over runs at one level (`coverage.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelCoverage {
    /// Nominal level.
    pub level: f64,
    /// Per-pixel coverage averaged over runs.
    pub pixels_mean: f64,
    /// Smallest per-pixel coverage of a run.
    pub pixels_min: f64,
    /// Largest per-pixel coverage of a run.
    pub pixels_max: f64,
    /// Coverage over the source's pixels ([`SOURCE_FRACTION`](super::SOURCE_FRACTION)), averaged over runs.
    #[serde(default)]
    pub source_mean: f64,
    /// EHT: fraction of ring runs whose truth diameter lies in its interval.
    pub ring_diameter: Option<f64>,
    /// EHT: the same for the width.
    pub ring_width: Option<f64>,
    /// EHT: the same for the position angle.
    pub ring_position_angle: Option<f64>,
}

/// The study's summary (`coverage.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageSummary {
    /// The problem.
    pub problem: CalibrationProblem,
    /// Runs.
    pub runs: usize,
    /// Per level, in the settings' order.
    pub levels: Vec<LevelCoverage>,
    /// EHT: runs in the ring-measure coverage.
    pub ring_runs: usize,
    /// EHT: runs left out of it (blob truths, or truths without a ring fit).
    pub ring_excluded: usize,
    /// EHT: ring runs none of whose samples had a ring fit (counted as not covered).
    pub ring_runs_without_fitted_samples: usize,
    /// Mean over runs of the 2-std coverage.
    pub within_2std_mean: f64,
    /// Mean over runs of std / peak.
    pub std_rel_mean: f64,
}

/// Rows and summary of a study; [`CalibrationReport::write`] writes its tables and figure.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationReport {
    /// One row per DPI run, in run order.
    pub rows: Vec<CalibrationRow>,
    /// The summary over the DPI runs.
    pub summary: CoverageSummary,
    /// The parametric reference, when asked for ([`ParametricReference`](super::ParametricReference)).
    pub parametric: Option<ParametricReport>,
}

/// The parametric reference's rows (`eht-<i>-parametric/row.json`, each with its sampler's
/// diagnostics in `mcmc`) and their summary (`parametric.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParametricReport {
    /// One row per source with fixed parameters, in run order.
    pub rows: Vec<CalibrationRow>,
    /// The summary over them.
    pub summary: CoverageSummary,
}

fn json_err(what: &Path, e: impl std::fmt::Display) -> ExperimentError {
    invalid_setting("--out", format!("{}: {e}", what.display()))
}

pub(super) fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| json_err(path, e))?;
    atomic_write(path, text.as_bytes())?;
    Ok(())
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| scoreprior_core::io::IoError::os(path, e))?;
    serde_json::from_str(&text).map_err(|e| json_err(path, e))
}

/// The summary over runs.
pub(super) fn summarise(problem: CalibrationProblem, levels: &[f64], rows: &[CalibrationRow]) -> CoverageSummary {
    let runs = rows.len();
    let avg = |f: &dyn Fn(&CalibrationRow) -> f64| rows.iter().map(f).sum::<f64>() / runs.max(1) as f64;
    let ring_rows: Vec<&RingCoverage> = rows.iter().filter_map(|r| r.ring.as_ref()).collect();
    let eht = problem == CalibrationProblem::Eht;
    let ring_frac = |k: usize, m: usize| -> Option<f64> {
        (eht && !ring_rows.is_empty())
            .then(|| ring_rows.iter().filter(|r| r.inside(k)[m]).count() as f64 / ring_rows.len() as f64)
    };
    let levels = levels
        .iter()
        .enumerate()
        .map(|(k, &level)| {
            let cov: Vec<f64> = rows.iter().filter_map(|r| r.pixel_coverage.get(k).copied()).collect();
            LevelCoverage {
                level,
                pixels_mean: cov.iter().sum::<f64>() / cov.len().max(1) as f64,
                pixels_min: cov.iter().cloned().fold(f64::INFINITY, f64::min).min(1.0),
                pixels_max: cov.iter().cloned().fold(f64::NEG_INFINITY, f64::max).max(0.0),
                source_mean: {
                    let sc: Vec<f64> = rows.iter().filter_map(|r| r.source_coverage.get(k).copied()).collect();
                    sc.iter().sum::<f64>() / sc.len().max(1) as f64
                },
                ring_diameter: ring_frac(k, 0),
                ring_width: ring_frac(k, 1),
                ring_position_angle: ring_frac(k, 2),
            }
        })
        .collect();
    CoverageSummary {
        problem,
        runs,
        levels,
        ring_runs: if eht { ring_rows.len() } else { 0 },
        ring_excluded: if eht { runs - ring_rows.len() } else { 0 },
        ring_runs_without_fitted_samples: ring_rows.iter().filter(|r| r.fitted == 0).count(),
        within_2std_mean: avg(&|r| r.within_2std),
        std_rel_mean: avg(&|r| r.std_rel),
    }
}

/// One ring measure's coverage at a level.
type LevelMeasure = fn(&LevelCoverage) -> Option<f64>;

/// `0.68` as `68 %`.
fn percent(level: f64) -> String {
    let s = format!("{:.1}", level * 100.0);
    format!("{} %", s.trim_end_matches(".0"))
}

fn opt(v: Option<f64>, p: usize) -> String {
    v.map_or("–".to_string(), |x| format!("{x:.p$}"))
}

/// The smallest level whose interval holds the truth (the intervals are nested), `–` for none.
fn covered_from(levels: &[f64], v: &[Interval]) -> String {
    let mut order: Vec<usize> = (0..levels.len()).collect();
    order.sort_by(|&a, &b| levels[a].total_cmp(&levels[b]));
    order.into_iter().find(|&k| v.get(k).is_some_and(|i| i.inside)).map_or("–".to_string(), |k| percent(levels[k]))
}

/// Mean over rows of an optional measure (`None` when no row has it).
fn mean_over(rows: &[CalibrationRow], f: impl Fn(&CalibrationRow) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = rows.iter().filter_map(f).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The parametric reference's sampler and parameters, one row per run: acceptance, R̂, ESS,
/// and each parameter's 95 % interval against the truth's value (✓ inside, ✗ outside).
fn mcmc_markdown(rows: &[CalibrationRow]) -> String {
    let mut md = String::from(
        "| run | family | acceptance min–max | R̂ max | ESS min | chains restarted | parameters: truth [95 % interval] \
         | seconds |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let Some(m) = &r.mcmc else { continue };
        let (lo, hi) = m.acceptance.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let params: Vec<String> = m
            .parameters
            .iter()
            .map(|p| {
                format!("{} {:.3} [{:.3}, {:.3}] {}", p.name, p.truth, p.lo, p.hi, if p.inside { "✓" } else { "✗" })
            })
            .collect();
        md += &format!(
            "| {} | {} | {lo:.2}–{hi:.2} | {} | {} | {} | {} | {:.0} |\n",
            r.run,
            m.family,
            opt(m.rhat_max, 3),
            opt(m.ess_min, 0),
            m.restarted.map_or("–".to_string(), |n| n.to_string()),
            params.join("; "),
            r.seconds
        );
    }
    md
}

impl CalibrationReport {
    /// Mean over runs of an optional measure (`None` when no run has it).
    fn mean_opt(&self, f: impl Fn(&CalibrationRow) -> Option<f64>) -> Option<f64> {
        mean_over(&self.rows, f)
    }

    /// The Markdown tables (`table.md`): DPI's, one row per run and a summary row (means over
    /// runs; for the ring measures, the fraction of ring runs covered at each level); then, with
    /// the parametric reference, the same table of its posteriors and one of its sampler.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        if !(self.rows.is_empty() && self.parametric.is_some()) {
            md += &table_markdown(&self.rows, &self.summary);
        }
        if let Some(p) = &self.parametric {
            if !md.is_empty() {
                md.push('\n');
            }
            md += "Parametric reference (exact posterior over the generator's parameters, same data):\n\n";
            md += &table_markdown(&p.rows, &p.summary);
            md.push('\n');
            md += &mcmc_markdown(&p.rows);
        }
        md
    }
}

/// One Markdown table of `rows` with its summary row.
fn table_markdown(rows: &[CalibrationRow], s: &CoverageSummary) -> String {
    let mean_opt = |f: fn(&CalibrationRow) -> Option<f64>| mean_over(rows, f);
    let levels: Vec<f64> = s.levels.iter().map(|l| l.level).collect();
    let eht = s.problem == CalibrationProblem::Eht;
    let mut head = vec!["run".to_string(), if eht { "source" } else { "image" }.to_string()];
    head.extend(levels.iter().map(|&l| format!("pixels in {}", percent(l))));
    head.extend(levels.iter().map(|&l| format!("source in {}", percent(l))));
    head.extend(["within 2 std", "std / peak"].map(String::from));
    if eht {
        head.extend(
            [
                "χ² closure phase",
                "χ² log closure amp",
                "diameter µas truth / median",
                "covered from",
                "width µas truth / median",
                "covered from",
                "PA ° truth / mean",
                "covered from",
            ]
            .map(String::from),
        );
    } else {
        head.extend(["PSNR mean dB", "PSNR Wiener dB"].map(String::from));
    }
    head.push("seconds".into());
    let mut md = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
    for r in rows {
        let mut cells = vec![r.run.clone(), r.kind.clone()];
        cells.extend(r.pixel_coverage.iter().map(|c| format!("{c:.3}")));
        cells.extend((0..levels.len()).map(|k| opt(r.source_coverage.get(k).copied(), 3)));
        cells.extend([format!("{:.3}", r.within_2std), format!("{:.4}", r.std_rel)]);
        if eht {
            cells.extend([opt(r.chi2_phase, 2), opt(r.chi2_log_amp, 2)]);
            match &r.ring {
                Some(g) => cells.extend([
                    format!("{:.1} / {}", g.truth.diameter, opt(g.median_diameter, 1)),
                    covered_from(&levels, &g.diameter),
                    format!("{:.1} / {}", g.truth.width, opt(g.median_width, 1)),
                    covered_from(&levels, &g.width),
                    format!("{:.0} / {}", g.truth.position_angle, opt(g.mean_position_angle, 0)),
                    covered_from(&levels, &g.position_angle),
                ]),
                None => cells.extend(std::iter::repeat_n("–".to_string(), 6)),
            }
        } else {
            cells.extend([opt(r.mean_psnr, 2), opt(r.wiener_psnr, 2)]);
        }
        cells.push(format!("{:.0}", r.seconds));
        md += &format!("| {} |\n", cells.join(" | "));
    }
    let mut cells = vec![format!("**mean of {}**", s.runs), String::new()];
    cells.extend(s.levels.iter().map(|l| format!("**{:.3}** (min {:.3})", l.pixels_mean, l.pixels_min)));
    cells.extend(s.levels.iter().map(|l| format!("**{:.3}**", l.source_mean)));
    cells.extend([format!("{:.3}", s.within_2std_mean), format!("{:.4}", s.std_rel_mean)]);
    if eht {
        cells.extend([opt(mean_opt(|r| r.chi2_phase), 2), opt(mean_opt(|r| r.chi2_log_amp), 2)]);
        let fracs = |f: fn(&LevelCoverage) -> Option<f64>| {
            s.levels.iter().map(|l| opt(f(l), 2)).collect::<Vec<_>>().join(" / ")
        };
        let n_ring = format!("ring runs: {} ({} left out)", s.ring_runs, s.ring_excluded);
        cells.extend([
            n_ring,
            fracs(|l| l.ring_diameter),
            String::new(),
            fracs(|l| l.ring_width),
            String::new(),
            fracs(|l| l.ring_position_angle),
        ]);
    } else {
        cells.extend([opt(mean_opt(|r| r.mean_psnr), 2), opt(mean_opt(|r| r.wiener_psnr), 2)]);
    }
    cells.push(format!("{:.0}", rows.iter().map(|r| r.seconds).sum::<f64>()));
    md += &format!("| {} |\n", cells.join(" | "));
    md
}

impl CalibrationReport {
    /// The CSV table (`table.csv`): every measure of every run, flattened, then the summary row
    /// (`run = summary`: means over runs; ring `*_in_*` columns: the fraction covered).
    fn csv(&self) -> Result<Vec<u8>> {
        let s = &self.summary;
        let levels: Vec<f64> = s.levels.iter().map(|l| l.level).collect();
        let mut head: Vec<String> = ["run", "index", "kind"].map(String::from).to_vec();
        head.extend(levels.iter().map(|l| format!("pixels_in_{l}")));
        head.extend(
            [
                "within_2std",
                "std_rel",
                "samples_used",
                "mean_psnr",
                "wiener_psnr",
                "chi2_phase",
                "chi2_log_amp",
                "shift_down",
                "shift_right",
                "truth_diameter",
                "truth_width",
                "truth_position_angle",
                "truth_asymmetry",
                "fitted_samples",
            ]
            .map(String::from),
        );
        for m in ["diameter", "width", "position_angle"] {
            for l in &levels {
                head.extend([format!("{m}_lo_{l}"), format!("{m}_hi_{l}"), format!("{m}_in_{l}")]);
            }
        }
        head.push("seconds".into());
        let num = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
        let mut w = csv::Writer::from_writer(Vec::new());
        let csv_err = |e: csv::Error| invalid_setting("--out", format!("table.csv: {e}"));
        w.write_record(&head).map_err(csv_err)?;
        for r in &self.rows {
            let mut rec = vec![r.run.clone(), r.index.to_string(), r.kind.clone()];
            rec.extend(r.pixel_coverage.iter().map(|c| c.to_string()));
            rec.extend([r.within_2std.to_string(), r.std_rel.to_string(), r.samples_used.to_string()]);
            rec.extend([r.mean_psnr, r.wiener_psnr, r.chi2_phase, r.chi2_log_amp].map(num));
            rec.extend([r.shift.map(|s| s.0 as f64), r.shift.map(|s| s.1 as f64)].map(num));
            let g = r.ring.as_ref();
            let t = g.map(|g| g.truth);
            rec.extend(
                [t.map(|t| t.diameter), t.map(|t| t.width), t.map(|t| t.position_angle), t.map(|t| t.asymmetry)]
                    .map(num),
            );
            rec.push(g.map_or(String::new(), |g| g.fitted.to_string()));
            for m in 0..3 {
                for k in 0..levels.len() {
                    let iv = g.and_then(|g| [&g.diameter, &g.width, &g.position_angle][m].get(k).copied());
                    let inside = match (g, iv) {
                        (Some(_), Some(i)) => i.inside.to_string(),
                        (Some(_), None) => "false".into(),
                        _ => String::new(),
                    };
                    rec.extend([num(iv.map(|i| i.lo)), num(iv.map(|i| i.hi)), inside]);
                }
            }
            rec.push(r.seconds.to_string());
            w.write_record(&rec).map_err(csv_err)?;
        }
        let mut rec = vec!["summary".to_string(), String::new(), format!("{} runs", s.runs)];
        rec.extend(s.levels.iter().map(|l| l.pixels_mean.to_string()));
        rec.extend([s.within_2std_mean.to_string(), s.std_rel_mean.to_string(), String::new()]);
        rec.extend(
            [
                self.mean_opt(|r| r.mean_psnr),
                self.mean_opt(|r| r.wiener_psnr),
                self.mean_opt(|r| r.chi2_phase),
                self.mean_opt(|r| r.chi2_log_amp),
            ]
            .map(num),
        );
        rec.extend(std::iter::repeat_n(String::new(), 6));
        rec.push(s.ring_runs.to_string());
        for m in 0..3 {
            for l in &s.levels {
                let f = [l.ring_diameter, l.ring_width, l.ring_position_angle][m];
                rec.extend([String::new(), String::new(), num(f)]);
            }
        }
        rec.push(self.rows.iter().map(|r| r.seconds).sum::<f64>().to_string());
        w.write_record(&rec).map_err(csv_err)?;
        w.into_inner().map_err(|e| invalid_setting("--out", format!("table.csv: {e}")))
    }

    /// The coverage curves `(name, points sorted by level)` of the figure: per-pixel mean (with
    /// its min–max band), then the ring measures for EHT.
    fn curves(&self) -> Vec<Curve> {
        let mut l = self.summary.levels.clone();
        l.sort_by(|a, b| a.level.total_cmp(&b.level));
        let mut out = vec![(
            "pixels (mean over runs, min-max band)",
            l.iter().map(|c| (c.level, c.pixels_mean)).collect(),
            Some(l.iter().map(|c| (c.level, c.pixels_min, c.pixels_max)).collect()),
        )];
        if self.rows.iter().any(|r| !r.source_coverage.is_empty()) {
            out.push((
                "source pixels (truth over 0.01 of peak)",
                l.iter().map(|c| (c.level, c.source_mean)).collect(),
                None,
            ));
        }
        let ring: [(&'static str, LevelMeasure); 3] = [
            ("ring diameter", |c| c.ring_diameter),
            ("ring width", |c| c.ring_width),
            ("ring position angle", |c| c.ring_position_angle),
        ];
        for (name, f) in ring {
            let pts: Vec<(f64, f64)> = l.iter().filter_map(|c| f(c).map(|v| (c.level, v))).collect();
            if !pts.is_empty() {
                out.push((name, pts, None));
            }
        }
        out
    }

    /// Writes `table.csv`, `table.md`, `coverage.json`, and the figure of observed against
    /// nominal coverage as `coverage.svg` and `coverage.png` (the PNG drawn here, without fonts:
    /// a 3×5 pixel font for its labels) into `out`; with the parametric reference also
    /// `parametric.json` (its summary), and with it alone only `table.md` and that.
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write(&self, out: &Path) -> Result<()> {
        std::fs::create_dir_all(out).map_err(|e| scoreprior_core::io::IoError::os(out, e))?;
        atomic_write(out.join("table.md"), self.markdown().as_bytes())?;
        if let Some(p) = &self.parametric {
            write_json(&out.join("parametric.json"), &p.summary)?;
            if self.rows.is_empty() {
                // The reference alone (`--parametric-only`): DPI's table, summary and figure
                // would be empty.
                return Ok(());
            }
        }
        atomic_write(out.join("table.csv"), &self.csv()?)?;
        write_json(&out.join("coverage.json"), &self.summary)?;
        let title = format!("DPI calibration: {} ({} runs)", self.summary.problem, self.summary.runs);
        let mut fig = Figure::new(&title, "nominal level", "observed coverage")
            .with(Series::line("ideal (observed = nominal)", vec![(0.0, 0.0), (1.0, 1.0)]));
        for (name, pts, band) in self.curves() {
            let s = Series::line_points(name, pts);
            fig = fig.with(match band {
                Some(b) => s.with_band(b),
                None => s,
            });
        }
        fig.write(out.join("coverage.svg")).map_err(|e| ExperimentError::Plot(e.to_string()))?;
        let png = png::coverage_png(&title.to_uppercase(), &self.curves())
            .map_err(|e| ExperimentError::Plot(format!("coverage.png: {e}")))?;
        atomic_write(out.join("coverage.png"), &png)?;
        Ok(())
    }
}
