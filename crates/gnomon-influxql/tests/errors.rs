//! Syntax errors name what was expected and where, in the reference server's words.

use gnomon_influxql::{parse_statement, parse_statements, ParseError};

fn err(q: &str) -> ParseError {
    match parse_statements(q) {
        Ok(s) => panic!("{q} parsed: {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn unknown_show_statement_matches_reference_text() {
    for q in ["show tags", "SHOW SERIES", "SHOW USERS"] {
        assert_eq!(
            err(q).to_string(),
            "invalid SHOW statement, expected DATABASES, FIELD KEYS, MEASUREMENTS, TAG KEYS, TAG VALUES, or RETENTION POLICIES following SHOW at pos 5"
        );
    }
}

#[test]
fn missing_projection() {
    let e = err("select from");
    assert_eq!(e.pos(), 7);
    assert_eq!(e.message(), "invalid SELECT statement, expected field");
    assert_eq!(e.found(), "identifier from");
}

#[test]
fn missing_measurement() {
    assert_eq!(
        err("select * from").to_string(),
        "invalid FROM clause, expected identifier, regular expression or subquery at pos 13"
    );
    assert_eq!(err("select * from").found(), "EOF");
}

#[test]
fn missing_from() {
    let e = err("SELECT a, b");
    assert_eq!(
        (e.message(), e.pos()),
        ("invalid SELECT statement, expected FROM", 11)
    );
}

#[test]
fn keyword_needs_quotes() {
    let e = err("SELECT v FROM m GROUP BY name");
    assert_eq!(e.pos(), 25);
    assert!(e.message().starts_with("invalid GROUP BY clause"), "{e}");
    assert!(parse_statement(r#"SELECT v FROM m GROUP BY "name""#).is_ok());
    let e = err("SELECT key FROM m");
    assert_eq!(e.pos(), 7);
}

#[test]
fn trailing_input() {
    let e = err("SELECT v FROM m extra");
    assert_eq!(
        e.to_string(),
        "invalid InfluxQL statement, expected ';' or end of input at pos 16"
    );
}

#[test]
fn bad_clauses() {
    let cases = [
        ("SELECT v FROM m LIMIT x", 22, "invalid LIMIT clause, expected unsigned integer"),
        ("SELECT v FROM m OFFSET -1", 23, "invalid OFFSET clause, expected unsigned integer"),
        ("SELECT v FROM m SLIMIT 1.5", 23, "invalid SLIMIT clause, expected unsigned integer"),
        ("SELECT v FROM m WHERE", 21, "invalid WHERE clause, expected conditional expression"),
        ("SELECT v FROM m GROUP time(1m)", 22, "invalid GROUP BY clause, expected BY"),
        ("SELECT v FROM m GROUP BY time(1m", 32, "invalid TIME call, expected ')'"),
        ("SELECT mean(v) FROM m GROUP BY time(1m) fill(sometimes)", 45, "invalid FILL clause, expected NULL, NONE, PREVIOUS, LINEAR, or a number"),
        ("SELECT v FROM m ORDER BY v", 25, "invalid ORDER BY, expected ASC, DESC or TIME"),
        ("SELECT v FROM m tz(UTC)", 19, "invalid tz clause, expected string"),
        ("SELECT v::text FROM m", 10, "invalid data type for tag or field reference, expected float, integer, unsigned, string, boolean, field, tag"),
        ("SELECT *::int FROM m", 10, "invalid wildcard type specifier, expected TAG or FIELD"),
        ("SELECT v AS FROM m", 12, "invalid field alias, expected identifier"),
        ("SELECT mean(v FROM m", 14, "invalid function call, expected ',' or ')'"),
        ("SELECT v INTO x FROM m", 9, "invalid SELECT statement, INTO is not supported"),
        ("SELECT v FROM (SHOW DATABASES)", 15, "invalid subquery, expected SELECT"),
        ("SHOW TAG VALUES FROM m", 22, "invalid SHOW TAG VALUES statement, expected WITH KEY"),
        ("SHOW TAG VALUES WITH KEY > x", 25, "invalid WITH KEY clause, expected =, !=, =~, !~ or IN"),
        ("SHOW TAG VALUES WITH KEY =~ host", 28, "invalid WITH KEY clause, expected regular expression"),
        ("SHOW TAG STUFF", 9, "invalid SHOW TAG statement, expected KEYS or VALUES"),
        ("SHOW FIELD VALUES", 11, "invalid SHOW FIELD statement, expected KEYS"),
        ("SHOW RETENTION POLICIES ON", 26, "invalid ON clause, expected identifier"),
        ("SHOW MEASUREMENTS WITH MEASUREMENT > x", 35, "expected = or =~"),
        ("DROP DATABASE x", 5, "invalid DROP statement, expected MEASUREMENT"),
        ("CREATE USER x", 7, "invalid CREATE statement, expected DATABASE"),
        ("DELETE", 6, "invalid DELETE statement, expected FROM or WHERE"),
        ("INSERT cpu v=1", 0, "invalid InfluxQL statement, expected SELECT, SHOW, EXPLAIN, CREATE, DELETE or DROP"),
        ("EXPLAIN SHOW DATABASES", 8, "invalid EXPLAIN statement, expected SELECT"),
        ("", 0, "invalid InfluxQL statement, expected SELECT, SHOW, EXPLAIN, CREATE, DELETE or DROP"),
        (" ; ", 3, "invalid InfluxQL statement, expected SELECT, SHOW, EXPLAIN, CREATE, DELETE or DROP"),
    ];
    for (q, pos, msg) in cases {
        let e = err(q);
        assert_eq!((e.message(), e.pos()), (msg, pos), "{q}");
    }
}

#[test]
fn lexical_errors() {
    let cases = [
        (
            "SELECT v FROM m WHERE h = 'abc",
            26,
            "unterminated string literal",
        ),
        ("SELECT \"v FROM m", 7, "unterminated quoted identifier"),
        ("SELECT v FROM /abc", 14, "unterminated regex literal"),
        (
            "SELECT v FROM m WHERE h = 'a\\qb'",
            28,
            "invalid escape sequence",
        ),
        (
            "SELECT v FROM m WHERE time > now() - 10min",
            37,
            "invalid duration",
        ),
        (
            "SELECT v FROM m WHERE v > 99999999999999999999",
            26,
            "unable to parse integer",
        ),
        (
            "SELECT v FROM m WHERE v > -9223372036854775809",
            26,
            "integer out of range",
        ),
        ("SELECT v FROM m WHERE v ? 1", 24, "invalid character"),
        (
            "SELECT v FROM m /* never closed",
            16,
            "unterminated comment",
        ),
        (
            "SELECT v FROM m WHERE h = $",
            27,
            "invalid bound parameter, expected identifier",
        ),
    ];
    for (q, pos, msg) in cases {
        let e = err(q);
        assert_eq!((e.message(), e.pos()), (msg, pos), "{q}");
    }
}

#[test]
fn error_in_second_statement_points_into_it() {
    let q = "SELECT v FROM m; SELECT FROM m";
    let e = err(q);
    assert_eq!(e.pos(), 24);
}

#[test]
fn line_and_column() {
    let q = "SELECT v\nFROM m\nWHERE \"µ\" = 'x' AND";
    let e = err(q);
    // Columns count characters, not bytes: `µ` is two bytes.
    assert_eq!(e.line_col(q), (3, 20));
    assert_eq!(&q[e.pos()..], "");
}

fn assert_too_deep(q: &str) {
    let e = err(q);
    assert!(e.message().contains("nested too deeply"), "{e}");
}

#[test]
fn deep_parentheses_are_an_error() {
    assert_too_deep(&format!(
        "SELECT {}v{} FROM m",
        "(".repeat(10_000),
        ")".repeat(10_000)
    ));
}

#[test]
fn deep_mixed_precedence_nesting_is_an_error() {
    assert_too_deep(&format!(
        "SELECT v FROM m WHERE {}v{}",
        "(a OR b AND c = d + e * ".repeat(5_000),
        ")".repeat(5_000)
    ));
    // Just under the limit still parses and round-trips.
    let q = format!(
        "SELECT v FROM m WHERE {}v{}",
        "(a OR b AND c = d + e * ".repeat(60),
        ")".repeat(60)
    );
    let s = parse_statement(&q).unwrap();
    assert_eq!(parse_statement(&s.to_string()).unwrap(), s);
}

#[test]
fn deep_unary_minus_is_an_error() {
    assert_too_deep(&format!("SELECT {}v FROM m", "- ".repeat(10_000)));
}

#[test]
fn deep_calls_are_an_error() {
    assert_too_deep(&format!(
        "SELECT {}v{} FROM m",
        "abs(".repeat(10_000),
        ")".repeat(10_000)
    ));
}

#[test]
fn deep_subqueries_are_an_error() {
    assert_too_deep(&format!(
        "SELECT v FROM {}m{}",
        "(SELECT v FROM ".repeat(5_000),
        ")".repeat(5_000)
    ));
}

#[test]
fn long_operator_chains_are_an_error() {
    assert_too_deep(&format!(
        "SELECT v FROM m WHERE {}",
        vec!["h = 'a'"; 10_000].join(" OR ")
    ));
    // Realistic sizes are fine, and survive printing and re-parsing.
    let ors = format!(
        "SELECT v FROM m WHERE {}",
        vec!["h = 'a'"; 490].join(" OR ")
    );
    let s = parse_statement(&ors).unwrap();
    assert_eq!(parse_statement(&s.to_string()).unwrap(), s);
}

#[test]
fn parse_statement_wants_exactly_one() {
    assert!(parse_statement("SELECT a FROM m; SELECT b FROM m").is_err());
    assert!(parse_statement("SELECT a FROM m;").is_ok());
}
