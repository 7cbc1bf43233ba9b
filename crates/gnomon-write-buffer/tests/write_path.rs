//! The write path of one crate end to end: parse → validate → WAL → buffer → record batches.

use std::sync::Arc;

use arrow::array::{
    Array, AsArray, DictionaryArray, Float64Array, Int64Array, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{Int32Type, Int64Type};
use arrow::record_batch::RecordBatch;
use gnomon_catalog::{Catalog, Limits};
use gnomon_line_protocol::Precision;
use gnomon_wal::{WalBackend, WalConfig};
use gnomon_write_buffer::{WriteBuffer, WriteOptions};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::ObjectStore;

const HOUR: i64 = 3_600_000_000_000;

struct Fixture {
    store: Arc<dyn ObjectStore>,
    wb: WriteBuffer,
}

async fn open_on(store: Arc<dyn ObjectStore>) -> Fixture {
    let catalog =
        Catalog::load_or_create(Arc::clone(&store), Path::from("node"), Limits::default())
            .await
            .unwrap();
    let backend = WalBackend::ObjectStore {
        store: Arc::clone(&store),
        prefix: Path::from("node/wal"),
    };
    let (wb, _) = WriteBuffer::open(catalog, backend, WalConfig::default(), HOUR)
        .await
        .unwrap();
    Fixture { store, wb }
}

async fn open() -> Fixture {
    open_on(Arc::new(InMemory::new())).await
}

fn opts(accept_partial: bool) -> WriteOptions {
    WriteOptions {
        precision: Precision::Nanosecond,
        accept_partial,
        now_ns: 0,
    }
}

fn batches(wb: &WriteBuffer, db: &str, table: &str) -> Vec<RecordBatch> {
    let snapshot = wb.catalog().snapshot();
    let db = snapshot.database(db).expect("database exists");
    let table = db.table(table).expect("table exists");
    wb.buffer().record_batches(db.id, table, i64::MIN, i64::MAX)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
    batch.column_by_name(name).unwrap().as_ref()
}

fn tags(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let dict: &DictionaryArray<Int32Type> = column(batch, name).as_dictionary();
    let values: &StringArray = dict.values().as_string();
    dict.keys()
        .iter()
        .map(|k| k.map(|k| values.value(k as usize).to_string()))
        .collect()
}

fn floats(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let a: &Float64Array = column(batch, name).as_any().downcast_ref().unwrap();
    a.iter().collect()
}

fn times(batch: &RecordBatch) -> Vec<i64> {
    let a: &TimestampNanosecondArray = column(batch, "time").as_any().downcast_ref().unwrap();
    a.values().to_vec()
}

#[tokio::test]
async fn rows_come_back_sorted_by_series_and_time_with_columns_by_name() {
    let f = open().await;
    let out = f
        .wb
        .write_lp(
            "db",
            "cpu,host=b usage=2 20\ncpu,host=a usage=1 10\ncpu,host=b usage=3 15\ncpu,host=a,rack=r1 usage=4 5",
            opts(true),
            false,
        )
        .await
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.lines_written, 4);
    let b = batches(&f.wb, "db", "cpu");
    assert_eq!(b.len(), 1);
    let names: Vec<_> = b[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["host", "rack", "time", "usage"]);
    // Series in first-seen order: host=b, host=a, host=a+rack=r1; each by time.
    assert_eq!(times(&b[0]), vec![15, 20, 10, 5]);
    assert_eq!(
        tags(&b[0], "host"),
        ["b", "b", "a", "a"].map(|s| Some(s.to_string()))
    );
    assert_eq!(
        tags(&b[0], "rack"),
        vec![None, None, None, Some("r1".into())]
    );
    assert_eq!(
        floats(&b[0], "usage"),
        vec![Some(3.0), Some(2.0), Some(1.0), Some(4.0)]
    );
}

#[tokio::test]
async fn same_series_and_time_merge_per_field_last_write_wins() {
    let f = open().await;
    for body in [
        "m,t=x a=1,b=1 100",
        "m,t=x c=1 100",
        "m,t=x a=2 100",
        "m,t=y a=9 100",
    ] {
        f.wb.write_lp("db", body, opts(true), false).await.unwrap();
    }
    let b = batches(&f.wb, "db", "m");
    assert_eq!(b[0].num_rows(), 2);
    assert_eq!(tags(&b[0], "t"), vec![Some("x".into()), Some("y".into())]);
    assert_eq!(floats(&b[0], "a"), vec![Some(2.0), Some(9.0)]);
    assert_eq!(floats(&b[0], "b"), vec![Some(1.0), None]);
    assert_eq!(floats(&b[0], "c"), vec![Some(1.0), None]);
}

#[tokio::test]
async fn partial_write_keeps_good_lines_and_rolls_back_bad_lines_schema() {
    let f = open().await;
    let out =
        f.wb.write_lp(
            "db",
            "good v=1i 1\nnewtable,t=v t=2 2\ngood v=1.5 3\ngood v=2i 4",
            opts(true),
            false,
        )
        .await
        .unwrap();
    assert_eq!(out.lines_written, 2);
    let messages: Vec<_> = out
        .errors
        .iter()
        .map(|e| (e.line_number, e.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        vec![
            (2, "invalid column type for column 't', expected iox::column_type::tag, got iox::column_type::field::float"),
            (3, "invalid column type for column 'v', expected iox::column_type::field::integer, got iox::column_type::field::float"),
        ]
    );
    let snapshot = f.wb.catalog().snapshot();
    let db = snapshot.database("db").unwrap();
    assert!(
        db.table("newtable").is_none(),
        "a rejected line's table is rolled back"
    );
    let b = batches(&f.wb, "db", "good");
    let v: &Int64Array = column(&b[0], "v").as_primitive::<Int64Type>();
    assert_eq!(v.values().to_vec(), vec![1, 2]);
}

#[tokio::test]
async fn rejected_request_writes_nothing_and_creates_nothing() {
    let f = open().await;
    f.wb.write_lp("db", "existing v=1 1", opts(true), false)
        .await
        .unwrap();
    let out =
        f.wb.write_lp("db", "t2,host=a v=1 1\nt2,host=b v= 2", opts(false), false)
            .await
            .unwrap();
    assert!(!out.accepted);
    assert_eq!(out.lines_written, 0);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].line_number, 2);
    assert_eq!(out.errors[0].message, "No fields were provided");
    assert!(f
        .wb
        .catalog()
        .snapshot()
        .database("db")
        .unwrap()
        .table("t2")
        .is_none());
}

#[tokio::test]
async fn duplicate_fields_and_reserved_names_are_line_errors() {
    let f = open().await;
    let out =
        f.wb.write_lp(
            "db",
            "m f=1,f=2 1\nm time=1 2\nm,time=x f=1 3",
            opts(true),
            false,
        )
        .await
        .unwrap();
    let messages: Vec<_> = out.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages[0],
        "invalid line protocol - multiple instances of 'f' field found"
    );
    assert_eq!(messages[1], "'time' is a reserved column");
    assert_eq!(messages.len(), 3);
    assert_eq!(out.lines_written, 0);
}

#[tokio::test]
async fn missing_timestamp_uses_now_truncated_to_the_precision() {
    let f = open().await;
    let o = WriteOptions {
        precision: Precision::Second,
        accept_partial: true,
        now_ns: 1_700_000_000_123_456_789,
    };
    f.wb.write_lp("db", "m f=1", o, false).await.unwrap();
    let b = batches(&f.wb, "db", "m");
    assert_eq!(times(&b[0]), vec![1_700_000_000_000_000_000]);
}

#[tokio::test]
async fn rows_split_into_time_chunks_and_range_reads_skip_chunks() {
    let f = open().await;
    let body = format!(
        "m,t=a f=1 {}\nm,t=a f=2 {}\nm,t=a f=3 {}",
        0,
        HOUR + 1,
        3 * HOUR
    );
    f.wb.write_lp("db", &body, opts(true), false).await.unwrap();
    let snapshot = f.wb.catalog().snapshot();
    let db = snapshot.database("db").unwrap();
    let table = db.table("m").unwrap();
    let all =
        f.wb.buffer()
            .record_batches(db.id, table, i64::MIN, i64::MAX);
    assert_eq!(all.len(), 3);
    let some = f.wb.buffer().record_batches(db.id, table, HOUR, 2 * HOUR);
    assert_eq!(some.len(), 1);
    assert_eq!(times(&some[0]), vec![HOUR + 1]);
}

#[tokio::test]
async fn empty_body_is_an_error_and_creates_no_database() {
    let f = open().await;
    let err =
        f.wb.write_lp("db", "\n# only a comment\n  \n", opts(true), false)
            .await;
    assert_eq!(err.unwrap_err().to_string(), "incoming write was empty");
    assert!(f.wb.catalog().snapshot().database("db").is_none());
}

#[tokio::test]
async fn restart_replays_the_wal_into_the_buffer() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    {
        let f = open_on(Arc::clone(&store)).await;
        f.wb.write_lp("db", "m,t=a f=1 1\nm,t=b f=2 2", opts(true), false)
            .await
            .unwrap();
        f.wb.write_lp("db", "m,t=a f=3 1", opts(true), false)
            .await
            .unwrap();
        f.wb.shutdown().await.unwrap();
    }
    let f = open_on(store).await;
    let b = batches(&f.wb, "db", "m");
    assert_eq!(tags(&b[0], "t"), vec![Some("a".into()), Some("b".into())]);
    assert_eq!(floats(&b[0], "f"), vec![Some(3.0), Some(2.0)]);
    let _ = &f.store;
}

/// A body of `n` lines `m,t=s<i%7> v=<i> <i>` padded with a comment line every 10 lines
/// (comments and blanks are not counted as lines).
fn big_body(n: usize) -> String {
    let mut body = String::new();
    for i in 0..n {
        if i % 10 == 0 {
            body.push_str("# a comment that does not count as a line\n\n");
        }
        body.push_str(&format!("m,t=s{} v={i} {i}\n", i % 7));
    }
    body
}

/// Bodies past the split threshold are validated in two halves on two threads: the result
/// must be exactly the one of a single pass — line numbers of errors in the second half, the
/// order of rows (a repeated point in the second half wins), all-or-nothing on v1/v2.
#[tokio::test]
async fn large_bodies_validate_in_halves_with_the_same_result() {
    let f = open().await;
    // Create the schema first: only writes that need no schema change are split.
    f.wb.write_lp("db", "m,t=s0 v=0 0", opts(true), false)
        .await
        .unwrap();
    let n = 40_000;
    let mut body = big_body(n);
    assert!(
        body.len() > 512 * 1024,
        "body must pass the split threshold"
    );
    // Bad lines near the start and near the end, and the first point written again last.
    // (Parse errors, not type conflicts: a conflict sends the body to the transactional pass.)
    body.insert_str(0, "bad line one\n");
    body.push_str("not a line\nm,t=s0 v=-1 0\n");
    let total_lines = n + 3;

    let out = f.wb.write_lp("db", &body, opts(true), false).await.unwrap();
    let numbers: Vec<usize> = out.errors.iter().map(|e| e.line_number).collect();
    assert_eq!(numbers, vec![1, total_lines - 1], "{:?}", out.errors);
    assert_eq!(out.errors[1].original_line, "not a line");
    assert_eq!(out.lines_written, n + 1);

    let b = batches(&f.wb, "db", "m");
    let rows: usize = b.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, n, "one row per distinct (series, time)");
    let first = b
        .iter()
        .flat_map(|b| times(b).into_iter().zip(floats(b, "v")))
        .find(|(t, _)| *t == 0)
        .unwrap();
    assert_eq!(
        first.1,
        Some(-1.0),
        "the later write of the same point wins"
    );

    // All or nothing: a bad line in the second half rejects the whole body, with its number.
    let mut body = big_body(n);
    body.push_str("m,t=s0 v=1 999999 trailing\n");
    let out =
        f.wb.write_lp("db", &body, opts(false), false)
            .await
            .unwrap();
    assert!(!out.accepted);
    assert_eq!(out.lines_written, 0);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].line_number, n + 1, "{:?}", out.errors);
    let rows_after: usize = batches(&f.wb, "db", "m").iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows_after, n, "nothing of the rejected body was written");
}

/// Freezing takes a chunk out of the writable set but keeps it readable; later writes to the
/// same range go to a new chunk, which is listed after the frozen one.
#[tokio::test]
async fn frozen_chunks_stay_readable_and_new_writes_start_a_new_chunk() {
    let f = open().await;
    f.wb.write_lp("db", "m,t=a v=1 10\nm,t=a v=2 20", opts(false), false)
        .await
        .unwrap();
    let snapshot = f.wb.catalog().snapshot();
    let db = snapshot.database("db").unwrap().clone();
    let table = db.table("m").unwrap().clone();
    let buffer = f.wb.buffer();
    let frozen = buffer.freeze(db.id, table.id, 0).expect("chunk 0 exists");
    assert_eq!(frozen.rows, 2);
    assert_eq!(frozen.max_sequence, buffer.last_sequence());
    assert_eq!(buffer.min_buffered_sequence(), Some(frozen.max_sequence));
    f.wb.write_lp("db", "m,t=a v=3 20", opts(false), false)
        .await
        .unwrap();
    let chunks = buffer.chunk_batches(db.id, &table, i64::MIN, i64::MAX);
    assert_eq!(chunks.len(), 2);
    assert_eq!(floats(&chunks[0].batch, "v"), [Some(1.0), Some(2.0)]);
    assert_eq!(floats(&chunks[1].batch, "v"), [Some(3.0)]);
    let persisted = buffer.frozen_batch(&frozen, &table).unwrap();
    assert_eq!(times(&persisted), [10, 20]);
    buffer.drop_frozen(&frozen);
    assert_eq!(buffer.row_count(), 1);
    assert_eq!(buffer.min_buffered_sequence(), Some(buffer.last_sequence()));
}

/// Replay skips the rows of a chunk that a persisted file covers, and only those.
#[tokio::test]
async fn replay_skips_rows_covered_by_watermarks() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let (db_id, table_id) = {
        let f = open_on(Arc::clone(&store)).await;
        // Sequence 1: chunks 0 and 1; sequence 2: chunk 0 again.
        f.wb.write_lp(
            "db",
            &format!("m v=1 10\nm v=2 {}", HOUR + 1),
            opts(false),
            false,
        )
        .await
        .unwrap();
        f.wb.write_lp("db", "m v=3 20", opts(false), false)
            .await
            .unwrap();
        f.wb.shutdown().await.unwrap();
        let snapshot = f.wb.catalog().snapshot();
        let db = snapshot.database("db").unwrap();
        (db.id, db.table("m").unwrap().id)
    };
    let catalog =
        Catalog::load_or_create(Arc::clone(&store), Path::from("node"), Limits::default())
            .await
            .unwrap();
    let mut marks = gnomon_write_buffer::PersistedWatermarks::default();
    marks.insert(db_id, table_id, 0, 1); // chunk 0 persisted up to sequence 1
    let (wb, _) = WriteBuffer::open_after_snapshots(
        catalog,
        WalBackend::ObjectStore {
            store: Arc::clone(&store),
            prefix: Path::from("node/wal"),
        },
        WalConfig::default(),
        HOUR,
        Vec::new(),
        marks,
    )
    .await
    .unwrap();
    let all: Vec<i64> = batches(&wb, "db", "m").iter().flat_map(times).collect();
    assert_eq!(all, [20, HOUR + 1]);
}
