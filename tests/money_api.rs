//! The money API over real HTTP: buying coins through the development
//! checkout (its webhook really posted back to the server and verified),
//! tips and gifts with their events and the creators' split, tickets held
//! until a stream starts and refunded when it is cancelled, subscriptions
//! and their badge, payouts, refunds that claw coins back, and the ledger's
//! invariant check after it all.

mod common;

use common::api::{Api, Ws};
use common::http::request;
use common::money::{assert_ledger_ok, buy_coins, key, make_admin, post_keyed, wait_wallet, wallet};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buying_coins_through_the_development_checkout() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let vic = api.register("vic", "viewer").await;
    let w = wallet(&api, &vic).await;
    assert_eq!(w, json!({ "user_id": vic.id, "coins": 0, "promo_coins": 0, "held": 0, "earnings": 0, "earnings_pending": 0, "payouts_pending": 0, "owed": 0, "currency_balances": {} }));
    let packages = api.get("/api/wallet/packages", None).await.json();
    assert_eq!(packages[1], json!({ "id": "coins_500", "coins": 500, "amount": 479, "currency": "usd" }));

    // Refusals: no key, bad input (422 per field), anonymous.
    let r = api.post("/api/wallet/top-ups", Some(&vic.token), json!({ "package": "coins_500" })).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "idempotency_key_required"));
    for (body, field) in [(json!({}), "package"), (json!({ "package": "coins_7" }), "package"), (json!({ "coins": 10 }), "coins"), (json!({ "coins": 100, "package": "coins_500" }), "package"), (json!({ "coins": "many" }), "body")] {
        let r = post_keyed(&api, "/api/wallet/top-ups", &vic.token, &key(), &body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(r.json()["error"]["fields"][field].is_string(), "{body}: {}", r.body);
    }
    assert_eq!(post_keyed(&api, "/api/wallet/top-ups", "nope", &key(), &json!({ "coins": 100 })).await.status, 401);

    // A top-up: an intent and where to pay; no coins yet.
    let k = key();
    let r = post_keyed(&api, "/api/wallet/top-ups", &vic.token, &k, &json!({ "package": "coins_500" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let t = r.json();
    let intent = t["intent_id"].as_str().unwrap().to_owned();
    assert!(intent.starts_with("pi_"), "{t}");
    assert_eq!((t["status"].as_str(), t["amount"].as_i64(), t["currency"].as_str(), t["coins"].as_i64()), (Some("requires_payment_method"), Some(479), Some("usd"), Some(500)));
    assert_eq!(t["checkout_url"], format!("/pay/dev/{intent}"));
    // The same request again: the same intent, replayed. Another body under the key: 409.
    let again = post_keyed(&api, "/api/wallet/top-ups", &vic.token, &k, &json!({ "package": "coins_500" })).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (201, Some("true")));
    assert_eq!(again.json(), t);
    let other = post_keyed(&api, "/api/wallet/top-ups", &vic.token, &k, &json!({ "package": "coins_1000" })).await;
    assert_eq!((other.status, other.error_code().as_str()), (409, "idempotency_conflict"));
    assert_eq!(wallet(&api, &vic).await["coins"], 0, "no coins from the client's word");

    // The checkout page and its intent; Decline sends payment_failed (no coins), Pay succeeds.
    let page = request(api.addr, "GET", &format!("/pay/dev/{intent}"), &[], b"").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<html"), "{}", page.body);
    let shown = api.get(&format!("/pay/dev/{intent}/intent"), None).await.json();
    assert_eq!((shown["amount"].as_i64(), shown["status"].as_str()), (Some(479), Some("requires_payment_method")));
    assert_eq!(request(api.addr, "POST", &format!("/pay/dev/{intent}/decline"), &[], b"").await.status, 200);
    let mut ws = Ws::connect(api.addr, Some(&vic.token)).await;
    let paid = request(api.addr, "POST", &format!("/pay/dev/{intent}/pay"), &[], b"").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    // The webhook goes out over HTTP, is verified, and credits the coins; the page hears it.
    let ev = ws.next_where(10, |v| v["type"] == "wallet" && v["coins"] == 500).await;
    assert!(ev.is_some(), "wallet event; seen {:?}", ws.seen);
    let p = api.get(&format!("/api/wallet/top-ups/{intent}"), Some(&vic.token)).await.json();
    assert_eq!((p["status"].as_str(), p["coins_credited"].as_i64()), (Some("succeeded"), Some(500)));
    // Paying twice changes nothing.
    assert_eq!(request(api.addr, "POST", &format!("/pay/dev/{intent}/pay"), &[], b"").await.status, 200);
    let intent2 = buy_coins(&api, &vic, "coins_100").await;
    assert_ne!(intent2, intent);
    assert_eq!(wallet(&api, &vic).await["coins"], 600);
    let other = api.register("other", "viewer").await;
    assert_eq!(api.get(&format!("/api/wallet/top-ups/{intent}"), Some(&other.token)).await.status, 404, "not theirs");

    // The statement: two top-ups, newest first, with the balance after each.
    let st = api.get("/api/me/transactions", Some(&vic.token)).await.json();
    let lines: Vec<(i64, i64, &str)> = st["entries"].as_array().unwrap().iter().map(|e| (e["amount"].as_i64().unwrap(), e["balance_after"].as_i64().unwrap(), e["kind"].as_str().unwrap())).collect();
    assert_eq!(lines, vec![(100, 600, "top_up"), (500, 500, "top_up")]);
    let page1 = api.get("/api/me/transactions?limit=1", Some(&vic.token)).await.json();
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = api.get(&format!("/api/me/transactions?limit=1&cursor={cursor}"), Some(&vic.token)).await.json();
    assert_eq!(page2["entries"][0]["amount"], 500);
    assert!(page2["next_cursor"].is_null());
    make_admin(&server, &other).await;
    assert_ledger_ok(&api, &other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tips_and_gifts_split_earnings_and_reach_the_stream() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let vic = api.register("vic", "viewer").await;
    let root = api.register("root", "viewer").await;
    make_admin(&server, &root).await;
    let s = api.create_stream(&ana, json!({ "title": "Cooking live" })).await;
    let sid = s["id"].as_i64().unwrap();
    let tip_path = format!("/api/streams/{sid}/tips");
    let gift_path = format!("/api/streams/{sid}/gifts");

    // Not live yet: no tips.
    buy_coins(&api, &vic, "coins_500").await;
    let r = post_keyed(&api, &tip_path, &vic.token, &key(), &json!({ "coins": 10 })).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "stream_not_live"));
    assert_eq!(api.post(&format!("/api/streams/{sid}/start"), Some(&ana.token), json!({})).await.status, 200);

    let mut watcher = Ws::connect(api.addr, None).await;
    watcher.send(json!({ "type": "subscribe", "stream": sid })).await;
    watcher.next_of("subscribed", 5).await;

    // A tip: 70% to Ana's earnings, 30% to the platform; an event and a chat line.
    let k = key();
    let r = post_keyed(&api, &tip_path, &vic.token, &k, &json!({ "coins": 100, "message": "great show" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let t = r.json();
    assert_eq!((t["kind"].as_str(), t["coins"].as_i64(), t["creator_coins"].as_i64(), t["platform_coins"].as_i64()), (Some("tip"), Some(100), Some(70), Some(30)));
    assert_eq!(t["balance"], json!({ "coins": 400, "promo_coins": 0 }));
    let ev = watcher.next_of("tip", 5).await;
    assert_eq!((ev["coins"].as_i64(), ev["message"].as_str(), ev["from"]["username"].as_str(), ev["to"]["username"].as_str()), (Some(100), Some("great show"), Some("vic"), Some("ana")));
    let line = watcher.next_where(5, |v| v["type"] == "chat_message" && v["message"]["kind"] == "system").await.unwrap();
    assert_eq!(line["message"]["text"], "vic tipped 100 coins: great show");
    // Retried: the same answer, no second tip.
    let again = post_keyed(&api, &tip_path, &vic.token, &k, &json!({ "coins": 100, "message": "great show" })).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (201, Some("true")));
    assert_eq!(again.json()["id"], t["id"]);
    assert_eq!(wallet(&api, &vic).await["coins"], 400);
    // Refusals.
    let r = post_keyed(&api, &tip_path, &vic.token, &key(), &json!({ "coins": 401 })).await;
    assert_eq!((r.status, r.error_code().as_str()), (402, "insufficient_funds"));
    let r = post_keyed(&api, &tip_path, &ana.token, &key(), &json!({ "coins": 1 })).await;
    assert_eq!((r.status, r.error_code().as_str()), (403, "not_allowed"));
    for (body, field) in [(json!({ "coins": 0 }), "coins"), (json!({ "coins": 2_000_000 }), "coins"), (json!({ "coins": 1, "message": "x".repeat(201) }), "message"), (json!({ "coin": 1 }), "coin")] {
        let r = post_keyed(&api, &tip_path, &vic.token, &key(), &body).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(r.json()["error"]["fields"][field].is_string(), "{body}: {}", r.body);
    }

    // Gifts: the catalogue, a send, a combo.
    let gifts = api.get("/api/gifts", None).await.json();
    assert_eq!(gifts.as_array().unwrap().len(), 8);
    assert_eq!(gifts[0], json!({ "id": "rose", "name": "Rose", "coins": 1, "animation": "/static/gifts/rose.svg", "tier": 1, "sort": 10, "enabled": true }));
    let svg = request(api.addr, "GET", "/static/gifts/rose.svg", &[], b"").await;
    assert_eq!(svg.status, 200, "the animation asset is served");
    let r = post_keyed(&api, &gift_path, &vic.token, &key(), &json!({ "gift": "heart", "count": 5 })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!((r.json()["coins"].as_i64(), r.json()["count"].as_i64()), (Some(25), Some(5)));
    let ev = watcher.next_of("gift", 5).await;
    assert_eq!((ev["gift"]["id"].as_str(), ev["count"].as_i64(), ev["combo"].as_i64()), (Some("heart"), Some(5), Some(5)));
    post_keyed(&api, &gift_path, &vic.token, &key(), &json!({ "gift": "heart", "count": 2, "to": "ana" })).await;
    assert_eq!(watcher.next_of("gift", 5).await["combo"], 7, "a combo grows within 10 s");
    let r = post_keyed(&api, &gift_path, &vic.token, &key(), &json!({ "gift": "unicorn" })).await;
    assert_eq!(r.status, 422);
    let r = post_keyed(&api, &gift_path, &vic.token, &key(), &json!({ "gift": "rose", "to": "someone" })).await;
    assert_eq!(r.json()["error"]["fields"]["to"], "'someone' is not a host of this stream");
    let r = post_keyed(&api, &gift_path, &vic.token, &key(), &json!({ "gift": "galaxy" })).await;
    assert_eq!(r.status, 402);

    // An admin changes a price; the next send pays it.
    let r = api.patch("/api/admin/gifts/heart", Some(&root.token), json!({ "coins": 6 })).await;
    assert_eq!((r.status, r.json()["coins"].as_i64()), (200, Some(6)));
    assert_eq!(api.patch("/api/admin/gifts/heart", Some(&vic.token), json!({ "coins": 1 })).await.status, 403);
    let r = post_keyed(&api, &gift_path, &vic.token, &key(), &json!({ "gift": "heart" })).await;
    assert_eq!(r.json()["coins"], 6);

    // Supporters and Ana's earnings: 100 + 35 + 6 = 141 coins spent, 70% each rounded down.
    let sup = api.get(&format!("/api/streams/{sid}/supporters"), None).await.json();
    assert_eq!(sup["supporters"], json!([{ "user": { "id": vic.id, "username": "vic", "display_name": "vic" }, "coins": 141 }]));
    let e = api.get("/api/me/earnings?days=7", Some(&ana.token)).await.json();
    assert_eq!(e["available"], 70 + 24 + 4);
    assert_eq!(e["total"], 98);
    assert_eq!(e["by_kind"], json!([{ "kind": "tip", "coins": 70 }, { "kind": "gift", "coins": 28 }]));
    assert_eq!(e["by_stream"][0]["stream_id"], sid);
    assert_eq!(e["by_day"].as_array().unwrap().len(), 7);
    assert_eq!(e["by_day"][6]["coins"], 98, "today is last");
    assert_eq!(wallet(&api, &ana).await["earnings"], 98);
    assert_ledger_ok(&api, &root).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_subscriptions_payouts_and_refunds() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let vic = api.register("vic", "viewer").await;
    let root = api.register("root", "viewer").await;
    make_admin(&server, &root).await;
    let intent = buy_coins(&api, &vic, "coins_1000").await;

    // A ticket to a scheduled stream is a hold: access now, the coins reserved,
    // Ana's share pending. Cancelling the stream refunds it.
    let in_a_month = onair::clock::rfc3339(onair::clock::now_ms() + 30 * 24 * 3600 * 1000);
    let s = api.create_stream(&ana, json!({ "title": "Premiere", "visibility": "ticketed", "ticket_price": 200, "scheduled_at": in_a_month })).await;
    let sid = s["id"].as_i64().unwrap();
    let buy = format!("/api/streams/{sid}/tickets/purchase");
    let r = post_keyed(&api, &buy, &vic.token, &key(), &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!((r.json()["status"].as_str(), r.json()["price"].as_i64()), (Some("held"), Some(200)));
    let w = wallet(&api, &vic).await;
    assert_eq!((w["coins"].as_i64(), w["held"].as_i64()), (Some(800), Some(200)));
    assert_eq!(wallet(&api, &ana).await["earnings_pending"], 140);
    assert!(server.app.membership.has_ticket(vic.id, sid).await.unwrap());
    let r = post_keyed(&api, &buy, &vic.token, &key(), &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "already_have_ticket"));
    let r = post_keyed(&api, &buy, &ana.token, &key(), &json!({})).await;
    assert_eq!(r.status, 403);
    let public = api.create_stream(&ana, json!({ "title": "Free" })).await;
    let r = post_keyed(&api, &format!("/api/streams/{}/tickets/purchase", public["id"]), &vic.token, &key(), &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "not_ticketed"));
    assert_eq!(api.post(&format!("/api/streams/{sid}/cancel"), Some(&ana.token), json!({})).await.status, 200);
    let w = wait_wallet(&api, &vic, |w| w["coins"] == 1000).await;
    assert_eq!(w["held"], 0, "refunded: the hold was voided");
    assert_eq!(wallet(&api, &ana).await["earnings_pending"], 0);
    assert!(!server.app.membership.has_ticket(vic.id, sid).await.unwrap(), "a refunded ticket opens nothing");

    // A ticket to a live stream whose media started is paid at once.
    let live = api.create_stream(&ana, json!({ "title": "Now", "visibility": "ticketed", "ticket_price": 100 })).await;
    let lid = live["id"].as_i64().unwrap();
    sqlx::query("UPDATE streams SET state = 'live', media_state = 'receiving', started_at = 1, media_started_at = 1 WHERE id = $1").bind(lid).execute(&server.app.pool).await.unwrap();
    let r = post_keyed(&api, &format!("/api/streams/{lid}/tickets/purchase"), &vic.token, &key(), &json!({ "pay_with": "coins" })).await;
    assert_eq!(r.json()["status"], "active", "{}", r.body);
    assert_eq!(wallet(&api, &ana).await["earnings"], 70);

    // A subscription: paid now, a badge in chat, cancelled at the period's end.
    let r = post_keyed(&api, "/api/channels/ana/subscriptions/purchase", &vic.token, &key(), &json!({ "plan": "monthly" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sub = r.json();
    assert_eq!((sub["price"].as_i64(), sub["auto_renew"].as_bool(), sub["periods"].as_i64()), (Some(500), Some(true), Some(1)));
    assert!(server.app.membership.is_subscriber(vic.id, ana.id).await.unwrap());
    let chat_stream = api.create_stream(&ana, json!({ "title": "Chat" })).await;
    let m = api.post(&format!("/api/streams/{}/chat", chat_stream["id"]), Some(&vic.token), json!({ "text": "hello" })).await;
    assert_eq!(m.json()["badges"], json!(["subscriber"]), "{}", m.body);
    let r = post_keyed(&api, "/api/channels/ana/subscriptions/purchase", &vic.token, &key(), &json!({ "plan": "yearly" })).await;
    assert_eq!(r.status, 422);
    let r = post_keyed(&api, "/api/channels/vic/subscriptions/purchase", &ana.token, &key(), &json!({ "plan": "monthly" })).await;
    assert_eq!(r.status, 404, "vic is no host");
    let mine = api.get("/api/me/subscriptions", Some(&vic.token)).await.json();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let r = post_keyed(&api, "/api/channels/ana/subscriptions/cancel", &vic.token, &key(), &json!({})).await;
    assert_eq!((r.status, r.json()["auto_renew"].as_bool()), (200, Some(false)));
    assert!(server.app.membership.is_subscriber(vic.id, ana.id).await.unwrap(), "until the period ends");
    assert_eq!(wallet(&api, &vic).await["coins"], 400);
    assert_eq!(wallet(&api, &ana).await["earnings"], 70 + 350);

    // Payouts: held until an admin decides.
    let r = post_keyed(&api, "/api/me/payouts", &ana.token, &key(), &json!({ "amount": 50 })).await;
    assert_eq!(r.status, 422, "at least 100");
    let r = post_keyed(&api, "/api/me/payouts", &ana.token, &key(), &json!({ "amount": 1000 })).await;
    assert_eq!(r.status, 402);
    let p1 = post_keyed(&api, "/api/me/payouts", &ana.token, &key(), &json!({ "amount": 300 })).await.json();
    assert_eq!(p1["status"], "pending");
    let w = wallet(&api, &ana).await;
    assert_eq!((w["earnings"].as_i64(), w["payouts_pending"].as_i64()), (Some(120), Some(300)));
    let p2 = post_keyed(&api, "/api/me/payouts", &ana.token, &key(), &json!({ "amount": 100 })).await.json();
    let pending = api.get("/api/admin/payouts", Some(&root.token)).await.json();
    assert_eq!(pending.as_array().unwrap().len(), 2);
    let r = post_keyed(&api, &format!("/api/admin/payouts/{}/paid", p1["id"]), &root.token, &key(), &json!({ "note": "wire 123" })).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("paid")));
    let r = post_keyed(&api, &format!("/api/admin/payouts/{}/reject", p2["id"]), &root.token, &key(), &json!({})).await;
    assert_eq!(r.json()["status"], "rejected");
    let r = post_keyed(&api, &format!("/api/admin/payouts/{}/reject", p1["id"]), &root.token, &key(), &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "already_resolved"));
    let w = wallet(&api, &ana).await;
    assert_eq!((w["earnings"].as_i64(), w["payouts_pending"].as_i64()), (Some(120), Some(0)), "rejected coins are back");
    assert_eq!(api.get("/api/me/earnings", Some(&ana.token)).await.json()["paid_out"], 300);

    // A refund of the whole payment claws back 1,000 coins: 400 from the
    // wallet, 600 already spent become what vic owes, visible to admins.
    let r = post_keyed(&api, &format!("/api/admin/payments/{intent}/refund"), &root.token, &key(), &json!({})).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let w = wait_wallet(&api, &vic, |w| w["owed"] == 600).await;
    assert_eq!(w["coins"], 0);
    let owed = api.get("/api/admin/ledger/accounts?code=owed", Some(&root.token)).await.json();
    assert_eq!((owed[0]["owner_id"].as_i64(), owed[0]["debits_posted"].as_i64()), (Some(vic.id), Some(600)));
    // The next coins bought pay the debt first.
    buy_coins_owed(&api, &vic).await;
    let w = wallet(&api, &vic).await;
    assert_eq!((w["coins"].as_i64(), w["owed"].as_i64()), (Some(0), Some(100)));

    // Promotional coins are spent first.
    let r = post_keyed(&api, "/api/admin/promo", &root.token, &key(), &json!({ "user": "vic", "coins": 30, "reason": "welcome" })).await;
    assert_eq!((r.status, r.json()["promo_coins"].as_i64()), (201, Some(30)));
    assert_eq!(wallet(&api, &vic).await["promo_coins"], 30);
    assert_ledger_ok(&api, &root).await;
}

/// Buys 500 coins while owing 600: they all pay the debt.
async fn buy_coins_owed(api: &Api, u: &common::api::User) {
    let r = post_keyed(api, "/api/wallet/top-ups", &u.token, &key(), &json!({ "package": "coins_500" })).await;
    let intent = r.json()["intent_id"].as_str().unwrap().to_owned();
    assert_eq!(request(api.addr, "POST", &format!("/pay/dev/{intent}/pay"), &[], b"").await.status, 200);
    wait_wallet(api, u, |w| w["owed"] == 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_and_subscriptions_paid_through_the_provider() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let vic = api.register("vic", "viewer").await;
    let s = api.create_stream(&ana, json!({ "title": "Now", "visibility": "ticketed", "ticket_price": 250 })).await;
    let sid = s["id"].as_i64().unwrap();
    sqlx::query("UPDATE streams SET state = 'live', media_state = 'receiving', started_at = 1, media_started_at = 1 WHERE id = $1").bind(sid).execute(&server.app.pool).await.unwrap();

    // No coins: the ticket is paid through the provider. The answer is the
    // payment to make; the ticket comes with the payment's webhook.
    let r = post_keyed(&api, &format!("/api/streams/{sid}/tickets/purchase"), &vic.token, &key(), &json!({ "pay_with": "provider" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let t = r.json();
    assert_eq!((t["purpose"].as_str(), t["coins"].as_i64(), t["amount"].as_i64()), (Some("ticket"), Some(250), Some(250)));
    assert!(!server.app.membership.has_ticket(vic.id, sid).await.unwrap(), "not before it is paid");
    let intent = t["intent_id"].as_str().unwrap();
    assert_eq!(request(api.addr, "POST", &format!("/pay/dev/{intent}/pay"), &[], b"").await.status, 200);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.app.membership.has_ticket(vic.id, sid).await.unwrap() {
        assert!(std::time::Instant::now() < end, "the ticket never came");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    let w = wallet(&api, &vic).await;
    assert_eq!(w["coins"], 0, "the coins bought were spent on the ticket: {w}");
    let pay = api.get(&format!("/api/wallet/top-ups/{intent}"), Some(&vic.token)).await.json();
    assert!(pay["fulfilled"].as_str().unwrap().starts_with(intent), "{pay}");
    assert_eq!(wallet(&api, &ana).await["earnings"], 175);
    // A second ticket through the provider: refused before any payment.
    let r = post_keyed(&api, &format!("/api/streams/{sid}/tickets/purchase"), &vic.token, &key(), &json!({ "pay_with": "provider" })).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "already_have_ticket"));

    // A subscription the same way.
    let r = post_keyed(&api, "/api/channels/ana/subscriptions/purchase", &vic.token, &key(), &json!({ "plan": "monthly", "pay_with": "provider" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let intent = r.json()["intent_id"].as_str().unwrap().to_owned();
    assert_eq!(request(api.addr, "POST", &format!("/pay/dev/{intent}/pay"), &[], b"").await.status, 200);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.app.membership.is_subscriber(vic.id, ana.id).await.unwrap() {
        assert!(std::time::Instant::now() < end, "the subscription never came");
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    assert_eq!(wallet(&api, &vic).await["coins"], 0);
    let root = api.register("root", "viewer").await;
    make_admin(&server, &root).await;
    assert_ledger_ok(&api, &root).await;
}
