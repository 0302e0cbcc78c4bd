//! The checks of a [`RestorationSettings`] before any work: counts, task, method, prior and
//! image names (plain folder names, each given once), that every input file exists, and the
//! samplers' settings against the VP SDE of the shipped priors.

use super::*;

impl RestorationSettings {
    /// Checks every setting, name and input file before any work (no network is loaded): the
    /// counts, each task and method (known, given once), each prior and image name (one plain
    /// folder name, given once), that every checkpoint, Gaussian and image file exists, and the
    /// samplers' settings. [`run`] also builds every case before the first runs.
    ///
    /// ```
    /// use scoreprior_cli::studies::restoration::{RestorationSettings, StudyImage, StudyPrior};
    /// let s = RestorationSettings {
    ///     tasks: vec!["denoising".into()],
    ///     methods: vec!["dps".into()],
    ///     priors: vec![StudyPrior::parse("a=no/such.safetensors").unwrap()],
    ///     images: vec![StudyImage::parse("fmnist=assets/fashion16_test.npy").unwrap()],
    ///     samples: 2,
    ///     dpi_steps: 2,
    ///     baselines: Default::default(),
    ///     seed: 0,
    ///     quiet: true,
    /// };
    /// let e = s.validate().unwrap_err().to_string();
    /// assert!(e.contains("--priors") && e.contains("no/such.safetensors"), "{e}");
    /// ```
    ///
    /// # Errors
    /// The first problem found, naming its flag and value.
    pub fn validate(&self) -> Result<()> {
        let s = self;
        if s.samples == 0 {
            return Err(invalid_setting("--samples", "0: must be at least 1"));
        }
        if s.dpi_steps == 0 {
            return Err(invalid_setting("--dpi-steps", "0: must be at least 1"));
        }
        for (flag, n) in [("--tasks", s.tasks.len()), ("--methods", s.methods.len())] {
            if n == 0 {
                return Err(invalid_setting(flag, "give at least one"));
            }
        }
        for (flag, n) in [("--priors", s.priors.len()), ("--images", s.images.len())] {
            if n == 0 {
                return Err(invalid_setting(flag, "give at least one NAME=…"));
            }
        }
        let tasks = s.tasks.iter().map(|t| task(t)).collect::<Result<Vec<_>>>()?;
        crate::studies::check_unique("--tasks", s.tasks.iter().map(String::as_str))?;
        for m in &s.methods {
            if !METHODS.contains(&m.as_str()) {
                return Err(invalid_setting(
                    "--methods",
                    format!("unknown method {m:?}; expected dpi, score-ald, dps, sde-proj, daps or pnp-dm"),
                ));
            }
        }
        crate::studies::check_unique("--methods", s.methods.iter().map(String::as_str))?;
        for p in &s.priors {
            crate::studies::check_name("--priors", &p.name)?;
        }
        crate::studies::check_unique("--priors", s.priors.iter().map(|p| p.name.as_str()))?;
        for i in &s.images {
            crate::studies::check_name("--images", &i.name)?;
        }
        crate::studies::check_unique("--images", s.images.iter().map(|i| i.name.as_str()))?;
        let missing = |flag: &'static str, name: &str, what: &str, path: &Path| -> Result<()> {
            let p = resolve(path);
            if p.is_file() {
                return Ok(());
            }
            let why = if p.exists() { "is not a file" } else { "does not exist" };
            Err(invalid_setting(flag, format!("{name}=…: {what} {} {why}", path.display())))
        };
        for p in &s.priors {
            match p.checkpoint.as_str() {
                "gaussian-ode" if p.gaussian.is_none() => {
                    return Err(invalid_setting(
                        "--priors",
                        format!("{}=gaussian-ode: give the Gaussian's files, {}=gaussian-ode:MEAN:COV", p.name, p.name),
                    ))
                }
                "gaussian-ode" => {}
                c if c == "gaussian" || c == "tv" || c.starts_with("flow:") => {
                    return Err(invalid_setting(
                        "--priors",
                        format!(
                            "{}={c}: the study samples under score-based priors (DSM surrogate); give an NCSN++ \
                             checkpoint file or gaussian-ode:MEAN:COV",
                            p.name
                        ),
                    ))
                }
                c => missing("--priors", &p.name, "checkpoint file", Path::new(c))?,
            }
            if let Some((m, c)) = &p.gaussian {
                missing("--priors", &p.name, "Gaussian mean file", m)?;
                missing("--priors", &p.name, "Gaussian covariance file", c)?;
            }
        }
        for i in &s.images {
            missing("--images", &i.name, "image file", &i.file)?;
            // The image itself (its index in range, its pixels finite), named by its flag.
            load_image("--images", &i.file, i.index).map_err(|e| match e {
                ExperimentError::Invalid { why, .. } => {
                    invalid_setting("--images", format!("{}={}@{}: {why}", i.name, i.file.display(), i.index))
                }
                e => e,
            })?;
        }
        let vp = AnySde::Vp(VpSde::default());
        for m in s.methods.iter().filter(|m| *m != "dpi") {
            for (_, noise) in &tasks {
                let flags = crate::baseline_run::sampler_flags(m);
                let b = s.baselines.baseline(m, noise)?;
                b.validate(&vp).map_err(|e| invalid_setting("--methods", format!("{m} ({flags}): {e}")))?;
            }
        }
        let mut folders = std::collections::BTreeMap::new();
        for t in &s.tasks {
            for p in &s.priors {
                for i in &s.images {
                    let f = case_folder(t, &p.name, &i.name);
                    if let Some((p0, i0)) = folders.insert(f.clone(), (p.name.as_str(), i.name.as_str())) {
                        return Err(conflicting_settings(
                            &["--priors", "--images"],
                            format!(
                                "--priors/--images: prior {:?} with image {:?} and prior {p0:?} with image {i0:?} \
                                 would share the folder {f}; rename one",
                                p.name, i.name
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
