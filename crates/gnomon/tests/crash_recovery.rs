//! Crash and restart tests: a write answered 204 has been fsynced to the WAL, so it must
//! survive SIGKILL (and a torn WAL tail), and a graceful SIGTERM must flush `no_sync` writes.
//!
//! `GNOMON_CRASH_ITERATIONS` (default 3) sets the number of kill/restart cycles of the main
//! crash test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{now_ns, Server, NS};
use reqwest::blocking::Client;
use serde_json::Value;

const WRITERS: usize = 8;
const BATCH: u64 = 50;
const TABLE: &str = "crash";

/// Timestamp of line `seq` of any writer: distinct per writer (the tag differs anyway).
fn ts_of(seq: u64) -> i64 {
    NS + seq as i64
}

fn batch_body(writer: usize, first_seq: u64, lines: u64) -> String {
    let mut body = String::with_capacity(lines as usize * 48);
    for seq in first_seq..first_seq + lines {
        body.push_str(&format!(
            "{TABLE},writer=w{writer} seq={seq}i {}\n",
            ts_of(seq)
        ));
    }
    body
}

/// Simple seeded PRNG (splitmix64).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct WriterResult {
    /// First seq of every batch answered 204.
    acked: Vec<u64>,
    next_seq: u64,
    /// Non-204 answers, and transport errors seen before the kill.
    problems: Vec<String>,
}

fn writer_loop(
    url: String,
    writer: usize,
    mut next_seq: u64,
    stop: Arc<AtomicBool>,
    killing: Arc<AtomicBool>,
    acked_total: Arc<AtomicUsize>,
) -> WriterResult {
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut result = WriterResult {
        acked: Vec::new(),
        next_seq,
        problems: Vec::new(),
    };
    while !stop.load(Ordering::SeqCst) {
        let first = next_seq;
        next_seq += BATCH;
        result.next_seq = next_seq;
        match client
            .post(&url)
            .body(batch_body(writer, first, BATCH))
            .send()
        {
            Ok(resp) => {
                let status = resp.status().as_u16();
                if status == 204 {
                    result.acked.push(first);
                    acked_total.fetch_add(1, Ordering::SeqCst);
                } else {
                    let body = resp.text().unwrap_or_default();
                    result
                        .problems
                        .push(format!("w{writer} batch {first}: HTTP {status} {body}"));
                    break;
                }
            }
            Err(e) => {
                if !killing.load(Ordering::SeqCst) {
                    result.problems.push(format!(
                        "w{writer} batch {first}: transport error before the kill: {e}"
                    ));
                }
                break;
            }
        }
    }
    result
}

/// `(seq, time)` of the rows of writer `w` with `seq >= from`.
fn rows_from(srv: &Server, db: &str, w: usize, from: u64) -> Vec<(u64, i64)> {
    srv.sql(
        db,
        &format!(
            "SELECT seq, CAST(time AS BIGINT) AS t FROM {TABLE} WHERE writer = 'w{w}' AND seq >= {from}"
        ),
    )
    .iter()
    .map(|r| {
        (
            r["seq"].as_u64().expect("seq"),
            r["t"].as_i64().expect("time"),
        )
    })
    .collect()
}

/// Summary of the rows of writer `w` with `seq < below`:
/// `(count, distinct seqs, sum of seqs, min and max of time - seq)`.
fn summary_below(srv: &Server, db: &str, w: usize, below: u64) -> (u64, u64, u64, i64, i64) {
    let rows = srv.sql(
        db,
        &format!(
            "SELECT count(*) AS n, count(DISTINCT seq) AS d, sum(seq) AS s, \
             min(CAST(time AS BIGINT) - seq) AS lo, max(CAST(time AS BIGINT) - seq) AS hi \
             FROM {TABLE} WHERE writer = 'w{w}' AND seq < {below}"
        ),
    );
    let r = &rows[0];
    (
        r["n"].as_u64().unwrap_or(0),
        r["d"].as_u64().unwrap_or(0),
        r["s"].as_u64().unwrap_or(0),
        r["lo"].as_i64().unwrap_or(NS),
        r["hi"].as_i64().unwrap_or(NS),
    )
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let iterations: usize = std::env::var("GNOMON_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut seed = now_ns() as u64;
    println!("crash test: {iterations} iteration(s), {WRITERS} writers, {BATCH} lines per batch, seed {seed}");
    let mut srv = Server::start(&[]);
    let db = "crashdb";
    // Lines found after a restart: durable from then on, whether acknowledged or not.
    let mut durable: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); WRITERS];
    // Each writer's seqs only grow, across iterations too.
    let mut next_seq: Vec<u64> = vec![0; WRITERS];
    let mut total_acked = 0u64;
    for iteration in 1..=iterations {
        let round_start = next_seq.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let killing = Arc::new(AtomicBool::new(false));
        let acked_total = Arc::new(AtomicUsize::new(0));
        let url = srv.url(&common::v3_path(db, "precision=ns"));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (url, stop, killing, acked_total) = (
                    url.clone(),
                    stop.clone(),
                    killing.clone(),
                    acked_total.clone(),
                );
                let start = next_seq[w];
                std::thread::spawn(move || writer_loop(url, w, start, stop, killing, acked_total))
            })
            .collect();
        // Let the writers get going, then kill at a random moment.
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked_total.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let delay = Duration::from_millis(200 + splitmix(&mut seed) % 1301);
        std::thread::sleep(delay);
        killing.store(true, Ordering::SeqCst);
        srv.kill();
        stop.store(true, Ordering::SeqCst);
        let results: Vec<WriterResult> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let problems: Vec<&String> = results.iter().flat_map(|r| &r.problems).collect();
        assert!(
            problems.is_empty(),
            "writer problems before the kill:\n{problems:#?}\nlog:\n{}",
            srv.log()
        );
        let mut acked: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); WRITERS];
        for (w, r) in results.iter().enumerate() {
            acked[w].extend(r.acked.iter().flat_map(|first| *first..*first + BATCH));
            next_seq[w] = r.next_seq;
        }
        let this_round: u64 = acked.iter().map(|s| s.len() as u64).sum();
        total_acked += this_round;
        println!(
            "iteration {iteration}/{iterations}: killed after {delay:?}; {this_round} lines acknowledged this round, {total_acked} in total"
        );
        assert!(
            this_round > 0,
            "no write was acknowledged before the kill; log:\n{}",
            srv.log()
        );

        srv.restart();
        let mut missing = Vec::new();
        let mut duplicated = Vec::new();
        let mut unacked_present = 0;
        for w in 0..WRITERS {
            // Earlier rounds: exactly the rows found before, each once, with the right time.
            let want: (u64, u64, u64, i64, i64) = (
                durable[w].len() as u64,
                durable[w].len() as u64,
                durable[w].iter().sum(),
                NS,
                NS,
            );
            assert_eq!(
                summary_below(&srv, db, w, round_start[w]),
                want,
                "w{w}: rows of earlier rounds changed (count, distinct, sum, time offsets)"
            );
            // This round: every acknowledged line, once, with the right time.
            let mut present: BTreeMap<u64, usize> = BTreeMap::new();
            for (seq, t) in rows_from(&srv, db, w, round_start[w]) {
                assert_eq!(t, ts_of(seq), "row w{w} seq {seq} has the wrong time");
                assert!(seq < next_seq[w], "w{w} seq {seq} was never sent");
                *present.entry(seq).or_insert(0) += 1;
            }
            for (seq, n) in &present {
                if *n > 1 {
                    duplicated.push((w, *seq, *n));
                }
                if !acked[w].contains(seq) {
                    unacked_present += 1;
                }
            }
            missing.extend(
                acked[w]
                    .iter()
                    .filter(|s| !present.contains_key(s))
                    .map(|s| (w, *s)),
            );
            durable[w].extend(present.keys().copied());
        }
        let total: u64 = durable.iter().map(|s| s.len() as u64).sum();
        println!(
            "iteration {iteration}: {total} rows after restart ({unacked_present} from unacknowledged batches of this round)"
        );
        assert!(
            duplicated.is_empty(),
            "rows present more than once (writer, seq, count), first 20: {:?}",
            &duplicated[..duplicated.len().min(20)]
        );
        assert!(
            missing.is_empty(),
            "{} acknowledged lines lost after SIGKILL + restart (writer, seq), first 20: {:?}\nlog:\n{}",
            missing.len(),
            &missing[..missing.len().min(20)],
            srv.log()
        );
        assert_eq!(
            srv.sql(db, &format!("SELECT count(*) AS n FROM {TABLE}")),
            vec![serde_json::json!({ "n": total })],
            "rows of unknown writers"
        );
    }
    srv.assert_alive();
}

/// Regular files of `dir` (recursively), sorted by path.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The newest non-empty WAL file: WAL file names are zero-padded sequence numbers, so the
/// greatest name is the newest.
fn newest_wal_file(srv: &Server) -> (PathBuf, u64) {
    let wal = srv.wal_dir();
    let files = files_under(&wal);
    files
        .iter()
        .rev()
        .filter(|p| !p.to_string_lossy().contains("corrupt"))
        .map(|p| (p.clone(), std::fs::metadata(p).unwrap().len()))
        .find(|(_, len)| *len > 0)
        .unwrap_or_else(|| {
            panic!(
                "no non-empty WAL file under {}; data dir holds {:#?}",
                wal.display(),
                files_under(srv.data_dir())
            )
        })
}

#[track_caller]
fn assert_batches(srv: &Server, db: &str, batches: &[(&str, u64)]) {
    for (name, lines) in batches {
        let rows = srv.sql(
            db,
            &format!("SELECT v, CAST(time AS BIGINT) AS t FROM torn WHERE b = '{name}' ORDER BY t"),
        );
        let got: Vec<(i64, i64)> = rows
            .iter()
            .map(|r| (r["v"].as_i64().unwrap(), r["t"].as_i64().unwrap()))
            .collect();
        let want: Vec<(i64, i64)> = (0..*lines as i64).map(|i| (i, NS + i)).collect();
        assert_eq!(got, want, "batch {name} after restart; log:\n{}", srv.log());
    }
}

fn torn_batch(name: &str, lines: u64) -> String {
    (0..lines)
        .map(|i| format!("torn,b={name} v={i}i {}\n", NS + i as i64))
        .collect()
}

#[test]
fn torn_wal_tail_restarts_with_earlier_acknowledged_data() {
    let mut srv = Server::start(&[]);
    let db = "torndb";
    let early = [("a0", 20), ("a1", 20), ("a2", 20), ("a3", 20), ("a4", 20)];
    for (name, lines) in early {
        srv.write_ok(db, torn_batch(name, lines), "precision=ns");
    }
    // The last acknowledged write before the crash: its WAL entry is the one that gets torn.
    srv.write_ok(db, torn_batch("sacrifice", 100), "precision=ns");
    srv.kill();

    let (file, len) = newest_wal_file(&srv);
    let cut = 5u64.min(len - 1);
    OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - cut)
        .unwrap();
    println!(
        "truncated {} from {len} to {} bytes",
        file.display(),
        len - cut
    );

    srv.restart();
    assert_batches(&srv, db, &early);
    let sacrificed = srv
        .sql(db, "SELECT count(*) AS n FROM torn WHERE b = 'sacrifice'")
        .first()
        .and_then(|r| r["n"].as_u64())
        .unwrap();
    println!("torn batch: {sacrificed} of 100 lines present after restart");

    // The server keeps working on the repaired WAL, across another crash.
    srv.write_ok(db, torn_batch("c0", 30), "precision=ns");
    srv.kill();
    srv.restart();
    assert_batches(&srv, db, &early);
    assert_batches(&srv, db, &[("c0", 30)]);

    // Garbage after the last complete entry (a torn append of a next entry) loses nothing.
    srv.kill();
    let (file, len) = newest_wal_file(&srv);
    let mut f = OpenOptions::new().append(true).open(&file).unwrap();
    std::io::Write::write_all(&mut f, &[0u8; 7]).unwrap();
    std::io::Write::write_all(&mut f, b"\x13\x37garbage").unwrap();
    drop(f);
    println!(
        "appended 16 bytes of garbage to {} ({len} bytes)",
        file.display()
    );
    srv.restart();
    assert_batches(&srv, db, &early);
    assert_batches(&srv, db, &[("c0", 30)]);
    srv.write_ok(db, torn_batch("d0", 10), "precision=ns");
    srv.kill();
    srv.restart();
    assert_batches(&srv, db, &early);
    assert_batches(&srv, db, &[("c0", 30), ("d0", 10)]);
    srv.assert_alive();
}

#[test]
fn sigterm_flushes_no_sync_writes() {
    // A long flush interval, so the no_sync writes are most likely still only in memory when
    // SIGTERM arrives.
    let mut srv = Server::start(&["--wal-flush-interval", "10s"]);
    let db = "termdb";
    let uuid_before = srv.get("/health").header("cluster-uuid");
    let pid_before = srv.get("/ping").json()["process_id"].clone();
    let mut expected = Vec::new();
    for batch in 0..5u64 {
        let body: String = (0..40u64)
            .map(|i| {
                let seq = batch * 40 + i;
                expected.push(seq);
                format!("ns,b=b{batch} seq={seq}i {}\n", NS + seq as i64)
            })
            .collect();
        let resp = srv.write_lp(db, body, "precision=ns&no_sync=true");
        assert_eq!(resp.status, 204, "{}", resp.describe());
    }
    let status = srv.stop();
    assert!(
        status.success(),
        "graceful shutdown exited with {status}; log:\n{}",
        srv.log()
    );

    srv.restart();
    let got: Vec<u64> = srv
        .sql(db, "SELECT seq FROM ns ORDER BY seq")
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        got,
        expected,
        "no_sync writes lost across SIGTERM; log:\n{}",
        srv.log()
    );
    assert_eq!(
        srv.get("/health").header("cluster-uuid"),
        uuid_before,
        "cluster-uuid (the catalog's) changed across a restart"
    );
    let pid_after: Value = srv.get("/ping").json()["process_id"].clone();
    assert_ne!(pid_after, pid_before, "process_id identifies the process");

    // A second graceful cycle after normal (synced) writes.
    srv.write_ok(db, "ns,b=z seq=1000i 1", "precision=ns");
    assert!(srv.stop().success());
    srv.restart();
    assert_eq!(
        srv.sql(db, "SELECT count(*) AS n FROM ns"),
        vec![serde_json::json!({"n": 201})]
    );
    srv.assert_alive();
}
