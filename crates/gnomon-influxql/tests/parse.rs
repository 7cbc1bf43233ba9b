//! Each construct of INFLUXQL.md parses to the expected tree, and printing that tree gives
//! text that parses back to the same tree.

use gnomon_influxql::ast::*;
use gnomon_influxql::{parse_expr, parse_statement, parse_statements};

/// Parses, checks the round trip, returns the statement.
fn rt(q: &str) -> Statement {
    let s = parse_statement(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    let printed = s.to_string();
    let again = parse_statement(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
    assert_eq!(s, again, "round trip of {q} via {printed}");
    s
}

fn select(q: &str) -> SelectStatement {
    match rt(q) {
        Statement::Select(s) => *s,
        other => panic!("not a select: {other:?}"),
    }
}

fn e(s: &str) -> Expr {
    parse_expr(s).unwrap()
}

fn var(s: &str) -> Expr {
    Expr::var(s)
}

fn lit_i(v: i64) -> Expr {
    Expr::Literal(Literal::Integer(v))
}

fn str_lit(s: &str) -> Expr {
    Expr::Literal(Literal::String(s.into()))
}

fn dur(ns: i64) -> Expr {
    Expr::Literal(Literal::Duration(ns))
}

const S: i64 = 1_000_000_000;

#[test]
fn simple_select() {
    let s = select("SELECT usage FROM cpu");
    assert_eq!(
        s.fields,
        vec![Field {
            expr: var("usage"),
            alias: None
        }]
    );
    assert_eq!(
        s.from,
        vec![MeasurementSelection::Name(QualifiedMeasurement::name(
            "cpu"
        ))]
    );
    assert_eq!(s.condition, None);
}

#[test]
fn keywords_are_case_insensitive() {
    assert_eq!(
        select("select usage from cpu where host = 'a' limit 1"),
        select("SELECT usage FROM cpu WHERE host = 'a' LIMIT 1")
    );
}

#[test]
fn wildcards_and_casts() {
    let s = select("SELECT *, *::field, *::tag, usage::float, host::tag, n::integer, u::unsigned, s::string, b::boolean, f::field FROM cpu");
    let exprs: Vec<Expr> = s.fields.into_iter().map(|f| f.expr).collect();
    assert_eq!(exprs[0], Expr::Wildcard(None));
    assert_eq!(exprs[1], Expr::Wildcard(Some(WildcardType::Field)));
    assert_eq!(exprs[2], Expr::Wildcard(Some(WildcardType::Tag)));
    let types: Vec<Option<DataType>> = exprs[3..]
        .iter()
        .map(|e| match e {
            Expr::VarRef { data_type, .. } => *data_type,
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        types,
        [
            DataType::Float,
            DataType::Tag,
            DataType::Integer,
            DataType::Unsigned,
            DataType::String,
            DataType::Boolean,
            DataType::Field
        ]
        .map(Some)
    );
}

#[test]
fn regex_projection() {
    let s = select(r"SELECT /us.*/ FROM cpu");
    assert_eq!(s.fields[0].expr, Expr::Regex(Regex("us.*".into())));
}

#[test]
fn arithmetic_precedence_and_aliases() {
    let s = select("SELECT a + b * 2 AS x, (a + b) * 2, a - -1, a % 3 & 1 | 4 ^ 5 FROM m");
    assert_eq!(s.fields[0].alias, Some(Ident::new("x")));
    assert_eq!(
        s.fields[0].expr,
        Expr::binary(
            var("a"),
            BinaryOp::Add,
            Expr::binary(var("b"), BinaryOp::Mul, lit_i(2))
        )
    );
    assert_eq!(
        s.fields[1].expr,
        Expr::binary(
            Expr::Nested(Box::new(Expr::binary(var("a"), BinaryOp::Add, var("b")))),
            BinaryOp::Mul,
            lit_i(2)
        )
    );
    assert_eq!(
        s.fields[2].expr,
        Expr::binary(var("a"), BinaryOp::Sub, lit_i(-1))
    );
    // `%` and `&` bind tighter than `|` and `^`, which are left-associative.
    assert_eq!(
        s.fields[3].expr,
        Expr::binary(
            Expr::binary(
                Expr::binary(
                    Expr::binary(var("a"), BinaryOp::Mod, lit_i(3)),
                    BinaryOp::BitAnd,
                    lit_i(1)
                ),
                BinaryOp::BitOr,
                lit_i(4)
            ),
            BinaryOp::BitXor,
            lit_i(5)
        )
    );
}

#[test]
fn subtraction_is_left_associative() {
    assert_eq!(
        e("a - b - c"),
        Expr::binary(
            Expr::binary(var("a"), BinaryOp::Sub, var("b")),
            BinaryOp::Sub,
            var("c")
        )
    );
}

#[test]
fn function_calls_with_arguments() {
    let s = select("SELECT count(usage), COUNT(DISTINCT host), count(distinct(host)), mean(*), percentile(usage, 95.5), top(usage, host, 3), bottom(usage, 2), derivative(mean(usage), 1s), non_negative_derivative(max(x)), difference(usage), moving_average(usage, 3), cumulative_sum(usage), elapsed(usage, 1ms), integral(usage, 1h), sample(usage, 2) FROM cpu");
    let calls: Vec<(String, usize)> = s
        .fields
        .iter()
        .map(|f| match &f.expr {
            Expr::Call { name, args } => (name.clone(), args.len()),
            other => panic!("{other:?}"),
        })
        .collect();
    let expected = [
        ("count", 1),
        ("count", 1),
        ("count", 1),
        ("mean", 1),
        ("percentile", 2),
        ("top", 3),
        ("bottom", 2),
        ("derivative", 2),
        ("non_negative_derivative", 1),
        ("difference", 1),
        ("moving_average", 2),
        ("cumulative_sum", 1),
        ("elapsed", 2),
        ("integral", 2),
        ("sample", 2),
    ];
    assert_eq!(calls, expected.map(|(n, a)| (n.to_string(), a)).to_vec());
    assert_eq!(
        s.fields[1].expr,
        Expr::call("count", vec![Expr::Distinct(Ident::new("host"))])
    );
    assert_eq!(
        s.fields[7].expr,
        Expr::call(
            "derivative",
            vec![Expr::call("mean", vec![var("usage")]), dur(S)]
        )
    );
}

#[test]
fn from_forms() {
    let s =
        select(r#"SELECT * FROM cpu, "my db"."autogen"."m 1", db..m, rp.m, /^c.*/, db.rp./x\/y/"#);
    let names: Vec<String> = s.from.iter().map(|f| f.to_string()).collect();
    assert_eq!(
        names,
        [
            "cpu",
            r#""my db".autogen."m 1""#,
            "db..m",
            "rp.m",
            "/^c.*/",
            r"db.rp./x\/y/"
        ]
    );
    match &s.from[1] {
        MeasurementSelection::Name(q) => {
            assert_eq!(q.database, Some(Ident::new("my db")));
            assert_eq!(q.retention_policy, Some(Ident::new("autogen")));
            assert_eq!(q.name, MeasurementName::Name(Ident::new("m 1")));
        }
        _ => panic!(),
    }
    match &s.from[2] {
        MeasurementSelection::Name(q) => {
            assert_eq!(q.database, Some(Ident::new("db")));
            assert_eq!(q.retention_policy, None);
        }
        _ => panic!(),
    }
    match &s.from[3] {
        MeasurementSelection::Name(q) => {
            assert_eq!(q.database, None);
            assert_eq!(q.retention_policy, Some(Ident::new("rp")));
        }
        _ => panic!(),
    }
    match &s.from[5] {
        MeasurementSelection::Name(q) => {
            assert_eq!(q.name, MeasurementName::Regex(Regex("x/y".into())))
        }
        _ => panic!(),
    }
}

#[test]
fn subqueries() {
    let s = select("SELECT max(m) FROM (SELECT mean(usage) AS m FROM cpu GROUP BY time(1m), host) WHERE time > 0");
    let MeasurementSelection::Subquery(inner) = &s.from[0] else {
        panic!()
    };
    assert_eq!(inner.fields[0].alias, Some(Ident::new("m")));
    assert_eq!(inner.group_by.as_ref().unwrap().len(), 2);
    select("SELECT * FROM (SELECT * FROM (SELECT a FROM m)), other");
}

#[test]
fn where_time_ranges() {
    let s = select("SELECT v FROM m WHERE time >= '2025-01-01T00:00:00Z' AND time < now() - 1h OR time > 1700000000s");
    assert_eq!(
        s.condition.unwrap(),
        Expr::binary(
            Expr::binary(
                Expr::binary(var("time"), BinaryOp::GtEq, str_lit("2025-01-01T00:00:00Z")),
                BinaryOp::And,
                Expr::binary(
                    var("time"),
                    BinaryOp::Lt,
                    Expr::binary(Expr::call("now", vec![]), BinaryOp::Sub, dur(3600 * S))
                )
            ),
            BinaryOp::Or,
            Expr::binary(var("time"), BinaryOp::Gt, dur(1_700_000_000 * S))
        )
    );
}

#[test]
fn where_comparisons_and_regex() {
    let s = select(
        r#"SELECT v FROM m WHERE host = 'a' AND ("region" != 'us' OR region <> 'eu') AND host =~ /^a\/b$/ AND host !~ /x/ AND v <= 1.5 AND v >= -2 AND b = true AND x < 3 AND y > 4"#,
    );
    let printed = s.condition.as_ref().unwrap().to_string();
    assert_eq!(
        printed,
        r#"host = 'a' AND (region != 'us' OR region != 'eu') AND host =~ /^a\/b$/ AND host !~ /x/ AND v <= 1.5 AND v >= -2 AND b = true AND x < 3 AND y > 4"#
    );
}

#[test]
fn and_binds_tighter_than_or() {
    assert_eq!(
        e("a = 1 OR b = 2 AND c = 3"),
        Expr::binary(
            Expr::binary(var("a"), BinaryOp::Eq, lit_i(1)),
            BinaryOp::Or,
            Expr::binary(
                Expr::binary(var("b"), BinaryOp::Eq, lit_i(2)),
                BinaryOp::And,
                Expr::binary(var("c"), BinaryOp::Eq, lit_i(3))
            )
        )
    );
}

#[test]
fn group_by_fill_order_limits_tz() {
    let s = select("SELECT mean(v) FROM m WHERE time > now() - 1d GROUP BY time(10m, 5m), host, /^r/, * fill(linear) ORDER BY time DESC LIMIT 10 OFFSET 2 SLIMIT 3 SOFFSET 4 tz('Europe/Paris')");
    assert_eq!(
        s.group_by.unwrap(),
        vec![
            Dimension::Time {
                interval: dur(600 * S),
                offset: Some(dur(300 * S))
            },
            Dimension::Tag(Ident::new("host")),
            Dimension::Regex(Regex("^r".into())),
            Dimension::Wildcard,
        ]
    );
    assert_eq!(s.fill, Some(Fill::Linear));
    assert_eq!(s.order_by, Some(Order::Descending));
    assert_eq!(
        (s.limit, s.offset, s.slimit, s.soffset),
        (Some(10), Some(2), Some(3), Some(4))
    );
    assert_eq!(s.timezone.as_deref(), Some("Europe/Paris"));
}

#[test]
fn fill_variants() {
    let fill = |q: &str| select(&format!("SELECT mean(v) FROM m GROUP BY time(1m) {q}")).fill;
    assert_eq!(fill("fill(null)"), Some(Fill::Null));
    assert_eq!(fill("FILL(none)"), Some(Fill::None));
    assert_eq!(fill("fill(previous)"), Some(Fill::Previous));
    assert_eq!(fill("fill(0)"), Some(Fill::Value(Number::Integer(0))));
    assert_eq!(fill("fill(-1)"), Some(Fill::Value(Number::Integer(-1))));
    assert_eq!(fill("fill(1.5)"), Some(Fill::Value(Number::Float(1.5))));
    assert_eq!(fill("fill(-2.0)"), Some(Fill::Value(Number::Float(-2.0))));
    assert_eq!(fill(""), None);
}

#[test]
fn order_by_forms() {
    assert_eq!(
        select("SELECT v FROM m ORDER BY time").order_by,
        Some(Order::Ascending)
    );
    assert_eq!(
        select("SELECT v FROM m ORDER BY time asc").order_by,
        Some(Order::Ascending)
    );
    assert_eq!(
        select("SELECT v FROM m ORDER BY DESC").order_by,
        Some(Order::Descending)
    );
}

#[test]
fn durations_in_every_unit() {
    let units = [
        ("1ns", 1),
        ("1u", 1_000),
        ("1µ", 1_000),
        ("1ms", 1_000_000),
        ("1s", S),
        ("1m", 60 * S),
        ("1h", 3600 * S),
        ("1d", 86_400 * S),
        ("1w", 604_800 * S),
        ("90m", 5400 * S),
    ];
    for (text, ns) in units {
        assert_eq!(
            e(&format!("now() - {text}")),
            Expr::binary(Expr::call("now", vec![]), BinaryOp::Sub, dur(ns)),
            "{text}"
        );
    }
}

#[test]
fn string_and_identifier_escapes() {
    let s = select(r#"SELECT "we\"ird\\name" FROM "quoted" WHERE t = 'it\'s \\ a\nline'"#);
    assert_eq!(s.fields[0].expr, var("we\"ird\\name"));
    let s2 = select(r#"SELECT "a" FROM m WHERE t = 'x\'y'"#);
    assert_eq!(
        s2.condition.unwrap(),
        Expr::binary(var("t"), BinaryOp::Eq, str_lit("x'y"))
    );
    assert_eq!(
        s.condition.unwrap(),
        Expr::binary(var("t"), BinaryOp::Eq, str_lit("it's \\ a\nline"))
    );
}

#[test]
fn keywords_as_quoted_identifiers() {
    let s = select(r#"SELECT "name", "key", "select" FROM "from" GROUP BY "name""#);
    assert_eq!(s.fields[0].expr, var("name"));
    assert_eq!(
        s.to_string(),
        r#"SELECT "name", "key", "select" FROM "from" GROUP BY "name""#
    );
}

#[test]
fn bound_parameters() {
    let s = select(r#"SELECT v FROM m WHERE host = $host AND v > $"min value""#);
    assert_eq!(
        s.condition.unwrap(),
        Expr::binary(
            Expr::binary(var("host"), BinaryOp::Eq, Expr::BindParam("host".into())),
            BinaryOp::And,
            Expr::binary(var("v"), BinaryOp::Gt, Expr::BindParam("min value".into()))
        )
    );
}

#[test]
fn literals() {
    assert_eq!(e("1"), lit_i(1));
    assert_eq!(e("-9223372036854775808"), lit_i(i64::MIN));
    assert_eq!(
        e("18446744073709551615"),
        Expr::Literal(Literal::Unsigned(u64::MAX))
    );
    assert_eq!(e("1.25"), Expr::Literal(Literal::Float(1.25)));
    assert_eq!(e(".5"), Expr::Literal(Literal::Float(0.5)));
    assert_eq!(e("TRUE"), Expr::Literal(Literal::Boolean(true)));
    assert_eq!(e("false"), Expr::Literal(Literal::Boolean(false)));
    // Floats keep a fraction when printed, so they do not come back as integers.
    assert_eq!(Expr::Literal(Literal::Float(3.0)).to_string(), "3.0");
    assert_eq!(
        e(&Expr::Literal(Literal::Float(1e300)).to_string()),
        Expr::Literal(Literal::Float(1e300))
    );
}

#[test]
fn comments_are_ignored() {
    assert_eq!(
        select("SELECT v -- the value\nFROM /* measurement */ m"),
        select("SELECT v FROM m")
    );
}

#[test]
fn multiple_statements() {
    let all = parse_statements("SELECT a FROM m; SHOW DATABASES;; SELECT b FROM n;").unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[1], Statement::ShowDatabases);
    let q = Query { statements: all };
    assert_eq!(parse_statements(&q.to_string()).unwrap(), q.statements);
}

#[test]
fn show_statements() {
    assert_eq!(rt("SHOW DATABASES"), Statement::ShowDatabases);
    assert_eq!(
        rt("SHOW RETENTION POLICIES ON mydb"),
        Statement::ShowRetentionPolicies(ShowRetentionPolicies {
            database: Some(Ident::new("mydb"))
        })
    );
    assert_eq!(
        rt("SHOW RETENTION POLICIES"),
        Statement::ShowRetentionPolicies(ShowRetentionPolicies { database: None })
    );
    let Statement::ShowMeasurements(m) =
        rt("SHOW MEASUREMENTS ON db WITH MEASUREMENT =~ /cpu.*/ WHERE host = 'a' LIMIT 5 OFFSET 1")
    else {
        panic!()
    };
    assert_eq!(m.on, Some(OnClause::Database(Ident::new("db"))));
    assert_eq!(
        m.with_measurement,
        Some(WithMeasurement::Regex(QualifiedMeasurement {
            database: None,
            retention_policy: None,
            name: MeasurementName::Regex(Regex("cpu.*".into()))
        }))
    );
    assert_eq!((m.limit, m.offset), (Some(5), Some(1)));
    let Statement::ShowMeasurements(m) = rt("SHOW MEASUREMENTS WITH MEASUREMENT = cpu") else {
        panic!()
    };
    assert_eq!(
        m.with_measurement,
        Some(WithMeasurement::Equals(QualifiedMeasurement::name("cpu")))
    );
    for (q, on) in [
        ("SHOW MEASUREMENTS ON *", OnClause::AllDatabases),
        (
            "SHOW MEASUREMENTS ON *.*",
            OnClause::AllDatabasesAndRetentionPolicies,
        ),
        (
            "SHOW MEASUREMENTS ON db.rp",
            OnClause::DatabaseRetentionPolicy(Ident::new("db"), Ident::new("rp")),
        ),
    ] {
        let Statement::ShowMeasurements(m) = rt(q) else {
            panic!()
        };
        assert_eq!(m.on, Some(on));
    }
    let Statement::ShowTagKeys(k) =
        rt("SHOW TAG KEYS ON db FROM cpu, /m.*/ WHERE host = 'a' LIMIT 2 OFFSET 3")
    else {
        panic!()
    };
    assert_eq!(k.database, Some(Ident::new("db")));
    assert_eq!(k.from.as_ref().unwrap().len(), 2);
    assert_eq!((k.limit, k.offset), (Some(2), Some(3)));
    let Statement::ShowTagValues(v) =
        rt("SHOW TAG VALUES ON db FROM cpu WITH KEY = host WHERE region = 'us' LIMIT 1")
    else {
        panic!()
    };
    assert_eq!(v.with_key, WithKey::Eq(Ident::new("host")));
    for (q, key) in [
        (
            "SHOW TAG VALUES WITH KEY != host",
            WithKey::NotEq(Ident::new("host")),
        ),
        (
            "SHOW TAG VALUES WITH KEY =~ /h.*/",
            WithKey::EqRegex(Regex("h.*".into())),
        ),
        (
            "SHOW TAG VALUES WITH KEY !~ /h.*/",
            WithKey::NotEqRegex(Regex("h.*".into())),
        ),
        (
            r#"SHOW TAG VALUES WITH KEY IN (host, "region")"#,
            WithKey::In(vec![Ident::new("host"), Ident::new("region")]),
        ),
    ] {
        let Statement::ShowTagValues(v) = rt(q) else {
            panic!()
        };
        assert_eq!(v.with_key, key, "{q}");
    }
    let Statement::ShowFieldKeys(f) = rt("SHOW FIELD KEYS ON db FROM cpu LIMIT 1 OFFSET 1") else {
        panic!()
    };
    assert_eq!(f.from, Some(vec![QualifiedMeasurement::name("cpu")]));
    assert_eq!(
        rt("show field keys"),
        Statement::ShowFieldKeys(ShowFieldKeys {
            database: None,
            from: None,
            limit: None,
            offset: None
        })
    );
}

#[test]
fn explain_create_delete_drop() {
    let Statement::Explain(x) = rt("EXPLAIN ANALYZE VERBOSE SELECT v FROM m") else {
        panic!()
    };
    assert!(x.analyze && x.verbose);
    let Statement::Explain(x) = rt("EXPLAIN SELECT v FROM m") else {
        panic!()
    };
    assert!(!x.analyze && !x.verbose);
    assert_eq!(
        rt("CREATE DATABASE foo"),
        Statement::CreateDatabase(Ident::new("foo"))
    );
    assert_eq!(
        rt("DROP MEASUREMENT cpu"),
        Statement::DropMeasurement(Ident::new("cpu"))
    );
    let Statement::Delete(d) = rt("DELETE FROM cpu WHERE time < 10") else {
        panic!()
    };
    assert!(d.from.is_some() && d.condition.is_some());
}

#[test]
fn display_quotes_what_needs_quoting() {
    let s = select(r#"SELECT "a b", "1x", "true", time FROM "x.y" WHERE "A"='b'"#);
    assert_eq!(
        s.to_string(),
        r#"SELECT "a b", "1x", "true", time FROM "x.y" WHERE A = 'b'"#
    );
}
