//! Gnomon's HTTP API: the InfluxDB 3 Core wire protocol on one listener.
//!
//! This crate owns routing (exact paths; unknown paths and wrong methods answer `404 Not
//! found`; `OPTIONS` answers CORS preflights), request bodies (size limits, gzip), the error
//! body families of each endpoint, the response headers every response carries, and
//! `/metrics`. Handlers translate HTTP to calls on the write buffer and the query engine and
//! back; they hold no data of their own.
//!
//! It must not reach into storage: what a write or a query does is the write buffer's and the
//! query engine's business.

pub mod body;
mod configure;
pub mod engine;
pub mod error;
mod influxql;
pub mod metrics;
mod query;
mod write;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use gnomon_persist::{Persister, SnapshotMode};
use gnomon_processing_engine::ProcessingEngine;
use gnomon_query::QueryEngine;
use gnomon_write_buffer::WriteBuffer;

pub use error::HttpError;
pub use metrics::Metrics;

/// The InfluxDB version Gnomon presents itself as to clients that look at it.
pub const COMPATIBLE_VERSION: &str = "3.10.0";
/// Gnomon's own version.
pub const GNOMON_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Short git revision of the build, when the build knew it.
pub const REVISION: &str = match option_env!("GNOMON_GIT_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest accepted request body, before and after decompression.
    pub max_request_size: usize,
}

/// What every handler can reach.
pub struct AppState {
    pub write_buffer: Arc<WriteBuffer>,
    pub query: Arc<QueryEngine>,
    /// Writes the buffer to Parquet; `None` when persistence is off (tests of the HTTP layer).
    pub persister: Option<Arc<Persister>>,
    /// Plugins and triggers; `None` in tests of the HTTP layer that do not need them.
    pub engine: Option<ProcessingEngine>,
    pub metrics: Arc<Metrics>,
    pub config: HttpConfig,
    /// Identifies this process in `/ping`.
    pub process_id: uuid::Uuid,
}

impl AppState {
    pub fn new(
        write_buffer: Arc<WriteBuffer>,
        query: Arc<QueryEngine>,
        config: HttpConfig,
    ) -> Arc<Self> {
        Self::with_persister(write_buffer, query, None, None, config)
    }

    pub fn with_persister(
        write_buffer: Arc<WriteBuffer>,
        query: Arc<QueryEngine>,
        persister: Option<Arc<Persister>>,
        engine: Option<ProcessingEngine>,
        config: HttpConfig,
    ) -> Arc<Self> {
        let metrics = Arc::new(Metrics::new(Arc::clone(&write_buffer)));
        if let Some(p) = &persister {
            metrics.register_persister(Arc::clone(p));
        }
        if let Some(e) = &engine {
            metrics.register_engine(e.clone());
        }
        if let Some(pages) = query.page_cache() {
            metrics.register_page_cache(pages);
        }
        Arc::new(Self {
            write_buffer,
            query,
            persister,
            engine,
            metrics,
            config,
            process_id: uuid::Uuid::new_v4(),
        })
    }
}

/// Every route, and the label it is counted under in `/metrics`.
const ROUTES: &[&str] = &[
    "/health",
    "/api/v1/health",
    "/ping",
    "/metrics",
    "/write",
    "/api/v2/write",
    "/api/v3/write_lp",
    "/api/v3/query_sql",
    "/api/v3/query_influxql",
    "/query",
    "/api/v3/configure/database",
    "/api/v3/configure/database/retention_period",
    "/api/v3/configure/table",
    "/api/v3/configure/last_cache",
    "/api/v3/configure/distinct_cache",
    "/api/v3/gnomon/snapshot",
    "/api/v3/gnomon/compact",
    "/api/v3/configure/processing_engine_trigger",
    "/api/v3/configure/processing_engine_trigger/enable",
    "/api/v3/configure/processing_engine_trigger/disable",
    "/api/v3/configure/plugin_environment/install_packages",
    "/api/v3/configure/plugin_environment/install_requirements",
    "/api/v3/plugin_test/wal",
    "/api/v3/plugin_test/schedule",
    "/api/v3/plugins/files",
];

/// Every `/api/v3/engine/<path>` request is counted under this label.
const ENGINE_PREFIX: &str = "/api/v3/engine/";

/// The HTTP router with all middleware.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/health", get(health))
        .route("/ping", get(ping).post(ping))
        .route("/metrics", get(metrics_text))
        .route("/write", post(write::write_v1))
        .route("/api/v2/write", post(write::write_v2))
        .route("/api/v3/write_lp", post(write::write_v3))
        .route(
            "/api/v3/query_sql",
            get(query::query_sql_get).post(query::query_sql_post),
        )
        .route(
            "/api/v3/query_influxql",
            get(influxql::query_influxql_get).post(influxql::query_influxql_post),
        )
        .route(
            "/query",
            get(influxql::query_v1_get).post(influxql::query_v1_post),
        )
        .route(
            "/api/v3/configure/database",
            get(configure::list_databases)
                .post(configure::create_database)
                .put(configure::update_database)
                .delete(configure::delete_database),
        )
        .route(
            "/api/v3/configure/database/retention_period",
            post(configure::set_retention_period).delete(configure::clear_retention_period),
        )
        .route(
            "/api/v3/configure/table",
            post(configure::create_table).delete(configure::delete_table),
        )
        .route(
            "/api/v3/configure/last_cache",
            post(configure::create_last_cache).delete(configure::delete_last_cache),
        )
        .route(
            "/api/v3/configure/distinct_cache",
            post(configure::create_distinct_cache).delete(configure::delete_distinct_cache),
        )
        .route("/api/v3/gnomon/snapshot", post(snapshot))
        .route("/api/v3/gnomon/compact", post(compact))
        .route(
            "/api/v3/configure/processing_engine_trigger",
            post(engine::create_trigger).delete(engine::delete_trigger),
        )
        .route(
            "/api/v3/configure/processing_engine_trigger/enable",
            post(engine::enable_trigger),
        )
        .route(
            "/api/v3/configure/processing_engine_trigger/disable",
            post(engine::disable_trigger),
        )
        .route(
            "/api/v3/configure/plugin_environment/install_packages",
            post(engine::install_packages),
        )
        .route(
            "/api/v3/configure/plugin_environment/install_requirements",
            post(engine::install_requirements),
        )
        .route("/api/v3/plugin_test/wal", post(engine::test_wal))
        .route("/api/v3/plugin_test/schedule", post(engine::test_schedule))
        .route(
            "/api/v3/plugins/files",
            post(engine::upload_plugin_file).put(engine::replace_plugin_file),
        )
        .route("/api/v3/engine/{*path}", any(engine::engine_request))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            common_headers,
        ))
        .with_state(state)
}

/// Serves `router` on `listener` (HTTP/1.1 and cleartext HTTP/2) until `shutdown` resolves,
/// then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn not_found() -> HttpError {
    HttpError::not_found()
}

const CLUSTER_UUID: HeaderName = HeaderName::from_static("cluster-uuid");

/// CORS preflight, `cluster-uuid`, `Access-Control-Allow-Origin` on success, request metrics.
async fn common_headers(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let uuid = state.write_buffer.catalog().snapshot().uuid().to_string();
    let uuid = HeaderValue::from_str(&uuid).ok();
    // axum would answer HEAD on every GET route; InfluxDB 3 Core routes HEAD nowhere.
    if method == Method::HEAD {
        let mut response = not_found().await.into_response();
        if let Some(v) = uuid {
            response.headers_mut().insert(CLUSTER_UUID, v);
        }
        return response;
    }
    if method == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        if let Some(v) = uuid {
            h.insert(CLUSTER_UUID, v);
        }
        for name in [
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
        ] {
            h.insert(name, HeaderValue::from_static("*"));
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        return response;
    }
    let path = ROUTES
        .iter()
        .copied()
        .find(|r| *r == request.uri().path())
        .or_else(|| {
            request
                .uri()
                .path()
                .starts_with(ENGINE_PREFIX)
                .then_some(ENGINE_PREFIX)
        })
        .unwrap_or("unmatched");
    let started = Instant::now();
    let mut response = next.run(request).await;
    let status = response.status();
    let h = response.headers_mut();
    if let Some(v) = uuid {
        h.insert(CLUSTER_UUID, v);
    }
    if status.is_success() {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    state
        .metrics
        .request_duration
        .get_or_create(&metrics::PathLabels { path })
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&metrics::RequestLabels {
            path,
            method: method.to_string(),
            status: status.as_u16(),
        })
        .inc();
    response
}

async fn health() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK").into_response()
}

async fn ping(State(state): State<Arc<AppState>>) -> Response {
    let body = serde_json::json!({
        "product_name": "Gnomon",
        "version": COMPATIBLE_VERSION,
        "revision": REVISION,
        "process_id": state.process_id.to_string(),
        "gnomon_version": GNOMON_VERSION,
    });
    let request_id = uuid::Uuid::now_v7().to_string();
    (
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (
                HeaderName::from_static("x-influxdb-build"),
                "Core".to_string(),
            ),
            (
                HeaderName::from_static("x-influxdb-version"),
                COMPATIBLE_VERSION.to_string(),
            ),
            (HeaderName::from_static("request-id"), request_id.clone()),
            (HeaderName::from_static("x-request-id"), request_id),
        ],
        body.to_string(),
    )
        .into_response()
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `POST /api/v3/gnomon/compact` (Gnomon-specific): one compaction round over every time
/// range, settled or not; answers `{"files_in","files_out","bytes_in","bytes_out","rows"}`.
async fn compact(State(state): State<Arc<AppState>>) -> Response {
    let Some(persister) = &state.persister else {
        return HttpError::message(StatusCode::NOT_FOUND, "persistence is not enabled")
            .into_response();
    };
    summary_or_500(persister.compact(true).await, "compaction")
}

/// A persistence task's summary as JSON, or a 500 naming the `task` that failed.
fn summary_or_500<T: serde::Serialize, E: std::fmt::Display>(
    result: Result<T, E>,
    task: &str,
) -> Response {
    match result {
        Ok(summary) => (
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&summary).unwrap_or_default(),
        )
            .into_response(),
        Err(e) => HttpError::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{task} failed: {e}"),
        )
        .into_response(),
    }
}

/// `POST /api/v3/gnomon/snapshot` (Gnomon-specific): persists every buffered chunk now and
/// answers with what was written. For tests and operators who want the buffer on disk.
async fn snapshot(State(state): State<Arc<AppState>>) -> Response {
    let Some(persister) = &state.persister else {
        return HttpError::message(StatusCode::NOT_FOUND, "persistence is not enabled")
            .into_response();
    };
    summary_or_500(persister.snapshot(SnapshotMode::All).await, "snapshot")
}
