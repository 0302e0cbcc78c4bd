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
    /// to form each `J ε_j` once instead of `n` times; a network can form `J ε_j` in forward
    /// mode, as the tangents of one pass, with no backward pass.
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

    /// The adjoint's model term at one point: the scores `s(x_i, t)` into `score_out` and
    /// `out[i,:] = a_iᵀ ∂s/∂x_i + ∇x (1/K) Σ_k ε_kᵀ ∂s(x_i, t)/∂x_i ε_k` (one cotangent per
    /// image, `a` is `(n, D)`; probes `(K, D)`): the VJP and the second-order term of
    /// [`ScoreModel::second_order`], summed, as the probability-flow adjoint uses them.
    ///
    /// The default makes the two calls and is exact where they are. A network overrides it
    /// with [`adjoint_vjp_by_differences`]: the two terms from the same `2·K·n` VJPs.
    ///
    /// # Errors
    /// Shape mismatches and the model's errors.
    fn score_and_adjoint_vjp(
        &self,
        x: &[f64],
        t: f64,
        a: &[f64],
        probes: &[f64],
        score_out: &mut [f64],
        out: &mut [f64],
    ) -> Result<()> {
        if a.len() != x.len() || out.len() != x.len() {
            return Err(Error::shape("adjoint cotangents and output", x.len(), format!("{}, {}", a.len(), out.len())));
        }
        let mut second = vec![0.0; x.len()];
        self.second_order(x, t, probes, &mut second)?;
        self.score_and_vjp(x, t, a, score_out, out)?;
        out.iter_mut().zip(&second).for_each(|(o, q)| *o += q);
        Ok(())
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
    let mut scores = vec![0.0; x.len()];
    symmetric_stencil(model, x, t, None, probes, h, &mut scores, out)
}

/// [`ScoreModel::score_and_adjoint_vjp`] from the `2·K·n` VJPs of the central difference
/// alone: with `x_i ± hε_k` and `J± = ∂s/∂x` there,
///
/// `aᵀJ(x) + (1/K) Σ_k ∇x(ε_kᵀJε_k) ≈ (1/K) Σ_k [J+ᵀ(a/2 + ε_k/2h) + J−ᵀ(a/2 − ε_k/2h)]`,
///
/// because `aᵀJ(x) = ½(aᵀJ+ + aᵀJ−) + O(h²)` on the same stencil; the score is the mean of
/// the `2K` stencil scores, also `O(h²)`. Why not a separate VJP at `x` (the `(2K + 1)·n`
/// pairs of the exact VJP plus the difference): it costs `n` more network pairs per
/// evaluation (a fifth of the adjoint's cost for `K = 2`) for an error of the same order
/// as the second-order term's own; and why not one-sided differences from `x` (`(K + 1)·n`
/// pairs): their error is `O(h)`, where `h` cannot shrink much in `f32`.
///
/// ```
/// use scoreprior_core::score::{adjoint_vjp_by_differences, Gaussian, ScoreModel};
/// use scoreprior_core::sde::{AnySde, VpSde};
/// // A Gaussian's score is linear: the stencil gives s(x) and aᵀJ exactly.
/// let g = Gaussian::diagonal(vec![0.0; 2], &[1.0, 2.0], AnySde::Vp(VpSde::default())).unwrap();
/// let (x, a) = ([0.3, -0.2], [1.0, 0.5]);
/// let (mut s, mut out) = ([0.0; 2], [0.0; 2]);
/// adjoint_vjp_by_differences(&g, &x, 0.1, &a, &[1.0, -1.0], 1e-3, &mut s, &mut out).unwrap();
/// let (mut s2, mut v2) = ([0.0; 2], [0.0; 2]);
/// g.score_and_vjp(&x, 0.1, &a, &mut s2, &mut v2).unwrap();
/// assert!((0..2).all(|l| (s[l] - s2[l]).abs() < 1e-9 && (out[l] - v2[l]).abs() < 1e-9));
/// ```
///
/// # Errors
/// As [`second_order_by_differences`], and `a` not `(n, D)`.
#[allow(clippy::too_many_arguments)]
pub fn adjoint_vjp_by_differences<M: ScoreModel + ?Sized>(
    model: &M,
    x: &[f64],
    t: f64,
    a: &[f64],
    probes: &[f64],
    h: f64,
    score_out: &mut [f64],
    out: &mut [f64],
) -> Result<()> {
    if a.len() != x.len() {
        return Err(Error::shape("adjoint cotangents", x.len(), a.len()));
    }
    symmetric_stencil(model, x, t, Some(a), probes, h, score_out, out)
}

/// The stencil `x_i ± hε_k` in one model call (one large batch instead of `2K` small
/// ones): entries `j·n + i` are `x_i + hε_j`, entries `(K + j)·n + i` are `x_i − hε_j`, each
/// with cotangent `±ε_j/2hK`, plus `a_i/2K` when `a` is given. `score_out` gets the mean
/// stencil score, `out` the sum of the VJPs.
#[allow(clippy::too_many_arguments)]
fn symmetric_stencil<M: ScoreModel + ?Sized>(
    model: &M,
    x: &[f64],
    t: f64,
    a: Option<&[f64]>,
    probes: &[f64],
    h: f64,
    score_out: &mut [f64],
    out: &mut [f64],
) -> Result<()> {
    let d = model.dim();
    let n = check_batch(x, d, "x")?;
    let k = checks::check_probes(probes, d)?;
    if out.len() != x.len() || score_out.len() != x.len() {
        return Err(Error::shape("stencil outputs", x.len(), format!("{}, {}", score_out.len(), out.len())));
    }
    if !(h > 0.0 && h.is_finite()) {
        return Err(Error::out_of_range("difference step", h, "positive and finite"));
    }
    let rows = 2 * k * n * d;
    let (mut xs, mut cot) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    let (ce, ca) = (1.0 / (2.0 * h * k as f64), 1.0 / (2.0 * k as f64));
    for sign in [1.0, -1.0] {
        for eps in probes.chunks(d) {
            for (i, xi) in x.chunks(d).enumerate() {
                xs.extend(xi.iter().zip(eps).map(|(v, e)| v + sign * h * e));
                match a {
                    Some(a) => cot.extend(a[i * d..(i + 1) * d].iter().zip(eps).map(|(a, e)| ca * a + sign * ce * e)),
                    None => cot.extend(eps.iter().map(|e| sign * ce * e)),
                }
            }
        }
    }
    let mut s = vec![0.0; rows];
    let mut v = vec![0.0; rows];
    model.score_and_vjp(&xs, t, &cot, &mut s, &mut v)?;
    out.iter_mut().for_each(|o| *o = 0.0);
    score_out.iter_mut().for_each(|o| *o = 0.0);
    for (sb, vb) in s.chunks(n * d).zip(v.chunks(n * d)) {
        out.iter_mut().zip(vb).for_each(|(o, v)| *o += v);
        score_out.iter_mut().zip(sb).for_each(|(o, s)| *o += ca * s);
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
    if let Some(index) = t.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFiniteData { what: "per-image times", index });
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
/// size `n` and the number of probes `K` (for models that override it).
///
/// ```
/// use scoreprior_core::score::check_probe_forms;
/// // Two images of D = 3, one probe: scores (2, 3), forms (1, 2).
/// assert_eq!(check_probe_forms(3, &[0.0; 6], &[1.0; 3], &[0.0; 6], &[0.0; 2]).unwrap(), (2, 1));
/// assert!(check_probe_forms(3, &[0.0; 6], &[1.0; 3], &[0.0; 6], &[0.0; 1]).is_err());
/// assert!(check_probe_forms(3, &[0.0; 6], &[1.0; 2], &[0.0; 6], &[0.0; 2]).is_err());
/// ```
///
/// # Errors
/// Shape mismatches of the images, probes or outputs.
pub fn check_probe_forms(
    d: usize,
    x: &[f64],
    probes: &[f64],
    score_out: &[f64],
    forms_out: &[f64],
) -> Result<(usize, usize)> {
    let n = check_batch(x, d, "x")?;
    let k = checks::check_probes(probes, d)?;
    if score_out.len() != x.len() || forms_out.len() != k * n {
        return Err(Error::shape(
            "score/probe-form outputs",
            format!("{} and {}", x.len(), k * n),
            format!("{} and {}", score_out.len(), forms_out.len()),
        ));
    }
    Ok((n, k))
}

/// The shape checks shared by the exact models ([`Gaussian`], [`GaussianMixture`]) and the
/// trait's defaults: one place for each rule and its message.
pub(crate) mod checks {
    use super::check_batch;
    use crate::{Error, Result};

    /// Fails with [`Error::NonFiniteData`] naming `what` at the first NaN or infinity.
    pub(crate) fn check_finite(x: &[f64], what: &'static str) -> Result<()> {
        match x.iter().position(|v| !v.is_finite()) {
            None => Ok(()),
            Some(index) => Err(Error::NonFiniteData { what, index }),
        }
    }

    /// A batch `x` of whole, finite `d`-vectors; returns the batch size `n`.
    pub(crate) fn check_finite_batch(x: &[f64], d: usize) -> Result<usize> {
        let n = check_batch(x, d, "x")?;
        check_finite(x, "input x")?;
        Ok(n)
    }

    /// A batch `x` of whole, finite `d`-vectors and an output `what` shaped like it; returns
    /// the batch size `n`.
    pub(crate) fn check_like_x(x: &[f64], d: usize, what: &str, out_len: usize) -> Result<usize> {
        let n = check_finite_batch(x, d)?;
        check_len(what, x.len(), out_len)?;
        Ok(n)
    }

    /// A batch `x` of whole, finite `d`-vectors and an output `what` of one value per image;
    /// returns the batch size `n`.
    pub(crate) fn check_per_image(x: &[f64], d: usize, what: &str, out_len: usize) -> Result<usize> {
        let n = check_finite_batch(x, d)?;
        check_len(what, n, out_len)?;
        Ok(n)
    }

    /// An output `what` of `expected` values.
    pub(crate) fn check_len(what: &str, expected: usize, got: usize) -> Result<()> {
        if got == expected {
            Ok(())
        } else {
            Err(Error::shape(what, expected, got))
        }
    }

    /// Probes `(K, d)`, `K ≥ 1`; returns `K`.
    pub(crate) fn check_probes(probes: &[f64], d: usize) -> Result<usize> {
        if probes.is_empty() || !probes.len().is_multiple_of(d) {
            return Err(Error::shape("probes", format!("(K, {d})"), probes.len()));
        }
        Ok(probes.len() / d)
    }

    /// The arguments of a [`super::ScoreModel::score_and_vjp`] call on `n` images of size `d`:
    /// cotangents `(m, n, d)`, all finite; a score output like `x` and a VJP output like the
    /// cotangents.
    pub(crate) fn check_vjp(d: usize, n: usize, cotangents: &[f64], score_out: &[f64], vjp_out: &[f64]) -> Result<()> {
        if cotangents.is_empty() || !cotangents.len().is_multiple_of(n * d) {
            return Err(Error::shape("cotangents", format!("(m, {n}, {d})"), cotangents.len()));
        }
        if score_out.len() != n * d || vjp_out.len() != cotangents.len() {
            return Err(Error::shape(
                "score/VJP outputs",
                format!("{} and {}", n * d, cotangents.len()),
                format!("{} and {}", score_out.len(), vjp_out.len()),
            ));
        }
        check_finite(cotangents, "cotangents")
    }
}

/// Checks that `x` holds a whole number of `d`-vectors and returns the batch size.
pub fn check_batch(x: &[f64], d: usize, what: &str) -> Result<usize> {
    if d == 0 || x.len() % d != 0 || x.is_empty() {
        return Err(Error::shape(what, format!("(n, {d})"), format!("{} values", x.len())));
    }
    Ok(x.len() / d)
}
