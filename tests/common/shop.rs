//! Shop helpers: a host with a live stream and a product, buyers made
//! straight through the accounts service (no password hashing: making a
//! thousand must be quick) and given coins by a real promo grant.

use serde_json::{json, Value};

use super::api::{Api, User};
use super::http::Response;
use super::money::key;

/// A buyer's shipping address.
pub fn shipping() -> Value {
    json!({ "name": "Ana Buyer", "address": "1 Market Street", "city": "Lisbon", "postal_code": "1100-001", "country": "pt" })
}

/// `n` logged-in viewers named `{prefix}_{i}`, each with `coins` promo coins.
pub async fn buyers(server: &onair::server::Server, prefix: &str, n: usize, coins: i64) -> Vec<User> {
    let app = &server.app;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let u = app.accounts.create_unchecked(&format!("{prefix}_{i}"), onair::accounts::Role::Viewer).await.unwrap();
        if coins > 0 {
            let keyed = onair::money::idempotency::Keyed::new(u.id, &format!("test-coins-{prefix}-{i}"), "POST", "/api/admin/promo", &json!({})).unwrap();
            app.money.grant_promo(u.id, coins, Some("test".into()), keyed).await.unwrap();
        }
        let pair = app.accounts.start_session(u, "test", None).await.unwrap();
        out.push(User { id: pair.user.id, username: pair.user.username.clone(), token: pair.access_token, refresh: pair.refresh_token });
    }
    out
}

/// A stream of `host`, live (started by API).
pub async fn live_stream(api: &Api, host: &User, title: &str) -> i64 {
    let sid = api.create_stream(host, json!({ "title": title })).await["id"].as_i64().unwrap();
    let r = api.post(&format!("/api/streams/{sid}/start"), Some(&host.token), json!({})).await;
    assert_eq!(r.status, 200, "start: {}", r.body);
    sid
}

/// A product of `host`; panics unless 201.
pub async fn product(api: &Api, host: &User, title: &str, price: i64, stock: i64) -> i64 {
    let r = api.post("/api/products", Some(&host.token), json!({ "title": title, "price": price, "stock": stock, "description": "Made by hand" })).await;
    assert_eq!(r.status, 201, "product: {}", r.body);
    r.json()["id"].as_i64().unwrap()
}

/// Puts a product on the stream's shelf; panics unless 201.
pub async fn shelve(api: &Api, host: &User, sid: i64, product: i64) {
    let r = api.post(&format!("/api/streams/{sid}/products"), Some(&host.token), json!({ "product": product })).await;
    assert_eq!(r.status, 201, "shelf: {}", r.body);
}

/// Places an order under `key`. A transport failure (a connection reset
/// when a thousand arrive at once) is retried with the same key, as a real
/// client does: the server answers it once.
pub async fn order(api: &Api, sid: i64, who: &User, key: &str, body: &Value) -> Response {
    let (path, auth, bytes) = (format!("/api/streams/{sid}/orders"), format!("Bearer {}", who.token), body.to_string());
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json"), ("Idempotency-Key", key)];
    let mut last = None;
    for attempt in 0..5u64 {
        match super::http::try_request(api.addr, "POST", &path, &headers, bytes.as_bytes()).await {
            Ok(r) => return r,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50 * (attempt + 1))).await;
    }
    panic!("order by {}: no answer after five tries: {last:?}", who.username);
}

/// Places an order under a fresh key.
pub async fn order_new(api: &Api, sid: i64, who: &User, body: &Value) -> Response {
    order(api, sid, who, &key(), body).await
}

/// Moves a flash sale's clock on by `ms` (its countdown, start and end
/// come that much sooner), instead of sleeping through a countdown.
pub async fn advance_sale(server: &onair::server::Server, sale: i64, ms: i64) {
    sqlx::query("UPDATE flash_sales SET countdown_at = countdown_at - $1, starts_at = starts_at - $1, ends_at = ends_at - $1 WHERE id = $2").bind(ms).bind(sale).execute(&server.app.pool).await.unwrap();
    // The sale's admission gate keeps its times in memory: it follows.
    server.app.shop.sale_times_changed(sale).await.unwrap();
}
