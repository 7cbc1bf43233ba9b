//! The three line protocol write endpoints: `/api/v3/write_lp`, `/write` (v1) and
//! `/api/v2/write`. They share one path into the write buffer and differ in parameters,
//! defaults, database naming and error bodies (API.md §2).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gnomon_catalog::CatalogError;
use gnomon_line_protocol::{LineError, Precision};
use gnomon_write_buffer::{now_ns, WriteBufferError, WriteOptions, WriteOutcome};
use serde::Deserialize;
use serde_json::json;

use crate::body::read_body;
use crate::error::HttpError;
use crate::AppState;

/// Longest `original_line` echoed back in a line error. InfluxDB 3 Core cuts it at 20 bytes,
/// which hides the part of the line that is wrong; we keep enough to see it while bounding the
/// response of a body full of bad lines.
const MAX_ORIGINAL_LINE: usize = 1024;

#[derive(Debug, Deserialize)]
struct V3Params {
    db: String,
    precision: Option<String>,
    accept_partial: Option<bool>,
    no_sync: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct V1Params {
    db: String,
    rp: Option<String>,
    precision: Option<String>,
}

#[derive(Debug, Deserialize)]
struct V2Params {
    bucket: Option<String>,
    precision: Option<String>,
}

const V3_PRECISIONS: &str =
    "`auto`, `second`, `s`, `millisecond`, `ms`, `microsecond`, `us`, `u`, `nanosecond`, `ns`, `n`";
const V1_PRECISIONS: &str =
    "`s`, `ms`, `us`, `u`, `ns`, `n`, `second`, `millisecond`, `microsecond`, `nanosecond`";

/// The `precision` parameter: absent → `default`; unknown → `error` with serde's wording.
fn precision_param(
    value: Option<&str>,
    default: Precision,
    parse: fn(&str) -> Option<Precision>,
    expected: &str,
    error: impl Fn(String) -> HttpError,
) -> Result<Precision, HttpError> {
    match value {
        None => Ok(default),
        Some(p) => parse(p)
            .ok_or_else(|| error(format!("unknown variant `{p}`, expected one of {expected}"))),
    }
}

pub async fn write_v3(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let query = query
        .ok_or_else(|| HttpError::plain(StatusCode::BAD_REQUEST, "missing query parameter 'db'"))?;
    let serde_error =
        |m: String| HttpError::plain(StatusCode::BAD_REQUEST, format!("serde error: {m}"));
    let params: V3Params =
        serde_urlencoded::from_str(&query).map_err(|e| serde_error(e.to_string()))?;
    let precision = precision_param(
        params.precision.as_deref(),
        Precision::Auto,
        Precision::parse_v3,
        V3_PRECISIONS,
        serde_error,
    )?;
    let accept_partial = params.accept_partial.unwrap_or(true);
    let no_sync = params.no_sync.unwrap_or(false);
    let started = std::time::Instant::now();
    let body = read_body(&headers, body, state.config.max_request_size).await?;
    tracing::debug!(
        bytes = body.len(),
        read_us = started.elapsed().as_micros() as u64,
        "write body read"
    );
    let target = WriteTarget {
        db: &params.db,
        precision,
        accept_partial,
        no_sync,
        api: Api::V3,
    };
    write(&state, target, &body).await
}

pub async fn write_v1(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let query = query
        .ok_or_else(|| HttpError::message(StatusCode::BAD_REQUEST, "no db destination provided"))?;
    let deser_error = |m: String| {
        HttpError::message(
            StatusCode::BAD_REQUEST,
            format!("failed to deserialize db/rp/precision in request: {m}"),
        )
    };
    let params: V1Params =
        serde_urlencoded::from_str(&query).map_err(|e| deser_error(e.to_string()))?;
    let precision = precision_param(
        params.precision.as_deref(),
        Precision::Nanosecond,
        Precision::parse_v1,
        V1_PRECISIONS,
        deser_error,
    )?;
    let db = v1_database(&params.db, params.rp.as_deref())?;
    let body = read_body(&headers, body, state.config.max_request_size).await?;
    let target = WriteTarget {
        db: &db,
        precision,
        accept_partial: false,
        no_sync: false,
        api: Api::V1,
    };
    write(&state, target, &body).await
}

pub async fn write_v2(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let query = query.ok_or_else(|| {
        HttpError::v2(
            StatusCode::BAD_REQUEST,
            "no org/bucket destination provided",
        )
    })?;
    let deser_error = |m: String| {
        HttpError::v2(
            StatusCode::BAD_REQUEST,
            format!("failed to deserialize org/bucket/precision in request: {m}"),
        )
    };
    let params: V2Params =
        serde_urlencoded::from_str(&query).map_err(|e| deser_error(e.to_string()))?;
    let bucket = match params.bucket {
        Some(b) if !b.is_empty() => b,
        _ => {
            return Err(HttpError::v2(
                StatusCode::BAD_REQUEST,
                "missing bucket value",
            ))
        }
    };
    let precision = precision_param(
        params.precision.as_deref(),
        Precision::Nanosecond,
        Precision::parse_v1,
        V1_PRECISIONS,
        deser_error,
    )?;
    check_namespace(&bucket).map_err(HttpError::into_v2)?;
    let body = read_body(&headers, body, state.config.max_request_size)
        .await
        .map_err(HttpError::into_v2)?;
    let target = WriteTarget {
        db: &bucket,
        precision,
        accept_partial: false,
        no_sync: false,
        api: Api::V2,
    };
    write(&state, target, &body).await
}

/// The database a v1 write goes to: `db`, or `db/rp` for a non-default retention policy.
fn v1_database(db: &str, rp: Option<&str>) -> Result<String, HttpError> {
    check_namespace(db)?;
    let rp = rp.map(str::to_lowercase);
    Ok(match rp.as_deref() {
        None | Some("") | Some("''") | Some("autogen") | Some("default") => db.to_string(),
        Some(rp) => format!("{db}/{rp}"),
    })
}

/// The v1/v2 namespace rule, checked before the v3 database name rules.
fn check_namespace(name: &str) -> Result<(), HttpError> {
    let chars = name.chars().count();
    if chars == 0 || chars > 64 {
        return Err(HttpError::message(
            StatusCode::BAD_REQUEST,
            format!("namespace name {name} length must be between 1 and 64 characters"),
        ));
    }
    if let Some((i, _)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '/' | '_' | '-')))
    {
        return Err(HttpError::message(
            StatusCode::BAD_REQUEST,
            format!("namespace name '{name}' contains invalid character, character number {i} is not allowed"),
        ));
    }
    Ok(())
}

/// Which write API a request came in on: they share the write path but not all error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V2,
    V3,
}

impl Api {
    /// `error` in this API's body shape: the v2 API answers `{"code","message"}` everywhere.
    fn shape(self, error: HttpError) -> HttpError {
        match self {
            Api::V2 => error.into_v2(),
            Api::V1 | Api::V3 => error,
        }
    }
}

/// Where and how one request's lines are written.
struct WriteTarget<'a> {
    db: &'a str,
    precision: Precision,
    accept_partial: bool,
    no_sync: bool,
    api: Api,
}

async fn write(
    state: &AppState,
    target: WriteTarget<'_>,
    body: &[u8],
) -> Result<Response, HttpError> {
    let api = target.api;
    let body = std::str::from_utf8(body).map_err(|e| {
        let error = HttpError::plain(
            StatusCode::BAD_REQUEST,
            format!("body content is not valid utf8: {e}"),
        );
        api.shape(error)
    })?;
    let opts = WriteOptions {
        precision: target.precision,
        accept_partial: target.accept_partial,
        now_ns: now_ns(),
    };
    let outcome = state
        .write_buffer
        .write_lp(target.db, body, opts, target.no_sync)
        .await
        .map_err(|e| write_error(e, api))?;
    state.metrics.record_write(
        target.db,
        outcome.lines_written as u64,
        outcome.errors.len() as u64,
    );
    write_response(outcome, target.accept_partial, api)
}

fn write_response(
    outcome: WriteOutcome,
    accept_partial: bool,
    api: Api,
) -> Result<Response, HttpError> {
    if outcome.errors.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if !accept_partial {
        let first = &outcome.errors[0];
        if api == Api::V2 {
            return Err(HttpError::v2(
                StatusCode::BAD_REQUEST,
                format!(
                    "write buffer error: line protocol parse failed: {}",
                    first.message
                ),
            ));
        }
        return Err(HttpError::with_data(
            StatusCode::BAD_REQUEST,
            "line protocol parsing error",
            line_error_json(first),
        ));
    }
    let status = if outcome.limit_exceeded {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::BAD_REQUEST
    };
    Err(HttpError::with_data(
        status,
        "partial write of line protocol occurred",
        serde_json::Value::Array(outcome.errors.iter().map(line_error_json).collect()),
    ))
}

fn line_error_json(e: &LineError) -> serde_json::Value {
    let mut original = e.original_line.as_str();
    if original.len() > MAX_ORIGINAL_LINE {
        let mut end = MAX_ORIGINAL_LINE;
        while !original.is_char_boundary(end) {
            end -= 1;
        }
        original = &original[..end];
    }
    // serde_json's map keeps insertion order only with `preserve_order`; build the object by
    // hand so the key order is the documented one.
    let text = format!(
        "{{\"error_message\":{},\"line_number\":{},\"original_line\":{}}}",
        serde_json::Value::String(e.message.clone()),
        e.line_number,
        serde_json::Value::String(original.to_string()),
    );
    serde_json::from_str(&text).unwrap_or_else(|_| json!({}))
}

fn write_error(e: WriteBufferError, api: Api) -> HttpError {
    match e {
        WriteBufferError::EmptyWrite if api == Api::V2 => HttpError::v2(
            StatusCode::BAD_REQUEST,
            "write buffer error: incoming write was empty",
        ),
        WriteBufferError::EmptyWrite => {
            HttpError::plain(StatusCode::BAD_REQUEST, "incoming write was empty")
        }
        WriteBufferError::Catalog(e) => {
            let error = catalog_error(e);
            match api {
                // The v2 API reports limits (and every other rejected write) as `invalid`.
                Api::V2 if error.status == StatusCode::UNPROCESSABLE_ENTITY => {
                    HttpError::v2(StatusCode::BAD_REQUEST, error.message_text())
                }
                _ => api.shape(error),
            }
        }
        e @ WriteBufferError::Wal(_) => {
            tracing::error!(error = %e, "write failed in the WAL");
            api.shape(HttpError::plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("write buffer error: {e}"),
            ))
        }
        e @ WriteBufferError::CorruptBatch(_) => api.shape(HttpError::plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        )),
    }
}

/// Maps a catalog error met while writing (JSON bodies, as the write endpoints use).
fn catalog_error(e: CatalogError) -> HttpError {
    let mapped = crate::configure::catalog_error(e);
    if mapped.status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = mapped.message_text(), "catalog error while writing");
        return HttpError::plain(
            mapped.status,
            format!("write buffer error: {}", mapped.message_text()),
        );
    }
    HttpError::message(mapped.status, mapped.message_text())
}
