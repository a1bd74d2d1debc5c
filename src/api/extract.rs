//! Extractors: the caller (`Auth`, `MaybeAuth`), JSON bodies and queries
//! whose mistakes come back as field-level `validation` errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use onair_signaling::{ApiError, Client};
use serde::de::DeserializeOwned;

use crate::accounts::Principal;
use crate::app::App;

/// What handlers share.
pub type AppState = Arc<App>;

/// A logged-in caller (401 otherwise).
pub struct Auth(pub Principal);

/// A caller who may be logged in.
pub struct MaybeAuth(pub Option<Principal>);

fn client_of(parts: &Parts) -> Client {
    Client::of_request(&parts.headers, &parts.uri, &parts.extensions)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let client = client_of(parts);
        let token = client.bearer.ok_or_else(|| ApiError::unauthorized("log in first: send 'Authorization: Bearer <access token>'"))?;
        if token.starts_with("sk_") {
            return Err(ApiError::unauthorized("a stream key only publishes; log in for an access token"));
        }
        app.accounts.authenticate(&token).await.map(Auth)
    }
}

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let client = client_of(parts);
        app.principal(client.bearer.as_deref()).await.map(MaybeAuth)
    }
}

/// A JSON body (`Content-Type: application/json`), or a clear error.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "wrong_content_type", "send JSON with 'Content-Type: application/json'"))
            }
            Err(JsonRejection::JsonSyntaxError(e)) => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_json", format!("the body is not valid JSON: {}", detail(&e.body_text())))),
            Err(JsonRejection::JsonDataError(e)) => Err(data_error(&e.body_text())),
            Err(JsonRejection::BytesRejection(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is larger than {} bytes", super::MAX_JSON_BODY)))
            }
            Err(e) => Err(ApiError::new(e.status(), "bad_body", e.body_text())),
        }
    }
}

/// An optional JSON body: none when nothing was sent.
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let h = req.headers();
        let empty = h.get(axum::http::header::CONTENT_TYPE).is_none() && h.get(axum::http::header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0");
        if empty {
            return Ok(None);
        }
        <Self as FromRequest<S>>::from_request(req, state).await.map(Some)
    }
}

/// The useful part of axum's rejection text.
fn detail(text: &str) -> String {
    let t = text.split_once("target type: ").map(|(_, t)| t).or_else(|| text.split_once(": ").map(|(_, t)| t)).unwrap_or(text);
    t.split(" at line ").next().unwrap_or(t).trim().to_owned()
}

/// serde's "field: problem" (via serde_path_to_error in axum) as a field map.
fn data_error(text: &str) -> ApiError {
    let d = detail(text);
    let quoted = |s: &str| s.split('`').nth(1).map(str::to_owned);
    let (field, problem) = if let Some(rest) = d.strip_prefix("missing field ") {
        (quoted(rest).unwrap_or_else(|| "body".into()), "is required".to_owned())
    } else if let Some((path, rest)) = d.split_once(": unknown field ").or_else(|| d.strip_prefix("unknown field ").map(|r| (".", r))) {
        let name = quoted(rest).unwrap_or_default();
        let field = if path == "." || path.is_empty() {
            name
        } else if path.ends_with(name.as_str()) {
            path.to_owned()
        } else {
            format!("{path}.{name}")
        };
        (field, "is not a known field".to_owned())
    } else {
        match d.split_once(": ") {
            Some((path, problem)) if !path.contains(' ') => {
                let path = if path == "." { "body" } else { path };
                match problem.strip_prefix("missing field ") {
                    Some(rest) => (format!("{path}.{}", quoted(rest).unwrap_or_default()), "is required".to_owned()),
                    None => (path.to_owned(), problem.to_owned()),
                }
            }
            _ => ("body".to_owned(), d.clone()),
        }
    };
    ApiError::validation(BTreeMap::from([(field, problem)]))
}

/// A query string, or a clear error.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Q(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                let text = e.body_text();
                let d = text.split_once("Query string: ").map(|(_, t)| t).unwrap_or(&text).to_owned();
                let field = d.split('`').nth(1).filter(|_| d.contains("field")).unwrap_or("query").to_owned();
                Err(ApiError::validation(BTreeMap::from([(field, d)])))
            }
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text())),
        }
    }
}

/// A money request: its `Idempotency-Key` (required), what the request was
/// (method, path, body: its fingerprint), and its JSON body (an empty body
/// reads as `{}`). Bad bodies are `422` with a message per field.
pub struct Idempotent<T> {
    /// The key as sent.
    pub key: String,
    /// `POST`.
    pub method: String,
    /// The path (without the query).
    pub path: String,
    /// The body as JSON (fingerprinted canonically).
    pub json: serde_json::Value,
    /// The body, or why it is not one (`422`): reported only after the key
    /// is checked, so a key reused for another request is a `409` whatever
    /// that request holds.
    pub body: Result<T, ApiError>,
}

/// A keyed request, opened.
pub enum Opened<T> {
    /// Answered before: the stored response.
    Replay(crate::money::idempotency::Stored),
    /// New: the request under its key, and its body.
    Fresh(crate::money::idempotency::Keyed, T),
}

impl<T> Idempotent<T> {
    /// The request under the key, for `user`.
    pub fn keyed(&self, user: i64) -> Result<crate::money::idempotency::Keyed, ApiError> {
        crate::money::idempotency::Keyed::new(user, &self.key, &self.method, &self.path, &self.json)
    }

    /// The request under its key for `user`, and its body. A body that is
    /// not valid is first checked against the key (a replay, or `409` for
    /// another request under it) before it is a `422`. A valid one goes on:
    /// the money writer replays a key it has seen (the operation and the
    /// lookup run in one transaction), so the hot path reads nothing here.
    pub async fn open(self, pool: &sqlx::SqlitePool, user: i64) -> Result<Opened<T>, ApiError> {
        let keyed = self.keyed(user)?;
        match self.body {
            Ok(body) => Ok(Opened::Fresh(keyed, body)),
            Err(e) => match crate::money::idempotency::replay(pool, &keyed, crate::clock::now_ms()).await? {
                Some(s) => Ok(Opened::Replay(s)),
                None => Err(e),
            },
        }
    }

    /// As [`Idempotent::open`], and a stored answer is replayed even for a
    /// valid body: for requests that call the payment provider before the
    /// writer (a retry must not make a second intent or refund).
    pub async fn open_checked(self, pool: &sqlx::SqlitePool, user: i64) -> Result<Opened<T>, ApiError> {
        let keyed = self.keyed(user)?;
        if let Some(s) = crate::money::idempotency::replay(pool, &keyed, crate::clock::now_ms()).await? {
            return Ok(Opened::Replay(s));
        }
        Ok(Opened::Fresh(keyed, self.body?))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Idempotent<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let key = req
            .headers()
            .get(crate::money::idempotency::HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "idempotency_key_required", "money requests need an 'Idempotency-Key' header (a fresh UUID per operation; the same one to retry it)"))?;
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let json_type = req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("the body is larger than {} bytes", super::MAX_JSON_BODY))
            } else {
                ApiError::new(e.status(), "bad_body", e.body_text())
            }
        })?;
        let json: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::json!({})
        } else if !json_type {
            return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "wrong_content_type", "send JSON with 'Content-Type: application/json'"));
        } else {
            serde_json::from_slice(&bytes).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", format!("the body is not valid JSON: {e}")))?
        };
        let body = serde_json::from_value::<T>(json.clone()).map_err(|e| {
            let mut err = data_error(&format!("Failed to deserialize the JSON body into the target type: {e}"));
            err.status = StatusCode::UNPROCESSABLE_ENTITY;
            err
        });
        Ok(Idempotent { key, method, path, json, body })
    }
}

/// An id from the path; anything not a number names nothing (404).
pub fn id(segment: &str, what: &str) -> Result<i64, ApiError> {
    segment.parse::<i64>().map_err(|_| ApiError::not_found(format!("no {what} '{segment}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_become_fields() {
        let e = data_error("Failed to deserialize the JSON body into the target type: missing field `title` at line 1 column 2");
        assert_eq!(e.fields.get("title").map(String::as_str), Some("is required"));
        let e = data_error("Failed to deserialize the JSON body into the target type: title: invalid type: integer `5`, expected a string at line 1 column 11");
        assert_eq!(e.fields.get("title").map(String::as_str), Some("invalid type: integer `5`, expected a string"));
        let e = data_error("Failed to deserialize the JSON body into the target type: titel: unknown field `titel`, expected one of `title`, `description` at line 1 column 8");
        assert_eq!(e.fields.get("titel").map(String::as_str), Some("is not a known field"), "{:?}", e.fields);
        let e = data_error("Failed to deserialize the JSON body into the target type: recurrence: missing field `time` at line 1 column 60");
        assert_eq!(e.fields.get("recurrence.time").map(String::as_str), Some("is required"), "{:?}", e.fields);
        assert_eq!(e.code, "validation");
    }
}
