//! The snapshot procedure and its trigger.
//!
//! Steps, each restart-safe:
//! 1. freeze the chosen chunks (writes to their time range go to new chunks from now on);
//! 2. write one Parquet file per frozen chunk (a crash here leaves unlisted files, ignored;
//!    the rows are still in the WAL);
//! 3. write the snapshot record listing the files (from now on replay skips the rows it
//!    covers, by WAL sequence per chunk);
//! 4. publish the files to queries, then drop the frozen chunks from memory;
//! 5. delete the WAL files whose every entry is persisted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gnomon_write_buffer::{FrozenChunk, WriteBuffer};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::cache::ParquetCache;
use crate::index::{FileIndex, ParquetFile, SnapshotRecord, SNAPSHOT_RECORD_VERSION};
use crate::{compactor, layout, writer, PersistError};

/// Where a test may make the process abort in the middle of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Files written, no snapshot record.
    AfterFiles,
    /// Record written, files not yet published, chunks not dropped, WAL not truncated.
    AfterRecord,
    /// Everything done, including the WAL truncation.
    AfterTruncate,
    /// Compaction: the merged file written, no record yet.
    CompactionAfterFile,
    /// Compaction: the record written, the index not yet swapped.
    CompactionAfterRecord,
}

impl CrashPoint {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "after-files" => Some(Self::AfterFiles),
            "after-record" => Some(Self::AfterRecord),
            "after-truncate" => Some(Self::AfterTruncate),
            "compaction-after-file" => Some(Self::CompactionAfterFile),
            "compaction-after-record" => Some(Self::CompactionAfterRecord),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PersisterConfig {
    /// Prefix of every object (`--node-id`).
    pub node_id: String,
    /// How often the trigger looks at the buffer.
    pub check_interval: Duration,
    /// Buffer bytes above which the oldest chunks are persisted regardless of age.
    pub force_snapshot_mem_bytes: usize,
    /// Test-only: abort the process at this step of the next snapshot.
    pub crash_point: Option<CrashPoint>,
    /// How often the compaction task looks for files to merge.
    pub compaction_interval: Duration,
    /// Compaction stops adding files to a merge at this many input bytes.
    pub compaction_target_bytes: u64,
}

/// Which chunks a snapshot takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Chunks whose time range ended more than one chunk duration ago and that no write
    /// touched for one chunk duration; plus the oldest chunks while buffer memory is above
    /// the threshold.
    Due,
    /// Every buffered chunk (the admin endpoint, shutdown tests).
    All,
}

/// What one snapshot did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SnapshotSummary {
    /// Sequence of the record written; 0 when there was nothing to persist.
    pub sequence: u64,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
}

/// What one compaction round did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompactionSummary {
    /// Files merged away and files written in their place.
    pub files_in: usize,
    pub files_out: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rows: u64,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct PersistMetrics {
    pub snapshots: AtomicU64,
    pub failed_snapshots: AtomicU64,
    pub files_written: AtomicU64,
    pub rows_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub compactions: AtomicU64,
    pub failed_compactions: AtomicU64,
    pub files_compacted: AtomicU64,
}

/// Writes the buffer to Parquet files in the object store.
pub struct Persister {
    store: Arc<dyn ObjectStore>,
    write_buffer: Arc<WriteBuffer>,
    index: Arc<FileIndex>,
    cache: Arc<ParquetCache>,
    config: PersisterConfig,
    /// One snapshot (or purge, or index swap of a compaction) at a time: a snapshot must
    /// persist every frozen chunk it sees, and record sequences must be unique.
    running: tokio::sync::Mutex<()>,
    /// One compaction round at a time (it holds `running` only to publish).
    compacting: tokio::sync::Mutex<()>,
    /// Files already out of the index (deleted tables, compacted, expired), with the purge
    /// round that removed them. Deleted from the store on a later round, once no query plan
    /// holds them (plans keep the `Arc` of every file they will read).
    doomed: parking_lot::Mutex<Vec<(Arc<ParquetFile>, u64)>>,
    purge_round: AtomicU64,
    metrics: PersistMetrics,
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Persister {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        write_buffer: Arc<WriteBuffer>,
        index: Arc<FileIndex>,
        cache: Arc<ParquetCache>,
        config: PersisterConfig,
    ) -> Self {
        Self {
            store,
            write_buffer,
            index,
            cache,
            config,
            running: tokio::sync::Mutex::new(()),
            compacting: tokio::sync::Mutex::new(()),
            doomed: parking_lot::Mutex::new(Vec::new()),
            purge_round: AtomicU64::new(0),
            metrics: PersistMetrics::default(),
        }
    }

    pub fn index(&self) -> &Arc<FileIndex> {
        &self.index
    }

    pub fn cache(&self) -> &Arc<ParquetCache> {
        &self.cache
    }

    pub fn metrics(&self) -> &PersistMetrics {
        &self.metrics
    }

    /// Runs the trigger every `check_interval` until the returned task is aborted.
    pub fn spawn_trigger(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.config.check_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = this.purge_deleted().await {
                    tracing::error!(error = %e, "removing data of deleted tables failed; will retry");
                }
                if let Err(e) = this.snapshot(SnapshotMode::Due).await {
                    tracing::error!(error = %e, "snapshot failed; will retry");
                }
            }
        })
    }

    fn crash_if(&self, point: CrashPoint) {
        if self.config.crash_point == Some(point) {
            tracing::error!(?point, "test crash point reached: aborting");
            std::process::abort();
        }
    }

    /// Chooses the chunks `mode` asks for and freezes them.
    fn freeze_chosen(&self, mode: SnapshotMode) {
        let buffer = self.write_buffer.buffer();
        let mut chunks = buffer.chunk_infos();
        let gen1 = buffer.chunk_duration_ns();
        let chosen: Vec<_> = match mode {
            SnapshotMode::All => chunks,
            SnapshotMode::Due => {
                let now = gnomon_write_buffer::now_ns();
                let quiet = Duration::from_nanos(gen1 as u64);
                let total = buffer.size_bytes();
                chunks.sort_by_key(|c| c.start);
                let mut over = total.saturating_sub(self.config.force_snapshot_mem_bytes / 4 * 3);
                let forced = total > self.config.force_snapshot_mem_bytes;
                if forced {
                    tracing::info!(
                        buffer_bytes = total,
                        threshold = self.config.force_snapshot_mem_bytes,
                        "buffer above --force-snapshot-mem-threshold: persisting oldest chunks"
                    );
                }
                chunks
                    .into_iter()
                    .filter(|c| {
                        let due = c.start.saturating_add(gen1.saturating_mul(2)) <= now
                            && c.last_write.elapsed() >= quiet;
                        if forced && over > 0 {
                            over = over.saturating_sub(c.size_bytes);
                            return true;
                        }
                        due
                    })
                    .collect()
            }
        };
        for c in chosen {
            buffer.freeze(c.db_id, c.table_id, c.start);
        }
    }

    /// Removes the data of soft-deleted databases and tables, and the data past its
    /// database's retention period: buffered chunks at once, Parquet files from the index at
    /// once (a snapshot record lists them as removed, so a restart does not bring them back)
    /// and from the object store on a later purge, once no query holds them. Returns how
    /// many files left the index.
    pub async fn purge_deleted(&self) -> Result<usize, PersistError> {
        let _running = self.running.lock().await;
        self.delete_doomed().await;
        let catalog = self.write_buffer.catalog().snapshot();
        let gone = |db: gnomon_catalog::DbId, table: gnomon_catalog::TableId| match catalog
            .database_by_id(db)
        {
            None => true,
            Some(d) => d.deleted() || d.table_by_id(table).is_none_or(|t| t.deleted()),
        };
        let dropped = self.write_buffer.buffer().drop_tables(gone);
        if dropped > 0 {
            tracing::info!(tables = dropped, "dropped buffered data of deleted tables");
        }
        // Retention: rows older than the cutoff are never returned; whole chunks and files
        // older than it go.
        let now = gnomon_write_buffer::now_ns();
        let cutoff = |db: gnomon_catalog::DbId| {
            catalog
                .database_by_id(db)
                .and_then(|d| d.retention_period_ns())
                .map(|r| now.saturating_sub(r))
        };
        let expired = self.write_buffer.buffer().drop_expired_chunks(cutoff);
        if expired > 0 {
            tracing::info!(
                chunks = expired,
                "dropped buffered chunks past their retention period"
            );
        }
        let removed_files: Vec<Arc<ParquetFile>> = self
            .index
            .all_files()
            .into_iter()
            .filter(|f| {
                gone(f.db_id, f.table_id) || cutoff(f.db_id).is_some_and(|c| f.max_time < c)
            })
            .collect();
        if removed_files.is_empty() {
            return Ok(0);
        }
        let removed: Vec<String> = removed_files.iter().map(|f| f.path.clone()).collect();
        let record = self.record(self.index.last_sequence() + 1, Vec::new(), removed);
        self.put_record(&record).await?;
        self.index.apply(&record);
        for path in &record.removed {
            self.cache.remove(path);
        }
        tracing::info!(
            files = record.removed.len(),
            "files of deleted tables or past their retention period removed from the index"
        );
        let count = record.removed.len();
        self.doom(removed_files);
        Ok(count)
    }

    /// The snapshot record `sequence`: files added and removed, with the buffer's chunk
    /// duration and WAL position at this moment.
    fn record(
        &self,
        sequence: u64,
        added: Vec<ParquetFile>,
        removed: Vec<String>,
    ) -> SnapshotRecord {
        let buffer = self.write_buffer.buffer();
        SnapshotRecord {
            version: SNAPSHOT_RECORD_VERSION,
            sequence,
            gen1_duration_ns: buffer.chunk_duration_ns(),
            wal_sequence: buffer.last_sequence(),
            added,
            removed,
        }
    }

    /// Writes `record` to the store: from then on its changes survive a restart.
    async fn put_record(&self, record: &SnapshotRecord) -> Result<(), PersistError> {
        let json =
            serde_json::to_vec_pretty(record).map_err(|e| PersistError::Internal(e.to_string()))?;
        let path = layout::snapshot_path(&self.config.node_id, record.sequence);
        self.store.put(&path, json.into()).await?;
        Ok(())
    }

    /// Files just taken out of the index: deleted from the store on a later round.
    fn doom(&self, files: Vec<Arc<ParquetFile>>) {
        let round = self.purge_round.load(Ordering::Relaxed);
        self.doomed
            .lock()
            .extend(files.into_iter().map(|f| (f, round)));
    }

    /// Deletes the doomed files of earlier rounds that no query holds any more.
    async fn delete_doomed(&self) {
        let round = self.purge_round.fetch_add(1, Ordering::Relaxed);
        let ready: Vec<Arc<ParquetFile>> = {
            let mut doomed = self.doomed.lock();
            let (ready, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut *doomed)
                .into_iter()
                .partition(|(f, r)| *r < round && Arc::strong_count(f) == 1);
            *doomed = keep;
            ready.into_iter().map(|(f, _)| f).collect()
        };
        for file in ready {
            let path = file.location();
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, path = %file.path, "could not remove a file out of the index; will retry");
                    self.doomed.lock().push((file, round));
                }
            }
        }
    }

    /// Deletes the Parquet files no snapshot record lists and no query can hold: left by a
    /// crash before a snapshot's or a compaction's record (their rows are in the WAL or in
    /// the inputs), or after a compaction's record (the inputs, out of the index). Holds
    /// both locks, so no snapshot or compaction is between writing a file and recording it.
    /// Returns how many files it deleted.
    pub async fn sweep_orphans(&self) -> Result<usize, PersistError> {
        use futures::TryStreamExt;
        let _compacting = self.compacting.lock().await;
        let _running = self.running.lock().await;
        let listed: hashbrown::HashSet<String> = self
            .index
            .all_files()
            .iter()
            .map(|f| f.path.clone())
            .chain(self.doomed.lock().iter().map(|(f, _)| f.path.clone()))
            .collect();
        let dir = layout::dbs_dir(&self.config.node_id);
        let orphans: Vec<object_store::path::Path> = self
            .store
            .list(Some(&dir))
            .try_filter(|m| {
                let keep = listed.contains(m.location.as_ref())
                    || m.location.extension() != Some("parquet");
                futures::future::ready(!keep)
            })
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for path in &orphans {
            match self.store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !orphans.is_empty() {
            tracing::info!(files = orphans.len(), "unlisted Parquet files removed");
        }
        Ok(orphans.len())
    }

    /// Files waiting to be deleted (out of the index, maybe still read by a query).
    pub fn doomed_files(&self) -> usize {
        self.doomed.lock().len()
    }

    /// Sweeps orphans once (see [`Persister::sweep_orphans`]), then runs a compaction round
    /// every `compaction_interval` until the task is aborted.
    pub fn spawn_compaction(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = this.sweep_orphans().await {
                tracing::warn!(error = %e, "could not remove unlisted Parquet files");
            }
            let period = this.config.compaction_interval;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = this.compact(false).await {
                    tracing::error!(error = %e, "compaction failed; will retry");
                }
            }
        })
    }

    /// Merges small files of settled time ranges (every range with `force`); see
    /// [`crate::compactor`].
    pub async fn compact(&self, force: bool) -> Result<CompactionSummary, PersistError> {
        let _compacting = self.compacting.lock().await;
        let settle = self
            .write_buffer
            .buffer()
            .chunk_duration_ns()
            .saturating_mul(2);
        let settled_before = gnomon_write_buffer::now_ns().saturating_sub(settle);
        let groups = compactor::plan(
            self.index.all_files(),
            settled_before,
            self.config.compaction_target_bytes,
            force,
        );
        let mut summary = CompactionSummary::default();
        for group in groups {
            let result = self.compact_group(group).await;
            match result {
                Ok(Some((inputs, output))) => {
                    self.metrics.compactions.fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .files_compacted
                        .fetch_add(inputs.len() as u64, Ordering::Relaxed);
                    summary.files_in += inputs.len();
                    summary.bytes_in += inputs.iter().map(|f| f.size_bytes).sum::<u64>();
                    summary.files_out += 1;
                    summary.bytes_out += output.size_bytes;
                    summary.rows += output.row_count;
                }
                Ok(None) => {}
                Err(e) => {
                    self.metrics
                        .failed_compactions
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        if summary.files_in > 0 {
            tracing::info!(?summary, "compaction round done");
        }
        Ok(summary)
    }

    /// Merges one group and swaps it into the index. `None` when the table is gone or an
    /// input left the index meanwhile (deleted table, retention): nothing is published then.
    async fn compact_group(
        &self,
        group: compactor::CompactionGroup,
    ) -> Result<Option<(Vec<Arc<ParquetFile>>, ParquetFile)>, PersistError> {
        let started = Instant::now();
        let catalog = self.write_buffer.catalog().snapshot();
        let Some(table) = catalog
            .database_by_id(group.db_id)
            .filter(|d| !d.deleted())
            .and_then(|d| d.table_by_id(group.table_id))
            .filter(|t| !t.deleted())
        else {
            return Ok(None);
        };
        let schema = gnomon_write_buffer::arrow_schema(table);
        let mut inputs = Vec::with_capacity(group.files.len());
        for file in &group.files {
            let bytes = match self.cache.get(&file.path) {
                Some(b) => b,
                None => self.store.get(&file.location()).await?.bytes().await?,
            };
            inputs.push(bytes);
        }
        let properties = writer::compaction_properties(&schema);
        let encoded =
            tokio::task::spawn_blocking(move || compactor::merge(&schema, inputs, properties))
                .await
                .map_err(|e| PersistError::Internal(e.to_string()))??;

        let files = &group.files;
        let chunk_start = files.iter().map(|f| f.chunk_start).min().unwrap_or(0);
        let chunk_end = files.iter().map(|f| f.chunk_end).max().unwrap_or(0);
        let snapshot = files.iter().map(|f| f.snapshot).max().unwrap_or(0);
        let mut marks: std::collections::BTreeMap<i64, u64> = Default::default();
        for f in files {
            for (start, sequence) in f.watermarks() {
                let slot = marks.entry(start).or_insert(0);
                *slot = (*slot).max(sequence);
            }
        }
        let path = layout::compacted_path(
            &self.config.node_id,
            group.db_id,
            group.table_id,
            chunk_start,
            snapshot,
            gnomon_write_buffer::now_ns(),
        );
        let output = ParquetFile {
            path: path.to_string(),
            db_id: group.db_id,
            table_id: group.table_id,
            chunk_start,
            chunk_end,
            min_time: encoded.min_time,
            max_time: encoded.max_time,
            row_count: encoded.rows,
            size_bytes: encoded.bytes.len() as u64,
            max_wal_sequence: marks.values().copied().max().unwrap_or(0),
            snapshot,
            chunk_watermarks: marks.into_iter().collect(),
        };
        self.store.put(&path, encoded.bytes.into()).await?;
        self.crash_if(CrashPoint::CompactionAfterFile);

        let _running = self.running.lock().await;
        let live = self
            .index
            .contains_all(files.iter().map(|f| f.path.as_str()));
        if !live {
            // The inputs changed under us: the merged file is an orphan; drop it.
            let _ = self.store.delete(&path).await;
            return Ok(None);
        }
        let record = self.record(
            self.index.last_sequence() + 1,
            vec![output],
            files.iter().map(|f| f.path.clone()).collect(),
        );
        self.put_record(&record).await?;
        self.crash_if(CrashPoint::CompactionAfterRecord);
        self.index.apply(&record);
        for f in files {
            self.cache.remove(&f.path);
        }
        tracing::debug!(
            inputs = files.len(),
            rows = record.added[0].row_count,
            elapsed = ?started.elapsed(),
            "files compacted"
        );
        self.doom(group.files.clone());
        let output = record.added.into_iter().next().expect("one output");
        Ok(Some((group.files, output)))
    }

    /// Takes a snapshot (see the module docs). Chunks frozen by an earlier failed snapshot
    /// are always included.
    pub async fn snapshot(&self, mode: SnapshotMode) -> Result<SnapshotSummary, PersistError> {
        let _running = self.running.lock().await;
        self.freeze_chosen(mode);
        let frozen = self.write_buffer.buffer().frozen_chunks();
        if frozen.is_empty() {
            return Ok(SnapshotSummary::default());
        }
        let result = self.persist(frozen).await;
        match &result {
            Ok(summary) => {
                self.metrics.snapshots.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    sequence = summary.sequence,
                    files = summary.files,
                    rows = summary.rows,
                    bytes = summary.bytes,
                    "snapshot written"
                );
            }
            Err(_) => {
                self.metrics
                    .failed_snapshots
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    async fn persist(&self, frozen: Vec<FrozenChunk>) -> Result<SnapshotSummary, PersistError> {
        let started = Instant::now();
        let sequence = self.index.last_sequence() + 1;
        let buffer = Arc::clone(self.write_buffer.buffer());
        let catalog = self.write_buffer.catalog().snapshot();
        let node = self.config.node_id.clone();
        let mut added = Vec::new();
        let mut contents = Vec::new();
        let mut orphans = Vec::new();
        for chunk in &frozen {
            let Some(schema) = catalog
                .database_by_id(chunk.db_id)
                .and_then(|db| db.table_by_id(chunk.table_id))
                .cloned()
            else {
                // Cannot happen while tables are only soft-deleted; never block snapshots on it.
                tracing::warn!(?chunk, "buffered chunk of an unknown table: dropped");
                orphans.push(chunk.clone());
                continue;
            };
            let (buffer, job) = (Arc::clone(&buffer), chunk.clone());
            let encoded = tokio::task::spawn_blocking(move || {
                buffer
                    .frozen_batch(&job, &schema)
                    .map(|batch| writer::encode(&batch))
                    .transpose()
            })
            .await
            .map_err(|e| PersistError::Internal(e.to_string()))??;
            let Some(encoded) = encoded else {
                orphans.push(chunk.clone());
                continue;
            };
            let path =
                layout::parquet_path(&node, chunk.db_id, chunk.table_id, chunk.start, sequence);
            self.store.put(&path, encoded.bytes.clone().into()).await?;
            added.push(ParquetFile {
                path: path.to_string(),
                db_id: chunk.db_id,
                table_id: chunk.table_id,
                chunk_start: chunk.start,
                chunk_end: chunk.end,
                min_time: encoded.min_time,
                max_time: encoded.max_time,
                row_count: encoded.rows,
                size_bytes: encoded.bytes.len() as u64,
                max_wal_sequence: chunk.max_sequence,
                snapshot: sequence,
                chunk_watermarks: Vec::new(),
            });
            contents.push(encoded.bytes);
        }
        self.crash_if(CrashPoint::AfterFiles);

        let record = self.record(sequence, added, Vec::new());
        self.put_record(&record).await?;
        self.crash_if(CrashPoint::AfterRecord);

        // Publish before dropping: a query reads the buffer first, then the index, so it sees
        // the rows in at least one of them.
        for (file, bytes) in record.added.iter().zip(contents) {
            self.cache.insert(&file.path, bytes);
        }
        self.index.apply(&record);
        for chunk in frozen.iter().chain(&orphans) {
            buffer.drop_frozen(chunk);
        }

        let persisted_up_to = buffer
            .min_buffered_sequence()
            .map(|s| s.saturating_sub(1))
            .unwrap_or_else(|| buffer.last_sequence());
        self.write_buffer
            .wal()
            .remove_up_to(persisted_up_to)
            .await?;
        self.crash_if(CrashPoint::AfterTruncate);

        let summary = SnapshotSummary {
            sequence,
            files: record.added.len(),
            rows: record.added.iter().map(|f| f.row_count).sum(),
            bytes: record.added.iter().map(|f| f.size_bytes).sum(),
        };
        let m = &self.metrics;
        m.files_written
            .fetch_add(summary.files as u64, Ordering::Relaxed);
        m.rows_written.fetch_add(summary.rows, Ordering::Relaxed);
        m.bytes_written.fetch_add(summary.bytes, Ordering::Relaxed);
        tracing::debug!(elapsed = ?started.elapsed(), "snapshot steps done");
        Ok(summary)
    }
}
