//! `scoreprior train --resume` end to end: a run stopped after 2 steps and continued to 4 is
//! the uninterrupted 4-step run, bit for bit (loss rows, and every tensor and the metadata of
//! both checkpoint files).

mod common;

use common::{ok, tmp, train_data};

/// The metadata (parsed) and every tensor (name, dtype, shape, raw bytes) of a safetensors
/// file. The files are not compared byte for byte: the header's JSON object has no fixed key
/// order (the `__metadata__` map is written in hash order).
fn tensors(
    path: &std::path::Path,
) -> (serde_json::Value, std::collections::BTreeMap<String, (String, String, Vec<u8>)>) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut meta = serde_json::Value::Null;
    let mut out = std::collections::BTreeMap::new();
    for (name, v) in header {
        if name == "__metadata__" {
            // Values are strings; the `meta` one is itself JSON.
            let m = v.as_object().unwrap();
            meta = m
                .iter()
                .map(|(k, s)| {
                    let s = s.as_str().unwrap();
                    (k.clone(), serde_json::from_str(s).unwrap_or(serde_json::Value::String(s.into())))
                })
                .collect::<serde_json::Map<_, _>>()
                .into();
            continue;
        }
        let off: Vec<usize> =
            v["data_offsets"].as_array().unwrap().iter().map(|o| o.as_u64().unwrap() as usize).collect();
        out.insert(name, (v["dtype"].to_string(), v["shape"].to_string(), data[off[0]..off[1]].to_vec()));
    }
    (meta, out)
}

fn train(data: &str, out: &std::path::Path, steps: &str) -> std::process::Output {
    #[rustfmt::skip]
    let args = ["train", "--data", data, "--out", out.to_str().unwrap(), "--size", "8", "--config", "tiny",
                "--steps", steps, "--batch-size", "2", "--ckpt-every", "2", "--sample-every", "0", "--quiet"];
    let o = common::bin(&args);
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

#[test]
fn resumed_training_equals_an_uninterrupted_run() {
    let dir = tmp("train-resume");
    let data = train_data(&dir, 6);
    let data = data.to_str().unwrap();
    let (split, straight) = (dir.join("split"), dir.join("straight"));
    train(data, &split, "2");
    let first = std::fs::read_to_string(split.join("loss.csv")).unwrap();
    let o = train(data, &split, "4");
    assert!(String::from_utf8_lossy(&o.stderr).contains("resuming from"), "the second run must resume");
    train(data, &straight, "4");
    // The rows of steps 1–2 are the first run's, wall times included (a run that redid them
    // would time them anew); the loss rows without the wall-time column are the straight run's.
    let resumed = std::fs::read_to_string(split.join("loss.csv")).unwrap();
    assert_eq!(resumed.lines().take(3).collect::<Vec<_>>(), first.lines().collect::<Vec<_>>());
    let rows = |text: &str| {
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let skip = header.iter().position(|h| *h == "elapsed_s").expect("elapsed_s column");
        text.lines()
            .map(|l| l.split(',').enumerate().filter(|(i, _)| *i != skip).map(|(_, v)| v.to_string()).collect())
            .collect::<Vec<Vec<String>>>()
    };
    let fresh = std::fs::read_to_string(straight.join("loss.csv")).unwrap();
    assert_eq!(rows(&resumed).len(), 5);
    assert_eq!(rows(&resumed), rows(&fresh), "resumed loss rows differ from the uninterrupted run");
    for f in ["checkpoint.safetensors", "ema.safetensors"] {
        let (a, b) = (tensors(&split.join(f)), tensors(&straight.join(f)));
        assert!(a.1.len() > 10, "{f}: {} tensors", a.1.len());
        assert!(a == b, "{f} differs between the resumed and the uninterrupted run");
    }
    // `--restart` ignores the checkpoint: a fresh 2-step run again, the first run's losses.
    #[rustfmt::skip]
    ok(&["train", "--data", data, "--out", split.to_str().unwrap(), "--size", "8", "--config", "tiny", "--steps", "2",
         "--batch-size", "2", "--ckpt-every", "2", "--sample-every", "0", "--quiet", "--restart"]);
    let again = std::fs::read_to_string(split.join("loss.csv")).unwrap();
    assert_eq!(rows(&again), rows(&first));
}
