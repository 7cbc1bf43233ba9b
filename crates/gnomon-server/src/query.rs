//! `/api/v3/query_sql`: parameters, format negotiation and streamed results.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use gnomon_query::format::{Format, ResultEncoder};
use gnomon_query::{json_param, BatchStream, QueryError};
use serde::Deserialize;

use crate::body::read_plain;
use crate::error::HttpError;
use crate::AppState;

async fn next_batch(
    stream: &mut BatchStream,
) -> Option<Result<arrow::record_batch::RecordBatch, String>> {
    stream.next().await.map(|r| r.map_err(|e| e.to_string()))
}

#[derive(Debug, Deserialize)]
struct GetParams {
    db: String,
    q: String,
    format: Option<String>,
    params: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PostBody {
    db: String,
    q: String,
    format: Option<String>,
    params: Option<serde_json::Map<String, serde_json::Value>>,
}

const FORMATS: &str = "`json`, `jsonl`, `json_lines`, `csv`, `parquet`, `pretty`";

fn bad_request(message: String) -> HttpError {
    HttpError::plain(StatusCode::BAD_REQUEST, message)
}

pub async fn query_sql_get(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let query = query.ok_or_else(|| bad_request("missing query parameters 'db' and 'q'".into()))?;
    let accepted = format_from_accept(&headers)?;
    let params: GetParams =
        serde_urlencoded::from_str(&query).map_err(|e| bad_request(format!("serde error: {e}")))?;
    let format = choose_format(accepted, params.format.as_deref())?;
    let bind = match params.params.as_deref() {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
                .map_err(|e| bad_request(format!("serde json error: {e}")))?,
        ),
    };
    run(&state, &params.db, &params.q, format, bind).await
}

pub async fn query_sql_post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let accepted = format_from_accept(&headers)?;
    let body = read_plain(body, state.config.max_request_size).await?;
    let request: PostBody =
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("serde json error: {e}")))?;
    let format = choose_format(accepted, request.format.as_deref())?;
    run(&state, &request.db, &request.q, format, request.params).await
}

/// The format the `Accept` header asks for; evaluated even when `format=` is given.
pub(crate) fn format_from_accept(headers: &HeaderMap) -> Result<Format, HttpError> {
    let Some(value) = headers.get(header::ACCEPT) else {
        return Ok(Format::Json);
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    Ok(match text.as_ref() {
        "" | "application/json" | "*/*" => Format::Json,
        "application/vnd.apache.parquet" => Format::Parquet,
        "text/csv" => Format::Csv,
        "text/plain" => Format::Pretty,
        t if t.contains("text/html") || t.contains("*/*") => Format::Json,
        t => return Err(bad_request(format!("invalid mime type ({t})"))),
    })
}

pub(crate) fn choose_format(accepted: Format, param: Option<&str>) -> Result<Format, HttpError> {
    match param {
        None => Ok(accepted),
        Some(p) => Format::from_param(p).ok_or_else(|| {
            bad_request(format!(
                "serde error: unknown variant `{p}`, expected one of {FORMATS}"
            ))
        }),
    }
}

/// Maps a query failure to its status and plain-text body.
pub fn query_error(e: QueryError) -> HttpError {
    match e {
        QueryError::DatabaseNotFound(_) => HttpError::message(StatusCode::NOT_FOUND, e.to_string()),
        QueryError::Invalid(m) => HttpError::plain(StatusCode::BAD_REQUEST, m),
        QueryError::NotImplemented(m) => HttpError::plain(StatusCode::METHOD_NOT_ALLOWED, m),
        QueryError::Execution(_) => {
            tracing::warn!(error = %e, "query failed");
            HttpError::plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

async fn run(
    state: &AppState,
    db: &str,
    sql: &str,
    format: Format,
    params: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<Response, HttpError> {
    let params = match params {
        None => None,
        Some(map) => Some(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), json_param(v)?)))
                .collect::<Result<HashMap<_, _>, QueryError>>()
                .map_err(query_error)?,
        ),
    };
    let mut stream = state
        .query
        .sql(db, sql, params)
        .await
        .map_err(query_error)?;
    // Run until the first batch before answering, so that an early execution error still gets
    // a proper status instead of a truncated 200.
    let mut encoder = ResultEncoder::new(format);
    let first = match next_batch(&mut stream).await {
        None => None,
        Some(Ok(batch)) => Some(batch),
        Some(Err(e)) => return Err(query_error(QueryError::Execution(e))),
    };
    let mut head = Vec::new();
    if let Some(batch) = &first {
        head.extend_from_slice(&encoder.push(batch).map_err(encode_error)?);
    }
    let body = if first.is_none() {
        head.extend_from_slice(&encoder.finish().map_err(encode_error)?);
        Body::from(head)
    } else {
        Body::from_stream(body_stream(Bytes::from(head), stream, encoder))
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

fn encode_error(e: arrow::error::ArrowError) -> HttpError {
    HttpError::plain(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("query error: error encoding results: {e}"),
    )
}

/// The rest of the result, encoded batch by batch. An error after the first bytes went out
/// ends the body early (the HTTP status is already sent), and is logged.
fn body_stream(
    head: Bytes,
    stream: BatchStream,
    encoder: ResultEncoder,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    enum St {
        Head(Bytes, BatchStream, ResultEncoder),
        Running(BatchStream, ResultEncoder),
        Done,
    }
    futures::stream::unfold(St::Head(head, stream, encoder), |st| async move {
        match st {
            St::Head(head, stream, encoder) => Some((Ok(head), St::Running(stream, encoder))),
            St::Running(mut stream, mut encoder) => match next_batch(&mut stream).await {
                Some(Ok(batch)) => match encoder.push(&batch) {
                    Ok(bytes) => Some((Ok(bytes), St::Running(stream, encoder))),
                    Err(e) => Some((Err(std::io::Error::other(e)), St::Done)),
                },
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "query failed while streaming its result");
                    Some((Err(std::io::Error::other(e)), St::Done))
                }
                None => match encoder.finish() {
                    Ok(bytes) => Some((Ok(bytes), St::Done)),
                    Err(e) => Some((Err(std::io::Error::other(e)), St::Done)),
                },
            },
            St::Done => None,
        }
    })
}
