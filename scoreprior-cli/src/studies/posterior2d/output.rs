//! The study's outputs: the Markdown and CSV tables, the grid search, the samples as `.npy`,
//! and one contour figure per case (each method's KDE over the true posterior's contours).

use std::path::Path;

use serde::Serialize;

use super::case::{Case, Method};
use super::study::Study;
use crate::plot::PlotResult;
use crate::studies::contours::{self, Panel};
use scoreprior::experiment::{ExperimentError, Result};

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "∞".into()
    }
}

impl Study {
    /// The table in Markdown.
    pub fn markdown(&self) -> String {
        let mut s = String::from(
            "| case | method | setting | KL(p‖q) scott | KL(q‖p) scott | KL(p‖q) h=0.03 | KL(q‖p) h=0.03 | exact KL(q‖p) | exact KL(p‖q) | mean | std | s |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for c in &self.cases {
            if let Ok(post) = c.posterior() {
                let (m, v) = post.moments();
                s += &format!(
                    "| {} | true posterior | σ={} | 0 | 0 | 0 | 0 | | | ({:.3}, {:.3}) | ({:.3}, {:.3}) | |\n",
                    c.name,
                    c.sigma,
                    m[0],
                    m[1],
                    v[0].sqrt(),
                    v[2].sqrt()
                );
            }
            for r in self.rows.iter().filter(|r| r.case == c.name) {
                s += &format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | ({:.3}, {:.3}) | ({:.3}, {:.3}) | {:.1} |\n",
                    r.case,
                    r.method,
                    r.setting,
                    fmt(r.kl_pq_scott),
                    fmt(r.kl_qp_scott),
                    fmt(r.kl_pq_fixed),
                    fmt(r.kl_qp_fixed),
                    r.exact_kl_qp.map(fmt).unwrap_or_default(),
                    r.exact_kl_pq.map(fmt).unwrap_or_default(),
                    r.mean[0],
                    r.mean[1],
                    r.std[0],
                    r.std[1],
                    r.seconds
                );
            }
        }
        s
    }

    /// Writes `table.csv`, `table.md`, `search.csv`, `samples_<case>_<method>.npy` and one
    /// contour figure per case, `contours_<case>.svg`, into `dir` (each file atomically).
    ///
    /// # Errors
    /// File-system or plotting errors.
    pub fn write(&self, dir: &Path) -> Result<()> {
        use scoreprior_core::io::{atomic_write, write_csv, write_npy};
        std::fs::create_dir_all(dir).map_err(|e| scoreprior_core::io::IoError::os(dir, e))?;
        #[derive(Serialize)]
        struct CsvRow<'a> {
            case: &'a str,
            method: &'a str,
            setting: &'a str,
            kl_pq_scott: f64,
            kl_qp_scott: f64,
            kl_pq_h003: f64,
            kl_qp_h003: f64,
            exact_kl_qp: Option<f64>,
            exact_kl_pq: Option<f64>,
            mean_x1: f64,
            mean_x2: f64,
            std_x1: f64,
            std_x2: f64,
            samples: usize,
            seconds: f64,
        }
        let rows: Vec<CsvRow> = self
            .rows
            .iter()
            .map(|r| CsvRow {
                case: &r.case,
                method: &r.method,
                setting: &r.setting,
                kl_pq_scott: r.kl_pq_scott,
                kl_qp_scott: r.kl_qp_scott,
                kl_pq_h003: r.kl_pq_fixed,
                kl_qp_h003: r.kl_qp_fixed,
                exact_kl_qp: r.exact_kl_qp,
                exact_kl_pq: r.exact_kl_pq,
                mean_x1: r.mean[0],
                mean_x2: r.mean[1],
                std_x1: r.std[0],
                std_x2: r.std[1],
                samples: r.samples,
                seconds: r.seconds,
            })
            .collect();
        write_csv(dir.join("table.csv"), &rows)?;
        atomic_write(dir.join("table.md"), self.markdown().as_bytes())?;
        write_csv(dir.join("search.csv"), &self.search)?;
        for (case, method, x) in &self.samples {
            let tag = format!("{method:?}").to_lowercase();
            write_npy(dir.join(format!("samples_{case}_{tag}.npy")), &[x.len() / 2, 2], x)?;
        }
        for case in &self.cases {
            self.contour_figure(case, &dir.join(format!("contours_{}.svg", case.name)))
                .map_err(|e| ExperimentError::Plot(e.to_string()))?;
        }
        Ok(())
    }

    /// Draws `contours_<case>.svg` for one case: a panel per method (DPI and the five
    /// baselines) with its KDE contours over the true posterior's.
    fn contour_figure(&self, case: &Case, path: &Path) -> PlotResult {
        let post = case.posterior()?;
        let truth: Vec<f64> = case.grid.points().iter().map(|x| post.log_pdf(*x).exp()).collect();
        let methods = [Method::Dpi, Method::ScoreAld, Method::Dps, Method::SdeProj, Method::Daps, Method::PnpDm];
        let panels: Vec<Panel> = methods
            .iter()
            .map(|method| {
                let row = self.rows.iter().find(|r| r.case == case.name && r.method == method.name());
                let title = match row {
                    Some(r) => format!("{} {}  KL(p‖q) {:.3}", method.name(), r.setting, r.kl_pq_scott),
                    None => method.name().to_string(),
                };
                let samples =
                    self.samples.iter().find(|(c, m, _)| *c == case.name && m == method).map(|(_, _, x)| x.as_slice());
                Panel { title, samples }
            })
            .collect();
        contours::figure(&case.grid, case.bandwidth, &truth, &panels, path)
    }
}
