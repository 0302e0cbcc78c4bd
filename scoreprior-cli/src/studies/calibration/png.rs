//! The coverage figure as a PNG, drawn pixel by pixel (the plotting crate here renders SVG only):
//! axes over [0, 1]², the dashed diagonal, each curve with its points (the first one's band
//! shaded), and labels in a 3×5 pixel font.

/// A curve of the coverage figure: name, `(level, coverage)` points, optional `(level, lo, hi)`
/// band.
pub(super) type Curve = (&'static str, Vec<(f64, f64)>, Option<Vec<(f64, f64, f64)>>);

const W: u32 = 720;
const H: u32 = 540;
/// Plot area: left, top, right, bottom.
const AREA: (f64, f64, f64, f64) = (70.0, 40.0, 690.0, 470.0);
const COLORS: [[u8; 3]; 5] = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189]];

/// 3×5 glyphs, one row per entry (bit 2 the left column).
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        ',' => [0, 0, 0, 2, 4],
        ':' => [0, 2, 0, 2, 0],
        '-' => [0, 0, 7, 0, 0],
        '(' => [2, 4, 4, 4, 2],
        ')' => [2, 1, 1, 1, 2],
        '=' => [0, 7, 0, 7, 0],
        '/' => [1, 1, 2, 4, 4],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'Q' => [2, 5, 5, 6, 3],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        _ => [0; 5],
    }
}

struct Canvas(image::RgbImage);

impl Canvas {
    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u32) < W && (y as u32) < H {
            self.0.put_pixel(x as u32, y as u32, image::Rgb(c));
        }
    }
    /// A line of half-width `r` pixels; `dash` > 0 draws dashes of that length.
    fn line(&mut self, a: (f64, f64), b: (f64, f64), r: i64, c: [u8; 3], dash: f64) {
        let len = (b.0 - a.0).hypot(b.1 - a.1);
        let steps = (len * 2.0).ceil().max(1.0) as usize;
        for k in 0..=steps {
            let t = k as f64 / steps as f64;
            if dash > 0.0 && ((t * len / dash) as i64) % 2 == 1 {
                continue;
            }
            let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
            for dy in -r..=r {
                for dx in -r..=r {
                    if dx * dx + dy * dy <= r * r + r {
                        self.put(x.round() as i64 + dx, y.round() as i64 + dy, c);
                    }
                }
            }
        }
    }
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
        for (k, ch) in s.chars().enumerate() {
            let g = glyph(ch.to_ascii_uppercase());
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits >> (2 - col) & 1 == 1 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                self.put(x + (k as i64 * 4 + col) * scale + dx, y + row as i64 * scale + dy, c);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn text_width(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * 4 * scale
}

/// The figure: axes over [0, 1]², a grid every 0.1, the dashed diagonal, each curve with its
/// points (and the first curve's band shaded), a legend, tick labels, title and axis labels.
pub(super) fn coverage_png(title: &str, curves: &[Curve]) -> Result<Vec<u8>, String> {
    let mut cv = Canvas(image::RgbImage::from_pixel(W, H, image::Rgb([255, 255, 255])));
    let (l, t, r, b) = AREA;
    let at = |x: f64, y: f64| (l + x.clamp(0.0, 1.0) * (r - l), b - y.clamp(0.0, 1.0) * (b - t));
    // Band of the first curve: vertical spans between lo and hi, interpolated in x.
    if let Some((_, _, Some(band))) = curves.first() {
        for w in band.windows(2) {
            let (x0, x1) = (at(w[0].0, 0.0).0, at(w[1].0, 0.0).0);
            for px in x0.round() as i64..=x1.round() as i64 {
                let f = if x1 > x0 { (px as f64 - x0) / (x1 - x0) } else { 0.0 };
                let lo = w[0].1 + f * (w[1].1 - w[0].1);
                let hi = w[0].2 + f * (w[1].2 - w[0].2);
                let (ylo, yhi) = (at(0.0, lo).1, at(0.0, hi).1);
                for py in yhi.round() as i64..=ylo.round() as i64 {
                    cv.put(px, py, [205, 225, 242]);
                }
            }
        }
    }
    for k in 0..=10 {
        let v = k as f64 / 10.0;
        let grey = if k % 5 == 0 { [190, 190, 190] } else { [230, 230, 230] };
        cv.line(at(v, 0.0), at(v, 1.0), 0, grey, 0.0);
        cv.line(at(0.0, v), at(1.0, v), 0, grey, 0.0);
        if k % 2 == 0 {
            let label = format!("{v:.1}");
            let (x, y) = at(v, 0.0);
            cv.text(x as i64 - text_width(&label, 2) / 2, y as i64 + 8, &label, 2, [0, 0, 0]);
            let (x, y) = at(0.0, v);
            cv.text(x as i64 - text_width(&label, 2) - 8, y as i64 - 5, &label, 2, [0, 0, 0]);
        }
    }
    for (a, c) in
        [((0.0, 0.0), (1.0, 0.0)), ((0.0, 0.0), (0.0, 1.0)), ((1.0, 0.0), (1.0, 1.0)), ((0.0, 1.0), (1.0, 1.0))]
    {
        cv.line(at(a.0, a.1), at(c.0, c.1), 0, [0, 0, 0], 0.0);
    }
    cv.line(at(0.0, 0.0), at(1.0, 1.0), 1, [110, 110, 110], 8.0);
    for (i, (_, pts, _)) in curves.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        for w in pts.windows(2) {
            cv.line(at(w[0].0, w[0].1), at(w[1].0, w[1].1), 1, c, 0.0);
        }
        for p in pts {
            let (x, y) = at(p.0, p.1);
            for dy in -3..=3 {
                for dx in -3..=3 {
                    cv.put(x.round() as i64 + dx, y.round() as i64 + dy, c);
                }
            }
        }
    }
    // Legend, upper left inside the axes.
    let mut entries = vec![("IDEAL (OBSERVED = NOMINAL)".to_string(), [110, 110, 110])];
    entries.extend(curves.iter().enumerate().map(|(i, (n, _, _))| (n.to_uppercase(), COLORS[i % COLORS.len()])));
    for (k, (name, c)) in entries.iter().enumerate() {
        let y = t + 14.0 + 16.0 * k as f64;
        cv.line((l + 12.0, y), (l + 36.0, y), 1, *c, 0.0);
        cv.text(l as i64 + 44, y as i64 - 5, name, 2, [0, 0, 0]);
    }
    cv.text(((l + r) / 2.0) as i64 - text_width(title, 3) / 2, 8, title, 3, [0, 0, 0]);
    let xl = "NOMINAL LEVEL";
    cv.text(((l + r) / 2.0) as i64 - text_width(xl, 2) / 2, H as i64 - 34, xl, 2, [0, 0, 0]);
    cv.text(6, (t - 16.0) as i64, "OBSERVED COVERAGE", 2, [0, 0, 0]);
    let mut bytes = std::io::Cursor::new(Vec::new());
    cv.0.write_to(&mut bytes, image::ImageFormat::Png).map_err(|e| e.to_string())?;
    Ok(bytes.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_png_is_drawn() {
        let curves = vec![("pixels", vec![(0.5, 0.4), (0.9, 0.8)], Some(vec![(0.5, 0.3, 0.5), (0.9, 0.7, 0.9)]))];
        let png = coverage_png("TEST", &curves).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
