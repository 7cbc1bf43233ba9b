//! Results stream: a query returning millions of rows is encoded and sent batch by batch, so
//! the server's peak memory (VmHWM from /proc) stays far below the size of the result.

mod common;

use std::io::{BufRead, BufReader};

use common::{enc, unique_name, Server, NS};

/// Peak resident memory of a process, in bytes (Linux `/proc/<pid>/status`).
fn vm_hwm(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn a_large_result_streams_in_bounded_memory() {
    let server = Server::start(&[]);
    let db = unique_name("stream");
    server.write_ok(&db, format!("m f=1 {NS}"), "");
    // Warm up (first query, session state, allocator arenas) before taking the baseline.
    server.sql(&db, "SELECT count(*) FROM generate_series(1, 100000)");
    let before = vm_hwm(server.pid());

    const ROWS: u64 = 3_000_000;
    let q = format!(
        "SELECT value, 'a padding string that makes each row about eighty bytes long' AS pad \
         FROM generate_series(1, {ROWS})"
    );
    let url = server.url(&format!(
        "/api/v3/query_sql?db={}&q={}&format=jsonl",
        enc(&db),
        enc(&q)
    ));
    let resp = server.client().get(url).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Read line by line, holding one line at a time.
    let mut reader = BufReader::new(resp);
    let (mut lines, mut bytes, mut sum) = (0u64, 0u64, 0u64);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lines += 1;
        let row: serde_json::Value = serde_json::from_str(&line).unwrap();
        sum += row["value"].as_u64().unwrap();
    }
    assert_eq!(lines, ROWS);
    // Every row arrived once (generate_series may run in any order).
    assert_eq!(sum, ROWS * (ROWS + 1) / 2);
    assert!(bytes > 200_000_000, "result is {bytes} bytes");

    let after = vm_hwm(server.pid());
    let growth = after.saturating_sub(before);
    assert!(
        growth < bytes / 5,
        "server peak memory grew by {growth} bytes (from {before} to {after}) for a result of \
         {bytes} bytes: the result was not streamed"
    );
}

/// `--exec-mem-pool-bytes`: a query whose state cannot spill (one `array_agg` of millions of
/// values) fails with a 500 naming the exhausted resource instead of growing the process; the
/// server stays up; the failure is logged. (Whether a big spilling GROUP BY fits a 10 MB pool
/// depends on how many partitions run at once, so it is not asserted here.)
#[test]
fn the_memory_pool_turns_a_runaway_query_into_an_error() {
    let server = Server::start(&["--exec-mem-pool-bytes", "10000000"]);
    let db = unique_name("mem");
    server.write_ok(&db, format!("m f=1 {NS}"), "");

    let runaway = "SELECT array_agg(value) AS a FROM generate_series(1, 3000000)";
    let resp = server.query_sql(&db, runaway, "json");
    assert_eq!(resp.status, 500, "{}", resp.describe());
    let body = resp.text();
    assert!(
        body.starts_with("query error: error while executing plan: Resources exhausted"),
        "{body}"
    );
    assert!(body.contains("pool_size: 9.5 MB"), "{body}");

    assert_eq!(server.sql(&db, "SELECT f FROM m")[0]["f"], 1.0);

    let rows = server.sql(
        &db,
        &format!(
            "SELECT phase, error FROM system.queries WHERE query_text = '{}'",
            runaway.replace('\'', "''")
        ),
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["phase"], "fail");
    assert!(
        rows[0]["error"]
            .as_str()
            .unwrap()
            .contains("Resources exhausted"),
        "{rows:?}"
    );
}
