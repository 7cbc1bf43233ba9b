//! The persisted-file index: which Parquet files hold which table's rows, rebuilt at start-up
//! from the snapshot records in the object store.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use gnomon_catalog::{DbId, TableId};
use gnomon_write_buffer::PersistedWatermarks;
use hashbrown::HashMap;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::{layout, PersistError};

/// Version of the snapshot record format.
pub const SNAPSHOT_RECORD_VERSION: u32 = 1;

/// One persisted Parquet file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParquetFile {
    /// Object path, relative to the object store root.
    pub path: String,
    pub db_id: DbId,
    pub table_id: TableId,
    /// The buffer chunk it was written from: `[chunk_start, chunk_end)` in ns.
    pub chunk_start: i64,
    pub chunk_end: i64,
    /// Smallest and largest `time` in the file (ns, inclusive).
    pub min_time: i64,
    pub max_time: i64,
    pub row_count: u64,
    pub size_bytes: u64,
    /// Every row of this chunk written by a WAL entry up to this sequence is in this file or
    /// in an older file of the same chunk.
    pub max_wal_sequence: u64,
    /// The snapshot that wrote it; among files of one chunk, a higher one holds newer writes.
    /// A compacted file carries the highest snapshot of the files it replaced, so it still
    /// sorts before any file written after them.
    pub snapshot: u64,
    /// A compacted file spans several chunks: per chunk start, the WAL sequence its rows are
    /// persisted up to (replay watermarks). Empty for a file of one chunk, whose watermark is
    /// `max_wal_sequence` at `chunk_start`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunk_watermarks: Vec<(i64, u64)>,
}

impl ParquetFile {
    /// The object path. `path` holds it as `Path` prints it, escapes included, so it is
    /// parsed back rather than built from parts (which would escape the escapes: a node id
    /// with a space or a `%` then named a file that does not exist).
    pub fn location(&self) -> object_store::path::Path {
        object_store::path::Path::parse(&self.path)
            .unwrap_or_else(|_| object_store::path::Path::from(self.path.as_str()))
    }

    /// Per chunk start, the WAL sequence up to which this file (with older files of that
    /// chunk) holds the chunk's rows.
    pub fn watermarks(&self) -> Vec<(i64, u64)> {
        if self.chunk_watermarks.is_empty() {
            vec![(self.chunk_start, self.max_wal_sequence)]
        } else {
            self.chunk_watermarks.clone()
        }
    }
}

/// The file `<node>/snapshots/<inverted seq>.json`: what one snapshot added.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub version: u32,
    pub sequence: u64,
    /// The chunk duration the files were cut with (`--gen1-duration` of the first start).
    pub gen1_duration_ns: i64,
    /// Highest WAL sequence applied to the buffer when the snapshot was taken.
    pub wal_sequence: u64,
    pub added: Vec<ParquetFile>,
    /// Paths no longer part of the table (compaction, retention).
    #[serde(default)]
    pub removed: Vec<String>,
}

#[derive(Debug, Default)]
struct IndexState {
    /// Per table, files ordered by (chunk start, snapshot).
    tables: HashMap<(DbId, TableId), Vec<Arc<ParquetFile>>>,
    last_sequence: u64,
    gen1_duration_ns: Option<i64>,
}

/// Every persisted file, by table. Cheap to read concurrently.
#[derive(Debug, Default)]
pub struct FileIndex {
    state: RwLock<IndexState>,
}

impl FileIndex {
    /// Reads every snapshot record under `node` (a listing plus one small GET per record).
    pub async fn load(store: &Arc<dyn ObjectStore>, node: &str) -> Result<Self, PersistError> {
        let dir = layout::snapshots_dir(node);
        let paths: Vec<_> = store
            .list(Some(&dir))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        let mut records: Vec<SnapshotRecord> = futures::stream::iter(
            paths
                .into_iter()
                .filter(|p| layout::snapshot_sequence_of(p).is_some()),
        )
        .map(|path| {
            let store = Arc::clone(store);
            async move {
                let bytes = store.get(&path).await?.bytes().await?;
                let record: SnapshotRecord =
                    serde_json::from_slice(&bytes).map_err(|e| PersistError::Corrupt {
                        path: path.to_string(),
                        message: e.to_string(),
                    })?;
                if record.version != SNAPSHOT_RECORD_VERSION {
                    return Err(PersistError::Corrupt {
                        path: path.to_string(),
                        message: format!("unknown snapshot record version {}", record.version),
                    });
                }
                Ok::<_, PersistError>(record)
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await?;
        records.sort_by_key(|r| r.sequence);
        let index = FileIndex::default();
        for record in &records {
            index.apply(record);
        }
        Ok(index)
    }

    /// Adds a snapshot's files (and removes the ones it lists as removed).
    pub fn apply(&self, record: &SnapshotRecord) {
        let mut state = self.state.write();
        state.last_sequence = state.last_sequence.max(record.sequence);
        state
            .gen1_duration_ns
            .get_or_insert(record.gen1_duration_ns);
        if !record.removed.is_empty() {
            let removed: hashbrown::HashSet<&str> =
                record.removed.iter().map(String::as_str).collect();
            for files in state.tables.values_mut() {
                files.retain(|f| !removed.contains(f.path.as_str()));
            }
        }
        for file in &record.added {
            let files = state.tables.entry((file.db_id, file.table_id)).or_default();
            files.push(Arc::new(file.clone()));
            files.sort_by_key(|f| (f.chunk_start, f.snapshot));
        }
    }

    /// Files of the table that may hold rows with time in `[min, max]`, ordered by chunk and
    /// then by age (oldest first).
    pub fn files(&self, db: DbId, table: TableId, min: i64, max: i64) -> Vec<Arc<ParquetFile>> {
        self.state
            .read()
            .tables
            .get(&(db, table))
            .map(|files| {
                files
                    .iter()
                    .filter(|f| f.max_time >= min && f.min_time <= max)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every file, for listings.
    pub fn all_files(&self) -> Vec<Arc<ParquetFile>> {
        self.state
            .read()
            .tables
            .values()
            .flat_map(|f| f.iter().cloned())
            .collect()
    }

    /// Whether every one of `paths` is in the index.
    pub fn contains_all<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> bool {
        let state = self.state.read();
        let present: hashbrown::HashSet<&str> = state
            .tables
            .values()
            .flat_map(|files| files.iter().map(|f| f.path.as_str()))
            .collect();
        paths.into_iter().all(|p| present.contains(p))
    }

    pub fn last_sequence(&self) -> u64 {
        self.state.read().last_sequence
    }

    /// The chunk duration the existing files were cut with, if any were written.
    pub fn gen1_duration_ns(&self) -> Option<i64> {
        self.state.read().gen1_duration_ns
    }

    /// What replay must skip: per table and chunk, the WAL sequence covered by files.
    pub fn watermarks(&self) -> PersistedWatermarks {
        let mut marks = PersistedWatermarks::default();
        for ((db, table), files) in self.state.read().tables.iter() {
            for f in files {
                for (start, sequence) in f.watermarks() {
                    marks.insert(*db, *table, start, sequence);
                }
            }
        }
        marks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, start: i64, snapshot: u64) -> ParquetFile {
        ParquetFile {
            path: path.into(),
            db_id: 1,
            table_id: 2,
            chunk_start: start,
            chunk_end: start + 10,
            min_time: start,
            max_time: start + 9,
            row_count: 1,
            size_bytes: 1,
            max_wal_sequence: snapshot * 100,
            snapshot,
            chunk_watermarks: Vec::new(),
        }
    }

    #[tokio::test]
    async fn load_rebuilds_the_index_from_records_in_sequence_order() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        for (seq, added, removed) in [
            (1, vec![file("a", 0, 1), file("b", 10, 1)], vec![]),
            (2, vec![file("c", 0, 2)], vec![]),
            (
                3,
                vec![file("d", 0, 3)],
                vec!["a".to_string(), "c".to_string()],
            ),
        ] {
            let record = SnapshotRecord {
                version: SNAPSHOT_RECORD_VERSION,
                sequence: seq,
                gen1_duration_ns: 10,
                wal_sequence: seq * 100,
                added,
                removed,
            };
            store
                .put(
                    &layout::snapshot_path("node", seq),
                    serde_json::to_vec(&record).unwrap().into(),
                )
                .await
                .unwrap();
        }
        let index = FileIndex::load(&store, "node").await.unwrap();
        assert_eq!(index.last_sequence(), 3);
        assert_eq!(index.gen1_duration_ns(), Some(10));
        let paths: Vec<_> = index
            .files(1, 2, i64::MIN, i64::MAX)
            .iter()
            .map(|f| f.path.clone())
            .collect();
        assert_eq!(paths, ["d", "b"]);
        let paths: Vec<_> = index
            .files(1, 2, 10, 12)
            .iter()
            .map(|f| f.path.clone())
            .collect();
        assert_eq!(paths, ["b"]);
        assert!(index.files(1, 3, i64::MIN, i64::MAX).is_empty());
    }

    #[tokio::test]
    async fn a_corrupt_record_fails_the_load_with_its_path() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let path = layout::snapshot_path("node", 1);
        store.put(&path, "{not json".into()).await.unwrap();
        let err = FileIndex::load(&store, "node").await.unwrap_err();
        assert!(err.to_string().contains(path.as_ref()), "{err}");
    }
}
