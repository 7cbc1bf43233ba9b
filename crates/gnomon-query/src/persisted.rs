//! Reading persisted Parquet files: the object store registered with DataFusion, and a reader
//! factory that serves cached files from memory.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::DefaultParquetFileReaderFactory;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::future::BoxFuture;
use futures::FutureExt;
use gnomon_persist::{FileIndex, ParquetCache, ParquetFile};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};

/// The URL the persisted files' store is registered under in DataFusion's runtime.
pub const STORE_URL: &str = "gnomon://persisted";

pub fn store_url() -> ObjectStoreUrl {
    ObjectStoreUrl::parse(STORE_URL).expect("valid url")
}

/// The persisted side of every table: the store, the file index and the file cache.
#[derive(Debug, Clone)]
pub struct PersistedFiles {
    pub store: Arc<dyn ObjectStore>,
    pub index: Arc<FileIndex>,
    pub cache: Arc<ParquetCache>,
}

impl PersistedFiles {
    pub fn reader_factory(&self) -> Arc<dyn ParquetFileReaderFactory> {
        Arc::new(CachedReaderFactory {
            store: DefaultParquetFileReaderFactory::new(Arc::clone(&self.store)),
            cache: Arc::clone(&self.cache),
        })
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
}

/// Cached files from memory, the rest through DataFusion's object-store reader.
#[derive(Debug)]
struct CachedReaderFactory {
    store: DefaultParquetFileReaderFactory,
    cache: Arc<ParquetCache>,
}

impl ParquetFileReaderFactory for CachedReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        if let Some(bytes) = self.cache.get(file.object_meta.location.as_ref()) {
            return Ok(Box::new(InMemoryReader { bytes }));
        }
        self.store
            .create_reader(partition_index, file, metadata_size_hint, metrics)
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
