//! Where things live in the object store, below the node id.
//!
//! ```text
//! <node>/snapshots/<u64::MAX - seq:020>.json                      snapshot records (newest first in a listing)
//! <node>/dbs/<db id>/<table id>/<YYYY-MM-DD>/<HH-MM>/<seq:020>.parquet   one file per table and chunk
//! ```
//! The date and time are the chunk's start (UTC); `seq` is the snapshot that wrote the file.

use gnomon_catalog::{DbId, TableId};
use object_store::path::Path;

pub fn snapshots_dir(node: &str) -> Path {
    Path::from(format!("{node}/snapshots"))
}

/// Where every Parquet file lives.
pub fn dbs_dir(node: &str) -> Path {
    Path::from(format!("{node}/dbs"))
}

pub fn snapshot_path(node: &str, sequence: u64) -> Path {
    Path::from(format!("{node}/snapshots/{:020}.json", u64::MAX - sequence))
}

/// The snapshot sequence a snapshot record's file name stands for.
pub fn snapshot_sequence_of(path: &Path) -> Option<u64> {
    let name = path.filename()?.strip_suffix(".json")?;
    let inverted: u64 = name.parse().ok()?;
    Some(u64::MAX - inverted)
}

pub fn parquet_path(
    node: &str,
    db: DbId,
    table: TableId,
    chunk_start_ns: i64,
    snapshot: u64,
) -> Path {
    let start = chrono::DateTime::from_timestamp(chunk_start_ns.div_euclid(1_000_000_000), 0)
        .unwrap_or_default();
    Path::from(format!(
        "{node}/dbs/{db}/{table}/{}/{snapshot:020}.parquet",
        start.format("%Y-%m-%d/%H-%M")
    ))
}

/// A compacted file: under its first chunk's directory, named after the newest snapshot it
/// holds and the time it was written (so a retried compaction never overwrites a listed file).
pub fn compacted_path(
    node: &str,
    db: DbId,
    table: TableId,
    chunk_start_ns: i64,
    snapshot: u64,
    written_ns: i64,
) -> Path {
    let dir = parquet_path(node, db, table, chunk_start_ns, snapshot);
    let dir = dir.as_ref().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    Path::from(format!(
        "{dir}/{snapshot:020}-compacted-{written_ns}.parquet"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_path_names_the_chunk_start_in_utc() {
        // 2024-02-29T13:50:00Z
        let ns = 1_709_214_600_i64 * 1_000_000_000;
        assert_eq!(
            parquet_path("node", 1, 7, ns, 42).as_ref(),
            "node/dbs/1/7/2024-02-29/13-50/00000000000000000042.parquet"
        );
        assert_eq!(
            parquet_path("n", 0, 0, -60_000_000_000, 1).as_ref(),
            "n/dbs/0/0/1969-12-31/23-59/00000000000000000001.parquet"
        );
    }

    #[test]
    fn snapshot_names_list_newest_first_and_round_trip() {
        let a = snapshot_path("n", 1);
        let b = snapshot_path("n", 2);
        assert!(b.as_ref() < a.as_ref());
        assert_eq!(snapshot_sequence_of(&a), Some(1));
        assert_eq!(snapshot_sequence_of(&b), Some(2));
        assert_eq!(
            snapshot_sequence_of(&Path::from("n/snapshots/x.json")),
            None
        );
    }
}
