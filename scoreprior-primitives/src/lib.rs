//! The vocabulary of scoreprior's forward-model language, described once: every primitive of a
//! chain (`gaussian_blur(sigma = 1.5, size = 9) | subsample(factor = 2)`), every noise
//! (`gaussian(sigma = 0.05)`) and every preset (`mri(acceleration = 8)`, `eht(fov = 160)`),
//! each with its parameters (name, kind, required or default) and a one-line description.
//!
//! Two crates read these tables, so they cannot drift apart:
//! - `scoreprior-macros`' `#[forward_model]` validates every primitive, parameter and noise
//!   against them at compile time (with a span on the offending token);
//! - `scoreprior-core`'s `forward::spec` (`build_op`, `parse_noise`, `expand_preset`,
//!   `EhtSettings`) rejects unknown and missing parameters, lists the known names in its
//!   errors and takes the defaults from them.
//!
//! The operators themselves (and each primitive's shape rule) are in
//! `scoreprior_core::forward::ops`; this crate has no dependencies and no behaviour beyond
//! look-ups.
//!
//! | primitive | parameters (default) | output shape from `[C, H, W]` |
//! | --- | --- | --- |
//! | `identity` | — | `[C, H, W]` |
//! | `scale` | `factor` | `[C, H, W]` |
//! | `mask` | `keep` (probability), `seed` (0) | `[C, H, W]` |
//! | `gaussian_blur` | `sigma`, `size`, `boundary` (reflect) | `[C, H, W]` |
//! | `box_blur` | `size`, `boundary` (reflect) | `[C, H, W]` |
//! | `motion_blur` | `length`, `angle` (0, degrees), `boundary` (reflect) | `[C, H, W]` |
//! | `subsample` | `factor` | `[C, H/f, W/f]` |
//! | `avg_pool` | `factor` | `[C, H/f, W/f]` |
//! | `crop` | `top` (0), `left` (0), `height`, `width` | `[C, height, width]` |
//! | `pad` | `top`, `bottom`, `left`, `right` (all 0) | `[C, H+t+b, W+l+r]` |
//! | `fft2` | — | `[2C, H, W]` |
//! | `ifft2` | — (input `[2C, H, W]`) | `[C, H, W]` |
//! | `cartesian_mask` | `acceleration`, `center` (4), `seed` (0) | same |
//! | `poisson_mask` | `acceleration`, `center` (4), `seed` (0) | same |
//! | `dft_lowpass` | `k` | `[2C, k, k]` |
//! | `gaussian_matrix` | `m`, `seed` (0) | `[1, 1, m]` |
//! | `magnitude` (non-linear) | — (input `[2C, H, W]`) | `[C, H, W]` |
//! | `matrix` (run time only) | `file` (a `.npy` of shape `(m, D)`, row-major, `D = C·H·W`) | `[1, 1, m]` |
//!
//! Boundaries are `zero`, `reflect` or `circular`. Noises ([`NOISES`]): `gaussian(sigma = s)`,
//! `complex_gaussian(sigma = s)`. Presets ([`PRESETS`]), accepted wherever a chain is, alone:
//! `denoising`, `deblurring(k = 8)`, `mri(acceleration = 8, center = 4, seed = 1,
//! mask = poisson|cartesian)`, and `eht(fov = 160, …)`, which is not a chain but an
//! interferometer.
//!
//! ```
//! use scoreprior_primitives::{primitive, Kind};
//! let blur = primitive("gaussian_blur").unwrap();
//! assert_eq!(blur.param("size").unwrap().kind, Kind::PositiveInt);
//! assert_eq!(blur.param("boundary").unwrap().default, Some("reflect"));
//! assert!(primitive("downsample").is_none());
//! ```

/// What a parameter's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any finite number.
    Real,
    /// A number > 0.
    Positive,
    /// A number ≥ 1.
    AtLeastOne,
    /// A probability in (0, 1].
    Probability,
    /// An integer ≥ 0.
    Count,
    /// An integer ≥ 1.
    PositiveInt,
    /// `zero`, `reflect` or `circular` ([`BOUNDARIES`]).
    Boundary,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// A file path (a word or a quoted text).
    Path,
}

/// The boundaries of the convolutions.
pub const BOUNDARIES: &[&str] = &["zero", "reflect", "circular"];

/// One parameter of a primitive, noise or preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamDef {
    /// The key, as written in `name(key = value)`.
    pub name: &'static str,
    /// What its value must be.
    pub kind: Kind,
    /// Whether it must be given.
    pub required: bool,
    /// The value used when it is not given, as written in the language (`None` for required
    /// parameters and for defaults that are not a literal, e.g. `eht`'s observing settings).
    pub default: Option<&'static str>,
}

/// A primitive, noise or preset: `name(params)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrimitiveDef {
    /// The name, e.g. `gaussian_blur`.
    pub name: &'static str,
    /// Its parameters, in the order documented.
    pub params: &'static [ParamDef],
    /// What it is, in one line.
    pub doc: &'static str,
    /// Whether the operator is linear (an adjoint exists).
    pub linear: bool,
    /// Whether `#[forward_model]` accepts it (its output shape is known from the parameters).
    pub compile_time: bool,
}

impl PrimitiveDef {
    /// The parameter `name`, if it has one.
    pub fn param(&self, name: &str) -> Option<&'static ParamDef> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The parameter names joined by `sep`, each wrapped in `quote` (e.g. `` "`" ``).
    pub fn param_list(&self, sep: &str, quote: &str) -> String {
        self.params.iter().map(|p| format!("{quote}{}{quote}", p.name)).collect::<Vec<_>>().join(sep)
    }
}

const fn req(name: &'static str, kind: Kind) -> ParamDef {
    ParamDef { name, kind, required: true, default: None }
}

const fn opt(name: &'static str, kind: Kind, default: &'static str) -> ParamDef {
    ParamDef { name, kind, required: false, default: Some(default) }
}

/// An optional parameter whose default is not a literal of the language.
const fn opt_computed(name: &'static str, kind: Kind) -> ParamDef {
    ParamDef { name, kind, required: false, default: None }
}

const fn linear(name: &'static str, params: &'static [ParamDef], doc: &'static str) -> PrimitiveDef {
    PrimitiveDef { name, params, doc, linear: true, compile_time: true }
}

const BOUNDARY: ParamDef = opt("boundary", Kind::Boundary, "reflect");
const SEED: ParamDef = opt("seed", Kind::Count, "0");
const MASK_PARAMS: &[ParamDef] = &[req("acceleration", Kind::AtLeastOne), opt("center", Kind::Count, "4"), SEED];

/// Every primitive of a chain, in the order listed in errors.
pub const PRIMITIVES: &[PrimitiveDef] = &[
    linear("identity", &[], "the identity"),
    linear("scale", &[req("factor", Kind::Real)], "multiplication by a constant"),
    linear(
        "mask",
        &[req("keep", Kind::Probability), SEED],
        "a seeded random pixel mask keeping each pixel with probability `keep`",
    ),
    linear(
        "gaussian_blur",
        &[req("sigma", Kind::Positive), req("size", Kind::PositiveInt), BOUNDARY],
        "convolution with a normalised `size`×`size` Gaussian of width `sigma`",
    ),
    linear("box_blur", &[req("size", Kind::PositiveInt), BOUNDARY], "convolution with a `size`×`size` box"),
    linear(
        "motion_blur",
        &[req("length", Kind::PositiveInt), opt("angle", Kind::Real, "0"), BOUNDARY],
        "convolution with a line of `length` pixels at `angle` degrees (odd kernel size)",
    ),
    linear("subsample", &[req("factor", Kind::PositiveInt)], "every `factor`-th pixel along both axes"),
    linear("avg_pool", &[req("factor", Kind::PositiveInt)], "means of `factor`×`factor` blocks"),
    linear(
        "crop",
        &[
            opt("top", Kind::Count, "0"),
            opt("left", Kind::Count, "0"),
            req("height", Kind::PositiveInt),
            req("width", Kind::PositiveInt),
        ],
        "a `height`×`width` window at (`top`, `left`)",
    ),
    linear(
        "pad",
        &[
            opt("top", Kind::Count, "0"),
            opt("bottom", Kind::Count, "0"),
            opt("left", Kind::Count, "0"),
            opt("right", Kind::Count, "0"),
        ],
        "zero padding on each side",
    ),
    linear("fft2", &[], "centred orthonormal 2-D FFT, complex output split as `[Re; Im]` channels"),
    linear("ifft2", &[], "inverse of `fft2`, real part of the result"),
    linear("cartesian_mask", MASK_PARAMS, "a k-space mask of whole rows with a fully sampled centre"),
    linear("poisson_mask", MASK_PARAMS, "a variable-density Poisson-disc k-space mask with a fully sampled centre"),
    linear("dft_lowpass", &[req("k", Kind::PositiveInt)], "the `k`×`k` lowest frequencies of the unitary DFT"),
    linear("gaussian_matrix", &[req("m", Kind::PositiveInt), SEED], "a seeded `m`×D Gaussian matrix scaled by 1/√m"),
    PrimitiveDef {
        name: "magnitude",
        params: &[],
        doc: "the modulus of split complex input (non-linear: VJP, no adjoint)",
        linear: false,
        compile_time: true,
    },
    PrimitiveDef {
        name: "matrix",
        params: &[req("file", Kind::Path)],
        doc: "a dense matrix read from a `.npy` file (its output size is known only at run time)",
        linear: true,
        compile_time: false,
    },
];

const SIGMA: &[ParamDef] = &[req("sigma", Kind::Positive)];

/// Every measurement noise.
pub const NOISES: &[PrimitiveDef] = &[
    linear("gaussian", SIGMA, "white Gaussian noise of standard deviation `sigma`"),
    linear("complex_gaussian", SIGMA, "Gaussian noise of standard deviation `sigma` on each real and imaginary part"),
];

/// Every preset: a named forward problem accepted wherever a chain is, alone.
pub const PRESETS: &[PrimitiveDef] = &[
    linear("denoising", &[], "the identity, with Gaussian noise"),
    linear("deblurring", &[opt("k", Kind::Count, "8")], "`dft_lowpass(k)`, with complex Gaussian noise"),
    linear(
        "mri",
        &[
            opt("acceleration", Kind::Positive, "8"),
            opt("center", Kind::Count, "4"),
            opt("seed", Kind::Count, "1"),
            opt("mask", Kind::OneOf(&["poisson", "cartesian"]), "poisson"),
        ],
        "`fft2 | {mask}_mask(acceleration, center, seed)`, with complex Gaussian noise",
    ),
    linear(
        "eht",
        &[
            opt("fov", Kind::Positive, "160"),
            opt_computed("tint", Kind::Positive),
            opt_computed("bandwidth", Kind::Positive),
            opt_computed("cutoff", Kind::Real),
            opt_computed("cadence", Kind::Positive),
            opt_computed("start", Kind::Real),
            opt_computed("stop", Kind::Real),
            opt_computed("obs", Kind::Path),
            opt("pulse", Kind::OneOf(&["delta", "triangle"]), "delta"),
            opt("pipeline", Kind::OneOf(&["none", "eht2017"]), "none"),
            opt_computed("average", Kind::OneOf(&["none", "scan"])),
            opt_computed("zbl", Kind::Positive),
            opt_computed("systematic", Kind::Real),
            opt_computed("cp_uv_min", Kind::Real),
            opt_computed("station_noise", Kind::OneOf(&["none", "eht2017"])),
            opt_computed("snrcut", Kind::Real),
            opt_computed("gain_error", Kind::Real),
            opt("closure_covariance", Kind::OneOf(&["diagonal", "scan"]), "diagonal"),
            opt("transform", Kind::OneOf(&["auto", "direct", "nufft"]), "auto"),
        ],
        "EHT 2017 observing a Sgr A*-like source (an interferometer, not a chain); defaults from the observation",
    ),
];

fn find(table: &'static [PrimitiveDef], name: &str) -> Option<&'static PrimitiveDef> {
    table.iter().find(|d| d.name == name)
}

/// The primitive `name`.
pub fn primitive(name: &str) -> Option<&'static PrimitiveDef> {
    find(PRIMITIVES, name)
}

/// The noise `name`.
pub fn noise(name: &str) -> Option<&'static PrimitiveDef> {
    find(NOISES, name)
}

/// The preset `name`.
pub fn preset(name: &str) -> Option<&'static PrimitiveDef> {
    find(PRESETS, name)
}

/// The names of `defs` that pass `keep`, joined by `sep`, each wrapped in `quote`.
pub fn name_list(defs: &[PrimitiveDef], keep: impl Fn(&PrimitiveDef) -> bool, sep: &str, quote: &str) -> String {
    defs.iter().filter(|d| keep(d)).map(|d| format!("{quote}{}{quote}", d.name)).collect::<Vec<_>>().join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        for table in [PRIMITIVES, NOISES, PRESETS] {
            for (i, d) in table.iter().enumerate() {
                assert!(d.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{}", d.name);
                assert!(table[..i].iter().all(|e| e.name != d.name), "{} twice", d.name);
                assert!(!d.doc.is_empty(), "{} undocumented", d.name);
                for (j, p) in d.params.iter().enumerate() {
                    assert!(d.params[..j].iter().all(|q| q.name != p.name), "{}: {} twice", d.name, p.name);
                    assert!(!(p.required && p.default.is_some()), "{}: required {} has a default", d.name, p.name);
                }
            }
        }
    }

    /// The table in this crate's documentation lists every primitive with every parameter.
    #[test]
    fn the_documented_table_lists_every_primitive_and_parameter() {
        let src = include_str!("lib.rs");
        for d in PRIMITIVES {
            let row = src
                .lines()
                .find(|l| l.starts_with(&format!("//! | `{}`", d.name)))
                .unwrap_or_else(|| panic!("no row for `{}`", d.name));
            for p in d.params {
                assert!(row.contains(&format!("`{}`", p.name)), "row of `{}` lacks `{}`", d.name, p.name);
            }
        }
    }

    #[test]
    fn look_ups() {
        assert_eq!(primitive("matrix").map(|d| d.compile_time), Some(false));
        assert_eq!(primitive("magnitude").map(|d| d.linear), Some(false));
        assert!(noise("gaussian").is_some() && noise("poisson").is_none());
        assert_eq!(preset("mri").and_then(|d| d.param("seed")).and_then(|p| p.default), Some("1"));
        assert_eq!(name_list(NOISES, |_| true, " or ", "`"), "`gaussian` or `complex_gaussian`");
        assert_eq!(primitive("crop").unwrap().param_list(", ", ""), "top, left, height, width");
    }
}
