//! Live shopping's API over real HTTP and WebSocket (issue 16): the
//! catalogue, a stream's shelf, pins and live prices with their events,
//! every order refusal and its code, interactions (deduplicated, load
//! tests left out), the figures, and the seller's and buyer's orders.

mod common;

use common::api::{Api, Ws};
use common::http::{request, Response};
use common::money::{key, make_admin, post_keyed, wallet};
use common::shop::{advance_sale, buyers, live_stream, order, order_new, product, shelve, shipping};
use serde_json::json;

fn code(r: &Response) -> (u16, String) {
    (r.status, if r.status >= 400 { r.error_code() } else { String::new() })
}

/// A 64x64 PNG header (enough for the image checks).
fn png() -> Vec<u8> {
    let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
    b.extend_from_slice(&64u32.to_be_bytes());
    b.extend_from_slice(&64u32.to_be_bytes());
    b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_shelf_and_events() {
    let server = common::start_server_with(common::temp_dir("shop-api"), |a| a.write_rate = Some(1_000_000)).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bo = api.register("bob", "host").await;
    let vic = api.register("vic", "viewer").await;

    // Catalogue: hosts only, checked input, the stock shown.
    assert_eq!(code(&api.post("/api/products", Some(&vic.token), json!({ "title": "x", "price": 1, "stock": 1 })).await), (403, "forbidden".into()));
    let r = api.post("/api/products", Some(&ana.token), json!({ "title": "", "price": -1, "stock": 1 })).await;
    assert_eq!(code(&r), (400, "validation".into()));
    assert!(r.json()["error"]["fields"]["title"].is_string());
    assert_eq!(code(&api.post("/api/products", Some(&ana.token), json!({ "title": "Mug", "price": 10, "stock": 1, "currency": "eur" })).await).0, 400, "one currency");
    let r = api.post("/api/products", Some(&ana.token), json!({ "title": "Clay mug", "price": 250, "stock": 20, "sku": "MUG-1" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mug = r.json()["id"].as_i64().unwrap();
    assert_eq!((r.json()["currency"].as_str(), r.json()["seller"].as_str()), (Some("usd"), Some("ana")));
    assert_eq!(code(&api.post("/api/products", Some(&ana.token), json!({ "title": "Other", "price": 1, "stock": 1, "sku": "MUG-1" })).await), (409, "sku_taken".into()));
    let scarf = product(&api, &ana, "Linen scarf", 900, 5).await;
    let theirs = product(&api, &bo, "Bo's lamp", 100, 5).await;
    assert_eq!(code(&api.patch(&format!("/api/products/{mug}"), Some(&bo.token), json!({ "price": 1 })).await), (403, "forbidden".into()));
    let listed = api.get("/api/products?seller=ana", None).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(api.get("/api/products", Some(&bo.token)).await.json().as_array().unwrap().len(), 1, "your own");

    // A picture, stored and served like a thumbnail.
    let auth = format!("Bearer {}", ana.token);
    let r = request(server.http_addr, "POST", &format!("/api/products/{mug}/images"), &[("Authorization", &auth), ("Content-Type", "image/png")], &png()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.json()["images"][0].as_str().unwrap().to_owned();
    assert!(url.starts_with("/images/"));
    assert_eq!(request(server.http_addr, "GET", &url, &[], b"").await.status, 200);

    // The shelf, with its events.
    let sid = live_stream(&api, &ana, "Pottery live").await;
    let mut ws = Ws::connect(server.http_addr, None).await;
    ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    ws.next_of("subscribed", 5).await;
    assert_eq!(code(&api.post(&format!("/api/streams/{sid}/products"), Some(&vic.token), json!({ "product": mug })).await), (403, "forbidden".into()));
    assert_eq!(code(&api.post(&format!("/api/streams/{sid}/products"), Some(&ana.token), json!({ "product": theirs })).await).0, 400, "only the host's own products");
    let r = api.post(&format!("/api/streams/{sid}/products"), Some(&ana.token), json!({ "product": mug })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let ev = ws.next_of("product_added", 5).await;
    assert_eq!((ev["item"]["product"]["id"].as_i64(), ev["item"]["price"].as_i64()), (Some(mug), Some(250)));
    shelve(&api, &ana, sid, scarf).await;
    let r = api.post(&format!("/api/streams/{sid}/products"), Some(&ana.token), json!({ "product": mug, "live_price": 199 })).await;
    assert_eq!((r.status, r.json()["price"].as_i64()), (200, Some(199)), "{}", r.body);
    let ev = ws.next_of("price_changed", 5).await;
    assert_eq!((ev["product_id"].as_i64(), ev["price"].as_i64(), ev["list_price"].as_i64()), (Some(mug), Some(199), Some(250)));
    let r = api.patch(&format!("/api/streams/{sid}/products/{scarf}"), Some(&ana.token), json!({ "live_price": 700 })).await;
    assert_eq!(r.json()["price"], 700, "{}", r.body);
    ws.next_where(5, |v| v["type"] == "price_changed" && v["product_id"] == scarf).await.expect("live price event");
    // A catalogue price change reaches streams showing the product at it.
    let r = api.patch(&format!("/api/streams/{sid}/products/{scarf}"), Some(&ana.token), json!({ "live_price": null })).await;
    assert_eq!(r.json()["price"], 900);
    api.patch(&format!("/api/products/{scarf}"), Some(&ana.token), json!({ "price": 950 })).await;
    ws.next_where(5, |v| v["type"] == "price_changed" && v["product_id"] == scarf && v["price"] == 950).await.expect("catalogue price event");

    // One pinned at a time; pinning highlights it in chat.
    let r = api.post(&format!("/api/streams/{sid}/products/{mug}/pin"), Some(&ana.token), json!({})).await;
    assert_eq!((r.status, r.json()["pinned"].as_bool()), (200, Some(true)), "{}", r.body);
    let ev = ws.next_of("product_pinned", 5).await;
    assert_eq!(ev["item"]["product"]["id"], mug);
    let hl = ws.next_where(5, |v| v["type"] == "chat_message" && v["message"]["kind"] == "product_highlight").await.expect("a product highlight in chat");
    assert_eq!((hl["message"]["product"]["product_id"].as_i64(), hl["message"]["product"]["price"].as_i64()), (Some(mug), Some(199)));
    api.post(&format!("/api/streams/{sid}/products/{scarf}/pin"), Some(&ana.token), json!({})).await;
    let shelf = api.get(&format!("/api/streams/{sid}/products"), None).await.json();
    let pinned: Vec<i64> = shelf.as_array().unwrap().iter().filter(|i| i["pinned"] == true).map(|i| i["product"]["id"].as_i64().unwrap()).collect();
    assert_eq!(pinned, vec![scarf], "pinned first, one at a time");
    assert_eq!(shelf[0]["product"]["id"], scarf);
    assert_eq!(code(&request(server.http_addr, "DELETE", &format!("/api/streams/{sid}/products/{mug}/pin"), &[("Authorization", &auth)], b"").await), (404, "not_pinned".into()));
    assert_eq!(request(server.http_addr, "DELETE", &format!("/api/streams/{sid}/products/{scarf}/pin"), &[("Authorization", &auth)], b"").await.status, 204);
    let ev = ws.next_where(5, |v| v["type"] == "product_pinned" && v["item"].is_null()).await;
    assert!(ev.is_some(), "unpinned");

    // Vouchers are announced.
    let r = api.post(&format!("/api/streams/{sid}/vouchers"), Some(&ana.token), json!({ "code": "MUG5", "amount_off": 5, "max_uses": 3 })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(ws.next_of("voucher", 5).await["voucher"]["code"], "MUG5");
    assert_eq!(code(&api.post(&format!("/api/streams/{sid}/vouchers"), Some(&ana.token), json!({ "code": "mug5", "percent_off": 5 })).await), (409, "voucher_exists".into()));
    assert_eq!(code(&api.post(&format!("/api/streams/{sid}/vouchers"), Some(&ana.token), json!({ "code": "X1X", "percent_off": 5, "amount_off": 3 })).await).0, 400);

    // Deleting a product takes it off the shelf.
    assert_eq!(request(server.http_addr, "DELETE", &format!("/api/products/{scarf}"), &[("Authorization", &auth)], b"").await.status, 204);
    assert_eq!(ws.next_of("product_removed", 5).await["product_id"], scarf);
    assert_eq!(code(&api.get(&format!("/api/products/{scarf}"), None).await), (404, "product_not_found".into()));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_refusals_figures_and_the_sellers_tools() {
    let server = common::start_server_with(common::temp_dir("shop-orders"), |a| a.write_rate = Some(1_000_000)).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let admin = api.register("root", "viewer").await;
    make_admin(&server, &admin).await;
    let people = buyers(&server, "shopper", 4, 2_000).await;
    let poor = buyers(&server, "poor", 1, 10).await.remove(0);
    let (b0, b1, b2, b3) = (&people[0], &people[1], &people[2], &people[3]);
    let mug = product(&api, &ana, "Clay mug", 250, 3).await;
    let bowl = product(&api, &ana, "Bowl", 400, 10).await;

    // Not live: no orders yet.
    let later = api.create_stream(&ana, json!({ "title": "Later" })).await["id"].as_i64().unwrap();
    shelve(&api, &ana, later, mug).await;
    assert_eq!(code(&order_new(&api, later, b0, &json!({ "product": mug, "shipping": shipping() })).await), (409, "stream_not_live".into()));
    api.delete(&format!("/api/streams/{later}"), Some(&ana.token)).await;

    let sid = live_stream(&api, &ana, "Pottery live").await;
    shelve(&api, &ana, sid, mug).await;
    let body = json!({ "product": mug, "shipping": shipping() });
    assert_eq!(code(&order_new(&api, sid, &ana, &body).await).0, 403, "not one's own");
    assert_eq!(code(&order_new(&api, sid, b0, &json!({ "product": bowl, "shipping": shipping() })).await), (404, "product_not_on_shelf".into()));
    assert_eq!(code(&order_new(&api, sid, b0, &json!({ "product": mug, "shipping": { "name": "", "address": "x", "city": "y", "country": "Portugal" } })).await).0, 422);
    assert_eq!(code(&order_new(&api, sid, b0, &json!({ "product": mug, "voucher": "NOPE", "shipping": shipping() })).await), (422, "voucher_invalid".into()));
    assert_eq!(code(&api.post(&format!("/api/streams/{sid}/orders"), Some(&b0.token), body.clone()).await), (400, "idempotency_key_required".into()));
    // Short of coins: refused whole, no stock taken.
    assert_eq!(code(&order_new(&api, sid, &poor, &body).await), (402, "insufficient_funds".into()));
    assert_eq!(api.get(&format!("/api/products/{mug}"), None).await.json()["stock"], 3);

    // Bought with coins in one request; a retry replays it; another body under the key conflicts.
    let k = key();
    let r = order(&api, sid, b0, &k, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let first = r.json();
    assert_eq!((first["status"].as_str(), first["total"].as_i64(), first["pay_with"].as_str()), (Some("paid"), Some(250), Some("coins")));
    assert_eq!(wallet(&api, b0).await["promo_coins"], 2_000 - 250);
    let again = order(&api, sid, b0, &k, &body).await;
    assert_eq!((again.status, again.json()["id"].clone()), (201, first["id"].clone()));
    assert_eq!(code(&order(&api, sid, b0, &k, &json!({ "product": mug, "quantity": 2, "shipping": shipping() })).await), (409, "idempotency_conflict".into()));
    let r = order_new(&api, sid, b1, &json!({ "product": mug, "quantity": 2, "shipping": shipping() })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(code(&order_new(&api, sid, b2, &body).await), (409, "sold_out".into()));

    // A flash sale: not started, limit per buyer, ended.
    shelve(&api, &ana, sid, bowl).await;
    let r = api.post(&format!("/api/streams/{sid}/products/{bowl}/flash-sales"), Some(&ana.token), json!({ "price": 100, "quantity": 5, "per_buyer_limit": 1, "countdown_s": 5, "duration_s": 60 })).await;
    assert_eq!(code(&r).0, 400, "countdown 10-300 s");
    let r = api.post(&format!("/api/streams/{sid}/products/{bowl}/flash-sales"), Some(&ana.token), json!({ "price": 100, "quantity": 50, "countdown_s": 10, "duration_s": 60 })).await;
    assert_eq!(code(&r), (409, "insufficient_stock".into()));
    let r = api.post(&format!("/api/streams/{sid}/products/{bowl}/flash-sales"), Some(&ana.token), json!({ "price": 100, "quantity": 5, "per_buyer_limit": 1, "countdown_s": 10, "duration_s": 60 })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sale = r.json();
    let sale_id = sale["id"].as_i64().unwrap();
    let starts = onair::clock::parse_rfc3339(sale["starts_at"].as_str().unwrap()).unwrap();
    let server_time = onair::clock::parse_rfc3339(sale["server_time"].as_str().unwrap()).unwrap();
    assert!((9_000..=10_000).contains(&(starts - server_time)), "the server's start time, 10 s after it was made: {sale}");
    assert_eq!(code(&api.post(&format!("/api/streams/{sid}/products/{bowl}/flash-sales"), Some(&ana.token), json!({ "price": 1, "quantity": 1, "countdown_s": 10, "duration_s": 60 })).await), (409, "sale_running".into()));
    let bowl_body = json!({ "product": bowl, "shipping": shipping() });
    assert_eq!(code(&order_new(&api, sid, b2, &bowl_body).await), (409, "sale_not_started".into()));
    advance_sale(&server, sale_id, 10_000).await;
    assert_eq!(code(&order_new(&api, sid, b2, &json!({ "product": bowl, "quantity": 2, "shipping": shipping() })).await), (409, "limit_reached".into()));
    let r = order_new(&api, sid, b2, &bowl_body).await;
    assert_eq!((r.status, r.json()["unit_price"].as_i64()), (201, Some(100)), "{}", r.body);
    assert_eq!(code(&order_new(&api, sid, b2, &bowl_body).await), (409, "limit_reached".into()), "one per buyer");
    advance_sale(&server, sale_id, 60_000).await;
    let named = json!({ "product": bowl, "flash_sale": sale_id, "shipping": shipping() });
    assert_eq!(code(&order_new(&api, sid, b3, &named).await), (409, "sale_ended".into()));
    // After the sale, the product sells at its price, the unsold 4 back in stock once settled.
    server.app.shop.sweep_once(onair::clock::now_ms()).await.unwrap();
    assert_eq!(api.get(&format!("/api/products/{bowl}"), None).await.json()["stock"], 9);
    let r = order_new(&api, sid, b3, &bowl_body).await;
    assert_eq!((r.status, r.json()["unit_price"].as_i64()), (201, Some(400)), "{}", r.body);

    // Interactions: one per viewer, kind and minute; load tests not at all.
    let path = format!("/api/streams/{sid}/products/{mug}/interactions");
    for (who, counted) in [(b0, true), (b0, false), (b1, true)] {
        let r = api.post(&path, Some(&who.token), json!({ "kind": "view" })).await;
        assert_eq!(r.json()["counted"], counted, "{}", r.body);
    }
    assert_eq!(api.post(&path, Some(&b0.token), json!({ "kind": "click" })).await.json()["counted"], true);
    let lt = request(server.http_addr, "POST", &path, &[("Content-Type", "application/json"), ("User-Agent", "onair-bench/0.1 (load test)")], br#"{"kind":"cart"}"#).await;
    assert_eq!(lt.json()["counted"], false, "{}", lt.body);
    let anon = request(server.http_addr, "POST", &path, &[("Content-Type", "application/json"), ("X-OnAir-Viewer", "v_abcdefgh12")], br#"{"kind":"view"}"#).await;
    assert_eq!(anon.json()["counted"], true, "{}", anon.body);
    assert_eq!(code(&api.post(&path, Some(&b0.token), json!({ "kind": "like" })).await).0, 400);

    // The figures.
    assert_eq!(code(&api.get(&format!("/api/streams/{sid}/shop/analytics"), Some(&b0.token)).await).0, 403);
    let a = api.get(&format!("/api/streams/{sid}/shop/analytics"), Some(&ana.token)).await.json();
    assert_eq!((a["orders"].as_i64(), a["units"].as_i64(), a["revenue"].as_i64()), (Some(4), Some(5), Some(250 + 500 + 100 + 400)), "{a}");
    let m = a["products"].as_array().unwrap().iter().find(|p| p["product_id"] == mug).unwrap().clone();
    assert_eq!((m["views"].as_i64(), m["clicks"].as_i64(), m["cart_adds"].as_i64(), m["orders"].as_i64(), m["units"].as_i64()), (Some(3), Some(1), Some(0), Some(2), Some(3)), "{m}");
    assert!((m["conversion"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9, "two of the three viewers bought: {m}");
    assert_eq!(a["flash_sales"][0]["state"], "ended");
    let report = api.get(&format!("/api/streams/{sid}/analytics"), Some(&ana.token)).await.json();
    assert_eq!((report["summary"]["orders"].as_i64(), report["summary"]["revenue"].as_i64()), (Some(4), Some(1250)), "the summary gains orders and revenue");
    let top = api.get("/api/shop/top?period=day", None).await.json();
    assert_eq!(top["sessions"][0]["stream_id"], sid);
    assert_eq!(top["products"][0]["product_id"], mug, "{top}");
    assert_eq!(code(&api.get("/api/shop/top?period=year", None).await).0, 400);

    // The seller's orders: ship, refund (with the stock back); the buyer's history.
    let mine = api.get("/api/shop/orders?status=paid", Some(&ana.token)).await.json();
    assert_eq!(mine.as_array().unwrap().len(), 4);
    let oid = first["id"].as_i64().unwrap();
    assert_eq!(code(&api.post(&format!("/api/shop/orders/{oid}/ship"), Some(&b0.token), json!({})).await), (404, "order_not_found".into()));
    let r = api.post(&format!("/api/shop/orders/{oid}/ship"), Some(&ana.token), json!({ "tracking": "PT123" })).await;
    assert_eq!((r.json()["status"].as_str(), r.json()["tracking"].as_str()), (Some("shipped"), Some("PT123")), "{}", r.body);
    let r = post_keyed(&api, &format!("/api/shop/orders/{oid}/refund"), &ana.token, &key(), &json!({ "restock": true })).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("refunded")), "{}", r.body);
    assert_eq!(wallet(&api, b0).await["promo_coins"], 2_000, "the coins back where they came from");
    assert_eq!(api.get(&format!("/api/products/{mug}"), None).await.json()["stock"], 1, "restocked");
    assert_eq!(code(&post_keyed(&api, &format!("/api/shop/orders/{oid}/refund"), &ana.token, &key(), &json!({})).await), (409, "order_not_paid".into()));
    let history = api.get("/api/me/orders", Some(&b0.token)).await.json();
    assert_eq!((history.as_array().unwrap().len(), history[0]["status"].as_str()), (1, Some("refunded")));
    assert_eq!(history[0]["shipping"]["country"], "PT");
    assert_eq!(code(&api.get(&format!("/api/orders/{oid}"), Some(&b1.token)).await), (404, "order_not_found".into()), "not another buyer's");
    let a = api.get(&format!("/api/streams/{sid}/shop/analytics"), Some(&ana.token)).await.json();
    assert_eq!((a["orders"].as_i64(), a["revenue"].as_i64()), (Some(3), Some(1000)), "a refunded order no longer counts");
    common::money::assert_ledger_ok(&api, &admin).await;
    server.stop().await;
}
