use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the flush-duration histogram buckets; one more bucket
/// catches everything slower than the last bound.
pub const FLUSH_DURATION_BUCKET_BOUNDS: [Duration; 6] = [
    Duration::from_micros(100),
    Duration::from_millis(1),
    Duration::from_millis(10),
    Duration::from_millis(100),
    Duration::from_secs(1),
    Duration::from_secs(10),
];

const BUCKETS: usize = FLUSH_DURATION_BUCKET_BOUNDS.len() + 1;

/// Snapshot of the WAL's counters since `open`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalMetrics {
    /// Successful flushes (each one write + one fsync, or one PUT).
    pub flushes: u64,
    /// Flushes whose write or sync failed; their entries were not applied.
    pub failed_flushes: u64,
    /// Entries made durable and applied.
    pub entries: u64,
    /// Bytes written (record framing and segment headers included).
    pub bytes_written: u64,
    /// Time spent in fsync (data and directory) or, for object stores, in the PUT.
    pub sync_duration_sum: Duration,
    /// Time from taking a batch to releasing its waiters, successful flushes only.
    pub flush_duration_sum: Duration,
    /// Count of successful flushes per duration bucket (not cumulative):
    /// `flush_duration_buckets[i]` counts flushes with duration
    /// `<= FLUSH_DURATION_BUCKET_BOUNDS[i]` and above the previous bound; the
    /// last element counts the rest.
    pub flush_duration_buckets: [u64; BUCKETS],
    /// Entries queued and not yet taken by a flush.
    pub pending_ops: usize,
}

#[derive(Default)]
pub(crate) struct Counters {
    flushes: AtomicU64,
    failed_flushes: AtomicU64,
    entries: AtomicU64,
    bytes_written: AtomicU64,
    sync_nanos: AtomicU64,
    flush_nanos: AtomicU64,
    buckets: [AtomicU64; BUCKETS],
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Counters {
    pub(crate) fn flushed(&self, entries: usize, bytes: u64, sync: Duration, flush: Duration) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.entries.fetch_add(entries as u64, Ordering::Relaxed);
        self.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        self.sync_nanos.fetch_add(nanos(sync), Ordering::Relaxed);
        self.flush_nanos.fetch_add(nanos(flush), Ordering::Relaxed);
        let bucket = FLUSH_DURATION_BUCKET_BOUNDS
            .iter()
            .position(|bound| flush <= *bound)
            .unwrap_or(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self) {
        self.failed_flushes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, pending_ops: usize) -> WalMetrics {
        WalMetrics {
            flushes: self.flushes.load(Ordering::Relaxed),
            failed_flushes: self.failed_flushes.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            sync_duration_sum: Duration::from_nanos(self.sync_nanos.load(Ordering::Relaxed)),
            flush_duration_sum: Duration::from_nanos(self.flush_nanos.load(Ordering::Relaxed)),
            flush_duration_buckets: std::array::from_fn(|i| {
                self.buckets[i].load(Ordering::Relaxed)
            }),
            pending_ops,
        }
    }
}
