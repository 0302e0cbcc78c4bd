//! Analytic test sources on the NUDFT's pixel grid (pixel `(i, j)` at
//! `l = ((W−1)/2 − j)Δ` east, `m = ((H−1)/2 − i)Δ` north), normalised to a total flux:
//! a ring `exp(−(r − R)²/2w²)`, a crescent (the ring times `1 + a cos(θ − θ₀)`, `θ` east
//! of north), and sums of circular Gaussian blobs; [`TestSource::Shifted`] moves any of them
//! and [`TestSource::Sum`] adds components of given flux fractions. [`CompactSources`] draws
//! them at random (seeded) as a training set for a prior. Simulation images are not ours to
//! ship; these stand in for them.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{Error, Result};

/// An analytic source; lengths in µas.
#[derive(Debug, Clone, PartialEq)]
pub enum TestSource {
    /// A thin ring of radius `radius` and Gaussian radial width `width` (σ).
    Ring { radius: f64, width: f64 },
    /// A ring brighter towards position angle `angle_deg` (east of north) by a factor
    /// `(1 + asymmetry)/(1 − asymmetry)`, `asymmetry ∈ [0, 1]`.
    Crescent { radius: f64, width: f64, asymmetry: f64, angle_deg: f64 },
    /// Circular Gaussians `(east offset, north offset, FWHM, relative flux)`.
    Blobs(Vec<(f64, f64, f64, f64)>),
    /// `source` moved `east` and `north` µas.
    Shifted { east: f64, north: f64, source: Box<TestSource> },
    /// Components `(flux fraction, source)`: each is rendered to its fraction of the flux on
    /// the grid, then they are added.
    Sum(Vec<(f64, TestSource)>),
}

impl TestSource {
    /// Renders `npix × npix` pixels over `fov_uas`, summing to `total_flux` (Jy).
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::TestSource;
    /// let img = TestSource::Ring { radius: 25.0, width: 4.0 }.render(32, 160.0, 2.0).unwrap();
    /// assert!((img.iter().sum::<f64>() - 2.0).abs() < 1e-12);
    /// ```
    pub fn render(&self, npix: usize, fov_uas: f64, total_flux: f64) -> Result<Vec<f64>> {
        if npix == 0 {
            return Err(Error::count_out_of_range("test source npix", npix, "at least 1"));
        }
        if !(fov_uas > 0.0 && fov_uas.is_finite()) {
            return Err(Error::out_of_range("test source field of view", fov_uas, "positive and finite"));
        }
        if !(total_flux > 0.0 && total_flux.is_finite()) {
            return Err(Error::out_of_range("test source flux", total_flux, "positive and finite"));
        }
        let img = self.raw(npix, fov_uas, (0.0, 0.0))?;
        let s: f64 = img.iter().sum();
        if !(s > 0.0 && s.is_finite()) {
            return Err(Error::empty(
                "the test source's image",
                "no flux falls on this grid (is the source outside the field of view?)",
            ));
        }
        Ok(img.into_iter().map(|v| v * total_flux / s).collect())
    }

    /// Unnormalised pixel values, the source moved by `off` (east, north) µas.
    fn raw(&self, npix: usize, fov_uas: f64, off: (f64, f64)) -> Result<Vec<f64>> {
        match self {
            TestSource::Shifted { east, north, source } => {
                if let Some(v) = [*east, *north].into_iter().find(|v| !v.is_finite()) {
                    return Err(Error::out_of_range("the offset of a shifted source", v, "finite"));
                }
                source.raw(npix, fov_uas, (off.0 + east, off.1 + north))
            }
            TestSource::Sum(parts) => {
                if parts.is_empty() {
                    return Err(Error::count_out_of_range("the parts of a sum of sources", 0, "at least 1"));
                }
                if let Some((w, _)) = parts.iter().find(|(w, _)| !(*w >= 0.0 && w.is_finite())) {
                    return Err(Error::out_of_range("a fraction of a sum of sources", *w, "≥ 0 and finite"));
                }
                let mut img = vec![0.0; npix * npix];
                for (w, part) in parts {
                    let p = part.raw(npix, fov_uas, off)?;
                    let s: f64 = p.iter().sum();
                    if s > 0.0 {
                        img.iter_mut().zip(&p).for_each(|(a, b)| *a += w * b / s);
                    }
                }
                Ok(img)
            }
            _ => {
                let d = fov_uas / npix as f64;
                let c = (npix as f64 - 1.0) / 2.0;
                let mut img = vec![0.0; npix * npix];
                for i in 0..npix {
                    for j in 0..npix {
                        let (east, north) = ((c - j as f64) * d - off.0, (c - i as f64) * d - off.1);
                        img[i * npix + j] = self.brightness(east, north)?;
                    }
                }
                Ok(img)
            }
        }
    }

    fn brightness(&self, east: f64, north: f64) -> Result<f64> {
        let ring = |radius: f64, width: f64| -> Result<f64> {
            if radius.is_nan() || radius < 0.0 {
                return Err(Error::out_of_range("ring radius", radius, "≥ 0"));
            }
            if width.is_nan() || width <= 0.0 {
                return Err(Error::out_of_range("ring width", width, "positive"));
            }
            let r = east.hypot(north);
            Ok((-(r - radius).powi(2) / (2.0 * width * width)).exp())
        };
        match self {
            TestSource::Ring { radius, width } => ring(*radius, *width),
            TestSource::Crescent { radius, width, asymmetry, angle_deg } => {
                if !(0.0..=1.0).contains(asymmetry) {
                    return Err(Error::out_of_range("crescent asymmetry", *asymmetry, "in [0, 1]"));
                }
                let theta = east.atan2(north); // east of north
                Ok(ring(*radius, *width)? * (1.0 + asymmetry * (theta - angle_deg.to_radians()).cos()))
            }
            TestSource::Blobs(blobs) => {
                let mut v = 0.0;
                for &(x, y, fwhm, flux) in blobs {
                    if fwhm.is_nan() || fwhm <= 0.0 {
                        return Err(Error::out_of_range("blob FWHM", fwhm, "positive"));
                    }
                    if flux.is_nan() || flux < 0.0 {
                        return Err(Error::out_of_range("blob flux", flux, "≥ 0"));
                    }
                    let s = fwhm / (8.0 * 2f64.ln()).sqrt();
                    v += flux / (2.0 * std::f64::consts::PI * s * s)
                        * (-((east - x).powi(2) + (north - y).powi(2)) / (2.0 * s * s)).exp();
                }
                Ok(v)
            }
            TestSource::Shifted { .. } | TestSource::Sum(_) => unreachable!("rendered by raw()"),
        }
    }
}

/// The range of the flux fraction of the blob in a crescent plus a blob ([`CompactSources`]).
pub const BLOB_FRACTION: (f64, f64) = (0.1, 0.4);

/// A seeded random generator of compact sources (lengths in µas), the training set of a
/// prior for black-hole imaging. Each image is, with probabilities `ring`, `crescent`,
/// `blobs` and the rest:
/// - a ring: diameter uniform in `diameter`, Gaussian radial σ uniform in `width`
///   (as a fraction of the diameter, at least `min_width`);
/// - a crescent: the same ring, asymmetry uniform in `asymmetry`, position angle uniform;
/// - 1 to `max_blobs` circular Gaussians, FWHM uniform in `blob_fwhm`, centres uniform in a
///   disc of radius `blob_spread`, relative fluxes uniform in [0.2, 1];
/// - a crescent plus one Gaussian of flux fraction uniform in [0.1, 0.4] (a jet or a
///   hot spot);
///
/// every one shifted by an offset uniform in a disc of radius `offset`. Each image is drawn
/// from its own ChaCha8 stream (`seed`, image index), so image `i` does not depend on how many
/// are drawn or on the thread count. Pixels are averaged over `supersample²` sub-pixels.
///
/// # Examples
/// ```
/// use scoreprior_core::forward::interferometry::CompactSources;
/// let g = CompactSources::default();
/// let a = g.images(4, 32, 160.0, 7).unwrap();
/// assert_eq!(a.len(), 4 * 32 * 32);
/// assert_eq!(a, g.images(4, 32, 160.0, 7).unwrap()); // seeded
/// // peak-normalised: every image has its maximum at exactly 1
/// for img in a.chunks(32 * 32) {
///     assert_eq!(img.iter().cloned().fold(0.0, f64::max), 1.0);
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CompactSources {
    /// Ring diameter range (µas).
    pub diameter: (f64, f64),
    /// Radial σ of rings and crescents as a fraction of the diameter.
    pub width: (f64, f64),
    /// Smallest radial σ (µas).
    pub min_width: f64,
    /// Crescent asymmetry range, within [0, 1].
    pub asymmetry: (f64, f64),
    /// Largest offset of the whole source from the centre (µas).
    pub offset: f64,
    /// Blob FWHM range (µas).
    pub blob_fwhm: (f64, f64),
    /// Radius of the disc the blob centres are drawn in (µas).
    pub blob_spread: f64,
    /// Largest number of blobs in a mixture.
    pub max_blobs: usize,
    /// Probability of a ring.
    pub ring: f64,
    /// Probability of a crescent.
    pub crescent: f64,
    /// Probability of a blob mixture (the rest, `1 − ring − crescent − blobs`, is crescent + blob).
    pub blobs: f64,
    /// Sub-pixels per pixel side.
    pub supersample: usize,
}

impl Default for CompactSources {
    /// Diameters 20–60 µas, σ 5–20 % of the diameter (≥ 2 µas), asymmetry 0.2–0.95, offsets
    /// ≤ 10 µas, blob FWHM 10–40 µas within 25 µas, up to 4 blobs; 20 % rings, 40 % crescents,
    /// 25 % blob mixtures, 15 % crescent + blob; 4×4 sub-pixels.
    fn default() -> Self {
        CompactSources {
            diameter: (20.0, 60.0),
            width: (0.05, 0.2),
            min_width: 2.0,
            asymmetry: (0.2, 0.95),
            offset: 10.0,
            blob_fwhm: (10.0, 40.0),
            blob_spread: 25.0,
            max_blobs: 4,
            ring: 0.2,
            crescent: 0.4,
            blobs: 0.25,
            supersample: 4,
        }
    }
}

impl CompactSources {
    /// Each setting in its range ([`Error::OutOfRange`] naming the first one that is not).
    pub(crate) fn check(&self) -> Result<()> {
        let what = |name: &str| format!("compact-source {name}");
        // A range `(low, high)`: low ≥ 0 (> 0 when `positive`), high ≥ low, both finite.
        let range = |name: &str, (a, b): (f64, f64), positive: bool| -> Result<()> {
            if !(a.is_finite() && if positive { a > 0.0 } else { a >= 0.0 }) {
                let expected = if positive { "positive and finite" } else { "≥ 0 and finite" };
                return Err(Error::out_of_range(what(&format!("{name} (low end)")), a, expected));
            }
            if !(b.is_finite() && b >= a) {
                return Err(Error::out_of_range(what(&format!("{name} (high end)")), b, format!("finite and ≥ {a}")));
            }
            Ok(())
        };
        range("diameter", self.diameter, false)?;
        range("width", self.width, true)?;
        range("asymmetry", self.asymmetry, false)?;
        if self.asymmetry.1 > 1.0 {
            return Err(Error::out_of_range(what("asymmetry (high end)"), self.asymmetry.1, "at most 1"));
        }
        range("blob FWHM", self.blob_fwhm, true)?;
        if self.min_width.is_nan() || self.min_width < 0.0 {
            return Err(Error::out_of_range(what("min width"), self.min_width, "≥ 0"));
        }
        for (name, v) in [("offset", self.offset), ("blob spread", self.blob_spread)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::out_of_range(what(name), v, "≥ 0 and finite"));
            }
        }
        for (name, n) in [("max blobs", self.max_blobs), ("supersample", self.supersample)] {
            if n < 1 {
                return Err(Error::count_out_of_range(what(name), n, "at least 1"));
            }
        }
        let probs = [("ring", self.ring), ("crescent", self.crescent), ("blobs", self.blobs)];
        if let Some((name, p)) = probs.iter().find(|(_, p)| !(0.0..=1.0).contains(p)) {
            return Err(Error::out_of_range(what(&format!("{name} probability")), *p, "in [0, 1]"));
        }
        let total: f64 = probs.iter().map(|(_, p)| p).sum();
        if total > 1.0 + 1e-12 {
            return Err(Error::out_of_range(what("ring + crescent + blobs probability"), total, "at most 1"));
        }
        Ok(())
    }

    /// Draws the `index`-th source of the stream `seed`.
    pub fn source(&self, seed: u64, index: u64) -> Result<TestSource> {
        self.check()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index);
        let uni = |rng: &mut ChaCha8Rng, (a, b): (f64, f64)| if b > a { rng.gen_range(a..b) } else { a };
        let in_disc = |rng: &mut ChaCha8Rng, r: f64| {
            let (rho, phi) = (r * rng.gen::<f64>().sqrt(), rng.gen_range(0.0..std::f64::consts::TAU));
            (rho * phi.sin(), rho * phi.cos())
        };
        let ring = |rng: &mut ChaCha8Rng, asym: bool| {
            let d = uni(rng, self.diameter);
            let width = (d * uni(rng, self.width)).max(self.min_width);
            let radius = d / 2.0;
            if asym {
                let asymmetry = uni(rng, self.asymmetry);
                let angle_deg = rng.gen_range(0.0..360.0);
                TestSource::Crescent { radius, width, asymmetry, angle_deg }
            } else {
                TestSource::Ring { radius, width }
            }
        };
        let blob = |rng: &mut ChaCha8Rng| {
            let (e, n) = in_disc(rng, self.blob_spread);
            (e, n, uni(rng, self.blob_fwhm), rng.gen_range(0.2..1.0))
        };
        let u: f64 = rng.gen();
        let src = if u < self.ring {
            ring(&mut rng, false)
        } else if u < self.ring + self.crescent {
            ring(&mut rng, true)
        } else if u < self.ring + self.crescent + self.blobs {
            let k = rng.gen_range(1..=self.max_blobs);
            TestSource::Blobs((0..k).map(|_| blob(&mut rng)).collect())
        } else {
            let c = ring(&mut rng, true);
            let f = rng.gen_range(BLOB_FRACTION.0..BLOB_FRACTION.1);
            TestSource::Sum(vec![(1.0 - f, c), (f, TestSource::Blobs(vec![blob(&mut rng)]))])
        };
        let (east, north) = in_disc(&mut rng, self.offset);
        Ok(TestSource::Shifted { east, north, source: Box::new(src) })
    }

    /// `n` images of `npix × npix` pixels over `fov_uas`, row-major `(n, npix, npix)`, each
    /// scaled to a peak of exactly 1 (the network's data range [0, 1]; the flux `F` of an
    /// image `x` in these units is restored as `x · F / Σx`).
    pub fn images(&self, n: usize, npix: usize, fov_uas: f64, seed: u64) -> Result<Vec<f64>> {
        self.check()?;
        for (name, v) in [("count n", n), ("npix", npix)] {
            if v == 0 {
                return Err(Error::count_out_of_range(format!("compact-source {name}"), v, "at least 1"));
            }
        }
        if !(fov_uas > 0.0 && fov_uas.is_finite()) {
            return Err(Error::out_of_range("compact-source field of view", fov_uas, "positive and finite"));
        }
        let d = npix * npix;
        let mut out = vec![0.0; n * d];
        out.par_chunks_mut(d).enumerate().try_for_each(|(i, img)| -> Result<()> {
            self.render_into(&self.source(seed, i as u64)?, npix, fov_uas, img)
        })?;
        Ok(out)
    }

    /// `source` rendered as [`CompactSources::images`] renders its draws: `npix × npix` pixels
    /// over `fov_uas`, each the sum of `supersample²` point samples, scaled to a peak of exactly 1.
    /// Any source shape is accepted, so that a model fitted within the family is drawn exactly
    /// as the family's images are.
    ///
    /// ```
    /// use scoreprior_core::forward::interferometry::CompactSources;
    /// let g = CompactSources::default();
    /// let img = g.render(&g.source(7, 1).unwrap(), 32, 160.0).unwrap();
    /// assert_eq!(img, g.images(2, 32, 160.0, 7).unwrap()[32 * 32..]);
    /// ```
    pub fn render(&self, source: &TestSource, npix: usize, fov_uas: f64) -> Result<Vec<f64>> {
        self.check()?;
        if npix == 0 {
            return Err(Error::count_out_of_range("compact-source npix", npix, "at least 1"));
        }
        let mut img = vec![0.0; npix * npix];
        self.render_into(source, npix, fov_uas, &mut img)?;
        Ok(img)
    }

    /// [`CompactSources::render`] into `img` (`npix²` values), without the checks of `self`.
    fn render_into(&self, source: &TestSource, npix: usize, fov_uas: f64, img: &mut [f64]) -> Result<()> {
        let ss = self.supersample;
        let fine = source.render(npix * ss, fov_uas, 1.0)?;
        for (p, v) in img.iter_mut().enumerate() {
            let (r, c) = (p / npix, p % npix);
            *v = (0..ss)
                .flat_map(|a| (0..ss).map(move |b| (a, b)))
                .map(|(a, b)| fine[(r * ss + a) * npix * ss + c * ss + b])
                .sum();
        }
        let peak = img.iter().cloned().fold(0.0, f64::max);
        if !(peak > 0.0) {
            return Err(Error::empty("a compact source's image", "the source fell outside the field of view"));
        }
        img.iter_mut().for_each(|v| *v /= peak);
        Ok(())
    }
}
