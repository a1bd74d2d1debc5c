//! The payment provider interface, shaped like Stripe's PaymentIntents.
//!
//! OnAir asks the provider for an intent (an amount in a currency, with
//! metadata naming the user and what is bought) and sends the buyer to pay
//! it; the provider tells OnAir what happened by signed webhooks
//! (`payment_intent.succeeded`, `charge.refunded`, `charge.dispute.*`).
//! Nothing is credited from the buyer's word or from the create call's
//! answer: only a verified event moves coins.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use onair_signaling::ApiError;
use serde::Serialize;

/// What OnAir asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentRequest {
    /// Minor units.
    pub amount: i64,
    /// Lowercase ISO code (`usd`).
    pub currency: String,
    /// Shown to the buyer.
    pub description: String,
    /// Who and what (`onair_user`, `onair_purpose`, `onair_coins`).
    pub metadata: BTreeMap<String, String>,
    /// Sent to the provider as its `Idempotency-Key`: a retried create
    /// returns the same intent.
    pub idempotency_key: String,
}

/// An intent as the provider answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intent {
    /// `pi_...`
    pub id: String,
    /// Stripe's status (`requires_payment_method` at first).
    pub status: String,
    /// Minor units.
    pub amount: i64,
    /// Lowercase ISO code.
    pub currency: String,
    /// For Stripe.js to confirm the payment in the buyer's browser.
    pub client_secret: Option<String>,
    /// A page where the buyer pays (the development provider's checkout).
    pub checkout_url: Option<String>,
}

/// A payment provider.
pub trait PaymentProvider: Send + Sync {
    /// `stripe` or `dev`.
    fn name(&self) -> &'static str;

    /// Creates (or, for a repeated idempotency key, returns) an intent.
    fn create_intent<'a>(&'a self, req: &'a IntentRequest) -> BoxFuture<'a, Result<Intent, ApiError>>;

    /// Refunds an intent's payment, in full or `amount` of it. The coins
    /// come back when the provider's `charge.refunded` event arrives.
    fn refund<'a>(&'a self, intent_id: &'a str, amount: Option<i64>, idempotency_key: &'a str) -> BoxFuture<'a, Result<(), ApiError>>;
}
