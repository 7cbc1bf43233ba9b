//! DataFusion's view of one database: catalog → schema `iox` → one table provider per table.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Operator;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use gnomon_catalog::{DatabaseSchema, TableSchema};
use gnomon_persist::ParquetFile;
use gnomon_write_buffer::{arrow_schema, Buffer};

use crate::persisted::{store_url, PersistedFiles};
use crate::series_ranges::{tag_constraints, FileRows};
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
                .with_persisted(self.persisted.clone())
                .with_retention(self.database.retention_period_ns()),
            ) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.database.table(name).is_some()
    }
}

/// One table: its buffered chunks and its persisted files as one scan.
///
/// Sources are grouped by overlapping chunk ranges (a compacted file spans many chunks). A
/// group with a single source (the usual case: one file, or one buffer chunk) is scanned as
/// is — files through DataFusion's Parquet scan with file pruning by the index's min/max time
/// and row-group pruning by statistics. A group with several sources (a file plus late writes
/// still in the buffer, say) is merged first so that each series and time appears once, the
/// last write winning. With a retention period, older rows are filtered out above the scan.
pub struct TableScanProvider {
    db_id: gnomon_catalog::DbId,
    table: Arc<TableSchema>,
    schema: SchemaRef,
    buffer: Arc<Buffer>,
    persisted: Option<PersistedFiles>,
    /// The database's retention period (ns): older rows are never returned.
    retention_ns: Option<i64>,
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
            retention_ns: None,
        }
    }

    pub fn with_retention(mut self, retention_ns: Option<i64>) -> Self {
        self.retention_ns = retention_ns;
        self
    }

    pub fn with_persisted(mut self, persisted: Option<PersistedFiles>) -> Self {
        self.persisted = persisted;
        self
    }
}

/// A source's chunk range `[start, end)` and the source: a file or a buffered batch.
type Span = (i64, i64, Option<Arc<ParquetFile>>, Option<RecordBatch>);

/// Everything holding rows of one chunk time range, oldest write first.
#[derive(Default)]
pub(crate) struct RangeSources {
    pub(crate) files: Vec<Arc<ParquetFile>>,
    pub(crate) buffered: Vec<RecordBatch>,
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
        let mut range = TimeRange::from_filters(filters);
        let cutoff = self
            .retention_ns
            .map(|r| gnomon_write_buffer::now_ns().saturating_sub(r));
        let Some(cutoff) = cutoff else {
            return self.scan_range(state, projection, filters, range).await;
        };
        // Retention: sources wholly older are skipped, and the rows older than the cutoff in
        // the others are filtered out (the filter needs `time`, so it is read even when the
        // query does not project it, and projected away above the filter).
        range.min = range.min.max(cutoff);
        let time_idx = self.schema.index_of(gnomon_persist::dedup::TIME)?;
        let (inner, outer) = match projection {
            None => (None, None),
            Some(p) => {
                let mut inner = p.clone();
                if !inner.contains(&time_idx) {
                    inner.push(time_idx);
                }
                (Some(inner), Some((0..p.len()).collect::<Vec<_>>()))
            }
        };
        let plan = self
            .scan_range(state, inner.as_ref(), filters, range)
            .await?;
        let time_pos = inner
            .as_ref()
            .map_or(Some(time_idx), |i| i.iter().position(|&c| c == time_idx))
            .ok_or_else(|| DataFusionError::Internal("time not projected".into()))?;
        let tz = match self.schema.field(time_idx).data_type() {
            datafusion::arrow::datatypes::DataType::Timestamp(_, tz) => tz.clone(),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "time column of type {other}"
                )))
            }
        };
        let predicate = Arc::new(BinaryExpr::new(
            Arc::new(Column::new(gnomon_persist::dedup::TIME, time_pos)),
            Operator::GtEq,
            Arc::new(Literal::new(ScalarValue::TimestampNanosecond(
                Some(cutoff),
                tz,
            ))),
        ));
        Ok(Arc::new(
            FilterExecBuilder::new(predicate, plan)
                .apply_projection(outer)?
                .build()?,
        ))
    }
}

impl TableScanProvider {
    /// Every source overlapping `range`, grouped: sources whose chunk ranges overlap (a
    /// compacted file spans many chunks; a late write's chunk may fall inside it) must be
    /// merged together. Within a group, files oldest snapshot first, then the buffer's
    /// chunks, oldest first.
    pub(crate) fn range_sources(&self, range: TimeRange) -> Vec<RangeSources> {
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
        let mut spans: Vec<Span> = files
            .into_iter()
            .map(|f| (f.chunk_start, f.chunk_end, Some(f), None))
            .chain(
                chunks
                    .into_iter()
                    .map(|c| (c.start, c.end, None, Some(c.batch))),
            )
            .collect();
        // Stable: chunks keep their order among themselves (older first).
        spans.sort_by_key(|s| s.0);
        let mut by_range: Vec<(i64, RangeSources)> = Vec::new();
        for (start, end, file, batch) in spans {
            let fresh = by_range
                .last()
                .is_none_or(|(last_end, _)| start >= *last_end);
            if fresh {
                by_range.push((end, RangeSources::default()));
            }
            let (last_end, sources) = by_range.last_mut().expect("a range");
            *last_end = (*last_end).max(end);
            sources.files.extend(file);
            sources.buffered.extend(batch);
        }
        by_range
            .into_iter()
            .map(|(_, mut sources)| {
                // Oldest write first: a compacted file sorts by the newest snapshot it holds.
                sources.files.sort_by_key(|f| f.snapshot);
                sources
            })
            .collect()
    }

    /// The table's persisted files (store, index, caches), for reading outside a DataFusion
    /// scan; `None` without an object store.
    pub(crate) fn persisted(&self) -> Option<&PersistedFiles> {
        self.persisted.as_ref()
    }

    pub(crate) fn retention_ns(&self) -> Option<i64> {
        self.retention_ns
    }

    /// The scan of every source overlapping `range`.
    async fn scan_range(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        range: TimeRange,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if range.min > range.max {
            return MemorySourceConfig::try_new_exec(
                &[vec![]],
                Arc::clone(&self.schema),
                projection.cloned(),
            )
            .map(|e| e as Arc<dyn ExecutionPlan>);
        }
        let by_range = self.range_sources(range);

        let mut partitions: Vec<Vec<RecordBatch>> = Vec::new();
        let mut plain_files: Vec<Arc<ParquetFile>> = Vec::new();
        for sources in by_range {
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
            // No predicate here: DataFusion's physical filter pushdown hands the scan the
            // filter above it for row-group and page pruning, and one given here as well
            // was kept beside it, doubling the pruning work.
            let source = ParquetSource::new(Arc::clone(&self.schema))
                .with_parquet_file_reader_factory(persisted.reader_factory());
            // Files sorted by series: a query pinning tags reads only those tags' runs.
            let constraints = tag_constraints(filters, &self.schema);
            let partitions = state.config().target_partitions();
            let mut selected = Vec::with_capacity(plain_files.len());
            for file in &plain_files {
                let rows = persisted.file_rows(file, &constraints, range).await?;
                let mut partitioned = PersistedFiles::partitioned_file(file);
                // A selection spanning row groups is read by several partitions, each its
                // share of those row groups (see `PersistedFiles::spread_for_scan`).
                let mut ranges = Vec::new();
                match rows {
                    FileRows::None => continue,
                    FileRows::All => {}
                    FileRows::Some(total, rows) => {
                        partitioned
                            .extensions
                            .insert(FileRows::scan_selection(total, &rows));
                        ranges = persisted.row_group_pieces(&file.path, &rows, partitions);
                    }
                }
                // The plan holds the index entry, so the file is not deleted from the store
                // (after a compaction or retention took it out of the index) while this
                // query may still open it.
                partitioned.extensions.insert_arc(Arc::clone(file));
                // How a plan rule reads this file's tag runs and footer (`newest_first`).
                partitioned.extensions.insert(persisted.clone());
                if ranges.is_empty() {
                    selected.push(partitioned);
                    continue;
                }
                for range in ranges {
                    let mut piece = partitioned.clone();
                    piece.range = Some(range);
                    selected.push(piece);
                }
            }
            let options = state.config().options();
            let groups = PersistedFiles::spread_for_scan(
                selected,
                partitions,
                options.optimizer.repartition_file_min_size as u64,
            );
            let config = FileScanConfigBuilder::new(store_url(), Arc::new(source))
                .with_file_groups(groups)
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
