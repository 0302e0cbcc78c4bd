//! CSV tables through serde and the `csv` crate: one header line from the row type's field
//! names, one record per row, written atomically; read back into the same type. Non-finite
//! floats are written as `NaN`/`inf` and read back as such.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{atomic_write, IoError};

/// The CSV text of `rows` (header from the first row's field names; empty input gives no
/// header, as there is no row to name the columns).
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Row { step: usize, loss: f64 }
/// let b = scoreprior_core::io::csv_bytes(&[Row { step: 0, loss: 1.5 }, Row { step: 1, loss: f64::NAN }]).unwrap();
/// assert_eq!(String::from_utf8(b).unwrap(), "step,loss\n0,1.5\n1,NaN\n");
/// ```
pub fn csv_bytes<T: Serialize>(rows: &[T]) -> Result<Vec<u8>, IoError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| IoError::Unsupported { path: "(csv)".into(), why: e.to_string() })?;
    }
    w.into_inner().map_err(|e| IoError::Unsupported { path: "(csv)".into(), why: e.to_string() })
}

/// Writes `rows` as CSV to `path`, atomically (temp file + rename).
///
/// # Errors
/// A row that CSV cannot hold (nested data), or the file system's error, naming the path.
pub fn write_csv<T: Serialize>(path: impl AsRef<Path>, rows: &[T]) -> Result<(), IoError> {
    let path = path.as_ref();
    let bytes = csv_bytes(rows).map_err(|e| match e {
        IoError::Unsupported { why, .. } => IoError::Unsupported { path: path.display().to_string(), why },
        other => other,
    })?;
    atomic_write(path, &bytes)
}

/// Reads a CSV file with a header into rows of `T` (columns matched by name).
///
/// # Errors
/// A missing file, or a malformed record (naming its line).
pub fn read_csv<T: DeserializeOwned>(path: impl AsRef<Path>) -> Result<Vec<T>, IoError> {
    let path = path.as_ref();
    let mut r = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => IoError::os(path, io),
        other => IoError::malformed(path, "CSV", format!("{other:?}")),
    })?;
    r.deserialize().map(|row| row.map_err(|e| IoError::malformed(path, "CSV", e.to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Row {
        step: usize,
        loss: f64,
        label: String,
    }

    #[test]
    fn rows_round_trip_with_non_finite_values_and_commas() {
        let dir = std::env::temp_dir().join(format!("scoreprior-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.csv");
        let rows = vec![
            Row { step: 0, loss: 0.25, label: "a,b".into() },
            Row { step: 1, loss: f64::INFINITY, label: "c".into() },
        ];
        write_csv(&p, &rows).unwrap();
        let back: Vec<Row> = read_csv(&p).unwrap();
        assert_eq!(back, rows);
        let nan: Vec<Row> = {
            std::fs::write(&p, "step,loss,label\n3,NaN,x\n").unwrap();
            read_csv(&p).unwrap()
        };
        assert!(nan[0].loss.is_nan());
        std::fs::write(&p, "step,loss,label\nnot a number,1,x\n").unwrap();
        let e = read_csv::<Row>(&p).unwrap_err().to_string();
        assert!(e.contains("t.csv") && e.contains("CSV"), "{e}");
        assert!(matches!(read_csv::<Row>(dir.join("missing.csv")), Err(IoError::Os { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
