//! Analytic test sources on the NUDFT's pixel grid (pixel `(i, j)` at
//! `l = ((W−1)/2 − j)Δ` east, `m = ((H−1)/2 − i)Δ` north), normalised to a total flux:
//! a ring `exp(−(r − R)²/2w²)`, a crescent (the ring times `1 + a cos(θ − θ₀)`, `θ` east
//! of north), and sums of circular Gaussian blobs. Simulation images are not ours to ship;
//! these stand in for them.

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
        if npix == 0 || !(fov_uas > 0.0 && fov_uas.is_finite()) || !(total_flux > 0.0 && total_flux.is_finite()) {
            return Err(Error::invalid("test source needs npix ≥ 1, a positive field of view and a positive flux"));
        }
        let d = fov_uas / npix as f64;
        let c = (npix as f64 - 1.0) / 2.0;
        let mut img = vec![0.0; npix * npix];
        for i in 0..npix {
            for j in 0..npix {
                let (east, north) = ((c - j as f64) * d, (c - i as f64) * d);
                img[i * npix + j] = self.brightness(east, north)?;
            }
        }
        let s: f64 = img.iter().sum();
        if !(s > 0.0) {
            return Err(Error::invalid("test source has no flux on this grid (is it outside the field of view?)"));
        }
        img.iter_mut().for_each(|v| *v *= total_flux / s);
        Ok(img)
    }

    fn brightness(&self, east: f64, north: f64) -> Result<f64> {
        let ring = |radius: f64, width: f64| -> Result<f64> {
            if !(radius >= 0.0 && width > 0.0) {
                return Err(Error::invalid("ring needs radius ≥ 0 and width > 0"));
            }
            let r = east.hypot(north);
            Ok((-(r - radius).powi(2) / (2.0 * width * width)).exp())
        };
        match self {
            TestSource::Ring { radius, width } => ring(*radius, *width),
            TestSource::Crescent { radius, width, asymmetry, angle_deg } => {
                if !(0.0..=1.0).contains(asymmetry) {
                    return Err(Error::invalid("crescent asymmetry must be in [0, 1]"));
                }
                let theta = east.atan2(north); // east of north
                Ok(ring(*radius, *width)? * (1.0 + asymmetry * (theta - angle_deg.to_radians()).cos()))
            }
            TestSource::Blobs(blobs) => {
                let mut v = 0.0;
                for &(x, y, fwhm, flux) in blobs {
                    if !(fwhm > 0.0 && flux >= 0.0) {
                        return Err(Error::invalid("blobs need FWHM > 0 and flux ≥ 0"));
                    }
                    let s = fwhm / (8.0 * 2f64.ln()).sqrt();
                    v += flux / (2.0 * std::f64::consts::PI * s * s)
                        * (-((east - x).powi(2) + (north - y).powi(2)) / (2.0 * s * s)).exp();
                }
                Ok(v)
            }
        }
    }
}
