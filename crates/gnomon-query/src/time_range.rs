//! The time range a query's filters allow, used to skip whole chunks before any read.

use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator};
use datafusion::scalar::ScalarValue;

/// Inclusive `[min, max]` nanosecond bounds on the `time` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub min: i64,
    pub max: i64,
}

impl TimeRange {
    pub const ALL: TimeRange = TimeRange {
        min: i64::MIN,
        max: i64::MAX,
    };

    /// Intersects the bounds implied by every conjunct of `filters` that compares `time` with
    /// a timestamp literal. Anything else is ignored (the filter is still applied by the
    /// engine; this only prunes).
    pub fn from_filters(filters: &[Expr]) -> TimeRange {
        let mut range = TimeRange::ALL;
        for filter in filters {
            range.narrow(filter);
        }
        range
    }

    fn narrow(&mut self, expr: &Expr) {
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And => {
                    self.narrow(left);
                    self.narrow(right);
                }
                _ => {
                    if let (true, Some(v)) = (is_time(left), literal_ns(right)) {
                        self.apply(*op, v);
                    } else if let (Some(v), true) = (literal_ns(left), is_time(right)) {
                        if let Some(op) = op.swap() {
                            self.apply(op, v);
                        }
                    }
                }
            },
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) if is_time(expr) => {
                if let Some(v) = literal_ns(low) {
                    self.apply(Operator::GtEq, v);
                }
                if let Some(v) = literal_ns(high) {
                    self.apply(Operator::LtEq, v);
                }
            }
            _ => {}
        }
    }

    fn apply(&mut self, op: Operator, v: i64) {
        match op {
            Operator::Eq => {
                self.min = self.min.max(v);
                self.max = self.max.min(v);
            }
            Operator::Gt => self.min = self.min.max(v.saturating_add(1)),
            Operator::GtEq => self.min = self.min.max(v),
            Operator::Lt => self.max = self.max.min(v.saturating_sub(1)),
            Operator::LtEq => self.max = self.max.min(v),
            _ => {}
        }
    }
}

fn is_time(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == "time")
}

fn literal_ns(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Literal(ScalarValue::TimestampNanosecond(Some(v), _), _) => Some(*v),
        Expr::Literal(ScalarValue::TimestampMicrosecond(Some(v), _), _) => v.checked_mul(1_000),
        Expr::Literal(ScalarValue::TimestampMillisecond(Some(v), _), _) => v.checked_mul(1_000_000),
        Expr::Literal(ScalarValue::TimestampSecond(Some(v), _), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn ts(v: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(Some(v), None))
    }

    #[test]
    fn bounds_from_comparisons() {
        let r = TimeRange::from_filters(&[col("time").gt_eq(ts(10)), col("time").lt(ts(20))]);
        assert_eq!(r, TimeRange { min: 10, max: 19 });
        let r = TimeRange::from_filters(&[ts(10).lt(col("time")).and(col("host").eq(lit("a")))]);
        assert_eq!(
            r,
            TimeRange {
                min: 11,
                max: i64::MAX
            }
        );
        let r = TimeRange::from_filters(&[col("time").between(ts(5), ts(7))]);
        assert_eq!(r, TimeRange { min: 5, max: 7 });
    }

    #[test]
    fn other_filters_do_not_narrow() {
        let r = TimeRange::from_filters(&[col("time").gt(ts(1)).or(col("time").lt(ts(0)))]);
        assert_eq!(r, TimeRange::ALL);
        let r = TimeRange::from_filters(&[col("usage").gt(lit(1.0))]);
        assert_eq!(r, TimeRange::ALL);
    }
}
