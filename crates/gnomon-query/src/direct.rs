//! Direct execution of the commonest small time-series queries, without a physical plan.
//!
//! A query on a few series over a window — `GROUP BY date_bin(…)` with `max`/`min`/`sum`/
//! `count`/`avg`, or the rows matching a filter in time order — reads a few thousand rows.
//! DataFusion's physical planner and optimizer, and its operators' machinery, cost several
//! times that (about 1 ms of a 2 ms query, and twice as much when the CPU caches are cold,
//! as they are when other queries run in between). For an optimized logical plan of the
//! shape
//!
//! ```text
//! [Sort | Limit | Projection]*  [Aggregate]  [Projection | Filter]*  TableScan
//! ```
//!
//! whose aggregate (if any) groups by nothing or by one `date_bin` of a fixed interval and
//! computes only the functions above over integer or float columns, this module evaluates
//! the plan itself: it takes the table's sources as the scan would ([`TableScanProvider::
//! range_sources`]), reads from each file only the pinned tags' rows (`series_ranges`) within
//! the time range (`time_runs`, which also give the `time` values), applies
//! the filters and projections with DataFusion's own physical expressions, folds the
//! aggregates per bucket in row order (the same states, in the same order, as DataFusion's
//! accumulators over one partition), and applies the nodes above to the result.
//!
//! Anything else falls back to DataFusion, unchanged: sources that must be merged (late
//! writes into a persisted range), a retention period, more candidate rows than
//! [`MAX_ROWS`] (a big scan is better spread over the cores), an expression this module does
//! not evaluate, or any error (so a problem here costs time, never an answer).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch,
    TimestampNanosecondArray,
};
use arrow::compute::{concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch};
use arrow::compute::{SortColumn, SortOptions};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, TimestampNanosecondType};
use datafusion::catalog::TableProvider;
use datafusion::common::{DFSchema, DataFusionError, Result};
use datafusion::datasource::source_as_provider;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Aggregate, Expr, FetchType, LogicalPlan, SkipType, TableScan};
use datafusion::physical_expr::PhysicalExpr;
use futures::stream::BoxStream;
use futures::StreamExt;
use gnomon_persist::ParquetFile;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReader, RowSelection};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{
    parquet_to_arrow_field_levels, ParquetRecordBatchStreamBuilder, ProjectionMask,
};

use crate::persisted::PersistedFiles;
use crate::provider::TableScanProvider;
use crate::run_aggregate::{GroupKey, RunReduce};
use crate::series_ranges::{tag_constraints, FileRows};
use crate::time_range::TimeRange;
use crate::time_runs::{TimeRuns, TIME};

/// Candidate rows (before filtering) above which a query is left to DataFusion.
const MAX_ROWS: u64 = 1 << 20;

/// Candidate rows from which the reads are shared between the cores.
const PARALLEL_ROWS: u64 = 16 * 1024;

/// Candidate rows and columns from which a scan of fewer reads than cores shares the
/// columns between the cores instead.
const COLUMN_SPLIT_ROWS: u64 = 2048;
const COLUMN_SPLIT_COLUMNS: usize = 8;

/// Rows per batch read from a file.
const BATCH_ROWS: usize = 8192;

/// The answer of `plan`, computed directly, or `None` when the plan is not of a shape this
/// module takes (or anything went wrong: DataFusion then runs it as usual).
pub(crate) async fn try_execute(
    plan: &LogicalPlan,
    state: &SessionState,
) -> Option<Vec<RecordBatch>> {
    let shape = Shape::of(plan)?;
    match shape.execute(state).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, "direct execution failed; running the query's plan");
            None
        }
    }
}

/// A plan cut at its aggregate (or at its lowest sort or limit when it has none).
struct Shape<'a> {
    /// Nodes applied to the whole result, top first.
    upper: Vec<&'a LogicalPlan>,
    aggregate: Option<&'a Aggregate>,
    /// `Filter`s and `Projection`s applied batch by batch, top first.
    lower: Vec<&'a LogicalPlan>,
    scan: &'a TableScan,
    /// The scanned table (a [`TableScanProvider`]).
    provider: Arc<dyn TableProvider>,
}

impl<'a> Shape<'a> {
    fn of(plan: &'a LogicalPlan) -> Option<Self> {
        let mut nodes = Vec::new();
        let mut node = plan;
        let scan = loop {
            match node {
                LogicalPlan::TableScan(scan) => break scan,
                LogicalPlan::Sort(_)
                | LogicalPlan::Limit(_)
                | LogicalPlan::Projection(_)
                | LogicalPlan::Filter(_)
                | LogicalPlan::Aggregate(_) => {
                    nodes.push(node);
                    node = only_input(node)?;
                }
                _ => return None,
            }
        };
        if scan.fetch.is_some() {
            return None;
        }
        let provider = source_as_provider(&scan.source).ok()?;
        provider.downcast_ref::<TableScanProvider>()?;
        // Batch by batch: the filters and projections below the first node that needs the
        // whole input.
        let cut = nodes
            .iter()
            .rposition(|n| {
                matches!(
                    n,
                    LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::Aggregate(_)
                )
            })
            .map_or(0, |i| i + 1);
        let lower = nodes.split_off(cut);
        let aggregate = match nodes.last() {
            Some(LogicalPlan::Aggregate(a)) => {
                nodes.pop();
                Some(a)
            }
            _ => None,
        };
        // A second aggregate, or a limit or sort between the scan and the aggregate.
        if nodes.iter().any(|n| matches!(n, LogicalPlan::Aggregate(_))) {
            return None;
        }
        Some(Self {
            upper: nodes,
            aggregate,
            lower,
            scan,
            provider,
        })
    }

    async fn execute(&self, state: &SessionState) -> Result<Option<Vec<RecordBatch>>> {
        let provider = self
            .provider
            .downcast_ref::<TableScanProvider>()
            .ok_or_else(|| DataFusionError::Internal("not a table".into()))?;
        if provider.retention_ns().is_some() {
            return Ok(None);
        }
        let lower = self
            .lower
            .iter()
            .rev()
            .map(|node| Step::of(node, state))
            .collect::<Result<Vec<_>>>()?;
        let mut folder = match self.aggregate {
            Some(aggregate) => match Folder::of(aggregate, state)? {
                Some(folder) => Some(folder),
                None => return Ok(None),
            },
            None => None,
        };

        let table_schema = provider.schema();
        let columns: Vec<usize> = match &self.scan.projection {
            Some(p) => p.clone(),
            None => (0..table_schema.fields().len()).collect(),
        };
        let scan_schema = Arc::clone(self.scan.projected_schema.inner());
        // The rows' schema once through the lower steps.
        let kept_schema = match self.lower.first() {
            Some(top) => Arc::clone(top.schema().inner()),
            None => Arc::clone(&scan_schema),
        };
        let range = TimeRange::from_filters(&self.scan.filters);
        if range.min > range.max {
            return self
                .finish(state, folder, Vec::new(), &kept_schema)
                .map(Some);
        }
        let constraints = tag_constraints(&self.scan.filters, &table_schema);
        let persisted = provider.persisted();

        // What to read, and how many rows that is, before reading any.
        let mut work = Vec::new();
        let mut candidates = 0u64;
        for group in provider.range_sources(range) {
            match (group.files.as_slice(), group.buffered.as_slice()) {
                ([file], []) => {
                    let persisted = persisted
                        .ok_or_else(|| DataFusionError::Internal("files without a store".into()))?;
                    let rows = persisted.file_rows(file, &constraints, range).await?;
                    // With a time range, the file's runs of evenly spaced times also give the
                    // `time` values without reading the column.
                    let times = match range == TimeRange::ALL {
                        true => None,
                        false => persisted.time_runs(file).await?,
                    };
                    for read in file_reads(persisted, file, &rows, times).await? {
                        candidates += read.rows;
                        work.push(Work::Read(read));
                    }
                }
                ([], [batch]) => {
                    candidates += batch.num_rows() as u64;
                    work.push(Work::Buffered(batch.project(&columns)?));
                }
                // Sources to merge first: DataFusion's path does that.
                _ => return Ok(None),
            }
            if candidates > MAX_ROWS {
                return Ok(None);
            }
        }

        let reads = work.len();
        let computed_times = work
            .iter()
            .filter(|w| matches!(w, Work::Read(r) if r.times.is_some()))
            .count();
        let lower = Arc::new(lower);
        let partitions = state.config().target_partitions().max(1);
        let scan_columns = scan_schema.fields().len();
        let split = if partitions > 1
            && (reads < partitions || candidates < PARALLEL_ROWS)
            && candidates >= COLUMN_SPLIT_ROWS
            && scan_columns >= COLUMN_SPLIT_COLUMNS
        {
            Split::Columns
        } else if candidates < PARALLEL_ROWS || partitions == 1 || reads < 2 {
            Split::None
        } else {
            Split::Reads
        };
        let pieces: Vec<Vec<RecordBatch>> = match split {
            Split::Columns => {
                // Few reads of many columns (`SELECT *` on one series): the columns are shared
                // between the cores instead, every task reading the same rows.
                let handles: Vec<_> = (0..partitions)
                    .map(|p| {
                        let columns: Vec<usize> = (p..scan_columns).step_by(partitions).collect();
                        tokio::spawn(read_columns(
                            work.clone(),
                            columns,
                            Arc::clone(&scan_schema),
                        ))
                    })
                    .collect();
                let parts = join_all(handles).await?;
                let mut batches = Vec::new();
                for batch in zip_columns(&scan_schema, partitions, parts)? {
                    batches.extend(through(&lower, batch)?);
                }
                vec![batches]
            }
            Split::None => {
                vec![run_work(work, Arc::clone(&scan_schema), Arc::clone(&lower)).await?]
            }
            Split::Reads => {
                // Reads of more than a few thousand rows are shared between the cores, in
                // contiguous pieces of about equal rows; the results are folded in order.
                // Every piece is a task of its own: a task spawned last waits in its
                // worker's LIFO slot, which no other worker steals from, so a piece kept
                // here would run after it.
                let share = candidates.div_ceil(partitions as u64);
                let mut handles = Vec::new();
                let mut piece = Vec::new();
                let mut piece_rows = 0;
                let mut work = work.into_iter().peekable();
                while let Some(item) = work.next() {
                    piece_rows += item.rows();
                    piece.push(item);
                    if piece_rows >= share || work.peek().is_none() {
                        handles.push(tokio::spawn(run_work(
                            std::mem::take(&mut piece),
                            Arc::clone(&scan_schema),
                            Arc::clone(&lower),
                        )));
                        piece_rows = 0;
                    }
                }
                join_all(handles).await?
            }
        };
        let mut kept = Vec::new();
        for batch in pieces.into_iter().flatten() {
            match &mut folder {
                Some(folder) => folder.fold(&batch)?,
                None => kept.push(batch),
            }
        }
        tracing::debug!(
            reads,
            computed_times,
            candidates,
            split = split.as_str(),
            "served directly"
        );
        self.finish(state, folder, kept, &kept_schema).map(Some)
    }

    /// The answer from the rows kept (or folded) below the cut.
    fn finish(
        &self,
        state: &SessionState,
        folder: Option<Folder>,
        kept: Vec<RecordBatch>,
        kept_schema: &SchemaRef,
    ) -> Result<Vec<RecordBatch>> {
        let mut batch = match folder {
            Some(folder) => folder.finish()?,
            None => concat_batches(kept_schema, &kept)?,
        };
        for node in self.upper.iter().rev() {
            batch = Step::of(node, state)?.apply(batch)?;
        }
        Ok(vec![batch])
    }
}

fn only_input(node: &LogicalPlan) -> Option<&LogicalPlan> {
    match node.inputs().as_slice() {
        [input] => Some(input),
        _ => None,
    }
}

/// Rows to read: a buffered batch (already projected), or row groups of a file.
#[derive(Clone)]
enum Work {
    Buffered(RecordBatch),
    Read(Read),
}

impl Work {
    fn rows(&self) -> u64 {
        match self {
            Work::Buffered(batch) => batch.num_rows() as u64,
            Work::Read(read) => read.rows,
        }
    }

    /// The rows, with the columns of `schema` (a buffered batch is already projected).
    async fn read(self, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
        match self {
            Work::Buffered(batch) => Ok(vec![batch]),
            Work::Read(read) => read_rows(read, schema).await,
        }
    }
}

/// How the reads of a query are shared between the cores (named in the debug event).
#[derive(Clone, Copy)]
enum Split {
    /// All on the querying task.
    None,
    /// Contiguous pieces of the reads, one task each.
    Reads,
    /// Every task reads the same rows, a share of the columns.
    Columns,
}

impl Split {
    fn as_str(self) -> &'static str {
        match self {
            Split::None => "none",
            Split::Reads => "reads",
            Split::Columns => "columns",
        }
    }
}

/// A row group of a file, and the rows to read in it (all when `None`).
#[derive(Clone)]
struct Read {
    persisted: PersistedFiles,
    file: Arc<ParquetFile>,
    metadata: ArrowReaderMetadata,
    group: usize,
    /// Sorted, disjoint rows of the row group.
    inside: Option<Vec<Range<usize>>>,
    rows: u64,
    /// The rows read, as file rows, with the file's time runs: `time` is computed from
    /// them, not read.
    times: Option<(Vec<Range<u64>>, Arc<TimeRuns>)>,
}

/// The rows of `work`, in order, through the `lower` steps.
async fn run_work(
    work: Vec<Work>,
    schema: SchemaRef,
    lower: Arc<Vec<Step>>,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    for item in work {
        for batch in item.read(&schema).await? {
            out.extend(through(&lower, batch)?);
        }
    }
    Ok(out)
}

/// `batch` through the `lower` steps; `None` when no row is left.
fn through(lower: &[Step], batch: RecordBatch) -> Result<Option<RecordBatch>> {
    let mut batch = batch;
    for step in lower {
        batch = step.apply(batch)?;
    }
    Ok((batch.num_rows() > 0).then_some(batch))
}

/// The results of `tasks`, in order.
async fn join_all<T>(tasks: Vec<tokio::task::JoinHandle<Result<T>>>) -> Result<Vec<T>> {
    futures::future::try_join_all(tasks)
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
        .into_iter()
        .collect()
}

/// The columns `columns` (indices into `schema`) of the rows of `work`, in order, one batch
/// per batch read (whatever the columns, the same rows make the same batches).
async fn read_columns(
    work: Vec<Work>,
    columns: Vec<usize>,
    schema: SchemaRef,
) -> Result<Vec<RecordBatch>> {
    let schema = Arc::new(schema.project(&columns)?);
    let mut out = Vec::new();
    for item in work {
        match item {
            Work::Buffered(batch) => out.push(batch.project(&columns)?),
            read => out.extend(read.read(&schema).await?),
        }
    }
    Ok(out)
}

/// The batches of `schema` whose columns `parts` hold: part `p` has columns `p`, `p + n`,
/// `p + 2n`, … (`n` parts), batch by batch.
fn zip_columns(
    schema: &SchemaRef,
    n: usize,
    parts: Vec<Vec<RecordBatch>>,
) -> Result<Vec<RecordBatch>> {
    let batches = parts.first().map_or(0, |p| p.len());
    if parts.iter().any(|p| p.len() != batches) {
        return Err(DataFusionError::Internal("column reads out of step".into()));
    }
    let mut out = Vec::with_capacity(batches);
    for (i, first) in parts.first().into_iter().flatten().enumerate() {
        let rows = first.num_rows();
        let columns = (0..schema.fields().len())
            .map(|c| {
                let batch = &parts[c % n][i];
                if batch.num_rows() != rows {
                    return Err(DataFusionError::Internal("column reads out of step".into()));
                }
                Ok(Arc::clone(batch.column(c / n)))
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(batch_of(schema, columns, rows)?);
    }
    Ok(out)
}

/// One plan node above the scan, evaluated on whole batches.
enum Step {
    Filter(Arc<dyn PhysicalExpr>),
    Project(Vec<Arc<dyn PhysicalExpr>>, SchemaRef),
    Sort(Vec<(Arc<dyn PhysicalExpr>, SortOptions)>, Option<usize>),
    Limit(usize, Option<usize>),
}

impl Step {
    fn of(node: &LogicalPlan, state: &SessionState) -> Result<Self> {
        let input_schema = |node: &LogicalPlan| -> Result<Arc<DFSchema>> {
            only_input(node)
                .map(|i| Arc::clone(i.schema()))
                .ok_or_else(|| DataFusionError::Internal("a node without one input".into()))
        };
        Ok(match node {
            LogicalPlan::Filter(filter) => Step::Filter(
                state.create_physical_expr(filter.predicate.clone(), filter.input.schema())?,
            ),
            LogicalPlan::Projection(projection) => {
                let input = input_schema(node)?;
                let exprs = projection
                    .expr
                    .iter()
                    .map(|e| state.create_physical_expr(e.clone(), &input))
                    .collect::<Result<Vec<_>>>()?;
                Step::Project(exprs, Arc::clone(projection.schema.inner()))
            }
            LogicalPlan::Sort(sort) => {
                let input = input_schema(node)?;
                let keys = sort
                    .expr
                    .iter()
                    .map(|s| {
                        Ok((
                            state.create_physical_expr(s.expr.clone(), &input)?,
                            SortOptions {
                                descending: !s.asc,
                                nulls_first: s.nulls_first,
                            },
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Step::Sort(keys, sort.fetch)
            }
            LogicalPlan::Limit(limit) => {
                let (SkipType::Literal(skip), FetchType::Literal(fetch)) =
                    (limit.get_skip_type()?, limit.get_fetch_type()?)
                else {
                    return Err(DataFusionError::NotImplemented("a computed limit".into()));
                };
                Step::Limit(skip, fetch)
            }
            other => {
                return Err(DataFusionError::NotImplemented(format!(
                    "direct {}",
                    other.display()
                )))
            }
        })
    }

    fn apply(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        Ok(match self {
            Step::Filter(predicate) => {
                let keep = predicate.evaluate(&batch)?.into_array(rows)?;
                let keep = keep
                    .as_boolean_opt()
                    .ok_or_else(|| DataFusionError::Internal("a filter not boolean".into()))?;
                if keep.true_count() == rows {
                    batch
                } else {
                    filter_record_batch(&batch, keep)?
                }
            }
            Step::Project(exprs, schema) => {
                let columns = exprs
                    .iter()
                    .map(|e| e.evaluate(&batch)?.into_array(rows))
                    .collect::<Result<Vec<_>>>()?;
                batch_of(schema, columns, rows)?
            }
            Step::Sort(keys, fetch) => {
                let columns = keys
                    .iter()
                    .map(|(e, options)| {
                        Ok(SortColumn {
                            values: e.evaluate(&batch)?.into_array(rows)?,
                            options: Some(*options),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let indices = lexsort_to_indices(&columns, *fetch)?;
                take_record_batch(&batch, &indices)?
            }
            Step::Limit(skip, fetch) => {
                let start = (*skip).min(rows);
                let len = fetch.map_or(rows - start, |f| f.min(rows - start));
                batch.slice(start, len)
            }
        })
    }
}

/// The reads of `file` for the rows `rows` selects: one per row group holding any.
async fn file_reads(
    persisted: &PersistedFiles,
    file: &Arc<ParquetFile>,
    rows: &FileRows,
    times: Option<Arc<TimeRuns>>,
) -> Result<Vec<Read>> {
    let ranges = match rows {
        FileRows::None => return Ok(Vec::new()),
        FileRows::All => None,
        FileRows::Some(_, ranges) => Some(ranges),
    };
    let metadata = persisted.arrow_metadata(file).await?;
    let group_rows: Vec<u64> = metadata
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows() as u64)
        .collect();
    // The file row each row group starts at.
    let group_starts: Vec<u64> = group_rows
        .iter()
        .scan(0, |start, &n| {
            let this = *start;
            *start += n;
            Some(this)
        })
        .collect();
    let times = times.filter(|t| t.rows() == group_rows.iter().sum::<u64>());
    let read = |group: usize, inside: Option<Vec<Range<usize>>>| {
        let start = group_starts[group];
        let file_rows: Vec<Range<u64>> = match &inside {
            None => std::iter::once(start..start + group_rows[group]).collect(),
            Some(inside) => inside
                .iter()
                .map(|r| start + r.start as u64..start + r.end as u64)
                .collect(),
        };
        Read {
            persisted: persisted.clone(),
            file: Arc::clone(file),
            metadata: metadata.clone(),
            group,
            rows: file_rows.iter().map(|r| r.end - r.start).sum(),
            inside,
            times: times.as_ref().map(|t| (file_rows, Arc::clone(t))),
        }
    };
    Ok(match ranges {
        None => (0..group_rows.len()).map(|i| read(i, None)).collect(),
        Some(ranges) => ranges_by_row_group(&group_rows, ranges)
            .into_iter()
            .map(|(group, inside)| read(group, Some(inside)))
            .collect(),
    })
}

/// The rows of one [`Read`], with the columns of `schema` (by name; a column the file does
/// not have is all nulls, as in DataFusion's scan).
async fn read_rows(read: Read, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let mut reader: Box<dyn AsyncFileReader> = read.persisted.open(&read.file)?;
    let file_schema = Arc::clone(read.metadata.schema());
    // `time` from the file's time runs, when it has them, instead of from its pages.
    let computed_time = match (&read.times, schema.index_of(TIME)) {
        (Some((rows, runs)), Ok(column)) => {
            let mut times = Vec::with_capacity(read.rows as usize);
            for range in rows {
                runs.times(range.clone(), &mut times);
            }
            let times: ArrayRef = Arc::new(TimestampNanosecondArray::from(times));
            Some((column, times))
        }
        _ => None,
    };
    let roots: Vec<usize> = schema
        .fields()
        .iter()
        .filter(|f| computed_time.is_none() || f.name() != TIME)
        .filter_map(|f| file_schema.index_of(f.name()).ok())
        .collect();
    let parquet_schema = read.metadata.metadata().file_metadata().schema_descr();
    // The leaf columns under those roots (the same as the roots in a flat schema).
    let leaves: Vec<usize> = (0..parquet_schema.num_columns())
        .filter(|&leaf| roots.contains(&parquet_schema.get_column_root_idx(leaf)))
        .collect();
    let mask = ProjectionMask::roots(parquet_schema, roots);
    let group_rows = read.metadata.metadata().row_group(read.group).num_rows() as usize;
    let selection = read
        .inside
        .as_ref()
        .map(|inside| RowSelection::from_consecutive_ranges(inside.iter().cloned(), group_rows));
    let loaded = read
        .persisted
        .pages
        .load(
            reader.as_mut(),
            read.file.path.as_str(),
            read.metadata.metadata(),
            read.group,
            &leaves,
            read.inside.as_deref(),
        )
        .await?;
    // From the decompressed pages when the file has an offset index to find them with.
    let mut stream: BoxStream<'static, Result<RecordBatch>> = match loaded {
        Some(pages) => {
            let levels = parquet_to_arrow_field_levels(
                parquet_schema,
                mask,
                Some(read.metadata.schema().fields()),
            )?;
            let batches = ParquetRecordBatchReader::try_new_with_row_groups(
                &levels, &pages, BATCH_ROWS, selection,
            )?;
            futures::stream::iter(batches.map(|b| b.map_err(DataFusionError::from))).boxed()
        }
        None => {
            let mut builder =
                ParquetRecordBatchStreamBuilder::new_with_metadata(reader, read.metadata)
                    .with_batch_size(BATCH_ROWS)
                    .with_projection(mask)
                    .with_row_groups(vec![read.group]);
            if let Some(selection) = selection {
                builder = builder.with_row_selection(selection);
            }
            builder
                .build()?
                .map(|b| b.map_err(DataFusionError::from))
                .boxed()
        }
    };
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let given = match &computed_time {
            Some((column, times)) => {
                let rows = batch.num_rows();
                if at + rows > times.len() {
                    return Err(DataFusionError::Internal(
                        "more rows read than time runs give".into(),
                    ));
                }
                at += rows;
                Some((*column, times.slice(at - rows, rows)))
            }
            None => None,
        };
        out.push(conform(batch, schema, given)?);
    }
    if computed_time
        .as_ref()
        .is_some_and(|(_, times)| at != times.len())
    {
        return Err(DataFusionError::Internal(
            "fewer rows read than time runs give".into(),
        ));
    }
    Ok(out)
}

/// The row groups holding any of `ranges` (sorted, disjoint file rows), each with those
/// ranges in its own row numbers.
fn ranges_by_row_group(
    group_rows: &[u64],
    ranges: &[Range<u64>],
) -> Vec<(usize, Vec<Range<usize>>)> {
    let mut out = Vec::new();
    let mut start = 0u64;
    for (group, &n) in group_rows.iter().enumerate() {
        let end = start + n;
        let inside: Vec<Range<usize>> = ranges
            .iter()
            .filter(|r| r.start < end && r.end > start)
            .map(|r| (r.start.max(start) - start) as usize..(r.end.min(end) - start) as usize)
            .collect();
        if !inside.is_empty() {
            out.push((group, inside));
        }
        start = end;
    }
    out
}

/// A batch of `rows` rows (stated, so a batch without columns keeps its row count).
fn batch_of(schema: &SchemaRef, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// `batch` with the columns of `schema`, in its order and types; `given` (a column index and
/// its values) replaces what the batch has for that column.
fn conform(
    batch: RecordBatch,
    schema: &SchemaRef,
    given: Option<(usize, ArrayRef)>,
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let found = match &given {
                Some((column, values)) if *column == i => Some(values),
                _ => batch.column_by_name(field.name()),
            };
            match found {
                Some(c) if c.data_type() == field.data_type() => Ok(Arc::clone(c)),
                Some(c) => Ok(arrow::compute::cast(c, field.data_type())?),
                None => Ok(new_null_array(field.data_type(), rows)),
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    batch_of(schema, columns, rows)
}

/// One aggregate's state per bucket: how many values it saw, and its running value.
enum States {
    Counts,
    Ints(Vec<i64>),
    Floats(Vec<f64>),
}

struct Accumulator {
    reduce: RunReduce,
    argument: Arc<dyn PhysicalExpr>,
    counts: Vec<u64>,
    states: States,
}

impl Accumulator {
    fn grow(&mut self) {
        self.counts.push(0);
        match &mut self.states {
            States::Counts => {}
            States::Ints(v) => v.push(self.reduce.initial_i64()),
            States::Floats(v) => v.push(self.reduce.initial_f64()),
        }
    }

    /// Folds `values[rows]` into bucket `slot`, in row order.
    fn fold(&mut self, values: &ArrayRef, rows: Range<usize>, slot: usize) {
        let folded_count = match &mut self.states {
            States::Counts => {
                let nulls = values
                    .logical_nulls()
                    .map_or(0, |n| n.slice(rows.start, rows.len()).null_count());
                (rows.len() - nulls) as u64
            }
            States::Ints(states) => {
                let folded =
                    self.reduce
                        .fold_i64(values.as_primitive::<Int64Type>(), rows, states[slot]);
                folded.map_or(0, |(n, v)| {
                    states[slot] = v;
                    n
                })
            }
            States::Floats(states) => {
                let folded =
                    self.reduce
                        .fold_f64(values.as_primitive::<Float64Type>(), rows, states[slot]);
                folded.map_or(0, |(n, v)| {
                    states[slot] = v;
                    n
                })
            }
        };
        self.counts[slot] += folded_count;
    }

    /// The final values, bucket by bucket.
    fn finish(self, order: &[usize]) -> ArrayRef {
        let counts = self.counts;
        let seen = |slot: usize| counts[slot] > 0;
        match (self.reduce, self.states) {
            (_, States::Counts) => Arc::new(
                order
                    .iter()
                    .map(|&s| counts[s] as i64)
                    .collect::<Int64Array>(),
            ),
            (_, States::Ints(v)) => Arc::new(
                order
                    .iter()
                    .map(|&s| seen(s).then(|| v[s]))
                    .collect::<Int64Array>(),
            ),
            (RunReduce::Avg, States::Floats(v)) => Arc::new(
                order
                    .iter()
                    .map(|&s| seen(s).then(|| v[s] / counts[s] as f64))
                    .collect::<Float64Array>(),
            ),
            (_, States::Floats(v)) => Arc::new(
                order
                    .iter()
                    .map(|&s| seen(s).then(|| v[s]))
                    .collect::<Float64Array>(),
            ),
        }
    }
}

/// An aggregate by bucket (or over everything), folded batch by batch.
struct Folder {
    key: Option<GroupKey>,
    accumulators: Vec<Accumulator>,
    /// Bucket start → slot.
    slots: HashMap<i64, usize>,
    /// Slot → bucket start.
    buckets: Vec<i64>,
    schema: SchemaRef,
}

impl Folder {
    /// The folder of `aggregate`, or `None` when it computes something not handled here.
    fn of(aggregate: &Aggregate, state: &SessionState) -> Result<Option<Self>> {
        let input = aggregate.input.schema();
        let schema = Arc::clone(aggregate.schema.inner());
        let key = match aggregate.group_expr.as_slice() {
            [] => None,
            [expr] => {
                let expr = state.create_physical_expr(expr.clone(), input)?;
                match GroupKey::date_bin(&expr) {
                    Some(key) => Some(key),
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        let first_value = aggregate.group_expr.len();
        let mut accumulators = Vec::new();
        for (i, expr) in aggregate.aggr_expr.iter().enumerate() {
            let expr = match expr {
                Expr::Alias(alias) => alias.expr.as_ref(),
                e => e,
            };
            let Expr::AggregateFunction(function) = expr else {
                return Ok(None);
            };
            let params = &function.params;
            if params.distinct || params.filter.is_some() || !params.order_by.is_empty() {
                return Ok(None);
            }
            let [argument] = params.args.as_slice() else {
                return Ok(None);
            };
            let Some(reduce) = RunReduce::named(function.func.name()) else {
                return Ok(None);
            };
            let argument = state.create_physical_expr(argument.clone(), input)?;
            let input_type = argument.data_type(input.as_arrow())?;
            let output_type = schema.field(first_value + i).data_type();
            let states = match (reduce, &input_type, output_type) {
                (RunReduce::Count, _, DataType::Int64) => States::Counts,
                (
                    RunReduce::Sum | RunReduce::Min | RunReduce::Max,
                    DataType::Int64,
                    DataType::Int64,
                ) => States::Ints(Vec::new()),
                (
                    RunReduce::Sum | RunReduce::Min | RunReduce::Max | RunReduce::Avg,
                    DataType::Float64,
                    DataType::Float64,
                ) => States::Floats(Vec::new()),
                _ => return Ok(None),
            };
            accumulators.push(Accumulator {
                reduce,
                argument,
                counts: Vec::new(),
                states,
            });
        }
        let mut folder = Self {
            key,
            accumulators,
            slots: HashMap::new(),
            buckets: Vec::new(),
            schema,
        };
        if folder.key.is_none() {
            // Without GROUP BY there is one row, whatever the input.
            folder.slot(0);
        }
        Ok(Some(folder))
    }

    fn slot(&mut self, bucket: i64) -> usize {
        if let Some(&slot) = self.slots.get(&bucket) {
            return slot;
        }
        let slot = self.buckets.len();
        self.slots.insert(bucket, slot);
        self.buckets.push(bucket);
        for a in &mut self.accumulators {
            a.grow();
        }
        slot
    }

    fn fold(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let arguments = self
            .accumulators
            .iter()
            .map(|a| a.argument.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        // Runs of rows in one bucket (rows come sorted by series then time).
        let runs: Vec<(Range<usize>, i64)> = match &self.key {
            None => vec![(0..rows, 0)],
            Some(key) => {
                let keys = key.evaluate(batch)?;
                let keys = keys
                    .as_primitive_opt::<TimestampNanosecondType>()
                    .ok_or_else(|| DataFusionError::Internal("a bucket not a timestamp".into()))?;
                if keys.null_count() > 0 {
                    return Err(DataFusionError::NotImplemented("a null bucket".into()));
                }
                let keys = keys.values();
                let mut runs = Vec::new();
                let mut start = 0;
                for i in 1..=rows {
                    if i == rows || keys[i] != keys[start] {
                        runs.push((start..i, keys[start]));
                        start = i;
                    }
                }
                runs
            }
        };
        for (range, bucket) in runs {
            let slot = self.slot(bucket);
            for (accumulator, values) in self.accumulators.iter_mut().zip(&arguments) {
                accumulator.fold(values, range.clone(), slot);
            }
        }
        Ok(())
    }

    /// One row per bucket, buckets in ascending order.
    fn finish(self) -> Result<RecordBatch> {
        let mut order: Vec<usize> = (0..self.buckets.len()).collect();
        order.sort_by_key(|&s| self.buckets[s]);
        let mut columns: Vec<ArrayRef> = Vec::new();
        if self.key.is_some() {
            let tz = match self.schema.field(0).data_type() {
                DataType::Timestamp(_, tz) => tz.clone(),
                other => {
                    return Err(DataFusionError::Internal(format!(
                        "a bucket of type {other}"
                    )))
                }
            };
            columns.push(Arc::new(
                TimestampNanosecondArray::from(
                    order.iter().map(|&s| self.buckets[s]).collect::<Vec<_>>(),
                )
                .with_timezone_opt(tz),
            ));
        }
        for accumulator in self.accumulators {
            columns.push(accumulator.finish(&order));
        }
        batch_of(&self.schema, columns, order.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ranges_by_row_group` with ranges as `(start, end)` pairs.
    fn cut(group_rows: &[u64], ranges: &[(u64, u64)]) -> Vec<(usize, Vec<(usize, usize)>)> {
        let ranges: Vec<Range<u64>> = ranges.iter().map(|&(s, e)| s..e).collect();
        ranges_by_row_group(group_rows, &ranges)
            .into_iter()
            .map(|(g, inside)| (g, inside.iter().map(|r| (r.start, r.end)).collect()))
            .collect()
    }

    #[test]
    fn columns_read_apart_are_zipped_back_in_order() {
        use arrow::datatypes::{Field, Schema};
        let schema = Arc::new(Schema::new(
            (0..5)
                .map(|i| Field::new(format!("c{i}"), DataType::Int64, false))
                .collect::<Vec<_>>(),
        ));
        let batch = |columns: &[usize], values: &[i64]| {
            let schema = Arc::new(schema.project(columns).unwrap());
            let arrays = columns
                .iter()
                .map(|&c| {
                    Arc::new(Int64Array::from_iter_values(
                        values.iter().map(|v| v * 10 + c as i64),
                    )) as ArrayRef
                })
                .collect();
            RecordBatch::try_new(schema, arrays).unwrap()
        };
        // Two parts: columns 0, 2, 4 and 1, 3; two batches of 2 and 1 rows.
        let parts = vec![
            vec![batch(&[0, 2, 4], &[1, 2]), batch(&[0, 2, 4], &[3])],
            vec![batch(&[1, 3], &[1, 2]), batch(&[1, 3], &[3])],
        ];
        let zipped = zip_columns(&schema, 2, parts).unwrap();
        assert_eq!(
            zipped,
            vec![
                batch(&[0, 1, 2, 3, 4], &[1, 2]),
                batch(&[0, 1, 2, 3, 4], &[3])
            ]
        );
        // Parts out of step are refused, not zipped wrongly.
        let parts = vec![vec![batch(&[0, 2, 4], &[1, 2])], vec![batch(&[1, 3], &[1])]];
        assert!(zip_columns(&schema, 2, parts).is_err());
    }

    #[test]
    fn selected_rows_are_cut_at_row_group_boundaries() {
        // Three row groups of 10 rows; rows 12..15 lie in the 2nd, 25..32 in the 3rd (cut
        // at the file's end) and 8..12 across the 1st and 2nd.
        let groups = [10, 10, 10];
        assert_eq!(
            cut(&groups, &[(12, 15), (25, 32)]),
            vec![(1, vec![(2, 5)]), (2, vec![(5, 10)])]
        );
        assert_eq!(
            cut(&groups, &[(8, 12)]),
            vec![(0, vec![(8, 10)]), (1, vec![(0, 2)])]
        );
        assert_eq!(cut(&groups, &[(0, 10)]), vec![(0, vec![(0, 10)])]);
        assert!(cut(&[10], &[]).is_empty());
    }
}
