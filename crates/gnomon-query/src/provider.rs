//! DataFusion's view of one database: catalog → schema `iox` → one table provider per table.

use std::fmt;
use std::sync::Arc;

use std::collections::BTreeMap;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use gnomon_catalog::{DatabaseSchema, TableSchema};
use gnomon_persist::ParquetFile;
use gnomon_write_buffer::{arrow_schema, Buffer};

use crate::persisted::{store_url, PersistedFiles};
use crate::system::SYSTEM_SCHEMA;
use crate::time_range::TimeRange;
use crate::TABLE_SCHEMA;

/// The catalog of one database, as of the catalog snapshot the query started with.
pub struct DatabaseCatalog {
    tables: Arc<TableSchemaProvider>,
    system: Option<Arc<dyn SchemaProvider>>,
}

impl DatabaseCatalog {
    pub fn new(database: Arc<DatabaseSchema>, buffer: Arc<Buffer>) -> Self {
        Self::with_persisted(database, buffer, None)
    }

    /// A catalog whose tables also read the persisted files.
    pub fn with_persisted(
        database: Arc<DatabaseSchema>,
        buffer: Arc<Buffer>,
        persisted: Option<PersistedFiles>,
    ) -> Self {
        Self {
            tables: Arc::new(TableSchemaProvider {
                database,
                buffer,
                persisted,
            }),
            system: None,
        }
    }

    /// Adds the `system` schema.
    pub fn with_system_schema(mut self, system: Arc<dyn SchemaProvider>) -> Self {
        self.system = Some(system);
        self
    }
}

impl fmt::Debug for DatabaseCatalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseCatalog")
            .field("database", &self.tables.database.name)
            .finish()
    }
}

impl CatalogProvider for DatabaseCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = vec![TABLE_SCHEMA.to_string()];
        if self.system.is_some() {
            names.push(SYSTEM_SCHEMA.to_string());
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            TABLE_SCHEMA => Some(Arc::clone(&self.tables) as Arc<dyn SchemaProvider>),
            SYSTEM_SCHEMA => self.system.clone(),
            _ => None,
        }
    }
}

/// Schema `iox`: the database's tables.
struct TableSchemaProvider {
    database: Arc<DatabaseSchema>,
    buffer: Arc<Buffer>,
    persisted: Option<PersistedFiles>,
}

impl fmt::Debug for TableSchemaProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableSchemaProvider")
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SchemaProvider for TableSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        self.database.tables().map(|t| t.name.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.database.table(name).map(|table| {
            Arc::new(
                TableScanProvider::new(
                    self.database.id,
                    Arc::clone(table),
                    Arc::clone(&self.buffer),
                )
                .with_persisted(self.persisted.clone()),
            ) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.database.table(name).is_some()
    }
}

/// One table: its buffered chunks and its persisted files as one scan.
///
/// Sources are grouped by chunk time range. A range with a single source (the usual case: one
/// file, or one buffer chunk) is scanned as is — files through DataFusion's Parquet scan with
/// file pruning by the index's min/max time and row-group pruning by statistics. A range with
/// several sources (a file plus late writes still in the buffer, say) is merged first so that
/// each series and time appears once, the last write winning.
pub struct TableScanProvider {
    db_id: gnomon_catalog::DbId,
    table: Arc<TableSchema>,
    schema: SchemaRef,
    buffer: Arc<Buffer>,
    persisted: Option<PersistedFiles>,
}

impl TableScanProvider {
    pub fn new(db_id: gnomon_catalog::DbId, table: Arc<TableSchema>, buffer: Arc<Buffer>) -> Self {
        let schema = arrow_schema(&table);
        Self {
            db_id,
            table,
            schema,
            buffer,
            persisted: None,
        }
    }

    pub fn with_persisted(mut self, persisted: Option<PersistedFiles>) -> Self {
        self.persisted = persisted;
        self
    }
}

/// Everything holding rows of one chunk time range, oldest write first.
#[derive(Default)]
struct RangeSources {
    files: Vec<Arc<ParquetFile>>,
    buffered: Vec<RecordBatch>,
}

impl fmt::Debug for TableScanProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableScanProvider")
            .field("table", &self.table.name)
            .finish()
    }
}

#[async_trait]
impl TableProvider for TableScanProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Filters are used to skip chunks; DataFusion still applies them to the rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = TimeRange::from_filters(filters);
        if range.min > range.max {
            return MemorySourceConfig::try_new_exec(
                &[vec![]],
                Arc::clone(&self.schema),
                projection.cloned(),
            )
            .map(|e| e as Arc<dyn ExecutionPlan>);
        }
        // The buffer first, then the index: a snapshot publishes its files before it drops
        // the chunks, so every row is seen in at least one of the two reads.
        let chunks = self
            .buffer
            .chunk_batches(self.db_id, &self.table, range.min, range.max);
        let files = match &self.persisted {
            Some(p) => p
                .index
                .files(self.db_id, self.table.id, range.min, range.max),
            None => Vec::new(),
        };
        let mut by_range: BTreeMap<i64, RangeSources> = BTreeMap::new();
        for file in files {
            by_range
                .entry(file.chunk_start)
                .or_default()
                .files
                .push(file);
        }
        for chunk in chunks {
            by_range
                .entry(chunk.start)
                .or_default()
                .buffered
                .push(chunk.batch);
        }

        let mut partitions: Vec<Vec<RecordBatch>> = Vec::new();
        let mut plain_files: Vec<Arc<ParquetFile>> = Vec::new();
        for (_, sources) in by_range {
            match (sources.files.len(), sources.buffered.len()) {
                (1, 0) => plain_files.extend(sources.files),
                (0, _) if sources.buffered.len() == 1 => partitions.push(sources.buffered),
                _ => {
                    let persisted = self
                        .persisted
                        .as_ref()
                        .ok_or_else(|| DataFusionError::Internal("files without a store".into()))?;
                    let mut batches = Vec::new();
                    for file in &sources.files {
                        batches.extend(persisted.read_all(file).await?);
                    }
                    batches.extend(sources.buffered);
                    let merged = gnomon_persist::dedup::merge_last_wins(&self.schema, &batches)
                        .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
                    partitions.push(vec![merged]);
                }
            }
        }

        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !plain_files.is_empty() {
            let persisted = self
                .persisted
                .as_ref()
                .ok_or_else(|| DataFusionError::Internal("files without a store".into()))?;
            let mut source = ParquetSource::new(Arc::clone(&self.schema))
                .with_parquet_file_reader_factory(persisted.reader_factory());
            if let Some(predicate) = conjunction(filters.iter().cloned()) {
                let df_schema = DFSchema::try_from(Arc::clone(&self.schema))?;
                // Only used to skip row groups and pages; the filter is applied above the scan.
                if let Ok(physical) = state.create_physical_expr(predicate, &df_schema) {
                    source = source.with_predicate(physical);
                }
            }
            let groups = state.config().target_partitions().max(1);
            let mut file_groups: Vec<Vec<_>> = vec![Vec::new(); groups.min(plain_files.len())];
            let count = file_groups.len();
            for (i, file) in plain_files.iter().enumerate() {
                file_groups[i % count].push(PersistedFiles::partitioned_file(file));
            }
            let config = FileScanConfigBuilder::new(store_url(), Arc::new(source))
                .with_file_groups(file_groups.into_iter().map(FileGroup::new).collect())
                .with_projection_indices(projection.cloned())?
                .build();
            plans.push(DataSourceExec::from_data_source(config));
        }
        if !partitions.is_empty() || plans.is_empty() {
            if partitions.is_empty() {
                partitions.push(vec![]);
            }
            // One partition per chunk lets DataFusion spread the work over the cores.
            plans.push(MemorySourceConfig::try_new_exec(
                &partitions,
                Arc::clone(&self.schema),
                projection.cloned(),
            )?);
        }
        UnionExec::try_new(plans)
    }
}
