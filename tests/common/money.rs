//! Money helpers: keyed requests, Stripe-signed events, buying coins
//! through the development checkout.

use std::time::Duration;

use serde_json::{json, Value};

use super::api::{Api, User};
use super::http::{request, Response};

/// A fresh idempotency key.
pub fn key() -> String {
    format!("k-{:032x}", rand::random::<u128>())
}

/// POST with a bearer token, a JSON body and an Idempotency-Key.
pub async fn post_keyed(api: &Api, path: &str, token: &str, key: &str, body: &Value) -> Response {
    let auth = format!("Bearer {token}");
    let bytes = body.to_string();
    request(api.addr, "POST", path, &[("Authorization", auth.as_str()), ("Content-Type", "application/json"), ("Idempotency-Key", key)], bytes.as_bytes()).await
}

/// HMAC-SHA256 hex.
pub fn hmac_hex(secret: &str, msg: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&k, msg).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `Stripe-Signature` for `body` at `t` under each secret (computed here,
/// independently of the server's code).
pub fn stripe_signature(secrets: &[&str], t: i64, body: &str) -> String {
    let mut h = format!("t={t}");
    for s in secrets {
        h.push_str(&format!(",v1={}", hmac_hex(s, format!("{t}.{body}").as_bytes())));
    }
    h
}

/// Unix seconds now.
pub fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A Stripe event (`{"id","object":"event","type","created","data":{"object"}}`).
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({ "id": id, "object": "event", "api_version": "2024-06-20", "created": created, "data": { "object": object },
            "livemode": false, "pending_webhooks": 1, "request": { "id": null, "idempotency_key": null }, "type": kind })
}

/// A PaymentIntent object.
pub fn intent_object(id: &str, amount: i64, status: &str, charge: Option<&str>) -> Value {
    json!({ "id": id, "object": "payment_intent", "amount": amount, "amount_received": if status == "succeeded" { amount } else { 0 },
            "currency": "usd", "status": status, "latest_charge": charge, "metadata": {}, "livemode": false })
}

/// A Charge object (refunds).
pub fn charge_object(id: &str, intent: &str, amount: i64, refunded: i64) -> Value {
    json!({ "id": id, "object": "charge", "amount": amount, "amount_refunded": refunded, "currency": "usd", "payment_intent": intent, "refunded": refunded >= amount, "status": "succeeded" })
}

/// A Dispute object.
pub fn dispute_object(id: &str, intent: &str, charge: &str, amount: i64, status: &str) -> Value {
    json!({ "id": id, "object": "dispute", "amount": amount, "charge": charge, "currency": "usd", "payment_intent": intent, "status": status, "reason": "fraudulent" })
}

/// Delivers a signed event to the webhook.
pub async fn deliver(api: &Api, secrets: &[&str], t: i64, ev: &Value) -> Response {
    let body = ev.to_string();
    let sig = stripe_signature(secrets, t, &body);
    request(api.addr, "POST", "/api/payments/webhook", &[("Content-Type", "application/json"), ("Stripe-Signature", sig.as_str())], body.as_bytes()).await
}

/// The user's wallet.
pub async fn wallet(api: &Api, u: &User) -> Value {
    let r = api.get("/api/wallet", Some(&u.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Polls the wallet until `f` holds (10 s), returning it.
pub async fn wait_wallet(api: &Api, u: &User, f: impl Fn(&Value) -> bool) -> Value {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let w = wallet(api, u).await;
        if f(&w) {
            return w;
        }
        assert!(std::time::Instant::now() < end, "wallet of {} never matched: {w}", u.username);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Buys `package` through the development checkout (Pay) and waits for the
/// webhook's coins. Returns the intent id.
pub async fn buy_coins(api: &Api, u: &User, package: &str) -> String {
    let before = wallet(api, u).await["coins"].as_i64().unwrap();
    let r = post_keyed(api, "/api/wallet/top-ups", &u.token, &key(), &json!({ "package": package })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let intent = r.json()["intent_id"].as_str().unwrap().to_owned();
    let coins = r.json()["coins"].as_i64().unwrap();
    let paid = request(api.addr, "POST", &format!("/pay/dev/{intent}/pay"), &[], b"").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    wait_wallet(api, u, |w| w["coins"].as_i64() == Some(before + coins)).await;
    intent
}

/// Makes `u` an admin.
pub async fn make_admin(server: &onair::server::Server, u: &User) {
    server.app.accounts.set_role(u.id, onair::accounts::Role::Admin).await.unwrap();
}

/// The admin's ledger check; panics unless ok.
pub async fn assert_ledger_ok(api: &Api, admin: &User) -> Value {
    let r = api.get("/api/admin/ledger/check", Some(&admin.token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["ok"], true, "ledger check: {v:#}");
    v
}
