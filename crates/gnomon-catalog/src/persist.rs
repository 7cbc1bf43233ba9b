//! The persisted form of the catalog: checksummed log entries plus a periodic checkpoint.
//! See the crate docs for the layout.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracing::{debug, info};
use uuid::Uuid;

use crate::cache::{CacheId, DistinctCacheDefinition, LastCacheDefinition};
use crate::error::CatalogError;
use crate::ops::CatalogOp;
use crate::schema::{
    CatalogSnapshot, ColumnId, ColumnKind, ColumnSchema, DatabaseSchema, DbId, Deletion, TableId,
    TableSchema,
};
use crate::trigger::TriggerDefinition;

/// Version of the log-entry and checkpoint bodies. Readers refuse versions they don't know.
pub const FORMAT_VERSION: u32 = 1;

/// A checkpoint is written after every log entry whose sequence is a multiple of this, and at
/// load when at least this many entries had to be replayed.
pub const CHECKPOINT_INTERVAL: u64 = 100;

/// Where the catalog's objects live under a prefix.
#[derive(Debug, Clone)]
pub(crate) struct CatalogPaths {
    log_dir: Path,
    checkpoint: Path,
}

impl CatalogPaths {
    pub(crate) fn new(prefix: &Path) -> Self {
        let root = prefix.clone().join("catalog");
        CatalogPaths {
            log_dir: root.clone().join("log"),
            checkpoint: root.join("checkpoint.json"),
        }
    }

    pub(crate) fn log_entry(&self, sequence: u64) -> Path {
        self.log_dir
            .clone()
            .join(format!("{sequence:020}.json").as_str())
    }

    pub(crate) fn checkpoint(&self) -> &Path {
        &self.checkpoint
    }

    /// The sequence of a log-entry object, or `None` for anything else in the directory
    /// (e.g. a local store's staging file left by a crash).
    fn parse_log_entry(&self, location: &Path) -> Option<u64> {
        let name = location.filename()?;
        let digits = name.strip_suffix(".json")?;
        if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }
}

#[derive(Serialize)]
struct LogBodyRef<'a> {
    version: u32,
    catalog_uuid: Uuid,
    sequence: u64,
    time_ns: i64,
    ops: &'a [CatalogOp],
}

#[derive(Deserialize)]
struct LogBody {
    version: u32,
    catalog_uuid: Uuid,
    sequence: u64,
    #[allow(dead_code)] // kept in the file for operators; replay does not need it
    time_ns: i64,
    ops: Vec<CatalogOp>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    crc32: u32,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// Wraps a serialized body as `{"crc32":<crc of the body's bytes>,"body":<body>}`.
fn frame(body: &str) -> Bytes {
    let crc = crc32fast::hash(body.as_bytes());
    Bytes::from(format!("{{\"crc32\":{crc},\"body\":{body}}}\n"))
}

/// Verifies the envelope of `object` and returns the exact text of its body.
fn unframe<'a>(object: &Path, bytes: &'a [u8]) -> Result<&'a str, CatalogError> {
    let envelope: Envelope<'a> = serde_json::from_slice(bytes).map_err(|e| {
        CatalogError::corrupt(
            object,
            format!("not a checksummed catalog object ({e}); truncated or overwritten?"),
        )
    })?;
    let body = envelope.body.get();
    let actual = crc32fast::hash(body.as_bytes());
    if actual != envelope.crc32 {
        return Err(CatalogError::corrupt(
            object,
            format!(
                "checksum mismatch: stored crc32 {} but content has {actual}",
                envelope.crc32
            ),
        ));
    }
    Ok(body)
}

fn check_version(object: &Path, version: u32) -> Result<(), CatalogError> {
    if version != FORMAT_VERSION {
        return Err(CatalogError::corrupt(
            object,
            format!(
                "unsupported catalog format version {version} (this build reads {FORMAT_VERSION})"
            ),
        ));
    }
    Ok(())
}

pub(crate) fn encode_log_entry(
    uuid: Uuid,
    sequence: u64,
    time_ns: i64,
    ops: &[CatalogOp],
) -> Result<Bytes, CatalogError> {
    let body = serde_json::to_string(&LogBodyRef {
        version: FORMAT_VERSION,
        catalog_uuid: uuid,
        sequence,
        time_ns,
        ops,
    })?;
    Ok(frame(&body))
}

fn decode_log_entry(object: &Path, bytes: &[u8]) -> Result<LogBody, CatalogError> {
    let body = unframe(object, bytes)?;
    let body: LogBody = serde_json::from_str(body)
        .map_err(|e| CatalogError::corrupt(object, format!("unreadable log entry: {e}")))?;
    check_version(object, body.version)?;
    Ok(body)
}

#[derive(Serialize, Deserialize)]
struct CheckpointBody {
    version: u32,
    catalog_uuid: Uuid,
    sequence: u64,
    next_db_id: DbId,
    databases: Vec<DatabaseDto>,
}

#[derive(Serialize, Deserialize)]
struct DatabaseDto {
    id: DbId,
    name: String,
    internal: bool,
    retention_period_ns: Option<i64>,
    deleted: bool,
    deleted_at_ns: Option<i64>,
    hard_delete_time_ns: Option<i64>,
    next_table_id: TableId,
    tables: Vec<TableDto>,
    // Absent in checkpoints written before triggers existed.
    #[serde(default)]
    triggers: Vec<TriggerDefinition>,
}

#[derive(Serialize, Deserialize)]
struct TableDto {
    id: TableId,
    name: String,
    deleted: bool,
    deleted_at_ns: Option<i64>,
    hard_delete_time_ns: Option<i64>,
    next_column_id: ColumnId,
    columns: Vec<ColumnDto>,
    // Absent in checkpoints written before caches existed.
    #[serde(default)]
    next_cache_id: CacheId,
    #[serde(default)]
    last_caches: Vec<LastCacheDefinition>,
    #[serde(default)]
    distinct_caches: Vec<DistinctCacheDefinition>,
}

#[derive(Serialize, Deserialize)]
struct ColumnDto {
    id: ColumnId,
    name: String,
    kind: ColumnKind,
}

pub(crate) fn encode_checkpoint(state: &CatalogSnapshot) -> Result<Bytes, CatalogError> {
    // By id, so that a database's place in the file does not move when it is renamed.
    let mut databases: Vec<&Arc<DatabaseSchema>> = state.databases().collect();
    databases.sort_by_key(|d| d.id);
    let body = CheckpointBody {
        version: FORMAT_VERSION,
        catalog_uuid: state.uuid(),
        sequence: state.sequence(),
        next_db_id: state.next_db_id(),
        databases: databases
            .into_iter()
            .map(|db| {
                let mut tables: Vec<&Arc<TableSchema>> = db.all_tables().collect();
                tables.sort_by_key(|t| t.id);
                DatabaseDto {
                    id: db.id,
                    name: db.name.to_string(),
                    internal: db.is_internal(),
                    retention_period_ns: db.retention_period_ns(),
                    deleted: db.deleted(),
                    deleted_at_ns: db.deleted_at_ns(),
                    hard_delete_time_ns: db.hard_delete_time_ns(),
                    next_table_id: db.next_table_id(),
                    tables: tables
                        .into_iter()
                        .map(|t| TableDto {
                            id: t.id,
                            name: t.name.to_string(),
                            deleted: t.deleted(),
                            deleted_at_ns: t.deleted_at_ns(),
                            hard_delete_time_ns: t.hard_delete_time_ns(),
                            next_column_id: t.next_column_id(),
                            columns: t
                                .columns()
                                .iter()
                                .map(|c| ColumnDto {
                                    id: c.id,
                                    name: c.name.to_string(),
                                    kind: c.kind,
                                })
                                .collect(),
                            next_cache_id: t.next_cache_id(),
                            last_caches: t.last_caches().iter().map(|c| (**c).clone()).collect(),
                            distinct_caches: t
                                .distinct_caches()
                                .iter()
                                .map(|c| (**c).clone())
                                .collect(),
                        })
                        .collect(),
                    // The field, not `triggers()`: a deleted database keeps its triggers.
                    triggers: db.triggers.values().map(|t| (**t).clone()).collect(),
                }
            })
            .collect(),
    };
    Ok(frame(&serde_json::to_string(&body)?))
}

fn decode_checkpoint(object: &Path, bytes: &[u8]) -> Result<CatalogSnapshot, CatalogError> {
    let body = unframe(object, bytes)?;
    let body: CheckpointBody = serde_json::from_str(body)
        .map_err(|e| CatalogError::corrupt(object, format!("unreadable checkpoint: {e}")))?;
    check_version(object, body.version)?;
    let bad = |reason: String| CatalogError::corrupt(object, reason);

    let mut state = CatalogSnapshot::empty(body.catalog_uuid);
    state.set_sequence(body.sequence);
    for db_dto in body.databases {
        let mut db = DatabaseSchema::new(
            db_dto.id,
            db_dto.name.into(),
            db_dto.retention_period_ns,
            db_dto.internal,
        );
        db.deletion = Deletion {
            deleted: db_dto.deleted,
            deleted_at_ns: db_dto.deleted_at_ns,
            hard_delete_time_ns: db_dto.hard_delete_time_ns,
        };
        for t_dto in db_dto.tables {
            let mut table = TableSchema::new(t_dto.id, t_dto.name.into());
            table.deletion = Deletion {
                deleted: t_dto.deleted,
                deleted_at_ns: t_dto.deleted_at_ns,
                hard_delete_time_ns: t_dto.hard_delete_time_ns,
            };
            for c in t_dto.columns {
                table
                    .add_column(ColumnSchema {
                        id: c.id,
                        name: c.name.into(),
                        kind: c.kind,
                    })
                    .map_err(bad)?;
            }
            table.next_column_id = table.next_column_id.max(t_dto.next_column_id);
            for c in t_dto.last_caches {
                table.add_last_cache(c).map_err(bad)?;
            }
            for c in t_dto.distinct_caches {
                table.add_distinct_cache(c).map_err(bad)?;
            }
            table.next_cache_id = table.next_cache_id.max(t_dto.next_cache_id);
            db.add_table(table).map_err(bad)?;
        }
        for trigger in db_dto.triggers {
            db.add_trigger(trigger).map_err(bad)?;
        }
        db.next_table_id = db.next_table_id.max(db_dto.next_table_id);
        state.add_database(db).map_err(bad)?;
    }
    state.next_db_id = state.next_db_id.max(body.next_db_id);
    Ok(state)
}

/// Reads an object, mapping "not there" to `None`.
async fn get_optional(store: &dyn ObjectStore, path: &Path) -> Result<Option<Bytes>, CatalogError> {
    let result = match store.get(path).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(CatalogError::storage(format!("reading {path}"), e)),
    };
    let bytes = result
        .bytes()
        .await
        .map_err(|e| CatalogError::storage(format!("reading {path}"), e))?;
    Ok(Some(bytes))
}

/// The persisted catalog, rebuilt.
pub(crate) struct Loaded {
    pub(crate) state: CatalogSnapshot,
    /// Log entries applied on top of the checkpoint.
    pub(crate) replayed: u64,
}

/// Loads the checkpoint (if any) and replays every log entry after it. `Ok(None)` when
/// nothing has ever been persisted under these paths.
///
/// Every object's checksum is verified and entries must follow each other without gaps;
/// anything else is [`CatalogError::Corrupt`] naming the object, because silently skipping an
/// entry would reuse ids or lose columns that data files already refer to.
pub(crate) async fn load(
    store: &dyn ObjectStore,
    paths: &CatalogPaths,
) -> Result<Option<Loaded>, CatalogError> {
    let checkpoint = match get_optional(store, paths.checkpoint()).await? {
        Some(bytes) => Some(decode_checkpoint(paths.checkpoint(), &bytes)?),
        None => None,
    };
    let from = checkpoint.as_ref().map_or(0, |c| c.sequence());

    // Entries at or below the checkpoint are history; list only what follows it (stores with
    // native offset listing never even return the old ones).
    let offset = paths.log_entry(from);
    let mut entries: Vec<(u64, Path)> = store
        .list_with_offset(Some(&paths.log_dir), &offset)
        .map_err(|e| CatalogError::storage(format!("listing {}", paths.log_dir), e))
        .try_filter_map(|meta| {
            let entry = paths
                .parse_log_entry(&meta.location)
                .filter(|&seq| seq > from)
                .map(|seq| (seq, meta.location.clone()));
            if entry.is_none() {
                debug!(object = %meta.location, "ignoring non-entry object in the catalog log");
            }
            futures::future::ready(Ok(entry))
        })
        .try_collect()
        .await?;
    entries.sort_by_key(|(seq, _)| *seq);

    let mut state = match checkpoint {
        Some(state) => state,
        None if entries.is_empty() => return Ok(None),
        // The uuid comes from the first entry.
        None => CatalogSnapshot::empty(Uuid::nil()),
    };

    let mut replayed = 0;
    for (sequence, path) in entries {
        let expected = state.sequence() + 1;
        if sequence != expected {
            return Err(CatalogError::corrupt(
                paths.log_entry(expected),
                format!(
                    "missing catalog log entry {expected} (the next one present is {sequence})"
                ),
            ));
        }
        let bytes = get_optional(store, &path)
            .await?
            .ok_or_else(|| CatalogError::corrupt(&path, "listed but vanished while loading"))?;
        let body = decode_log_entry(&path, &bytes)?;
        if body.sequence != sequence {
            return Err(CatalogError::corrupt(
                &path,
                format!("entry says it is sequence {}", body.sequence),
            ));
        }
        if state.uuid().is_nil() {
            state = CatalogSnapshot::empty(body.catalog_uuid);
        } else if body.catalog_uuid != state.uuid() {
            return Err(CatalogError::corrupt(
                &path,
                format!(
                    "entry belongs to catalog {} but this catalog is {}",
                    body.catalog_uuid,
                    state.uuid()
                ),
            ));
        }
        for op in &body.ops {
            state
                .apply(op)
                .map_err(|reason| CatalogError::corrupt(&path, reason))?;
        }
        state.set_sequence(sequence);
        replayed += 1;
    }
    info!(
        uuid = %state.uuid(),
        sequence = state.sequence(),
        checkpoint = from,
        replayed,
        "catalog loaded"
    );
    Ok(Some(Loaded { state, replayed }))
}

/// Outcome of writing a log entry.
pub(crate) enum PutOutcome {
    Written,
    /// Another writer (or an earlier, seemingly failed attempt of ours with other content)
    /// already holds this sequence.
    Taken,
}

/// Writes a log entry without ever overwriting one. If the object already exists with
/// exactly our bytes (a retried request whose first attempt did land) that is success.
pub(crate) async fn put_log_entry(
    store: &dyn ObjectStore,
    path: &Path,
    bytes: Bytes,
) -> Result<PutOutcome, CatalogError> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store
        .put_opts(path, PutPayload::from_bytes(bytes.clone()), opts)
        .await
    {
        Ok(_) => Ok(PutOutcome::Written),
        Err(object_store::Error::AlreadyExists { .. }) => match get_optional(store, path).await? {
            Some(existing) if existing == bytes => Ok(PutOutcome::Written),
            _ => Ok(PutOutcome::Taken),
        },
        Err(e) => Err(CatalogError::storage(format!("writing {path}"), e)),
    }
}

/// Writes (overwrites) the checkpoint. An object-store put is atomic, so readers see the old
/// or the new checkpoint, never a mix.
pub(crate) async fn put_checkpoint(
    store: &dyn ObjectStore,
    paths: &CatalogPaths,
    state: &CatalogSnapshot,
) -> Result<(), CatalogError> {
    let bytes = encode_checkpoint(state)?;
    store
        .put(paths.checkpoint(), PutPayload::from_bytes(bytes))
        .await
        .map_err(|e| CatalogError::storage(format!("writing {}", paths.checkpoint()), e))?;
    Ok(())
}
