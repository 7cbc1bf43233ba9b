//! Pulls the query time range out of a WHERE clause, as InfluxQL defines it: only comparisons
//! of `time` with a constant count, they are intersected, and everything else stays behind as
//! the residual filter.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

use crate::ast::*;
use crate::semantic::SemanticError;

/// Inclusive bounds in nanoseconds since the epoch; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeRange {
    pub lower: Option<i64>,
    pub upper: Option<i64>,
}

impl TimeRange {
    fn with_lower(&mut self, v: i64) {
        self.lower = Some(self.lower.map_or(v, |l| l.max(v)));
    }

    fn with_upper(&mut self, v: i64) {
        self.upper = Some(self.upper.map_or(v, |u| u.min(v)));
    }

    /// No timestamp can satisfy both bounds.
    pub fn is_empty(&self) -> bool {
        matches!((self.lower, self.upper), (Some(l), Some(u)) if l > u)
    }
}

/// A WHERE clause split into its time range and the remaining condition.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitCondition {
    pub range: TimeRange,
    /// The condition can match nothing (contradictory bounds, two different `time =`, or a
    /// time comparison under `OR`, which InfluxQL 1.x answers with no rows).
    pub empty: bool,
    pub residual: Option<Expr>,
}

fn err<T>(msg: impl Into<String>) -> Result<T, SemanticError> {
    Err(SemanticError::Plan(msg.into()))
}

fn is_time_ref(e: &Expr) -> bool {
    matches!(e.unnested(), Expr::VarRef { name, .. } if name.0.eq_ignore_ascii_case("time"))
}

fn mentions_time(e: &Expr) -> bool {
    match e {
        Expr::VarRef { .. } => is_time_ref(e),
        Expr::Call { args, .. } => args.iter().any(mentions_time),
        Expr::Unary { expr, .. } | Expr::Nested(expr) => mentions_time(expr),
        Expr::Binary { lhs, rhs, .. } => mentions_time(lhs) || mentions_time(rhs),
        _ => false,
    }
}

/// Splits `condition`. `now` is the query start in nanoseconds; `tz` interprets time strings
/// without an offset (UTC when `None`).
pub fn split_condition(
    condition: Option<&Expr>,
    now: i64,
    tz: Option<Tz>,
) -> Result<SplitCondition, SemanticError> {
    let mut out = SplitCondition {
        range: TimeRange::default(),
        empty: false,
        residual: None,
    };
    let Some(cond) = condition else {
        return Ok(out);
    };
    let mut conjuncts = Vec::new();
    flatten_and(cond, &mut conjuncts);
    let mut exact: Option<i64> = None;
    let mut residual: Vec<Expr> = Vec::new();
    for c in conjuncts {
        let Expr::Binary { lhs, op, rhs } = c.unnested() else {
            if mentions_time(c) {
                return err(format!("invalid time condition: {c}"));
            }
            residual.push(c.clone());
            continue;
        };
        let (op, value) = if is_time_ref(lhs) {
            (*op, rhs.as_ref())
        } else if is_time_ref(rhs) {
            (flip(*op), lhs.as_ref())
        } else {
            if mentions_time(c) {
                if *op == BinaryOp::Or {
                    out.empty = true;
                    continue;
                }
                return err(format!("invalid time condition: {c}"));
            }
            residual.push(c.clone());
            continue;
        };
        let t = eval_time(value, now, tz)?;
        match op {
            BinaryOp::Gt => match t.checked_add(1) {
                Some(v) => out.range.with_lower(v),
                None => out.empty = true,
            },
            BinaryOp::GtEq => out.range.with_lower(t),
            BinaryOp::Lt => match t.checked_sub(1) {
                Some(v) => out.range.with_upper(v),
                None => out.empty = true,
            },
            BinaryOp::LtEq => out.range.with_upper(t),
            BinaryOp::Eq => {
                if exact.is_some_and(|e| e != t) {
                    out.empty = true;
                }
                exact = Some(t);
                out.range.with_lower(t);
                out.range.with_upper(t);
            }
            other => return err(format!("invalid time comparison operator: {other}")),
        }
    }
    if out.range.is_empty() {
        out.empty = true;
    }
    out.residual = residual
        .into_iter()
        .reduce(|a, b| Expr::binary(a, BinaryOp::And, b));
    Ok(out)
}

fn flatten_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e.unnested() {
        Expr::Binary {
            lhs,
            op: BinaryOp::And,
            rhs,
        } => {
            flatten_and(lhs, out);
            flatten_and(rhs, out);
        }
        _ => out.push(e),
    }
}

/// `5 < time` means `time > 5`.
fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::LtEq => BinaryOp::GtEq,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::GtEq => BinaryOp::LtEq,
        other => other,
    }
}

/// Evaluates the constant side of a time comparison to nanoseconds since the epoch.
pub fn eval_time(e: &Expr, now: i64, tz: Option<Tz>) -> Result<i64, SemanticError> {
    let overflow = || SemanticError::Plan("time overflows the supported range".into());
    match e {
        Expr::Nested(x) => eval_time(x, now, tz),
        Expr::Literal(Literal::Integer(v)) | Expr::Literal(Literal::Duration(v)) => Ok(*v),
        Expr::Literal(Literal::Unsigned(_)) => Err(overflow()),
        Expr::Literal(Literal::Float(v)) => {
            if v.is_finite() && v.abs() < 9.2e18 {
                Ok(*v as i64)
            } else {
                Err(overflow())
            }
        }
        Expr::Literal(Literal::String(s)) => parse_time_string(s, tz),
        Expr::Call { name, args } if name == "now" && args.is_empty() => Ok(now),
        Expr::Unary {
            op: UnaryOp::Minus,
            expr,
        } => eval_time(expr, now, tz)?.checked_neg().ok_or_else(overflow),
        Expr::Binary { lhs, op, rhs } if matches!(op, BinaryOp::Add | BinaryOp::Sub) => {
            let l = eval_time(lhs, now, tz)?;
            let r = eval_time(rhs, now, tz)?;
            let v = if *op == BinaryOp::Add {
                l.checked_add(r)
            } else {
                l.checked_sub(r)
            };
            v.ok_or_else(overflow)
        }
        Expr::BindParam(p) => err(format!(
            "Bind parameter '${p}' was referenced in the InfluxQL statement but its value is undefined"
        )),
        other => err(format!("invalid time comparison with {other}")),
    }
}

/// RFC 3339 (`2025-01-01T00:00:00Z`, with offset or fraction), `YYYY-MM-DD HH:MM:SS[.f]` or
/// `YYYY-MM-DD`; the last two (and RFC 3339 without a zone) are read in `tz`.
pub fn parse_time_string(s: &str, tz: Option<Tz>) -> Result<i64, SemanticError> {
    let to_ns = |dt: DateTime<chrono::FixedOffset>| {
        dt.timestamp_nanos_opt()
            .ok_or_else(|| SemanticError::Plan(format!("time {s} overflows the supported range")))
    };
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return to_ns(dt);
    }
    let naive = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        });
    let Some(naive) = naive else {
        return err(format!("invalid time string '{s}'"));
    };
    let tz = tz.unwrap_or(Tz::UTC);
    let Some(local) = tz.from_local_datetime(&naive).earliest() else {
        return err(format!("time '{s}' does not exist in time zone {tz}"));
    };
    to_ns(local.fixed_offset())
}

/// Resolves the zone of a `tz('...')` clause.
pub fn parse_timezone(name: &str) -> Result<Tz, SemanticError> {
    name.parse::<Tz>()
        .map_err(|_| SemanticError::Plan(format!("unable to find time zone {name}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_expr;

    const NOW: i64 = 1_700_000_000_000_000_000;
    const H: i64 = 3_600_000_000_000;

    fn split(s: &str) -> SplitCondition {
        split_condition(Some(&parse_expr(s).unwrap()), NOW, None).unwrap()
    }

    #[test]
    fn now_minus_duration() {
        let r = split("time > now() - 1h");
        assert_eq!(r.range.lower, Some(NOW - H + 1));
        assert_eq!(r.range.upper, None);
        assert_eq!(r.residual, None);
        assert!(!r.empty);
    }

    #[test]
    fn bounds_intersect_and_residual_kept() {
        let r = split("time >= 10 AND host = 'a' AND time >= 20 AND time < 100");
        assert_eq!(
            r.range,
            TimeRange {
                lower: Some(20),
                upper: Some(99)
            }
        );
        assert_eq!(r.residual, Some(parse_expr("host = 'a'").unwrap()));
    }

    #[test]
    fn reversed_and_nested() {
        let r = split("(now() - 2h <= time) AND (usage > 1 OR usage < 0)");
        assert_eq!(r.range.lower, Some(NOW - 2 * H));
        assert_eq!(
            r.residual,
            Some(parse_expr("(usage > 1 OR usage < 0)").unwrap())
        );
    }

    #[test]
    fn rfc3339_and_date_forms() {
        let r = split("time >= '2023-11-14T22:13:20Z' AND time <= '2023-11-14 22:13:21.5'");
        assert_eq!(r.range.lower, Some(1_700_000_000_000_000_000));
        assert_eq!(r.range.upper, Some(1_700_000_001_500_000_000));
        let r = split("time >= '1970-01-02'");
        assert_eq!(r.range.lower, Some(86_400_000_000_000));
        let r = split("time = '2023-11-14T22:13:20.123456789+01:00'");
        assert_eq!(r.range.lower, Some(1_699_996_400_123_456_789));
        assert_eq!(r.range.lower, r.range.upper);
    }

    #[test]
    fn time_strings_follow_tz() {
        let tz = parse_timezone("America/New_York").unwrap();
        let e = parse_expr("time >= '2024-01-01'").unwrap();
        let r = split_condition(Some(&e), NOW, Some(tz)).unwrap();
        assert_eq!(r.range.lower, Some(1_704_085_200_000_000_000));
        assert!(parse_timezone("Mars/Base").is_err());
    }

    #[test]
    fn epoch_with_units_and_arithmetic() {
        let r = split("time > 1700000000s + 30m AND time < 1700000000000000000 + 1h");
        assert_eq!(r.range.lower, Some(NOW + H / 2 + 1));
        assert_eq!(r.range.upper, Some(NOW + H - 1));
    }

    #[test]
    fn contradictions_are_empty() {
        assert!(split("time > 100 AND time < 50").empty);
        assert!(split("time = 1 AND time = 2").empty);
        assert!(!split("time = 1 AND time = 1").empty);
        assert!(split("time > 1 OR host = 'a'").empty);
    }

    #[test]
    fn bad_time_conditions_are_errors() {
        let e = parse_expr("time != 5").unwrap();
        assert!(split_condition(Some(&e), NOW, None).is_err());
        let e = parse_expr("time > 'yesterday'").unwrap();
        assert_eq!(
            split_condition(Some(&e), NOW, None)
                .unwrap_err()
                .to_string(),
            "invalid time string 'yesterday'"
        );
        let e = parse_expr("time > 9223372036854775807 + 1").unwrap();
        assert!(split_condition(Some(&e), NOW, None).is_err());
    }
}
