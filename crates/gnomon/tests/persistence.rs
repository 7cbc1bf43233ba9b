//! Persistence: snapshots to Parquet, restart from snapshots plus WAL, crash points between
//! snapshot steps, the S3 object store against a real S3-compatible server (moto), and
//! Parquet files readable by pyarrow.
//!
//! The S3 and pyarrow tests need the Python tools `scripts/test` installs into a virtualenv
//! (`$GNOMON_TEST_VENV`, default `target/test-venv`); without it they say so and skip.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, NODE_ID, NS};
use serde_json::Value;

const MINUTE: i64 = 60 * 1_000_000_000;
const DB: &str = "persist";

/// `hosts` × `points` rows of table `cpu`, one point a minute from `start`, spread over several
/// 10-minute chunks; `usage` encodes host and point so every value is checkable.
fn cpu_lines(hosts: usize, points: usize, start: i64, bump: f64) -> String {
    let mut body = String::new();
    for p in 0..points {
        for h in 0..hosts {
            body.push_str(&format!(
                "cpu,host=h{h:02},region=r{} usage={},n={}i {}\n",
                h % 3,
                (h * 1000 + p) as f64 + bump,
                p,
                start + p as i64 * MINUTE
            ));
        }
    }
    body
}

fn snapshot(server: &Server) -> Value {
    let resp = server.post("/api/v3/gnomon/snapshot", "");
    assert_eq!(resp.status, 200, "snapshot failed:\n{}", resp.describe());
    resp.json()
}

fn count(server: &Server) -> i64 {
    server.sql(DB, "SELECT count(*) AS c FROM cpu")[0]["c"]
        .as_i64()
        .unwrap()
}

/// Every (host, time, usage) triple, ordered.
fn rows(server: &Server) -> Vec<(String, i64, f64)> {
    server
        .sql(
            DB,
            "SELECT host, CAST(time AS BIGINT) AS t, usage FROM cpu ORDER BY host, t",
        )
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap().to_string(),
                r["t"].as_i64().unwrap(),
                r["usage"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
}

/// The scenario of the acceptance criteria: write, snapshot, write more (including rewrites
/// of persisted rows), restart, and find every row exactly once with the last value written.
fn write_snapshot_write_restart(server: &mut Server) {
    let start = NS - NS % (10 * MINUTE);
    server.write_ok(DB, cpu_lines(6, 25, start, 0.0), "");
    let expected_first = 6 * 25;
    assert_eq!(count(server), expected_first);

    let summary = snapshot(server);
    assert_eq!(summary["rows"].as_i64(), Some(expected_first), "{summary}");
    assert_eq!(
        summary["files"].as_i64(),
        Some(3),
        "25 minutes span 3 chunks: {summary}"
    );
    assert_eq!(count(server), expected_first, "rows read back from Parquet");
    let metrics = server.metrics();
    assert!(
        metric(&metrics, "gnomon_parquet_cache_hits_total") >= 1.0,
        "{metrics}"
    );
    // Exposed from the start (the counting query may not have gone through it).
    assert!(metric(&metrics, "gnomon_page_cache_misses_total") >= 0.0);
    assert!(metric(&metrics, "gnomon_page_cache_size_bytes") >= 0.0);

    // Rewrites of the first 10 points of every host (persisted) plus 5 new points.
    server.write_ok(DB, cpu_lines(6, 10, start, 0.5), "");
    server.write_ok(DB, cpu_lines(6, 5, start + 25 * MINUTE, 0.0), "");
    let expected = expected_first + 6 * 5;
    let before = rows(server);
    assert_eq!(before.len() as i64, expected);
    let h1_p3 = before
        .iter()
        .find(|(h, t, _)| h == "h01" && *t == start + 3 * MINUTE)
        .unwrap();
    assert_eq!(h1_p3.2, 1003.5, "the rewrite wins over the persisted value");
    let h1_p12 = before
        .iter()
        .find(|(h, t, _)| h == "h01" && *t == start + 12 * MINUTE)
        .unwrap();
    assert_eq!(h1_p12.2, 1012.0);

    server.restart();
    assert_eq!(
        rows(server),
        before,
        "same rows after a restart (WAL + Parquet)"
    );

    // A second snapshot persists the rewrites next to the first files; still the same answer.
    let summary = snapshot(server);
    assert!(summary["files"].as_i64().unwrap() >= 2, "{summary}");
    assert_eq!(rows(server), before);
    server.restart();
    assert_eq!(rows(server), before, "same rows with everything in Parquet");
    // start is 2023-11-14T22:10:00Z: the second chunk only, pruned by file time ranges.
    assert_eq!(start, 1_699_999_800 * 1_000_000_000);
    let filtered = server.sql(
        DB,
        "SELECT count(*) AS c FROM cpu \
         WHERE time >= '2023-11-14T22:20:00Z' AND time < '2023-11-14T22:30:00Z'",
    );
    assert_eq!(filtered[0]["c"].as_i64(), Some(60));
}

#[test]
fn file_store_restart_returns_every_row_once() {
    let mut server = Server::start(&[]);
    write_snapshot_write_restart(&mut server);
    let files = parquet_files(&server.data_dir().join(NODE_ID).join("dbs"));
    assert!(files.len() >= 5, "{files:?}");
    let name = files[0]
        .strip_prefix(server.data_dir())
        .unwrap()
        .display()
        .to_string();
    // <node>/dbs/<db id>/<table id>/<YYYY-MM-DD>/<HH-MM>/<seq>.parquet
    assert_eq!(name.split('/').count(), 7, "{name}");
    assert!(
        std::fs::read_dir(server.data_dir().join(NODE_ID).join("snapshots"))
            .unwrap()
            .count()
            >= 2
    );
}

#[test]
fn memory_store_serves_persisted_files() {
    let server = Server::start(&["--object-store", "memory"]);
    let start = NS - NS % (10 * MINUTE);
    server.write_ok(DB, cpu_lines(4, 30, start, 0.0), "");
    let before = rows(&server);
    let summary = snapshot(&server);
    assert_eq!(summary["files"].as_i64(), Some(3), "{summary}");
    assert_eq!(rows(&server), before);
    let metrics = server.metrics();
    assert_eq!(metric(&metrics, "gnomon_parquet_files"), 3.0, "{metrics}");
    assert_eq!(metric(&metrics, "gnomon_buffer_rows"), 0.0, "{metrics}");
}

// ------------------------------------------------------------------------------------------
// crash points
// ------------------------------------------------------------------------------------------

/// Posts to `path` on a server started with `--test-crash-point point` and waits for the
/// process to die there (no successful answer, exit within 20 s).
#[track_caller]
fn expect_abort(server: &Server, path: &str, point: &str) {
    let resp = server.client().post(server.url(path)).send();
    assert!(
        resp.is_err() || !resp.unwrap().status().is_success(),
        "the server should have aborted at {point}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.try_wait().is_none() {
        assert!(
            Instant::now() < deadline,
            "server still running after {point}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn crash_at(point: &str) {
    let mut server = Server::start(&["--test-crash-point", point]);
    let start = NS - NS % (10 * MINUTE);
    server.write_ok(DB, cpu_lines(5, 20, start, 0.0), "");
    server.write_ok(DB, cpu_lines(5, 4, start, 0.25), "");
    let before = rows(&server);
    assert_eq!(before.len(), 100);
    expect_abort(&server, "/api/v3/gnomon/snapshot", point);
    server.set_args(&[]);
    server.restart();
    assert_eq!(rows(&server), before, "after a crash at {point}");
    // Writing and snapshotting on top of whatever the crash left must not double anything.
    server.write_ok(DB, cpu_lines(5, 2, start + 20 * MINUTE, 0.0), "");
    snapshot(&server);
    server.restart();
    assert_eq!(
        rows(&server).len(),
        110,
        "after a crash at {point} and a new snapshot"
    );
    assert_eq!(
        rows(&server)[..]
            .iter()
            .filter(|(_, _, u)| u.fract() == 0.25)
            .count(),
        20,
        "the rewrites survive at {point}"
    );
}

#[test]
fn crash_after_files_before_the_snapshot_record() {
    crash_at("after-files");
}

#[test]
fn crash_after_the_snapshot_record_before_truncating_the_wal() {
    crash_at("after-record");
}

#[test]
fn crash_after_truncating_the_wal() {
    crash_at("after-truncate");
}

// ------------------------------------------------------------------------------------------
// tools from the test virtualenv: moto (S3) and pyarrow
// ------------------------------------------------------------------------------------------

fn venv() -> Option<PathBuf> {
    let dir = std::env::var_os("GNOMON_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv"));
    dir.join("bin/python").exists().then_some(dir)
}

fn skip(what: &str) {
    eprintln!(
        "SKIPPED {what}: no test virtualenv with moto and pyarrow; run scripts/test (which \
         installs it) or set GNOMON_TEST_VENV"
    );
}

/// A moto S3 server on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start(venv: &Path) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    fn create_bucket(&self, bucket: &str) {
        let resp = reqwest::blocking::Client::new()
            .put(format!("http://127.0.0.1:{}/{bucket}", self.port))
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{:?}", resp.text());
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn s3_store_restart_returns_every_row_once() {
    let Some(venv) = venv() else {
        return skip("s3_store_restart_returns_every_row_once");
    };
    let moto = Moto::start(&venv);
    moto.create_bucket("gnomon-test");
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let mut server = Server::start(&[
        "--object-store",
        "s3",
        "--bucket",
        "gnomon-test",
        "--aws-endpoint",
        &endpoint,
        "--aws-allow-http",
        "--aws-access-key-id",
        "test",
        "--aws-secret-access-key",
        "test",
        "--aws-default-region",
        "us-east-1",
    ]);
    write_snapshot_write_restart(&mut server);
    // The objects really are in the bucket.
    let listing = reqwest::blocking::get(format!(
        "{endpoint}/gnomon-test?list-type=2&prefix={NODE_ID}/dbs/"
    ))
    .unwrap()
    .text()
    .unwrap();
    assert!(listing.contains(".parquet</Key>"), "{listing}");
    // Everything is persisted: the WAL keeps only its newest object (the sequence mark).
    let wal = reqwest::blocking::get(format!(
        "{endpoint}/gnomon-test?list-type=2&prefix={NODE_ID}/wal/"
    ))
    .unwrap()
    .text()
    .unwrap();
    assert_eq!(wal.matches("<Key>").count(), 1, "{wal}");
}

#[test]
fn pyarrow_reads_a_persisted_file() {
    let Some(venv) = venv() else {
        return skip("pyarrow_reads_a_persisted_file");
    };
    let server = Server::start(&[]);
    let start = NS - NS % (10 * MINUTE);
    server.write_ok(DB, cpu_lines(3, 7, start, 0.0), "");
    snapshot(&server);
    let files = parquet_files(&server.data_dir().join(NODE_ID).join("dbs"));
    assert_eq!(files.len(), 1);
    let script = "import sys, pyarrow.parquet as pq\n\
                  t = pq.read_table(sys.argv[1])\n\
                  print(t.num_rows)\n\
                  print(','.join(sorted(t.column_names)))\n\
                  print(sum(t.column('usage').to_pylist()))\n";
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", script])
        .arg(&files[0])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "21");
    assert_eq!(lines[1], "host,n,region,time,usage");
    let expected: f64 = (0..3)
        .flat_map(|h| (0..7).map(move |p| (h * 1000 + p) as f64))
        .sum();
    assert_eq!(lines[2].parse::<f64>().unwrap(), expected);
}

/// Deleting a database or a table removes its data in the background: its Parquet files
/// leave the object store, a restart does not bring them back, and a new database or table of
/// the same name starts empty.
#[test]
fn deleted_databases_and_tables_lose_their_files_in_the_background() {
    let mut server = Server::start(&["--snapshot-check-interval", "200ms"]);
    let start = NS - NS % (10 * MINUTE);
    let gone_db = common::unique_name("gone");
    server.write_ok(&gone_db, cpu_lines(3, 5, start, 0.0), "");
    server.write_ok(DB, cpu_lines(3, 5, start, 0.0), "");
    server.write_ok(DB, "mem,host=a free=1i 1\n", "precision=s");
    snapshot(&server);
    let dbs = server.data_dir().join(NODE_ID).join("dbs");
    let before = parquet_files(&dbs);
    assert_eq!(before.len(), 3, "one file per table: {before:?}");

    for path in [
        format!("/api/v3/configure/database?db={gone_db}"),
        format!("/api/v3/configure/table?db={DB}&table=mem"),
    ] {
        let resp = server.request(reqwest::Method::DELETE, &path, &[], None);
        assert!(
            resp.status == 200 || resp.status == 204,
            "{}",
            resp.describe()
        );
    }

    // Two purge rounds: out of the index, then out of the store.
    let deadline = Instant::now() + Duration::from_secs(20);
    while parquet_files(&dbs).len() > 1 {
        assert!(
            Instant::now() < deadline,
            "files still there: {:?}",
            parquet_files(&dbs)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count(&server), 15, "the kept table keeps its rows");

    server.restart();
    assert_eq!(parquet_files(&dbs).len(), 1);
    assert_eq!(count(&server), 15);
    server.write_ok(&gone_db, "cpu,host=new usage=1 1\n", "precision=s");
    let rows = server.sql(&gone_db, "SELECT count(*) AS c FROM cpu");
    assert_eq!(rows[0]["c"], 1, "a recreated database starts empty");
    server.write_ok(DB, "mem,host=b free=2i 2\n", "precision=s");
    let rows = server.sql(DB, "SELECT count(*) AS c FROM mem");
    assert_eq!(rows[0]["c"], 1, "a recreated table starts empty");
}

// ------------------------------------------------------------------------------------------
// Compaction

fn compact(server: &Server) -> Value {
    let resp = server.post("/api/v3/gnomon/compact", "");
    assert_eq!(resp.status, 200, "compaction failed:\n{}", resp.describe());
    resp.json()
}

/// Per host: row count, sum of `usage`, max of `n` (an answer that changes if any row is lost,
/// doubled or has a stale value).
fn per_host(server: &Server) -> Vec<Value> {
    server.sql(
        DB,
        "SELECT host, count(*) AS c, sum(usage) AS s, max(n) AS m FROM cpu GROUP BY host ORDER BY host",
    )
}

/// Several snapshots of overlapping writes over 40 minutes (4 chunks): one file per chunk
/// and snapshot, rewrites of persisted rows in later files. Returns the start time.
fn many_small_files(server: &Server) -> i64 {
    let start = NS - NS % (60 * MINUTE);
    for round in 0..4 {
        // Every round rewrites the first 10 points of every host and adds 10 new ones.
        server.write_ok(DB, cpu_lines(8, 10, start, round as f64 / 10.0), "");
        server.write_ok(
            DB,
            cpu_lines(8, 10, start + (10 + round * 10) * MINUTE, 0.0),
            "",
        );
        snapshot(server);
    }
    start
}

/// Waits until the files out of the index are gone from the store too.
fn wait_for_files(server: &Server, count: usize) {
    let dbs = server.data_dir().join(NODE_ID).join("dbs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while parquet_files(&dbs).len() != count {
        assert!(
            Instant::now() < deadline,
            "expected {count} files, found {:?}",
            parquet_files(&dbs)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn compaction_merges_small_files_and_answers_stay_the_same() {
    let mut server = Server::start(&[
        "--snapshot-check-interval",
        "200ms",
        "--compaction-check-interval",
        "1h",
    ]);
    let start = many_small_files(&server);
    let dbs = server.data_dir().join(NODE_ID).join("dbs");
    let files_before = parquet_files(&dbs).len();
    assert!(files_before >= 8, "{files_before} files");
    // A late write into the range about to be compacted, left in the buffer.
    server.write_ok(DB, cpu_lines(8, 2, start + 5 * MINUTE, 0.75), "");
    let expected_rows = rows(&server);
    assert_eq!(expected_rows.len(), 8 * 50);
    let expected = per_host(&server);
    assert_eq!(
        expected_rows
            .iter()
            .filter(|(h, t, _)| h == "h03" && *t == start + 5 * MINUTE)
            .map(|r| r.2)
            .collect::<Vec<_>>(),
        vec![3000.75],
        "the buffered late write wins"
    );

    // Queries keep running, and answering the same, while the compaction swaps the files.
    let done = std::sync::atomic::AtomicBool::new(false);
    let summary = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut answered = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || answered < 3 {
                assert_eq!(per_host(&server), expected, "a query during compaction");
                answered += 1;
            }
            answered
        });
        let summary = compact(&server);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() >= 3);
        summary
    });
    assert_eq!(
        summary["files_in"].as_u64(),
        Some(files_before as u64),
        "{summary}"
    );
    assert_eq!(summary["files_out"], 1, "one hour of one table: {summary}");
    assert_eq!(summary["rows"], 8 * 50, "{summary}");
    assert_eq!(rows(&server), expected_rows, "after compaction");
    assert_eq!(per_host(&server), expected);
    // The old files leave the store on a later purge round.
    wait_for_files(&server, 1);
    let metrics = server.metrics();
    assert_eq!(
        metric(&metrics, "gnomon_parquet_files_compacted_total") as usize,
        files_before,
        "{metrics}"
    );
    // Nothing left to merge.
    assert_eq!(compact(&server)["files_in"], 0);

    server.restart();
    assert_eq!(
        rows(&server),
        expected_rows,
        "after a restart (compacted file + WAL)"
    );

    // The buffered late write is persisted next to the compacted file and merged into it.
    snapshot(&server);
    assert_eq!(parquet_files(&dbs).len(), 2);
    assert_eq!(
        rows(&server),
        expected_rows,
        "compacted file + a newer file"
    );
    let summary = compact(&server);
    assert_eq!(summary["files_in"], 2, "{summary}");
    wait_for_files(&server, 1);
    assert_eq!(rows(&server), expected_rows);
    server.restart();
    assert_eq!(
        rows(&server),
        expected_rows,
        "every row once after the second restart"
    );
    // start is 2023-11-14T22:00:00Z.
    assert_eq!(start, 1_699_999_200 * 1_000_000_000);
    let filtered = server.sql(
        DB,
        "SELECT count(*) AS c FROM cpu \
         WHERE time >= '2023-11-14T22:20:00Z' AND time < '2023-11-14T22:30:00Z'",
    );
    assert_eq!(filtered[0]["c"], 80, "time filters on a compacted file");
}

fn compaction_crash_at(point: &str, listed_after: usize) {
    let mut server = Server::start(&["--test-crash-point", point]);
    let start = many_small_files(&server);
    let before = rows(&server);
    expect_abort(&server, "/api/v3/gnomon/compact", point);
    let dbs = server.data_dir().join(NODE_ID).join("dbs");
    assert_eq!(parquet_files(&dbs).len(), 9, "8 inputs and the merged file");
    server.set_args(&[]);
    server.restart();
    assert_eq!(rows(&server), before, "after a crash at {point}");
    // The files the crash left unlisted (the merged file, or the merged-away inputs) are
    // swept after the restart.
    wait_for_files(&server, listed_after);
    server.write_ok(DB, cpu_lines(8, 1, start + 3 * MINUTE, 0.5), "");
    snapshot(&server);
    compact(&server);
    server.restart();
    let after = rows(&server);
    assert_eq!(
        after.len(),
        before.len(),
        "after a crash at {point} and a new compaction"
    );
    assert_eq!(
        after.iter().filter(|(_, _, u)| u.fract() == 0.5).count(),
        8,
        "the rewrite after the crash wins"
    );
}

#[test]
fn crash_after_the_compacted_file_before_its_record() {
    compaction_crash_at("compaction-after-file", 8);
}

#[test]
fn crash_after_the_compaction_record() {
    compaction_crash_at("compaction-after-record", 1);
}

// ------------------------------------------------------------------------------------------
// Retention

fn put_database(server: &Server, body: &str) -> common::Resp {
    server.request(
        reqwest::Method::PUT,
        "/api/v3/configure/database",
        &[("content-type", "application/json")],
        Some(body.as_bytes().to_vec()),
    )
}

fn hosts(server: &Server, db: &str) -> Vec<String> {
    server
        .sql(db, "SELECT host FROM cpu ORDER BY host")
        .iter()
        .map(|r| r["host"].as_str().unwrap().to_string())
        .collect()
}

fn count_in(server: &Server, db: &str) -> i64 {
    server.sql(db, "SELECT count(*) AS c FROM cpu")[0]["c"]
        .as_i64()
        .unwrap()
}

#[test]
fn retention_hides_old_rows_and_drops_old_files() {
    const HOUR: i64 = 60 * MINUTE;
    let mut server = Server::start(&["--snapshot-check-interval", "200ms"]);
    let db = common::unique_name("ret");
    let now = common::now_ns();
    server.write_ok(
        &db,
        format!(
            "cpu,host=a usage=1 {}\ncpu,host=b usage=2 {}\ncpu,host=c usage=3 {}\n",
            now - 3 * HOUR,
            now - 2 * HOUR,
            now - MINUTE
        ),
        "",
    );
    assert_eq!(count_in(&server, &db), 3);
    snapshot(&server);
    let dbs = server.data_dir().join(NODE_ID).join("dbs");
    assert_eq!(parquet_files(&dbs).len(), 3, "one file per chunk");

    let resp = put_database(
        &server,
        &format!(r#"{{"db":"{db}","retention_period":"90m"}}"#),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
    assert_eq!(
        hosts(&server, &db),
        ["c"],
        "rows past retention are never returned"
    );
    assert_eq!(count_in(&server, &db), 1);
    let rows = server.sql(
        &db,
        "SELECT count(*) AS c FROM cpu WHERE time < now() - interval '1 hour'",
    );
    assert_eq!(rows[0]["c"], 0);
    // The files wholly older than the cutoff leave the index, then the store.
    wait_for_files(&server, 1);

    // Old writes are accepted but invisible.
    server.write_ok(&db, format!("cpu,host=d usage=4 {}\n", now - 5 * HOUR), "");
    assert_eq!(hosts(&server, &db), ["c"]);

    // Cleared: new old rows show again; the dropped files do not come back.
    let resp = put_database(
        &server,
        &format!(r#"{{"db":"{db}","retention_period":null}}"#),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
    server.write_ok(&db, format!("cpu,host=e usage=5 {}\n", now - 3 * HOUR), "");
    let visible = hosts(&server, &db);
    assert!(
        visible.contains(&"e".to_string()) && !visible.contains(&"a".to_string()),
        "{visible:?}"
    );

    // The retention_period endpoints set and clear it too.
    let path = format!("/api/v3/configure/database/retention_period?db={db}&duration=1h");
    let resp = server.post(&path, "");
    assert_eq!(resp.status, 204, "{}", resp.describe());
    assert_eq!(hosts(&server, &db), ["c"]);
    let path = format!("/api/v3/configure/database/retention_period?db={db}");
    let resp = server.request(reqwest::Method::DELETE, &path, &[], None);
    assert_eq!(resp.status, 204, "{}", resp.describe());
    server.write_ok(&db, format!("cpu,host=f usage=6 {}\n", now - 3 * HOUR), "");
    let visible = hosts(&server, &db);
    assert!(visible.contains(&"f".to_string()), "{visible:?}");
    assert!(!visible.contains(&"a".to_string()) && !visible.contains(&"b".to_string()));
    let resp = put_database(
        &server,
        &format!(r#"{{"db":"{db}","retention_period":"1h"}}"#),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
    server.restart();
    assert_eq!(hosts(&server, &db), ["c"], "retention survives a restart");

    // Errors.
    let resp = put_database(&server, r#"{"db":"no_such_db","retention_period":"1d"}"#);
    assert_eq!(resp.status, 404, "{}", resp.describe());
    let resp = put_database(
        &server,
        &format!(r#"{{"db":"{db}","retention_period":"soon"}}"#),
    );
    assert_eq!(resp.status, 400, "{}", resp.describe());
    let path = format!("/api/v3/configure/database/retention_period?db={db}&duration=soon");
    let resp = server.post(&path, "");
    assert_eq!(resp.status, 400, "{}", resp.describe());
    assert!(
        resp.text().contains("Cannot parse the given human time"),
        "{}",
        resp.text()
    );

    // A database created with a retention period hides old writes from the start.
    let fresh = common::unique_name("ret_new");
    let resp = server.post_with(
        "/api/v3/configure/database",
        &[("content-type", "application/json")],
        format!(r#"{{"db":"{fresh}","retention_period":"1h"}}"#),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
    server.write_ok(
        &fresh,
        format!(
            "cpu,host=old usage=1 {}\ncpu,host=new usage=2 {}\n",
            now - 2 * HOUR,
            now
        ),
        "",
    );
    assert_eq!(hosts(&server, &fresh), ["new"]);
}

/// The background task compacts on its own: settled days (the test data is from 2023) become
/// one file without any request, and the answer stays the same.
#[test]
fn the_background_task_compacts_settled_days() {
    let server = Server::start(&[
        "--snapshot-check-interval",
        "200ms",
        "--compaction-check-interval",
        "300ms",
    ]);
    many_small_files(&server);
    let expected = rows(&server);
    assert_eq!(expected.len(), 8 * 50);
    wait_for_files(&server, 1);
    assert_eq!(rows(&server), expected);
    let metrics = server.metrics();
    assert!(
        metric(&metrics, "gnomon_compactions_total") >= 1.0,
        "{metrics}"
    );
}
