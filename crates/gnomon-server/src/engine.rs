//! The processing engine's HTTP surface (API.md §5.12–5.19, ENGINE.md §8–§9): trigger
//! management, plugin tests, package installs, plugin files, and `/api/v3/engine/<path>`.
//!
//! Trigger definitions are catalog changes committed here, like the other configure
//! endpoints; the engine is then asked to [`ProcessingEngine::reconcile`] so a new or
//! re-enabled trigger runs before the response is sent. [`ServerPluginHost`] is what plugins
//! reach the database through.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Int64Builder, StringBuilder, TimestampNanosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use datafusion::scalar::ScalarValue;
use futures::TryStreamExt;
use gnomon_catalog::{ErrorBehavior, TriggerDefinition, TriggerSettings, TriggerSpecification};
use gnomon_line_protocol::Precision;
use gnomon_processing_engine::{
    EngineError, PluginHost, ProcessingEngine, ScheduleTestRequest, WalTestRequest,
};
use gnomon_query::{QueryEngine, SystemContext, SystemTable};
use gnomon_write_buffer::{WriteBuffer, WriteOptions};
use serde::Deserialize;

use crate::body::read_body;
use crate::configure::{
    bad_request, catalog_error, change_catalog, json_body, query_or_json, serde_error,
};
use crate::error::HttpError;
use crate::AppState;

/// Plugins' writes and queries, through the same write buffer and query engine as HTTP.
pub struct ServerPluginHost {
    pub write_buffer: Arc<WriteBuffer>,
    pub query: Arc<QueryEngine>,
}

#[async_trait]
impl PluginHost for ServerPluginHost {
    async fn write_lp(&self, db: &str, lines: &str, no_sync: bool) -> Result<(), String> {
        let opts = WriteOptions {
            precision: Precision::Nanosecond,
            accept_partial: false,
            now_ns: gnomon_write_buffer::now_ns(),
        };
        let outcome = self
            .write_buffer
            .write_lp(db, lines, opts, no_sync)
            .await
            .map_err(|e| e.to_string())?;
        match outcome.errors.first() {
            None => Ok(()),
            Some(e) => Err(format!(
                "parsing failed for write_lp endpoint: line {}: {} ({})",
                e.line_number, e.message, e.original_line
            )),
        }
    }

    async fn query(
        &self,
        db: &str,
        sql: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Vec<RecordBatch>, String> {
        let params: Option<HashMap<String, ScalarValue>> = (!params.is_empty()).then(|| {
            params
                .iter()
                .map(|(k, v)| (k.clone(), ScalarValue::Utf8(Some(v.clone()))))
                .collect()
        });
        let stream = self
            .query
            .sql(db, sql, params)
            .await
            .map_err(|e| e.to_string())?;
        stream.try_collect().await.map_err(|e| e.to_string())
    }
}

fn engine_error(e: EngineError) -> HttpError {
    match e {
        EngineError::Restricted(_) => HttpError::plain(StatusCode::BAD_REQUEST, e.to_string()),
        EngineError::PackagesDisabled => HttpError::plain(StatusCode::FORBIDDEN, e.to_string()),
        EngineError::Catalog(c) => catalog_error(c),
        EngineError::Plugin(_) | EngineError::Engine(_) => {
            HttpError::plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

fn engine(state: &AppState) -> Result<&ProcessingEngine, HttpError> {
    state.engine.as_ref().ok_or_else(|| {
        HttpError::plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Processing engine error: the processing engine is not running on this server",
        )
    })
}

#[derive(Debug, Deserialize)]
struct SettingsBody {
    #[serde(default)]
    run_async: bool,
    #[serde(default)]
    error_behavior: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CreateTrigger {
    db: String,
    plugin_filename: String,
    trigger_name: String,
    trigger_specification: String,
    /// Required by the reference; absent means the CLI's defaults (sequential, `log`).
    #[serde(default)]
    trigger_settings: Option<SettingsBody>,
    #[serde(default)]
    trigger_arguments: Option<BTreeMap<String, String>>,
    #[serde(default)]
    disabled: bool,
}

fn error_behavior(text: Option<&str>) -> Result<ErrorBehavior, HttpError> {
    match text.map(str::to_ascii_lowercase).as_deref() {
        None | Some("log") => Ok(ErrorBehavior::Log),
        Some("retry") => Ok(ErrorBehavior::Retry),
        Some("disable") => Ok(ErrorBehavior::Disable),
        Some(other) => Err(bad_request(format!(
            "serde json error: unknown error_behavior `{other}`, expected one of `log`, `retry`, `disable`"
        ))),
    }
}

pub async fn create_trigger(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: CreateTrigger = json_body(&state, &headers, body).await?;
    let engine = engine(&state)?;
    let specification = TriggerSpecification::parse(&request.trigger_specification)
        .map_err(|e| HttpError::plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let settings = match &request.trigger_settings {
        Some(s) => TriggerSettings {
            run_async: s.run_async,
            error_behavior: error_behavior(s.error_behavior.as_deref())?,
        },
        None => TriggerSettings::default(),
    };
    engine
        .check_new_trigger(&specification, &request.plugin_filename)
        .await
        .map_err(engine_error)?;
    let definition = TriggerDefinition {
        name: request.trigger_name,
        plugin_filename: request.plugin_filename,
        specification,
        settings,
        arguments: request.trigger_arguments,
        disabled: request.disabled,
    };
    change_catalog(&state, |txn| txn.create_trigger(&request.db, definition)).await?;
    engine.reconcile().await;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Deserialize)]
struct DeleteTrigger {
    db: String,
    trigger_name: String,
    #[serde(default)]
    force: bool,
}

pub async fn delete_trigger(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: DeleteTrigger = query_or_json(&state, query, &headers, body).await?;
    change_catalog(&state, |txn| {
        txn.delete_trigger(&request.db, &request.trigger_name, request.force)
    })
    .await?;
    if let Some(engine) = &state.engine {
        engine.reconcile().await;
    }
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Deserialize)]
struct TriggerRef {
    db: String,
    trigger_name: String,
}

async fn set_disabled(
    state: Arc<AppState>,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
    disabled: bool,
) -> Result<Response, HttpError> {
    // The reference reads the query string; the seed's JSON body is accepted when it has none.
    let request: TriggerRef = query_or_json(&state, query, &headers, body).await?;
    change_catalog(&state, |txn| {
        txn.set_trigger_disabled(&request.db, &request.trigger_name, disabled)
    })
    .await?;
    if let Some(engine) = &state.engine {
        engine.reconcile().await;
    }
    Ok(StatusCode::OK.into_response())
}

pub async fn enable_trigger(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    set_disabled(state, query, headers, body, false).await
}

pub async fn disable_trigger(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    set_disabled(state, query, headers, body, true).await
}

pub async fn test_wal(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: WalTestRequest = json_body(&state, &headers, body).await?;
    let response = engine(&state)?
        .test_wal(request)
        .await
        .map_err(engine_error)?;
    Ok(axum::Json(response).into_response())
}

pub async fn test_schedule(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: ScheduleTestRequest = json_body(&state, &headers, body).await?;
    let response = engine(&state)?
        .test_schedule(request)
        .await
        .map_err(engine_error)?;
    Ok(axum::Json(response).into_response())
}

#[derive(Debug, Deserialize)]
struct InstallPackages {
    packages: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct InstallRequirements {
    requirements_location: PathBuf,
}

pub async fn install_packages(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: InstallPackages = match query.filter(|q| !q.is_empty()) {
        // `?packages=a&packages=b` or `?packages=a,b`
        Some(q) => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_str(&q).map_err(serde_error)?;
            InstallPackages {
                packages: pairs
                    .into_iter()
                    .filter(|(k, _)| k == "packages")
                    .flat_map(|(_, v)| {
                        v.split(',')
                            .map(|p| p.trim().to_string())
                            .filter(|p| !p.is_empty())
                            .collect::<Vec<_>>()
                    })
                    .collect(),
            }
        }
        None => json_body(&state, &headers, body).await?,
    };
    engine(&state)?
        .install_packages(request.packages, None)
        .await
        .map_err(engine_error)?;
    Ok(StatusCode::OK.into_response())
}

pub async fn install_requirements(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: InstallRequirements = query_or_json(&state, query, &headers, body).await?;
    engine(&state)?
        .install_packages(Vec::new(), Some(request.requirements_location))
        .await
        .map_err(engine_error)?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Deserialize)]
struct PluginFile {
    plugin_name: String,
    content: String,
}

/// `POST /api/v3/plugins/files`: writes a file under the plugin directory.
pub async fn upload_plugin_file(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: PluginFile = json_body(&state, &headers, body).await?;
    engine(&state)?
        .write_plugin_file(&request.plugin_name, &request.content)
        .map_err(engine_error)?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT /api/v3/plugins/files`: replaces the file of the trigger named `plugin_name`.
pub async fn replace_plugin_file(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: PluginFile = json_body(&state, &headers, body).await?;
    engine(&state)?
        .replace_trigger_file(&request.plugin_name, &request.content)
        .map_err(engine_error)?;
    Ok(StatusCode::OK.into_response())
}

/// The reference's 404 body here is this literal, not JSON (ENGINE.md §11).
fn engine_not_found() -> Response {
    (StatusCode::NOT_FOUND, "{error: \"not found\"}").into_response()
}

/// `/api/v3/engine/<path>`, any method: runs the request trigger of `path`.
pub async fn engine_request(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let Some(engine) = &state.engine else {
        return Ok(engine_not_found());
    };
    // Percent-decoded, `+` as space, the last of repeated keys wins.
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(serde_error)?;
    let query_parameters: BTreeMap<String, String> = pairs.into_iter().collect();
    let request_headers: BTreeMap<String, String> = headers
        .iter()
        .filter(|(name, _)| *name != header::AUTHORIZATION)
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = read_body(&headers, body, state.config.max_request_size).await?;
    let Some(response) = engine
        .handle_request(&path, query_parameters, request_headers, body.to_vec())
        .await
    else {
        return Ok(engine_not_found());
    };
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() = status;
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            out.headers_mut().insert(name, value);
        }
    }
    Ok(out)
}

/// The engine as seen by its system tables, which are registered on the query engine before
/// the processing engine exists (plugins query through the query engine).
pub type EngineSlot = Arc<std::sync::OnceLock<ProcessingEngine>>;

/// `system.processing_engine_logs`: the engine's log ring, the same in every database.
#[derive(Debug)]
pub struct EngineLogsTable(pub EngineSlot);

impl SystemTable for EngineLogsTable {
    fn name(&self) -> &str {
        "processing_engine_logs"
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                false,
            ),
            Field::new("trigger_name", DataType::Utf8, false),
            Field::new("log_level", DataType::Utf8, false),
            Field::new("log_text", DataType::Utf8, false),
        ]))
    }

    fn rows(&self, _ctx: &SystemContext) -> datafusion::error::Result<RecordBatch> {
        let records = self.0.get().map(|e| e.logs().records()).unwrap_or_default();
        let mut time = TimestampNanosecondBuilder::new();
        let mut trigger = StringBuilder::new();
        let mut level = StringBuilder::new();
        let mut text = StringBuilder::new();
        for r in &records {
            time.append_value(r.event_time_ns);
            trigger.append_value(&*r.trigger_name);
            level.append_value(r.level.as_str());
            text.append_value(&r.text);
        }
        Ok(RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(time.finish()),
                Arc::new(trigger.finish()),
                Arc::new(level.finish()),
                Arc::new(text.finish()),
            ],
        )?)
    }
}

/// `system.plugin_files` (`_internal` only): the file each trigger runs.
#[derive(Debug)]
pub struct PluginFilesTable(pub EngineSlot);

impl SystemTable for PluginFilesTable {
    fn name(&self) -> &str {
        "plugin_files"
    }

    fn internal_only(&self) -> bool {
        true
    }

    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("plugin_name", DataType::Utf8, false),
            Field::new("file_name", DataType::Utf8, false),
            Field::new("file_path", DataType::Utf8, false),
            Field::new("size_bytes", DataType::Int64, false),
            Field::new("last_modified", DataType::Int64, false),
        ]))
    }

    fn rows(&self, _ctx: &SystemContext) -> datafusion::error::Result<RecordBatch> {
        let files = self.0.get().map(|e| e.plugin_files()).unwrap_or_default();
        let mut plugin = StringBuilder::new();
        let mut file = StringBuilder::new();
        let mut path = StringBuilder::new();
        let mut size = Int64Builder::new();
        let mut modified = Int64Builder::new();
        for f in &files {
            plugin.append_value(&f.trigger_name);
            file.append_value(&f.file_name);
            path.append_value(&f.file_path);
            size.append_value(f.size_bytes);
            modified.append_value(f.last_modified_ms);
        }
        Ok(RecordBatch::try_new(
            self.schema(),
            vec![
                Arc::new(plugin.finish()),
                Arc::new(file.finish()),
                Arc::new(path.finish()),
                Arc::new(size.finish()),
                Arc::new(modified.finish()),
            ],
        )?)
    }
}
