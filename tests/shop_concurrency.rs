//! Live shopping under concurrency (issue 16), over real HTTP against a
//! real server and SQLite: a flash sale never oversells with a thousand
//! buyers at once (each its own connection), retries under the same
//! `Idempotency-Key` never make a second order, a voucher's use limit
//! holds with 200 buyers at once, and unpaid orders expire and give their
//! stock back.

mod common;

use std::collections::HashMap;

use common::api::{Api, Ws};
use common::money::{key, make_admin};
use common::shop::{advance_sale, buyers, live_stream, order, order_new, product, shelve, shipping};
use futures_util::future::join_all;
use serde_json::{json, Value};

async fn server() -> onair::server::Server {
    onair::raise_fd_limit();
    common::start_server_with(common::temp_dir("shop"), |a| a.write_rate = Some(1_000_000)).await
}

/// A live stream with a product of 500 units and a flash sale of 100 at 50
/// coins, one per buyer, open now (its countdown moved past). Returns
/// (stream, product, sale).
async fn open_sale(server: &onair::server::Server, api: &Api, host: &common::api::User) -> (i64, i64, i64) {
    let sid = live_stream(api, host, "Flash sale").await;
    let pid = product(api, host, "Linen scarf", 120, 500).await;
    let r = api.post(&format!("/api/streams/{sid}/products/{pid}/flash-sales"), Some(&host.token), json!({ "price": 50, "quantity": 100, "per_buyer_limit": 1, "countdown_s": 10, "duration_s": 120 })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sale = r.json();
    assert_eq!(sale["state"], "countdown");
    let sale_id = sale["id"].as_i64().unwrap();
    assert_eq!(api.get(&format!("/api/products/{pid}"), None).await.json()["stock"], 400, "the sale's 100 left the product's stock");
    advance_sale(server, sale_id, 10_000).await;
    (sid, pid, sale_id)
}

async fn sale_of(api: &Api, sid: i64, id: i64) -> Value {
    let list = api.get(&format!("/api/streams/{sid}/flash-sales"), None).await.json();
    list.as_array().unwrap().iter().find(|s| s["id"] == id).cloned().unwrap()
}

async fn count(server: &onair::server::Server, sql: &str, id: i64) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).bind(id).fetch_one(&server.app.pool).await.unwrap();
    n
}

/// 1,000 buyers at once for 100 items, one each: exactly 100 orders, 900
/// `sold_out`, nothing left, and one `sold_out` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_buyers_get_exactly_a_hundred_items() {
    let server = server().await;
    let api = Api::new(server.http_addr);
    let host = api.register("seller", "host").await;
    let admin = api.register("auditor", "viewer").await;
    make_admin(&server, &admin).await;
    let people = buyers(&server, "buyer", 1000, 1_000).await;
    let (sid, pid, sale) = open_sale(&server, &api, &host).await;
    let mut ws = Ws::connect(server.http_addr, None).await;
    ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    ws.next_of("subscribed", 5).await;

    // The buyers name the sale, as the watch page's banner does (a product
    // whose sale sold out may still sell at its own price from its stock).
    let body = json!({ "product": pid, "quantity": 1, "flash_sale": sale, "shipping": shipping() });
    let answers = join_all(people.iter().map(|b| {
        let body = body.clone();
        async move { order_new(&api, sid, b, &body).await }
    }))
    .await;
    let mut by_code: HashMap<String, usize> = HashMap::new();
    for r in &answers {
        let c = if r.status == 201 { "created".to_owned() } else { format!("{} {}", r.status, r.error_code()) };
        *by_code.entry(c).or_default() += 1;
    }
    assert_eq!(by_code.get("created"), Some(&100), "{by_code:?}");
    assert_eq!(by_code.get("409 sold_out"), Some(&900), "{by_code:?}");
    for r in answers.iter().filter(|r| r.status == 201) {
        let o = r.json();
        assert_eq!((o["status"].as_str(), o["unit_price"].as_i64(), o["flash_sale_id"].as_i64()), (Some("paid"), Some(50), Some(sale)), "{o}");
    }
    let s = sale_of(&api, sid, sale).await;
    assert_eq!((s["remaining"].as_i64(), s["state"].as_str()), (Some(0), Some("sold_out")), "{s}");
    assert!(s["sell_through_seconds"].as_f64().is_some());
    assert_eq!(count(&server, "SELECT COUNT(*) FROM orders WHERE flash_sale_id = $1", sale).await, 100, "100 orders stored, no more");
    assert_eq!(count(&server, "SELECT COUNT(*) FROM flash_sale_buyers WHERE sale_id = $1 AND units = 1", sale).await, 100, "one unit per buyer");
    assert_eq!(count(&server, "SELECT COALESCE(MAX(units), 0) FROM flash_sale_buyers WHERE sale_id = $1", sale).await, 1);
    // The admission gate agrees with the database: nothing free, the 100 buyers' units, nothing in flight.
    let g = server.app.shop.gates.view(sale).expect("the sale's gate");
    assert_eq!((g.free, g.buyers.len(), g.buyers.iter().map(|b| b.1).sum::<i64>(), g.in_flight), (0, 100, 100, 0), "{g:?}");
    assert_eq!(api.get(&format!("/api/products/{pid}"), None).await.json()["stock"], 400, "the product's own stock untouched");

    // Events: sold_out once, and the remaining quantity reached 0.
    ws.next_where(5, |v| v["type"] == "flash_sale_stock" && v["remaining"] == 0).await.expect("the last remaining count is pushed");
    ws.until_closed(1).await;
    let sold_outs = ws.seen.iter().filter(|v| v["type"] == "sold_out").count();
    assert_eq!(sold_outs, 1, "sold_out exactly once");
    let pushes = ws.seen.iter().filter(|v| v["type"] == "flash_sale_stock").count();
    assert!(pushes <= 40, "{pushes} stock pushes: coalesced to at most ten a second");

    // The money matches: every order paid 50 coins to the seller (70%) and the platform.
    let (paid,): (i64,) = sqlx::query_as("SELECT COALESCE(SUM(amount), 0) FROM ledger_transfers WHERE code = 'order' AND stream_id = $1").bind(sid).fetch_one(&server.app.pool).await.unwrap();
    assert_eq!(paid, 100 * 50);
    common::money::assert_ledger_ok(&api, &admin).await;
    server.stop().await;
}

/// The same with every buyer sending its order twice at once and once
/// more afterwards, all under one key: still exactly 100 orders, and every
/// buyer hears the same answer each time (a buyer with an order gets that
/// order back; once the sale is sold out for good, the others are told so
/// without a write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_under_the_same_key_never_make_a_second_order() {
    let server = server().await;
    let api = Api::new(server.http_addr);
    let host = api.register("seller", "host").await;
    let people = buyers(&server, "retry", 1000, 1_000).await;
    let (sid, pid, sale) = open_sale(&server, &api, &host).await;
    let body = json!({ "product": pid, "flash_sale": sale, "shipping": shipping() });
    let keys: Vec<String> = people.iter().map(|_| key()).collect();
    let first = join_all(people.iter().zip(&keys).flat_map(|(b, k)| {
        let body = body.clone();
        [0, 1].map(move |_| {
            let body = body.clone();
            async move { order(&api, sid, b, k, &body).await }
        })
    }))
    .await;
    let again = join_all(people.iter().zip(&keys).map(|(b, k)| {
        let body = body.clone();
        async move { order(&api, sid, b, k, &body).await }
    }))
    .await;
    let mut created = 0;
    for (i, r) in again.iter().enumerate() {
        let (a, b) = (&first[2 * i], &first[2 * i + 1]);
        assert_eq!((a.status, b.status), (r.status, r.status), "buyer {i}: {} / {} / {}", a.body, b.body, r.body);
        if r.status == 201 {
            assert_eq!(r.header("idempotent-replayed"), Some("true"), "the third is a replay of the order");
            created += 1;
            assert_eq!(a.json()["id"], r.json()["id"]);
            assert_eq!(b.json()["id"], r.json()["id"]);
        } else {
            assert_eq!((r.status, r.error_code()), (409, "sold_out".to_owned()), "{}", r.body);
        }
    }
    assert_eq!(created, 100);
    assert_eq!(count(&server, "SELECT COUNT(*) FROM orders WHERE flash_sale_id = $1", sale).await, 100);
    assert_eq!(count(&server, "SELECT COUNT(DISTINCT buyer_id) FROM orders WHERE flash_sale_id = $1", sale).await, 100, "no buyer has two");
    assert_eq!(sale_of(&api, sid, sale).await["remaining"], 0);
    server.stop().await;
}

/// A voucher with `max_uses: 10` and 200 buyers at once: exactly 10 orders
/// carry it, the rest are refused with `422 voucher_invalid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voucher_for_ten_is_used_ten_times_by_two_hundred_buyers() {
    let server = server().await;
    let api = Api::new(server.http_addr);
    let host = api.register("seller", "host").await;
    let people = buyers(&server, "saver", 200, 1_000).await;
    let sid = live_stream(&api, &host, "Vouchers").await;
    let pid = product(&api, &host, "Clay mug", 200, 1000).await;
    shelve(&api, &host, sid, pid).await;
    let r = api.post(&format!("/api/streams/{sid}/vouchers"), Some(&host.token), json!({ "code": "live10", "percent_off": 25, "max_uses": 10 })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["code"], "LIVE10");
    let body = json!({ "product": pid, "voucher": "LIVE10", "shipping": shipping() });
    let answers = join_all(people.iter().map(|b| {
        let body = body.clone();
        async move { order_new(&api, sid, b, &body).await }
    }))
    .await;
    let ok: Vec<Value> = answers.iter().filter(|r| r.status == 201).map(|r| r.json()).collect();
    let refused = answers.iter().filter(|r| r.status == 422 && r.error_code() == "voucher_invalid").count();
    assert_eq!((ok.len(), refused), (10, 190), "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    for o in &ok {
        assert_eq!((o["discount"].as_i64(), o["total"].as_i64(), o["voucher"].as_str()), (Some(50), Some(150), Some("LIVE10")), "{o}");
    }
    let v = api.get(&format!("/api/streams/{sid}/vouchers"), None).await.json();
    assert_eq!(v[0]["uses"], 10);
    assert_eq!(api.get(&format!("/api/products/{pid}"), None).await.json()["stock"], 990, "refused orders took no stock");
    server.stop().await;
}

/// Orders held for the payment provider expire unpaid: their stock (the
/// product's and a flash sale's), the buyer's units and the voucher use
/// come back; one paid through the provider's checkout in time stays paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_orders_expire_and_give_their_stock_back() {
    let server = server().await;
    let api = Api::new(server.http_addr);
    let host = api.register("seller", "host").await;
    let people = buyers(&server, "late", 6, 0).await;
    let sid = live_stream(&api, &host, "Holds").await;
    let pid = product(&api, &host, "Wool hat", 300, 10).await;
    shelve(&api, &host, sid, pid).await;
    let r = api.post(&format!("/api/streams/{sid}/vouchers"), Some(&host.token), json!({ "code": "HOLD", "amount_off": 100, "max_uses": 1 })).await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Three regular orders held for the provider (one with the voucher).
    let mut held = Vec::new();
    for (i, b) in people[..3].iter().enumerate() {
        let mut body = json!({ "product": pid, "quantity": 2, "pay_with": "provider", "shipping": shipping() });
        if i == 0 {
            body["voucher"] = json!("HOLD");
        }
        let r = order_new(&api, sid, b, &body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let o = r.json();
        assert_eq!(o["status"], "pending");
        assert!(o["payment"]["intent_id"].as_str().is_some_and(|i| i.starts_with("pi_")), "{o}");
        assert!(o["expires_at"].is_string());
        held.push(o);
    }
    assert_eq!(held[0]["total"], 500);
    assert_eq!(api.get(&format!("/api/products/{pid}"), None).await.json()["stock"], 4);
    let r = order_new(&api, sid, &people[3], &json!({ "product": pid, "quantity": 5, "shipping": shipping() })).await;
    assert_eq!((r.status, r.error_code()), (409, "insufficient_stock".into()), "held stock is not for sale: {}", r.body);

    // A flash sale of 2 sold out by two provider orders.
    let r = api.post(&format!("/api/streams/{sid}/products/{pid}/flash-sales"), Some(&host.token), json!({ "price": 100, "quantity": 2, "countdown_s": 10, "duration_s": 600 })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sale = r.json()["id"].as_i64().unwrap();
    let r = order_new(&api, sid, &people[4], &json!({ "product": pid, "pay_with": "provider", "shipping": shipping() })).await;
    assert_eq!((r.status, r.error_code()), (409, "sale_not_started".into()), "{}", r.body);
    advance_sale(&server, sale, 10_000).await;
    let mut sale_orders = Vec::new();
    for b in &people[4..6] {
        let r = order_new(&api, sid, b, &json!({ "product": pid, "pay_with": "provider", "shipping": shipping() })).await;
        assert_eq!(r.status, 201, "{}", r.body);
        sale_orders.push(r.json());
    }
    assert_eq!(sale_of(&api, sid, sale).await["state"], "sold_out");

    // One order is paid at the provider's checkout in time: its webhook pays it.
    let intent = held[1]["payment"]["intent_id"].as_str().unwrap().to_owned();
    let paid = common::http::request(server.http_addr, "POST", &format!("/pay/dev/{intent}/pay"), &[], b"").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    let oid = held[1]["id"].as_i64().unwrap();
    let who = &people[1];
    let mut status = String::new();
    for _ in 0..100 {
        status = api.get(&format!("/api/orders/{oid}"), Some(&who.token)).await.json()["status"].as_str().unwrap_or_default().to_owned();
        if status == "paid" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "paid", "the provider's webhook paid the order");

    // Ten minutes later (the sweeper is given the time), the others expire.
    let later = onair::clock::now_ms() + onair::shop::orders::HOLD_MS + 1_000;
    let swept = server.app.shop.sweep_once(later).await.unwrap();
    assert_eq!(swept.expired.len(), 4, "{swept:?}");
    for o in held.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, o)| o).chain(&sale_orders) {
        let id = o["id"].as_i64().unwrap();
        assert_eq!(count(&server, "SELECT COUNT(*) FROM orders WHERE id = $1 AND status = 'expired'", id).await, 1, "order {id} expired");
    }
    // 2 left + the two expired regular orders' 4 units + the sold-out
    // sale's 2 (a sold-out sale takes none back: they go to the product).
    assert_eq!(api.get(&format!("/api/products/{pid}"), None).await.json()["stock"], 8);
    assert_eq!(count(&server, "SELECT COALESCE(SUM(units), 0) FROM flash_sale_buyers WHERE sale_id = $1", sale).await, 0, "buyers' units returned");
    let v = api.get(&format!("/api/streams/{sid}/vouchers"), None).await.json();
    assert_eq!(v[0]["uses"], 0, "the voucher use came back");
    assert_eq!(server.app.shop.sweep_once(later).await.unwrap().expired.len(), 0, "expired once");
    let r = order_new(&api, sid, &people[3], &json!({ "product": pid, "voucher": "hold", "pay_with": "provider", "shipping": shipping() })).await;
    assert_eq!((r.status, r.json()["total"].as_i64()), (201, Some(200)), "the voucher works again: {}", r.body);
    server.stop().await;
}
