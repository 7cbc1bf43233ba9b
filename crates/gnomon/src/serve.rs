//! `gnomon serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use gnomon_cache::{CacheManager, CacheObserver};
use gnomon_catalog::PluginType;
use gnomon_catalog::{Catalog, Limits};
use gnomon_persist::{FileIndex, ParquetCache, Persister, PersisterConfig};
use gnomon_processing_engine::{EngineConfig, PackageManager, ProcessingEngine, WalFeed};
use gnomon_query::{PageCache, PersistedFiles, QueryConfig, QueryEngine};
use gnomon_server::engine::{EngineLogsTable, EngineSlot, PluginFilesTable, ServerPluginHost};
use gnomon_server::{AppState, HttpConfig};
use gnomon_wal::{WalBackend, WalConfig};
use gnomon_write_buffer::WriteBuffer;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "lowercase")]
pub enum ObjectStoreKind {
    /// Local disk under `--data-dir`.
    File,
    /// In memory: everything is lost at exit (tests, experiments).
    Memory,
    /// Amazon S3 or an S3-compatible server (`--bucket`, `--aws-*`).
    S3,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on for HTTP (and, later, gRPC). Loopback by default: expose it on
    /// purpose, e.g. `--http-bind 0.0.0.0:8181`.
    #[arg(long, env = "GNOMON_HTTP_BIND", default_value = "127.0.0.1:8181")]
    http_bind: SocketAddr,

    /// Where data lives.
    #[arg(
        long,
        env = "GNOMON_OBJECT_STORE",
        value_enum,
        default_value = "file",
        ignore_case = true
    )]
    object_store: ObjectStoreKind,

    /// Directory of the `file` object store (and of the local WAL).
    #[arg(long, env = "GNOMON_DATA_DIR", default_value = "./.gnomon")]
    data_dir: PathBuf,

    /// Prefix of every object this server writes.
    #[arg(
        long,
        env = "GNOMON_NODE_ID",
        default_value = "gnomon",
        alias = "host-id"
    )]
    node_id: String,

    /// Longest time a write may wait for its WAL flush to start. Flushes start as soon as the
    /// previous one is done, so a write usually waits about one fsync.
    #[arg(long, env = "GNOMON_WAL_FLUSH_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    wal_flush_interval: Duration,

    /// Writes waiting for a WAL flush before new writes are refused.
    #[arg(
        long,
        env = "GNOMON_WAL_MAX_WRITE_BUFFER_SIZE",
        default_value_t = 100_000
    )]
    wal_max_write_buffer_size: usize,

    /// Refuse to start when the WAL holds corrupt entries (default: log and skip them).
    #[arg(long, env = "GNOMON_WAL_REPLAY_FAIL_ON_ERROR")]
    wal_replay_fail_on_error: bool,

    /// Time span of one buffer chunk (and, later, of one Parquet file): 1m, 5m or 10m.
    #[arg(long, env = "GNOMON_GEN1_DURATION", default_value = "10m", value_parser = parse_gen1)]
    gen1_duration: Duration,

    /// Largest accepted request body in bytes, before and after gzip decompression.
    #[arg(
        long,
        env = "GNOMON_MAX_HTTP_REQUEST_SIZE",
        default_value_t = 10_485_760
    )]
    max_http_request_size: usize,

    /// Most user databases.
    #[arg(long, env = "GNOMON_NUM_DATABASE_LIMIT", default_value_t = 100)]
    num_database_limit: usize,

    /// Most tables, across all databases.
    #[arg(long, env = "GNOMON_NUM_TABLE_LIMIT", default_value_t = 10_000)]
    num_table_limit: usize,

    /// Most tag and field columns in one table (`time` not counted).
    #[arg(
        long,
        env = "GNOMON_NUM_TOTAL_COLUMNS_PER_TABLE_LIMIT",
        default_value_t = 1000
    )]
    num_total_columns_per_table_limit: usize,

    /// Memory one query may use, in bytes or as a percentage of RAM (`20%`).
    #[arg(long, env = "GNOMON_EXEC_MEM_POOL_BYTES", default_value = "20%")]
    exec_mem_pool_bytes: String,

    /// How many recent queries `system.queries` keeps.
    #[arg(long, env = "GNOMON_QUERY_LOG_SIZE", default_value_t = 1000)]
    query_log_size: usize,

    /// DataFusion options for every query, as a comma list of `key:value`
    /// (`datafusion.execution.batch_size:4096`); the `datafusion.` prefix may be left out.
    #[arg(long, env = "GNOMON_DATAFUSION_CONFIG", default_value = "")]
    datafusion_config: String,

    /// Partitions (threads) one query's plan is spread over; defaults to the number of CPUs.
    #[arg(long, env = "GNOMON_NUM_DATAFUSION_THREADS")]
    num_datafusion_threads: Option<usize>,

    /// How often expired rows are removed from the last-value caches.
    #[arg(long, env = "GNOMON_LAST_CACHE_EVICTION_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    last_cache_eviction_interval: Duration,

    /// How often expired and excess values are removed from the distinct-value caches.
    #[arg(long, env = "GNOMON_DISTINCT_CACHE_EVICTION_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    distinct_cache_eviction_interval: Duration,

    /// Bucket of the `s3` object store.
    #[arg(long, env = "GNOMON_BUCKET")]
    bucket: Option<String>,

    /// S3 endpoint, for S3-compatible servers (e.g. `http://127.0.0.1:9000`).
    #[arg(long, env = "AWS_ENDPOINT")]
    aws_endpoint: Option<String>,

    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    aws_access_key_id: Option<String>,

    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    aws_secret_access_key: Option<String>,

    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    aws_session_token: Option<String>,

    #[arg(long, env = "AWS_DEFAULT_REGION", default_value = "us-east-1")]
    aws_default_region: String,

    /// Allow plain HTTP to the S3 endpoint.
    #[arg(long, env = "AWS_ALLOW_HTTP")]
    aws_allow_http: bool,

    /// Buffer memory (bytes, `512MB`, `2GiB`, or `50%` of RAM) above which the oldest chunks
    /// are persisted regardless of age.
    #[arg(
        long,
        env = "GNOMON_FORCE_SNAPSHOT_MEM_THRESHOLD",
        default_value = "50%"
    )]
    force_snapshot_mem_threshold: String,

    /// Accepted for compatibility with `influxdb3 serve`; Gnomon decides what to persist by
    /// chunk age and buffer memory, not by WAL file count.
    #[arg(long, env = "GNOMON_WAL_SNAPSHOT_SIZE", default_value_t = 600)]
    wal_snapshot_size: usize,

    /// How often the snapshot trigger looks at the buffer.
    #[arg(long, env = "GNOMON_SNAPSHOT_CHECK_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    snapshot_check_interval: Duration,

    /// Memory for recently persisted Parquet files (bytes, `1GB`, or `20%` of RAM).
    #[arg(long, env = "GNOMON_PARQUET_MEM_CACHE_SIZE", default_value = "20%")]
    parquet_mem_cache_size: String,

    /// Memory for decompressed Parquet pages that small queries read (bytes, `256MB`, or
    /// `2%` of RAM); `0` turns the cache off.
    #[arg(long, env = "GNOMON_PAGE_CACHE_SIZE", default_value = "256MB")]
    page_cache_size: String,

    /// Do not keep persisted Parquet files in memory.
    #[arg(long, env = "GNOMON_DISABLE_PARQUET_MEM_CACHE")]
    disable_parquet_mem_cache: bool,

    /// Accepted for compatibility with `influxdb3 serve`: retention is applied on every
    /// `--snapshot-check-interval` tick (rows past it are never returned in any case).
    #[arg(long, env = "GNOMON_RETENTION_CHECK_INTERVAL", default_value = "30m", value_parser = humantime::parse_duration)]
    retention_check_interval: Duration,

    /// How often the compaction task looks for small files of settled time ranges to merge.
    #[arg(long, env = "GNOMON_COMPACTION_CHECK_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    compaction_check_interval: Duration,

    /// Compaction merges files into outputs of about this many bytes (`100MB`, `1GiB`).
    #[arg(long, env = "GNOMON_COMPACTION_TARGET_SIZE", default_value = "100MB")]
    compaction_target_size: String,

    /// Test only: abort the process at a step of the next snapshot (`after-files`,
    /// `after-record`, `after-truncate`) or compaction (`compaction-after-file`,
    /// `compaction-after-record`) to exercise crash recovery.
    #[arg(long, env = "GNOMON_TEST_CRASH_POINT", hide = true)]
    test_crash_point: Option<String>,

    /// Directory of processing-engine plugins. Without it, triggers cannot be created.
    #[arg(long, env = "GNOMON_PLUGIN_DIR")]
    plugin_dir: Option<PathBuf>,

    /// The plugins' Python virtual environment (created on the first package install).
    /// Default: `<plugin-dir>/.venv`.
    #[arg(long, env = "GNOMON_VIRTUAL_ENV_LOCATION")]
    virtual_env_location: Option<PathBuf>,

    /// How plugin packages are installed: discover (uv if on the PATH, else pip), pip, uv,
    /// or disabled (the install endpoints answer 403).
    #[arg(long, env = "GNOMON_PACKAGE_MANAGER", default_value = "discover")]
    package_manager: PackageManager,

    /// Base URL of `gh:` plugin names.
    #[arg(long, env = "GNOMON_PLUGIN_REPO", default_value = gnomon_processing_engine::DEFAULT_PLUGIN_REPO)]
    plugin_repo: String,

    /// Only these kinds of triggers may be created: a comma list of wal (or wal_flush),
    /// schedule, request. Default: all.
    #[arg(
        long,
        env = "GNOMON_RESTRICT_PLUGIN_TRIGGERS_TO",
        value_delimiter = ','
    )]
    restrict_plugin_triggers_to: Option<Vec<PluginType>>,

    /// Threads that run plugin Python code.
    #[arg(long, env = "GNOMON_PLUGIN_THREADS", default_value_t = 4)]
    plugin_threads: usize,

    /// Log filter, in `tracing` env-filter syntax (e.g. `info`, `gnomon_wal=debug`).
    #[arg(long, env = "GNOMON_LOG_FILTER", default_value = "info")]
    log_filter: String,

    /// Accepted for compatibility with `influxdb3 serve`: Gnomon has no authentication yet, so
    /// every request is accepted with or without this flag.
    #[arg(long, env = "GNOMON_WITHOUT_AUTH")]
    without_auth: bool,
}

fn parse_gen1(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    match d.as_secs() {
        60 | 300 | 600 => Ok(d),
        _ => Err("gen1 duration must be 1m, 5m or 10m".to_string()),
    }
}

/// Bytes from `123`, `512MB`/`512MiB` (K, M, G, T; powers of 1024), or a percentage of
/// physical memory from `20%`.
fn parse_memory(s: &str) -> anyhow::Result<usize> {
    let s = s.trim();
    if let Some(pct) = s.strip_suffix('%') {
        let pct: f64 = pct.trim().parse().context("memory percentage")?;
        anyhow::ensure!(
            (0.0..=100.0).contains(&pct),
            "percentage must be within 0..100"
        );
        return Ok((total_memory_bytes() as f64 * pct / 100.0) as usize);
    }
    let upper = s.to_ascii_uppercase();
    let digits = upper.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = upper[digits.len()..]
        .trim_end_matches("IB")
        .trim_end_matches('B');
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => anyhow::bail!("unknown unit in memory size {s:?} (use bytes, KB, MB, GB or %)"),
    };
    let n: usize = digits.trim().parse().context("memory size")?;
    n.checked_mul(1usize << shift)
        .context("memory size too large")
}

fn total_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(8 << 30)
}

/// `--datafusion-config`: `key:value` pairs separated by commas, keys with or without the
/// `datafusion.` prefix. Whether a key exists and its value parses is checked when the query
/// engine applies them, so a typo stops the server at start-up.
fn parse_datafusion_config(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once(':')
                .with_context(|| format!("--datafusion-config: {pair:?} is not key:value"))?;
            let key = key.trim();
            let key = if key.starts_with("datafusion.") {
                key.to_string()
            } else {
                format!("datafusion.{key}")
            };
            Ok((key, value.trim().to_string()))
        })
        .collect()
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_filter)
                .with_context(|| format!("invalid --log-filter {:?}", args.log_filter))?,
        )
        .init();
    disable_transparent_huge_pages();
    keep_c_allocations_in_the_heap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gnomon")
        .build()?;
    runtime.block_on(serve(args))
}

/// Opts the server out of transparent huge pages (on hosts where THP is `always`; mimalloc
/// is built without its own THP `madvise`, which covers `madvise` hosts).
///
/// The write path allocates and frees megabytes per request (bodies, batches, column
/// growth). With huge pages every first touch of a 2 MiB region faults in and zeroes all of
/// it, and the allocator's purging of freed ranges splits huge pages that are then faulted
/// in again: measured on the TSBS load at 500k lines/s, a quarter of the server's CPU went to
/// zeroing huge pages, p99 write latency was several times the median, and peak RSS was
/// ~25% higher than with 4 KiB pages.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag on this process.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "could not disable transparent huge pages"
            );
        }
    }
}

/// Keeps the C libraries' allocations (glibc `malloc`; Rust's own go to mimalloc) in the
/// heap, reused, instead of mapped and unmapped each time.
///
/// zstd allocates a compression and a decompression context (the latter ~160 KiB) for every
/// Parquet column chunk a query reads, and frees them after. Above glibc's default mmap
/// threshold (128 KiB) each was an `mmap`, page faults on first touch and an `munmap`, and
/// heap growth was trimmed back after every query: on a one-host SELECT * over a compacted
/// day, a fifth of the query's CPU. With a 4 MiB threshold and 128 MiB before trimming, the
/// contexts reuse freed heap memory (measured: -18% CPU on `cpu-max-all-8`, RSS unchanged).
fn keep_c_allocations_in_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets allocator tunables (under glibc's own lock).
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20) == 1
        };
        if !ok {
            tracing::debug!("could not tune the C allocator");
        }
    }
}

fn s3_store(args: &ServeArgs) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let bucket = args
        .bucket
        .as_deref()
        .context("--bucket is required with --object-store s3")?;
    let mut builder = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(&args.aws_default_region)
        .with_allow_http(args.aws_allow_http);
    if let Some(v) = &args.aws_endpoint {
        // Path-style requests: S3-compatible servers rarely serve virtual-host buckets.
        builder = builder
            .with_endpoint(v)
            .with_virtual_hosted_style_request(false);
    }
    if let Some(v) = &args.aws_access_key_id {
        builder = builder.with_access_key_id(v);
    }
    if let Some(v) = &args.aws_secret_access_key {
        builder = builder.with_secret_access_key(v);
    }
    if let Some(v) = &args.aws_session_token {
        builder = builder.with_token(v);
    }
    Ok(Arc::new(
        builder.build().context("configuring the s3 object store")?,
    ))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let crash_point = match args.test_crash_point.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            gnomon_persist::CrashPoint::parse(s)
                .with_context(|| format!("unknown --test-crash-point {s:?}"))?,
        ),
    };
    let force_snapshot_mem_bytes = parse_memory(&args.force_snapshot_mem_threshold)
        .context("--force-snapshot-mem-threshold")?;
    let compaction_target_bytes =
        parse_memory(&args.compaction_target_size).context("--compaction-target-size")?;
    anyhow::ensure!(
        !args.compaction_check_interval.is_zero(),
        "--compaction-check-interval must be positive"
    );
    let parquet_cache_bytes = if args.disable_parquet_mem_cache {
        0
    } else {
        parse_memory(&args.parquet_mem_cache_size).context("--parquet-mem-cache-size")?
    };
    let page_cache_bytes = parse_memory(&args.page_cache_size).context("--page-cache-size")?;
    // The local-file store, also kept as itself: queries read its files in place.
    let mut local_files = None;
    let (store, wal_backend): (Arc<dyn ObjectStore>, WalBackend) = match args.object_store {
        ObjectStoreKind::File => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
            let store = Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(&args.data_dir)
                    .context("opening the file object store")?,
            );
            local_files = Some(Arc::clone(&store));
            let wal_dir = args.data_dir.join(&args.node_id).join("wal");
            (store, WalBackend::LocalDir(wal_dir))
        }
        ObjectStoreKind::Memory => {
            let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
            let backend = WalBackend::ObjectStore {
                store: Arc::clone(&store),
                prefix: ObjectPath::from(format!("{}/wal", args.node_id)),
            };
            (store, backend)
        }
        ObjectStoreKind::S3 => {
            let store = s3_store(&args)?;
            let backend = WalBackend::ObjectStore {
                store: Arc::clone(&store),
                prefix: ObjectPath::from(format!("{}/wal", args.node_id)),
            };
            (store, backend)
        }
    };
    let limits = Limits {
        max_databases: args.num_database_limit,
        max_tables: args.num_table_limit,
        max_columns_per_table: args.num_total_columns_per_table_limit,
        ..Limits::default()
    };
    let catalog = Catalog::load_or_create(
        Arc::clone(&store),
        ObjectPath::from(args.node_id.as_str()),
        limits,
    )
    .await
    .context("loading the catalog")?;
    let wal_config = WalConfig {
        flush_interval: args.wal_flush_interval,
        max_pending_ops: args.wal_max_write_buffer_size,
        fail_on_corruption: args.wal_replay_fail_on_error,
        ..WalConfig::default()
    };
    // Silent until the engine starts WAL triggers, so replayed writes never fire plugins.
    let wal_feed = Arc::new(WalFeed::new());
    // Installed before the WAL replay so that the caches are rebuilt from the replayed data.
    let caches = CacheManager::new(Arc::clone(&catalog));
    let index = Arc::new(
        FileIndex::load(&store, &args.node_id)
            .await
            .context("loading the persisted-file index")?,
    );
    let mut gen1_ns = args.gen1_duration.as_nanos() as i64;
    if let Some(stored) = index.gen1_duration_ns() {
        if stored != gen1_ns {
            tracing::warn!(
                stored_ns = stored,
                requested_ns = gen1_ns,
                "--gen1-duration differs from the one existing files were written with; keeping the stored one"
            );
            gen1_ns = stored;
        }
    }
    tracing::info!(
        files = index.all_files().len(),
        snapshots = index.last_sequence(),
        "persisted-file index loaded"
    );
    let (write_buffer, report) = WriteBuffer::open_after_snapshots(
        Arc::clone(&catalog),
        wal_backend,
        wal_config,
        gen1_ns,
        vec![
            Arc::new(CacheObserver(Arc::clone(&caches))),
            Arc::clone(&wal_feed) as _,
        ],
        index.watermarks(),
    )
    .await
    .context("opening the WAL")?;
    caches.spawn_eviction(
        args.last_cache_eviction_interval,
        args.distinct_cache_eviction_interval,
    );
    tracing::info!(?report, "WAL replayed");
    let write_buffer = Arc::new(write_buffer);
    let _ = (args.wal_snapshot_size, args.retention_check_interval);
    let cache = Arc::new(ParquetCache::new(parquet_cache_bytes));
    let persister = Arc::new(Persister::new(
        Arc::clone(&store),
        Arc::clone(&write_buffer),
        Arc::clone(&index),
        Arc::clone(&cache),
        PersisterConfig {
            node_id: args.node_id.clone(),
            check_interval: args.snapshot_check_interval,
            force_snapshot_mem_bytes,
            crash_point,
            compaction_interval: args.compaction_check_interval,
            compaction_target_bytes: compaction_target_bytes as u64,
        },
    ));
    let trigger = persister.spawn_trigger();
    let compaction = persister.spawn_compaction();
    let query = QueryEngine::new(
        Arc::clone(&catalog),
        Arc::clone(write_buffer.buffer()),
        QueryConfig {
            memory_pool_bytes: parse_memory(&args.exec_mem_pool_bytes)
                .context("--exec-mem-pool-bytes")?,
            query_log_size: args.query_log_size,
            datafusion_options: parse_datafusion_config(&args.datafusion_config)?,
            target_partitions: args
                .num_datafusion_threads
                .unwrap_or(QueryConfig::default().target_partitions)
                .max(1),
        },
    )?
    .with_caches(caches)
    .with_persisted({
        let files = PersistedFiles::new(Arc::clone(&store), index, cache)
            .with_page_cache(Arc::new(PageCache::new(page_cache_bytes)));
        match local_files {
            Some(local) => files.with_local_files(local),
            None => files,
        }
    });
    let engine_slot = EngineSlot::default();
    let query = Arc::new(
        query
            .with_system_table(Arc::new(EngineLogsTable(Arc::clone(&engine_slot))))
            .with_system_table(Arc::new(PluginFilesTable(Arc::clone(&engine_slot)))),
    );
    let engine = ProcessingEngine::new(
        EngineConfig {
            plugin_dir: args.plugin_dir.clone(),
            virtual_env: args.virtual_env_location.clone(),
            package_manager: args.package_manager,
            plugin_repo: args.plugin_repo.clone(),
            allowed_triggers: args
                .restrict_plugin_triggers_to
                .as_ref()
                .map(|kinds| kinds.iter().copied().collect()),
            python_threads: args.plugin_threads,
            ..EngineConfig::default()
        },
        Arc::clone(&catalog),
        Arc::new(ServerPluginHost {
            write_buffer: Arc::clone(&write_buffer),
            query: Arc::clone(&query),
        }),
        wal_feed,
    )
    .context("starting the processing engine")?;
    let _ = engine_slot.set(engine.clone());
    // Every enabled trigger starts again at boot.
    engine.reconcile().await;
    let catalog_watch = engine.spawn_catalog_watch(Duration::from_secs(1));
    let state = AppState::with_persister(
        Arc::clone(&write_buffer),
        query,
        Some(persister),
        Some(engine),
        HttpConfig {
            max_request_size: args.max_http_request_size,
        },
    );
    let listener = tokio::net::TcpListener::bind(args.http_bind)
        .await
        .with_context(|| format!("binding {}", args.http_bind))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    gnomon_server::serve(listener, state, shutdown_signal()).await?;
    trigger.abort();
    compaction.abort();
    catalog_watch.abort();
    tracing::info!("shutting down: flushing the WAL");
    write_buffer.shutdown().await.context("flushing the WAL")?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown signal received");
}

#[cfg(test)]
mod tests {
    use super::parse_datafusion_config;

    #[test]
    fn datafusion_config_pairs_get_the_datafusion_prefix() {
        let pairs = parse_datafusion_config(
            " execution.batch_size:4096, datafusion.optimizer.max_passes : 2 ,",
        )
        .expect("valid pairs");
        assert_eq!(
            pairs,
            [
                (
                    "datafusion.execution.batch_size".to_string(),
                    "4096".to_string()
                ),
                (
                    "datafusion.optimizer.max_passes".to_string(),
                    "2".to_string()
                ),
            ]
        );
        assert!(parse_datafusion_config("").unwrap().is_empty());
        let error = parse_datafusion_config("execution.batch_size=4096").unwrap_err();
        assert!(error.to_string().contains("is not key:value"), "{error}");
    }
}
