//! Progress and log lines of long library calls, left to the caller to show: the CLI draws
//! progress bars and prints the lines, a library user may show them or not ([`Silent`]).
//! A call reports stages of counted steps, so one trait serves training loops and studies.

/// Receives what a long call reports. Every method has a do-nothing default.
///
/// ```
/// use scoreprior::monitor::Monitor;
/// /// Collects the lines a call prints.
/// #[derive(Default)]
/// struct Lines(Vec<String>);
/// impl Monitor for Lines {
///     fn line(&mut self, text: &str) {
///         self.0.push(text.to_string());
///     }
/// }
/// let mut m = Lines::default();
/// m.stage("demo", 2);
/// m.update(1, &|| "half way".to_string());
/// m.line("done");
/// assert_eq!(m.0, ["done"]);
/// ```
pub trait Monitor {
    /// A stage of `total` steps begins, labelled `label` (a progress bar, say).
    fn stage(&mut self, _label: &str, _total: u64) {}
    /// `done` steps of the current stage are over; `message` (a loss, an NFE) is built only
    /// when it will be shown, since formatting every step would cost more than the step.
    fn update(&mut self, _done: u64, _message: &dyn Fn() -> String) {}
    /// The current stage is over.
    fn finish(&mut self) {}
    /// A result line: a table row, a summary (the CLI prints it on stdout).
    fn line(&mut self, _text: &str) {}
    /// A status note: a resume, a removed file (the CLI prints it on stderr).
    fn note(&mut self, _text: &str) {}
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Monitor for Silent {}
