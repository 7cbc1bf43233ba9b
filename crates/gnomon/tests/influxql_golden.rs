//! The InfluxQL golden set: queries whose expected v1 JSON was recorded from a real InfluxDB
//! 1.x server on the same data (`scripts/record_influxql_golden.py` writes
//! `tests/golden/influxql_v1.json`). Each answer must match exactly, except the few listed in
//! `known_difference`, each with its reason and its own check.

mod common;

use common::Server;
use serde_json::Value;

const GOLDEN: &str = include_str!("golden/influxql_v1.json");

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

/// Where Gnomon deliberately answers differently from InfluxDB 1.x: checks `got` and returns
/// true if `q` is one of those cases.
fn known_difference(q: &str, expected: &Value, got: &Value) -> bool {
    if q == "SELECT count(usage), usage FROM cpu" {
        // INFLUXQL.md words this error as InfluxDB 3 does ("columns", not 1.x's "queries").
        let err = got["results"][0]["error"].as_str().unwrap_or_default();
        assert!(
            err.contains("mixing aggregate and non-aggregate columns is not supported"),
            "{got}"
        );
        return true;
    }
    if let Some(want) = expected["results"][0]["error"].as_str() {
        if q.contains("ORDER BY time DESC)") {
            // Planning errors carry the "datafusion error: Error during planning: " prefix, as
            // in InfluxDB 3; the message itself is 1.x's.
            let err = got["results"][0]["error"].as_str().unwrap_or_default();
            assert!(err.ends_with(want), "{got}");
            return true;
        }
    }
    if q.starts_with("SELECT integral(") && (q.contains(", host") || q.ends_with("GROUP BY host")) {
        // 1.x lists integral's series in the order its stream iterator finishes windows, a
        // series more than once when they interleave; Gnomon gives each series once, sorted
        // by tags, as for every other query. Same series, same windows, same values.
        let merged = |v: &Value| {
            let mut by_key: std::collections::BTreeMap<String, (Value, Vec<Value>)> =
                Default::default();
            for s in v["results"][0]["series"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let key = format!("{}{}", s["name"], s["tags"]);
                let entry = by_key.entry(key).or_insert_with(|| (s.clone(), Vec::new()));
                entry
                    .1
                    .extend(s["values"].as_array().cloned().unwrap_or_default());
            }
            by_key
                .into_values()
                .map(|(mut s, mut values)| {
                    values.sort_by_key(|r| r[0].as_i64());
                    s["values"] = Value::Array(values);
                    s
                })
                .collect::<Vec<_>>()
        };
        assert!(!merged(got).is_empty(), "{got}");
        assert_eq!(merged(expected), merged(got), "{got}");
        return true;
    }
    if q.starts_with("SELECT difference(max(usage))") && q.ends_with("fill(0)") {
        // 1.x also fills the window before the first one, so its first window gets a
        // difference against 0; Gnomon's windows start at the query's lower bound.
        let exp = expected["results"][0]["series"][0]["values"]
            .as_array()
            .unwrap();
        let ours = got["results"][0]["series"][0]["values"].as_array().unwrap();
        assert_eq!(&exp[1..], &ours[..], "{got}");
        return true;
    }
    false
}

#[test]
fn answers_match_influxdb_1x() {
    let golden: Value = serde_json::from_str(GOLDEN).unwrap();
    let server = Server::start(&[]);
    let data = golden["data"].as_str().unwrap();
    let resp = server.post("/write?db=golden&precision=s", data);
    assert_eq!(resp.status, 204, "{}", resp.describe());
    // tz() cases across changes of UTC offset read their own database.
    let resp = server.post(
        "/write?db=dst&precision=s",
        golden["data_dst"].as_str().unwrap(),
    );
    assert_eq!(resp.status, 204, "{}", resp.describe());
    let cases = golden["cases"].as_array().unwrap();
    assert!(
        cases.len() >= 80,
        "the golden set has {} queries",
        cases.len()
    );
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for case in cases {
        let q = case["q"].as_str().unwrap();
        // `params` overrides the default `epoch=s` (null: no epoch, times as RFC 3339).
        let epoch = match case.get("params").and_then(|p| p.get("epoch")) {
            Some(Value::Null) => String::new(),
            Some(e) => format!("&epoch={}", e.as_str().unwrap()),
            None => "&epoch=s".to_string(),
        };
        let db = case
            .get("params")
            .and_then(|p| p.get("db"))
            .and_then(Value::as_str)
            .unwrap_or("golden");
        let resp = server.get(&format!("/query?db={db}{epoch}&q={}", enc(q)));
        assert_eq!(resp.status, 200, "{q}: {}", resp.describe());
        let got: Value = serde_json::from_slice(&resp.body).unwrap();
        if known_difference(q, &case["expected"], &got) {
            continue;
        }
        compared += 1;
        if got != case["expected"] {
            mismatches.push(format!(
                "{q}\n  InfluxDB 1.x: {}\n  Gnomon:       {got}",
                case["expected"]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {compared} differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
