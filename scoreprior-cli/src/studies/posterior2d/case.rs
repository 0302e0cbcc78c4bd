//! The study's 2-D problems `y = aᵀx + n` ([`Case`]: prior, measurement, grid and kernel;
//! exact posterior, score model and forward model of each) and its methods ([`Method`]).

use std::sync::Arc;

use serde::Serialize;

use scoreprior_core::forward::{ops::DenseMatrix, Chain, Model, NoiseSpec};
use scoreprior_core::score::{Gaussian, GaussianMixture, ScoreModel};
use scoreprior_core::sde::{AnySde, VpSde};
use scoreprior_core::Error;

use crate::studies::kde::{Bandwidth, Grid};
use crate::studies::mix2::Mixture2;
use scoreprior::experiment::Result;

/// One 2-D problem.
#[derive(Debug, Clone)]
pub struct Case {
    /// Short name (`gaussian-low`, `gaussian-high`, `mixture`).
    pub name: String,
    /// The prior.
    pub prior: Mixture2,
    /// The measurement vector `a` of `y = aᵀx + n`.
    pub a: [f64; 2],
    /// Measurement noise σ.
    pub sigma: f64,
    /// The measurement.
    pub y: f64,
    /// Where densities are compared.
    pub grid: Grid,
    /// The kernel the baselines are tuned by and the figure shows.
    pub bandwidth: Bandwidth,
    /// The case the baselines' knobs are tuned on (itself when equal to `name`).
    pub tuned_on: String,
}

impl Case {
    /// The study's three cases. Gaussian prior `N((0.3, −0.2), [[0.09, 0.03], [0.03, 0.04]])`
    /// with `a = (−2, 1.7)`, `y = 0.3` and σ = 0.05 (low) or 0.5 (high); the reference mixture
    /// (components at ±(0.5, 0.5), std 0.1, equal weights) with the same `a`, `y` and σ = 0.2,
    /// on the reference's grid `[−0.8, 0.8]²`.
    pub fn reference() -> Vec<Case> {
        let gauss = Mixture2::new(vec![1.0], vec![[0.3, -0.2]], vec![[0.09, 0.03, 0.03, 0.04]]).expect("SPD");
        let mix = Mixture2::new(
            vec![0.5, 0.5],
            vec![[-0.5, -0.5], [0.5, 0.5]],
            vec![[0.01, 0.0, 0.0, 0.01], [0.01, 0.0, 0.0, 0.01]],
        )
        .expect("SPD");
        let (a, y) = ([-2.0, 1.7], 0.3);
        let box_around = |p: &Mixture2| {
            let (m, c) = p.moments();
            let (s0, s1) = (5.0 * c[0].sqrt(), 5.0 * c[2].sqrt());
            Grid { x: (m[0] - s0, m[0] + s0), y: (m[1] - s1, m[1] + s1), n: 128 }
        };
        let gcase = |name: &str, sigma: f64| {
            let post = gauss.posterior(a, sigma, y).expect("valid");
            Case {
                name: name.into(),
                prior: gauss.clone(),
                a,
                sigma,
                y,
                grid: box_around(&post),
                bandwidth: Bandwidth::Scott,
                tuned_on: "gaussian-low".into(),
            }
        };
        vec![
            gcase("gaussian-low", 0.05),
            gcase("gaussian-high", 0.5),
            Case {
                name: "mixture".into(),
                prior: mix,
                a,
                sigma: 0.2,
                y,
                grid: Grid { x: (-0.8, 0.8), y: (-0.8, 0.8), n: 128 },
                bandwidth: Bandwidth::Fixed(0.03),
                tuned_on: "mixture".into(),
            },
        ]
    }

    /// The exact posterior.
    pub fn posterior(&self) -> Result<Mixture2> {
        Ok(self.prior.posterior(self.a, self.sigma, self.y)?)
    }

    /// The prior's exact score model under the VP SDE.
    pub fn score_model(&self) -> Result<Arc<dyn ScoreModel>> {
        let sde = AnySde::Vp(VpSde::default());
        let p = &self.prior;
        if p.weights.len() == 1 {
            return Ok(Arc::new(Gaussian::new(p.means[0].to_vec(), &p.covs[0], sde)?));
        }
        let mut stds = Vec::new();
        for c in &p.covs {
            if c[1] != 0.0 || c[2] != 0.0 {
                return Err(Error::unsupported("the study's mixture score needs diagonal component covariances").into());
            }
            stds.extend([c[0].sqrt(), c[3].sqrt()]);
        }
        let means: Vec<f64> = p.means.iter().flatten().copied().collect();
        Ok(Arc::new(GaussianMixture::new(&p.weights, &means, &stds, sde)?))
    }

    /// `y = aᵀx + n` as a forward model on 1×2 "images".
    pub fn forward(&self) -> Result<Model> {
        let shape = [1, 1, 2];
        let mut chain = Chain::new(shape);
        chain.push(Arc::new(DenseMatrix::new(shape.into(), 1, self.a.to_vec())?))?;
        Ok(Model::with_spec(chain, &NoiseSpec::Gaussian { sigma: self.sigma })?)
    }
}

/// A method of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Method {
    /// Samples of the true posterior (the KDE's floor).
    Exact,
    /// DPI under the exact PF-ODE prior.
    Dpi,
    /// Annealed Langevin dynamics.
    ScoreAld,
    /// Diffusion posterior sampling.
    Dps,
    /// Reverse SDE with relaxed projections.
    SdeProj,
    /// Decoupled annealing posterior sampling.
    Daps,
    /// Plug-and-play split Gibbs sampling with a diffusion denoiser.
    PnpDm,
}

impl Method {
    /// Every method, in the table's order.
    pub const ALL: [Method; 7] =
        [Method::Exact, Method::Dpi, Method::ScoreAld, Method::Dps, Method::SdeProj, Method::Daps, Method::PnpDm];

    /// The name in tables.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Exact => "exact samples",
            Method::Dpi => "DPI (ours)",
            Method::ScoreAld => "Score-ALD",
            Method::Dps => "DPS",
            Method::SdeProj => "SDE+Proj",
            Method::Daps => "DAPS",
            Method::PnpDm => "PnP-DM",
        }
    }
    /// The knob a grid search tunes, if any.
    pub fn knob(&self) -> Option<&'static str> {
        match self {
            Method::ScoreAld => Some("step"),
            Method::Dps => Some("zeta"),
            Method::SdeProj => Some("lambda"),
            Method::Daps => Some("eta0"),
            Method::PnpDm => Some("rho_decay"),
            _ => None,
        }
    }
}
