//! Contour figures of the 2-D study: for each method a panel with the true posterior's
//! contours (black) and the method's KDE contours (colour) at the same levels, 10 %, 30 %,
//! 50 %, 70 % and 90 % of the true density's peak; isolines by marching squares (`contour`).
//! It takes the grid, the true density and the panels as plain data and knows no study type:
//! the 2-D study calls it, not the other way round.

use std::path::Path;

use contour::ContourBuilder;
use plotters::prelude::*;

use super::kde::{kde_log_density, Bandwidth, Grid};
use crate::plot::PlotResult;

/// One panel of a contour figure: its title, and the samples (row-major `(n, 2)`) whose KDE
/// contours it draws over the true posterior's (`None`: the true contours only).
pub(crate) struct Panel<'a> {
    pub(crate) title: String,
    pub(crate) samples: Option<&'a [f64]>,
}

/// Isolines of `values` (the grid's layout, first coordinate outer) at `levels`, as polylines
/// in data coordinates.
fn isolines(g: &Grid, values: &[f64], levels: &[f64]) -> PlotResult<Vec<(usize, Vec<(f64, f64)>)>> {
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

/// Draws one case's contour figure (`contours_<case>.svg`) into `path`: a panel per entry of
/// `panels` over `grid`, each with the true posterior density `truth` (on the grid's points)
/// and the panel's samples' KDE (kernel `bandwidth`) at the same levels.
pub(crate) fn figure(grid: &Grid, bandwidth: Bandwidth, truth: &[f64], panels: &[Panel], path: &Path) -> PlotResult {
    let peak = truth.iter().copied().fold(0.0, f64::max);
    let levels: Vec<f64> = [0.1, 0.3, 0.5, 0.7, 0.9].iter().map(|f| f * peak).collect();
    let true_lines = isolines(grid, truth, &levels)?;
    let mut svg = String::new();
    {
        // 350 pixels a panel.
        let width = 350 * panels.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (width, 400)).into_drawing_area();
        root.fill(&WHITE)?;
        let areas = root.split_evenly((1, panels.len()));
        for (area, (i, panel)) in areas.iter().zip(panels.iter().enumerate()) {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 15))
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(40)
                .build_cartesian_2d(grid.x.0..grid.x.1, grid.y.0..grid.y.1)?;
            chart.configure_mesh().x_desc("x1").y_desc("x2").draw()?;
            for (_, l) in &true_lines {
                chart.draw_series(std::iter::once(PathElement::new(l.clone(), BLACK.stroke_width(1))))?;
            }
            let Some(x) = panel.samples else {
                continue;
            };
            let Ok(logq) = kde_log_density(x, bandwidth, grid) else { continue };
            let q: Vec<f64> = logq.iter().map(|v| v.exp()).collect();
            let color = Palette99::pick(i + 1).to_rgba();
            for (_, l) in isolines(grid, &q, &levels)? {
                chart.draw_series(std::iter::once(PathElement::new(l, color.stroke_width(2))))?;
            }
        }
        root.present()?;
    }
    scoreprior_core::io::atomic_write(path, svg.as_bytes())?;
    Ok(())
}
