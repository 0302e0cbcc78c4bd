//! The command line's [`Monitor`]: each stage a library call reports becomes a [`Progress`]
//! (a bar on a terminal, a line every ~10 s otherwise); result lines go to stdout and notes
//! to stderr, as the commands printed them before their loops moved into the library.

use scoreprior::monitor::Monitor;

use super::progress::Progress;

/// Progress bars and printed lines; `quiet` hides the bars only.
pub struct Bars {
    quiet: bool,
    bar: Option<Progress>,
}

impl Bars {
    /// Shows bars unless `quiet`.
    pub fn new(quiet: bool) -> Self {
        Self { quiet, bar: None }
    }
}

impl Monitor for Bars {
    fn stage(&mut self, label: &str, total: u64) {
        self.bar = Some(Progress::new(label, total, self.quiet));
    }

    fn update(&mut self, done: u64, message: &dyn Fn() -> String) {
        if let Some(bar) = &mut self.bar {
            bar.update(done, message);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }

    fn line(&mut self, text: &str) {
        println!("{text}");
    }

    fn note(&mut self, text: &str) {
        eprintln!("{text}");
    }
}
