//! The Gnomon catalog: which databases, tables and columns exist, and under which ids.
//!
//! # What this crate owns
//! - Databases (with retention period), tables and columns, each with a stable numeric id
//!   that is never reused, not even after deletion: database ids are global, table ids are
//!   per database, column ids per table. Every table has a `time` column (id 0).
//! - Column kinds (tag, time, typed field), which never change once created.
//! - Series keys: a table's tag columns in the order they were first seen.
//! - Soft deletion: a deleted database or table is renamed `<name>-<YYYYMMDDTHHMMSS>` (UTC),
//!   keeps its ids, frees its name and stops counting toward the limits at once.
//! - The definitions of each table's last-value and distinct-value caches (`cache.rs`): their
//!   columns, limits and defaults. The cached data is the cache crate's.
//! - Processing-engine trigger definitions per database (`trigger.rs`): the parsed
//!   specification, settings, arguments and the `disabled` flag. Running them is the engine's.
//! - The name rules (v3 database names, API.md §2.1; table/column names) and the limits.
//! - Persistence of all of the above in an object store, and serialising schema changes
//!   through [`CatalogTransaction`]s.
//!
//! It must not know about line protocol, the WAL, Arrow, queries or HTTP: callers translate
//! their inputs into catalog calls, and [`CatalogError::status_class`] is as close to HTTP as
//! it gets.
//!
//! # Reading and changing
//! [`Catalog::snapshot`] returns an immutable [`CatalogSnapshot`]; readers never wait for
//! writers. [`Catalog::begin`] takes the single writer lock and returns a transaction working
//! on a private copy; [`CatalogTransaction::commit`] persists, then publishes. Two writers
//! racing to create the same table or column therefore serialise: the second sees the first's
//! result and succeeds if the kinds agree, or gets a type conflict if they do not.
//! [`CatalogTransaction::savepoint`]/[`CatalogTransaction::rollback_to`] undo the changes of
//! one rejected line of a write.
//!
//! # Name rules
//! - Databases: the v3 rules with the reference's messages ([`validate_database_name`]). As
//!   they require a leading letter or digit, users cannot create `_`-prefixed databases;
//!   `_internal` is created with the catalog (7-day retention), does not count toward the
//!   database limit, its tables not toward the table limit, and it cannot be deleted.
//! - Tables and columns: non-empty and without control characters ([`validate_table_name`]).
//!   Refusing control characters is a deliberate difference from the reference (see there).
//! - `time` and `__chunk_order` are reserved column names (`'time' is a reserved column`).
//!
//! # Storage format
//! Everything lives under `<prefix>/catalog/`:
//!
//! - `log/<sequence, 20 digits>.json` — one object per committed transaction, written with
//!   `PutMode::Create` so an entry is never overwritten (atomic on the local store and S3).
//! - `checkpoint.json` — the full state as of some sequence, overwritten after every entry
//!   whose sequence is a multiple of [`CHECKPOINT_INTERVAL`] (and on load after replaying at
//!   least that many), so loading reads one checkpoint plus fewer than ~100 entries.
//!
//! Both are one JSON line `{"crc32":<u32>,"body":{...}}` where `crc32` is the CRC-32 (IEEE) of
//! the exact bytes of `body` as written. A log body is
//! `{"version":1,"catalog_uuid":..,"sequence":N,"time_ns":..,"ops":[{"op":"create_table",..},..]}`;
//! ops carry explicit ids and names (see `ops.rs`), so replay decides nothing. A checkpoint
//! body is `{"version":1,"catalog_uuid":..,"sequence":N,"next_db_id":..,"databases":[..]}`
//! with every database, table (deleted included) and column and the `next_*_id` counters.
//!
//! Loading reads the checkpoint, lists the log entries after its sequence and applies them in
//! order. A checksum mismatch, an unreadable or foreign (other uuid) object, an unknown format
//! version or a gap in the sequence is [`CatalogError::Corrupt`] naming the object: skipping
//! an entry could reuse ids that data files already refer to. Old log entries are kept (they
//! are small) so a damaged checkpoint can be deleted and rebuilt from the full log.
//!
//! A new catalog gets a fresh uuid; its entry 1 creates `_internal`.

mod cache;
mod catalog;
mod error;
mod names;
mod ops;
mod persist;
mod schema;
mod trigger;

pub use cache::{
    is_distinct_cache_kind, is_last_cache_key_kind, CacheId, DistinctCacheDefinition,
    DistinctCacheRequest, LastCacheDefinition, LastCacheRequest,
    DISTINCT_CACHE_DEFAULT_MAX_AGE_SECONDS, DISTINCT_CACHE_DEFAULT_MAX_CARDINALITY,
    DISTINCT_CACHE_RESERVED_NAME, LAST_CACHE_DEFAULT_COUNT, LAST_CACHE_DEFAULT_TTL_SECONDS,
    LAST_CACHE_MAX_COUNT,
};
pub use catalog::{Catalog, CatalogTransaction, Savepoint};
pub use error::{CatalogError, LimitError, StatusClass};
pub use names::{
    deletion_timestamp, validate_column_name, validate_database_name, validate_table_name,
    NameError, CHUNK_ORDER_COLUMN_NAME, INTERNAL_DB_NAME, INTERNAL_DB_RETENTION_NS,
    MAX_DATABASE_NAME_LENGTH, TIME_COLUMN_NAME,
};
pub use persist::{CHECKPOINT_INTERVAL, FORMAT_VERSION};
pub use schema::{
    CatalogSnapshot, ColumnId, ColumnKind, ColumnSchema, DatabaseSchema, DbId, FieldType, Limits,
    TableId, TableSchema,
};
pub use trigger::{
    validate_cron, ErrorBehavior, PluginType, TriggerDefinition, TriggerSettings, TriggerSpecError,
    TriggerSpecification,
};
pub use uuid::Uuid;
