//! HTTP error responses, in the body families of the InfluxDB 3 Core API.
//!
//! Different endpoints answer the same kind of failure with different body shapes (plain text,
//! `{"error":..}`, the v2 `{"code":..,"message":..}`); [`HttpError`] carries the status and
//! the already chosen body so handlers state the family explicitly where they fail.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The shape of an error body.
#[derive(Debug, Clone)]
pub enum ErrorBody {
    /// Raw UTF-8 text.
    Plain(String),
    /// `{"error":"<msg>"}` or `{"error":"<msg>","data":<payload>}`.
    Message {
        error: String,
        data: Option<serde_json::Value>,
    },
    /// The v2 write API's `{"code":"<code>","message":"<msg>"}`.
    V2 { code: &'static str, message: String },
}

#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl HttpError {
    pub fn plain(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody::Plain(message.into()),
        }
    }

    pub fn message(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody::Message {
                error: message.into(),
                data: None,
            },
        }
    }

    pub fn with_data(
        status: StatusCode,
        message: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            status,
            body: ErrorBody::Message {
                error: message.into(),
                data: Some(data),
            },
        }
    }

    /// A v2 write error; the code follows from the status as in the v2 API.
    pub fn v2(status: StatusCode, message: impl Into<String>) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "invalid",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not found",
            StatusCode::PAYLOAD_TOO_LARGE => "request too large",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid",
            _ => "internal error",
        };
        Self {
            status,
            body: ErrorBody::V2 {
                code,
                message: message.into(),
            },
        }
    }

    /// The same failure, re-shaped as a v2 error.
    pub fn into_v2(self) -> Self {
        let message = match self.body {
            ErrorBody::Plain(m) => m,
            ErrorBody::Message { error, .. } => error,
            ErrorBody::V2 { .. } => return self,
        };
        Self::v2(self.status, message)
    }

    pub fn not_found() -> Self {
        Self::plain(StatusCode::NOT_FOUND, "Not found")
    }

    pub fn message_text(&self) -> &str {
        match &self.body {
            ErrorBody::Plain(m) => m,
            ErrorBody::Message { error, .. } => error,
            ErrorBody::V2 { message, .. } => message,
        }
    }
}

#[derive(Serialize)]
struct MessageJson<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: &'a Option<serde_json::Value>,
}

#[derive(Serialize)]
struct V2Json<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        // Like InfluxDB 3 Core, error responses carry no Content-Type except for JSON bodies,
        // where we add it because it is true and harmless.
        let (body, json) = match &self.body {
            ErrorBody::Plain(m) => (m.clone().into_bytes(), false),
            ErrorBody::Message { error, data } => (
                serde_json::to_vec(&MessageJson { error, data }).expect("plain JSON"),
                true,
            ),
            ErrorBody::V2 { code, message } => (
                serde_json::to_vec(&V2Json { code, message }).expect("plain JSON"),
                true,
            ),
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = self.status;
        if json {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        response
    }
}
