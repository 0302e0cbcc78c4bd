//! Exact numbers for the tableau checker: literals become `BigRational`s (`0.1` is
//! exactly `1/10`, `-0.848e-2` is `-848/100000`), so the order conditions can be checked
//! with no rounding at all. Coefficients are arithmetic expressions over literals with
//! `+ − × /`, unary minus and parentheses (`1/2`, `-(3/4)`, `35/384 - 1951/21600`).

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};
use syn::spanned::Spanned;
use syn::{BinOp, Expr, Lit, UnOp};

use super::trees::{weight_arithmetic, Weight};

/// Exact rationals are the compile-time [`Weight`].
impl Weight for BigRational {
    fn zero() -> Self {
        Zero::zero()
    }
    fn ratio(num: u64, den: u64) -> Self {
        BigRational::new(BigInt::from(num), BigInt::from(den))
    }
    weight_arithmetic!();
    fn is_zero(&self) -> bool {
        Zero::is_zero(self)
    }
}

const EXPECTED: &str = "expected an integer, a decimal or a fraction `p/q` (optionally signed)";

/// Evaluates a coefficient expression exactly.
pub fn eval(expr: &Expr) -> syn::Result<BigRational> {
    match expr {
        Expr::Lit(lit) => lit_value(&lit.lit),
        Expr::Paren(p) => eval(&p.expr),
        Expr::Group(g) => eval(&g.expr),
        Expr::Unary(u) => match u.op {
            UnOp::Neg(_) => Ok(-eval(&u.expr)?),
            _ => Err(syn::Error::new_spanned(expr, format!("unsupported operator in coefficient; {EXPECTED}"))),
        },
        Expr::Binary(bin) => {
            // Evaluate both sides so that both report their errors.
            let (l, r) = (eval(&bin.left), eval(&bin.right));
            let (l, r) = match (l, r) {
                (Ok(l), Ok(r)) => (l, r),
                (Err(mut e), Err(e2)) => {
                    e.combine(e2);
                    return Err(e);
                }
                (Err(e), _) | (_, Err(e)) => return Err(e),
            };
            match bin.op {
                BinOp::Add(_) => Ok(l + r),
                BinOp::Sub(_) => Ok(l - r),
                BinOp::Mul(_) => Ok(l * r),
                BinOp::Div(_) => {
                    if Zero::is_zero(&r) {
                        Err(syn::Error::new_spanned(&bin.right, "division by zero in coefficient"))
                    } else {
                        Ok(l / r)
                    }
                }
                _ => Err(syn::Error::new(bin.op.span(), format!("unsupported operator in coefficient; {EXPECTED}"))),
            }
        }
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("cannot read `{}` as an exact number; {EXPECTED}", compact(expr)),
        )),
    }
}

/// The source text of an expression with spacing removed, for messages.
pub fn compact(expr: &Expr) -> String {
    quote::ToTokens::to_token_stream(expr).to_string().replace(' ', "")
}

fn lit_value(lit: &Lit) -> syn::Result<BigRational> {
    match lit {
        Lit::Int(i) => {
            if !i.suffix().is_empty() {
                return Err(syn::Error::new_spanned(lit, format!("unexpected suffix `{}` on coefficient", i.suffix())));
            }
            parse_decimal(i.base10_digits()).ok_or_else(|| syn::Error::new_spanned(lit, "cannot read integer"))
        }
        Lit::Float(f) => {
            if !f.suffix().is_empty() {
                return Err(syn::Error::new_spanned(
                    lit,
                    format!("unexpected suffix `{}` on coefficient; coefficients are exact numbers", f.suffix()),
                ));
            }
            parse_decimal(f.base10_digits()).ok_or_else(|| {
                syn::Error::new_spanned(lit, format!("cannot read `{}` as a decimal", f.base10_digits()))
            })
        }
        _ => Err(syn::Error::new_spanned(
            lit,
            format!("cannot read `{}` as an exact number; {EXPECTED}", quote::ToTokens::to_token_stream(lit)),
        )),
    }
}

/// Parses `digits[.digits][e[+-]digits]` exactly (underscores allowed).
pub fn parse_decimal(text: &str) -> Option<BigRational> {
    let text: String = text.chars().filter(|&c| c != '_').collect();
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(k) => (&text[..k], text[k + 1..].parse::<i64>().ok()?),
        None => (&text[..], 0),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(k) => (&mantissa[..k], &mantissa[k + 1..]),
        None => (mantissa, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits: BigInt = format!("{int}{frac}").parse().ok()?;
    let scale = exp - frac.len() as i64;
    // Guard against absurd exponents that would allocate huge integers.
    if scale.abs() > 10_000 {
        return None;
    }
    let ten = BigInt::from(10u8);
    let pow = num_traits::pow(ten, scale.unsigned_abs() as usize);
    Some(if scale >= 0 { BigRational::from_integer(digits * pow) } else { BigRational::new(digits, pow) })
}

/// The nearest `f64` (round-to-nearest-even, as `num-rational` implements it).
pub fn to_f64(x: &BigRational) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

fn exact_text(x: &BigRational) -> String {
    if x.denom().is_one() {
        x.numer().to_string()
    } else {
        format!("{}/{}", x.numer(), x.denom())
    }
}

/// A value for messages: `p/q` when short, else the nearest `f64` (shortest round-trip form).
pub fn show(x: &BigRational) -> String {
    let exact = exact_text(x);
    if exact.len() <= 24 {
        return exact;
    }
    let f = to_f64(x);
    if f != 0.0 && (f.abs() < 1e-4 || f.abs() >= 1e6) {
        format!("{f:e}")
    } else {
        format!("{f}")
    }
}

/// A residual for messages: `p/q ≈ 1.234e-5` when short, else `1.234e-5`.
pub fn show_residual(x: &BigRational) -> String {
    let exact = exact_text(x);
    if exact.len() > 24 {
        format!("{:.3e}", to_f64(x))
    } else if x.denom().is_one() {
        exact
    } else {
        format!("{exact} ≈ {:.3e}", to_f64(x))
    }
}

/// `|x| ≤ tol`.
pub fn within(x: &BigRational, tol: &BigRational) -> bool {
    x.abs() <= *tol
}

/// Number of fractional bits of [`Fixed`].
pub const FIXED_BITS: usize = 512;

/// Fixed-point numbers `v / 2^512` with a big-integer `v`: the arithmetic of the
/// order-condition check when a `tolerance` is declared.
///
/// Exact rationals are the right tool when the residuals must be exactly zero, but a
/// tableau with unrelated ten-digit denominators (Dopri8) makes them grow to thousands of
/// digits by order 9, and the check takes minutes in an unoptimised proc macro. Under a
/// tolerance exactness is not needed: every operation here rounds by at most `2^-512`
/// (relative to coefficients of size ~10, the accumulated error over the ~10⁵ operations
/// of an order-9 check stays below 1e-140), far below the smallest accepted tolerance
/// (`1e-100`), and the numbers stay ~600 bits long.
#[derive(Clone, Debug, PartialEq)]
pub struct Fixed(BigInt);

impl Fixed {
    /// The fixed-point number nearest to `x`.
    pub fn from_rational(x: &BigRational) -> Self {
        use num_integer::Integer;
        let num: BigInt = x.numer() << FIXED_BITS;
        let den = x.denom();
        let half: BigInt = den / 2;
        Fixed((num + half).div_floor(den))
    }
    /// The exact value `v / 2^512`.
    pub fn to_rational(&self) -> BigRational {
        BigRational::new(self.0.clone(), BigInt::one() << FIXED_BITS)
    }
}

impl Weight for Fixed {
    fn zero() -> Self {
        Fixed(BigInt::zero())
    }
    fn ratio(num: u64, den: u64) -> Self {
        Fixed::from_rational(&BigRational::new(num.into(), den.into()))
    }
    fn add(&self, other: &Self) -> Self {
        Fixed(&self.0 + &other.0)
    }
    fn sub(&self, other: &Self) -> Self {
        Fixed(&self.0 - &other.0)
    }
    fn mul(&self, other: &Self) -> Self {
        // Round to nearest (`>>` floors for negative values too).
        Fixed((&self.0 * &other.0 + (BigInt::one() << (FIXED_BITS - 1))) >> FIXED_BITS)
    }
    fn is_zero(&self) -> bool {
        Zero::is_zero(&self.0)
    }
}
