//! Optimized plans of repeated query shapes, reused with new literal values.
//!
//! A dashboard or a benchmark sends the same query again and again with another host or time
//! window. Planning such a query (SQL to a logical plan, then some thirty optimizer rules)
//! costs more than running it when it reads one series. So the string literals a `WHERE`
//! clause compares a column with (`=`, `<>`, `<`, `<=`, `>`, `>=`, `IN (…)`, `BETWEEN`) become
//! placeholders, the rest of the statement is the *shape*, and the optimized plan of a shape is
//! kept with its placeholders; a later query of that shape binds its own values into it and
//! goes straight to physical planning, which is where the scan prunes files and rows by them.
//!
//! Soundness rests on three checks made when a shape's plan is built (on the shape's second
//! sighting, so one-off queries never pay for it):
//! - the plan reads only user tables (no `system` tables or cache functions, whose contents are
//!   taken when a session is made) and calls no volatile or stable function (`now()` is folded
//!   into a constant by the optimizer);
//! - DataFusion inferred a type for every placeholder (values are cast to it when bound);
//! - bound with the values of the query at hand, the cached plan prints exactly as the plan
//!   optimized from the literal query does, schema included. An optimizer rule that needed to
//!   see a literal value would make the two differ, and the shape is then never cached.
//!
//! A plan made without seeing the values cannot rely on them, so it is right for any values;
//! the check above guards against a placeholder typed differently from the literal it replaced.
//! Shapes are keyed by database and catalog sequence: any schema change plans afresh.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::ParamValues;
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::optimizer::simplify_expressions::SimplifyExpressions;
use datafusion::optimizer::OptimizerRule;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, Query, SetExpr, TableFactor, UnaryOperator, Value,
};
use parking_lot::Mutex;

use crate::provider::TableScanProvider;

/// Shapes remembered at most; past it the cache starts afresh.
const MAX_SHAPES: usize = 1024;

/// A query split into its shape and the literal values taken out of it.
#[derive(Debug)]
pub(crate) struct Parameterized {
    key: ShapeKey,
    /// The statement as written (planned as is while the shape has no cached plan).
    pub(crate) statement: DFStatement,
    /// The statement with placeholders in place of `values`.
    shape: DFStatement,
    values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ShapeKey {
    db: String,
    catalog_sequence: u64,
    text: String,
}

#[derive(Debug)]
enum Shape {
    /// Seen once: the next sighting builds its plan.
    Seen,
    Cached(Arc<CachedPlan>),
    /// Failed a check: always planned from the literal query.
    Uncacheable,
}

/// An optimized plan with placeholders `$1…$n`, and the type each is bound as.
#[derive(Debug)]
pub(crate) struct CachedPlan {
    plan: LogicalPlan,
    types: Vec<DataType>,
    /// Whether binding may stay within filters and scans ([`CachedPlan::bind`]).
    placeholders_in_filters_only: bool,
}

impl CachedPlan {
    /// The plan with `values` in place of its placeholders, simplified again: the rewrites
    /// that need literals (`a = 'x' OR a = 'y'` into `a IN ('x', 'y')`, constant folding) run
    /// once the literals are there.
    ///
    /// Placeholders only come from `WHERE` comparisons, so they usually sit in filters and
    /// scans only, which have no schema of their own to recompute: then only those nodes are
    /// bound and simplified, in place. Otherwise DataFusion binds the whole plan (recomputing
    /// every schema) and the rule runs on every node. Either way the rule runs once, bottom
    /// up, without DataFusion's `Optimizer` around it (whose invariant checks, signatures and
    /// second pass cost more than the rewrite). [`build`] checks that this gives exactly the
    /// fully optimized plan before the shape is cached.
    fn bind(&self, values: &[String], state: &SessionState) -> Result<LogicalPlan> {
        let scalars = values
            .iter()
            .zip(&self.types)
            .map(|(value, ty)| ScalarValue::Utf8(Some(value.clone())).cast_to(ty))
            .collect::<Result<Vec<_>>>()?;
        let params = ParamValues::from(scalars);
        let simplify = SimplifyExpressions::new();
        if !self.placeholders_in_filters_only {
            return self
                .plan
                .clone()
                .replace_params_with_values(&params)?
                .transform_up_with_subqueries(|node| simplify.rewrite(node, state))
                .map(|simplified| simplified.data);
        }
        self.plan
            .clone()
            .transform_up_with_subqueries(|node| {
                if !matches!(node, LogicalPlan::Filter(_) | LogicalPlan::TableScan(_)) {
                    return Ok(Transformed::no(node));
                }
                let bound = node.map_expressions(|expr| {
                    expr.transform_up(|e| match e {
                        Expr::Placeholder(p) => {
                            let (value, metadata) =
                                params.get_placeholders_with_values(&p.id)?.into_inner();
                            Ok(Transformed::yes(Expr::Literal(value, metadata)))
                        }
                        other => Ok(Transformed::no(other)),
                    })
                })?;
                simplify.rewrite(bound.data, state)
            })
            .map(|simplified| simplified.data)
    }
}

/// Whether every placeholder of `plan` sits in a filter or a scan (none elsewhere).
fn placeholders_in_filters_only(plan: &LogicalPlan) -> bool {
    let mut only = true;
    let _ = plan.apply_with_subqueries(|node| {
        if !matches!(node, LogicalPlan::Filter(_) | LogicalPlan::TableScan(_)) {
            node.apply_expressions(|expr| {
                expr.apply(|e| {
                    only &= !matches!(e, Expr::Placeholder(_));
                    Ok(TreeNodeRecursion::Continue)
                })
            })?;
        }
        Ok(if only {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    only
}

#[derive(Debug, Default)]
pub(crate) struct PlanCache {
    shapes: Mutex<HashMap<ShapeKey, Shape>>,
}

impl PlanCache {
    /// `sql` as a shape plus values, when it is a single query without placeholders of its own.
    pub(crate) fn parameterize(
        state: &SessionState,
        db: &str,
        catalog_sequence: u64,
        sql: &str,
    ) -> Option<Parameterized> {
        if sql.contains('$') {
            return None;
        }
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(sql, &dialect).ok()?;
        let mut shape = statement.clone();
        let DFStatement::Statement(inner) = &mut shape else {
            return None;
        };
        let ast::Statement::Query(query) = inner.as_mut() else {
            return None;
        };
        let mut values = Vec::new();
        parameterize_query(query, &mut values);
        Some(Parameterized {
            key: ShapeKey {
                db: db.to_string(),
                catalog_sequence,
                text: shape.to_string(),
            },
            statement,
            shape,
            values,
        })
    }

    /// The cached plan of `query`'s shape with its values bound, if there is one and binding
    /// works (a value that does not cast to its placeholder's type is left to the literal
    /// path, which reports it as it always has).
    pub(crate) fn bound_plan(
        &self,
        state: &SessionState,
        query: &Parameterized,
    ) -> Option<LogicalPlan> {
        let cached = match self.shapes.lock().get(&query.key) {
            Some(Shape::Cached(plan)) => Arc::clone(plan),
            _ => return None,
        };
        cached.bind(&query.values, state).ok()
    }

    /// Notes that `query` was planned from its literals into `optimized`; on the shape's
    /// second sighting, builds and checks its cached plan.
    pub(crate) async fn observe(
        &self,
        state: &SessionState,
        query: Parameterized,
        optimized: &LogicalPlan,
    ) {
        {
            let mut shapes = self.shapes.lock();
            match shapes.get(&query.key) {
                None => {
                    if shapes.len() >= MAX_SHAPES {
                        shapes.clear();
                    }
                    shapes.insert(query.key, Shape::Seen);
                    return;
                }
                Some(Shape::Seen) => {}
                Some(_) => return,
            }
        }
        let shape = match build(state, &query, optimized).await {
            Some(plan) => Shape::Cached(Arc::new(plan)),
            None => Shape::Uncacheable,
        };
        tracing::debug!(
            cached = matches!(shape, Shape::Cached(_)),
            shape = %query.key.text,
            "query shape planned"
        );
        self.shapes.lock().insert(query.key, shape);
    }
}

/// The shape's optimized plan, if it passes every check (see the module docs).
async fn build(
    state: &SessionState,
    query: &Parameterized,
    optimized: &LogicalPlan,
) -> Option<CachedPlan> {
    let plan = state.statement_to_plan(query.shape.clone()).await.ok()?;
    if crate::latest_buckets::may_apply(&plan) || !reads_only_user_tables(&plan) {
        return None;
    }
    let types = plan.get_parameter_types().ok()?;
    let types = (1..=query.values.len())
        .map(|i| types.get(&format!("${i}")).cloned().flatten())
        .collect::<Option<Vec<_>>>()?;
    let plan = state.optimize(&plan).ok()?;
    let cached = CachedPlan {
        placeholders_in_filters_only: placeholders_in_filters_only(&plan),
        plan,
        types,
    };
    let bound = cached.bind(&query.values, state).ok()?;
    let same =
        bound.display_indent_schema().to_string() == optimized.display_indent_schema().to_string();
    same.then_some(cached)
}

/// Whether every scan of `plan` is of a user table and no expression is volatile or stable.
fn reads_only_user_tables(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let user_table = source_as_provider(&scan.source)
                .map(|p| p.downcast_ref::<TableScanProvider>().is_some())
                .unwrap_or(false);
            ok &= user_table;
        }
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e {
                    ok &= f.func.signature().volatility == Volatility::Immutable;
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    ok
}

fn parameterize_query(query: &mut Query, values: &mut Vec<String>) {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            parameterize_query(&mut cte.query, values);
        }
    }
    parameterize_set_expr(&mut query.body, values);
}

fn parameterize_set_expr(body: &mut SetExpr, values: &mut Vec<String>) {
    match body {
        SetExpr::Select(select) => {
            for from in &mut select.from {
                parameterize_table(&mut from.relation, values);
                for join in &mut from.joins {
                    parameterize_table(&mut join.relation, values);
                }
            }
            if let Some(selection) = &mut select.selection {
                parameterize_predicate(selection, values);
            }
        }
        SetExpr::Query(query) => parameterize_query(query, values),
        SetExpr::SetOperation { left, right, .. } => {
            parameterize_set_expr(left, values);
            parameterize_set_expr(right, values);
        }
        _ => {}
    }
}

fn parameterize_table(table: &mut TableFactor, values: &mut Vec<String>) {
    if let TableFactor::Derived { subquery, .. } = table {
        parameterize_query(subquery, values);
    }
}

/// Takes out the string literals compared with a column, through `AND`, `OR`, `NOT` and
/// parentheses.
fn parameterize_predicate(expr: &mut ast::Expr, values: &mut Vec<String>) {
    use ast::Expr as E;
    match expr {
        E::BinaryOp { left, op, right } => match op {
            BinaryOperator::And | BinaryOperator::Or => {
                parameterize_predicate(left, values);
                parameterize_predicate(right, values);
            }
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq => {
                if is_column(left) {
                    take_string(right, values);
                } else if is_column(right) {
                    take_string(left, values);
                }
            }
            _ => {}
        },
        E::Nested(inner) => parameterize_predicate(inner, values),
        E::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => parameterize_predicate(expr, values),
        E::InList { expr, list, .. } if is_column(expr) => {
            for item in list {
                take_string(item, values);
            }
        }
        E::Between {
            expr, low, high, ..
        } if is_column(expr) => {
            take_string(low, values);
            take_string(high, values);
        }
        _ => {}
    }
}

fn is_column(expr: &ast::Expr) -> bool {
    matches!(
        expr,
        ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_)
    )
}

fn take_string(expr: &mut ast::Expr, values: &mut Vec<String>) {
    if let ast::Expr::Value(value) = expr {
        if let Value::SingleQuotedString(text) = &value.value {
            values.push(text.clone());
            *expr = ast::Expr::Value(Value::Placeholder(format!("${}", values.len())).into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    fn shape(sql: &str) -> Option<(String, Vec<String>)> {
        let state = SessionContext::new().state();
        PlanCache::parameterize(&state, "db", 1, sql).map(|p| (p.key.text, p.values))
    }

    #[test]
    fn where_literals_compared_with_columns_become_placeholders() {
        let (text, values) = shape(
            "SELECT date_bin(INTERVAL '1 minute', time) AS b, max(v) FROM cpu \
             WHERE host = 'a' AND time >= '2016-01-01T00:00:00Z' AND (time < '2016-01-02' OR 'x' <> r) \
             AND h IN ('p', 'q') AND t BETWEEN 'l' AND 'm' AND name LIKE 'z%' GROUP BY 1",
        )
        .expect("a query");
        assert_eq!(
            values,
            [
                "a",
                "2016-01-01T00:00:00Z",
                "2016-01-02",
                "x",
                "p",
                "q",
                "l",
                "m"
            ]
        );
        assert!(text.contains("host = $1"), "{text}");
        assert!(!text.contains("'x'") && text.contains("$4 <> r"), "{text}");
        // Not compared with a column, so part of the shape.
        assert!(text.contains("INTERVAL '1 minute'"), "{text}");
        assert!(text.contains("LIKE 'z%'"), "{text}");
    }

    #[test]
    fn subqueries_are_parameterized_and_other_statements_are_not() {
        let (text, values) =
            shape("SELECT * FROM (SELECT * FROM cpu WHERE host = 'a') AS t WHERE t.v > '1'")
                .expect("a query");
        assert_eq!(values, ["a", "1"]);
        assert!(
            text.contains("host = $1") && text.contains("t.v > $2"),
            "{text}"
        );
        assert!(shape("EXPLAIN SELECT * FROM cpu WHERE host = 'a'").is_none());
        assert!(shape("SELECT * FROM cpu WHERE host = $h").is_none());
        assert!(shape("SELEC nonsense").is_none());
    }
}
