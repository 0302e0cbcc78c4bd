//! The optimisation loop [`run_dpi`]: per step, draw `x ~ q`, evaluate the energies, form
//! `∂L/∂x = β(w_d ∇e_data + w_p ∇e_prior)/n` (plus the optional score-function term), and
//! update `q` by Adam.

use super::*;

/// The plain batch mean. It does not filter: a term that gives gradients only writes NaN
/// energies, and its mean is then NaN, which the records keep (the total counts it as 0).
fn batch_mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Runs DPI: `config.steps` Adam steps of `posterior` on the weighted objective built from
/// the `data` term `−log p(y|x)` and the `prior` term `−log p(x)` (either may be absent).
/// `observer` sees every step (progress bars, logging).
///
/// With `out_dir` set, writes `checkpoint.safetensors` (atomically) every `checkpoint_every` steps
/// and at the end, and `losses.csv`; with `resume`, continues from an existing checkpoint.
///
/// ```
/// use scoreprior_core::dpi::{run_dpi, DpiConfig, Energy, Posterior, Batch};
/// # use scoreprior_core::Result;
/// # use rand::RngCore;
/// // A one-parameter family q = N(θ, 1) in 1-D, fitted to the energy e(x) = (x−3)²/2.
/// struct Shift { theta: f64, z: Vec<f64>, g: f64 }
/// impl Posterior for Shift {
///     fn dim(&self) -> usize { 1 }
///     fn sample_for_training(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> {
///         use rand_distr::{Distribution, StandardNormal};
///         self.z = (0..n).map(|_| StandardNormal.sample(rng)).collect();
///         let x = self.z.iter().map(|z| z + self.theta).collect();
///         let log_q = self.z.iter().map(|z| -0.5 * z * z).collect();
///         Ok(Batch { n, dim: 1, x, log_q })
///     }
///     fn backward(&mut self, gx: &[f64], _gq: &[f64]) -> Result<()> { self.g += gx.iter().sum::<f64>(); Ok(()) }
///     fn apply_update(&mut self, lr: f64, _c: Option<f64>) -> Result<f64> {
///         let g = self.g; self.theta -= 100.0 * lr * g; self.g = 0.0; Ok(g.abs())
///     }
///     fn sample(&mut self, n: usize, rng: &mut dyn RngCore) -> Result<Batch> { self.sample_for_training(n, rng) }
///     fn save_state(&self) -> Result<Vec<u8>> { Ok(self.theta.to_le_bytes().to_vec()) }
///     fn load_state(&mut self, b: &[u8]) -> Result<()> { self.theta = f64::from_le_bytes(b.try_into().unwrap()); Ok(()) }
/// }
/// struct Quad;
/// impl Energy for Quad {
///     fn dim(&self) -> usize { 1 }
///     fn energy_and_grad(&self, x: &[f64], _r: &mut dyn RngCore, e: &mut [f64], g: &mut [f64]) -> Result<()> {
///         for i in 0..x.len() { e[i] = 0.5 * (x[i] - 3.0).powi(2); g[i] = x[i] - 3.0; }
///         Ok(())
///     }
/// }
/// let mut q = Shift { theta: 0.0, z: vec![], g: 0.0 };
/// let cfg = DpiConfig { steps: 200, batch: 16, lr: 1e-3, grad_clip: None, ..Default::default() };
/// run_dpi(&cfg, &mut q, Some(&Quad), None, &mut |_| {}).unwrap();
/// assert!((q.theta - 3.0).abs() < 0.1);
/// ```
pub fn run_dpi(
    config: &DpiConfig,
    posterior: &mut dyn Posterior,
    data: Option<&dyn Energy>,
    prior: Option<&dyn Energy>,
    observer: &mut dyn FnMut(&StepRecord),
) -> Result<DpiHistory> {
    config.validate()?;
    let d = posterior.dim();
    for (name, t) in [("data term", data), ("prior term", prior)] {
        if let Some(t) = t {
            if t.dim() != d {
                return Err(Error::shape(name, d, t.dim()));
            }
        }
    }
    if config.time_floor != TimeFloorSchedule::Off && prior.and_then(|p| p.time_floor()).is_none() {
        return Err(Error::inconsistent(
            "time_floor schedule",
            "needs a score-based prior with a lower time limit (DSM bound or PF-ODE)",
        ));
    }
    let ckpt_path = config.out_dir.as_ref().map(|p| p.join(CHECKPOINT_FILE));
    if let Some(dir) = &config.out_dir {
        std::fs::create_dir_all(dir).map_err(|e| crate::io::IoError::os(dir, e))?;
    }
    let mut history = DpiHistory::default();
    if config.resume {
        if let Some(p) = ckpt_path.as_ref().filter(|p| p.exists()) {
            history = read_checkpoint(p, posterior)?;
        }
    }
    let n = config.batch;
    let (mut e_data, mut g_data) = (vec![0.0; n], vec![0.0; n * d]);
    let (mut e_prior, mut g_prior) = (vec![0.0; n], vec![0.0; n * d]);
    let mut grad_x = vec![0.0; n * d];
    let start = history.records.len();
    for step in start..config.steps {
        let t0 = Instant::now();
        let mut rng = step_rng(config.seed, step);
        let batch = posterior.sample_for_training(n, &mut rng)?;
        if batch.x.len() != n * d || batch.log_q.len() != n {
            return Err(Error::shape("posterior batch", n * d, batch.x.len()));
        }
        let mut time_floor = f64::NAN;
        if let (Some(t0), Some(p)) = (config.time_floor.at(step), prior) {
            p.set_time_floor(t0)?;
            time_floor = t0;
        } else if let Some(t0) = prior.and_then(|p| p.time_floor()) {
            time_floor = t0;
        }
        let beta = config.tempering.factor(step);
        let w_data = beta * config.weights.data * config.data_annealing.factor(step);
        let w_prior = beta * config.weights.prior;
        let w_ent = config.weights.entropy;
        grad_x.iter_mut().for_each(|v| *v = 0.0);
        let inv_n = 1.0 / n as f64;
        let mut data_mean = f64::NAN;
        let mut prior_mean = f64::NAN;
        if let Some(t) = data {
            t.energy_and_grad(&batch.x, &mut rng, &mut e_data, &mut g_data)?;
            data_mean = batch_mean(&e_data);
            for (g, v) in grad_x.iter_mut().zip(&g_data) {
                *g += w_data * inv_n * v;
            }
        }
        if let Some(t) = prior {
            t.energy_and_grad(&batch.x, &mut rng, &mut e_prior, &mut g_prior)?;
            prior_mean = batch_mean(&e_prior);
            for (g, v) in grad_x.iter_mut().zip(&g_prior) {
                *g += w_prior * inv_n * v;
            }
        }
        let mut grad_q = vec![w_ent * inv_n; n];
        let sf = config.score_function_weight;
        if sf > 0.0 {
            // Per-sample objective f_i and its baseline (the batch mean, which keeps the
            // estimator unbiased up to O(1/n) and removes the constant of the energies).
            let f: Vec<f64> = (0..n)
                .map(|i| {
                    let mut v = w_ent * batch.log_q[i];
                    if data.is_some() {
                        v += w_data * e_data[i];
                    }
                    if prior.is_some() {
                        v += w_prior * e_prior[i];
                    }
                    v
                })
                .collect();
            if f.iter().any(|v| !v.is_finite()) {
                return Err(Error::inconsistent(
                    "score_function_weight > 0",
                    "needs finite energies and log q; a term gives gradients only",
                ));
            }
            let fbar = f.iter().sum::<f64>() * inv_n;
            let score = posterior.grad_log_q(&batch.x, n)?;
            if score.len() != n * d {
                return Err(Error::shape("grad log q", n * d, score.len()));
            }
            for i in 0..n {
                let c = sf * (f[i] - fbar) * inv_n;
                grad_q[i] += c;
                for j in 0..d {
                    grad_x[i * d + j] -= c * score[i * d + j];
                }
            }
        }
        if let Some(bad) = grad_x.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteData { what: "DPI gradient of sample (row index)", index: bad / d });
        }
        posterior.backward(&grad_x, &grad_q)?;
        let lr = config.lr_at(step);
        let grad_norm = posterior.apply_update(lr, config.grad_clip)?;
        let log_q = batch_mean(&batch.log_q);
        let nz = |v: f64| if v.is_finite() { v } else { 0.0 };
        let rec = StepRecord {
            step,
            total: w_data * nz(data_mean) + w_prior * nz(prior_mean) + w_ent * log_q,
            data: data_mean,
            prior: prior_mean,
            log_q,
            data_weight: w_data,
            beta,
            lr,
            grad_norm,
            seconds: t0.elapsed().as_secs_f64(),
            time_floor,
        };
        history.records.push(rec);
        observer(&rec);
        let last = step + 1 == config.steps;
        if let (Some(p), Some(dir)) = (&ckpt_path, &config.out_dir) {
            if last || (config.checkpoint_every > 0 && (step + 1) % config.checkpoint_every == 0) {
                write_checkpoint(p, &history, posterior)?;
                atomic_write(dir.join(LOSSES_FILE), history.to_csv().as_bytes())?;
            }
        }
    }
    Ok(history)
}
