//! Mean test log-likelihood of a trained NCSN++ prior (PF-ODE, Hutchinson or exact trace)
//! next to the fitted Gaussian's, in nats per image and bits per dimension of the
//! continuous density on `[0,1]^D`.
//!
//! ```text
//! cargo run --release -p scoreprior-models --example eval_logprob -- \
//!     <checkpoint> <test.npy> <gaussian dir> [n_images] [probes (0 = exact)] [rtol]
//! ```

use scoreprior_core::io::read_npy;
use scoreprior_core::prior::{GaussianPrior, Prior, ScorePrior, ScorePriorConfig};
use scoreprior_core::score::ScoreModel;
use scoreprior_core::sde::AnySde;
use scoreprior_models::score::NcsnppScore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 4 {
        return Err("usage: eval_logprob <checkpoint> <test.npy> <gaussian dir> [n] [probes] [rtol]".into());
    }
    let n: usize = a.get(4).map_or(Ok(16), |s| s.parse())?;
    let probes: usize = a.get(5).map_or(Ok(4), |s| s.parse())?;
    let rtol: f64 = a.get(6).map_or(Ok(1e-3), |s| s.parse())?;
    let model = NcsnppScore::load(&a[1])?;
    let d = model.dim();
    let sde = *model.sde();
    let test = read_npy(&a[2])?;
    let (rows, dd) = test.rows();
    if dd != d {
        return Err(format!("test images have {dd} values, the model {d}").into());
    }
    let n = n.min(rows);
    let x = &test.data[..n * d];
    let mean = read_npy(format!("{}/mean.npy", a[3]))?;
    let cov = read_npy(format!("{}/cov.npy", a[3]))?;
    let g = GaussianPrior::new(mean.data, &cov.data)?;
    let lg = g.log_prob(x)?.log_prob;
    let mut cfg = ScorePriorConfig::default().with_sde(AnySde::Vp(sde)).with_tolerances(rtol, rtol * 1e-2);
    cfg = if probes == 0 {
        cfg.with_exact_trace()
    } else {
        cfg.with_hutchinson(probes, scoreprior_core::divergence::ProbeNoise::Rademacher, 0)
    };
    let prior = ScorePrior::new(model, cfg)?;
    let t0 = std::time::Instant::now();
    let r = prior.log_prob(x)?;
    let secs = t0.elapsed().as_secs_f64();
    let ms = r.log_prob.iter().sum::<f64>() / n as f64;
    let mg = lg.iter().sum::<f64>() / n as f64;
    let bpd = |l: f64| -l / (d as f64 * std::f64::consts::LN_2);
    let sd = (r.log_prob.iter().map(|v| (v - ms).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64).sqrt();
    println!(
        "images: {n}, trace: {}, rtol {rtol}, {secs:.0} s, stats {:?}",
        if probes == 0 { "exact".to_string() } else { format!("Hutchinson {probes} Rademacher") },
        r.stats
    );
    println!(
        "NCSN++ prior: mean log p = {ms:.2} nats (sd {sd:.2}, s.e. {:.2}), {:.4} bits/dim",
        sd / (n as f64).sqrt(),
        bpd(ms)
    );
    println!("Gaussian:     mean log p = {mg:.2} nats, {:.4} bits/dim", bpd(mg));
    println!(
        "per image (prior, gaussian): {:?}",
        r.log_prob.iter().zip(&lg).map(|(a, b)| (a.round(), b.round())).collect::<Vec<_>>()
    );
    Ok(())
}
