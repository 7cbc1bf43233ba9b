//! The query engine's shortcuts over series-sorted data give the answers of the plain
//! definitions: reading only the rows of the tags a query pins (`series_ranges`), and
//! partial aggregation by runs of equal group keys (`run_aggregate`). The expected answers
//! are computed here, in Rust, from the rows written.

mod common;

use std::collections::BTreeMap;

use common::{chrono_like, Server};
use serde_json::Value;

const NS: i64 = 1_000_000_000;

/// One generated row: host, region, time (s), u (float), n (integer, sometimes missing).
#[derive(Clone, Debug)]
struct Row {
    host: String,
    region: Option<&'static str>,
    t: i64,
    u: f64,
    n: Option<i64>,
}

/// 12 hosts × 2 hours at 10 s, written as three bodies (the middle one out of time order),
/// the first two persisted to files, the last kept in the buffer.
fn rows() -> Vec<Row> {
    let mut out = Vec::new();
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as i64
    };
    for h in 0..12 {
        for step in 0..720 {
            let r = next();
            out.push(Row {
                host: format!("host_{h}"),
                // Host 11 has no region: a null group key.
                region: (h != 11).then_some(if h % 3 == 0 { "east" } else { "west" }),
                t: 1_700_000_000 + step * 10,
                u: (r % 1000) as f64 / 10.0,
                n: (r % 7 != 0).then_some(r % 100),
            });
        }
    }
    out
}

fn line(r: &Row) -> String {
    let region = r.region.map(|g| format!(",region={g}")).unwrap_or_default();
    let n = r.n.map(|n| format!(",n={n}i")).unwrap_or_default();
    format!("cpu,host={}{region} u={}{n} {}", r.host, r.u, r.t)
}

fn setup() -> (Server, String, Vec<Row>) {
    setup_with(&[])
}

fn setup_with(args: &[&str]) -> (Server, String, Vec<Row>) {
    let server = Server::start(args);
    let db = "paths".to_string();
    let all = rows();
    let (early, late): (Vec<&Row>, Vec<&Row>) = all.iter().partition(|r| r.t < 1_700_003_600);
    let (late_a, late_b): (Vec<&Row>, Vec<&Row>) = late.iter().partition(|r| r.t < 1_700_006_000);
    for (part, persist) in [(&late_a, true), (&early, true), (&late_b, false)] {
        let body: Vec<String> = part.iter().map(|r| line(r)).collect();
        server.write_ok(&db, body.join("\n"), "precision=s");
        if persist {
            server
                .post("/api/v3/gnomon/snapshot", "")
                .expect_status(200);
        }
    }
    (server, db, all)
}

fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().map(round)
}

#[test]
fn shortcuts_answer_as_the_definitions() {
    let (server, db, all) = setup();
    let files = server.sql(&db, "SELECT count(*) AS c FROM system.parquet_files");
    assert!(
        files[0]["c"].as_i64().unwrap() >= 2,
        "the data is partly persisted: {files:?}"
    );

    // --- Tag pinning: =, IN, OR, combined with another tag and a time range.
    type Keep<'a> = Box<dyn Fn(&Row) -> bool + 'a>;
    let pinned: &[(&str, Keep)] = &[
        ("host = 'host_3'", Box::new(|r: &Row| r.host == "host_3")),
        (
            "host IN ('host_1', 'host_10', 'nope')",
            Box::new(|r: &Row| r.host == "host_1" || r.host == "host_10"),
        ),
        (
            "(host = 'host_2' OR host = 'host_11') AND time >= '2023-11-14T22:30:00Z' \
             AND time < '2023-11-14T23:50:00Z'",
            Box::new(|r: &Row| {
                (r.host == "host_2" || r.host == "host_11")
                    && (1_700_001_000..1_700_005_800).contains(&r.t)
            }),
        ),
        (
            "host = 'host_4' AND region = 'east'",
            Box::new(|r: &Row| r.host == "host_4" && r.region == Some("east")),
        ),
        ("host = 'absent'", Box::new(|_: &Row| false)),
    ];
    for (filter, keep) in pinned {
        let got = server.sql(
            &db,
            &format!(
                "SELECT host, CAST(time AS BIGINT) AS t, u FROM cpu WHERE {filter} \
                 ORDER BY host, time"
            ),
        );
        let mut want: Vec<&Row> = all.iter().filter(|r| keep(r)).collect();
        want.sort_by(|a, b| (&a.host, a.t).cmp(&(&b.host, b.t)));
        let got: Vec<(String, i64, f64)> = got
            .iter()
            .map(|r| {
                (
                    r["host"].as_str().unwrap().to_string(),
                    r["t"].as_i64().unwrap(),
                    r["u"].as_f64().unwrap(),
                )
            })
            .collect();
        let want: Vec<(String, i64, f64)> = want
            .iter()
            .map(|r| (r.host.clone(), r.t * NS, r.u))
            .collect();
        assert_eq!(got, want, "{filter}");
    }

    // --- Aggregation by runs: buckets × tags, with a null group key, a filter clause,
    // integers with missing values, and the plan really uses the run aggregate.
    let q = "SELECT date_bin(INTERVAL '10 minutes', time) AS b, host, region, \
             avg(u) AS a, min(u) AS lo, max(u) AS hi, sum(n) AS s, count(n) AS c, \
             count(*) AS rows, max(u) FILTER (WHERE n > 50) AS hi50, \
             avg(n) AS an, min(n) AS ln, max(n) AS hn \
             FROM cpu WHERE time >= '2023-11-14T22:20:00Z' \
             GROUP BY 1, 2, 3 ORDER BY 2, 1";
    let plan = server.sql_plan(&db, q);
    assert!(plan.contains("RunAggregateExec"), "{plan}");
    let got = server.sql(&db, q);
    #[derive(Default)]
    struct Acc {
        sum: f64,
        count: usize,
        lo: f64,
        hi: f64,
        n_sum: i64,
        n_count: usize,
        hi50: Option<f64>,
        n_lo: Option<i64>,
        n_hi: Option<i64>,
    }
    let mut groups: BTreeMap<(String, i64), (Option<&str>, Acc)> = BTreeMap::new();
    for r in all.iter().filter(|r| r.t >= 1_700_000_400) {
        let bucket = r.t - r.t.rem_euclid(600);
        let (_, acc) = groups.entry((r.host.clone(), bucket)).or_insert_with(|| {
            (
                r.region,
                Acc {
                    lo: f64::MAX,
                    hi: f64::MIN,
                    ..Acc::default()
                },
            )
        });
        acc.sum += r.u;
        acc.count += 1;
        acc.lo = acc.lo.min(r.u);
        acc.hi = acc.hi.max(r.u);
        if let Some(n) = r.n {
            acc.n_sum += n;
            acc.n_count += 1;
            acc.n_lo = Some(acc.n_lo.map_or(n, |m| m.min(n)));
            acc.n_hi = Some(acc.n_hi.map_or(n, |m| m.max(n)));
            if n > 50 {
                acc.hi50 = Some(acc.hi50.map_or(r.u, |h| h.max(r.u)));
            }
        }
    }
    assert_eq!(got.len(), groups.len());
    for (row, ((host, bucket), (region, acc))) in got.iter().zip(&groups) {
        let context = format!("{row}");
        assert_eq!(row["host"].as_str(), Some(host.as_str()), "{context}");
        assert_eq!(row["region"].as_str(), *region, "{context}");
        let b = row["b"].as_str().unwrap();
        let expected_b = chrono_like(*bucket);
        assert_eq!(b, expected_b, "{context}");
        assert_eq!(
            num(&row["a"]),
            Some(round(acc.sum / acc.count as f64)),
            "{context}"
        );
        assert_eq!(num(&row["lo"]), Some(round(acc.lo)), "{context}");
        assert_eq!(num(&row["hi"]), Some(round(acc.hi)), "{context}");
        assert_eq!(row["s"].as_i64(), Some(acc.n_sum), "{context}");
        assert_eq!(row["c"].as_u64(), Some(acc.n_count as u64), "{context}");
        assert_eq!(row["rows"].as_u64(), Some(acc.count as u64), "{context}");
        assert_eq!(num(&row["hi50"]), acc.hi50.map(round), "{context}");
        assert_eq!(
            num(&row["an"]),
            (acc.n_count > 0).then(|| round(acc.n_sum as f64 / acc.n_count as f64)),
            "{context}"
        );
        assert_eq!(row["ln"].as_i64(), acc.n_lo, "{context}");
        assert_eq!(row["hn"].as_i64(), acc.n_hi, "{context}");
    }

    // Runs of one row each (10 s buckets of one host), so a run without an integer value
    // has null states: the aggregates of that bucket are null, its count 0.
    let q = "SELECT date_bin(INTERVAL '10 seconds', time) AS b, host, avg(n) AS an, \
             min(n) AS ln, max(n) AS hn, sum(n) AS sn, count(n) AS cn, avg(u) AS au \
             FROM cpu WHERE host = 'host_5' GROUP BY 1, 2 ORDER BY 1";
    assert!(server.sql_plan(&db, q).contains("RunAggregateExec"));
    let got = server.sql(&db, q);
    let mut want: Vec<&Row> = all.iter().filter(|r| r.host == "host_5").collect();
    want.sort_by_key(|r| r.t);
    assert_eq!(got.len(), want.len());
    assert!(want.iter().any(|r| r.n.is_none()) && want.iter().any(|r| r.n.is_some()));
    for (row, r) in got.iter().zip(&want) {
        let context = format!("{row}");
        assert_eq!(
            row["b"].as_str(),
            Some(chrono_like(r.t).as_str()),
            "{context}"
        );
        assert_eq!(num(&row["an"]), r.n.map(|n| n as f64), "{context}");
        assert_eq!(row["ln"].as_i64(), r.n, "{context}");
        assert_eq!(row["hn"].as_i64(), r.n, "{context}");
        assert_eq!(row["sn"].as_i64(), r.n, "{context}");
        assert_eq!(
            row["cn"].as_i64(),
            Some(i64::from(r.n.is_some())),
            "{context}"
        );
        assert_eq!(num(&row["au"]), Some(round(r.u)), "{context}");
    }

    // Grouped by time alone (runs of one series and bucket) and by a tag alone.
    let per_bucket = server.sql(
        &db,
        "SELECT date_bin(INTERVAL '1 minute', time) AS b, max(u) AS hi FROM cpu \
         GROUP BY 1 ORDER BY 1 DESC LIMIT 3",
    );
    let mut maxima: BTreeMap<i64, f64> = BTreeMap::new();
    for r in &all {
        let m = maxima.entry(r.t - r.t.rem_euclid(60)).or_insert(f64::MIN);
        *m = m.max(r.u);
    }
    let want: Vec<(String, f64)> = maxima
        .iter()
        .rev()
        .take(3)
        .map(|(b, m)| (chrono_like(*b), *m))
        .collect();
    let got: Vec<(String, f64)> = per_bucket
        .iter()
        .map(|r| {
            (
                r["b"].as_str().unwrap().to_string(),
                r["hi"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    let per_region = server.sql(
        &db,
        "SELECT region, count(*) AS c FROM cpu GROUP BY region ORDER BY region NULLS LAST",
    );
    let count = |g: Option<&str>| all.iter().filter(|r| r.region == g).count() as u64;
    let got: Vec<(Option<&str>, u64)> = per_region
        .iter()
        .map(|r| (r["region"].as_str(), r["c"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("east"), count(Some("east"))),
            (Some("west"), count(Some("west"))),
            (None, count(None)),
        ]
    );
}

/// A time range cutting into a file: the scan decodes only the rows inside it (the file's
/// times are evenly spaced runs per series), not every row of the file for the filter to
/// drop. A grouped aggregate over all series goes through DataFusion's scan, not the direct
/// path.
#[test]
fn a_time_range_inside_a_file_decodes_only_its_rows() {
    let (server, db, all) = setup();
    // One minute of the first (persisted) hour, all 12 hosts: 72 rows of the file's 4320.
    let (from, to) = (1_700_001_000, 1_700_001_060);
    let q = format!(
        "SELECT host, max(u) AS hi, count(*) AS c FROM cpu \
         WHERE time >= '{}' AND time < '{}' GROUP BY host ORDER BY host",
        chrono_like(from),
        chrono_like(to)
    );
    let inside: Vec<&Row> = all.iter().filter(|r| (from..to).contains(&r.t)).collect();
    assert_eq!(inside.len(), 72);
    let mut want: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
    for r in &inside {
        let (hi, c) = want.entry(&r.host).or_insert((f64::MIN, 0));
        *hi = hi.max(r.u);
        *c += 1;
    }
    let got = server.sql(&db, &q);
    let got: BTreeMap<&str, (f64, u64)> = got
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap(),
                (r["hi"].as_f64().unwrap(), r["c"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(got, want);

    let analyzed = server.sql_plan(&db, &format!("ANALYZE {q}"));
    let scan = analyzed
        .lines()
        .find(|l| l.contains("DataSourceExec") && l.contains(".parquet"))
        .unwrap_or_else(|| panic!("no file scan in {analyzed}"));
    assert!(
        scan.contains("output_rows=72,"),
        "the scan decoded rows outside the range: {scan}"
    );
}

#[test]
fn the_newest_row_per_tag_reads_newest_sources_first() {
    let (server, db, mut all) = setup();
    // A host that stopped early (its newest row is in the oldest file), and a late write
    // into the first file's time range for another host (merged with that file).
    server.write_ok(
        &db,
        "cpu,host=gone,region=east u=1.5 1700000100\ncpu,host=host_5,region=west u=99 1700000050",
        "precision=s",
    );
    all.push(Row {
        host: "gone".into(),
        region: Some("east"),
        t: 1_700_000_100,
        u: 1.5,
        n: None,
    });
    let q = "SELECT host, CAST(time AS BIGINT) AS t, u FROM (SELECT *, row_number() OVER \
             (PARTITION BY host ORDER BY time DESC) AS rn FROM cpu) AS w WHERE rn = 1 \
             ORDER BY host";
    let plan = server.sql_plan(&db, q);
    assert!(plan.contains("newest_first"), "{plan}");
    let mut newest: BTreeMap<&str, (i64, f64)> = BTreeMap::new();
    for r in &all {
        let e = newest.entry(&r.host).or_insert((i64::MIN, 0.0));
        if r.t > e.0 {
            *e = (r.t, r.u);
        }
    }
    let want: Vec<(String, i64, f64)> = newest
        .iter()
        .map(|(h, (t, u))| (h.to_string(), t * NS, *u))
        .collect();
    let check = |server: &Server| {
        let got: Vec<(String, i64, f64)> = server
            .sql(&db, q)
            .iter()
            .map(|r| {
                (
                    r["host"].as_str().unwrap().to_string(),
                    r["t"].as_i64().unwrap(),
                    r["u"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want);
    };
    check(&server);

    // The newest buckets below an upper bound: a window of `LIMIT` buckets is enough for
    // dense data; a host with one old row needs the window widened several times; a limit
    // past the data falls back to the whole range.
    let latest = |filter: &str, upper: i64, limit: usize| -> Vec<(String, f64)> {
        server
            .sql(
                &db,
                &format!(
                    "SELECT date_bin(INTERVAL '1 minute', time) AS b, max(u) AS hi FROM cpu \
                     WHERE {filter} time >= '2023-11-14T22:00:00Z' AND time < {upper} * 1000000000 \
                     GROUP BY 1 ORDER BY 1 DESC LIMIT {limit}"
                )
                .replace(
                    &format!("{upper} * 1000000000"),
                    &format!("to_timestamp_seconds({upper})"),
                ),
            )
            .iter()
            .map(|r| {
                (
                    r["b"].as_str().unwrap().to_string(),
                    r["hi"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let expected = |host: Option<&str>, upper: i64, limit: usize| -> Vec<(String, f64)> {
        let mut maxima: BTreeMap<i64, f64> = BTreeMap::new();
        for r in all
            .iter()
            .filter(|r| r.t < upper && host.is_none_or(|h| r.host == h))
        {
            let m = maxima.entry(r.t - r.t.rem_euclid(60)).or_insert(f64::MIN);
            *m = m.max(r.u);
        }
        maxima
            .iter()
            .rev()
            .take(limit)
            .map(|(b, m)| (chrono_like(*b), *m))
            .collect()
    };
    for (upper, limit) in [(1_700_003_030, 4), (1_700_006_000, 1), (1_700_001_000, 500)] {
        assert_eq!(
            latest("", upper, limit),
            expected(None, upper, limit),
            "{upper} {limit}"
        );
    }
    assert_eq!(
        latest("host = 'gone' AND", 1_700_006_000, 1),
        expected(Some("gone"), 1_700_006_000, 1)
    );
    assert_eq!(latest("host = 'gone' AND", 1_700_006_000, 1).len(), 1);

    // The same after everything is persisted and compacted into files with series tails.
    server
        .post("/api/v3/gnomon/snapshot", "")
        .expect_status(200);
    server.post("/api/v3/gnomon/compact", "").expect_status(200);
    check(&server);
}

/// Repeated query shapes run from a cached plan with each query's own values bound
/// (`plan_cache`): every run of a shape, with other hosts and windows, still gives the
/// definition's answer, and a schema change is seen by the next query of a cached shape.
#[test]
fn repeated_shapes_bind_each_querys_values() {
    type Keep<'a> = Box<dyn Fn(&Row) -> bool + 'a>;
    let (server, db, all) = setup_with(&["--log-filter", "info,gnomon_query=debug"]);
    let windows = [
        (1_700_000_000, 1_700_000_600),
        (1_700_003_000, 1_700_004_200),
        (1_700_005_990, 1_700_007_200),
        (1_700_007_000, 1_700_000_000), // empty: the start is after the end
    ];
    // Run each shape more times than it takes to cache it (the second sighting), with
    // different values each time.
    for run in 0..8 {
        let (t0, t1) = windows[run % windows.len()];
        let (a, b) = (
            format!("host_{}", run % 12),
            format!("host_{}", (run * 5 + 3) % 12),
        );
        let shapes: [(String, Keep); 3] = [
            (format!("host = '{a}'"), Box::new(|r: &Row| r.host == a)),
            (
                format!("(host = '{a}' OR host = '{b}')"),
                Box::new(|r: &Row| r.host == a || r.host == b),
            ),
            (
                format!("host IN ('{a}', '{b}', 'nope')"),
                Box::new(|r: &Row| r.host == a || r.host == b),
            ),
        ];
        for (pin, keep) in &shapes {
            let sql = format!(
                "SELECT count(*) AS c, max(u) AS m, sum(n) AS s FROM cpu WHERE {pin} \
                 AND time >= '{}' AND time < '{}'",
                chrono_like(t0),
                chrono_like(t1)
            );
            let got = server.sql(&db, &sql);
            let rows: Vec<&Row> = all
                .iter()
                .filter(|r| keep(r) && (t0..t1).contains(&r.t))
                .collect();
            let max = rows
                .iter()
                .map(|r| r.u)
                .fold(None, |m: Option<f64>, u| Some(m.map_or(u, |m| m.max(u))));
            let sum = rows
                .iter()
                .filter_map(|r| r.n)
                .fold(None, |s: Option<i64>, n| Some(s.unwrap_or(0) + n));
            assert_eq!(got[0]["c"].as_i64(), Some(rows.len() as i64), "{sql}");
            assert_eq!(num(&got[0]["m"]), max.map(round), "{sql}");
            assert_eq!(got[0]["s"].as_i64(), sum, "{sql}");
        }
    }
    // The shapes above were served from cached plans (the debug events say so), so the
    // answers checked were the bound plans' answers.
    let log = server.log();
    assert_eq!(
        log.matches("query shape planned cached=true").count(),
        3,
        "three shapes cached:\n{log}"
    );
    assert!(log.contains("cached_plan=true"), "{log}");

    // A cached `SELECT *` shape sees a column added afterwards.
    let star = |host: &str| {
        server.sql(
            &db,
            &format!("SELECT * FROM cpu WHERE host = '{host}' ORDER BY time DESC LIMIT 1"),
        )
    };
    for h in 0..3 {
        assert!(star(&format!("host_{h}"))[0].get("extra").is_none());
    }
    server.write_ok(&db, "cpu,host=host_1 extra=5i 1700007300", "precision=s");
    let got = star("host_1");
    assert_eq!(got[0]["extra"].as_i64(), Some(5), "{got:?}");
}

/// `--datafusion-config` and `--num-datafusion-threads` reach every query's session; a key
/// DataFusion does not know stops the server at start-up, naming it.
#[test]
fn datafusion_options_are_applied_or_refused_at_start_up() {
    let server = Server::start(&[
        "--datafusion-config",
        "execution.batch_size:7,optimizer.max_passes:2",
        "--num-datafusion-threads",
        "1",
    ]);
    let db = "options";
    server.write_ok(db, "m,t=a v=1 1\nm,t=b v=2 2", "precision=s");
    let got = server.sql(
        db,
        "SELECT name, value FROM information_schema.df_settings \
         WHERE name IN ('datafusion.execution.batch_size', 'datafusion.execution.target_partitions') \
         ORDER BY name",
    );
    assert_eq!(got[0]["value"].as_str(), Some("7"), "{got:?}");
    assert_eq!(got[1]["value"].as_str(), Some("1"), "{got:?}");
    assert_eq!(server.sql(db, "SELECT count(*) AS c FROM m")[0]["c"], 2);

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args(["serve", "--http-bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(["--datafusion-config", "optimizer.no_such_option:1"])
        .env_remove("GNOMON_DATAFUSION_CONFIG")
        .output()
        .expect("running gnomon");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_option"), "{stderr}");
}

/// Persisted files are read in place from the local store even when their object paths need
/// escaping (a node id with a space and a percent sign): the store's own mapping finds them.
#[test]
fn files_under_an_escaped_node_id_are_read() {
    let server = Server::start(&["--node-id", "node one%"]);
    let db = "escaped";
    server.write_ok(db, "m,t=a v=1 1\nm,t=b v=2 2", "precision=s");
    server
        .post("/api/v3/gnomon/snapshot", "")
        .expect_status(200);
    let files = server.sql(db, "SELECT path FROM system.parquet_files");
    assert_eq!(files.len(), 1, "{files:?}");
    let got = server.sql(db, "SELECT t, v FROM m ORDER BY t");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["v"].as_f64(), Some(2.0));

    // Compaction reads both files of the chunk back and deletes them.
    server.write_ok(db, "m,t=c v=3 3", "precision=s");
    server
        .post("/api/v3/gnomon/snapshot", "")
        .expect_status(200);
    server.post("/api/v3/gnomon/compact", "").expect_status(200);
    let files = server.sql(db, "SELECT path FROM system.parquet_files");
    assert_eq!(files.len(), 1, "compacted into one file: {files:?}");
    let got = server.sql(db, "SELECT sum(v) AS s FROM m");
    assert_eq!(got[0]["s"].as_f64(), Some(6.0), "{got:?}");
}
