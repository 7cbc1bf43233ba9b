//! The exact bytes of every query result format for a small fixed data set, against golden
//! files in `tests/golden/formats/` written by hand from API.md §3.3 (key order, omitted
//! nulls, `1.0` / `1.0e21` floats in JSON, `1e21` in CSV and pretty, timestamps without `Z`
//! and with 0, 3, 6 or 9 fractional digits, CSV quoting, u64 max in full, the pretty table
//! without a final newline), plus the empty result of each format. Parquet is read back and
//! compared by value.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, TimeUnit};
use common::{unique_name, Server, NS};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

static SERVER: OnceLock<Server> = OnceLock::new();
static DB: OnceLock<String> = OnceLock::new();

/// Floats (integral, fractional, huge), signed and unsigned extremes, booleans, strings that
/// need CSV quoting, a missing tag and missing fields (nulls), and sub-second timestamps.
fn db() -> (&'static Server, &'static str) {
    let server = Server::shared(&SERVER, &[]);
    let db = DB.get_or_init(|| {
        let db = unique_name("fmt");
        let lp = format!(
            "t,host=a,region=eu f=1,i=3i,u=18446744073709551615u,b=t,s=\"plain\" {t0}\n\
             t,host=b f=0.5,i=-7i,b=f,s=\"a,b\" {t1}\n\
             t,host=c,region=us f=1e21,u=0u,s=\"say \\\"hi\\\"\" {t2}\n\
             t,host=d,region=us i=0i {t3}\n",
            t0 = NS,
            t1 = NS + 500_000_000,
            t2 = NS + 1_000_000_123,
            t3 = NS + 2_000_000_000,
        );
        server.write_ok(&db, lp, "");
        db
    });
    (server, db)
}

const ROWS: &str = "SELECT host, region, b, f, i, s, u, time FROM t ORDER BY time";
const EMPTY: &str = "SELECT host, region, b, f, i, s, u, time FROM t WHERE host = 'nobody'";

fn golden(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/formats")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn query(q: &str, format: &str, content_type: &str) -> Vec<u8> {
    let (server, db) = db();
    let resp = server.query_sql(db, q, format);
    resp.expect_status(200);
    assert_eq!(
        resp.header("content-type").as_deref(),
        Some(content_type),
        "{format}"
    );
    resp.body
}

#[track_caller]
fn assert_bytes(actual: &[u8], expected: &[u8]) {
    assert!(
        actual == expected,
        "got:\n{}\nexpected:\n{}",
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(expected)
    );
}

#[test]
fn json_bytes() {
    assert_bytes(
        &query(ROWS, "json", "application/json"),
        &golden("rows.json"),
    );
}

#[test]
fn jsonl_bytes() {
    assert_bytes(
        &query(ROWS, "jsonl", "application/jsonl"),
        &golden("rows.jsonl"),
    );
}

#[test]
fn csv_bytes() {
    assert_bytes(&query(ROWS, "csv", "text/csv"), &golden("rows.csv"));
}

#[test]
fn pretty_bytes() {
    assert_bytes(
        &query(ROWS, "pretty", "text/plain; charset=utf-8"),
        &golden("rows.pretty"),
    );
}

#[test]
fn parquet_reads_back_to_the_same_rows() {
    let body = query(ROWS, "parquet", "application/vnd.apache.parquet");
    assert!(body.starts_with(b"PAR1") && body.ends_with(b"PAR1"));
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(body))
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    let types: Vec<(&str, &DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    assert_eq!(
        types,
        vec![
            ("host", &dict),
            ("region", &dict),
            ("b", &DataType::Boolean),
            ("f", &DataType::Float64),
            ("i", &DataType::Int64),
            ("s", &DataType::Utf8),
            ("u", &DataType::UInt64),
            ("time", &DataType::Timestamp(TimeUnit::Nanosecond, None)),
        ]
    );
    // Every value and null, compared through the same text the pretty golden file fixes.
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert_bytes(text.as_bytes(), &golden("rows.pretty"));
}

/// API.md §3.3: `[]`, empty jsonl, empty parquet (0 bytes); CSV either empty or just the
/// header, pretty either `++\n++` or the header box, depending on whether the engine produced
/// a schema-only batch — but the same choice for both.
#[test]
fn empty_results() {
    assert_bytes(&query(EMPTY, "json", "application/json"), b"[]");
    assert_bytes(&query(EMPTY, "jsonl", "application/jsonl"), b"");
    assert_bytes(
        &query(EMPTY, "parquet", "application/vnd.apache.parquet"),
        b"",
    );
    let csv = query(EMPTY, "csv", "text/csv");
    let pretty = query(EMPTY, "pretty", "text/plain; charset=utf-8");
    let header_box = "+------+--------+---+---+---+---+---+------+\n\
                      | host | region | b | f | i | s | u | time |\n\
                      +------+--------+---+---+---+---+---+------+\n\
                      +------+--------+---+---+---+---+---+------+";
    if csv.is_empty() {
        assert_bytes(&pretty, b"++\n++");
    } else {
        assert_bytes(&csv, b"host,region,b,f,i,s,u,time\n");
        assert_bytes(&pretty, header_box.as_bytes());
    }
}
