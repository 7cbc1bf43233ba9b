//! Bad input never panics the server: malformed line protocol, oversize and corrupt bodies,
//! bad parameters, bad queries. Each test checks the exact answer the spec (API.md §0, §2, §3,
//! LINE_PROTOCOL.md) prescribes, then that the process is still alive and healthy.
//!
//! Most tests share one server with default limits (unique database per test); the body-size
//! and schema-limit tests start their own small-limit servers.

mod common;

use std::io::Write;
use std::sync::OnceLock;

use common::{
    assert_body, gzip, line_err, partial_body, partial_write_errors, unique_name, v3_path, Resp,
    Server,
};
use serde_json::{json, Value};

static SERVER: OnceLock<Server> = OnceLock::new();

fn server() -> &'static Server {
    Server::shared(&SERVER, &[])
}

#[track_caller]
fn assert_prefix(resp: &Resp, status: u16, prefix: &str) {
    assert_eq!(resp.status, status, "{}", resp.describe());
    assert!(
        resp.text().starts_with(prefix),
        "body does not start with {prefix:?}:\n{}",
        resp.describe()
    );
}

/// A v2 error body `{"code":..,"message":..}`; returns the message.
#[track_caller]
fn v2_error(resp: &Resp, status: u16, code: &str) -> String {
    assert_eq!(resp.status, status, "{}", resp.describe());
    let body = resp.json();
    assert_eq!(body["code"], code, "{}", resp.describe());
    assert_eq!(body.as_object().unwrap().len(), 2, "{}", resp.describe());
    body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {}", resp.describe()))
        .to_string()
}

/// Tiny deterministic PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ------------------------------------------------------------------------------------------
// malformed line protocol
// ------------------------------------------------------------------------------------------

#[test]
fn malformed_lines_get_exact_parse_errors() {
    let srv = server();
    let db = unique_name("malformed");
    srv.write_ok(&db, "ok f=1 1", "precision=ns");
    let trailing = |t: &str| format!("Could not parse entire line. Found trailing content: `{t}`");
    const NO_FIELDS: &str = "No fields were provided";
    let cases: Vec<(&str, &str, String)> = vec![
        // (line, precision, message) — LINE_PROTOCOL.md §9
        ("m f=1 1.0", "ns", trailing(".0")),
        ("m f=1 1 2", "ns", trailing("2")),
        ("m f=1 ", "ns", trailing(" ")),
        (
            "m\tf=1",
            "ns",
            "Expected at least one space character, got `\tf=1`".into(),
        ),
        (
            "m",
            "ns",
            "Expected at least one space character, got end of input".into(),
        ),
        ("foo 1234", "ns", NO_FIELDS.into()),
        ("m f= 1", "ns", NO_FIELDS.into()),
        ("m f=.5", "ns", NO_FIELDS.into()),
        ("m f=-.5", "ns", NO_FIELDS.into()),
        ("m f=NaN", "ns", NO_FIELDS.into()),
        (",t=1 f=1", "ns", "Invalid measurement was provided".into()),
        ("m, f=1", "ns", "Expected tag key, got ` f=1`".into()),
        ("m,t= f=1", "ns", "Expected tag value, got ` f=1`".into()),
        (
            "m,t=,platanos=1 f=1",
            "ns",
            "Expected tag value, got `,platanos=...`".into(),
        ),
        (
            "m,t=a,b f=1",
            "ns",
            "Tag set malformed: could not find equals sign in `t=a,b f=1`".into(),
        ),
        (
            r"m\ f=1",
            "ns",
            "Expected at least one space character, got end of input".into(),
        ),
        (
            r"m\\ f=1",
            "ns",
            "Measurements, tag keys and values, and field keys may not end with a backslash".into(),
        ),
        ("m,t=\"a b\" f=1", "ns", NO_FIELDS.into()),
        (
            "m f=9223372036854775808i",
            "ns",
            "Unable to parse integer value `9223372036854775808`".into(),
        ),
        (
            "m f=18446744073709551616u",
            "ns",
            "Unable to parse unsigned integer value `18446744073709551616`".into(),
        ),
        ("m f=-1u", "ns", trailing("u")),
        ("m f=1.5e3i", "ns", trailing("i")),
        ("m f=tru", "ns", trailing("ru")),
        ("m f=t1", "ns", trailing("1")),
        ("m f=1,g=2,", "ns", trailing(",")),
        // No timestamp parses here, so the separating space is part of the trailing content
        // (as for `m f=1 `).
        ("m f=1 #c", "ns", trailing(" #c")),
        ("m f=1 1 abcdefghijklmnop", "ns", trailing("abcdefghij...")),
        (
            "m f=1 99999999999999999999",
            "ns",
            "Unable to parse timestamp value `99999999999999999999`".into(),
        ),
        (
            "m f=1 9223372036854775807",
            "s",
            "timestamp, 9223372036854775807, out of range for precision: Second".into(),
        ),
        (
            "m f=1 9223372036854775807",
            "ms",
            "timestamp, 9223372036854775807, out of range for precision: Millisecond".into(),
        ),
        (
            "m f=1 -9223372036854775807",
            "us",
            "timestamp, -9223372036854775807, out of range for precision: Microsecond".into(),
        ),
        (
            "m,t=1,t=2 f=1",
            "ns",
            "Must not contain duplicate tags, but `t` was repeated".into(),
        ),
    ];
    let mut failures = Vec::new();
    for (line, precision, message) in &cases {
        let resp = srv.write_lp(&db, *line, &format!("precision={precision}"));
        let want = partial_body(&[line_err(message, 1, line)]);
        if resp.status != 400 || resp.text() != want {
            failures.push(format!(
                "line {line:?}:\n  want 400 {want}\n  got  {} {}",
                resp.status,
                resp.text()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // None of it was written.
    assert_eq!(srv.tables(&db), vec!["ok".to_string()]);
    srv.assert_alive();
}

#[test]
fn more_malformed_lines_are_rejected_one_line_error_each() {
    let srv = server();
    let db = unique_name("malformed2");
    let lines = [
        "m f=+1",
        "m f=inf",
        "m f=0x10",
        "m f=1e",
        "m f=1.",
        "m f=1 +5",
        "m f=1 1.5",
        "m f=-9223372036854775809i",
        "m f=yes",
        "m f=\"unterminated",
        "m f",
        "m f=",
        "m =1",
        "m,=x f=1",
        "m,t f=1",
        "m,t=1, f=1",
        "\r",
        "=",
        ",",
        "m\0x f=1",
        "m f=1,=2",
        "m f=1i2",
        "m f=\"x\"y",
        " f=1",
    ];
    for line in lines {
        let resp = srv.write_lp(&db, line, "precision=ns");
        assert_eq!(resp.status, 400, "line {line:?}: {}", resp.describe());
        let errors = partial_write_errors(&resp);
        assert_eq!(errors.len(), 1, "line {line:?}: {}", resp.describe());
        let e = errors[0].as_object().unwrap();
        assert_eq!(
            e.keys().collect::<Vec<_>>(),
            vec!["error_message", "line_number", "original_line"],
            "{}",
            resp.describe()
        );
        assert!(!e["error_message"].as_str().unwrap().is_empty());
        assert_eq!(e["line_number"], 1, "line {line:?}");
    }
    // CRLF bodies: every line ends with `\r`, which is trailing content.
    let resp = srv.write_lp(&db, "a f=1 1\r\nb f=2 2\r\n", "precision=ns");
    let errors = partial_write_errors(&resp);
    assert_eq!(resp.status, 400);
    let msgs: Vec<(&str, u64)> = errors
        .iter()
        .map(|e| {
            (
                e["error_message"].as_str().unwrap(),
                e["line_number"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = "Could not parse entire line. Found trailing content: `\r`";
    assert_eq!(msgs, vec![(want, 1), (want, 2)]);
    srv.assert_alive();
}

#[test]
fn every_type_conflict_is_a_line_error() {
    let srv = server();
    let db = unique_name("typematrix");
    let types = [
        ("1i", "integer"),
        ("1u", "uinteger"),
        ("1.5", "float"),
        ("\"s\"", "string"),
        ("true", "boolean"),
    ];
    for (i, (value, ty)) in types.iter().enumerate() {
        let table = format!("wt{i}");
        let mut lines = vec![format!("{table} v={value} 1")];
        let mut want = Vec::new();
        for (other, other_ty) in types.iter().filter(|(_, t)| t != ty) {
            let line = format!("{table} v={other} {}", lines.len() + 1);
            want.push(line_err(
                &format!(
                    "invalid column type for column 'v', expected iox::column_type::field::{ty}, got iox::column_type::field::{other_ty}"
                ),
                lines.len() + 1,
                &line,
            ));
            lines.push(line);
        }
        let resp = srv.write_lp(&db, lines.join("\n"), "precision=s");
        assert_body(&resp, 400, &partial_body(&want));
        assert_eq!(srv.times(&db, &table), vec![1_000_000_000]);
    }
    srv.assert_alive();
}

#[test]
fn many_bad_lines_are_all_reported_with_their_numbers() {
    let srv = server();
    let db = unique_name("manybad");
    let mut body = String::new();
    for i in 1..=1000 {
        if i % 2 == 0 {
            body.push_str(&format!("mb,i={i} v={i} {i}\n"));
        } else {
            body.push_str(&format!("mb,i={i} v= {i}\n"));
        }
    }
    let resp = srv.write_lp(&db, body, "precision=s");
    assert_eq!(resp.status, 400, "{}", resp.describe());
    let errors = partial_write_errors(&resp);
    let numbers: Vec<u64> = errors
        .iter()
        .map(|e| e["line_number"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (1..=1000).filter(|i| i % 2 == 1).collect();
    assert_eq!(numbers, want);
    assert_eq!(
        srv.sql(&db, "SELECT count(*) AS n FROM mb"),
        vec![json!({"n": 500})]
    );
    srv.assert_alive();
}

// ------------------------------------------------------------------------------------------
// long strings and huge lines
// ------------------------------------------------------------------------------------------

#[test]
fn strings_longer_than_64kb_are_rejected_and_original_line_is_capped() {
    let srv = server();
    let db = unique_name("long");
    const MSG: &str = "String is greater than 64KB";

    // Exactly 65,536 bytes is accepted and round-trips.
    let max = "x".repeat(65_536);
    srv.write_ok(&db, format!("ok v=\"{max}\" 1"), "precision=s");
    let rows = srv.sql(&db, "SELECT v FROM ok");
    assert_eq!(rows[0]["v"].as_str().map(str::len), Some(65_536));

    // 65,537 bytes after unescaping, in every element.
    let over = "y".repeat(65_537);
    let cases = [
        format!("ok v=\"{over}\" 2"),
        format!("{over} v=1 2"),
        format!("ok,{over}=a v=1 2"),
        format!("ok,t={over} v=1 2"),
        format!("ok {over}=1 2"),
        // 70 KB string field.
        format!("ok v=\"{}\" 3", "z".repeat(70_000)),
        // 65,537 escaped quotes: 65,537 bytes after unescaping.
        format!("ok v=\"{}\" 4", "\\\"".repeat(65_537)),
    ];
    for line in &cases {
        let resp = srv.write_lp(&db, line.as_str(), "precision=s");
        assert_body(
            &resp,
            400,
            &partial_body(&[line_err(MSG, 1, &line[..1024])]),
        );
    }
    // The limit applies after unescaping: 40,000 escaped quotes are 80,000 bytes on the wire
    // but 40,000 bytes of string, which is accepted.
    srv.write_ok(
        &db,
        format!("ok v=\"{}\" 5", "\\\"".repeat(40_000)),
        "precision=s",
    );

    // original_line is cut at 1024 bytes, back to a character boundary.
    let line = format!("ok v=\"{}\" 6", "é".repeat(40_000));
    let resp = srv.write_lp(&db, line.as_str(), "precision=s");
    assert_eq!(resp.status, 400, "{}", resp.describe());
    let errors = partial_write_errors(&resp);
    assert_eq!(errors[0]["error_message"], MSG);
    let original = errors[0]["original_line"].as_str().unwrap();
    assert!(
        line.starts_with(original),
        "original_line is not a prefix of the line"
    );
    assert!(
        (1021..=1024).contains(&original.len()),
        "original_line is {} bytes",
        original.len()
    );
    assert_eq!(srv.times(&db, "ok"), vec![1_000_000_000, 5_000_000_000]);
    srv.assert_alive();
}

#[test]
fn nine_megabyte_single_line_and_nine_megabyte_body() {
    let srv = server();
    let db = unique_name("huge");
    // One 9 MB line (under the 10 MiB body limit): its string is far over 64 KB.
    let line = format!("big v=\"{}\" 1", "x".repeat(9 * 1024 * 1024));
    let resp = srv.write_lp(&db, line.as_str(), "precision=s");
    assert_body(
        &resp,
        400,
        &partial_body(&[line_err("String is greater than 64KB", 1, &line[..1024])]),
    );
    drop(line);

    // A 9 MB body of valid lines is written completely.
    let mut body = String::with_capacity(9_500_000);
    let pad = "p".repeat(150);
    let mut n: i64 = 0;
    while body.len() < 9 * 1024 * 1024 {
        n += 1;
        body.push_str(&format!("bulk,host=h{} v={n}i,s=\"{pad}\" {n}\n", n % 100));
    }
    assert!(body.len() < 10 * 1024 * 1024);
    srv.write_ok(&db, body, "precision=s");
    assert_eq!(
        srv.sql(&db, "SELECT count(*) AS n, sum(v) AS s FROM bulk"),
        vec![json!({"n": n, "s": n * (n + 1) / 2})]
    );
    srv.assert_alive();
}

// ------------------------------------------------------------------------------------------
// request body size
// ------------------------------------------------------------------------------------------

/// Valid line protocol of exactly `size` bytes for `table` (lines of ~1000 bytes).
fn body_of_exact_size(table: &str, size: usize) -> Vec<u8> {
    let mut body = String::with_capacity(size);
    let mut i = 0;
    loop {
        i += 1;
        let remaining = size - body.len();
        let head = format!("{table},i={i} v=\"");
        let tail = format!("\" {i}\n");
        let line_len = if remaining < 2000 { remaining } else { 1000 };
        let pad = line_len - head.len() - tail.len();
        body.push_str(&head);
        body.push_str(&"x".repeat(pad));
        body.push_str(&tail);
        if body.len() == size {
            return body.into_bytes();
        }
    }
}

/// `size` bytes of valid line protocol, gzip-compressed in a streaming fashion.
fn gzip_lines_of_size(size: usize) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let line = b"bomb v=1 1\n"; // 11 bytes
    let chunk: Vec<u8> = line.iter().copied().cycle().take(11 * 100_000).collect();
    let mut written = 0;
    while written < size {
        let n = (size - written).min(chunk.len());
        enc.write_all(&chunk[..n]).unwrap();
        written += n;
    }
    enc.finish().unwrap()
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 1000 + 16);
    for c in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn bodies_over_max_http_request_size_get_413() {
    const LIMIT: usize = 1024 * 1024;
    let srv = Server::start(&["--max-http-request-size", "1048576"]);
    let db = unique_name("sizes");
    const MSG: &str = "max request size (1048576 bytes) exceeded";

    // Exactly at the limit: accepted.
    let body = body_of_exact_size("atlimit", LIMIT);
    assert_eq!(body.len(), LIMIT);
    let resp = srv.post(&v3_path(&db, "precision=s"), body);
    assert_body(&resp, 204, "");

    // One byte over, with Content-Length: v3 and v1 plain text, v2 JSON.
    let over = body_of_exact_size("over", LIMIT + 1);
    for path in [
        v3_path(&db, "precision=s"),
        format!("/write?db={db}&precision=s"),
    ] {
        let r = srv.raw_request(
            &format!(
                "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close",
                over.len()
            ),
            over.clone(),
        );
        assert_eq!((r.status, r.text().as_str()), (413, MSG), "{path}");
    }
    let r = srv.raw_request(
        &format!(
            "POST /api/v2/write?bucket={db}&precision=s HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close",
            over.len()
        ),
        over.clone(),
    );
    assert_eq!(r.status, 413, "v2: {}", r.text());
    let v2: Value = serde_json::from_slice(&r.body).expect("v2 413 body is JSON");
    assert_eq!(v2["code"], "request too large", "{v2}");
    assert!(v2["message"].as_str().unwrap_or("").contains(MSG), "{v2}");

    // Chunked (no Content-Length) over the limit.
    let r = srv.raw_request(
        &format!(
            "POST {} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close",
            v3_path(&db, "precision=s")
        ),
        chunked(&over),
    );
    assert_eq!((r.status, r.text().as_str()), (413, MSG), "chunked");
    // Much bigger (8 MiB), to be sure the server stops reading rather than buffering all.
    let big = body_of_exact_size("big", 8 * LIMIT);
    let r = srv.raw_request(
        &format!(
            "POST {} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close",
            v3_path(&db, "precision=s"),
            big.len()
        ),
        big,
    );
    assert_eq!((r.status, r.text().as_str()), (413, MSG), "8 MiB");
    assert!(!srv.tables(&db).contains(&"over".to_string()));
    assert!(!srv.tables(&db).contains(&"big".to_string()));

    // Gzip: the limit applies to the inflated size too.
    let gz = [("Content-Encoding", "gzip")];
    let exact = gzip(body_of_exact_size("gzexact", LIMIT));
    assert!(exact.len() < LIMIT);
    assert_body(
        &srv.post_with(&v3_path(&db, "precision=s"), &gz, exact),
        204,
        "",
    );
    let one_over = gzip(body_of_exact_size("gzover", LIMIT + 1));
    assert_body(
        &srv.post_with(&v3_path(&db, "precision=s"), &gz, one_over.clone()),
        413,
        MSG,
    );
    assert_body(
        &srv.post_with(
            &format!("/write?db={db}&precision=s"),
            &gz,
            one_over.clone(),
        ),
        413,
        MSG,
    );
    let msg = v2_error(
        &srv.post_with(
            &format!("/api/v2/write?bucket={db}&precision=s"),
            &gz,
            one_over,
        ),
        413,
        "request too large",
    );
    assert!(msg.contains(MSG), "{msg}");
    // A gzip bomb: ~64 KB on the wire, 64 MiB inflated.
    let bomb = gzip_lines_of_size(64 * 1024 * 1024);
    assert!(bomb.len() < LIMIT, "bomb is {} bytes", bomb.len());
    assert_body(
        &srv.post_with(&v3_path(&db, "precision=s"), &gz, bomb.clone()),
        413,
        MSG,
    );
    // Also as a multi-member stream whose first member is small and valid.
    let mut multi = gzip("bomb2 v=1 1\n");
    multi.extend(bomb);
    assert_body(
        &srv.post_with(&v3_path(&db, "precision=s"), &gz, multi),
        413,
        MSG,
    );
    let tables = srv.tables(&db);
    assert!(!tables.contains(&"gzover".to_string()), "{tables:?}");
    assert!(!tables.contains(&"bomb".to_string()), "{tables:?}");
    assert!(!tables.contains(&"bomb2".to_string()), "{tables:?}");
    assert_eq!(srv.sql(&db, "SELECT count(*) AS n FROM gzexact").len(), 1);

    srv.assert_alive();
    srv.write_ok(&db, "after v=1 1", "precision=s");
    assert_eq!(srv.times(&db, "after"), vec![1_000_000_000]);
}

// ------------------------------------------------------------------------------------------
// body encoding
// ------------------------------------------------------------------------------------------

#[test]
fn invalid_utf8_bodies_are_400() {
    let srv = server();
    let db = unique_name("utf8");
    let bad: &[u8] = b"m f=\"\xff\xfe\" 1\nm f=\"ok\" 2";
    const PREFIX: &str = "body content is not valid utf8";
    assert_prefix(&srv.post(&v3_path(&db, "precision=s"), bad), 400, PREFIX);
    assert_prefix(
        &srv.post(&format!("/write?db={db}&precision=s"), bad),
        400,
        PREFIX,
    );
    let gz = [("Content-Encoding", "gzip")];
    assert_prefix(
        &srv.post_with(&v3_path(&db, "precision=s"), &gz, gzip(bad)),
        400,
        PREFIX,
    );
    // Invalid UTF-8 in the measurement, and a truncated multi-byte sequence at the end.
    assert_prefix(
        &srv.post(&v3_path(&db, "precision=s"), b"m\xc3 f=1 1".to_vec()),
        400,
        PREFIX,
    );
    assert_prefix(
        &srv.post(&v3_path(&db, "precision=s"), b"m f=1 1\n\xe2\x82".to_vec()),
        400,
        PREFIX,
    );
    let msg = v2_error(
        &srv.post(&format!("/api/v2/write?bucket={db}&precision=s"), bad),
        400,
        "invalid",
    );
    assert!(!msg.is_empty());
    // Nothing of the body was written (the good second line neither).
    if srv.database_exists(&db) {
        assert!(srv.tables(&db).is_empty(), "{:?}", srv.tables(&db));
    }
    srv.assert_alive();
}

#[test]
fn corrupt_gzip_bodies_are_400() {
    let srv = server();
    let db = unique_name("badgz");
    let gz = [("Content-Encoding", "gzip")];
    const PREFIX: &str = "error decoding gzip stream";
    let good = gzip("cg v=1 1\ncg v=2 2\n");
    let truncated = good[..good.len() / 2].to_vec();
    let mut bad_crc = good.clone();
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff; // CRC32 in the trailer
    let mut bad_len = good.clone();
    bad_len[n - 1] ^= 0x01; // ISIZE in the trailer
    let mut trailing_garbage = good.clone();
    trailing_garbage.extend_from_slice(b"not a gzip member");
    let mut bad_deflate = good.clone();
    for b in &mut bad_deflate[10..n - 8] {
        *b = 0xff;
    }
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("plain text", b"this is not gzip".to_vec()),
        ("truncated", truncated),
        ("bad crc", bad_crc),
        ("bad length", bad_len),
        ("trailing garbage", trailing_garbage),
        ("bad deflate data", bad_deflate),
        ("magic only", vec![0x1f, 0x8b]),
    ];
    for (what, body) in &bodies {
        assert_prefix(
            &srv.post_with(&v3_path(&db, "precision=s"), &gz, body.clone()),
            400,
            PREFIX,
        );
        assert_prefix(
            &srv.post_with(&format!("/write?db={db}&precision=s"), &gz, body.clone()),
            400,
            PREFIX,
        );
        let msg = v2_error(
            &srv.post_with(
                &format!("/api/v2/write?bucket={db}&precision=s"),
                &gz,
                body.clone(),
            ),
            400,
            "invalid",
        );
        assert!(msg.contains(PREFIX), "{what}: v2 message {msg:?}");
    }
    if srv.database_exists(&db) {
        assert!(
            srv.tables(&db).is_empty(),
            "nothing written: {:?}",
            srv.tables(&db)
        );
    }
    srv.assert_alive();
}

#[test]
fn unknown_content_encoding_is_400() {
    let srv = server();
    let db = unique_name("enc");
    for encoding in ["br", "deflate", "zstd", "gzip, br"] {
        let headers = [("Content-Encoding", encoding)];
        assert_body(
            &srv.post_with(&v3_path(&db, "precision=s"), &headers, "m f=1 1"),
            400,
            &format!("unacceptable content-encoding: {encoding}"),
        );
        assert_body(
            &srv.post_with(&format!("/write?db={db}&precision=s"), &headers, "m f=1 1"),
            400,
            &format!("unacceptable content-encoding: {encoding}"),
        );
        let msg = v2_error(
            &srv.post_with(
                &format!("/api/v2/write?bucket={db}&precision=s"),
                &headers,
                "m f=1 1",
            ),
            400,
            "invalid",
        );
        assert!(msg.contains("unacceptable content-encoding"), "{msg}");
    }
    assert!(!srv.database_exists(&db) || srv.tables(&db).is_empty());
    srv.assert_alive();
}

// ------------------------------------------------------------------------------------------
// parameters
// ------------------------------------------------------------------------------------------

#[test]
fn v3_bad_parameters() {
    let srv = server();
    let db = unique_name("params");
    let body = "m f=1 1";
    assert_body(
        &srv.post("/api/v3/write_lp", body),
        400,
        "missing query parameter 'db'",
    );
    assert_body(
        &srv.post("/api/v3/write_lp?precision=ns", body),
        400,
        "serde error: missing field `db`",
    );
    for query in [
        "precision=minute",
        "precision=h",
        "precision=",
        "accept_partial=yes",
        "accept_partial=1",
        "accept_partial=TRUE",
        "no_sync=yes",
        "no_sync=",
    ] {
        assert_prefix(&srv.write_lp(&db, body, query), 400, "serde error: ");
    }
    assert!(
        !srv.database_exists(&db),
        "a rejected request must not create the database"
    );
    // Unknown parameters are ignored.
    srv.write_ok(&db, body, "precision=s&foo=bar&org=x");
    assert_eq!(srv.times(&db, "m"), vec![1_000_000_000]);
    srv.assert_alive();
}

#[test]
fn invalid_database_names() {
    let srv = server();
    let body = "m f=1 1";
    let e = |msg: &str| format!(r#"{{"error":"{msg}"}}"#);
    let empty = e("db name cannot be empty");
    let too_long = e("db name too long: max 511");
    let bad_start = e("db name did not start with a number or letter");
    let bad_char = e("invalid character in database or rp name: must be ASCII, containing only letters, numbers, underscores, or hyphens");
    let bad_rp = e("db name with invalid retention policy, if providing a retention policy name, must be of form '<db_name>/<rp_name>'");
    let long_name = "a".repeat(512);
    let cases: Vec<(&str, &String)> = vec![
        ("", &empty),
        (long_name.as_str(), &too_long),
        ("_foo", &bad_start),
        ("-foo", &bad_start),
        ("/foo", &bad_start),
        ("aü", &bad_char),
        ("a.b", &bad_char),
        ("a b", &bad_char),
        ("a$b", &bad_char),
        ("a\"b", &bad_char),
        ("a/b/c", &bad_rp),
        ("a//b", &bad_rp),
        ("a/", &bad_rp),
    ];
    for (name, want) in &cases {
        let resp = srv.write_lp(name, body, "precision=s");
        assert_body(&resp, 400, want);
    }
    // Edge cases that are valid.
    let ok_511 = format!("b{}", "a".repeat(510));
    for name in [
        ok_511.as_str(),
        "9lives",
        "A-b_c",
        &format!("{}/rp_1", unique_name("withrp")),
    ] {
        srv.write_ok(name, body, "precision=s");
        assert_eq!(srv.times(name, "m"), vec![1_000_000_000], "{name}");
    }

    // v1: NamespaceName rules (≤ 64 chars) first, then the v3 rules.
    assert_body(
        &srv.post("/write", body),
        400,
        r#"{"error":"no db destination provided"}"#,
    );
    assert_prefix(
        &srv.post("/write?precision=s", body),
        400,
        r#"{"error":"failed to deserialize db/rp/precision in request: "#,
    );
    assert_prefix(
        &srv.post(
            &format!("/write?db={}&precision=fortnight", unique_name("v1p")),
            body,
        ),
        400,
        r#"{"error":"failed to deserialize db/rp/precision in request: "#,
    );
    let name65 = "c".repeat(65);
    assert_body(
        &srv.write_v1(&format!("db={name65}"), body),
        400,
        &e(&format!(
            "namespace name {name65} length must be between 1 and 64 characters"
        )),
    );
    assert_prefix(
        &srv.write_v1("db=a.b", body),
        400,
        r#"{"error":"namespace name 'a.b' contains invalid character"#,
    );
    assert_body(&srv.write_v1("db=_foo", body), 400, &bad_start);

    // v2: always {"code","message"}.
    assert_eq!(
        v2_error(&srv.post("/api/v2/write", body), 400, "invalid"),
        "no org/bucket destination provided"
    );
    assert_eq!(
        v2_error(&srv.write_v2("bucket=", body), 400, "invalid"),
        "missing bucket value"
    );
    let msg = v2_error(
        &srv.write_v2(&format!("bucket={}&precision=x", unique_name("v2p")), body),
        400,
        "invalid",
    );
    assert!(
        msg.starts_with("failed to deserialize org/bucket/precision in request: "),
        "{msg}"
    );
    let msg = v2_error(&srv.write_v2("bucket=_foo", body), 400, "invalid");
    assert!(
        msg.contains("did not start with a number or letter"),
        "{msg}"
    );
    let msg = v2_error(
        &srv.write_v2(&format!("bucket={name65}"), body),
        400,
        "invalid",
    );
    assert!(
        msg.contains("length must be between 1 and 64 characters"),
        "{msg}"
    );
    // A query string without `bucket` (API.md §2.3: missing or empty bucket).
    assert_eq!(
        v2_error(&srv.write_v2("org=x", body), 400, "invalid"),
        "missing bucket value"
    );
    srv.assert_alive();
}

#[test]
fn empty_bodies_are_400_and_create_no_database() {
    let srv = server();
    for body in [
        "",
        "\n",
        "\n\n   \n\t\n",
        "# just a comment\n",
        "# a\n\n# b",
    ] {
        let db = unique_name("empty");
        assert_body(
            &srv.write_lp(&db, body, "precision=s"),
            400,
            "incoming write was empty",
        );
        assert_body(
            &srv.write_v1(&format!("db={db}"), body),
            400,
            "incoming write was empty",
        );
        assert_eq!(
            v2_error(&srv.write_v2(&format!("bucket={db}"), body), 400, "invalid"),
            "write buffer error: incoming write was empty"
        );
        let gz = [("Content-Encoding", "gzip")];
        assert_body(
            &srv.post_with(&v3_path(&db, "precision=s"), &gz, gzip(body)),
            400,
            "incoming write was empty",
        );
        assert!(
            !srv.database_exists(&db),
            "empty write created database {db}"
        );
    }
    srv.assert_alive();
}

// ------------------------------------------------------------------------------------------
// queries
// ------------------------------------------------------------------------------------------

#[test]
fn query_errors() {
    let srv = server();
    let db = unique_name("qerr");
    srv.write_ok(&db, "cpu,host=a usage=1 1", "precision=s");

    let missing = unique_name("nodb");
    assert_body(
        &srv.query_sql(&missing, "SELECT 1", "json"),
        404,
        &format!(r#"{{"error":"query error: database not found: {missing}"}}"#),
    );
    assert_prefix(
        &srv.query_sql(&db, "SELEC * FROM cpu", "json"),
        400,
        "SQL error",
    );
    assert_prefix(
        &srv.query_sql(&db, "SELECT * FROM", "json"),
        400,
        "SQL error",
    );
    let resp = srv.query_sql(&db, "SELECT * FROM nope", "json");
    assert_eq!(resp.status, 400, "{}", resp.describe());
    assert!(
        resp.text().contains("table 'public.iox.nope' not found"),
        "{}",
        resp.describe()
    );
    let resp = srv.query_sql(&db, "SELECT no_such_column FROM cpu", "json");
    assert_eq!(resp.status, 400, "{}", resp.describe());
    for format in ["xml", "JSON", ""] {
        assert_prefix(
            &srv.query_sql(&db, "SELECT 1", format),
            400,
            "serde error: ",
        );
    }
    assert_body(
        &srv.get("/api/v3/query_sql"),
        400,
        "missing query parameters 'db' and 'q'",
    );
    assert_prefix(
        &srv.get(&format!("/api/v3/query_sql?db={db}")),
        400,
        "serde error: ",
    );
    assert_prefix(
        &srv.get("/api/v3/query_sql?q=SELECT%201"),
        400,
        "serde error: ",
    );
    let resp = srv.request(
        reqwest::Method::GET,
        &format!("/api/v3/query_sql?db={db}&q=SELECT%201"),
        &[("Accept", "application/jsonl")],
        None,
    );
    assert_body(&resp, 400, "invalid mime type (application/jsonl)");
    // POST bodies: malformed JSON and the seed's key names.
    assert_prefix(
        &srv.post("/api/v3/query_sql", "{not json"),
        400,
        "serde json error: ",
    );
    let seed_keys = json!({"database": db, "query_str": "SELECT 1"}).to_string();
    assert_eq!(srv.post("/api/v3/query_sql", seed_keys).status, 400);
    // A query that fails only at execution time is not a crash either.
    let resp = srv.query_sql(&db, "SELECT CAST('x' AS INT) FROM cpu", "json");
    assert!(
        resp.status >= 400 && resp.status < 600,
        "{}",
        resp.describe()
    );
    // Still answering normal queries.
    assert_eq!(
        srv.sql(&db, "SELECT host, usage FROM cpu"),
        vec![json!({"host": "a", "usage": 1.0})]
    );
    srv.assert_alive();
}

// ------------------------------------------------------------------------------------------
// limits
// ------------------------------------------------------------------------------------------

#[test]
fn database_table_and_column_limits() {
    let srv = Server::start(&[
        "--num-database-limit",
        "2",
        "--num-table-limit",
        "3",
        "--num-total-columns-per-table-limit",
        "4",
    ]);
    let (db1, db2, db3) = (
        unique_name("lim1"),
        unique_name("lim2"),
        unique_name("lim3"),
    );
    srv.write_ok(&db1, "c a=1,b=2,c=3,d=4 1", "precision=s");
    srv.write_ok(&db2, "t2 v=1 1", "precision=s");

    // Third database.
    for resp in [
        srv.write_lp(&db3, "t v=1 1", "precision=s"),
        srv.write_v1(&format!("db={db3}&precision=s"), "t v=1 1"),
    ] {
        assert_eq!(resp.status, 422, "{}", resp.describe());
        let body = resp.json();
        assert_eq!(body.as_object().unwrap().len(), 1, "{}", resp.describe());
        let msg = body["error"].as_str().unwrap();
        assert!(
            msg.starts_with("Adding a new database would exceed limit of"),
            "{msg}"
        );
        assert!(msg.contains('2'), "{msg}");
    }
    assert!(!srv.database_exists(&db3));

    // Fifth column of table `c` (time not counted): a line error, v3 answers 422, the good
    // line of the same request is written.
    let resp = srv.write_lp(&db1, "c a=6 3\nc e=5 3", "precision=s");
    assert_eq!(resp.status, 422, "{}", resp.describe());
    let errors = partial_write_errors(&resp);
    assert_eq!(errors.len(), 1, "{}", resp.describe());
    let msg = errors[0]["error_message"].as_str().unwrap();
    assert!(
        msg.starts_with("Update to schema would exceed number of"),
        "{msg}"
    );
    assert!(msg.contains("column") && msg.contains('4'), "{msg}");
    assert_eq!(errors[0]["line_number"], 2);
    assert_eq!(errors[0]["original_line"], "c e=5 3");
    assert_eq!(srv.times(&db1, "c"), vec![1_000_000_000, 3_000_000_000]);

    // Fourth table across all databases.
    srv.write_ok(&db1, "t3 v=1 1", "precision=s");
    let resp = srv.write_lp(&db1, "t4 v=1 1\nc a=7 4", "precision=s");
    assert_eq!(resp.status, 422, "{}", resp.describe());
    let errors = partial_write_errors(&resp);
    assert_eq!(errors.len(), 1, "{}", resp.describe());
    let msg = errors[0]["error_message"].as_str().unwrap();
    assert!(
        msg.starts_with("Update to schema would exceed number of"),
        "{msg}"
    );
    assert!(msg.contains("table") && msg.contains('3'), "{msg}");
    assert_eq!(errors[0]["line_number"], 1);
    assert_eq!(
        srv.times(&db1, "c"),
        vec![1_000_000_000, 3_000_000_000, 4_000_000_000]
    );
    assert_eq!(srv.tables(&db1), vec!["c".to_string(), "t3".to_string()]);

    // v1 is all-or-nothing: limit error → 4xx, nothing written.
    let resp = srv.write_v1(&format!("db={db2}&precision=s"), "t2 v=2 2\nt5 v=1 1");
    assert!(
        resp.status == 400 || resp.status == 422,
        "{}",
        resp.describe()
    );
    assert_eq!(srv.times(&db2, "t2"), vec![1_000_000_000]);

    // Existing databases, tables and columns keep working.
    srv.write_ok(&db2, "t2 v=2 2", "precision=s");
    srv.write_ok(&db1, "c a=1,b=2,c=3,d=4 5", "precision=s");
    assert_eq!(srv.times(&db2, "t2"), vec![1_000_000_000, 2_000_000_000]);

    // v2 wraps the database-limit error in its `invalid` family: 400 (API.md §2.3).
    let msg = v2_error(
        &srv.write_v2(&format!("bucket={db3}&precision=s"), "t v=1 1"),
        400,
        "invalid",
    );
    assert!(
        msg.contains("Adding a new database would exceed limit of"),
        "{msg}"
    );
    assert!(!srv.database_exists(&db3));
    srv.assert_alive();
}

// ------------------------------------------------------------------------------------------
// random garbage
// ------------------------------------------------------------------------------------------

#[test]
fn mutated_line_protocol_never_breaks_the_server() {
    let srv = server();
    let db = unique_name("fuzz");
    let seed = common::now_ns() as u64 | 1;
    println!("fuzz seed: {seed}");
    let mut rng = Rng(seed);
    let templates: [&[u8]; 4] = [
        b"cpu,host=a,region=us-west usage=0.5,count=3i,msg=\"hi there\",ok=true 1700000000000000000",
        b"mem\\ x,t\\,k=v\\=1 free=10u,used=-2i 1700000000",
        b"disk path=\"/var/log \\\"x\\\"\",pct=99.5e-1 -5",
        b"net,if=eth0 rx=1i,tx=2u,err=F",
    ];
    let alphabet: &[u8] = b" ,=\"\\\n\t#iu.-+eE0123456789abcxyzTF";
    let mut statuses = std::collections::BTreeMap::new();
    for round in 0..120 {
        let mut body = Vec::new();
        for _ in 0..10 {
            let mut line = templates[rng.below(templates.len())].to_vec();
            for _ in 0..1 + rng.below(4) {
                let pos = rng.below(line.len() + 1);
                match rng.below(3) {
                    0 if pos < line.len() => {
                        line.remove(pos);
                    }
                    1 if pos < line.len() => line[pos] = alphabet[rng.below(alphabet.len())],
                    _ => line.insert(pos, alphabet[rng.below(alphabet.len())]),
                }
            }
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
        // Now and then, bytes that are not UTF-8.
        if rng.below(10) == 0 {
            let pos = rng.below(body.len());
            body.insert(pos, 0xff);
        }
        let (path, endpoint) = match round % 3 {
            0 => (v3_path(&db, ""), "v3"),
            1 => (format!("/write?db={db}"), "v1"),
            _ => (format!("/api/v2/write?bucket={db}"), "v2"),
        };
        let resp = srv.post(&path, body.clone());
        assert!(
            resp.status == 204 || resp.status == 400,
            "round {round} ({endpoint}, seed {seed}) body {:?}:\n{}",
            String::from_utf8_lossy(&body),
            resp.describe()
        );
        if resp.status == 400 {
            assert!(!resp.body.is_empty(), "400 without a body");
        }
        *statuses.entry((endpoint, resp.status)).or_insert(0) += 1;
    }
    println!("fuzz statuses: {statuses:?}");
    srv.assert_alive();
    srv.write_ok(&db, "after_fuzz v=1 1", "precision=s");
    assert_eq!(srv.times(&db, "after_fuzz"), vec![1_000_000_000]);
}

#[test]
fn server_still_healthy_after_bad_input() {
    let srv = server();
    // Throw a bit of everything at it, then check a normal round trip.
    let db = unique_name("healthy");
    let _ = srv.post("/api/v3/write_lp", "x");
    let _ = srv.write_lp(&db, b"m f=\"\xff".to_vec(), "");
    let _ = srv.post_with(
        &v3_path(&db, ""),
        &[("Content-Encoding", "gzip")],
        b"\x1f\x8b\x08\x00junk".to_vec(),
    );
    let _ = srv.query_sql(&db, "SELECT", "json");
    let _ = srv.get("/api/v3/query_sql?db=&q=");
    srv.assert_alive();
    srv.write_ok(&db, "ok,t=a v=1i 1", "precision=s");
    assert_eq!(
        srv.sql(&db, "SELECT t, v FROM ok"),
        vec![json!({"t": "a", "v": 1})]
    );
    assert!(srv.try_wait().is_none(), "process exited");
}
