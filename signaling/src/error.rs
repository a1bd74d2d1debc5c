//! The one error shape of the HTTP API.

use axum::http::StatusCode;
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
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
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
            SfuError::SessionNotFound => (StatusCode::NOT_FOUND, "session_not_found"),
            SfuError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            SfuError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}
