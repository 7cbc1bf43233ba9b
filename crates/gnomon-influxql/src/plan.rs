//! SELECT → DataFusion logical plan (feature `plan`).
//!
//! The plan's output has the columns `iox::measurement`, `time`, the `GROUP BY` tags (sorted,
//! as strings, a missing tag is `""`), then one column per projection, sorted by measurement,
//! tags and time. [`PlannedSelect::tag_columns`] tells the v1 encoder which columns form the
//! series key.
//!
//! Covered so far: raw projections (fields, tags, `*`, `::` casts, arithmetic, math
//! functions), several measurements and regex measurements, WHERE with time ranges, tag and
//! field conditions and regexes, `GROUP BY` tags / `*` / regex / `time(i[, offset])`, the
//! aggregates `count`, `count(distinct)`, `sum`, `mean`, `median`, `spread`, `stddev`,
//! `percentile` (nearest rank), `top`/`bottom` (with tag arguments), `distinct` and `mode`
//! (as the only projection, without `GROUP BY time`) and the
//! selectors `first`, `last`, `min`, `max` (a lone selector without `GROUP BY time` keeps the
//! selected point's time), `integral` (alone in the projection),
//! `fill(none|null|<number>|previous|linear)`, the transformations
//! `difference`, `non_negative_difference`, `derivative`, `non_negative_derivative`,
//! `elapsed`, `cumulative_sum` and `moving_average` over raw fields or over `GROUP BY time`
//! windows of an aggregate,
//! `ORDER BY time DESC`, `LIMIT`/`OFFSET` per series, `tz()` (windows in the zone, times
//! written in it), and subqueries in FROM (nested, several, beside measurements).
//! Wildcards and regexes as the first argument of a call (`mean(*)`) expand per field.
//! Anything else is rejected with a "not implemented" error rather than answered wrongly.
//!
//! A subquery is planned first, once per measurement it reads (so each keeps its name), as
//! 1.x runs it under the outer query: with the outer time range added to its WHERE, the outer
//! `GROUP BY` tags added to its own, and the outer `GROUP BY time()` (and `tz()`) when it
//! aggregates without windows of its own. Its rows (`time`, its `GROUP BY` tags as tags, its
//! columns as fields) are then a measurement like any other, except that the outer time range
//! is not applied to them again: window starts may precede the range, and 1.x keeps them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, IntervalMonthDayNano};
use datafusion::catalog::SchemaProvider;
use datafusion::common::{DFSchemaRef, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::functions::expr_fn as f;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{
    binary_expr, cast, col, ident, lit, Expr as DfExpr, ExprFunctionExt, LogicalPlan,
    LogicalPlanBuilder, Operator, SortExpr,
};

use crate::ast::{self, *};
use crate::semantic::{self, FunctionKind, SemanticError};
use crate::time_range::{self, SplitCondition};

/// Name of the column holding the measurement.
pub const MEASUREMENT_COLUMN: &str = "iox::measurement";
const TIME: &str = "time";

/// A planned SELECT and what the encoders need to know about its columns.
#[derive(Debug, Clone)]
pub struct PlannedSelect {
    pub plan: LogicalPlan,
    /// `GROUP BY` tag columns, in output order; they key the v1 series.
    pub tag_columns: Vec<String>,
    /// The zone of `tz()` when not UTC: v1 writes times in it (RFC 3339 with its offset).
    pub timezone: Option<chrono_tz::Tz>,
}

/// How far `zone`'s offset strays from `base` within `lower..=upper` when it does so by
/// other than a multiple of `interval` (windows would then not stay evenly spaced in UTC):
/// the largest such difference, or `None`. Offsets are sampled daily: zones change offset
/// months apart, never twice in a day.
fn window_moving_offset_change(
    zone: chrono_tz::Tz,
    lower: i64,
    upper: i64,
    base: i64,
    interval: i64,
) -> Option<i64> {
    const DAY: i64 = 86_400 * 1_000_000_000;
    // Ranges beyond a few centuries are sampled more coarsely rather than without end.
    let step = ((upper as i128 - lower as i128) / 200_000).max(DAY as i128) as i64;
    let mut at = lower;
    let mut largest: Option<i64> = None;
    loop {
        let change = crate::zone::offset_ns(zone, at) - base;
        if change % interval != 0 {
            largest = Some(largest.unwrap_or(0).max(change.abs()));
        }
        if at >= upper {
            return largest;
        }
        at = at.saturating_add(step).min(upper);
    }
}

/// The start of the `GROUP BY time()` window holding `t`: on UTC time, or on the zone's
/// wall-clock time (see [`semantic::GroupByTime::zone`]).
fn window_start(g: &semantic::GroupByTime, t: DfExpr) -> DfExpr {
    let stride = lit(ScalarValue::IntervalMonthDayNano(Some(
        IntervalMonthDayNano::new(0, 0, g.interval),
    )));
    let t = match g.zone {
        Some(z) => crate::zone::local_time(z, t),
        None => t,
    };
    f::date_bin(stride, t, ts(g.offset))
}

/// A window start from [`window_start`] as the instant it names.
fn window_instant(g: &semantic::GroupByTime, w: DfExpr) -> DfExpr {
    match g.zone {
        Some(z) => crate::zone::utc_time(z, w),
        None => w,
    }
}

/// An instant on the clock windows are computed on.
fn window_clock(g: &semantic::GroupByTime, ns: i64) -> i64 {
    match g.zone {
        Some(z) => crate::zone::to_local(z, ns),
        None => ns,
    }
}

/// `p` with its `time` column (window starts from [`window_start`]) as instants.
fn window_times_as_instants(p: LogicalPlan, g: &semantic::GroupByTime) -> Result<LogicalPlan> {
    if g.zone.is_none() {
        return Ok(p);
    }
    let proj: Vec<DfExpr> = p
        .schema()
        .columns()
        .into_iter()
        .map(|c| {
            if c.name == TIME {
                window_instant(g, DfExpr::Column(c)).alias(TIME)
            } else {
                DfExpr::Column(c)
            }
        })
        .collect();
    LogicalPlanBuilder::from(p).project(proj)?.build()
}

fn not_implemented<T>(what: impl Into<String>) -> Result<T> {
    Err(DataFusionError::NotImplemented(what.into()))
}

fn plan_err<T>(msg: impl Into<String>) -> Result<T> {
    Err(DataFusionError::Plan(msg.into()))
}

impl From<SemanticError> for DataFusionError {
    fn from(e: SemanticError) -> Self {
        match e {
            SemanticError::Plan(m) => DataFusionError::Plan(m),
            SemanticError::NotImplemented(m) => DataFusionError::NotImplemented(m),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tag,
    Field,
}

/// Where a measurement's rows come from.
#[derive(Debug, Clone)]
enum Source {
    Provider(Arc<dyn datafusion::catalog::TableProvider>),
    /// A subquery's rows for this measurement: `time`, its `GROUP BY` tags (as tags), then
    /// its output columns (as fields).
    Subquery(LogicalPlan),
}

/// One measurement's columns (time excluded).
#[derive(Debug, Clone)]
struct Table {
    name: String,
    source: Source,
    columns: BTreeMap<String, (Kind, DataType)>,
}

impl Table {
    fn kind(&self, name: &str) -> Option<Kind> {
        self.columns.get(name).map(|(k, _)| *k)
    }
}

fn is_tag_type(t: &DataType) -> bool {
    matches!(t, DataType::Dictionary(_, v) if **v == DataType::Utf8)
}

fn ts(ns: i64) -> DfExpr {
    lit(ScalarValue::TimestampNanosecond(Some(ns), None))
}

/// Plans `stmt` over the measurements of `tables`; `now` (ns) is the query start time.
pub async fn plan_select(
    stmt: &SelectStatement,
    tables: &dyn SchemaProvider,
    now: i64,
) -> Result<PlannedSelect> {
    plan_select_boxed(stmt, tables, now).await
}

/// Subqueries plan their inner statement first: the recursion needs a boxed future.
fn plan_select_boxed<'a>(
    stmt: &'a SelectStatement,
    tables: &'a dyn SchemaProvider,
    now: i64,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<PlannedSelect>> + Send + 'a>> {
    Box::pin(plan_select_inner(stmt, tables, now))
}

async fn plan_select_inner(
    stmt: &SelectStatement,
    tables: &dyn SchemaProvider,
    now: i64,
) -> Result<PlannedSelect> {
    let mut info = semantic::validate_select(stmt)?;
    let tz = stmt
        .timezone
        .as_deref()
        .map(time_range::parse_timezone)
        .transpose()?;
    let mut split = time_range::split_condition(stmt.condition.as_ref(), now, tz)?;
    if info.group_by_time.is_some() && split.range.upper.is_none() {
        // With windows and no upper bound, InfluxQL stops at the query's start time.
        split.range.upper = Some(now);
        split.empty |= split.range.is_empty();
    }
    if let (Some(zone), Some(g)) = (tz, info.group_by_time.as_mut()) {
        // Windows start at local multiples of the interval. With one UTC offset over the
        // range (or changes by multiples of the interval) that is a shifted origin; when the
        // offset changes otherwise (daily windows across a daylight-saving change), windows
        // are binned on wall-clock time and their starts mapped back to instants, as 1.x's
        // per-window offset lookup gives. A change as long as the interval or longer would
        // leave wall-clock windows that do not exist: refused, not guessed.
        // Windows longer than any change of offset a zone makes are always binned on
        // wall-clock time (the same answer as a shifted origin when the offset holds).
        const LONGEST_OFFSET_CHANGE: i64 = 2 * 3_600_000_000_000;
        let upper = split.range.upper.unwrap_or(now);
        let lower = split.range.lower.unwrap_or(upper).min(upper);
        let base = crate::zone::offset_ns(zone, lower);
        let change = if g.interval > LONGEST_OFFSET_CHANGE && g.offset == 0 {
            Some(0)
        } else {
            window_moving_offset_change(zone, lower, upper, base, g.interval)
        };
        match change {
            None => g.offset = (g.offset - base).rem_euclid(g.interval),
            Some(change) if change < g.interval && g.offset == 0 => g.zone = Some(zone),
            // 1.x's windows with an offset around a change are irregular (a window an hour
            // long next to one missing its first hour): not reproduced.
            Some(_) if g.offset != 0 => {
                return not_implemented(format!(
                    "GROUP BY time() with an offset across a change of UTC offset in tz('{}')",
                    zone.name()
                ))
            }
            Some(_) => {
                return not_implemented(format!(
                    "GROUP BY time() windows no longer than a change of UTC offset in tz('{}')",
                    zone.name()
                ))
            }
        }
    }
    let timezone = tz.filter(|z| *z != chrono_tz::Tz::UTC);

    let resolved = resolve_tables(stmt, tables, now, &split).await?;
    let group_tags = group_by_tags(stmt, &resolved)?;
    let fields = expand_fields(stmt, &resolved, &group_tags, &info.column_names)?;
    // Raw rows of different subquery series may share a time: 1.x lists them in series order.
    let tie_break = resolved
        .iter()
        .any(|t| matches!(t.source, Source::Subquery(_)));
    let mut plans = Vec::new();
    for table in &resolved {
        let p = if let Some((name, arg)) = distinct_or_mode(&fields) {
            if info.group_by_time.is_some() {
                return not_implemented(format!("{name}() with GROUP BY time()"));
            }
            plan_distinct_mode(table, &split, &group_tags, name, arg, &fields[0].1)?
        } else if let Some((name, args)) = top_bottom(&fields) {
            plan_top_bottom(table, &split, &group_tags, name, args, &fields[0].1, &info)?
        } else if is_integral_query(&fields) {
            if stmt.order_by == Some(Order::Descending) {
                return not_implemented("integral() with ORDER BY time DESC");
            }
            plan_integral(table, &split, &group_tags, &fields, &info)?
        } else if is_transformation_query(&fields) {
            let windowed = info.group_by_time.map(|_| (&info, stmt.fill));
            plan_transformations(table, &split, &group_tags, &fields, windowed)?
        } else if info.has_aggregate {
            let p = plan_aggregate(table, &split, &group_tags, &fields, &info)?;
            let p = match (info.group_by_time, stmt.fill) {
                (None, _) | (_, Some(Fill::None)) => p,
                (Some(g), fill) if !split.empty => gap_fill(
                    p,
                    table,
                    &group_tags,
                    &fields,
                    g,
                    &split,
                    fill.unwrap_or(Fill::Null),
                )?,
                _ => p,
            };
            match &info.group_by_time {
                Some(g) => window_times_as_instants(p, g)?,
                None => p,
            }
        } else {
            // LIMIT counts points per series: keep only the first `offset + limit` of each
            // series before the per-row projection (tags as strings, one per row) rather
            // than after; the per-series LIMIT below still decides. Not for subqueries,
            // whose rows come with the tie-break order of their inner series.
            let cap = match (stmt.limit, tie_break) {
                (Some(limit), false) if matches!(table.source, Source::Provider(_)) => Some((
                    (limit + stmt.offset.unwrap_or(0)) as usize,
                    stmt.order_by != Some(Order::Descending),
                )),
                _ => None,
            };
            plan_raw(table, &split, &group_tags, &fields, tie_break, cap)?
        };
        plans.push(p);
    }
    if plans.is_empty() {
        return Ok(PlannedSelect {
            plan: LogicalPlanBuilder::empty(false)
                .project(
                    std::iter::once(lit(ScalarValue::Utf8(None)).alias(MEASUREMENT_COLUMN))
                        .chain(std::iter::once(
                            lit(ScalarValue::TimestampNanosecond(None, None)).alias(TIME),
                        ))
                        .chain(fields.iter().map(|(_, n)| lit(ScalarValue::Null).alias(n))),
                )?
                .build()?,
            tag_columns: vec![],
            timezone,
        });
    }
    let plans = unify_types(plans)?;
    let mut builder = LogicalPlanBuilder::from(plans[0].clone());
    for p in &plans[1..] {
        builder = builder.union(p.clone())?;
    }
    let ascending = stmt.order_by != Some(Order::Descending);
    let mut key: Vec<DfExpr> = vec![ident(MEASUREMENT_COLUMN)];
    key.extend(group_tags.iter().map(ident));
    // InfluxDB 1.x also walks the series backwards under ORDER BY time DESC.
    let mut sort: Vec<SortExpr> = key
        .iter()
        .map(|e| e.clone().sort(ascending, false))
        .collect();
    sort.push(ident(TIME).sort(ascending, false));
    // Rows share series and time only for `distinct`, whose values come in the order they
    // first appear; the helper column goes once sorted.
    // Raw rows from subqueries that share a time come in their inner series' order.
    let helpers: Vec<&str> = ["__first", "__tie"]
        .into_iter()
        .filter(|h| builder.schema().has_column_with_unqualified_name(h))
        .collect();
    for h in &helpers {
        sort.push(ident(*h).sort(true, false));
    }
    builder = builder.sort(sort)?;
    if !helpers.is_empty() {
        let keep: Vec<DfExpr> = builder
            .schema()
            .columns()
            .into_iter()
            .filter(|c| !helpers.contains(&c.name.as_str()))
            .map(DfExpr::Column)
            .collect();
        builder = builder.project(keep)?;
    }

    if stmt.limit.is_some() || stmt.offset.is_some() {
        let offset = stmt.offset.unwrap_or(0) as usize;
        let limit = stmt.limit.map(|l| l as usize);
        if resolved.len() == 1 && group_tags.is_empty() {
            builder = builder.limit(offset, limit)?;
        } else {
            // LIMIT and OFFSET count rows per series.
            let rn = row_number()
                .partition_by(key.clone())
                .order_by(vec![ident(TIME).sort(ascending, false)])
                .build()?
                .alias("__rn");
            let columns: Vec<DfExpr> = builder
                .schema()
                .columns()
                .into_iter()
                .map(DfExpr::Column)
                .collect();
            builder = builder.window(vec![rn])?;
            let mut cond = ident("__rn").gt(lit(offset as u64));
            if let Some(l) = limit {
                cond = cond.and(ident("__rn").lt_eq(lit((offset + l) as u64)));
            }
            builder = builder.filter(cond)?.project(columns)?;
            // The window may reorder rows.
            let mut sort: Vec<SortExpr> = key
                .iter()
                .map(|e| e.clone().sort(ascending, false))
                .collect();
            sort.push(ident(TIME).sort(ascending, false));
            builder = builder.sort(sort)?;
        }
    }
    Ok(PlannedSelect {
        plan: builder.build()?,
        tag_columns: group_tags,
        timezone,
    })
}

async fn resolve_tables(
    stmt: &SelectStatement,
    tables: &dyn SchemaProvider,
    now: i64,
    split: &SplitCondition,
) -> Result<Vec<Table>> {
    let mut names: Vec<String> = Vec::new();
    let all = {
        let mut t = tables.table_names();
        t.sort();
        t
    };
    let mut subqueries = Vec::new();
    for from in &stmt.from {
        match from {
            MeasurementSelection::Subquery(sub) => {
                let sub = adapt_subquery(sub, stmt, split)?;
                // One inner plan per measurement, so that each keeps its name as in 1.x.
                for m in source_names(&sub, &all)? {
                    let restricted = restrict_to(&sub, &m, &all)?;
                    let planned = plan_select_boxed(&restricted, tables, now).await?;
                    subqueries.push(Table::from_subquery(m, planned)?);
                }
            }
            MeasurementSelection::Name(q) => match &q.name {
                MeasurementName::Name(n) => {
                    if all.iter().any(|t| t == &n.0) && !names.contains(&n.0) {
                        names.push(n.0.clone());
                    }
                }
                MeasurementName::Regex(r) => {
                    let re = compile_regex(&r.0)?;
                    for t in &all {
                        if re.is_match(t) && !names.contains(t) {
                            names.push(t.clone());
                        }
                    }
                }
            },
        }
    }
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Some(provider) = tables.table(&name).await? else {
            continue;
        };
        out.push(Table::new(name, provider));
    }
    out.extend(subqueries);
    Ok(out)
}

/// The inner statement as InfluxDB 1.x runs it under `outer`: it inherits the outer time
/// range, the outer `GROUP BY` tags, and (when it has none but aggregates) the outer
/// `GROUP BY time()` interval.
fn adapt_subquery(
    sub: &SelectStatement,
    outer: &SelectStatement,
    split: &SplitCondition,
) -> Result<SelectStatement> {
    let descending = |s: &SelectStatement| s.order_by == Some(Order::Descending);
    if sub.order_by.is_some() && descending(sub) != descending(outer) {
        return plan_err("subqueries must be ordered in the same direction as the query itself");
    }
    let mut sub = sub.clone();
    sub.order_by = outer.order_by;
    let mut dims = sub.group_by.take().unwrap_or_default();
    let inner_time = dims.iter().any(|d| matches!(d, Dimension::Time { .. }));
    for d in outer.group_by.iter().flatten() {
        match d {
            Dimension::Tag(t)
                if !dims
                    .iter()
                    .any(|x| matches!(x, Dimension::Tag(y) if y == t)) =>
            {
                dims.push(d.clone())
            }
            Dimension::Time { .. }
                if !inner_time && semantic::validate_select(&sub)?.has_aggregate =>
            {
                dims.push(d.clone());
                // The inherited windows are the outer query's, in its zone.
                if sub.timezone.is_none() {
                    sub.timezone = outer.timezone.clone();
                }
            }
            _ => {}
        }
    }
    sub.group_by = (!dims.is_empty()).then_some(dims);
    let time = || ast::Expr::VarRef {
        name: Ident::new(TIME),
        data_type: None,
    };
    let bound = |op, ns: i64| ast::Expr::Binary {
        lhs: Box::new(time()),
        op,
        rhs: Box::new(ast::Expr::Literal(Literal::Integer(ns))),
    };
    // (Contradictory outer bounds need nothing here: the outer scan then reads nothing.)
    let mut extra = Vec::new();
    if let Some(l) = split.range.lower {
        extra.push(bound(BinaryOp::GtEq, l));
    }
    if let Some(u) = split.range.upper {
        extra.push(bound(BinaryOp::LtEq, u));
    }
    for e in extra {
        sub.condition = Some(match sub.condition.take() {
            Some(c) => ast::Expr::Binary {
                lhs: Box::new(ast::Expr::Nested(Box::new(c))),
                op: BinaryOp::And,
                rhs: Box::new(e),
            },
            None => e,
        });
    }
    Ok(sub)
}

/// The measurements a statement reads, through its subqueries, sorted.
fn source_names(stmt: &SelectStatement, all: &[String]) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for from in &stmt.from {
        match from {
            MeasurementSelection::Name(q) => match &q.name {
                MeasurementName::Name(n) => {
                    if all.contains(&n.0) {
                        out.insert(n.0.clone());
                    }
                }
                MeasurementName::Regex(r) => {
                    let re = compile_regex(&r.0)?;
                    out.extend(all.iter().filter(|t| re.is_match(t)).cloned());
                }
            },
            MeasurementSelection::Subquery(s) => out.extend(source_names(s, all)?),
        }
    }
    Ok(out)
}

/// `stmt` reading only measurement `m` (at every subquery level).
fn restrict_to(stmt: &SelectStatement, m: &str, all: &[String]) -> Result<SelectStatement> {
    let mut out = stmt.clone();
    out.from.clear();
    for from in &stmt.from {
        match from {
            MeasurementSelection::Name(q) => {
                let keep = match &q.name {
                    MeasurementName::Name(n) => n.0 == m,
                    MeasurementName::Regex(r) => compile_regex(&r.0)?.is_match(m),
                };
                if keep {
                    let mut q = q.clone();
                    q.name = MeasurementName::Name(Ident::new(m));
                    out.from.push(MeasurementSelection::Name(q));
                }
            }
            MeasurementSelection::Subquery(s) => {
                if source_names(s, all)?.contains(m) {
                    out.from
                        .push(MeasurementSelection::Subquery(Box::new(restrict_to(
                            s, m, all,
                        )?)));
                }
            }
        }
    }
    Ok(out)
}

impl Table {
    fn new(name: String, provider: Arc<dyn datafusion::catalog::TableProvider>) -> Self {
        let schema = provider.schema();
        let columns = schema
            .fields()
            .iter()
            .filter(|f| f.name() != TIME)
            .map(|f| {
                let kind = if is_tag_type(f.data_type()) {
                    Kind::Tag
                } else {
                    Kind::Field
                };
                (f.name().clone(), (kind, f.data_type().clone()))
            })
            .collect();
        Table {
            name,
            source: Source::Provider(provider),
            columns,
        }
    }

    /// A subquery's output as a measurement: its `GROUP BY` tags are tags (dictionaries, as in
    /// a stored table), its other columns fields.
    fn from_subquery(name: String, planned: PlannedSelect) -> Result<Self> {
        let schema = Arc::clone(planned.plan.schema());
        let mut proj = Vec::new();
        let mut columns = BTreeMap::new();
        for f in schema.fields() {
            let n = f.name();
            if n == MEASUREMENT_COLUMN {
                continue;
            }
            let c = col(datafusion::common::Column::from_name(n));
            if n == TIME {
                proj.push(c);
            } else if planned.tag_columns.contains(n) {
                let t = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
                proj.push(cast(c, t.clone()).alias(n));
                columns.insert(n.clone(), (Kind::Tag, t));
            } else {
                proj.push(c);
                columns.insert(n.clone(), (Kind::Field, f.data_type().clone()));
            }
        }
        let plan = LogicalPlanBuilder::from(planned.plan)
            .project(proj)?
            .build()?;
        Ok(Table {
            name,
            source: Source::Subquery(plan),
            columns,
        })
    }
}

/// `SHOW TAG VALUES` for one measurement and one tag key: the distinct non-empty values of
/// `key` among rows matching `condition`, sorted, in a column `value`.
pub fn plan_tag_values(
    measurement: &str,
    provider: Arc<dyn datafusion::catalog::TableProvider>,
    key: &str,
    condition: Option<&ast::Expr>,
    now: i64,
) -> Result<LogicalPlan> {
    let table = Table::new(measurement.to_string(), provider);
    let split = time_range::split_condition(condition, now, None)?;
    let value = cast(ident(key), DataType::Utf8);
    scan(&table, &split)?
        .filter(
            value
                .clone()
                .is_not_null()
                .and(value.clone().not_eq(lit(""))),
        )?
        .aggregate(vec![value.alias("value")], Vec::<DfExpr>::new())?
        .sort(vec![ident("value").sort(true, false)])?
        .build()
}

fn compile_regex(pattern: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern)
        .map_err(|e| DataFusionError::Plan(format!("invalid regular expression /{pattern}/: {e}")))
}

fn group_by_tags(stmt: &SelectStatement, tables: &[Table]) -> Result<Vec<String>> {
    let all_tags: BTreeSet<&String> = tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|(_, (k, _))| *k == Kind::Tag)
                .map(|(n, _)| n)
        })
        .collect();
    let mut tags = BTreeSet::new();
    for d in stmt.group_by.iter().flatten() {
        match d {
            Dimension::Time { .. } => {}
            Dimension::Tag(t) => {
                tags.insert(t.0.clone());
            }
            Dimension::Wildcard => tags.extend(all_tags.iter().map(|s| s.to_string())),
            Dimension::Regex(r) => {
                let re = compile_regex(&r.0)?;
                tags.extend(
                    all_tags
                        .iter()
                        .filter(|t| re.is_match(t))
                        .map(|s| s.to_string()),
                );
            }
        }
    }
    Ok(tags.into_iter().collect())
}

/// The projection with wildcards and regexes expanded over the union of the measurements'
/// columns (alphabetically, as InfluxDB lists them), paired with output names.
fn expand_fields(
    stmt: &SelectStatement,
    tables: &[Table],
    group_tags: &[String],
    names: &[String],
) -> Result<Vec<(ast::Expr, String)>> {
    let mut universe: BTreeMap<&str, Kind> = BTreeMap::new();
    for t in tables {
        for (n, (k, _)) in &t.columns {
            universe.entry(n).or_insert(*k);
        }
    }
    // Field name → type, for functions that only take numbers.
    let mut field_types: BTreeMap<&str, &DataType> = BTreeMap::new();
    for t in tables {
        for (n, (k, ty)) in &t.columns {
            if *k == Kind::Field {
                field_types.entry(n).or_insert(ty);
            }
        }
    }
    let mut out = Vec::new();
    for (field, name) in stmt.fields.iter().zip(names) {
        let matching = |want: &dyn Fn(&str, Kind) -> bool| -> Vec<(ast::Expr, String)> {
            universe
                .iter()
                .filter(|(n, k)| !group_tags.iter().any(|g| g == *n) && want(n, **k))
                .map(|(n, k)| {
                    (
                        ast::Expr::VarRef {
                            name: Ident::new(*n),
                            data_type: Some(match k {
                                Kind::Tag => ast::DataType::Tag,
                                Kind::Field => ast::DataType::Field,
                            }),
                        },
                        n.to_string(),
                    )
                })
                .collect()
        };
        match field.expr.unnested() {
            ast::Expr::Wildcard(w) => {
                let w = *w;
                out.extend(matching(&|_, k| match w {
                    None => true,
                    Some(WildcardType::Field) => k == Kind::Field,
                    Some(WildcardType::Tag) => k == Kind::Tag,
                }));
            }
            ast::Expr::Regex(r) => {
                let re = compile_regex(&r.0)?;
                out.extend(matching(&|n, _| re.is_match(n)));
            }
            ast::Expr::Call { name: func, args }
                if args.first().is_some_and(|a| {
                    matches!(a.unnested(), ast::Expr::Wildcard(_) | ast::Expr::Regex(_))
                }) && !args[1..].iter().any(contains_wildcard_arg) =>
            {
                // `mean(*)`, `max(/re/)`: one column per matching field, named
                // `<function>_<field>`; functions that need numbers skip other fields.
                let re = match args[0].unnested() {
                    ast::Expr::Regex(r) => Some(compile_regex(&r.0)?),
                    _ => None,
                };
                let any_type = matches!(
                    func.as_str(),
                    "count" | "first" | "last" | "distinct" | "mode" | "elapsed"
                );
                let prefix = field.alias.as_ref().map_or(func.as_str(), |a| a.0.as_str());
                for (n, t) in &field_types {
                    if re.as_ref().is_some_and(|re| !re.is_match(n)) {
                        continue;
                    }
                    if !any_type && !t.is_numeric() {
                        continue;
                    }
                    let mut new_args = args.clone();
                    new_args[0] = ast::Expr::VarRef {
                        name: Ident::new(*n),
                        data_type: Some(ast::DataType::Field),
                    };
                    out.push((
                        ast::Expr::Call {
                            name: func.clone(),
                            args: new_args,
                        },
                        format!("{prefix}_{n}"),
                    ));
                }
            }
            e => {
                if contains_wildcard_arg(e) {
                    return not_implemented("wildcards and regular expressions inside functions");
                }
                out.push((field.expr.clone(), name.clone()))
            }
        }
    }
    Ok(out)
}

fn contains_wildcard_arg(e: &ast::Expr) -> bool {
    match e {
        ast::Expr::Wildcard(_) | ast::Expr::Regex(_) => true,
        ast::Expr::Call { args, .. } => args.iter().any(contains_wildcard_arg),
        ast::Expr::Nested(x) | ast::Expr::Unary { expr: x, .. } => contains_wildcard_arg(x),
        ast::Expr::Binary { lhs, rhs, .. } => {
            contains_wildcard_arg(lhs) || contains_wildcard_arg(rhs)
        }
        _ => false,
    }
}

fn scan(table: &Table, split: &SplitCondition) -> Result<LogicalPlanBuilder> {
    let mut b = match &table.source {
        Source::Provider(p) => {
            LogicalPlanBuilder::scan(table.name.as_str(), provider_as_source(Arc::clone(p)), None)?
        }
        Source::Subquery(plan) => LogicalPlanBuilder::from(plan.clone()),
    };
    if split.empty {
        return b.filter(lit(false));
    }
    // A subquery already ran under the outer time range, and its rows keep the times it gave
    // them (window starts may precede the range), which 1.x does not filter again.
    let bounded = matches!(table.source, Source::Provider(_));
    // The rest of the condition goes first: the scan already skipped chunks outside the time
    // range, so inside them the time bounds keep nearly every row, while a tag condition
    // keeps few, and DataFusion evaluates the later terms of an AND only on the rows the
    // earlier ones kept. (Time first cost two full-column comparisons per chunk.)
    if let Some(r) = &split.residual {
        b = b.filter(to_df(r, table, Ctx::Condition)?)?;
    }
    if let Some(l) = split.range.lower.filter(|_| bounded) {
        b = b.filter(ident(TIME).gt_eq(ts(l)))?;
    }
    if let Some(u) = split.range.upper.filter(|_| bounded) {
        b = b.filter(ident(TIME).lt_eq(ts(u)))?;
    }
    Ok(b)
}

/// A `GROUP BY` tag as a string column; a tag the measurement lacks is `""`.
fn tag_column(table: &Table, tag: &str) -> DfExpr {
    match table.kind(tag) {
        Some(Kind::Tag) => f::coalesce(vec![cast(ident(tag), DataType::Utf8), lit("")]),
        _ => lit(""),
    }
}

/// The scan, keeping only rows where one of the fields the projection reads has a value:
/// InfluxQL iterates over points of the selected fields, not over table rows.
fn scan_present(
    table: &Table,
    split: &SplitCondition,
    fields: &[(ast::Expr, String)],
) -> Result<LogicalPlanBuilder> {
    let mut b = scan(table, split)?;
    let mut present: Option<DfExpr> = None;
    for (e, _) in fields {
        collect_field_refs(e, table, &mut |name| {
            let c = ident(name).is_not_null();
            present = Some(match present.take() {
                Some(p) => p.or(c),
                None => c,
            });
        });
    }
    // A measurement without any of the selected fields has no points to give.
    b = b.filter(present.unwrap_or(lit(false)))?;
    Ok(b)
}

/// Raw rows; with `tie_break`, plus a `__tie` column (the row's series among a subquery's,
/// its tag values in name order) for ordering rows that share a time.
fn plan_raw(
    table: &Table,
    split: &SplitCondition,
    group_tags: &[String],
    fields: &[(ast::Expr, String)],
    tie_break: bool,
    cap: Option<(usize, bool)>,
) -> Result<LogicalPlan> {
    let mut b = scan_present(table, split, fields)?;
    if let Some((keep, ascending)) = cap {
        // A tag the measurement lacks is the same ('') on every row: no partition needed.
        let partition: Vec<DfExpr> = group_tags
            .iter()
            .filter(|t| table.kind(t) == Some(Kind::Tag))
            .map(ident)
            .collect();
        let by_time = vec![ident(TIME).sort(ascending, false)];
        if partition.is_empty() {
            b = b.sort(by_time)?.limit(0, Some(keep))?;
        } else {
            let columns: Vec<DfExpr> = b
                .schema()
                .columns()
                .into_iter()
                .map(DfExpr::Column)
                .collect();
            let rn = row_number()
                .partition_by(partition)
                .order_by(by_time)
                .build()?
                .alias("__pre_rn");
            b = b
                .window(vec![rn])?
                .filter(ident("__pre_rn").lt_eq(lit(keep as u64)))?
                .project(columns)?;
        }
    }
    let mut proj = vec![
        lit(table.name.as_str()).alias(MEASUREMENT_COLUMN),
        ident(TIME),
    ];
    proj.extend(group_tags.iter().map(|t| tag_column(table, t).alias(t)));
    for (e, name) in fields {
        proj.push(to_df(e, table, Ctx::Projection)?.alias(name));
    }
    if tie_break {
        let tags: Vec<DfExpr> = table
            .columns
            .iter()
            .filter(|(_, (k, _))| *k == Kind::Tag)
            .flat_map(|(n, _)| [tag_column(table, n), lit("\u{0}")])
            .collect();
        let key = match (&table.source, tags.is_empty()) {
            (Source::Subquery(_), false) => f::concat(tags),
            _ => lit(""),
        };
        proj.push(key.alias("__tie"));
    }
    b.project(proj)?.build()
}

fn collect_field_refs(e: &ast::Expr, table: &Table, f: &mut dyn FnMut(&str)) {
    match e {
        ast::Expr::VarRef { name, data_type }
            if table.kind(&name.0) == Some(Kind::Field)
                && *data_type != Some(ast::DataType::Tag) =>
        {
            f(&name.0)
        }
        ast::Expr::Distinct(id) if table.kind(&id.0) == Some(Kind::Field) => f(&id.0),
        ast::Expr::Call { args, .. } => args.iter().for_each(|a| collect_field_refs(a, table, f)),
        ast::Expr::Nested(x) | ast::Expr::Unary { expr: x, .. } => collect_field_refs(x, table, f),
        ast::Expr::Binary { lhs, rhs, .. } => {
            collect_field_refs(lhs, table, f);
            collect_field_refs(rhs, table, f);
        }
        _ => {}
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Projection,
    Condition,
}

fn var_ref(
    name: &str,
    data_type: Option<ast::DataType>,
    table: &Table,
    ctx: Ctx,
) -> Result<DfExpr> {
    if name.eq_ignore_ascii_case(TIME) && table.kind(name).is_none() {
        return Ok(ident(TIME));
    }
    let kind = table.kind(name);
    let base = match (kind, data_type) {
        (Some(Kind::Tag), Some(ast::DataType::Field))
        | (Some(Kind::Field), Some(ast::DataType::Tag)) => None,
        (Some(Kind::Tag), _) => {
            let s = cast(ident(name), DataType::Utf8);
            Some(if ctx == Ctx::Condition {
                // InfluxQL compares a missing tag as the empty string.
                f::coalesce(vec![s, lit("")])
            } else {
                s
            })
        }
        (Some(Kind::Field), _) => Some(ident(name)),
        (None, _) => None,
    };
    let Some(base) = base else {
        return Ok(
            if ctx == Ctx::Condition && data_type != Some(ast::DataType::Field) {
                lit("")
            } else {
                lit(ScalarValue::Null)
            },
        );
    };
    let target = match data_type {
        Some(ast::DataType::Float) => Some(DataType::Float64),
        Some(ast::DataType::Integer) => Some(DataType::Int64),
        Some(ast::DataType::Unsigned) => Some(DataType::UInt64),
        Some(ast::DataType::String) => Some(DataType::Utf8),
        Some(ast::DataType::Boolean) => Some(DataType::Boolean),
        _ => None,
    };
    Ok(match target {
        Some(t) => cast(base, t),
        None => base,
    })
}

fn literal(l: &Literal) -> DfExpr {
    match l {
        Literal::Integer(v) => lit(*v),
        Literal::Unsigned(v) => lit(*v),
        Literal::Float(v) => lit(*v),
        Literal::String(s) => lit(s.as_str()),
        Literal::Boolean(b) => lit(*b),
        Literal::Duration(d) => lit(*d),
    }
}

fn operator(op: BinaryOp) -> Operator {
    match op {
        BinaryOp::Add => Operator::Plus,
        BinaryOp::Sub => Operator::Minus,
        BinaryOp::Mul => Operator::Multiply,
        BinaryOp::Div => Operator::Divide,
        BinaryOp::Mod => Operator::Modulo,
        BinaryOp::BitAnd => Operator::BitwiseAnd,
        BinaryOp::BitOr => Operator::BitwiseOr,
        BinaryOp::BitXor => Operator::BitwiseXor,
        BinaryOp::Eq => Operator::Eq,
        BinaryOp::NotEq => Operator::NotEq,
        BinaryOp::Lt => Operator::Lt,
        BinaryOp::LtEq => Operator::LtEq,
        BinaryOp::Gt => Operator::Gt,
        BinaryOp::GtEq => Operator::GtEq,
        BinaryOp::EqRegex => Operator::RegexMatch,
        BinaryOp::NotEqRegex => Operator::RegexNotMatch,
        BinaryOp::And => Operator::And,
        BinaryOp::Or => Operator::Or,
    }
}

/// Row-level expression conversion (no aggregates).
fn to_df(e: &ast::Expr, table: &Table, ctx: Ctx) -> Result<DfExpr> {
    to_df_with(e, table, ctx, &mut |_| Ok(None))
}

/// Converts `e`; `calls` may claim a call (used to swap aggregates for their result column).
fn to_df_with(
    e: &ast::Expr,
    table: &Table,
    ctx: Ctx,
    calls: &mut dyn FnMut(&ast::Expr) -> Result<Option<DfExpr>>,
) -> Result<DfExpr> {
    Ok(match e {
        ast::Expr::VarRef { name, data_type } => var_ref(&name.0, *data_type, table, ctx)?,
        ast::Expr::Literal(l) => literal(l),
        ast::Expr::Nested(x) => to_df_with(x, table, ctx, calls)?,
        ast::Expr::Unary { expr, .. } => DfExpr::Negative(Box::new(to_df_with(expr, table, ctx, calls)?)),
        ast::Expr::Binary { lhs, op, rhs } => {
            if ctx == Ctx::Condition && missing_vs_non_string(lhs, *op, rhs, table) {
                // A column the measurement lacks is null to a number or boolean: no row
                // matches, whatever the operator (1.x). Against a string it is a missing tag
                // and compares as '' (below).
                return Ok(lit(false));
            }
            if let Some(fast) = tag_comparison(lhs, *op, rhs, table, ctx) {
                return Ok(fast);
            }
            let l = to_df_with(lhs, table, ctx, calls)?;
            let r = match (op, rhs.unnested()) {
                (BinaryOp::EqRegex | BinaryOp::NotEqRegex, ast::Expr::Regex(re)) => {
                    compile_regex(&re.0)?;
                    lit(re.0.as_str())
                }
                (BinaryOp::EqRegex | BinaryOp::NotEqRegex, other) => {
                    return plan_err(format!("expected regular expression after {op}, found {other}"))
                }
                _ => to_df_with(rhs, table, ctx, calls)?,
            };
            let l = if matches!(op, BinaryOp::EqRegex | BinaryOp::NotEqRegex) {
                cast(l, DataType::Utf8)
            } else {
                l
            };
            if *op == BinaryOp::Div {
                // InfluxQL division is always floating point (`5 / 10` is 0.5).
                binary_expr(cast(l, DataType::Float64), Operator::Divide, cast(r, DataType::Float64))
            } else {
                binary_expr(l, operator(*op), r)
            }
        }
        ast::Expr::Call { name, args } => {
            if let Some(x) = calls(e)? {
                return Ok(x);
            }
            let a = args
                .iter()
                .map(|x| to_df_with(x, table, ctx, calls))
                .collect::<Result<Vec<_>>>()?;
            scalar_call(name, a)?
        }
        ast::Expr::Regex(r) => return plan_err(format!("unexpected regular expression {r}")),
        ast::Expr::Wildcard(_) => return plan_err("unexpected wildcard"),
        ast::Expr::BindParam(p) => {
            return plan_err(format!(
                "Bind parameter '${p}' was referenced in the InfluxQL statement but its value is undefined"
            ))
        }
        ast::Expr::Distinct(_) => return not_implemented("distinct"),
    })
}

/// `missing <op> literal` (either way round) for a comparison, a name the table lacks (not
/// `time`) and a literal that is not a string.
fn missing_vs_non_string(lhs: &ast::Expr, op: BinaryOp, rhs: &ast::Expr, table: &Table) -> bool {
    if !matches!(
        op,
        BinaryOp::Eq
            | BinaryOp::NotEq
            | BinaryOp::Lt
            | BinaryOp::LtEq
            | BinaryOp::Gt
            | BinaryOp::GtEq
    ) {
        return false;
    }
    let missing = |e: &ast::Expr| {
        matches!(e.unnested(), ast::Expr::VarRef { name, .. }
            if table.kind(&name.0).is_none() && !name.0.eq_ignore_ascii_case(TIME))
    };
    let non_string = |e: &ast::Expr| matches!(e.unnested(), ast::Expr::Literal(l) if !matches!(l, Literal::String(_)));
    (missing(lhs) && non_string(rhs)) || (non_string(lhs) && missing(rhs))
}

/// `tag = 'v'` and `tag != 'v'` in a condition, for a non-empty `v`: compared on the tag
/// column itself (a dictionary, so one comparison per distinct value) instead of on a
/// coalesced string copy of every row. Same answer: a missing tag compares as `''`, which
/// equals no non-empty `v`.
fn tag_comparison(
    lhs: &ast::Expr,
    op: BinaryOp,
    rhs: &ast::Expr,
    table: &Table,
    ctx: Ctx,
) -> Option<DfExpr> {
    if ctx != Ctx::Condition || !matches!(op, BinaryOp::Eq | BinaryOp::NotEq) {
        return None;
    }
    let tag_and_value = |a: &ast::Expr, b: &ast::Expr| match (a.unnested(), b.unnested()) {
        (
            ast::Expr::VarRef {
                name,
                data_type: None | Some(ast::DataType::Tag),
            },
            ast::Expr::Literal(Literal::String(v)),
        ) if !v.is_empty() && table.kind(&name.0) == Some(Kind::Tag) => {
            Some((name.0.clone(), v.clone()))
        }
        _ => None,
    };
    let (tag, value) = tag_and_value(lhs, rhs).or_else(|| tag_and_value(rhs, lhs))?;
    let column = ident(&tag);
    Some(match op {
        BinaryOp::Eq => column.eq(lit(value)),
        _ => column.clone().is_null().or(column.not_eq(lit(value))),
    })
}

fn scalar_call(name: &str, mut a: Vec<DfExpr>) -> Result<DfExpr> {
    use datafusion::functions::math::expr_fn as m;
    let one = |a: &mut Vec<DfExpr>| -> Result<DfExpr> {
        if a.len() != 1 {
            return plan_err(format!(
                "invalid number of arguments for {name}, expected 1, got {}",
                a.len()
            ));
        }
        Ok(a.remove(0))
    };
    let two = |a: &mut Vec<DfExpr>| -> Result<(DfExpr, DfExpr)> {
        if a.len() != 2 {
            return plan_err(format!(
                "invalid number of arguments for {name}, expected 2, got {}",
                a.len()
            ));
        }
        let y = a.remove(1);
        Ok((a.remove(0), y))
    };
    Ok(match name {
        "abs" => m::abs(one(&mut a)?),
        "sin" => m::sin(one(&mut a)?),
        "cos" => m::cos(one(&mut a)?),
        "tan" => m::tan(one(&mut a)?),
        "asin" => m::asin(one(&mut a)?),
        "acos" => m::acos(one(&mut a)?),
        "atan" => m::atan(one(&mut a)?),
        "exp" => m::exp(one(&mut a)?),
        "ln" => m::ln(one(&mut a)?),
        "log2" => m::log2(one(&mut a)?),
        "log10" => m::log10(one(&mut a)?),
        "sqrt" => m::sqrt(one(&mut a)?),
        "floor" => m::floor(one(&mut a)?),
        "ceil" => m::ceil(one(&mut a)?),
        "round" => m::round(vec![one(&mut a)?]),
        "atan2" => {
            let (y, x) = two(&mut a)?;
            m::atan2(y, x)
        }
        "pow" => {
            let (x, y) = two(&mut a)?;
            m::power(x, y)
        }
        // InfluxQL's log(x, base); DataFusion's log(base, x).
        "log" => {
            let (x, b) = two(&mut a)?;
            m::log(b, x)
        }
        other => match semantic::classify_function(other) {
            Some(FunctionKind::Unplannable) => {
                return plan_err(format!("Invalid function '{other}'"))
            }
            Some(FunctionKind::Now) => return not_implemented("now"),
            Some(FunctionKind::Aggregate | FunctionKind::Selector) => {
                return plan_err("mixing aggregate and non-aggregate columns is not supported")
            }
            _ => return not_implemented(format!("{other}()")),
        },
    })
}

/// The aggregate for `call` over `table`, plus (for a lone selector) the time of the selected
/// point.
fn aggregate_call(call: &ast::Expr, table: &Table) -> Result<(DfExpr, Option<DfExpr>)> {
    let ast::Expr::Call { name, args } = call else {
        return not_implemented("DISTINCT");
    };
    let arg = |i: usize| -> Result<DfExpr> { to_df(&args[i], table, Ctx::Projection) };
    let time_asc = || ident(TIME).sort(true, false);
    Ok(match name.as_str() {
        "count" => match args[0].unnested() {
            ast::Expr::Call { name, args } if name == "distinct" => (
                agg::count_distinct(to_df(&args[0], table, Ctx::Projection)?),
                None,
            ),
            ast::Expr::Distinct(id) => (
                agg::count_distinct(var_ref(&id.0, None, table, Ctx::Projection)?),
                None,
            ),
            _ => (agg::count(arg(0)?), None),
        },
        "sum" => (agg::sum(arg(0)?), None),
        "mean" => (agg::avg(cast(arg(0)?, DataType::Float64)), None),
        "median" => (agg::median(cast(arg(0)?, DataType::Float64)), None),
        "stddev" => (agg::stddev(cast(arg(0)?, DataType::Float64)), None),
        "spread" => (agg::max(arg(0)?) - agg::min(arg(0)?), None),
        "first" => (
            agg::first_value(arg(0)?, vec![time_asc()]),
            Some(agg::first_value(
                ident(TIME),
                vec![arg(0)?.is_null().sort(true, false), time_asc()],
            )),
        ),
        "last" => (
            agg::last_value(arg(0)?, vec![time_asc()]),
            Some(agg::first_value(
                ident(TIME),
                vec![
                    arg(0)?.is_null().sort(true, false),
                    ident(TIME).sort(false, false),
                ],
            )),
        ),
        "max" => (
            agg::max(arg(0)?),
            Some(agg::first_value(
                ident(TIME),
                vec![arg(0)?.sort(false, false), time_asc()],
            )),
        ),
        "min" => (
            agg::min(arg(0)?),
            Some(agg::first_value(
                ident(TIME),
                vec![arg(0)?.sort(true, false), time_asc()],
            )),
        ),
        other => match semantic::classify_function(other) {
            Some(FunctionKind::Unplannable) => {
                return plan_err(format!("Invalid function '{other}'"))
            }
            _ => return not_implemented(format!("{other}()")),
        },
    })
}

fn plan_aggregate(
    table: &Table,
    split: &SplitCondition,
    group_tags: &[String],
    fields: &[(ast::Expr, String)],
    info: &semantic::SelectInfo,
) -> Result<LogicalPlan> {
    let b = scan_present(table, split, fields)?;
    let mut group: Vec<DfExpr> = Vec::new();
    if let Some(g) = &info.group_by_time {
        group.push(window_start(g, ident(TIME)).alias(TIME));
    }
    group.extend(group_tags.iter().map(|t| tag_column(table, t).alias(t)));

    let mut aggs: Vec<DfExpr> = Vec::new();
    let mut selector_time: Option<DfExpr> = None;
    // Whether `selector_time` is computed from aggregate outputs (percentile) rather than
    // being an aggregate itself.
    let mut selector_time_is_post = false;
    let mut finals = Vec::new();
    for (e, name) in fields {
        let out = to_df_with(e, table, Ctx::Projection, &mut |call| {
            let ast::Expr::Call { name, .. } = call else {
                return Ok(None);
            };
            match semantic::classify_function(name) {
                Some(FunctionKind::Aggregate | FunctionKind::Selector) => {}
                Some(FunctionKind::Transformation) => return not_implemented(format!("{name}()")),
                _ => return Ok(None),
            }
            if let ast::Expr::Call { name, args } = call {
                if name == "percentile" {
                    // Nearest rank, as InfluxDB: the value at 1-based rank
                    // floor(n * p / 100 + 0.5) of the sorted values; none if out of range.
                    let p = match args[1].unnested() {
                        ast::Expr::Literal(Literal::Integer(v)) => *v as f64,
                        ast::Expr::Literal(Literal::Float(v)) => *v,
                        _ => return plan_err("expected float argument in percentile()"),
                    };
                    let v = to_df(&args[0], table, Ctx::Projection)?;
                    let alias = format!("__agg{}", aggs.len());
                    let sorted = |e: DfExpr| -> Result<DfExpr> {
                        agg::array_agg(e)
                            .order_by(vec![
                                v.clone().sort(true, false),
                                ident(TIME).sort(true, false),
                            ])
                            .filter(v.clone().is_not_null())
                            .build()
                    };
                    aggs.push(sorted(v.clone())?.alias(&alias));
                    let n = cast(
                        datafusion::functions_nested::expr_fn::cardinality(ident(&alias)),
                        DataType::Float64,
                    );
                    let rank = cast(
                        datafusion::functions::math::expr_fn::floor(n * lit(p / 100.0) + lit(0.5)),
                        DataType::Int64,
                    );
                    if info.single_selector && info.group_by_time.is_none() && fields.len() == 1 {
                        let times = format!("__agg{}", aggs.len());
                        aggs.push(sorted(ident(TIME))?.alias(&times));
                        selector_time = Some(datafusion::functions_nested::expr_fn::array_element(
                            ident(&times),
                            rank.clone(),
                        ));
                        selector_time_is_post = true;
                    }
                    return Ok(Some(datafusion::functions_nested::expr_fn::array_element(
                        ident(&alias),
                        rank,
                    )));
                }
            }
            let (a, t) = aggregate_call(call, table)?;
            let alias = format!("__agg{}", aggs.len());
            aggs.push(a.alias(&alias));
            if info.single_selector && info.group_by_time.is_none() && fields.len() == 1 {
                selector_time = t;
            }
            Ok(Some(ident(alias)))
        })?;
        finals.push(out.alias(name));
    }
    let time = if info.group_by_time.is_some() {
        ident(TIME)
    } else if let Some(t) = selector_time {
        if selector_time_is_post {
            t
        } else {
            aggs.push(t.alias("__time"));
            ident("__time")
        }
    } else {
        // As in InfluxDB 1.x: the start of the query's time range, epoch 0 without one.
        ts(split.range.lower.unwrap_or(0))
    };
    aggs.push(agg::count(lit(1)).alias("__rows"));
    let mut b = b.aggregate(group, aggs)?;
    // An aggregate over no rows gives no row, unlike SQL's one row of nulls.
    b = b.filter(ident("__rows").gt(lit(0i64)))?;
    let mut proj = vec![
        lit(table.name.as_str()).alias(MEASUREMENT_COLUMN),
        time.alias(TIME),
    ];
    proj.extend(group_tags.iter().map(ident));
    proj.extend(finals);
    b.project(proj)?.build()
}

/// The `distinct`/`mode` call when it is the whole projection.
fn distinct_or_mode(fields: &[(ast::Expr, String)]) -> Option<(&'static str, ast::Expr)> {
    match fields {
        [(e, _)] => match e.unnested() {
            ast::Expr::Distinct(id) => Some(("distinct", ast::Expr::var(id.0.clone()))),
            ast::Expr::Call { name, args } if name == "distinct" && args.len() == 1 => {
                Some(("distinct", args[0].clone()))
            }
            ast::Expr::Call { name, args } if name == "mode" && args.len() == 1 => {
                Some(("mode", args[0].clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// `distinct(f)`: one row per distinct value; `mode(f)`: the most frequent value (the smallest
/// among equally frequent ones). Stamped like other aggregates.
fn plan_distinct_mode(
    table: &Table,
    split: &SplitCondition,
    group_tags: &[String],
    name: &str,
    arg: ast::Expr,
    out_name: &str,
) -> Result<LogicalPlan> {
    let fields = [(arg.clone(), out_name.to_string())];
    let mut base: Vec<DfExpr> = group_tags
        .iter()
        .map(|t| tag_column(table, t).alias(t))
        .collect();
    base.push(to_df(&arg, table, Ctx::Projection)?.alias("__v"));
    base.push(ident(TIME));
    let mut group: Vec<DfExpr> = group_tags.iter().map(ident).collect();
    group.push(ident("__v"));
    let mut b = scan_present(table, split, &fields)?
        .project(base)?
        .filter(ident("__v").is_not_null())?
        .aggregate(
            group,
            vec![
                agg::count(lit(1)).alias("__n"),
                agg::min(ident(TIME)).alias("__first"),
            ],
        )?;
    if name == "mode" {
        let rn = row_number()
            .partition_by(group_tags.iter().map(ident).collect())
            .order_by(vec![
                ident("__n").sort(false, false),
                ident("__v").sort(true, false),
            ])
            .build()?
            .alias("__rn");
        b = b.window(vec![rn])?.filter(ident("__rn").eq(lit(1u64)))?;
    }
    let mut proj = vec![
        lit(table.name.as_str()).alias(MEASUREMENT_COLUMN),
        ts(split.range.lower.unwrap_or(0)).alias(TIME),
    ];
    proj.extend(group_tags.iter().map(ident));
    proj.push(ident("__v").alias(out_name));
    proj.push(ident("__first"));
    b.project(proj)?.build()
}

/// The `top`/`bottom` call when it is the whole projection.
fn top_bottom(fields: &[(ast::Expr, String)]) -> Option<(&str, &[ast::Expr])> {
    match fields {
        [(e, _)] => match e.unnested() {
            ast::Expr::Call { name, args } if name == "top" || name == "bottom" => {
                Some((name.as_str(), args.as_slice()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// `top(f[, tag...], N)` / `bottom(...)`: the N largest (smallest) points of each series (and
/// window), earliest first among equal values, listed in time order with their own times.
/// With tags, each distinct tag combination contributes only its best point, and the tags
/// become output columns.
fn plan_top_bottom(
    table: &Table,
    split: &SplitCondition,
    group_tags: &[String],
    name: &str,
    args: &[ast::Expr],
    out_name: &str,
    info: &semantic::SelectInfo,
) -> Result<LogicalPlan> {
    let n = match args.last().map(ast::Expr::unnested) {
        Some(ast::Expr::Literal(Literal::Integer(n))) if *n > 0 => *n as u64,
        _ => return plan_err(format!("expected integer as last argument in {name}()")),
    };
    let descending = name == "top";
    let tag_args: Vec<String> = args[1..args.len() - 1]
        .iter()
        .filter_map(|a| match a.unnested() {
            ast::Expr::VarRef { name, .. } => Some(name.0.clone()),
            _ => None,
        })
        .collect();
    let field = &args[0];
    let fields = [(field.clone(), out_name.to_string())];
    let b = scan_present(table, split, &fields)?;
    let mut base = vec![ident(TIME)];
    base.extend(group_tags.iter().map(|t| tag_column(table, t).alias(t)));
    base.push(to_df(field, table, Ctx::Projection)?.alias("__v"));
    for (i, t) in tag_args.iter().enumerate() {
        // As an output column a missing tag is null, as in a raw SELECT of the tag.
        let v = match table.kind(t) {
            Some(Kind::Tag) => cast(ident(t), DataType::Utf8),
            _ => lit(ScalarValue::Utf8(None)),
        };
        base.push(v.alias(format!("__t{i}")));
    }
    let mut partition: Vec<DfExpr> = group_tags.iter().map(ident).collect();
    if let Some(g) = &info.group_by_time {
        base.push(window_start(g, ident(TIME)).alias("__window"));
        partition.push(ident("__window"));
    }
    let mut b = b.project(base)?;
    let order = vec![
        ident("__v").sort(!descending, false),
        ident(TIME).sort(true, false),
    ];
    let rank = |partition: Vec<DfExpr>, alias: &str| -> Result<DfExpr> {
        Ok(row_number()
            .partition_by(partition)
            .order_by(order.clone())
            .build()?
            .alias(alias))
    };
    if !tag_args.is_empty() {
        // The best point of each tag combination first.
        let mut per_tag = partition.clone();
        per_tag.extend((0..tag_args.len()).map(|i| ident(format!("__t{i}"))));
        b = b
            .window(vec![rank(per_tag, "__rt")?])?
            .filter(ident("__rt").eq(lit(1u64)))?;
    }
    b = b
        .window(vec![rank(partition, "__rn")?])?
        .filter(ident("__rn").lt_eq(lit(n)))?;
    let mut proj = vec![
        lit(table.name.as_str()).alias(MEASUREMENT_COLUMN),
        ident(TIME),
    ];
    proj.extend(group_tags.iter().map(ident));
    proj.push(ident("__v").alias(out_name));
    for (i, t) in tag_args.iter().enumerate() {
        proj.push(ident(format!("__t{i}")).alias(t));
    }
    b.project(proj)?.build()
}

/// Every projection is an `integral()` call (with other functions beside it 1.x answers in
/// rows of their own, which is not planned).
fn is_integral_query(fields: &[(ast::Expr, String)]) -> bool {
    let integral =
        |e: &ast::Expr| matches!(e.unnested(), ast::Expr::Call { name, .. } if name == "integral");
    !fields.is_empty() && fields.iter().all(|(e, _)| integral(e))
}

/// `integral(field[, unit])` as InfluxDB 1.x computes it: the trapezoids between consecutive
/// points of each series, in time order. With `GROUP BY time()` a trapezoid that crosses the
/// end of its first point's window is split there, at the linearly interpolated value: the
/// first part counts for that window, the rest for the window of its second point (even when
/// empty windows lie between). Windows are those holding points, except a series' last one
/// when its only point is at the window start; empty windows are not filled. Without
/// `GROUP BY time()` the result is stamped at epoch 0, whatever the time range.
fn plan_integral(
    table: &Table,
    split: &SplitCondition,
    group_tags: &[String],
    fields: &[(ast::Expr, String)],
    info: &semantic::SelectInfo,
) -> Result<LogicalPlan> {
    let mut plans = Vec::new();
    for (i, (e, _)) in fields.iter().enumerate() {
        let ast::Expr::Call { args, .. } = e.unnested() else {
            unreachable!("is_integral_query checked it")
        };
        let unit = duration_arg(args, 1, 1_000_000_000) as f64;
        let v = to_df(&args[0], table, Ctx::Projection)?;
        let mut base: Vec<DfExpr> = group_tags
            .iter()
            .map(|t| tag_column(table, t).alias(t))
            .collect();
        base.push(ident(TIME));
        base.push(cast(v.clone(), DataType::Float64).alias("__v"));
        let points = scan(table, split)?.filter(v.is_not_null())?.project(base)?;
        let partition: Vec<DfExpr> = group_tags.iter().map(ident).collect();
        let lag = |c: &str, alias: &str| -> Result<DfExpr> {
            Ok(window_of(
                datafusion::functions_window::lead_lag::lag_udwf(),
                vec![ident(c), lit(1i64)],
                &partition,
                None,
            )?
            .alias(alias))
        };
        let pairs = points.window(vec![lag(TIME, "__pt")?, lag("__v", "__pv")?])?;
        let f64_ = |e: DfExpr| cast(e, DataType::Float64);
        let ns = |e: DfExpr| cast(e, DataType::Int64);
        let window = |t: DfExpr| match &info.group_by_time {
            Some(g) => window_start(g, t),
            None => ts(0),
        };
        // A window start (on the windows' clock) as the instant it names.
        let instant = |w: DfExpr| match &info.group_by_time {
            Some(g) => window_instant(g, w),
            None => w,
        };
        let (pt, pv, t, cur) = (ident("__pt"), ident("__pv"), ident(TIME), ident("__v"));
        let mut cols: Vec<DfExpr> = group_tags.iter().map(ident).collect();
        cols.extend([
            t.clone(),
            pt.clone(),
            pv.clone(),
            cur.clone(),
            window(t.clone()).alias("__w"),
            window(pt.clone()).alias("__w0"),
        ]);
        let pairs = pairs.project(cols)?;
        let interval = info.group_by_time.map_or(0, |g| g.interval);
        let end0 = ns(instant(cast(
            ns(ident("__w0")) + lit(interval),
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, None),
        )));
        let crossing = pt
            .clone()
            .is_not_null()
            .and(ident("__w").not_eq(ident("__w0")));
        // 1.x's operations in 1.x's order, for the same float rounding.
        let at_end = (cur.clone() - pv.clone()) / f64_(ns(t.clone()) - ns(pt.clone()))
            * f64_(end0.clone() - ns(pt.clone()))
            + pv.clone();
        let whole = lit(0.5)
            * (cur.clone() + pv.clone())
            * (f64_(ns(t.clone()) - ns(pt.clone())) / lit(unit));
        let first_part = lit(0.5)
            * (at_end.clone() + pv.clone())
            * (f64_(end0.clone() - ns(pt.clone())) / lit(unit));
        // 1.x's integer reducer keeps the previous point's own value after the split and
        // uses the interpolated one in place of the current point's: reproduced as is.
        let integer = match args[0].unnested() {
            ast::Expr::VarRef { name, .. } => matches!(
                table.columns.get(&name.0),
                Some((Kind::Field, DataType::Int64 | DataType::UInt64))
            ),
            _ => false,
        };
        let second_part = if integer {
            lit(0.5) * (at_end + pv.clone()) * (f64_(ns(t.clone()) - end0) / lit(unit))
        } else {
            lit(0.5) * (cur.clone() + at_end) * (f64_(ns(t.clone()) - end0) / lit(unit))
        };
        let case = |branches: Vec<(DfExpr, DfExpr)>, otherwise: DfExpr| {
            DfExpr::Case(datafusion::logical_expr::expr::Case::new(
                None,
                branches
                    .into_iter()
                    .map(|(w, t)| (Box::new(w), Box::new(t)))
                    .collect(),
                Some(Box::new(otherwise)),
            ))
        };
        let main_part = case(
            vec![
                (pt.clone().is_null(), lit(0.0)),
                (crossing.clone(), second_part),
            ],
            whole,
        );
        // One row per point (its share for its own window) and one more per crossing pair
        // (the first part, for the previous window), each ordered by the point's time.
        let row = |w: &str, c: DfExpr, point: DfExpr| -> Vec<DfExpr> {
            let mut r: Vec<DfExpr> = group_tags.iter().map(ident).collect();
            r.extend([
                ident(w).alias("__win"),
                ident(TIME).alias("__key"),
                c.alias("__c"),
                point.alias("__point"),
            ]);
            r
        };
        let own = pairs
            .clone()
            .project(row("__w", main_part, ident(TIME)))?
            .build()?;
        let crossed = pairs
            .filter(crossing)?
            .project(row(
                "__w0",
                first_part,
                lit(ScalarValue::TimestampNanosecond(None, None)),
            ))?
            .build()?;
        let mut win_partition = partition.clone();
        win_partition.push(ident("__win"));
        let running = DfExpr::from(datafusion::logical_expr::expr::WindowFunction::new(
            datafusion::functions_aggregate::sum::sum_udaf(),
            vec![ident("__c")],
        ))
        .partition_by(win_partition)
        .order_by(vec![ident("__key").sort(true, false)])
        .window_frame(datafusion::logical_expr::WindowFrame::new_bounds(
            datafusion::logical_expr::WindowFrameUnits::Rows,
            datafusion::logical_expr::WindowFrameBound::Preceding(ScalarValue::UInt64(None)),
            datafusion::logical_expr::WindowFrameBound::CurrentRow,
        ))
        .build()?
        .alias("__run");
        let mut group: Vec<DfExpr> = partition.clone();
        group.push(ident("__win"));
        let last_window = DfExpr::from(datafusion::logical_expr::expr::WindowFunction::new(
            datafusion::functions_aggregate::min_max::max_udaf(),
            vec![ident("__win")],
        ))
        .partition_by(partition.clone())
        .build()?
        .alias("__last_win");
        let sums =
            LogicalPlanBuilder::from(own)
                .union(crossed)?
                .window(vec![running])?
                .aggregate(
                    group,
                    vec![
                        agg::first_value(ident("__run"), vec![ident("__key").sort(false, false)])
                            .alias("__sum"),
                        agg::max(ident("__point")).alias("__last_point"),
                    ],
                )?
                .window(vec![last_window])?
                // A series' last window is not reported when its last point is at the window
                // start (it holds no area); without GROUP BY time() that start is the range's.
                .filter(ident("__win").not_eq(ident("__last_win")).or(
                    ident("__last_point").not_eq(match info.group_by_time {
                        Some(_) => instant(ident("__win")),
                        None => ts(split.range.lower.unwrap_or(0)),
                    }),
                ))?;
        let mut proj = vec![
            lit(table.name.as_str()).alias(MEASUREMENT_COLUMN),
            instant(ident("__win")).alias(TIME),
        ];
        proj.extend(group_tags.iter().map(ident));
        for (j, (_, other)) in fields.iter().enumerate() {
            proj.push(if j == i {
                ident("__sum").alias(other)
            } else {
                lit(ScalarValue::Float64(None)).alias(other)
            });
        }
        plans.push(sums.project(proj)?.build()?);
    }
    if plans.len() == 1 {
        return Ok(plans.remove(0));
    }
    // Several integrals: one row per window and series, each column from its own points.
    let mut b = LogicalPlanBuilder::from(plans[0].clone());
    for p in &plans[1..] {
        b = b.union(p.clone())?;
    }
    let mut group = vec![ident(MEASUREMENT_COLUMN), ident(TIME)];
    group.extend(group_tags.iter().map(ident));
    let aggs: Vec<DfExpr> = fields
        .iter()
        .map(|(_, n)| agg::max(ident(n)).alias(n))
        .collect();
    b.aggregate(group, aggs)?.build()
}

fn is_transformation_query(fields: &[(ast::Expr, String)]) -> bool {
    fields.iter().any(|(e, _)| {
        matches!(e.unnested(), ast::Expr::Call { name, .. }
            if semantic::classify_function(name) == Some(FunctionKind::Transformation))
    })
}

fn window_of(
    fun: impl Into<datafusion::logical_expr::expr::WindowFunctionDefinition>,
    args: Vec<DfExpr>,
    partition: &[DfExpr],
    frame: Option<datafusion::logical_expr::WindowFrame>,
) -> Result<DfExpr> {
    let w = DfExpr::from(datafusion::logical_expr::expr::WindowFunction::new(
        fun, args,
    ))
    .partition_by(partition.to_vec())
    .order_by(vec![ident(TIME).sort(true, false)]);
    match frame {
        Some(f) => w.window_frame(f).build(),
        None => w.build(),
    }
}

fn duration_arg(args: &[ast::Expr], i: usize, default: i64) -> i64 {
    match args.get(i).map(ast::Expr::unnested) {
        Some(ast::Expr::Literal(Literal::Duration(d))) => *d,
        _ => default,
    }
}

/// Row-to-row transformations over a series' raw points (ordered by time): each output row is
/// computed from the current and previous points, so the first point (the first N-1 for
/// `moving_average`) yields no row, and the `non_negative_` variants drop negative results.
///
/// With `GROUP BY time()` (`windowed`), the input points are the windows of the inner
/// aggregate instead: empty windows are skipped under the default fill (the transformation
/// spans the gap), and take the fill value under `fill(<n>)` / `fill(previous)`.
fn plan_transformations(
    table: &Table,
    split: &SplitCondition,
    group_tags: &[String],
    fields: &[(ast::Expr, String)],
    windowed: Option<(&semantic::SelectInfo, Option<Fill>)>,
) -> Result<LogicalPlan> {
    use datafusion::logical_expr::{WindowFrame, WindowFrameBound, WindowFrameUnits};
    let mut calls = Vec::new();
    for (e, _) in fields {
        let ast::Expr::Call { name, args } = e.unnested() else {
            return not_implemented("transformations mixed with other expressions");
        };
        if semantic::classify_function(name) != Some(FunctionKind::Transformation) {
            return not_implemented("transformations mixed with other functions");
        }
        calls.push((name.as_str(), args));
    }
    let b = match windowed {
        Some((info, fill)) => {
            let inner: Vec<(ast::Expr, String)> = calls
                .iter()
                .enumerate()
                .map(|(i, (_, args))| (args[0].clone(), format!("__v{i}")))
                .collect();
            let p = plan_aggregate(table, split, group_tags, &inner, info)?;
            let p = match (info.group_by_time, fill) {
                (Some(g), Some(f @ (Fill::Value(_) | Fill::Previous | Fill::Linear)))
                    if !split.empty =>
                {
                    gap_fill(p, table, group_tags, &inner, g, split, f)?
                }
                _ => p,
            };
            let p = match &info.group_by_time {
                Some(g) => window_times_as_instants(p, g)?,
                None => p,
            };
            // Windows without a value (e.g. `mean` over nothing) are not points.
            let mut present: Option<DfExpr> = None;
            for (_, name) in &inner {
                let c = ident(name).is_not_null();
                present = Some(match present.take() {
                    Some(p) => p.or(c),
                    None => c,
                });
            }
            let b = LogicalPlanBuilder::from(p);
            match present {
                Some(c) => b.filter(c)?,
                None => b,
            }
        }
        None => {
            let mut base = vec![
                lit(table.name.as_str()).alias(MEASUREMENT_COLUMN),
                ident(TIME),
            ];
            base.extend(group_tags.iter().map(|t| tag_column(table, t).alias(t)));
            for (i, (_, args)) in calls.iter().enumerate() {
                base.push(to_df(&args[0], table, Ctx::Projection)?.alias(format!("__v{i}")));
            }
            scan_present(table, split, fields)?.project(base)?
        }
    };
    let partition: Vec<DfExpr> = group_tags.iter().map(ident).collect();
    let lag = |e: DfExpr| -> Result<DfExpr> {
        window_of(
            datafusion::functions_window::lead_lag::lag_udwf(),
            vec![e, lit(1i64)],
            &partition,
            None,
        )
    };
    // Window outputs get plain names: their generated names depend on column qualification.
    let mut windows = vec![lag(ident(TIME))?.alias("__prev_time")];
    let mut per_field = Vec::new();
    let mut counts: Vec<Option<DfExpr>> = Vec::new();
    for (i, (name, args)) in calls.iter().enumerate() {
        let v = ident(format!("__v{i}"));
        let w = match *name {
            "difference" | "non_negative_difference" | "derivative" | "non_negative_derivative" => {
                Some(lag(v)?)
            }
            "cumulative_sum" => Some(window_of(
                datafusion::functions_aggregate::sum::sum_udaf(),
                vec![v],
                &partition,
                Some(WindowFrame::new_bounds(
                    WindowFrameUnits::Rows,
                    WindowFrameBound::Preceding(ScalarValue::UInt64(None)),
                    WindowFrameBound::CurrentRow,
                )),
            )?),
            "moving_average" => {
                let n = match args[1].unnested() {
                    ast::Expr::Literal(Literal::Integer(n)) => *n as u64,
                    _ => return plan_err("second argument for moving_average must be an integer"),
                };
                let frame = WindowFrame::new_bounds(
                    WindowFrameUnits::Rows,
                    WindowFrameBound::Preceding(ScalarValue::UInt64(Some(n - 1))),
                    WindowFrameBound::CurrentRow,
                );
                let count = window_of(
                    datafusion::functions_aggregate::count::count_udaf(),
                    vec![v.clone()],
                    &partition,
                    Some(frame.clone()),
                )?;
                let count = count.alias(format!("__count{i}"));
                windows.push(count.clone());
                counts.push(Some(count));
                Some(window_of(
                    datafusion::functions_aggregate::average::avg_udaf(),
                    vec![cast(v, DataType::Float64)],
                    &partition,
                    Some(frame),
                )?)
            }
            "elapsed" => None,
            other => return not_implemented(format!("{other}()")),
        };
        if counts.len() <= i {
            counts.push(None);
        }
        let w = w.map(|w| w.alias(format!("__w{i}")));
        if let Some(w) = &w {
            windows.push(w.clone());
        }
        per_field.push(w);
    }
    let name_of = |e: &DfExpr| match e {
        DfExpr::Alias(a) => ident(a.name.clone()),
        e => ident(e.schema_name().to_string()),
    };
    let prev_time = name_of(&windows[0]);
    let b = b.window(windows.clone())?;
    let mut out = vec![ident(MEASUREMENT_COLUMN), ident(TIME)];
    out.extend(group_tags.iter().map(ident));
    let mut keep: Option<DfExpr> = None;
    let mut and_keep = |c: DfExpr| {
        keep = Some(match keep.take() {
            Some(k) => k.and(c),
            None => c,
        })
    };
    let ns = |e: DfExpr| cast(e, DataType::Int64);
    for (i, ((name, args), w)) in calls.iter().zip(&per_field).enumerate() {
        let v = ident(format!("__v{i}"));
        let dt = ns(ident(TIME)) - ns(prev_time.clone());
        let value = match *name {
            "difference" | "non_negative_difference" => v - name_of(w.as_ref().expect("lag")),
            "derivative" | "non_negative_derivative" => {
                // Over GROUP BY time() windows the unit defaults to the interval, as in 1.x.
                let default_unit = windowed
                    .and_then(|(info, _)| info.group_by_time)
                    .map_or(1_000_000_000, |g| g.interval);
                let unit = duration_arg(args, 1, default_unit);
                (cast(v, DataType::Float64)
                    - cast(name_of(w.as_ref().expect("lag")), DataType::Float64))
                    / (cast(dt, DataType::Float64) / lit(unit as f64))
            }
            "elapsed" => dt / lit(duration_arg(args, 1, 1)),
            "cumulative_sum" => name_of(w.as_ref().expect("sum")),
            "moving_average" => {
                let n = match args[1].unnested() {
                    ast::Expr::Literal(Literal::Integer(n)) => *n,
                    _ => 2,
                };
                // Full windows only: the first N-1 points give no row.
                let count = name_of(counts[i].as_ref().expect("count window"));
                and_keep(count.eq(lit(n)));
                name_of(w.as_ref().expect("avg"))
            }
            _ => unreachable!("checked above"),
        };
        if !matches!(*name, "cumulative_sum" | "moving_average") {
            and_keep(prev_time.clone().is_not_null());
        }
        if name.starts_with("non_negative_") {
            and_keep(value.clone().gt_eq(lit(0)));
        }
        out.push(value.alias(&fields[i].1));
    }
    let b = match keep {
        Some(k) => b.filter(k)?,
        None => b,
    };
    b.project(out)?.build()
}

/// Most windows one series may have; more is almost always a missing time bound.
const MAX_WINDOWS: i64 = 1_000_000;

/// Adds the empty `GROUP BY time()` windows of every series and fills them: windows run from
/// the lower time bound (or the first window with data) to the upper bound.
fn gap_fill(
    aggregated: LogicalPlan,
    table: &Table,
    tags: &[String],
    fields: &[(ast::Expr, String)],
    g: semantic::GroupByTime,
    split: &SplitCondition,
    fill: Fill,
) -> Result<LogicalPlan> {
    let stride = lit(ScalarValue::IntervalMonthDayNano(Some(
        IntervalMonthDayNano::new(0, 0, g.interval),
    )));
    // Window starts on the windows' clock (wall-clock time in a zone whose offset changes).
    let upper = g.window_start(window_clock(
        &g,
        split.range.upper.expect("set for GROUP BY time"),
    ));
    if let Some(l) = split.range.lower {
        let lower = g.window_start(window_clock(&g, l));
        if (upper as i128 - lower as i128) / g.interval as i128 > MAX_WINDOWS as i128 {
            return plan_err(format!(
                "too many windows in the GROUP BY time() interval (more than {MAX_WINDOWS}); narrow the time range"
            ));
        }
        return gap_fill_node(aggregated, table, tags, fields, stride, lower, upper, fill);
    }
    // No lower bound: each series' windows start at its first window with data, as in 1.x:
    // the windows from the earliest one, crossed with the series, from each series' own.
    // (A per-series generate_series + unnest would be shorter, but DataFusion keeps the
    // aggregate's "one row per series" through the unnest and then drops `time` from the
    // final sort.)
    let start = LogicalPlanBuilder::from(aggregated.clone())
        .aggregate(
            Vec::<DfExpr>::new(),
            vec![agg::min(ident(TIME)).alias("__lo")],
        )?
        .filter(ident("__lo").is_not_null())?
        .build()?;
    let windows = LogicalPlanBuilder::from(start)
        .project(vec![datafusion::functions_nested::expr_fn::gen_series(
            ident("__lo"),
            ts(upper),
            stride,
        )
        .alias("__w")])?
        .unnest_column("__w")?
        .project(vec![cast(
            ident("__w"),
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, None),
        )
        .alias("__wt")])?
        .build()?;
    let key_names: Vec<String> = (0..tags.len()).map(|i| format!("__k{i}")).collect();
    let keys = LogicalPlanBuilder::from(aggregated.clone())
        .aggregate(
            tags.iter().map(ident).collect::<Vec<_>>(),
            vec![agg::min(ident(TIME)).alias("__first")],
        )?
        .project(
            tags.iter()
                .zip(&key_names)
                .map(|(t, k)| ident(t).alias(k))
                .chain(std::iter::once(ident("__first"))),
        )?
        .build()?;
    let series_windows = LogicalPlanBuilder::from(keys)
        .cross_join(windows)?
        .filter(ident("__wt").gt_eq(ident("__first")))?
        .build()?;
    let mut left_keys: Vec<datafusion::common::Column> = key_names
        .iter()
        .map(datafusion::common::Column::from_name)
        .collect();
    left_keys.push(datafusion::common::Column::from_name("__wt"));
    let mut right_keys: Vec<datafusion::common::Column> = tags
        .iter()
        .map(datafusion::common::Column::from_name)
        .collect();
    right_keys.push(datafusion::common::Column::from_name(TIME));
    let joined = LogicalPlanBuilder::from(series_windows).join(
        aggregated,
        datafusion::logical_expr::JoinType::Left,
        (left_keys, right_keys),
        None,
    )?;
    let partition: Vec<DfExpr> = key_names.iter().map(ident).collect();
    let mut proj = vec![
        lit(table.name.as_str()).alias(MEASUREMENT_COLUMN),
        ident("__wt").alias(TIME),
    ];
    proj.extend(tags.iter().zip(&key_names).map(|(t, k)| ident(k).alias(t)));
    for (e, name) in fields {
        let v = ident(name);
        let filled = match fill {
            // InfluxDB 1.x reports an empty window's count as 0 under the default fill.
            Fill::Null if matches!(e.unnested(), ast::Expr::Call { name, .. } if name == "count") => {
                f::coalesce(vec![v, lit(0i64)])
            }
            Fill::Null | Fill::None => v,
            Fill::Value(n) => f::coalesce(vec![
                v,
                match n {
                    Number::Integer(i) => lit(i),
                    Number::Unsigned(u) => lit(u),
                    Number::Float(x) => lit(x),
                },
            ]),
            Fill::Previous => datafusion::functions_window::expr_fn::last_value(v)
                .null_treatment(datafusion::logical_expr::expr::NullTreatment::IgnoreNulls)
                .partition_by(partition.clone())
                .order_by(vec![ident("__wt").sort(true, false)])
                .build()?,
            // Interpolated below, once the empty windows exist.
            Fill::Linear => v,
        };
        proj.push(filled.alias(name));
    }
    if matches!(fill, Fill::Linear) {
        let b = joined.project(proj)?;
        return linear_fill(b, tags, fields, g.interval)?.build();
    }
    let builder = if matches!(fill, Fill::Previous) {
        // Window expressions must be computed before they can be projected.
        let exprs: Vec<DfExpr> = proj.iter().skip(2 + tags.len()).cloned().collect();
        let windowed: Vec<DfExpr> = exprs
            .iter()
            .map(|e| match e {
                DfExpr::Alias(a) => (*a.expr).clone(),
                e => e.clone(),
            })
            .collect();
        let b = joined.window(windowed.clone())?;
        let mut p2 = proj[..2 + tags.len()].to_vec();
        for (w, (_, name)) in windowed.iter().zip(fields) {
            p2.push(
                DfExpr::Column(datafusion::common::Column::from_name(
                    w.schema_name().to_string(),
                ))
                .alias(name),
            );
        }
        b.project(p2)?
    } else {
        joined.project(proj)?
    };
    builder.build()
}

/// `fill(linear)` over rows that already have every window (empty ones null): each null
/// between two known values of its series is the straight line between them, at its window
/// time; nulls before the first or after the last known value stay null. Integers are
/// truncated, as 1.x does.
fn linear_fill(
    b: LogicalPlanBuilder,
    tags: &[String],
    fields: &[(ast::Expr, String)],
    interval: i64,
) -> Result<LogicalPlanBuilder> {
    use datafusion::logical_expr::expr::NullTreatment;
    use datafusion::logical_expr::{WindowFrame, WindowFrameBound, WindowFrameUnits};
    let partition: Vec<DfExpr> = tags.iter().map(ident).collect();
    let schema = Arc::clone(b.schema());
    let before = WindowFrame::new_bounds(
        WindowFrameUnits::Rows,
        WindowFrameBound::Preceding(ScalarValue::UInt64(None)),
        WindowFrameBound::CurrentRow,
    );
    let after = WindowFrame::new_bounds(
        WindowFrameUnits::Rows,
        WindowFrameBound::CurrentRow,
        WindowFrameBound::Following(ScalarValue::UInt64(None)),
    );
    let nearest = |e: DfExpr, frame: &WindowFrame, last: bool, alias: String| -> Result<DfExpr> {
        let f = if last {
            datafusion::functions_window::expr_fn::last_value(e)
        } else {
            datafusion::functions_window::expr_fn::first_value(e)
        };
        Ok(f.null_treatment(NullTreatment::IgnoreNulls)
            .partition_by(partition.clone())
            .order_by(vec![ident(TIME).sort(true, false)])
            .window_frame(frame.clone())
            .build()?
            .alias(alias))
    };
    let mut windows = Vec::new();
    let mut out: Vec<DfExpr> = vec![ident(MEASUREMENT_COLUMN), ident(TIME)];
    out.extend(tags.iter().map(ident));
    let as_f64 = |e: DfExpr| cast(e, DataType::Float64);
    for (i, (_, name)) in fields.iter().enumerate() {
        let ty = schema
            .field_with_unqualified_name(name)?
            .data_type()
            .clone();
        if !ty.is_numeric() {
            out.push(ident(name));
            continue;
        }
        let v = ident(name);
        let known_time = DfExpr::Case(datafusion::logical_expr::expr::Case::new(
            None,
            vec![(
                Box::new(v.clone().is_not_null()),
                Box::new(cast(ident(TIME), DataType::Int64)),
            )],
            None,
        ));
        windows.push(nearest(v.clone(), &before, true, format!("__pv{i}"))?);
        windows.push(nearest(
            known_time.clone(),
            &before,
            true,
            format!("__pt{i}"),
        )?);
        windows.push(nearest(v.clone(), &after, false, format!("__nv{i}"))?);
        windows.push(nearest(known_time, &after, false, format!("__nt{i}"))?);
        // Slope × distance + previous value over window numbers (truncated time / interval),
        // in 1.x's order: the same float rounding.
        let number = |e: DfExpr| e / lit(interval);
        let (pv, pt, nv, nt) = (
            as_f64(ident(format!("__pv{i}"))),
            number(ident(format!("__pt{i}"))),
            as_f64(ident(format!("__nv{i}"))),
            number(ident(format!("__nt{i}"))),
        );
        let line = (nv - pv.clone()) / as_f64(nt - pt.clone())
            * as_f64(number(cast(ident(TIME), DataType::Int64)) - pt)
            + pv;
        out.push(f::coalesce(vec![v, cast(line, ty)]).alias(name));
    }
    if windows.is_empty() {
        return Ok(b);
    }
    b.window(windows)?.project(out)
}

/// Gap filling with both ends of the range known: the shared `GapFill` node reads the
/// aggregate once (the join-based plan below reads it up to three times, for the window
/// bounds, the series and the values).
#[allow(clippy::too_many_arguments)]
fn gap_fill_node(
    aggregated: LogicalPlan,
    table: &Table,
    tags: &[String],
    fields: &[(ast::Expr, String)],
    stride: DfExpr,
    lower: i64,
    upper: i64,
    fill: Fill,
) -> Result<LogicalPlan> {
    use gnomon_query::functions::gapfill::{gap_fill_plan, FillStrategy};
    let mut strategies = Vec::with_capacity(fields.len());
    for (e, name) in fields {
        let strategy = match fill {
            // InfluxDB 1.x reports an empty window's count as 0 under the default fill.
            Fill::Null if matches!(e.unnested(), ast::Expr::Call { name, .. } if name == "count") => {
                FillStrategy::Value(ScalarValue::Int64(Some(0)))
            }
            Fill::Null | Fill::None => FillStrategy::Null,
            Fill::Value(n) => FillStrategy::Value(match n {
                Number::Integer(i) => ScalarValue::Int64(Some(i)),
                Number::Unsigned(u) => ScalarValue::UInt64(Some(u)),
                Number::Float(x) => ScalarValue::Float64(Some(x)),
            }),
            Fill::Previous => FillStrategy::Locf,
            // 1.x interpolates numbers only; other values stay null.
            Fill::Linear => {
                let numeric = aggregated
                    .schema()
                    .field_with_unqualified_name(name)?
                    .data_type()
                    .is_numeric();
                if numeric {
                    FillStrategy::InfluxQlLinear
                } else {
                    FillStrategy::Null
                }
            }
        };
        strategies.push((name.clone(), strategy));
    }
    let filled = gap_fill_plan(
        aggregated,
        TIME,
        tags,
        &strategies,
        stride,
        ts(lower),
        ts(upper),
    )?;
    let mut proj = vec![
        lit(table.name.as_str()).alias(MEASUREMENT_COLUMN),
        ident(TIME).alias(TIME),
    ];
    proj.extend(tags.iter().map(|t| ident(t).alias(t)));
    proj.extend(fields.iter().map(|(_, name)| ident(name).alias(name)));
    LogicalPlanBuilder::from(filled).project(proj)?.build()
}

/// Union needs identical schemas: a column that is null-typed in one measurement (it lacks
/// the field) takes the type it has elsewhere.
fn unify_types(plans: Vec<LogicalPlan>) -> Result<Vec<LogicalPlan>> {
    if plans.len() < 2 {
        return Ok(plans);
    }
    let schemas: Vec<DFSchemaRef> = plans.iter().map(|p| Arc::clone(p.schema())).collect();
    let n = schemas[0].fields().len();
    let mut targets = Vec::with_capacity(n);
    for i in 0..n {
        let t = schemas
            .iter()
            .map(|s| s.field(i).data_type().clone())
            .find(|t| *t != DataType::Null)
            .unwrap_or(DataType::Null);
        targets.push(t);
    }
    plans
        .into_iter()
        .map(|p| {
            let schema = Arc::clone(p.schema());
            let proj: Vec<DfExpr> = schema
                .fields()
                .iter()
                .zip(&targets)
                .map(|(f, t)| {
                    let c = col(datafusion::common::Column::from_name(f.name()));
                    if f.data_type() == t {
                        c
                    } else {
                        cast(c, t.clone()).alias(f.name())
                    }
                })
                .collect();
            LogicalPlanBuilder::from(p).project(proj)?.build()
        })
        .collect()
}
