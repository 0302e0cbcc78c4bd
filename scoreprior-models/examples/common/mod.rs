//! The arguments the DSM examples share: `<checkpoint> <images.npy> [eps] [reps]`.

use std::sync::Arc;

use scoreprior_core::io::{read_npy, Array};
use scoreprior_core::score::ScoreModel;
use scoreprior_core::sde::AnySde;
use scoreprior_models::score::NcsnppScore;

/// A checkpoint's score model with its SDE, a batch of images, and the surrogate's settings.
pub struct DsmArgs {
    /// The network as a score model.
    pub model: Arc<dyn ScoreModel>,
    /// Its VP SDE.
    pub sde: AnySde,
    /// Values per image.
    pub d: usize,
    /// The images as read.
    pub images: Array,
    /// The path of the images.
    pub images_path: String,
    /// The smallest time of the bound (default 1e-3).
    pub eps: f64,
    /// Repetitions (fresh draws), at least 2.
    pub reps: usize,
}

/// Reads the command line (`usage` is the message for too few arguments) and loads the
/// checkpoint and the images. At least 2 repetitions: the spread of the draws is reported.
pub fn dsm_args(usage: &str, default_reps: usize) -> Result<DsmArgs, Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 3 {
        return Err(usage.into());
    }
    let eps: f64 = a.get(3).map_or(Ok(1e-3), |s| s.parse())?;
    let reps: usize = a.get(4).map_or(Ok(default_reps), |s| s.parse())?;
    if reps < 2 {
        return Err("reps: at least 2 (the spread of the draws is reported)".into());
    }
    let net = NcsnppScore::load(&a[1])?;
    let sde = AnySde::Vp(*net.sde());
    let model: Arc<dyn ScoreModel> = Arc::new(net);
    let d = model.dim();
    let images = read_npy(&a[2])?;
    Ok(DsmArgs { model, sde, d, images, images_path: a[2].clone(), eps, reps })
}
