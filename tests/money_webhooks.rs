//! The payment webhook as Stripe would call it: signatures (bad, stale,
//! tampered, rotated secrets, several v1), events delivered twice, late and
//! out of order, refunds and disputes clawing coins back and giving them
//! back. The events and signatures are built here, independently of the
//! server's code.

mod common;

use common::api::{Api, User};
use common::http::request;
use common::money::{assert_ledger_ok, charge_object, deliver, dispute_object, event, intent_object, key, make_admin, now_s, post_keyed, stripe_signature, wallet};
use serde_json::{json, Value};

const NEW: &str = "whsec_new_secret";
const OLD: &str = "whsec_old_secret";

async fn server() -> onair::server::Server {
    common::start_server_with(common::temp_dir("wh"), |a| a.payment_webhook_secret = Some(vec![NEW.into(), OLD.into()])).await
}

/// A top-up of 500 coins (479 cents) for `u`, not paid: its intent id.
async fn intent(api: &Api, u: &User) -> String {
    let r = post_keyed(api, "/api/wallet/top-ups", &u.token, &key(), &json!({ "package": "coins_500" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()["intent_id"].as_str().unwrap().to_owned()
}

fn succeeded(id: &str, pi: &str, t: i64) -> Value {
    event(id, "payment_intent.succeeded", t, intent_object(pi, 479, "succeeded", Some(&format!("ch_{pi}"))))
}

async fn coins(api: &Api, u: &User) -> i64 {
    wallet(api, u).await["coins"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_tolerance_and_rotated_secrets() {
    let server = server().await;
    let api = Api::new(server.http_addr);
    let vic = api.register("vic", "viewer").await;
    let pi = intent(&api, &vic).await;
    let ev = succeeded("evt_sig_1", &pi, now_s());
    let body = ev.to_string();
    let post = |headers: Vec<(&'static str, String)>, body: String| {
        let addr = api.addr;
        async move {
            let mut h: Vec<(&str, &str)> = vec![("Content-Type", "application/json")];
            for (k, v) in &headers {
                h.push((k, v.as_str()));
            }
            request(addr, "POST", "/api/payments/webhook", &h, body.as_bytes()).await
        }
    };
    let t = now_s();
    // Refused, and no coins: no header, garbage, an unknown secret, a tampered
    // body, a timestamp too old or too far ahead.
    let refused = [
        vec![],
        vec![("Stripe-Signature", "nonsense".to_owned())],
        vec![("Stripe-Signature", format!("t={t}"))],
        vec![("Stripe-Signature", stripe_signature(&["whsec_someone_else"], t, &body))],
        vec![("Stripe-Signature", stripe_signature(&[NEW], t, &body.replace("479", "478")))],
        vec![("Stripe-Signature", stripe_signature(&[NEW], t - 301, &body))],
        vec![("Stripe-Signature", stripe_signature(&[NEW], t + 301, &body))],
    ];
    for (i, h) in refused.into_iter().enumerate() {
        let r = post(h, body.clone()).await;
        assert_eq!((r.status, r.error_code().as_str()), (400, "bad_signature"), "case {i}: {}", r.body);
    }
    assert_eq!(coins(&api, &vic).await, 0);
    // The signature covers the exact bytes: the same JSON re-serialised differently fails.
    let pretty = serde_json::to_string_pretty(&ev).unwrap();
    let r = post(vec![("Stripe-Signature", stripe_signature(&[NEW], t, &body))], pretty).await;
    assert_eq!(r.status, 400);
    // Within the tolerance, under the old secret alone (a sender not yet rolled): accepted.
    let r = post(vec![("Stripe-Signature", stripe_signature(&[OLD], t - 299, &body))], body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), json!({ "received": true, "duplicate": false }));
    assert_eq!(coins(&api, &vic).await, 500);
    // Under the new secret alone, and with two v1 of which one is unknown: accepted.
    let pi2 = intent(&api, &vic).await;
    let body2 = succeeded("evt_sig_2", &pi2, t).to_string();
    let r = post(vec![("Stripe-Signature", stripe_signature(&[NEW], t, &body2))], body2.clone()).await;
    assert_eq!(r.status, 200);
    let pi3 = intent(&api, &vic).await;
    let body3 = succeeded("evt_sig_3", &pi3, t).to_string();
    let r = post(vec![("Stripe-Signature", stripe_signature(&["whsec_unknown", NEW], t, &body3))], body3.clone()).await;
    assert_eq!(r.status, 200);
    assert_eq!(coins(&api, &vic).await, 1500);
    // Not an event at all, though well signed.
    let r = post(vec![("Stripe-Signature", stripe_signature(&[NEW], t, "{}"))], "{}".into()).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_event"));

    // The development provider signs with both secrets (a roll in progress) and is accepted.
    let pi4 = intent(&api, &vic).await;
    assert_eq!(request(api.addr, "POST", &format!("/pay/dev/{pi4}/pay"), &[], b"").await.status, 200);
    common::money::wait_wallet(&api, &vic, |w| w["coins"] == 2000).await;
    make_admin(&server, &vic).await;
    assert_ledger_ok(&api, &vic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_late_and_out_of_order_events() {
    let server = server().await;
    let api = Api::new(server.http_addr);
    let vic = api.register("vic", "viewer").await;
    let t = now_s();
    let send = |ev: Value| {
        async move {
            let r = deliver(&api, &[NEW], now_s(), &ev).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()["duplicate"].as_bool().unwrap()
        }
    };

    // The same event twice: handled once.
    let a = intent(&api, &vic).await;
    assert!(!send(succeeded("evt_a1", &a, t)).await);
    assert!(send(succeeded("evt_a1", &a, t)).await, "a duplicate");
    // Another event saying the same: no second credit (the credit's id derives from the intent).
    assert!(!send(succeeded("evt_a2", &a, t + 1)).await);
    assert_eq!(coins(&api, &vic).await, 500);

    // Canceled before succeeded arrives (late): the success wins, once;
    // a canceled arriving after it changes nothing.
    let b = intent(&api, &vic).await;
    send(event("evt_b1", "payment_intent.canceled", t + 5, intent_object(&b, 479, "canceled", None))).await;
    assert_eq!(coins(&api, &vic).await, 500);
    send(succeeded("evt_b2", &b, t)).await;
    send(event("evt_b3", "payment_intent.canceled", t + 9, intent_object(&b, 479, "canceled", None))).await;
    send(event("evt_b4", "payment_intent.payment_failed", t - 5, intent_object(&b, 479, "requires_payment_method", None))).await;
    assert_eq!(coins(&api, &vic).await, 1000);

    // A full refund that arrives before the success: the coins never show.
    let c = intent(&api, &vic).await;
    send(event("evt_c1", "charge.refunded", t + 20, charge_object(&format!("ch_{c}"), &c, 479, 479))).await;
    send(succeeded("evt_c2", &c, t + 10)).await;
    assert_eq!(coins(&api, &vic).await, 1000);
    let p = api.get(&format!("/api/wallet/top-ups/{c}"), Some(&vic.token)).await.json();
    assert_eq!((p["status"].as_str(), p["amount_refunded"].as_i64(), p["coins_credited"].as_i64()), (Some("succeeded"), Some(479), Some(0)));

    // Partial refunds are cumulative: 100 then 250 of 479; the first arriving
    // again, late and under a new event id, claws nothing more.
    let d = intent(&api, &vic).await;
    send(succeeded("evt_d1", &d, t)).await;
    assert_eq!(coins(&api, &vic).await, 1500);
    send(event("evt_d2", "charge.refunded", t + 30, charge_object(&format!("ch_{d}"), &d, 479, 100))).await;
    assert_eq!(coins(&api, &vic).await, 1500 - 105, "ceil(500 * 100 / 479)");
    send(event("evt_d3", "charge.refunded", t + 40, charge_object(&format!("ch_{d}"), &d, 479, 250))).await;
    send(event("evt_d4", "charge.refunded", t + 30, charge_object(&format!("ch_{d}"), &d, 479, 100))).await;
    assert_eq!(coins(&api, &vic).await, 1500 - 261, "ceil(500 * 250 / 479)");

    // A dispute takes every coin back (the money is with the bank); won, they return.
    // Its events arrive in the wrong order: the final `won` is not undone by the earlier `created`.
    let e = intent(&api, &vic).await;
    send(succeeded("evt_e1", &e, t)).await;
    let before = coins(&api, &vic).await;
    send(event("evt_e2", "charge.dispute.created", t + 50, dispute_object("dp_e", &e, &format!("ch_{e}"), 479, "needs_response"))).await;
    assert_eq!(coins(&api, &vic).await, before - 500);
    send(event("evt_e3", "charge.dispute.closed", t + 70, dispute_object("dp_e", &e, &format!("ch_{e}"), 479, "won"))).await;
    assert_eq!(coins(&api, &vic).await, before);
    send(event("evt_e4", "charge.dispute.updated", t + 60, dispute_object("dp_e", &e, &format!("ch_{e}"), 479, "under_review"))).await;
    assert_eq!(coins(&api, &vic).await, before, "a late update after the close changes nothing");

    // Events that are not about a payment of ours, or that disagree with it, credit nothing.
    send(succeeded("evt_x1", "pi_not_ours", t)).await;
    let f = intent(&api, &vic).await;
    let mut wrong = intent_object(&f, 999_999, "succeeded", None);
    wrong["amount_received"] = json!(999_999);
    send(event("evt_f1", "payment_intent.succeeded", t, wrong)).await;
    assert_eq!(coins(&api, &vic).await, before);

    let w = wallet(&api, &vic).await;
    assert_eq!(w["owed"], 0);
    make_admin(&server, &vic).await;
    assert_ledger_ok(&api, &vic).await;
}
