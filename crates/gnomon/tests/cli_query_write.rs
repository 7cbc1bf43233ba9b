//! `gnomon query` and `gnomon write` against the real server: what they print, the files they
//! write, batching of large inputs (line numbers of rejected lines are positions in the whole
//! input), and exit codes when the server refuses or cannot be reached.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::{unique_name, Server, NS, S};

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    Server::shared(&SERVER, &[])
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn cli_with_stdin(host: &str, args: &[&str], stdin: Option<&[u8]>) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gnomon"))
        .args(args)
        .env("GNOMON_HOST", host)
        .env_remove("GNOMON_DATABASE")
        .env_remove("GNOMON_TOKEN")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the CLI");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn cli(args: &[&str]) -> Out {
    cli_with_stdin(&server().url(""), args, None)
}

fn count(db: &str, table: &str) -> i64 {
    let rows = server().sql(db, &format!("SELECT count(*) AS n FROM {table}"));
    rows[0]["n"].as_i64().unwrap()
}

#[test]
fn write_then_query_in_every_format() {
    let db = unique_name("cliq");
    let lp = format!(
        "cpu,host=a usage=1.5,n=3i {t1}\ncpu,host=b usage=2,n=4i {t2}",
        t1 = NS,
        t2 = NS + 1_000_000_000
    );
    let out = cli(&["write", "-d", &db, &lp]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "2 lines written, 0 rejected");

    let sql = "SELECT host, n, usage, time FROM cpu ORDER BY host";
    let out = cli(&["query", "-d", &db, sql, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "[{\"host\":\"a\",\"n\":3,\"usage\":1.5,\"time\":\"2023-11-14T22:13:20\"},\
         {\"host\":\"b\",\"n\":4,\"usage\":2.0,\"time\":\"2023-11-14T22:13:21\"}]\n"
    );
    let out = cli(&["query", "-d", &db, sql, "--format", "csv"]);
    assert_eq!(
        out.stdout,
        "host,n,usage,time\na,3,1.5,2023-11-14T22:13:20\nb,4,2.0,2023-11-14T22:13:21\n"
    );
    let out = cli(&["query", "-d", &db, sql, "--format", "jsonl"]);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    // Pretty is the default, as in influxdb3.
    let out = cli(&["query", "-d", &db, "SELECT host FROM cpu ORDER BY host"]);
    assert_eq!(
        out.stdout,
        "+------+\n| host |\n+------+\n| a    |\n| b    |\n+------+\n"
    );

    // Query text from a file, InfluxQL.
    let dir = tempfile::tempdir().unwrap();
    let qfile = dir.path().join("q.influxql");
    std::fs::write(&qfile, "SELECT usage FROM cpu WHERE host = 'b'").unwrap();
    let qpath = qfile.to_str().unwrap();
    let out = cli(&[
        "query", "-d", &db, "-l", "influxql", "-f", qpath, "--format", "csv",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "iox::measurement,time,usage\ncpu,2023-11-14T22:13:21,2.0\n"
    );

    // Parquet needs a file; the file is a Parquet file holding the rows.
    let out = cli(&["query", "-d", &db, sql, "--format", "parquet"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("-o/--output"), "{}", out.stderr);
    let pq = dir.path().join("out.parquet");
    let out = cli(&[
        "query",
        "-d",
        &db,
        sql,
        "--format",
        "parquet",
        "-o",
        pq.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    let bytes = std::fs::read(&pq).unwrap();
    assert!(bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"));
    // -o with a text format writes exactly the server's body (no added newline).
    let json_file = dir.path().join("out.json");
    let out = cli(&[
        "query",
        "-d",
        &db,
        "SELECT n FROM cpu ORDER BY n",
        "--format",
        "json",
        "-o",
        json_file.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(&json_file).unwrap(),
        "[{\"n\":3},{\"n\":4}]"
    );
}

#[test]
fn query_errors_exit_1_with_the_servers_message() {
    let out = cli(&["query", "-d", "no_such_db_cli", "SELECT 1"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("Query command failed: server responded with error [404 Not Found]"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("database not found"), "{}", out.stderr);

    let db = unique_name("clie");
    assert_eq!(cli(&["write", "-d", &db, "m f=1"]).code, 0);
    let out = cli(&["query", "-d", &db, "SELECT nope FROM m"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("[400 Bad Request]"), "{}", out.stderr);
    assert!(out.stderr.contains("nope"), "{}", out.stderr);
}

#[test]
fn unreachable_host_fails_both_commands() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("http://127.0.0.1:{port}");
    for args in [
        &["query", "-d", "db", "SELECT 1"][..],
        &["write", "-d", "db", "m f=1"][..],
    ] {
        let out = cli_with_stdin(&host, args, None);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("could not reach"), "{}", out.stderr);
    }
    let out = cli_with_stdin("ftp://x", &["query", "-d", "db", "SELECT 1"], None);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("invalid --host"), "{}", out.stderr);
}

/// 2,500 points (plus comments and blank lines) in batches of 1,000: one bad point in the
/// second batch is reported with its position among the file's points, the rest are written.
#[test]
fn large_file_in_batches_with_a_rejected_line() {
    let db = unique_name("cliw");
    let mut lp = String::from("# header comment\n\n");
    for i in 1..=2500 {
        if i == 1700 {
            lp.push_str("m,host=h f=\n");
        } else {
            lp.push_str(&format!("m,host=h{} f={i}i {}\n", i % 7, S + i));
        }
        if i % 500 == 0 {
            lp.push_str("\n# a comment between points\n");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.lp");
    std::fs::write(&file, &lp).unwrap();
    let out = cli(&[
        "write",
        "-d",
        &db,
        "-f",
        file.to_str().unwrap(),
        "--precision",
        "s",
        "--accept-partial",
        "--batch-lines",
        "1000",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let line_errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("line "))
        .collect();
    assert_eq!(line_errors.len(), 1, "{}", out.stderr);
    assert!(line_errors[0].starts_with("line 1700: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("2499 lines written, 1 rejected"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Write command failed: 1 line was rejected"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&db, "m"), 2499);
    let rows = server().sql(&db, "SELECT max(f) AS f, min(time) AS t FROM m");
    assert_eq!(rows[0]["f"], 2500);
    // Seconds precision was applied: the first point is at S + 1 seconds.
    assert_eq!(rows[0]["t"], "2023-11-14T22:13:21");
}

/// Without --accept-partial a bad line rejects its batch and stops the command: the batches
/// before it stay written, nothing after it is sent.
#[test]
fn bad_line_without_accept_partial_stops_the_write() {
    let db = unique_name("clin");
    let mut lp = String::new();
    for i in 1..=30 {
        if i == 15 {
            lp.push_str("m f=oops\n");
        } else {
            lp.push_str(&format!("m f={i} {}\n", NS + i));
        }
    }
    let out = cli_with_stdin(
        &server().url(""),
        &["write", "-d", &db, "--batch-lines", "10"],
        Some(lp.as_bytes()),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("line 15: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("10 lines written, 10 rejected"),
        "{}",
        out.stderr
    );
    assert_eq!(count(&db, "m"), 10);
}

#[test]
fn stdin_input_and_quiet() {
    let db = unique_name("clis");
    let out = cli_with_stdin(
        &server().url(""),
        &["write", "-d", &db, "-q", "--no-sync"],
        Some(b"t,k=v x=1 1\nt,k=w x=2 2\n"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    common::eventually(std::time::Duration::from_secs(10), "no_sync write", || {
        (count(&db, "t") == 2).then_some(())
    });
    // No points at all is an error, not a silent success.
    let out = cli_with_stdin(
        &server().url(""),
        &["write", "-d", &db],
        Some(b"# only a comment\n\n"),
    );
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no line protocol"), "{}", out.stderr);
}
