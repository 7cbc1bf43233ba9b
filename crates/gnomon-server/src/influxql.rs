//! InfluxQL over HTTP: the v1 `/query` endpoint (v1 JSON / CSV, chunked) and
//! `/api/v3/query_influxql` (the tabular formats of `query_sql`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{ArrayRef, AsArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use datafusion::error::DataFusionError;
use gnomon_catalog::ColumnKind;
use gnomon_influxql::ast::Literal;
use gnomon_influxql::ast::{
    MeasurementName, MeasurementSelection, QualifiedMeasurement, SelectStatement, Statement,
};
use gnomon_influxql::plan::{plan_select, MEASUREMENT_COLUMN};
use gnomon_influxql::semantic::bind_parameters;
use gnomon_influxql::v1::{self, Cell, Epoch, Series};
use gnomon_query::format::{encode_all, Format};
use gnomon_query::{QueryError, CATALOG_NAME, TABLE_SCHEMA};

use crate::body::read_plain;
use crate::error::HttpError;
use crate::AppState;

const NO_DB: &str = "must specify a 'db' parameter, or provide the database in the InfluxQL query";

/// Why a statement failed, with the class that decides the v3 status.
#[derive(Debug)]
struct StmtError {
    class: Class,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    NotFound,
    Invalid,
    NotImplemented,
    Execution,
}

impl StmtError {
    fn invalid(m: impl Into<String>) -> Self {
        Self {
            class: Class::Invalid,
            message: m.into(),
        }
    }

    fn datafusion(e: DataFusionError) -> Self {
        let class = match e.find_root() {
            DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => Class::Invalid,
            DataFusionError::NotImplemented(_) => Class::NotImplemented,
            _ => Class::Execution,
        };
        Self {
            class,
            message: format!("datafusion error: {e}"),
        }
    }

    fn query(e: QueryError) -> Self {
        match e {
            QueryError::DatabaseNotFound(db) => Self {
                class: Class::NotFound,
                message: format!(
                    "Cannot retrieve database: External error: database not found: {db}"
                ),
            },
            QueryError::Invalid(m) => Self::invalid(m),
            QueryError::NotImplemented(m) => Self {
                class: Class::NotImplemented,
                message: m,
            },
            QueryError::Execution(m) => Self {
                class: Class::Execution,
                message: m,
            },
        }
    }

    fn status(&self) -> StatusCode {
        match self.class {
            Class::NotFound => StatusCode::NOT_FOUND,
            Class::Invalid => StatusCode::BAD_REQUEST,
            Class::NotImplemented => StatusCode::METHOD_NOT_ALLOWED,
            Class::Execution => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What a statement produced.
enum Output {
    /// A planned SELECT: rows with `iox::measurement`, `time`, tag columns, values.
    Rows {
        batches: Vec<RecordBatch>,
        tag_columns: Vec<String>,
        group_by_tags: bool,
        /// `tz()`'s zone (not UTC): v1 text times are written in it.
        timezone: Option<gnomon_influxql::Tz>,
    },
    /// Metadata, already in series form.
    Meta(Vec<Series>),
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `db` (and `rp`) named by the statement, if any.
fn statement_database(stmt: &Statement) -> Result<Option<String>, StmtError> {
    fn qualified(q: &QualifiedMeasurement, out: &mut Vec<String>) {
        if let Some(db) = &q.database {
            let name = match &q.retention_policy {
                Some(rp) if rp.0 != "autogen" && rp.0 != "default" => format!("{}/{}", db.0, rp.0),
                _ => db.0.clone(),
            };
            out.push(name);
        }
    }
    fn select(s: &SelectStatement, out: &mut Vec<String>) {
        for f in &s.from {
            match f {
                MeasurementSelection::Name(q) => qualified(q, out),
                MeasurementSelection::Subquery(s) => select(s, out),
            }
        }
    }
    let mut dbs = Vec::new();
    match stmt {
        Statement::Select(s) => select(s, &mut dbs),
        Statement::Explain(e) => select(&e.select, &mut dbs),
        Statement::ShowRetentionPolicies(s) => dbs.extend(s.database.iter().map(|d| d.0.clone())),
        Statement::ShowMeasurements(s) => match &s.on {
            None => {}
            Some(gnomon_influxql::ast::OnClause::Database(d)) => dbs.push(d.0.clone()),
            Some(gnomon_influxql::ast::OnClause::DatabaseRetentionPolicy(d, rp)) => {
                dbs.push(if rp.0 == "autogen" || rp.0 == "default" {
                    d.0.clone()
                } else {
                    format!("{}/{}", d.0, rp.0)
                })
            }
            Some(_) => {
                return Err(StmtError::invalid(
                    "can only perform queries on a single database",
                ))
            }
        },
        Statement::ShowTagKeys(s) => dbs.extend(s.database.iter().map(|d| d.0.clone())),
        Statement::ShowTagValues(s) => dbs.extend(s.database.iter().map(|d| d.0.clone())),
        Statement::ShowFieldKeys(s) => dbs.extend(s.database.iter().map(|d| d.0.clone())),
        _ => {}
    }
    dbs.dedup();
    if dbs.len() > 1 {
        return Err(StmtError::invalid(
            "can only perform queries on a single database",
        ));
    }
    Ok(dbs.pop())
}

fn from_names(
    from: &Option<Vec<QualifiedMeasurement>>,
    all: &[String],
) -> Result<Vec<String>, StmtError> {
    let Some(from) = from else {
        return Ok(all.to_vec());
    };
    let mut out = Vec::new();
    for q in from {
        match &q.name {
            MeasurementName::Name(n) => {
                if all.contains(&n.0) && !out.contains(&n.0) {
                    out.push(n.0.clone());
                }
            }
            MeasurementName::Regex(r) => {
                let re = regex::Regex::new(&r.0)
                    .map_err(|e| StmtError::invalid(format!("invalid regular expression: {e}")))?;
                for t in all {
                    if re.is_match(t) && !out.contains(t) {
                        out.push(t.clone());
                    }
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn meta_series(name: &str, columns: &[&str], values: Vec<Vec<Cell>>) -> Series {
    Series {
        name: name.to_string(),
        tags: None,
        columns: columns.iter().map(|c| c.to_string()).collect(),
        values,
    }
}

fn limit_offset<T>(v: Vec<T>, limit: Option<u64>, offset: Option<u64>) -> Vec<T> {
    v.into_iter()
        .skip(offset.unwrap_or(0) as usize)
        .take(limit.map_or(usize::MAX, |l| l as usize))
        .collect()
}

async fn execute(
    state: &AppState,
    mut stmt: Statement,
    param_db: Option<&str>,
    params: &HashMap<String, Literal>,
) -> Result<Output, StmtError> {
    bind_parameters(&mut stmt, params).map_err(|e| StmtError::datafusion(e.into()))?;
    let catalog = state.write_buffer.catalog().snapshot();
    if let Statement::ShowDatabases = stmt {
        let values = catalog
            .databases()
            .filter(|d| !d.deleted())
            .map(|d| vec![Cell::Str(d.name.to_string())])
            .collect();
        return Ok(Output::Meta(vec![meta_series(
            "databases",
            &["name"],
            values,
        )]));
    }
    let db = match statement_database(&stmt)? {
        Some(db) => db,
        None => match param_db {
            Some(db) if !db.is_empty() => db.to_string(),
            _ => return Err(StmtError::invalid(NO_DB)),
        },
    };
    let database = catalog.database(&db).cloned();
    let tables = |database: &gnomon_catalog::DatabaseSchema| -> Vec<String> {
        let mut t: Vec<String> = database
            .tables()
            .filter(|t| !t.deleted())
            .map(|t| t.name.to_string())
            .collect();
        t.sort();
        t
    };
    match stmt {
        Statement::ShowRetentionPolicies(_) => {
            if database.is_none() {
                return Err(StmtError {
                    class: Class::NotFound,
                    message: format!(
                        "datafusion error: Error during planning: database not found: {db}"
                    ),
                });
            }
            Ok(Output::Meta(vec![meta_series(
                "retention_policies",
                &["name", "duration", "default"],
                vec![vec![
                    Cell::Str(db.clone()),
                    Cell::Str("0s".into()),
                    Cell::Bool(true),
                ]],
            )]))
        }
        Statement::ShowMeasurements(s) => {
            let database = database
                .ok_or_else(|| StmtError::query(QueryError::DatabaseNotFound(db.clone())))?;
            if s.condition.is_some() {
                return Err(StmtError {
                    class: Class::NotImplemented,
                    message: "datafusion error: This feature is not implemented: SHOW MEASUREMENTS ... WHERE".into(),
                });
            }
            let mut names = tables(&database);
            match &s.with_measurement {
                None => {}
                Some(gnomon_influxql::ast::WithMeasurement::Equals(q))
                | Some(gnomon_influxql::ast::WithMeasurement::Regex(q)) => {
                    names = from_names(&Some(vec![q.clone()]), &names)?;
                }
            }
            let names = limit_offset(names, s.limit, s.offset);
            if names.is_empty() {
                return Ok(Output::Meta(vec![]));
            }
            Ok(Output::Meta(vec![meta_series(
                "measurements",
                &["name"],
                names.into_iter().map(|n| vec![Cell::Str(n)]).collect(),
            )]))
        }
        Statement::ShowFieldKeys(s) => {
            let database = database
                .ok_or_else(|| StmtError::query(QueryError::DatabaseNotFound(db.clone())))?;
            let names = from_names(&s.from, &tables(&database))?;
            let mut out = Vec::new();
            for n in names {
                let Some(t) = database.table(&n) else {
                    continue;
                };
                let mut fields: Vec<(String, &'static str)> = t
                    .columns()
                    .iter()
                    .filter_map(|c| match c.kind {
                        ColumnKind::Field(ft) => Some((
                            c.name.to_string(),
                            match ft {
                                gnomon_catalog::FieldType::Float => "float",
                                gnomon_catalog::FieldType::Integer => "integer",
                                gnomon_catalog::FieldType::UInteger => "unsigned",
                                gnomon_catalog::FieldType::String => "string",
                                gnomon_catalog::FieldType::Boolean => "boolean",
                            },
                        )),
                        _ => None,
                    })
                    .collect();
                fields.sort();
                let fields = limit_offset(fields, s.limit, s.offset);
                if fields.is_empty() {
                    continue;
                }
                out.push(meta_series(
                    &n,
                    &["fieldKey", "fieldType"],
                    fields
                        .into_iter()
                        .map(|(k, t)| vec![Cell::Str(k), Cell::Str(t.into())])
                        .collect(),
                ));
            }
            Ok(Output::Meta(out))
        }
        Statement::ShowTagKeys(s) => {
            let database = database
                .ok_or_else(|| StmtError::query(QueryError::DatabaseNotFound(db.clone())))?;
            if s.condition.is_some() {
                return Err(StmtError {
                    class: Class::NotImplemented,
                    message:
                        "datafusion error: This feature is not implemented: SHOW TAG KEYS ... WHERE"
                            .into(),
                });
            }
            let names = from_names(&s.from, &tables(&database))?;
            let mut out = Vec::new();
            for n in names {
                let Some(t) = database.table(&n) else {
                    continue;
                };
                let mut tags: Vec<String> = t
                    .columns()
                    .iter()
                    .filter(|c| c.kind == ColumnKind::Tag)
                    .map(|c| c.name.to_string())
                    .collect();
                tags.sort();
                let tags = limit_offset(tags, s.limit, s.offset);
                if tags.is_empty() {
                    continue;
                }
                out.push(meta_series(
                    &n,
                    &["tagKey"],
                    tags.into_iter().map(|k| vec![Cell::Str(k)]).collect(),
                ));
            }
            Ok(Output::Meta(out))
        }
        Statement::Select(s) => {
            let ctx = state.query.session(&db).map_err(StmtError::query)?;
            let schema = ctx
                .catalog(CATALOG_NAME)
                .and_then(|c| c.schema(TABLE_SCHEMA))
                .ok_or_else(|| StmtError::query(QueryError::DatabaseNotFound(db.clone())))?;
            let group_by_tags = s
                .group_by
                .iter()
                .flatten()
                .any(|d| !matches!(d, gnomon_influxql::ast::Dimension::Time { .. }));
            let planned = plan_select(&s, schema.as_ref(), now_ns())
                .await
                .map_err(StmtError::datafusion)?;
            let batches = gnomon_query::collect_plan(&ctx.state(), planned.plan)
                .await
                .map_err(|e| StmtError {
                    class: Class::Execution,
                    message: format!("datafusion error: {e}"),
                })?;
            Ok(Output::Rows {
                batches,
                tag_columns: planned.tag_columns,
                group_by_tags,
                timezone: planned.timezone,
            })
        }
        Statement::Explain(e) => {
            // The DataFusion plans of the SELECT, as InfluxDB 3 Core shows them: one series
            // `explain` with `plan_type` and `plan` (ANALYZE runs it and adds the metrics).
            let ctx = state.query.session(&db).map_err(StmtError::query)?;
            let schema = ctx
                .catalog(CATALOG_NAME)
                .and_then(|c| c.schema(TABLE_SCHEMA))
                .ok_or_else(|| StmtError::query(QueryError::DatabaseNotFound(db.clone())))?;
            let planned = plan_select(&e.select, schema.as_ref(), now_ns())
                .await
                .map_err(StmtError::datafusion)?;
            let batches = ctx
                .execute_logical_plan(planned.plan)
                .await
                .and_then(|frame| frame.explain(e.verbose, e.analyze))
                .map_err(StmtError::datafusion)?
                .collect()
                .await
                .map_err(StmtError::datafusion)?;
            let mut values = Vec::new();
            for batch in &batches {
                let text = |i: usize| {
                    arrow::compute::cast(batch.column(i), &DataType::Utf8)
                        .map_err(|e| StmtError::datafusion(e.into()))
                };
                let (kinds, plans) = (text(0)?, text(1)?);
                let (kinds, plans) = (kinds.as_string::<i32>(), plans.as_string::<i32>());
                for row in 0..batch.num_rows() {
                    values.push(vec![
                        Cell::Str(kinds.value(row).to_string()),
                        Cell::Str(plans.value(row).to_string()),
                    ]);
                }
            }
            Ok(Output::Meta(vec![meta_series(
                "explain",
                &["plan_type", "plan"],
                values,
            )]))
        }
        Statement::CreateDatabase(_) => Err(not_implemented("CREATE DATABASE")),
        Statement::Delete(_) => Err(not_implemented("DELETE")),
        Statement::DropMeasurement(_) => Err(not_implemented("DROP MEASUREMENT")),
        Statement::ShowTagValues(s) => {
            let database = database
                .ok_or_else(|| StmtError::query(QueryError::DatabaseNotFound(db.clone())))?;
            let names = from_names(&s.from, &tables(&database))?;
            let ctx = state.query.session(&db).map_err(StmtError::query)?;
            let schema = ctx
                .catalog(CATALOG_NAME)
                .and_then(|c| c.schema(TABLE_SCHEMA))
                .ok_or_else(|| StmtError::query(QueryError::DatabaseNotFound(db.clone())))?;
            let key_matches = key_matcher(&s.with_key)?;
            let mut out = Vec::new();
            for n in names {
                let Some(t) = database.table(&n) else {
                    continue;
                };
                let mut keys: Vec<String> = t
                    .columns()
                    .iter()
                    .filter(|c| c.kind == ColumnKind::Tag && key_matches(&c.name))
                    .map(|c| c.name.to_string())
                    .collect();
                keys.sort();
                let Some(provider) = schema.table(&n).await.map_err(StmtError::datafusion)? else {
                    continue;
                };
                let mut rows = Vec::new();
                for key in keys {
                    let plan = gnomon_influxql::plan::plan_tag_values(
                        &n,
                        Arc::clone(&provider),
                        &key,
                        s.condition.as_ref(),
                        now_ns(),
                    )
                    .map_err(StmtError::datafusion)?;
                    let batches = ctx
                        .execute_logical_plan(plan)
                        .await
                        .map_err(StmtError::datafusion)?
                        .collect()
                        .await
                        .map_err(StmtError::datafusion)?;
                    for b in &batches {
                        let values = arrow::compute::cast(b.column(0), &DataType::Utf8)
                            .map_err(|e| StmtError::datafusion(e.into()))?;
                        let values = values
                            .as_any()
                            .downcast_ref::<StringArray>()
                            .expect("cast to Utf8");
                        for v in values.iter().flatten() {
                            rows.push(vec![Cell::Str(key.clone()), Cell::Str(v.to_string())]);
                        }
                    }
                }
                let rows = limit_offset(rows, s.limit, s.offset);
                if !rows.is_empty() {
                    out.push(meta_series(&n, &["key", "value"], rows));
                }
            }
            Ok(Output::Meta(out))
        }
        Statement::ShowDatabases => unreachable!("answered above"),
    }
}

type KeyMatcher = Box<dyn Fn(&str) -> bool + Send>;

/// Which tag keys a `WITH KEY` clause selects.
fn key_matcher(with_key: &gnomon_influxql::ast::WithKey) -> Result<KeyMatcher, StmtError> {
    use gnomon_influxql::ast::WithKey;
    let regex = |r: &str| {
        regex::Regex::new(r)
            .map_err(|e| StmtError::invalid(format!("invalid regular expression: {e}")))
    };
    Ok(match with_key.clone() {
        WithKey::Eq(k) => Box::new(move |n| n == k.0),
        WithKey::NotEq(k) => Box::new(move |n| n != k.0),
        WithKey::EqRegex(r) => {
            let re = regex(&r.0)?;
            Box::new(move |n| re.is_match(n))
        }
        WithKey::NotEqRegex(r) => {
            let re = regex(&r.0)?;
            Box::new(move |n| !re.is_match(n))
        }
        WithKey::In(keys) => Box::new(move |n| keys.iter().any(|k| k.0 == n)),
    })
}

fn not_implemented(what: &str) -> StmtError {
    StmtError {
        class: Class::NotImplemented,
        message: format!("datafusion error: This feature is not implemented: {what}"),
    }
}

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    HttpError::message(status, message).into_response()
}

/// Bind parameters from the JSON `params` object.
fn parse_params(text: Option<&str>) -> Result<HashMap<String, Literal>, String> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Ok(HashMap::new());
    };
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| e.to_string())?;
    json_params(&map)
}

fn json_params(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<HashMap<String, Literal>, String> {
    use serde_json::Value;
    map.iter()
        .map(|(k, v)| {
            let l = match v {
                Value::Bool(b) => Literal::Boolean(*b),
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        Literal::Integer(i)
                    } else if let Some(u) = n.as_u64() {
                        Literal::Unsigned(u)
                    } else {
                        Literal::Float(n.as_f64().unwrap_or(f64::NAN))
                    }
                }
                Value::String(s) => Literal::String(s.clone()),
                other => return Err(format!("unsupported parameter value {other}")),
            };
            Ok((k.clone(), l))
        })
        .collect()
}

/// v1 request parameters after merging URL, form body and raw body.
#[derive(Debug, Default)]
struct V1Params {
    q: Option<String>,
    db: Option<String>,
    epoch: Option<String>,
    pretty: bool,
    chunked: bool,
    chunk_size: Option<String>,
    params: Option<String>,
}

impl V1Params {
    fn merge(&mut self, pairs: Vec<(String, String)>) {
        for (k, v) in pairs {
            match k.as_str() {
                "q" if !v.is_empty() => self.q = Some(v),
                "db" => self.db = Some(v),
                "epoch" => self.epoch = Some(v),
                "pretty" => self.pretty = v == "true",
                "chunked" => self.chunked = v == "true",
                "chunk_size" => self.chunk_size = Some(v),
                "params" => self.params = Some(v),
                _ => {}
            }
        }
    }
}

fn decode_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(s).map_err(|e| e.to_string())
}

enum V1Format {
    Json,
    Csv,
}

pub async fn query_v1_get(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(query) = query else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "missing query parameters 'db' and 'q'",
        );
    };
    let mut p = V1Params::default();
    match decode_pairs(&query) {
        Ok(pairs) => p.merge(pairs),
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("error decoding params from url: {e}"),
            )
        }
    }
    run_v1(&state, p, &headers).await
}

pub async fn query_v1_post(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut p = V1Params::default();
    if let Some(q) = &query {
        match decode_pairs(q) {
            Ok(pairs) => p.merge(pairs),
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("error decoding params from url: {e}"),
                )
            }
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string());
    let mime = content_type
        .as_deref()
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string());
    let body = match read_plain(body, state.config.max_request_size).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match mime.as_deref() {
        Some("application/x-www-form-urlencoded") => {
            match decode_pairs(&String::from_utf8_lossy(&body)) {
                Ok(pairs) => p.merge(pairs),
                Err(e) => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        format!("error decoding params from body: {e}"),
                    )
                }
            }
        }
        None | Some("application/vnd.influxql") => {
            if query.is_none() {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "missing query parameters 'db' and 'q'",
                );
            }
            if p.q.is_none() && !body.is_empty() {
                p.q = Some(String::from_utf8_lossy(&body).to_string());
            }
        }
        Some(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("invalid mime type ({})", content_type.unwrap_or_default()),
            )
        }
    }
    run_v1(&state, p, &headers).await
}

async fn run_v1(state: &AppState, p: V1Params, headers: &HeaderMap) -> Response {
    let format = match headers.get(header::ACCEPT) {
        None => V1Format::Json,
        Some(v) => match String::from_utf8_lossy(v.as_bytes()).as_ref() {
            "" | "application/json" | "*/*" => V1Format::Json,
            "application/csv" | "text/csv" => V1Format::Csv,
            other => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid mime type ({other})"),
                )
            }
        },
    };
    let Some(q) = p.q.clone() else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "expected a query to be provided in the query string or body",
        );
    };
    let epoch = match p.epoch.as_deref().filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => match Epoch::from_param(e) {
            Some(e) => Some(e),
            None => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("error decoding params from url: invalid epoch '{e}'"),
                )
            }
        },
    };
    let params = match parse_params(p.params.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("error decoding query body: {e}"),
            )
        }
    };
    let chunk_size = match p.chunk_size.as_deref() {
        None | Some("") => 10_000,
        Some(s) => match s.parse::<usize>() {
            Ok(n) => n,
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("error decoding params from url: {e}"),
                )
            }
        },
    };

    // One entry per statement: its series or its error.
    let mut results: Vec<Result<Vec<Series>, String>> = Vec::new();
    let recorder = state
        .query
        .query_log()
        .start("influxql", p.db.as_deref().unwrap_or(""), &q);
    match gnomon_influxql::parse_statements(&q) {
        Err(e) => results.push(Err(format!(
            "error in InfluxQL statement: parsing error: {e}"
        ))),
        Ok(statements) => {
            for stmt in statements {
                let r = match execute(state, stmt, p.db.as_deref(), &params).await {
                    Ok(Output::Meta(series)) => Ok(series),
                    Ok(Output::Rows {
                        batches,
                        tag_columns,
                        group_by_tags,
                        timezone,
                    }) => v1::series_from_batches(&batches, &tag_columns, group_by_tags)
                        .map(|mut series| {
                            if let Some(zone) = timezone {
                                v1::in_zone(&mut series, zone);
                            }
                            series
                        })
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.message),
                };
                results.push(r);
            }
        }
    }
    match results.iter().find_map(|r| r.as_ref().err()) {
        None => recorder.succeeded(),
        Some(e) => recorder.failed(e),
    }

    let (body, content_type) = match format {
        V1Format::Csv => {
            let mut out = String::new();
            for (i, r) in results.iter().enumerate() {
                let Ok(series) = r else { continue };
                if i > 0 && !out.is_empty() {
                    out.push('\n');
                }
                let mut header = true;
                for s in series {
                    v1::write_csv_series(&mut out, s, epoch, header);
                    header = false;
                }
            }
            (out, "application/csv")
        }
        V1Format::Json if p.chunked => match chunked_json(&results, epoch, chunk_size) {
            Ok(s) => (s, "application/json"),
            Err(e) => (format!("{{\"error\":\"{e}\"}}"), "application/json"),
        },
        V1Format::Json => {
            let mut out = String::from("{\"results\":[");
            let mut failed = None;
            for (i, r) in results.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let res = match r {
                    Ok(series) => {
                        let refs: Vec<(&Series, &[Vec<Cell>], bool)> = series
                            .iter()
                            .map(|s| (s, s.values.as_slice(), false))
                            .collect();
                        v1::write_statement(&mut out, i, &refs, false, None, epoch)
                    }
                    Err(e) => v1::write_statement(&mut out, i, &[], false, Some(e), epoch),
                };
                if let Err(e) = res {
                    failed = Some(e.to_string());
                    break;
                }
            }
            out.push_str("]}");
            if let Some(e) = failed {
                out = format!("{{\"error\":{}}}", serde_json::Value::String(e));
            }
            if p.pretty {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&out) {
                    out = serde_json::to_string_pretty(&v).unwrap_or(out);
                }
            }
            (out, "application/json")
        }
    };
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Chunked mode: one `{"results":[...]}` document per series piece, back to back.
fn chunked_json(
    results: &[Result<Vec<Series>, String>],
    epoch: Option<Epoch>,
    chunk_size: usize,
) -> Result<String, v1::EncodeError> {
    let mut out = String::new();
    for (i, r) in results.iter().enumerate() {
        match r {
            Err(e) => {
                out.push_str("{\"results\":[");
                v1::write_statement(&mut out, i, &[], false, Some(e), epoch)?;
                out.push_str("]}");
            }
            Ok(series) if series.is_empty() => {
                out.push_str("{\"results\":[");
                v1::write_statement(&mut out, i, &[], false, None, epoch)?;
                out.push_str("]}");
            }
            Ok(series) => {
                let mut pieces: Vec<(&Series, &[Vec<Cell>], bool)> = Vec::new();
                for s in series {
                    if chunk_size == 0 || s.values.len() <= chunk_size {
                        pieces.push((s, &s.values, false));
                        continue;
                    }
                    let chunks: Vec<&[Vec<Cell>]> = s.values.chunks(chunk_size).collect();
                    let last = chunks.len() - 1;
                    for (j, c) in chunks.into_iter().enumerate() {
                        pieces.push((s, c, j < last));
                    }
                }
                let last = pieces.len() - 1;
                for (j, piece) in pieces.iter().enumerate() {
                    out.push_str("{\"results\":[");
                    v1::write_statement(&mut out, i, &[*piece], j < last, None, epoch)?;
                    out.push_str("]}");
                }
            }
        }
    }
    Ok(out)
}

#[derive(Debug, serde::Deserialize)]
struct V3Get {
    db: Option<String>,
    q: String,
    format: Option<String>,
    params: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct V3Post {
    db: Option<String>,
    q: String,
    format: Option<String>,
    params: Option<serde_json::Map<String, serde_json::Value>>,
}

fn plain(status: StatusCode, m: impl Into<String>) -> HttpError {
    HttpError::plain(status, m)
}

pub async fn query_influxql_get(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let query = query.ok_or_else(|| {
        plain(
            StatusCode::BAD_REQUEST,
            "missing query parameters 'db' and 'q'",
        )
    })?;
    let accepted = crate::query::format_from_accept(&headers)?;
    let p: V3Get = serde_urlencoded::from_str(&query)
        .map_err(|e| plain(StatusCode::BAD_REQUEST, format!("serde error: {e}")))?;
    let format = crate::query::choose_format(accepted, p.format.as_deref())?;
    let params = parse_params(p.params.as_deref())
        .map_err(|e| plain(StatusCode::BAD_REQUEST, format!("serde json error: {e}")))?;
    run_v3(&state, p.db.as_deref(), &p.q, format, params).await
}

pub async fn query_influxql_post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let accepted = crate::query::format_from_accept(&headers)?;
    let body = read_plain(body, state.config.max_request_size).await?;
    let p: V3Post = serde_json::from_slice(&body)
        .map_err(|e| plain(StatusCode::BAD_REQUEST, format!("serde json error: {e}")))?;
    let format = crate::query::choose_format(accepted, p.format.as_deref())?;
    let params = match &p.params {
        None => HashMap::new(),
        Some(m) => json_params(m).map_err(|e| plain(StatusCode::BAD_REQUEST, e))?,
    };
    run_v3(&state, p.db.as_deref(), &p.q, format, params).await
}

/// [`run_v3_unlogged`], recorded in `system.queries` (planning and execution are not told
/// apart here: only the end-to-end time is recorded).
async fn run_v3(
    state: &AppState,
    db: Option<&str>,
    q: &str,
    format: Format,
    params: HashMap<String, Literal>,
) -> Result<Response, HttpError> {
    let recorder = state
        .query
        .query_log()
        .start("influxql", db.unwrap_or(""), q);
    let result = run_v3_unlogged(state, db, q, format, params).await;
    match &result {
        Ok(_) => recorder.succeeded(),
        Err(e) => recorder.failed(e.message_text()),
    }
    result
}

async fn run_v3_unlogged(
    state: &AppState,
    db: Option<&str>,
    q: &str,
    format: Format,
    params: HashMap<String, Literal>,
) -> Result<Response, HttpError> {
    let mut statements = gnomon_influxql::parse_statements(q).map_err(|e| {
        plain(
            StatusCode::BAD_REQUEST,
            format!("error in InfluxQL statement: parsing error: {e}"),
        )
    })?;
    if statements.len() != 1 {
        return Err(plain(
            StatusCode::BAD_REQUEST,
            "must provide only one InfluxQl statement per query",
        ));
    }
    let stmt = statements.remove(0);
    let db = db.filter(|d| !d.is_empty());
    if let (Some(p), Ok(Some(s))) = (db, statement_database(&stmt)) {
        if p != s {
            return Err(plain(StatusCode::BAD_REQUEST, format!(
                "provided a database in both the parameters ({p}) and query string ({s}) that do not match, if providing a query that specifies the database, you can omit the 'database' parameter from your request"
            )));
        }
    }
    let batches = if matches!(stmt, Statement::ShowDatabases) {
        let catalog = state.write_buffer.catalog().snapshot();
        let mut dbs: Vec<(bool, String)> = catalog
            .databases()
            .map(|d| (d.deleted(), d.name.to_string()))
            .collect();
        dbs.sort();
        let schema = Arc::new(Schema::new(vec![
            Field::new("iox::database", DataType::Utf8, false),
            Field::new("deleted", DataType::Boolean, false),
        ]));
        vec![RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(
                    dbs.iter().map(|d| d.1.as_str()),
                )) as ArrayRef,
                Arc::new(arrow::array::BooleanArray::from(
                    dbs.iter().map(|d| d.0).collect::<Vec<_>>(),
                )),
            ],
        )
        .map_err(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?]
    } else {
        match execute(state, stmt, db, &params).await {
            Ok(Output::Rows { batches, .. }) => batches,
            Ok(Output::Meta(series)) => series_batches(&series)
                .map_err(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
            Err(e) => {
                let status = e.status();
                let message = e
                    .message
                    .strip_prefix("datafusion error: ")
                    .unwrap_or(&e.message)
                    .to_string();
                return Err(if e.class == Class::NotFound {
                    HttpError::message(status, message)
                } else {
                    plain(status, message)
                });
            }
        }
    };
    let bytes = encode_all(format, &batches)
        .map_err(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut response = Response::new(Body::from(bytes));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

/// Metadata series as one batch: `iox::measurement` (the series name), then the columns.
fn series_batches(series: &[Series]) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let Some(first) = series.first() else {
        return Ok(vec![]);
    };
    let mut fields = vec![Field::new(MEASUREMENT_COLUMN, DataType::Utf8, false)];
    fields.extend(
        first
            .columns
            .iter()
            .map(|c| Field::new(c, DataType::Utf8, true)),
    );
    let schema = Arc::new(Schema::new(fields));
    let mut columns: Vec<Vec<Option<String>>> = vec![Vec::new(); first.columns.len() + 1];
    for s in series {
        for row in &s.values {
            columns[0].push(Some(s.name.clone()));
            for (i, c) in row.iter().enumerate() {
                columns[i + 1].push(match c {
                    Cell::Null => None,
                    Cell::Str(s) => Some(s.clone()),
                    Cell::Bool(b) => Some(b.to_string()),
                    Cell::Int(v) | Cell::Time(v) | Cell::LocalTime(v, _) => Some(v.to_string()),
                    Cell::UInt(v) => Some(v.to_string()),
                    Cell::Float(v) => Some(v.to_string()),
                });
            }
        }
    }
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as ArrayRef)
        .collect();
    Ok(vec![RecordBatch::try_new(schema, arrays)?])
}
