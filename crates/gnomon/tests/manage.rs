//! Management API, caches and the admin CLI against the real binary: create/delete/list
//! round trips, error statuses, soft-delete semantics across a restart, cache contents
//! compared with the same question asked of the table, and the CLI's output and exit codes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{enc, now_ns, unique_name, Server};
use reqwest::Method;
use serde_json::{json, Value};

fn post_json(server: &Server, path: &str, body: Value) -> common::Resp {
    server.post_with(
        path,
        &[("Content-Type", "application/json")],
        body.to_string(),
    )
}

fn delete(server: &Server, path: &str) -> common::Resp {
    server.request(Method::DELETE, path, &[], None)
}

fn databases(server: &Server, show_deleted: bool) -> Vec<Value> {
    let resp = server.get(&format!(
        "/api/v3/configure/database?format=json&show_deleted={show_deleted}"
    ));
    assert_eq!(resp.status, 200, "{}", resp.describe());
    resp.json().as_array().unwrap().clone()
}

fn db_names(server: &Server) -> Vec<String> {
    databases(server, false)
        .iter()
        .map(|r| r["iox::database"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn database_and_table_round_trips_and_errors() {
    let server = Server::start(&[]);
    let db = unique_name("mg");
    let create = |name: &str| post_json(&server, "/api/v3/configure/database", json!({"db": name}));

    assert_eq!(create(&db).status, 200);
    assert!(db_names(&server).contains(&db));
    assert!(db_names(&server).contains(&"_internal".to_string()));
    let dup = create(&db);
    assert_eq!(
        (dup.status, dup.text().as_str()),
        (409, "attempted to create a resource that already exists")
    );
    assert_eq!(create("bad#name").status, 400);
    assert_eq!(create("_internal2").status, 400);
    let no_json = server.post_with(
        "/api/v3/configure/database",
        &[("Content-Type", "text/plain")],
        json!({"db": "x"}).to_string(),
    );
    assert_eq!(no_json.status, 415);

    // Tables: typed creation, conflicts, bad types.
    let table = |t: &str, fields: Value| {
        post_json(
            &server,
            "/api/v3/configure/table",
            json!({"db": db, "table": t, "tags": ["t1"], "fields": fields}),
        )
    };
    assert_eq!(
        table("bar", json!([{"name": "f", "type": "uint64"}])).status,
        200
    );
    assert_eq!(table("bar", json!([])).status, 409);
    assert_eq!(
        table("baz", json!([{"name": "f", "type": "decimal"}])).status,
        400
    );
    let clash = table("baz", json!([{"name": "t1", "type": "utf8"}]));
    assert_eq!(clash.status, 400, "{}", clash.describe());
    assert!(server.tables(&db).contains(&"bar".to_string()));
    assert!(
        !server.tables(&db).contains(&"baz".to_string()),
        "failed create left a table"
    );
    let types = server.sql(
        &db,
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE table_name = 'bar' ORDER BY column_name",
    );
    assert_eq!(
        types,
        vec![
            json!({"column_name": "f", "data_type": "UInt64"}),
            json!({"column_name": "t1", "data_type": "Dictionary(Int32, Utf8)"}),
            json!({"column_name": "time", "data_type": "Timestamp(ns)"}),
        ]
    );

    // Table delete: gone from listings and queries at once, name reusable, data not back.
    server.write_ok(&db, "bar,t1=a f=1u 1", "precision=s");
    let path = format!("/api/v3/configure/table?db={}&table=bar", enc(&db));
    assert_eq!(delete(&server, &path).status, 200);
    assert!(!server.tables(&db).contains(&"bar".to_string()));
    assert_eq!(
        server.query_sql(&db, "SELECT * FROM bar", "json").status,
        400
    );
    assert_eq!(delete(&server, &path).status, 404);
    assert_eq!(
        delete(
            &server,
            &format!("/api/v3/configure/table?db=nope_{db}&table=bar")
        )
        .status,
        404
    );
    server.write_ok(&db, "bar,t1=b f=2u 2", "precision=s");
    assert_eq!(
        server.sql(&db, "SELECT t1 FROM bar"),
        vec![json!({"t1": "b"})]
    );

    // Database delete.
    assert_eq!(delete(&server, "/api/v3/configure/database").status, 400);
    let path = format!("/api/v3/configure/database?db={}", enc(&db));
    assert_eq!(delete(&server, &path).status, 200);
    assert!(!db_names(&server).contains(&db));
    assert_eq!(
        server.query_sql(&db, "SELECT * FROM bar", "json").status,
        404
    );
    assert_eq!(delete(&server, &path).status, 404);
    let deleted: Vec<Value> = databases(&server, true)
        .into_iter()
        .filter(|r| r["deleted"] == json!(true))
        .collect();
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert!(deleted[0]["iox::database"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{db}-")));
    // The name is free again, and the new database starts empty.
    assert_eq!(create(&db).status, 200);
    assert!(server.tables(&db).is_empty());
}

#[test]
fn deletions_and_cache_definitions_survive_a_restart() {
    let mut server = Server::start(&[]);
    let (keep, gone) = (unique_name("keep"), unique_name("gone"));
    server.write_ok(&keep, "a v=1 1\nb v=2 2", "precision=s");
    server.write_ok(&gone, "a v=1 1", "precision=s");
    assert_eq!(
        delete(
            &server,
            &format!("/api/v3/configure/table?db={keep}&table=b")
        )
        .status,
        200
    );
    assert_eq!(
        delete(&server, &format!("/api/v3/configure/database?db={gone}")).status,
        200
    );
    let lc = post_json(
        &server,
        "/api/v3/configure/last_cache",
        json!({"db": keep, "table": "a", "name": "lc", "count": 2, "ttl": 600}),
    );
    assert_eq!(lc.status, 201, "{}", lc.describe());
    server.restart();
    assert_eq!(server.tables(&keep), vec!["a".to_string()]);
    assert!(!db_names(&server).contains(&gone));
    assert_eq!(
        server.query_sql(&gone, "SELECT * FROM a", "json").status,
        404
    );
    assert_eq!(
        server.sql(&keep, "SELECT name, count, ttl FROM system.last_caches"),
        vec![json!({"name": "lc", "count": 2, "ttl": 600})]
    );
}

/// `cpu` with tags region, host and fields usage (float), load (int), created empty so that
/// every row written afterwards reaches the caches.
fn cpu_table(server: &Server, db: &str) {
    let resp = post_json(
        server,
        "/api/v3/configure/table",
        json!({"db": db, "table": "cpu", "tags": ["region", "host"],
               "fields": [{"name": "usage", "type": "float64"}, {"name": "load", "type": "int64"}]}),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
}

/// Rows of 3 regions x 7 hosts over several timestamps, out of order, some without `load`.
fn cpu_lines(t0_s: i64, rounds: i64) -> String {
    let mut lines = String::new();
    for round in 0..rounds {
        // Later rounds are written first for some hosts: the cache keeps the newest by time.
        let t = t0_s
            + if round % 2 == 0 {
                round
            } else {
                rounds * 2 - round
            };
        for h in 0..7 {
            let region = ["us", "eu", "ap"][h % 3];
            let load = if (h + round as usize).is_multiple_of(3) {
                String::new()
            } else {
                format!(",load={}i", h as i64 * 10 + round)
            };
            lines.push_str(&format!(
                "cpu,region={region},host=h{h} usage={}{load} {t}\n",
                round as f64 + h as f64 / 10.0
            ));
        }
    }
    lines
}

#[test]
fn last_cache_answers_equal_plain_sql() {
    let server = Server::start(&[]);
    let db = unique_name("lc");
    cpu_table(&server, &db);
    let resp = post_json(
        &server,
        "/api/v3/configure/last_cache",
        json!({"db": db, "table": "cpu"}),
    );
    assert_eq!(resp.status, 201, "{}", resp.describe());
    assert_eq!(resp.json()["name"], "cpu_region_host_last_cache");
    let t0 = now_ns() / 1_000_000_000 - 600;
    server.write_ok(&db, cpu_lines(t0, 6), "precision=s");

    let latest_sql = "SELECT region, host, usage, load, time FROM (\
        SELECT *, ROW_NUMBER() OVER (PARTITION BY region, host ORDER BY time DESC) AS rn FROM cpu) \
        WHERE rn = 1";
    for filter in [
        "",
        " WHERE host = 'h3'",
        " WHERE region IN ('us', 'ap') AND host != 'h0'",
        " WHERE region NOT IN ('us')",
        " WHERE usage > 3",
    ] {
        let cached = server.sql(
            &db,
            &format!(
                "SELECT region, host, usage, load, time FROM last_cache('cpu'){filter} \
                      ORDER BY region, host"
            ),
        );
        let plain = server.sql(
            &db,
            &format!("SELECT * FROM ({latest_sql}){filter} ORDER BY region, host"),
        );
        assert!(
            !plain.is_empty() || filter.contains("usage"),
            "test data covers {filter}"
        );
        assert_eq!(cached, plain, "filter {filter:?}");
    }

    // count = 3 keeps the three newest rows per key (rows arriving in time order: an older
    // row than the newest cached one is ignored by design, SERVER.md §4.1).
    let resp = post_json(
        &server,
        "/api/v3/configure/last_cache",
        json!({"db": db, "table": "cpu", "name": "three", "key_columns": ["host"],
               "value_columns": ["usage"], "count": 3}),
    );
    assert_eq!(resp.status, 201);
    let in_order: String = (0..5).map(|i| cpu_lines(t0 + 100 + i, 1)).collect();
    server.write_ok(&db, in_order, "precision=s");
    let cached = server.sql(
        &db,
        "SELECT host, usage, time FROM last_cache('cpu', 'three') ORDER BY host, time",
    );
    let plain = server.sql(
        &db,
        &format!(
            "SELECT host, usage, time FROM (SELECT host, usage, time, ROW_NUMBER() OVER \
                  (PARTITION BY host ORDER BY time DESC) AS rn FROM cpu WHERE time >= \
                  to_timestamp_seconds({})) WHERE rn <= 3 ORDER BY host, time",
            t0 + 100
        ),
    );
    assert_eq!(cached.len(), 21);
    assert_eq!(cached, plain);

    // Lookups naming no cache need exactly one; unknown names are planning errors.
    let ambiguous = server.query_sql(&db, "SELECT * FROM last_cache('cpu')", "json");
    assert_eq!(ambiguous.status, 400);
    assert!(ambiguous
        .text()
        .contains("could not find cache for the given arguments"));
    assert_eq!(
        server
            .query_sql(&db, "SELECT * FROM last_cache('nope')", "json")
            .status,
        400
    );
}

#[test]
fn last_cache_ttl_and_restart() {
    let mut server = Server::start(&["--last-cache-eviction-interval", "100ms"]);
    let db = unique_name("ttl");
    cpu_table(&server, &db);
    for (name, ttl) in [("short", 1), ("long", 3600)] {
        let resp = post_json(
            &server,
            "/api/v3/configure/last_cache",
            json!({"db": db, "table": "cpu", "name": name, "ttl": ttl}),
        );
        assert_eq!(resp.status, 201);
    }
    let t0 = now_ns() / 1_000_000_000 - 60;
    server.write_ok(&db, cpu_lines(t0, 2), "precision=s");
    let q = |name: &str| {
        format!("SELECT host, usage, time FROM last_cache('cpu', '{name}') ORDER BY host")
    };
    assert_eq!(server.sql(&db, &q("short")).len(), 7);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        server.sql(&db, &q("short")),
        Vec::<Value>::new(),
        "expired after the ttl"
    );
    let before = server.sql(&db, &q("long"));
    assert_eq!(before.len(), 7);

    // Rebuilt from the WAL replay after a restart.
    server.restart();
    assert_eq!(server.sql(&db, &q("long")), before);
}

#[test]
fn distinct_cache_answers_equal_plain_sql_and_enforce_limits() {
    let server = Server::start(&[]);
    let db = unique_name("dc");
    cpu_table(&server, &db);
    let resp = post_json(
        &server,
        "/api/v3/configure/distinct_cache",
        json!({"db": db, "table": "cpu", "columns": ["region", "host"]}),
    );
    assert_eq!(resp.status, 201, "{}", resp.describe());
    assert_eq!(resp.json()["name"], "cpu_region_host_distinct_cache");
    let now_s = now_ns() / 1_000_000_000;
    server.write_ok(&db, cpu_lines(now_s - 300, 3), "precision=s");
    // Older than max_age (1 day): never cached.
    server.write_ok(
        &db,
        "cpu,region=old,host=ancient usage=1 1000",
        "precision=s",
    );
    for filter in [
        "",
        " WHERE region = 'eu'",
        " WHERE host NOT IN ('h1', 'h2')",
    ] {
        let cached = server.sql(&db, &format!("SELECT * FROM distinct_cache('cpu'){filter}"));
        let plain = server.sql(
            &db,
            &format!(
                "SELECT DISTINCT CAST(region AS VARCHAR) AS region, CAST(host AS VARCHAR) AS host \
                      FROM cpu WHERE time > now() - INTERVAL '1 day' {} ORDER BY region, host",
                filter.replace("WHERE", "AND")
            ),
        );
        assert_eq!(cached, plain, "filter {filter:?}");
    }

    // max_cardinality: the least recently seen combinations are dropped.
    let resp = post_json(
        &server,
        "/api/v3/configure/distinct_cache",
        json!({"db": db, "table": "cpu", "name": "small", "columns": ["host"],
               "max_cardinality": 2}),
    );
    assert_eq!(resp.status, 201);
    let mut lines = String::new();
    for (i, h) in ["x1", "x2", "x3", "x4", "x5"].iter().enumerate() {
        lines.push_str(&format!(
            "cpu,region=z,host={h} usage=1 {}\n",
            now_s - 100 + i as i64
        ));
    }
    server.write_ok(&db, lines, "precision=s");
    let q = "SELECT host FROM distinct_cache('cpu', 'small')";
    let rows = common::eventually(Duration::from_secs(20), "distinct cache eviction", || {
        let rows = server.sql(&db, q);
        (rows.len() == 2).then_some(rows)
    });
    assert_eq!(rows, vec![json!({"host": "x4"}), json!({"host": "x5"})]);

    // Errors.
    let bad = post_json(
        &server,
        "/api/v3/configure/distinct_cache",
        json!({"db": db, "table": "cpu", "columns": ["load"]}),
    );
    assert_eq!(
        (bad.status, bad.text().as_str()),
        (
            400,
            "only tag and string columns are supported in the distinct cache"
        )
    );
    let path = format!("/api/v3/configure/distinct_cache?db={db}&table=cpu&name=small");
    assert_eq!(delete(&server, &path).status, 200);
    assert_eq!(delete(&server, &path).status, 404);
    assert_eq!(server.query_sql(&db, q, "json").status, 400);
}

// ------------------------------------------------------------------------------------------
// CLI
// ------------------------------------------------------------------------------------------

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn cli(server: &Server, args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args(args)
        .env("GNOMON_HOST", server.url(""))
        .env_remove("GNOMON_DATABASE")
        .output()
        .expect("running the CLI");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn cli_create_show_delete() {
    let server = Server::start(&[]);
    let db = unique_name("cli");

    let out = cli(&server, &["create", "database", &db]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("Database \"{db}\" created successfully")
    );
    let out = cli(&server, &["create", "database", &db]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "Create command failed: server responded with error [409 Conflict]: \
         attempted to create a resource that already exists"
    );

    let out = cli(
        &server,
        &[
            "create",
            "table",
            "cpu",
            "-d",
            &db,
            "--tags",
            "region,host",
            "--fields",
            "usage:float64,n:int64",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("Table \"{db}\".\"cpu\" created successfully")
    );
    let out = cli(
        &server,
        &["create", "table", "t2", "-d", &db, "--fields", "x:decimal"],
    );
    assert_eq!(out.code, 2, "clap refuses an unknown type: {}", out.stderr);

    let out = cli(
        &server,
        &[
            "create",
            "last_cache",
            "-d",
            &db,
            "-t",
            "cpu",
            "--key-columns",
            "host",
            "--count",
            "2",
            "--ttl",
            "10m",
            "lc",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("new cache created: {"),
        "{}",
        out.stdout
    );
    let out = cli(
        &server,
        &[
            "create",
            "distinct_cache",
            "-d",
            &db,
            "-t",
            "cpu",
            "--columns",
            "region,host",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    let out = cli(&server, &["show", "databases", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(rows
        .as_array()
        .unwrap()
        .contains(&json!({"iox::database": db})));
    let out = cli(
        &server,
        &["show", "last_caches", "-d", &db, "--format", "jsonl"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let row: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        (
            row["name"].clone(),
            row["count"].clone(),
            row["ttl"].clone()
        ),
        (json!("lc"), json!(2), json!(600))
    );
    let out = cli(&server, &["show", "tables", "-d", &db]);
    assert!(out.stdout.contains("cpu"), "{}", out.stdout);

    let out = cli(
        &server,
        &["delete", "last_cache", "-d", &db, "-t", "cpu", "lc"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = cli(
        &server,
        &["delete", "last_cache", "-d", &db, "-t", "cpu", "lc"],
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("[404 Not Found]"), "{}", out.stderr);
    let out = cli(
        &server,
        &[
            "delete",
            "distinct_cache",
            "-d",
            &db,
            "-t",
            "cpu",
            "cpu_region_host_distinct_cache",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Without --yes and without a "yes" on stdin nothing is deleted.
    let out = cli(&server, &["delete", "database", &db]);
    assert_eq!(out.code, 1);
    assert!(db_names(&server).contains(&db));
    let out = cli(&server, &["delete", "database", &db, "--yes"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!db_names(&server).contains(&db));

    // An unreachable server is a clear failure.
    let out = Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args(["show", "databases", "--host", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not reach the server"));
}

#[test]
fn limits_are_422_with_a_clear_message() {
    let server = Server::start(&["--num-database-limit", "1", "--num-table-limit", "1"]);
    let create = |name: &str| post_json(&server, "/api/v3/configure/database", json!({"db": name}));
    assert_eq!(create("one").status, 200);
    let over = create("two");
    assert_eq!(over.status, 422, "{}", over.describe());
    let message = over.json()["error"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("Adding a new database would exceed limit of 1 databases"),
        "{message}"
    );
    assert!(message.contains("--num-database-limit"), "{message}");

    let table = |t: &str| {
        post_json(
            &server,
            "/api/v3/configure/table",
            json!({"db": "one", "table": t, "tags": [], "fields": []}),
        )
    };
    assert_eq!(table("t1").status, 200);
    let over = table("t2");
    assert_eq!(over.status, 422, "{}", over.describe());
    assert!(over.text().contains("--num-table-limit"), "{}", over.text());
    // Deleting frees room at once.
    assert_eq!(
        delete(&server, "/api/v3/configure/table?db=one&table=t1").status,
        200
    );
    assert_eq!(table("t2").status, 200);
}

#[test]
fn cli_update_database_retention() {
    let server = Server::start(&[]);
    let db = unique_name("cli_ret");
    let out = cli(
        &server,
        &["create", "database", &db, "--retention-period", "30d"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let retention = |server: &Server| {
        server.sql(
            "_internal",
            &format!(
                "SELECT retention_period_ns FROM system.databases WHERE database_name = '{db}'"
            ),
        )[0]["retention_period_ns"]
            .clone()
    };
    assert_eq!(retention(&server), 30 * 86_400 * 1_000_000_000_i64);

    let out = cli(
        &server,
        &["update", "database", "-d", &db, "--retention-period", "7d"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("Database \"{db}\" updated successfully")
    );
    assert_eq!(retention(&server), 7 * 86_400 * 1_000_000_000_i64);

    let out = cli(
        &server,
        &[
            "update",
            "database",
            "-d",
            &db,
            "--retention-period",
            "none",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(retention(&server).is_null());

    let out = cli(
        &server,
        &[
            "update",
            "database",
            "-d",
            "nope",
            "--retention-period",
            "1d",
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Update command failed: server responded with error [404 Not Found]"),
        "{}",
        out.stderr
    );
}
