//! Validation errors, function classes, bound parameters, column names and time windows.

use std::collections::HashMap;

use gnomon_influxql::ast::*;
use gnomon_influxql::parse_statement;
use gnomon_influxql::semantic::*;

fn select(q: &str) -> SelectStatement {
    match parse_statement(q).unwrap() {
        Statement::Select(s) => *s,
        other => panic!("{other:?}"),
    }
}

fn validate(q: &str) -> Result<SelectInfo, SemanticError> {
    validate_select(&select(q))
}

fn plan_err(q: &str) -> String {
    match validate(q) {
        Err(SemanticError::Plan(m)) => m,
        other => panic!("{q}: {other:?}"),
    }
}

fn not_implemented(q: &str) -> String {
    match validate(q) {
        Err(e @ SemanticError::NotImplemented(_)) => e.to_string(),
        other => panic!("{q}: {other:?}"),
    }
}

#[test]
fn classes() {
    use FunctionKind::*;
    for (name, kind) in [
        ("count", Aggregate),
        ("mean", Aggregate),
        ("median", Aggregate),
        ("mode", Aggregate),
        ("spread", Aggregate),
        ("stddev", Aggregate),
        ("sum", Aggregate),
        ("integral", Aggregate),
        ("distinct", Aggregate),
        ("percentile", Selector),
        ("first", Selector),
        ("last", Selector),
        ("min", Selector),
        ("max", Selector),
        ("top", Selector),
        ("bottom", Selector),
        ("derivative", Transformation),
        ("non_negative_derivative", Transformation),
        ("difference", Transformation),
        ("non_negative_difference", Transformation),
        ("moving_average", Transformation),
        ("cumulative_sum", Transformation),
        ("elapsed", Transformation),
        ("abs", Scalar),
        ("pow", Scalar),
        ("now", Now),
        ("holt_winters", Unplannable),
        ("sample", NotImplemented),
        ("count_hll", NotImplemented),
    ] {
        assert_eq!(classify_function(name), Some(kind), "{name}");
    }
    assert_eq!(classify_function("nope"), None);
}

#[test]
fn valid_queries_pass() {
    for q in [
        "SELECT usage FROM cpu",
        "SELECT * FROM cpu WHERE host = 'a'",
        "SELECT usage * 2 + 1 FROM cpu",
        "SELECT abs(usage) FROM cpu",
        "SELECT count(usage), mean(usage), max(usage) FROM cpu GROUP BY time(1m), host fill(0)",
        "SELECT count(distinct(host)) FROM cpu",
        "SELECT COUNT(DISTINCT host) FROM cpu",
        "SELECT mean(*) FROM cpu",
        "SELECT percentile(usage, 95) FROM cpu",
        "SELECT top(usage, host, 3) FROM cpu",
        "SELECT derivative(usage, 1s) FROM cpu",
        "SELECT derivative(mean(usage), 1s) FROM cpu GROUP BY time(1m)",
        "SELECT moving_average(usage, 3) FROM cpu",
        "SELECT mean(usage) * 100 FROM cpu",
        "SELECT holt_winters(mean(usage), 10, 4) FROM cpu GROUP BY time(1m)",
        "SELECT max(m) FROM (SELECT mean(usage) AS m FROM cpu GROUP BY time(1m))",
        "SELECT usage FROM cpu WHERE time > now() - 1h",
    ] {
        validate(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }
}

#[test]
fn mixing_aggregates_and_raw_fields() {
    for q in [
        "SELECT count(f), f FROM m",
        "SELECT mean(a) + b FROM m",
        "SELECT *, max(a) FROM m",
    ] {
        assert_eq!(
            plan_err(q),
            "mixing aggregate and non-aggregate columns is not supported",
            "{q}"
        );
    }
}

#[test]
fn group_by_time_needs_an_aggregate() {
    assert_eq!(
        plan_err("SELECT v FROM m GROUP BY time(1m)"),
        "GROUP BY requires at least one aggregate function"
    );
}

#[test]
fn group_by_time_arguments() {
    assert_eq!(
        plan_err("SELECT mean(v) FROM m GROUP BY time(0s)"),
        "time dimension must have a positive interval"
    );
    assert_eq!(
        plan_err("SELECT mean(v) FROM m GROUP BY time(1m), time(1h)"),
        "multiple time dimensions not allowed"
    );
    assert_eq!(
        plan_err("SELECT mean(v) FROM m GROUP BY time(v)"),
        "time dimension expected 1 or 2 duration arguments"
    );
    assert_eq!(
        not_implemented("SELECT mean(v) FROM m GROUP BY time(1m, now())"),
        "This feature is not implemented: now"
    );
}

#[test]
fn window_offsets_are_normalised() {
    let info = validate("SELECT mean(v) FROM m GROUP BY time(1h, -15m)").unwrap();
    let g = info.group_by_time.unwrap();
    let h = 3_600_000_000_000;
    assert_eq!(
        g,
        GroupByTime {
            interval: h,
            offset: 45 * 60_000_000_000,
            zone: None,
        }
    );
    assert_eq!(
        g.window_start(h + 50 * 60_000_000_000),
        h + 45 * 60_000_000_000
    );
    assert_eq!(g.window_start(h + 10 * 60_000_000_000), 45 * 60_000_000_000);
    // Before the epoch windows still align to multiples of the interval.
    let plain = GroupByTime {
        interval: 10,
        offset: 0,
        zone: None,
    };
    assert_eq!(plain.window_start(-1), -10);
    assert_eq!(plain.window_start(-10), -10);
    assert_eq!(plain.window_start(19), 10);
}

#[test]
fn not_implemented_features() {
    assert_eq!(
        not_implemented("SELECT v FROM m SLIMIT 1"),
        "This feature is not implemented: SLIMIT or SOFFSET"
    );
    assert_eq!(
        not_implemented("SELECT v FROM m SOFFSET 1"),
        "This feature is not implemented: SLIMIT or SOFFSET"
    );
    assert_eq!(
        not_implemented("SELECT sample(v, 2) FROM m"),
        "This feature is not implemented: sample"
    );
    assert_eq!(
        not_implemented("SELECT count_hll(v) FROM m"),
        "This feature is not implemented: count_hll"
    );
    assert_eq!(
        not_implemented("SELECT now() FROM m"),
        "This feature is not implemented: now"
    );
    assert_eq!(
        not_implemented("SELECT v FROM m WHERE v > now()"),
        "This feature is not implemented: now"
    );
}

#[test]
fn unknown_functions() {
    assert_eq!(
        plan_err("SELECT foo(v) FROM m"),
        "unsupported function foo()"
    );
    assert_eq!(
        plan_err("SELECT abs(bar(v)) FROM m"),
        "unsupported function bar()"
    );
}

#[test]
fn argument_checks() {
    let cases = [
        (
            "SELECT count(a, b) FROM m",
            "invalid number of arguments for count, expected 1, got 2",
        ),
        (
            "SELECT mean() FROM m",
            "invalid number of arguments for mean, expected 1, got 0",
        ),
        ("SELECT mean(1) FROM m", "expected field argument in mean()"),
        (
            "SELECT percentile(v) FROM m",
            "invalid number of arguments for percentile, expected 2, got 1",
        ),
        (
            "SELECT percentile(v, 'x') FROM m",
            "expected float argument in percentile()",
        ),
        (
            "SELECT top(v) FROM m",
            "invalid number of arguments for top, expected at least 2, got 1",
        ),
        (
            "SELECT top(v, 1.5) FROM m",
            "expected integer as last argument in top(), found 1.5",
        ),
        (
            "SELECT bottom(v, 0) FROM m",
            "limit (0) in bottom function must be at least 1",
        ),
        (
            "SELECT top(v, 'h', 2) FROM m",
            "only fields or tags are allowed in top(), found 'h'",
        ),
        (
            "SELECT moving_average(v, 1) FROM m",
            "moving_average window must be greater than 1",
        ),
        (
            "SELECT moving_average(v) FROM m",
            "invalid number of arguments for moving_average, expected 2, got 1",
        ),
        (
            "SELECT derivative(v, 0s) FROM m",
            "second argument to derivative must be a positive duration",
        ),
        (
            "SELECT derivative(v, 'x') FROM m",
            "second argument to derivative must be a positive duration",
        ),
        (
            "SELECT derivative(mean(v)) FROM m",
            "derivative aggregate requires a GROUP BY interval",
        ),
        (
            "SELECT difference(v) FROM m GROUP BY time(1m)",
            "aggregate function required inside the call to difference",
        ),
        (
            "SELECT count(distinct(1)) FROM m",
            "expected field argument in distinct()",
        ),
        (
            "SELECT distinct(v), mean(w) FROM m",
            "aggregate function distinct() cannot be combined with other functions or fields",
        ),
        (
            "SELECT top(v, 2), mean(w) FROM m",
            "selector function top() cannot be combined with other functions",
        ),
    ];
    for (q, msg) in cases {
        assert_eq!(plan_err(q), msg, "{q}");
    }
}

#[test]
fn subqueries_are_validated() {
    assert_eq!(
        plan_err("SELECT v FROM (SELECT count(f), f FROM m)"),
        "mixing aggregate and non-aggregate columns is not supported"
    );
}

#[test]
fn selector_detection() {
    assert!(validate("SELECT max(v) FROM m").unwrap().single_selector);
    assert!(
        !validate("SELECT max(v), min(v) FROM m")
            .unwrap()
            .single_selector
    );
    assert!(!validate("SELECT mean(v) FROM m").unwrap().single_selector);
    assert!(!validate("SELECT v FROM m").unwrap().has_aggregate);
}

#[test]
fn column_naming() {
    let info = validate("SELECT mean(a), mean(b), mean(c) AS x, a + b, \"weird col\", max(a) AS mean FROM m GROUP BY time(1m)");
    assert!(info.is_err(), "raw columns mixed in");
    let names = column_names(&select(
        "SELECT mean(a), mean(b), mean(c) AS x, max(a) AS mean, a + b, \"weird col\", 1 + v, mean(d) * 2 FROM m",
    ));
    assert_eq!(
        names,
        [
            "mean",
            "mean_1",
            "x",
            "mean_2",
            "a_b",
            "weird col",
            "v",
            "mean_3"
        ]
    );
}

#[test]
fn bind_parameters_replace_placeholders() {
    let mut s = parse_statement("SELECT v FROM m WHERE host = $host AND v > $min").unwrap();
    let params = HashMap::from([
        ("host".to_string(), Literal::String("b".into())),
        ("min".to_string(), Literal::Float(0.5)),
    ]);
    bind_parameters(&mut s, &params).unwrap();
    assert_eq!(
        s,
        parse_statement("SELECT v FROM m WHERE host = 'b' AND v > 0.5").unwrap()
    );
}

#[test]
fn missing_bind_parameter() {
    let mut s = parse_statement("SELECT v FROM (SELECT v FROM m WHERE host = $host)").unwrap();
    let err = bind_parameters(&mut s, &HashMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Bind parameter '$host' was referenced in the InfluxQL statement but its value is undefined"
    );
}
