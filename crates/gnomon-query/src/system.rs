//! The `system` schema: read-only tables describing the server, one [`SystemTable`] each.
//!
//! Tables are registered on the [`QueryEngine`](crate::QueryEngine) (the built-ins by
//! default, others with `QueryEngine::with_system_table`), so a crate that owns some state
//! (a query log, persisted files) can expose it without this module knowing about it. Each
//! query builds its tables' rows at scan time from a [`SystemContext`].

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampSecondBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use gnomon_catalog::{CatalogSnapshot, ColumnKind, DatabaseSchema, TableSchema};

/// The schema name.
pub const SYSTEM_SCHEMA: &str = "system";

/// What a system table can look at when a query scans it.
#[derive(Debug, Clone)]
pub struct SystemContext {
    /// The catalog as of the query's start.
    pub snapshot: Arc<CatalogSnapshot>,
    /// The database the query runs in.
    pub database: Arc<DatabaseSchema>,
    /// The persisted files, when the server persists.
    pub files: Option<Arc<gnomon_persist::FileIndex>>,
}

/// One table of the `system` schema.
pub trait SystemTable: Send + Sync + fmt::Debug {
    fn name(&self) -> &str;

    /// Server-wide tables are only visible in `_internal` (SERVER.md §5).
    fn internal_only(&self) -> bool {
        false
    }

    fn schema(&self) -> SchemaRef;

    /// The rows, in [`SystemTable::schema`]. Filters are applied by the engine afterwards.
    fn rows(&self, ctx: &SystemContext) -> Result<RecordBatch>;
}

/// The built-in tables.
pub fn builtin_tables() -> Vec<Arc<dyn SystemTable>> {
    vec![
        Arc::new(LastCaches),
        Arc::new(DistinctCaches),
        Arc::new(ProcessingEngineTriggers),
        Arc::new(ProcessingEngineTriggerArguments),
        Arc::new(InfluxdbSchema),
        Arc::new(ParquetFiles),
        Arc::new(Databases),
        Arc::new(Tables),
    ]
}

pub(crate) struct SystemSchemaProvider {
    tables: Vec<Arc<dyn SystemTable>>,
    ctx: SystemContext,
}

impl SystemSchemaProvider {
    pub(crate) fn new(all: &[Arc<dyn SystemTable>], ctx: SystemContext) -> Self {
        let internal = ctx.database.is_internal();
        Self {
            tables: all
                .iter()
                .filter(|t| internal || !t.internal_only())
                .cloned()
                .collect(),
            ctx,
        }
    }
}

impl fmt::Debug for SystemSchemaProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SystemSchemaProvider")
            .field("tables", &self.table_names())
            .finish()
    }
}

#[async_trait]
impl SchemaProvider for SystemSchemaProvider {
    fn table_names(&self) -> Vec<String> {
        self.tables.iter().map(|t| t.name().to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        Ok(self.tables.iter().find(|t| t.name() == name).map(|t| {
            Arc::new(SystemTableProvider {
                table: Arc::clone(t),
                ctx: self.ctx.clone(),
            }) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.iter().any(|t| t.name() == name)
    }
}

#[derive(Debug)]
struct SystemTableProvider {
    table: Arc<dyn SystemTable>,
    ctx: SystemContext,
}

#[async_trait]
impl TableProvider for SystemTableProvider {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.table.rows(&self.ctx)?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.table.schema(),
            projection.cloned(),
        )?)
    }
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(schema, columns).map_err(DataFusionError::from)
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", item, true)))
}

fn names_of(table: &TableSchema, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .filter_map(|id| table.column_by_id(*id).map(|c| c.name.to_string()))
        .collect()
}

/// `system.last_caches`: the last-value caches of the database.
#[derive(Debug)]
struct LastCaches;

impl SystemTable for LastCaches {
    fn name(&self) -> &str {
        "last_caches"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("table", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("key_column_ids", list_of(DataType::UInt32), false),
            Field::new("key_column_names", list_of(DataType::Utf8), false),
            Field::new("value_column_ids", list_of(DataType::UInt32), true),
            Field::new("value_column_names", list_of(DataType::Utf8), true),
            Field::new("count", DataType::UInt64, false),
            Field::new("ttl", DataType::UInt64, false),
        ]))
    }

    fn rows(&self, ctx: &SystemContext) -> Result<RecordBatch> {
        let mut table_col = StringBuilder::new();
        let mut name = StringBuilder::new();
        let mut key_ids = ListBuilder::new(UInt32Builder::new());
        let mut key_names = ListBuilder::new(StringBuilder::new());
        let mut value_ids = ListBuilder::new(UInt32Builder::new());
        let mut value_names = ListBuilder::new(StringBuilder::new());
        let mut count = UInt64Builder::new();
        let mut ttl = UInt64Builder::new();
        for table in ctx.database.tables() {
            for def in table.last_caches() {
                table_col.append_value(&*table.name);
                name.append_value(&def.name);
                key_ids.values().append_slice(&def.key_columns);
                key_ids.append(true);
                for n in names_of(table, &def.key_columns) {
                    key_names.values().append_value(n);
                }
                key_names.append(true);
                match &def.value_columns {
                    Some(ids) => {
                        value_ids.values().append_slice(ids);
                        value_ids.append(true);
                        for n in names_of(table, ids) {
                            value_names.values().append_value(n);
                        }
                        value_names.append(true);
                    }
                    None => {
                        value_ids.append_null();
                        value_names.append_null();
                    }
                }
                count.append_value(def.count as u64);
                ttl.append_value(def.ttl_seconds);
            }
        }
        batch(
            self.schema(),
            vec![
                Arc::new(table_col.finish()),
                Arc::new(name.finish()),
                Arc::new(key_ids.finish()),
                Arc::new(key_names.finish()),
                Arc::new(value_ids.finish()),
                Arc::new(value_names.finish()),
                Arc::new(count.finish()),
                Arc::new(ttl.finish()),
            ],
        )
    }
}

/// `system.distinct_caches`: the distinct-value caches of the database.
#[derive(Debug)]
struct DistinctCaches;

impl SystemTable for DistinctCaches {
    fn name(&self) -> &str {
        "distinct_caches"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("table", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
            Field::new("column_ids", list_of(DataType::UInt32), false),
            Field::new("column_names", list_of(DataType::Utf8), false),
            Field::new("max_cardinality", DataType::UInt64, false),
            Field::new("max_age_seconds", DataType::UInt64, false),
        ]))
    }

    fn rows(&self, ctx: &SystemContext) -> Result<RecordBatch> {
        let mut table_col = StringBuilder::new();
        let mut name = StringBuilder::new();
        let mut ids = ListBuilder::new(UInt32Builder::new());
        let mut names = ListBuilder::new(StringBuilder::new());
        let mut max_cardinality = UInt64Builder::new();
        let mut max_age = UInt64Builder::new();
        for table in ctx.database.tables() {
            for def in table.distinct_caches() {
                table_col.append_value(&*table.name);
                name.append_value(&def.name);
                ids.values().append_slice(&def.columns);
                ids.append(true);
                for n in names_of(table, &def.columns) {
                    names.values().append_value(n);
                }
                names.append(true);
                max_cardinality.append_value(def.max_cardinality);
                max_age.append_value(def.max_age_seconds);
            }
        }
        batch(
            self.schema(),
            vec![
                Arc::new(table_col.finish()),
                Arc::new(name.finish()),
                Arc::new(ids.finish()),
                Arc::new(names.finish()),
                Arc::new(max_cardinality.finish()),
                Arc::new(max_age.finish()),
            ],
        )
    }
}

/// `system.processing_engine_triggers`: the database's triggers, sorted by name.
#[derive(Debug)]
struct ProcessingEngineTriggers;

impl SystemTable for ProcessingEngineTriggers {
    fn name(&self) -> &str {
        "processing_engine_triggers"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("trigger_name", DataType::Utf8, false),
            Field::new("plugin_filename", DataType::Utf8, false),
            Field::new("trigger_specification", DataType::Utf8, false),
            Field::new("disabled", DataType::Boolean, false),
            Field::new("error_behavior", DataType::Utf8, false),
        ]))
    }

    fn rows(&self, ctx: &SystemContext) -> Result<RecordBatch> {
        let mut name = StringBuilder::new();
        let mut plugin = StringBuilder::new();
        let mut spec = StringBuilder::new();
        let mut disabled = BooleanBuilder::new();
        let mut error_behavior = StringBuilder::new();
        for trigger in ctx.database.triggers() {
            name.append_value(&trigger.name);
            plugin.append_value(&trigger.plugin_filename);
            spec.append_value(trigger.specification.to_json());
            disabled.append_value(trigger.disabled);
            error_behavior.append_value(trigger.settings.error_behavior.as_str());
        }
        batch(
            self.schema(),
            vec![
                Arc::new(name.finish()),
                Arc::new(plugin.finish()),
                Arc::new(spec.finish()),
                Arc::new(disabled.finish()),
                Arc::new(error_behavior.finish()),
            ],
        )
    }
}

/// `system.processing_engine_trigger_arguments`: one row per argument of each trigger, by
/// trigger name then key.
#[derive(Debug)]
struct ProcessingEngineTriggerArguments;

impl SystemTable for ProcessingEngineTriggerArguments {
    fn name(&self) -> &str {
        "processing_engine_trigger_arguments"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("trigger_name", DataType::Utf8, false),
            Field::new("argument_key", DataType::Utf8, false),
            Field::new("argument_value", DataType::Utf8, false),
        ]))
    }

    fn rows(&self, ctx: &SystemContext) -> Result<RecordBatch> {
        let mut name = StringBuilder::new();
        let mut key = StringBuilder::new();
        let mut value = StringBuilder::new();
        for trigger in ctx.database.triggers() {
            for (k, v) in trigger.arguments.iter().flatten() {
                name.append_value(&trigger.name);
                key.append_value(k);
                value.append_value(v);
            }
        }
        batch(
            self.schema(),
            vec![
                Arc::new(name.finish()),
                Arc::new(key.finish()),
                Arc::new(value.finish()),
            ],
        )
    }
}

/// `system.influxdb_schema`: every column of every table, with its InfluxDB kind.
#[derive(Debug)]
struct InfluxdbSchema;

impl SystemTable for InfluxdbSchema {
    fn name(&self) -> &str {
        "influxdb_schema"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("measurement", DataType::Utf8, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("data_type", DataType::Utf8, false),
        ]))
    }

    fn rows(&self, ctx: &SystemContext) -> Result<RecordBatch> {
        let mut measurement = StringBuilder::new();
        let mut key = StringBuilder::new();
        let mut data_type = StringBuilder::new();
        for table in ctx.database.tables() {
            let mut columns: Vec<_> = table.columns().iter().collect();
            columns.sort_by(|a, b| a.name.cmp(&b.name));
            for c in columns {
                measurement.append_value(&*table.name);
                key.append_value(&*c.name);
                data_type.append_value(match c.kind {
                    ColumnKind::Time => "time",
                    ColumnKind::Tag => "tag",
                    ColumnKind::Field(t) => match t {
                        gnomon_catalog::FieldType::Float => "float",
                        gnomon_catalog::FieldType::Integer => "integer",
                        gnomon_catalog::FieldType::UInteger => "uinteger",
                        gnomon_catalog::FieldType::String => "string",
                        gnomon_catalog::FieldType::Boolean => "boolean",
                    },
                });
            }
        }
        batch(
            self.schema(),
            vec![
                Arc::new(measurement.finish()),
                Arc::new(key.finish()),
                Arc::new(data_type.finish()),
            ],
        )
    }
}

/// `system.parquet_files`: the current database's persisted files.
#[derive(Debug)]
struct ParquetFiles;

impl SystemTable for ParquetFiles {
    fn name(&self) -> &str {
        "parquet_files"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("path", DataType::Utf8, false),
            Field::new("size_bytes", DataType::UInt64, false),
            Field::new("row_count", DataType::UInt64, false),
            Field::new("min_time", DataType::Int64, false),
            Field::new("max_time", DataType::Int64, false),
        ]))
    }

    fn rows(&self, ctx: &SystemContext) -> Result<RecordBatch> {
        let mut files: Vec<_> = ctx
            .files
            .iter()
            .flat_map(|index| index.all_files())
            .filter(|f| f.db_id == ctx.database.id)
            .filter_map(|f| {
                let table = ctx.database.table_by_id(f.table_id)?;
                (!table.deleted()).then(|| (Arc::clone(&table.name), f))
            })
            .collect();
        files.sort_by(|a, b| (&a.0, a.1.min_time).cmp(&(&b.0, b.1.min_time)));
        let mut table = StringBuilder::new();
        let mut path = StringBuilder::new();
        let mut size = UInt64Builder::new();
        let mut rows = UInt64Builder::new();
        let mut min = Int64Builder::new();
        let mut max = Int64Builder::new();
        for (name, f) in files {
            table.append_value(&*name);
            path.append_value(&f.path);
            size.append_value(f.size_bytes);
            rows.append_value(f.row_count);
            min.append_value(f.min_time);
            max.append_value(f.max_time);
        }
        batch(
            self.schema(),
            vec![
                Arc::new(table.finish()),
                Arc::new(path.finish()),
                Arc::new(size.finish()),
                Arc::new(rows.finish()),
                Arc::new(min.finish()),
                Arc::new(max.finish()),
            ],
        )
    }
}

fn hard_deletion_type() -> DataType {
    DataType::Timestamp(TimeUnit::Second, Some("UTC".into()))
}

/// `system.databases` (`_internal` only): every database, soft-deleted ones included.
#[derive(Debug)]
struct Databases;

impl SystemTable for Databases {
    fn name(&self) -> &str {
        "databases"
    }

    fn internal_only(&self) -> bool {
        true
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("database_name", DataType::Utf8, false),
            Field::new("retention_period_ns", DataType::Int64, true),
            Field::new("deleted", DataType::Boolean, false),
            Field::new("hard_deletion_time", hard_deletion_type(), true),
        ]))
    }

    fn rows(&self, ctx: &SystemContext) -> Result<RecordBatch> {
        let mut name = StringBuilder::new();
        let mut retention = Int64Builder::new();
        let mut deleted = BooleanBuilder::new();
        let mut hard = TimestampSecondBuilder::new().with_timezone("UTC");
        for db in ctx.snapshot.databases() {
            name.append_value(&*db.name);
            retention.append_option(db.retention_period_ns());
            deleted.append_value(db.deleted());
            hard.append_option(db.hard_delete_time_ns().map(|ns| ns / 1_000_000_000));
        }
        batch(
            self.schema(),
            vec![
                Arc::new(name.finish()),
                Arc::new(retention.finish()),
                Arc::new(deleted.finish()),
                Arc::new(hard.finish()),
            ],
        )
    }
}

/// `system.tables` (`_internal` only): every table of every database.
#[derive(Debug)]
struct Tables;

impl SystemTable for Tables {
    fn name(&self) -> &str {
        "tables"
    }

    fn internal_only(&self) -> bool {
        true
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("database_name", DataType::Utf8, false),
            Field::new("table_name", DataType::Utf8, false),
            Field::new("column_count", DataType::UInt64, false),
            Field::new("series_key_columns", list_of(DataType::Utf8), false),
            Field::new("last_cache_count", DataType::UInt64, false),
            Field::new("distinct_cache_count", DataType::UInt64, false),
            Field::new("deleted", DataType::Boolean, false),
            Field::new("hard_deletion_time", hard_deletion_type(), true),
        ]))
    }

    fn rows(&self, ctx: &SystemContext) -> Result<RecordBatch> {
        let mut db_name = StringBuilder::new();
        let mut table_name = StringBuilder::new();
        let mut column_count = UInt64Builder::new();
        let mut series_key = ListBuilder::new(StringBuilder::new());
        let mut last = UInt64Builder::new();
        let mut distinct = UInt64Builder::new();
        let mut deleted = BooleanBuilder::new();
        let mut hard = TimestampSecondBuilder::new().with_timezone("UTC");
        for db in ctx.snapshot.databases() {
            for table in db.all_tables() {
                db_name.append_value(&*db.name);
                table_name.append_value(&*table.name);
                column_count.append_value(table.columns().len() as u64);
                for n in names_of(table, table.series_key()) {
                    series_key.values().append_value(n);
                }
                series_key.append(true);
                last.append_value(table.last_caches().len() as u64);
                distinct.append_value(table.distinct_caches().len() as u64);
                deleted.append_value(db.deleted() || table.deleted());
                let hard_ns = table.hard_delete_time_ns().or(db.hard_delete_time_ns());
                hard.append_option(hard_ns.map(|ns| ns / 1_000_000_000));
            }
        }
        batch(
            self.schema(),
            vec![
                Arc::new(db_name.finish()),
                Arc::new(table_name.finish()),
                Arc::new(column_count.finish()),
                Arc::new(series_key.finish()),
                Arc::new(last.finish()),
                Arc::new(distinct.finish()),
                Arc::new(deleted.finish()),
                Arc::new(hard.finish()),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::array::{Array, BooleanArray, StringArray};
    use gnomon_catalog::{
        Catalog, ErrorBehavior, Limits, TriggerDefinition, TriggerSettings, TriggerSpecification,
    };
    use object_store::memory::InMemory;
    use object_store::path::Path;

    use super::*;

    fn trigger(name: &str, spec: &str, args: &[(&str, &str)], disabled: bool) -> TriggerDefinition {
        TriggerDefinition {
            name: name.into(),
            plugin_filename: format!("{name}.py"),
            specification: TriggerSpecification::parse(spec).unwrap(),
            settings: TriggerSettings {
                run_async: false,
                error_behavior: if disabled {
                    ErrorBehavior::Disable
                } else {
                    ErrorBehavior::Log
                },
            },
            arguments: (!args.is_empty()).then(|| {
                args.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>()
            }),
            disabled,
        }
    }

    /// Database `foo` with triggers `b` (two arguments, disabled) and `a` (none), and `bar`
    /// with one trigger that must not show up in `foo`'s tables.
    async fn context(db: &str) -> SystemContext {
        let catalog = Catalog::load_or_create(
            Arc::new(InMemory::new()),
            Path::from("n"),
            Limits::default(),
        )
        .await
        .unwrap();
        let mut txn = catalog.begin().await;
        txn.database_or_create("foo").unwrap();
        txn.database_or_create("bar").unwrap();
        txn.create_trigger(
            "foo",
            trigger("b", "every:60s", &[("z", "1"), ("k", "v")], true),
        )
        .unwrap();
        txn.create_trigger("foo", trigger("a", "table:cpu", &[], false))
            .unwrap();
        txn.create_trigger("bar", trigger("other", "all_tables", &[("x", "y")], false))
            .unwrap();
        let snapshot = txn.commit().await.unwrap();
        let database = Arc::clone(snapshot.database(db).unwrap());
        SystemContext {
            snapshot,
            database,
            files: None,
        }
    }

    fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
        let array = batch.column_by_name(column).unwrap();
        let array = array.as_any().downcast_ref::<StringArray>().unwrap();
        (0..array.len())
            .map(|i| array.value(i).to_string())
            .collect()
    }

    #[tokio::test]
    async fn processing_engine_triggers_rows() {
        let ctx = context("foo").await;
        let batch = ProcessingEngineTriggers.rows(&ctx).unwrap();
        assert_eq!(batch.schema(), ProcessingEngineTriggers.schema());
        assert_eq!(strings(&batch, "trigger_name"), ["a", "b"]);
        assert_eq!(strings(&batch, "plugin_filename"), ["a.py", "b.py"]);
        assert_eq!(
            strings(&batch, "trigger_specification"),
            [
                r#"{"single_table_wal_write":{"table_name":"cpu"}}"#,
                r#"{"every":{"duration":{"secs":60,"nanos":0}}}"#,
            ]
        );
        let disabled = batch.column_by_name("disabled").unwrap();
        let disabled = disabled.as_any().downcast_ref::<BooleanArray>().unwrap();
        assert_eq!(
            disabled.iter().collect::<Vec<_>>(),
            [Some(false), Some(true)]
        );
        assert_eq!(strings(&batch, "error_behavior"), ["log", "disable"]);
    }

    #[tokio::test]
    async fn processing_engine_trigger_arguments_rows() {
        let ctx = context("foo").await;
        let batch = ProcessingEngineTriggerArguments.rows(&ctx).unwrap();
        assert_eq!(batch.schema(), ProcessingEngineTriggerArguments.schema());
        assert_eq!(strings(&batch, "trigger_name"), ["b", "b"]);
        assert_eq!(strings(&batch, "argument_key"), ["k", "z"]);
        assert_eq!(strings(&batch, "argument_value"), ["v", "1"]);

        let ctx = context("bar").await;
        let batch = ProcessingEngineTriggerArguments.rows(&ctx).unwrap();
        assert_eq!(strings(&batch, "trigger_name"), ["other"]);
        let batch = ProcessingEngineTriggers.rows(&ctx).unwrap();
        assert_eq!(strings(&batch, "trigger_name"), ["other"]);
    }
}
