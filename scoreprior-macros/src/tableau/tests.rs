//! Unit tests of the checker: tree counts and densities against OEIS A000081 and the
//! table of §9.2 of the solver notes, exact decimal parsing, and known tableaux passing
//! or failing.

use std::time::Instant;

use num_bigint::BigInt;
use num_rational::BigRational;
use quote::quote;

use super::parse::parse_args;
use super::rational::{eval, parse_decimal};
use super::trees::{Forest, TREE_COUNTS};
use super::validate::{validate, Verified};
use super::Errors;

fn q(n: i64, d: i64) -> BigRational {
    BigRational::new(BigInt::from(n), BigInt::from(d))
}

fn run(args: proc_macro2::TokenStream) -> (Option<Verified>, Vec<String>) {
    let mut errors = Errors::default();
    let spec = parse_args(args, &mut errors).unwrap();
    let ident: syn::Ident = syn::parse_quote!(Method);
    let v = validate(&spec, &ident, &mut errors);
    let msgs = errors.0.map(|e| e.into_iter().map(|e| e.to_string()).collect()).unwrap_or_default();
    (v, msgs)
}

#[test]
fn tree_counts_match_oeis_a000081() {
    let f = Forest::up_to(9);
    let counts: Vec<usize> = (1..=9).map(|n| f.ids_of_order(n).len()).collect();
    assert_eq!(counts, vec![1, 1, 2, 4, 9, 20, 48, 115, 286]);
    assert_eq!(&counts[..], &TREE_COUNTS[..9]);
    let cumulative: Vec<usize> = (1..=8).map(|n| f.count_up_to(n)).collect();
    assert_eq!(cumulative, vec![1, 2, 4, 8, 17, 37, 85, 200]);
}

#[test]
fn densities_and_brackets_up_to_order_four() {
    let f = Forest::up_to(4);
    let got: Vec<(String, u64)> = (0..f.len()).map(|id| (f.bracket(id).to_string(), f.tree(id).density)).collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want = vec![
        ("•".to_string(), 1),
        ("[•]".to_string(), 2),
        ("[•,•]".to_string(), 3),
        ("[[•]]".to_string(), 6),
        ("[•,•,•]".to_string(), 4),
        ("[•,[•]]".to_string(), 8),
        ("[[•,•]]".to_string(), 12),
        ("[[[•]]]".to_string(), 24),
    ];
    want.sort();
    assert_eq!(got_sorted, want);
    // Order 5: densities of the 9 trees (table of §9.2).
    let f5 = Forest::up_to(5);
    let mut d5: Vec<u64> = f5.ids_of_order(5).map(|id| f5.tree(id).density).collect();
    d5.sort();
    assert_eq!(d5, vec![5, 10, 15, 20, 20, 30, 40, 60, 120]);
    // Σ 1/γ over trees of order n times n!/… : the number of labelled monotone trees
    // identity Σ_{|t|=n} α(t) = (n−1)!, with α(t) = n!/(γ(t)σ(t)), is implied by the
    // exact Taylor expansion; here we check the simpler fact that the exact solution of
    // y' = y (every Φ = 1 for the "infinite-stage" identity) is not needed: see the
    // tableau tests below.
}

#[test]
fn decimals_parse_exactly() {
    assert_eq!(parse_decimal("0.1").unwrap(), q(1, 10));
    assert_eq!(parse_decimal("0.848e-2").unwrap(), q(848, 100_000));
    assert_eq!(parse_decimal("1e-14").unwrap(), q(1, 100_000_000_000_000));
    assert_eq!(parse_decimal("2.5E3").unwrap(), q(2500, 1));
    assert_eq!(parse_decimal("1_000").unwrap(), q(1000, 1));
    assert!(parse_decimal("1e").is_none());
    let e: syn::Expr = syn::parse_quote!(-0.848e-2);
    assert_eq!(eval(&e).unwrap(), q(-848, 100_000));
    let e: syn::Expr = syn::parse_quote!(-(3 / 4) + 1 / 4 * 2);
    assert_eq!(eval(&e).unwrap(), q(-1, 4));
    let e: syn::Expr = syn::parse_quote!(0.1 + 0.2);
    assert_eq!(eval(&e).unwrap(), q(3, 10), "exact, unlike f64 0.1 + 0.2");
    for bad in [quote!(x), quote!(1.0f32), quote!(1 / 0), quote!("1/2"), quote!(1 % 2)] {
        let e: syn::Expr = syn::parse2(bad).unwrap();
        assert!(eval(&e).is_err());
    }
}

#[test]
fn bosh3_passes_exactly_and_is_fsal() {
    let (v, errs) = run(quote!(
        order = 3,
        embedded_order = 2,
        c = [0, 1 / 2, 3 / 4, 1],
        a = [[], [1 / 2], [0, 3 / 4], [2 / 9, 1 / 3, 4 / 9]],
        b = [2 / 9, 1 / 3, 4 / 9, 0],
        b_hat = [7 / 24, 1 / 4, 1 / 3, 1 / 8],
    ));
    assert!(errs.is_empty(), "{errs:?}");
    let v = v.unwrap();
    assert!(v.fsal);
    assert_eq!(v.report_b.conditions, 4);
    assert_eq!(v.report_b.max_residual, q(0, 1));
    assert_eq!(v.report_b_hat.as_ref().unwrap().conditions, 2);
    // Sharp: some order-4 condition fails.
    assert_eq!(v.report_b.first_failure_above.as_ref().unwrap().1, 4);
    assert_eq!(v.b_error.unwrap(), vec![q(2, 9) - q(7, 24), q(1, 3) - q(1, 4), q(4, 9) - q(1, 3), q(-1, 8)]);
}

fn dopri5(b_hat: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    quote!(
        order = 5, embedded_order = 4,
        c = [0, 1/5, 3/10, 4/5, 8/9, 1, 1],
        a = [[], [1/5], [3/40, 9/40], [44/45, -56/15, 32/9],
             [19372/6561, -25360/2187, 64448/6561, -212/729],
             [9017/3168, -355/33, 46732/5247, 49/176, -5103/18656],
             [35/384, 0, 500/1113, 125/192, -2187/6784, 11/84]],
        b = [35/384, 0, 500/1113, 125/192, -2187/6784, 11/84, 0],
        b_hat = #b_hat,
    )
}

#[test]
fn dopri5_passes_exactly_with_both_published_embedded_weights() {
    for b_hat in [
        quote!([1951 / 21600, 0, 22642 / 50085, 451 / 720, -12231 / 42400, 649 / 6300, 1 / 60]),
        quote!([5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]),
    ] {
        let (v, errs) = run(dopri5(b_hat));
        assert!(errs.is_empty(), "{errs:?}");
        let v = v.unwrap();
        assert!(v.fsal);
        assert_eq!(v.report_b.conditions, 17);
        assert_eq!(v.report_b_hat.as_ref().unwrap().conditions, 8);
        assert_eq!(v.report_b.first_failure_above.as_ref().unwrap().1, 6);
    }
}

#[test]
fn dopri5_with_a_typo_fails_and_names_the_tree() {
    // One digit changed in a_43 (32/9 → 31/9): the row sum and order conditions break.
    let (v, errs) = run(quote!(
        order = 5,
        c = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1],
        a = [
            [],
            [1 / 5],
            [3 / 40, 9 / 40],
            [44 / 45, -56 / 15, 31 / 9],
            [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
            [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
            [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]
        ],
        b = [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
    ));
    assert!(v.is_none());
    assert!(
        errs.iter().any(|e| e.starts_with("row 4 of `a` sums to 31/45 but `c_4` is 4/5 (difference -1/9 ≈ -1.111e-1)")),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| e.starts_with("order condition violated for tree [[•]] (order 3)")), "{errs:?}");
}

#[test]
fn claimed_order_too_high_is_reported_once_on_the_order() {
    // Heun's b is order 2, claimed 3.
    let (_, errs) = run(quote!(order = 3, c = [0, 1], a = [[], [1]], b = [1 / 2, 1 / 2]));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("claimed order 3 is too high: `b` satisfies the order conditions up to order 2 only; fails for tree [[•]] (order 3): `b`·Φ(t) = 0 but 1/γ(t) = 1/6 (residual -1/6"),
        "{errs:?}"
    );
    assert!(errs[0].ends_with("1 more order-3 condition fails"), "{errs:?}");
}

#[test]
fn tolerance_admits_dopri8_and_exactness_rejects_it() {
    let dopri8 = |tol: proc_macro2::TokenStream| {
        quote!(
            order = 8, embedded_order = 7, #tol
            c = [0, 1/18, 1/12, 1/8, 5/16, 3/8, 59/400, 93/200, 5490023248/9719169821, 13/20,
                 1201146811/1299019798, 1, 1, 1],
            a = [[], [1/18], [1/48, 1/16], [1/32, 0, 3/32], [5/16, 0, -75/64, 75/64],
                 [3/80, 0, 0, 3/16, 3/20],
                 [29443841/614563906, 0, 0, 77736538/692538347, -28693883/1125000000, 23124283/1800000000],
                 [16016141/946692911, 0, 0, 61564180/158732637, 22789713/633445777, 545815736/2771057229, -180193667/1043307555],
                 [39632708/573591083, 0, 0, -433636366/683701615, -421739975/2616292301, 100302831/723423059, 790204164/839813087, 800635310/3783071287],
                 [246121993/1340847787, 0, 0, -37695042795/15268766246, -309121744/1061227803, -12992083/490766935, 6005943493/2108947869, 393006217/1396673457, 123872331/1001029789],
                 [-1028468189/846180014, 0, 0, 8478235783/508512852, 1311729495/1432422823, -10304129995/1701304382, -48777925059/3047939560, 15336726248/1032824649, -45442868181/3398467696, 3065993473/597172653],
                 [185892177/718116043, 0, 0, -3185094517/667107341, -477755414/1098053517, -703635378/230739211, 5731566787/1027545527, 5232866602/850066563, -4093664535/808688257, 3962137247/1805957418, 65686358/487910083],
                 [403863854/491063109, 0, 0, -5068492393/434740067, -411421997/543043805, 652783627/914296604, 11173962825/925320556, -13158990841/6184727034, 3936647629/1978049680, -160528059/685178525, 248638103/1413531060, 0],
                 [14005451/335480064, 0, 0, 0, 0, -59238493/1068277825, 181606767/758867731, 561292985/797845732, -1041891430/1371343529, 760417239/1151165299, 118820643/751138087, -528747749/2220607170, 1/4]],
            b = [14005451/335480064, 0, 0, 0, 0, -59238493/1068277825, 181606767/758867731, 561292985/797845732, -1041891430/1371343529, 760417239/1151165299, 118820643/751138087, -528747749/2220607170, 1/4, 0],
            b_hat = [13451932/455176623, 0, 0, 0, 0, -808719846/976000145, 1757004468/5645159321, 656045339/265891186, -3867574721/1518517206, 465885868/322736535, 53011238/667516719, 2/45, 0, 0],
        )
    };
    let t0 = Instant::now();
    let (v, errs) = run(dopri8(quote!(tolerance = 1e-14,)));
    eprintln!("dopri8 validation: {:?}", t0.elapsed());
    assert!(errs.is_empty(), "{errs:?}");
    let v = v.unwrap();
    assert!(v.fsal);
    assert_eq!(v.report_b.conditions, 200);
    assert_eq!(v.report_b_hat.as_ref().unwrap().conditions, 85);
    assert!(v.report_b.max_residual < q(1, 10i64.pow(16)));
    assert_eq!(v.report_b.first_failure_above.as_ref().unwrap().1, 9);
    let (v, errs) = run(dopri8(quote!()));
    assert!(v.is_none());
    assert!(errs.iter().any(|e| e.contains("row 12 of `a` sums to")), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.starts_with("row 14 of `a` sums to 1 but `c_14` is 1 (difference -3.685e-18)")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .filter(|e| !e.ends_with("fail for `b`") && !e.ends_with("fail for `b_hat`"))
            .all(|e| e.ends_with("if the published coefficients are rounded, declare `tolerance = ...`")),
        "{errs:?}"
    );
}

#[test]
fn expansion_carries_docs_derives_and_absolute_paths() {
    let out = super::butcher_tableau(
        dopri5(quote!([1951 / 21600, 0, 22642 / 50085, 451 / 720, -12231 / 42400, 649 / 6300, 1 / 60])),
        quote!(
            /// User docs.
            pub struct Dopri5;
        ),
    );
    let file: syn::File = syn::parse2(out.clone()).expect("expansion parses as items");
    let text = out.to_string();
    assert!(text.contains(":: scoreprior_core :: ode :: Tableau"), "{text}");
    assert!(text.contains(":: scoreprior_core :: ode :: ExplicitRk for Dopri5"), "{text}");
    let syn::Item::Struct(s) = &file.items[0] else { panic!("struct first") };
    let docs: Vec<String> = s
        .attrs
        .iter()
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let doc = docs.join("\n");
    println!("{doc}");
    assert!(doc.starts_with(" User docs.\n"), "user docs first");
    for want in [
        "5th order explicit Runge–Kutta method `Dopri5`. Has an embedded 4th order method for adaptive step sizing. \
         Uses 7 stages with FSAL (first same as last), so 6 right-hand-side evaluations per step.",
        "- FSAL: yes",
        "all 17 order conditions of `b` up to order 5 hold exactly; order 5 is sharp",
        "all 8 order conditions of `b̂` up to order 4 hold exactly",
        "\n    0 |\n",
        "\n  1/5 |        1/5\n",
        "\n 3/10 |       3/40         9/40\n",
        "\n      | 1951/21600            0  22642/50085   451/720  -12231/42400  649/6300  1/60   b̂  (order 4)\n",
    ] {
        assert!(doc.contains(want), "missing {want:?} in\n{doc}");
    }
    assert!(s.attrs.iter().any(|a| a.path().is_ident("derive")));
}

#[test]
fn invalid_input_reports_every_error_at_once() {
    let (_, errs) =
        run(quote!(order = 2, c = [0, 1 / 2, 1], a = [[], [1 / 3], [0, 1, 2]], b = [1 / 2, 1 / 2, x], bogus = 1,));
    // row 3 too long, `x` unreadable, unknown key, and row 2's sum (checkable on its own).
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("row 2 of `a` sums to 1/3 but `c_2` is 1/2")), "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("row 3 of `a` has 3 entries but must have 2")), "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("cannot read `x` as an exact number")), "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("unknown key `bogus`")), "{errs:?}");
    // b satisfies order 2 with the row sums of `a` (1/3), so only the row sum is wrong.
    let (_, errs) = run(quote!(order = 2, c = [0, 1 / 2], a = [[], [1 / 3]], b = [-1 / 2, 3 / 2]));
    assert_eq!(errs, vec!["row 2 of `a` sums to 1/3 but `c_2` is 1/2 (difference -1/6 ≈ -1.667e-1); each node must equal its row sum (c_i = sum_j a_ij)"]);
}

#[test]
fn settings_out_of_range_are_rejected() {
    let (_, errs) = run(quote!(order = 9, c = [0], a = [[]], b = [1]));
    assert_eq!(errs, vec!["`order` must be between 1 and 8, found 9"]);
    let (_, errs) = run(quote!(order = 1, tolerance = 0, c = [0], a = [[]], b = [1]));
    assert_eq!(errs, vec!["`tolerance` must lie in [1e-100, 1); omit it to require exact equality"]);
    let (_, errs) =
        run(quote!(order = 2, embedded_order = 1, c = [0, 1], a = [[], [1]], b = [1 / 2, 1 / 2], b_error = [0, 0]));
    assert_eq!(errs, vec!["`b - b_error` equals `b`, so the error estimate `b - b_hat` would always be zero"]);
    // A residual just inside the tolerance passes, just outside fails.
    let (v, errs) = run(quote!(order = 1, tolerance = 1e-10, c = [0, 0], a = [[], [0]], b = [0.5, 0.50000000009]));
    assert!(errs.is_empty() && v.is_some(), "{errs:?}");
    let (_, errs) = run(quote!(order = 1, tolerance = 1e-10, c = [0, 0], a = [[], [0]], b = [0.5, 0.50000000011]));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("order condition violated for tree • (order 1): `b`·Φ(t) = 1.00000000011 but 1/γ(t) = 1/1 (residual 1.100e-10)"), "{errs:?}");
}
