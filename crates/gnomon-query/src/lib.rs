//! SQL over Gnomon's data, on Apache DataFusion.
//!
//! This crate owns how a database looks to DataFusion — a catalog `public` whose schema `iox`
//! holds one [`TableProvider`](datafusion::catalog::TableProvider) per table (plus
//! `information_schema`) — how queries are planned and run, how their errors are classified,
//! and how result streams are encoded into the wire formats ([`format`]). It also owns the
//! `system` schema ([`system`]: a registry of [`SystemTable`]s) and the SQL face of the caches
//! (the `last_cache()` and `distinct_cache()` table functions over `gnomon-cache`).
//!
//! It must not reach into HTTP (the server maps [`QueryError`] to statuses), nor into how rows
//! are stored: tables read the write buffer only through
//! [`Buffer::record_batches`](gnomon_write_buffer::Buffer::record_batches).

mod caches;
mod delta_pages;
mod direct;
pub mod format;
pub mod functions;
mod latest_buckets;
mod newest_first;
mod page_cache;
mod persisted;
mod plan_cache;
mod provider;
pub mod query_log;
pub mod run_aggregate;
mod series_ranges;
pub mod system;
mod time_range;
mod time_runs;
pub mod top_one;

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::MemoryCatalogProviderList;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SendableRecordBatchStream, SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use gnomon_cache::CacheManager;
use gnomon_catalog::Catalog;
use gnomon_write_buffer::Buffer;

pub use page_cache::PageCache;
pub use persisted::PersistedFiles;
pub use provider::{DatabaseCatalog, TableScanProvider};
pub use query_log::{QueryLog, QueryRecorder};
pub use system::{SystemContext, SystemTable};

/// The DataFusion catalog name every database is exposed under.
pub const CATALOG_NAME: &str = "public";
/// The schema holding the user tables.
pub const TABLE_SCHEMA: &str = "iox";

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("query error: database not found: {0}")]
    DatabaseNotFound(String),
    /// The query is wrong: bad syntax, unknown table or column, missing parameter.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotImplemented(String),
    /// The query was fine but running it failed.
    #[error("query error: error while executing plan: {0}")]
    Execution(String),
}

impl QueryError {
    /// Classifies a DataFusion error by its innermost cause.
    pub fn from_datafusion(e: DataFusionError) -> Self {
        // Analyzer and optimizer rules wrap their errors in the rule's name ("type_coercion
        // caused by ..."): the user wants the cause.
        let mut e = e;
        while let DataFusionError::Context(_, inner) = e {
            e = *inner;
        }
        let message = e.to_string();
        match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..) => QueryError::Invalid(message),
            DataFusionError::NotImplemented(_) => QueryError::NotImplemented(message),
            _ => QueryError::Execution(message),
        }
    }
}

/// Settings of the query engine.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Bytes a single query's operators may hold (sorts, hash tables); past it the query fails
    /// with a resources-exhausted error instead of the process being OOM-killed.
    pub memory_pool_bytes: usize,
    pub target_partitions: usize,
    /// Queries kept in `system.queries`.
    pub query_log_size: usize,
    /// DataFusion options (`datafusion.execution.batch_size`, …) set on every session, as
    /// `--datafusion-config` gives them.
    pub datafusion_options: Vec<(String, String)>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            memory_pool_bytes: 4 << 30,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            query_log_size: query_log::DEFAULT_QUERY_LOG_SIZE,
            datafusion_options: Vec::new(),
        }
    }
}

/// Plans and runs queries against the catalog and the buffer.
#[derive(Debug)]
pub struct QueryEngine {
    catalog: Arc<Catalog>,
    buffer: Arc<Buffer>,
    /// Everything a session has that does not depend on the database — config, runtime, the
    /// built-in and Gnomon functions, analyzer rules, the query planner — built once: building
    /// it per query cost most of a small query's time.
    base_state: SessionState,
    persisted: Option<PersistedFiles>,
    caches: Option<Arc<CacheManager>>,
    system_tables: Vec<Arc<dyn SystemTable>>,
    query_log: Arc<QueryLog>,
    plans: plan_cache::PlanCache,
}

impl QueryEngine {
    /// Serves `last_cache()` and `distinct_cache()` from `caches`.
    pub fn with_caches(mut self, caches: Arc<CacheManager>) -> Self {
        self.caches = Some(caches);
        self
    }

    /// Adds a table to the `system` schema (replacing a table of the same name).
    pub fn with_system_table(mut self, table: Arc<dyn SystemTable>) -> Self {
        self.system_tables.retain(|t| t.name() != table.name());
        self.system_tables.push(table);
        self
    }

    pub fn new(
        catalog: Arc<Catalog>,
        buffer: Arc<Buffer>,
        config: QueryConfig,
    ) -> Result<Self, QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(config.memory_pool_bytes, 1.0)
            .build_arc()
            .map_err(QueryError::from_datafusion)?;
        let session_config = SessionConfig::new()
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG_NAME, TABLE_SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_target_partitions(config.target_partitions);
        let mut session_config = session_config;
        {
            let options = session_config.options_mut();
            // The table scan cuts files into partitions itself (`PersistedFiles::spread_for_scan`,
            // knowing which rows it reads), and a scan of one row group's few series runs best
            // on one thread, without a round-robin exchange above it.
            options.optimizer.repartition_file_scans = false;
            options.optimizer.enable_round_robin_repartition = false;
            // Gnomon's files carry no bloom filters: looking for them costs a read per file.
            options.execution.parquet.bloom_filter_on_read = false;
        }
        for (key, value) in &config.datafusion_options {
            session_config
                .options_mut()
                .set(key, value)
                .map_err(|e| QueryError::Invalid(format!("DataFusion option {key}: {e}")))?;
        }
        let mut base_state = functions::install(
            SessionStateBuilder::new()
                .with_config(session_config)
                .with_runtime_env(runtime)
                .with_default_features(),
        )
        .build();
        functions::register(&mut base_state).map_err(QueryError::from_datafusion)?;
        let query_log = Arc::new(QueryLog::new(config.query_log_size));
        let mut system_tables = system::builtin_tables();
        system_tables.push(Arc::new(query_log::QueriesTable(Arc::clone(&query_log))));
        Ok(Self {
            catalog,
            buffer,
            base_state,
            persisted: None,
            caches: None,
            system_tables,
            query_log,
            plans: plan_cache::PlanCache::default(),
        })
    }

    /// The persisted files' decompressed page cache, when tables read persisted files.
    pub fn page_cache(&self) -> Option<Arc<PageCache>> {
        self.persisted.as_ref().map(|p| Arc::clone(&p.pages))
    }

    /// Makes tables read the persisted Parquet files as well as the buffer.
    pub fn with_persisted(mut self, persisted: PersistedFiles) -> Self {
        self.base_state.runtime_env().register_object_store(
            persisted::store_url().as_ref(),
            Arc::clone(&persisted.store),
        );
        self.persisted = Some(persisted);
        self
    }

    /// The log behind `system.queries`; [`QueryEngine::sql`] records into it, other query
    /// languages record their queries themselves.
    pub fn query_log(&self) -> &Arc<QueryLog> {
        &self.query_log
    }

    /// A session over database `db`: its tables in `public.iox`, and `information_schema`.
    pub fn session(&self, db: &str) -> Result<SessionContext, QueryError> {
        self.session_at(self.catalog.snapshot(), db)
    }

    /// [`QueryEngine::session`] as of catalog `snapshot`.
    fn session_at(
        &self,
        snapshot: Arc<gnomon_catalog::CatalogSnapshot>,
        db: &str,
    ) -> Result<SessionContext, QueryError> {
        let database = snapshot
            .database(db)
            .cloned()
            .ok_or_else(|| QueryError::DatabaseNotFound(db.to_string()))?;
        // A catalog list of its own: the base state's is shared by every clone, and each
        // session registers its own database as `public`.
        // Swapped into a clone rather than rebuilt with `SessionStateBuilder`: a rebuild
        // re-registers (and re-hashes) every function, a good part of a small query's time.
        let mut state = self.base_state.clone();
        state.register_catalog_list(Arc::new(MemoryCatalogProviderList::new()));
        let ctx = SessionContext::new_with_state(state);
        let system = system::SystemSchemaProvider::new(
            &self.system_tables,
            SystemContext {
                snapshot: Arc::clone(&snapshot),
                database: Arc::clone(&database),
                files: self.persisted.as_ref().map(|p| Arc::clone(&p.index)),
            },
        );
        if let Some(caches) = &self.caches {
            ctx.register_udtf(
                caches::LAST_CACHE_FUNCTION,
                Arc::new(caches::LastCacheFunction {
                    database: Arc::clone(&database),
                    caches: Arc::clone(caches),
                }),
            );
            ctx.register_udtf(
                caches::DISTINCT_CACHE_FUNCTION,
                Arc::new(caches::DistinctCacheFunction {
                    database: Arc::clone(&database),
                    caches: Arc::clone(caches),
                }),
            );
        }
        ctx.register_catalog(
            CATALOG_NAME,
            Arc::new(
                DatabaseCatalog::with_persisted(
                    database,
                    Arc::clone(&self.buffer),
                    self.persisted.clone(),
                )
                .with_system_schema(Arc::new(system)),
            ),
        );
        Ok(ctx)
    }

    /// Plans and starts `sql` on database `db`, binding `$name` placeholders from `params`.
    /// The query is recorded in the query log until its stream ends or is dropped.
    pub async fn sql(
        &self,
        db: &str,
        sql: &str,
        params: Option<HashMap<String, ScalarValue>>,
    ) -> Result<SendableRecordBatchStream, QueryError> {
        let mut recorder = self.query_log.start("sql", db, sql);
        match self.plan_sql(db, sql, params).await {
            Ok(stream) => {
                recorder.planned();
                Ok(recorder.wrap(stream))
            }
            Err(e) => {
                recorder.failed(&e.to_string());
                Err(e)
            }
        }
    }

    async fn plan_sql(
        &self,
        db: &str,
        sql: &str,
        params: Option<HashMap<String, ScalarValue>>,
    ) -> Result<SendableRecordBatchStream, QueryError> {
        let started = std::time::Instant::now();
        let snapshot = self.catalog.snapshot();
        let catalog_sequence = snapshot.sequence();
        let ctx = self.session_at(snapshot, db)?;
        let session_done = started.elapsed();
        let state = ctx.state();
        // A shape planned before: bind this query's values into its optimized plan.
        let shape = match params {
            None => plan_cache::PlanCache::parameterize(&state, db, catalog_sequence, sql),
            Some(_) => None,
        };
        if let Some(plan) = shape
            .as_ref()
            .and_then(|s| self.plans.bound_plan(&state, s))
        {
            let times = PlanningTimes {
                started,
                session_done,
                sql_done: started.elapsed(),
            };
            if let Some(stream) = direct_stream(&plan, &state, &times, true).await {
                return Ok(stream);
            }
            return self.execute_optimized(state, plan, times, true).await;
        }
        let bound_params = params.is_some();
        // A query already parsed for its shape is planned from that parse; anything else
        // (statements, parameters) goes through `SessionContext::sql`.
        let (state, plan) = match shape.as_ref().map(|s| s.statement.clone()) {
            Some(statement) => {
                let plan = state
                    .statement_to_plan(statement)
                    .await
                    .map_err(QueryError::from_datafusion)?;
                (state, plan)
            }
            None => {
                let mut frame = ctx.sql(sql).await.map_err(QueryError::from_datafusion)?;
                if let Some(params) = params {
                    frame = frame
                        .with_param_values(ParamValues::Map(
                            params.into_iter().map(|(k, v)| (k, v.into())).collect(),
                        ))
                        .map_err(QueryError::from_datafusion)?;
                }
                frame.into_parts()
            }
        };
        let times = PlanningTimes {
            started,
            session_done,
            sql_done: started.elapsed(),
        };
        let optimized = state.optimize(&plan).map_err(QueryError::from_datafusion)?;
        if let Some(shape) = shape {
            self.plans.observe(&state, shape, &optimized).await;
        }
        if let Some(stream) = direct_stream(&optimized, &state, &times, false).await {
            return Ok(stream);
        }
        // `… GROUP BY date_bin(…) ORDER BY 1 DESC LIMIT k`: the newest buckets first (the
        // cheap shape test on the unoptimized plan spares other queries the search).
        if !bound_params && latest_buckets::may_apply(&plan) {
            if let Some(latest) = latest_buckets::LatestBuckets::find(&optimized) {
                if let Some(batches) = latest
                    .run(&state)
                    .await
                    .map_err(QueryError::from_datafusion)?
                {
                    let schema = batches
                        .first()
                        .map(|b| b.schema())
                        .unwrap_or_else(|| Arc::clone(optimized.schema().inner()));
                    return Ok(stream_of(schema, batches));
                }
            }
        }
        self.execute_optimized(state, optimized, times, false).await
    }

    /// Physical planning and start of an optimized plan (timings of the earlier steps given,
    /// for the debug event).
    async fn execute_optimized(
        &self,
        state: SessionState,
        optimized: datafusion::logical_expr::LogicalPlan,
        times: PlanningTimes,
        cached_plan: bool,
    ) -> Result<SendableRecordBatchStream, QueryError> {
        let optimize_done = times.started.elapsed();
        let physical = state
            .query_planner()
            .create_physical_plan(&optimized, &state)
            .await
            .map_err(QueryError::from_datafusion)?;
        let physical_done = times.started.elapsed();
        let stream = datafusion::physical_plan::execute_stream(
            physical,
            Arc::new(datafusion::execution::TaskContext::from(&state)),
        )
        .map_err(QueryError::from_datafusion)?;
        times.report(optimize_done, physical_done, cached_plan, false);
        Ok(stream)
    }
}

/// Runs a logical plan built outside SQL (InfluxQL) to completion: the direct path
/// ([`direct`]) when its shape allows, DataFusion otherwise.
pub async fn collect_plan(
    state: &SessionState,
    plan: datafusion::logical_expr::LogicalPlan,
) -> datafusion::error::Result<Vec<datafusion::arrow::array::RecordBatch>> {
    collect_optimized(state, &state.optimize(&plan)?).await
}

/// Runs an optimized logical plan to completion: the direct path ([`direct`]) when its shape
/// allows, DataFusion's physical plan otherwise.
pub(crate) async fn collect_optimized(
    state: &SessionState,
    optimized: &datafusion::logical_expr::LogicalPlan,
) -> datafusion::error::Result<Vec<datafusion::arrow::array::RecordBatch>> {
    if let Some(batches) = direct_answer(optimized, state).await {
        return Ok(batches);
    }
    let physical = state
        .query_planner()
        .create_physical_plan(optimized, state)
        .await?;
    datafusion::physical_plan::collect(
        physical,
        Arc::new(datafusion::execution::TaskContext::from(state)),
    )
    .await
}

/// The answer of `plan` computed without a physical plan ([`direct`]), in the plan's
/// schema, when it has a shape that allows it.
async fn direct_answer(
    plan: &datafusion::logical_expr::LogicalPlan,
    state: &SessionState,
) -> Option<Vec<datafusion::arrow::array::RecordBatch>> {
    let schema = Arc::clone(plan.schema().inner());
    direct::try_execute(plan, state)
        .await?
        .into_iter()
        .map(|b| {
            datafusion::arrow::array::RecordBatch::try_new(
                Arc::clone(&schema),
                b.columns().to_vec(),
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .inspect_err(|e| tracing::warn!(error = %e, "direct answer of another schema"))
        .ok()
}

/// [`direct_answer`] as a stream, with the debug event of the query's planning phases.
async fn direct_stream(
    plan: &datafusion::logical_expr::LogicalPlan,
    state: &SessionState,
    times: &PlanningTimes,
    cached_plan: bool,
) -> Option<SendableRecordBatchStream> {
    let optimize_done = times.started.elapsed();
    let batches = direct_answer(plan, state).await?;
    times.report(optimize_done, optimize_done, cached_plan, true);
    Some(stream_of(Arc::clone(plan.schema().inner()), batches))
}

/// Batches already computed, as a stream.
fn stream_of(
    schema: datafusion::arrow::datatypes::SchemaRef,
    batches: Vec<datafusion::arrow::array::RecordBatch>,
) -> SendableRecordBatchStream {
    Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches.into_iter().map(Ok)),
        ),
    )
}

/// When a query's planning started, and how long after that its session was made and its
/// SQL planned (for the debug event with the planning phases).
struct PlanningTimes {
    started: std::time::Instant,
    session_done: std::time::Duration,
    sql_done: std::time::Duration,
}

impl PlanningTimes {
    /// The debug event `planned`: each phase's time, whether the plan came from the plan
    /// cache, and whether the direct path answered (then physical planning took no time and
    /// "execute" is the whole answer).
    fn report(
        &self,
        optimize_done: std::time::Duration,
        physical_done: std::time::Duration,
        cached_plan: bool,
        direct: bool,
    ) {
        tracing::debug!(
            session_us = self.session_done.as_micros() as u64,
            sql_us = (self.sql_done - self.session_done).as_micros() as u64,
            optimize_us = (optimize_done - self.sql_done).as_micros() as u64,
            physical_us = (physical_done - optimize_done).as_micros() as u64,
            execute_us = (self.started.elapsed() - physical_done).as_micros() as u64,
            cached_plan,
            direct,
            "planned"
        );
    }
}

/// The one child `with_new_children` gets for a plan node that has one (`node`, its name, for
/// the internal error otherwise).
pub(crate) fn only_child(
    children: Vec<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
    node: &str,
) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    <[_; 1]>::try_from(children)
        .map(|[child]| child)
        .map_err(|_| DataFusionError::Internal(format!("{node} has one child")))
}

/// Converts a JSON parameter value to a SQL scalar (`null`, booleans, integers that fit `i64`
/// or `u64`, floats and strings; arrays and objects are not parameter values).
pub fn json_param(value: &serde_json::Value) -> Result<ScalarValue, QueryError> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                ScalarValue::Int64(Some(i))
            } else if let Some(u) = n.as_u64() {
                ScalarValue::UInt64(Some(u))
            } else {
                ScalarValue::Float64(n.as_f64())
            }
        }
        Value::String(s) => ScalarValue::Utf8(Some(s.clone())),
        Value::Array(_) | Value::Object(_) => {
            return Err(QueryError::Invalid(format!(
                "unsupported parameter value {value}: use a string, number, boolean or null"
            )))
        }
    })
}

/// A running query's result.
pub type BatchStream = SendableRecordBatchStream;
