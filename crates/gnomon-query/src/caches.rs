//! The SQL table functions `last_cache('table'[, 'name'])` and
//! `distinct_cache('table'[, 'name'])`: providers over the cache crate's lookups, with
//! `=`/`!=`/`IN`/`NOT IN` predicates on cache columns turned into cache filters.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::scalar::ScalarValue;
use gnomon_cache::{CacheManager, ColumnFilter, DistinctCache, KeyValue, LastCache};
use gnomon_catalog::{ColumnKind, DatabaseSchema, FieldType, TableSchema};
use parking_lot::Mutex;

pub(crate) const LAST_CACHE_FUNCTION: &str = "last_cache";
pub(crate) const DISTINCT_CACHE_FUNCTION: &str = "distinct_cache";

fn string_arg(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _)
        | Expr::Literal(ScalarValue::LargeUtf8(Some(s)), _)
        | Expr::Literal(ScalarValue::Utf8View(Some(s)), _) => Some(s.clone()),
        _ => None,
    }
}

/// `('table')` or `('table', 'cache name')`.
fn table_and_name<'a>(
    database: &'a DatabaseSchema,
    exprs: &[Expr],
    function: &str,
) -> Result<(&'a Arc<TableSchema>, Option<String>)> {
    let args: Option<Vec<String>> = exprs.iter().map(string_arg).collect();
    let args = match args {
        Some(a) if (1..=2).contains(&a.len()) => a,
        _ => {
            return Err(DataFusionError::Plan(format!(
                "{function} takes a table name and optionally a cache name, as string literals"
            )))
        }
    };
    let table = database.table(&args[0]).ok_or_else(|| {
        DataFusionError::Plan(format!("provided table name ({}) is invalid", args[0]))
    })?;
    Ok((table, args.get(1).cloned()))
}

fn not_found(what: &str) -> DataFusionError {
    DataFusionError::Plan(format!("could not find {what} for the given arguments"))
}

#[derive(Debug)]
pub(crate) struct LastCacheFunction {
    pub(crate) database: Arc<DatabaseSchema>,
    pub(crate) caches: Arc<CacheManager>,
}

impl TableFunctionImpl for LastCacheFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (table, name) = table_and_name(&self.database, args.exprs(), LAST_CACHE_FUNCTION)?;
        let def = match name {
            Some(name) => table.last_cache(&name),
            None if table.last_caches().len() == 1 => table.last_caches().first(),
            None => None,
        }
        .ok_or_else(|| not_found("cache"))?;
        let cache = self
            .caches
            .last_cache(self.database.id, table.id, def.id)
            .ok_or_else(|| not_found("cache"))?;
        let schema = cache.lock().schema(table);
        Ok(Arc::new(LastCacheProvider {
            table: Arc::clone(table),
            cache,
            schema,
        }))
    }
}

#[derive(Debug)]
pub(crate) struct DistinctCacheFunction {
    pub(crate) database: Arc<DatabaseSchema>,
    pub(crate) caches: Arc<CacheManager>,
}

impl TableFunctionImpl for DistinctCacheFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (table, name) = table_and_name(&self.database, args.exprs(), DISTINCT_CACHE_FUNCTION)?;
        let def = match name {
            Some(name) => table.distinct_cache(&name),
            None if table.distinct_caches().len() == 1 => table.distinct_caches().first(),
            None => None,
        }
        .ok_or_else(|| not_found("distinct value cache"))?;
        let cache = self
            .caches
            .distinct_cache(self.database.id, table.id, def.id)
            .ok_or_else(|| not_found("distinct value cache"))?;
        let schema = cache.lock().schema(table);
        Ok(Arc::new(DistinctCacheProvider {
            table: Arc::clone(table),
            cache,
            schema,
        }))
    }
}

struct LastCacheProvider {
    table: Arc<TableSchema>,
    cache: Arc<Mutex<LastCache>>,
    schema: SchemaRef,
}

struct DistinctCacheProvider {
    table: Arc<TableSchema>,
    cache: Arc<Mutex<DistinctCache>>,
    schema: SchemaRef,
}

impl fmt::Debug for LastCacheProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LastCacheProvider")
            .field("table", &self.table.name)
            .finish()
    }
}

impl fmt::Debug for DistinctCacheProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistinctCacheProvider")
            .field("table", &self.table.name)
            .finish()
    }
}

/// Every filter is also applied by DataFusion after the lookup ("inexact"): the cache only
/// uses the ones it understands to skip keys, so an odd predicate can never give wrong rows.
fn inexact(filters: &[&Expr]) -> Vec<TableProviderFilterPushDown> {
    vec![TableProviderFilterPushDown::Inexact; filters.len()]
}

#[async_trait]
impl TableProvider for LastCacheProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(inexact(filters))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let filters = cache_filters(&self.table, filters);
        let batch = self
            .cache
            .lock()
            .to_record_batch(&self.table, &filters, Instant::now())?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

#[async_trait]
impl TableProvider for DistinctCacheProvider {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(inexact(filters))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let filters = cache_filters(&self.table, filters);
        let batch = self.cache.lock().to_record_batch(
            &self.table,
            &filters,
            gnomon_write_buffer::now_ns(),
        )?;
        let exec = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            Arc::clone(&self.schema),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

/// The filters the caches understand: `col = lit`, `col != lit` (either side), `col IN
/// (lits)`, `col NOT IN (lits)`, with literals of the column's type. Others are skipped.
pub(crate) fn cache_filters(table: &TableSchema, filters: &[Expr]) -> Vec<ColumnFilter> {
    filters
        .iter()
        .filter_map(|f| cache_filter(table, f))
        .collect()
}

fn cache_filter(table: &TableSchema, expr: &Expr) -> Option<ColumnFilter> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(op, Operator::Eq | Operator::NotEq) =>
        {
            let (col, lit) = match (column_of(left), column_of(right)) {
                (Some(c), None) => (c, right.as_ref()),
                (None, Some(c)) => (c, left.as_ref()),
                _ => return None,
            };
            let column = table.column(col)?;
            let value = key_value(column.kind, lit)?;
            Some(ColumnFilter {
                column: column.id,
                negated: *op == Operator::NotEq,
                values: vec![value],
            })
        }
        Expr::InList(list) => {
            let column = table.column(column_of(&list.expr)?)?;
            let values: Option<Vec<KeyValue>> = list
                .list
                .iter()
                .map(|e| key_value(column.kind, e))
                .collect();
            Some(ColumnFilter {
                column: column.id,
                negated: list.negated,
                values: values?,
            })
        }
        _ => None,
    }
}

/// The column name of `col` or of a cast of it (the planner casts tag dictionaries).
fn column_of(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(&c.name),
        Expr::Cast(c) => column_of(&c.expr),
        Expr::TryCast(c) => column_of(&c.expr),
        _ => None,
    }
}

fn key_value(kind: ColumnKind, expr: &Expr) -> Option<KeyValue> {
    let scalar = match expr {
        Expr::Literal(v, _) => v,
        Expr::Cast(c) => return key_value(kind, &c.expr),
        _ => return None,
    };
    let scalar = match scalar {
        ScalarValue::Dictionary(_, inner) => inner.as_ref(),
        s => s,
    };
    match (kind, scalar) {
        (
            ColumnKind::Tag | ColumnKind::Field(FieldType::String),
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => Some(KeyValue::Str(Arc::from(s.as_str()))),
        (ColumnKind::Field(FieldType::Integer), ScalarValue::Int64(Some(i))) => {
            Some(KeyValue::Int(*i))
        }
        (ColumnKind::Field(FieldType::UInteger), ScalarValue::UInt64(Some(u))) => {
            Some(KeyValue::UInt(*u))
        }
        (ColumnKind::Field(FieldType::Boolean), ScalarValue::Boolean(Some(b))) => {
            Some(KeyValue::Bool(*b))
        }
        _ => None,
    }
}
