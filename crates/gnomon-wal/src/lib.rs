//! Gnomon's write-ahead log: a durable, ordered log of opaque entries.
//!
//! # What this crate owns
//!
//! * Assigning each appended entry a sequence number (strictly increasing,
//!   starting at 1; gaps are possible after failed flushes or damage).
//! * Group commit: one flusher task writes every pending entry as one record
//!   with one `fdatasync` (or one object PUT), then hands the entries to the
//!   [`WalSink`] and only then releases the waiting writers. A durable append
//!   therefore costs one fsync, shared with everyone who appended meanwhile,
//!   rather than waiting for a fixed flush tick.
//! * Replay at [`Wal::open`]: every durable entry is handed to the sink again,
//!   in order, and torn or damaged data is reported and skipped (or repaired
//!   where that is safe), never a panic or a crash loop.
//! * Removing whole files once the caller says their entries are persisted
//!   elsewhere ([`Wal::remove_up_to`]).
//!
//! # What it must not reach into
//!
//! Entries are opaque bytes. The WAL knows nothing about line protocol, the
//! catalog or the write buffer's contents: the user supplies the decoded form
//! alongside the bytes on the live path ([`Wal::append`]) and a decoder
//! ([`WalPayload::decode`]) for replay, and receives entries through
//! [`WalSink::apply`].
//!
//! # Flushing
//!
//! A durable append ([`Wal::append`]) wakes the flusher at once. When a flush
//! is running, entries queue up and are all taken by the next flush, which
//! starts as soon as the running one is done. No-sync entries
//! ([`Wal::append_no_sync`]) do not wake the flusher by themselves: they ride
//! along with the next durable flush, or are flushed once the oldest of them
//! has waited [`WalConfig::flush_interval`], or once half of
//! [`WalConfig::max_pending_ops`] are queued. The sink sees every entry exactly
//! once, in sequence order, and never an entry that is not durable.
//!
//! If a flush fails, every writer waiting on it gets the error and its entries
//! are not applied (no-sync entries of that flush are lost; that is logged). The
//! sequence numbers are not reused. Because the state of a file after a failed
//! write/fsync is unknown, it is cut back (best effort) and never appended to
//! again; if even that fails, a failed flush may reappear at replay.
//!
//! # On-disk format (version 1)
//!
//! All integers are little-endian. A *file* is a local segment or an object:
//!
//! ```text
//! file   := header record*
//! header := "GNOMWAL\0" (8 bytes)  version: u32 (= 1)
//! record := len: u32  crc: u32  body          -- len = body length, crc = CRC-32 (IEEE) of body
//! body   := first_seq: u64  count: u32  entry{count}   -- entries have sequences first_seq..first_seq+count
//! entry  := len: u32  bytes
//! ```
//!
//! One flush writes one record (several only if the body would exceed 1 GiB).
//! Files are named `<first_seq:020>.wal` after the sequence of their first
//! entry; every sequence in a file is below the name of the next file.
//!
//! * **Local directory**: append-only segment files. Each flush appends its
//!   record and calls `fdatasync`; creating a segment also fsyncs the
//!   directory. A segment is closed once it reaches
//!   [`WalConfig::segment_target_bytes`] and the next flush starts a new one.
//! * **Object store**: one object `<prefix>/<first_seq:020>.wal` per flush
//!   (header + record), written with a single PUT; waiters are released after
//!   the PUT returned, so durability is whatever the store guarantees for a
//!   completed PUT.
//!
//! # Replay and damage
//!
//! Files are read in name order. Per file:
//!
//! * shorter than a header and a prefix of a valid one (e.g. empty): a segment
//!   creation interrupted by a crash; the local file is deleted.
//! * wrong magic: the local file is renamed to `<name>.<nanos>.corrupt` (kept
//!   for inspection, out of the WAL's way); an object is skipped.
//! * unknown version: `open` fails; such a file is never skipped or modified.
//! * a bad record (incomplete, bad length, CRC mismatch, malformed body): the
//!   rest of the file is skipped. In the newest local segment, when nothing
//!   valid can follow the bad record (it runs to or past the end, or the rest
//!   is zeros) this is what an interrupted write looks like, so the segment is
//!   truncated back to its last good record and appended to again. Otherwise
//!   the file is left untouched and appends go to a new segment.
//! * an entry that [`WalPayload::decode`] rejects, or whose sequence is not
//!   above the last one replayed, is skipped.
//!
//! Each problem is logged (`tracing`) and listed in the [`ReplayReport`]. With
//! [`WalConfig::fail_on_corruption`] the first problem (including a torn tail)
//! makes `open` fail before anything is modified. Sequence numbers continue
//! above both the last valid entry and the highest file name.

mod error;
mod format;
mod local;
mod metrics;
mod object;
mod replay;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use error::{Corruption, CorruptionKind, RecoveryAction, WalError};
pub use format::MAX_ENTRY_BYTES;
pub use metrics::{WalMetrics, FLUSH_DURATION_BUCKET_BOUNDS};
pub use replay::ReplayReport;

use local::LocalLog;
use object::ObjectLog;
use replay::Replayer;

/// Decoded form of an entry, supplied by the user of the WAL (the write buffer).
pub trait WalPayload: Send + Sync + 'static + Sized {
    fn decode(bytes: &[u8]) -> Result<Self, String>;
}

/// Receives entries, in sequence order, once they are durable (and during replay at open).
///
/// Called from a blocking thread, never concurrently with itself, and never
/// again with an entry it has already seen during the life of a [`Wal`].
pub trait WalSink<P: WalPayload>: Send + Sync + 'static {
    fn apply(&self, entries: &[WalEntry<P>]);
}

#[derive(Debug)]
pub struct WalEntry<P> {
    pub sequence: u64,
    pub payload: Arc<P>,
}

impl<P> Clone for WalEntry<P> {
    fn clone(&self) -> Self {
        Self {
            sequence: self.sequence,
            payload: Arc::clone(&self.payload),
        }
    }
}

#[derive(Debug, Clone)]
pub enum WalBackend {
    LocalDir(PathBuf),
    ObjectStore {
        store: Arc<dyn object_store::ObjectStore>,
        prefix: object_store::path::Path,
    },
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    /// Upper bound on how long an entry may wait before its flush starts.
    /// Durable appends never wait for it; it bounds how long no-sync entries
    /// sit in memory (invisible to the sink) when no durable append comes by.
    pub flush_interval: Duration,
    /// Entries queued and not yet taken by a flush; appending beyond this
    /// fails with [`WalError::BufferFull`].
    pub max_pending_ops: usize,
    /// Local directory: a segment is closed once it reaches this size.
    pub segment_target_bytes: u64,
    /// Fail `open` on the first damaged data instead of skipping it.
    pub fail_on_corruption: bool,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(1),
            max_pending_ops: 100_000,
            segment_target_bytes: 64 * 1024 * 1024,
            fail_on_corruption: false,
        }
    }
}

type Waiter = oneshot::Sender<Result<(), WalError>>;

/// Entries appended but not yet taken by the flusher.
struct Queue<P> {
    next_seq: u64,
    encoded: Vec<Bytes>,
    entries: Vec<WalEntry<P>>,
    waiters: Vec<Waiter>,
    /// When the oldest queued entry was appended.
    oldest: Option<Instant>,
    closed: bool,
    /// Set when the flusher died; returned to every later append.
    failure: Option<WalError>,
}

struct Batch<P> {
    first_seq: u64,
    encoded: Vec<Bytes>,
    entries: Vec<WalEntry<P>>,
    waiters: Vec<Waiter>,
    closing: bool,
}

enum Backend {
    Local(Arc<Mutex<LocalLog>>),
    Object(Arc<ObjectLog>),
}

struct Inner<P: WalPayload> {
    queue: Mutex<Queue<P>>,
    wake: Notify,
    backend: Backend,
    sink: Arc<dyn WalSink<P>>,
    config: WalConfig,
    counters: Arc<metrics::Counters>,
}

/// The write-ahead log. See the crate docs.
pub struct Wal<P: WalPayload> {
    inner: Arc<Inner<P>>,
    flusher: tokio::sync::Mutex<Option<JoinHandle<Result<(), WalError>>>>,
}

impl<P: WalPayload> std::fmt::Debug for Wal<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn join_error(what: &str, e: tokio::task::JoinError) -> WalError {
    WalError::Internal(format!("{what}: {e}"))
}

impl<P: WalPayload> Wal<P> {
    /// Opens (creating if needed) the WAL, replays every existing durable entry into `sink` (in
    /// order, in batches), then starts the flusher task (tokio). Returns a report (entries
    /// replayed, files read, corruption found and skipped, last sequence).
    pub async fn open(
        backend: WalBackend,
        config: WalConfig,
        sink: Arc<dyn WalSink<P>>,
    ) -> Result<(Arc<Self>, ReplayReport), WalError> {
        let replayer = Replayer::new(Arc::clone(&sink), config.fail_on_corruption);
        let (backend, mut report, max_name) = match backend {
            WalBackend::LocalDir(dir) => {
                let target = config.segment_target_bytes;
                tokio::task::spawn_blocking(move || {
                    let mut replayer = replayer;
                    let log = LocalLog::open(dir, target, &mut replayer)?;
                    let max_name = log.max_name();
                    Ok::<_, WalError>((
                        Backend::Local(Arc::new(Mutex::new(log))),
                        replayer.finish(),
                        max_name,
                    ))
                })
                .await
                .map_err(|e| join_error("wal replay task failed", e))??
            }
            WalBackend::ObjectStore { store, prefix } => {
                let (log, replayer) = ObjectLog::open(store, prefix, replayer).await?;
                let max_name = log.max_name();
                (Backend::Object(Arc::new(log)), replayer.finish(), max_name)
            }
        };
        let next_seq = report
            .last_sequence
            .map_or(1, |s| s.saturating_add(1))
            .max(max_name.map_or(1, |n| n.saturating_add(1)));
        report.next_sequence = next_seq;
        tracing::info!(
            entries = report.entries_replayed,
            files = report.files_read,
            bytes = report.bytes_read,
            corruptions = report.corruptions.len() as u64 + report.corruptions_not_listed,
            next_sequence = next_seq,
            "wal replayed"
        );

        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue {
                next_seq,
                encoded: Vec::new(),
                entries: Vec::new(),
                waiters: Vec::new(),
                oldest: None,
                closed: false,
                failure: None,
            }),
            wake: Notify::new(),
            backend,
            sink,
            config,
            counters: Arc::default(),
        });
        let flusher = tokio::spawn(run_flusher(Arc::clone(&inner)));
        let wal = Arc::new(Self {
            inner,
            flusher: tokio::sync::Mutex::new(Some(flusher)),
        });
        Ok((wal, report))
    }

    /// Durable append: resolves once the entry is fsynced AND `sink.apply` has run for it.
    /// `encoded` are the bytes stored; `payload` is the same data already decoded (the live path
    /// never decodes).
    ///
    /// Dropping the returned future does not withdraw the entry.
    pub async fn append(&self, encoded: Bytes, payload: Arc<P>) -> Result<u64, WalError> {
        let (tx, rx) = oneshot::channel();
        let seq = self.enqueue(encoded, payload, Some(tx))?;
        match rx.await {
            Ok(Ok(())) => Ok(seq),
            Ok(Err(e)) => Err(e),
            // The flusher went away without answering (runtime shutting down).
            Err(_) => Err(self
                .inner
                .queue
                .lock()
                .failure
                .clone()
                .unwrap_or(WalError::Closed)),
        }
    }

    /// Non-durable append (`no_sync`): returns the assigned sequence at once; the entry is written
    /// and applied by the next flush.
    pub fn append_no_sync(&self, encoded: Bytes, payload: Arc<P>) -> Result<u64, WalError> {
        self.enqueue(encoded, payload, None)
    }

    fn enqueue(
        &self,
        encoded: Bytes,
        payload: Arc<P>,
        waiter: Option<Waiter>,
    ) -> Result<u64, WalError> {
        if encoded.len() > MAX_ENTRY_BYTES {
            return Err(WalError::EntryTooLarge {
                size: encoded.len(),
                max: MAX_ENTRY_BYTES,
            });
        }
        let config = &self.inner.config;
        let mut q = self.inner.queue.lock();
        if let Some(e) = &q.failure {
            return Err(e.clone());
        }
        if q.closed {
            return Err(WalError::Closed);
        }
        let pending = q.entries.len();
        if pending >= config.max_pending_ops {
            return Err(WalError::BufferFull { ops: pending });
        }
        // Assigned under the queue lock: queue order is sequence order.
        let sequence = q.next_seq;
        q.next_seq = sequence
            .checked_add(1)
            .ok_or_else(|| WalError::Internal("sequence numbers exhausted".into()))?;
        q.encoded.push(encoded);
        q.entries.push(WalEntry { sequence, payload });
        if pending == 0 {
            q.oldest = Some(Instant::now());
        }
        // A no-sync entry only needs the flusher when it must arm the interval
        // timer (first queued) or to keep the queue from filling up.
        let wake = waiter.is_some() || pending == 0 || pending + 1 >= early_flush_threshold(config);
        if let Some(w) = waiter {
            q.waiters.push(w);
        }
        drop(q);
        if wake {
            self.inner.wake.notify_one();
        }
        Ok(sequence)
    }

    /// Flushes everything pending and stops the flusher (graceful shutdown). Later appends →
    /// [`WalError::Closed`]. Returns the error of the final flush, if it failed.
    pub async fn shutdown(&self) -> Result<(), WalError> {
        self.inner.close();
        let mut flusher = self.flusher.lock().await;
        match flusher.take() {
            Some(handle) => handle
                .await
                .map_err(|e| join_error("wal flusher failed", e))?,
            None => Ok(()),
        }
    }

    /// For snapshots: delete whole segment files/objects whose entries all have sequence
    /// `<= seq`. The newest file is always kept (it carries the sequence high-water mark
    /// across restarts).
    pub async fn remove_up_to(&self, seq: u64) -> Result<(), WalError> {
        let removed = match &self.inner.backend {
            Backend::Local(log) => {
                let log = Arc::clone(log);
                tokio::task::spawn_blocking(move || log.lock().remove_up_to(seq))
                    .await
                    .map_err(|e| join_error("wal remove task failed", e))?
            }
            Backend::Object(log) => log.remove_up_to(seq).await,
        }?;
        if removed > 0 {
            tracing::info!(up_to = seq, files = removed, "wal files removed");
        }
        Ok(())
    }

    pub fn metrics(&self) -> WalMetrics {
        let pending = self.inner.queue.lock().entries.len();
        self.inner.counters.snapshot(pending)
    }
}

impl<P: WalPayload> Drop for Wal<P> {
    /// Without this the flusher would wait forever for entries nobody can
    /// append; with it, whatever is queued still gets flushed.
    fn drop(&mut self) {
        self.inner.close();
    }
}

fn early_flush_threshold(config: &WalConfig) -> usize {
    (config.max_pending_ops / 2).max(1)
}

impl<P: WalPayload> Inner<P> {
    fn close(&self) {
        self.queue.lock().closed = true;
        self.wake.notify_one();
    }

    /// Waits until a flush is due and takes everything queued; `None` once
    /// closed and drained.
    async fn next_batch(&self) -> Option<Batch<P>> {
        loop {
            let deadline = {
                let mut q = self.queue.lock();
                if q.entries.is_empty() {
                    if q.closed {
                        return None;
                    }
                    None
                } else {
                    let due = q
                        .oldest
                        .and_then(|t| t.checked_add(self.config.flush_interval));
                    let urgent = q.closed
                        || !q.waiters.is_empty()
                        || q.entries.len() >= early_flush_threshold(&self.config)
                        || due.is_some_and(|d| Instant::now() >= d);
                    if urgent {
                        return Some(Batch {
                            first_seq: q.entries[0].sequence,
                            encoded: std::mem::take(&mut q.encoded),
                            entries: std::mem::take(&mut q.entries),
                            waiters: std::mem::take(&mut q.waiters),
                            closing: q.closed,
                        });
                    }
                    due
                }
            };
            // notify_one leaves a permit when nobody is waiting, so a wake-up
            // between the check above and this await is not lost.
            match deadline {
                Some(due) => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep_until(due) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }

    async fn flush(&self, batch: Batch<P>) -> Result<(), FlushError> {
        let Batch {
            first_seq,
            encoded,
            entries,
            waiters,
            ..
        } = batch;
        let job = FlushJob {
            started: std::time::Instant::now(),
            first_seq,
            entries,
            waiters,
            sink: Arc::clone(&self.sink),
            counters: Arc::clone(&self.counters),
        };
        match &self.backend {
            // Write, fsync, apply and the writers' release as one blocking job: each hop
            // between a blocking thread and the async workers waits for a free worker, and
            // the workers are often busy parsing other requests (measured: several ms per
            // hop under load, in every durable write's latency).
            Backend::Local(log) => {
                let log = Arc::clone(log);
                tokio::task::spawn_blocking(move || {
                    let written = log.lock().write_batch(first_seq, &encoded);
                    job.finish(written)
                })
                .await
                .map_err(|e| FlushError::Fatal(join_error("wal flush task failed", e)))?
            }
            Backend::Object(log) => {
                let written = log.write_batch(first_seq, &encoded).await;
                // The sink's work is CPU-bound and its size is the caller's business:
                // keep it off the async workers.
                tokio::task::spawn_blocking(move || job.finish(written))
                    .await
                    .map_err(|e| FlushError::Fatal(join_error("wal sink task failed", e)))?
            }
        }
    }

    /// Stops the WAL for good: later appends and still-queued writers get `err`.
    fn poison(&self, err: &WalError) {
        let waiters = {
            let mut q = self.queue.lock();
            q.closed = true;
            q.failure = Some(err.clone());
            q.encoded.clear();
            q.entries.clear();
            std::mem::take(&mut q.waiters)
        };
        for w in waiters {
            let _ = w.send(Err(err.clone()));
        }
    }
}

/// One flush's entries and writers, from the moment their bytes are written.
struct FlushJob<P: WalPayload> {
    started: std::time::Instant,
    first_seq: u64,
    entries: Vec<WalEntry<P>>,
    waiters: Vec<Waiter>,
    sink: Arc<dyn WalSink<P>>,
    counters: Arc<metrics::Counters>,
}

impl<P: WalPayload> FlushJob<P> {
    /// Given the outcome of writing the entries: applies them to the sink if they are
    /// durable, then answers every waiting writer. Runs on a blocking thread.
    fn finish(self, written: Result<local::WriteStats, WalError>) -> Result<(), FlushError> {
        let FlushJob {
            started,
            first_seq,
            entries,
            waiters,
            sink,
            counters,
        } = self;
        let count = entries.len();
        let stats = match written {
            Ok(stats) => stats,
            Err(err) => {
                counters.failed();
                let no_sync = count - waiters.len();
                tracing::error!(
                    error = %err,
                    first_sequence = first_seq,
                    entries = count,
                    lost_no_sync_entries = no_sync,
                    "wal flush failed; entries not applied"
                );
                for w in waiters {
                    let _ = w.send(Err(err.clone()));
                }
                return Err(FlushError::Io(err));
            }
        };
        let written_at = started.elapsed();
        let applied =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink.apply(&entries)));
        if applied.is_err() {
            let err = WalError::Internal("wal sink apply failed: it panicked".into());
            tracing::error!(error = %err, first_sequence = first_seq, "wal sink panicked; wal stopped");
            for w in waiters {
                let _ = w.send(Err(err.clone()));
            }
            return Err(FlushError::Fatal(err));
        }
        let total = started.elapsed();
        // Per-flush stages, for finding where a slow write's time went.
        tracing::debug!(
            first_sequence = first_seq,
            entries = count,
            waiters = waiters.len(),
            bytes = stats.bytes,
            write_us = written_at.saturating_sub(stats.sync).as_micros() as u64,
            sync_us = stats.sync.as_micros() as u64,
            apply_us = (total - written_at).as_micros() as u64,
            "wal flush"
        );
        // Counted before the writers hear of it: a writer that reads the metrics right
        // after its append sees its own flush.
        counters.flushed(count, stats.bytes, stats.sync, total);
        for w in waiters {
            // A dropped receiver is a writer that stopped waiting; nothing to do.
            let _ = w.send(Ok(()));
        }
        Ok(())
    }
}

enum FlushError {
    /// The flush did not become durable; the WAL continues with later entries.
    Io(WalError),
    /// The sink (or the WAL itself) panicked; continuing could hand the sink
    /// entries out of order or twice.
    Fatal(WalError),
}

async fn run_flusher<P: WalPayload>(inner: Arc<Inner<P>>) -> Result<(), WalError> {
    let mut final_result = Ok(());
    while let Some(batch) = inner.next_batch().await {
        let closing = batch.closing;
        match inner.flush(batch).await {
            Ok(()) => {}
            Err(FlushError::Io(e)) => {
                // Also a flush already running when shutdown was requested:
                // shutdown must not report success for entries it did not persist.
                if closing || inner.queue.lock().closed {
                    final_result = Err(e);
                }
            }
            Err(FlushError::Fatal(e)) => {
                inner.poison(&e);
                return Err(e);
            }
        }
    }
    final_result
}
