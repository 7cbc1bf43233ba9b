//! The query log behind `system.queries`: the last `capacity` queries with their timings and
//! outcome (SERVER.md §5).
//!
//! An entry is added when a query arrives and updated in place as it is planned and run, so a
//! running query shows up with `running = true`. Entries live in a bounded ring: the oldest is
//! dropped when a new one arrives, so the log's memory does not grow with uptime. A query
//! whose [`QueryRecorder`] is dropped before it finished (the client went away mid-stream) is
//! recorded as cancelled.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{
    ArrayRef, BooleanBuilder, DurationNanosecondBuilder, Int64Builder, StringBuilder,
    TimestampNanosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;
use parking_lot::Mutex;

use crate::system::{SystemContext, SystemTable};

/// Default number of entries kept (`--query-log-size` of influxdb3).
pub const DEFAULT_QUERY_LOG_SIZE: usize = 1000;

/// Bounded log of recent queries; also the `system.queries` table.
#[derive(Debug)]
pub struct QueryLog {
    capacity: usize,
    entries: Mutex<VecDeque<Arc<Entry>>>,
}

#[derive(Debug)]
struct Entry {
    id: String,
    query_type: &'static str,
    database: String,
    text: String,
    issue_time_ns: i64,
    state: Mutex<EntryState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Received,
    Planned,
    Success,
    Fail,
    Cancel,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Received => "received",
            Phase::Planned => "planned",
            Phase::Success => "success",
            Phase::Fail => "fail",
            Phase::Cancel => "cancel",
        }
    }
}

#[derive(Debug)]
struct EntryState {
    phase: Phase,
    plan: Option<Duration>,
    execute: Option<Duration>,
    end2end: Option<Duration>,
    error: Option<String>,
}

impl QueryLog {
    /// A log keeping the last `capacity` queries (0 keeps none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(VecDeque::with_capacity(
                capacity.min(DEFAULT_QUERY_LOG_SIZE),
            )),
        }
    }

    /// Records that a query arrived; the returned recorder updates its entry.
    pub fn start(&self, query_type: &'static str, database: &str, text: &str) -> QueryRecorder {
        let issue_time_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let entry = Arc::new(Entry {
            id: uuid::Uuid::new_v4().to_string(),
            query_type,
            database: database.to_string(),
            text: text.to_string(),
            issue_time_ns,
            state: Mutex::new(EntryState {
                phase: Phase::Received,
                plan: None,
                execute: None,
                end2end: None,
                error: None,
            }),
        });
        if self.capacity > 0 {
            let mut entries = self.entries.lock();
            while entries.len() >= self.capacity {
                entries.pop_front();
            }
            entries.push_back(Arc::clone(&entry));
        }
        QueryRecorder {
            entry,
            start: Instant::now(),
            planned_at: None,
            finished: false,
        }
    }

    fn snapshot(&self) -> Vec<Arc<Entry>> {
        self.entries.lock().iter().cloned().collect()
    }
}

/// Updates one log entry as its query progresses.
#[derive(Debug)]
pub struct QueryRecorder {
    entry: Arc<Entry>,
    start: Instant,
    planned_at: Option<Instant>,
    finished: bool,
}

impl QueryRecorder {
    /// Planning is done; what follows counts as execution.
    pub fn planned(&mut self) {
        let now = Instant::now();
        self.planned_at = Some(now);
        let mut state = self.entry.state.lock();
        state.phase = Phase::Planned;
        state.plan = Some(now - self.start);
    }

    pub fn succeeded(mut self) {
        self.finish(Phase::Success, None);
    }

    pub fn failed(mut self, error: &str) {
        self.finish(Phase::Fail, Some(error.to_string()));
    }

    fn finish(&mut self, phase: Phase, error: Option<String>) {
        let now = Instant::now();
        self.finished = true;
        let mut state = self.entry.state.lock();
        state.phase = phase;
        state.execute = self.planned_at.map(|p| now - p);
        state.end2end = Some(now - self.start);
        state.error = error;
    }

    /// Wraps a result stream so that its end (or error, or being dropped early) finishes the
    /// entry.
    pub fn wrap(self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        Box::pin(LoggedStream {
            inner: stream,
            recorder: Some(self),
        })
    }
}

impl Drop for QueryRecorder {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(Phase::Cancel, None);
        }
    }
}

struct LoggedStream {
    inner: SendableRecordBatchStream,
    recorder: Option<QueryRecorder>,
}

impl Stream for LoggedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(r) = self.recorder.take() {
                    r.succeeded();
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(r) = self.recorder.take() {
                    r.failed(&e.to_string());
                }
            }
            _ => {}
        }
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl RecordBatchStream for LoggedStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// `system.queries`, server-wide: every database sees every query, as in influxdb3.
#[derive(Debug)]
pub(crate) struct QueriesTable(pub(crate) Arc<QueryLog>);

fn duration_ns() -> DataType {
    DataType::Duration(TimeUnit::Nanosecond)
}

impl SystemTable for QueriesTable {
    fn name(&self) -> &str {
        "queries"
    }

    fn schema(&self) -> SchemaRef {
        // SERVER.md §5's columns in its order, then the database and the error text, which
        // influxdb3 does not show but which say what failed where.
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("phase", DataType::Utf8, false),
            Field::new(
                "issue_time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
            Field::new("query_type", DataType::Utf8, false),
            Field::new("query_text", DataType::Utf8, false),
            Field::new("partitions", DataType::Int64, true),
            Field::new("parquet_files", DataType::Int64, true),
            Field::new("plan_duration", duration_ns(), true),
            Field::new("permit_duration", duration_ns(), true),
            Field::new("execute_duration", duration_ns(), true),
            Field::new("end2end_duration", duration_ns(), true),
            Field::new("compute_duration", duration_ns(), true),
            Field::new("max_memory", DataType::Int64, true),
            Field::new("success", DataType::Boolean, false),
            Field::new("running", DataType::Boolean, false),
            Field::new("cancelled", DataType::Boolean, false),
            Field::new("trace_id", DataType::Utf8, true),
            Field::new("database", DataType::Utf8, false),
            Field::new("error", DataType::Utf8, true),
        ]))
    }

    fn rows(&self, _ctx: &SystemContext) -> Result<RecordBatch> {
        self.batch()
    }
}

impl QueriesTable {
    fn batch(&self) -> Result<RecordBatch> {
        let entries = self.0.snapshot();
        let n = entries.len();
        let mut id = StringBuilder::new();
        let mut phase = StringBuilder::new();
        let mut issue = TimestampNanosecondBuilder::with_capacity(n);
        let mut qtype = StringBuilder::new();
        let mut text = StringBuilder::new();
        let mut unknown_i64 = Int64Builder::with_capacity(n);
        let mut plan = DurationNanosecondBuilder::with_capacity(n);
        let mut execute = DurationNanosecondBuilder::with_capacity(n);
        let mut end2end = DurationNanosecondBuilder::with_capacity(n);
        let mut unknown_duration = DurationNanosecondBuilder::with_capacity(n);
        let mut success = BooleanBuilder::with_capacity(n);
        let mut running = BooleanBuilder::with_capacity(n);
        let mut cancelled = BooleanBuilder::with_capacity(n);
        let mut trace = StringBuilder::new();
        let mut database = StringBuilder::new();
        let mut error = StringBuilder::new();
        let ns = |d: Option<Duration>| d.map(|d| d.as_nanos() as i64);
        for e in &entries {
            let s = e.state.lock();
            id.append_value(&e.id);
            phase.append_value(s.phase.as_str());
            issue.append_value(e.issue_time_ns);
            qtype.append_value(e.query_type);
            text.append_value(&e.text);
            unknown_i64.append_null();
            plan.append_option(ns(s.plan));
            execute.append_option(ns(s.execute));
            end2end.append_option(ns(s.end2end));
            unknown_duration.append_null();
            success.append_value(s.phase == Phase::Success);
            running.append_value(matches!(s.phase, Phase::Received | Phase::Planned));
            cancelled.append_value(s.phase == Phase::Cancel);
            trace.append_null();
            database.append_value(&e.database);
            error.append_option(s.error.as_deref());
        }
        // Not measured (no partitions, permits, compute accounting or tracing here): null.
        let nulls_i64: ArrayRef = Arc::new(unknown_i64.finish());
        let nulls_duration: ArrayRef = Arc::new(unknown_duration.finish());
        RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(id.finish()),
                Arc::new(phase.finish()),
                Arc::new(issue.finish()),
                Arc::new(qtype.finish()),
                Arc::new(text.finish()),
                Arc::clone(&nulls_i64),
                Arc::clone(&nulls_i64),
                Arc::new(plan.finish()),
                Arc::clone(&nulls_duration),
                Arc::new(execute.finish()),
                Arc::new(end2end.finish()),
                Arc::clone(&nulls_duration),
                nulls_i64,
                Arc::new(success.finish()),
                Arc::new(running.finish()),
                Arc::new(cancelled.finish()),
                Arc::new(trace.finish()),
                Arc::new(database.finish()),
                Arc::new(error.finish()),
            ],
        )
        .map_err(DataFusionError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::DurationNanosecondType;

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a ArrayRef {
        batch.column(batch.schema().index_of(name).unwrap())
    }

    fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        column(batch, name)
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    fn bools(batch: &RecordBatch, name: &str) -> Vec<bool> {
        column(batch, name)
            .as_boolean()
            .iter()
            .map(|v| v.unwrap())
            .collect()
    }

    #[test]
    fn keeps_only_the_last_capacity_queries() {
        let log = Arc::new(QueryLog::new(3));
        for i in 0..5 {
            log.start("sql", "db", &format!("SELECT {i}")).succeeded();
        }
        let batch = QueriesTable(Arc::clone(&log)).batch().unwrap();
        assert_eq!(
            strings(&batch, "query_text"),
            ["SELECT 2", "SELECT 3", "SELECT 4"].map(|s| Some(s.to_string()))
        );
        let ids = strings(&batch, "id");
        assert!(ids[0] != ids[1] && ids[1] != ids[2]);
    }

    #[test]
    fn phases_and_outcomes() {
        let log = Arc::new(QueryLog::new(10));
        let mut ok = log.start("sql", "a", "ok");
        ok.planned();
        ok.succeeded();
        log.start("influxql", "b", "bad").failed("boom");
        let mut running = log.start("sql", "a", "running");
        running.planned();
        let mut dropped = log.start("sql", "a", "dropped");
        dropped.planned();
        drop(dropped);

        let batch = QueriesTable(Arc::clone(&log)).batch().unwrap();
        let phase: Vec<_> = strings(&batch, "phase").into_iter().flatten().collect();
        assert_eq!(phase, ["success", "fail", "planned", "cancel"]);
        assert_eq!(bools(&batch, "success"), [true, false, false, false]);
        assert_eq!(bools(&batch, "running"), [false, false, true, false]);
        assert_eq!(bools(&batch, "cancelled"), [false, false, false, true]);
        assert_eq!(
            strings(&batch, "error"),
            [None, Some("boom".to_string()), None, None]
        );
        assert_eq!(
            strings(&batch, "query_type"),
            ["sql", "influxql", "sql", "sql"].map(|s| Some(s.to_string()))
        );
        assert_eq!(
            strings(&batch, "database"),
            ["a", "b", "a", "a"].map(|s| Some(s.to_string()))
        );
        let plan = column(&batch, "plan_duration").as_primitive::<DurationNanosecondType>();
        let end2end = column(&batch, "end2end_duration").as_primitive::<DurationNanosecondType>();
        // Planned queries have a plan duration; the failed one never got planned.
        assert!(plan.is_valid(0) && plan.is_null(1) && plan.is_valid(2));
        // Finished queries have an end-to-end time no shorter than their planning; a running
        // one has none yet.
        assert!(end2end.value(0) >= plan.value(0));
        assert!(end2end.is_valid(1) && end2end.is_null(2) && end2end.is_valid(3));
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let log = Arc::new(QueryLog::new(0));
        log.start("sql", "db", "SELECT 1").succeeded();
        assert_eq!(QueriesTable(log).batch().unwrap().num_rows(), 0);
    }
}
