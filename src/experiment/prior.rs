//! The prior of an experiment: the exact score-based prior (PF-ODE + adjoint), its DSM
//! surrogate, a closed-form Gaussian, total variation, a flow density, or any
//! [`Prior`](scoreprior_core::prior::Prior) or [`Energy`](scoreprior_core::dpi::Energy) of the
//! user's; each becomes one energy term
//! `−log p(x)` of the DPI objective when the experiment is built.

use std::path::Path;
use std::sync::Arc;

use scoreprior_core::dpi::{Energy, PriorEnergy};
use scoreprior_core::prior::{GaussianPrior, ScorePrior, ScorePriorConfig};
use scoreprior_core::prior_dsm::{DsmBoundPrior, TimeDensity};
use scoreprior_core::prior_tv::TotalVariation;
use scoreprior_core::score::{Gaussian, ScoreModel};
use scoreprior_core::sde::AnySde;
use scoreprior_models::realnvp::{FlowPrior, RealNvp};
use scoreprior_models::score::NcsnppScore;

use super::{invalid, Result};

/// Settings of the denoising-score-matching bound (see [`DsmBoundPrior`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DsmSettings {
    /// Lower time limit `ε` of the bound (the end of a continuation).
    pub eps: f64,
    /// Time draws per image and evaluation.
    pub draws: usize,
    /// Density of the time draws.
    pub density: TimeDensity,
    /// Stratified time draws.
    pub stratified: bool,
    /// Antithetic `(z, −z)` noise pairs (needs an even `draws`).
    pub antithetic: bool,
}

impl Default for DsmSettings {
    /// The CLI's: `ε = 1e-3`, 4 stratified, antithetic, log-uniform draws.
    fn default() -> Self {
        Self { eps: 1e-3, draws: 4, density: TimeDensity::LogUniform, stratified: true, antithetic: true }
    }
}

enum Kind {
    ScoreOde { model: Arc<dyn ScoreModel>, sde: AnySde, config: ScorePriorConfig },
    Dsm { model: Arc<dyn ScoreModel>, sde: AnySde, settings: DsmSettings },
    Gaussian(Gaussian),
    TotalVariation { weight: f64 },
    Energy(Box<dyn Energy>),
}

/// A prior for an [`Experiment`](super::Experiment).
///
/// ```
/// use scoreprior::prelude::*;
/// let g = Gaussian::diagonal(vec![0.0; 4], &[1.0; 4], AnySde::Vp(VpSde::default())).unwrap();
/// let exact = Prior::gaussian_ode(g.clone());       // PF-ODE log p and its adjoint gradient
/// let closed = Prior::gaussian(g);                  // log N(x; μ, Σ)
/// let tv = Prior::total_variation(2.0);
/// assert_eq!(closed.label(), "gaussian");
/// ```
pub struct Prior {
    kind: Kind,
    label: String,
    exact_gaussian: Option<Gaussian>,
}

/// A prior turned into its energy term, with what the result's yardsticks need.
pub(crate) struct BuiltPrior {
    pub energy: Box<dyn Energy>,
    pub label: String,
    pub surrogate: bool,
    /// The score model and SDE behind a score prior (Tweedie's estimate).
    pub score: Option<(Arc<dyn ScoreModel>, AnySde)>,
    /// The Gaussian this prior is exactly (closed-form posterior for linear Gaussian data).
    pub exact_gaussian: Option<Gaussian>,
}

impl Prior {
    /// The exact score-based prior of `model` under `sde`: `log p` by the probability-flow
    /// ODE and its gradient by the continuous adjoint, with the reference configuration
    /// ([`ScorePriorConfig::default`]).
    pub fn score_ode(model: Arc<dyn ScoreModel>, sde: AnySde) -> Self {
        Self::score_ode_with(model, ScorePriorConfig::default().with_sde(sde))
    }
    /// Same, with a configuration of one's own (solvers, tolerances, probes, `t0`); its SDE
    /// must be the one the model was trained with.
    pub fn score_ode_with(model: Arc<dyn ScoreModel>, config: ScorePriorConfig) -> Self {
        let sde = config.sde;
        Self { kind: Kind::ScoreOde { model, sde, config }, label: "score-ode".into(), exact_gaussian: None }
    }
    /// The DSM-bound surrogate of the score-based prior of `model` under `sde`.
    pub fn dsm(model: Arc<dyn ScoreModel>, sde: AnySde, settings: DsmSettings) -> Self {
        Self { kind: Kind::Dsm { model, sde, settings }, label: "score-dsm".into(), exact_gaussian: None }
    }
    /// An NCSN++ checkpoint as the exact prior (its own SDE), with `config`'s solvers,
    /// tolerances, probes and `t0`.
    ///
    /// # Errors
    /// An unreadable or malformed checkpoint.
    pub fn ncsnpp(path: impl AsRef<Path>, config: ScorePriorConfig) -> Result<Self> {
        let (m, sde) = load_ncsnpp(path.as_ref())?;
        Ok(Self::score_ode_with(m, config.with_sde(sde)).with_label(path.as_ref().display().to_string()))
    }
    /// An NCSN++ checkpoint through the DSM surrogate.
    ///
    /// # Errors
    /// An unreadable or malformed checkpoint.
    pub fn ncsnpp_dsm(path: impl AsRef<Path>, settings: DsmSettings) -> Result<Self> {
        let (m, sde) = load_ncsnpp(path.as_ref())?;
        Ok(Self::dsm(m, sde, settings).with_label(path.as_ref().display().to_string()))
    }
    /// The closed-form Gaussian prior `log N(x; μ, Σ)`.
    pub fn gaussian(g: Gaussian) -> Self {
        Self { kind: Kind::Gaussian(g.clone()), label: "gaussian".into(), exact_gaussian: Some(g) }
    }
    /// The same Gaussian as an exact score-based prior: its analytic score through the
    /// PF-ODE (`config` as for [`Prior::score_ode_with`]; its SDE is the Gaussian's).
    pub fn gaussian_ode_with(g: Gaussian, config: ScorePriorConfig) -> Self {
        let sde = *g.sde();
        let mut p = Self::score_ode_with(Arc::new(g.clone()), config.with_sde(sde));
        p.label = "gaussian-ode".into();
        p.exact_gaussian = Some(g);
        p
    }
    /// [`Prior::gaussian_ode_with`] with the reference configuration.
    pub fn gaussian_ode(g: Gaussian) -> Self {
        Self::gaussian_ode_with(g, ScorePriorConfig::default())
    }
    /// The DSM surrogate of the Gaussian's analytic score.
    pub fn gaussian_dsm(g: Gaussian, settings: DsmSettings) -> Self {
        let sde = *g.sde();
        let mut p = Self::dsm(Arc::new(g.clone()), sde, settings);
        p.label = "gaussian-ode".into();
        p.exact_gaussian = Some(g);
        p
    }
    /// Total variation `weight · Σ √(|∇x|² + ε²)` (ε = 1e-3) on the experiment's image grid.
    pub fn total_variation(weight: f64) -> Self {
        Self { kind: Kind::TotalVariation { weight }, label: "tv".into(), exact_gaussian: None }
    }
    /// A RealNVP density as the prior (the supplement's flow prior).
    pub fn flow(flow: RealNvp) -> Self {
        Self::custom(FlowPrior::new(flow)).with_label("flow")
    }
    /// Any [`Prior`](scoreprior_core::prior::Prior) of one's own (its `log p` may be
    /// unnormalised).
    pub fn custom(p: impl scoreprior_core::prior::Prior + 'static) -> Self {
        Self::energy(PriorEnergy::new(p))
    }
    /// Any energy term `e(x) = −log p(x) + const` of one's own.
    pub fn energy(e: impl Energy + 'static) -> Self {
        Self { kind: Kind::Energy(Box::new(e)), label: "custom".into(), exact_gaussian: None }
    }
    /// The name written in the report.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }
    /// The name written in the report.
    pub fn label(&self) -> &str {
        &self.label
    }
    /// The dimension `D` of the images this prior is over, when it has one of its own (total
    /// variation takes the experiment's grid and has none).
    pub fn dim(&self) -> Option<usize> {
        match &self.kind {
            Kind::ScoreOde { model, .. } | Kind::Dsm { model, .. } => Some(model.dim()),
            Kind::Gaussian(g) => Some(ScoreModel::dim(g)),
            Kind::TotalVariation { .. } => None,
            Kind::Energy(e) => Some(e.dim()),
        }
    }
    /// The `H × W` grid of a one-channel image of the prior's dimension `D`: square when `D`
    /// is a square number, otherwise a `1 × D` row (a 2-D prior is a 2-pixel image). What a
    /// run given only a measurement uses when no size is given.
    ///
    /// ```
    /// use scoreprior::experiment::Prior;
    /// use scoreprior::core::score::Gaussian;
    /// use scoreprior::core::sde::{AnySde, VpSde};
    /// let g = Gaussian::new(vec![0.0; 2], &[1.0, 0.0, 0.0, 1.0], AnySde::Vp(VpSde::default())).unwrap();
    /// assert_eq!(Prior::gaussian(g).image_shape(), Some((1, 2)));
    /// assert_eq!(Prior::total_variation(1.0).image_shape(), None);
    /// ```
    pub fn image_shape(&self) -> Option<(usize, usize)> {
        let d = self.dim()?;
        let side = (d as f64).sqrt().round() as usize;
        Some(if side * side == d { (side, side) } else { (1, d) })
    }
    /// Whether this is a score-based prior (exact or surrogate), which has a time floor.
    pub fn is_score_based(&self) -> bool {
        matches!(self.kind, Kind::ScoreOde { .. } | Kind::Dsm { .. })
    }

    pub(crate) fn build(self, h: usize, w: usize) -> Result<BuiltPrior> {
        let Prior { kind, label, exact_gaussian } = self;
        let (energy, surrogate, score): (Box<dyn Energy>, bool, _) = match kind {
            Kind::ScoreOde { model, sde, config } => {
                let e = PriorEnergy::new(ScorePrior::from_arc(model.clone(), config)?);
                (Box::new(e), false, Some((model, sde)))
            }
            Kind::Dsm { model, sde, settings: s } => {
                if s.draws == 0 {
                    return Err(invalid("prior.dsm.draws", "must be at least 1"));
                }
                if s.antithetic && s.draws % 2 != 0 {
                    return Err(invalid(
                        "prior.dsm.draws",
                        format!("antithetic pairs need an even number, got {}", s.draws),
                    ));
                }
                let e = DsmBoundPrior::new(model.clone(), sde, s.eps, s.draws)?
                    .with_density(s.density)
                    .with_stratified(s.stratified)
                    .with_antithetic(s.antithetic)?;
                (Box::new(PriorEnergy::new(e)), true, Some((model, sde)))
            }
            Kind::Gaussian(g) => (Box::new(PriorEnergy::new(GaussianPrior::from_gaussian(g))), false, None),
            Kind::TotalVariation { weight } => {
                if !(weight.is_finite() && weight > 0.0) {
                    return Err(invalid("prior.tv.weight", format!("must be positive and finite, got {weight}")));
                }
                (Box::new(PriorEnergy::new(TotalVariation::new(h, w, weight, 1e-3)?)), false, None)
            }
            Kind::Energy(e) => (e, false, None),
        };
        Ok(BuiltPrior { energy, label, surrogate, score, exact_gaussian })
    }
}

fn load_ncsnpp(path: &Path) -> Result<(Arc<dyn ScoreModel>, AnySde)> {
    load_ncsnpp_shaped(path, None)
}

fn load_ncsnpp_shaped(path: &Path, shape: Option<(usize, usize, usize)>) -> Result<(Arc<dyn ScoreModel>, AnySde)> {
    let m = NcsnppScore::load(path)?;
    if let Some(want) = shape.filter(|s| *s != m.net().image_shape()) {
        return Err(invalid(
            "prior",
            format!(
                "{}: the network is for {:?} images, the experiment for {want:?}",
                path.display(),
                m.net().image_shape()
            ),
        ));
    }
    let sde = AnySde::Vp(*m.sde());
    Ok((Arc::new(m), sde))
}

/// A prior for `C × H × W` images with the shape in its type, for
/// [`Experiment::typed`](super::Experiment::typed): pairing it with a forward model of
/// another input shape is a compile error.
///
/// ```
/// use scoreprior::experiment::ShapedPrior;
/// use scoreprior::prelude::*;
/// #[forward_model(input = [1, 4, 4], ops = [identity], noise = gaussian(sigma = 0.3))]
/// struct Denoise;
/// let g = Gaussian::diagonal(vec![0.5; 16], &[0.04; 16], AnySde::Vp(VpSde::default())).unwrap();
/// let prior = ShapedPrior::<1, 4, 4>::new(Prior::gaussian(g));
/// let e = Experiment::typed(Denoise, prior).with_truth(vec![0.5; 16]).steps(5).build();
/// assert!(e.is_ok());
/// ```
pub struct ShapedPrior<const C: usize, const H: usize, const W: usize>(pub(crate) Prior);

impl<const C: usize, const H: usize, const W: usize> ShapedPrior<C, H, W> {
    /// Any prior, declared for `C × H × W` images (its dimension is checked against
    /// `C·H·W` when the experiment is built).
    pub fn new(prior: Prior) -> Self {
        Self(prior)
    }
    /// An NCSN++ checkpoint as the exact prior; an error unless its network is for
    /// `C × H × W` images.
    ///
    /// # Errors
    /// An unreadable checkpoint or one of another image shape.
    pub fn ncsnpp(path: impl AsRef<Path>, config: ScorePriorConfig) -> Result<Self> {
        let (m, sde) = load_ncsnpp_shaped(path.as_ref(), Some((C, H, W)))?;
        Ok(Self(Prior::score_ode_with(m, config.with_sde(sde)).with_label(path.as_ref().display().to_string())))
    }
    /// The same through the DSM surrogate.
    ///
    /// # Errors
    /// As [`ShapedPrior::ncsnpp`].
    pub fn ncsnpp_dsm(path: impl AsRef<Path>, settings: DsmSettings) -> Result<Self> {
        let (m, sde) = load_ncsnpp_shaped(path.as_ref(), Some((C, H, W)))?;
        Ok(Self(Prior::dsm(m, sde, settings).with_label(path.as_ref().display().to_string())))
    }
}
