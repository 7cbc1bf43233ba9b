//! Black-box tests of the server-information endpoints and the router's conventions
//! (API.md §0, §6): health, ping, metrics, 404s, CORS preflight and the `cluster-uuid` header.

mod common;

use std::collections::HashSet;
use std::sync::OnceLock;

use common::{unique_name, Resp, Server};
use reqwest::Method;

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    Server::shared(&SERVER, &[])
}

/// `8-4-4-4-12` lower/upper-case hex.
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A UUID whose version nibble is 7 (time ordered).
fn is_uuid_v7(s: &str) -> bool {
    is_uuid(s) && s.as_bytes()[14] == b'7'
}

#[track_caller]
fn assert_not_found(resp: &Resp) {
    assert_eq!(resp.status, 404, "{}", resp.describe());
    assert_eq!(resp.text(), "Not found", "{}", resp.describe());
}

// ------------------------------------------------------------------------------------------
// health
// ------------------------------------------------------------------------------------------

#[test]
fn health_answers_ok_text_on_both_paths() {
    let srv = server();
    for path in ["/health", "/api/v1/health"] {
        let resp = srv.get(path);
        assert_eq!(resp.status, 200, "{}", resp.describe());
        assert_eq!(resp.text(), "OK", "{path}");
        assert_eq!(
            resp.header("content-type").as_deref(),
            Some("text/plain; charset=utf-8"),
            "{path}: {}",
            resp.describe()
        );
        assert_eq!(
            resp.header("access-control-allow-origin").as_deref(),
            Some("*"),
            "successful responses carry Access-Control-Allow-Origin: *\n{}",
            resp.describe()
        );
    }
}

#[test]
fn health_is_matched_exactly_and_only_for_get() {
    let srv = server();
    assert_not_found(&srv.get("/health/"));
    assert_not_found(&srv.get("/api/v1/health/"));
    assert_not_found(&srv.post("/health", ""));
    assert_not_found(&srv.request(Method::DELETE, "/health", &[], None));
    // HEAD is not special-cased (no body for HEAD, so only the status).
    let head = srv.request(Method::HEAD, "/health", &[], None);
    assert_eq!(head.status, 404, "{}", head.describe());
}

// ------------------------------------------------------------------------------------------
// ping
// ------------------------------------------------------------------------------------------

#[track_caller]
fn check_ping(resp: &Resp) -> (String, String) {
    assert_eq!(resp.status, 200, "{}", resp.describe());
    let ct = resp.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}");
    let body = resp.json();
    assert!(body.is_object(), "ping body is an object: {body}");
    // The reference says `InfluxDB 3 Core`; the product name is the project's to choose, so
    // only its presence is checked.
    assert!(
        body["product_name"].as_str().is_some_and(|s| !s.is_empty()),
        "product_name: {body}"
    );
    let version = body["version"].as_str().expect("version is a string");
    assert!(!version.is_empty(), "version is empty");
    assert!(body["revision"].is_string(), "revision is a string: {body}");
    let process_id = body["process_id"].as_str().expect("process_id is a string");
    assert!(is_uuid(process_id), "process_id is a UUID: {process_id}");
    assert_eq!(resp.header("x-influxdb-build").as_deref(), Some("Core"));
    assert_eq!(resp.header("x-influxdb-version").as_deref(), Some(version));
    let rid = resp.header("request-id").expect("Request-Id header");
    let xrid = resp.header("x-request-id").expect("X-Request-Id header");
    assert_eq!(rid, xrid, "Request-Id and X-Request-Id carry the same id");
    assert!(is_uuid_v7(&rid), "Request-Id is a UUID v7: {rid}");
    (rid, process_id.to_string())
}

#[test]
fn ping_get_and_post_return_version_json_and_headers() {
    let srv = server();
    check_ping(&srv.get("/ping"));
    check_ping(&srv.post("/ping", ""));
}

#[test]
fn ping_request_ids_are_unique_and_process_id_is_stable() {
    let srv = server();
    let mut ids = HashSet::new();
    let mut process_ids = HashSet::new();
    for i in 0..6 {
        let resp = if i % 2 == 0 {
            srv.get("/ping")
        } else {
            srv.post("/ping", "")
        };
        let (rid, pid) = check_ping(&resp);
        assert!(ids.insert(rid.clone()), "request id {rid} repeated");
        process_ids.insert(pid);
    }
    assert_eq!(process_ids.len(), 1, "process_id changed: {process_ids:?}");
}

#[test]
fn ping_other_methods_are_not_found() {
    let srv = server();
    assert_not_found(&srv.request(Method::PUT, "/ping", &[], None));
    assert_not_found(&srv.request(Method::DELETE, "/ping", &[], None));
    let head = srv.request(Method::HEAD, "/ping", &[], None);
    assert_eq!(head.status, 404, "{}", head.describe());
}

// ------------------------------------------------------------------------------------------
// metrics
// ------------------------------------------------------------------------------------------

#[test]
fn metrics_is_prometheus_text_ending_with_eof() {
    let srv = server();
    let resp = srv.get("/metrics");
    assert_eq!(resp.status, 200, "{}", resp.describe());
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.text();
    assert!(text.contains("# HELP "), "no HELP lines:\n{text}");
    assert!(text.contains("# TYPE "), "no TYPE lines:\n{text}");
    assert!(
        text.ends_with("# EOF\n"),
        "does not end with `# EOF\\n`:\n{text}"
    );
    assert_eq!(
        text.matches("# EOF").count(),
        1,
        "more than one `# EOF`:\n{text}"
    );
    // Every non-comment line is `name[{labels}] value`.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = line.rsplit(' ').next().unwrap();
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
            "bad sample line {line:?}"
        );
    }
    assert_not_found(&srv.post("/metrics", ""));
}

/// The value of `influxdb3_write_lines_total{db="<db>"}`, if present.
fn lines_total(metrics: &str, db: &str) -> Option<u64> {
    let prefix = format!("influxdb3_write_lines_total{{db=\"{db}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse::<f64>().expect("numeric sample") as u64)
}

#[test]
fn metrics_count_written_lines_per_database() {
    let srv = server();
    let db_a = unique_name("metrics_a");
    let db_b = unique_name("metrics_b");
    assert_eq!(
        lines_total(&srv.metrics(), &db_a),
        None,
        "no sample before any write"
    );

    srv.write_ok(
        &db_a,
        "m,t=a f=1 1\nm,t=b f=2 2\nm,t=c f=3 3",
        "precision=s",
    );
    let m = srv.metrics();
    assert_eq!(lines_total(&m, &db_a), Some(3), "after 3 lines:\n{m}");

    srv.write_ok(
        &db_a,
        "m,t=d f=4 4\n\n# comment\nm,t=e f=5 5\n",
        "precision=s",
    );
    srv.write_ok(&db_b, "other f=1 1", "precision=s");
    let m = srv.metrics();
    assert_eq!(lines_total(&m, &db_a), Some(5), "after 5 lines:\n{m}");
    assert_eq!(lines_total(&m, &db_b), Some(1), "per database:\n{m}");
}

/// Every histogram in `/metrics` is well formed: its buckets never decrease and the `+Inf`
/// bucket equals `_count` (Prometheus computes quantiles from exactly that).
#[test]
fn metrics_histograms_are_cumulative_and_end_at_count() {
    let srv = server();
    let db = unique_name("histo");
    for i in 0..5 {
        srv.write_ok(&db, format!("m,t=a f={i} {i}"), "precision=s");
    }
    let text = srv.metrics();
    let histograms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" histogram"))
        .collect();
    assert!(
        histograms.contains(&"gnomon_wal_flush_duration_seconds"),
        "WAL flush histogram missing:\n{text}"
    );
    let mut checked = 0;
    for name in histograms {
        // Group bucket lines by their label set minus `le`.
        let mut series: std::collections::BTreeMap<String, Vec<(String, f64)>> = Default::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{")) else {
                continue;
            };
            let (labels, value) = rest.rsplit_once("} ").expect("sample line");
            let mut le = String::new();
            let others: Vec<&str> = labels
                .split(',')
                .filter(|kv| {
                    if let Some(v) = kv.strip_prefix("le=") {
                        le = v.trim_matches('"').to_string();
                        false
                    } else {
                        true
                    }
                })
                .collect();
            series
                .entry(others.join(","))
                .or_default()
                .push((le, value.parse().expect("numeric bucket")));
        }
        for (labels, buckets) in series {
            let counts: Vec<f64> = buckets.iter().map(|b| b.1).collect();
            assert!(
                counts.windows(2).all(|w| w[0] <= w[1]),
                "{name}{{{labels}}} buckets decrease: {buckets:?}"
            );
            let (last_le, inf) = buckets.last().expect("at least one bucket");
            assert_eq!(last_le, "+Inf", "{name}{{{labels}}}: last bucket");
            let count_prefix = if labels.is_empty() {
                format!("{name}_count ")
            } else {
                format!("{name}_count{{{labels}}} ")
            };
            let count: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(&count_prefix))
                .unwrap_or_else(|| panic!("no {count_prefix:?} in\n{text}"))
                .trim()
                .parse()
                .expect("numeric count");
            assert_eq!(*inf, count, "{name}{{{labels}}}: +Inf bucket != count");
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected the WAL and request histograms, checked {checked}"
    );
}

// ------------------------------------------------------------------------------------------
// routing
// ------------------------------------------------------------------------------------------

#[test]
fn unknown_paths_and_wrong_methods_are_plain_404() {
    let srv = server();
    for path in [
        "/",
        "/api/v3/this_route_does_not_exist",
        "/ready",
        "/api/v3/write_lp/",
        "/API/V3/WRITE_LP",
    ] {
        assert_not_found(&srv.get(path));
    }
    // Known paths, unsupported methods.
    assert_not_found(&srv.get("/api/v3/write_lp"));
    assert_not_found(&srv.get("/api/v3/write_lp?db=foo"));
    assert_not_found(&srv.get("/write?db=foo"));
    assert_not_found(&srv.get("/api/v2/write?bucket=foo"));
    assert_not_found(&srv.request(
        Method::PUT,
        "/api/v3/write_lp?db=foo",
        &[],
        Some(b"m f=1".to_vec()),
    ));
    assert_not_found(&srv.request(
        Method::DELETE,
        "/api/v3/query_sql?db=foo&q=SELECT%201",
        &[],
        None,
    ));
    assert_not_found(&srv.request(Method::PUT, "/api/v3/query_sql", &[], Some(b"{}".to_vec())));
    assert_not_found(&srv.request(Method::PATCH, "/metrics", &[], None));
}

#[test]
fn options_preflight_answers_204_with_cors_headers_on_any_path() {
    let srv = server();
    for path in [
        "/api/v3/write_lp",
        "/api/v3/query_sql",
        "/ping",
        "/no/such/path",
    ] {
        let resp = srv.request(
            Method::OPTIONS,
            path,
            &[
                ("Origin", "http://example.com"),
                ("Access-Control-Request-Method", "POST"),
            ],
            None,
        );
        assert_eq!(resp.status, 204, "{}", resp.describe());
        assert!(resp.body.is_empty(), "{}", resp.describe());
        for (name, value) in [
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "*"),
            ("access-control-allow-headers", "*"),
            ("access-control-max-age", "86400"),
        ] {
            assert_eq!(
                resp.header(name).as_deref(),
                Some(value),
                "{path}: header {name}\n{}",
                resp.describe()
            );
        }
    }
}

#[test]
fn cluster_uuid_is_present_on_every_response_and_stable() {
    let srv = server();
    let db = unique_name("uuid");
    let responses = vec![
        srv.get("/health"),
        srv.get("/api/v1/health"),
        srv.get("/ping"),
        srv.get("/metrics"),
        srv.get("/nope"),
        srv.get("/api/v3/write_lp"),
        srv.request(Method::OPTIONS, "/api/v3/write_lp", &[], None),
        srv.write_lp(&db, "m f=1 1", "precision=s"),
        srv.write_lp(&db, "m f= 1", "precision=s"),
        srv.write_lp(&db, "", ""),
        srv.query_sql(&db, "SELECT f FROM m", "json"),
        srv.query_sql(&unique_name("missing"), "SELECT 1", "json"),
        srv.write_v1(&format!("db={db}"), "m f=2 2"),
        srv.write_v2(&format!("bucket={db}"), "m f=3 3"),
        srv.write_v2("", "m f=3 3"),
    ];
    let mut seen = HashSet::new();
    let mut without = Vec::new();
    for resp in &responses {
        match resp.header("cluster-uuid") {
            Some(value) => {
                assert!(is_uuid(&value), "cluster-uuid is not a UUID: {value:?}");
                seen.insert(value);
            }
            None => without.push(format!("{} -> {}", resp.request, resp.status)),
        }
    }
    assert_eq!(
        seen.len(),
        1,
        "cluster-uuid differs between responses: {seen:?}"
    );
    assert!(
        without.is_empty(),
        "responses without a cluster-uuid header: {without:#?}"
    );
}
