//! `scoreprior dpi`: Deep Probabilistic Imaging — fit a RealNVP posterior `q(x) ≈ p(x|y)`
//! by minimising `E_q[−log p(y|x) − log p(x) + log q(x)]`, then sample it.
//!
//! Priors: the exact score-based prior (`gaussian-ode`: the analytic score of the shipped
//! Gaussian through the probability-flow ODE; or an NCSN++ checkpoint), its closed form
//! (`gaussian`), or total variation (`tv`). The measurement is read (`--y`) or simulated from
//! a ground truth (`--x-true`, `--seed`). Writes `samples.npy`, `mean.npy`, `std.npy`, PNGs
//! of the sample grid, mean and std, `losses.csv` and `losses.svg`, `checkpoint.safetensors`
//! (resumable) and `metrics.json` (MSE, PSNR, SSIM of the mean and averaged over samples when
//! a ground truth is given; for a Gaussian prior with denoising also the errors against the
//! closed-form posterior).
//!
//! Black-hole imaging: `--forward 'eht(fov=160, …)'` (the `measure` preset) images from the
//! closure phases (`2(1 − cos Δψ)/σ²`) and debiased log closure amplitudes (`(Δℓ/σ)²`) of
//! noisy visibilities (`--data closures`, the default; `--data visibilities` fits the complex
//! visibilities instead), typically with `--positive` (softplus output of the flow with its
//! log-determinant) and an optional `--flux-weight W --flux F` (`W(Σx − F)²`). The image grid
//! is that of `--x-true` (or `--size`) and must be the prior's; closure χ² and the normalised
//! cross-correlation with the truth go to `closures.json`.
//!
//! The flags are [`scoreprior::experiment::DpiSettings`] itself (its groups derive clap's
//! `Args` under the library's `cli` feature): one declaration, one set of defaults, and
//! [`DpiSettings::run`] does the work.

use clap::Args;
use scoreprior::experiment::DpiSettings;
use scoreprior_cli::dpi_run::DpiRun;

use super::monitor::Bars;
use super::CliResult;

/// Arguments of `scoreprior dpi`: the library's run description.
#[derive(Debug, Clone, Args)]
pub struct DpiArgs {
    /// Prior, problem, optimiser, flow, objective, outputs and seed.
    #[command(flatten)]
    pub settings: DpiSettings,
}

/// What a DPI run measured (also written to `metrics.json`).
pub use scoreprior::experiment::Report as DpiSummary;

#[derive(Debug, clap::Parser)]
struct DpiOnly {
    #[command(flatten)]
    args: DpiArgs,
}

impl DpiArgs {
    /// Parses `scoreprior dpi` flags (without the subcommand name), with every default of the
    /// command line: the way a program (e.g. the main job) builds a run.
    ///
    /// `DpiArgs::from_flags(&["--x-true", "assets/fashion16_test.npy", "--out", "out/dpi"])`
    pub fn from_flags(flags: &[&str]) -> CliResult<Self> {
        use clap::Parser;
        let argv = std::iter::once("dpi").chain(flags.iter().copied());
        Ok(DpiOnly::try_parse_from(argv)?.args)
    }

    /// The library's description of the run.
    pub fn settings(&self) -> DpiSettings {
        self.settings.clone()
    }
}

/// Runs `scoreprior dpi`.
pub fn run(args: DpiArgs) -> CliResult {
    run_with(&args).map(|_| ())
}

/// Runs `scoreprior dpi` and returns what it measured (the library entry point of the CLI).
pub fn run_with(args: &DpiArgs) -> CliResult<DpiSummary> {
    Ok(args.settings.run(&mut Bars::new(args.settings.output.quiet))?.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_form_denoising_posterior_in_1d_and_2d() {
        use scoreprior_core::denoise::wiener;
        // 2-D diagonal: independent 1-D problems.
        let (m, _) = wiener(&[0.0, 0.0], &[1.0, 0.0, 0.0, 3.0], 1.0, &[1.0, 1.0]).unwrap();
        assert!((m[0] - 0.5).abs() < 1e-12 && (m[1] - 0.75).abs() < 1e-12);
        assert!(wiener(&[0.0], &[-2.0], 1.0, &[0.0]).is_err());
    }

    #[test]
    fn flags_parse_with_defaults() {
        let a = DpiArgs::from_flags(&["--x-true", "x.npy", "--out", "o", "--steps", "7"]).unwrap();
        let s = a.settings;
        assert_eq!(
            (s.optim.steps, s.optim.batch, s.prior.prior.to_string(), s.prior.probes),
            (7, 16, "gaussian-ode".into(), 16)
        );
        assert!(DpiArgs::from_flags(&["--steps", "7"]).is_err(), "--out is required");
    }

    /// The flags' defaults are the library's: `dpi --out o` is `DpiSettings::default()` with
    /// that folder.
    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let mut expected = DpiSettings::default();
        expected.output.out = "o".into();
        assert_eq!(DpiArgs::from_flags(&["--out", "o"]).unwrap().settings(), expected);
    }
}
