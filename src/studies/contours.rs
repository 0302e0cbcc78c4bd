//! Contour figures of the 2-D study: for each method a panel with the true posterior's
//! contours (black) and the method's KDE contours (colour) at the same levels, 10 %, 30 %,
//! 50 %, 70 % and 90 % of the true density's peak; isolines by marching squares (`contour`).

use std::path::Path;

use contour::ContourBuilder;
use plotters::prelude::*;

use super::kde::kde_log_density;
use super::posterior2d::{Case, Method, Study};
use crate::plot::PlotResult;

/// Isolines of `values` (the grid's layout, first coordinate outer) at `levels`, as polylines
/// in data coordinates.
fn isolines(case: &Case, values: &[f64], levels: &[f64]) -> PlotResult<Vec<(usize, Vec<(f64, f64)>)>> {
    let g = &case.grid;
    let (dx, dy) = g.steps();
    // contour wants rows along y (outer) and columns along x: transpose.
    let n = g.n;
    let mut t = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            t[j * n + i] = values[i * n + j];
        }
    }
    let builder =
        ContourBuilder::new(n, n, true).x_origin(g.x.0 + 0.5 * dx).y_origin(g.y.0 + 0.5 * dy).x_step(dx).y_step(dy);
    let mut out = Vec::new();
    for (k, line) in builder.lines(&t, levels)?.iter().enumerate() {
        for ls in line.geometry().0.iter() {
            out.push((k, ls.0.iter().map(|c| (c.x, c.y)).collect()));
        }
    }
    Ok(out)
}

/// Draws `contours_<case>.svg` for one case of `study`.
pub(crate) fn figure(study: &Study, case: &Case, path: &Path) -> PlotResult {
    let post = case.posterior()?;
    let truth: Vec<f64> = case.grid.points().iter().map(|x| post.log_pdf(*x).exp()).collect();
    let peak = truth.iter().copied().fold(0.0, f64::max);
    let levels: Vec<f64> = [0.1, 0.3, 0.5, 0.7, 0.9].iter().map(|f| f * peak).collect();
    let true_lines = isolines(case, &truth, &levels)?;
    let methods = [Method::Dpi, Method::ScoreAld, Method::Dps, Method::SdeProj];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1400, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((1, methods.len()));
        for (panel, (i, method)) in panels.iter().zip(methods.iter().enumerate()) {
            let row = study.rows.iter().find(|r| r.case == case.name && r.method == method.name());
            let title = match row {
                Some(r) => format!("{} {}  KL(p‖q) {:.3}", method.name(), r.setting, r.kl_pq_scott),
                None => method.name().to_string(),
            };
            let mut chart = ChartBuilder::on(panel)
                .caption(title, ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(40)
                .build_cartesian_2d(case.grid.x.0..case.grid.x.1, case.grid.y.0..case.grid.y.1)?;
            chart.configure_mesh().x_desc("x1").y_desc("x2").draw()?;
            for (_, l) in &true_lines {
                chart.draw_series(std::iter::once(PathElement::new(l.clone(), BLACK.stroke_width(1))))?;
            }
            let Some((_, _, x)) = study.samples.iter().find(|(c, m, _)| *c == case.name && m == method) else {
                continue;
            };
            let Ok(logq) = kde_log_density(x, case.bandwidth, &case.grid) else { continue };
            let q: Vec<f64> = logq.iter().map(|v| v.exp()).collect();
            let color = Palette99::pick(i + 1).to_rgba();
            for (_, l) in isolines(case, &q, &levels)? {
                chart.draw_series(std::iter::once(PathElement::new(l, color.stroke_width(2))))?;
            }
        }
        root.present()?;
    }
    scoreprior_core::io::atomic_write(path, svg.as_bytes())?;
    Ok(())
}
