//! Payments: buying coins (and tickets or subscriptions) through a provider.
//!
//! - [`provider`]: the interface (Stripe's PaymentIntents); [`stripe`]: the
//!   real adapter; [`dev`]: the built-in development provider;
//! - [`signature`]: `Stripe-Signature` webhooks;
//! - [`reconcile`]: from an intent's events to the ledger.
//!
//! A top-up makes an intent and answers with where to pay; coins come only
//! from a verified `payment_intent.succeeded` webhook, credited by a
//! transfer whose id derives from the intent.

pub mod dev;
pub mod provider;
pub mod reconcile;
pub mod signature;
pub mod stripe;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::money::idempotency::{self, Keyed, Reply};
use crate::money::ledger::MAX_AMOUNT;
use crate::money::tx::Tx;
use crate::money::writer::Writer;
use provider::{IntentRequest, PaymentProvider};
use reconcile::PaymentRow;

/// A coin package on sale.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Package {
    /// Id (`coins_500`).
    pub id: &'static str,
    /// Coins it gives.
    pub coins: i64,
    /// Its price in minor units of the currency.
    pub amount: i64,
    /// Lowercase ISO code.
    pub currency: String,
}

/// The packages: (id, coins, price in minor units). Bigger ones are a little cheaper per coin.
pub const PACKAGES: [(&str, i64, i64); 5] = [("coins_100", 100, 99), ("coins_500", 500, 479), ("coins_1000", 1_000, 949), ("coins_5000", 5_000, 4_499), ("coins_10000", 10_000, 8_499)];
/// Coins bought as a custom amount: at least / at most.
pub const CUSTOM_COINS: (i64, i64) = (50, 100_000);

/// What buying coins takes: a package, or a number of coins (priced at one
/// minor unit each).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpInput {
    /// A package id (see `GET /api/wallet/packages`).
    #[serde(default)]
    pub package: Option<String>,
    /// Or a number of coins, 50-100,000.
    #[serde(default)]
    pub coins: Option<i64>,
}

/// A payment to make: an intent at the provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TopUp {
    /// The provider's intent id (`pi_...`).
    pub intent_id: String,
    /// Stripe's status: `requires_payment_method` until paid; coins arrive with the webhook.
    pub status: String,
    /// Price in minor units.
    pub amount: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// Where to pay (the development provider's checkout page); null with
    /// Stripe, where the page confirms with Stripe.js and `client_secret`.
    pub checkout_url: Option<String>,
    /// For Stripe.js.
    pub client_secret: Option<String>,
    /// Coins it buys.
    pub coins: i64,
    /// The package, if one was chosen.
    pub package: Option<String>,
    /// `top_up`, `ticket` or `subscription`.
    pub purpose: String,
}

/// A payment as its buyer (or an admin) sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payment {
    /// `pi_...`
    pub intent_id: String,
    /// `dev` or `stripe`.
    pub provider: String,
    /// Buyer.
    pub user_id: i64,
    /// `top_up`, `ticket`, `subscription`.
    pub purpose: String,
    /// Coins it buys.
    pub coins: i64,
    /// Minor units.
    pub amount: i64,
    /// Currency.
    pub currency: String,
    /// Stripe's status.
    pub status: String,
    /// Refunded so far (minor units).
    pub amount_refunded: i64,
    /// A dispute's status.
    pub dispute_status: Option<String>,
    /// Coins the buyer holds for it now (after refunds and disputes).
    pub coins_credited: i64,
    /// The ticket or subscription it bought.
    pub fulfilled: Option<String>,
}

impl From<PaymentRow> for Payment {
    fn from(r: PaymentRow) -> Self {
        Payment {
            intent_id: r.id,
            provider: r.provider,
            user_id: r.user_id,
            purpose: r.purpose,
            coins: r.coins,
            amount: r.amount,
            currency: r.currency,
            status: r.status,
            amount_refunded: r.amount_refunded,
            dispute_status: r.dispute_status,
            coins_credited: r.coins_credited,
            fulfilled: r.fulfilled,
        }
    }
}

/// An event from the provider, as far as OnAir reads it.
#[derive(Debug, Clone)]
pub struct ProviderEvent {
    /// `evt_...`
    pub id: String,
    /// `payment_intent.succeeded`, ...
    pub kind: String,
    /// Unix seconds.
    pub created: i64,
    /// `data.object`.
    pub object: Value,
}

impl ProviderEvent {
    /// Reads Stripe's event JSON.
    pub fn parse(body: &[u8]) -> Result<ProviderEvent, ApiError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_json", format!("the event is not JSON: {e}")))?;
        let bad = |what: &str| ApiError::new(StatusCode::BAD_REQUEST, "bad_event", format!("the event has no {what}"));
        if v["object"] != "event" {
            return Err(bad("\"object\": \"event\""));
        }
        Ok(ProviderEvent {
            id: v["id"].as_str().filter(|s| !s.is_empty() && s.len() <= 255).ok_or_else(|| bad("id"))?.to_owned(),
            kind: v["type"].as_str().ok_or_else(|| bad("type"))?.to_owned(),
            created: v["created"].as_i64().ok_or_else(|| bad("created"))?,
            object: v["data"]["object"].clone(),
        })
    }

    /// The payment intent it concerns: the object itself, or a charge's or
    /// dispute's `payment_intent`.
    pub fn intent_id(&self) -> Option<&str> {
        if self.object["object"] == "payment_intent" {
            self.object["id"].as_str()
        } else {
            self.object["payment_intent"].as_str()
        }
    }

    /// The charge it concerns (a charge, or a dispute's `charge`).
    pub fn charge_id(&self) -> Option<&str> {
        match self.object["object"].as_str() {
            Some("charge") => self.object["id"].as_str(),
            _ => self.object["charge"].as_str(),
        }
    }
}

/// The payments service.
pub struct Payments {
    writer: Writer,
    /// The provider in use.
    pub provider: Arc<dyn PaymentProvider>,
    /// The development provider, when it is the one in use.
    pub dev: Option<Arc<dev::DevProvider>>,
    /// Webhook signing secrets (several while one is rolled).
    pub secrets: Vec<String>,
    /// Lowercase ISO code of prices.
    pub currency: String,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    crate::money::unprocessable(BTreeMap::from([(field.to_owned(), message.into())]))
}

impl Payments {
    /// The service over a provider.
    pub fn new(writer: Writer, provider: Arc<dyn PaymentProvider>, dev: Option<Arc<dev::DevProvider>>, secrets: Vec<String>, currency: String) -> Payments {
        Payments { writer, provider, dev, secrets, currency }
    }

    /// The packages on sale.
    pub fn packages(&self) -> Vec<Package> {
        PACKAGES.iter().map(|(id, coins, amount)| Package { id, coins: *coins, amount: *amount, currency: self.currency.clone() }).collect()
    }

    /// (coins, price, package) of a top-up request, or `422`.
    pub fn quote(&self, input: &TopUpInput) -> Result<(i64, i64, Option<String>), ApiError> {
        match (&input.package, input.coins) {
            (Some(p), None) => PACKAGES
                .iter()
                .find(|(id, ..)| id == p)
                .map(|(id, coins, amount)| (*coins, *amount, Some(id.to_string())))
                .ok_or_else(|| invalid("package", format!("no package '{p}'; see GET /api/wallet/packages"))),
            (None, Some(c)) if (CUSTOM_COINS.0..=CUSTOM_COINS.1).contains(&c) => Ok((c, c, None)),
            (None, Some(_)) => Err(invalid("coins", format!("must be {}-{}", CUSTOM_COINS.0, CUSTOM_COINS.1))),
            _ => Err(invalid("package", "give a package or a number of coins (not both)")),
        }
    }

    /// Makes an intent for `coins` at `amount` and records it under the
    /// caller's idempotency key (a retry answers the same intent: the
    /// provider gets a key derived from it).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(&self, keyed: Keyed, purpose: &str, coins: i64, amount: i64, package: Option<String>, target: Option<Value>, description: String) -> Result<Reply<TopUp>, ApiError> {
        if amount <= 0 || amount > MAX_AMOUNT || coins <= 0 || coins > MAX_AMOUNT {
            return Err(invalid("amount", "out of range"));
        }
        let metadata = BTreeMap::from([
            ("onair_user".to_owned(), keyed.user_id.to_string()),
            ("onair_purpose".to_owned(), purpose.to_owned()),
            ("onair_coins".to_owned(), coins.to_string()),
        ]);
        let req = IntentRequest {
            amount,
            currency: self.currency.clone(),
            description,
            metadata,
            idempotency_key: format!("onair-{}-{}", keyed.user_id, &keyed.fingerprint[..16]) + "-" + &short_hash(&keyed.key),
        };
        // Outside the writer: an HTTP call must not hold up every money write.
        let intent = self.provider.create_intent(&req).await?;
        if intent.amount != amount || intent.currency != self.currency {
            return Err(ApiError::new(StatusCode::BAD_GATEWAY, "payment_provider_error", "the provider answered another amount or currency"));
        }
        let provider = self.provider.name();
        let purpose = purpose.to_owned();
        let target = target.map(|t| t.to_string());
        idempotency::run(&self.writer, keyed.clone(), StatusCode::CREATED, move |tx: &mut Tx| {
            Box::pin(async move {
                let now = tx.now();
                sqlx::query(
                    "INSERT INTO payment_intents (id, provider, user_id, purpose, target, package, coins, amount, currency, status, checkout_url, client_secret, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) ON CONFLICT (id) DO NOTHING",
                )
                .bind(&intent.id)
                .bind(provider)
                .bind(keyed.user_id)
                .bind(&purpose)
                .bind(&target)
                .bind(&package)
                .bind(coins)
                .bind(amount)
                .bind(&intent.currency)
                .bind(&intent.status)
                .bind(&intent.checkout_url)
                .bind(&intent.client_secret)
                .bind(now)
                .execute(tx.conn())
                .await
                .map_err(ApiError::internal)?;
                Ok(TopUp {
                    intent_id: intent.id,
                    status: intent.status,
                    amount,
                    currency: intent.currency,
                    checkout_url: intent.checkout_url,
                    client_secret: intent.client_secret,
                    coins,
                    package,
                    purpose,
                })
            })
        })
        .await
    }

    /// Verifies a webhook's signature (Stripe's scheme, any of the secrets,
    /// 300 s tolerance) and reads its event.
    pub fn verify(&self, signature: Option<&str>, body: &[u8], now_s: i64) -> Result<ProviderEvent, ApiError> {
        let header = signature.ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_signature", "no Stripe-Signature header"))?;
        signature::verify(header, body, &self.secrets, now_s, signature::TOLERANCE_S).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_signature", e.to_string()))?;
        ProviderEvent::parse(body)
    }
}

fn short_hash(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// How an event was taken.
#[derive(Debug, Clone, PartialEq)]
pub enum EventOutcome {
    /// Seen before: nothing done again.
    Duplicate,
    /// Not about a payment of OnAir's.
    Ignored,
    /// Applied: the intent, its buyer, and the change in their coins.
    Applied {
        /// Intent.
        intent: String,
        /// Buyer.
        user_id: i64,
        /// Coins added (negative: clawed back).
        coins: i64,
    },
}

/// Inside a write transaction: records the event (once) and reconciles its
/// intent. Returns the outcome and the intent's row after it.
pub async fn apply_event(tx: &mut Tx, ev: &ProviderEvent) -> Result<(EventOutcome, Option<PaymentRow>), ApiError> {
    let seen: Option<(String,)> = sqlx::query_as("SELECT id FROM payment_events WHERE id = $1").bind(&ev.id).fetch_optional(tx.conn()).await.map_err(ApiError::internal)?;
    if seen.is_some() {
        return Ok((EventOutcome::Duplicate, None));
    }
    let row = match ev.intent_id() {
        Some(id) => reconcile::load(tx.conn(), id).await?,
        None => None,
    };
    let row = match (row, ev.charge_id()) {
        (None, Some(ch)) => reconcile::load_by_charge(tx.conn(), ch).await?,
        (row, _) => row,
    };
    let now = tx.now();
    sqlx::query("INSERT INTO payment_events (id, type, intent_id, created, received_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&ev.id)
        .bind(&ev.kind)
        .bind(row.as_ref().map(|r| r.id.clone()))
        .bind(ev.created)
        .bind(now)
        .execute(tx.conn())
        .await
        .map_err(ApiError::internal)?;
    let Some(mut row) = row else {
        tracing::info!(event = %ev.id, kind = %ev.kind, "payment event for no intent of ours; ignored");
        return Ok((EventOutcome::Ignored, None));
    };
    if ev.kind == "payment_intent.succeeded" && (ev.object["amount"].as_i64() != Some(row.amount) || ev.object["currency"].as_str() != Some(row.currency.as_str())) {
        tracing::error!(intent = %row.id, "payment_intent.succeeded for another amount or currency than asked; no coins credited");
        return Ok((EventOutcome::Ignored, Some(row)));
    }
    reconcile::merge(&mut row, &ev.kind, &ev.object, ev.created);
    let (_, coins) = reconcile::settle(tx, &mut row).await?;
    reconcile::save(tx, &row).await?;
    Ok((EventOutcome::Applied { intent: row.id.clone(), user_id: row.user_id, coins }, Some(row)))
}
