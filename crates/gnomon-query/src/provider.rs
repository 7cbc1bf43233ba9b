//! DataFusion's view of one database: catalog → schema `iox` → one table provider per table.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use gnomon_catalog::{DatabaseSchema, TableSchema};
use gnomon_write_buffer::{arrow_schema, Buffer};

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
        Self {
            tables: Arc::new(TableSchemaProvider { database, buffer }),
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
            Arc::new(TableScanProvider::new(
                self.database.id,
                Arc::clone(table),
                Arc::clone(&self.buffer),
            )) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.database.table(name).is_some()
    }
}

/// One table: its buffered chunks (and, later, its persisted files) as one scan.
pub struct TableScanProvider {
    db_id: gnomon_catalog::DbId,
    table: Arc<TableSchema>,
    schema: SchemaRef,
    buffer: Arc<Buffer>,
}

impl TableScanProvider {
    pub fn new(db_id: gnomon_catalog::DbId, table: Arc<TableSchema>, buffer: Arc<Buffer>) -> Self {
        let schema = arrow_schema(&table);
        Self {
            db_id,
            table,
            schema,
            buffer,
        }
    }
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
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let range = TimeRange::from_filters(filters);
        let batches = if range.min > range.max {
            Vec::new()
        } else {
            self.buffer
                .record_batches(self.db_id, &self.table, range.min, range.max)
        };
        // One partition per chunk lets DataFusion spread the work over the cores.
        let partitions: Vec<Vec<_>> = if batches.is_empty() {
            vec![vec![]]
        } else {
            batches.into_iter().map(|b| vec![b]).collect()
        };
        let exec = MemorySourceConfig::try_new_exec(
            &partitions,
            Arc::clone(&self.schema),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}
