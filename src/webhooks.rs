//! Signed outbound webhooks, delivered at least once, through an outbox.
//!
//! An event's delivery rows (one per endpoint that wants it) are written by
//! [`queue`] inside the same transaction as the state change they report
//! (a stream going live with its reminders marked sent, ending, being
//! cancelled): if the change is committed, so are its deliveries, and a
//! crash at any moment after loses nothing. The caller wakes the sender
//! ([`Webhooks::wake`]) once it has committed.
//!
//! The sender runs one worker per endpoint with deliveries due, each posting
//! its endpoint's rows in order, so a dead or slow endpoint (10 s timeout)
//! only ever holds up itself. Failures are retried with backoff (5 s
//! doubling, at most an hour apart, ten tries). Deliveries that are done
//! (delivered or given up) are pruned after [`RETENTION`].
//!
//! Each request carries `OnAir-Event`, `OnAir-Delivery` (the same on every
//! retry: receivers drop duplicates by it) and
//! `OnAir-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`
//! under the endpoint's secret (Stripe's scheme: the receiver recomputes it
//! and rejects old timestamps to stop replays).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::db::DbResult;

/// Events a webhook can ask for.
pub const EVENTS: &[&str] = &["stream.live", "stream.ended", "stream.reminders", "stream.cancelled"];
/// Tries before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 10;

/// An endpoint as listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    /// Id.
    pub id: i64,
    /// Where events are posted.
    pub url: String,
    /// Which events (or `*`).
    pub events: Vec<String>,
    /// Made at.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A new endpoint: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NewWebhook {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The signing secret (`whsec_...`).
    pub secret: String,
}

/// What registering an endpoint takes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// An http(s) URL.
    pub url: String,
    /// Event names (see `EVENTS`), or `["*"]` (default).
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// How long finished deliveries (delivered, or given up) are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The webhook service.
#[derive(Clone)]
pub struct Webhooks {
    pool: SqlitePool,
    wake: Arc<Notify>,
}

/// Writes `event`'s delivery rows, one per active endpoint that wants it, on
/// the caller's transaction (the outbox); returns how many. Call
/// [`Webhooks::wake`] after the commit.
pub async fn queue(conn: &mut SqliteConnection, event: &str, data: serde_json::Value, now: i64) -> Result<u64, sqlx::Error> {
    let body = serde_json::json!({
        "id": format!("evt_{}", B64.encode(rand::random::<[u8; 12]>())),
        "event": event,
        "created_at": crate::clock::rfc3339(now),
        "data": data,
    })
    .to_string();
    let hooks: Vec<(i64, String)> = sqlx::query_as("SELECT id, events FROM webhooks WHERE disabled_at IS NULL").fetch_all(&mut *conn).await?;
    let mut queued = 0;
    for (id, events) in hooks {
        if events.split(',').any(|e| e == "*" || e == event) {
            sqlx::query("INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $4)")
                .bind(id)
                .bind(event)
                .bind(&body)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            queued += 1;
        }
    }
    Ok(queued)
}

/// Deletes deliveries finished (delivered or given up), or stuck on a
/// disabled endpoint, before `now - RETENTION`; returns how many.
pub async fn prune(pool: &SqlitePool, now: i64) -> Result<u64, sqlx::Error> {
    let before = now - RETENTION.as_millis() as i64;
    let r = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE created_at < $1 AND (delivered_at IS NOT NULL OR failed_at IS NOT NULL \
         OR webhook_id IN (SELECT id FROM webhooks WHERE disabled_at IS NOT NULL))",
    )
    .bind(before)
    .execute(pool)
    .await?;
    Ok(r.rows_affected())
}

/// A delivery due: (id, event, payload, url, secret, attempts).
type Due = (i64, String, String, String, String, i64);

/// `t=...,v1=...` for a body sent at `t` (Unix seconds).
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

impl Webhooks {
    /// Starts the sender.
    pub fn start(pool: SqlitePool) -> Webhooks {
        let wake = Arc::new(Notify::new());
        let w = Webhooks { pool, wake };
        tokio::spawn(w.clone().dispatch());
        w
    }

    /// Tells the sender that deliveries were queued (after their commit).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Registers an endpoint.
    pub async fn create(&self, input: &WebhookInput) -> Result<NewWebhook, ApiError> {
        let mut fields = BTreeMap::new();
        let url = input.url.trim().to_owned();
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 || url.contains(char::is_whitespace) {
            fields.insert("url".into(), "must be an http(s) URL".into());
        }
        let events = input.events.clone().unwrap_or_else(|| vec!["*".into()]);
        if events.is_empty() {
            fields.insert("events".into(), "name at least one event, or \"*\"".into());
        }
        if let Some(bad) = events.iter().find(|e| e.as_str() != "*" && !EVENTS.contains(&e.as_str())) {
            fields.insert("events".into(), format!("unknown event '{bad}'; known: {}", EVENTS.join(", ")));
        }
        if !fields.is_empty() {
            return Err(ApiError::validation(fields));
        }
        let secret = format!("whsec_{}", B64.encode(rand::random::<[u8; 24]>()));
        let now = now_ms();
        let (id,): (i64,) = sqlx::query_as("INSERT INTO webhooks (url, secret, events, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(&url)
            .bind(&secret)
            .bind(events.join(","))
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .db()?;
        Ok(NewWebhook { webhook: Webhook { id, url, events, created_at: now }, secret })
    }

    /// Every active endpoint.
    pub async fn list(&self) -> Result<Vec<Webhook>, ApiError> {
        let rows: Vec<(i64, String, String, i64)> = sqlx::query_as("SELECT id, url, events, created_at FROM webhooks WHERE disabled_at IS NULL ORDER BY id").fetch_all(&self.pool).await.db()?;
        Ok(rows.into_iter().map(|(id, url, events, created_at)| Webhook { id, url, events: events.split(',').map(str::to_owned).collect(), created_at }).collect())
    }

    /// Turns an endpoint off; false if there is none.
    pub async fn disable(&self, id: i64) -> Result<bool, ApiError> {
        let r = sqlx::query("UPDATE webhooks SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL").bind(now_ms()).bind(id).execute(&self.pool).await.db()?;
        Ok(r.rows_affected() == 1)
    }

    /// The sender: starts a worker for each endpoint with deliveries due
    /// and none running, every second or when woken; prunes once an hour.
    async fn dispatch(self) {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("OnAir-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("webhooks disabled: no HTTP client: {e}");
                return;
            }
        };
        let busy: Arc<Mutex<HashSet<i64>>> = Default::default();
        let mut pruned: Option<Instant> = None;
        loop {
            if pruned.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
                pruned = Some(Instant::now());
                match prune(&self.pool, now_ms()).await {
                    Ok(n) if n > 0 => tracing::info!("webhooks: pruned {n} old deliveries"),
                    Ok(_) => {}
                    Err(e) => tracing::error!("webhooks: pruning: {e}"),
                }
            }
            let endpoints: Vec<(i64,)> = sqlx::query_as(
                "SELECT DISTINCT d.webhook_id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= $1 AND w.disabled_at IS NULL",
            )
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await
            .unwrap_or_else(|e| {
                tracing::error!("webhooks: {e}");
                Vec::new()
            });
            for (endpoint,) in endpoints {
                if !busy.lock().unwrap_or_else(|p| p.into_inner()).insert(endpoint) {
                    continue; // its worker is still at it
                }
                let me = self.clone();
                let (client, busy) = (client.clone(), busy.clone());
                tokio::spawn(async move {
                    me.deliver_to(&client, endpoint).await;
                    busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&endpoint);
                    me.wake();
                });
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()).await;
        }
    }

    /// Posts one endpoint's due deliveries in order; stops at the first
    /// failure (the endpoint is down: the rest wait for its next turn).
    async fn deliver_to(&self, client: &reqwest::Client, endpoint: i64) {
        loop {
            let due: Vec<Due> = match sqlx::query_as(
                "SELECT d.id, d.event, d.payload, w.url, w.secret, d.attempts FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.webhook_id = $1 AND d.delivered_at IS NULL AND d.failed_at IS NULL AND d.next_attempt_at <= $2 AND w.disabled_at IS NULL \
                 ORDER BY d.id LIMIT 20",
            )
            .bind(endpoint)
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!("webhooks: {e}");
                    return;
                }
            };
            if due.is_empty() {
                return;
            }
            for d in &due {
                if !self.deliver_one(client, d).await {
                    return;
                }
            }
        }
    }

    /// Posts one delivery and records the outcome; true if it was delivered.
    async fn deliver_one(&self, client: &reqwest::Client, (id, event, body, url, secret, attempts): &Due) -> bool {
        let t = now_ms() / 1000;
        let res = client
            .post(url)
            .header("content-type", "application/json")
            .header("onair-event", event)
            .header("onair-delivery", id.to_string())
            .header("onair-signature", signature(secret, t, body))
            .body(body.clone())
            .send()
            .await;
        let outcome = match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status().as_u16())),
            Err(e) => Err(e.to_string()),
        };
        let now = now_ms();
        let delivered = outcome.is_ok();
        let q = match outcome {
            Ok(()) => sqlx::query("UPDATE webhook_deliveries SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2").bind(now).bind(id),
            Err(e) => {
                let tries = attempts + 1;
                let backoff = (5_000i64 << tries.min(10)).min(3_600_000);
                tracing::warn!(delivery = id, url = %url, "webhook failed (try {tries}): {e}");
                sqlx::query("UPDATE webhook_deliveries SET attempts = $1, last_error = $2, next_attempt_at = $3, failed_at = CASE WHEN $1 >= $4 THEN $5 ELSE NULL END WHERE id = $6")
                    .bind(tries)
                    .bind(e)
                    .bind(now + backoff)
                    .bind(MAX_ATTEMPTS)
                    .bind(now)
                    .bind(id)
            }
        };
        if let Err(e) = q.execute(&self.pool).await {
            tracing::error!("webhooks: {e}");
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_and_body() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed independently.
        let s = signature("secret", 1_700_000_000, "{}");
        assert!(s.starts_with("t=1700000000,v1="), "{s}");
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature("secret", 1_700_000_001, "{}"), "the time is signed");
        assert_ne!(s, signature("other", 1_700_000_000, "{}"), "the secret matters");
    }

    #[tokio::test]
    async fn old_finished_deliveries_are_pruned_and_pending_ones_kept() {
        let dir = std::env::temp_dir().join(format!("onair-hooks-{}-{}", std::process::id(), rand::random::<u32>()));
        let pool = crate::db::open(&dir).await.unwrap();
        sqlx::query("INSERT INTO webhooks (id, url, secret, events, created_at) VALUES (1, 'http://a', 's', '*', 0), (2, 'http://b', 's', '*', 0)").execute(&pool).await.unwrap();
        sqlx::query("UPDATE webhooks SET disabled_at = 1 WHERE id = 2").execute(&pool).await.unwrap();
        let now = 100 * 24 * 3600 * 1000i64;
        let old = now - RETENTION.as_millis() as i64 - 1;
        let rows = [
            (1, old, Some(old), None),     // delivered long ago: pruned
            (1, old, None, Some(old)),     // given up long ago: pruned
            (1, old, None, None),          // still being retried: kept
            (2, old, None, None),          // stuck on a disabled endpoint: pruned
            (1, now - 1000, Some(now), None), // delivered recently: kept
        ];
        for (hook, created, delivered, failed) in rows {
            sqlx::query("INSERT INTO webhook_deliveries (webhook_id, event, payload, next_attempt_at, created_at, delivered_at, failed_at) VALUES ($1, 'stream.live', '{}', $2, $2, $3, $4)")
                .bind(hook)
                .bind(created)
                .bind(delivered)
                .bind(failed)
                .execute(&pool)
                .await
                .unwrap();
        }
        assert_eq!(prune(&pool, now).await.unwrap(), 3);
        let left: Vec<(i64, Option<i64>)> = sqlx::query_as("SELECT created_at, delivered_at FROM webhook_deliveries ORDER BY id").fetch_all(&pool).await.unwrap();
        assert_eq!(left, vec![(old, None), (now - 1000, Some(now))]);
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
