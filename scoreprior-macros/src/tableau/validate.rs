//! The checks of `#[butcher_tableau]`, each a named function pushing spanned errors into
//! one [`Errors`] so that a single compile reports every violated rule:
//! presence and conflicts of keys, shapes (strictly lower-triangular `a`, one node and one
//! weight per stage), row sums `cᵢ = Σⱼ aᵢⱼ`, the order conditions `bᵀΦ(t) = 1/γ(t)` for
//! `|t| ≤ p` and `b̂ᵀΦ(t) = 1/γ(t)` for `|t| ≤ p̂`, and the derived FSAL property.
//! All arithmetic is exact; with `tolerance = ε` a residual `r` passes when `|r| ≤ ε`.

use num_rational::BigRational;
use num_traits::{One, Signed, Zero};
use proc_macro2::Span;
use syn::Ident;

use super::parse::{Coef, Int, Matrix, Spec, Vector};
use super::rational::{self, show, show_residual, Fixed};
use super::trees::Forest;
use super::Errors;

/// Highest order that can be claimed: the 200 conditions up to order 8 (and the 286 of
/// order 9 used to confirm that order 8 is sharp) are cheap; beyond that the tree count
/// grows quickly (719 at order 10) and no shipped method needs it.
pub const MAX_ORDER: u32 = 8;

/// At most this many failing order conditions are listed, then a count of the rest.
const MAX_LISTED: usize = 6;

/// Outcome of the order-condition check of one weight vector.
pub struct OrderReport {
    /// Number of conditions checked (trees with `|t| ≤ claimed`).
    pub conditions: usize,
    /// Largest `|residual|` among them.
    pub max_residual: BigRational,
    /// First failing tree above the claimed order, if any was examined: bracket, order,
    /// residual.
    pub first_failure_above: Option<(String, usize, BigRational)>,
}

/// A tableau that passed every check.
pub struct Verified {
    pub name: String,
    pub order: u32,
    pub embedded_order: Option<u32>,
    pub c: Vec<BigRational>,
    pub a: Vec<Vec<BigRational>>,
    pub b: Vec<BigRational>,
    pub b_hat: Option<Vec<BigRational>>,
    /// `b − b̂`.
    pub b_error: Option<Vec<BigRational>>,
    pub fsal: bool,
    pub tolerance: Option<BigRational>,
    pub report_b: OrderReport,
    pub report_b_hat: Option<OrderReport>,
}

/// Runs every check; returns the verified tableau when all passed.
pub fn validate(spec: &Spec, ident: &Ident, errors: &mut Errors) -> Option<Verified> {
    let before = errors.is_empty();
    check_required(spec, errors);
    let embedded = check_embedded_keys(spec, errors);
    check_order_range(spec.order.as_ref(), "order", errors);
    check_order_range(spec.embedded_order.as_ref(), "embedded_order", errors);
    let tol = check_tolerance(spec.tolerance.as_ref(), errors);
    let shapes_ok = check_shapes(spec, embedded, errors);

    // Row sums need only the rows (and nodes) that are well-shaped and parsed.
    if let (Some(c), Some(a), Some(tol)) = (&spec.c, &spec.a, &tol) {
        check_row_sums(c, a, tol.as_ref(), errors);
    }

    // The order conditions need every piece present, well-shaped and parsed.
    let (order, c, a, b) = (spec.order.as_ref()?, spec.c.as_ref()?, spec.a.as_ref()?, spec.b.as_ref()?);
    if !shapes_ok || order.value == 0 || order.value > MAX_ORDER {
        return None;
    }
    let cv = c.values()?;
    let av: Vec<Vec<BigRational>> = a.rows.iter().map(Vector::values).collect::<Option<_>>()?;
    let bv = b.values()?;
    let tol = tol?;
    let bhat: Option<(&Vector, Vec<BigRational>, &'static str)> = match embedded {
        Some(Embedded::Hat(v)) => Some((v, v.values()?, "b_hat")),
        Some(Embedded::Error(v)) => {
            let e = v.values()?;
            Some((v, bv.iter().zip(&e).map(|(b, e)| b - e).collect(), "b - b_error"))
        }
        None => None,
    };
    let embedded_order = spec.embedded_order.as_ref();
    if let Some(q) = embedded_order {
        if q.value == 0 || q.value > MAX_ORDER {
            return None;
        }
    }

    // The conditions up to the claimed orders first; the next order (to state in the docs
    // whether the order is sharp) only when they hold, since it costs the most.
    let max_claim = order.value.max(embedded_order.map_or(0, |q| q.value)) as usize;
    let ok_so_far = errors.is_empty();
    let mut residuals = order_residuals(max_claim, &av, &bv, bhat.as_ref().map(|h| &h.1[..]), tol.is_some());
    let mut scratch = Errors::default();
    let check = |res: &Residuals, errors: &mut Errors| {
        let rb = check_order_conditions(&res.forest, &res.b, order, &b.expr, "b", "order", tol.as_ref(), errors);
        let rh = match (&bhat, embedded_order, &res.b_hat) {
            (Some((v, _, label)), Some(q), Some(r)) => {
                Some(check_order_conditions(&res.forest, r, q, &v.expr, label, "embedded_order", tol.as_ref(), errors))
            }
            _ => None,
        };
        (rb, rh)
    };
    let (mut report_b, mut report_b_hat) = check(&residuals, errors);
    if ok_so_far && errors.is_empty() {
        residuals = order_residuals(max_claim + 1, &av, &bv, bhat.as_ref().map(|h| &h.1[..]), tol.is_some());
        (report_b, report_b_hat) = check(&residuals, &mut scratch);
    }
    if let Some((v, w, label)) = &bhat {
        check_nonzero_error(v, &bv, w, label, errors);
    }
    let fsal = derive_fsal(&cv, &av, &bv);

    if !before || !errors.is_empty() {
        return None;
    }
    Some(Verified {
        name: spec.name.as_ref().map_or_else(|| ident.to_string(), |n| n.value()),
        order: order.value,
        embedded_order: embedded_order.map(|q| q.value),
        b_error: bhat.as_ref().map(|(_, w, _)| bv.iter().zip(w).map(|(b, h)| b - h).collect()),
        b_hat: bhat.map(|(_, w, _)| w),
        c: cv,
        a: av,
        b: bv,
        fsal,
        tolerance: tol,
        report_b,
        report_b_hat,
    })
}

#[derive(Clone, Copy)]
enum Embedded<'a> {
    Hat(&'a Vector),
    Error(&'a Vector),
}

/// `order`, `c`, `a` and `b` must be given.
fn check_required(spec: &Spec, errors: &mut Errors) {
    let missing =
        [("order", spec.order.is_none()), ("c", spec.c.is_none()), ("a", spec.a.is_none()), ("b", spec.b.is_none())];
    for (key, absent) in missing {
        if absent && !spec.has(key) {
            errors.push(syn::Error::new(Span::call_site(), format!("missing key `{key}` in #[butcher_tableau(...)]")));
        }
    }
}

/// The embedded weights come as `b_hat` or as `b_error = b − b_hat`, never both, and
/// exactly when `embedded_order` is given.
fn check_embedded_keys<'a>(spec: &'a Spec, errors: &mut Errors) -> Option<Embedded<'a>> {
    let embedded = match (&spec.b_hat, &spec.b_error) {
        (Some(_), Some(e)) => {
            errors.push(syn::Error::new_spanned(&e.expr, "give either `b_hat` or `b_error` (= b - b_hat), not both"));
            return None;
        }
        (Some(h), None) => Some(Embedded::Hat(h)),
        (None, Some(e)) => Some(Embedded::Error(e)),
        (None, None) => None,
    };
    match (&embedded, &spec.embedded_order) {
        (Some(Embedded::Hat(v)), None) | (Some(Embedded::Error(v)), None) if !spec.has("embedded_order") => errors
            .push(syn::Error::new_spanned(
                &v.expr,
                "embedded weights need `embedded_order = ...`, the order the check verifies them to",
            )),
        (None, Some(q)) if !spec.has("b_hat") && !spec.has("b_error") => errors.push(syn::Error::new(
            q.span,
            "`embedded_order` needs embedded weights `b_hat = [...]` or `b_error = [...]`",
        )),
        _ => {}
    }
    embedded
}

fn check_order_range(order: Option<&Int>, key: &str, errors: &mut Errors) {
    if let Some(o) = order {
        if o.value == 0 || o.value > MAX_ORDER {
            errors
                .push(syn::Error::new(o.span, format!("`{key}` must be between 1 and {MAX_ORDER}, found {}", o.value)));
        }
    }
}

/// `tolerance` must be a number in `(0, 1)`. Returns `Some(None)` when absent (exact).
fn check_tolerance(tol: Option<&Coef>, errors: &mut Errors) -> Option<Option<BigRational>> {
    let Some(t) = tol else { return Some(None) };
    let v = t.value.clone()?;
    let min = BigRational::new(1.into(), num_traits::pow(num_bigint::BigInt::from(10), 100));
    if v < min || v >= BigRational::one() {
        errors.push(syn::Error::new_spanned(
            &t.expr,
            "`tolerance` must lie in [1e-100, 1); omit it to require exact equality",
        ));
        return None;
    }
    Some(Some(v))
}

/// One node and one row per stage, row `i` holding exactly `i − 1` entries, one weight
/// per stage.
fn check_shapes(spec: &Spec, embedded: Option<Embedded<'_>>, errors: &mut Errors) -> bool {
    let Some(c) = &spec.c else { return false };
    let s = c.items.len();
    let mut ok = true;
    if s == 0 {
        errors.push(syn::Error::new_spanned(&c.expr, "`c` must list at least one node"));
        return false;
    }
    if let Some(a) = &spec.a {
        if a.rows.len() != s {
            ok = false;
            errors.push(syn::Error::new_spanned(
                &a.expr,
                format!(
                    "`a` has {} rows but `c` has {s} nodes; give one row per stage, the first one empty `[]`",
                    a.rows.len()
                ),
            ));
        }
        for (i, row) in a.rows.iter().enumerate() {
            if row.items.len() != i {
                ok = false;
                errors.push(syn::Error::new_spanned(
                    &row.expr,
                    format!(
                        "row {} of `a` has {} but must have {i}: `a` is strictly lower triangular (row i holds a_i1 .. a_i,i-1)",
                        i + 1,
                        plural(row.items.len(), "entry", "entries")
                    ),
                ));
            }
        }
    }
    let mut weights = |v: Option<&Vector>, key: &str| {
        if let Some(v) = v {
            if v.items.len() != s {
                ok = false;
                errors.push(syn::Error::new_spanned(
                    &v.expr,
                    format!("`{key}` has {} weights but the tableau has {s} stages (`c` has {s} nodes)", v.items.len()),
                ));
            }
        }
    };
    weights(spec.b.as_ref(), "b");
    match embedded {
        Some(Embedded::Hat(v)) => weights(Some(v), "b_hat"),
        Some(Embedded::Error(v)) => weights(Some(v), "b_error"),
        None => {}
    }
    ok
}

/// In exact mode, a failure by a tiny amount is almost always a published tableau whose
/// coefficients are rounded: say how to accept it.
fn rounding_hint(residual: &BigRational, tol: Option<&BigRational>) -> &'static str {
    let tiny = BigRational::new(1.into(), num_traits::pow(num_bigint::BigInt::from(10), 10));
    if tol.is_none() && residual.abs() < tiny {
        "; if the published coefficients are rounded, declare `tolerance = ...`"
    } else {
        ""
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn close(x: &BigRational, y: &BigRational, tol: Option<&BigRational>) -> bool {
    match tol {
        None => x == y,
        Some(t) => rational::within(&(x - y), t),
    }
}

/// `cᵢ = Σⱼ aᵢⱼ` (so `c₁ = 0`): the nodes are where the stages are evaluated, and the order
/// conditions below assume them (they use `A𝟙`, which equals `c` only if this holds).
fn check_row_sums(c: &Vector, a: &Matrix, tol: Option<&BigRational>, errors: &mut Errors) {
    for (i, (row, ci)) in a.rows.iter().zip(&c.items).enumerate() {
        let (Some(row), Some(ci)) = (row.values(), &ci.value) else { continue };
        if row.len() != i {
            continue; // reported by the shape check
        }
        let sum: BigRational = row.iter().fold(BigRational::zero(), |acc, x| acc + x);
        if close(&sum, ci, tol) {
            continue;
        }
        if i == 0 {
            errors.push(syn::Error::new_spanned(
                &c.items[0].expr,
                format!("`c_1` must be 0 for an explicit method (its row of `a` is empty), found {}", show(ci)),
            ));
        } else {
            errors.push(syn::Error::new_spanned(
                &a.rows[i].expr,
                format!(
                    "row {} of `a` sums to {} but `c_{}` is {} (difference {}); each node must equal its row sum (c_i = sum_j a_ij){}",
                    i + 1,
                    show(&sum),
                    i + 1,
                    show(ci),
                    show_residual(&(&sum - ci)),
                    rounding_hint(&(&sum - ci), tol)
                ),
            ));
        }
    }
}

/// `wᵀΦ(t) = 1/γ(t)` for every tree up to the claimed order.
///
/// When exactly the conditions of the claimed order fail the method has one order less
/// than claimed: that is reported once, on the claimed order ("claimed order too high").
/// Failures below that are reported as violated conditions on the weights themselves.
#[allow(clippy::too_many_arguments)]
fn check_order_conditions(
    forest: &Forest,
    res: &[BigRational],
    claimed: &Int,
    w_expr: &syn::Expr,
    label: &str,
    order_key: &str,
    tol: Option<&BigRational>,
    errors: &mut Errors,
) -> OrderReport {
    let p = claimed.value as usize;
    let passes = |id: usize| match tol {
        None => res[id].is_zero(),
        Some(t) => rational::within(&res[id], t),
    };
    let failing: Vec<usize> = (0..forest.count_up_to(p)).filter(|&id| !passes(id)).collect();
    let describe = |id: usize| {
        let t = forest.tree(id);
        let value = &res[id] + BigRational::new(1.into(), t.density.into());
        format!(
            "tree {} (order {}): `{label}`·Φ(t) = {} but 1/γ(t) = 1/{} (residual {}){}",
            forest.bracket(id),
            t.order,
            show(&value),
            t.density,
            show_residual(&res[id]),
            rounding_hint(&res[id], tol)
        )
    };
    if let Some(&first) = failing.first() {
        let achieved = forest.tree(first).order - 1;
        // (At order 1 there is no lower order to fall back to: the weights are just wrong.)
        if achieved == p - 1 && p > 1 {
            let n = failing.len();
            let more = match n {
                1 => String::new(),
                2 => format!("; 1 more order-{p} condition fails"),
                _ => format!("; {} more order-{p} conditions fail", n - 1),
            };
            errors.push(syn::Error::new(
                claimed.span,
                format!(
                    "claimed {} {p} is too high: `{label}` satisfies the order conditions up to order {achieved} only; \
                     fails for {}{more}",
                    order_key.replace('_', " "),
                    describe(first)
                ),
            ));
        } else {
            for &id in failing.iter().take(MAX_LISTED) {
                errors.push(syn::Error::new_spanned(w_expr, format!("order condition violated for {}", describe(id))));
            }
            if failing.len() > MAX_LISTED {
                errors.push(syn::Error::new_spanned(
                    w_expr,
                    format!(
                        "{} up to order {p} {} for `{label}`",
                        plural(failing.len() - MAX_LISTED, "more order condition", "more order conditions"),
                        if failing.len() - MAX_LISTED == 1 { "fails" } else { "fail" }
                    ),
                ));
            }
        }
    }
    let max_residual = res[..forest.count_up_to(p)].iter().map(|r| r.abs()).max().unwrap_or_else(BigRational::zero);
    let first_failure_above = forest
        .ids_of_order(p + 1)
        .filter(|_| forest.max_order() > p)
        .find(|&id| !passes(id))
        .map(|id| (forest.bracket(id).to_string(), p + 1, res[id].clone()));
    OrderReport { conditions: forest.count_up_to(p), max_residual, first_failure_above }
}

/// Order-condition residuals `wᵀΦ(t) − 1/γ(t)` of `b` and `b̂` for every tree up to
/// `max_order`.
struct Residuals {
    forest: Forest,
    b: Vec<BigRational>,
    b_hat: Option<Vec<BigRational>>,
}

/// Exact rationals without a tolerance, 512-bit fixed point with one (see [`Fixed`]).
fn order_residuals(
    max_order: usize,
    a: &[Vec<BigRational>],
    b: &[BigRational],
    b_hat: Option<&[BigRational]>,
    fixed: bool,
) -> Residuals {
    let forest = Forest::up_to(max_order);
    if fixed {
        let fx = |v: &[BigRational]| v.iter().map(Fixed::from_rational).collect::<Vec<_>>();
        let af: Vec<Vec<Fixed>> = a.iter().map(|r| fx(r)).collect();
        let phi = forest.elementary_weights(&af);
        let back = |r: Vec<Fixed>| r.iter().map(Fixed::to_rational).collect();
        let rb = back(forest.residuals(&phi, &fx(b)));
        let rh = b_hat.map(|h| back(forest.residuals(&phi, &fx(h))));
        Residuals { forest, b: rb, b_hat: rh }
    } else {
        let phi = forest.elementary_weights(a);
        let rb = forest.residuals(&phi, b);
        let rh = b_hat.map(|h| forest.residuals(&phi, h));
        Residuals { forest, b: rb, b_hat: rh }
    }
}

/// An embedded pair whose error weights `b − b̂` vanish would never reject a step.
fn check_nonzero_error(v: &Vector, b: &[BigRational], bhat: &[BigRational], label: &str, errors: &mut Errors) {
    if b == bhat {
        errors.push(syn::Error::new_spanned(
            &v.expr,
            format!("`{label}` equals `b`, so the error estimate `b - b_hat` would always be zero"),
        ));
    }
}

/// FSAL ("first same as last"): `c_s = 1`, `a_s = (b_1, …, b_{s−1})` and `b_s = 0`, so the
/// last stage is `f(t₁, y₁)`, the next step's first stage. Derived, never declared, and
/// exactly (even under `tolerance`): the integrator takes `y₁` from the last stage's input,
/// which is only correct if the emitted `f64` last row of `a` equals `b` bit for bit.
fn derive_fsal(c: &[BigRational], a: &[Vec<BigRational>], b: &[BigRational]) -> bool {
    let s = c.len();
    s >= 2 && c[s - 1].is_one() && b[s - 1].is_zero() && a[s - 1][..] == b[..s - 1]
}
