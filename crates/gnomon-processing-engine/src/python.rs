//! The embedded interpreter: its start, the threads that run Python, and the objects Rust
//! hands to Python (`HostHandle` behind `influxdb3_local`, `RowSource` behind WAL rows).
//!
//! Python runs only on the engine's own threads, never on the server's tokio workers: a
//! plugin that loops or blocks holds one of these threads (and, between its bytecodes, the
//! GIL), not the runtime that serves writes and queries. Calls back into the server
//! (queries, synchronous writes) release the GIL and block the plugin thread on the tokio
//! runtime through its handle.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{mpsc, Arc, OnceLock};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::record_batch::RecordBatch;
use gnomon_write_buffer::batch::{ColumnData, NULL_TAG};
use gnomon_write_buffer::WriteBatch;
use parking_lot::Mutex;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::host::PluginHost;
use crate::logs::{LogLevel, LogRing};

const RUNTIME_SOURCE: &str = include_str!("runtime.py");

type Job = Box<dyn for<'py> FnOnce(Python<'py>, &Bound<'py, PyModule>) + Send>;

/// The threads that run Python. Started on first use, so a server without plugins never
/// starts an interpreter.
pub(crate) struct PythonPool {
    jobs: Mutex<mpsc::Sender<Job>>,
}

static RUNTIME: OnceLock<Result<Py<PyModule>, String>> = OnceLock::new();

impl PythonPool {
    pub(crate) fn start(
        threads: usize,
        venv: Option<&Path>,
        plugin_dir: Option<&Path>,
    ) -> Result<Self, String> {
        let runtime = RUNTIME.get_or_init(|| {
            Python::initialize();
            Python::attach(|py| load_runtime(py).map_err(|e| e.to_string()))
        });
        let runtime = runtime.as_ref().map_err(Clone::clone)?;
        if let Some(venv) = venv {
            activate_venv(venv)?;
        }
        if let Some(dir) = plugin_dir {
            Python::attach(|py| {
                runtime
                    .bind(py)
                    .call_method1("add_plugin_dir", (dir.to_string_lossy().as_ref(),))
                    .map(|_| ())
                    .map_err(|e| format!("adding {} to sys.path: {e}", dir.display()))
            })?;
        }
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let runtime = Python::attach(|py| runtime.clone_ref(py));
            std::thread::Builder::new()
                .name(format!("gnomon-python-{i}"))
                .spawn(move || loop {
                    let job = match receiver.lock().recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    // A panic in a job must not take the thread (and its queue) down.
                    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                        Python::attach(|py| job(py, runtime.bind(py)))
                    }));
                    if outcome.is_err() {
                        tracing::error!("a processing-engine job panicked");
                    }
                })
                .map_err(|e| format!("cannot start a Python thread: {e}"))?;
        }
        Ok(Self {
            jobs: Mutex::new(sender),
        })
    }

    /// Runs `f` on a Python thread and waits for its result without blocking the caller's
    /// thread.
    pub(crate) async fn run<R, F>(&self, f: F) -> Result<R, String>
    where
        R: Send + 'static,
        F: for<'py> FnOnce(Python<'py>, &Bound<'py, PyModule>) -> R + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |py, runtime| {
            let _ = tx.send(f(py, runtime));
        });
        self.jobs
            .lock()
            .send(job)
            .map_err(|_| "the Python threads have stopped".to_string())?;
        rx.await
            .map_err(|_| "the plugin call ended without a result (panic)".to_string())
    }
}

fn load_runtime(py: Python<'_>) -> PyResult<Py<PyModule>> {
    let source = CString::new(RUNTIME_SOURCE).expect("runtime.py has no NUL byte");
    let module = PyModule::from_code(
        py,
        &source,
        c"gnomon_plugin_runtime.py",
        c"gnomon_plugin_runtime",
    )?;
    // Registered so that plugins could `import gnomon_plugin_runtime` if they wanted to.
    py.import("sys")?
        .getattr("modules")?
        .set_item("gnomon_plugin_runtime", &module)?;
    Ok(module.unbind())
}

pub(crate) fn activate_venv(venv: &Path) -> Result<(), String> {
    let runtime = runtime()?;
    Python::attach(|py| {
        runtime
            .bind(py)
            .call_method1("activate_venv", (venv.to_string_lossy().as_ref(),))
            .map(|_| ())
            .map_err(|e| format!("activating {}: {e}", venv.display()))
    })
}

/// The executable of the interpreter this process embeds (to create venvs with).
pub(crate) fn base_interpreter() -> Result<Option<String>, String> {
    let runtime = runtime()?;
    Python::attach(|py| {
        runtime
            .bind(py)
            .call_method0("base_interpreter")
            .and_then(|v| v.extract::<Option<String>>())
            .map_err(|e| e.to_string())
    })
}

pub(crate) fn drop_cache_namespace(namespace: &str) {
    if let Some(Ok(runtime)) = RUNTIME.get() {
        Python::attach(|py| {
            let _ = runtime
                .bind(py)
                .call_method1("drop_namespace", (namespace,));
        });
    }
}

fn runtime() -> Result<&'static Py<PyModule>, String> {
    match RUNTIME.get() {
        Some(Ok(runtime)) => Ok(runtime),
        Some(Err(e)) => Err(e.clone()),
        None => Err("the Python interpreter is not started".into()),
    }
}

/// Where `influxdb3_local.info()` and friends go.
pub(crate) enum LogTarget {
    /// The engine's ring (and the server log), under the trigger's name.
    Ring {
        ring: Arc<LogRing>,
        trigger: Arc<str>,
    },
    /// Collected as `LEVEL: text` for a plugin test's response.
    Collect(Mutex<Vec<String>>),
}

impl LogTarget {
    pub(crate) fn log(&self, level: LogLevel, text: String) {
        match self {
            LogTarget::Ring { ring, trigger } => ring.push(trigger, level, text),
            LogTarget::Collect(lines) => lines.lock().push(format!("{}: {text}", level.as_str())),
        }
    }
}

/// Everything a plugin call may reach on the Rust side.
pub(crate) struct CallContext {
    pub host: Arc<dyn PluginHost>,
    pub tokio: tokio::runtime::Handle,
    /// The trigger's database: default target of writes and queries.
    pub database: String,
    pub logs: LogTarget,
    /// Plugin tests: synchronous writes are collected here (database, line) instead of
    /// being applied.
    pub collected_sync_writes: Option<Mutex<Vec<(String, String)>>>,
}

/// The Rust object behind `influxdb3_local` (wrapped by `InfluxDB3Local` in runtime.py).
#[pyclass(frozen)]
pub(crate) struct HostHandle {
    pub ctx: Arc<CallContext>,
}

#[pymethods]
impl HostHandle {
    fn log(&self, level: &str, text: String) {
        self.ctx.logs.log(LogLevel::parse(level), text);
    }

    #[pyo3(signature = (sql, args=None, database=None))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        args: Option<BTreeMap<String, String>>,
        database: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        let db = database.unwrap_or_else(|| self.ctx.database.clone());
        if let Err(e) = gnomon_catalog::validate_database_name(&db) {
            return Err(PyRuntimeError::new_err(format!(
                "invalid database name provided: {db}: {e}"
            )));
        }
        let params = args.unwrap_or_default();
        let ctx = Arc::clone(&self.ctx);
        let (db_for_query, sql_for_query) = (db.clone(), sql.clone());
        let batches = py.detach(move || {
            let host = Arc::clone(&ctx.host);
            ctx.tokio
                .block_on(async move { host.query(&db_for_query, &sql_for_query, &params).await })
        });
        match batches {
            Ok(batches) => batches_to_rows(py, &batches),
            Err(e) => Err(PyRuntimeError::new_err(format!(
                "error: {e} executing query on {db}: {sql}"
            ))),
        }
    }

    fn write_sync(
        &self,
        py: Python<'_>,
        database: Option<String>,
        lines: String,
        no_sync: bool,
    ) -> PyResult<()> {
        let db = database.unwrap_or_else(|| self.ctx.database.clone());
        if let Some(collected) = &self.ctx.collected_sync_writes {
            collected.lock().push((db, lines));
            return Ok(());
        }
        let ctx = Arc::clone(&self.ctx);
        let db_for_write = db.clone();
        let outcome = py.detach(move || {
            let host = Arc::clone(&ctx.host);
            ctx.tokio
                .block_on(async move { host.write_lp(&db_for_write, &lines, no_sync).await })
        });
        outcome
            .map_err(|e| PyException::new_err(format!("error writing line protocol to {db}: {e}")))
    }
}

/// Column of a WAL table batch as plugins see it.
#[derive(Debug, Clone)]
pub(crate) struct RowColumn {
    pub id: gnomon_catalog::ColumnId,
    pub name: Arc<str>,
}

/// The rows of one table in one WAL flush, turned into dicts only when a plugin reads them.
#[pyclass(frozen)]
pub(crate) struct RowSource {
    /// Each a batch holding rows of the table, and the index of the table in it.
    pub segments: Vec<(Arc<WriteBatch>, usize)>,
    /// Tags first, then fields, each in catalog order (`time` is appended to every row).
    pub columns: Arc<Vec<RowColumn>>,
}

#[pymethods]
impl RowSource {
    fn rows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let names: Vec<Bound<'py, PyString>> = self
            .columns
            .iter()
            .map(|c| PyString::intern(py, &c.name))
            .collect();
        let time_key = PyString::intern(py, "time");
        for (batch, table_index) in &self.segments {
            let table = &batch.tables[*table_index];
            // Per row-column slot: the batch column holding it, if this batch set it.
            let slots: Vec<(usize, Option<&ColumnData>)> = self
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let data = table
                        .columns
                        .iter()
                        .find(|b| b.column_id == c.id)
                        .map(|b| &b.data);
                    (i, data)
                })
                .filter(|(_, data)| data.is_some())
                .collect();
            // Tag strings are shared by every row that has them.
            let tag_values: Vec<Option<Vec<Bound<'py, PyString>>>> = slots
                .iter()
                .map(|(_, data)| match data {
                    Some(ColumnData::Tag { dictionary, .. }) => {
                        Some(dictionary.iter().map(|s| PyString::new(py, s)).collect())
                    }
                    _ => None,
                })
                .collect();
            for row in 0..table.row_count() {
                let dict = PyDict::new(py);
                for ((slot, data), tags) in slots.iter().zip(&tag_values) {
                    let key = &names[*slot];
                    match data.expect("filtered above") {
                        ColumnData::Tag { keys, .. } => {
                            let k = keys[row];
                            if k != NULL_TAG {
                                let tags = tags.as_ref().expect("tag column");
                                dict.set_item(key, &tags[k as usize])?;
                            }
                        }
                        ColumnData::Float { values, valid } => {
                            if is_valid(valid, row) {
                                dict.set_item(key, values[row])?;
                            }
                        }
                        ColumnData::Integer { values, valid } => {
                            if is_valid(valid, row) {
                                dict.set_item(key, values[row])?;
                            }
                        }
                        ColumnData::UInteger { values, valid } => {
                            if is_valid(valid, row) {
                                dict.set_item(key, values[row])?;
                            }
                        }
                        ColumnData::Boolean { values, valid } => {
                            if is_valid(valid, row) {
                                dict.set_item(key, values[row])?;
                            }
                        }
                        ColumnData::String { values, valid } => {
                            if is_valid(valid, row) {
                                dict.set_item(key, values[row].as_str())?;
                            }
                        }
                    }
                }
                dict.set_item(&time_key, table.time[row])?;
                out.append(dict)?;
            }
        }
        Ok(out)
    }
}

fn is_valid(valid: &Option<Vec<bool>>, row: usize) -> bool {
    valid.as_ref().is_none_or(|v| v[row])
}

/// Query results as `list[dict]` (ENGINE.md §6.3).
fn batches_to_rows<'py>(py: Python<'py>, batches: &[RecordBatch]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for batch in batches {
        let schema = batch.schema();
        let names: Vec<Bound<'py, PyString>> = schema
            .fields()
            .iter()
            .map(|f| PyString::new(py, f.name()))
            .collect();
        let columns = batch
            .columns()
            .iter()
            .map(normalize_column)
            .collect::<PyResult<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            let dict = PyDict::new(py);
            for (name, column) in names.iter().zip(&columns) {
                dict.set_item(name, cell(py, column, row)?)?;
            }
            out.append(dict)?;
        }
    }
    Ok(out)
}

/// Dictionaries become their values and timestamps become nanoseconds, so [`cell`] only sees
/// plain types.
fn normalize_column(column: &ArrayRef) -> PyResult<ArrayRef> {
    let unsupported =
        || PyValueError::new_err(format!("Unsupported data type: {}", column.data_type()));
    match column.data_type() {
        DataType::Dictionary(_, value) => {
            let plain = cast(column, value).map_err(|_| unsupported())?;
            normalize_column(&plain)
        }
        DataType::Timestamp(unit, _) => {
            let ns = if *unit == TimeUnit::Nanosecond {
                Arc::clone(column)
            } else {
                cast(column, &DataType::Timestamp(TimeUnit::Nanosecond, None))
                    .map_err(|_| unsupported())?
            };
            cast(&ns, &DataType::Int64).map_err(|_| unsupported())
        }
        DataType::LargeUtf8 | DataType::Utf8View => {
            cast(column, &DataType::Utf8).map_err(|_| unsupported())
        }
        DataType::Null
        | DataType::Boolean
        | DataType::Utf8
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64 => Ok(Arc::clone(column)),
        _ => Err(unsupported()),
    }
}

fn cell<'py>(py: Python<'py>, column: &ArrayRef, row: usize) -> PyResult<Bound<'py, PyAny>> {
    if column.is_null(row) {
        return Ok(py.None().into_bound(py));
    }
    Ok(match column.data_type() {
        DataType::Boolean => column
            .as_boolean()
            .value(row)
            .into_pyobject(py)?
            .to_owned()
            .into_any(),
        DataType::Utf8 => PyString::new(py, column.as_string::<i32>().value(row)).into_any(),
        DataType::Int8 => column
            .as_primitive::<Int8Type>()
            .value(row)
            .into_pyobject(py)?
            .into_any(),
        DataType::Int16 => column
            .as_primitive::<Int16Type>()
            .value(row)
            .into_pyobject(py)?
            .into_any(),
        DataType::Int32 => column
            .as_primitive::<Int32Type>()
            .value(row)
            .into_pyobject(py)?
            .into_any(),
        DataType::Int64 => column
            .as_primitive::<Int64Type>()
            .value(row)
            .into_pyobject(py)?
            .into_any(),
        DataType::UInt8 => column
            .as_primitive::<UInt8Type>()
            .value(row)
            .into_pyobject(py)?
            .into_any(),
        DataType::UInt16 => column
            .as_primitive::<UInt16Type>()
            .value(row)
            .into_pyobject(py)?
            .into_any(),
        DataType::UInt32 => column
            .as_primitive::<UInt32Type>()
            .value(row)
            .into_pyobject(py)?
            .into_any(),
        DataType::UInt64 => column
            .as_primitive::<UInt64Type>()
            .value(row)
            .into_pyobject(py)?
            .into_any(),
        DataType::Float32 => (column.as_primitive::<Float32Type>().value(row) as f64)
            .into_pyobject(py)?
            .into_any(),
        DataType::Float64 => column
            .as_primitive::<Float64Type>()
            .value(row)
            .into_pyobject(py)?
            .into_any(),
        other => {
            return Err(PyValueError::new_err(format!(
                "Unsupported data type: {other}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// runtime_test.py: LineBuilder, response mapping, the cache, lazy WAL rows, plugin
    /// loading and hot reload, checked by the interpreter the server embeds.
    #[test]
    fn runtime_module() {
        PythonPool::start(1, None, None).expect("interpreter starts");
        let source = CString::new(include_str!("runtime_test.py")).unwrap();
        Python::attach(|py| {
            if let Err(e) = py.run(&source, None, None) {
                let trace = e
                    .traceback(py)
                    .and_then(|t| t.format().ok())
                    .unwrap_or_default();
                panic!("runtime_test.py failed: {e}\n{trace}");
            }
        });
    }
}
