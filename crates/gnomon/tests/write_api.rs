//! Black-box tests of the three write endpoints (`/api/v3/write_lp`, `/write`, `/api/v2/write`),
//! checked by querying the data back with SQL. Expected values come from API.md §2 and
//! LINE_PROTOCOL.md, plus the project's deliberate deviations (full `original_line`, duplicate
//! tags rejected).
//!
//! All tests share one server and stay independent by writing to their own database.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::{
    assert_body, gzip, line_err, now_ns, partial_body, partial_write_errors, unique_name, Resp,
    Server, NS, S,
};
use serde_json::{json, Value};

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    Server::shared(&SERVER, &[])
}

/// Asserts a v3 partial-write answer with exactly one line error and returns its message.
#[track_caller]
fn single_line_error(resp: &Resp) -> (String, u64, String) {
    assert_eq!(resp.status, 400, "{}", resp.describe());
    let errors = partial_write_errors(resp);
    assert_eq!(errors.len(), 1, "{}", resp.describe());
    let e = &errors[0];
    (
        e["error_message"].as_str().unwrap().to_string(),
        e["line_number"].as_u64().unwrap(),
        e["original_line"].as_str().unwrap().to_string(),
    )
}

// ------------------------------------------------------------------------------------------
// /api/v3/write_lp basics and precision
// ------------------------------------------------------------------------------------------

#[test]
fn v3_write_returns_204_empty_and_is_immediately_queryable() {
    let srv = server();
    let db = unique_name("v3rt");
    srv.write_ok(
        &db,
        "cpu,host=a,region=us usage=0.5 1700000000\ncpu,host=b,region=us usage=1.5 1700000001",
        "precision=second",
    );
    // A 204 means the data is queryable now: no polling.
    let rows = srv.sql(
        &db,
        "SELECT host, region, usage, CAST(time AS BIGINT) AS t FROM cpu ORDER BY t",
    );
    assert_eq!(
        rows,
        vec![
            json!({"host": "a", "region": "us", "usage": 0.5, "t": NS}),
            json!({"host": "b", "region": "us", "usage": 1.5, "t": NS + 1_000_000_000}),
        ]
    );
}

#[test]
fn v3_all_precision_values() {
    let srv = server();
    let db = unique_name("v3prec");
    let cases: &[(&str, i64, i64)] = &[
        ("second", S, NS),
        ("s", S + 1, NS + 1_000_000_000),
        ("millisecond", S * 1000 + 123, NS + 123_000_000),
        ("ms", S * 1000 + 7, NS + 7_000_000),
        ("microsecond", S * 1_000_000 + 123_456, NS + 123_456_000),
        ("us", S * 1_000_000 + 7, NS + 7_000),
        ("u", S * 1_000_000 + 8, NS + 8_000),
        ("nanosecond", NS + 123_456_789, NS + 123_456_789),
        ("ns", NS + 7, NS + 7),
        ("n", NS + 8, NS + 8),
        ("auto", S, NS),
        ("auto", S * 1000 + 123, NS + 123_000_000),
        ("auto", S * 1_000_000 + 123_456, NS + 123_456_000),
        ("auto", NS + 123_456_789, NS + 123_456_789),
        // Small values are taken as seconds by `auto`, but not by `ns`.
        ("auto", 123, 123_000_000_000),
        ("ns", 123, 123),
        // Before the epoch.
        ("s", -1, -1_000_000_000),
        ("ns", -1, -1),
        ("s", 0, 0),
    ];
    for (i, (precision, ts, expected)) in cases.iter().enumerate() {
        let table = format!("p{i}");
        srv.write_ok(
            &db,
            format!("{table},t=x v=1 {ts}"),
            &format!("precision={precision}"),
        );
        assert_eq!(
            srv.times(&db, &table),
            vec![*expected],
            "precision={precision} ts={ts}"
        );
    }
}

#[test]
fn v3_default_precision_is_auto_detected_per_line() {
    let srv = server();
    let db = unique_name("v3auto");
    // LINE_PROTOCOL.md §5: v = |ts| / 1e9; v < 5 → s, < 5000 → ms, < 5e6 → us, else ns.
    let cases: &[(i64, i64)] = &[
        (123, 123_000_000_000),
        (S, NS),
        (4_999_999_999, 4_999_999_999_000_000_000),
        (5_000_000_000, 5_000_000_000_000_000),
        (S * 1000 + 5, NS + 5_000_000),
        (1_000_000_000_123, 1_000_000_000_123_000_000),
        (4_999_999_999_999, 4_999_999_999_999_000_000),
        (5_000_000_000_000, 5_000_000_000_000_000),
        (S * 1_000_000 + 5, NS + 5_000),
        (4_999_999_999_999_999, 4_999_999_999_999_999_000),
        (5_000_000_000_000_000, 5_000_000_000_000_000),
        (NS + 5, NS + 5),
        (-5_000_000_000, -5_000_000_000_000_000),
        (-123, -123_000_000_000),
    ];
    // One batch, no precision parameter: each line is detected on its own.
    let body: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (ts, _))| format!("mix,case=c{i:02} v=1 {ts}"))
        .collect();
    srv.write_ok(&db, body.join("\n"), "");
    let rows = srv.sql(
        &db,
        "SELECT \"case\", CAST(time AS BIGINT) AS t FROM mix ORDER BY \"case\"",
    );
    let got: Vec<(String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["case"].as_str().unwrap().to_string(),
                r["t"].as_i64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, i64)> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, ns))| (format!("c{i:02}"), *ns))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn v1_and_v2_precision_values_and_nanosecond_default() {
    let srv = server();
    let cases: &[(&str, i64, i64)] = &[
        ("s", S, NS),
        ("second", S + 2, NS + 2_000_000_000),
        ("ms", S * 1000 + 1, NS + 1_000_000),
        ("millisecond", S * 1000 + 2, NS + 2_000_000),
        ("us", S * 1_000_000 + 1, NS + 1_000),
        ("u", S * 1_000_000 + 2, NS + 2_000),
        ("microsecond", S * 1_000_000 + 3, NS + 3_000),
        ("ns", NS + 1, NS + 1),
        ("n", NS + 2, NS + 2),
        ("nanosecond", NS + 3, NS + 3),
    ];
    for endpoint in ["v1", "v2"] {
        let db = unique_name(&format!("{endpoint}prec"));
        let param = if endpoint == "v1" { "db" } else { "bucket" };
        let write = |query: &str, body: String| -> Resp {
            if endpoint == "v1" {
                srv.write_v1(query, body)
            } else {
                srv.write_v2(query, body)
            }
        };
        for (i, (precision, ts, expected)) in cases.iter().enumerate() {
            let table = format!("p{i}");
            let resp = write(
                &format!("{param}={db}&precision={precision}"),
                format!("{table} v=1 {ts}"),
            );
            assert_body(&resp, 204, "");
            assert_eq!(
                srv.times(&db, &table),
                vec![*expected],
                "{endpoint} precision={precision}"
            );
        }
        // No precision: nanoseconds, even for small values (no auto detection).
        assert_body(
            &write(&format!("{param}={db}"), format!("dflt v=1 {}", NS + 42)),
            204,
            "",
        );
        assert_body(
            &write(&format!("{param}={db}"), "small v=1 123".to_string()),
            204,
            "",
        );
        assert_eq!(srv.times(&db, "dflt"), vec![NS + 42], "{endpoint} default");
        assert_eq!(
            srv.times(&db, "small"),
            vec![123],
            "{endpoint} default is ns"
        );
        // `auto` exists only on the v3 endpoint; hours/minutes are not precisions.
        for bad in ["auto", "h", "m", "fortnight"] {
            let resp = write(
                &format!("{param}={db}&precision={bad}"),
                "bad v=1 1".to_string(),
            );
            assert_eq!(
                resp.status,
                400,
                "{endpoint} precision={bad}: {}",
                resp.describe()
            );
        }
        assert!(!srv.tables(&db).contains(&"bad".to_string()));
    }
}

#[test]
fn missing_timestamp_uses_server_time_truncated_to_the_precision() {
    let srv = server();
    let db = unique_name("nots");
    const SLACK: i64 = 120 * 1_000_000_000; // allow for clock skew, not a timing assertion
                                            // (endpoint, precision or "", unit in ns that the default time must be a multiple of)
    let cases: &[(&str, &str, i64)] = &[
        ("v3", "", 1),
        ("v3", "auto", 1),
        ("v3", "ns", 1),
        ("v3", "s", 1_000_000_000),
        ("v3", "ms", 1_000_000),
        ("v3", "us", 1_000),
        ("v1", "", 1),
        ("v1", "s", 1_000_000_000),
        ("v2", "", 1),
        ("v2", "ms", 1_000_000),
    ];
    for (i, (endpoint, precision, unit)) in cases.iter().enumerate() {
        let table = format!("now{i}");
        let body = format!("{table},k=a v=1");
        let before = now_ns();
        let resp = match *endpoint {
            "v3" => srv.write_lp(
                &db,
                body,
                &if precision.is_empty() {
                    String::new()
                } else {
                    format!("precision={precision}")
                },
            ),
            "v1" => srv.write_v1(
                &format!(
                    "db={db}{}",
                    if precision.is_empty() {
                        String::new()
                    } else {
                        format!("&precision={precision}")
                    }
                ),
                body,
            ),
            _ => srv.write_v2(
                &format!(
                    "bucket={db}{}",
                    if precision.is_empty() {
                        String::new()
                    } else {
                        format!("&precision={precision}")
                    }
                ),
                body,
            ),
        };
        let after = now_ns();
        assert_body(&resp, 204, "");
        let times = srv.times(&db, &table);
        assert_eq!(times.len(), 1);
        let t = times[0];
        assert!(
            t >= before - SLACK && t <= after + SLACK,
            "{endpoint} precision={precision:?}: time {t} not near now ({before}..{after})"
        );
        assert_eq!(
            t % unit,
            0,
            "{endpoint} precision={precision:?}: default time {t} not truncated to {unit} ns"
        );
    }
}

// ------------------------------------------------------------------------------------------
// gzip
// ------------------------------------------------------------------------------------------

#[test]
fn gzip_bodies_on_all_endpoints_including_multi_member() {
    let srv = server();
    let db = unique_name("gz");
    let gz = [("Content-Encoding", "gzip")];

    let resp = srv.post_with(
        &common::v3_path(&db, "precision=s"),
        &gz,
        gzip("gz,host=a v=1i 1\ngz,host=b v=2i 2\ngz,host=c v=3i 3"),
    );
    assert_body(&resp, 204, "");
    assert_eq!(
        srv.sql(&db, "SELECT host, v FROM gz ORDER BY time"),
        vec![
            json!({"host": "a", "v": 1}),
            json!({"host": "b", "v": 2}),
            json!({"host": "c", "v": 3}),
        ]
    );

    // Several members are concatenated; an empty member is fine. The member boundary falls
    // in the middle of a line.
    let mut multi = gzip("multi,k=a v=1 1\nmulti,k=b v=");
    multi.extend(gzip(""));
    multi.extend(gzip("2 2\nmulti,k=c v=3 3\n"));
    let resp = srv.post_with(&common::v3_path(&db, "precision=s"), &gz, multi.clone());
    assert_body(&resp, 204, "");
    assert_eq!(
        srv.times(&db, "multi"),
        vec![1_000_000_000, 2_000_000_000, 3_000_000_000]
    );
    assert_eq!(
        srv.sql(&db, "SELECT k, v FROM multi ORDER BY time"),
        vec![
            json!({"k": "a", "v": 1.0}),
            json!({"k": "b", "v": 2.0}),
            json!({"k": "c", "v": 3.0})
        ]
    );

    let resp = srv.post_with(
        &format!("/write?db={db}&precision=s"),
        &gz,
        gzip("g1 v=1 1\ng1 v=2 2"),
    );
    assert_body(&resp, 204, "");
    assert_eq!(srv.times(&db, "g1"), vec![1_000_000_000, 2_000_000_000]);

    let resp = srv.post_with(
        &format!("/api/v2/write?bucket={db}&precision=s"),
        &gz,
        gzip("g2 v=1 1\ng2 v=2 2"),
    );
    assert_body(&resp, 204, "");
    assert_eq!(srv.times(&db, "g2"), vec![1_000_000_000, 2_000_000_000]);

    let resp = srv.post_with(
        &format!("/api/v2/write?bucket={db}&precision=s"),
        &gz,
        multi,
    );
    assert_body(&resp, 204, "");

    // `identity` is the same as no encoding.
    let resp = srv.post_with(
        &common::v3_path(&db, "precision=s"),
        &[("Content-Encoding", "identity")],
        "ident v=1 1",
    );
    assert_body(&resp, 204, "");
    assert_eq!(srv.times(&db, "ident"), vec![1_000_000_000]);

    // A gzip body with bad lines gets the normal line errors.
    let resp = srv.post_with(
        &common::v3_path(&db, "precision=s"),
        &gz,
        gzip("gzbad v=1 1\ngzbad v= 2"),
    );
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err("No fields were provided", 2, "gzbad v= 2")]),
    );
}

// ------------------------------------------------------------------------------------------
// partial writes and all-or-nothing
// ------------------------------------------------------------------------------------------

#[test]
fn v3_partial_write_reports_bad_lines_and_writes_good_ones() {
    let srv = server();
    let db = unique_name("partial");
    let body =
        "cpu,host=a usage=1 1\ncpu,host=b usage= 2\ncpu,host=c usage=3 3\ncpu,host=d usage=\"x\" 4";
    let resp = srv.write_lp(&db, body, "precision=second");
    assert_body(
        &resp,
        400,
        &partial_body(&[
            line_err("No fields were provided", 2, "cpu,host=b usage= 2"),
            line_err(
                "invalid column type for column 'usage', expected iox::column_type::field::float, got iox::column_type::field::string",
                4,
                "cpu,host=d usage=\"x\" 4",
            ),
        ]),
    );
    assert_eq!(
        srv.sql(&db, "SELECT host, usage FROM cpu ORDER BY time"),
        vec![
            json!({"host": "a", "usage": 1.0}),
            json!({"host": "c", "usage": 3.0})
        ]
    );

    // Explicit accept_partial=true behaves the same.
    let resp = srv.write_lp(
        &db,
        "m v=1 1\nm v=oops 2\nm v=3 3",
        "precision=second&accept_partial=true",
    );
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err("No fields were provided", 2, "m v=oops 2")]),
    );
    assert_eq!(srv.times(&db, "m"), vec![1_000_000_000, 3_000_000_000]);
}

#[test]
fn v3_partial_write_where_every_line_fails() {
    let srv = server();
    let db = unique_name("allbad");
    srv.write_ok(&db, "exists v=1 1", "precision=s");
    let resp = srv.write_lp(&db, "nope v= 1\nnope\nnope v=1 1.5", "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[
            line_err("No fields were provided", 1, "nope v= 1"),
            line_err(
                "Expected at least one space character, got end of input",
                2,
                "nope",
            ),
            line_err(
                "Could not parse entire line. Found trailing content: `.5`",
                3,
                "nope v=1 1.5",
            ),
        ]),
    );
    assert_eq!(srv.tables(&db), vec!["exists".to_string()]);
}

#[test]
fn v3_accept_partial_false_writes_nothing() {
    let srv = server();
    let db = unique_name("nopartial");
    srv.write_ok(&db, "other v=1 1", "precision=second");

    let resp = srv.write_lp(
        &db,
        "t2,host=a v=1 1\nt2,host=b v= 2\nt2,host=c v=3 3",
        "precision=second&accept_partial=false",
    );
    assert_body(
        &resp,
        400,
        &format!(
            r#"{{"error":"line protocol parsing error","data":{}}}"#,
            line_err("No fields were provided", 2, "t2,host=b v= 2")
        ),
    );
    assert_eq!(
        srv.tables(&db),
        vec!["other".to_string()],
        "no table created"
    );

    // Nor are new columns of an existing table added, nor its rows written; a validation
    // error stops processing just like a parse error.
    let resp = srv.write_lp(
        &db,
        "other,newtag=x v=2 2\nother v=3i 3\nother v=4 4",
        "precision=second&accept_partial=false",
    );
    assert_body(
        &resp,
        400,
        &format!(
            r#"{{"error":"line protocol parsing error","data":{}}}"#,
            line_err(
                "invalid column type for column 'v', expected iox::column_type::field::float, got iox::column_type::field::integer",
                2,
                "other v=3i 3"
            )
        ),
    );
    assert_eq!(srv.times(&db, "other"), vec![1_000_000_000]);
    let cols: Vec<Value> = srv
        .sql(
            &db,
            "SELECT column_name FROM information_schema.columns \
             WHERE table_schema = 'iox' AND table_name = 'other' ORDER BY column_name",
        )
        .into_iter()
        .map(|r| r["column_name"].clone())
        .collect();
    assert_eq!(cols, vec![json!("time"), json!("v")], "no column added");

    // accept_partial=false with only good lines is a normal write.
    srv.write_ok(
        &db,
        "t3 v=1 1\nt3 v=2 2",
        "precision=s&accept_partial=false",
    );
    assert_eq!(srv.times(&db, "t3"), vec![1_000_000_000, 2_000_000_000]);
}

#[test]
fn v1_write_is_all_or_nothing() {
    let srv = server();
    let db = unique_name("v1aon");
    let resp = srv.write_v1(&format!("db={db}&precision=s"), "ok v=1 1");
    assert_body(&resp, 204, "");

    let resp = srv.write_v1(
        &format!("db={db}&precision=s"),
        "ok v=2 2\nbad,host=b v= 2\nok v=3 3",
    );
    assert_body(
        &resp,
        400,
        &format!(
            r#"{{"error":"line protocol parsing error","data":{}}}"#,
            line_err("No fields were provided", 2, "bad,host=b v= 2")
        ),
    );
    assert_eq!(
        srv.times(&db, "ok"),
        vec![1_000_000_000],
        "nothing from the failed request"
    );
    assert_eq!(srv.tables(&db), vec!["ok".to_string()]);
}

#[test]
fn v2_write_is_all_or_nothing_with_v2_error_body() {
    let srv = server();
    let db = unique_name("v2aon");
    let resp = srv.write_v2(&format!("bucket={db}&org=ignored&precision=s"), "ok v=1 1");
    assert_body(&resp, 204, "");

    // accept_partial is ignored on v2.
    let resp = srv.write_v2(
        &format!("bucket={db}&precision=s&accept_partial=true"),
        "ok v=2 2\nok v= 3\nok v=4 4",
    );
    assert_body(
        &resp,
        400,
        r#"{"code":"invalid","message":"write buffer error: line protocol parse failed: No fields were provided"}"#,
    );
    let resp = srv.write_v2(&format!("bucket={db}&precision=s"), "ok v=5 5\nok v=5i 6");
    assert_body(
        &resp,
        400,
        r#"{"code":"invalid","message":"write buffer error: line protocol parse failed: invalid column type for column 'v', expected iox::column_type::field::float, got iox::column_type::field::integer"}"#,
    );
    assert_eq!(srv.times(&db, "ok"), vec![1_000_000_000]);
}

#[test]
fn v2_uses_bucket_and_ignores_db_and_org() {
    let srv = server();
    let bucket = unique_name("v2bucket");
    let other = unique_name("v2db");
    let resp = srv.write_v2(
        &format!("bucket={bucket}&db={other}&org=whatever&precision=s"),
        "m v=1 1",
    );
    assert_body(&resp, 204, "");
    assert_eq!(srv.times(&bucket, "m"), vec![1_000_000_000]);
    assert!(
        !srv.database_exists(&other),
        "the db parameter of v2 must be ignored"
    );
}

#[test]
fn v1_retention_policy_maps_to_database_name() {
    let srv = server();
    let db = unique_name("v1rp");
    for (rp, table) in [
        ("bar", "a"),
        ("BAR", "b"),
        ("autogen", "c"),
        ("default", "d"),
        ("", "e"),
    ] {
        let resp = srv.write_v1(
            &format!("db={db}&rp={rp}&precision=s&u=someone&p=secret"),
            format!("{table} v=1 1"),
        );
        assert_body(&resp, 204, "");
    }
    // `bar` and `BAR` (lower-cased) → `<db>/bar`; autogen/default/empty → `<db>`.
    assert_eq!(
        srv.tables(&format!("{db}/bar")),
        vec!["a".to_string(), "b".to_string()]
    );
    assert_eq!(
        srv.tables(&db),
        vec!["c".to_string(), "d".to_string(), "e".to_string()]
    );
    // The v3 endpoint accepts `<db>/<rp>` names too and reaches the same database.
    srv.write_ok(&format!("{db}/bar"), "f v=1 1", "precision=s");
    assert_eq!(srv.times(&format!("{db}/bar"), "f"), vec![1_000_000_000]);
}

// ------------------------------------------------------------------------------------------
// values and names
// ------------------------------------------------------------------------------------------

#[test]
fn field_types_round_trip() {
    let srv = server();
    let db = unique_name("types");
    srv.write_ok(
        &db,
        "types,tag=x i=-5i,u=7u,f=1.25,s=\"hello\",b=true 1700000000",
        "precision=second",
    );
    assert_eq!(
        srv.sql(&db, "SELECT tag, i, u, f, s, b FROM types"),
        vec![json!({"tag": "x", "i": -5, "u": 7, "f": 1.25, "s": "hello", "b": true})]
    );

    srv.write_ok(
        &db,
        "ext i=9223372036854775807i,j=-9223372036854775808i,u=18446744073709551615u,z=0u,\
         a=1E5,b=1e+5,c=-1.0e+3,d=-1.234e-3,e=-0,g=01i,h=1,k=1.5e3 1",
        "precision=s",
    );
    assert_eq!(
        srv.sql(&db, "SELECT i, j, u, z, a, b, c, d, e, g, h, k FROM ext"),
        vec![json!({
            "i": i64::MAX, "j": i64::MIN, "u": u64::MAX, "z": 0,
            "a": 100000.0, "b": 100000.0, "c": -1000.0, "d": -0.001234, "e": 0.0,
            "g": 1, "h": 1.0, "k": 1500.0
        })]
    );
    // Column types as SQL sees them.
    let types: Vec<(String, String)> = srv
        .sql(
            &db,
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = 'iox' AND table_name = 'types' ORDER BY column_name",
        )
        .iter()
        .map(|r| {
            (
                r["column_name"].as_str().unwrap().to_string(),
                r["data_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let find = |c: &str| {
        types
            .iter()
            .find(|(n, _)| n == c)
            .map(|(_, t)| t.clone())
            .unwrap()
    };
    assert_eq!(find("i"), "Int64");
    assert_eq!(find("u"), "UInt64");
    assert_eq!(find("f"), "Float64");
    assert_eq!(find("s"), "Utf8");
    assert_eq!(find("b"), "Boolean");
    assert!(
        find("tag").starts_with("Dictionary(Int32, Utf8"),
        "tag type {}",
        find("tag")
    );
    let time_type = find("time");
    assert!(
        time_type.starts_with("Timestamp(Nanosecond") || time_type.starts_with("Timestamp(ns"),
        "time type {time_type}"
    );

    // A float literal too big for f64 is +inf, rendered as JSON null with the key present.
    let huge = "9".repeat(400);
    srv.write_ok(&db, format!("huge f={huge},g=-{huge} 1"), "precision=s");
    assert_eq!(
        srv.sql(&db, "SELECT f, g FROM huge"),
        vec![json!({"f": null, "g": null})]
    );
}

#[test]
fn string_field_escapes_and_unicode() {
    let srv = server();
    let db = unique_name("strings");
    let body = [
        r#"s,k=01 v="a\"b" 1"#,
        r#"s,k=02 v="a\nb" 1"#, // backslash-n stays two characters
        "s,k=03 v=\"x\ny\" 1",  // a real newline inside the string
        r#"s,k=04 v="" 1"#,
        r#"s,k=05 v="a,b=c d" 1"#,
        r#"s,k=06 v="back\\slash" 1"#,
        "s,k=07 v=\"tab\there\" 1",
        r#"s,k=08 v="ünïcødé ✓" 1"#,
        r#"s,k=09 v="\t\x" 1"#, // unknown escapes are kept literally
        r#"s,k=10 v="ends with \\" 1"#,
    ]
    .join("\n");
    srv.write_ok(&db, body, "precision=s");
    let got: Vec<Value> = srv
        .sql(&db, "SELECT v FROM s ORDER BY k")
        .into_iter()
        .map(|r| r["v"].clone())
        .collect();
    assert_eq!(
        got,
        vec![
            json!("a\"b"),
            json!("a\\nb"),
            json!("x\ny"),
            json!(""),
            json!("a,b=c d"),
            json!("back\\slash"),
            json!("tab\there"),
            json!("ünïcødé ✓"),
            json!("\\t\\x"),
            json!("ends with \\"),
        ]
    );
}

#[test]
fn boolean_spellings() {
    let srv = server();
    let db = unique_name("bools");
    let spellings = [
        "t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE",
    ];
    let body: Vec<String> = spellings
        .iter()
        .enumerate()
        .map(|(i, s)| format!("b v={s} {}", i + 1))
        .collect();
    srv.write_ok(&db, body.join("\n"), "precision=s");
    let got: Vec<Value> = srv
        .sql(&db, "SELECT v FROM b ORDER BY time")
        .into_iter()
        .map(|r| r["v"].clone())
        .collect();
    let want: Vec<Value> = (0..10).map(|i| json!(i < 5)).collect();
    assert_eq!(got, want);
    // Several booleans in one line.
    srv.write_ok(&db, "b2 f=t,g=F,h=TRUE 1", "precision=s");
    assert_eq!(
        srv.sql(&db, "SELECT f, g, h FROM b2"),
        vec![json!({"f": true, "g": false, "h": true})]
    );
}

#[test]
fn names_escapes_and_grammar_edge_cases_that_are_accepted() {
    let srv = server();
    let db = unique_name("names");
    let body = [
        r"m\ x f=1 1",                    // measurement `m x`
        r"m\,y f=1 1",                    // measurement `m,y`
        r#""q" f=1 1"#,                   // measurement `"q"` including the quotes
        "ẞ,ü=ö ä=1 1",                    // Unicode names
        r"tk,a\,b=1,c\ d=2,e\=f=3 f=1 1", // escaped tag keys
        "tk2,a,b=1 f=1 1",                // unescaped comma in a tag key
        "tv,t=a=b f=1 1",                 // `=` in a tag value
        r"tv2,t=x\,y\ z f=1 1",           // escaped tag value
        "fk a,b=1 1",                     // comma in a field key
        r"fk2 a\ b=1,c\=d=2 1",           // escaped field keys
        "sp f=1, 1",                      // single trailing comma after the first field
        "sp2 f=1 123   ",                 // trailing spaces after the timestamp
        "  sp3  a=1i  123  ",             // multiple spaces, leading/trailing blanks
        "\t\tsp4 a=1i 1",                 // leading tabs are skipped
        "M f=1 1",                        // names are case sensitive
        "m F=1,f=2 1",
        r"m\\x f=1 1", // `\\` is an escaped backslash inside the name
        r"m\q f=1 1",  // unknown escapes are kept literally
    ]
    .join("\n");
    srv.write_ok(&db, body, "precision=s");

    let tables = srv.tables(&db);
    for t in [
        "m x", "m,y", "\"q\"", "ẞ", "tk", "tk2", "tv", "tv2", "fk", "fk2", "sp", "sp2", "sp3",
        "sp4", "M", "m", r"m\x", r"m\q",
    ] {
        assert!(
            tables.contains(&t.to_string()),
            "table {t:?} missing from {tables:?}"
        );
    }
    assert_eq!(tables.len(), 18, "{tables:?}");

    assert_eq!(
        srv.sql(&db, "SELECT \"ü\", \"ä\" FROM \"ẞ\""),
        vec![json!({"ü": "ö", "ä": 1.0})]
    );
    assert_eq!(
        srv.sql(&db, "SELECT \"a,b\", \"c d\", \"e=f\" FROM tk"),
        vec![json!({"a,b": "1", "c d": "2", "e=f": "3"})]
    );
    assert_eq!(
        srv.sql(&db, "SELECT \"a,b\" FROM tk2"),
        vec![json!({"a,b": "1"})]
    );
    assert_eq!(srv.sql(&db, "SELECT t FROM tv"), vec![json!({"t": "a=b"})]);
    assert_eq!(
        srv.sql(&db, "SELECT t FROM tv2"),
        vec![json!({"t": "x,y z"})]
    );
    assert_eq!(
        srv.sql(&db, "SELECT \"a,b\" FROM fk"),
        vec![json!({"a,b": 1.0})]
    );
    assert_eq!(
        srv.sql(&db, "SELECT \"a b\", \"c=d\" FROM fk2"),
        vec![json!({"a b": 1.0, "c=d": 2.0})]
    );
    assert_eq!(
        srv.sql(&db, "SELECT * FROM sp"),
        vec![json!({"f": 1.0, "time": "1970-01-01T00:00:01"})],
        "`f=1,` is one field"
    );
    assert_eq!(srv.times(&db, "sp2"), vec![123_000_000_000]);
    assert_eq!(srv.sql(&db, "SELECT a FROM sp3"), vec![json!({"a": 1})]);
    assert_eq!(
        srv.sql(&db, "SELECT \"F\", f FROM m"),
        vec![json!({"F": 1.0, "f": 2.0})]
    );
    assert_eq!(srv.sql(&db, "SELECT f FROM \"M\""), vec![json!({"f": 1.0})]);
}

#[test]
fn new_columns_appear_and_old_rows_are_null_in_select_star() {
    let srv = server();
    let db = unique_name("evolve");
    srv.write_ok(&db, "m,t=a f=1 1", "precision=s");
    srv.write_ok(&db, "m,t=a,u=x f=2,g=3i 2", "precision=s");
    // SELECT * columns are sorted by name; nulls are omitted; floats keep a fraction.
    let resp = srv.query_sql(&db, "SELECT * FROM m ORDER BY time", "json");
    assert_body(
        &resp,
        200,
        r#"[{"f":1.0,"t":"a","time":"1970-01-01T00:00:01"},{"f":2.0,"g":3,"t":"a","time":"1970-01-01T00:00:02","u":"x"}]"#,
    );
}

#[test]
fn multiple_tables_in_one_batch_and_database_created_on_first_write() {
    let srv = server();
    let db = unique_name("multi");
    assert!(!srv.database_exists(&db));
    srv.write_ok(
        &db,
        "alpha v=1 1\nbeta v=2 2\ngamma v=3 3\nalpha v=4 4",
        "precision=second",
    );
    assert!(srv.database_exists(&db));
    assert_eq!(srv.tables(&db), vec!["alpha", "beta", "gamma"]);
    assert_eq!(
        srv.sql(&db, "SELECT count(*) AS c FROM alpha"),
        vec![json!({"c": 2})]
    );
}

// ------------------------------------------------------------------------------------------
// validation against the catalog
// ------------------------------------------------------------------------------------------

#[test]
fn type_conflicts_are_line_errors_with_exact_messages() {
    let srv = server();
    let db = unique_name("conflict");
    srv.write_ok(
        &db,
        "cpu f=1.5 1\nints n=1i 1\nuints n=1u 1\nstrs n=\"s\" 1\nbools n=true 1",
        "precision=s",
    );
    let msg = |col: &str, expected: &str, got: &str| {
        format!(
            "invalid column type for column '{col}', expected iox::column_type::{expected}, got iox::column_type::{got}"
        )
    };
    let cases = [
        ("cpu f=1i 2", msg("f", "field::float", "field::integer")),
        ("cpu f=1u 2", msg("f", "field::float", "field::uinteger")),
        ("cpu f=true 2", msg("f", "field::float", "field::boolean")),
        ("ints n=1 2", msg("n", "field::integer", "field::float")),
        ("ints n=1u 2", msg("n", "field::integer", "field::uinteger")),
        (
            "uints n=1i 2",
            msg("n", "field::uinteger", "field::integer"),
        ),
        ("strs n=1 2", msg("n", "field::string", "field::float")),
        (
            "bools n=\"true\" 2",
            msg("n", "field::boolean", "field::string"),
        ),
    ];
    for (line, expected) in &cases {
        let resp = srv.write_lp(&db, *line, "precision=s");
        assert_body(&resp, 400, &partial_body(&[line_err(expected, 1, line)]));
    }
    // Nothing of the rejected lines was written.
    for t in ["cpu", "ints", "uints", "strs", "bools"] {
        assert_eq!(srv.times(&db, t), vec![1_000_000_000], "table {t}");
    }

    // Within one request, a column created by an earlier line constrains later lines.
    let resp = srv.write_lp(&db, "fresh v=1 1\nfresh v=2i 2\nfresh v=3 3", "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err(
            &msg("v", "field::float", "field::integer"),
            2,
            "fresh v=2i 2",
        )]),
    );
    assert_eq!(srv.times(&db, "fresh"), vec![1_000_000_000, 3_000_000_000]);
}

#[test]
fn tag_and_field_name_collisions() {
    let srv = server();
    let db = unique_name("collide");
    let msg = |col: &str, expected: &str, got: &str| {
        format!(
            "invalid column type for column '{col}', expected iox::column_type::{expected}, got iox::column_type::{got}"
        )
    };
    // Within one line.
    let resp = srv.write_lp(&db, "m,t=v f=1i,t=2 1", "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err(
            &msg("t", "tag", "field::float"),
            1,
            "m,t=v f=1i,t=2 1",
        )]),
    );

    // A tag named like an existing field.
    srv.write_ok(&db, "c2 g=1i 1", "precision=s");
    let resp = srv.write_lp(&db, "c2,g=x f=1 2", "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err(
            &msg("g", "field::integer", "tag"),
            1,
            "c2,g=x f=1 2",
        )]),
    );

    // A field named like an existing tag.
    srv.write_ok(&db, "c3,t=a f=1 1", "precision=s");
    let resp = srv.write_lp(&db, "c3 t=\"s\" 2", "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err(
            &msg("t", "tag", "field::string"),
            1,
            "c3 t=\"s\" 2",
        )]),
    );

    assert_eq!(srv.sql(&db, "SELECT g FROM c2"), vec![json!({"g": 1})]);
    assert_eq!(
        srv.sql(&db, "SELECT t, f FROM c3"),
        vec![json!({"t": "a", "f": 1.0})]
    );
}

#[test]
fn time_is_a_reserved_column() {
    let srv = server();
    let db = unique_name("reserved");
    for line in ["r1 time=1 1", "r2,time=x f=1 1"] {
        let resp = srv.write_lp(&db, line, "precision=s");
        assert_body(
            &resp,
            400,
            &partial_body(&[line_err("'time' is a reserved column", 1, line)]),
        );
    }
    let resp = srv.write_lp(&db, "r4 __chunk_order=1i 1", "precision=s");
    let (message, _, _) = single_line_error(&resp);
    assert!(message.contains("reserved column"), "{message}");

    srv.write_ok(&db, "r3 f=1 1", "precision=s");
    let resp = srv.write_lp(&db, "r3 time=2 2", "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err(
            "invalid column type for column 'time', expected iox::column_type::timestamp, got iox::column_type::field::float",
            1,
            "r3 time=2 2",
        )]),
    );
    let resp = srv.write_lp(&db, "r3,time=x f=3 3", "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err(
            "invalid column type for column 'time', expected iox::column_type::timestamp, got iox::column_type::tag",
            1,
            "r3,time=x f=3 3",
        )]),
    );
    assert_eq!(srv.tables(&db), vec!["r3".to_string()]);
    assert_eq!(srv.times(&db, "r3"), vec![1_000_000_000]);
}

#[test]
fn duplicate_field_and_duplicate_tag_in_one_line_are_rejected() {
    let srv = server();
    let db = unique_name("dups");
    srv.write_ok(&db, "d,t=1 f=0 1", "precision=s");
    let resp = srv.write_lp(&db, "d f=1,f=2 2", "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err(
            "invalid line protocol - multiple instances of 'f' field found",
            1,
            "d f=1,f=2 2",
        )]),
    );
    let resp = srv.write_lp(&db, "d,t=1,t=2 f=1 3\nd,t=3 f=3 3", "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err(
            "Must not contain duplicate tags, but `t` was repeated",
            1,
            "d,t=1,t=2 f=1 3",
        )]),
    );
    // The table is intact and queryable, with the good rows only.
    assert_eq!(
        srv.sql(
            &db,
            "SELECT t, f, CAST(time AS BIGINT) AS ns FROM d ORDER BY ns"
        ),
        vec![
            json!({"t": "1", "f": 0.0, "ns": 1_000_000_000}),
            json!({"t": "3", "f": 3.0, "ns": 3_000_000_000i64})
        ]
    );
}

// ------------------------------------------------------------------------------------------
// storage semantics
// ------------------------------------------------------------------------------------------

#[test]
fn same_series_and_time_merges_per_field() {
    let srv = server();
    let db = unique_name("merge");
    srv.write_ok(&db, "mg,t=a f=1,g=1 10", "precision=ns");
    srv.write_ok(&db, "mg,t=a f=2 10", "precision=ns");
    // Four lines in one request, one field each, same series and time → one row.
    srv.write_ok(
        &db,
        "mg,t=b a=1i 20\nmg,t=b b=2i 20\nmg,t=b c=3i 20\nmg,t=b a=4i 20",
        "precision=ns",
    );
    // Same time, other tag set (or no tag): different rows.
    srv.write_ok(&db, "mg,t=c f=9 10\nmg f=5 10", "precision=ns");
    let rows = srv.sql(
        &db,
        "SELECT t, a, b, c, f, g, CAST(time AS BIGINT) AS ns FROM mg ORDER BY ns, t NULLS FIRST",
    );
    assert_eq!(
        rows,
        vec![
            json!({"f": 5.0, "ns": 10}),
            json!({"t": "a", "f": 2.0, "g": 1.0, "ns": 10}),
            json!({"t": "c", "f": 9.0, "ns": 10}),
            json!({"t": "b", "a": 4, "b": 2, "c": 3, "ns": 20}),
        ]
    );
    assert_eq!(
        srv.sql(&db, "SELECT count(*) AS n FROM mg"),
        vec![json!({"n": 4})]
    );
}

#[test]
fn no_sync_writes_become_visible() {
    let srv = server();
    let db = unique_name("nosync");
    let resp = srv.write_lp(
        &db,
        "ns,k=a v=1 1\nns,k=b v=2 2",
        "precision=second&no_sync=true",
    );
    assert_body(&resp, 204, "");
    common::eventually(Duration::from_secs(15), "no_sync data visible", || {
        let r = srv.query_sql(&db, "SELECT count(*) AS c FROM ns", "json");
        (r.status == 200 && r.json() == json!([{"c": 2}])).then_some(())
    });
    assert_eq!(
        srv.sql(&db, "SELECT k, v FROM ns ORDER BY time"),
        vec![json!({"k": "a", "v": 1.0}), json!({"k": "b", "v": 2.0})]
    );
    // no_sync=false is the default behaviour.
    srv.write_ok(&db, "ns,k=c v=3 3", "precision=second&no_sync=false");
    assert_eq!(srv.times(&db, "ns").len(), 3);
}

// ------------------------------------------------------------------------------------------
// line errors: numbering and original_line
// ------------------------------------------------------------------------------------------

#[test]
fn line_numbers_skip_blank_and_comment_lines() {
    let srv = server();
    let db = unique_name("lineno");
    let body = "# leading comment\n\nln,t=a f=1 1\n   \t\n# another comment\nln,t=b f= 2\nln,t=c f=3 3\n   # indented comment\nln,t=d f=x 4\n\n";
    let resp = srv.write_lp(&db, body, "precision=s");
    // The project reports the offending line's own text (not the reference's N-th raw line).
    assert_body(
        &resp,
        400,
        &partial_body(&[
            line_err("No fields were provided", 2, "ln,t=b f= 2"),
            line_err("No fields were provided", 4, "ln,t=d f=x 4"),
        ]),
    );
    assert_eq!(
        srv.sql(&db, "SELECT t FROM ln ORDER BY time"),
        vec![json!({"t": "a"}), json!({"t": "c"})]
    );

    // A `\n` inside a string field does not start a new line.
    let body = "ln2 s=\"x\ny\" 1\nln2 s=\"z\" 2\nln2 s= 3";
    let resp = srv.write_lp(&db, body, "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err("No fields were provided", 3, "ln2 s= 3")]),
    );
}

#[test]
fn original_line_is_the_full_offending_line() {
    let srv = server();
    let db = unique_name("origline");
    srv.write_ok(&db, "ol,host=server-01 f=1 1", "precision=s");
    let long_validation = "ol,host=server-01,region=us-west-2,rack=r17 f=1i,g=2 1700000000";
    let long_parse = "ol,host=server-01,region=us-west-2 f=1 1700000000 trailing-garbage-here";
    let resp = srv.write_lp(
        &db,
        format!("{long_validation}\n{long_parse}"),
        "precision=s",
    );
    assert_body(
        &resp,
        400,
        &partial_body(&[
            line_err(
                "invalid column type for column 'f', expected iox::column_type::field::float, got iox::column_type::field::integer",
                1,
                long_validation,
            ),
            line_err(
                "Could not parse entire line. Found trailing content: `trailing-g...`",
                2,
                long_parse,
            ),
        ]),
    );
    // Non-ASCII text is reported as is.
    let unicode = "ol,host=ünïcødé-host-name-that-is-long f=\"x\" 2";
    let resp = srv.write_lp(&db, unicode, "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err(
            "invalid column type for column 'f', expected iox::column_type::field::float, got iox::column_type::field::string",
            1,
            unicode,
        )]),
    );
}

#[test]
fn content_type_is_not_checked_and_chunked_bodies_work() {
    let srv = server();
    let db = unique_name("ctype");
    for (i, ct) in [
        "application/json",
        "text/plain",
        "application/octet-stream",
        "x/y",
    ]
    .iter()
    .enumerate()
    {
        let resp = srv.post_with(
            &common::v3_path(&db, "precision=s"),
            &[("Content-Type", ct)],
            format!("ct v={i} {i}"),
        );
        assert_body(&resp, 204, "");
    }
    assert_eq!(srv.times(&db, "ct").len(), 4);

    // A streamed body (chunked transfer encoding, no Content-Length).
    let body: String = (0..5000)
        .map(|i| format!("chunked,k=k{} v={i}i {i}\n", i % 7))
        .collect();
    let resp = srv.request_streamed(
        &common::v3_path(&db, "precision=s"),
        &[],
        std::io::Cursor::new(body.into_bytes()),
    );
    assert_body(&resp, 204, "");
    assert_eq!(
        srv.sql(&db, "SELECT count(*) AS n, sum(v) AS s FROM chunked"),
        vec![json!({"n": 5000, "s": 4999 * 5000 / 2})]
    );
    // Gzip over a streamed body.
    let resp = srv.request_streamed(
        &common::v3_path(&db, "precision=s"),
        &[("Content-Encoding", "gzip")],
        std::io::Cursor::new(gzip("chunkedgz v=1 1\nchunkedgz v=2 2")),
    );
    assert_body(&resp, 204, "");
    assert_eq!(
        srv.times(&db, "chunkedgz"),
        vec![1_000_000_000, 2_000_000_000]
    );
}
