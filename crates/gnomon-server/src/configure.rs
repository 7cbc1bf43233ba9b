//! `/api/v3/configure/*`: databases (list, create, soft delete), tables (create, soft
//! delete) and the last-value and distinct-value caches (create, delete).
//!
//! Catalog changes are committed here; the cache crate notices new or removed cache
//! definitions through the catalog, so these handlers never touch cached data.

use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::{ArrayRef, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gnomon_catalog::{
    CatalogError, CatalogSnapshot, CatalogTransaction, DistinctCacheDefinition,
    DistinctCacheRequest, FieldType, LastCacheDefinition, LastCacheRequest, StatusClass,
    TableSchema,
};
use gnomon_query::format::{encode_all, Format};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::body::read_body;
use crate::error::HttpError;
use crate::AppState;

#[derive(Debug, Deserialize)]
struct ListParams {
    format: String,
    #[serde(default)]
    show_deleted: bool,
}

#[derive(Debug, Deserialize)]
struct DeleteParams {
    db: String,
    hard_delete_at: Option<String>,
}

pub(crate) fn serde_error(e: impl std::fmt::Display) -> HttpError {
    HttpError::plain(StatusCode::BAD_REQUEST, format!("serde error: {e}"))
}

/// Catalog errors of the configure endpoints: plain text, except the JSON family ones.
pub fn catalog_error(e: CatalogError) -> HttpError {
    let status = match e.status_class() {
        StatusClass::NotFound => StatusCode::NOT_FOUND,
        StatusClass::Conflict => StatusCode::CONFLICT,
        StatusClass::BadRequest => StatusCode::BAD_REQUEST,
        StatusClass::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        StatusClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if e.uses_json_body() {
        HttpError::message(status, e.to_string())
    } else {
        HttpError::plain(status, e.to_string())
    }
}

/// Runs `change` in one catalog transaction and commits it (persisted before the new
/// snapshot is published); catalog errors become this endpoint family's answers. A failed
/// change is dropped uncommitted.
pub(crate) async fn change_catalog<T>(
    state: &AppState,
    change: impl FnOnce(&mut CatalogTransaction<'_>) -> Result<T, CatalogError>,
) -> Result<(T, Arc<CatalogSnapshot>), HttpError> {
    let mut txn = state.write_buffer.catalog().begin().await;
    let out = change(&mut txn).map_err(catalog_error)?;
    let snapshot = txn.commit().await.map_err(catalog_error)?;
    Ok((out, snapshot))
}

pub async fn list_databases(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let params: ListParams =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(serde_error)?;
    let format = Format::from_param(&params.format).ok_or_else(|| {
        serde_error(format!(
            "unknown variant `{}`, expected one of `json`, `jsonl`, `json_lines`, `csv`, `parquet`, `pretty`",
            params.format
        ))
    })?;
    let snapshot = state.write_buffer.catalog().snapshot();
    let mut rows: Vec<(bool, String)> = snapshot
        .databases()
        .filter(|db| params.show_deleted || !db.deleted())
        .map(|db| (db.deleted(), db.name.to_string()))
        .collect();
    rows.sort();
    let mut fields = vec![Field::new("iox::database", DataType::Utf8, false)];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
        rows.iter().map(|(_, name)| name.as_str()),
    ))];
    if params.show_deleted {
        fields.push(Field::new("deleted", DataType::Boolean, false));
        columns.push(Arc::new(BooleanArray::from_iter(
            rows.iter().map(|(deleted, _)| Some(*deleted)),
        )));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .expect("columns match the schema");
    let body = encode_all(format, &[batch])
        .map_err(|e| HttpError::plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

pub async fn delete_database(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let params: DeleteParams =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(serde_error)?;
    let now = SystemTime::now();
    let hard_delete = hard_delete_time(params.hard_delete_at.as_deref(), now)?;
    change_catalog(&state, |txn| {
        txn.soft_delete_database_with_hard_delete(&params.db, now, hard_delete)
    })
    .await?;
    // Its triggers stop now rather than at the engine's next catalog check.
    if let Some(engine) = &state.engine {
        engine.reconcile().await;
    }
    Ok(StatusCode::OK.into_response())
}

/// How long after a soft delete the data is scheduled for removal by default (the
/// reference's `--hard-delete-default-duration`).
const HARD_DELETE_DEFAULT: std::time::Duration = std::time::Duration::from_secs(72 * 3600);

/// `hard_delete_at`: `never`, `now`, `default` (absent) or an RFC 3339 timestamp (a past one
/// means now). `None` = never.
fn hard_delete_time(param: Option<&str>, now: SystemTime) -> Result<Option<i64>, HttpError> {
    let ns = |t: SystemTime| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0)
    };
    Ok(match param.unwrap_or("default") {
        "never" => None,
        "now" => Some(ns(now)),
        "default" => Some(ns(now + HARD_DELETE_DEFAULT)),
        other => {
            let at = humantime::parse_rfc3339_weak(other).map_err(|e| {
                HttpError::plain(
                    StatusCode::BAD_REQUEST,
                    format!("Cannot parse the timestamp: {e}"),
                )
            })?;
            Some(ns(at.max(now)))
        }
    })
}

pub(crate) fn bad_request(message: impl Into<String>) -> HttpError {
    HttpError::plain(StatusCode::BAD_REQUEST, message)
}

/// True for `application/json` and `application/*+json`, parameters allowed.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let mime = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// A JSON request body: 415 without a JSON content type, 400 `serde json error` when it does
/// not parse (API.md §0.4).
pub(crate) async fn json_body<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, HttpError> {
    if !is_json(headers) {
        return Err(HttpError::plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unacceptable content-type, expected: application/json",
        ));
    }
    let bytes = read_body(headers, body, state.config.max_request_size).await?;
    serde_json::from_slice(&bytes).map_err(|e| bad_request(format!("serde json error: {e}")))
}

/// Parameters of a DELETE that accepts them in the query string or, when there is none, in
/// a JSON body (API.md §5.9).
pub(crate) async fn query_or_json<T: DeserializeOwned>(
    state: &AppState,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, HttpError> {
    match query.filter(|q| !q.is_empty()) {
        Some(q) => {
            // The body is ignored but must still be read: a request answered before its body
            // was consumed leaves the bytes on the keep-alive connection, and the client's
            // next request on it fails ("connection closed without response").
            let _ = axum::body::to_bytes(body, state.config.max_request_size).await;
            serde_urlencoded::from_str(&q).map_err(serde_error)
        }
        None => json_body(state, headers, body).await,
    }
}

/// A duration given as whole seconds or as a humantime string (`"4h"`, `"1d"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(u64),
    Text(String),
}

impl Seconds {
    fn seconds(&self, what: &str) -> Result<u64, HttpError> {
        match self {
            Seconds::Number(n) => Ok(*n),
            Seconds::Text(t) => humantime::parse_duration(t)
                .map(|d| d.as_secs())
                .map_err(|e| bad_request(format!("serde json error: invalid {what} {t:?}: {e}"))),
        }
    }
}

fn nanos_of(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[derive(Debug, Deserialize)]
struct CreateDatabase {
    db: String,
    retention_period: Option<String>,
}

pub async fn create_database(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: CreateDatabase = json_body(&state, &headers, body).await?;
    let retention = match request.retention_period.as_deref() {
        None => None,
        Some(text) => Some(nanos_of(humantime::parse_duration(text).map_err(|e| {
            bad_request(format!(
                "serde json error: invalid retention_period {text:?}: {e}"
            ))
        })?)),
    };
    change_catalog(&state, |txn| txn.create_database(&request.db, retention)).await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Deserialize)]
struct UpdateDatabase {
    db: String,
    #[serde(default)]
    retention_period: Option<String>,
}

fn retention_ns(
    text: Option<&str>,
    bad: impl Fn(String) -> HttpError,
) -> Result<Option<i64>, HttpError> {
    match text {
        None => Ok(None),
        Some(text) => humantime::parse_duration(text)
            .map(|d| Some(nanos_of(d)))
            .map_err(|e| bad(format!("{text:?}: {e}"))),
    }
}

async fn set_retention(
    state: &AppState,
    db: &str,
    retention: Option<i64>,
) -> Result<(), HttpError> {
    change_catalog(state, |txn| txn.set_retention_period(db, retention)).await?;
    Ok(())
}

/// `PUT /api/v3/configure/database`: `{"db", "retention_period": "<duration>" | null}`; a
/// missing or null period clears it (infinite).
pub async fn update_database(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: UpdateDatabase = json_body(&state, &headers, body).await?;
    let retention = retention_ns(request.retention_period.as_deref(), |m| {
        bad_request(format!("serde json error: invalid retention_period {m}"))
    })?;
    set_retention(&state, &request.db, retention).await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Deserialize)]
struct RetentionParams {
    db: String,
    duration: Option<String>,
}

/// `POST /api/v3/configure/database/retention_period?db=&duration=`: sets the period.
pub async fn set_retention_period(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let params: RetentionParams =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(serde_error)?;
    let Some(duration) = params.duration.as_deref() else {
        return Err(serde_error("missing field `duration`"));
    };
    let retention = retention_ns(Some(duration), |m| {
        HttpError::plain(
            StatusCode::BAD_REQUEST,
            format!("Cannot parse the given human time: {m}"),
        )
    })?;
    set_retention(&state, &params.db, retention).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /api/v3/configure/database/retention_period?db=`: clears the period.
pub async fn clear_retention_period(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let params: RetentionParams =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(serde_error)?;
    set_retention(&state, &params.db, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Field types of `POST /api/v3/configure/table`, spelled as the reference spells them.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FieldTypeParam {
    Utf8,
    Int64,
    Uint64,
    Float64,
    Bool,
}

impl From<FieldTypeParam> for FieldType {
    fn from(t: FieldTypeParam) -> Self {
        match t {
            FieldTypeParam::Utf8 => FieldType::String,
            FieldTypeParam::Int64 => FieldType::Integer,
            FieldTypeParam::Uint64 => FieldType::UInteger,
            FieldTypeParam::Float64 => FieldType::Float,
            FieldTypeParam::Bool => FieldType::Boolean,
        }
    }
}

#[derive(Debug, Deserialize)]
struct FieldParam {
    name: String,
    #[serde(rename = "type")]
    ty: FieldTypeParam,
}

#[derive(Debug, Deserialize)]
struct CreateTable {
    db: String,
    table: String,
    tags: Vec<String>,
    fields: Vec<FieldParam>,
}

pub async fn create_table(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: CreateTable = json_body(&state, &headers, body).await?;
    let tags: Vec<&str> = request.tags.iter().map(String::as_str).collect();
    let fields: Vec<(&str, FieldType)> = request
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.ty.into()))
        .collect();
    change_catalog(&state, |txn| {
        let db = txn.database_or_create(&request.db)?;
        txn.create_table(db, &request.table, &tags, &fields)
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Deserialize)]
struct DeleteTable {
    db: String,
    table: String,
    hard_delete_at: Option<String>,
}

pub async fn delete_table(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let params: DeleteTable =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(serde_error)?;
    let now = SystemTime::now();
    let hard_delete = hard_delete_time(params.hard_delete_at.as_deref(), now)?;
    change_catalog(&state, |txn| {
        let db = txn
            .state()
            .database(&params.db)
            .map(|d| d.id)
            .ok_or_else(|| CatalogError::DatabaseNotFound {
                name: params.db.clone(),
            })?;
        txn.soft_delete_table_with_hard_delete(db, &params.table, now, hard_delete)
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Deserialize)]
struct CreateLastCache {
    db: String,
    table: String,
    name: Option<String>,
    key_columns: Option<Vec<String>>,
    value_columns: Option<Vec<String>>,
    count: Option<usize>,
    ttl: Option<Seconds>,
}

#[derive(Debug, Deserialize)]
struct CacheParams {
    db: String,
    table: String,
    name: String,
}

fn column_names(table: &TableSchema, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|id| {
            table
                .column_by_id(*id)
                .map_or_else(|| format!("<column {id}>"), |c| c.name.to_string())
        })
        .collect()
}

/// The 201 answer to a cache creation: the new definition, with column names.
fn created(value: serde_json::Value) -> Response {
    (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn last_cache_json(db: &str, table: &TableSchema, def: &LastCacheDefinition) -> serde_json::Value {
    serde_json::json!({
        "db": db,
        "table": &*table.name,
        "table_id": table.id,
        "id": def.id,
        "name": def.name,
        "key_columns": column_names(table, &def.key_columns),
        "value_columns": def.value_columns.as_ref().map(|v| column_names(table, v)),
        "count": def.count,
        "ttl": def.ttl_seconds,
    })
}

fn distinct_cache_json(
    db: &str,
    table: &TableSchema,
    def: &DistinctCacheDefinition,
) -> serde_json::Value {
    serde_json::json!({
        "db": db,
        "table": &*table.name,
        "table_id": table.id,
        "id": def.id,
        "name": def.name,
        "columns": column_names(table, &def.columns),
        "max_cardinality": def.max_cardinality,
        "max_age": def.max_age_seconds,
    })
}

pub async fn create_last_cache(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: CreateLastCache = json_body(&state, &headers, body).await?;
    let ttl_seconds = request.ttl.as_ref().map(|t| t.seconds("ttl")).transpose()?;
    let (def, snapshot) = change_catalog(&state, |txn| {
        txn.create_last_cache(
            &request.db,
            &request.table,
            LastCacheRequest {
                name: request.name,
                key_columns: request.key_columns,
                value_columns: request.value_columns,
                count: request.count,
                ttl_seconds,
            },
        )
    })
    .await?;
    let table = committed_table(&snapshot, &request.db, &request.table)?;
    Ok(created(last_cache_json(&request.db, table, &def)))
}

/// The table a just-committed cache definition belongs to (it exists: the transaction that
/// created the cache checked it).
fn committed_table<'s>(
    snapshot: &'s gnomon_catalog::CatalogSnapshot,
    db: &str,
    table: &str,
) -> Result<&'s Arc<gnomon_catalog::TableSchema>, HttpError> {
    snapshot
        .database(db)
        .and_then(|d| d.table(table))
        .ok_or_else(|| HttpError::plain(StatusCode::INTERNAL_SERVER_ERROR, "table vanished"))
}

pub async fn delete_last_cache(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let params: CacheParams = query_or_json(&state, query, &headers, body).await?;
    change_catalog(&state, |txn| {
        txn.delete_last_cache(&params.db, &params.table, &params.name)
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Deserialize)]
struct CreateDistinctCache {
    db: String,
    table: String,
    name: Option<String>,
    columns: Vec<String>,
    max_cardinality: Option<u64>,
    max_age: Option<Seconds>,
}

pub async fn create_distinct_cache(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let request: CreateDistinctCache = json_body(&state, &headers, body).await?;
    let max_age_seconds = request
        .max_age
        .as_ref()
        .map(|t| t.seconds("max_age"))
        .transpose()?;
    let (def, snapshot) = change_catalog(&state, |txn| {
        txn.create_distinct_cache(
            &request.db,
            &request.table,
            DistinctCacheRequest {
                name: request.name,
                columns: request.columns,
                max_cardinality: request.max_cardinality,
                max_age_seconds,
            },
        )
    })
    .await?;
    let table = committed_table(&snapshot, &request.db, &request.table)?;
    Ok(created(distinct_cache_json(&request.db, table, &def)))
}

pub async fn delete_distinct_cache(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let params: CacheParams = query_or_json(&state, query, &headers, body).await?;
    change_catalog(&state, |txn| {
        txn.delete_distinct_cache(&params.db, &params.table, &params.name)
    })
    .await?;
    Ok(StatusCode::OK.into_response())
}
