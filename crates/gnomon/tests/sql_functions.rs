//! The time series SQL functions of InfluxDB 3 Core, over HTTP: selectors, `tz()`, and gap
//! filling with `date_bin_gapfill`, `locf` and `interpolate`.

mod common;

use std::sync::OnceLock;

use common::Server;
use serde_json::{json, Value};

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    Server::shared(&SERVER, &[])
}

/// One database per test, with `body` written at second precision.
fn db_with(name: &str, body: &str) -> String {
    let db = common::unique_name(name);
    server().write_ok(&db, body, "precision=s");
    db
}

#[track_caller]
fn one_row(db: &str, q: &str) -> Value {
    let rows = server().sql(db, q);
    assert_eq!(rows.len(), 1, "{q}: {rows:?}");
    rows.into_iter().next().unwrap()
}

#[track_caller]
fn error_of(db: &str, q: &str) -> (u16, String) {
    let resp = server().query_sql(db, q, "json");
    (resp.status, resp.text())
}

#[test]
fn selectors_pick_the_same_point_as_plain_sql() {
    // Ties on the value (9 twice, 1 twice), a row without the field, and out-of-order times.
    let db = db_with(
        "selectors",
        "cpu,host=a usage=5 30\ncpu,host=a usage=9 20\ncpu,host=a usage=1 40\n\
         cpu,host=a usage=9 50\ncpu,host=a other=1 5\ncpu,host=a usage=1 10\ncpu,host=b usage=3 60",
    );
    let cases = [
        ("selector_first", "time ASC"),
        ("selector_last", "time DESC"),
        ("selector_min", "usage ASC, time ASC"),
        ("selector_max", "usage DESC, time ASC"),
    ];
    for (selector, order) in cases {
        let picked = one_row(
            &db,
            &format!(
                "SELECT {selector}(usage, time)['value'] AS v, {selector}(usage, time)['time'] AS t \
                 FROM cpu WHERE host = 'a'"
            ),
        );
        let expected = one_row(
            &db,
            &format!(
                "SELECT usage AS v, time AS t FROM cpu WHERE host = 'a' AND usage IS NOT NULL \
                 ORDER BY {order} LIMIT 1"
            ),
        );
        assert_eq!(picked, expected, "{selector}");
    }
    // The whole struct, per group.
    let rows = server().sql(
        &db,
        "SELECT host, selector_max(usage, time) AS m FROM cpu GROUP BY host ORDER BY host",
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["m"]["value"], json!(3.0));
    assert_eq!(rows[1]["m"]["time"], json!("1970-01-01T00:01:00"));
}

#[test]
fn selectors_refuse_a_second_argument_that_is_not_a_time() {
    let db = db_with("selector_bad", "cpu,host=a usage=5 30");
    let (status, body) = error_of(&db, "SELECT selector_first(usage, usage) FROM cpu");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("must be a timestamp"), "{body}");
}

#[test]
fn tz_shows_the_same_instant_in_a_zone() {
    // 2024-01-15T12:00:00Z: Paris is UTC+1 in winter, New York UTC-5.
    let db = db_with("tz", "m v=1 1705320000");
    let row = one_row(
        &db,
        "SELECT tz(time, 'Europe/Paris') AS paris, tz(time, 'America/New_York') AS ny, \
         tz(time) AS utc FROM m",
    );
    assert_eq!(row["paris"], json!("2024-01-15T13:00:00+01:00"));
    assert_eq!(row["ny"], json!("2024-01-15T07:00:00-05:00"));
    assert_eq!(row["utc"].as_str().unwrap()[..19], *"2024-01-15T12:00:00");

    let (status, body) = error_of(&db, "SELECT tz(time, 'Mars/Olympus_Mons') FROM m");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("unknown time zone 'Mars/Olympus_Mons'"),
        "{body}"
    );
}

/// Host a: points at minutes 0, 1, 2; host b: minutes 1 and 4. Range: minutes 0–5.
const GAPS: &str = "cpu,host=a usage=1 0\ncpu,host=a usage=9 60\ncpu,host=a usage=5 120\n\
                    cpu,host=b usage=3 60\ncpu,host=b usage=7 240";
const RANGE: &str = "time >= '1970-01-01T00:00:00Z' AND time < '1970-01-01T00:06:00Z'";

#[test]
fn date_bin_gapfill_emits_every_bucket_of_the_range_per_series() {
    let db = db_with("gapfill", GAPS);
    let rows = server().sql(
        &db,
        &format!(
            "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS minute, host, \
             avg(usage) AS plain, locf(avg(usage)) AS carried, interpolate(avg(usage)) AS line \
             FROM cpu WHERE {RANGE} GROUP BY minute, host ORDER BY host, minute"
        ),
    );
    assert_eq!(rows.len(), 12, "6 minutes × 2 hosts: {rows:?}");
    let column = |host: &str, name: &str| -> Vec<Option<f64>> {
        rows.iter()
            .filter(|r| r["host"] == host)
            .map(|r| r.get(name).and_then(Value::as_f64))
            .collect()
    };
    let minutes: Vec<&str> = rows[..6]
        .iter()
        .map(|r| r["minute"].as_str().unwrap())
        .collect();
    assert_eq!(
        minutes,
        [
            "1970-01-01T00:00:00",
            "1970-01-01T00:01:00",
            "1970-01-01T00:02:00",
            "1970-01-01T00:03:00",
            "1970-01-01T00:04:00",
            "1970-01-01T00:05:00"
        ]
    );
    let n = None;
    assert_eq!(
        column("a", "plain"),
        [Some(1.0), Some(9.0), Some(5.0), n, n, n]
    );
    assert_eq!(
        column("a", "carried"),
        [
            Some(1.0),
            Some(9.0),
            Some(5.0),
            Some(5.0),
            Some(5.0),
            Some(5.0)
        ]
    );
    // Interpolation only between known points: nothing after a's last point.
    assert_eq!(
        column("a", "line"),
        [Some(1.0), Some(9.0), Some(5.0), n, n, n]
    );
    assert_eq!(column("b", "plain"), [n, Some(3.0), n, n, Some(7.0), n]);
    assert_eq!(
        column("b", "carried"),
        [n, Some(3.0), Some(3.0), Some(3.0), Some(7.0), Some(7.0)]
    );
    let line = column("b", "line");
    assert_eq!(
        (line[0], line[1], line[4], line[5]),
        (n, Some(3.0), Some(7.0), n)
    );
    assert!(
        (line[2].unwrap() - (3.0 + 4.0 / 3.0)).abs() < 1e-9,
        "{line:?}"
    );
    assert!(
        (line[3].unwrap() - (3.0 + 8.0 / 3.0)).abs() < 1e-9,
        "{line:?}"
    );
}

#[test]
fn gapfill_bounds_follow_the_where_clause() {
    let db = db_with("gapfill_bounds", GAPS);
    // An inclusive upper bound includes the bucket starting on it; a 2-minute stride.
    let rows = server().sql(
        &db,
        "SELECT date_bin_gapfill(INTERVAL '2 minutes', time) AS b, count(usage) AS n FROM cpu \
         WHERE time >= '1970-01-01T00:00:00Z' AND time <= '1970-01-01T00:06:00Z' \
         GROUP BY b ORDER BY b",
    );
    let counts: Vec<Value> = rows
        .iter()
        .map(|r| r.get("n").cloned().unwrap_or(Value::Null))
        .collect();
    assert_eq!(
        counts,
        [json!(3), json!(1), json!(1), Value::Null],
        "{rows:?}"
    );
}

#[test]
fn gapfill_errors_say_what_is_missing() {
    let db = db_with("gapfill_errors", GAPS);
    let cases = [
        (
            "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, avg(usage) FROM cpu \
             WHERE time < now() GROUP BY m",
            "missing lower time bound",
        ),
        (
            "SELECT date_bin_gapfill(INTERVAL '1 minute', time) AS m, avg(usage) FROM cpu \
             WHERE time >= '1970-01-01T00:00:00Z' GROUP BY m",
            "missing upper time bound",
        ),
        ("SELECT locf(usage) FROM cpu", "locf"),
        (
            "SELECT date_bin_gapfill(INTERVAL '1 minute', time) FROM cpu",
            "date_bin_gapfill",
        ),
        (
            "SELECT date_bin_gapfill(INTERVAL '1 nanosecond', time) AS m, avg(usage) FROM cpu \
             WHERE time >= '1970-01-01T00:00:00Z' AND time < '1971-01-01T00:00:00Z' GROUP BY m",
            "use a larger interval",
        ),
    ];
    for (q, needle) in cases {
        let (status, body) = error_of(&db, q);
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body.contains(needle), "{q}: expected {needle:?} in {body}");
    }
}

/// `row_number() … WHERE rn = 1` (the "last point" query) is answered by `TopOneExec`
/// instead of a sort of every row; the rows must be those of the plain definition.
#[test]
fn last_row_per_group_matches_the_window_definition() {
    // Times out of order across chunks (10-minute chunks: 0 s, 700 s, 1300 s), a host whose
    // newest row is in the oldest chunk written last, a null field, and a second tag.
    let db = db_with(
        "lastrow",
        "cpu,host=a,dc=x u=1 1300\ncpu,host=a,dc=x u=2 10\ncpu,host=b,dc=x u=3 700\n\
         cpu,host=b,dc=y u=4 20\ncpu,host=c,dc=y v=5 1310\ncpu,host=a,dc=y u=6 1299\n\
         cpu,host=b,dc=x u=7 30\ncpu,host=c,dc=y u=8 5",
    );
    let q = |partition: &str, order: &str, keep: &str| {
        format!(
            "SELECT host, dc, u, v, CAST(time AS BIGINT) AS t, rn FROM (SELECT *, row_number() \
             OVER (PARTITION BY {partition} ORDER BY {order}) AS rn FROM cpu) AS w \
             WHERE {keep} ORDER BY host, dc"
        )
    };
    let rows = |partition: &str, order: &str, keep: &str| -> Vec<Value> {
        server().sql(&db, &q(partition, order, keep))
    };
    let ns = |s: i64| s * 1_000_000_000;
    // Newest row per host.
    assert_eq!(
        rows("host", "time DESC", "rn = 1"),
        vec![
            json!({"host": "a", "dc": "x", "u": 1.0, "t": ns(1300), "rn": 1}),
            json!({"host": "b", "dc": "x", "u": 3.0, "t": ns(700), "rn": 1}),
            json!({"host": "c", "dc": "y", "v": 5.0, "t": ns(1310), "rn": 1}),
        ]
    );
    // Oldest row per (host, dc), written `rn <= 1`.
    assert_eq!(
        rows("host, dc", "time ASC", "rn <= 1"),
        vec![
            json!({"host": "a", "dc": "x", "u": 2.0, "t": ns(10), "rn": 1}),
            json!({"host": "a", "dc": "y", "u": 6.0, "t": ns(1299), "rn": 1}),
            json!({"host": "b", "dc": "x", "u": 7.0, "t": ns(30), "rn": 1}),
            json!({"host": "b", "dc": "y", "u": 4.0, "t": ns(20), "rn": 1}),
            json!({"host": "c", "dc": "y", "u": 8.0, "t": ns(5), "rn": 1}),
        ]
    );
    // Larger row numbers still go through the window.
    assert_eq!(rows("host", "time DESC", "rn = 2").len(), 3);
    let plan = |q: String| server().sql_plan(&db, &q);
    assert!(plan(q("host", "time DESC", "rn = 1")).contains("TopOneExec"));
    assert!(!plan(q("host", "time DESC", "rn = 2")).contains("TopOneExec"));
}
