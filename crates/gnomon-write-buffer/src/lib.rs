//! The write path from line protocol text to queryable rows.
//!
//! This crate owns:
//! - validation of parsed lines against the catalog (schema on write, per-line errors,
//!   partial writes) and the columnar [`WriteBatch`] that results ([`validate`], [`batch`]);
//! - the order of a write: catalog changes are committed first, then the batch is appended to
//!   the WAL, and only once the WAL has made it durable is it applied to the queryable
//!   [`Buffer`] — by the WAL's flusher, in sequence order, so that "last write wins" holds;
//! - the in-memory [`Buffer`] that queries read as Arrow record batches.
//!
//! It must not reach into HTTP (status codes and bodies are the server's), SQL (the query
//! crate reads the buffer through [`Buffer::record_batches`]), or the WAL's file format.

pub mod batch;
pub mod buffer;
pub mod validate;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use gnomon_catalog::{Catalog, CatalogError};
use gnomon_line_protocol::LineError;
use gnomon_wal::{ReplayReport, Wal, WalBackend, WalConfig, WalEntry, WalError, WalSink};

pub use batch::WriteBatch;
pub use buffer::{
    arrow_schema, Buffer, ChunkBatch, ChunkInfo, FrozenChunk, PersistedWatermarks, TIME_COLUMN,
};
pub use validate::{Validated, WriteOptions};

#[derive(Debug, thiserror::Error)]
pub enum WriteBufferError {
    #[error("incoming write was empty")]
    EmptyWrite,
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("error from wal: {0}")]
    Wal(#[from] WalError),
    #[error("corrupt write batch: {0}")]
    CorruptBatch(String),
}

/// What happened to a write request.
#[derive(Debug)]
pub struct WriteOutcome {
    pub lines_written: usize,
    /// Rejected lines (see [`Validated::errors`]).
    pub errors: Vec<LineError>,
    /// False when the request was rejected as a whole (`accept_partial = false`).
    pub accepted: bool,
    /// See [`Validated::limit_exceeded`].
    pub limit_exceeded: bool,
}

/// Counters of the write path, read by `/metrics`.
#[derive(Debug, Default)]
pub struct WriteMetrics {
    pub lines_written: AtomicU64,
    pub lines_rejected: AtomicU64,
    pub bytes_written: AtomicU64,
}

/// Something that must see every durable batch (e.g. the last-value and distinct-value
/// caches): called by the WAL flusher right after the buffer applied the batch, in sequence
/// order, also for the entries replayed at start-up. It runs on the write path, so it must be
/// quick and must not block on I/O.
pub trait BatchObserver: Send + Sync + 'static {
    fn observe(&self, batch: &Arc<WriteBatch>);

    /// Called after the last [`BatchObserver::observe`] of one WAL flush (one group commit),
    /// for observers that work per flush rather than per request (the processing engine's
    /// WAL triggers).
    fn end_of_flush(&self) {}
}

/// Applies durable WAL entries to the buffer, then shows them to the observers.
struct BufferSink {
    buffer: Arc<Buffer>,
    observers: Vec<Arc<dyn BatchObserver>>,
}

impl WalSink<WriteBatch> for BufferSink {
    fn apply(&self, entries: &[WalEntry<WriteBatch>]) {
        for entry in entries {
            self.buffer.apply_entry(entry.sequence, &entry.payload);
            for observer in &self.observers {
                observer.observe(&entry.payload);
            }
        }
        for observer in &self.observers {
            observer.end_of_flush();
        }
    }
}

/// The write buffer: validation, WAL and the queryable buffer, wired in that order.
pub struct WriteBuffer {
    catalog: Arc<Catalog>,
    wal: Arc<Wal<WriteBatch>>,
    buffer: Arc<Buffer>,
    metrics: WriteMetrics,
}

impl std::fmt::Debug for WriteBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBuffer").finish_non_exhaustive()
    }
}

impl WriteBuffer {
    /// Opens the WAL, replaying it into a fresh buffer.
    pub async fn open(
        catalog: Arc<Catalog>,
        wal_backend: WalBackend,
        wal_config: WalConfig,
        chunk_duration_ns: i64,
    ) -> Result<(Self, ReplayReport), WriteBufferError> {
        Self::open_with_observers(
            catalog,
            wal_backend,
            wal_config,
            chunk_duration_ns,
            Vec::new(),
        )
        .await
    }

    /// [`WriteBuffer::open`], with `observers` seeing every batch from the replay on.
    pub async fn open_with_observers(
        catalog: Arc<Catalog>,
        wal_backend: WalBackend,
        wal_config: WalConfig,
        chunk_duration_ns: i64,
        observers: Vec<Arc<dyn BatchObserver>>,
    ) -> Result<(Self, ReplayReport), WriteBufferError> {
        Self::open_after_snapshots(
            catalog,
            wal_backend,
            wal_config,
            chunk_duration_ns,
            observers,
            PersistedWatermarks::default(),
        )
        .await
    }

    /// [`WriteBuffer::open_with_observers`], skipping at replay the rows `persisted` says are
    /// already in persisted files (observers still see every entry).
    pub async fn open_after_snapshots(
        catalog: Arc<Catalog>,
        wal_backend: WalBackend,
        wal_config: WalConfig,
        chunk_duration_ns: i64,
        observers: Vec<Arc<dyn BatchObserver>>,
        persisted: PersistedWatermarks,
    ) -> Result<(Self, ReplayReport), WriteBufferError> {
        let buffer = Arc::new(Buffer::new(chunk_duration_ns));
        buffer.set_watermarks(persisted);
        let sink = Arc::new(BufferSink {
            buffer: Arc::clone(&buffer),
            observers,
        });
        let (wal, report) = Wal::open(wal_backend, wal_config, sink).await?;
        // Entries after replay are all newer than anything persisted.
        buffer.set_watermarks(PersistedWatermarks::default());
        Ok((
            Self {
                catalog,
                wal,
                buffer,
                metrics: WriteMetrics::default(),
            },
            report,
        ))
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn buffer(&self) -> &Arc<Buffer> {
        &self.buffer
    }

    pub fn wal(&self) -> &Arc<Wal<WriteBatch>> {
        &self.wal
    }

    pub fn metrics(&self) -> &WriteMetrics {
        &self.metrics
    }

    /// Parses, validates and writes a line protocol body.
    ///
    /// Returns once the accepted rows are durable and queryable, or, with `no_sync`, once they
    /// are queued for the next WAL flush.
    pub async fn write_lp(
        &self,
        db: &str,
        body: &str,
        opts: WriteOptions,
        no_sync: bool,
    ) -> Result<WriteOutcome, WriteBufferError> {
        let started = std::time::Instant::now();
        let validated = validate::validate_body(&self.catalog, db, body, opts).await?;
        let validated_at = started.elapsed();
        let rejected = validated.errors.len() as u64;
        self.metrics
            .lines_rejected
            .fetch_add(rejected, Ordering::Relaxed);
        let accepted = opts.accept_partial || validated.errors.is_empty();
        let lines_written = validated.lines_accepted;
        if let Some(batch) = validated.batch {
            let encoded = Bytes::from(batch.encode());
            let encoded_at = started.elapsed();
            self.metrics
                .bytes_written
                .fetch_add(encoded.len() as u64, Ordering::Relaxed);
            let batch = Arc::new(batch);
            if no_sync {
                self.wal.append_no_sync(encoded, batch)?;
            } else {
                self.wal.append(encoded, batch).await?;
            }
            self.metrics
                .lines_written
                .fetch_add(lines_written as u64, Ordering::Relaxed);
            // Per-request stages, for finding where a slow write's time went.
            tracing::debug!(
                lines = lines_written,
                validate_us = validated_at.as_micros() as u64,
                encode_us = (encoded_at - validated_at).as_micros() as u64,
                wal_us = (started.elapsed() - encoded_at).as_micros() as u64,
                "write"
            );
        }
        Ok(WriteOutcome {
            lines_written,
            errors: validated.errors,
            accepted,
            limit_exceeded: validated.limit_exceeded,
        })
    }

    /// Flushes the WAL and stops it.
    pub async fn shutdown(&self) -> Result<(), WriteBufferError> {
        Ok(self.wal.shutdown().await?)
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
