//! Procedural macros of scoreprior: `#[butcher_tableau]` declares an explicit Runge–Kutta
//! method from its Butcher tableau `(c, A, b, b̂)`, verified at compile time with exact
//! rational arithmetic; `#[forward_model]` declares a measurement operator checked at
//! compile time. Each macro lives in its own module, `runtime_crate` finds the path of
//! `scoreprior-core` the expansions name; this file only dispatches.
use proc_macro::TokenStream;

mod forward_model;
mod runtime_crate;
mod tableau;

/// Declares an explicit Runge–Kutta solver from its Butcher tableau, verified at compile
/// time.
///
/// Place it on a unit struct; coefficients are integers, decimals (`0.161`,
/// `-0.848e-2`) or fractions (`1/2`), in fact any `+ - * /` expression of such literals,
/// all read **exactly** as rationals (`0.1` is `1/10`, not the nearest `f64`).
///
/// ```text
/// #[butcher_tableau(
///     order = 3, embedded_order = 2,      // order of b, order of b̂
///     c = [0, 1/2, 3/4, 1],               // all s nodes, c_1 = 0
///     a = [[],                            // row i holds a_i1 .. a_i,i-1
///          [1/2],
///          [0, 3/4],
///          [2/9, 1/3, 4/9]],
///     b = [2/9, 1/3, 4/9, 0],
///     b_hat = [7/24, 1/4, 1/3, 1/8],      // or b_error = [..] (= b - b_hat); never both
///     // tolerance = 1e-14,               // optional: accept |residual| <= tolerance
///     // name = "Bosh3",                  // optional: defaults to the struct's name
/// )]
/// pub struct Bosh3;
/// ```
///
/// Keys: `order` (1..=8), `c`, `a`, `b` are required; `embedded_order` goes with exactly
/// one of `b_hat` / `b_error`; a tableau without them is a fixed-step method.
///
/// # Checks (all errors of one attribute are reported in one compile)
/// - shapes: `c`, `b`, `b_hat`/`b_error` have one entry per stage; `a` is strictly lower
///   triangular (row `i` has `i − 1` entries);
/// - row sums `c_i = Σ_j a_ij`;
/// - every order condition `bᵀΦ(t) = 1/γ(t)` for the rooted trees `t` with `|t| ≤ order`
///   (1, 2, 4, 8, 17, 37, 85, 200 conditions up to orders 1..8), and `b̂ᵀΦ(t) = 1/γ(t)`
///   up to `embedded_order`; a failure of exactly the claimed order's conditions is
///   reported as "claimed order too high", with the tree in bracket notation (`[•,[•]]`)
///   and the residual;
/// - exact equality everywhere, unless `tolerance = ε` is given (for published tableaux
///   whose coefficients are themselves rounded, such as Dopri8), then `|residual| ≤ ε`.
///
/// FSAL (`c_s = 1`, last row of `a` = `b`, `b_s = 0`) is derived, never declared.
///
/// # Expansion
/// - the struct, with generated documentation (orders, stages, FSAL, evaluations per step,
///   the tableau drawn in ASCII, what was verified) and
///   `#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]` — so do not derive these
///   yourself;
/// - `impl Name { pub const TABLEAU: ::scoreprior_core::ode::Tableau = … }`, every
///   coefficient the `f64` nearest to its exact value (`b_error` is computed exactly as
///   `b − b̂` before rounding);
/// - `impl ::scoreprior_core::ode::ExplicitRk for Name`, so `&Name` can be passed to
///   `scoreprior_core::ode::solve`.
///
/// The generated code names `scoreprior-core` by the path the using crate has to it, read
/// from its `Cargo.toml`: `::scoreprior_core` (or the name it was renamed to) for a direct
/// dependency, else `::scoreprior::core` (or `::renamed::core`) through the facade. So
/// `use scoreprior::prelude::*;` is enough; the macro is also re-exported as
/// `scoreprior_core::butcher_tableau`.
#[proc_macro_attribute]
pub fn butcher_tableau(args: TokenStream, input: TokenStream) -> TokenStream {
    tableau::butcher_tableau(args.into(), input.into()).into()
}

/// Declares a measurement model `y = A(x) + n` as a chain of primitives on a compile-time
/// image shape; the output shape is computed and every rule checked while compiling.
///
/// ```text
/// #[forward_model(
///     input = [1, 32, 32],                                   // [C, H, W] of one image
///     ops = [gaussian_blur(sigma = 1.5, size = 9),           // applied left to right
///            subsample(factor = 2)],
///     noise = gaussian(sigma = 0.05),                        // or complex_gaussian(sigma = ..)
/// )]
/// pub struct BlurDown;                                       // OUTPUT_SHAPE = [1, 16, 16]
/// ```
///
/// Primitives and parameters (defaults in parentheses): `identity`; `scale(factor)`;
/// `mask(keep, seed (0))`; `gaussian_blur(sigma, size, boundary (reflect))`;
/// `box_blur(size, boundary)`; `motion_blur(length, angle (0), boundary)`;
/// `subsample(factor)`; `avg_pool(factor)`; `crop(top (0), left (0), height, width)`;
/// `pad(top, bottom, left, right (all 0))`; `fft2` (real → split complex `[2C, H, W]`);
/// `ifft2`; `cartesian_mask(acceleration, center (4), seed (0))`;
/// `poisson_mask(acceleration, center (4), seed (0))`; `dft_lowpass(k)` (top-left `k×k`
/// of the unnormalised DFT); `gaussian_matrix(m, seed (0))`; `magnitude` (non-linear).
/// Boundaries: `zero`, `reflect`, `circular`.
///
/// # Checks (all errors of one attribute in one compile, each spanned on the culprit)
/// unknown key, primitive, parameter or noise; missing parameter, `input`, `ops` or
/// `noise`; wrong parameter kind (integer, positive, probability, boundary word); a factor
/// that does not divide the size; a kernel, crop window or DFT block larger than the
/// image; complex-only primitives on real data; a non-positive noise level; an
/// acceleration too high for the fully sampled centre.
///
/// # Expansion
/// The unit struct (with `#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]`, so do
/// not derive these yourself), constants `INPUT_SHAPE`, `OUTPUT_SHAPE`, `INPUT_DIM`,
/// `OUTPUT_DIM`, `LINEAR`, `CHAIN`, `NOISE`, a `model()` returning the run-time
/// `scoreprior_core::forward::Model` built once from the same primitives the CLI uses, and
/// `impl scoreprior_core::forward::ForwardModel` delegating to it (adjoint = primitive
/// adjoints in reverse; non-linear primitives contribute their VJPs). The run-time crate is
/// found as for `#[butcher_tableau]` (directly or through the `scoreprior` facade, renamed
/// or not). Re-exported as `scoreprior_core::forward::forward_model` and in
/// `scoreprior::prelude`.
#[proc_macro_attribute]
pub fn forward_model(args: TokenStream, input: TokenStream) -> TokenStream {
    forward_model::forward_model(args.into(), input.into()).into()
}
