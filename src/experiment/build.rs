//! From [`DpiSettings`] to an [`Experiment`]: every setting checked before any work, the
//! prior, measurement and starting image loaded.

use std::path::{Path, PathBuf};

use scoreprior_core::divergence::{Divergence, Hutchinson, ProbeNoise};
use scoreprior_core::dpi::{softplus_inverse, Annealing, DpiConfig, LossWeights, TimeFloorSchedule};
use scoreprior_core::forward::interferometry::TestSource;
use scoreprior_core::forward::{parse_chain, parse_model, parse_noise, EhtSettings, Model, Shape};
use scoreprior_core::io::read_npy;
use scoreprior_core::prior::{AdjointSteps, ScorePriorConfig};
use scoreprior_core::sde::{AnySde, VpSde};
use scoreprior_models::realnvp::RealNvp;

use super::eht::eht_problem;
use super::error::conflict;
use super::inputs::{load_gaussian, load_image, resolve};
use super::{
    invalid, Continuation, DataRamp, DpiSettings, DsmSettings, EhtData, Experiment, LaplaceStart, MapWarmStart,
    PosteriorSettings, Prior, PriorKind, PriorOptions, Result,
};

/// [`ExperimentError::Invalid`](super::ExperimentError::Invalid) naming `field`, with `why`,
/// unless `ok`.
fn check(ok: bool, field: &'static str, why: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(invalid(field, why()))
    }
}

/// Neither `problem.y` nor `problem.x_true`, or both.
const Y_OR_X_TRUE: &[&str] = &["problem.y", "problem.x_true"];
/// `prior.surrogate` with a prior that has no score.
const SURROGATE: &[&str] = &["prior.surrogate", "prior.prior"];

impl PriorOptions {
    /// The PF-ODE prior's configuration: `solver` for both solves, `rtol`/`atol`, `probes`
    /// Rademacher probes (0: the exact trace) seeded by `seed`, `t0 = time_floor`, and the
    /// adjoint's steps.
    ///
    /// ```
    /// use scoreprior::experiment::PriorOptions;
    /// use scoreprior::core::prior::AdjointSteps;
    ///
    /// let mut p = PriorOptions::default();
    /// assert_eq!(p.ode_config(0)?.adjoint_steps, AdjointSteps::ForwardGrid);
    /// assert_eq!(p.ode_config(0)?.grid_solver.name, "RK4");
    /// p.adjoint_steps = AdjointSteps::Adaptive;
    /// assert_eq!(p.ode_config(0)?.adjoint_steps, AdjointSteps::Adaptive);
    /// # Ok::<(), scoreprior::experiment::ExperimentError>(())
    /// ```
    ///
    /// # Errors
    /// A bad probe count.
    pub fn ode_config(&self, seed: u64) -> Result<ScorePriorConfig> {
        let solver = self.solve.solver.solver();
        let div = if self.probes == 0 {
            Divergence::ExactTrace
        } else {
            Divergence::Hutchinson(Hutchinson::new(self.probes, ProbeNoise::Rademacher, seed)?)
        };
        let cfg = ScorePriorConfig::default()
            .with_solver(solver)
            .with_adjoint_solver(solver)
            .with_grid_solver(self.adjoint_grid_solver.solver())
            .with_tolerances(self.solve.rtol, self.solve.atol)
            .with_divergence(div)
            .with_t0(self.time_floor);
        // `with_adjoint_tolerances` also selects the adaptive backward solve (a default this
        // builder once overrode by calling it unconditionally: 224 backward evaluations per
        // DPI step on the shipped NCSN++ instead of about 91).
        Ok(match self.adjoint_steps {
            AdjointSteps::ForwardGrid => cfg.with_adjoint_steps(AdjointSteps::ForwardGrid),
            AdjointSteps::Adaptive => cfg.with_adjoint_tolerances(self.solve.rtol, self.solve.atol),
        })
    }
}

impl DpiSettings {
    /// Checks every setting and builds the experiment (no file written); also returns the
    /// resolved prior path (hashed into the run manifest when it is a file). Errors name the
    /// settings by their paths (`optim.steps`), which `scoreprior dpi` shows as its flags.
    ///
    /// ```
    /// use scoreprior::experiment::DpiSettings;
    ///
    /// let mut s = DpiSettings::default();
    /// s.prior.prior = scoreprior::experiment::PriorKind::Tv;
    /// s.problem.x_true = Some("assets/fashion16_test.npy".into());
    /// assert!(s.build().is_ok());
    /// s.optim.steps = 0;
    /// let Err(e) = s.build() else { panic!("0 steps must be refused") };
    /// assert!(e.to_string().contains("optim.steps"), "{e}");
    /// ```
    ///
    /// # Errors
    /// A setting out of range or inconsistent with another; an input that cannot be read.
    pub fn build(&self) -> Result<(Experiment<Model>, PathBuf)> {
        let (pr, pb, o, f, j) = (&self.prior, &self.problem, &self.optim, &self.flow, &self.objective);
        let out = &self.output;
        // Options checked before any work (DpiConfig::validate checks them again).
        check(
            j.temper_from.is_finite() && j.temper_from > 0.0 && j.temper_from <= 1.0,
            "objective.temper_from",
            || format!("must be in (0, 1], got {}", j.temper_from),
        )?;
        check(
            j.score_function_weight.is_finite() && j.score_function_weight >= 0.0,
            "objective.score_function_weight",
            || format!("must be finite and >= 0, got {}", j.score_function_weight),
        )?;
        check(pr.time_floor.is_finite() && pr.time_floor > 0.0 && pr.time_floor < 1.0, "prior.time_floor", || {
            format!("must be in (0, 1), got {}", pr.time_floor)
        })?;
        let t = pr.time_floor_from;
        check(t == 0.0 || (t.is_finite() && t >= pr.time_floor && t < 1.0), "prior.time_floor_from", || {
            format!("must be 0 (off) or in [prior.time_floor, 1), got {t}")
        })?;
        // Checked before any work (issue 12): these used to pass and fail only after
        // training, or silently mean something else.
        check(o.steps > 0, "optim.steps", || "must be at least 1 (0 would sample an untrained flow)".into())?;
        check(out.samples > 0, "output.samples", || "must be at least 1".into())?;
        check(o.clip.is_finite() && o.clip >= 0.0, "optim.clip", || {
            format!("must be finite and >= 0 (0: no clipping), got {}", o.clip)
        })?;
        check(pr.tv_weight.is_finite() && pr.tv_weight > 0.0, "prior.tv_weight", || {
            format!("must be positive and finite, got {}", pr.tv_weight)
        })?;
        check(out.outlier.is_finite() && out.outlier > 0.0, "output.outlier", || {
            format!("must be positive and finite, got {}", out.outlier)
        })?;
        check(pr.dsm_draws > 0, "prior.dsm_draws", || "must be at least 1".into())?;
        // Absurd counts are errors naming the flag before any work (the per-pixel factor is
        // checked again at the first step, where the image size is known).
        let what = format!("prior.probes {} (Hutchinson probes × batch)", pr.probes);
        scoreprior_core::limits::check_elems(&what, &[pr.probes, 2 * o.batch + 1], 8)?;
        let what = format!("prior.dsm_draws {} (time draws × batch)", pr.dsm_draws);
        scoreprior_core::limits::check_elems(&what, &[pr.dsm_draws + 1, o.batch], 8)?;
        if pr.dsm_antithetic && pr.dsm_draws % 2 != 0 {
            return Err(conflict(
                &["prior.dsm_antithetic", "prior.dsm_draws"],
                format!(
                    "prior.dsm_antithetic (on by default) needs an even prior.dsm_draws, got {}; add prior.dsm_antithetic \
                     false",
                    pr.dsm_draws
                ),
            ));
        }
        let dsm = DsmSettings {
            eps: pr.time_floor,
            draws: pr.dsm_draws,
            density: pr.dsm_time_density,
            stratified: pr.dsm_stratified,
            antithetic: pr.dsm_antithetic,
        };
        let gaussian = || load_gaussian(&resolve(&pr.mean), &resolve(&pr.cov), AnySde::Vp(VpSde::default()));
        let ode = pr.ode_config(self.seed)?;
        let label = pr.prior.to_string();
        let checkpoint = resolve(Path::new(&label));
        let prior = match (&pr.prior, pr.surrogate) {
            (PriorKind::Gaussian, false) => Prior::gaussian(gaussian()?),
            (PriorKind::GaussianOde, false) => Prior::gaussian_ode_with(gaussian()?, ode),
            (PriorKind::GaussianOde, true) => Prior::gaussian_dsm(gaussian()?, dsm),
            (PriorKind::Tv, false) => Prior::total_variation(pr.tv_weight),
            (PriorKind::Flow(file), false) => {
                let p = resolve(file);
                Prior::flow(RealNvp::load_file(&p).map_err(|e| invalid("prior.prior", format!("{label}: {e}")))?)
                    .with_label(&label)
            }
            (PriorKind::Checkpoint(_), true) if !checkpoint.exists() => {
                return Err(conflict(
                    SURROGATE,
                    "prior.surrogate needs a score prior (gaussian-ode or an NCSN++ checkpoint)",
                ))
            }
            (PriorKind::Checkpoint(_), false) if !checkpoint.exists() => {
                return Err(invalid(
                    "prior.prior",
                    format!("{label}: expected gaussian, gaussian-ode, tv or an NCSN++ checkpoint file"),
                ));
            }
            (PriorKind::Checkpoint(_), surrogate) => {
                let p = if surrogate { Prior::ncsnpp_dsm(&checkpoint, dsm) } else { Prior::ncsnpp(&checkpoint, ode) };
                p.map_err(|e| invalid("prior.prior", format!("{label}: {e}")))?.with_label(&label)
            }
            (_, true) => {
                return Err(conflict(
                    SURROGATE,
                    "prior.surrogate needs a score prior (gaussian-ode or an NCSN++ checkpoint)",
                ))
            }
        };
        // Measurement and ground truth. With `eht(obs=FILE)` the data are the file's own
        // visibilities: neither --y nor --x-true is needed (--x-true then only for metrics).
        let eht_obs = EhtSettings::parse(&pb.forward).ok().flatten().filter(|s| !s.observation_files.is_empty());
        let side = |settings: &'static [&'static str], without: &str| match (pb.size, prior.image_shape()) {
            (Some(0), _) => Err(invalid("problem.size", "must be at least 1")),
            (Some(s), _) => Ok((s, s, None)),
            (None, Some((h, w))) => Ok((h, w, None)),
            (None, None) => Err(conflict(settings, format!("{without}: give the image side with problem.size"))),
        };
        let (h, w, x_true) = match (&pb.x_true, &pb.y) {
            (Some(p), None) => {
                let (h, w, x) = load_image("problem.x_true", p, pb.index)?;
                (h, w, Some(x))
            }
            (None, Some(_)) => {
                side(&["problem.y", "problem.x_true", "problem.size"], "problem.y without problem.x_true")?
            }
            (None, None) if eht_obs.is_some() => side(
                &["problem.forward", "problem.x_true", "problem.size"],
                "problem.forward eht(obs=…) without problem.x_true",
            )?,
            _ if eht_obs.is_some() => {
                return Err(conflict(Y_OR_X_TRUE, "give at most one of problem.y and problem.x_true"))
            }
            _ => return Err(conflict(Y_OR_X_TRUE, "give exactly one of problem.y and problem.x_true")),
        };
        let is_eht = pb.is_eht();
        if !is_eht && (pb.data != EhtData::Closures || pb.no_debias) {
            return Err(conflict(
                &["problem.data", "problem.no_debias", "problem.forward"],
                "problem.data and problem.no_debias apply to problem.forward eht(…) only",
            ));
        }
        // The image and the prior must agree on the size: checked before anything is built on
        // the image grid, as every other size (the flow's, the operator's) follows from it.
        if let Some(pd) = prior.dim().filter(|&pd| pd != h * w) {
            let (ph, pw) = prior.image_shape().unwrap_or((1, pd));
            let images = match (&pb.x_true, pb.size) {
                (Some(p), _) => format!("problem.x_true {} is {h}x{w} ({} pixels)", p.display(), h * w),
                (None, Some(s)) => format!("problem.size {s} asks for {s}x{s} images ({} pixels)", h * w),
                (None, None) => format!("the images are {h}x{w} ({} pixels)", h * w),
            };
            let prior_name = match &pr.prior {
                PriorKind::Gaussian | PriorKind::GaussianOde => {
                    format!("the prior `{}` (prior.mean {})", pr.prior, resolve(&pr.mean).display())
                }
                other => format!("the prior {other}"),
            };
            let fix = match (&pb.x_true, ph == pw) {
                (Some(_), _) => format!("give a {ph}x{pw} image, or a prior of {h}x{w} images"),
                (None, true) => {
                    format!("give problem.size {ph}, or leave problem.size out (the prior's size is the default)")
                }
                (None, false) => "leave problem.size out (the prior's shape is the default)".to_string(),
            };
            let settings: &'static [&'static str] = match (&pb.x_true, pb.size, &pr.prior) {
                (Some(_), _, PriorKind::Gaussian | PriorKind::GaussianOde) => &["problem.x_true", "prior.mean"],
                (Some(_), _, _) => &["problem.x_true", "prior.prior"],
                (None, Some(_), PriorKind::Gaussian | PriorKind::GaussianOde) => &["problem.size", "prior.mean"],
                (None, Some(_), _) => &["problem.size", "prior.prior"],
                (None, None, PriorKind::Gaussian | PriorKind::GaussianOde) => &["prior.mean"],
                (None, None, _) => &["prior.prior"],
            };
            return Err(conflict(
                settings,
                format!(
                    "{images} but {prior_name} is {ph}x{pw} ({pd} pixels): images and prior must have the same size; \
                     {fix}"
                ),
            ));
        }
        check(pb.flux_weight.is_finite() && pb.flux_weight >= 0.0, "problem.flux_weight", || {
            format!("must be finite and >= 0, got {}", pb.flux_weight)
        })?;
        if pb.flux_weight != 0.0 && !pb.flux.is_some_and(|f| f.is_finite() && f > 0.0) {
            return Err(conflict(
                &["problem.flux_weight", "problem.flux"],
                format!("problem.flux_weight needs a positive target problem.flux, got {:?}", pb.flux),
            ));
        }
        if let Some(l) = f.init_level {
            check(l.is_finite() && (l > 0.0 || !pb.positive), "flow.init_level", || {
                format!("must be finite (and positive with problem.positive), got {l}")
            })?;
        }
        let data_annealing = match (j.anneal_data, j.anneal_data_schedule) {
            (0, _) => Annealing::None,
            (n, DataRamp::Linear) => Annealing::Linear { start: 0.0, steps: n },
            (n, DataRamp::Geometric) => Annealing::Geometric { start: j.anneal_data_from, steps: n },
            (n, DataRamp::Sigmoid) => Annealing::Sigmoid { pivot: n as f64, rate: j.anneal_data_rate },
        };
        data_annealing.validate("objective.anneal_data")?;
        let (mut eht_fov, mut eht_blur_px, mut eht_label) = (None, None, None);
        let (model, eht_data) = match eht_problem(self, h, w, x_true.as_deref())? {
            Some(p) => {
                eht_fov = Some(p.fov_uas);
                eht_blur_px = Some(p.resolution_uas / (p.fov_uas / w as f64));
                eht_label = Some(p.label);
                (p.model, Some(p.y))
            }
            None => {
                let chain = if pb.forward.trim() == "denoising" { "identity" } else { pb.forward.as_str() };
                let (noise, shape) = (pb.noise_or_default(), Shape::new(1, h, w));
                let m = parse_model(chain, noise, shape).map_err(|e| {
                    // The setting that does not parse, else the two together.
                    if parse_chain(chain, shape).is_err() {
                        invalid("problem.forward", e.to_string())
                    } else if parse_noise(noise).is_err() {
                        invalid("problem.noise", e.to_string())
                    } else {
                        conflict(&["problem.forward", "problem.noise"], format!("problem.forward/problem.noise: {e}"))
                    }
                })?;
                (m, None)
            }
        };
        let init_image = self.init_image(h, w, eht_fov)?;
        let laplace = f.laplace.resolve(f.map_steps > 0, eht_fov.is_some());
        if laplace && f.map_steps == 0 {
            return Err(conflict(
                &["flow.laplace", "flow.map_steps"],
                "flow.laplace on needs a MAP warm start (flow.map_steps N): the mode it expands around",
            ));
        }
        if laplace && !(f.laplace_scale.is_finite() && f.laplace_scale > 0.0) {
            return Err(invalid("flow.laplace_scale", format!("must be positive and finite, got {}", f.laplace_scale)));
        }

        if let Some(dir) = &f.init_flow {
            // Here, not only in the builder, to name the setting as the run description does.
            super::flow_map::check(std::path::Path::new(dir), h * w, pb.positive).map_err(|e| match e {
                super::ExperimentError::Invalid { why, .. } => invalid("flow.init_flow", why),
                e => e,
            })?;
        }
        let mut builder = Experiment::builder(model)
            .forward_label(eht_label.unwrap_or_else(|| format!("{} + {}", pb.forward, pb.noise_or_default())))
            .prior(prior)
            .posterior(PosteriorSettings {
                positive: pb.positive,
                flows: f.flows,
                hidden: f.hidden,
                batch_norm: f.batch_norm,
                init_scale: if laplace { f.laplace_scale } else { f.init_scale },
                init_loc: f.init_level.map(|l| if pb.positive { softplus_inverse(l) } else { l }),
                init_image,
                map_warm_start: (f.map_steps > 0).then_some(MapWarmStart {
                    iterations: f.map_steps,
                    jitter: f.map_jitter,
                    rounds: f.map_rounds,
                    blur_px: eht_blur_px.unwrap_or(f.map_blur),
                    ..Default::default()
                }),
                laplace: laplace.then(LaplaceStart::default),
                init_flow: f.init_flow.as_ref().map(std::path::PathBuf::from),
            })
            .dpi_config(DpiConfig {
                steps: o.steps,
                batch: o.batch,
                lr: o.lr,
                warmup: o.warmup,
                lr_final_fraction: o.lr_final,
                grad_clip: if o.clip > 0.0 { Some(o.clip) } else { None },
                weights: LossWeights { data: j.w_data, prior: j.w_prior, entropy: j.w_entropy },
                data_annealing,
                tempering: if j.temper_from == 1.0 {
                    Annealing::None
                } else {
                    let steps = if j.temper_steps == 0 { o.steps / 2 } else { j.temper_steps };
                    Annealing::Geometric { start: j.temper_from, steps }
                },
                score_function_weight: j.score_function_weight,
                time_floor: TimeFloorSchedule::Off,
                seed: self.seed,
                checkpoint_every: out.checkpoint_every,
                out_dir: Some(out.out.clone()),
                resume: out.resume,
            })
            .continuation(
                (pr.time_floor_from > 0.0)
                    .then_some(Continuation { from: pr.time_floor_from, steps: pr.time_floor_steps }),
            )
            .samples(out.samples)
            .outlier_threshold(out.outlier);
        if pb.flux_weight > 0.0 {
            builder = builder.flux_constraint(pb.flux_weight, pb.flux.unwrap_or(1.0));
        }
        builder = match (x_true, &pb.y, eht_data) {
            (Some(x), _, Some(y)) => builder.truth_with_measurement(x, y, h, w),
            (None, _, Some(y)) => builder.measurement(y, h, w),
            (Some(x), _, None) => builder.truth(x, h, w),
            (None, Some(p), None) => {
                builder.measurement(read_npy(resolve(p)).map_err(|e| invalid("problem.y", e.to_string()))?.data, h, w)
            }
            (None, None, _) => return Err(conflict(Y_OR_X_TRUE, "give exactly one of problem.y and problem.x_true")),
        };
        // The Wiener yardstick: the fitted Gaussian of the mean and covariance files, when
        // they are there.
        if let Ok(g) = gaussian() {
            builder = builder.wiener_reference(g);
        }
        Ok((builder.build()?, checkpoint))
    }

    /// The starting image of the flow: `flow.init_image`, or with an `eht(…)` field of view
    /// `eht_fov` a centred Gaussian of `flow.init_gaussian` µas holding the flux.
    fn init_image(&self, h: usize, w: usize, eht_fov: Option<f64>) -> Result<Option<Vec<f64>>> {
        match (&self.flow.init_image, self.flow.init_gaussian, eht_fov) {
            (Some(spec), _, _) => {
                let (file, index) = match spec.rsplit_once('@') {
                    Some((f, i)) => {
                        (f, i.parse().map_err(|_| invalid("flow.init_image", format!("{spec}: bad index after @")))?)
                    }
                    None => (spec.as_str(), 0),
                };
                let (ih, iw, img) = load_image("flow.init_image", Path::new(file), index)?;
                check((ih, iw) == (h, w), "flow.init_image", || format!("is {ih}x{iw}, the problem is {h}x{w}"))?;
                Ok(Some(img))
            }
            (None, Some(fwhm), Some(fov)) => {
                check(fwhm.is_finite() && fwhm > 0.0, "flow.init_gaussian", || {
                    format!("must be a positive FWHM in µas, got {fwhm}")
                })?;
                let flux = self.problem.flux.ok_or_else(|| {
                    conflict(
                        &["flow.init_gaussian", "problem.flux"],
                        "flow.init_gaussian needs the total flux problem.flux",
                    )
                })?;
                let blob = TestSource::Blobs(vec![(0.0, 0.0, fwhm, 1.0)]);
                // Floored at 1e-6 of the peak, so that softplus⁻¹ of the far pixels stays finite.
                let img = blob.render(h, fov, flux).map_err(|e| invalid("flow.init_gaussian", e.to_string()))?;
                let floor = 1e-6 * img.iter().cloned().fold(0.0, f64::max);
                Ok(Some(img.into_iter().map(|v| v.max(floor)).collect()))
            }
            (None, Some(_), None) => Err(conflict(
                &["flow.init_gaussian", "problem.forward"],
                "flow.init_gaussian needs problem.forward eht(…) (its field of view)",
            )),
            (None, None, _) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::ExperimentError;
    use super::*;

    fn tv() -> DpiSettings {
        let mut s = DpiSettings::default();
        s.prior.prior = PriorKind::Tv;
        s.problem.x_true = Some("assets/fashion16_test.npy".into());
        s
    }

    #[test]
    fn errors_are_typed_kinds_naming_the_settings() {
        assert!(tv().build().is_ok());
        // One setting out of range: `Invalid`, naming it by its path.
        let mut s = tv();
        s.prior.time_floor = 2.0;
        let Err(e) = s.build() else { panic!("a time floor of 2 must be refused") };
        assert_eq!(e.to_string(), "prior.time_floor: must be in (0, 1), got 2");
        assert!(
            matches!(&e, ExperimentError::Invalid { field: "prior.time_floor", why } if why == "must be in (0, 1), got 2"),
            "{e:?}"
        );
        // An input file a setting names that is not there: `Invalid` naming the setting.
        let mut s = tv();
        s.problem.x_true = Some("no/such/image.npy".into());
        let Err(e) = s.build() else { panic!("a missing image must be refused") };
        assert!(matches!(e, ExperimentError::Invalid { field: "problem.x_true", .. }), "{e:?}");
        // Settings each valid that do not go together: `Conflict`, naming each; its text is
        // the message alone.
        let mut s = tv();
        s.problem.y = Some("y.npy".into());
        let Err(e) = s.build() else { panic!("both problem.y and problem.x_true must be refused") };
        assert_eq!(e.to_string(), "give exactly one of problem.y and problem.x_true");
        let ExperimentError::Conflict { settings, .. } = &e else { panic!("not a conflict: {e:?}") };
        assert!(settings.contains(&"problem.y") && settings.contains(&"problem.x_true"), "{settings:?}");
        let mut s = tv();
        s.flow.laplace = super::super::LaplaceMode::On;
        let Err(e) = s.build() else { panic!("flow.laplace on without a MAP start must be refused") };
        assert!(
            matches!(&e, ExperimentError::Conflict { settings, .. } if settings.contains(&"flow.map_steps")),
            "{e:?}"
        );
    }
}
