//! Reading persisted Parquet files: the object store registered with DataFusion, and a reader
//! factory that serves cached files from memory.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::DefaultParquetFileReaderFactory;
use datafusion::datasource::physical_plan::FileGroup;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::future::BoxFuture;
use futures::FutureExt;
use gnomon_persist::{FileIndex, ParquetCache, ParquetFile};

use crate::series_ranges::TagRunsCache;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parking_lot::Mutex;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use std::collections::HashMap;

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
    pub(crate) tag_runs: Arc<TagRunsCache>,
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
            tag_runs: Arc::new(TagRunsCache::default()),
        }
    }

    pub fn reader_factory(&self) -> Arc<dyn ParquetFileReaderFactory> {
        Arc::new(CachedReaderFactory {
            store: DefaultParquetFileReaderFactory::new(Arc::clone(&self.store)),
            cache: Arc::clone(&self.cache),
            metadata: Arc::clone(&self.metadata),
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

    /// All rows of a file (for merging with other sources of the same time range).
    pub async fn read_all(&self, file: &ParquetFile) -> Result<Vec<RecordBatch>> {
        let bytes = match self.cache.get(&file.path) {
            Some(b) => b,
            None => self
                .store
                .get(&Path::from(file.path.as_str()))
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
        PartitionedFile::new(file.path.clone(), file.size_bytes)
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
        let inner: Box<dyn AsyncFileReader + Send> = match self.cache.get(&path) {
            Some(bytes) => Box::new(InMemoryReader { bytes }),
            None => self
                .store
                .create_reader(partition_index, file, metadata_size_hint, metrics)?,
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

/// A whole file already in memory.
struct InMemoryReader {
    bytes: Bytes,
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
        let result = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Optional)
            .parse_and_finish(&self.bytes)
            .map(Arc::new);
        async move { result }.boxed()
    }
}
