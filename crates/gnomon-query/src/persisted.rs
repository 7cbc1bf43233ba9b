//! Reading persisted Parquet files: the object store registered with DataFusion, and a reader
//! factory that serves cached files from memory.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::listing::{FileRange, PartitionedFile};
use datafusion::datasource::physical_plan::parquet::DefaultParquetFileReaderFactory;
use datafusion::datasource::physical_plan::parquet::ParquetRowSelection;
use datafusion::datasource::physical_plan::FileGroup;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::future::BoxFuture;
use futures::FutureExt;
use gnomon_persist::{FileIndex, ParquetCache, ParquetFile};

use crate::page_cache::PageCache;
use crate::series_ranges::TagRunsCache;
use crate::time_range::TimeRange;
use crate::time_runs::TimeRuns;
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::Mutex;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use std::collections::HashMap;

/// The decompressed page cache's size when the server does not set one.
pub const DEFAULT_PAGE_CACHE_BYTES: usize = 256 << 20;

/// The URL the persisted files' store is registered under in DataFusion's runtime.
pub const STORE_URL: &str = "gnomon://persisted";

pub fn store_url() -> ObjectStoreUrl {
    ObjectStoreUrl::parse(STORE_URL).expect("valid url")
}

/// The persisted side of every table: the store, the file index, the file cache, and what
/// queries learnt about the files (footers, tag runs).
#[derive(Debug, Clone)]
pub struct PersistedFiles {
    pub store: Arc<dyn ObjectStore>,
    pub index: Arc<FileIndex>,
    pub cache: Arc<ParquetCache>,
    metadata: Arc<MetadataCache>,
    /// Footers with their Arrow schema decoded, for reads outside a DataFusion scan.
    arrow_metadata: Arc<FileFacts<String, ArrowReaderMetadata>>,
    pub(crate) tag_runs: Arc<TagRunsCache>,
    /// Each file's `time` column as runs of evenly spaced times (`None`: too irregular).
    time_runs: Arc<FileFacts<String, Option<Arc<TimeRuns>>>>,
    /// The store itself when it is the local file system, to find its files on disk.
    local_files: Option<Arc<LocalFileSystem>>,
    /// Decompressed pages the direct path read.
    pub(crate) pages: Arc<PageCache>,
}

impl PersistedFiles {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        index: Arc<FileIndex>,
        cache: Arc<ParquetCache>,
    ) -> Self {
        Self {
            store,
            index,
            cache,
            metadata: Arc::new(MetadataCache::new(FILE_FACTS_ENTRIES)),
            arrow_metadata: Arc::new(FileFacts::new(FILE_FACTS_ENTRIES)),
            tag_runs: Arc::new(TagRunsCache::default()),
            time_runs: Arc::new(FileFacts::new(FILE_FACTS_ENTRIES)),
            local_files: None,
            pages: Arc::new(PageCache::new(DEFAULT_PAGE_CACHE_BYTES)),
        }
    }

    /// Keeps the direct path's decompressed pages in `pages` (instead of a cache of
    /// [`DEFAULT_PAGE_CACHE_BYTES`]).
    pub fn with_page_cache(mut self, pages: Arc<PageCache>) -> Self {
        self.pages = pages;
        self
    }

    /// Reads the files of `store` (the same local-file store as `self.store`) with positioned
    /// reads on the querying thread. The object store's own local reads hop to the blocking
    /// pool for every range; on a file in the page cache the hop (a thread wake-up) cost more
    /// than the read, and a query of one series makes several.
    pub fn with_local_files(mut self, store: Arc<LocalFileSystem>) -> Self {
        self.local_files = Some(store);
        self
    }

    pub fn reader_factory(&self) -> Arc<dyn ParquetFileReaderFactory> {
        Arc::new(CachedReaderFactory {
            store: DefaultParquetFileReaderFactory::new(Arc::clone(&self.store)),
            cache: Arc::clone(&self.cache),
            metadata: Arc::clone(&self.metadata),
            local_files: self.local_files.clone(),
        })
    }

    /// A reader of `file` (from memory when cached), for reading outside a DataFusion scan.
    pub(crate) fn open(&self, file: &ParquetFile) -> Result<Box<dyn AsyncFileReader + Send>> {
        self.reader_factory().create_reader(
            0,
            Self::partitioned_file(file),
            None,
            &ExecutionPlanMetricsSet::new(),
        )
    }

    /// `file`'s footer with its Arrow schema (decoding the schema embedded in the footer
    /// costs more than a small read).
    pub(crate) async fn arrow_metadata(&self, file: &ParquetFile) -> Result<ArrowReaderMetadata> {
        self.arrow_metadata
            .get_or_load(file.path.as_str(), async {
                let metadata = self.open(file)?.get_metadata(None).await?;
                Ok(ArrowReaderMetadata::try_new(
                    metadata,
                    ArrowReaderOptions::new(),
                )?)
            })
            .await
    }

    /// `file`'s times as runs of evenly spaced times (decoded on first use, then kept), or
    /// `None` when they are too irregular.
    pub(crate) async fn time_runs(&self, file: &ParquetFile) -> Result<Option<Arc<TimeRuns>>> {
        self.time_runs
            .get_or_load(file.path.as_str(), async {
                Ok(TimeRuns::read(self.open(file)?).await?.map(Arc::new))
            })
            .await
    }

    /// The rows of `file` the tag `constraints` may match (every row without constraints)
    /// with a time in `range`. When the range cuts into the file, the file's time runs make
    /// the selection exact in time (each series' rows in the range are contiguous), so a
    /// reader decodes only those rows instead of filtering the rest out after decoding; a
    /// file without runs keeps every row the tags allow.
    pub(crate) async fn file_rows(
        &self,
        file: &ParquetFile,
        constraints: &[crate::series_ranges::TagValues],
        range: TimeRange,
    ) -> Result<crate::series_ranges::FileRows> {
        let rows = match constraints.is_empty() {
            true => crate::series_ranges::FileRows::All,
            false => {
                self.tag_runs
                    .file_rows(&file.path, constraints, || self.open(file))
                    .await?
            }
        };
        if range.min <= file.min_time && range.max >= file.max_time {
            return Ok(rows);
        }
        Ok(match self.time_runs(file).await? {
            Some(times) => rows.within(&times, range),
            None => rows,
        })
    }

    /// All rows of a file (for merging with other sources of the same time range).
    pub async fn read_all(&self, file: &ParquetFile) -> Result<Vec<RecordBatch>> {
        let bytes = match self.cache.get(&file.path) {
            Some(b) => b,
            None => self
                .store
                .get(&file.location())
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
                .bytes()
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?,
        };
        tokio::task::spawn_blocking(move || {
            ParquetRecordBatchReaderBuilder::try_new(bytes)?
                .build()?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))
        })
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
    }

    pub fn partitioned_file(file: &ParquetFile) -> PartitionedFile {
        let mut partitioned = PartitionedFile::new(file.path.clone(), file.size_bytes);
        // `new` would escape the path's escapes again.
        partitioned.object_meta.location = file.location();
        partitioned
    }

    /// The file groups of a table scan. Files read whole are cut into `partitions` pieces of
    /// equal bytes (a byte range reads the row groups whose middle it holds), as DataFusion's
    /// `repartition_file_scans` would; files given a row selection of a few series
    /// (`series_ranges`) stay whole and are dealt round-robin.
    ///
    /// The scan decides this rather than DataFusion (whose file repartitioning is turned off)
    /// because only the scan knows which files are read whole: an even byte split of a file
    /// with a selection opens it once more to read nothing, and spreads a query of one series
    /// over threads that cost more to wake than the read does.
    pub(crate) fn spread_for_scan(
        files: Vec<PartitionedFile>,
        partitions: usize,
        min_split_bytes: u64,
    ) -> Vec<FileGroup> {
        let partitions = partitions.max(1);
        // Files with a selection, in pieces already cut by `row_group_pieces`, are dealt as
        // they are.
        let (whole, selected): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|f| f.extensions.get::<ParquetRowSelection>().is_none());
        let whole_bytes: u64 = whole.iter().map(|f| f.object_meta.size).sum();
        if partitions == 1 || whole_bytes < min_split_bytes.max(1) {
            return Self::spread(whole.into_iter().chain(selected).collect(), partitions);
        }
        let step = whole_bytes.div_ceil(partitions as u64);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions];
        let (mut group, mut room) = (0, step);
        for file in whole {
            let size = file.object_meta.size;
            let mut start = 0;
            while start < size {
                let end = if group + 1 == partitions {
                    size
                } else {
                    (start + room).min(size)
                };
                let mut piece = file.clone();
                piece.range = Some(FileRange {
                    start: start as i64,
                    end: end as i64,
                });
                groups[group].push(piece);
                room = room.saturating_sub(end - start);
                start = end;
                if room == 0 && group + 1 < partitions {
                    group += 1;
                    room = step;
                }
            }
        }
        for (i, file) in selected.into_iter().enumerate() {
            groups[i % partitions].push(file);
        }
        groups
            .into_iter()
            .filter(|g| !g.is_empty())
            .map(FileGroup::new)
            .collect()
    }

    /// Byte ranges that deal the row groups holding `rows` (sorted, disjoint) over at most
    /// `partitions` pieces of the file, contiguous and of about equal numbers of row groups;
    /// empty when the rows lie in one row group or the footer is not cached. A range reads
    /// the row groups whose first page starts inside it.
    pub(crate) fn row_group_pieces(
        &self,
        path: &str,
        rows: &[Range<u64>],
        partitions: usize,
    ) -> Vec<FileRange> {
        let Some(metadata) = self.metadata.get(path) else {
            return Vec::new();
        };
        let mut starts = Vec::new();
        let (mut first_row, mut next) = (0u64, rows.iter().peekable());
        for group in metadata.row_groups() {
            let end_row = first_row + group.num_rows() as u64;
            while next.peek().is_some_and(|r| r.end <= first_row) {
                next.next();
            }
            if next.peek().is_some_and(|r| r.start < end_row) {
                let column = group.column(0);
                let offset = column
                    .dictionary_page_offset()
                    .unwrap_or_else(|| column.data_page_offset());
                starts.push(offset);
            }
            first_row = end_row;
        }
        let pieces = partitions.min(starts.len());
        if pieces < 2 {
            return Vec::new();
        }
        (0..pieces)
            .map(|i| {
                let (from, to) = (i * starts.len() / pieces, (i + 1) * starts.len() / pieces);
                FileRange {
                    start: starts[from],
                    end: starts[to - 1] + 1,
                }
            })
            .collect()
    }

    /// `files` dealt round-robin into at most `partitions` groups (at least one), so that
    /// DataFusion spreads the files over the cores.
    pub(crate) fn spread(files: Vec<PartitionedFile>, partitions: usize) -> Vec<FileGroup> {
        let mut groups = vec![Vec::new(); partitions.max(1).min(files.len()).max(1)];
        let count = groups.len();
        for (i, file) in files.into_iter().enumerate() {
            groups[i % count].push(file);
        }
        groups.into_iter().map(FileGroup::new).collect()
    }
}

/// Entries a cache of facts about files ([`FileFacts`]) keeps at most.
pub(crate) const FILE_FACTS_ENTRIES: usize = 4096;

/// What queries learnt about immutable files (a parsed footer, a column's tag runs), by key,
/// for at most `capacity` keys. Files never change, so an entry never goes stale; one that is
/// no longer asked for (its file deleted) just waits to be pushed out. Past the capacity any
/// entry goes first: files are many and alike, so the choice hardly matters.
#[derive(Debug)]
pub(crate) struct FileFacts<K, V> {
    capacity: usize,
    entries: Mutex<HashMap<K, V>>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> FileFacts<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.entries.lock().get(key).cloned()
    }

    /// The fact for `key`, loaded by `load` and kept if not known yet. Two queries may load
    /// the same key at once; both get the same answer.
    pub(crate) async fn get_or_load<Q, F>(&self, key: &Q, load: F) -> Result<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: std::future::Future<Output = Result<V>>,
    {
        if let Some(found) = self.get(key) {
            return Ok(found);
        }
        let value = load.await?;
        self.insert(key.to_owned(), value.clone());
        Ok(value)
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(key, value);
    }
}

/// Parsed Parquet footers by object path, page index included. Parsing a compacted file's
/// footer and page index costs milliseconds, more than a query on a few series takes.
type MetadataCache = FileFacts<String, Arc<ParquetMetaData>>;

/// Cached files from memory, the rest through DataFusion's object-store reader; footers from
/// the [`MetadataCache`] either way.
#[derive(Debug)]
struct CachedReaderFactory {
    store: DefaultParquetFileReaderFactory,
    cache: Arc<ParquetCache>,
    metadata: Arc<MetadataCache>,
    local_files: Option<Arc<LocalFileSystem>>,
}

impl ParquetFileReaderFactory for CachedReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let path = file.object_meta.location.to_string();
        // Where the local store keeps the file (its own mapping, percent-decoding included).
        let on_disk = self
            .local_files
            .as_ref()
            .and_then(|fs| fs.path_to_filesystem(&file.object_meta.location).ok());
        let inner: Box<dyn AsyncFileReader + Send> = match (self.cache.get(&path), on_disk) {
            (Some(bytes), _) => Box::new(InMemoryReader { bytes }),
            (None, Some(path)) => Box::new(LocalFileReader { path, file: None }),
            (None, None) => {
                self.store
                    .create_reader(partition_index, file, metadata_size_hint, metrics)?
            }
        };
        Ok(Box::new(MetadataCachingReader {
            inner,
            path,
            metadata: Arc::clone(&self.metadata),
        }))
    }
}

/// A reader whose footer comes from the [`MetadataCache`], read (with the page index) and
/// kept on a miss.
struct MetadataCachingReader {
    inner: Box<dyn AsyncFileReader + Send>,
    path: String,
    metadata: Arc<MetadataCache>,
}

impl AsyncFileReader for MetadataCachingReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            if let Some(found) = self.metadata.get(self.path.as_str()) {
                return Ok(found);
            }
            // Always with the page index: what one query does not need, the next may.
            let with_index = options
                .cloned()
                .unwrap_or_default()
                .with_page_index_policy(PageIndexPolicy::Optional);
            let metadata = self.inner.get_metadata(Some(&with_index)).await?;
            self.metadata
                .insert(self.path.clone(), Arc::clone(&metadata));
            Ok(metadata)
        }
        .boxed()
    }
}

/// A whole file's footer, page index included (what one query does not need, the next may).
fn parse_footer<R: parquet::file::reader::ChunkReader>(
    file: &R,
) -> parquet::errors::Result<Arc<ParquetMetaData>> {
    ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(file)
        .map(Arc::new)
}

/// A file of the local store, read with positioned reads where the query runs.
struct LocalFileReader {
    path: PathBuf,
    /// Opened on the first read.
    file: Option<std::fs::File>,
}

impl LocalFileReader {
    fn file(&mut self) -> parquet::errors::Result<&std::fs::File> {
        if self.file.is_none() {
            let file = std::fs::File::open(&self.path).map_err(|e| {
                parquet::errors::ParquetError::External(
                    format!("opening {}: {e}", self.path.display()).into(),
                )
            })?;
            self.file = Some(file);
        }
        Ok(self.file.as_ref().expect("opened above"))
    }

    fn read(&mut self, range: Range<u64>) -> parquet::errors::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buffer = vec![0; (range.end - range.start) as usize];
        self.file()?
            .read_exact_at(&mut buffer, range.start)
            .map_err(|e| {
                parquet::errors::ParquetError::External(
                    format!("reading {:?} of {}: {e}", range, self.path.display()).into(),
                )
            })?;
        Ok(Bytes::from(buffer))
    }
}

impl AsyncFileReader for LocalFileReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let result = self.read(range);
        async move { result }.boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        let result = ranges.into_iter().map(|r| self.read(r)).collect();
        async move { result }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let result = self.file().and_then(parse_footer);
        async move { result }.boxed()
    }
}

/// A whole file already in memory.
pub(crate) struct InMemoryReader {
    pub(crate) bytes: Bytes,
}

impl AsyncFileReader for InMemoryReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let result = if range.end as usize <= self.bytes.len() && range.start <= range.end {
            Ok(self.bytes.slice(range.start as usize..range.end as usize))
        } else {
            Err(parquet::errors::ParquetError::EOF(format!(
                "range {range:?} beyond a file of {} bytes",
                self.bytes.len()
            )))
        };
        async move { result }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let result = parse_footer(&self.bytes);
        async move { result }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::RowSelection;

    fn file(name: &str, size: u64) -> PartitionedFile {
        PartitionedFile::new(name.to_string(), size)
    }

    /// Each group's files: path and byte range.
    type Pieces = Vec<Vec<(String, Option<(i64, i64)>)>>;

    fn pieces(groups: &[FileGroup]) -> Pieces {
        groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|f| {
                        (
                            f.object_meta.location.to_string(),
                            f.range.as_ref().map(|r| (r.start, r.end)),
                        )
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn whole_files_are_cut_into_equal_byte_ranges() {
        let groups = PersistedFiles::spread_for_scan(vec![file("a", 300), file("b", 100)], 2, 10);
        assert_eq!(
            pieces(&groups),
            vec![
                vec![("a".to_string(), Some((0, 200)))],
                vec![
                    ("a".to_string(), Some((200, 300))),
                    ("b".to_string(), Some((0, 100)))
                ],
            ]
        );
    }

    #[test]
    fn files_with_a_selection_stay_whole() {
        let mut selected = file("s", 1000);
        selected.extensions.insert(ParquetRowSelection::new(
            RowSelection::from_consecutive_ranges(std::iter::once(0..1), 2),
        ));
        let groups = PersistedFiles::spread_for_scan(vec![selected, file("w", 40)], 2, 10);
        assert_eq!(
            pieces(&groups),
            vec![
                vec![("w".to_string(), Some((0, 20))), ("s".to_string(), None)],
                vec![("w".to_string(), Some((20, 40)))],
            ]
        );
        // A lone selected file: one group, one partition.
        let mut only = file("s", 1000);
        only.extensions.insert(ParquetRowSelection::new(
            RowSelection::from_consecutive_ranges(std::iter::once(0..1), 1),
        ));
        assert_eq!(
            pieces(&PersistedFiles::spread_for_scan(vec![only], 2, 10)),
            vec![vec![("s".to_string(), None)]]
        );
    }

    #[test]
    fn small_scans_are_not_cut() {
        let groups = PersistedFiles::spread_for_scan(vec![file("a", 5)], 2, 10);
        assert_eq!(pieces(&groups), vec![vec![("a".to_string(), None)]]);
    }
}
