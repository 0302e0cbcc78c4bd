//! The map from the flow's output to the image, `u = b + L·G_θ(z)` and `x = softplus(u)` for
//! positive images (`b` the starting point, `L` the Laplace factor, either absent), written
//! beside each run's checkpoint so that another run can start from its trained flow
//! (`PosteriorSettings::init_flow`): `flow_map.json` says what the map holds,
//! `flow_offset.npy` is `b`, `flow_factor.npy` is `L` (row-major, `D × D`).

use std::path::Path;

use scoreprior_core::dpi::{read_checkpoint_parts, AffineFactor, CHECKPOINT_FILE};
use scoreprior_core::io::{atomic_write, read_npy, write_npy, IoError};
use scoreprior_models::realnvp::RealNvp;
use serde::{Deserialize, Serialize};

use super::{invalid, Result};

const MAP_FILE: &str = "flow_map.json";
const OFFSET_FILE: &str = "flow_offset.npy";
const FACTOR_FILE: &str = "flow_factor.npy";

/// What `flow_map.json` records.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct MapRecord {
    dim: usize,
    positive: bool,
    offset: bool,
    factor: bool,
}

/// The map of a run: positivity, the offset `b` (in `u`) and the factor `L`.
pub(super) struct FlowMap {
    pub positive: bool,
    pub offset: Option<Vec<f64>>,
    pub factor: Option<AffineFactor>,
}

/// Writes the map into `dir` (the offset and factor first, the record last: a record names only
/// files that are complete).
pub(super) fn write(dir: &Path, d: usize, map: &FlowMap) -> Result<()> {
    if let Some(b) = &map.offset {
        write_npy(dir.join(OFFSET_FILE), &[d], b)?;
    }
    if let Some(f) = &map.factor {
        write_npy(dir.join(FACTOR_FILE), &[d, d], &f.factor())?;
    }
    let record =
        MapRecord { dim: d, positive: map.positive, offset: map.offset.is_some(), factor: map.factor.is_some() };
    let json =
        serde_json::to_string_pretty(&record).map_err(|e| IoError::encode(&dir.join(MAP_FILE), "flow map", e))?;
    atomic_write(dir.join(MAP_FILE), json.as_bytes())?;
    Ok(())
}

/// Checks that `dir` holds a finished run's checkpoint and flow map for `d` pixels of the given
/// positivity, and returns the map's record (cheap: for the builder's checks before any work).
///
/// # Errors
/// [`super::ExperimentError::Invalid`] naming `posterior.init_flow` for a folder without a
/// run's files, or one whose run had another size or positivity.
pub(super) fn check(dir: &Path, d: usize, positive: bool) -> Result<()> {
    read_record(dir, d, positive, INIT_FLOW).map(|_| ())
}

/// The setting whose folder is read, named in the errors.
const INIT_FLOW: &str = "posterior.init_flow";

fn read_record(dir: &Path, d: usize, positive: bool, field: &'static str) -> Result<MapRecord> {
    let record_path = dir.join(MAP_FILE);
    for p in [&record_path, &dir.join(CHECKPOINT_FILE)] {
        if !p.is_file() {
            return Err(invalid(
                field,
                format!(
                    "{} has no {} (not the output folder of a DPI run of this version)",
                    dir.display(),
                    p.display()
                ),
            ));
        }
    }
    let text = scoreprior_core::io::read_input(&record_path)?;
    let record: MapRecord = serde_json::from_slice(&text)
        .map_err(|e| invalid(field, format!("{}: not a flow map: {e}", record_path.display())))?;
    if record.dim != d || record.positive != positive {
        return Err(invalid(
            field,
            format!(
                "{}'s run had {} pixels{}; this one has {d}{}",
                dir.display(),
                record.dim,
                if record.positive { ", positive" } else { "" },
                if positive { ", positive" } else { "" }
            ),
        ));
    }
    Ok(record)
}

/// The trained flow of the run in `dir` (its checkpoint's parameters, with the optimiser's state
/// forgotten) and its map, for a run of `d` pixels whose positivity is `positive`.
///
/// # Errors
/// As [`check`]; the files' own read errors.
pub(super) fn read_trained(dir: &Path, d: usize, positive: bool) -> Result<(RealNvp, FlowMap)> {
    let field = INIT_FLOW;
    let map = read_parts(dir, d, positive, field)?;
    let checkpoint = dir.join(CHECKPOINT_FILE);
    let (_, state) = read_checkpoint_parts(&checkpoint)?;
    let mut flow = RealNvp::from_state(&state)?;
    if flow.dim() != d {
        return Err(invalid(
            field,
            format!("{}: its flow has {} dimensions, not {d}", checkpoint.display(), flow.dim()),
        ));
    }
    flow.reset_optimizer();
    Ok((flow, map))
}

/// The record, offset and factor in `dir`, checked against `d` and `positive`.
fn read_parts(dir: &Path, d: usize, positive: bool, field: &'static str) -> Result<FlowMap> {
    let record = read_record(dir, d, positive, field)?;
    let offset = if record.offset { Some(read_vector(&dir.join(OFFSET_FILE), &[d], field)?) } else { None };
    let factor = if record.factor {
        let l = read_vector(&dir.join(FACTOR_FILE), &[d, d], field)?;
        Some(AffineFactor::from_factor(&l, d)?)
    } else {
        None
    };
    Ok(FlowMap { positive, offset, factor })
}

/// The map a stopped run wrote into its own folder `dir` beside its checkpoint, for its resume
/// (`None` when it has no checkpoint and map yet): the resumed run trains on under the very map
/// it started with, instead of recomputing it (a Laplace factor is a Hessian of `D` columns
/// and an eigendecomposition: about a minute at 32 × 32).
///
/// # Errors
/// The files' read errors, or a map of another size or positivity, naming `dpi.resume`.
pub(super) fn read_saved(dir: &Path, d: usize, positive: bool) -> Result<Option<FlowMap>> {
    if !(dir.join(MAP_FILE).is_file() && dir.join(CHECKPOINT_FILE).is_file()) {
        return Ok(None);
    }
    read_parts(dir, d, positive, "dpi.resume").map(Some)
}

/// A `.npy` of exactly `shape` with finite values.
fn read_vector(path: &Path, shape: &[usize], field: &'static str) -> Result<Vec<f64>> {
    let a = read_npy(path)?;
    if a.shape != shape {
        return Err(invalid(field, format!("{} has shape {:?}, expected {shape:?}", path.display(), a.shape)));
    }
    if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
        return Err(invalid(field, format!("{}: value {i} is not finite", path.display())));
    }
    Ok(a.data)
}
