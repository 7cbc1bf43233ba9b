//! The latest time buckets without aggregating the whole range.
//!
//! `SELECT date_bin(i, time) AS b, … GROUP BY b ORDER BY b DESC LIMIT k` with an upper
//! time bound (TSBS' "groupby-orderby-limit") needs only the k newest non-empty buckets, but
//! a plain plan aggregates every row of the range first. [`LatestBuckets`] runs the same plan
//! with an extra lower time bound on a bucket boundary, `k` buckets below the upper bound:
//! every bucket at or above that boundary is complete, so if the narrowed query returns `k`
//! rows they are the answer. Otherwise the window widens (×4) and the query runs again,
//! down to the query's own lower bound, where it is the original query.
//!
//! Only that exact shape qualifies: one `date_bin` group key with a fixed interval on
//! `time`, ordered by it descending, a `LIMIT` (no offset), a bounded upper time and no
//! parameters.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, Result, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, SortExpr};

use crate::functions::{bin_start, fixed_stride_ns};
use crate::time_range::TimeRange;

/// Whether `plan` (unoptimized) starts as `LIMIT` over `ORDER BY`: the only plans worth
/// optimizing a second time to look for the shape.
pub(crate) fn may_apply(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Limit(l) if matches!(l.input.as_ref(), LogicalPlan::Sort(_)))
}

pub(crate) struct LatestBuckets {
    plan: LogicalPlan,
    time: Column,
    stride: i64,
    origin: i64,
    k: usize,
    range: TimeRange,
}

impl LatestBuckets {
    /// The shape in `optimized` (a plan after DataFusion's optimizer), if it qualifies.
    pub(crate) fn find(optimized: &LogicalPlan) -> Option<Self> {
        // DataFusion's optimizer folds the limit into the sort (`fetch`) when there is no
        // offset.
        let (sort, k) = match optimized {
            LogicalPlan::Sort(sort) => (sort, sort.fetch?),
            LogicalPlan::Limit(limit) => {
                if limit.skip.is_some() {
                    return None;
                }
                let k = match limit.fetch.as_deref()? {
                    Expr::Literal(ScalarValue::Int64(Some(k)), _) if *k > 0 => *k as usize,
                    _ => return None,
                };
                let LogicalPlan::Sort(sort) = limit.input.as_ref() else {
                    return None;
                };
                (sort, sort.fetch.map_or(k, |f| f.min(k)))
            }
            _ => return None,
        };
        if k == 0 {
            return None;
        }
        let [SortExpr {
            expr: Expr::Column(sorted),
            asc: false,
            ..
        }] = sort.expr.as_slice()
        else {
            return None;
        };
        // Through projections (renames only) down to the aggregate.
        let mut name = sorted.name.clone();
        let mut node = sort.input.as_ref();
        let aggregate = loop {
            match node {
                LogicalPlan::Projection(p) => {
                    let (i, _) = p
                        .schema
                        .columns()
                        .into_iter()
                        .enumerate()
                        .find(|(_, c)| c.name == name)?;
                    match p.expr.get(i)?.clone().unalias() {
                        Expr::Column(c) => name = c.name,
                        _ => return None,
                    }
                    node = p.input.as_ref();
                }
                LogicalPlan::Aggregate(a) => break a,
                _ => return None,
            }
        };
        let [group] = aggregate.group_expr.as_slice() else {
            return None;
        };
        if aggregate.schema.field(0).name() != &name {
            return None;
        }
        let Expr::ScalarFunction(f) = group else {
            return None;
        };
        if f.name() != "date_bin" || !(2..=3).contains(&f.args.len()) {
            return None;
        }
        let Expr::Literal(interval, _) = &f.args[0] else {
            return None;
        };
        let stride = fixed_stride_ns(interval)?;
        let Expr::Column(time) = &f.args[1] else {
            return None;
        };
        if time.name != "time" || stride <= 0 {
            return None;
        }
        let origin = match f.args.get(2) {
            None => 0,
            Some(Expr::Literal(ScalarValue::TimestampNanosecond(Some(o), _), _)) => *o,
            Some(_) => return None,
        };
        // One table scanned, so the bound added to "the" scan is the bound on `time`.
        let mut scans = 0;
        let _ = aggregate.input.apply(|n| {
            if matches!(n, LogicalPlan::TableScan(_)) {
                scans += 1;
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        });
        if scans != 1 {
            return None;
        }
        let range = TimeRange::from_filters(&time_filters(&aggregate.input));
        if range.max == i64::MAX {
            return None;
        }
        Some(Self {
            plan: optimized.clone(),
            time: time.clone(),
            stride,
            origin,
            k,
            range,
        })
    }

    /// The answer, from the narrowest window that holds `k` buckets.
    pub(crate) async fn run(&self, state: &SessionState) -> Result<Option<Vec<RecordBatch>>> {
        let Some(last_bin) = bin_start(self.range.max, self.stride, self.origin) else {
            return Ok(None);
        };
        let mut width = self.stride.saturating_mul(self.k as i64);
        loop {
            let lower = last_bin.saturating_sub(width.saturating_sub(self.stride));
            if lower <= self.range.min {
                return Ok(None);
            }
            // The narrowed plan is the optimized one plus a bound the scan is given too; a
            // narrow window usually has few enough rows for the direct path.
            let batches = crate::collect_optimized(state, &self.narrowed(lower)?).await?;
            if batches.iter().map(|b| b.num_rows()).sum::<usize>() >= self.k {
                return Ok(Some(batches));
            }
            width = width.saturating_mul(4);
        }
    }

    /// The plan with `time >= lower` under the aggregate (and given to the scan for pruning).
    fn narrowed(&self, lower: i64) -> Result<LogicalPlan> {
        let bound = Expr::Column(self.time.clone()).gt_eq(Expr::Literal(
            ScalarValue::TimestampNanosecond(Some(lower), None),
            None,
        ));
        self.plan
            .clone()
            .transform_up(|node| match node {
                LogicalPlan::TableScan(mut scan) => {
                    // For pruning (the scan is inexact) and, above it, for the rows.
                    scan.filters.push(bound.clone());
                    let scan = LogicalPlan::TableScan(scan);
                    Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(
                        bound.clone(),
                        Arc::new(scan),
                    )?)))
                }
                other => Ok(Transformed::no(other)),
            })
            .map(|t| t.data)
    }
}

/// Every conjunct of the filters in `plan` and below (including those pushed into scans).
fn time_filters(plan: &LogicalPlan) -> Vec<Expr> {
    let mut out = Vec::new();
    let _ = plan.apply(|node| {
        match node {
            LogicalPlan::Filter(f) => {
                out.extend(split_conjunction(&f.predicate).into_iter().cloned())
            }
            LogicalPlan::TableScan(s) => {
                for f in &s.filters {
                    out.extend(split_conjunction(f).into_iter().cloned());
                }
            }
            _ => {}
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, TimestampNanosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    async fn optimized(sql: &str) -> LogicalPlan {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
            Field::new("u", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![0i64])),
                Arc::new(Float64Array::from(vec![1.0])),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_table(
            "cpu",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
        )
        .unwrap();
        ctx.sql(sql).await.unwrap().into_optimized_plan().unwrap()
    }

    #[tokio::test]
    async fn the_shape_is_found_only_with_a_descending_bucket_order_a_limit_and_an_upper_bound() {
        let q = |tail: &str| {
            format!(
                "SELECT date_bin(INTERVAL '1 minute', time) AS b, max(u) AS m FROM cpu \
                 WHERE time >= '2016-01-01T00:00:00Z' {tail}"
            )
        };
        let found = LatestBuckets::find(
            &optimized(&q(
                "AND time < '2016-01-01T13:37:00Z' GROUP BY 1 ORDER BY 1 DESC LIMIT 5",
            ))
            .await,
        )
        .expect("found");
        assert_eq!((found.k, found.stride), (5, 60_000_000_000));
        assert_eq!(found.range.max, 1_451_655_420_000_000_000 - 1);
        for tail in [
            "AND time < '2016-01-01T13:37:00Z' GROUP BY 1 ORDER BY 1 ASC LIMIT 5",
            "AND time < '2016-01-01T13:37:00Z' GROUP BY 1 ORDER BY 1 DESC LIMIT 5 OFFSET 1",
            "GROUP BY 1 ORDER BY 1 DESC LIMIT 5",
            "AND time < '2016-01-01T13:37:00Z' GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
        ] {
            assert!(
                LatestBuckets::find(&optimized(&q(tail)).await).is_none(),
                "{tail}"
            );
        }
    }
}
