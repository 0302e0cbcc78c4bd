//! The shipped explicit Runge–Kutta solvers, each declared by its Butcher tableau with
//! `#[butcher_tableau]`, which verifies every order condition `bᵀΦ(t) = 1/γ(t)` (and the
//! embedded `b̂ᵀΦ(t) = 1/γ(t)`) at compile time, in exact rational arithmetic.
//!
//! | solver | order (embedded) | stages | FSAL | evaluations/step |
//! |---|---|---|---|---|
//! | [`Euler`] | 1 (fixed step) | 1 | no | 1 |
//! | [`Heun`] | 2 (1) | 2 | no | 2 |
//! | [`Rk4`] | 4 (fixed step) | 4 | no | 4 |
//! | [`Bosh3`] | 3 (2) | 4 | yes | 3 |
//! | [`Tsit5`] | 5 (4) | 7 | yes | 6 |
//! | [`Dopri5`] | 5 (4) | 7 | yes | 6 |
//! | [`Dopri8`] | 8 (7) | 14 | yes | 13 |
//!
//! Coefficients are the ones diffrax uses (`diffrax/_solver/*.py`), so step statistics are
//! comparable with the reference implementation.
//!
//! # Declaring your own solver
//! Any crate depending on `scoreprior-core` can declare a method the same way and pass it
//! to the same integrator; here Ralston's third-order method, which has no embedded pair
//! and so runs with a constant step:
//! ```
//! use scoreprior_core::butcher_tableau;
//! use scoreprior_core::ode::{solve, ConstantStepSize, ExplicitRk, SolveOptions};
//!
//! #[butcher_tableau(
//!     order = 3,
//!     c = [0, 1/2, 3/4],
//!     a = [[],
//!          [1/2],
//!          [0, 3/4]],
//!     b = [2/9, 1/3, 4/9],
//! )]
//! pub struct Ralston3;
//!
//! assert_eq!(Ralston3.tableau().order, 3);
//! assert!(!Ralston3::TABLEAU.fsal);
//! // y' = y, y(0) = 1 on [0, 1]: third order, so h = 1/100 gives ~1e-7 accuracy.
//! let mut f = |_t: f64, y: &Vec<f64>, dy: &mut Vec<f64>| dy[0] = y[0];
//! let sol = solve(&mut f, &Ralston3, &mut ConstantStepSize::new(0.01), 0.0, 1.0,
//!                 &vec![1.0], &SolveOptions::default()).unwrap();
//! assert!((sol.y[0] - 1f64.exp()).abs() < 1e-6);
//! ```

use super::tableau::ExplicitRk;
use crate::butcher_tableau;
use crate::{Error, Result};

/// The forward Euler method `y₁ = y₀ + h f(t₀, y₀)`.
///
/// Reference: L. Euler, *Institutionum calculi integralis* (1768).
#[butcher_tableau(name = "Euler", order = 1, c = [0], a = [[]], b = [1])]
pub struct Euler;

/// Heun's method (the explicit trapezoidal rule) with the embedded Euler step as in
/// diffrax (`b_error = [1/2, −1/2]`, i.e. `b̂ = [0, 1]`; the other common choice
/// `b̂ = [1, 0]` gives the same error norm, `|b − b̂| = |k₁ − k₂|/2`).
///
/// Not FSAL: its last stage is evaluated at the Euler predictor, not at `y₁`.
#[butcher_tableau(
    name = "Heun",
    order = 2,
    embedded_order = 1,
    c = [0, 1],
    a = [[],
         [1]],
    b = [1/2, 1/2],
    b_error = [1/2, -1/2],
)]
pub struct Heun;

/// The classical fourth-order Runge–Kutta method (Kutta 1901).
#[butcher_tableau(
    name = "RK4",
    order = 4,
    c = [0, 1/2, 1/2, 1],
    a = [[],
         [1/2],
         [0, 1/2],
         [0, 0, 1]],
    b = [1/6, 1/3, 1/3, 1/6],
)]
pub struct Rk4;

/// Bogacki–Shampine's 3(2) method (MATLAB's `ode23`, scipy's `RK23`).
///
/// Reference: P. Bogacki and L. F. Shampine, "A 3(2) pair of Runge–Kutta formulas",
/// *Appl. Math. Lett.* 2 (1989) 321–325.
#[butcher_tableau(
    name = "Bosh3",
    order = 3,
    embedded_order = 2,
    c = [0, 1/2, 3/4, 1],
    a = [[],
         [1/2],
         [0, 3/4],
         [2/9, 1/3, 4/9]],
    b = [2/9, 1/3, 4/9, 0],
    b_hat = [7/24, 1/4, 1/3, 1/8],
)]
pub struct Bosh3;

/// Tsitouras' 5(4) method.
///
/// Reference: Ch. Tsitouras, "Runge–Kutta pairs of order 5(4) satisfying only the first
/// column simplifying assumption", *Comput. Math. Appl.* 62 (2011) 770–775. The
/// coefficients are the 86-digit decimals of diffrax (and OrdinaryDiffEq.jl); they are
/// not exactly rational solutions of the order conditions (residuals ~1e-83), hence the
/// tolerance, which is still far below anything an `f64` can see.
#[butcher_tableau(
    name = "Tsit5",
    order = 5,
    embedded_order = 4,
    tolerance = 1e-80,
    c = [0, 161/1000, 327/1000, 9/10,
         0.9800255409045096857298102862870245954942137979563024768854764293221195950761080302604,
         1, 1],
    a = [[],
         [161/1000],
         [-0.8480655492356988544426874250230774675121177393430391537369234245294192976164141156943e-2,
          0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569],
         [2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289,
          -6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366,
          4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077],
         [5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791,
          -11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589,
          7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753,
          -0.9249506636175524925650207933207191611349983406029535244034750452930469056411389539635e-1],
         [5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748,
          -12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452,
          8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986,
          -0.7158497328140099722453054252582973869127213147363544882721139659546372402303777878835e-1,
          -0.2826905039406838290900305721271224146717633626879770007617876201276764571291579142206e-1],
         [0.9646076681806522951816731316512876333711995238157997181903319145764851595234062815396e-1,
          1/100,
          0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509,
          1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331,
          -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677,
          2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841]],
    b = [0.9646076681806522951816731316512876333711995238157997181903319145764851595234062815396e-1,
         1/100,
         0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509,
         1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331,
         -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677,
         2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841,
         0],
    b_hat = [0.9468075576583945807478876255758922856117527357724631226139574065785592789071067303271e-1,
             0.9183565540343253096776363936645313759813746240984095238905939532922955247253608687270e-2,
             0.4877705284247615707855642599631228241516691959761363774365216240304071651579571959813,
             1.234297566930478985655109673884237654035539930748192848315425833500484878378061439761,
             -2.707712349983525454881109975059321670689605166938197378763992255714444407154902012702,
             1.866628418170587035753719399566211498666255505244122593996591602841258328965767580089,
             1/66],
)]
pub struct Tsit5;

/// Dormand–Prince's 5(4) method, with Shampine's embedded weights.
///
/// References: J. R. Dormand and P. J. Prince, "A family of embedded Runge–Kutta
/// formulae", *J. Comput. Appl. Math.* 6 (1980) 19–26. Two `b̂` circulate, both of order
/// 4 exactly: the original `[5179/57600, 0, 7571/16695, 393/640, −92097/339200, 187/2100,
/// 1/40]` (scipy, Hairer) and Shampine's below (L. F. Shampine, "Some practical
/// Runge–Kutta formulas", *Math. Comp.* 46 (1986) 135–150), which diffrax and torchdiffeq
/// use; we follow diffrax so that step counts are comparable.
#[butcher_tableau(
    name = "Dopri5",
    order = 5,
    embedded_order = 4,
    c = [0, 1/5, 3/10, 4/5, 8/9, 1, 1],
    a = [[],
         [1/5],
         [3/40, 9/40],
         [44/45, -56/15, 32/9],
         [19372/6561, -25360/2187, 64448/6561, -212/729],
         [9017/3168, -355/33, 46732/5247, 49/176, -5103/18656],
         [35/384, 0, 500/1113, 125/192, -2187/6784, 11/84]],
    b = [35/384, 0, 500/1113, 125/192, -2187/6784, 11/84, 0],
    b_hat = [1951/21600, 0, 22642/50085, 451/720, -12231/42400, 649/6300, 1/60],
)]
pub struct Dopri5;

/// Prince–Dormand's 8(7) method RK8(7)13M, the method diffrax calls `Dopri8` (not
/// Hairer's DOP853).
///
/// Reference: P. J. Prince and J. R. Dormand, "High order embedded Runge–Kutta formulae",
/// *J. Comput. Appl. Math.* 7 (1981) 67–75.
///
/// The published method has 13 stages with `b₁₃ = 1/4 ≠ 0`, so it is not FSAL as
/// printed. As in diffrax we append a 14th stage `c₁₄ = 1`, `a₁₄ = b`, `b₁₄ = b̂₁₄ = 0`:
/// it evaluates `f(t₁, y₁)`, which becomes the next step's first stage. The solution and
/// error estimate are unchanged and a step still costs 13 evaluations, so the tableau is
/// FSAL (derived by the macro). The published coefficients are rational approximations of
/// the real solution of the order conditions (residuals ~1e-17), hence
/// `tolerance = 1e-14`.
#[butcher_tableau(
    name = "Dopri8",
    order = 8,
    embedded_order = 7,
    tolerance = 1e-14,
    c = [0, 1/18, 1/12, 1/8, 5/16, 3/8, 59/400, 93/200, 5490023248/9719169821, 13/20,
         1201146811/1299019798, 1, 1, 1],
    a = [[],
         [1/18],
         [1/48, 1/16],
         [1/32, 0, 3/32],
         [5/16, 0, -75/64, 75/64],
         [3/80, 0, 0, 3/16, 3/20],
         [29443841/614563906, 0, 0, 77736538/692538347, -28693883/1125000000,
          23124283/1800000000],
         [16016141/946692911, 0, 0, 61564180/158732637, 22789713/633445777,
          545815736/2771057229, -180193667/1043307555],
         [39632708/573591083, 0, 0, -433636366/683701615, -421739975/2616292301,
          100302831/723423059, 790204164/839813087, 800635310/3783071287],
         [246121993/1340847787, 0, 0, -37695042795/15268766246, -309121744/1061227803,
          -12992083/490766935, 6005943493/2108947869, 393006217/1396673457,
          123872331/1001029789],
         [-1028468189/846180014, 0, 0, 8478235783/508512852, 1311729495/1432422823,
          -10304129995/1701304382, -48777925059/3047939560, 15336726248/1032824649,
          -45442868181/3398467696, 3065993473/597172653],
         [185892177/718116043, 0, 0, -3185094517/667107341, -477755414/1098053517,
          -703635378/230739211, 5731566787/1027545527, 5232866602/850066563,
          -4093664535/808688257, 3962137247/1805957418, 65686358/487910083],
         [403863854/491063109, 0, 0, -5068492393/434740067, -411421997/543043805,
          652783627/914296604, 11173962825/925320556, -13158990841/6184727034,
          3936647629/1978049680, -160528059/685178525, 248638103/1413531060, 0],
         [14005451/335480064, 0, 0, 0, 0, -59238493/1068277825, 181606767/758867731,
          561292985/797845732, -1041891430/1371343529, 760417239/1151165299,
          118820643/751138087, -528747749/2220607170, 1/4]],
    b = [14005451/335480064, 0, 0, 0, 0, -59238493/1068277825, 181606767/758867731,
         561292985/797845732, -1041891430/1371343529, 760417239/1151165299,
         118820643/751138087, -528747749/2220607170, 1/4, 0],
    b_hat = [13451932/455176623, 0, 0, 0, 0, -808719846/976000145, 1757004468/5645159321,
             656045339/265891186, -3867574721/1518517206, 465885868/322736535,
             53011238/667516719, 2/45, 0, 0],
)]
pub struct Dopri8;

/// Every shipped solver, in the order of [`SOLVER_NAMES`] (for tests and benches).
pub const ALL_SOLVERS: [&dyn ExplicitRk; 7] = [&Euler, &Heun, &Rk4, &Bosh3, &Tsit5, &Dopri5, &Dopri8];

/// The names [`solver_by_name`] accepts, in the order of [`ALL_SOLVERS`].
pub const SOLVER_NAMES: [&str; 7] = ["euler", "heun", "rk4", "bosh3", "tsit5", "dopri5", "dopri8"];

/// Looks a shipped solver up by name (`euler`, `heun`, `rk4`, `bosh3`, `tsit5`, `dopri5`,
/// `dopri8`; ASCII case is ignored), for command lines and configuration files.
///
/// ```
/// use scoreprior_core::ode::solver_by_name;
/// assert_eq!(solver_by_name("Dopri5").unwrap().tableau().stages(), 7);
/// assert!(solver_by_name("dopri7").is_err());
/// ```
///
/// # Errors
/// [`Error::UnknownName`] (`what` = `"solver"`) naming the accepted solvers when `name`
/// is none of them.
pub fn solver_by_name(name: &str) -> Result<&'static dyn ExplicitRk> {
    name.parse::<SolverKind>().map(SolverKind::solver)
}

/// A shipped solver by name: the typed form of [`solver_by_name`]'s argument, for run
/// descriptions that are written to and read from files (it serialises as its name).
///
/// ```
/// use scoreprior_core::ode::SolverKind;
/// let s: SolverKind = "Tsit5".parse().unwrap();
/// assert_eq!((s, s.to_string(), s.solver().tableau().stages()), (SolverKind::Tsit5, "tsit5".into(), 7));
/// assert!("rk45".parse::<SolverKind>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SolverKind {
    Euler,
    Heun,
    Rk4,
    Bosh3,
    Tsit5,
    #[default]
    Dopri5,
    Dopri8,
}

impl SolverKind {
    /// Every kind, in the order of [`SOLVER_NAMES`] and [`ALL_SOLVERS`].
    pub const ALL: [SolverKind; 7] = [
        SolverKind::Euler,
        SolverKind::Heun,
        SolverKind::Rk4,
        SolverKind::Bosh3,
        SolverKind::Tsit5,
        SolverKind::Dopri5,
        SolverKind::Dopri8,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|&k| k == self).unwrap_or(0)
    }

    /// The solver itself.
    pub fn solver(self) -> &'static dyn ExplicitRk {
        ALL_SOLVERS[self.index()]
    }

    /// Its name, as [`solver_by_name`] accepts it.
    pub fn name(self) -> &'static str {
        SOLVER_NAMES[self.index()]
    }
}

impl std::fmt::Display for SolverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SolverKind {
    type Err = Error;
    /// As [`solver_by_name`]: ASCII case is ignored.
    fn from_str(name: &str) -> Result<Self> {
        SOLVER_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name.trim()))
            .map(|i| Self::ALL[i])
            .ok_or_else(|| Error::unknown("solver", name, format!("one of {}", SOLVER_NAMES.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    //! Run-time re-check of what the macro emitted: the `f64` constants of every shipped
    //! tableau satisfy the order conditions (computed here in `f64` by the same tree code the
    //! macro ran in exact arithmetic) to ~1e-13, the orders are sharp, and the derived FSAL
    //! flags are the known ones. This catches code-generation bugs (a transposed index, a
    //! wrong rounding) that the compile-time check, which never sees the emitted floats,
    //! cannot.
    use super::*;
    use crate::ode::trees::Forest;
    use crate::ode::Tableau;

    /// Largest |residual| of the weights `w` over the trees of order `n`.
    fn worst(forest: &Forest, phi: &[Vec<f64>], w: &[f64], n: usize) -> f64 {
        let r = forest.residuals(phi, w);
        forest.ids_of_order(n).map(|id| r[id].abs()).fold(0.0, f64::max)
    }

    fn check(tab: &Tableau) -> (usize, Option<usize>) {
        let s = tab.stages();
        assert_eq!(tab.a.len(), s, "{}", tab.name);
        assert_eq!(tab.b.len(), s, "{}", tab.name);
        for (i, row) in tab.a.iter().enumerate() {
            assert_eq!(row.len(), i, "{}: row {i}", tab.name);
            let sum: f64 = row.iter().sum();
            assert!((sum - tab.c[i]).abs() <= 1e-15, "{}: row {i} sums to {sum}, c = {}", tab.name, tab.c[i]);
        }
        let p = tab.order as usize;
        let forest = Forest::up_to(p.max(tab.embedded_order.unwrap_or(0) as usize) + 1);
        let phi = forest.elementary_weights(tab.a);
        for n in 1..=p {
            let w = worst(&forest, &phi, tab.b, n);
            assert!(w <= 1e-13, "{}: order-{n} residual {w:e} of b", tab.name);
        }
        // Sharp: some order-(p+1) condition fails by far more than rounding.
        let above = worst(&forest, &phi, tab.b, p + 1);
        assert!(above > 1e-6, "{}: order-{} conditions hold too ({above:e}), claimed order not sharp", tab.name, p + 1);
        let embedded = tab.embedded_order.map(|q| {
            let q = q as usize;
            let e = tab.b_error.unwrap();
            assert_eq!(e.len(), s);
            let b_hat: Vec<f64> = tab.b.iter().zip(e).map(|(b, e)| b - e).collect();
            for n in 1..=q {
                let w = worst(&forest, &phi, &b_hat, n);
                assert!(w <= 1e-13, "{}: order-{n} residual {w:e} of b_hat", tab.name);
            }
            let above = worst(&forest, &phi, &b_hat, q + 1);
            assert!(above > 1e-6, "{}: embedded order {q} not sharp ({above:e})", tab.name);
            q
        });
        (p, embedded)
    }

    #[test]
    fn every_shipped_tableau_satisfies_its_order_conditions_in_f64() {
        let got: Vec<(&str, usize, Option<usize>, usize, bool, usize)> = ALL_SOLVERS
            .iter()
            .map(|s| {
                let t = s.tableau();
                let (p, q) = check(t);
                (t.name, p, q, t.stages(), t.fsal, t.evaluations_per_step())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("Euler", 1, None, 1, false, 1),
                ("Heun", 2, Some(1), 2, false, 2),
                ("RK4", 4, None, 4, false, 4),
                ("Bosh3", 3, Some(2), 4, true, 3),
                ("Tsit5", 5, Some(4), 7, true, 6),
                ("Dopri5", 5, Some(4), 7, true, 6),
                ("Dopri8", 8, Some(7), 14, true, 13),
            ]
        );
    }

    #[test]
    fn fsal_tableaux_have_last_row_equal_to_b_bit_for_bit() {
        for s in ALL_SOLVERS {
            let t = s.tableau();
            if t.fsal {
                let n = t.stages();
                assert_eq!(t.a[n - 1], &t.b[..n - 1], "{}", t.name);
                assert_eq!((t.c[n - 1], t.b[n - 1]), (1.0, 0.0), "{}", t.name);
            }
        }
    }

    #[test]
    fn coefficients_are_rounded_once_from_the_exact_values() {
        // Bosh3's b_error_1 = 2/9 − 7/24 = −5/72 exactly, then rounded: not the f64
        // difference of two rounded numbers (which differs in the last bit here).
        let e = Bosh3::TABLEAU.b_error.unwrap();
        assert_eq!(e[0], -5.0 / 72.0);
        assert_ne!(e[0], 2.0 / 9.0 - 7.0 / 24.0);
        assert_eq!(e[3], -0.125);
        // Decimal literals are read exactly: Tsit5's c_2 = 161/1000.
        assert_eq!(Tsit5::TABLEAU.c[1], 0.161);
        assert_eq!(Dopri5::TABLEAU.a[3], &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0]);
        // The trait returns the same data as the inherent constant, from one static.
        assert_eq!(*Dopri8.tableau(), Dopri8::TABLEAU);
        assert!(std::ptr::eq(Dopri8.tableau(), Dopri8.tableau()));
        assert_eq!(Dopri8::TABLEAU.tolerance, 1e-14);
        assert_eq!(Dopri5::TABLEAU.tolerance, 0.0);
    }

    #[test]
    fn solver_by_name_finds_every_solver_and_lists_them_otherwise() {
        for (name, s) in SOLVER_NAMES.iter().zip(ALL_SOLVERS) {
            let found = solver_by_name(name).unwrap();
            assert_eq!(found.tableau(), s.tableau());
            assert!(found.tableau().name.eq_ignore_ascii_case(name));
        }
        assert_eq!(solver_by_name("TSIT5").unwrap().tableau().name, "Tsit5");
        let Err(err) = solver_by_name("rk45") else { panic!("rk45 is not shipped") };
        let err = err.to_string();
        assert!(err.contains("unknown solver `rk45`"), "{err}");
        assert!(err.contains("euler, heun, rk4, bosh3, tsit5, dopri5, dopri8"), "{err}");
    }
}
