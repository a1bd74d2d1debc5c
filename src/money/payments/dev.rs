//! The development payment provider: Stripe's PaymentIntents and webhooks,
//! played locally, so the whole payment path runs with no account.
//!
//! It keeps its own books (`dev_payment_intents`), serves a checkout page
//! (`/pay/dev/{intent}`: Pay or Decline), and tells OnAir what happened
//! the way Stripe does: events in Stripe's JSON shape, signed with the
//! webhook secret(s) in Stripe's `Stripe-Signature` scheme, POSTed over
//! real HTTP to OnAir's own `/api/payments/webhook`, retried with backoff
//! until OnAir answers 2xx (stored first, so a restart loses none). OnAir
//! verifies them exactly as it verifies Stripe's.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use futures_util::future::BoxFuture;
use onair_signaling::ApiError;
use serde_json::{json, Value};
use sqlx::SqlitePool;
use tokio::sync::Notify;

use super::provider::{Intent, IntentRequest, PaymentProvider};
use super::signature;
use crate::clock::now_ms;
use crate::db::DbResult;

/// The API version stamped on events (the shape they follow).
pub const API_VERSION: &str = "2024-06-20";

/// A random Stripe-style id: `pi_3Q...`.
pub fn stripe_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let tail: String = (0..24).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}_{tail}")
}

/// The development provider.
pub struct DevProvider {
    pool: SqlitePool,
    secrets: Vec<String>,
    /// Where OnAir's webhook endpoint is (set once the server listens).
    webhook_url: OnceLock<String>,
    wake: Arc<Notify>,
    /// Refund idempotency keys seen (Stripe dedupes refunds by key too).
    refund_keys: dashmap::DashSet<String>,
}

/// One of its intents.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    amount: i64,
    currency: String,
    status: String,
    description: String,
    metadata: Value,
    charge_id: Option<String>,
    amount_refunded: i64,
    dispute_id: Option<String>,
    dispute_status: Option<String>,
    created: i64,
}

type RowTuple = (String, i64, String, String, String, String, Option<String>, i64, Option<String>, Option<String>, i64);

impl DevProvider {
    /// Starts its delivery task.
    pub fn start(pool: SqlitePool, secrets: Vec<String>) -> Arc<DevProvider> {
        let p = Arc::new(DevProvider { pool, secrets, webhook_url: OnceLock::new(), wake: Arc::new(Notify::new()), refund_keys: Default::default() });
        tokio::spawn(deliver(Arc::downgrade(&p)));
        p
    }

    /// Tells it where to deliver (OnAir's base URL).
    pub fn set_base_url(&self, base: &str) {
        let _ = self.webhook_url.set(format!("{base}/api/payments/webhook"));
        self.wake.notify_one();
    }

    async fn row(&self, id: &str) -> Result<Row, ApiError> {
        let r: Option<RowTuple> = sqlx::query_as(
            "SELECT id, amount, currency, status, description, metadata, charge_id, amount_refunded, dispute_id, dispute_status, created FROM dev_payment_intents WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        let r = r.ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "intent_not_found", format!("no payment {id}")))?;
        Ok(Row {
            id: r.0,
            amount: r.1,
            currency: r.2,
            status: r.3,
            description: r.4,
            metadata: serde_json::from_str(&r.5).unwrap_or(json!({})),
            charge_id: r.6,
            amount_refunded: r.7,
            dispute_id: r.8,
            dispute_status: r.9,
            created: r.10,
        })
    }

    /// What the checkout page shows.
    pub async fn checkout(&self, id: &str) -> Result<Value, ApiError> {
        let r = self.row(id).await?;
        Ok(json!({ "id": r.id, "amount": r.amount, "currency": r.currency, "status": r.status, "description": r.description, "metadata": r.metadata }))
    }

    /// The buyer pays: the intent succeeds (once) and `payment_intent.succeeded` is sent.
    pub async fn pay(&self, id: &str) -> Result<Value, ApiError> {
        let charge = stripe_id("ch");
        let r = sqlx::query("UPDATE dev_payment_intents SET status = 'succeeded', charge_id = $1 WHERE id = $2 AND status = 'requires_payment_method'")
            .bind(&charge)
            .bind(id)
            .execute(&self.pool)
            .await
            .db()?;
        let row = self.row(id).await?;
        if r.rows_affected() == 1 {
            self.emit("payment_intent.succeeded", intent_object(&row)).await?;
        } else if row.status != "succeeded" {
            return Err(ApiError::new(StatusCode::CONFLICT, "bad_state", format!("this payment is {}", row.status)));
        }
        self.checkout(id).await
    }

    /// The buyer's card is declined: `payment_intent.payment_failed`; they may try again.
    pub async fn decline(&self, id: &str) -> Result<Value, ApiError> {
        let row = self.row(id).await?;
        if row.status != "requires_payment_method" {
            return Err(ApiError::new(StatusCode::CONFLICT, "bad_state", format!("this payment is {}", row.status)));
        }
        let mut obj = intent_object(&row);
        obj["last_payment_error"] = json!({ "type": "card_error", "code": "card_declined", "decline_code": "generic_decline", "message": "Your card was declined." });
        self.emit("payment_intent.payment_failed", obj).await?;
        self.checkout(id).await
    }

    /// A dispute on the payment (the card network's side): `charge.dispute.created`
    /// with `needs_response`, or `charge.dispute.closed` with `won` / `lost`.
    pub async fn dispute(&self, id: &str, status: &str) -> Result<Value, ApiError> {
        if !["needs_response", "won", "lost"].contains(&status) {
            return Err(ApiError::validation(BTreeMap::from([("status".into(), "needs_response, won or lost".into())])));
        }
        let row = self.row(id).await?;
        if row.status != "succeeded" {
            return Err(ApiError::new(StatusCode::CONFLICT, "bad_state", "only a paid payment can be disputed"));
        }
        let dispute = row.dispute_id.clone().unwrap_or_else(|| stripe_id("dp"));
        sqlx::query("UPDATE dev_payment_intents SET dispute_id = $1, dispute_status = $2 WHERE id = $3").bind(&dispute).bind(status).bind(id).execute(&self.pool).await.db()?;
        let row = self.row(id).await?;
        let event = if status == "needs_response" { "charge.dispute.created" } else { "charge.dispute.closed" };
        self.emit(event, dispute_object(&row)).await?;
        self.checkout(id).await
    }

    /// Stores an event and wakes the delivery task.
    async fn emit(&self, kind: &str, object: Value) -> Result<(), ApiError> {
        let id = stripe_id("evt");
        let payload = json!({
            "id": id,
            "object": "event",
            "api_version": API_VERSION,
            "created": now_ms() / 1000,
            "data": { "object": object },
            "livemode": false,
            "pending_webhooks": 1,
            "request": { "id": null, "idempotency_key": null },
            "type": kind,
        });
        sqlx::query("INSERT INTO dev_payment_events (id, payload, next_attempt_at, created_at) VALUES ($1, $2, $3, $3)")
            .bind(&id)
            .bind(payload.to_string())
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .db()?;
        self.wake.notify_one();
        Ok(())
    }
}

/// A PaymentIntent object as Stripe renders it.
fn intent_object(r: &Row) -> Value {
    let received = if r.status == "succeeded" { r.amount } else { 0 };
    json!({
        "id": r.id,
        "object": "payment_intent",
        "amount": r.amount,
        "amount_capturable": 0,
        "amount_received": received,
        "canceled_at": null,
        "cancellation_reason": null,
        "capture_method": "automatic",
        "client_secret": format!("{}_secret_dev", r.id),
        "confirmation_method": "automatic",
        "created": r.created,
        "currency": r.currency,
        "description": r.description,
        "last_payment_error": null,
        "latest_charge": r.charge_id,
        "livemode": false,
        "metadata": r.metadata,
        "payment_method_types": ["card"],
        "status": r.status,
    })
}

/// A Charge object.
fn charge_object(r: &Row) -> Value {
    json!({
        "id": r.charge_id,
        "object": "charge",
        "amount": r.amount,
        "amount_captured": r.amount,
        "amount_refunded": r.amount_refunded,
        "captured": true,
        "created": r.created,
        "currency": r.currency,
        "disputed": r.dispute_id.is_some(),
        "livemode": false,
        "metadata": r.metadata,
        "paid": true,
        "payment_intent": r.id,
        "refunded": r.amount_refunded >= r.amount,
        "status": "succeeded",
    })
}

/// A Dispute object.
fn dispute_object(r: &Row) -> Value {
    json!({
        "id": r.dispute_id,
        "object": "dispute",
        "amount": r.amount,
        "charge": r.charge_id,
        "created": now_ms() / 1000,
        "currency": r.currency,
        "livemode": false,
        "metadata": {},
        "payment_intent": r.id,
        "reason": "fraudulent",
        "status": r.dispute_status,
    })
}

impl PaymentProvider for DevProvider {
    fn name(&self) -> &'static str {
        "dev"
    }

    fn create_intent<'a>(&'a self, req: &'a IntentRequest) -> BoxFuture<'a, Result<Intent, ApiError>> {
        Box::pin(async move {
            let now = now_ms();
            // Like Stripe, a key is remembered for 24 hours.
            let existing: Option<(String,)> = sqlx::query_as("SELECT id FROM dev_payment_intents WHERE idempotency_key = $1 AND created > $2")
                .bind(&req.idempotency_key)
                .bind(now / 1000 - 24 * 3600)
                .fetch_optional(&self.pool)
                .await
                .db()?;
            let id = match existing {
                Some((id,)) => id,
                None => {
                    let id = stripe_id("pi");
                    sqlx::query(
                        "INSERT INTO dev_payment_intents (id, idempotency_key, amount, currency, status, description, metadata, created) \
                         VALUES ($1, $2, $3, $4, 'requires_payment_method', $5, $6, $7)",
                    )
                    .bind(&id)
                    .bind(&req.idempotency_key)
                    .bind(req.amount)
                    .bind(&req.currency)
                    .bind(&req.description)
                    .bind(serde_json::to_string(&req.metadata).unwrap_or_default())
                    .bind(now / 1000)
                    .execute(&self.pool)
                    .await
                    .db()?;
                    id
                }
            };
            let r = self.row(&id).await?;
            Ok(Intent {
                checkout_url: Some(format!("/pay/dev/{}", r.id)),
                client_secret: Some(format!("{}_secret_dev", r.id)),
                id: r.id,
                status: r.status,
                amount: r.amount,
                currency: r.currency,
            })
        })
    }

    fn refund<'a>(&'a self, intent_id: &'a str, amount: Option<i64>, idempotency_key: &'a str) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            if !self.refund_keys.insert(idempotency_key.to_owned()) {
                return Ok(()); // a retry of a refund already made
            }
            let r = self.refund_once(intent_id, amount).await;
            if r.is_err() {
                self.refund_keys.remove(idempotency_key);
            }
            r
        })
    }
}

impl DevProvider {
    async fn refund_once(&self, intent_id: &str, amount: Option<i64>) -> Result<(), ApiError> {
        {
            let row = self.row(intent_id).await?;
            if row.status != "succeeded" {
                return Err(ApiError::new(StatusCode::CONFLICT, "bad_state", "only a paid payment can be refunded"));
            }
            let left = row.amount - row.amount_refunded;
            let amount = amount.unwrap_or(left);
            if amount <= 0 || amount > left {
                return Err(ApiError::validation(BTreeMap::from([("amount".into(), format!("1-{left} can still be refunded"))])));
            }
            let r = sqlx::query("UPDATE dev_payment_intents SET amount_refunded = amount_refunded + $1 WHERE id = $2 AND amount_refunded + $1 <= amount")
                .bind(amount)
                .bind(intent_id)
                .execute(&self.pool)
                .await
                .db()?;
            if r.rows_affected() == 0 {
                return Err(ApiError::new(StatusCode::CONFLICT, "bad_state", "refunded in the meantime"));
            }
            let row = self.row(intent_id).await?;
            self.emit("charge.refunded", charge_object(&row)).await
        }
    }
}

/// Posts stored events to OnAir until each is answered 2xx (backoff from
/// 1 s doubling to an hour; given up after three days, as Stripe does).
async fn deliver(me: std::sync::Weak<DevProvider>) {
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).user_agent(concat!("OnAir-DevPay/", env!("CARGO_PKG_VERSION"))).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("dev payments: no HTTP client: {e}");
            return;
        }
    };
    loop {
        let Some(p) = me.upgrade() else { return };
        let Some(url) = p.webhook_url.get().cloned() else {
            let _ = tokio::time::timeout(Duration::from_secs(1), p.wake.notified()).await;
            continue;
        };
        let now = now_ms();
        let due: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT id, payload, attempts FROM dev_payment_events WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND created_at > $2 ORDER BY created_at, id LIMIT 50",
        )
        .bind(now)
        .bind(now - 3 * 24 * 3600 * 1000)
        .fetch_all(&p.pool)
        .await
        .unwrap_or_default();
        for (id, payload, attempts) in &due {
            let header = signature::sign(&p.secrets, now_ms() / 1000, payload.as_bytes());
            let res = client.post(&url).header("content-type", "application/json").header("stripe-signature", header).body(payload.clone()).send().await;
            let outcome = match res {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
                Err(e) => Err(e.to_string()),
            };
            let q = match outcome {
                Ok(()) => sqlx::query("UPDATE dev_payment_events SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2").bind(now_ms()).bind(id),
                Err(e) => {
                    let backoff = (1_000i64 << (*attempts).min(12)).min(3_600_000);
                    tracing::warn!(event = %id, "dev payments: webhook not accepted (try {}): {e}", attempts + 1);
                    sqlx::query("UPDATE dev_payment_events SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3").bind(e).bind(now_ms() + backoff).bind(id)
                }
            };
            if let Err(e) = q.execute(&p.pool).await {
                tracing::error!("dev payments: {e}");
            }
        }
        if due.len() < 50 {
            let wake = p.wake.clone();
            drop(p);
            let _ = tokio::time::timeout(Duration::from_millis(500), wake.notified()).await;
        }
    }
}
