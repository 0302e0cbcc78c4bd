//! Checkpoints in safetensors: the parameter tensors (training weights, their EMA, Adam's
//! two moments) as `f32`, and in the metadata the network configuration, image shape, SDE,
//! data preprocessing and training state (step, RNG state, training hyper-parameters).
//! Loading checks every name and shape against the network it is loaded into.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::data::Preprocess;
use crate::ncsnpp::{NcsnppConfig, NcsnppNet};
use crate::ModelError;

/// Format tag written into every checkpoint.
pub const FORMAT: &str = "scoreprior-ncsnpp-v1";

/// Everything in a checkpoint besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Network configuration.
    pub config: NcsnppConfig,
    /// Image shape `(c, h, w)`.
    pub image: (usize, usize, usize),
    /// VP SDE `(β_min, β_max)` the network was trained for.
    pub sde: (f64, f64),
    /// Data preprocessing.
    pub preprocess: Preprocess,
    /// Training state; `None` in an inference-only (EMA) checkpoint.
    pub train: Option<TrainMeta>,
}

/// Training state stored with a resumable checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainMeta {
    /// Optimiser steps taken.
    pub step: u64,
    /// ChaCha8 seed (hex), stream and word position of the training RNG.
    pub rng_seed: String,
    /// RNG stream.
    pub rng_stream: u64,
    /// RNG word position (as a decimal string: it is a `u128`).
    pub rng_word_pos: String,
    /// Training hyper-parameters (JSON of [`crate::train::TrainConfig`]).
    pub train_config: serde_json::Value,
}

/// The tensors of a checkpoint: groups of flat `f32` vectors in the network's
/// parameter order. `params`, `adam_m`, `adam_v` are empty in an inference checkpoint.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tensors {
    /// EMA weights (used for inference).
    pub ema: Vec<Vec<f32>>,
    /// Training weights.
    pub params: Vec<Vec<f32>>,
    /// Adam first moments.
    pub adam_m: Vec<Vec<f32>>,
    /// Adam second moments.
    pub adam_v: Vec<Vec<f32>>,
}

/// Writes a checkpoint atomically (temp file + rename).
pub fn save(path: impl AsRef<Path>, net: &NcsnppNet, meta: &Meta, t: &Tensors) -> Result<(), ModelError> {
    let path = path.as_ref();
    let specs = net.specs();
    let mut bytes: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (group, vals) in [("ema", &t.ema), ("params", &t.params), ("adam_m", &t.adam_m), ("adam_v", &t.adam_v)] {
        if vals.is_empty() {
            continue;
        }
        if vals.len() != specs.len() {
            return Err(ModelError::checkpoint(
                path,
                format!("group {group} has {} tensors, the network {}", vals.len(), specs.len()),
            ));
        }
        for (s, v) in specs.iter().zip(vals.iter()) {
            if v.len() != s.len() {
                return Err(ModelError::checkpoint(
                    path,
                    format!("{group}.{} has {} values, expected {:?}", s.name, v.len(), s.shape),
                ));
            }
            bytes.push((
                format!("{group}.{}", s.name),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                s.shape.clone(),
            ));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, b, s)| {
            let view = TensorView::new(Dtype::F32, s.clone(), b)
                .map_err(|e| ModelError::checkpoint_caused(path, format!("cannot encode tensor {n}"), e))?;
            Ok((n.clone(), view))
        })
        .collect::<Result<_, ModelError>>()?;
    let mut md = HashMap::new();
    md.insert("format".to_string(), FORMAT.to_string());
    let json = serde_json::to_string(meta)
        .map_err(|e| ModelError::checkpoint_caused(path, "cannot encode the metadata", e))?;
    md.insert("meta".to_string(), json);
    let buf = safetensors::serialize(views, &Some(md))
        .map_err(|e| ModelError::checkpoint_caused(path, "cannot encode the tensors", e))?;
    scoreprior_core::io::atomic_write(path, &buf)?;
    Ok(())
}

/// Reads only the metadata of a checkpoint.
pub fn read_meta(path: impl AsRef<Path>) -> Result<Meta, ModelError> {
    let path = path.as_ref();
    // A regular file within the memory limit, read with a bounded reader.
    let buf = scoreprior_core::io::read_input(path)?;
    meta_of(path, &buf)
}

fn meta_of(path: &Path, buf: &[u8]) -> Result<Meta, ModelError> {
    let (_, md) = SafeTensors::read_metadata(buf)
        .map_err(|e| ModelError::checkpoint_caused(path, "not a safetensors file", e))?;
    let m = md.metadata().as_ref().ok_or_else(|| ModelError::checkpoint(path, "no metadata"))?;
    match m.get("format") {
        Some(f) if f == FORMAT => {}
        other => return Err(ModelError::checkpoint(path, format!("format {other:?}, expected {FORMAT}"))),
    }
    let s = m.get("meta").ok_or_else(|| ModelError::checkpoint(path, "no `meta` entry"))?;
    serde_json::from_str(s).map_err(|e| ModelError::checkpoint_caused(path, "bad metadata", e))
}

/// Loads a checkpoint into the network `net`: errors if the stored configuration or image
/// shape differs, or any tensor is missing or has another shape.
pub fn load(path: impl AsRef<Path>, net: &NcsnppNet) -> Result<(Meta, Tensors), ModelError> {
    let path = path.as_ref();
    // A regular file within the memory limit, read with a bounded reader.
    let buf = scoreprior_core::io::read_input(path)?;
    let meta = meta_of(path, &buf)?;
    if &meta.config != net.config() || meta.image != net.image_shape() {
        return Err(ModelError::shape(
            format!("the network of checkpoint {}", path.display()),
            format!("{:?} images with {:?}", net.image_shape(), net.config()),
            format!("{:?} images with {:?}", meta.image, meta.config),
        ));
    }
    let st = SafeTensors::deserialize(&buf)
        .map_err(|e| ModelError::checkpoint_caused(path, "cannot read the tensors", e))?;
    let group = |g: &str, required: bool| -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = Vec::new();
        for s in net.specs() {
            let name = format!("{g}.{}", s.name);
            let t = match st.tensor(&name) {
                Ok(t) => t,
                Err(_) if !required && out.is_empty() => return Ok(Vec::new()),
                Err(_) => return Err(ModelError::checkpoint(path, format!("missing tensor {name}"))),
            };
            if t.dtype() != Dtype::F32 || t.shape() != s.shape.as_slice() {
                return Err(ModelError::shape(
                    format!("tensor {name} of checkpoint {}", path.display()),
                    format!("F32 {:?}", s.shape),
                    format!("{:?} {:?}", t.dtype(), t.shape()),
                ));
            }
            out.push(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect());
        }
        Ok(out)
    };
    let ema = group("ema", true)?;
    let params = group("params", false)?;
    let adam_m = group("adam_m", false)?;
    let adam_v = group("adam_v", false)?;
    Ok((meta, Tensors { ema, params, adam_m, adam_v }))
}

/// Builds the network a checkpoint was saved from (configuration and image shape from its
/// metadata) and loads it.
pub fn load_any(path: impl AsRef<Path>) -> Result<(NcsnppNet, Meta, Tensors), ModelError> {
    let meta = read_meta(&path)?;
    let (c, h, w) = meta.image;
    let net = NcsnppNet::new(meta.config.clone(), c, h, w)?;
    let (meta, t) = load(path, &net)?;
    Ok((net, meta, t))
}
