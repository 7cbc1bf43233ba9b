//! Plugin test runs (ENGINE.md §8): a plugin called once on given input, its writes
//! collected and checked instead of applied.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use gnomon_line_protocol::{parse_lines, FieldValue};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::logs::{now_ns, LogLevel};
use crate::python::{CallContext, LogTarget};
use crate::schedule::Schedule;
use crate::triggers::{
    cache_namespace, call_plugin, group_writes, start_text, Call, TestRows, TestValue,
};
use crate::Inner;

#[derive(Debug, Clone, Deserialize)]
pub struct WalTestRequest {
    pub filename: String,
    pub database: String,
    pub input_lp: String,
    #[serde(default)]
    pub cache_name: Option<String>,
    #[serde(default)]
    pub input_arguments: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScheduleTestRequest {
    pub filename: String,
    pub database: String,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub cache_name: Option<String>,
    #[serde(default)]
    pub input_arguments: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestResponse {
    /// Schedule tests only: when the plugin was told it ran (RFC 3339, UTC), `null` when
    /// it could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_time: Option<Option<String>>,
    pub log_lines: Vec<String>,
    pub database_writes: BTreeMap<String, Vec<String>>,
    pub errors: Vec<String>,
}

impl TestResponse {
    fn failed(errors: Vec<String>, schedule: bool) -> Self {
        Self {
            trigger_time: schedule.then_some(None),
            log_lines: Vec::new(),
            database_writes: BTreeMap::new(),
            errors,
        }
    }
}

const DEFAULT_TEST_CACHE: &str = "_shared_test";

pub(crate) async fn test_wal(
    inner: &Inner,
    request: WalTestRequest,
) -> Result<TestResponse, EngineError> {
    let path = inner.resolve_plugin(&request.filename).await?;
    let rows = match rows_of(&request.input_lp) {
        Ok(rows) => rows,
        Err(e) => {
            return Ok(TestResponse::failed(
                vec![format!("line protocol parse failed: {e}")],
                false,
            ))
        }
    };
    run_test(
        inner,
        path,
        request.database,
        request.cache_name,
        request.input_arguments,
        Call::TestRows(rows),
        None,
    )
    .await
}

pub(crate) async fn test_schedule(
    inner: &Inner,
    request: ScheduleTestRequest,
) -> Result<TestResponse, EngineError> {
    let path = inner.resolve_plugin(&request.filename).await?;
    let expression = request.schedule.as_deref().unwrap_or("* * * * * *");
    let schedule = match Schedule::parse_cron(expression) {
        Ok(s) => s,
        Err(e) => return Ok(TestResponse::failed(vec![e], true)),
    };
    if inner
        .catalog
        .snapshot()
        .database(&request.database)
        .is_none()
    {
        return Ok(TestResponse::failed(vec!["couldn't find db".into()], true));
    }
    let Some(time) = schedule.next_after(Utc::now()) else {
        return Ok(TestResponse::failed(
            vec![format!("the schedule {expression} never fires again")],
            true,
        ));
    };
    let trigger_time = time.to_rfc3339_opts(SecondsFormat::Secs, true);
    run_test(
        inner,
        path,
        request.database,
        request.cache_name,
        request.input_arguments,
        Call::Schedule(time),
        Some(trigger_time),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn run_test(
    inner: &Inner,
    path: std::path::PathBuf,
    database: String,
    cache_name: Option<String>,
    arguments: Option<BTreeMap<String, String>>,
    call: Call,
    trigger_time: Option<String>,
) -> Result<TestResponse, EngineError> {
    let schedule = trigger_time.is_some();
    let ctx = Arc::new(CallContext {
        host: Arc::clone(&inner.host),
        tokio: inner.tokio.clone(),
        database: database.clone(),
        logs: LogTarget::Collect(Mutex::new(Vec::new())),
        collected_sync_writes: Some(Mutex::new(Vec::new())),
    });
    ctx.logs.log(LogLevel::Info, start_text(&call));
    let namespace = cache_namespace(
        "\u{0}test",
        cache_name.as_deref().unwrap_or(DEFAULT_TEST_CACHE),
    );
    let started = Instant::now();
    let outcome = call_plugin(inner, path, namespace, arguments, Arc::clone(&ctx), call)
        .await
        .map_err(EngineError::Engine)?;
    if let Some(error) = outcome.error {
        return Ok(TestResponse::failed(
            vec![format!("error executing plugin: {error}")],
            schedule,
        ));
    }
    ctx.logs.log(
        LogLevel::Info,
        format!(
            "finished execution in {}",
            humantime::format_duration(started.elapsed())
        ),
    );
    let mut writes: Vec<(Option<String>, String)> = ctx
        .collected_sync_writes
        .as_ref()
        .map(|w| std::mem::take(&mut *w.lock()))
        .unwrap_or_default()
        .into_iter()
        .map(|(db, line)| (Some(db), line))
        .collect();
    writes.extend(outcome.writes);
    let mut database_writes = BTreeMap::new();
    let mut errors = Vec::new();
    for (db, lines) in group_writes(&database, writes) {
        if let Err(e) = gnomon_catalog::validate_database_name(&db) {
            errors.push(format!("database name {db} is invalid: {e}"));
        }
        for result in parse_lines(&lines.join("\n")) {
            if let Err(e) = result {
                errors.push(format!(
                    "line protocol parse error on write to db {db}: {e}"
                ));
            }
        }
        database_writes.insert(db, lines);
    }
    let log_lines = match &ctx.logs {
        LogTarget::Collect(lines) => std::mem::take(&mut *lines.lock()),
        LogTarget::Ring { .. } => Vec::new(),
    };
    Ok(TestResponse {
        trigger_time: schedule.then_some(trigger_time),
        log_lines,
        database_writes,
        errors,
    })
}

/// The rows a WAL plugin would see for `input_lp` (nanosecond precision, all or nothing):
/// per table in order of first appearance, each row its tags and fields in line order, then
/// `time`.
fn rows_of(input_lp: &str) -> Result<TestRows, String> {
    let now = now_ns();
    let mut tables: TestRows = Vec::new();
    for line in parse_lines(input_lp) {
        let line = line.map_err(|e| e.to_string())?;
        let mut row: Vec<(String, TestValue)> = Vec::new();
        for (key, value) in &line.tags {
            row.push((key.to_string(), TestValue::Str(value.to_string())));
        }
        for (key, value) in &line.fields {
            let value = match value {
                FieldValue::Float(v) => TestValue::Float(*v),
                FieldValue::Integer(v) => TestValue::Int(*v),
                FieldValue::UInteger(v) => TestValue::UInt(*v),
                FieldValue::String(s) => TestValue::Str(s.to_string()),
                FieldValue::Boolean(b) => TestValue::Bool(*b),
            };
            match row.iter_mut().find(|(k, _)| k == key.as_ref()) {
                Some(slot) => slot.1 = value,
                None => row.push((key.to_string(), value)),
            }
        }
        row.push(("time".into(), TestValue::Int(line.timestamp.unwrap_or(now))));
        let table = line.measurement.to_string();
        match tables.iter_mut().find(|(name, _)| *name == table) {
            Some((_, rows)) => rows.push(row),
            None => tables.push((table, vec![row])),
        }
    }
    Ok(tables)
}
