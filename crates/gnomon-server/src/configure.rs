//! `/api/v3/configure/database`: list (GET) and soft delete (DELETE).

use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::{ArrayRef, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gnomon_catalog::{CatalogError, StatusClass};
use gnomon_query::format::{encode_all, Format};
use serde::Deserialize;

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
}

fn serde_error(e: impl std::fmt::Display) -> HttpError {
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
    let catalog = state.write_buffer.catalog();
    let mut txn = catalog.begin().await;
    txn.soft_delete_database(&params.db, SystemTime::now())
        .map_err(catalog_error)?;
    txn.commit().await.map_err(catalog_error)?;
    Ok(StatusCode::OK.into_response())
}
