//! Prometheus metrics, served at `/metrics` in the text format (ending in `# EOF`).

use std::fmt::Write as _;
use std::sync::Arc;

use gnomon_wal::FLUSH_DURATION_BUCKET_BOUNDS;
use gnomon_write_buffer::WriteBuffer;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet as NoLabels,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub path: &'static str,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabels {
    pub path: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DbLabels {
    pub db: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~26 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

/// Every metric the server exposes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    persister: std::sync::OnceLock<Arc<gnomon_persist::Persister>>,
    engine: std::sync::OnceLock<gnomon_processing_engine::ProcessingEngine>,
    pages: std::sync::OnceLock<Arc<gnomon_query::PageCache>>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Family<PathLabels, Histogram, fn() -> Histogram>,
    pub lines_written: Family<DbLabels, Counter>,
    pub lines_rejected: Family<DbLabels, Counter>,
}

impl Metrics {
    pub fn new(write_buffer: Arc<WriteBuffer>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let request_duration =
            Family::<PathLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let lines_written = Family::<DbLabels, Counter>::default();
        let lines_rejected = Family::<DbLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route, until the response head is sent",
            request_duration.clone(),
        );
        registry.register(
            "influxdb3_write_lines",
            "Line protocol lines written, by database",
            lines_written.clone(),
        );
        registry.register(
            "influxdb3_write_lines_rejected",
            "Line protocol lines rejected, by database",
            lines_rejected.clone(),
        );
        registry.register_collector(Box::new(WriteBufferCollector(write_buffer)));
        Self {
            registry,
            persister: std::sync::OnceLock::new(),
            engine: std::sync::OnceLock::new(),
            pages: std::sync::OnceLock::new(),
            requests,
            request_duration,
            lines_written,
            lines_rejected,
        }
    }

    pub fn record_write(&self, db: &str, written: u64, rejected: u64) {
        let labels = DbLabels { db: db.to_string() };
        if written > 0 {
            self.lines_written.get_or_create(&labels).inc_by(written);
        }
        if rejected > 0 {
            self.lines_rejected.get_or_create(&labels).inc_by(rejected);
        }
    }

    /// Adds the persister's and the Parquet cache's counters to the exposition.
    pub fn register_persister(&self, persister: Arc<gnomon_persist::Persister>) {
        let _ = self.persister.set(persister);
    }

    pub fn register_engine(&self, engine: gnomon_processing_engine::ProcessingEngine) {
        let _ = self.engine.set(engine);
    }

    /// Adds the decompressed page cache's counters to the exposition.
    pub fn register_page_cache(&self, pages: Arc<gnomon_query::PageCache>) {
        let _ = self.pages.set(pages);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut ok =
            prometheus_client::encoding::text::encode_registry(&mut out, &self.registry).is_ok();
        if let Some(p) = self.persister.get() {
            let mut extra = Registry::default();
            extra.register_collector(Box::new(PersisterCollector(Arc::clone(p))));
            ok &= prometheus_client::encoding::text::encode_registry(&mut out, &extra).is_ok();
        }
        if let Some(pages) = self.pages.get() {
            let mut extra = Registry::default();
            extra.register_collector(Box::new(PageCacheCollector(Arc::clone(pages))));
            ok &= prometheus_client::encoding::text::encode_registry(&mut out, &extra).is_ok();
        }
        if let Some(e) = self.engine.get() {
            let mut extra = Registry::default();
            extra.register_collector(Box::new(EngineCollector(e.clone())));
            ok &= prometheus_client::encoding::text::encode_registry(&mut out, &extra).is_ok();
        }
        ok &= prometheus_client::encoding::text::encode_eof(&mut out).is_ok();
        if !ok {
            out.clear();
            let _ = writeln!(out, "# EOF");
        }
        out
    }
}

/// Reads the WAL's and the buffer's own counters at scrape time.
#[derive(Debug)]
struct WriteBufferCollector(Arc<WriteBuffer>);

fn encode_one(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let metric_encoder = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(metric_encoder)
}

/// The WAL's flush duration buckets as a Prometheus histogram.
struct FlushHistogram<'a>(&'a gnomon_wal::WalMetrics);

impl EncodeMetric for FlushHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // Per-bucket counts: the text encoder makes them cumulative itself.
        let buckets: Vec<(f64, u64)> = self
            .0
            .flush_duration_buckets
            .iter()
            .enumerate()
            .map(|(i, &count)| {
                let bound = FLUSH_DURATION_BUCKET_BOUNDS
                    .get(i)
                    .map_or(f64::INFINITY, |d| d.as_secs_f64());
                (bound, count)
            })
            .collect();
        encoder.encode_histogram::<NoLabels>(
            self.0.flush_duration_sum.as_secs_f64(),
            self.0.flushes,
            &buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

impl Collector for WriteBufferCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let wal = self.0.wal().metrics();
        encode_one(
            &mut encoder,
            "gnomon_wal_flushes",
            "WAL flushes (one write and one fsync each)",
            &ConstCounter::new(wal.flushes),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_wal_written_bytes",
            "Bytes written to the WAL",
            &ConstCounter::new(wal.bytes_written),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_wal_entries",
            "Entries (write requests) appended to the WAL",
            &ConstCounter::new(wal.entries),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_wal_flush_duration_seconds",
            "Time from taking a batch of writes to releasing their waiters (write + fsync + apply)",
            &FlushHistogram(&wal),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_wal_fsync_duration_seconds_sum",
            "Total time spent in fsync (or object PUTs) by WAL flushes",
            &ConstGauge::new(wal.sync_duration_sum.as_secs_f64()),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_wal_failed_flushes",
            "WAL flushes whose write or sync failed",
            &ConstCounter::new(wal.failed_flushes),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_wal_pending_ops",
            "Entries waiting for the next WAL flush",
            &ConstGauge::new(wal.pending_ops as i64),
        )?;
        let buffer = self.0.buffer();
        encode_one(
            &mut encoder,
            "gnomon_buffer_size_bytes",
            "Approximate bytes held by the in-memory write buffer",
            &ConstGauge::new(buffer.size_bytes() as i64),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_buffer_rows",
            "Rows held by the in-memory write buffer",
            &ConstGauge::new(buffer.row_count() as i64),
        )?;
        let writes = self.0.metrics();
        encode_one(
            &mut encoder,
            "gnomon_write_lines_rejected",
            "Line protocol lines rejected, all databases",
            &ConstCounter::new(
                writes
                    .lines_rejected
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        )?;
        Ok(())
    }
}

/// The decompressed page cache's counters.
#[derive(Debug)]
struct PageCacheCollector(Arc<gnomon_query::PageCache>);

impl Collector for PageCacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_one(
            &mut encoder,
            "gnomon_page_cache_hits",
            "Parquet pages small queries read decompressed from memory",
            &ConstCounter::new(self.0.hits()),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_page_cache_misses",
            "Parquet pages small queries read and decompressed",
            &ConstCounter::new(self.0.misses()),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_page_cache_size_bytes",
            "Bytes held by the decompressed page cache",
            &ConstGauge::new(self.0.used_bytes() as i64),
        )
    }
}

/// Snapshot and Parquet cache counters.
#[derive(Debug)]
struct PersisterCollector(Arc<gnomon_persist::Persister>);

impl Collector for PersisterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let m = self.0.metrics();
        let counters = [
            ("gnomon_snapshots", "Snapshots written", &m.snapshots),
            (
                "gnomon_snapshots_failed",
                "Snapshots that failed (retried by the next trigger)",
                &m.failed_snapshots,
            ),
            (
                "gnomon_parquet_files_written",
                "Parquet files written by snapshots",
                &m.files_written,
            ),
            (
                "gnomon_parquet_rows_written",
                "Rows written to Parquet files",
                &m.rows_written,
            ),
            (
                "gnomon_parquet_bytes_written",
                "Bytes of Parquet files written",
                &m.bytes_written,
            ),
            (
                "gnomon_compactions",
                "Merged files written by compaction",
                &m.compactions,
            ),
            (
                "gnomon_compactions_failed",
                "Compaction rounds that failed (retried by the next round)",
                &m.failed_compactions,
            ),
            (
                "gnomon_parquet_files_compacted",
                "Parquet files merged away by compaction",
                &m.files_compacted,
            ),
        ];
        for (name, help, value) in counters {
            encode_one(
                &mut encoder,
                name,
                help,
                &ConstCounter::new(value.load(Relaxed)),
            )?;
        }
        let cache = self.0.cache();
        encode_one(
            &mut encoder,
            "gnomon_parquet_cache_hits",
            "Parquet file reads served from the in-memory cache",
            &ConstCounter::new(cache.hits()),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_parquet_cache_misses",
            "Parquet file reads that went to the object store",
            &ConstCounter::new(cache.misses()),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_parquet_cache_size_bytes",
            "Bytes held by the Parquet cache",
            &ConstGauge::new(cache.used_bytes() as i64),
        )?;
        encode_one(
            &mut encoder,
            "gnomon_parquet_files",
            "Persisted Parquet files in the index",
            &ConstGauge::new(self.0.index().all_files().len() as i64),
        )?;
        Ok(())
    }
}

/// Plugin runs, failures and time spent, per kind of trigger (`wal`, `schedule`, `request`).
#[derive(Debug)]
struct EngineCollector(gnomon_processing_engine::ProcessingEngine);

impl Collector for EngineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let m = self.0.metrics();
        let kinds = [
            ("wal", &m.wal),
            ("schedule", &m.schedule),
            ("request", &m.request),
        ];
        let mut runs = encoder.encode_descriptor(
            "gnomon_plugin_runs",
            "Plugin invocations by trigger kind",
            None,
            MetricType::Counter,
        )?;
        for (kind, k) in kinds {
            let labels = [("kind", kind)];
            ConstCounter::new(k.runs.load(Relaxed)).encode(runs.encode_family(&labels)?)?;
        }
        let mut errors = encoder.encode_descriptor(
            "gnomon_plugin_errors",
            "Plugin invocations that failed, by trigger kind",
            None,
            MetricType::Counter,
        )?;
        for (kind, k) in kinds {
            let labels = [("kind", kind)];
            ConstCounter::new(k.errors.load(Relaxed)).encode(errors.encode_family(&labels)?)?;
        }
        encode_one(
            &mut encoder,
            "gnomon_plugin_wal_backlog_flushes",
            "WAL flushes queued for WAL triggers and not yet taken by their plugins",
            &ConstGauge::new(self.0.wal_backlog() as i64),
        )?;
        let mut seconds = encoder.encode_descriptor(
            "gnomon_plugin_duration_seconds",
            "Time spent in plugin invocations, by trigger kind",
            None,
            MetricType::Counter,
        )?;
        for (kind, k) in kinds {
            let labels = [("kind", kind)];
            let secs = k.duration_ns.load(Relaxed) as f64 / 1e9;
            ConstCounter::new(secs).encode(seconds.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
