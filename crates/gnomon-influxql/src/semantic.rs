//! Meaning checks the planner relies on: what kind of function a call is, the errors InfluxDB
//! gives for statements that parse but make no sense, bound parameters, output column names
//! and `GROUP BY time()` windows. Time ranges live in [`crate::time_range`].

use std::collections::{HashMap, HashSet};

use crate::ast::*;

/// A statement that parses but cannot be run. The two classes mirror DataFusion's `Plan` and
/// `NotImplemented` errors, which decide the HTTP status on the v3 endpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SemanticError {
    #[error("{0}")]
    Plan(String),
    #[error("This feature is not implemented: {0}")]
    NotImplemented(String),
}

fn plan<T>(msg: impl Into<String>) -> Result<T, SemanticError> {
    Err(SemanticError::Plan(msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    /// One value per window, timestamped with the window start (or epoch 0 without windows).
    Aggregate,
    /// One (or N) of the input points, keeping that point's timestamp.
    Selector,
    /// Row-to-row window functions: `derivative`, `difference`, `moving_average`, ...
    Transformation,
    /// Row-wise math (`abs`, `pow`, ...).
    Scalar,
    /// `now()`, only meaningful in time conditions.
    Now,
    /// Known technical-analysis functions: accepted by validation, rejected by the planner
    /// with `Invalid function '<name>'`, as the reference server does.
    Unplannable,
    /// `sample`, `count_hll`: rejected with "This feature is not implemented".
    NotImplemented,
}

/// The kind of the (lower-case) function `name`, or `None` for names InfluxQL does not know.
pub fn classify_function(name: &str) -> Option<FunctionKind> {
    use FunctionKind::*;
    Some(match name {
        "count" | "sum" | "mean" | "median" | "mode" | "spread" | "stddev" | "integral"
        | "distinct" => Aggregate,
        // The issue (and InfluxDB 1.x) count `percentile` among the selectors: alone, it
        // reports the time of the point it picked. INFLUXQL.md's table lists it with the
        // aggregates; the issue text wins.
        "first" | "last" | "min" | "max" | "top" | "bottom" | "percentile" => Selector,
        "difference"
        | "non_negative_difference"
        | "derivative"
        | "non_negative_derivative"
        | "moving_average"
        | "cumulative_sum"
        | "elapsed" => Transformation,
        "abs" | "sin" | "cos" | "tan" | "asin" | "acos" | "atan" | "atan2" | "exp" | "log"
        | "ln" | "log2" | "log10" | "sqrt" | "pow" | "floor" | "ceil" | "round" | "date_part" => {
            Scalar
        }
        "now" => Now,
        "holt_winters"
        | "holt_winters_with_fit"
        | "exponential_moving_average"
        | "double_exponential_moving_average"
        | "triple_exponential_moving_average"
        | "triple_exponential_derivative"
        | "relative_strength_index"
        | "kaufmans_efficiency_ratio"
        | "kaufmans_adaptive_moving_average"
        | "chande_momentum_oscillator" => Unplannable,
        "sample" | "count_hll" => NotImplemented,
        _ => return None,
    })
}

/// `GROUP BY time(interval, offset)` in nanoseconds; `offset` is normalised into
/// `0..interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupByTime {
    pub interval: i64,
    pub offset: i64,
    /// Set by the planner when `tz()`'s zone changes its UTC offset within the query range
    /// in a way that moves windows: windows are then multiples of the interval (shifted by
    /// the offset) on the zone's wall-clock time. `None`: on UTC time.
    pub zone: Option<chrono_tz::Tz>,
}

impl GroupByTime {
    /// Start of the window holding `t`: windows are epoch-aligned multiples of the interval,
    /// shifted by the offset.
    pub fn window_start(&self, t: i64) -> i64 {
        let shifted = t as i128 - self.offset as i128;
        let start =
            shifted.div_euclid(self.interval as i128) * self.interval as i128 + self.offset as i128;
        start.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

/// What validation learned about a SELECT, for the planner.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectInfo {
    /// Some projection calls an aggregate, selector or transformation.
    pub has_aggregate: bool,
    /// Exactly one call in the projection and it is a selector (so the output keeps the
    /// selected point's time).
    pub single_selector: bool,
    pub group_by_time: Option<GroupByTime>,
    /// Output column names, after aliases and de-duplication (`time` not included).
    pub column_names: Vec<String>,
}

/// Checks a SELECT the way InfluxDB does before planning, recursing into subqueries.
pub fn validate_select(stmt: &SelectStatement) -> Result<SelectInfo, SemanticError> {
    if stmt.slimit.is_some() || stmt.soffset.is_some() {
        return Err(SemanticError::NotImplemented("SLIMIT or SOFFSET".into()));
    }
    for from in &stmt.from {
        if let MeasurementSelection::Subquery(s) = from {
            validate_select(s)?;
        }
    }
    let group_by_time = group_by_time(stmt)?;
    if let Some(cond) = &stmt.condition {
        check_condition(cond)?;
    }

    let mut calls = Vec::new();
    let mut has_raw = false;
    for field in &stmt.fields {
        collect_calls(&field.expr, &mut calls, &mut has_raw, false);
    }
    for call in &calls {
        check_call(call, group_by_time.is_some())?;
    }
    let kinds: Vec<FunctionKind> = calls
        .iter()
        .filter_map(|c| match c {
            Expr::Call { name, .. } => classify_function(name),
            _ => Some(FunctionKind::Aggregate), // DISTINCT keyword form
        })
        .collect();
    let has_aggregate = kinds.iter().any(|k| {
        matches!(
            k,
            FunctionKind::Aggregate
                | FunctionKind::Selector
                | FunctionKind::Transformation
                | FunctionKind::Unplannable
        )
    });
    if has_aggregate && has_raw {
        return plan("mixing aggregate and non-aggregate columns is not supported");
    }
    if group_by_time.is_some() && !has_aggregate {
        return plan("GROUP BY requires at least one aggregate function");
    }
    let is_distinct = |c: &&Expr| {
        matches!(c, Expr::Distinct(_)) || matches!(c, Expr::Call { name, .. } if name == "distinct")
    };
    if calls.iter().any(is_distinct) && stmt.fields.len() > 1 {
        return plan(
            "aggregate function distinct() cannot be combined with other functions or fields",
        );
    }
    if let Some(Expr::Call { name, .. }) = calls
        .iter()
        .find(|c| matches!(c, Expr::Call { name, .. } if name == "top" || name == "bottom"))
    {
        if calls.len() > 1 {
            return plan(format!(
                "selector function {name}() cannot be combined with other functions"
            ));
        }
    }
    let single_selector = calls.len() == 1 && kinds == [FunctionKind::Selector];
    Ok(SelectInfo {
        has_aggregate,
        single_selector,
        group_by_time,
        column_names: column_names(stmt),
    })
}

/// Gathers the outermost calls of `e` (plus `DISTINCT x`), noting whether a field or tag is
/// referenced outside any call.
fn collect_calls<'a>(e: &'a Expr, calls: &mut Vec<&'a Expr>, has_raw: &mut bool, inside: bool) {
    match e {
        Expr::Call { name, args } => {
            match classify_function(name) {
                Some(FunctionKind::Scalar) | None => {
                    // Math on an aggregate (`abs(mean(x))`) is still an aggregate.
                    if classify_function(name).is_none() {
                        calls.push(e);
                    }
                    for a in args {
                        collect_calls(a, calls, has_raw, inside);
                    }
                }
                _ => calls.push(e),
            }
        }
        Expr::Distinct(_) => calls.push(e),
        Expr::VarRef { .. } | Expr::Wildcard(_) | Expr::Regex(_) if !inside => *has_raw = true,
        Expr::Unary { expr, .. } | Expr::Nested(expr) => {
            collect_calls(expr, calls, has_raw, inside)
        }
        Expr::Binary { lhs, rhs, .. } => {
            collect_calls(lhs, calls, has_raw, inside);
            collect_calls(rhs, calls, has_raw, inside);
        }
        _ => {}
    }
}

fn is_field_arg(e: &Expr) -> bool {
    matches!(
        e.unnested(),
        Expr::VarRef { .. } | Expr::Wildcard(_) | Expr::Regex(_)
    )
}

fn arity(name: &str, args: &[Expr], min: usize, max: usize) -> Result<(), SemanticError> {
    let n = args.len();
    if n < min || n > max {
        let expected = if min == max {
            min.to_string()
        } else {
            format!("{min} or {max}")
        };
        return plan(format!(
            "invalid number of arguments for {name}, expected {expected}, got {n}"
        ));
    }
    Ok(())
}

fn positive_duration_arg(name: &str, e: &Expr) -> Result<(), SemanticError> {
    match e.unnested() {
        Expr::Literal(Literal::Duration(d)) if *d > 0 => Ok(()),
        _ => plan(format!(
            "second argument to {name} must be a positive duration"
        )),
    }
}

fn check_call(call: &Expr, windowed: bool) -> Result<(), SemanticError> {
    let Expr::Call { name, args } = call else {
        return Ok(()); // DISTINCT keyword form: always one identifier
    };
    let name = name.as_str();
    let Some(kind) = classify_function(name) else {
        return plan(format!("unsupported function {name}()"));
    };
    match kind {
        FunctionKind::NotImplemented => {
            return Err(SemanticError::NotImplemented(name.to_string()))
        }
        FunctionKind::Now => return Err(SemanticError::NotImplemented("now".into())),
        FunctionKind::Unplannable | FunctionKind::Scalar => return Ok(()),
        _ => {}
    }
    match name {
        "count" => {
            arity(name, args, 1, 1)?;
            match args[0].unnested() {
                Expr::Distinct(_) => {}
                Expr::Call { name: inner, args } if inner == "distinct" => {
                    arity(inner, args, 1, 1)?;
                    if !is_field_arg(&args[0]) {
                        return plan("expected field argument in distinct()");
                    }
                }
                a if is_field_arg(a) => {}
                _ => return plan("expected field argument in count()"),
            }
        }
        "sum" | "mean" | "median" | "mode" | "spread" | "stddev" | "distinct" | "first"
        | "last" | "min" | "max" => {
            arity(name, args, 1, 1)?;
            if !is_field_arg(&args[0]) {
                return plan(format!("expected field argument in {name}()"));
            }
        }
        "integral" => {
            arity(name, args, 1, 2)?;
            if !is_field_arg(&args[0]) {
                return plan(format!("expected field argument in {name}()"));
            }
            if let Some(unit) = args.get(1) {
                positive_duration_arg(name, unit)?;
            }
        }
        "percentile" => {
            arity(name, args, 2, 2)?;
            if !is_field_arg(&args[0]) {
                return plan(format!("expected field argument in {name}()"));
            }
            match args[1].unnested() {
                Expr::Literal(Literal::Integer(_) | Literal::Float(_)) => {}
                _ => return plan("expected float argument in percentile()"),
            }
        }
        "top" | "bottom" => {
            if args.len() < 2 {
                return plan(format!(
                    "invalid number of arguments for {name}, expected at least 2, got {}",
                    args.len()
                ));
            }
            if !matches!(args[0].unnested(), Expr::VarRef { .. }) {
                return plan(format!(
                    "expected first argument to be a field in {name}(), found {}",
                    args[0]
                ));
            }
            for tag in &args[1..args.len() - 1] {
                if !matches!(tag.unnested(), Expr::VarRef { .. }) {
                    return plan(format!(
                        "only fields or tags are allowed in {name}(), found {tag}"
                    ));
                }
            }
            match args[args.len() - 1].unnested() {
                Expr::Literal(Literal::Integer(n)) if *n > 0 => {}
                Expr::Literal(Literal::Integer(_)) => {
                    return plan(format!(
                        "limit ({}) in {name} function must be at least 1",
                        args[args.len() - 1]
                    ))
                }
                other => {
                    return plan(format!(
                        "expected integer as last argument in {name}(), found {other}"
                    ))
                }
            }
        }
        "derivative"
        | "non_negative_derivative"
        | "elapsed"
        | "difference"
        | "non_negative_difference"
        | "cumulative_sum"
        | "moving_average" => {
            match name {
                "derivative" | "non_negative_derivative" | "elapsed" => {
                    arity(name, args, 1, 2)?;
                    if let Some(unit) = args.get(1) {
                        positive_duration_arg(name, unit)?;
                    }
                }
                "moving_average" => {
                    arity(name, args, 2, 2)?;
                    match args[1].unnested() {
                        Expr::Literal(Literal::Integer(n)) if *n > 1 => {}
                        Expr::Literal(Literal::Integer(_)) => {
                            return plan("moving_average window must be greater than 1")
                        }
                        _ => return plan("second argument for moving_average must be an integer"),
                    }
                }
                _ => arity(name, args, 1, 1)?,
            }
            let inner = args[0].unnested();
            let inner_is_agg = match inner {
                Expr::Call { name, .. } => matches!(
                    classify_function(name),
                    Some(FunctionKind::Aggregate | FunctionKind::Selector)
                ),
                Expr::Distinct(_) => true,
                _ => false,
            };
            if windowed {
                if !inner_is_agg {
                    return plan(format!(
                        "aggregate function required inside the call to {name}"
                    ));
                }
                check_call(inner, false)?;
            } else if inner_is_agg {
                return plan(format!("{name} aggregate requires a GROUP BY interval"));
            } else if !is_field_arg(inner) {
                return plan(format!("expected field argument in {name}()"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Rejects `now()` and aggregate calls outside time comparisons in WHERE.
fn check_condition(e: &Expr) -> Result<(), SemanticError> {
    match e {
        Expr::Binary { lhs, op, rhs } => {
            let is_time = |x: &Expr| matches!(x.unnested(), Expr::VarRef { name, .. } if name.0.eq_ignore_ascii_case("time"));
            if op.is_comparison() && (is_time(lhs) || is_time(rhs)) {
                return Ok(());
            }
            check_condition(lhs)?;
            check_condition(rhs)
        }
        Expr::Nested(x) | Expr::Unary { expr: x, .. } => check_condition(x),
        Expr::Call { name, args } => match classify_function(name) {
            Some(FunctionKind::Now) => Err(SemanticError::NotImplemented("now".into())),
            Some(FunctionKind::Scalar) => args.iter().try_for_each(check_condition),
            Some(_) => plan(format!("invalid function call in condition: {e}")),
            None => plan(format!("unsupported function {name}()")),
        },
        _ => Ok(()),
    }
}

/// Reads `GROUP BY time(...)`, checking interval and offset.
pub fn group_by_time(stmt: &SelectStatement) -> Result<Option<GroupByTime>, SemanticError> {
    let mut found = None;
    for dim in stmt.group_by.iter().flatten() {
        let Dimension::Time { interval, offset } = dim else {
            continue;
        };
        if found.is_some() {
            return plan("multiple time dimensions not allowed");
        }
        let interval = match interval.unnested() {
            Expr::Literal(Literal::Duration(d)) if *d > 0 => *d,
            Expr::Literal(Literal::Duration(_)) => {
                return plan("time dimension must have a positive interval")
            }
            _ => return plan("time dimension expected 1 or 2 duration arguments"),
        };
        let offset = match offset.as_ref().map(Expr::unnested) {
            None => 0,
            Some(Expr::Literal(Literal::Duration(d))) => d.rem_euclid(interval),
            Some(Expr::Call { name, args }) if name == "now" && args.is_empty() => {
                return Err(SemanticError::NotImplemented("now".into()))
            }
            Some(_) => return plan("time dimension offset must be a duration"),
        };
        found = Some(GroupByTime {
            interval,
            offset,
            zone: None,
        });
    }
    Ok(found)
}

/// The name InfluxDB gives an unaliased projection: a call's function name, a reference's
/// name, names in arithmetic joined by `_`.
fn expr_name(e: &Expr) -> String {
    match e {
        Expr::VarRef { name, .. } => name.0.clone(),
        Expr::Call { name, .. } => name.clone(),
        Expr::Distinct(_) => "distinct".into(),
        Expr::Wildcard(_) => "*".into(),
        Expr::Nested(x) | Expr::Unary { expr: x, .. } => expr_name(x),
        Expr::Binary { lhs, rhs, .. } => {
            let (l, r) = (expr_name(lhs), expr_name(rhs));
            match (l.is_empty(), r.is_empty()) {
                (false, false) => format!("{l}_{r}"),
                (true, _) => r,
                (_, true) => l,
            }
        }
        _ => String::new(),
    }
}

/// Output column names for the projection: aliases win, duplicates get `_1`, `_2`, ...
pub fn column_names(stmt: &SelectStatement) -> Vec<String> {
    let mut used: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(stmt.fields.len());
    for f in &stmt.fields {
        let base = match &f.alias {
            Some(a) => a.0.clone(),
            None => expr_name(&f.expr),
        };
        let mut name = base.clone();
        let mut n = 1;
        while used.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        used.insert(name.clone());
        out.push(name);
    }
    out
}

/// Calls `f` on every expression of the statement (fields, conditions, dimensions, subqueries).
pub fn visit_exprs_mut<E>(
    stmt: &mut Statement,
    f: &mut dyn FnMut(&mut Expr) -> Result<(), E>,
) -> Result<(), E> {
    fn select<E>(
        s: &mut SelectStatement,
        f: &mut dyn FnMut(&mut Expr) -> Result<(), E>,
    ) -> Result<(), E> {
        for field in &mut s.fields {
            walk(&mut field.expr, f)?;
        }
        for from in &mut s.from {
            if let MeasurementSelection::Subquery(sub) = from {
                select(sub, f)?;
            }
        }
        if let Some(c) = &mut s.condition {
            walk(c, f)?;
        }
        for d in s.group_by.iter_mut().flatten() {
            if let Dimension::Time { interval, offset } = d {
                walk(interval, f)?;
                if let Some(o) = offset {
                    walk(o, f)?;
                }
            }
        }
        Ok(())
    }
    fn walk<E>(e: &mut Expr, f: &mut dyn FnMut(&mut Expr) -> Result<(), E>) -> Result<(), E> {
        f(e)?;
        match e {
            Expr::Call { args, .. } => args.iter_mut().try_for_each(|a| walk(a, f)),
            Expr::Unary { expr, .. } | Expr::Nested(expr) => walk(expr, f),
            Expr::Binary { lhs, rhs, .. } => {
                walk(lhs, f)?;
                walk(rhs, f)
            }
            _ => Ok(()),
        }
    }
    match stmt {
        Statement::Select(s) => select(s, f),
        Statement::Explain(e) => select(&mut e.select, f),
        Statement::ShowMeasurements(s) => s.condition.as_mut().map_or(Ok(()), |c| walk(c, f)),
        Statement::ShowTagKeys(s) => s.condition.as_mut().map_or(Ok(()), |c| walk(c, f)),
        Statement::ShowTagValues(s) => s.condition.as_mut().map_or(Ok(()), |c| walk(c, f)),
        Statement::Delete(d) => d.condition.as_mut().map_or(Ok(()), |c| walk(c, f)),
        Statement::ShowDatabases
        | Statement::ShowRetentionPolicies(_)
        | Statement::ShowFieldKeys(_)
        | Statement::CreateDatabase(_)
        | Statement::DropMeasurement(_) => Ok(()),
    }
}

/// Replaces every `$name` with its value from `params`.
pub fn bind_parameters(
    stmt: &mut Statement,
    params: &HashMap<String, Literal>,
) -> Result<(), SemanticError> {
    visit_exprs_mut(stmt, &mut |e: &mut Expr| {
        if let Expr::BindParam(name) = e {
            match params.get(name.as_str()) {
                Some(v) => *e = Expr::Literal(v.clone()),
                None => {
                    return plan(format!(
                        "Bind parameter '${name}' was referenced in the InfluxQL statement but its value is undefined"
                    ))
                }
            }
        }
        Ok(())
    })
}
