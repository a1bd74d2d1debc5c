//! The one error shape of the HTTP API:
//! `{"error": {"code": "...", "message": "...", "fields": {...}?, "retry_after_ms": n?}}`.

use std::collections::BTreeMap;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use onair_media::SfuError;

/// An HTTP error with a machine-readable code and a human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `bad_sdp`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// Per-field messages of a validation error (field name -> what is wrong).
    pub fields: BTreeMap<String, String>,
    /// When trying again may work (rate limits, slow mode).
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), fields: BTreeMap::new(), retry_after_ms: None }
    }

    /// 400 `validation`, with one message per field.
    pub fn validation(fields: BTreeMap<String, String>) -> Self {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        let message = format!("invalid input: {}", names.join(", "));
        ApiError { fields, ..ApiError::new(StatusCode::BAD_REQUEST, "validation", message) }
    }

    /// 429 (or another status) with a retry hint.
    pub fn retry_after(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 `internal`; the detail goes to the log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {detail}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; it has been logged")
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut error = serde_json::json!({ "code": self.code, "message": self.message });
        if !self.fields.is_empty() {
            error["fields"] = serde_json::to_value(&self.fields).unwrap_or_default();
        }
        if let Some(ms) = self.retry_after_ms {
            error["retry_after_ms"] = ms.into();
        }
        serde_json::json!({ "error": error })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body())).into_response();
        let h = res.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(ms) = self.retry_after_ms {
            if let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).max(1).to_string()) {
                h.insert(header::RETRY_AFTER, v);
            }
        }
        res
    }
}

impl From<SfuError> for ApiError {
    fn from(e: SfuError) -> Self {
        let (status, code) = match &e {
            SfuError::BadOffer(_) => (StatusCode::BAD_REQUEST, "bad_sdp"),
            SfuError::UnsupportedCodec(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unsupported_codec"),
            SfuError::StreamNotFound(_) => (StatusCode::NOT_FOUND, "stream_not_live"),
            SfuError::StreamBusy(_) => (StatusCode::CONFLICT, "stream_busy"),
            SfuError::RoomFull(_) => (StatusCode::CONFLICT, "room_full"),
            SfuError::HostRemoved(_) => (StatusCode::FORBIDDEN, "host_removed"),
            SfuError::LinkRefused(_) => (StatusCode::CONFLICT, "link_refused"),
            SfuError::SessionNotFound => (StatusCode::NOT_FOUND, "session_not_found"),
            SfuError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            SfuError::Capacity(_) => (StatusCode::SERVICE_UNAVAILABLE, "capacity"),
            SfuError::TooManySessions(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            SfuError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let err = ApiError::new(status, code, e.to_string());
        match e {
            // Sessions come and go within seconds: a pending one that never
            // connects is gone in ten.
            SfuError::Capacity(_) | SfuError::TooManySessions(_) => err.retry_after(5_000),
            SfuError::Unavailable => err.retry_after(2_000),
            _ => err,
        }
    }
}
