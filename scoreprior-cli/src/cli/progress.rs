//! Progress of long commands: indicatif's bar on a terminal; otherwise (CI logs, `| tee`,
//! `nohup`) one plain line on stderr every ~10 s with the position, the caller's message,
//! seconds per step and the ETA, since a bar redrawn in place is invisible or garbage there.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// A progress reporter for `total` steps.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    total: u64,
    quiet: bool,
    start: Instant,
    last_line: Instant,
    every: Duration,
    first: Option<u64>,
}

impl Progress {
    /// A reporter labelled `label`; `quiet` shows nothing.
    pub fn new(label: &str, total: u64, quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(&format!(
                    "{label} {{bar:30}} {{pos}}/{{len}} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}"
                ))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        let now = Instant::now();
        Self {
            bar,
            label: label.to_string(),
            total,
            quiet,
            start: now,
            last_line: now,
            every: Duration::from_secs(10),
            first: None,
        }
    }

    /// Reports that `pos` steps are done; `msg` (loss terms and the like) is built only when
    /// it will be shown.
    pub fn update(&mut self, pos: u64, msg: impl FnOnce() -> String) {
        if self.quiet {
            return;
        }
        // Rates count only steps done in this process (a resumed run starts mid-way).
        let first = *self.first.get_or_insert(pos.saturating_sub(1));
        if let Some(b) = &self.bar {
            b.set_position(pos);
            if pos % 10 == 0 || pos == self.total {
                b.set_message(msg());
            }
            return;
        }
        if self.last_line.elapsed() < self.every && pos != self.total {
            return;
        }
        self.last_line = Instant::now();
        let done = pos.saturating_sub(first).max(1) as f64;
        let per = self.start.elapsed().as_secs_f64() / done;
        let eta = per * self.total.saturating_sub(pos) as f64;
        eprintln!(
            "{}: {pos}/{} ({:.0} %) {} | {per:.3} s/step, ETA {}",
            self.label,
            self.total,
            100.0 * pos as f64 / self.total.max(1) as f64,
            msg(),
            hms(eta)
        );
    }

    /// Ends the bar (no-op without one).
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }
}

fn hms(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hms_formats_hours_minutes_seconds() {
        assert_eq!(super::hms(3725.4), "1:02:05");
        assert_eq!(super::hms(-1.0), "0:00:00");
    }
}
