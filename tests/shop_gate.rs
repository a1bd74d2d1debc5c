//! The flash sale's admission gate (issue 16's latency work), over real
//! HTTP against a real server and SQLite: orders beyond the units are
//! refused at once without a write, yet a key that made an order gets
//! that order back; units an order did not take (a `402`, an expired hold)
//! come back to the gate and a later buyer gets them; a restart on the
//! same data directory rebuilds the gate exactly.

mod common;

use common::api::{Api, User};
use common::money::key;
use common::shop::{advance_sale, buyers, live_stream, order, order_new, product, shipping};
use onair::shop::admission::GateView;
use serde_json::{json, Value};

async fn server_in(dir: std::path::PathBuf) -> onair::server::Server {
    onair::raise_fd_limit();
    common::start_server_with(dir, |a| a.write_rate = Some(1_000_000)).await
}

/// A live stream, a product of 50 units and a sale of `quantity` at 50
/// coins, `limit` per buyer, open for an hour (its countdown moved past).
/// Returns (stream, product, sale).
async fn open_sale(server: &onair::server::Server, api: &Api, host: &User, quantity: i64, limit: i64) -> (i64, i64, i64) {
    let sid = live_stream(api, host, "Gate").await;
    let pid = product(api, host, "Silk tie", 120, 50).await;
    let r = api
        .post(&format!("/api/streams/{sid}/products/{pid}/flash-sales"), Some(&host.token), json!({ "price": 50, "quantity": quantity, "per_buyer_limit": limit, "countdown_s": 10, "duration_s": 3600 }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sale = r.json()["id"].as_i64().unwrap();
    advance_sale(server, sale, 10_000).await;
    (sid, pid, sale)
}

fn body(pid: i64, sale: i64) -> Value {
    json!({ "product": pid, "flash_sale": sale, "shipping": shipping() })
}

async fn count(server: &onair::server::Server, sql: &str, id: i64) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).bind(id).fetch_one(&server.app.pool).await.unwrap();
    n
}

fn gate(server: &onair::server::Server, sale: i64) -> GateView {
    server.app.shop.gates.view(sale).expect("the sale has a gate")
}

fn answer(r: &common::http::Response) -> String {
    if r.status == 201 {
        "created".into()
    } else {
        format!("{} {}", r.status, r.error_code())
    }
}

/// A `402` gives its reserved unit back; past the units, buyers hear
/// `sold_out` with nothing written (not even their key), while a buyer's
/// retry under the key of their order gets that order, replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_write_nothing_and_an_order_s_key_still_gets_its_order() {
    let server = server_in(common::temp_dir("shop-gate")).await;
    let api = Api::new(server.http_addr);
    let host = api.register("seller", "host").await;
    let people = buyers(&server, "gate", 5, 1_000).await;
    let poor = buyers(&server, "poor", 1, 0).await.remove(0);
    let (sid, pid, sale) = open_sale(&server, &api, &host, 3, 1).await;
    assert_eq!(gate(&server, sale), GateView { free: 3, buyers: vec![], in_flight: 0 });

    let r = order_new(&api, sid, &poor, &body(pid, sale)).await;
    assert_eq!(answer(&r), "402 insufficient_funds", "{}", r.body);
    assert_eq!(gate(&server, sale), GateView { free: 3, buyers: vec![], in_flight: 0 }, "the refused order's unit is back");

    let keys: Vec<String> = people.iter().map(|_| key()).collect();
    let mut orders = Vec::new();
    for (b, k) in people[..3].iter().zip(&keys) {
        let r = order(&api, sid, b, k, &body(pid, sale)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        orders.push(r.json()["id"].as_i64().unwrap());
    }
    let mut expected: Vec<(i64, i64)> = people[..3].iter().map(|b| (b.id, 1)).collect();
    expected.sort_unstable();
    assert_eq!(gate(&server, sale), GateView { free: 0, buyers: expected, in_flight: 0 });

    // Sold out: refused at once, and nothing stored under the key.
    let keys_before = count(&server, "SELECT COUNT(*) FROM idempotency_keys WHERE user_id = $1", people[3].id).await;
    let r = order(&api, sid, &people[3], &keys[3], &body(pid, sale)).await;
    assert_eq!(answer(&r), "409 sold_out", "{}", r.body);
    assert_eq!(count(&server, "SELECT COUNT(*) FROM idempotency_keys WHERE user_id = $1", people[3].id).await, keys_before, "a refusal by the gate writes nothing");
    // A buyer's retry under their order's key: that order, replayed.
    let r = order(&api, sid, &people[0], &keys[0], &body(pid, sale)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    assert_eq!(r.json()["id"], orders[0]);
    // The same key for another request is still a conflict, not `sold_out`.
    let r = order(&api, sid, &people[1], &keys[1], &json!({ "product": pid, "flash_sale": sale, "quantity": 1, "shipping": shipping() })).await;
    assert_eq!(answer(&r), "409 idempotency_conflict", "{}", r.body);
    // A new key of a buyer who has their unit: sold out first, as the database says.
    assert_eq!(answer(&order_new(&api, sid, &people[0], &body(pid, sale)).await), "409 sold_out");
    assert_eq!(count(&server, "SELECT COUNT(*) FROM orders WHERE flash_sale_id = $1", sale).await, 3);
    assert_eq!(count(&server, "SELECT remaining FROM flash_sales WHERE id = $1", sale).await, 0);
    server.stop().await;
}

/// A hold that expires gives its unit and the buyer's count back to the
/// gate: the buyer may buy again and two later buyers get both units.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_orders_give_their_units_back_to_the_gate() {
    let server = server_in(common::temp_dir("shop-gate")).await;
    let api = Api::new(server.http_addr);
    let host = api.register("seller", "host").await;
    let people = buyers(&server, "hold", 4, 1_000).await;
    let (sid, pid, sale) = open_sale(&server, &api, &host, 2, 1).await;
    let held = json!({ "product": pid, "flash_sale": sale, "pay_with": "provider", "shipping": shipping() });
    let r = order_new(&api, sid, &people[0], &held).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (201, Some("pending")), "{}", r.body);
    assert_eq!(gate(&server, sale), GateView { free: 1, buyers: vec![(people[0].id, 1)], in_flight: 0 });
    assert_eq!(answer(&order_new(&api, sid, &people[0], &body(pid, sale)).await), "409 limit_reached", "the buyer's unit is held");

    // Ten minutes later the hold expires (the sweeper is given the time).
    let later = onair::clock::now_ms() + onair::shop::orders::HOLD_MS + 1_000;
    let swept = server.app.shop.sweep_once(later).await.unwrap();
    assert_eq!(swept.expired.len(), 1, "{swept:?}");
    assert_eq!(gate(&server, sale), GateView { free: 2, buyers: vec![], in_flight: 0 }, "the unit and the buyer's count came back");

    for b in &people[1..3] {
        let r = order_new(&api, sid, b, &body(pid, sale)).await;
        assert_eq!(r.status, 201, "both units sell again: {}", r.body);
    }
    assert_eq!(answer(&order_new(&api, sid, &people[3], &body(pid, sale)).await), "409 sold_out");
    assert_eq!(answer(&order_new(&api, sid, &people[0], &body(pid, sale)).await), "409 sold_out");
    assert_eq!(count(&server, "SELECT COUNT(*) FROM orders WHERE flash_sale_id = $1 AND status = 'paid'", sale).await, 2);
    assert_eq!(count(&server, "SELECT remaining FROM flash_sales WHERE id = $1", sale).await, 0);
    server.stop().await;
}

/// A new server on the same data directory rebuilds the gate from what
/// was committed: the same free units and buyers' counts, and the same
/// answers after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_rebuilds_the_gate_exactly() {
    let dir = common::temp_dir("shop-gate-restart");
    let server = server_in(dir.clone()).await;
    let api = Api::new(server.http_addr);
    let host = api.register("seller", "host").await;
    let people = buyers(&server, "again", 4, 1_000).await;
    let (sid, pid, sale) = open_sale(&server, &api, &host, 5, 2).await;
    let two = json!({ "product": pid, "flash_sale": sale, "quantity": 2, "shipping": shipping() });
    assert_eq!(order_new(&api, sid, &people[0], &two).await.status, 201);
    let held_key = key();
    let held = json!({ "product": pid, "flash_sale": sale, "pay_with": "provider", "shipping": shipping() });
    let r = order(&api, sid, &people[1], &held_key, &held).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let held_id = r.json()["id"].as_i64().unwrap();
    let before = gate(&server, sale);
    let mut expected = vec![(people[0].id, 2), (people[1].id, 1)];
    expected.sort_unstable();
    assert_eq!(before, GateView { free: 2, buyers: expected, in_flight: 0 });
    server.stop().await;

    let server = server_in(dir).await;
    let api = Api::new(server.http_addr);
    assert_eq!(gate(&server, sale), before, "rebuilt from the database");
    assert_eq!(answer(&order_new(&api, sid, &people[0], &body(pid, sale)).await), "409 limit_reached");
    let r = order(&api, sid, &people[1], &held_key, &held).await;
    assert_eq!((r.status, r.json()["id"].as_i64()), (201, Some(held_id)), "the held order's key replays it: {}", r.body);
    assert_eq!(order_new(&api, sid, &people[2], &two).await.status, 201);
    assert_eq!(answer(&order_new(&api, sid, &people[3], &body(pid, sale)).await), "409 sold_out");
    assert_eq!(gate(&server, sale).free, 0);
    assert_eq!(count(&server, "SELECT COALESCE(SUM(quantity), 0) FROM orders WHERE flash_sale_id = $1", sale).await, 5);
    server.stop().await;
}
