//! The processing engine against the real binary with real Python plugins (issue #7's
//! acceptance list): a WAL plugin writing a derived measurement, a schedule plugin on
//! `every:1s`, a request plugin echoing its input, a plugin that raises, a plugin using a
//! package installed through the API, triggers surviving a restart, the plugin test
//! endpoints, the error answers of the trigger endpoints (also on a server without
//! `--plugin-dir`), and the CLI's trigger commands.
//!
//! Triggers run asynchronously after a write or on their schedule, so results are polled
//! with a deadline ([`eventually`]), never slept on and asserted.

mod common;

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{enc, eventually, unique_name, Resp, Server, NS};
use reqwest::Method;
use serde_json::{json, Value};

const TRIGGER: &str = "/api/v3/configure/processing_engine_trigger";

/// Long enough for a loaded 2-core machine running a debug build; the checks are counts
/// and contents, never durations.
const WAIT: Duration = Duration::from_secs(30);

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    Server::shared_with_plugins(&SERVER, &[])
}

fn post_json(server: &Server, path: &str, body: Value) -> Resp {
    server.post_with(
        path,
        &[("Content-Type", "application/json")],
        body.to_string(),
    )
}

#[track_caller]
/// A new database and a new plugin file holding `code`, named after the two prefixes.
fn db_with_plugin(server: &Server, db: &str, plugin: &str, code: &str) -> (String, String) {
    let db = unique_name(db);
    create_db(server, &db);
    let plugin = format!("{}.py", unique_name(plugin));
    server.write_plugin(&plugin, code);
    (db, plugin)
}

fn create_db(server: &Server, db: &str) {
    post_json(server, "/api/v3/configure/database", json!({ "db": db })).expect_status(200);
}

fn trigger_body(
    db: &str,
    name: &str,
    plugin: &str,
    spec: &str,
    args: Value,
    disabled: bool,
) -> Value {
    json!({
        "db": db,
        "plugin_filename": plugin,
        "trigger_name": name,
        "trigger_specification": spec,
        "trigger_settings": {"run_async": false, "error_behavior": "log"},
        "trigger_arguments": args,
        "disabled": disabled,
    })
}

fn create_trigger(
    server: &Server,
    db: &str,
    name: &str,
    plugin: &str,
    spec: &str,
    args: Value,
    disabled: bool,
) -> Resp {
    post_json(
        server,
        TRIGGER,
        trigger_body(db, name, plugin, spec, args, disabled),
    )
}

fn delete_trigger(server: &Server, db: &str, name: &str, force: bool) -> Resp {
    server.request(
        Method::DELETE,
        &format!(
            "{TRIGGER}?db={}&trigger_name={}&force={force}",
            enc(db),
            enc(name)
        ),
        &[],
        None,
    )
}

fn set_enabled(server: &Server, db: &str, name: &str, enabled: bool) -> Resp {
    let verb = if enabled { "enable" } else { "disable" };
    server.post(
        &format!("{TRIGGER}/{verb}?db={}&trigger_name={}", enc(db), enc(name)),
        Vec::new(),
    )
}

/// Rows of a query that may not answer yet (table not created so far): `None` unless 200.
/// `resp` has `status` and a body starting with `prefix`.
fn assert_error(resp: &Resp, status: u16, prefix: &str) {
    assert_eq!(resp.status, status, "{}", resp.describe());
    assert!(resp.text().starts_with(prefix), "{}", resp.describe());
}

fn try_sql(server: &Server, db: &str, q: &str) -> Option<Vec<Value>> {
    let resp = server.query_sql(db, q, "json");
    if resp.status != 200 {
        return None;
    }
    match resp.json() {
        Value::Array(rows) => Some(rows),
        other => panic!("query result is not an array: {other}"),
    }
}

/// `SELECT count(*)` of a table, 0 while the table does not exist.
fn count(server: &Server, db: &str, table: &str) -> i64 {
    try_sql(
        server,
        db,
        &format!("SELECT count(*) AS n FROM \"{table}\""),
    )
    .map(|rows| rows[0]["n"].as_i64().unwrap())
    .unwrap_or(0)
}

/// `(log_level, log_text)` of one trigger's entries in `system.processing_engine_logs`.
fn engine_logs(server: &Server, db: &str, trigger: &str) -> Vec<(String, String)> {
    server
        .sql(
            db,
            &format!(
                "SELECT log_level, log_text FROM system.processing_engine_logs \
                 WHERE trigger_name = '{trigger}' ORDER BY event_time"
            ),
        )
        .iter()
        .map(|r| {
            (
                r["log_level"].as_str().unwrap().to_string(),
                r["log_text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The triggers of `db` as listed by the system table, ordered by name.
fn system_triggers(server: &Server, db: &str) -> Vec<Value> {
    server.sql(
        db,
        "SELECT trigger_name, plugin_filename, trigger_specification, disabled, error_behavior \
         FROM system.processing_engine_triggers ORDER BY trigger_name",
    )
}

/// Calls `/api/v3/engine/<path>` until it answers `status` (a request trigger starts
/// asynchronously after its creation).
#[track_caller]
fn engine_until(server: &Server, method: Method, path: &str, status: u16) -> Resp {
    eventually(
        WAIT,
        &format!("{method} /api/v3/engine/{path} -> {status}"),
        || {
            let resp = server.request(method.clone(), &format!("/api/v3/engine/{path}"), &[], None);
            (resp.status == status).then_some(resp)
        },
    )
}

// ------------------------------------------------------------------------------------------
// 1. WAL plugin
// ------------------------------------------------------------------------------------------

const DERIVE_PLUGIN: &str = r#"
def process_writes(influxdb3_local, table_batches, args=None):
    factor = float(args["factor"])
    for batch in table_batches:
        if batch["table_name"] != "cpu":
            raise Exception("a table:cpu trigger got rows of " + batch["table_name"])
        for row in batch["rows"]:
            line = (LineBuilder("cpu_derived")
                    .tag("host", row["host"])
                    .float64_field("value", row["value"] * factor)
                    .int64_field("columns", len(row))
                    .time_ns(row["time"]))
            influxdb3_local.write(line)
"#;

#[test]
fn wal_plugin_writes_a_derived_measurement() {
    let s = server();
    let (db, plugin) = db_with_plugin(s, "walp", "derive", DERIVE_PLUGIN);
    let trigger = unique_name("derive");
    create_trigger(
        s,
        &db,
        &trigger,
        &plugin,
        "table:cpu",
        json!({"factor": "2"}),
        false,
    )
    .expect_status(200);

    // Rows of other tables in the same flush are not passed to a table:cpu trigger.
    s.write_ok(
        &db,
        format!(
            "cpu,host=a value=1.5 {NS}\ncpu,host=b value=4 {}\nmem,host=a value=100 {NS}",
            NS + 1
        ),
        "",
    );
    let q = "SELECT host, value, columns, CAST(time AS BIGINT) AS t FROM cpu_derived ORDER BY host";
    let rows = eventually(WAIT, "two rows in cpu_derived", || {
        try_sql(s, &db, q).filter(|rows| rows.len() >= 2)
    });
    // `columns`: a row dict holds host, value and time.
    assert_eq!(
        Value::Array(rows),
        json!([
            {"host": "a", "value": 3.0, "columns": 3, "t": NS},
            {"host": "b", "value": 8.0, "columns": 3, "t": NS + 1},
        ])
    );

    // A later flush is seen too.
    s.write_ok(&db, format!("cpu,host=c value=0.25 {}", NS + 2), "");
    let rows = eventually(WAIT, "host c in cpu_derived", || {
        try_sql(s, &db, q).filter(|rows| rows.len() >= 3)
    });
    assert_eq!(rows[2]["host"], "c");
    assert_eq!(rows[2]["value"], 0.5);
    assert_eq!(count(s, &db, "cpu_derived"), 3);

    let errors: Vec<_> = engine_logs(s, &db, &trigger)
        .into_iter()
        .filter(|(level, _)| level == "ERROR")
        .collect();
    assert!(errors.is_empty(), "plugin errors: {errors:?}");
}

// ------------------------------------------------------------------------------------------
// 2. schedule plugin
// ------------------------------------------------------------------------------------------

const TICK_PLUGIN: &str = r#"
def process_scheduled_call(influxdb3_local, call_time, args=None):
    influxdb3_local.write(
        LineBuilder("ticks")
        .tag("trigger", args["name"])
        .int64_field("call_time", int(call_time.timestamp())))
"#;

#[test]
fn schedule_plugin_every_second_fires_at_least_three_times() {
    let s = server();
    let (db, plugin) = db_with_plugin(s, "sched", "tick", TICK_PLUGIN);
    let trigger = unique_name("tick");
    let started = Instant::now();
    create_trigger(
        s,
        &db,
        &trigger,
        &plugin,
        "every:1s",
        json!({"name": trigger}),
        false,
    )
    .expect_status(200);

    // Three runs need about 3 s (the first at the next whole second); the deadline leaves
    // room for a loaded machine, the assertion is on the count.
    let n = eventually(Duration::from_secs(8), "three scheduled runs", || {
        let n = count(s, &db, "ticks");
        (n >= 3).then_some(n)
    });
    eprintln!("{n} runs after {:?}", started.elapsed());

    // Each run had its own scheduled instant: whole seconds, all different.
    let rows = s.sql(
        &db,
        "SELECT call_time, \"trigger\" FROM ticks ORDER BY call_time",
    );
    let mut instants: Vec<i64> = rows
        .iter()
        .map(|r| r["call_time"].as_i64().unwrap())
        .collect();
    assert!(rows.iter().all(|r| r["trigger"] == trigger.as_str()));
    let before = instants.len();
    instants.dedup();
    assert_eq!(instants.len(), before, "an instant ran twice: {rows:?}");

    // Disabled, it stops: the count no longer grows (checked over a few periods).
    set_enabled(s, &db, &trigger, false).expect_status(200);
    let settled = count(s, &db, "ticks");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        count(s, &db, "ticks") <= settled + 1,
        "a disabled schedule trigger kept running"
    );
}

// ------------------------------------------------------------------------------------------
// 3. request plugin
// ------------------------------------------------------------------------------------------

const ECHO_PLUGIN: &str = r#"
def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    mode = query_parameters.get("mode")
    if mode == "created":
        return {"created": True}, 201
    if mode == "text":
        return "<b>hello</b>"
    return {
        "params": query_parameters,
        "headers": request_headers,
        "body": request_body.decode("utf-8"),
        "args": args,
    }
"#;

#[test]
fn request_plugin_echoes_params_headers_and_body() {
    let s = server();
    let (db, plugin) = db_with_plugin(s, "req", "echo", ECHO_PLUGIN);
    let trigger = unique_name("echo");
    let path = format!("{}/sub", unique_name("echo"));
    create_trigger(
        s,
        &db,
        &trigger,
        &plugin,
        &format!("request:{path}"),
        json!({"greeting": "hi"}),
        false,
    )
    .expect_status(200);
    engine_until(s, Method::GET, &path, 200);

    let resp = s.request(
        Method::POST,
        &format!("/api/v3/engine/{path}?a=1&b=two+words&c=%2Fx%3Dy&a=2"),
        &[
            ("Content-Type", "application/json"),
            ("X-Custom-Header", "Some Value"),
            ("Authorization", "Bearer secret-token"),
        ],
        Some(br#"{"hello": "world"}"#.to_vec()),
    );
    resp.expect_status(200);
    assert!(
        resp.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{}",
        resp.describe()
    );
    let body = resp.json();
    // Repeated keys: the last wins; values are percent-decoded, `+` is a space.
    assert_eq!(
        body["params"],
        json!({"a": "2", "b": "two words", "c": "/x=y"})
    );
    assert_eq!(body["body"], r#"{"hello": "world"}"#);
    assert_eq!(body["args"], json!({"greeting": "hi"}));
    let headers = body["headers"].as_object().expect("headers dict");
    assert_eq!(headers["x-custom-header"], "Some Value");
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        headers.keys().all(|k| *k == k.to_lowercase()),
        "header names not lower-case: {headers:?}"
    );
    assert!(
        !headers.contains_key("authorization"),
        "Authorization was passed to the plugin: {headers:?}"
    );

    // A GET without body.
    let resp = s.get(&format!("/api/v3/engine/{path}?only=1"));
    resp.expect_status(200);
    assert_eq!(resp.json()["params"], json!({"only": "1"}));
    assert_eq!(resp.json()["body"], "");

    // (body, 201): the status, a JSON body in Python's default json.dumps form.
    let resp = s.get(&format!("/api/v3/engine/{path}?mode=created"));
    resp.expect_status(201);
    assert!(resp
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/json")));
    assert_eq!(resp.text(), r#"{"created": true}"#);

    // A str: text/html.
    let resp = s.get(&format!("/api/v3/engine/{path}?mode=text"));
    resp.expect_status(200);
    assert!(
        resp.header("content-type")
            .is_some_and(|ct| ct.starts_with("text/html")),
        "{}",
        resp.describe()
    );
    assert_eq!(resp.text(), "<b>hello</b>");

    // No trigger on this path.
    let resp = s.get(&format!("/api/v3/engine/{}", unique_name("nothing_here")));
    assert_eq!(resp.status, 404, "{}", resp.describe());
}

// ------------------------------------------------------------------------------------------
// 4. a plugin that raises
// ------------------------------------------------------------------------------------------

const RAISING_PLUGIN: &str = r#"
def process_writes(influxdb3_local, table_batches, args=None):
    influxdb3_local.info("about to fail")
    raise ValueError("boom from a wal plugin")

def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    raise RuntimeError("boom from a request plugin")
"#;

#[test]
fn a_raising_plugin_is_logged_and_the_server_stays_healthy() {
    let s = server();
    let (db, plugin) = db_with_plugin(s, "boom", "boom", RAISING_PLUGIN);
    let wal = unique_name("boomwal");
    create_trigger(s, &db, &wal, &plugin, "table:events", Value::Null, false).expect_status(200);
    let req = unique_name("boomreq");
    let path = unique_name("boom");
    create_trigger(
        s,
        &db,
        &req,
        &plugin,
        &format!("request:{path}"),
        Value::Null,
        false,
    )
    .expect_status(200);

    s.write_ok(&db, format!("events,k=a v=1i {NS}"), "");
    let first = eventually(
        WAIT,
        "the WAL plugin's error in processing_engine_logs",
        || {
            let logs = engine_logs(s, &db, &wal);
            logs.iter()
                .any(|(level, text)| level == "ERROR" && text.contains("boom from a wal plugin"))
                .then_some(logs)
        },
    );
    assert!(
        first
            .iter()
            .any(|(level, text)| level == "INFO" && text == "about to fail"),
        "{first:?}"
    );

    // The server is fine: health, writes and queries work, and the trigger goes on (log
    // behaviour): the next flush fails again and is logged again.
    s.assert_alive();
    s.write_ok(&db, format!("events,k=b v=2i {}", NS + 1), "");
    assert_eq!(count(s, &db, "events"), 2);
    eventually(WAIT, "a second error for the second write", || {
        let errors = engine_logs(s, &db, &wal)
            .into_iter()
            .filter(|(level, _)| level == "ERROR")
            .count();
        (errors >= 2).then_some(())
    });

    // A request plugin's exception: 500 with a JSON error naming it.
    let resp = engine_until(s, Method::GET, &path, 500);
    let body = resp.json();
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", resp.describe()));
    assert!(
        message.contains("boom from a request plugin"),
        "{}",
        resp.describe()
    );
    s.assert_alive();
    eventually(
        WAIT,
        "the request plugin's error in processing_engine_logs",
        || {
            engine_logs(s, &db, &req)
                .iter()
                .any(|(level, text)| {
                    level == "ERROR" && text.contains("boom from a request plugin")
                })
                .then_some(())
        },
    );
}

// ------------------------------------------------------------------------------------------
// 5. a package installed through the API
// ------------------------------------------------------------------------------------------

const SIX_PLUGIN: &str = r#"
import six

def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    return {"six": six.__version__, "text_type": six.text_type.__name__}
"#;

#[test]
fn a_plugin_uses_a_package_installed_through_the_api() {
    let s = server();
    let resp = post_json(
        s,
        "/api/v3/configure/plugin_environment/install_packages",
        json!({"packages": ["six==1.16.0"]}),
    );
    if resp.status != 200 {
        let text = resp.text().to_lowercase();
        let offline = [
            "network",
            "connection",
            "resolve",
            "unreachable",
            "timed out",
        ]
        .iter()
        .any(|w| text.contains(w));
        if offline {
            eprintln!("SKIPPED: no package index reachable: {}", resp.describe());
            return;
        }
        panic!("install_packages failed:\n{}", resp.describe());
    }
    let (db, plugin) = db_with_plugin(s, "pkg", "six", SIX_PLUGIN);
    let path = unique_name("six");
    create_trigger(
        s,
        &db,
        &unique_name("six"),
        &plugin,
        &format!("request:{path}"),
        Value::Null,
        false,
    )
    .expect_status(200);
    let resp = engine_until(s, Method::GET, &path, 200);
    assert_eq!(resp.json(), json!({"six": "1.16.0", "text_type": "str"}));
}

// ------------------------------------------------------------------------------------------
// 6. triggers survive a restart
// ------------------------------------------------------------------------------------------

const PING_PLUGIN: &str = r#"
def process_request(influxdb3_local, query_parameters, request_headers, request_body, args=None):
    return {"pong": args["who"]}
"#;

#[test]
fn every_trigger_kind_survives_a_restart() {
    let mut s = Server::start_with_plugins(&[]);
    let db = "restart_db";
    create_db(&s, db);
    s.write_plugin("derive.py", DERIVE_PLUGIN);
    s.write_plugin("tick.py", TICK_PLUGIN);
    s.write_plugin("ping.py", PING_PLUGIN);
    create_trigger(
        &s,
        db,
        "t_wal",
        "derive.py",
        "table:cpu",
        json!({"factor": "10"}),
        false,
    )
    .expect_status(200);
    create_trigger(
        &s,
        db,
        "t_sched",
        "tick.py",
        "every:1s",
        json!({"name": "t_sched"}),
        false,
    )
    .expect_status(200);
    create_trigger(
        &s,
        db,
        "t_req",
        "ping.py",
        "request:ping",
        json!({"who": "on"}),
        false,
    )
    .expect_status(200);
    create_trigger(
        &s,
        db,
        "t_off",
        "ping.py",
        "request:off",
        json!({"who": "off"}),
        true,
    )
    .expect_status(200);

    let listed = system_triggers(&s, db);
    let names: Vec<&str> = listed
        .iter()
        .map(|r| r["trigger_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t_off", "t_req", "t_sched", "t_wal"]);
    let disabled: Vec<bool> = listed
        .iter()
        .map(|r| r["disabled"].as_bool().unwrap())
        .collect();
    assert_eq!(disabled, [true, false, false, false]);
    let args_before = s.sql(
        db,
        "SELECT trigger_name, argument_key, argument_value \
         FROM system.processing_engine_trigger_arguments ORDER BY trigger_name, argument_key",
    );
    assert_eq!(args_before.len(), 4, "{args_before:?}");

    // Everything works before the restart.
    s.write_ok(db, format!("cpu,host=a value=1 {NS}"), "");
    eventually(WAIT, "cpu_derived before the restart", || {
        (count(&s, db, "cpu_derived") == 1).then_some(())
    });
    eventually(WAIT, "ticks before the restart", || {
        (count(&s, db, "ticks") >= 1).then_some(())
    });
    assert_eq!(
        engine_until(&s, Method::GET, "ping", 200).json(),
        json!({"pong": "on"})
    );
    assert_eq!(s.get("/api/v3/engine/off").status, 404);

    s.stop();
    s.restart();

    // Same definitions, same states.
    assert_eq!(system_triggers(&s, db), listed);
    assert_eq!(
        s.sql(
            db,
            "SELECT trigger_name, argument_key, argument_value \
             FROM system.processing_engine_trigger_arguments ORDER BY trigger_name, argument_key",
        ),
        args_before
    );

    // The enabled ones run again.
    s.write_ok(db, format!("cpu,host=b value=2 {}", NS + 1), "");
    let rows = eventually(WAIT, "cpu_derived after the restart", || {
        try_sql(&s, db, "SELECT host, value FROM cpu_derived ORDER BY host")
            .filter(|rows| rows.len() == 2)
    });
    assert_eq!(rows[1], json!({"host": "b", "value": 20.0}));
    let ticks = count(&s, db, "ticks");
    eventually(WAIT, "new scheduled runs after the restart", || {
        (count(&s, db, "ticks") >= ticks + 2).then_some(())
    });
    assert_eq!(
        engine_until(&s, Method::GET, "ping", 200).json(),
        json!({"pong": "on"})
    );
    // The disabled one does not serve until it is enabled.
    assert_eq!(s.get("/api/v3/engine/off").status, 404);
    set_enabled(&s, db, "t_off", true).expect_status(200);
    assert_eq!(
        engine_until(&s, Method::GET, "off", 200).json(),
        json!({"pong": "off"})
    );
}

// ------------------------------------------------------------------------------------------
// 7. plugin test endpoints
// ------------------------------------------------------------------------------------------

const TEST_WAL_PLUGIN: &str = r#"
def process_writes(influxdb3_local, table_batches, args=None):
    influxdb3_local.info("arg1:", args["arg1"])
    for batch in table_batches:
        influxdb3_local.warn("table", batch["table_name"], len(batch["rows"]))
        for row in batch["rows"]:
            influxdb3_local.write(
                LineBuilder("derived").tag("host", row["host"])
                .int64_field("f", row["f"] * 10).time_ns(row["time"]))
    influxdb3_local.write_to_db(args["other"], LineBuilder("other").int64_field("x", 1).time_ns(1302))
    influxdb3_local.error("done")
"#;

const TEST_SCHEDULE_PLUGIN: &str = r#"
def process_scheduled_call(influxdb3_local, call_time, args=None):
    influxdb3_local.info("k is", args["k"])
    influxdb3_local.write(LineBuilder("sched").int64_field("second", call_time.second).time_ns(1000))
"#;

#[test]
fn plugin_test_endpoints_return_logs_and_writes_without_applying_them() {
    let s = server();
    let db = unique_name("ptest");
    create_db(s, &db);
    let other = unique_name("ptest_other");
    let wal_plugin = format!("{}.py", unique_name("twal"));
    s.write_plugin(&wal_plugin, TEST_WAL_PLUGIN);

    let resp = post_json(
        s,
        "/api/v3/plugin_test/wal",
        json!({
            "filename": wal_plugin,
            "database": db,
            "input_lp": "cpu,host=a f=1i 500\ncpu,host=b f=2i 600",
            "input_arguments": {"arg1": "v", "other": other},
        }),
    );
    resp.expect_status(200);
    let body = resp.json();
    assert_eq!(body["errors"], json!([]), "{}", resp.describe());
    let logs: Vec<&str> = body["log_lines"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", resp.describe()))
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(
        logs.first(),
        Some(&"INFO: starting execution of wal plugin."),
        "{logs:?}"
    );
    assert_eq!(
        &logs[1..4],
        ["INFO: arg1: v", "WARN: table cpu 2", "ERROR: done"]
    );
    assert!(
        logs.last()
            .unwrap()
            .starts_with("INFO: finished execution in "),
        "{logs:?}"
    );
    let mut expected = serde_json::Map::new();
    expected.insert(
        db.clone(),
        json!(["derived,host=a f=10i 500", "derived,host=b f=20i 600"]),
    );
    expected.insert(other.clone(), json!(["other x=1i 1302"]));
    assert_eq!(body["database_writes"], Value::Object(expected));
    // Nothing was applied.
    assert!(!s.tables(&db).contains(&"derived".to_string()));
    assert!(!s.database_exists(&other));

    // A plugin that fails: one error, no logs, no writes; input that does not parse: an error.
    let bad_plugin = format!("{}.py", unique_name("tbad"));
    s.write_plugin(
        &bad_plugin,
        "def process_writes(influxdb3_local, table_batches, args=None):\n    1 / 0\n",
    );
    let resp = post_json(
        s,
        "/api/v3/plugin_test/wal",
        json!({"filename": bad_plugin, "database": db, "input_lp": "cpu f=1i 1"}),
    );
    resp.expect_status(200);
    let body = resp.json();
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{}", resp.describe());
    let error = errors[0].as_str().unwrap();
    assert!(
        error.starts_with("error executing plugin: ") && error.contains("ZeroDivisionError"),
        "{error}"
    );
    assert_eq!(body["log_lines"], json!([]));
    assert_eq!(body["database_writes"], json!({}));
    let resp = post_json(
        s,
        "/api/v3/plugin_test/wal",
        json!({"filename": wal_plugin, "database": db, "input_lp": "cpu,host=a f="}),
    );
    resp.expect_status(200);
    assert!(
        resp.json()["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "{}",
        resp.describe()
    );

    // Unknown plugin file: 500 Plugin error.
    let resp = post_json(
        s,
        "/api/v3/plugin_test/wal",
        json!({"filename": "no_such_plugin.py", "database": db, "input_lp": "cpu f=1i 1"}),
    );
    assert_error(&resp, 500, "Plugin error: ");

    // Schedule: called once for the next instant of the cron expression.
    let sched_plugin = format!("{}.py", unique_name("tsched"));
    s.write_plugin(&sched_plugin, TEST_SCHEDULE_PLUGIN);
    let resp = post_json(
        s,
        "/api/v3/plugin_test/schedule",
        json!({"filename": sched_plugin, "database": db, "schedule": "*/5 * * * * *",
               "input_arguments": {"k": "v"}}),
    );
    resp.expect_status(200);
    let body = resp.json();
    assert_eq!(body["errors"], json!([]), "{}", resp.describe());
    let time = body["trigger_time"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", resp.describe()));
    // RFC 3339 UTC, e.g. 2025-06-17T12:00:05Z, on a multiple of 5 seconds.
    assert!(time.ends_with('Z') && time.len() == 20, "{time}");
    let second: u32 = time[17..19].parse().unwrap();
    assert_eq!(second % 5, 0, "{time}");
    assert!(
        body["log_lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "INFO: k is v"),
        "{}",
        resp.describe()
    );
    let mut expected = serde_json::Map::new();
    expected.insert(db.clone(), json!([format!("sched second={second}i 1000")]));
    assert_eq!(body["database_writes"], Value::Object(expected));
    assert!(!s.tables(&db).contains(&"sched".to_string()));

    // The database must exist for a schedule test; a bad cron is an error in the body.
    let resp = post_json(
        s,
        "/api/v3/plugin_test/schedule",
        json!({"filename": sched_plugin, "database": unique_name("absent")}),
    );
    resp.expect_status(200);
    assert_eq!(resp.json()["errors"], json!(["couldn't find db"]));
    assert_eq!(resp.json()["trigger_time"], Value::Null);
    let resp = post_json(
        s,
        "/api/v3/plugin_test/schedule",
        json!({"filename": sched_plugin, "database": db, "schedule": "not a cron"}),
    );
    resp.expect_status(200);
    let errors = resp.json()["errors"].clone();
    assert!(
        errors[0]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid cron syntax")),
        "{}",
        resp.describe()
    );
}

// ------------------------------------------------------------------------------------------
// 8. error answers
// ------------------------------------------------------------------------------------------

#[test]
fn trigger_endpoint_errors() {
    let s = server();
    let (db, plugin) = db_with_plugin(s, "errs", "ok", PING_PLUGIN);

    let resp = create_trigger(
        s,
        &db,
        "t_missing",
        "not_there.py",
        "request:x1",
        Value::Null,
        false,
    );
    assert_error(&resp, 500, "Plugin error: ");

    let resp = create_trigger(
        s,
        &db,
        "t_bad",
        &plugin,
        "sometimes:now",
        Value::Null,
        false,
    );
    assert_eq!(resp.status, 500, "{}", resp.describe());
    assert!(
        resp.text()
            .contains("failed to parse trigger from sometimes:now"),
        "{}",
        resp.describe()
    );

    let resp = create_trigger(
        s,
        &unique_name("nodb"),
        "t",
        &plugin,
        "all_tables",
        Value::Null,
        false,
    );
    assert_eq!(resp.status, 404, "{}", resp.describe());

    let path = unique_name("errs");
    let name = unique_name("dup");
    create_trigger(
        s,
        &db,
        &name,
        &plugin,
        &format!("request:{path}"),
        json!({"who": "x"}),
        false,
    )
    .expect_status(200);
    let resp = create_trigger(s, &db, &name, &plugin, "all_tables", Value::Null, false);
    common::assert_body(
        &resp,
        409,
        "attempted to create a resource that already exists",
    );

    let resp = delete_trigger(s, &db, &name, false);
    common::assert_body(
        &resp,
        500,
        &format!("Cannot delete running plugin {name}. Disable it first or use --force."),
    );
    let resp = delete_trigger(s, &db, "no_such_trigger", false);
    assert_eq!(resp.status, 404, "{}", resp.describe());
    let resp = set_enabled(s, &db, "no_such_trigger", true);
    assert_eq!(resp.status, 404, "{}", resp.describe());

    // Enable/disable are idempotent; force deletes a running trigger.
    set_enabled(s, &db, &name, true).expect_status(200);
    set_enabled(s, &db, &name, false).expect_status(200);
    set_enabled(s, &db, &name, false).expect_status(200);
    assert_eq!(s.get(&format!("/api/v3/engine/{path}")).status, 404);
    set_enabled(s, &db, &name, true).expect_status(200);
    engine_until(s, Method::GET, &path, 200);
    delete_trigger(s, &db, &name, true).expect_status(200);
    assert!(system_triggers(s, &db).is_empty());
    eventually(WAIT, "a deleted request trigger stops serving", || {
        (s.get(&format!("/api/v3/engine/{path}")).status == 404).then_some(())
    });
}

#[test]
fn engine_endpoints_without_a_plugin_dir_answer_clear_errors() {
    let s = Server::start(&[]);
    let db = "noplugins";
    create_db(&s, db);
    let resp = create_trigger(&s, db, "t", "p.py", "all_tables", Value::Null, false);
    assert_error(&resp, 500, "Plugin error: ");
    assert!(
        resp.text().contains("plugin directory"),
        "{}",
        resp.describe()
    );

    let resp = post_json(
        &s,
        "/api/v3/plugin_test/wal",
        json!({"filename": "p.py", "database": db, "input_lp": "m f=1i 1"}),
    );
    assert_error(&resp, 500, "Plugin error: ");

    let resp = post_json(
        &s,
        "/api/v3/configure/plugin_environment/install_packages",
        json!({"packages": ["six"]}),
    );
    assert_error(&resp, 500, "Processing engine error: ");

    assert_eq!(s.get("/api/v3/engine/anything").status, 404);
    assert!(system_triggers(&s, db).is_empty());
    s.assert_alive();
}

// ------------------------------------------------------------------------------------------
// 9. the CLI
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
        .env_remove("GNOMON_TOKEN")
        .output()
        .expect("running the CLI");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn cli_trigger_round_trip() {
    let s = server();
    let db = unique_name("clitr");
    create_db(s, &db);
    let local = tempfile::tempdir().unwrap();
    let plugin_name = format!("{}.py", unique_name("cli_echo"));
    let plugin_path = local.path().join(&plugin_name);
    std::fs::write(&plugin_path, ECHO_PLUGIN).unwrap();
    let name = unique_name("clitrig");
    let path = unique_name("cli");
    let spec = format!("request:{path}");

    let create_args = [
        "create",
        "trigger",
        name.as_str(),
        "-d",
        db.as_str(),
        "--path",
        plugin_path.to_str().unwrap(),
        "--upload",
        "--trigger-spec",
        spec.as_str(),
        "--trigger-arguments",
        "greeting=hi,query=a=b",
    ];
    let out = cli(s, &create_args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("Trigger {name} created successfully")
    );
    // Uploaded under its file name, and serving.
    assert_eq!(
        std::fs::read_to_string(s.plugin_dir().join(&plugin_name)).unwrap(),
        ECHO_PLUGIN
    );
    let resp = engine_until(s, Method::GET, &path, 200);
    assert_eq!(
        resp.json()["args"],
        json!({"greeting": "hi", "query": "a=b"})
    );

    let out = cli(s, &create_args);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "Create command failed: server responded with error [409 Conflict]: \
         attempted to create a resource that already exists"
    );

    let show = |s: &Server| {
        let out = cli(s, &["show", "plugins", "-d", &db, "--format", "json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str::<Value>(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    };
    let listed = show(s);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["trigger_name"], name.as_str());
    assert_eq!(listed[0]["plugin_filename"], plugin_name.as_str());
    assert_eq!(listed[0]["disabled"], false);
    let out = cli(s, &["show", "plugins", "-d", &db]);
    assert!(out.stdout.starts_with("+--"), "{}", out.stdout);
    assert!(out.stdout.contains(&name), "{}", out.stdout);

    let out = cli(s, &["delete", "trigger", &name, "-d", &db]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("[500 Internal Server Error]")
            && out.stderr.contains("Disable it first or use --force."),
        "{}",
        out.stderr
    );

    let out = cli(s, &["disable", "trigger", &name, "-d", &db]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("Trigger {name} disabled successfully")
    );
    assert_eq!(show(s)[0]["disabled"], true);
    assert_eq!(s.get(&format!("/api/v3/engine/{path}")).status, 404);

    let out = cli(s, &["enable", "trigger", &name, "-d", &db]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("Trigger {name} enabled successfully")
    );
    assert_eq!(show(s)[0]["disabled"], false);
    engine_until(s, Method::GET, &path, 200);

    let out = cli(s, &["disable", "trigger", &name, "-d", &db]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = cli(s, &["delete", "trigger", &name, "-d", &db]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout.trim(),
        format!("Trigger {name} deleted successfully")
    );
    assert_eq!(show(s), json!([]));
    let out = cli(s, &["delete", "trigger", &name, "-d", &db]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("[404 Not Found]"), "{}", out.stderr);

    // The plugin test command prints the server's JSON.
    let test_plugin = format!("{}.py", unique_name("cli_twal"));
    s.write_plugin(&test_plugin, TEST_WAL_PLUGIN);
    let other = unique_name("cli_other");
    let out = cli(
        s,
        &[
            "test",
            "wal_plugin",
            &test_plugin,
            "-d",
            &db,
            "--lp",
            "cpu,host=z f=4i 7",
            "--input-arguments",
            &format!("arg1=w,other={other}"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let body: Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(body["errors"], json!([]));
    assert_eq!(
        body["database_writes"][&db],
        json!(["derived,host=z f=40i 7"])
    );
    let out = cli(s, &["test", "schedule_plugin", "absent.py", "-d", &db]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Test command failed: server responded with error [500"),
        "{}",
        out.stderr
    );
}

// ------------------------------------------------------------------------------------------
// beyond the acceptance list: error behaviours, restricted trigger types, metrics
// ------------------------------------------------------------------------------------------

/// Fails on its first two calls (counted in the trigger's private cache), then writes.
const FLAKY_PLUGIN: &str = r#"
def process_writes(influxdb3_local, table_batches, args=None):
    if not any(batch["table_name"] == "jobs" for batch in table_batches):
        return
    calls = influxdb3_local.cache.get("calls", 0) + 1
    influxdb3_local.cache.put("calls", calls)
    if calls <= 2:
        raise RuntimeError("flaky call %d" % calls)
    influxdb3_local.write(LineBuilder("done").int64_field("calls", calls))
"#;

#[test]
fn retry_reruns_a_failed_call_and_disable_stops_the_trigger() {
    let s = server();
    let (db, plugin) = db_with_plugin(s, "retry", "flaky", FLAKY_PLUGIN);
    let name = unique_name("retry");
    let mut body = trigger_body(&db, &name, &plugin, "table:jobs", Value::Null, false);
    body["trigger_settings"]["error_behavior"] = json!("retry");
    post_json(s, TRIGGER, body).expect_status(200);

    // One write, one flush: the same call is run until it succeeds, on its third try.
    s.write_ok(&db, format!("jobs v=1i {NS}"), "");
    let rows = eventually(WAIT, "the retried call's write", || {
        try_sql(s, &db, "SELECT calls FROM done").filter(|rows| !rows.is_empty())
    });
    assert_eq!(Value::Array(rows), json!([{"calls": 3}]));
    let errors: Vec<String> = engine_logs(s, &db, &name)
        .into_iter()
        .filter(|(level, _)| level == "ERROR")
        .map(|(_, text)| text)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("flaky call 1") && errors[1].contains("flaky call 2"));

    // error_behavior=disable: the first failure stops the trigger; later writes are not seen.
    let db2 = unique_name("stop");
    create_db(s, &db2);
    let stopper = unique_name("stop");
    let mut body = trigger_body(&db2, &stopper, &plugin, "table:jobs", Value::Null, false);
    body["trigger_settings"]["error_behavior"] = json!("disable");
    post_json(s, TRIGGER, body).expect_status(200);
    s.write_ok(&db2, format!("jobs v=1i {NS}"), "");
    eventually(WAIT, "the first failure", || {
        engine_logs(s, &db2, &stopper)
            .iter()
            .any(|(_, text)| text.contains("flaky call 1"))
            .then_some(())
    });
    // Two more flushes: a running trigger would fail once more, then write `done`. Absence
    // can only be checked by waiting; 2 s is many flush intervals.
    s.write_ok(&db2, format!("jobs v=2i {}", NS + 1), "");
    s.write_ok(&db2, format!("jobs v=3i {}", NS + 2), "");
    assert_eq!(count(s, &db2, "jobs"), 3);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(s, &db2, "done"), 0, "a stopped trigger ran again");
    assert!(!engine_logs(s, &db2, &stopper)
        .iter()
        .any(|(_, text)| text.contains("flaky call 2")));
}

#[test]
fn restricted_trigger_types_are_rejected_and_runs_are_counted_in_metrics() {
    let s = Server::start_with_plugins(&["--restrict-plugin-triggers-to", "request"]);
    let db = "restricted";
    create_db(&s, db);
    s.write_plugin("p.py", PING_PLUGIN);
    for (spec, kind) in [("every:1s", "Schedule"), ("all_tables", "WalRows")] {
        let resp = create_trigger(&s, db, "t", "p.py", spec, Value::Null, false);
        common::assert_body(
            &resp,
            400,
            &format!("invalid request: server is configured to reject {kind} plugin triggers"),
        );
    }
    create_trigger(&s, db, "t", "p.py", "request:p", json!({"who": "m"}), false).expect_status(200);
    engine_until(&s, Method::GET, "p", 200);
    s.get("/api/v3/engine/p").expect_status(200);
    let metrics = s.metrics();
    let runs: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("gnomon_plugin_runs_total") && l.contains("request"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(runs >= 2, "request runs not counted:\n{metrics}");
}

/// A WAL plugin slower than the writes: every flush stays queued for it (none dropped) and
/// the engine says so, in its log and in `/metrics`.
#[test]
fn a_slow_wal_plugin_is_reported_as_falling_behind() {
    let s = server();
    let db = unique_name("slow");
    create_db(s, &db);
    let plugin = format!("{}.py", unique_name("slow"));
    s.write_plugin(
        &plugin,
        "import time\n\
         def process_writes(influxdb3_local, table_batches, args=None):\n    time.sleep(0.2)\n",
    );
    let name = unique_name("slow");
    create_trigger(s, &db, &name, &plugin, "all_tables", Value::Null, false).expect_status(200);
    // Each request is its own WAL flush (sequential writes, each acknowledged after its flush).
    for i in 0..150 {
        s.write_ok(&db, format!("m v={i}i {}", i + 1), "precision=s");
    }
    let backlog: i64 = s
        .metrics()
        .lines()
        .find(|l| l.starts_with("gnomon_plugin_wal_backlog_flushes"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .expect("backlog gauge in /metrics");
    assert!(backlog >= 100, "backlog {backlog}");
    let logs = engine_logs(s, &db, &name);
    assert!(
        logs.iter()
            .any(|(level, text)| level == "WARN" && text.contains("WAL flushes are waiting")),
        "{logs:?}"
    );
    delete_trigger(s, &db, &name, true).expect_status(200);
}

/// Enable/disable read their parameters from the query string and ignore a body; the body
/// must still be consumed, or the next request on the same keep-alive connection breaks.
#[test]
fn a_body_sent_with_query_parameters_does_not_break_the_connection() {
    use std::io::{BufRead, BufReader, Read, Write};

    let s = server();
    let (db, plugin) = db_with_plugin(s, "conn", "conn", PING_PLUGIN);
    let name = unique_name("conn");
    let path = unique_name("conn");
    create_trigger(
        s,
        &db,
        &name,
        &plugin,
        &format!("request:{path}"),
        Value::Null,
        false,
    )
    .expect_status(200);
    let host = s
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut conn = std::net::TcpStream::connect(&host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = format!(r#"{{"db":"{db}","trigger_name":"{name}"}}"#);
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    // Reads one response (status line, headers, Content-Length body) and returns its status.
    let response = |reader: &mut BufReader<std::net::TcpStream>| -> String {
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut rest = vec![0u8; length];
        reader.read_exact(&mut rest).unwrap();
        status.trim().to_string()
    };
    // Headers first, the body a moment later (as clients often send them): the server must
    // not answer and move on before the body is in.
    write!(
        conn,
        "POST /api/v3/configure/processing_engine_trigger/disable?db={db}&trigger_name={name} \
         HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    conn.write_all(body.as_bytes()).unwrap();
    assert_eq!(response(&mut reader), "HTTP/1.1 200 OK");
    write!(conn, "GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    assert_eq!(response(&mut reader), "HTTP/1.1 200 OK");
}
