//! Persistence: the write buffer's chunks as Parquet files in the object store.
//!
//! This crate owns:
//! - the object-store layout of snapshot records and Parquet files ([`layout`]);
//! - the Parquet encoding of a chunk (sorted by tags then time, zstd, dictionaries for tags,
//!   delta encoding for time and integers, statistics) ([`writer`]);
//! - the persisted-file index rebuilt from snapshot records at start-up, and the WAL
//!   watermarks replay uses to skip rows already persisted ([`index`]);
//! - the snapshot procedure and its trigger, the background removal of deleted and expired
//!   data, and the compaction task ([`persister`]);
//! - compaction planning and the streaming merge of sorted files ([`compactor`]);
//! - the series tail: each file's newest row per series in its last row group ([`tail`]);
//! - the in-memory cache of recently persisted files ([`cache`]);
//! - the "last write wins" merge of rows with the same series and time across sources
//!   ([`dedup`]), shared with the query engine.
//!
//! It must not reach into SQL or HTTP: the query crate reads files through [`FileIndex`] and
//! [`ParquetCache`]; the server triggers snapshots through [`Persister::snapshot`]. It reads
//! the buffer and the WAL only through their public persistence hooks (`freeze`,
//! `frozen_batch`, `drop_frozen`, `remove_up_to`).

pub mod cache;
pub mod compactor;
pub mod dedup;
pub mod index;
pub mod layout;
pub mod persister;
pub mod tail;
pub mod writer;

pub use cache::ParquetCache;
pub use index::{FileIndex, ParquetFile, SnapshotRecord};
pub use persister::{
    CompactionSummary, CrashPoint, Persister, PersisterConfig, SnapshotMode, SnapshotSummary,
};

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("wal: {0}")]
    Wal(#[from] gnomon_wal::WalError),
    #[error("corrupt snapshot record {path}: {message}")]
    Corrupt { path: String, message: String },
    #[error("internal error: {0}")]
    Internal(String),
}
