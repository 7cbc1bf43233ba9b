//! `system.queries` against the real server: SQL and InfluxQL queries (from both InfluxQL
//! endpoints) are logged with their outcome and timings, and the log keeps only the last
//! `--query-log-size` entries.

mod common;

use common::{enc, unique_name, Server, NS};
use serde_json::Value;

fn log_rows(server: &Server, db: &str, text: &str) -> Vec<Value> {
    let q = format!(
        "SELECT * FROM system.queries WHERE query_text = '{}' ORDER BY issue_time",
        text.replace('\'', "''")
    );
    server.sql(db, &q)
}

#[test]
fn queries_are_logged_with_outcome_and_timings() {
    let server = Server::start(&[]);
    let db = unique_name("sq");
    server.write_ok(&db, format!("cpu,host=a usage=1 {NS}"), "");

    let ok = "SELECT host, usage FROM cpu";
    server.query_sql(&db, ok, "json").expect_status(200);
    let bad = "SELECT nope FROM cpu";
    server.query_sql(&db, bad, "json").expect_status(400);
    let influxql = "SELECT usage FROM cpu WHERE host = 'a'";
    server
        .get(&format!(
            "/api/v3/query_influxql?db={db}&q={}",
            enc(influxql)
        ))
        .expect_status(200);
    let v1 = "SELECT count(usage) FROM cpu";
    server
        .get(&format!("/query?db={db}&q={}", enc(v1)))
        .expect_status(200);

    let rows = log_rows(&server, &db, ok);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["query_type"], "sql");
    assert_eq!(row["database"], db);
    assert_eq!(row["phase"], "success");
    assert_eq!(row["success"], true);
    assert_eq!(row["running"], false);
    assert_eq!(row["cancelled"], false);
    assert!(row.get("error").is_none(), "{row}");
    for col in ["plan_duration", "execute_duration", "end2end_duration"] {
        assert!(row.get(col).is_some(), "{col} missing in {row}");
    }
    assert_eq!(row["id"].as_str().unwrap().len(), 36, "{row}");

    let rows = log_rows(&server, &db, bad);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["phase"], "fail");
    assert_eq!(rows[0]["success"], false);
    assert!(
        rows[0]["error"].as_str().unwrap().contains("nope"),
        "{:?}",
        rows[0]
    );
    // It never got planned.
    assert!(rows[0].get("plan_duration").is_none(), "{:?}", rows[0]);

    for text in [influxql, v1] {
        let rows = log_rows(&server, &db, text);
        assert_eq!(rows.len(), 1, "{text}: {rows:?}");
        assert_eq!(rows[0]["query_type"], "influxql");
        assert_eq!(rows[0]["success"], true);
        assert_eq!(rows[0]["database"], db);
    }

    // The query reading the log is in it, still running while it reads.
    let me = "SELECT query_text, running FROM system.queries WHERE running";
    let rows = server.sql(&db, me);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["query_text"], me);

    // issue_time is a timestamp close to now, and the log is ordered by it.
    let rows = server.sql(
        &db,
        "SELECT count(*) AS n FROM system.queries \
         WHERE issue_time > now() - INTERVAL '5 minutes' AND issue_time <= now()",
    );
    assert!(rows[0]["n"].as_i64().unwrap() >= 5, "{rows:?}");
}

#[test]
fn the_log_keeps_the_last_query_log_size_queries() {
    let server = Server::start(&["--query-log-size", "5"]);
    let db = unique_name("sqr");
    server.write_ok(&db, format!("m f=1 {NS}"), "");
    for i in 0..12 {
        server
            .query_sql(&db, &format!("SELECT f + {i} FROM m"), "json")
            .expect_status(200);
    }
    let rows = server.sql(&db, "SELECT query_text FROM system.queries");
    let texts: Vec<&str> = rows
        .iter()
        .map(|r| r["query_text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "SELECT f + 8 FROM m",
            "SELECT f + 9 FROM m",
            "SELECT f + 10 FROM m",
            "SELECT f + 11 FROM m",
            "SELECT query_text FROM system.queries",
        ]
    );
}

/// Concurrent queries in different databases each see only their own tables (sessions must
/// not share one catalog registry).
#[test]
fn concurrent_sessions_do_not_see_each_others_tables() {
    let server = Server::start(&[]);
    let dbs: Vec<String> = (0..3).map(|i| unique_name(&format!("iso{i}"))).collect();
    for (i, db) in dbs.iter().enumerate() {
        server.write_ok(db, format!("only_in_{i} f=1 {NS}"), "");
    }
    std::thread::scope(|scope| {
        for (i, db) in dbs.iter().enumerate() {
            let server = &server;
            scope.spawn(move || {
                for _ in 0..150 {
                    let rows = server.sql(
                        db,
                        "SELECT table_name FROM information_schema.tables \
                         WHERE table_schema = 'iox'",
                    );
                    assert_eq!(rows.len(), 1, "{db}: {rows:?}");
                    assert_eq!(rows[0]["table_name"], format!("only_in_{i}"), "{db}");
                }
            });
        }
    });
}
