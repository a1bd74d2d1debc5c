//! The Stripe adapter: PaymentIntents and refunds over Stripe's HTTP API
//! (`ONAIR_STRIPE_SECRET_KEY`). Stripe takes form-encoded bodies
//! (`amount=499&currency=usd&metadata[onair_user]=42`), a bearer secret key,
//! and an `Idempotency-Key` that makes a retried create return the same
//! intent. Payment confirmation happens in the buyer's browser with
//! Stripe.js and the intent's `client_secret`; coins come from the
//! `payment_intent.succeeded` webhook, as with every provider.

use std::time::Duration;

use axum::http::StatusCode;
use futures_util::future::BoxFuture;
use onair_signaling::ApiError;
use serde_json::Value;

use super::provider::{Intent, IntentRequest, PaymentProvider};

/// Stripe's API.
pub const API_BASE: &str = "https://api.stripe.com";
/// The API version requests pin (the event shapes the webhook reads).
pub const API_VERSION: &str = "2024-06-20";

/// A request as it goes on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct WireRequest {
    /// `POST`.
    pub method: &'static str,
    /// Full URL.
    pub url: String,
    /// Headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// `application/x-www-form-urlencoded` body.
    pub body: String,
}

/// `application/x-www-form-urlencoded` encoding of one name or value (the
/// WHATWG serializer: space as `+`, every other byte outside `*-._` and
/// alphanumerics as `%XX`).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn form(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect::<Vec<_>>().join("&")
}

/// The adapter.
pub struct Stripe {
    key: String,
    base: String,
    http: reqwest::Client,
}

impl Stripe {
    /// With a secret key (`sk_live_...` / `sk_test_...`), against `base`
    /// (Stripe's API; tests point it elsewhere).
    pub fn new(key: String, base: &str) -> Result<Stripe, String> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).user_agent(concat!("OnAir/", env!("CARGO_PKG_VERSION"))).build().map_err(|e| e.to_string())?;
        Ok(Stripe { key, base: base.trim_end_matches('/').to_owned(), http })
    }

    fn request(&self, path: &str, idempotency_key: &str, pairs: &[(String, String)]) -> WireRequest {
        WireRequest {
            method: "POST",
            url: format!("{}{path}", self.base),
            headers: vec![
                ("authorization".into(), format!("Bearer {}", self.key)),
                ("content-type".into(), "application/x-www-form-urlencoded".into()),
                ("idempotency-key".into(), idempotency_key.into()),
                ("stripe-version".into(), API_VERSION.into()),
            ],
            body: form(pairs),
        }
    }

    /// `POST /v1/payment_intents` for a request.
    pub fn create_request(&self, req: &IntentRequest) -> WireRequest {
        let mut pairs = vec![
            ("amount".to_owned(), req.amount.to_string()),
            ("currency".to_owned(), req.currency.clone()),
            ("automatic_payment_methods[enabled]".to_owned(), "true".to_owned()),
            ("description".to_owned(), req.description.clone()),
        ];
        pairs.extend(req.metadata.iter().map(|(k, v)| (format!("metadata[{k}]"), v.clone())));
        self.request("/v1/payment_intents", &req.idempotency_key, &pairs)
    }

    /// `POST /v1/refunds` for an intent.
    pub fn refund_request(&self, intent_id: &str, amount: Option<i64>, idempotency_key: &str) -> WireRequest {
        let mut pairs = vec![("payment_intent".to_owned(), intent_id.to_owned())];
        if let Some(a) = amount {
            pairs.push(("amount".to_owned(), a.to_string()));
        }
        self.request("/v1/refunds", idempotency_key, &pairs)
    }

    async fn send(&self, w: WireRequest) -> Result<Value, ApiError> {
        let mut r = self.http.post(&w.url);
        for (k, v) in &w.headers {
            r = r.header(k, v);
        }
        let res = r.body(w.body).send().await.map_err(|e| provider_error(format!("Stripe unreachable: {e}")))?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| provider_error(format!("Stripe's answer was cut: {e}")))?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| provider_error(format!("Stripe's answer is not JSON: {e}")))?;
        if !status.is_success() {
            let msg = body["error"]["message"].as_str().unwrap_or("no message");
            return Err(provider_error(format!("Stripe refused ({}): {msg}", status.as_u16())));
        }
        Ok(body)
    }
}

fn provider_error(message: String) -> ApiError {
    tracing::warn!("{message}");
    ApiError::new(StatusCode::BAD_GATEWAY, "payment_provider_error", message)
}

impl PaymentProvider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn create_intent<'a>(&'a self, req: &'a IntentRequest) -> BoxFuture<'a, Result<Intent, ApiError>> {
        Box::pin(async move {
            let v = self.send(self.create_request(req)).await?;
            let id = v["id"].as_str().filter(|s| s.starts_with("pi_")).ok_or_else(|| provider_error("Stripe's intent has no id".into()))?;
            Ok(Intent {
                id: id.to_owned(),
                status: v["status"].as_str().unwrap_or("requires_payment_method").to_owned(),
                amount: v["amount"].as_i64().unwrap_or(req.amount),
                currency: v["currency"].as_str().unwrap_or(&req.currency).to_owned(),
                client_secret: v["client_secret"].as_str().map(str::to_owned),
                checkout_url: None,
            })
        })
    }

    fn refund<'a>(&'a self, intent_id: &'a str, amount: Option<i64>, idempotency_key: &'a str) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move { self.send(self.refund_request(intent_id, amount, idempotency_key)).await.map(|_| ()) })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn request() -> IntentRequest {
        IntentRequest {
            amount: 499,
            currency: "usd".into(),
            description: "500 coins on OnAir".into(),
            metadata: BTreeMap::from([("onair_user".into(), "42".into()), ("onair_purpose".into(), "top_up".into()), ("onair_coins".into(), "500".into())]),
            idempotency_key: "onair-42-abc".into(),
        }
    }

    #[test]
    fn builds_stripes_documented_wire_format() {
        // As in Stripe's API reference: `curl https://api.stripe.com/v1/payment_intents
        // -u sk_test_...: -d amount=2000 -d currency=usd -d "automatic_payment_methods[enabled]=true"`.
        let s = Stripe::new("sk_test_123".into(), API_BASE).unwrap();
        let w = s.create_request(&request());
        assert_eq!(w.method, "POST");
        assert_eq!(w.url, "https://api.stripe.com/v1/payment_intents");
        assert_eq!(
            w.body,
            "amount=499&currency=usd&automatic_payment_methods%5Benabled%5D=true&description=500+coins+on+OnAir\
             &metadata%5Bonair_coins%5D=500&metadata%5Bonair_purpose%5D=top_up&metadata%5Bonair_user%5D=42"
        );
        let h: BTreeMap<_, _> = w.headers.iter().cloned().collect();
        assert_eq!(h["authorization"], "Bearer sk_test_123");
        assert_eq!(h["content-type"], "application/x-www-form-urlencoded");
        assert_eq!(h["idempotency-key"], "onair-42-abc");
        assert_eq!(h["stripe-version"], API_VERSION);
        let r = s.refund_request("pi_1", Some(100), "k");
        assert_eq!((r.url.as_str(), r.body.as_str()), ("https://api.stripe.com/v1/refunds", "payment_intent=pi_1&amount=100"));
        assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }

    #[tokio::test]
    async fn sends_it_and_reads_the_intent() {
        // A stand-in for api.stripe.com on loopback: what arrives is what was built.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap())).unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            let answer = r#"{"id":"pi_3TEST","object":"payment_intent","amount":499,"currency":"usd","status":"requires_payment_method","client_secret":"pi_3TEST_secret_x"}"#;
            sock.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}", answer.len()).as_bytes()).await.unwrap();
            String::from_utf8(got).unwrap()
        });
        let s = Stripe::new("sk_test_123".into(), &base).unwrap();
        let intent = s.create_intent(&request()).await.unwrap();
        assert_eq!((intent.id.as_str(), intent.status.as_str(), intent.client_secret.as_deref()), ("pi_3TEST", "requires_payment_method", Some("pi_3TEST_secret_x")));
        let raw = server.await.unwrap();
        assert!(raw.starts_with("POST /v1/payment_intents HTTP/1.1\r\n"), "{raw}");
        let lower = raw.to_ascii_lowercase();
        assert!(lower.contains("authorization: bearer sk_test_123\r\n") && lower.contains("idempotency-key: onair-42-abc\r\n"), "{raw}");
        assert!(raw.ends_with(&s.create_request(&request()).body), "{raw}");
    }
}
