//! Partial aggregation by runs: `GROUP BY` over series-sorted data without a hash table per
//! row.
//!
//! Every source a table scan reads (buffer chunks, Parquet files) is sorted by series then
//! time, so the rows of one group of `GROUP BY date_bin(…, time), host` arrive one after
//! another: a run. DataFusion's partial `AggregateExec` still looks every row up in a hash
//! table of group keys (in row format for a dictionary tag: encoding, hashing and comparing
//! each key), which is most of the time of such a query. [`RunPartialAggregate`] is a
//! physical optimizer rule that replaces a partial aggregate fed by a table scan with
//! [`RunAggregateExec`]: it evaluates the group expressions, cuts each batch into runs of
//! equal keys, and feeds DataFusion's own `GroupsAccumulator`s with the run number as the
//! group index. Its output is the partial aggregate's (group keys, then each aggregate's
//! state), one row per run; the final aggregate above merges the runs of a group however
//! they were split. Any input order gives the right answer; sorted input makes it fast.
//!
//! Only plain aggregates qualify: no grouping sets, no `DISTINCT`, no ordered aggregates
//! (`first_value(x ORDER BY …)` needs its input sorted), no group limit, and every aggregate
//! must have a groups accumulator.

use std::fmt;
use std::sync::Arc;

use arrow::array::TimestampNanosecondArray;
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, UInt32Array,
    UInt64Array,
};
use arrow::buffer::BooleanBuffer;
use arrow::compute::kernels::cmp::distinct;
use arrow::compute::take;
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, TimestampNanosecondType};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::ScalarValue;
use datafusion::common::{internal_err, Result};
use datafusion::config::ConfigOptions;
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::expressions::{CastExpr, Literal};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::StreamExt;

use crate::functions::{bin_start, fixed_stride_ns};

/// The optimizer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct RunPartialAggregate;

impl PhysicalOptimizerRule for RunPartialAggregate {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| match rewrite(&node)? {
            Some(new) => Ok(Transformed::yes(new)),
            None => Ok(Transformed::no(node)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "run_partial_aggregate"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn rewrite(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(aggregate) = node.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    let qualifies = *aggregate.mode() == AggregateMode::Partial
        && aggregate.group_expr().is_single()
        && !aggregate.group_expr().expr().is_empty()
        && aggregate.limit_options().is_none()
        && aggregate.aggr_expr().iter().all(|a| {
            !a.is_distinct() && a.order_bys().is_empty() && a.groups_accumulator_supported()
        })
        && reads_series_sorted(aggregate.input());
    if !qualifies {
        return Ok(None);
    }
    Ok(Some(Arc::new(RunAggregateExec::new(aggregate))))
}

/// True when `plan` passes on the batches of table scans as they come (filtered or
/// projected, never reordered): runs of equal series survive to the aggregate.
fn reads_series_sorted(plan: &Arc<dyn ExecutionPlan>) -> bool {
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        return reads_series_sorted(filter.input());
    }
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        return reads_series_sorted(projection.input());
    }
    if let Some(repartition) = plan.downcast_ref::<RepartitionExec>() {
        return matches!(repartition.partitioning(), Partitioning::RoundRobinBatch(_))
            && reads_series_sorted(repartition.input());
    }
    if let Some(union) = plan.downcast_ref::<UnionExec>() {
        return union.inputs().iter().all(reads_series_sorted);
    }
    plan.downcast_ref::<DataSourceExec>().is_some()
}

/// A partial aggregate that groups consecutive rows with equal keys; see the module
/// documentation.
#[derive(Debug)]
pub struct RunAggregateExec {
    input: Arc<dyn ExecutionPlan>,
    group_exprs: Vec<(Arc<dyn PhysicalExpr>, String)>,
    aggregates: Vec<Arc<AggregateFunctionExpr>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl RunAggregateExec {
    fn new(aggregate: &AggregateExec) -> Self {
        Self {
            input: Arc::clone(aggregate.input()),
            group_exprs: aggregate.group_expr().expr().to_vec(),
            aggregates: aggregate.aggr_expr().to_vec(),
            filters: aggregate.filter_expr().to_vec(),
            schema: aggregate.schema(),
            properties: Arc::clone(aggregate.properties()),
        }
    }
}

impl DisplayAs for RunAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let groups: Vec<String> = self
            .group_exprs
            .iter()
            .map(|(e, name)| format!("{e} as {name}"))
            .collect();
        let aggregates: Vec<&str> = self.aggregates.iter().map(|a| a.name()).collect();
        write!(
            f,
            "RunAggregateExec: mode=Partial, gby=[{}], aggr=[{}]",
            groups.join(", "),
            aggregates.join(", ")
        )
    }
}

impl ExecutionPlan for RunAggregateExec {
    fn name(&self) -> &str {
        "RunAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let aggregate_args = self.aggregates.iter().flat_map(|a| a.expressions());
        let filters = self.filters.iter().flatten().cloned();
        for e in self
            .group_exprs
            .iter()
            .map(|(e, _)| Arc::clone(e))
            .chain(aggregate_args)
            .chain(filters)
        {
            if f(&e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = crate::only_child(children, "RunAggregateExec")?;
        Ok(Arc::new(Self {
            input,
            group_exprs: self.group_exprs.clone(),
            aggregates: self.aggregates.clone(),
            filters: self.filters.clone(),
            schema: Arc::clone(&self.schema),
            properties: Arc::clone(&self.properties),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition >= self.properties.partitioning.partition_count() {
            return internal_err!("RunAggregateExec has no partition {partition}");
        }
        let input = self.input.execute(partition, context)?;
        let mut runs = Runs {
            group_exprs: self
                .group_exprs
                .iter()
                .map(|(e, _)| GroupKey::of(e))
                .collect(),
            arguments: self.aggregates.iter().map(|a| a.expressions()).collect(),
            filters: self.filters.clone(),
            accumulators: self
                .aggregates
                .iter()
                .map(|a| a.create_groups_accumulator())
                .collect::<Result<_>>()?,
            reductions: self
                .aggregates
                .iter()
                .zip(&self.filters)
                .map(|(a, filter)| RunReduction::of(a, filter.is_some(), &self.input.schema()))
                .collect(),
            schema: Arc::clone(&self.schema),
        };
        let stream = input
            .map(move |batch| runs.aggregate(&batch?))
            .filter(|r| futures::future::ready(!matches!(r, Ok(b) if b.num_rows() == 0)));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

/// The per-partition state of a [`RunAggregateExec`].
struct Runs {
    group_exprs: Vec<GroupKey>,
    arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// Per aggregate, the direct computation of its state from each run, where there is one.
    reductions: Vec<Option<RunReduction>>,
    schema: SchemaRef,
}

impl Runs {
    /// One output row per run of equal group keys in `batch`.
    fn aggregate(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(RecordBatch::new_empty(Arc::clone(&self.schema)));
        }
        let keys = self
            .group_exprs
            .iter()
            .map(|k| k.evaluate(batch))
            .collect::<Result<Vec<_>>>()?;
        let starts = run_starts(&keys)?;
        let first_rows = UInt32Array::from_iter_values(starts.set_indices().map(|i| i as u32));
        let runs = first_rows.len();
        // Each row's run, for the accumulators (made only if an aggregate needs it).
        let mut group_of_row: Option<Vec<usize>> = None;
        let mut columns: Vec<ArrayRef> = keys
            .iter()
            .map(|k| take(k.as_ref(), &first_rows, None))
            .collect::<std::result::Result<_, _>>()?;
        for (((accumulator, arguments), filter), reduction) in self
            .accumulators
            .iter_mut()
            .zip(&self.arguments)
            .zip(&self.filters)
            .zip(&self.reductions)
        {
            if let Some(reduction) = reduction {
                let input = reduction.input.evaluate(batch)?.into_array(rows)?;
                columns.extend(reduction.kind.states(&input, first_rows.values())?);
                continue;
            }
            let values = arguments
                .iter()
                .map(|e| e.evaluate(batch)?.into_array(rows))
                .collect::<Result<Vec<_>>>()?;
            let group_of_row =
                group_of_row.get_or_insert_with(|| run_of_each_row(first_rows.values(), rows));
            let filter = match filter {
                Some(f) => Some(f.evaluate(batch)?.into_array(rows)?),
                None => None,
            };
            let filter = filter.as_ref().map(|f| f.as_boolean());
            accumulator.update_batch(&values, group_of_row, filter, runs)?;
            columns.extend(accumulator.state(EmitTo::All)?);
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// An aggregate whose partial state per run is computed here, straight from the run's
/// values, instead of by feeding every row and its run number to the groups accumulator
/// (whose per-row update was a quarter of `avg(…) GROUP BY date_bin(…), host`). The states
/// are those DataFusion's accumulators emit, value for value: `avg` is (count, sum), null
/// for a run without values; `sum`, `min`, `max` are null for a run without values; `count`
/// is never null. Sums add in row order, as the accumulators do, so floats round alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunReduce {
    Avg,
    Sum,
    Min,
    Max,
    Count,
}

/// The run reduction of one aggregate: what it computes, and over which expression.
#[derive(Debug)]
struct RunReduction {
    kind: RunReduce,
    /// The aggregate's argument, or for `avg` of an integer column the integers themselves
    /// (`v as f64` per value is the cast the argument would do).
    input: Arc<dyn PhysicalExpr>,
}

impl RunReduction {
    /// The reduction for `aggregate`, if it is a plain one (no `FILTER`, no `DISTINCT`, one
    /// argument) whose state has the layout of [`RunReduce`] and whose input is of a type
    /// handled there.
    fn of(
        aggregate: &AggregateFunctionExpr,
        filtered: bool,
        schema: &arrow::datatypes::Schema,
    ) -> Option<Self> {
        let [argument] = aggregate.expressions().try_into().ok()?;
        if filtered || aggregate.is_distinct() {
            return None;
        }
        let kind = RunReduce::named(aggregate.fun().name())?;
        let state: Vec<DataType> = aggregate
            .state_fields()
            .ok()?
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let layout_ok = match kind {
            RunReduce::Avg => state == [DataType::UInt64, DataType::Float64],
            RunReduce::Sum | RunReduce::Min | RunReduce::Max => {
                state == [DataType::Float64] || state == [DataType::Int64]
            }
            RunReduce::Count => state == [DataType::Int64],
        };
        let input = match kind {
            RunReduce::Avg => integer_cast_to_float(&argument, schema).unwrap_or(argument),
            _ => argument,
        };
        let input_type = input.data_type(schema).ok()?;
        let handled = match kind {
            RunReduce::Count => true,
            // The state has the argument's type, so the input is a float for a float state.
            _ => matches!(input_type, DataType::Float64 | DataType::Int64),
        };
        (layout_ok && handled).then_some(Self { kind, input })
    }
}

impl RunReduce {
    /// The reduction of the aggregate function called `name`, if it is one.
    pub(crate) fn named(name: &str) -> Option<Self> {
        Some(match name {
            "avg" => Self::Avg,
            "sum" => Self::Sum,
            "min" => Self::Min,
            "max" => Self::Max,
            "count" => Self::Count,
            _ => return None,
        })
    }

    /// The integer state before any value: DataFusion's accumulators start `min` and `max`
    /// at the extreme values, sums at 0.
    pub(crate) fn initial_i64(self) -> i64 {
        match self {
            Self::Min => i64::MAX,
            Self::Max => i64::MIN,
            _ => 0,
        }
    }

    /// The float state before any value: `min` and `max` start at the extreme *finite*
    /// values, as in DataFusion's accumulators; sums at 0.
    pub(crate) fn initial_f64(self) -> f64 {
        match self {
            Self::Min => f64::MAX,
            Self::Max => f64::MIN,
            _ => 0.0,
        }
    }

    /// Folds the non-null `values[rows]` into `state` in row order (`sum` wrapping, as
    /// DataFusion's): their number and the new state, `None` when there are none.
    pub(crate) fn fold_i64(
        self,
        values: &Int64Array,
        rows: std::ops::Range<usize>,
        state: i64,
    ) -> Option<(u64, i64)> {
        match self {
            Self::Min => run_fold(values, rows, state, i64::min),
            Self::Max => run_fold(values, rows, state, i64::max),
            _ => run_fold(values, rows, state, i64::wrapping_add),
        }
    }

    /// [`RunReduce::fold_i64`] for floats, with DataFusion's update rule for `min` and
    /// `max`: NaN replaces the current value.
    pub(crate) fn fold_f64(
        self,
        values: &Float64Array,
        rows: std::ops::Range<usize>,
        state: f64,
    ) -> Option<(u64, f64)> {
        use std::cmp::Ordering::{self, Greater, Less};
        // The new value wins when it compares as `wins` with the current one, or is NaN.
        let keep = |wins: Ordering| {
            move |cur: f64, new: f64| match new.partial_cmp(&cur) {
                Some(order) if order != wins => cur,
                _ => new,
            }
        };
        match self {
            Self::Min => run_fold(values, rows, state, keep(Less)),
            Self::Max => run_fold(values, rows, state, keep(Greater)),
            _ => run_fold(values, rows, state, |a, v| a + v),
        }
    }

    /// The state columns of the runs starting at `first_rows` over `values` (of a type
    /// [`RunReduction::of`] accepted).
    fn states(self, values: &ArrayRef, first_rows: &[u32]) -> Result<Vec<ArrayRef>> {
        let bounds = || {
            first_rows.iter().enumerate().map(|(i, &start)| {
                let end = first_rows
                    .get(i + 1)
                    .map_or(values.len(), |&next| next as usize);
                start as usize..end
            })
        };
        let avg = |runs: Vec<Option<(u64, f64)>>| -> Vec<ArrayRef> {
            let counts: UInt64Array = runs.iter().map(|run| run.map(|(n, _)| n)).collect();
            let sums: Float64Array = runs.iter().map(|run| run.map(|(_, sum)| sum)).collect();
            vec![Arc::new(counts), Arc::new(sums)]
        };
        Ok(match (self, values.data_type()) {
            (Self::Count, _) => {
                let counts: Int64Array = bounds()
                    .map(|r| {
                        let nulls = values
                            .nulls()
                            .map_or(0, |n| n.slice(r.start, r.len()).null_count());
                        Some((r.len() - nulls) as i64)
                    })
                    .collect();
                vec![Arc::new(counts)]
            }
            (Self::Avg, DataType::Float64) => {
                let values = values.as_primitive::<Float64Type>();
                avg(bounds().map(|r| self.fold_f64(values, r, 0.0)).collect())
            }
            (Self::Avg, DataType::Int64) => {
                let values = values.as_primitive::<Int64Type>();
                avg(bounds()
                    .map(|r| run_fold(values, r, 0.0, |a, v| a + v as f64))
                    .collect())
            }
            (Self::Sum | Self::Min | Self::Max, DataType::Float64) => {
                let values = values.as_primitive::<Float64Type>();
                vec![Arc::new(
                    bounds()
                        .map(|r| self.fold_f64(values, r, self.initial_f64()).map(|(_, v)| v))
                        .collect::<Float64Array>(),
                )]
            }
            (Self::Sum | Self::Min | Self::Max, DataType::Int64) => {
                let values = values.as_primitive::<Int64Type>();
                vec![Arc::new(
                    bounds()
                        .map(|r| self.fold_i64(values, r, self.initial_i64()).map(|(_, v)| v))
                        .collect::<Int64Array>(),
                )]
            }
            (kind, other) => {
                return internal_err!("no run reduction {kind:?} over {other}");
            }
        })
    }
}

/// The `Int64` expression `argument` casts to `Float64`, if it is such a cast.
fn integer_cast_to_float(
    argument: &Arc<dyn PhysicalExpr>,
    schema: &arrow::datatypes::Schema,
) -> Option<Arc<dyn PhysicalExpr>> {
    let cast = argument.downcast_ref::<CastExpr>()?;
    let from_integers = matches!(cast.expr().data_type(schema), Ok(DataType::Int64));
    (from_integers && cast.cast_type() == &DataType::Float64).then(|| Arc::clone(cast.expr()))
}

/// Each row's run, from the runs' first rows (for the groups accumulators).
fn run_of_each_row(first_rows: &[u32], rows: usize) -> Vec<usize> {
    let mut group_of_row = vec![0usize; rows];
    for (run, &start) in first_rows.iter().enumerate() {
        let end = first_rows.get(run + 1).map_or(rows, |&next| next as usize);
        group_of_row[start as usize..end].fill(run);
    }
    group_of_row
}

/// Folds the non-null values of `values[rows]` in row order into `init`: their number and
/// the result, or `None` when there are none.
fn run_fold<T: arrow::datatypes::ArrowPrimitiveType, A>(
    values: &arrow::array::PrimitiveArray<T>,
    rows: std::ops::Range<usize>,
    init: A,
    f: impl Fn(A, T::Native) -> A,
) -> Option<(u64, A)> {
    let slice = &values.values()[rows.clone()];
    let (count, result) = match values.nulls() {
        None => (slice.len() as u64, slice.iter().fold(init, |a, &v| f(a, v))),
        Some(nulls) => slice
            .iter()
            .zip(rows)
            .filter(|(_, i)| nulls.is_valid(*i))
            .fold((0u64, init), |(n, a), (&v, _)| (n + 1, f(a, v))),
    };
    (count > 0).then_some((count, result))
}

/// A group expression, with a fast path for `date_bin` by a fixed interval: DataFusion's
/// kernel does checked 64-bit division for every row, which was a sixth of a
/// `GROUP BY date_bin(…), host` query; sorted times mostly stay in the last row's bin.
pub(crate) enum GroupKey {
    Expr(Arc<dyn PhysicalExpr>),
    DateBin {
        stride: i64,
        origin: i64,
        time: Arc<dyn PhysicalExpr>,
        /// The expression itself, for the batches the fast path cannot take (overflow).
        full: Arc<dyn PhysicalExpr>,
    },
}

impl GroupKey {
    fn of(expr: &Arc<dyn PhysicalExpr>) -> Self {
        Self::date_bin(expr).unwrap_or_else(|| Self::Expr(Arc::clone(expr)))
    }

    /// `date_bin(<fixed-length interval>, time[, origin])` on a nanosecond timestamp.
    pub(crate) fn date_bin(expr: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        let function = expr.downcast_ref::<ScalarFunctionExpr>()?;
        if function.name() != "date_bin" {
            return None;
        }
        let args = function.args();
        let stride = fixed_stride_ns(args.first()?.downcast_ref::<Literal>()?.value())?;
        let origin = match args.get(2) {
            None => 0,
            Some(origin) => match origin.downcast_ref::<Literal>()?.value() {
                ScalarValue::TimestampNanosecond(Some(ns), _) => *ns,
                _ => return None,
            },
        };
        let time = Arc::clone(args.get(1)?);
        (stride > 0 && args.len() <= 3).then(|| Self::DateBin {
            stride,
            origin,
            time,
            full: Arc::clone(expr),
        })
    }

    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let rows = batch.num_rows();
        match self {
            Self::Expr(e) => e.evaluate(batch)?.into_array(rows),
            Self::DateBin {
                stride,
                origin,
                time,
                full,
            } => {
                let times = time.evaluate(batch)?.into_array(rows)?;
                let fast = times
                    .as_primitive_opt::<TimestampNanosecondType>()
                    .and_then(|t| bins(t, *stride, *origin));
                match fast {
                    Some(bins) => Ok(Arc::new(bins)),
                    None => full.evaluate(batch)?.into_array(rows),
                }
            }
        }
    }
}

/// `origin + floor((t - origin) / stride) * stride` for every time (as DataFusion's
/// `date_bin`); `None` on overflow.
fn bins(
    times: &TimestampNanosecondArray,
    stride: i64,
    origin: i64,
) -> Option<TimestampNanosecondArray> {
    let (mut start, mut end) = (i64::MAX, i64::MIN);
    let mut out = Vec::with_capacity(times.len());
    for &t in times.values().iter() {
        if !(start <= t && t < end) {
            start = bin_start(t, stride, origin)?;
            end = start.checked_add(stride).unwrap_or(i64::MAX);
        }
        out.push(start);
    }
    let tz = match times.data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    Some(TimestampNanosecondArray::new(out.into(), times.nulls().cloned()).with_timezone_opt(tz))
}

/// Row `i` starts a run when some key differs from row `i - 1` (nulls equal to nulls, as
/// in `GROUP BY`). Dictionary keys are compared by key: equal keys mean equal values, and
/// equal values under two keys only cost an extra run.
fn run_starts(keys: &[ArrayRef]) -> Result<BooleanBuffer> {
    let rows = keys.first().map_or(0, |k| k.len());
    let mut starts: Option<BooleanArray> = None;
    for key in keys {
        let key = match key.data_type() {
            DataType::Dictionary(..) => dictionary_keys(key),
            _ => Arc::clone(key),
        };
        let changed = distinct(&key.slice(1, rows - 1), &key.slice(0, rows - 1))?;
        starts = Some(match starts {
            None => changed,
            Some(before) => arrow::compute::or(&before, &changed)?,
        });
    }
    let mut out = arrow::array::BooleanBufferBuilder::new(rows);
    out.append(true);
    if let Some(changed) = starts {
        // `distinct` never yields null.
        out.append_buffer(changed.values());
    }
    Ok(out.finish())
}

fn dictionary_keys(array: &ArrayRef) -> ArrayRef {
    use arrow::datatypes::*;
    macro_rules! keys {
        ($($t:ty),*) => {
            $(if let Some(d) = array.as_dictionary_opt::<$t>() {
                return Arc::new(d.keys().clone());
            })*
        };
    }
    keys!(Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type);
    Arc::clone(array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Int64Array};
    use arrow::datatypes::Int32Type;

    #[test]
    fn bins_match_date_bin_before_and_after_the_origin() {
        let times = TimestampNanosecondArray::from(vec![
            Some(-7),
            Some(-5),
            None,
            Some(0),
            Some(4),
            Some(5),
            Some(9),
            Some(3),
        ]);
        let got: Vec<Option<i64>> = bins(&times, 5, 0).unwrap().iter().collect();
        let want = [-10, -5, 0, 0, 0, 5, 5, 0].map(Some);
        let want: Vec<Option<i64>> = want
            .iter()
            .enumerate()
            .map(|(i, v)| if i == 2 { None } else { *v })
            .collect();
        assert_eq!(got, want);
        // With an origin of 2, bins start at ..., -8, -3, 2, 7, ...
        let got: Vec<Option<i64>> = bins(&times, 5, 2).unwrap().iter().collect();
        let want: Vec<Option<i64>> = vec![
            Some(-8),
            Some(-8),
            None,
            Some(-3),
            Some(2),
            Some(2),
            Some(7),
            Some(2),
        ];
        assert_eq!(got, want);
        // Overflow: the caller falls back to DataFusion's kernel (and its error).
        assert!(bins(&TimestampNanosecondArray::from(vec![i64::MIN]), 5, 10).is_none());
    }

    #[test]
    fn runs_start_where_any_key_changes_and_nulls_group_together() {
        let host: DictionaryArray<Int32Type> =
            vec![Some("a"), Some("a"), Some("a"), None, None, Some("b")]
                .into_iter()
                .collect();
        let bucket = Int64Array::from(vec![1, 1, 2, 2, 2, 2]);
        let starts = run_starts(&[Arc::new(host), Arc::new(bucket)]).unwrap();
        let starts: Vec<bool> = starts.iter().collect();
        assert_eq!(starts, vec![true, false, true, true, false, true]);
    }
}
