//! `scoreprior eht-image`: the posterior image of an observation's own visibilities (uvfits or
//! ehtim text files, the bands of one day) from their closure phases and log closure
//! amplitudes, after the collaboration's pre-processing, under the compact-source score prior.
//!
//! It is `dpi --forward "eht(obs='A, B', fov=…, pipeline=eht2017)" --data closures+amplitudes`
//! (closure phases, log closure amplitudes and amplitudes normalised by the zero baseline's)
//! with defaults for real data (surrogate prior, positive images, a flux target in the prior's units, eht-imaging's
//! Gaussian start, the MAP warm start and the Laplace start of the flow); any `dpi` flag after
//! `--` replaces the default of the same name. Besides the `dpi` outputs it writes, in Jy per
//! pixel, `mean.fits`, `std.fits`, `samples.fits` (a cube) and `samples_jy.npy`, and
//! `eht_image.json`: closure χ², the ring fit of the mean and the credible intervals of the
//! samples' ring measures. With `--reference FITS` (e.g. the collaboration pipeline's image of
//! the same data) it also writes `comparison.json` and `comparison.png`.

use scoreprior_cli::dpi_run::DpiRun;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use scoreprior::experiment::eht::eht_problem;
use scoreprior::monitor::Monitor;
use scoreprior_cli::eht_image::{
    compare_with_reference, prior_flux, write_outputs, CentredPosterior, Comparison, EhtImageReport,
};
use scoreprior_core::forward::interferometry::ClosureCovariance;

use super::dpi::DpiArgs;
use super::monitor::Bars;
use super::CliResult;

/// The default prior: the compact-source NCSN++ on 32 × 32 pixels over 160 µas, trained
/// 23,300 steps (`assets/ncsnpp_sources32_long/README.md`).
pub const DEFAULT_PRIOR: &str = "assets/ncsnpp_sources32_long/ema.safetensors";

/// `--preprocess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreprocessArg {
    /// The collaboration's eht-imaging M87 pipeline: scan averages, joined bands, 0.6 Jy on the
    /// zero baselines, closure phases above 0.1 Gλ, 2 % systematic noise.
    Eht2017,
    /// The files' visibilities as they are.
    None,
}

/// How `eht-image` and `m87-study` image a day's files: one description of the settings the
/// two commands share.
#[derive(Debug, Clone, Args)]
pub struct EhtImagingArgs {
    /// Field of view (µas); the prior's grid sets the pixels.
    #[arg(long, default_value_t = 160.0)]
    pub fov: f64,
    /// Pre-processing of the visibilities.
    #[arg(long, value_enum, default_value_t = PreprocessArg::Eht2017)]
    pub preprocess: PreprocessArg,
    /// Compact flux (Jy) of the output images, and of the zero baselines after rescaling.
    #[arg(long, default_value_t = 0.6)]
    pub compact_flux: f64,
    /// Visibilities with an SNR below this are dropped before closures are formed (0: keep
    /// all, as the pipeline does): a log closure amplitude of a noise-dominated visibility is
    /// debiased by `½/snr²`, hundreds of σ off.
    #[arg(long, default_value_t = 1.0)]
    pub snr_cut: f64,
    /// Fractional gain error per station added to the SEFD budget of the normalised amplitudes
    /// (residual calibration errors, which the pipeline self-calibrates away).
    #[arg(long, default_value_t = 0.1)]
    pub gain_error: f64,
    /// The closure likelihood's covariance: scan (the default: each scan's closure phases, log
    /// closure amplitudes and normalised amplitudes jointly Gaussian, with the covariance of the
    /// visibilities and station gains they share, so --gain-error correlates one station's
    /// amplitudes instead of adding to each σ alone) or diagonal (each independent; on April 5
    /// and 6 its two runs disagree about the bright side, docs/src/black-hole/m87.md).
    #[arg(long, default_value_t = ClosureCovariance::Scan)]
    pub closure_covariance: ClosureCovariance,
    /// The exact PF-ODE prior instead of its DSM surrogate (minutes per step: give --steps).
    #[arg(long)]
    pub exact: bool,
    /// FWHM (µas) both images are blurred to for the cross-correlation with --reference.
    #[arg(long, default_value_t = 20.0)]
    pub blur: f64,
    /// Independent DPI runs pooled with equal weights, in `--out`/restart-K with seeds
    /// `--seed`, `--seed`+1, …: each run starts at its own MAP image and keeps to that mode, so
    /// one run's credible intervals can exclude another's (on April 6 two seeds gave disjoint
    /// 95 % intervals of the position angle; docs/src/black-hole/m87.md). 1: one run, in --out
    /// itself.
    #[arg(long, default_value_t = DEFAULT_RESTARTS)]
    pub restarts: usize,
}

/// Most runs `--restarts` pools.
pub const MAX_RESTARTS: usize = 64;
/// Runs `eht-image` and `m87-study` pool unless told otherwise.
pub const DEFAULT_RESTARTS: usize = 2;

/// Arguments of `scoreprior eht-image`.
#[derive(Debug, Clone, Args)]
pub struct EhtImageArgs {
    /// An observation file (uvfits, or an ehtim text export); repeat for the other band of the
    /// same day (`--uvfits lo.uvfits --uvfits hi.uvfits`).
    #[arg(long = "uvfits", required = true)]
    pub files: Vec<PathBuf>,
    /// How the files are imaged (shared with `m87-study`).
    #[command(flatten)]
    pub imaging: EhtImagingArgs,
    /// A reference image of the same data (FITS, e.g. the collaboration pipeline's): compared
    /// by the same measures on the same grid.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// `dpi` flags after `--`, each replacing the default of the same name (e.g.
    /// `-- --steps 600 --prior assets/ncsnpp_sources32/ema.safetensors`).
    #[arg(last = true)]
    pub dpi: Vec<String>,
}

/// Flags `eht-image` sets itself.
const OWN_FLAGS: [(&str, &str); 4] = [
    ("--forward", "give the files with --uvfits and the pre-processing with --preprocess"),
    ("--out", "give it as eht-image's --out"),
    ("--y", "eht-image images the files' own visibilities"),
    ("--noise", "the noise is each visibility's σ from the files"),
];

impl EhtImageArgs {
    /// The forward-model specification of the files.
    pub fn forward(&self) -> CliResult<String> {
        for f in &self.files {
            let s = f.to_string_lossy();
            if s.contains(',') || s.contains('\'') {
                return Err(
                    format!("--uvfits {s}: a path with a comma or a quote cannot be named in eht(obs=…)").into()
                );
            }
        }
        let files: Vec<String> = self.files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
        let pre = match self.imaging.preprocess {
            PreprocessArg::Eht2017 => format!(", pipeline=eht2017, zbl={}", self.imaging.compact_flux),
            PreprocessArg::None => String::new(),
        };
        let pre = if self.imaging.snr_cut > 0.0 { format!("{pre}, snrcut={}", self.imaging.snr_cut) } else { pre };
        let pre =
            if self.imaging.gain_error > 0.0 { format!("{pre}, gain_error={}", self.imaging.gain_error) } else { pre };
        // Named only when not `eht(…)`'s default, so that the specs of earlier (diagonal) runs
        // stay theirs.
        let pre = match self.imaging.closure_covariance {
            ClosureCovariance::Diagonal => pre,
            c => format!("{pre}, closure_covariance={c}"),
        };
        Ok(format!("eht(obs='{}', fov={}{pre})", files.join(", "), self.imaging.fov))
    }

    /// The `dpi` flags of the run: the defaults for real data, then the user's, which replace
    /// a default of the same name.
    pub fn dpi_flags(&self, flux_target: f64) -> CliResult<Vec<String>> {
        self.dpi_flags_into(flux_target, &self.out, &self.dpi)
    }

    /// The user's `--seed` after `--` (0 when not given), and the user's flags without it.
    pub fn user_seed(&self) -> CliResult<(u64, Vec<String>)> {
        let (mut seed, mut rest) = (0, vec![]);
        let mut it = self.dpi.iter();
        while let Some(a) = it.next() {
            let value = if a == "--seed" {
                it.next().ok_or("--seed after `--`: give a value")?.as_str()
            } else if let Some(v) = a.strip_prefix("--seed=") {
                v
            } else {
                rest.push(a.clone());
                continue;
            };
            seed = value.parse().map_err(|_| format!("--seed {value} after `--`: expected a whole number ≥ 0"))?;
        }
        Ok((seed, rest))
    }

    /// The `dpi` flags of each run `--restarts` asks for: run `k` in `--out`/restart-k with seed
    /// `--seed` + k (one run: [`dpi_flags`](Self::dpi_flags), unchanged).
    pub fn restart_flags(&self, flux_target: f64) -> CliResult<Vec<(u64, Vec<String>)>> {
        let k = self.imaging.restarts;
        if !(1..=MAX_RESTARTS).contains(&k) {
            return Err(format!("--restarts {k}: must be from 1 to {MAX_RESTARTS}").into());
        }
        let (seed, user) = self.user_seed()?;
        if k == 1 {
            return Ok(vec![(seed, self.dpi_flags(flux_target)?)]);
        }
        (0..k as u64)
            .map(|i| {
                let s = seed.checked_add(i).ok_or_else(|| format!("--seed {seed}: too large for {k} restarts"))?;
                let out = self.out.join(format!("restart-{i}"));
                let mut flags = self.dpi_flags_into(flux_target, &out, &user)?;
                flags.extend(["--seed".to_string(), s.to_string()]);
                Ok((s, flags))
            })
            .collect()
    }

    fn dpi_flags_into(&self, flux_target: f64, out: &std::path::Path, user: &[String]) -> CliResult<Vec<String>> {
        let given = |name: &str| user.iter().any(|a| a == name || a.starts_with(&format!("{name}=")));
        for (flag, why) in OWN_FLAGS {
            if given(flag) {
                return Err(format!("{flag} after `--`: eht-image sets it ({why})").into());
            }
        }
        let forward = self.forward()?;
        let flux = flux_target.to_string();
        let out = out.to_string_lossy().into_owned();
        let defaults: Vec<(&str, Option<&str>)> = vec![
            ("--prior", Some(DEFAULT_PRIOR)),
            ("--data", Some("closures+amplitudes")),
            ("--positive", None),
            ("--flux-weight", Some("10")),
            ("--flux", Some(&flux)),
            ("--init-gaussian", Some("60")),
            ("--map-steps", Some("300")),
            ("--map-rounds", Some("5")),
            ("--batch", Some("16")),
            ("--flows", Some("16")),
            ("--steps", Some("300")),
            ("--outlier", Some("1e9")),
            ("--samples", Some("128")),
        ];
        let mut flags: Vec<String> = vec!["--forward".into(), forward, "--out".into(), out];
        if !self.imaging.exact {
            flags.push("--surrogate".into());
        }
        for (name, value) in defaults {
            if !given(name) {
                flags.push(name.into());
                flags.extend(value.map(String::from));
            }
        }
        flags.extend(user.iter().cloned());
        Ok(flags)
    }
}

/// Runs `scoreprior eht-image`.
pub fn run(args: EhtImageArgs) -> CliResult {
    image(&args).map(|_| ())
}

/// Runs `scoreprior eht-image` and returns what it measured.
pub fn image(args: &EhtImageArgs) -> CliResult<(EhtImageReport, Option<Comparison>)> {
    if !(args.imaging.compact_flux.is_finite() && args.imaging.compact_flux > 0.0 && args.imaging.compact_flux < 1e6) {
        return Err(format!("--compact-flux {}: must be in (0, 1e6) Jy", args.imaging.compact_flux).into());
    }
    if !(args.imaging.blur.is_finite() && args.imaging.blur > 0.0 && args.imaging.blur < 1e4) {
        return Err(format!("--blur {}: must be in (0, 1e4) µas", args.imaging.blur).into());
    }
    if let Some(r) = &args.reference {
        scoreprior_core::io::read_fits_image(r).map_err(|e| format!("--reference: {e}"))?;
        // The run writes mean.fits and may move a previous run aside: a reference inside --out
        // would be replaced or gone before the comparison.
        let (key, out) = (scoreprior_core::io::path_key(r), scoreprior_core::io::path_key(&args.out));
        if key.starts_with(&out) {
            return Err(format!(
                "--reference {} lies in --out {}: the run's files would replace or move it; copy it elsewhere",
                r.display(),
                args.out.display()
            )
            .into());
        }
    }
    // The flux target needs the prior's grid: read it from the checkpoint named (or the default).
    let prior_flag = args.dpi.iter().position(|a| a == "--prior").and_then(|i| args.dpi.get(i + 1));
    let prior_path = prior_flag.map(String::as_str).unwrap_or(DEFAULT_PRIOR);
    let prior = scoreprior::experiment::Prior::ncsnpp_dsm(prior_path, Default::default())
        .map_err(|e| format!("--prior {prior_path}: {e}"))?;
    let (npix, _) = prior.image_shape().ok_or_else(|| format!("--prior {prior_path}: no image shape"))?;
    let flux = prior_flux(npix, args.imaging.fov)?;
    // A folder holds one run or pooled runs, never both: their files would mix.
    let (single, pooled) = (args.out.join("run.json"), args.out.join("restart-0"));
    if args.imaging.restarts > 1 && single.is_file() {
        return Err(format!(
            "--restarts {}: --out {} holds a single run ({}); give another --out",
            args.imaging.restarts,
            args.out.display(),
            single.display()
        )
        .into());
    }
    if args.imaging.restarts == 1 && pooled.exists() {
        return Err(format!(
            "--out {} holds the runs of --restarts ({}); give the same --restarts, or another --out",
            args.out.display(),
            pooled.display()
        )
        .into());
    }
    // Every run's flags parsed before the first one starts.
    let mut planned = vec![];
    for (seed, flags) in args.restart_flags(flux)? {
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let dpi = DpiArgs::from_flags(&refs).map_err(|e| format!("eht-image: the dpi flags after `--`: {e}"))?;
        planned.push((seed, flags, dpi.settings()));
    }
    let (mut runs, mut seeds) = (vec![], vec![]);
    for (i, (seed, flags, settings)) in planned.iter().enumerate() {
        let mut monitor = Bars::new(settings.output.quiet);
        if planned.len() > 1 {
            monitor.note(&format!("eht-image: run {} of {} (--restarts)", i + 1, planned.len()));
        }
        monitor.note(&format!("eht-image: {}", flags.join(" ")));
        runs.push(settings.run(&mut monitor)?);
        seeds.push(*seed);
    }
    let settings = &planned[0].2;
    let (h, w) = runs[0].shape;
    let problem = eht_problem(settings, h, w, None)?.ok_or("eht-image: not an eht problem")?;
    // Closures and normalised amplitudes leave the position free: every sample is centred.
    let post = CentredPosterior::of_runs(&runs)?;
    let report = write_outputs(&args.out, &runs, &seeds, &post, &problem, args.imaging.compact_flux)?;
    if runs.len() > 1 {
        for (r, s) in report.restarts.iter().zip(&seeds) {
            let pa = r.ring_samples.as_ref().map_or("—".into(), |p| {
                format!(
                    "{:.0}° (95 %: {:.0}–{:.0})",
                    p.position_angle.median, p.position_angle.p95.0, p.position_angle.p95.1
                )
            });
            let d = r.ring_mean.map_or("—".into(), |f| format!("{:.1} µas", f.diameter));
            println!(
                "run with seed {s}: ring diameter {d}, position angle {pa}, loss {:.0} ± {:.0}",
                r.final_loss.0, r.final_loss.1
            );
        }
    }
    let interval = |i: &scoreprior_cli::eht_image::Credible, unit: &str| {
        format!("{:.1} {unit} (95 %: {:.1}–{:.1})", i.median, i.p95.0, i.p95.1)
    };
    if let Some(r) = &report.ring_samples {
        println!("{}", format_args!(
            "ring of the posterior samples ({} of {} fitted): diameter {}, width {}, position angle {}, asymmetry {:.2}",
            r.fitted.0,
            r.fitted.1,
            interval(&r.diameter, "µas"),
            interval(&r.width, "µas"),
            interval(&r.position_angle, "°"),
            r.asymmetry.median
        ));
    }
    let amps = |c: &scoreprior_core::forward::interferometry::ClosureChi2| {
        if c.amp_ratio.is_nan() {
            String::new()
        } else {
            format!(" / {:.2}", c.amp_ratio)
        }
    };
    let kinds = if report.amplitude_ratios > 0 { " / normalised amplitudes" } else { "" };
    println!(
        "closure χ² (phases / log amplitudes{kinds}) of the mean {:.2} / {:.2}{}, of the samples {:.2} / {:.2}{}",
        report.chi2_mean.phase,
        report.chi2_mean.log_amp,
        amps(&report.chi2_mean),
        report.chi2_samples.phase,
        report.chi2_samples.log_amp,
        amps(&report.chi2_samples)
    );
    let mut comparison = None;
    if let Some(r) = &args.reference {
        let c = compare_with_reference(&args.out, r, &post, &problem, &report, args.imaging.blur)?;
        println!(
            "{}",
            format_args!(
                "against {}: nxcorr {:.3} (both blurred to {} µas), diameter {} vs {} µas",
                r.display(),
                c.nxcorr_blurred,
                args.imaging.blur,
                c.ring_reference.map_or("—".into(), |f| format!("{:.1}", f.diameter)),
                c.ring_mean.map_or("—".into(), |f| format!("{:.1}", f.diameter)),
            )
        );
        comparison = Some(c);
    }
    println!("outputs in {}", args.out.display());
    Ok((report, comparison))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: EhtImageArgs,
    }

    fn forward(extra: &[&str]) -> String {
        let argv = [&["eht-image", "--uvfits", "lo.uvfits", "--uvfits", "hi.uvfits", "--out", "o"], extra].concat();
        Cli::try_parse_from(argv).unwrap().args.forward().unwrap()
    }

    /// The scan covariance (the default) reaches the forward model; `--closure-covariance
    /// diagonal` adds nothing to it, so the specs (and resumes) of the earlier diagonal runs
    /// are unchanged; a bad value names the flag.
    #[test]
    fn closure_covariance_is_named_in_the_spec_only_when_not_diagonal() {
        let diagonal = forward(&["--closure-covariance", "diagonal"]);
        assert_eq!(
            diagonal,
            "eht(obs='lo.uvfits, hi.uvfits', fov=160, pipeline=eht2017, zbl=0.6, snrcut=1, gain_error=0.1)"
        );
        let scan = forward(&[]);
        assert_eq!(scan, diagonal.replace(')', ", closure_covariance=scan)"));
        assert!(scoreprior_core::forward::spec::EhtSettings::parse(&scan).unwrap().is_some());
        let argv = ["eht-image", "--uvfits", "a", "--out", "o", "--closure-covariance", "full"];
        let e = Cli::try_parse_from(argv).err().unwrap().to_string();
        assert!(e.contains("--closure-covariance") && e.contains("diagonal or scan"), "{e}");
    }
}
