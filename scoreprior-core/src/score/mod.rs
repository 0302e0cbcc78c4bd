//! Score models `s(x, t) ≈ ∇x log p_t(x)` behind one backend-agnostic, batched trait.
//!
//! A batch is a row-major `(n, D)` slice of `f64`. Besides the score, the probability-flow
//! log-density needs vector–Jacobian products `vᵀ ∂s/∂x` (divergence estimators, adjoint)
//! and its gradient needs the second-order term `∇x (εᵀ ∂s/∂x ε)`.

use crate::{Error, Result};

pub mod gaussian;
pub mod marginal;
pub mod mixture;
pub(crate) mod packed;

pub use gaussian::Gaussian;
pub use marginal::MarginalDensity;
pub use mixture::GaussianMixture;

/// A batched score model.
///
/// Shapes: `x` is `(n, D)`; `cotangents` and the VJP output are `(m, n, D)`: cotangent
/// `j·n + i` is applied to image `i`. Hutchinson probes shared by all images are passed by
/// repeating each probe `n` times, so the same trait serves estimators and the adjoint.
pub trait ScoreModel: Send + Sync {
    /// Dimension `D` of one flattened image.
    fn dim(&self) -> usize;

    /// `s(x_i, t)` for every image of the batch, written into `out` (`(n, D)`).
    fn score(&self, x: &[f64], t: f64, out: &mut [f64]) -> Result<()>;

    /// Vector–Jacobian products `out[j,i,:] = cotangents[j,i,:]ᵀ ∂s(x_i, t)/∂x_i` and the
    /// scores `score_out` (`(n, D)`) computed on the way.
    fn score_and_vjp(
        &self,
        x: &[f64],
        t: f64,
        cotangents: &[f64],
        score_out: &mut [f64],
        vjp_out: &mut [f64],
    ) -> Result<()>;

    /// Scores at per-image times: `out[i,:] = s(x_i, t[i])` (`t.len() == n`).
    ///
    /// The default groups the images by equal time and makes one [`ScoreModel::score`] call
    /// per distinct time (one call when all times agree). Networks conditioned on time per
    /// image (NCSN++) override it with one batched pass.
    ///
    /// # Errors
    /// Shape mismatches and the model's errors.
    fn score_at(&self, x: &[f64], t: &[f64], out: &mut [f64]) -> Result<()> {
        let d = self.dim();
        let n = check_times(d, x, t, out.len())?;
        for (tv, idx) in groups_by_time(t) {
            if idx.len() == n {
                return self.score(x, tv, out);
            }
            let xs = gather(x, &idx, d);
            let mut o = vec![0.0; xs.len()];
            self.score(&xs, tv, &mut o)?;
            scatter(&o, &idx, d, out);
        }
        Ok(())
    }

    /// The score and one VJP per image *whose cotangent depends on the score*, at per-image
    /// times: `score_out[i] = s(x_i, t[i])`, then `cotangent(i, score_out[i], c_i)` fills
    /// `c_i`, and `vjp_out[i] = c_iᵀ ∂s(x_i, t[i])/∂x_i`.
    ///
    /// This is what denoising-score-matching objectives need (the cotangent is the residual
    /// `s + z/σ`). A network overrides it to take the score and the VJP from one forward
    /// pass (the backward pass runs on the recorded activations once the cotangent is known).
    /// The default computes the scores with [`ScoreModel::score_at`], then calls
    /// [`ScoreModel::score_and_vjp`] once per distinct time, which recomputes the forward
    /// pass; exact models, whose passes are cheap, keep it.
    ///
    /// # Errors
    /// Shape mismatches and the model's errors.
    fn score_then_vjp(
        &self,
        x: &[f64],
        t: &[f64],
        cotangent: &(dyn Fn(usize, &[f64], &mut [f64]) + Sync),
        score_out: &mut [f64],
        vjp_out: &mut [f64],
    ) -> Result<()> {
        let d = self.dim();
        let n = check_times(d, x, t, score_out.len())?;
        if vjp_out.len() != n * d {
            return Err(Error::shape("vjp output", format!("({n}, {d})"), vjp_out.len()));
        }
        self.score_at(x, t, score_out)?;
        let mut cot = vec![0.0; n * d];
        for i in 0..n {
            cotangent(i, &score_out[i * d..(i + 1) * d], &mut cot[i * d..(i + 1) * d]);
        }
        for (tv, idx) in groups_by_time(t) {
            let xs = gather(x, &idx, d);
            let cs = gather(&cot, &idx, d);
            let (mut s, mut v) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
            self.score_and_vjp(&xs, tv, &cs, &mut s, &mut v)?;
            scatter(&v, &idx, d, vjp_out);
        }
        Ok(())
    }

    /// Scores and the probes' quadratic forms `forms_out[j, i] = ε_jᵀ ∂s(x_i, t)/∂x_i ε_j`
    /// (`(K, n)`) for `K` probes `(K, D)` shared by the batch: what the Hutchinson estimator
    /// needs.
    ///
    /// The default repeats each probe for every image and makes one [`ScoreModel::score_and_vjp`]
    /// call. Models whose Jacobian does not depend on `x` (such as [`Gaussian`]) override it
    /// to form each `J ε_j` once instead of `n` times.
    ///
    /// # Errors
    /// Shape mismatches and the model's errors.
    fn score_and_probe_forms(
        &self,
        x: &[f64],
        t: f64,
        probes: &[f64],
        score_out: &mut [f64],
        forms_out: &mut [f64],
    ) -> Result<()> {
        let d = self.dim();
        let (n, k) = check_probe_forms(d, x, probes, score_out, forms_out)?;
        // Cotangent j·n + i is probe j for image i.
        let mut cot = vec![0.0; k * n * d];
        for (j, eps) in probes.chunks(d).enumerate() {
            for i in 0..n {
                cot[(j * n + i) * d..(j * n + i + 1) * d].copy_from_slice(eps);
            }
        }
        let mut vjp = vec![0.0; k * n * d];
        self.score_and_vjp(x, t, &cot, score_out, &mut vjp)?;
        for (j, eps) in probes.chunks(d).enumerate() {
            for i in 0..n {
                let v = &vjp[(j * n + i) * d..(j * n + i + 1) * d];
                forms_out[j * n + i] = v.iter().zip(eps).map(|(a, b)| a * b).sum();
            }
        }
        Ok(())
    }

    /// Exact Jacobian trace `tr ∂s(x_i, t)/∂x_i` per image, when the model knows it
    /// cheaply. `Ok(false)` means "not available": estimators then fall back to `D` VJPs
    /// with basis vectors.
    fn jacobian_trace(&self, _x: &[f64], _t: f64, _out: &mut [f64]) -> Result<bool> {
        Ok(false)
    }

    /// Exact gradient of the Jacobian trace, `out[i,:] = ∇x tr ∂s(x_i, t)/∂x_i`, when the model
    /// knows it cheaply (the exact-trace adjoint needs it). `Ok(false)` means "not
    /// available": callers then fall back to `D` times [`ScoreModel::second_order`] over the
    /// basis vectors (expensive for large `D`).
    fn jacobian_trace_grad(&self, _x: &[f64], _t: f64, _out: &mut [f64]) -> Result<bool> {
        Ok(false)
    }

    /// The adjoint's model terms at one point: the scores `s(x_i, t)` into `score_out`, the
    /// VJPs `a_iᵀ ∂s/∂x_i` (one cotangent per image, `a` is `(n, D)`) into `vjp_out`, and the
    /// second-order term of [`ScoreModel::second_order`] for `probes` into `second_out`.
    ///
    /// The default makes the two calls; a network overrides it to evaluate all `(2K + 1)·n`
    /// image–cotangent pairs in one batch (one call of a small batch of `n` pairs leaves the
    /// cores less busy than a share of a larger one).
    ///
    /// # Errors
    /// Shape mismatches and the model's errors.
    #[allow(clippy::too_many_arguments)]
    fn score_vjp_and_second_order(
        &self,
        x: &[f64],
        t: f64,
        a: &[f64],
        probes: &[f64],
        score_out: &mut [f64],
        vjp_out: &mut [f64],
        second_out: &mut [f64],
    ) -> Result<()> {
        if a.len() != x.len() {
            return Err(Error::shape("adjoint cotangents", x.len(), a.len()));
        }
        self.score_and_vjp(x, t, a, score_out, vjp_out)?;
        self.second_order(x, t, probes, second_out)
    }

    /// The second-order term `out[i,:] = ∇x (1/K) Σ_k ε_kᵀ ∂s(x_i, t)/∂x_i ε_k` for `K`
    /// probes `(K, D)` shared by the batch.
    ///
    /// The default is a central difference of two VJPs along each probe,
    /// `[J(x + hε)ᵀε − J(x − hε)ᵀε] / 2h`, which equals the exact term up to `O(h²)` by
    /// the symmetry of mixed partials; `h = 1e-4·max(1, rms(x))` balances truncation
    /// against round-off in `f64`. Models that know the term exactly override this.
    ///
    /// Measured against the exact term of [`GaussianMixture`] (test
    /// `default_second_order_matches_analytic`, 4 Rademacher probes): for the 2-D reference
    /// mixture (std 0.1) at points between the modes the relative error is 6.0e-5, 3.8e-5,
    /// 5.7e-7, 1.5e-9 at t = 0.001, 0.01, 0.1, 0.5 (the sharply varying responsibilities near
    /// t = 0 dominate: error ≈ (h/ℓ)² with ℓ the length scale of the density); for a random
    /// 8-D, 3-component mixture at samples, 1.2e-5, 7.5e-6, 1.4e-7, 1.8e-9.
    fn second_order(&self, x: &[f64], t: f64, probes: &[f64], out: &mut [f64]) -> Result<()> {
        let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt();
        second_order_by_differences(self, x, t, probes, 1e-4 * rms.max(1.0), out)
    }
}

/// The second-order term `out[i,:] = ∇x (1/K) Σ_k ε_kᵀ ∂s(x_i, t)/∂x_i ε_k` as the central
/// difference `[J(x + hε)ᵀε − J(x − hε)ᵀε] / 2h` of the model's VJPs, all `2·K·n`
/// (sign, probe, image) triples in one [`ScoreModel::score_and_vjp`] call. The default
/// [`ScoreModel::second_order`] is this with `h = 1e-4·max(1, rms(x))`; a model whose VJPs
/// run in lower precision chooses a larger `h` (truncation `O(h²)` against round-off
/// `O(u/h)`).
///
/// ```
/// use scoreprior_core::score::{second_order_by_differences, Gaussian, ScoreModel};
/// use scoreprior_core::sde::{AnySde, VpSde};
/// // A Gaussian's score is linear: its second-order term is zero.
/// let g = Gaussian::diagonal(vec![0.0; 2], &[1.0, 2.0], AnySde::Vp(VpSde::default())).unwrap();
/// let mut out = [1.0; 2];
/// second_order_by_differences(&g, &[0.3, -0.2], 0.1, &[1.0, -1.0], 1e-3, &mut out).unwrap();
/// assert!(out.iter().all(|v| v.abs() < 1e-9));
/// ```
///
/// # Errors
/// Probes not `(K, D)`, an output of the wrong length, `h` not positive and finite, and the
/// model's errors.
pub fn second_order_by_differences<M: ScoreModel + ?Sized>(
    model: &M,
    x: &[f64],
    t: f64,
    probes: &[f64],
    h: f64,
    out: &mut [f64],
) -> Result<()> {
    let d = model.dim();
    let n = check_batch(x, d, "x")?;
    if probes.is_empty() || !probes.len().is_multiple_of(d) {
        return Err(Error::shape("probes", format!("(K, {d})"), probes.len()));
    }
    if out.len() != x.len() {
        return Err(Error::shape("second-order output", x.len(), out.len()));
    }
    if !(h > 0.0 && h.is_finite()) {
        return Err(Error::invalid(format!("difference step must be positive and finite, got {h}")));
    }
    let k = probes.len() / d;
    // Entries j·n + i are x_i + hε_j, entries (K + j)·n + i are x_i − hε_j: one model call
    // (one large batch) instead of two.
    let half = k * n * d;
    let mut xpm = vec![0.0; 2 * half];
    let mut cot = vec![0.0; 2 * half];
    for j in 0..k {
        let eps = &probes[j * d..(j + 1) * d];
        for i in 0..n {
            let o = (j * n + i) * d;
            for l in 0..d {
                xpm[o + l] = x[i * d + l] + h * eps[l];
                xpm[half + o + l] = x[i * d + l] - h * eps[l];
                cot[o + l] = eps[l];
                cot[half + o + l] = eps[l];
            }
        }
    }
    // Each (sign, probe, image) triple is its own batch entry with cotangent ε_k.
    let mut spm = vec![0.0; 2 * half];
    let mut vpm = vec![0.0; 2 * half];
    model.score_and_vjp(&xpm, t, &cot, &mut spm, &mut vpm)?;
    let (vp, vm) = vpm.split_at(half);
    out.iter_mut().for_each(|v| *v = 0.0);
    let scale = 1.0 / (2.0 * h * k as f64);
    for j in 0..k {
        for i in 0..n {
            let o = (j * n + i) * d;
            for l in 0..d {
                out[i * d + l] += (vp[o + l] - vm[o + l]) * scale;
            }
        }
    }
    Ok(())
}

/// Checks `x` (`(n, D)`), per-image times `t` (`n`, each finite) and an output length;
/// returns `n`.
pub fn check_times(d: usize, x: &[f64], t: &[f64], out_len: usize) -> Result<usize> {
    let n = check_batch(x, d, "x")?;
    if t.len() != n {
        return Err(Error::shape("times", format!("one per image ({n})"), t.len()));
    }
    if out_len != n * d {
        return Err(Error::shape("score output", format!("({n}, {d})"), out_len));
    }
    if let Some(i) = t.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!("time of image {i} is not finite: {}", t[i])));
    }
    Ok(n)
}

/// Images grouped by equal time, in order of first appearance: `(t, indices)`.
fn groups_by_time(t: &[f64]) -> Vec<(f64, Vec<usize>)> {
    let mut groups: Vec<(f64, Vec<usize>)> = Vec::new();
    for (i, &tv) in t.iter().enumerate() {
        match groups.iter_mut().find(|g| g.0.to_bits() == tv.to_bits()) {
            Some(g) => g.1.push(i),
            None => groups.push((tv, vec![i])),
        }
    }
    groups
}

fn gather(x: &[f64], idx: &[usize], d: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(idx.len() * d);
    for &i in idx {
        out.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    out
}

fn scatter(src: &[f64], idx: &[usize], d: usize, out: &mut [f64]) {
    for (k, &i) in idx.iter().enumerate() {
        out[i * d..(i + 1) * d].copy_from_slice(&src[k * d..(k + 1) * d]);
    }
}

/// Checks the shapes of a [`ScoreModel::score_and_probe_forms`] call and returns the batch
/// size `n` and the number of probes `K`.
pub(crate) fn check_probe_forms(
    d: usize,
    x: &[f64],
    probes: &[f64],
    score_out: &[f64],
    forms_out: &[f64],
) -> Result<(usize, usize)> {
    let n = check_batch(x, d, "x")?;
    if probes.is_empty() || !probes.len().is_multiple_of(d) {
        return Err(Error::shape("probes", format!("(K, {d})"), probes.len()));
    }
    let k = probes.len() / d;
    if score_out.len() != x.len() || forms_out.len() != k * n {
        return Err(Error::shape(
            "score/probe-form outputs",
            format!("{} and {}", x.len(), k * n),
            format!("{} and {}", score_out.len(), forms_out.len()),
        ));
    }
    Ok((n, k))
}

/// Checks that `x` holds a whole number of `d`-vectors and returns the batch size.
pub fn check_batch(x: &[f64], d: usize, what: &str) -> Result<usize> {
    if d == 0 || x.len() % d != 0 || x.is_empty() {
        return Err(Error::shape(what, format!("(n, {d})"), format!("{} values", x.len())));
    }
    Ok(x.len() / d)
}
