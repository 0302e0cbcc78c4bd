//! The 2-D posterior study on its Gaussian cases (quick settings, ≈ 15 s): DPI under the exact
//! score-based prior matches the closed-form posterior, Score-ALD comes close, and DPS and
//! SDE+Proj show the paper's failure at high measurement noise (spread underestimated), with
//! their knobs tuned on the low-noise case; DAPS and PnP-DM come near the KDE's floor. The
//! outputs are written and readable, and a study folder written before DAPS and PnP-DM joined
//! is refused, not resumed.

use std::path::Path;

use scoreprior_cli::run_folder::{check_same_run, RunManifest};
use scoreprior_cli::studies::posterior2d::{run, Case, StudySettings};

/// Bounds on DAPS's and PnP-DM's KDE KLs (Scott, both ways) at the quick settings. Measured
/// (floor 0.015): low noise DAPS 0.060/0.062 (η₀ = 5e-4), PnP-DM 0.087/0.094 (decay 0.9);
/// high noise DAPS 0.156/0.167, PnP-DM 0.034/0.034. The quick settings anneal too fast to
/// reach the floor (the default ones come within 3× of it, see the book's table).
const BOUND_LOW: f64 = 0.15;
const BOUND_HIGH: f64 = 0.25;

#[test]
fn gaussian_cases_reproduce_the_papers_comparison() {
    let cases: Vec<Case> = Case::reference().into_iter().filter(|c| c.name.starts_with("gaussian")).collect();
    let study = run(&cases, &StudySettings::quick(), &mut |_| {}).unwrap();
    let row = |case: &str, method: &str| study.rows.iter().find(|r| r.case == case && r.method == method).unwrap();
    let truth_std = cases[1].posterior().unwrap().moments().1[0].sqrt();
    // The KDE's own floor with exact samples (measured 0.0146).
    assert!(row("gaussian-high", "exact samples").kl_pq_scott < 0.03);
    let dpi = row("gaussian-high", "DPI (ours)");
    // Measured: exact KL(q‖p) 0.0027, KL(p‖q) 0.0021; KDE 0.019.
    assert!(dpi.exact_kl_qp.unwrap() < 0.01 && dpi.exact_kl_pq.unwrap() < 0.01, "{dpi:?}");
    assert!(dpi.kl_pq_scott < 0.04, "{dpi:?}");
    // Measured 0.058.
    assert!(row("gaussian-high", "Score-ALD").kl_pq_scott < 0.15);
    for m in ["DPS", "SDE+Proj"] {
        let r = row("gaussian-high", m);
        // Measured std 0.191 (DPS), 0.181 (SDE+Proj) against 0.241; KL(p‖q) 17 and 3,000.
        assert!(r.std[0] < 0.85 * truth_std, "{m}: {r:?}");
        assert!(r.kl_pq_scott > 1.0 && r.kl_pq_scott > 20.0 * dpi.kl_pq_scott, "{m}: {r:?}");
        // The knob tuned on low noise is reused unchanged.
        assert_eq!(r.setting, row("gaussian-low", m).setting);
    }
    for m in ["DAPS", "PnP-DM"] {
        let (low, high) = (row("gaussian-low", m), row("gaussian-high", m));
        // The knob tuned on low noise is reused unchanged.
        assert!(!low.setting.is_empty() && low.setting == high.setting, "{m}: {low:?} {high:?}");
        // Far better than DPS at high noise (measured KL(p‖q) 17).
        assert!(high.kl_pq_scott < 0.1 * row("gaussian-high", "DPS").kl_pq_scott, "{m}: {high:?}");
        for (r, bound) in [(low, BOUND_LOW), (high, BOUND_HIGH)] {
            let floor = row(&r.case, "exact samples");
            eprintln!(
                "{} {m} {}: KL(p‖q) {:.4} KL(q‖p) {:.4}, floor {:.4} {:.4}",
                r.case, r.setting, r.kl_pq_scott, r.kl_qp_scott, floor.kl_pq_scott, floor.kl_qp_scott
            );
            assert!(r.kl_pq_scott < bound && r.kl_qp_scott < bound, "{m}: {r:?} (floor {floor:?})");
            // Unlike DPS and SDE+Proj, the spread is kept (within 10 %) at high noise too.
            assert!((r.std[0] / floor.std[0] - 1.0).abs() < 0.1, "{m}: {r:?} (floor {floor:?})");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    study.write(dir.path()).unwrap();
    let table = std::fs::read_to_string(dir.path().join("table.csv")).unwrap();
    assert_eq!(table.lines().count(), 1 + 14);
    let svg = std::fs::read_to_string(dir.path().join("contours_gaussian-high.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.matches("<polyline").count() > 20);
    assert!(dir.path().join("samples_gaussian-low_dps.npy").exists());
    assert!(dir.path().join("samples_gaussian-high_daps.npy").exists());
    assert!(dir.path().join("samples_gaussian-high_pnpdm.npy").exists());
    let search = std::fs::read_to_string(dir.path().join("search.csv")).unwrap();
    let s = StudySettings::quick();
    assert_eq!(search.lines().filter(|l| l.contains(",DAPS,")).count(), s.daps_step_sizes.len(), "{search}");
    assert_eq!(search.lines().filter(|l| l.contains(",PnP-DM,")).count(), s.pnp_rho_decays.len(), "{search}");
}

/// A study folder whose `run.json` predates DAPS and PnP-DM (no `daps_*`, `pnp_*` keys) is
/// refused with the usual message, naming the new keys, not resumed and not a panic.
#[test]
fn a_folder_from_before_daps_and_pnp_dm_is_refused() {
    let cases = Case::reference();
    let new = StudySettings::default().manifest(&cases);
    let mut old = new.clone();
    let config = old.config.as_object_mut().unwrap();
    let keys: Vec<String> =
        config.keys().filter(|k| k.starts_with("daps_") || k.starts_with("pnp_")).cloned().collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    for k in &keys {
        config.remove(k);
    }
    // Through the file, as the command reads it.
    let dir = tempfile::tempdir().unwrap();
    old.write(dir.path()).unwrap();
    let old = RunManifest::read(dir.path()).unwrap().unwrap();
    let e = check_same_run(Path::new("out"), &old, &new, "--force").unwrap_err().to_string();
    assert!(e.contains("config.daps_step_sizes: (absent) -> [0.0001,0.0003,0.0005]"), "{e}");
    assert!(e.contains("config.pnp_rho_decays: (absent)") && e.contains("--force"), "{e}");
    assert!(check_same_run(Path::new("out"), &new, &new, "--force").is_ok());
}

/// Every DAPS and PnP-DM setting is checked before any work, the error naming it.
#[test]
fn daps_and_pnp_dm_settings_are_checked_first() {
    let q = StudySettings::quick();
    #[rustfmt::skip]
    let bad = [
        (StudySettings { daps_step_sizes: vec![], ..q.clone() }, "daps_step_sizes"),
        (StudySettings { daps_step_sizes: vec![3e-4, f64::NAN], ..q.clone() }, "DAPS step_size"),
        // η₀ at which the last levels' Langevin steps diverge whatever the likelihood.
        (StudySettings { daps_step_sizes: vec![1.0], ..q.clone() }, "DAPS step_size"),
        (StudySettings { daps_levels: 0, ..q.clone() }, "DAPS levels"),
        (StudySettings { daps_langevin_steps: 0, ..q.clone() }, "DAPS langevin_steps"),
        (StudySettings { daps_ode_steps: usize::MAX, ..q.clone() }, "DAPS ode_steps"),
        (StudySettings { pnp_rho_decays: vec![], ..q.clone() }, "pnp_rho_decays"),
        (StudySettings { pnp_rho_decays: vec![0.9, 1.5], ..q.clone() }, "PnP-DM rho_decay"),
        (StudySettings { pnp_iterations: 0, ..q.clone() }, "PnP-DM iterations"),
        (StudySettings { pnp_denoise_steps: 0, ..q.clone() }, "PnP-DM denoise_steps"),
        (StudySettings { pnp_rho_min: 0.0, ..q.clone() }, "PnP-DM rho_min"),
        // Below the SDE's noise level at PnP-DM's t_min.
        (StudySettings { pnp_rho_min: 1e-4, ..q.clone() }, "rho_min"),
    ];
    for (s, want) in bad {
        let t = std::time::Instant::now();
        let e = run(&Case::reference(), &s, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains(want), "{want:?} not in {e}");
        assert!(t.elapsed().as_secs_f64() < 1.0, "{want}: the check came after work");
    }
}
