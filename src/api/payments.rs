//! The payment provider's side: `POST /api/payments/webhook` (Stripe's
//! events, signed), and the development provider's checkout
//! (`/pay/dev/{intent}`: the page, its intent, Pay, Decline, and disputes
//! for admins testing clawbacks).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{AppState, Auth, Body};
use super::ErrorBody;
use crate::accounts::Role;
use crate::money::payments::EventOutcome;

/// The webhook's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    /// Always true (a refused event is an error status, so the provider retries).
    pub received: bool,
    /// Seen before: nothing was done again.
    pub duplicate: bool,
}

/// The payment provider's events (Stripe's format): `payment_intent.succeeded`
/// credits coins; `charge.refunded` and `charge.dispute.*` claw them back.
/// Verified by `Stripe-Signature` (HMAC-SHA256 of `t.body`, any `v1`, 300 s
/// tolerance); each event id is handled once; events may come in any order.
#[utoipa::path(post, path = "/api/payments/webhook", tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256(secret, \"t.body\")>[,v1=...]")),
    request_body(content = String, description = "A Stripe event (JSON), as sent", content_type = "application/json"),
    responses((status = 200, body = Received), (status = 400, description = "Bad signature, stale timestamp, or not an event", body = ErrorBody)))]
pub async fn webhook(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Json<Received>, ApiError> {
    let sig = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    let outcome = app.money.webhook(sig, &body).await?;
    Ok(Json(Received { received: true, duplicate: outcome == EventOutcome::Duplicate }))
}

fn dev(app: &AppState) -> Result<&std::sync::Arc<crate::money::payments::dev::DevProvider>, ApiError> {
    app.money.payments.dev.as_ref().ok_or_else(|| ApiError::not_found("the development payment provider is off (payments go through Stripe)"))
}

/// A development checkout's intent (what the page shows).
#[utoipa::path(get, path = "/pay/dev/{intent}/intent", tag = "payments", params(("intent" = String, Path, description = "Intent id")),
    responses((status = 200, description = "The intent: id, amount, currency, status, description, metadata"), (status = 404, body = ErrorBody)))]
pub async fn dev_intent(State(app): State<AppState>, Path(intent): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    dev(&app)?.checkout(&intent).await.map(Json)
}

/// Pays a development checkout: the provider sends OnAir a signed
/// `payment_intent.succeeded` webhook over HTTP.
#[utoipa::path(post, path = "/pay/dev/{intent}/pay", tag = "payments", params(("intent" = String, Path, description = "Intent id")),
    responses((status = 200, description = "Paid; the webhook is on its way"), (status = 409, body = ErrorBody)))]
pub async fn dev_pay(State(app): State<AppState>, Path(intent): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    dev(&app)?.pay(&intent).await.map(Json)
}

/// Declines a development checkout (`payment_intent.payment_failed`; it can be paid later).
#[utoipa::path(post, path = "/pay/dev/{intent}/decline", tag = "payments", params(("intent" = String, Path, description = "Intent id")),
    responses((status = 200, description = "Declined"), (status = 409, body = ErrorBody)))]
pub async fn dev_decline(State(app): State<AppState>, Path(intent): Path<String>) -> Result<Json<serde_json::Value>, ApiError> {
    dev(&app)?.decline(&intent).await.map(Json)
}

/// A dispute's step.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputeInput {
    /// `needs_response` (opened: the bank took the money), `won` or `lost`.
    pub status: String,
}

/// Plays the card network on a paid development checkout (admins): opens
/// or closes a dispute, sent as `charge.dispute.*` webhooks.
#[utoipa::path(post, path = "/pay/dev/{intent}/dispute", tag = "payments", security(("bearer" = [])), request_body = DisputeInput,
    params(("intent" = String, Path, description = "Intent id")), responses((status = 200, description = "Sent"), (status = 403, body = ErrorBody)))]
pub async fn dev_dispute(State(app): State<AppState>, Auth(who): Auth, Path(intent): Path<String>, Body(input): Body<DisputeInput>) -> Result<Json<serde_json::Value>, ApiError> {
    if who.role() != Role::Admin {
        return Err(ApiError::forbidden("admins only"));
    }
    dev(&app)?.dispute(&intent, &input.status).await.map(Json)
}

/// Answer of a refund request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefundRequested {
    /// The payment.
    pub intent_id: String,
    /// Minor units asked (null: the rest).
    pub amount: Option<i64>,
    /// `requested`: the coins come back when the provider's `charge.refunded` arrives.
    pub status: String,
}

/// An admin's refund.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundInput {
    /// Minor units (default: all that is left).
    #[serde(default)]
    pub amount: Option<i64>,
}

impl RefundRequested {
    pub(crate) fn new(intent_id: String, amount: Option<i64>) -> Self {
        RefundRequested { intent_id, amount, status: "requested".into() }
    }
}

/// Answers `202 Accepted`.
pub const ACCEPTED: StatusCode = StatusCode::ACCEPTED;
