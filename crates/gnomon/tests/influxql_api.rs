//! Black-box tests of InfluxQL over HTTP: the v1 `/query` endpoint (INFLUXQL.md §4–§8) and
//! `/api/v3/query_influxql` (API.md §3).

mod common;

use std::sync::OnceLock;

use common::{unique_name, Server};
use reqwest::Method;

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    Server::shared(&SERVER, &[])
}

/// A database with `cpu` (tags host, region; field usage) and `mem` (host; free integer).
fn data_db() -> String {
    let db = unique_name("iql");
    server().write_ok(
        &db,
        "cpu,host=a,region=us usage=0.5 1700000000\n\
         cpu,host=b,region=us usage=1.5 1700000001\n\
         cpu,host=a,region=eu usage=2.5 1700000002\n\
         cpu,host=b,region=eu usage=3.5 1700000061\n\
         mem,host=a free=100i 1700000003\n",
        "precision=second",
    );
    db
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn v1(db: &str, q: &str, extra: &str) -> common::Resp {
    server().get(&format!("/query?db={}&q={}{extra}", enc(db), enc(q)))
}

#[track_caller]
fn v1_text(db: &str, q: &str, extra: &str) -> String {
    let r = v1(db, q, extra);
    assert_eq!(r.status, 200, "{}", r.describe());
    r.text()
}

#[test]
fn select_raw_fields() {
    let db = data_db();
    assert_eq!(
        v1_text(&db, "SELECT usage FROM cpu WHERE time < 1700000060s", ""),
        r#"{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[["2023-11-14T22:13:20Z",0.5],["2023-11-14T22:13:21Z",1.5],["2023-11-14T22:13:22Z",2.5]]}]}]}"#
    );
}

#[test]
fn group_by_tag_and_epoch() {
    let db = data_db();
    assert_eq!(
        v1_text(
            &db,
            "SELECT usage FROM cpu WHERE region = 'us' GROUP BY host",
            "&epoch=s"
        ),
        r#"{"results":[{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"a"},"columns":["time","usage"],"values":[[1700000000,0.5]]},{"name":"cpu","tags":{"host":"b"},"columns":["time","usage"],"values":[[1700000001,1.5]]}]}]}"#
    );
}

#[test]
fn aggregates_with_windows_and_default_fill() {
    let db = data_db();
    assert_eq!(
        v1_text(
            &db,
            "SELECT count(usage), mean(usage) FROM cpu WHERE time >= 1700000000s AND time < 1700000160s GROUP BY time(1m)",
            "&epoch=s"
        ),
        r#"{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","count","mean"],"values":[[1699999980,3,1.5],[1700000040,1,3.5],[1700000100,0,null]]}]}]}"#
    );
}

#[test]
fn several_statements_and_an_error_in_between() {
    let db = data_db();
    assert_eq!(
        v1_text(
            &db,
            "SELECT free FROM mem; SELECT count(usage), usage FROM cpu; SHOW MEASUREMENTS",
            "&epoch=s"
        ),
        r#"{"results":[{"statement_id":0,"series":[{"name":"mem","columns":["time","free"],"values":[[1700000003,100]]}]},{"statement_id":1,"error":"datafusion error: Error during planning: mixing aggregate and non-aggregate columns is not supported"},{"statement_id":2,"series":[{"name":"measurements","columns":["name"],"values":[["cpu"],["mem"]]}]}]}"#
    );
}

#[test]
fn parse_error_is_a_200_with_the_error() {
    let db = data_db();
    assert_eq!(
        v1_text(&db, "SHOW SERIES", ""),
        r#"{"results":[{"statement_id":0,"error":"error in InfluxQL statement: parsing error: invalid SHOW statement, expected DATABASES, FIELD KEYS, MEASUREMENTS, TAG KEYS, TAG VALUES, or RETENTION POLICIES following SHOW at pos 5"}]}"#
    );
}

#[test]
fn show_metadata() {
    let db = data_db();
    assert_eq!(
        v1_text(
            &db,
            "SHOW TAG VALUES FROM cpu WITH KEY IN (host, region) WHERE host = 'a'",
            ""
        ),
        r#"{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["key","value"],"values":[["host","a"],["region","eu"],["region","us"]]}]}]}"#
    );
    assert_eq!(
        v1_text(&db, "SHOW FIELD KEYS; SHOW TAG KEYS FROM mem", ""),
        r#"{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["fieldKey","fieldType"],"values":[["usage","float"]]},{"name":"mem","columns":["fieldKey","fieldType"],"values":[["free","integer"]]}]},{"statement_id":1,"series":[{"name":"mem","columns":["tagKey"],"values":[["host"]]}]}]}"#
    );
    assert_eq!(
        v1_text(&db, &format!("SHOW RETENTION POLICIES ON \"{db}\""), ""),
        format!(
            r#"{{"results":[{{"statement_id":0,"series":[{{"name":"retention_policies","columns":["name","duration","default"],"values":[["{db}","0s",true]]}}]}}]}}"#
        )
    );
}

#[test]
fn chunked_and_csv() {
    let db = data_db();
    assert_eq!(
        v1_text(
            &db,
            "SELECT usage FROM cpu WHERE host = 'a'",
            "&epoch=s&chunked=true&chunk_size=1"
        ),
        concat!(
            r#"{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[[1700000000,0.5]],"partial":true}],"partial":true}]}"#,
            r#"{"results":[{"statement_id":0,"series":[{"name":"cpu","columns":["time","usage"],"values":[[1700000002,2.5]]}]}]}"#
        )
    );
    let r = server().request(
        Method::GET,
        &format!(
            "/query?db={}&q={}",
            enc(&db),
            enc("SELECT usage FROM cpu WHERE host = 'b'")
        ),
        &[("Accept", "text/csv")],
        None,
    );
    assert_eq!(r.header("content-type").as_deref(), Some("application/csv"));
    assert_eq!(
        r.text(),
        "name,tags,time,usage\ncpu,,1700000001000000000,1.5\ncpu,,1700000061000000000,3.5\n"
    );
}

#[test]
fn request_errors() {
    let r = server().get("/query");
    assert_eq!(
        (r.status, r.text()),
        (
            400,
            r#"{"error":"missing query parameters 'db' and 'q'"}"#.into()
        )
    );
    let r = server().get("/query?db=x");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        r#"{"error":"expected a query to be provided in the query string or body"}"#
    );
    let r = server().post_with("/query?db=x", &[("Content-Type", "application/json")], "{}");
    assert_eq!(
        (r.status, r.text()),
        (
            400,
            r#"{"error":"invalid mime type (application/json)"}"#.into()
        )
    );
    let r = server().get("/query?db=x&q=SHOW%20DATABASES&epoch=us");
    assert_eq!(r.status, 400, "{}", r.describe());
}

#[test]
fn post_raw_query_body() {
    let db = data_db();
    let r = server().post_with(
        &format!("/query?db={}&epoch=s", enc(&db)),
        &[("Content-Type", "application/vnd.influxql")],
        "SELECT free FROM mem",
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.text(),
        r#"{"results":[{"statement_id":0,"series":[{"name":"mem","columns":["time","free"],"values":[[1700000003,100]]}]}]}"#
    );
}

#[test]
fn v3_endpoint_formats_and_errors() {
    let db = data_db();
    let r = server().get(&format!(
        "/api/v3/query_influxql?db={}&format=jsonl&q={}",
        enc(&db),
        enc("SELECT free FROM mem")
    ));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.text(),
        "{\"iox::measurement\":\"mem\",\"time\":\"2023-11-14T22:13:23\",\"free\":100}\n"
    );
    let r = server().get(&format!(
        "/api/v3/query_influxql?db={}&q={}",
        enc(&db),
        enc("SELECT usage FROM cpu SLIMIT 1")
    ));
    assert_eq!(
        (r.status, r.text()),
        (
            405,
            "This feature is not implemented: SLIMIT or SOFFSET".into()
        )
    );
    let r = server().get(&format!(
        "/api/v3/query_influxql?q={}",
        enc("SELECT usage FROM cpu")
    ));
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("must specify a 'db' parameter"),
        "{}",
        r.describe()
    );
}

#[test]
fn explain_shows_the_plans_and_analyze_runs_them() {
    let db = data_db();
    let q = "SELECT mean(usage) FROM cpu WHERE host = 'a' AND time >= 1700000000s \
             AND time < 1700000100s GROUP BY time(1m)";
    let plans = |q: &str| -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(&v1_text(&db, q, "")).unwrap();
        let series = &v["results"][0]["series"][0];
        assert_eq!(series["name"], "explain", "{v}");
        assert_eq!(
            series["columns"],
            serde_json::json!(["plan_type", "plan"]),
            "{v}"
        );
        series["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
            .collect()
    };
    let explained = plans(&format!("EXPLAIN {q}"));
    let kinds: Vec<&str> = explained.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["logical_plan", "physical_plan"]);
    // The tag condition is evaluated before the time bounds (see `scan` in the planner).
    let physical = &explained[1].1;
    let filter = physical
        .lines()
        .find(|l| l.contains("FilterExec") && l.contains("host@"))
        .unwrap_or_else(|| panic!("no scan filter in\n{physical}"));
    assert!(
        filter.find("host@") < filter.find("time@"),
        "tag condition should come first: {filter}"
    );
    let analyzed = plans(&format!("EXPLAIN ANALYZE {q}"));
    assert!(
        analyzed.iter().any(|(_, p)| p.contains("output_rows")),
        "{analyzed:?}"
    );
}
