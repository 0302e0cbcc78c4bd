//! What `benches/reference/ehtim_rml.py` wrote per source (truth, eht-imaging's image, the
//! observation, its timing), and the truth re-binned to a prior's coarser grid (block sums).

use std::path::{Path, PathBuf};

use scoreprior_core::io::read_npy;
use serde::Deserialize;

use scoreprior::experiment::{invalid_setting, Result};

/// What `benches/reference/ehtim_rml.py` wrote for one source.
#[derive(Debug, Clone)]
pub struct ReferenceRun {
    /// Source name (the folder's).
    pub source: String,
    /// Truth, `npix × npix`, row 0 north (Jy per pixel).
    pub truth: Vec<f64>,
    /// eht-imaging's image, same grid.
    pub image: Vec<f64>,
    /// Side of the grid.
    pub npix: usize,
    /// Field of view (µas).
    pub fov_uas: f64,
    /// eht-imaging's imaging wall time (s).
    pub seconds: f64,
    /// The observation (`obs.txt`).
    pub obs: PathBuf,
}

#[derive(Deserialize)]
struct ReferenceSummary {
    npix: usize,
    fov_uas: f64,
    imaging_seconds: f64,
}

impl ReferenceRun {
    /// Reads `dir/{truth.npy, image.npy, obs.txt, summary.json}`.
    pub fn read(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let source = dir
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .ok_or_else(|| invalid_setting("reference", format!("{}: not a source folder", dir.display())))?;
        let text = std::fs::read_to_string(dir.join("summary.json"))
            .map_err(|e| scoreprior_core::io::IoError::os(&dir.join("summary.json"), e))?;
        let s: ReferenceSummary = serde_json::from_str(&text)
            .map_err(|e| invalid_setting("reference", format!("{}: {e}", dir.join("summary.json").display())))?;
        let img = |name: &str| -> Result<Vec<f64>> {
            let a = read_npy(dir.join(name))?;
            if a.data.len() != s.npix * s.npix || a.data.iter().any(|v| !v.is_finite()) {
                return Err(invalid_setting(
                    "reference",
                    format!("{}: expected {n}×{n} finite values", dir.join(name).display(), n = s.npix),
                ));
            }
            Ok(a.data)
        };
        Ok(Self {
            source,
            truth: img("truth.npy")?,
            image: img("image.npy")?,
            npix: s.npix,
            fov_uas: s.fov_uas,
            seconds: s.imaging_seconds,
            obs: dir.join("obs.txt"),
        })
    }
}

/// Sums `f × f` blocks: an `n × n` image on an `n/f` grid with the same total flux.
pub fn bin_image(img: &[f64], n: usize, m: usize) -> Vec<f64> {
    let f = n / m;
    let mut out = vec![0.0; m * m];
    for i in 0..n {
        for j in 0..n {
            out[(i / f) * m + j / f] += img[i * n + j];
        }
    }
    out
}

/// The truth on an `n × n` grid in the priors' units: block sums, then peak 1. The priors'
/// images have peak 1; closures do not fix the scale, so only the flux target uses it.
pub(super) fn prior_units(truth: &[f64], n0: usize, n: usize) -> Vec<f64> {
    let t = bin_image(truth, n0, n);
    let peak = t.iter().cloned().fold(1e-300, f64::max);
    t.iter().map(|v| v / peak).collect()
}
