//! The closure χ² of calibration-study EHT posterior means under both closure likelihoods:
//! each closure independent (`diagonal`) and each scan's closures jointly Gaussian (`scan`,
//! [`Interferometer::closure_problem_scan`]). The data are rebuilt as the study builds them
//! (source `i` of the compact-source stream of seed 1,000,000 at 1 Jy, thermal noise of seed
//! `i`, debiased closures), so any run's `mean.npy` can be scored under either.
//!
//! `cargo run --release -p scoreprior-cli --example closure_chi2 -- out/calib-eht/eht-0 out/calib-eht/eht-1 …`
//! prints, per run, the reduced χ² of the closure phases and log closure amplitudes under each
//! likelihood (`scan`: `|L⁻¹ r|²` summed over the quantities' scan blocks, per quantity).

use rand::SeedableRng;
use scoreprior_core::forward::interferometry::{Array, CompactSources, Interferometer, Observation};
use scoreprior_core::forward::ForwardModel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (npix, fov, flux_jy, source_seed) = (32, 160.0, 1.0, 1_000_000);
    let eht = Interferometer::new(Array::eht2017().observe(&Observation::sgr_a_star())?, npix, fov)?;
    let vm = eht.visibility_model()?;
    println!("| run | diagonal: cp / lca | scan: cp / lca | truth, diagonal | truth, scan |");
    println!("|---|---:|---:|---:|---:|");
    for dir in std::env::args().skip(1) {
        let dir = std::path::PathBuf::from(dir);
        let bad = || format!("{}: expected a study run folder eht-<i>", dir.display());
        let name = dir.file_name().and_then(|n| n.to_str()).ok_or_else(bad)?.to_string();
        let i: usize = name.rsplit('-').next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let truth = CompactSources::default().images(i + 1, npix, fov, source_seed)?;
        let x = &truth[i * npix * npix..];
        let flux: f64 = x.iter().sum();
        let jy: Vec<f64> = x.iter().map(|v| v * flux_jy / flux).collect();
        let vis = vm.simulate(&jy, &mut rand_chacha::ChaCha8Rng::seed_from_u64(i as u64))?;
        let diag = eht.closure_problem(&vis, true)?;
        let scan = eht.closure_problem_scan(&vis, true, &[], &[])?;
        let mean = scoreprior_core::io::read_npy(dir.join("mean.npy"))?.data;
        let scan_chi2 = |img: &[f64]| -> Result<(f64, f64), Box<dyn std::error::Error>> {
            let f = scan.model.forward(img)?;
            let mut w = vec![0.0; f.len()];
            scan.model.noise().whiten(&scan.y, &f, &mut w);
            let t = scan.n_phases;
            let sq = |s: &[f64]| s.iter().map(|v| v * v).sum::<f64>() / s.len() as f64;
            Ok((sq(&w[..t]), sq(&w[t..])))
        };
        // The samples' mean χ² per closure under the scan likelihood, when the run saved them.
        if let Ok(samples) = scoreprior_core::io::read_npy(dir.join("samples.npy")) {
            let d = npix * npix;
            let chi: Vec<f64> = samples.data.chunks(d).map(|x| scan.reduced_chi2(x)).collect::<Result<_, _>>()?;
            eprintln!("{name}: samples' χ² per closure (scan) {:.2}", chi.iter().sum::<f64>() / chi.len() as f64);
        }
        let (d, s) = (diag.chi2(&mean)?, scan_chi2(&mean)?);
        let (dt, st) = (diag.chi2(x)?, scan_chi2(x)?);
        println!(
            "| {name} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} |",
            d.phase, d.log_amp, s.0, s.1, dt.phase, dt.log_amp, st.0, st.1
        );
    }
    Ok(())
}
