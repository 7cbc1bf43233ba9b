//! "The newest row of every group" without sorting every row.
//!
//! `row_number() OVER (PARTITION BY k ORDER BY time DESC)` filtered to `rn = 1` is how SQL
//! (and Gnomon's InfluxQL planner, for `ORDER BY time DESC LIMIT 1` per series) asks for the
//! last point of each series. DataFusion plans it as a sort of the whole input by `k, time`
//! followed by the window: O(n log n) and every row held in memory. [`TopOnePerPartition`]
//! is a physical optimizer rule that swaps that sort and window for [`TopOneExec`], which
//! keeps, per partition key, only the best row seen so far (one hash lookup per row), then
//! emits the winners in the sort's order with `rn = 1`. The filter above stays, so the
//! result is the same rows; only the rows that could never pass it are never kept.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::compute::{interleave_record_batch, lexsort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{internal_err, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::physical_expr::window::StandardWindowExpr;
use datafusion::physical_expr::{
    EquivalenceProperties, LexOrdering, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::metrics::Time;
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowUDFExpr};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::StreamExt;

use crate::newest_first::NewestFirst;

/// The optimizer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct TopOnePerPartition;

impl PhysicalOptimizerRule for TopOnePerPartition {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| match rewrite(&node)? {
            Some(new) => Ok(Transformed::yes(new)),
            None => Ok(Transformed::no(node)),
        })
        .data()
    }

    fn name(&self) -> &str {
        "top_one_per_partition"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `Filter(rn = 1) ← BoundedWindowAgg(row_number) ← Sort ← input` becomes
/// `Filter(rn = 1) ← TopOne ← input`.
fn rewrite(node: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(filter) = node.downcast_ref::<FilterExec>() else {
        return Ok(None);
    };
    let Some(window) = filter.input().downcast_ref::<BoundedWindowAggExec>() else {
        return Ok(None);
    };
    let [window_expr] = window.window_expr() else {
        return Ok(None);
    };
    if !is_row_number(window_expr.as_any()) || window_expr.partition_by().is_empty() {
        return Ok(None);
    }
    let rn_index = window.schema().fields().len() - 1;
    if !keeps_only_first(filter.predicate(), rn_index) {
        return Ok(None);
    }
    let Some(sort) = window.input().downcast_ref::<SortExec>() else {
        return Ok(None);
    };
    if sort.fetch().is_some() {
        return Ok(None);
    }
    let mut input = Arc::clone(sort.input());
    if !sort.preserve_partitioning() && input.output_partitioning().partition_count() > 1 {
        input = Arc::new(CoalescePartitionsExec::new(input));
    }
    let newest_first =
        newest_first_source(&input, window_expr.partition_by(), window_expr.order_by());
    let mut top = TopOneExec::try_new(
        input,
        window_expr.partition_by().to_vec(),
        window_expr.order_by().to_vec(),
        sort.expr().clone(),
        window.schema(),
    )?;
    top.newest_first = newest_first;
    let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
    Ok(Some(
        Arc::clone(node).replace_children(vec![Arc::new(top)], options)?,
    ))
}

/// The scan under `input` when the key is one tag and the order `time DESC`: then the
/// newest rows can be found without reading the others (see [`NewestFirst`]).
fn newest_first_source(
    input: &Arc<dyn ExecutionPlan>,
    partition_by: &[Arc<dyn PhysicalExpr>],
    order_by: &[PhysicalSortExpr],
) -> Option<NewestFirst> {
    let [key] = partition_by else { return None };
    let [order] = order_by else { return None };
    let key = key.downcast_ref::<Column>()?;
    let time = order.expr.downcast_ref::<Column>()?;
    let schema = input.schema();
    let is_tag = matches!(
        schema.field(key.index()).data_type(),
        arrow::datatypes::DataType::Dictionary(..)
    );
    let is_time = schema.field(time.index()).name() == "time"
        && matches!(
            schema.field(time.index()).data_type(),
            arrow::datatypes::DataType::Timestamp(..)
        );
    if !is_tag || !is_time || !order.options.descending {
        return None;
    }
    NewestFirst::find(input, schema.field(key.index()).name())
}

fn is_row_number(window_expr: &dyn Any) -> bool {
    window_expr
        .downcast_ref::<StandardWindowExpr>()
        .and_then(|e| {
            e.get_standard_func_expr()
                .as_any()
                .downcast_ref::<WindowUDFExpr>()
        })
        .is_some_and(|f| f.fun().name() == "row_number")
}

/// True when `predicate` is a conjunction with a term that only row number 1 satisfies
/// (`rn = 1`, `rn <= 1`, `rn < 2`).
fn keeps_only_first(predicate: &Arc<dyn PhysicalExpr>, rn_index: usize) -> bool {
    let Some(binary) = predicate.downcast_ref::<BinaryExpr>() else {
        return false;
    };
    if *binary.op() == Operator::And {
        return keeps_only_first(binary.left(), rn_index)
            || keeps_only_first(binary.right(), rn_index);
    }
    let is_rn = binary
        .left()
        .downcast_ref::<Column>()
        .is_some_and(|c| c.index() == rn_index);
    let value = binary
        .right()
        .downcast_ref::<Literal>()
        .and_then(|l| l.value().cast_to(&arrow::datatypes::DataType::Int64).ok());
    let Some(ScalarValue::Int64(Some(v))) = value else {
        return false;
    };
    is_rn
        && matches!(
            (binary.op(), v),
            (Operator::Eq, 1) | (Operator::LtEq, 1) | (Operator::Lt, 2)
        )
}

/// Keeps the first row, in `order_by` order, of every `partition_by` group of each input
/// partition, and emits them sorted by `output_order` with a row number column of ones.
#[derive(Debug)]
pub struct TopOneExec {
    input: Arc<dyn ExecutionPlan>,
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    order_by: Vec<PhysicalSortExpr>,
    output_order: LexOrdering,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// Set when the input is a scan that can be read newest first: `execute` then reads
    /// the candidates from it (once, shared by the partitions) instead of the input.
    newest_first: Option<NewestFirst>,
    candidates: Arc<tokio::sync::OnceCell<Arc<Vec<RecordBatch>>>>,
}

impl TopOneExec {
    fn try_new(
        input: Arc<dyn ExecutionPlan>,
        partition_by: Vec<Arc<dyn PhysicalExpr>>,
        order_by: Vec<PhysicalSortExpr>,
        output_order: LexOrdering,
        schema: SchemaRef,
    ) -> Result<Self> {
        let partitioning = match input.output_partitioning() {
            p @ Partitioning::Hash(..) => p.clone(),
            p => Partitioning::UnknownPartitioning(p.partition_count()),
        };
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new_with_orderings(
                Arc::clone(&schema),
                [output_order.iter().cloned().collect::<Vec<_>>()],
            ),
            partitioning,
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self {
            input,
            partition_by,
            order_by,
            output_order,
            schema,
            properties,
            newest_first: None,
            candidates: Default::default(),
        })
    }
}

impl DisplayAs for TopOneExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let keys: Vec<String> = self.partition_by.iter().map(|e| e.to_string()).collect();
        let order: Vec<String> = self.order_by.iter().map(|e| e.to_string()).collect();
        write!(
            f,
            "TopOneExec: partition_by=[{}], order_by=[{}]{}",
            keys.join(", "),
            order.join(", "),
            if self.newest_first.is_some() {
                ", newest_first"
            } else {
                ""
            }
        )
    }
}

impl ExecutionPlan for TopOneExec {
    fn name(&self) -> &str {
        "TopOneExec"
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
        for e in &self.partition_by {
            if f(e)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        for e in &self.order_by {
            if f(&e.expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = crate::only_child(children, "TopOneExec")?;
        let mut top = TopOneExec::try_new(
            input,
            self.partition_by.clone(),
            self.order_by.clone(),
            self.output_order.clone(),
            Arc::clone(&self.schema),
        )?;
        top.newest_first = self
            .newest_first
            .as_ref()
            .and_then(|_| newest_first_source(&top.input, &top.partition_by, &top.order_by));
        Ok(Arc::new(top))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition >= self.properties.partitioning.partition_count() {
            return internal_err!("TopOneExec has no partition {partition}");
        }
        let mut best = Winners::new(&self.partition_by, &self.order_by, &self.input.schema())?;
        let output_order = self.output_order.clone();
        let schema = Arc::clone(&self.schema);
        let out_schema = Arc::clone(&schema);
        let stream = if let Some(newest_first) = self.newest_first.clone() {
            let shared = Arc::clone(&self.candidates);
            let partitioning = self.properties.partitioning.clone();
            futures::stream::once(async move {
                let all = shared
                    .get_or_try_init(|| async {
                        newest_first.candidates(context).await.map(Arc::new)
                    })
                    .await?;
                // The candidates are shared; each partition keeps the keys it is declared
                // to hold, as the repartitioning it replaces would have sent them.
                match partitioning {
                    Partitioning::Hash(exprs, n) => {
                        let mut partitioner =
                            BatchPartitioner::new_hash_partitioner(exprs, n, Time::new())?;
                        for batch in all.iter() {
                            partitioner.partition(batch.clone(), |p, rows| {
                                if p == partition {
                                    best.offer(&rows)?;
                                }
                                Ok(())
                            })?;
                        }
                    }
                    _ if partition == 0 => {
                        for batch in all.iter() {
                            best.offer(batch)?;
                        }
                    }
                    _ => {}
                }
                best.finish(&output_order, &out_schema)
            })
            .boxed()
        } else {
            let mut input = self.input.execute(partition, context)?;
            futures::stream::once(async move {
                while let Some(batch) = input.next().await {
                    best.offer(&batch?)?;
                }
                best.finish(&output_order, &out_schema)
            })
            .boxed()
        };
        let stream = stream.filter_map(|r| async move {
            match r {
                Ok(b) if b.num_rows() == 0 => None,
                other => Some(other),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// The best row per key so far. Rows are kept in small batches of the winners of each
/// input batch (at most one row per key per batch), compacted when stale rows pile up.
struct Winners {
    partition_by: Vec<Arc<dyn PhysicalExpr>>,
    order_exprs: Vec<Arc<dyn PhysicalExpr>>,
    keys: RowConverter,
    orders: RowConverter,
    /// key → (order, kept batch, row)
    best: HashMap<OwnedRow, (OwnedRow, usize, usize)>,
    kept: Vec<RecordBatch>,
    kept_rows: usize,
}

impl Winners {
    fn new(
        partition_by: &[Arc<dyn PhysicalExpr>],
        order_by: &[PhysicalSortExpr],
        schema: &SchemaRef,
    ) -> Result<Self> {
        let keys = RowConverter::new(
            partition_by
                .iter()
                .map(|e| Ok(SortField::new(e.data_type(schema)?)))
                .collect::<Result<_>>()?,
        )?;
        let orders = RowConverter::new(
            order_by
                .iter()
                .map(|e| {
                    Ok(SortField::new_with_options(
                        e.expr.data_type(schema)?,
                        e.options,
                    ))
                })
                .collect::<Result<_>>()?,
        )?;
        Ok(Self {
            partition_by: partition_by.to_vec(),
            order_exprs: order_by.iter().map(|e| Arc::clone(&e.expr)).collect(),
            keys,
            orders,
            best: HashMap::new(),
            kept: Vec::new(),
            kept_rows: 0,
        })
    }

    fn evaluate(exprs: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        exprs
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
            .collect()
    }

    fn offer(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let keys = self
            .keys
            .convert_columns(&Self::evaluate(&self.partition_by, batch)?)?;
        let orders = self
            .orders
            .convert_columns(&Self::evaluate(&self.order_exprs, batch)?)?;
        // The first row in sort order wins; among equals, the first seen (as a stable sort).
        let mut local: HashMap<arrow::row::Row<'_>, usize> = HashMap::new();
        for row in 0..batch.num_rows() {
            local
                .entry(keys.row(row))
                .and_modify(|w| {
                    if orders.row(row) < orders.row(*w) {
                        *w = row;
                    }
                })
                .or_insert(row);
        }
        let mut taken: Vec<u32> = Vec::new();
        let mut updates: Vec<(OwnedRow, OwnedRow)> = Vec::new();
        for (key, row) in local {
            let key = key.owned();
            let better = match self.best.get(&key) {
                Some((order, _, _)) => orders.row(row) < order.row(),
                None => true,
            };
            if better {
                taken.push(row as u32);
                updates.push((key, orders.row(row).owned()));
            }
        }
        if taken.is_empty() {
            return Ok(());
        }
        let indices = arrow::array::UInt32Array::from(taken);
        let winners = take_record_batch(batch, &indices)?;
        let slot = self.kept.len();
        self.kept_rows += winners.num_rows();
        self.kept.push(winners);
        for (i, (key, order)) in updates.into_iter().enumerate() {
            self.best.insert(key, (order, slot, i));
        }
        if self.kept_rows > 2 * self.best.len() + 8192 {
            self.compact()?;
        }
        Ok(())
    }

    /// One batch holding exactly the current winners.
    fn compact(&mut self) -> Result<()> {
        let positions: Vec<(usize, usize)> = self.best.values().map(|(_, b, r)| (*b, *r)).collect();
        let refs: Vec<&RecordBatch> = self.kept.iter().collect();
        let merged = interleave_record_batch(&refs, &positions)?;
        for (i, entry) in self.best.values_mut().enumerate() {
            entry.1 = 0;
            entry.2 = i;
        }
        self.kept_rows = merged.num_rows();
        self.kept = vec![merged];
        Ok(())
    }

    fn finish(mut self, output_order: &LexOrdering, schema: &SchemaRef) -> Result<RecordBatch> {
        if self.best.is_empty() {
            return Ok(RecordBatch::new_empty(Arc::clone(schema)));
        }
        self.compact()?;
        let winners = self.kept.pop().expect("compacted into one batch");
        let sort_columns = output_order
            .iter()
            .map(|e| e.evaluate_to_sort_column(&winners))
            .collect::<Result<Vec<_>>>()?;
        let sorted = take_record_batch(&winners, &lexsort_to_indices(&sort_columns, None)?)?;
        let mut columns = sorted.columns().to_vec();
        columns.push(Arc::new(UInt64Array::from(vec![1u64; sorted.num_rows()])));
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}
