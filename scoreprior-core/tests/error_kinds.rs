//! Callers acting on the kind of an [`Error`], not on its message: an unknown name comes
//! back as [`Error::UnknownName`] with the name, a setting out of range as
//! [`Error::OutOfRange`] with the value, a malformed spec as [`Error::Syntax`], an
//! operation a model lacks as [`Error::Unsupported`], and an error met while building one
//! primitive of a chain keeps its kind under [`Error::Context`].

use scoreprior_core::forward::{parse_chain, parse_noise, PrimitiveSpec};
use scoreprior_core::ode::solver_by_name;
use scoreprior_core::Error;

/// An unknown solver name: the caller gets the name back and can fall back to a default.
#[test]
fn unknown_solver_is_an_unknown_name() {
    let e = solver_by_name("rk45").map(|s| s.tableau().name).unwrap_err();
    match &e {
        Error::UnknownName { what: "solver", name, owner: None, expected } => {
            assert_eq!(name, "rk45");
            assert!(expected.contains("dopri5"), "{expected}");
        }
        other => panic!("expected UnknownName, got {other:?}"),
    }
    assert!(e.to_string().contains("unknown solver `rk45`; expected one of euler"), "{e}");
    // Acting on the kind: an unknown name falls back to the default solver, any other
    // error would be passed on.
    let fallback = match solver_by_name("rk45") {
        Err(Error::UnknownName { .. }) => solver_by_name("dopri5").unwrap(),
        other => other.unwrap(),
    };
    assert_eq!(fallback.tableau().name, "Dopri5");
}

/// A non-positive noise sigma: the caller gets the value and which setting it was.
#[test]
fn non_positive_noise_sigma_is_out_of_range() {
    let e = scoreprior_core::denoise::matching_time(&scoreprior_core::sde::VpSde::default(), -0.5).unwrap_err();
    match &e {
        Error::OutOfRange { what, value, .. } => assert_eq!((what.as_str(), *value), ("noise sigma", -0.5)),
        other => panic!("expected OutOfRange, got {other:?}"),
    }
    assert_eq!(e.to_string(), "noise sigma must be positive and finite, got -0.5");
    let e = parse_noise("gaussian(sigma=-1)").unwrap_err();
    assert!(matches!(e, Error::OutOfRange { value: -1.0, .. }), "{e}");
    assert!(e.to_string().contains("parameter `sigma` of `gaussian` must be positive, got -1"), "{e}");
}

/// A malformed forward spec is a syntax error naming the text; an unknown parameter is an
/// unknown name owned by its primitive.
#[test]
fn malformed_spec_is_a_syntax_error() {
    let e = PrimitiveSpec::parse("gaussian_blur(sigma=1.5, size=9").unwrap_err();
    match &e {
        Error::Syntax { at, why } => {
            assert_eq!(at, "`gaussian_blur(sigma=1.5, size=9`");
            assert_eq!(why, "missing `)`");
        }
        other => panic!("expected Syntax, got {other:?}"),
    }
    let e = PrimitiveSpec::parse("subsample(factor=2, factor=3)").unwrap_err();
    assert!(matches!(e, Error::Syntax { .. }), "{e}");
    // Inside a chain the error keeps its kind under the context of the primitive.
    let e = parse_chain("identity | gaussian_blur(sigma=1, size=3, speed=2)", [1, 8, 8]).unwrap_err();
    assert!(e.to_string().starts_with("in `gaussian_blur` (input [1, 8, 8]): unknown parameter `speed`"), "{e}");
    match e.innermost() {
        Error::UnknownName { what: "parameter", name, owner: Some(owner), .. } => {
            assert_eq!((name.as_str(), owner.as_str()), ("speed", "gaussian_blur"));
        }
        other => panic!("expected UnknownName, got {other:?}"),
    }
    let e = parse_chain("gaussian_blur(sigma=0, size=3)", [1, 8, 8]).unwrap_err();
    assert!(matches!(e.innermost(), Error::OutOfRange { value: 0.0, .. }), "{e}");
}

/// The adjoint of a non-linear chain is unsupported: the caller can use the VJP instead.
#[test]
fn adjoint_of_a_non_linear_chain_is_unsupported() {
    let chain = parse_chain("fft2 | magnitude", [1, 4, 4]).unwrap();
    let (y, mut x) = (vec![0.0; chain.output_shape().len()], vec![0.0; chain.input_shape().len()]);
    let e = chain.adjoint(&y, &mut x).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("use the VJP"), "{e}");
}
