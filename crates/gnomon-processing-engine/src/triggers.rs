//! Running triggers: one tokio task per WAL or schedule trigger (a request trigger is an
//! entry in the path map), each invocation sent to the Python threads; what happens after an
//! invocation (buffered writes, logs, error behaviour).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use gnomon_catalog::{
    ColumnKind, ErrorBehavior, PluginType, TriggerDefinition, TriggerSpecification,
};
use gnomon_write_buffer::WriteBatch;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::logs::LogLevel;
use crate::python::{CallContext, HostHandle, LogTarget, RowColumn, RowSource};
use crate::schedule::Schedule;
use crate::wal_feed::Flush;
use crate::{Inner, PluginResponse, TriggerKey};

/// The rows of one table in one flush, before they become Python objects. Cloning copies
/// references to the batches, not rows.
#[derive(Clone)]
pub(crate) struct WalTable {
    pub table_id: gnomon_catalog::TableId,
    pub name: String,
    pub segments: Vec<(Arc<WriteBatch>, usize)>,
    pub columns: Arc<Vec<RowColumn>>,
}

/// Rows given as values (plugin tests), in line order.
pub(crate) type TestRows = Vec<(String, Vec<Vec<(String, TestValue)>>)>;

#[derive(Debug, Clone)]
pub(crate) enum TestValue {
    Str(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

/// One invocation's input.
pub(crate) enum Call {
    Wal(Vec<WalTable>),
    TestRows(TestRows),
    Schedule(DateTime<Utc>),
    Request {
        query_parameters: BTreeMap<String, String>,
        headers: BTreeMap<String, String>,
        body: Vec<u8>,
    },
}

impl Call {
    fn kind(&self) -> PluginType {
        match self {
            Call::Wal(_) | Call::TestRows(_) => PluginType::WalRows,
            Call::Schedule(_) => PluginType::Schedule,
            Call::Request { .. } => PluginType::Request,
        }
    }
}

/// What came back from Python.
pub(crate) struct CallOutcome {
    pub error: Option<String>,
    pub response: Option<PluginResponse>,
    /// Buffered writes: (database, `None` for the trigger's own; line).
    pub writes: Vec<(Option<String>, String)>,
}

/// Runs one plugin call on a Python thread.
pub(crate) async fn call_plugin(
    inner: &Inner,
    path: PathBuf,
    namespace: String,
    arguments: Option<BTreeMap<String, String>>,
    ctx: Arc<CallContext>,
    call: Call,
) -> Result<CallOutcome, String> {
    let pool = inner.python().await?;
    pool.run(move |py, runtime| {
        invoke(py, runtime, &path, &namespace, arguments, ctx, call).unwrap_or_else(|e| {
            CallOutcome {
                error: Some(e.to_string()),
                response: None,
                writes: Vec::new(),
            }
        })
    })
    .await
}

fn invoke(
    py: Python<'_>,
    runtime: &Bound<'_, PyModule>,
    path: &std::path::Path,
    namespace: &str,
    arguments: Option<BTreeMap<String, String>>,
    ctx: Arc<CallContext>,
    call: Call,
) -> PyResult<CallOutcome> {
    let host = Bound::new(py, HostHandle { ctx })?;
    let path = path.to_string_lossy().into_owned();
    let args = match arguments {
        Some(map) => map.into_pyobject(py)?.into_any(),
        None => py.None().into_bound(py),
    };
    let result = match call {
        Call::Wal(tables) => {
            let list = PyList::empty(py);
            for table in tables {
                let source = Bound::new(
                    py,
                    RowSource {
                        segments: table.segments,
                        columns: table.columns,
                    },
                )?;
                list.append((table.name, source))?;
            }
            runtime.call_method1("invoke_writes", (path, host, namespace, list, args))?
        }
        Call::TestRows(tables) => {
            let list = PyList::empty(py);
            for (name, rows) in tables {
                let py_rows = PyList::empty(py);
                for row in rows {
                    let dict = PyDict::new(py);
                    for (key, value) in row {
                        match value {
                            TestValue::Str(s) => dict.set_item(key, s)?,
                            TestValue::Int(v) => dict.set_item(key, v)?,
                            TestValue::UInt(v) => dict.set_item(key, v)?,
                            TestValue::Float(v) => dict.set_item(key, v)?,
                            TestValue::Bool(v) => dict.set_item(key, v)?,
                        }
                    }
                    py_rows.append(dict)?;
                }
                list.append((name, py_rows))?;
            }
            runtime.call_method1("invoke_rows", (path, host, namespace, list, args))?
        }
        Call::Schedule(time) => runtime.call_method1(
            "invoke_schedule",
            (path, host, namespace, time.timestamp(), args),
        )?,
        Call::Request {
            query_parameters,
            headers,
            body,
        } => runtime.call_method1(
            "invoke_request",
            (
                path,
                host,
                namespace,
                query_parameters,
                headers,
                PyBytes::new(py, &body),
                args,
            ),
        )?,
    };
    let result = result.cast_into::<PyTuple>()?;
    let error: Option<String> = result.get_item(0)?.extract()?;
    let writes: Vec<(Option<String>, String)> = result.get_item(2)?.extract()?;
    let response = match result.get_item(1)? {
        r if error.is_none() && r.is_instance_of::<PyTuple>() => {
            let (status, headers, body): (u16, Vec<(String, String)>, Vec<u8>) = r.extract()?;
            Some(PluginResponse {
                status,
                headers,
                body,
            })
        }
        _ => None,
    };
    Ok(CallOutcome {
        error,
        response,
        writes,
    })
}

/// A trigger that is running: its definition as started and how to stop it.
pub(crate) struct RunningTrigger {
    pub key: TriggerKey,
    pub db_name: String,
    pub name: Arc<str>,
    pub definition: Arc<TriggerDefinition>,
    pub plugin_path: PathBuf,
    pub stop: CancellationToken,
    /// Held by each invocation of a trigger with `run_async = false`.
    pub sequential: tokio::sync::Mutex<()>,
    /// WAL triggers: where their flushes are queued.
    pub wal: Option<mpsc::UnboundedSender<Vec<WalTable>>>,
    /// Flushes queued and not yet taken by the trigger's task. The queue is unbounded (the
    /// WAL flusher must never wait for Python), so a plugin slower than the writes is
    /// reported instead: a warning each time the backlog doubles past [`BACKLOG_WARNING`].
    pub backlog: AtomicUsize,
    warned_at: AtomicUsize,
}

/// Queued flushes of one WAL trigger at which the engine starts warning.
pub(crate) const BACKLOG_WARNING: usize = 100;

impl RunningTrigger {
    fn namespace(&self) -> String {
        cache_namespace(&self.db_name, &self.name)
    }

    fn context(&self, inner: &Inner) -> Arc<CallContext> {
        Arc::new(CallContext {
            host: Arc::clone(&inner.host),
            tokio: inner.tokio.clone(),
            database: self.db_name.clone(),
            logs: LogTarget::Ring {
                ring: Arc::clone(&inner.logs),
                trigger: Arc::clone(&self.name),
            },
            collected_sync_writes: None,
        })
    }

    fn log(&self, inner: &Inner, level: LogLevel, text: String) {
        inner.logs.push(&self.name, level, text);
    }
}

pub(crate) fn cache_namespace(db: &str, trigger: &str) -> String {
    format!("{db}\u{0}{trigger}")
}

fn plugin_kind_name(kind: PluginType) -> &'static str {
    match kind {
        PluginType::WalRows => "wal plugin",
        PluginType::Schedule => "schedule plugin",
        PluginType::Request => "request plugin",
    }
}

/// What the engine logs before each invocation (ENGINE.md §6.1).
pub(crate) fn start_text(call: &Call) -> String {
    match call {
        Call::Schedule(time) => format!(
            "starting execution with scheduled time {}",
            time.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        _ => format!("starting execution of {}.", plugin_kind_name(call.kind())),
    }
}

/// One invocation of a running trigger, with its logs, metrics and buffered writes.
/// Returns the plugin's error, if any.
async fn execute(
    inner: &Inner,
    trigger: &RunningTrigger,
    call: Call,
) -> (Option<String>, Option<PluginResponse>) {
    let kind = call.kind();
    trigger.log(inner, LogLevel::Info, start_text(&call));
    let started = Instant::now();
    let outcome = call_plugin(
        inner,
        trigger.plugin_path.clone(),
        trigger.namespace(),
        trigger.definition.arguments.clone(),
        trigger.context(inner),
        call,
    )
    .await;
    let elapsed = started.elapsed();
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => CallOutcome {
            error: Some(e),
            response: None,
            writes: Vec::new(),
        },
    };
    inner.metrics.record(kind, elapsed, outcome.error.is_some());
    if let Some(error) = outcome.error {
        trigger.log(
            inner,
            LogLevel::Error,
            format!("error executing {}: {error}", plugin_kind_name(kind)),
        );
        return (Some(error), None);
    }
    apply_writes(inner, trigger, kind, outcome.writes).await;
    trigger.log(
        inner,
        LogLevel::Info,
        format!(
            "finished execution in {}",
            humantime::format_duration(elapsed)
        ),
    );
    (None, outcome.response)
}

/// Buffered writes go out after the call, one request per database in first-use order.
async fn apply_writes(
    inner: &Inner,
    trigger: &RunningTrigger,
    kind: PluginType,
    writes: Vec<(Option<String>, String)>,
) {
    for (db, lines) in group_writes(&trigger.db_name, writes) {
        if let Err(e) = gnomon_catalog::validate_database_name(&db) {
            trigger.log(
                inner,
                LogLevel::Error,
                format!("invalid database name: {db}: {e}"),
            );
            continue;
        }
        if let Err(e) = inner.host.write_lp(&db, &lines.join("\n"), false).await {
            trigger.log(
                inner,
                LogLevel::Error,
                format!(
                    "error running {}: error writing back lines to {db}: {e}",
                    plugin_kind_name(kind)
                ),
            );
        }
    }
}

/// Lines per database, databases in order of first use.
pub(crate) fn group_writes(
    default_db: &str,
    writes: Vec<(Option<String>, String)>,
) -> Vec<(String, Vec<String>)> {
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for (db, line) in writes {
        let db = db.unwrap_or_else(|| default_db.to_string());
        match grouped.iter_mut().find(|(d, _)| *d == db) {
            Some((_, lines)) => lines.push(line),
            None => grouped.push((db, vec![line])),
        }
    }
    grouped
}

/// Runs `make_call()` under the trigger's error behaviour; false when the trigger must stop.
async fn run_with_behavior(
    inner: &Inner,
    trigger: &RunningTrigger,
    make_call: impl Fn() -> Call,
) -> bool {
    loop {
        let (error, _) = execute(inner, trigger, make_call()).await;
        if error.is_none() {
            return true;
        }
        match trigger.definition.settings.error_behavior {
            ErrorBehavior::Log => return true,
            ErrorBehavior::Retry => {
                if trigger.stop.is_cancelled() {
                    return false;
                }
                // Not a hot loop: a plugin that always fails costs one call a second.
                tokio::select! {
                    _ = trigger.stop.cancelled() => return false,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            ErrorBehavior::Disable => {
                trigger.log(
                    inner,
                    LogLevel::Error,
                    "trigger stopped after an error (error_behavior = disable); disable and \
                     enable it, or restart the server, to run it again"
                        .into(),
                );
                return false;
            }
        }
    }
}

/// Stops a trigger after `error_behavior = disable` fired, without touching the catalog.
fn suspend(inner: &Inner, trigger: &RunningTrigger) {
    trigger.stop.cancel();
    inner
        .suspended
        .lock()
        .insert(trigger.key.clone(), Arc::clone(&trigger.definition));
    inner.running.lock().remove(&trigger.key);
    inner.requests.write().retain(|_, t| t.key != trigger.key);
    refresh_wal_watch(inner);
}

async fn wal_loop(
    inner: Weak<Inner>,
    trigger: Arc<RunningTrigger>,
    mut flushes: mpsc::UnboundedReceiver<Vec<WalTable>>,
) {
    loop {
        let tables = tokio::select! {
            _ = trigger.stop.cancelled() => return,
            next = flushes.recv() => match next { Some(t) => t, None => return },
        };
        if trigger.backlog.fetch_sub(1, Ordering::Relaxed) == 1 {
            trigger.warned_at.store(0, Ordering::Relaxed);
        }
        let Some(inner) = inner.upgrade() else { return };
        if trigger.definition.settings.run_async {
            let (inner, trigger) = (Arc::clone(&inner), Arc::clone(&trigger));
            tokio::spawn(async move {
                if !run_with_behavior(&inner, &trigger, || Call::Wal(tables.to_vec())).await {
                    suspend(&inner, &trigger);
                }
            });
            continue;
        }
        if !run_with_behavior(&inner, &trigger, || Call::Wal(tables.to_vec())).await {
            suspend(&inner, &trigger);
            return;
        }
    }
}

async fn schedule_loop(inner: Weak<Inner>, trigger: Arc<RunningTrigger>, schedule: Schedule) {
    let mut last = Utc::now();
    loop {
        let Some(next) = schedule.next_after(last) else {
            return;
        };
        let wait = (next - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = trigger.stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        if trigger.definition.settings.run_async {
            let (inner, trigger) = (Arc::clone(&inner), Arc::clone(&trigger));
            tokio::spawn(async move {
                if !run_with_behavior(&inner, &trigger, || Call::Schedule(next)).await {
                    suspend(&inner, &trigger);
                }
            });
        } else if !run_with_behavior(&inner, &trigger, || Call::Schedule(next)).await {
            suspend(&inner, &trigger);
            return;
        }
        // From the instant, not from now: instants missed by an overrun run right away.
        last = next;
    }
}

pub(crate) async fn run_request(
    inner: &Inner,
    trigger: &Arc<RunningTrigger>,
    query_parameters: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
) -> PluginResponse {
    let _turn = if trigger.definition.settings.run_async {
        None
    } else {
        Some(trigger.sequential.lock().await)
    };
    let call = Call::Request {
        query_parameters,
        headers,
        body,
    };
    match execute(inner, trigger, call).await {
        (None, Some(response)) => response,
        (error, _) => {
            if error.is_some()
                && trigger.definition.settings.error_behavior == ErrorBehavior::Disable
            {
                suspend(inner, trigger);
            }
            let message = error.unwrap_or_else(|| "the plugin returned no response".into());
            PluginResponse {
                status: 500,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: serde_json::json!({ "error": message })
                    .to_string()
                    .into_bytes(),
            }
        }
    }
}

/// Sends each flush to the WAL triggers of the databases it touched.
pub(crate) async fn dispatch_wal(inner: Weak<Inner>, mut flushes: mpsc::UnboundedReceiver<Flush>) {
    while let Some(flush) = flushes.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        let triggers: Vec<Arc<RunningTrigger>> = inner
            .running
            .lock()
            .values()
            .filter(|t| t.wal.is_some())
            .cloned()
            .collect();
        if triggers.is_empty() {
            continue;
        }
        let snapshot = inner.catalog.snapshot();
        // Tables per database, in order of first appearance in the flush.
        let mut by_db: HashMap<u32, Vec<WalTable>> = HashMap::new();
        for batch in &flush {
            let Some(db) = snapshot.database_by_id(batch.db_id) else {
                continue;
            };
            let tables = by_db.entry(batch.db_id).or_default();
            for (index, table) in batch.tables.iter().enumerate() {
                if let Some(existing) = tables.iter_mut().find(|t| t.table_id == table.table_id) {
                    existing.segments.push((Arc::clone(batch), index));
                    continue;
                }
                let Some(schema) = db.table_by_id(table.table_id) else {
                    continue;
                };
                let tags = schema
                    .columns()
                    .iter()
                    .filter(|c| c.kind == ColumnKind::Tag);
                let fields = schema.columns().iter().filter(|c| c.kind.is_field());
                let columns = tags
                    .chain(fields)
                    .map(|c| RowColumn {
                        id: c.id,
                        name: Arc::clone(&c.name),
                    })
                    .collect();
                tables.push(WalTable {
                    table_id: table.table_id,
                    name: schema.name.to_string(),
                    segments: vec![(Arc::clone(batch), index)],
                    columns: Arc::new(columns),
                });
            }
        }
        for trigger in triggers {
            let Some(tables) = by_db.get(&trigger.key.0) else {
                continue;
            };
            let selected = match &trigger.definition.specification {
                TriggerSpecification::SingleTableWalWrite { table_name } => tables
                    .iter()
                    .filter(|t| &t.name == table_name)
                    .cloned()
                    .collect(),
                _ => tables.clone(),
            };
            if let Some(sender) = &trigger.wal {
                // Counted before the send, so the task never takes a flush not yet counted.
                note_backlog(&inner, &trigger);
                if sender.send(selected).is_err() {
                    trigger.backlog.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn note_backlog(inner: &Inner, trigger: &RunningTrigger) {
    let queued = trigger.backlog.fetch_add(1, Ordering::Relaxed) + 1;
    let warned = trigger.warned_at.load(Ordering::Relaxed);
    if queued >= BACKLOG_WARNING && queued >= 2 * warned {
        trigger.warned_at.store(queued, Ordering::Relaxed);
        trigger.log(
            inner,
            LogLevel::Warn,
            format!(
                "{queued} WAL flushes are waiting for this trigger: its plugin is slower than \
                 the writes to its database (every flush will still be delivered, at the cost \
                 of memory)"
            ),
        );
    }
}

/// Flushes queued for all WAL triggers.
pub(crate) fn wal_backlog(inner: &Inner) -> usize {
    inner
        .running
        .lock()
        .values()
        .map(|t| t.backlog.load(Ordering::Relaxed))
        .sum()
}

fn refresh_wal_watch(inner: &Inner) {
    let watched: HashSet<u32> = inner
        .running
        .lock()
        .values()
        .filter(|t| t.wal.is_some())
        .map(|t| t.key.0)
        .collect();
    inner.feed.watch(watched);
}

/// Starts and stops triggers to match the catalog.
pub(crate) async fn reconcile(inner: &Arc<Inner>) {
    let _one_at_a_time = inner.reconciling.lock().await;
    let snapshot = inner.catalog.snapshot();
    let mut desired: HashMap<TriggerKey, (String, Arc<TriggerDefinition>)> = HashMap::new();
    for db in snapshot.databases() {
        if db.is_internal() {
            continue;
        }
        for trigger in db.triggers() {
            if !trigger.disabled {
                desired.insert(
                    (db.id, trigger.name.clone()),
                    (db.name.to_string(), Arc::clone(trigger)),
                );
            }
        }
    }

    // Stop what no longer matches.
    let stopped: Vec<Arc<RunningTrigger>> = {
        let mut running = inner.running.lock();
        let keys: Vec<TriggerKey> = running
            .iter()
            .filter(|(key, t)| match desired.get(*key) {
                Some((db_name, def)) => *db_name != t.db_name || **def != *t.definition,
                None => true,
            })
            .map(|(key, _)| key.clone())
            .collect();
        keys.iter().filter_map(|k| running.remove(k)).collect()
    };
    for trigger in &stopped {
        trigger.stop.cancel();
        inner.requests.write().retain(|_, t| t.key != trigger.key);
        let still_defined = desired.contains_key(&trigger.key);
        if !still_defined {
            crate::python::drop_cache_namespace(&trigger.namespace());
        }
    }
    inner
        .suspended
        .lock()
        .retain(|key, def| desired.get(key).is_some_and(|(_, d)| **d == **def));

    // Start what should run and does not.
    let to_start: Vec<(TriggerKey, String, Arc<TriggerDefinition>)> = {
        let running = inner.running.lock();
        let suspended = inner.suspended.lock();
        desired
            .into_iter()
            .filter(|(key, _)| !running.contains_key(key) && !suspended.contains_key(key))
            .map(|(key, (db, def))| (key, db, def))
            .collect()
    };
    for (key, db_name, definition) in to_start {
        let name: Arc<str> = Arc::from(definition.name.as_str());
        let plugin_path = match inner.resolve_plugin(&definition.plugin_filename).await {
            Ok(path) => path,
            Err(e) => {
                inner
                    .logs
                    .push(&name, LogLevel::Error, format!("trigger not started: {e}"));
                continue;
            }
        };
        start(inner, key, db_name, name, definition, plugin_path);
    }
    refresh_wal_watch(inner);
}

fn start(
    inner: &Arc<Inner>,
    key: TriggerKey,
    db_name: String,
    name: Arc<str>,
    definition: Arc<TriggerDefinition>,
    plugin_path: PathBuf,
) {
    let kind = definition.specification.plugin_type();
    let schedule = match Schedule::of(&definition.specification) {
        Some(Ok(schedule)) => Some(schedule),
        Some(Err(e)) => {
            inner
                .logs
                .push(&name, LogLevel::Error, format!("trigger not started: {e}"));
            return;
        }
        None => None,
    };
    let (wal_sender, wal_receiver) = if kind == PluginType::WalRows {
        let (tx, rx) = mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let trigger = Arc::new(RunningTrigger {
        key: key.clone(),
        db_name,
        name,
        definition: Arc::clone(&definition),
        plugin_path,
        stop: CancellationToken::new(),
        sequential: tokio::sync::Mutex::new(()),
        wal: wal_sender,
        backlog: AtomicUsize::new(0),
        warned_at: AtomicUsize::new(0),
    });
    inner.running.lock().insert(key, Arc::clone(&trigger));
    let weak = Arc::downgrade(inner);
    match &definition.specification {
        TriggerSpecification::RequestPath { path } => {
            inner
                .requests
                .write()
                .insert(path.clone(), Arc::clone(&trigger));
        }
        _ if kind == PluginType::WalRows => {
            let receiver = wal_receiver.expect("created above");
            tokio::spawn(wal_loop(weak, trigger, receiver));
        }
        _ => {
            let schedule = schedule.expect("schedule triggers have a schedule");
            tokio::spawn(schedule_loop(weak, trigger, schedule));
        }
    }
}
