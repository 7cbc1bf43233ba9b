//! The parser never panics, whatever it is fed, and whatever it accepts prints back to text
//! that parses to the same tree. Inputs: arbitrary text, random token soup, and valid queries
//! with random edits.

use gnomon_influxql::ast::Statement;
use gnomon_influxql::semantic::validate_select;
use gnomon_influxql::time_range::split_condition;
use gnomon_influxql::{parse_statements, semantic};
use proptest::prelude::*;

const CORPUS: &[&str] = &[
    "SELECT usage FROM cpu",
    "SELECT *, *::tag, usage::float AS u FROM \"db\".\"autogen\".cpu, /^m.*/ WHERE host =~ /a\\/b/ AND time > now() - 1h",
    "SELECT mean(usage), count(distinct(host)) FROM cpu WHERE time >= '2025-01-01T00:00:00Z' AND time < 1700000000s GROUP BY time(10m, 1m), host, * fill(previous) ORDER BY time DESC LIMIT 10 OFFSET 1 SLIMIT 2 SOFFSET 3 tz('Europe/Paris')",
    "SELECT top(usage, host, 3), derivative(mean(x), 1s) FROM (SELECT usage FROM cpu) WHERE (a = 1 OR b != 'x') AND c <> -1.5",
    "SHOW TAG VALUES ON db FROM cpu WITH KEY IN (host, \"region\") WHERE host = $h LIMIT 1 OFFSET 2",
    "SHOW MEASUREMENTS ON *.* WITH MEASUREMENT =~ /c.*/ WHERE a = 'b' LIMIT 3",
    "SHOW TAG KEYS FROM cpu; SHOW FIELD KEYS ON db; SHOW DATABASES; SHOW RETENTION POLICIES ON db",
    "EXPLAIN ANALYZE SELECT a % 2 & 3 | 4 ^ 5 FROM m fill(-1.5) -- trailing comment",
    "DELETE FROM cpu WHERE time < 10; DROP MEASUREMENT x; CREATE DATABASE y",
    "SELECT max(mean) FROM (SELECT mean(usage) FROM cpu WHERE time > now() - 1h GROUP BY time(1m), host) WHERE mean > 1 GROUP BY host",
    "SELECT integral(m, 1m) FROM (SELECT max(a) AS m FROM (SELECT * FROM /c.*/ GROUP BY *) GROUP BY time(1m) fill(linear)), (SELECT b AS m FROM mem) tz('Asia/Kolkata')",
];

/// `depth` subqueries nested around a raw query, each level with its own clauses.
fn nested(depth: usize, clauses: &[&str]) -> String {
    let mut q = "SELECT usage FROM cpu".to_string();
    for i in 0..depth {
        let clause = clauses.get(i).copied().unwrap_or("");
        q = format!("SELECT * FROM ({q}) {clause}");
    }
    q
}

const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "LIMIT",
    "OFFSET",
    "SLIMIT",
    "SOFFSET",
    "SHOW",
    "TAG",
    "KEYS",
    "VALUES",
    "WITH",
    "KEY",
    "IN",
    "MEASUREMENTS",
    "MEASUREMENT",
    "FIELD",
    "DATABASES",
    "RETENTION",
    "POLICIES",
    "ON",
    "AND",
    "OR",
    "AS",
    "DISTINCT",
    "EXPLAIN",
    "ANALYZE",
    "time",
    "time(",
    "fill(",
    "tz(",
    "now()",
    "mean(",
    "count(",
    "top(",
    "integral(",
    "(SELECT",
    "FROM (SELECT * FROM cpu)",
    "fill(linear)",
    "tz('Asia/Kolkata')",
    "cpu",
    "host",
    "\"q d\"",
    "'str'",
    "'it\\'s'",
    "/re/",
    "/a\\/b/",
    "$p",
    "1",
    "-2",
    "1.5",
    ".5",
    "10m",
    "1h30m",
    "1µ",
    "*",
    "::",
    "::field",
    "::tag",
    ",",
    "(",
    ")",
    ".",
    "..",
    ";",
    "+",
    "-",
    "/",
    "%",
    "&",
    "|",
    "^",
    "=",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "=~",
    "!~",
    "true",
    "NULL",
    "none",
    "--",
    "/*",
    "*/",
    "µ",
    "\\",
    "\"",
    "'",
];

/// Parsing must not panic; what parses must round-trip, and the semantic helpers must not
/// panic on it either.
fn check(input: &str) -> Result<(), TestCaseError> {
    let Ok(statements) = parse_statements(input) else {
        return Ok(());
    };
    for s in &statements {
        let printed = s.to_string();
        let again = parse_statements(&printed)
            .map_err(|e| TestCaseError::fail(format!("{input:?} printed as {printed:?}: {e}")))?;
        prop_assert_eq!(again.len(), 1, "{:?} printed as {:?}", input, printed);
        prop_assert_eq!(&again[0], s, "{:?} printed as {:?}", input, printed);
        if let Statement::Select(sel) = s {
            let _ = validate_select(sel);
            let _ = split_condition(sel.condition.as_ref(), 0, None);
            let _ = semantic::column_names(sel);
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, String),
    Replace(usize, String),
}

fn apply(base: &str, edits: &[Edit]) -> String {
    let mut s = base.to_string();
    for e in edits {
        let boundary = |s: &str, at: usize| {
            let mut at = at % (s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        match e {
            Edit::Delete(at) if !s.is_empty() => {
                let at = boundary(&s, *at);
                if at < s.len() {
                    let ch = s[at..].chars().next().unwrap();
                    s.replace_range(at..at + ch.len_utf8(), "");
                }
            }
            Edit::Insert(at, t) => {
                let at = boundary(&s, *at);
                s.insert_str(at, t);
            }
            Edit::Replace(at, t) if !s.is_empty() => {
                let at = boundary(&s, *at);
                if at < s.len() {
                    let ch = s[at..].chars().next().unwrap();
                    s.replace_range(at..at + ch.len_utf8(), t);
                }
            }
            _ => {}
        }
    }
    s
}

fn edit() -> impl Strategy<Value = Edit> {
    let piece = prop_oneof![
        prop::sample::select(TOKENS).prop_map(|t| t.to_string()),
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), piece.clone()).prop_map(|(a, t)| Edit::Insert(a, t)),
        (any::<usize>(), piece).prop_map(|(a, t)| Edit::Replace(a, t)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(input in "\\PC{0,80}") {
        check(&input)?;
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(TOKENS), 0..30)) {
        check(&tokens.join(" "))?;
        check(&tokens.concat())?;
    }

    #[test]
    fn nested_subqueries_never_panic(
        depth in 0usize..40,
        clauses in prop::collection::vec(prop::sample::select(&[
            "", "WHERE usage > 1", "GROUP BY host", "GROUP BY time(1m) fill(linear)",
            "LIMIT 1", "ORDER BY time DESC", "tz('Europe/Paris')",
        ][..]), 0..40),
        cut in any::<usize>(),
    ) {
        let q = nested(depth, &clauses);
        check(&q)?;
        // Truncated anywhere (unbalanced parentheses, half a clause).
        let mut at = cut % (q.len() + 1);
        while !q.is_char_boundary(at) {
            at -= 1;
        }
        check(&q[..at])?;
    }

    #[test]
    fn mutated_queries_never_panic(
        base in prop::sample::select(CORPUS),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        check(&apply(base, &edits))?;
    }
}

#[test]
fn corpus_round_trips() {
    for q in CORPUS {
        let parsed = parse_statements(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert!(!parsed.is_empty());
        check(q).unwrap();
    }
}
