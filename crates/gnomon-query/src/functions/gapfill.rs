//! Gap filling: `date_bin_gapfill`, `locf` and `interpolate`, as in InfluxDB 3 Core.
//!
//! ```sql
//! SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute, host, locf(avg(usage))
//! FROM cpu WHERE time >= '2024-01-01T00:00:00Z' AND time < '2024-01-01T01:00:00Z'
//! GROUP BY minute, host
//! ```
//!
//! returns one row per host and minute of the range, even for minutes without data: their
//! aggregate is null, the last value before (`locf`), or a straight line between the values
//! around them (`interpolate`).
//!
//! How: the three functions are placeholders that SQL planning resolves. The analyzer rule
//! [`HandleGapFill`] then turns the aggregate that groups by `date_bin_gapfill(..)` into a
//! plain `date_bin(..)` aggregate under a [`GapFill`] node, and strips `locf`/`interpolate`
//! from the projection above it, remembering them as that node's fill strategies. The physical
//! planner ([`GapFillPlanner`]) makes the node a [`GapFillExec`], which sorts the aggregated
//! rows by group and time and emits every bucket of the query's time range.
//!
//! The range comes from the query's `WHERE` bounds on the time column; a query without both
//! bounds is refused, since filling an unbounded range has no answer.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, RecordBatch, RecordBatchOptions,
    TimestampNanosecondArray, UInt32Array,
};
use arrow::compute::kernels::partition::partition;
use arrow::compute::{cast, concat_batches, lexsort_to_indices, take, SortColumn};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    exec_err, internal_err, plan_err, Column, DFSchema, DFSchemaRef, Result, ScalarValue,
    TableReference,
};
use datafusion::config::ConfigOptions;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, ColumnarValue, Expr, Extension, LogicalPlan, Operator, Projection,
    ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    UserDefinedLogicalNode, UserDefinedLogicalNodeCore, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, PlanProperties,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::{StreamExt, TryStreamExt};

const DATE_BIN_GAPFILL: &str = "date_bin_gapfill";
const LOCF: &str = "locf";
const INTERPOLATE: &str = "interpolate";

/// Most rows one series may be filled to: a 1 ns interval over a day must fail with advice,
/// not take the server's memory.
const MAX_BUCKETS: i64 = 10_000_000;

/// The placeholder UDFs.
pub fn functions() -> Vec<ScalarUDF> {
    let date_bin = datafusion::functions::datetime::date_bin();
    vec![
        ScalarUDF::from(DateBinGapFill {
            signature: date_bin.signature().clone(),
            date_bin,
        }),
        ScalarUDF::from(FillFunction::new(LOCF)),
        ScalarUDF::from(FillFunction::new(INTERPOLATE)),
    ]
}

/// `date_bin_gapfill(stride, time[, origin])`: typed like `date_bin`, only valid as a group key.
#[derive(Debug)]
struct DateBinGapFill {
    signature: Signature,
    date_bin: Arc<ScalarUDF>,
}

impl PartialEq for DateBinGapFill {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for DateBinGapFill {}
impl Hash for DateBinGapFill {
    fn hash<H: Hasher>(&self, state: &mut H) {
        DATE_BIN_GAPFILL.hash(state)
    }
}

impl ScalarUDFImpl for DateBinGapFill {
    fn name(&self) -> &str {
        DATE_BIN_GAPFILL
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.date_bin.coerce_types(arg_types)
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.date_bin.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<arrow::datatypes::FieldRef> {
        self.date_bin.return_field_from_args(args)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!(
            "date_bin_gapfill can only be used as a GROUP BY key of a query with lower and upper bounds on time"
        )
    }
}

/// `locf(aggregate)` and `interpolate(aggregate)`: markers, only valid around an aggregate of
/// a `date_bin_gapfill` query.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FillFunction {
    name: &'static str,
    signature: Signature,
}

impl FillFunction {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for FillFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[0].clone())
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        exec_err!(
            "{} can only wrap an aggregate of a query grouped by date_bin_gapfill",
            self.name
        )
    }
}

/// How the missing rows of an aggregate column are filled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum FillStrategy {
    Null,
    /// Last observation carried forward.
    Locf,
    /// Linear between the values around the gap (numbers only).
    Interpolate,
    /// InfluxQL 1.x's `fill(linear)`: the same line, computed as 1.x does (over window
    /// numbers, slope × distance + previous value, so its answers match to the last bit;
    /// integers truncated).
    InfluxQlLinear,
    /// A constant (InfluxQL's `fill(<number>)`, and its 0 for an empty window's `count`).
    Value(ScalarValue),
}

/// A gap-filling plan over `input`, an aggregate whose column `time_column` holds window
/// starts: every series (distinct values of `group_columns`) gets one row per window from
/// `lower` to `upper` (both window starts, inclusive), its other columns filled per `fill`
/// (columns not named there are filled with nulls). For planners of other languages
/// (InfluxQL's `GROUP BY time() fill(..)`); SQL reaches the same node through
/// `date_bin_gapfill`.
pub fn gap_fill_plan(
    input: LogicalPlan,
    time_column: &str,
    group_columns: &[String],
    fill: &[(String, FillStrategy)],
    stride: Expr,
    lower: Expr,
    upper: Expr,
) -> Result<LogicalPlan> {
    let schema = Arc::clone(input.schema());
    let index = |name: &str| schema.index_of_column(&Column::from_name(name));
    let time_column = index(time_column)?;
    let group_columns: Vec<usize> = group_columns
        .iter()
        .map(|c| index(c))
        .collect::<Result<_>>()?;
    let fill: Vec<(usize, FillStrategy)> = (0..schema.fields().len())
        .filter(|i| *i != time_column && !group_columns.contains(i))
        .map(|i| {
            let name = schema.field(i).name();
            let strategy = fill
                .iter()
                .find(|(n, _)| n == name)
                .map_or(FillStrategy::Null, |(_, s)| s.clone());
            (i, strategy)
        })
        .collect();
    GapFill::plan(
        Arc::new(input),
        time_column,
        group_columns,
        fill,
        stride,
        // Windows start at `lower`: it is the origin of the bins.
        Some(lower.clone()),
        Bound {
            expr: lower,
            inclusive: true,
        },
        Bound {
            expr: upper,
            inclusive: true,
        },
    )
}

/// Bounds of the filled range, as expressions evaluated at planning time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
struct Bound {
    expr: Expr,
    inclusive: bool,
}

/// The logical gap-filling node; its input is the `date_bin` aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GapFill {
    input: Arc<LogicalPlan>,
    /// Output column of the time bucket.
    time_column: usize,
    /// Output columns of the other group keys.
    group_columns: Vec<usize>,
    /// Output columns of the aggregates, with their strategy.
    fill: Vec<(usize, FillStrategy)>,
    /// Columns appended after the input's: an aggregate column filled another way than null
    /// (`locf(avg(x))` next to a plain `avg(x)`), as (source column, strategy, name).
    extra: Vec<(usize, FillStrategy, String)>,
    /// The input's schema plus the `extra` columns.
    schema: DFSchemaRef,
    stride: Expr,
    origin: Option<Expr>,
    lower: Bound,
    upper: Bound,
}

impl GapFill {
    /// The node over `input` with no extra fill columns yet, as a plan.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        input: Arc<LogicalPlan>,
        time_column: usize,
        group_columns: Vec<usize>,
        fill: Vec<(usize, FillStrategy)>,
        stride: Expr,
        origin: Option<Expr>,
        lower: Bound,
        upper: Bound,
    ) -> Result<LogicalPlan> {
        let node = GapFill {
            schema: output_schema(input.schema(), &fill, &[])?,
            input,
            time_column,
            group_columns,
            fill,
            extra: Vec::new(),
            stride,
            origin,
            lower,
            upper,
        };
        Ok(node.into_plan())
    }

    fn into_plan(self) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(self),
        })
    }
}

impl PartialOrd for GapFill {
    /// By everything but the schema, which follows from the rest.
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        let key = |n: &Self| {
            (
                Arc::clone(&n.input),
                n.time_column,
                n.group_columns.clone(),
                n.fill.clone(),
                n.extra.clone(),
                n.stride.clone(),
                n.origin.clone(),
                n.lower.clone(),
                n.upper.clone(),
            )
        };
        key(self).partial_cmp(&key(other))
    }
}

impl UserDefinedLogicalNodeCore for GapFill {
    fn name(&self) -> &str {
        "GapFill"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        let mut exprs = vec![
            self.stride.clone(),
            self.lower.expr.clone(),
            self.upper.expr.clone(),
        ];
        exprs.extend(self.origin.clone());
        exprs
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let fields = self.input.schema().fields();
        write!(
            f,
            "GapFill: time={}, groups=[{}], stride={}, range={}{}, {}{}",
            fields[self.time_column].name(),
            self.group_columns
                .iter()
                .map(|&i| fields[i].name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.stride,
            if self.lower.inclusive { "[" } else { "(" },
            self.lower.expr,
            self.upper.expr,
            if self.upper.inclusive { "]" } else { ")" },
        )
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        let [input] = <[LogicalPlan; 1]>::try_from(inputs).map_err(|_| {
            datafusion::error::DataFusionError::Internal("GapFill has one input".into())
        })?;
        let mut exprs = exprs.into_iter();
        let (Some(stride), Some(lower), Some(upper)) = (exprs.next(), exprs.next(), exprs.next())
        else {
            return internal_err!("GapFill expects stride, lower and upper expressions");
        };
        let schema = output_schema(input.schema(), &self.fill, &self.extra)?;
        Ok(Self {
            input: Arc::new(input),
            schema,
            stride,
            lower: Bound {
                expr: lower,
                inclusive: self.lower.inclusive,
            },
            upper: Bound {
                expr: upper,
                inclusive: self.upper.inclusive,
            },
            origin: exprs.next(),
            ..self.clone()
        })
    }

    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        // A filter above gap filling sees the filled rows; it must stay above.
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
}

/// `input` with its aggregate columns nullable (a filled row may have no value), plus one
/// nullable column per extra fill.
fn output_schema(
    input: &DFSchemaRef,
    fill: &[(usize, FillStrategy)],
    extra: &[(usize, FillStrategy, String)],
) -> Result<DFSchemaRef> {
    let mut fields: Vec<(Option<TableReference>, arrow::datatypes::FieldRef)> = input
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let field = if fill.iter().any(|(c, _)| *c == i) {
                Arc::new(field.as_ref().clone().with_nullable(true))
            } else {
                Arc::clone(field)
            };
            (qualifier.cloned(), field)
        })
        .collect();
    for (source, _, name) in extra {
        let data_type = input.field(*source).data_type().clone();
        fields.push((
            None,
            Arc::new(arrow::datatypes::Field::new(name, data_type, true)),
        ));
    }
    Ok(Arc::new(DFSchema::new_with_metadata(
        fields,
        input.metadata().clone(),
    )?))
}

fn is_call(expr: &Expr, name: &str) -> bool {
    matches!(expr, Expr::ScalarFunction(f) if f.func.name() == name)
}

fn unalias(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(a) => unalias(&a.expr),
        e => e,
    }
}

/// The analyzer rule that plans gap filling (see the module docs).
#[derive(Debug, Default)]
pub struct HandleGapFill;

impl AnalyzerRule for HandleGapFill {
    fn name(&self) -> &str {
        "handle_gap_fill"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let plan = plan
            .transform_up(|node| match node {
                LogicalPlan::Aggregate(agg)
                    if agg
                        .group_expr
                        .iter()
                        .any(|e| is_call(unalias(e), DATE_BIN_GAPFILL)) =>
                {
                    gap_fill_aggregate(agg).map(Transformed::yes)
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        let plan = plan
            .transform_up(|node| match node {
                LogicalPlan::Projection(p) if p.expr.iter().any(has_fill_call) => {
                    fill_projection(p).map(Transformed::yes)
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        // Anything left over is in a place gap filling cannot honour.
        let mut misplaced = None;
        plan.apply(|node| {
            node.apply_expressions(|e| {
                e.apply(|e| {
                    if let Expr::ScalarFunction(f) = e {
                        let name = f.func.name();
                        if [DATE_BIN_GAPFILL, LOCF, INTERPOLATE].contains(&name) {
                            misplaced = Some(name.to_string());
                            return Ok(TreeNodeRecursion::Stop);
                        }
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })?;
        match misplaced.as_deref() {
            Some(DATE_BIN_GAPFILL) => plan_err!(
                "date_bin_gapfill must be a GROUP BY key of an aggregate query, e.g. SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS t, avg(v) FROM m WHERE time >= ... AND time < ... GROUP BY t"
            ),
            Some(name) => plan_err!(
                "{name} must directly wrap an aggregate in the SELECT list of a query grouped by date_bin_gapfill"
            ),
            None => Ok(plan),
        }
    }
}

fn has_fill_call(expr: &Expr) -> bool {
    let e = unalias(expr);
    is_call(e, LOCF) || is_call(e, INTERPOLATE)
}

/// Aggregate grouped by `date_bin_gapfill` → `GapFill(Aggregate grouped by date_bin)`.
fn gap_fill_aggregate(agg: Aggregate) -> Result<LogicalPlan> {
    let positions: Vec<usize> = agg
        .group_expr
        .iter()
        .enumerate()
        .filter(|(_, e)| is_call(unalias(e), DATE_BIN_GAPFILL))
        .map(|(i, _)| i)
        .collect();
    let [time_column] = positions[..] else {
        return plan_err!("only one date_bin_gapfill is allowed per query");
    };
    let Expr::ScalarFunction(call) = unalias(&agg.group_expr[time_column]) else {
        unreachable!("checked above")
    };
    let args = call.args.clone();
    let time_arg = match args.get(1) {
        Some(Expr::Column(c)) => c.clone(),
        _ => {
            return plan_err!(
                "date_bin_gapfill: the second argument must be the time column, e.g. date_bin_gapfill(INTERVAL '1 minute', time)"
            )
        }
    };
    let (lower, upper) = time_bounds(&agg.input, &time_arg)?;

    // Same output name as before, so that the expressions above still find the column.
    let output_name = agg.schema.field(time_column).name().clone();
    let date_bin = Expr::ScalarFunction(ScalarFunction::new_udf(
        datafusion::functions::datetime::date_bin(),
        args.clone(),
    ))
    .alias(output_name);
    let mut group_expr = agg.group_expr.clone();
    group_expr[time_column] = date_bin;
    let group_count = group_expr.len();
    let aggregate_count = agg.aggr_expr.len();
    let new_agg = Aggregate::try_new(agg.input.clone(), group_expr, agg.aggr_expr.clone())?;
    let input = Arc::new(LogicalPlan::Aggregate(new_agg));
    let fill: Vec<(usize, FillStrategy)> = (group_count..group_count + aggregate_count)
        .map(|i| (i, FillStrategy::Null))
        .collect();
    GapFill::plan(
        input,
        time_column,
        (0..group_count).filter(|&i| i != time_column).collect(),
        fill,
        args[0].clone(),
        args.get(2).cloned(),
        lower,
        upper,
    )
}

/// Finds `time >(=) a` and `time <(=) b` among the conjuncts of the filters under `plan`.
fn time_bounds(plan: &LogicalPlan, time: &Column) -> Result<(Bound, Bound)> {
    let mut lower: Option<Bound> = None;
    let mut upper: Option<Bound> = None;
    plan.apply(|node| {
        let predicates: Vec<&Expr> = match node {
            LogicalPlan::Filter(f) => vec![&f.predicate],
            LogicalPlan::TableScan(s) => s.filters.iter().collect(),
            // Bounds under a join or another aggregate do not bound this one.
            LogicalPlan::Join(_) | LogicalPlan::Aggregate(_) | LogicalPlan::Union(_) => {
                return Ok(TreeNodeRecursion::Jump)
            }
            _ => vec![],
        };
        for predicate in predicates {
            for conjunct in datafusion::logical_expr::utils::split_conjunction(predicate) {
                collect_bound(conjunct, time, &mut lower, &mut upper);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match (lower, upper) {
        (Some(l), Some(u)) => Ok((l, u)),
        (None, _) => {
            plan_err!("gap-filling query is missing lower time bound: add WHERE time >= <start>")
        }
        (_, None) => plan_err!(
            "gap-filling query is missing upper time bound: add WHERE time < <end> (now() works)"
        ),
    }
}

fn is_time(expr: &Expr, time: &Column) -> bool {
    match expr {
        Expr::Column(c) => c.name == time.name,
        Expr::Cast(c) => is_time(&c.expr, time),
        _ => false,
    }
}

fn constant(expr: &Expr) -> bool {
    expr.column_refs().is_empty()
}

fn collect_bound(expr: &Expr, time: &Column, lower: &mut Option<Bound>, upper: &mut Option<Bound>) {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = if is_time(left, time) && constant(right) {
                (*op, right.as_ref())
            } else if is_time(right, time) && constant(left) {
                match op.swap() {
                    Some(op) => (op, left.as_ref()),
                    None => return,
                }
            } else {
                return;
            };
            let bound = |inclusive| Bound {
                expr: value.clone(),
                inclusive,
            };
            match op {
                Operator::GtEq => *lower = Some(bound(true)),
                Operator::Gt => *lower = Some(bound(false)),
                Operator::LtEq => *upper = Some(bound(true)),
                Operator::Lt => *upper = Some(bound(false)),
                Operator::Eq => {
                    *lower = Some(bound(true));
                    *upper = Some(bound(true));
                }
                _ => {}
            }
        }
        Expr::Between(b)
            if !b.negated && is_time(&b.expr, time) && constant(&b.low) && constant(&b.high) =>
        {
            *lower = Some(Bound {
                expr: (*b.low).clone(),
                inclusive: true,
            });
            *upper = Some(Bound {
                expr: (*b.high).clone(),
                inclusive: true,
            });
        }
        _ => {}
    }
}

/// Strips `locf`/`interpolate` from a projection right above a [`GapFill`], recording them
/// as the node's fill strategies.
fn fill_projection(projection: Projection) -> Result<LogicalPlan> {
    let LogicalPlan::Extension(ext) = projection.input.as_ref() else {
        return plan_err!(
            "locf and interpolate can only wrap aggregates of a query grouped by date_bin_gapfill"
        );
    };
    let Some(gap_fill) = ext.node.as_any().downcast_ref::<GapFill>() else {
        return plan_err!(
            "locf and interpolate can only wrap aggregates of a query grouped by date_bin_gapfill"
        );
    };
    let mut gap_fill = gap_fill.clone();
    let schema = gap_fill.input.schema().clone();
    let mut exprs = Vec::with_capacity(projection.expr.len());
    for expr in projection.expr {
        if !has_fill_call(&expr) {
            exprs.push(expr);
            continue;
        }
        let (name, inner) = match &expr {
            Expr::Alias(a) => (a.name.clone(), unalias(&a.expr)),
            e => (e.schema_name().to_string(), e),
        };
        let Expr::ScalarFunction(call) = inner else {
            unreachable!("has_fill_call checked it")
        };
        let strategy = if call.func.name() == LOCF {
            FillStrategy::Locf
        } else {
            FillStrategy::Interpolate
        };
        let column = match call.args.first().map(unalias) {
            Some(Expr::Column(c)) => c,
            _ => {
                return plan_err!(
                    "{}() must directly wrap an aggregate, e.g. {}(avg(usage))",
                    call.func.name(),
                    call.func.name()
                )
            }
        };
        let index = schema.index_of_column(column)?;
        if !gap_fill.fill.iter().any(|(i, _)| *i == index) {
            return plan_err!(
                "{}() must wrap an aggregate, not a group key",
                call.func.name()
            );
        }
        if strategy == FillStrategy::Interpolate && !schema.field(index).data_type().is_numeric() {
            return plan_err!(
                "interpolate() needs a numeric aggregate, {} is {}",
                schema.field(index).name(),
                schema.field(index).data_type()
            );
        }
        // A column of its own: the same aggregate may also be selected plain or filled the
        // other way.
        let extra_name = inner.schema_name().to_string();
        if !gap_fill.extra.iter().any(|(_, _, n)| *n == extra_name) {
            gap_fill.extra.push((index, strategy, extra_name.clone()));
        }
        exprs.push(Expr::Column(Column::from_name(extra_name)).alias(name));
    }
    gap_fill.schema = output_schema(gap_fill.input.schema(), &gap_fill.fill, &gap_fill.extra)?;
    let input = Arc::new(gap_fill.into_plan());
    Ok(LogicalPlan::Projection(Projection::try_new(exprs, input)?))
}

/// The query planner of Gnomon sessions: DataFusion's, plus our extension nodes.
#[derive(Debug, Default)]
pub struct GnomonQueryPlanner;

#[async_trait]
impl QueryPlanner for GnomonQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(GapFillPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

/// Plans [`GapFill`] nodes as [`GapFillExec`].
#[derive(Debug)]
struct GapFillPlanner;

#[async_trait]
impl ExtensionPlanner for GapFillPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<GapFill>() else {
            return Ok(None);
        };
        let evaluate = |expr: &Expr| -> Result<ScalarValue> {
            let empty = DFSchema::empty();
            let physical = planner.create_physical_expr(expr, &empty, session, planning_ctx)?;
            let one_row = RecordBatch::try_new_with_options(
                Arc::new(Schema::empty()),
                vec![],
                &RecordBatchOptions::new().with_row_count(Some(1)),
            )?;
            match physical.evaluate(&one_row)? {
                ColumnarValue::Scalar(s) => Ok(s),
                ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
            }
        };
        let timestamp = |expr: &Expr, what: &str| -> Result<i64> {
            match evaluate(expr)?.cast_to(&DataType::Timestamp(TimeUnit::Nanosecond, None))? {
                ScalarValue::TimestampNanosecond(Some(t), _) => Ok(t),
                other => plan_err!("gap filling: the {what} must be a timestamp, got {other}"),
            }
        };
        let stride = match evaluate(&node.stride)? {
            ScalarValue::IntervalMonthDayNano(Some(v)) if v.months != 0 => {
                return plan_err!("date_bin_gapfill: month and year intervals are not supported, use days")
            }
            ScalarValue::IntervalYearMonth(Some(_)) => {
                return plan_err!("date_bin_gapfill: month and year intervals are not supported, use days")
            }
            other => match super::fixed_stride_ns(&other) {
                Some(stride) => stride,
                None => return plan_err!("date_bin_gapfill: the interval must be a constant such as INTERVAL '1 minute', got {other}"),
            },
        };
        if stride <= 0 {
            return plan_err!("date_bin_gapfill: the interval must be positive");
        }
        let origin = match &node.origin {
            Some(e) => timestamp(e, "origin")?,
            None => 0,
        };
        let lower = timestamp(&node.lower.expr, "lower time bound")?;
        let upper = timestamp(&node.upper.expr, "upper time bound")?;
        let first = origin + (lower - origin).div_euclid(stride) * stride;
        // A bucket is in the range when its start is: [first, upper) or [first, upper].
        let last_start = if node.upper.inclusive {
            upper
        } else {
            upper - 1
        };
        let buckets = if last_start < first {
            0
        } else {
            (last_start - first) / stride + 1
        };
        if buckets > MAX_BUCKETS {
            return plan_err!(
                "gap filling would produce {buckets} rows per series (limit {MAX_BUCKETS}): use a larger interval or a shorter time range"
            );
        }
        let [input] = physical_inputs else {
            return internal_err!("GapFill has one input");
        };
        let schema = Arc::new(node.schema.as_arrow().clone());
        Ok(Some(Arc::new(GapFillExec::new(
            Arc::clone(input),
            schema,
            GapFillParams {
                time_column: node.time_column,
                group_columns: node.group_columns.clone(),
                fill: node.fill.clone(),
                extra: node.extra.iter().map(|(i, s, _)| (*i, s.clone())).collect(),
                first,
                stride,
                buckets,
            },
        ))))
    }
}

#[derive(Debug, Clone)]
struct GapFillParams {
    time_column: usize,
    group_columns: Vec<usize>,
    fill: Vec<(usize, FillStrategy)>,
    /// Appended output columns: (source column, strategy).
    extra: Vec<(usize, FillStrategy)>,
    /// Start of the first bucket, ns.
    first: i64,
    stride: i64,
    buckets: i64,
}

/// Emits every bucket of the range for every group of its (aggregated) input.
#[derive(Debug)]
pub struct GapFillExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    params: GapFillParams,
    properties: Arc<PlanProperties>,
}

impl GapFillExec {
    fn new(input: Arc<dyn ExecutionPlan>, schema: SchemaRef, params: GapFillParams) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            input,
            schema,
            params,
            properties,
        }
    }
}

impl DisplayAs for GapFillExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "GapFillExec: buckets={}, stride={}ns",
            self.params.buckets, self.params.stride
        )
    }
}

impl ExecutionPlan for GapFillExec {
    fn name(&self) -> &str {
        "GapFillExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = crate::only_child(children, "GapFillExec")?;
        Ok(Arc::new(GapFillExec::new(
            input,
            Arc::clone(&self.schema),
            self.params.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("GapFillExec has one partition, asked for {partition}");
        }
        let schema = Arc::clone(&self.schema);
        let input_schema = self.input.schema();
        let input = self.input.execute(0, context)?;
        let params = self.params.clone();
        let out_schema = Arc::clone(&schema);
        let stream = futures::stream::once(async move {
            // The input is aggregated (one row per group and bucket), so it is small next to
            // what produced it; gap filling needs it whole and sorted.
            let batches: Vec<RecordBatch> = input.try_collect().await?;
            let all = concat_batches(&input_schema, &batches)?;
            fill(&all, &out_schema, &params)
        })
        .filter_map(|r| async move {
            match r {
                Ok(b) if b.num_rows() == 0 => None,
                other => Some(other),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// Gap-fills `input` (aggregated rows, any order).
fn fill(input: &RecordBatch, schema: &SchemaRef, p: &GapFillParams) -> Result<RecordBatch> {
    if input.num_rows() == 0 {
        return Ok(RecordBatch::new_empty(Arc::clone(schema)));
    }
    let input_columns = input.num_columns();
    // Sort by group keys, then time.
    let mut keys: Vec<SortColumn> = p
        .group_columns
        .iter()
        .map(|&i| SortColumn {
            values: Arc::clone(input.column(i)),
            options: None,
        })
        .collect();
    keys.push(SortColumn {
        values: Arc::clone(input.column(p.time_column)),
        options: None,
    });
    let order = lexsort_to_indices(&keys, None)?;
    let sorted: Vec<ArrayRef> = input
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), &order, None))
        .collect::<std::result::Result<_, _>>()?;
    let times = cast(
        &sorted[p.time_column],
        &DataType::Timestamp(TimeUnit::Nanosecond, None),
    )?;
    let times = times.as_primitive::<arrow::datatypes::TimestampNanosecondType>();

    let groups = if p.group_columns.is_empty() {
        std::iter::once(0..input.num_rows()).collect()
    } else {
        let group_arrays: Vec<ArrayRef> = p
            .group_columns
            .iter()
            .map(|&i| Arc::clone(&sorted[i]))
            .collect();
        partition(&group_arrays)?.ranges()
    };

    let out_rows = groups.len() * p.buckets as usize;
    // Per output row: the group's first input row, and the input row of its bucket if any.
    let mut group_row: Vec<u32> = Vec::with_capacity(out_rows);
    let mut source: Vec<Option<u32>> = Vec::with_capacity(out_rows);
    let mut bucket_time: Vec<i64> = Vec::with_capacity(out_rows);
    for range in &groups {
        let mut next = range.start;
        for b in 0..p.buckets {
            let t = p.first + b * p.stride;
            while next < range.end && (times.is_null(next) || times.value(next) < t) {
                next += 1;
            }
            let hit = (next < range.end && times.value(next) == t).then_some(next as u32);
            group_row.push(range.start as u32);
            source.push(hit);
            bucket_time.push(t);
        }
    }

    let group_take = UInt32Array::from(group_row);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let column = if i >= input_columns {
            let (source_column, strategy) = p.extra[i - input_columns].clone();
            fill_column(
                &sorted[source_column],
                &source,
                &bucket_time,
                p.buckets as usize,
                strategy,
            )?
        } else if i == p.time_column {
            let t: ArrayRef = Arc::new(TimestampNanosecondArray::from(bucket_time.clone()));
            cast(&t, field.data_type())?
        } else if p.group_columns.contains(&i) {
            take(sorted[i].as_ref(), &group_take, None)?
        } else {
            let strategy = p
                .fill
                .iter()
                .find(|(c, _)| *c == i)
                .map_or(FillStrategy::Null, |(_, s)| s.clone());
            fill_column(
                &sorted[i],
                &source,
                &bucket_time,
                p.buckets as usize,
                strategy,
            )?
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// One aggregate column of the output. `source` holds, per output row, the input row of its
/// bucket; series are runs of `buckets` output rows.
fn fill_column(
    values: &ArrayRef,
    source: &[Option<u32>],
    bucket_time: &[i64],
    buckets: usize,
    strategy: FillStrategy,
) -> Result<ArrayRef> {
    let present = |row: Option<u32>| row.filter(|&r| values.is_valid(r as usize));
    match strategy {
        FillStrategy::Null => Ok(take(
            values.as_ref(),
            &UInt32Array::from(source.to_vec()),
            None,
        )?),
        FillStrategy::Value(value) => {
            let taken = take(values.as_ref(), &UInt32Array::from(source.to_vec()), None)?;
            let constant = value.cast_to(values.data_type())?.to_scalar()?;
            let missing = arrow::compute::is_null(&taken)?;
            Ok(arrow::compute::kernels::zip::zip(
                &missing, &constant, &taken,
            )?)
        }
        FillStrategy::Locf => {
            let mut indices: Vec<Option<u32>> = Vec::with_capacity(source.len());
            for series in source.chunks(buckets.max(1)) {
                let mut last = None;
                for &row in series {
                    if let Some(r) = present(row) {
                        last = Some(r);
                    }
                    indices.push(last);
                }
            }
            Ok(take(values.as_ref(), &UInt32Array::from(indices), None)?)
        }
        FillStrategy::Interpolate | FillStrategy::InfluxQlLinear => {
            let slope_form = strategy == FillStrategy::InfluxQlLinear;
            let numbers = cast(values, &DataType::Float64)?;
            let numbers = numbers.as_primitive::<arrow::datatypes::Float64Type>();
            let mut out: Vec<Option<f64>> = Vec::with_capacity(source.len());
            for (s, series) in source.chunks(buckets.max(1)).enumerate() {
                let base = s * buckets;
                // Known points of the series: (output position, value).
                let known: Vec<(usize, f64)> = series
                    .iter()
                    .enumerate()
                    .filter_map(|(k, &row)| present(row).map(|r| (k, numbers.value(r as usize))))
                    .collect();
                let mut next_known = 0;
                for k in 0..series.len() {
                    while next_known < known.len() && known[next_known].0 < k {
                        next_known += 1;
                    }
                    let value = match known.get(next_known) {
                        Some(&(at, v)) if at == k => Some(v),
                        Some(&(after, v_after)) if next_known > 0 => {
                            let (before, v_before) = known[next_known - 1];
                            let (t0, t1, t) = (
                                bucket_time[base + before] as f64,
                                bucket_time[base + after] as f64,
                                bucket_time[base + k] as f64,
                            );
                            Some(if slope_form {
                                // Times as window numbers (truncated time / interval), as
                                // 1.x computes them; buckets are one interval apart.
                                let interval = bucket_time[base + 1] - bucket_time[base];
                                let n = |i: usize| bucket_time[base + i] / interval;
                                let span = (n(after) - n(before)) as f64;
                                let into = (n(k) - n(before)) as f64;
                                (v_after - v_before) / span * into + v_before
                            } else {
                                v_before + (v_after - v_before) * (t - t0) / (t1 - t0)
                            })
                        }
                        _ => None,
                    };
                    out.push(value);
                }
            }
            let filled: ArrayRef = Arc::new(Float64Array::from(out));
            Ok(cast(&filled, values.data_type())?)
        }
    }
}
