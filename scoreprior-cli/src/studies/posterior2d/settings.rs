//! Settings of the 2-D study ([`StudySettings`]: samples, the baselines' knob grids, DPI's
//! optimisation), checked before any work, and the manifest that pins a study's folder.

use scoreprior_core::baselines::{Daps, Dps, PnpDm, ScoreAld, SdeProj};
use scoreprior_core::sde::{AnySde, VpSde};

use super::case::Case;
use scoreprior::experiment::{invalid_setting, Result};

/// Settings of [`run`](super::run); `Default` is the full study (10,000 samples per method).
#[derive(Debug, Clone, PartialEq)]
pub struct StudySettings {
    /// Samples per method and case.
    pub samples: usize,
    /// Samples per value during the grid search.
    pub search_samples: usize,
    /// Reverse-diffusion steps of DPS and SDE+Proj.
    pub sampler_steps: usize,
    /// Score-ALD noise levels (5 Langevin steps each).
    pub ald_levels: usize,
    /// Score-ALD base steps searched (each must keep step·‖a‖² < 1.9).
    pub ald_steps: Vec<f64>,
    /// DPS ζ′ searched.
    pub zetas: Vec<f64>,
    /// SDE+Proj λ searched.
    pub lambdas: Vec<f64>,
    /// DAPS annealing levels `N`.
    pub daps_levels: usize,
    /// DAPS Langevin steps `M` per level.
    pub daps_langevin_steps: usize,
    /// DAPS probability-flow ODE steps `K` of the clean estimate (0: one Tweedie step, the
    /// consistent estimate; the reference's 5 widens the prior-dominated directions).
    pub daps_ode_steps: usize,
    /// DAPS first-level Langevin step sizes `η₀` searched.
    pub daps_step_sizes: Vec<f64>,
    /// PnP-DM Gibbs iterations (each chain's last iterate is its sample).
    pub pnp_iterations: usize,
    /// PnP-DM reverse-SDE steps of each prior step.
    pub pnp_denoise_steps: usize,
    /// PnP-DM floor `ρ_min` of the coupling (the likelihood ends blurred by `N(0, ρ_min²)`).
    pub pnp_rho_min: f64,
    /// PnP-DM decays of the coupling `ρ` per iteration searched (`ρ_k = max(10·decay^k,
    /// ρ_min)`): the annealing's speed, too fast leaves the chains behind the posterior, too
    /// slow never reaches the floor.
    pub pnp_rho_decays: Vec<f64>,
    /// DPI optimisation steps.
    pub dpi_steps: usize,
    /// DPI samples per step.
    pub dpi_batch: usize,
    /// DPI coupling blocks.
    pub dpi_flows: usize,
    /// DPI peak learning rate.
    pub dpi_lr: f64,
    /// Initial spread of the DPI flow around 0.
    pub dpi_init_scale: f64,
    /// Steps of DPI's linear data-weight ramp from 0 (0: none).
    pub dpi_anneal_data: usize,
    /// Seed of everything.
    pub seed: u64,
}

impl Default for StudySettings {
    fn default() -> Self {
        Self {
            samples: 10_000,
            search_samples: 2_000,
            sampler_steps: 1000,
            ald_levels: 200,
            ald_steps: vec![0.01, 0.02, 0.05, 0.1, 0.2],
            zetas: vec![0.01, 0.03, 0.1, 0.3, 1.0],
            lambdas: vec![0.01, 0.03, 0.1, 0.3, 1.0],
            daps_levels: 400,
            daps_langevin_steps: 50,
            daps_ode_steps: 0,
            daps_step_sizes: vec![1e-4, 3e-4, 5e-4],
            pnp_iterations: 400,
            pnp_denoise_steps: 30,
            pnp_rho_min: 0.002,
            pnp_rho_decays: vec![0.93, 0.96, 0.98],
            dpi_steps: 1500,
            dpi_batch: 256,
            dpi_flows: 8,
            dpi_lr: 1e-3,
            dpi_init_scale: 1.0,
            dpi_anneal_data: 0,
            seed: 0,
        }
    }
}

impl StudySettings {
    /// A small version for tests (≈ 20 s): fewer samples, steps and knob values.
    pub fn quick() -> Self {
        Self {
            samples: 2_000,
            search_samples: 1_000,
            sampler_steps: 200,
            ald_levels: 50,
            ald_steps: vec![0.05, 0.2],
            zetas: vec![0.03, 0.3],
            lambdas: vec![0.1, 1.0],
            daps_levels: 100,
            daps_langevin_steps: 25,
            daps_ode_steps: 0,
            daps_step_sizes: vec![3e-4, 5e-4],
            pnp_iterations: 120,
            pnp_denoise_steps: 20,
            pnp_rho_min: 0.002,
            pnp_rho_decays: vec![0.9, 0.95],
            dpi_steps: 400,
            dpi_batch: 128,
            dpi_flows: 4,
            dpi_lr: 1e-3,
            dpi_init_scale: 1.0,
            dpi_anneal_data: 0,
            seed: 0,
        }
    }
    /// Checks every setting before any work, naming each by its `posterior-2d` flag where it
    /// has one (the study used to fail on a bad DPI setting only after the cases before it ran).
    ///
    /// ```
    /// use scoreprior_cli::studies::posterior2d::StudySettings;
    /// assert!(StudySettings::quick().validate().is_ok());
    /// let e = StudySettings { dpi_lr: f64::NAN, ..StudySettings::quick() }.validate().unwrap_err();
    /// assert!(e.to_string().contains("--dpi-lr"), "{e}");
    /// ```
    ///
    /// # Errors
    /// The first setting out of range.
    pub fn validate(&self) -> Result<()> {
        if self.samples < 2 {
            return Err(invalid_setting(
                "--samples",
                format!("must be at least 2 (the 2-D study needs two samples per method), got {}", self.samples),
            ));
        }
        if self.search_samples < 2 {
            return Err(invalid_setting(
                "search_samples",
                format!("must be at least 2 (the grid search needs two), got {}", self.search_samples),
            ));
        }
        for (flag, v) in
            [("--dpi-steps", self.dpi_steps), ("--dpi-batch", self.dpi_batch), ("--dpi-flows", self.dpi_flows)]
        {
            if v == 0 {
                return Err(invalid_setting(flag, "must be at least 1, got 0"));
            }
        }
        for (flag, v) in [("--dpi-lr", self.dpi_lr), ("--dpi-init-scale", self.dpi_init_scale)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid_setting(flag, format!("must be positive and finite, got {v}")));
            }
        }
        for (field, values) in [
            ("ald_steps", &self.ald_steps),
            ("zetas", &self.zetas),
            ("lambdas", &self.lambdas),
            ("daps_step_sizes", &self.daps_step_sizes),
            ("pnp_rho_decays", &self.pnp_rho_decays),
        ] {
            if values.is_empty() {
                return Err(invalid_setting(field, "each baseline needs at least one knob value to search"));
            }
        }
        // Every knob value the search will try, checked by its sampler.
        let sde = AnySde::Vp(VpSde::default());
        for &v in &self.ald_steps {
            ScoreAld { levels: self.ald_levels, step_rel: v, ..ScoreAld::new(1.0) }.validate(&sde)?;
        }
        for &v in &self.zetas {
            Dps { steps: self.sampler_steps, zeta: v, ..Dps::new() }.validate(&sde)?;
        }
        for &v in &self.lambdas {
            SdeProj { steps: self.sampler_steps, lambda: v, ..SdeProj::new() }.validate(&sde)?;
        }
        for &v in &self.daps_step_sizes {
            self.daps(v).validate(&sde)?;
        }
        for &v in &self.pnp_rho_decays {
            self.pnp_dm(v).validate(&sde)?;
        }
        Ok(())
    }

    /// DAPS with the study's settings and the first-level step size `η₀ = step_size`; the
    /// rest as the reference ([`Daps::new`]: step decay 0.01, `r = σ`, `t_min = 1e-3`).
    pub fn daps(&self, step_size: f64) -> Daps {
        Daps {
            levels: self.daps_levels,
            langevin_steps: self.daps_langevin_steps,
            ode_steps: self.daps_ode_steps,
            step_size,
            ..Daps::new()
        }
    }

    /// PnP-DM with the study's settings and the decay `rho_decay` of `ρ`; the rest as
    /// [`PnpDm::new`] (`ρ_start = 10`, `t_min = 1e-5`, the exact likelihood step, which the
    /// study's linear Gaussian measurement gets). No burn-in: each chain's last iterate is
    /// its one sample (at `ρ_min` successive iterates of a chain move by about `ρ_min`, far
    /// less than the posterior's spread, so keeping them would add little).
    pub fn pnp_dm(&self, rho_decay: f64) -> PnpDm {
        PnpDm {
            iterations: self.pnp_iterations,
            burn_in: 0,
            denoise_steps: self.pnp_denoise_steps,
            rho_decay,
            rho_min: self.pnp_rho_min,
            ..PnpDm::new()
        }
    }

    /// What defines a study's results (for its folder's `run.json`; a rerun in the folder must
    /// match it): the cases by name and every setting, the seed as the manifest's.
    ///
    /// ```
    /// use scoreprior_cli::studies::posterior2d::{Case, StudySettings};
    /// let m = StudySettings::quick().manifest(&Case::reference());
    /// assert_eq!((m.command.as_str(), m.seed), ("posterior-2d", Some(0)));
    /// assert_eq!(m.config["samples"], 2000);
    /// ```
    pub fn manifest(&self, cases: &[Case]) -> crate::run_folder::RunManifest {
        let config = serde_json::json!({
            "cases": cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            "samples": self.samples, "search_samples": self.search_samples, "sampler_steps": self.sampler_steps,
            "ald_levels": self.ald_levels, "ald_steps": self.ald_steps, "zetas": self.zetas,
            "lambdas": self.lambdas, "daps_levels": self.daps_levels,
            "daps_langevin_steps": self.daps_langevin_steps, "daps_ode_steps": self.daps_ode_steps,
            "daps_step_sizes": self.daps_step_sizes, "pnp_iterations": self.pnp_iterations,
            "pnp_denoise_steps": self.pnp_denoise_steps, "pnp_rho_min": self.pnp_rho_min,
            "pnp_rho_decays": self.pnp_rho_decays, "dpi_steps": self.dpi_steps, "dpi_batch": self.dpi_batch,
            "dpi_flows": self.dpi_flows, "dpi_lr": self.dpi_lr, "dpi_init_scale": self.dpi_init_scale,
            "dpi_anneal_data": self.dpi_anneal_data,
        });
        crate::run_folder::RunManifest::new("posterior-2d", config).with_seed(self.seed)
    }
}
