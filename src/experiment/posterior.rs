//! The posterior family `q_θ` (a RealNVP flow, its initial affine layer, an optional starting
//! image, MAP warm start and Laplace start), the noise-level continuation of a score-based prior,
//! and the CLI's optimisation defaults ([`DpiConfig`]).

use scoreprior_core::dpi::DpiConfig;

use super::LaplaceStart;

/// The posterior family: a RealNVP flow and its initial affine output layer.
#[derive(Debug, Clone, PartialEq)]
pub struct PosteriorSettings {
    /// Affine-coupling blocks (the reference: 16 at 16×16... 32 at 64×64).
    pub flows: usize,
    /// Hidden width of the coupling networks; 0: `max(D/8, 32)`.
    pub hidden: usize,
    /// Batch normalisation between blocks (the reference has it; off by default here, as
    /// it makes `log q` depend on the batch).
    pub batch_norm: bool,
    /// Initial output scale of the flow (the identity flow maps N(0, I) to `loc + scale·z`).
    pub init_scale: f64,
    /// Initial output location; `None`: the Gaussian prior's mean level, else the mean of
    /// `Aᵀy` clamped to [0, 1], else 0.5.
    pub init_loc: Option<f64>,
    /// Positive images: the flow's output `u` goes through `x = softplus(u)` (with its
    /// log-determinant, [`scoreprior_core::dpi::SoftplusPosterior`]). `init_loc` and
    /// `init_scale` then describe `u`; `init_loc: None` starts `u` at `softplus⁻¹` of the
    /// level above (at least 1e-3).
    pub positive: bool,
    /// A starting image (`D` values; positive with `positive`): the flow's output is moved by
    /// it ([`scoreprior_core::dpi::ShiftedPosterior`], in `u = softplus⁻¹(x)` with
    /// `positive`), so sampling starts around this image instead of a flat level, as
    /// eht-imaging starts from a Gaussian. `init_loc` is then the offset from it (default 0).
    /// The trained flow is not kept as a density when this is set.
    pub init_image: Option<Vec<f64>>,
    /// Before DPI, find the MAP image under the same data and prior energies from the
    /// starting image (L-BFGS, with a stochastic prior's draws fixed so that the objective is
    /// deterministic) and start the flow around it instead. For data terms that begin orders of magnitude
    /// above their optimum (closure quantities at high S/N). Written to `map.npy` and reused
    /// on resume.
    pub map_warm_start: Option<MapWarmStart>,
    /// With a MAP warm start: start the flow as the Laplace approximation `N(MAP, H⁻¹)` of the
    /// posterior (in the flow's variables), `H` the Hessian of the negative log-posterior at the
    /// MAP, instead of `N(MAP, init_scale²·I)`; `init_scale` then multiplies `H^{-1/2}` (1: the
    /// Laplace approximation itself). Why: on interferometric data the posterior's covariance
    /// spans many decades along Fourier directions, which a flow of pixel-wise couplings started
    /// isotropic does not learn; it collapses to a point instead (`docs/src/black-hole/calibration.md`).
    pub laplace: Option<LaplaceStart>,
    /// Start from the trained flow of a finished run: its output folder (`out_dir` of an
    /// experiment, or a `dpi --out` folder). The flow's parameters (not its optimiser state, nor
    /// its step count) and its map to the image (`flow_map.json`: the starting point and the
    /// Laplace factor, if it had them) are taken over, so this run begins at that run's
    /// posterior; its flow (blocks, width, seed) is the folder's, and `flows`, `hidden`,
    /// `batch_norm`, `init_scale` and `init_loc` are not used. Excludes `init_image`,
    /// `map_warm_start` and `laplace`. Why: a costlier prior (the exact PF-ODE) affords a few
    /// dozen steps; started from the posterior a cheaper one (the DSM surrogate) trained, they
    /// refine a posterior instead of building one out of a point.
    pub init_flow: Option<std::path::PathBuf>,
}

/// Settings of the MAP warm start ([`PosteriorSettings::map_warm_start`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapWarmStart {
    /// L-BFGS iterations at most, per round.
    pub iterations: usize,
    /// Rounds: after each, the image is blurred (`blur_px`) and L-BFGS restarts from it, as
    /// eht-imaging's blur-and-reimage rounds: the restart forgets fine-scale structure that
    /// holds the closure-phase terms in a local minimum (a simulated ring under a TV prior:
    /// objective 1.1e7 after one round of 300 iterations, 6.1e4 after five).
    pub rounds: usize,
    /// FWHM (pixels) of the circular Gaussian blur between rounds (0: none; for EHT data the
    /// nominal resolution).
    pub blur_px: f64,
    /// L-BFGS memory (pairs kept).
    pub memory: usize,
    /// Standard deviation of the Gaussian jitter added to the start in the optimised
    /// variables (`u = softplus⁻¹(x)` for positive images, so a relative jitter there): a
    /// centred, symmetric start is a critical point of the closure-phase terms (every model
    /// closure phase is 0 and its gradient vanishes), which the jitter breaks.
    pub jitter: f64,
}

impl Default for MapWarmStart {
    fn default() -> Self {
        Self { iterations: 300, rounds: 1, blur_px: 0.0, memory: 10, jitter: 0.1 }
    }
}

impl Default for PosteriorSettings {
    fn default() -> Self {
        Self {
            flows: 16,
            hidden: 0,
            batch_norm: false,
            init_scale: 0.2,
            init_loc: None,
            positive: false,
            map_warm_start: None,
            init_image: None,
            laplace: None,
            init_flow: None,
        }
    }
}

/// Noise-level continuation of a score-based prior: its lower time limit falls geometrically
/// from `from` to the prior's own floor over `steps` steps (0: half the run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Continuation {
    /// Starting time floor (`ε` of the DSM bound, `t0` of the PF-ODE prior).
    pub from: f64,
    /// Steps of the descent; 0 for half of [`DpiConfig::steps`].
    pub steps: usize,
}

impl Default for Continuation {
    /// From 0.1 over half the run (the main job's schedule).
    fn default() -> Self {
        Self { from: 0.1, steps: 0 }
    }
}

/// The CLI's optimisation defaults: 1500 steps of 16 samples, Adam at 1e-3 with 100 warm-up
/// steps and a linear decay to 10 %, gradient clipping at norm 1, a checkpoint every 100 steps.
pub fn default_dpi_config() -> DpiConfig {
    DpiConfig {
        steps: 1500,
        batch: 16,
        lr: 1e-3,
        warmup: 100,
        lr_final_fraction: 0.1,
        grad_clip: Some(1.0),
        checkpoint_every: 100,
        ..DpiConfig::default()
    }
}
