//! Small shared plotting helper: line, point and shaded-band series on linear or log axes,
//! rendered to SVG with `plotters` and written atomically.
//!
//! A figure is data ([`Figure`] of [`Series`]); axis ranges are taken from the data (with a
//! 5 % margin, or whole decades on log axes). Only SVG is produced: it needs no font files
//! or bitmap encoder, so the binary stays small and builds offline.

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

/// Plotting errors (plotters' own and i/o), boxed.
pub type PlotResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
use PlotResult as CliResult;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Connected line.
    Line,
    /// Unconnected points (a scatter plot).
    Points,
    /// Line with a point at every vertex.
    LinePoints,
}

/// One data series of a figure.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend entry.
    pub label: String,
    /// `(x, y)` points, drawn in the given order.
    pub points: Vec<(f64, f64)>,
    /// How to draw it.
    pub mark: Mark,
    /// Optional shaded band `(x, y_low, y_high)`, e.g. mean ± one standard deviation.
    pub band: Option<Vec<(f64, f64, f64)>>,
}

impl Series {
    /// A line series.
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { label: label.into(), points, mark: Mark::Line, band: None }
    }
    /// A scatter series.
    pub fn points(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { label: label.into(), points, mark: Mark::Points, band: None }
    }
    /// A line with markers.
    pub fn line_points(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { label: label.into(), points, mark: Mark::LinePoints, band: None }
    }
    /// Adds a shaded band `(x, low, high)` behind the series.
    pub fn with_band(mut self, band: Vec<(f64, f64, f64)>) -> Self {
        self.band = Some(band);
        self
    }
}

/// A figure: title, axis labels and scales, and its series.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Caption above the plot.
    pub title: String,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Logarithmic x axis (all x must be > 0).
    pub log_x: bool,
    /// Logarithmic y axis (all y must be > 0).
    pub log_y: bool,
    /// The series, drawn in order (later on top).
    pub series: Vec<Series>,
    /// Size in pixels.
    pub size: (u32, u32),
}

impl Figure {
    /// An empty figure with linear axes, 800×500.
    pub fn new(title: impl Into<String>, x_label: impl Into<String>, y_label: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_x: false,
            log_y: false,
            series: Vec::new(),
            size: (800, 500),
        }
    }
    /// Sets logarithmic axes.
    pub fn log_axes(mut self, log_x: bool, log_y: bool) -> Self {
        self.log_x = log_x;
        self.log_y = log_y;
        self
    }
    /// Adds a series.
    pub fn with(mut self, s: Series) -> Self {
        self.series.push(s);
        self
    }

    /// Renders the figure as an SVG document.
    pub fn to_svg(&self) -> CliResult<String> {
        let (xs, ys) = self.extents()?;
        let mut out = String::new();
        {
            let root = SVGBackend::with_string(&mut out, self.size).into_drawing_area();
            root.fill(&WHITE)?;
            match (self.log_x, self.log_y) {
                (false, false) => self.draw(&root, xs.0..xs.1, ys.0..ys.1)?,
                (true, false) => self.draw(&root, (xs.0..xs.1).log_scale(), ys.0..ys.1)?,
                (false, true) => self.draw(&root, xs.0..xs.1, (ys.0..ys.1).log_scale())?,
                (true, true) => self.draw(&root, (xs.0..xs.1).log_scale(), (ys.0..ys.1).log_scale())?,
            }
            root.present()?;
        }
        Ok(out)
    }

    /// Writes the figure to `path` (must end in `.svg`), atomically.
    pub fn write(&self, path: impl AsRef<Path>) -> CliResult {
        let path = path.as_ref();
        if path.extension().and_then(|e| e.to_str()) != Some("svg") {
            return Err(format!("{}: plots are written as SVG; use a .svg file name", path.display()).into());
        }
        let svg = self.to_svg()?;
        scoreprior_core::io::atomic_write(path, svg.as_bytes())?;
        Ok(())
    }

    /// Data extents with a margin; checks positivity on log axes.
    fn extents(&self) -> CliResult<((f64, f64), (f64, f64))> {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for s in &self.series {
            for &(x, y) in &s.points {
                xs.push(x);
                ys.push(y);
            }
            for &(x, lo, hi) in s.band.iter().flatten() {
                xs.push(x);
                ys.push(lo);
                ys.push(hi);
            }
        }
        let range = |v: &[f64], log: bool, axis: &str| -> CliResult<(f64, f64)> {
            let v: Vec<f64> = v.iter().copied().filter(|a| a.is_finite() && (!log || *a > 0.0)).collect();
            if v.is_empty() {
                return Err(format!(
                    "plot '{}': no finite{} {axis} values to draw",
                    self.title,
                    if log { " positive" } else { "" }
                )
                .into());
            }
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Ok(if log {
                (10f64.powf(lo.log10().floor()), 10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0)))
            } else {
                let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 * lo.abs().max(1.0) };
                (lo - pad, hi + pad)
            })
        };
        Ok((range(&xs, self.log_x, "x")?, range(&ys, self.log_y, "y")?))
    }

    fn draw<'a, X, Y>(&self, root: &DrawingArea<SVGBackend<'a>, plotters::coord::Shift>, x: X, y: Y) -> CliResult
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x, y)?;
        chart.configure_mesh().x_desc(&self.x_label).y_desc(&self.y_label).draw()?;
        let ok =
            |x: f64, y: f64| x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0) && (!self.log_y || y > 0.0);
        for (i, s) in self.series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            if let Some(band) = &s.band {
                let mut poly: Vec<(f64, f64)> = band.iter().filter(|b| ok(b.0, b.1)).map(|b| (b.0, b.1)).collect();
                poly.extend(band.iter().rev().filter(|b| ok(b.0, b.2)).map(|b| (b.0, b.2)));
                if poly.len() >= 3 {
                    chart.draw_series(std::iter::once(Polygon::new(poly, color.mix(0.2).filled())))?;
                }
            }
            let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|&(x, y)| ok(x, y)).collect();
            let style = ShapeStyle::from(&color).stroke_width(2);
            let ann = match s.mark {
                Mark::Line | Mark::LinePoints => chart.draw_series(LineSeries::new(pts.clone(), style))?,
                Mark::Points => chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?,
            };
            ann.label(s.label.clone()).legend(move |(lx, ly)| {
                PathElement::new(vec![(lx, ly), (lx + 20, ly)], ShapeStyle::from(&color).stroke_width(2))
            });
            if s.mark == Mark::LinePoints {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
            }
        }
        if self.series.iter().any(|s| !s.label.is_empty()) {
            chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_series_and_rejects_bad_input() {
        let f = Figure::new("t", "K", "log p")
            .log_axes(true, false)
            .with(Series::line_points("mean", vec![(1.0, -3.0), (2.0, -2.0), (4.0, -2.5)]).with_band(vec![
                (1.0, -4.0, -2.0),
                (2.0, -2.5, -1.5),
                (4.0, -2.7, -2.3),
            ]))
            .with(Series::points("exact", vec![(1.0, -2.4), (4.0, -2.4)]));
        let svg = f.to_svg().unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
        assert!(svg.contains("mean") && svg.contains("exact"));
        assert!(svg.contains("<polygon") || svg.contains("<path") || svg.contains("<polyline"));
        // Log axis with only non-positive data is an error, not a panic.
        let bad = Figure::new("b", "x", "y").log_axes(true, false).with(Series::line("s", vec![(0.0, 1.0)]));
        assert!(bad.to_svg().unwrap_err().to_string().contains("positive"));
        assert!(f.write(std::env::temp_dir().join("x.png")).unwrap_err().to_string().contains("SVG"));
    }
}
