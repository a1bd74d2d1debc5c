//! The money simulation, in the spirit of TigerBeetle's VOPR: a seeded
//! random workload against a real server over real HTTP, then every
//! invariant of the ledger must hold and every balance must equal a model's.
//!
//! 64 clients run at once, each driving two viewers of its own (so a
//! viewer's operations are sequential and their outcomes predictable) and
//! acting as the payment provider for them: it buys coins, and delivers the
//! provider's signed events itself - twice, late, out of order, with stale
//! failures and cancellations, partial refunds and disputes - or pays at
//! the development checkout (whose webhook the server receives over HTTP).
//! Viewers tip and gift the hosts' live streams, buy tickets (held for
//! scheduled streams, paid for live ones), subscribe and cancel; requests
//! are retried with the same Idempotency-Key (the same answer, replayed)
//! and keys are reused for other requests (409). Each answer is checked
//! against the model as it comes (a spend the model says is short must be
//! 402, ...), and each viewer's wallet is compared now and then. At the end
//! the held tickets' streams are cancelled or started, subscriptions run
//! through two months of renewals, hosts cash out, and everything is
//! compared: every wallet, the platform's revenue, the ledger check.
//!
//! `ONAIR_SIM_SEED` picks the seed (CI uses the fixed default),
//! `ONAIR_SIM_OPS` the number of operations (default 10,000).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use common::money::{charge_object, dispute_object, event, intent_object, stripe_signature};

const SECRET: &str = "whsec_simulation";
const CLIENTS: usize = 64;
const VIEWERS_PER_CLIENT: usize = 2;
const HOSTS: usize = 8;
const SHARE: i64 = 70;
const SUB_PRICE: i64 = 500;
const DAY: i64 = 24 * 3600 * 1000;

fn shares(coins: i64) -> (i64, i64) {
    let c = coins * SHARE / 100;
    (c, coins - c)
}

/// An HTTP client with keep-alive (tens of thousands of requests).
#[derive(Clone)]
struct Http {
    c: reqwest::Client,
    base: String,
}

struct Answer {
    status: u16,
    body: Value,
    replayed: bool,
}

impl Http {
    async fn send(&self, method: reqwest::Method, path: &str, token: Option<&str>, key: Option<&str>, body: Option<&Value>, headers: &[(&str, String)]) -> Answer {
        let mut r = self.c.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        if let Some(k) = key {
            r = r.header("idempotency-key", k);
        }
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b.to_string());
        }
        let res = r.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = res.status().as_u16();
        let replayed = res.headers().get("idempotent-replayed").is_some();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, body, replayed }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(reqwest::Method::GET, path, Some(token), None, None, &[]).await
    }

    async fn post(&self, path: &str, token: &str, key: &str, body: &Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(token), Some(key), Some(body), &[]).await
    }

    async fn webhook(&self, body: &str) -> Answer {
        let sig = stripe_signature(&[SECRET], common::money::now_s(), body);
        let mut r = self.c.post(format!("{}/api/payments/webhook", self.base)).header("content-type", "application/json").header("stripe-signature", sig);
        r = r.body(body.to_owned());
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let body = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap_or(Value::Null);
        Answer { status, body, replayed: false }
    }
}

/// What the model knows of a payment intent (as delivered so far).
#[derive(Debug, Clone, Default)]
struct IntentModel {
    id: String,
    coins: i64,
    amount: i64,
    /// Succeeded events queued or paid at the checkout.
    paid: bool,
    dev: bool,
    succeeded: bool,
    refunded: i64,
    refund_queued: i64,
    dispute: Option<String>,
    dispute_at: i64,
    dispute_queued: u8,
    credited: i64,
}

fn dispute_takes(s: &Option<String>) -> bool {
    matches!(s.as_deref(), Some("needs_response" | "under_review" | "lost"))
}

fn dispute_final(s: &str) -> bool {
    matches!(s, "won" | "lost")
}

impl IntentModel {
    fn target(&self) -> i64 {
        if !self.succeeded || dispute_takes(&self.dispute) {
            return 0;
        }
        let clawed = ((self.coins * self.refunded + self.amount - 1) / self.amount).min(self.coins);
        self.coins - clawed
    }
}

/// An event waiting to be delivered.
#[derive(Debug, Clone)]
struct Pending {
    id: String,
    body: String,
    viewer: usize,
    intent: usize,
    effect: Effect,
}

#[derive(Debug, Clone)]
enum Effect {
    Succeeded,
    Nothing,
    Refunded(i64),
    Dispute(String, i64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TicketState {
    Held { promo: i64, wallet: i64 },
    Active,
}

#[derive(Debug, Clone)]
struct SubModel {
    expires_at: i64,
    auto_renew: bool,
    hold: Option<(i64, i64)>,
}

/// A viewer as the model sees them.
#[derive(Debug, Clone)]
struct Viewer {
    name: String,
    token: String,
    coins: i64,
    promo: i64,
    held: i64,
    owed: i64,
    wallet_held: i64,
    promo_held: i64,
    tickets: HashMap<i64, TicketState>,
    sub: Option<SubModel>,
    host: usize,
    intents: Vec<IntentModel>,
}

impl Viewer {
    /// Coins given: they pay off what is owed first.
    fn credit(&mut self, n: i64) {
        let settle = self.owed.min(n);
        self.owed -= settle;
        self.coins += n - settle;
    }

    /// Coins clawed back: from the wallet as far as it goes, the rest owed.
    fn claw(&mut self, n: i64) {
        let from_wallet = self.coins.min(n);
        self.coins -= from_wallet;
        self.owed += n - from_wallet;
    }

    /// (from promo, from wallet) of a spend, or None if short.
    fn split(&self, n: i64) -> Option<(i64, i64)> {
        if self.promo + self.coins < n {
            return None;
        }
        let p = self.promo.min(n);
        Some((p, n - p))
    }

    fn apply_event(&mut self, i: usize, effect: &Effect, created: i64) {
        let m = &mut self.intents[i];
        match effect {
            Effect::Succeeded => m.succeeded = true,
            Effect::Nothing => {}
            Effect::Refunded(n) => m.refunded = m.refunded.max(*n),
            Effect::Dispute(status, at) => {
                let current_final = m.dispute.as_deref().is_some_and(dispute_final);
                let newer = m.dispute.is_none() || *at >= m.dispute_at;
                if !current_final && (dispute_final(status) || newer) {
                    m.dispute = Some(status.clone());
                    m.dispute_at = (*at).max(m.dispute_at);
                }
                let _ = created;
            }
        }
        let delta = m.target() - m.credited;
        m.credited += delta;
        if delta > 0 {
            self.credit(delta);
        } else if delta < 0 {
            self.claw(-delta);
        }
    }
}

/// Hosts and the platform, credited by many clients at once.
#[derive(Debug, Default)]
struct Shared {
    earnings: HashMap<i64, (i64, i64)>,
    revenue: i64,
    revenue_pending: i64,
}

struct World {
    http: Http,
    hosts: Vec<(i64, String, String)>,
    /// Per host: (live stream, ticketed scheduled to cancel, ticketed scheduled to start, ticketed live).
    streams: Vec<(i64, i64, i64, i64)>,
    prices: HashMap<i64, i64>,
    gifts: Vec<(String, i64)>,
    shared: Mutex<Shared>,
}

#[derive(Default, Debug)]
struct Stats {
    ops: usize,
    requests: usize,
    counts: HashMap<&'static str, usize>,
    replays: usize,
    conflicts: usize,
    refused_402: usize,
    deliveries: usize,
    duplicates: usize,
}

impl Stats {
    fn op(&mut self, name: &'static str) {
        self.ops += 1;
        *self.counts.entry(name).or_default() += 1;
    }
}

/// A delivery now and then (about one step in seven while events wait).
fn roll_is_delivery(rng: &mut StdRng, queue: &[Pending]) -> bool {
    !queue.is_empty() && rng.random_bool(0.14)
}

fn key(rng: &mut StdRng) -> String {
    format!("sim-{:032x}", rng.random::<u128>())
}

/// Sends a keyed request; sometimes again with the same key (the same
/// answer must come back, replayed), sometimes the key with another body (409).
async fn keyed(w: &World, rng: &mut StdRng, st: &mut Stats, path: &str, token: &str, body: &Value) -> Answer {
    let k = key(rng);
    let a = w.http.post(path, token, &k, body).await;
    st.requests += 1;
    assert!(a.status < 500 && a.status != 429, "{path} {body}: {} {}", a.status, a.body);
    if rng.random_bool(0.15) {
        let again = w.http.post(path, token, &k, body).await;
        st.requests += 1;
        st.replays += 1;
        assert!(again.replayed, "{path}: a retry must be a replay ({} {})", again.status, again.body);
        assert_eq!((again.status, &again.body), (a.status, &a.body), "{path}: a retry answers the same");
    }
    if rng.random_bool(0.05) {
        let other = w.http.post(path, token, &k, &json!({ "something": "else" })).await;
        st.requests += 1;
        st.conflicts += 1;
        assert_eq!((other.status, other.body["error"]["code"].as_str()), (409, Some("idempotency_conflict")), "{path}: the key with another body");
    }
    a
}

async fn check_wallet(w: &World, v: &Viewer, st: &mut Stats) {
    let a = w.http.get("/api/wallet", &v.token).await;
    st.requests += 1;
    let got = (a.body["coins"].as_i64(), a.body["promo_coins"].as_i64(), a.body["held"].as_i64(), a.body["owed"].as_i64());
    assert_eq!(got, (Some(v.coins), Some(v.promo), Some(v.held), Some(v.owed)), "wallet of {} (coins, promo, held, owed) vs the model", v.name);
}

/// Delivers one waiting event, chosen at random (so out of order).
async fn deliver_one(w: &World, viewers: &mut [Viewer], queue: &mut Vec<Pending>, delivered: &mut std::collections::HashSet<String>, rng: &mut StdRng, st: &mut Stats) {
    let i = rng.random_range(0..queue.len());
    let p = queue.swap_remove(i);
    let v = &mut viewers[p.viewer];
    let a = w.http.webhook(&p.body).await;
    st.requests += 1;
    st.deliveries += 1;
    assert_eq!(a.status, 200, "webhook {}: {}", p.id, a.body);
    let dup = !delivered.insert(p.id.clone());
    assert_eq!(a.body["duplicate"].as_bool(), Some(dup), "event {} duplicate?", p.id);
    if dup {
        st.duplicates += 1;
    } else {
        v.apply_event(p.intent, &p.effect, 0);
    }
}

async fn client(w: Arc<World>, mut viewers: Vec<Viewer>, seed: u64, ops: usize) -> (Vec<Viewer>, Stats) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut st = Stats::default();
    let mut queue: Vec<Pending> = Vec::new();
    let mut delivered = std::collections::HashSet::new();
    let mut clock = common::money::now_s() - 3600;
    while st.ops < ops {
        let vi = rng.random_range(0..viewers.len());
        if roll_is_delivery(&mut rng, &queue) {
            st.op("deliver");
            deliver_one(&w, &mut viewers, &mut queue, &mut delivered, &mut rng, &mut st).await;
            continue;
        }
        let v = &mut viewers[vi];
        let roll = rng.random_range(0..100);
        let roll = if (14..=27).contains(&roll) { rng.random_range(33..=77) } else { roll };
        clock += 1;
        match roll {
            // Buy coins: an intent; then paid (its success queued 1-3 times, maybe
            // after a failure), paid at the development checkout, or abandoned.
            0..=13 => {
                st.op("top_up");
                let body = match rng.random_range(0..4) {
                    0 => json!({ "package": "coins_100" }),
                    1 => json!({ "package": "coins_500" }),
                    2 => json!({ "package": "coins_1000" }),
                    _ => json!({ "coins": rng.random_range(50..=400) }),
                };
                let a = keyed(&w, &mut rng, &mut st, "/api/wallet/top-ups", &v.token, &body).await;
                assert_eq!(a.status, 201, "{}", a.body);
                let pi = a.body["intent_id"].as_str().unwrap().to_owned();
                let (coins, amount) = (a.body["coins"].as_i64().unwrap(), a.body["amount"].as_i64().unwrap());
                let idx = v.intents.len();
                v.intents.push(IntentModel { id: pi.clone(), coins, amount, ..Default::default() });
                let fate = rng.random_range(0..100);
                if fate < 10 {
                    // The real path: the development checkout, its webhook over HTTP.
                    let paid = w.http.send(reqwest::Method::POST, &format!("/pay/dev/{pi}/pay"), None, None, None, &[]).await;
                    st.requests += 1;
                    assert_eq!(paid.status, 200);
                    v.intents[idx].paid = true;
                    v.intents[idx].dev = true;
                    v.apply_event(idx, &Effect::Succeeded, 0);
                    let deadline = Instant::now() + Duration::from_secs(20);
                    loop {
                        let a = w.http.get("/api/wallet", &v.token).await;
                        st.requests += 1;
                        if a.body["coins"].as_i64() == Some(v.coins) && a.body["owed"].as_i64() == Some(v.owed) {
                            break;
                        }
                        assert!(Instant::now() < deadline, "the development checkout's webhook never credited {pi}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                } else if fate < 85 {
                    v.intents[idx].paid = true;
                    let ev_id = format!("evt_{pi}_ok");
                    let body = event(&ev_id, "payment_intent.succeeded", clock, intent_object(&pi, amount, "succeeded", Some(&format!("ch_{pi}")))).to_string();
                    for _ in 0..rng.random_range(1..=3) {
                        queue.push(Pending { id: ev_id.clone(), body: body.clone(), viewer: vi, intent: idx, effect: Effect::Succeeded });
                    }
                    if rng.random_bool(0.3) {
                        let id = format!("evt_{pi}_failed");
                        let body = event(&id, "payment_intent.payment_failed", clock - 30, intent_object(&pi, amount, "requires_payment_method", None)).to_string();
                        queue.push(Pending { id, body, viewer: vi, intent: idx, effect: Effect::Nothing });
                    }
                } else {
                    let id = format!("evt_{pi}_canceled");
                    let body = event(&id, "payment_intent.canceled", clock, intent_object(&pi, amount, "canceled", None)).to_string();
                    queue.push(Pending { id, body, viewer: vi, intent: idx, effect: Effect::Nothing });
                }
            }
            // A refund (cumulative, maybe delivered twice or late) or a dispute.
            28..=32 => {
                let paid: Vec<usize> = (0..v.intents.len()).filter(|&i| v.intents[i].paid && v.intents[i].refund_queued < v.intents[i].amount).collect();
                if paid.is_empty() {
                    continue;
                }
                let i = paid[rng.random_range(0..paid.len())];
                let m = v.intents[i].clone();
                if rng.random_bool(0.25) && m.dispute_queued == 0 {
                    st.op("dispute");
                    v.intents[i].dispute_queued = 1;
                    let close = if rng.random_bool(0.5) { "won" } else { "lost" };
                    for (n, status) in [(0, "needs_response"), (1, close)] {
                        let id = format!("evt_{}_dispute_{n}", m.id);
                        let at = clock + n;
                        let body = event(&id, if n == 0 { "charge.dispute.created" } else { "charge.dispute.closed" }, at, dispute_object(&format!("dp_{}", m.id), &m.id, &format!("ch_{}", m.id), m.amount, status)).to_string();
                        queue.push(Pending { id, body, viewer: vi, intent: i, effect: Effect::Dispute(status.into(), at) });
                    }
                } else {
                    st.op("refund");
                    let cumulative = rng.random_range(m.refund_queued + 1..=m.amount);
                    v.intents[i].refund_queued = cumulative;
                    let id = format!("evt_{}_refund_{cumulative}", m.id);
                    let body = event(&id, "charge.refunded", clock, charge_object(&format!("ch_{}", m.id), &m.id, m.amount, cumulative)).to_string();
                    for _ in 0..rng.random_range(1..=2) {
                        queue.push(Pending { id: id.clone(), body: body.clone(), viewer: vi, intent: i, effect: Effect::Refunded(cumulative) });
                    }
                }
            }
            // A tip or a gift to a live stream.
            33..=77 => {
                let h = rng.random_range(0..HOSTS);
                let sid = w.streams[h].0;
                let gift = roll >= 55;
                let (path, body, coins) = if gift {
                    let (g, price) = w.gifts[rng.random_range(0..w.gifts.len())].clone();
                    let count = rng.random_range(1..=5);
                    (format!("/api/streams/{sid}/gifts"), json!({ "gift": g, "count": count }), price * count)
                } else {
                    let c = rng.random_range(1..=150);
                    (format!("/api/streams/{sid}/tips"), json!({ "coins": c, "message": format!("tip {c}") }), c)
                };
                st.op(if gift { "gift" } else { "tip" });
                let a = keyed(&w, &mut rng, &mut st, &path, &v.token, &body).await;
                match v.split(coins) {
                    None => {
                        assert_eq!((a.status, a.body["error"]["code"].as_str()), (402, Some("insufficient_funds")), "{} has {}+{}, spends {coins}: {}", v.name, v.promo, v.coins, a.body);
                        st.refused_402 += 1;
                    }
                    Some((p, c)) => {
                        assert_eq!(a.status, 201, "{} has {}+{}, spends {coins}: {}", v.name, v.promo, v.coins, a.body);
                        v.promo -= p;
                        v.coins -= c;
                        let (creator, platform) = shares(coins);
                        assert_eq!((a.body["creator_coins"].as_i64(), a.body["platform_coins"].as_i64()), (Some(creator), Some(platform)));
                        assert_eq!(a.body["balance"], json!({ "coins": v.coins, "promo_coins": v.promo }));
                        let mut sh = w.shared.lock().unwrap();
                        sh.earnings.entry(w.hosts[h].0).or_default().0 += creator;
                        sh.revenue += platform;
                    }
                }
            }
            // A ticket: held for a scheduled stream, paid for a live one.
            78..=85 => {
                st.op("ticket");
                let h = rng.random_range(0..HOSTS);
                let which = rng.random_range(1..=3);
                let sid = match which {
                    1 => w.streams[h].1,
                    2 => w.streams[h].2,
                    _ => w.streams[h].3,
                };
                let price = w.prices[&sid];
                let a = keyed(&w, &mut rng, &mut st, &format!("/api/streams/{sid}/tickets/purchase"), &v.token, &json!({})).await;
                if v.tickets.contains_key(&sid) {
                    assert_eq!((a.status, a.body["error"]["code"].as_str()), (409, Some("already_have_ticket")), "{}", a.body);
                } else if let Some((p, c)) = v.split(price) {
                    assert_eq!(a.status, 201, "{}", a.body);
                    v.promo -= p;
                    v.coins -= c;
                    let (creator, platform) = shares(price);
                    let mut sh = w.shared.lock().unwrap();
                    if which == 3 {
                        assert_eq!(a.body["status"], "active");
                        v.tickets.insert(sid, TicketState::Active);
                        sh.earnings.entry(w.hosts[h].0).or_default().0 += creator;
                        sh.revenue += platform;
                    } else {
                        assert_eq!(a.body["status"], "held");
                        v.held += price;
                        v.promo_held += p;
                        v.wallet_held += c;
                        v.tickets.insert(sid, TicketState::Held { promo: p, wallet: c });
                        sh.earnings.entry(w.hosts[h].0).or_default().1 += creator;
                        sh.revenue_pending += platform;
                    }
                } else {
                    assert_eq!(a.status, 402, "{}", a.body);
                    st.refused_402 += 1;
                }
            }
            // Subscribe to the viewer's host (a running one is extended), or cancel.
            86..=90 => {
                let (hid, hname, _) = w.hosts[v.host].clone();
                if rng.random_bool(0.25) {
                    st.op("unsubscribe");
                    let a = keyed(&w, &mut rng, &mut st, &format!("/api/channels/{hname}/subscriptions/cancel"), &v.token, &json!({})).await;
                    match &mut v.sub {
                        Some(s) => {
                            assert_eq!((a.status, a.body["auto_renew"].as_bool()), (200, Some(false)), "{}", a.body);
                            s.auto_renew = false;
                        }
                        None => assert_eq!(a.status, 404, "{}", a.body),
                    }
                    continue;
                }
                st.op("subscribe");
                let a = keyed(&w, &mut rng, &mut st, &format!("/api/channels/{hname}/subscriptions/purchase"), &v.token, &json!({ "plan": "monthly" })).await;
                match v.split(SUB_PRICE) {
                    Some((p, c)) => {
                        assert_eq!(a.status, 201, "{}", a.body);
                        v.promo -= p;
                        v.coins -= c;
                        let expires = onair::clock::parse_rfc3339(a.body["expires_at"].as_str().unwrap()).unwrap();
                        if let Some(old) = &v.sub {
                            assert_eq!(expires, old.expires_at + 30 * DAY, "extended by a period");
                        }
                        v.sub = Some(SubModel { expires_at: expires, auto_renew: true, hold: None });
                        let (creator, platform) = shares(SUB_PRICE);
                        let mut sh = w.shared.lock().unwrap();
                        sh.earnings.entry(hid).or_default().0 += creator;
                        sh.revenue += platform;
                    }
                    None => {
                        assert_eq!(a.status, 402, "{}", a.body);
                        st.refused_402 += 1;
                    }
                }
            }
            // Look: the wallet, and the statement's last wallet line.
            91..=96 => {
                st.op("check");
                check_wallet(&w, v, &mut st).await;
                let s = w.http.get("/api/me/transactions?limit=20", &v.token).await;
                st.requests += 1;
                let last = s.body["entries"].as_array().unwrap().iter().find(|e| e["account"] == "wallet" && e["phase"] != "pending" && e["phase"] != "void").cloned();
                if let Some(e) = last {
                    assert_eq!(e["balance_after"].as_i64(), Some(v.coins + v.wallet_held), "the statement's last wallet line of {}: {e}", v.name);
                }
            }
            // Reuse a key for another request: 409, nothing done.
            _ => {
                st.op("conflict");
                let k = key(&mut rng);
                let sid = w.streams[0].0;
                let first = w.http.post("/api/wallet/top-ups", &v.token, &k, &json!({ "coins": 60 })).await;
                assert_eq!(first.status, 201);
                let idx = v.intents.len();
                v.intents.push(IntentModel { id: first.body["intent_id"].as_str().unwrap().into(), coins: 60, amount: 60, ..Default::default() });
                let _ = idx;
                let second = w.http.post(&format!("/api/streams/{sid}/tips"), &v.token, &k, &json!({ "coins": 1 })).await;
                st.requests += 2;
                assert_eq!((second.status, second.body["error"]["code"].as_str()), (409, Some("idempotency_conflict")), "{}", second.body);
            }
        }
    }
    // Deliver everything still waiting, in random order.
    while !queue.is_empty() {
        deliver_one(&w, &mut viewers, &mut queue, &mut delivered, &mut rng, &mut st).await;
    }
    for v in &viewers {
        check_wallet(&w, v, &mut st).await;
    }
    (viewers, st)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulation() {
    let seed: u64 = std::env::var("ONAIR_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x0A1F_2026);
    let total_ops: usize = std::env::var("ONAIR_SIM_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    eprintln!("money simulation: seed {seed} (ONAIR_SIM_SEED), {total_ops} operations, {CLIENTS} clients");
    let server = common::start_server_with(common::temp_dir("sim"), |a| {
        a.payment_webhook_secret = Some(vec![SECRET.into()]);
        a.write_rate = Some(1_000_000);
        a.auth_rate = Some(1_000_000);
    })
    .await;
    let api = common::api::Api::new(server.http_addr);
    let http = Http { c: reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap(), base: server.url() };
    let mut rng = StdRng::seed_from_u64(seed);

    // Setup: hosts with a live stream and three ticketed ones, viewers, an admin.
    let admin = api.register("admin_sim", "viewer").await;
    common::money::make_admin(&server, &admin).await;
    let mut hosts = Vec::new();
    let mut streams = Vec::new();
    let mut prices = HashMap::new();
    let in_a_month = onair::clock::rfc3339(onair::clock::now_ms() + 30 * DAY);
    for i in 0..HOSTS {
        let h = api.register(&format!("host{i}"), "host").await;
        let live = api.create_stream(&h, json!({ "title": format!("Live {i}") })).await["id"].as_i64().unwrap();
        assert_eq!(api.post(&format!("/api/streams/{live}/start"), Some(&h.token), json!({})).await.status, 200);
        let mut ticketed = Vec::new();
        for (n, price) in [(1, 30 + i as i64), (2, 40 + i as i64), (3, 25 + i as i64)] {
            let body = if n == 3 { json!({ "title": format!("Now {i}"), "visibility": "ticketed", "ticket_price": price }) } else { json!({ "title": format!("Premiere {i}.{n}"), "visibility": "ticketed", "ticket_price": price, "scheduled_at": in_a_month }) };
            let id = api.create_stream(&h, body).await["id"].as_i64().unwrap();
            prices.insert(id, price);
            ticketed.push(id);
        }
        // The third was on the air with media and is saved for its replay (the
        // SFU's part is not simulated; a host has one live stream at a time).
        sqlx::query("UPDATE streams SET state = 'archived', started_at = $1, media_started_at = $1, ended_at = $1, scheduled_at = NULL WHERE id = $2")
            .bind(onair::clock::now_ms())
            .bind(ticketed[2])
            .execute(&server.app.pool)
            .await
            .unwrap();
        streams.push((live, ticketed[0], ticketed[1], ticketed[2]));
        hosts.push((h.id, h.username.clone(), h.token.clone()));
    }
    let gifts: Vec<(String, i64)> = api.get("/api/gifts", None).await.json().as_array().unwrap().iter().filter(|g| g["coins"].as_i64().unwrap() <= 100).map(|g| (g["id"].as_str().unwrap().to_owned(), g["coins"].as_i64().unwrap())).collect();
    let mut per_client: Vec<Vec<Viewer>> = Vec::new();
    for c in 0..CLIENTS {
        let mut vs = Vec::new();
        for j in 0..VIEWERS_PER_CLIENT {
            let u = api.register(&format!("v{c}_{j}"), "viewer").await;
            let mut v = Viewer { name: u.username.clone(), token: u.token.clone(), coins: 0, promo: 0, held: 0, owed: 0, wallet_held: 0, promo_held: 0, tickets: HashMap::new(), sub: None, host: (c * VIEWERS_PER_CLIENT + j) % HOSTS, intents: Vec::new() };
            if rng.random_bool(0.3) {
                let coins = rng.random_range(10..=100);
                let a = http.post("/api/admin/promo", &admin.token, &key(&mut rng), &json!({ "user": u.username, "coins": coins, "reason": "welcome" })).await;
                assert_eq!(a.status, 201, "{}", a.body);
                v.promo = coins;
            }
            vs.push(v);
        }
        per_client.push(vs);
    }
    let world = Arc::new(World { http: http.clone(), hosts: hosts.clone(), streams: streams.clone(), prices, gifts, shared: Mutex::new(Shared::default()) });

    // The concurrent phase.
    let started = Instant::now();
    let ops_each = total_ops.div_ceil(CLIENTS);
    let mut tasks = Vec::new();
    for (c, vs) in per_client.into_iter().enumerate() {
        tasks.push(tokio::spawn(client(world.clone(), vs, seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15), ops_each)));
    }
    let mut viewers: Vec<Viewer> = Vec::new();
    let mut stats = Stats::default();
    for t in tasks {
        let (vs, st) = t.await.expect("a client failed");
        viewers.extend(vs);
        stats.ops += st.ops;
        stats.requests += st.requests;
        stats.replays += st.replays;
        stats.conflicts += st.conflicts;
        stats.refused_402 += st.refused_402;
        stats.deliveries += st.deliveries;
        stats.duplicates += st.duplicates;
        for (k, n) in st.counts {
            *stats.counts.entry(k).or_default() += n;
        }
    }
    let concurrent = started.elapsed();
    let money = server.app.money.clone();

    // Tickets: the first premiere of every host is cancelled (refunds), the
    // second goes on the air (its holds are posted).
    let mut sh = std::mem::take(&mut *world.shared.lock().unwrap());
    for (h, (_, cancel, start, _)) in streams.iter().enumerate() {
        assert_eq!(api.post(&format!("/api/streams/{cancel}/cancel"), Some(&hosts[h].2), json!({})).await.status, 200);
        // Its media came (and it ended: the host's other stream is the live one).
        sqlx::query("UPDATE streams SET state = 'archived', started_at = $1, media_started_at = $1, ended_at = $1 WHERE id = $2").bind(onair::clock::now_ms()).bind(start).execute(&server.app.pool).await.unwrap();
    }
    for _ in 0..5 {
        money.sweep_once(onair::clock::now_ms(), false, false).await.unwrap();
    }
    for v in &mut viewers {
        for (h, (_, cancel, start, _)) in streams.iter().enumerate() {
            let price = world.prices[cancel];
            if let Some(TicketState::Held { promo, wallet }) = v.tickets.get(cancel).copied() {
                v.promo += promo;
                v.coins += wallet;
                v.promo_held -= promo;
                v.wallet_held -= wallet;
                v.held -= price;
                v.tickets.remove(cancel);
                let (c, p) = shares(price);
                sh.earnings.entry(hosts[h].0).or_default().1 -= c;
                sh.revenue_pending -= p;
            }
            let price = world.prices[start];
            if let Some(TicketState::Held { promo, wallet }) = v.tickets.get(start).copied() {
                v.promo_held -= promo;
                v.wallet_held -= wallet;
                v.held -= price;
                v.tickets.insert(*start, TicketState::Active);
                let (c, p) = shares(price);
                let e = sh.earnings.entry(hosts[h].0).or_default();
                e.1 -= c;
                e.0 += c;
                sh.revenue_pending -= p;
                sh.revenue += p;
            }
        }
    }

    // Subscriptions: two months of renewals, a day at a time; the model
    // follows the same rules (a hold three days ahead if the coins are
    // there, posted at the end, else the subscription lapses).
    let t0 = onair::clock::now_ms();
    for day in 1..=66 {
        let now = t0 + day * DAY;
        onair::money::subscriptions::sweep(&money, now).await.unwrap();
        for v in &mut viewers {
            let host_id = hosts[v.host].0;
            let Some(mut s) = v.sub.clone() else { continue };
            if s.auto_renew && s.expires_at <= now {
                match s.hold.take() {
                    Some((p, c)) => {
                        v.promo_held -= p;
                        v.wallet_held -= c;
                        v.held -= SUB_PRICE;
                        s.expires_at += 30 * DAY;
                        let (cr, pl) = shares(SUB_PRICE);
                        let e = sh.earnings.entry(host_id).or_default();
                        e.1 -= cr;
                        e.0 += cr;
                        sh.revenue_pending -= pl;
                        sh.revenue += pl;
                    }
                    None => s.auto_renew = false,
                }
            }
            if s.auto_renew && s.hold.is_none() && s.expires_at > now && s.expires_at <= now + 3 * DAY {
                if let Some((p, c)) = v.split(SUB_PRICE) {
                    v.promo -= p;
                    v.coins -= c;
                    v.promo_held += p;
                    v.wallet_held += c;
                    v.held += SUB_PRICE;
                    s.hold = Some((p, c));
                    let (cr, pl) = shares(SUB_PRICE);
                    sh.earnings.entry(host_id).or_default().1 += cr;
                    sh.revenue_pending += pl;
                }
            }
            v.sub = Some(s);
        }
    }

    // Hosts cash out half their earnings; the admin pays or rejects.
    let mut hosts_model: HashMap<i64, (i64, i64, i64)> = HashMap::new();
    for (hid, _, token) in &hosts {
        let (avail, pending) = sh.earnings.get(hid).copied().unwrap_or_default();
        let mut payouts_pending = 0;
        let mut avail = avail;
        let amount = avail / 2;
        if amount >= 100 {
            let a = http.post("/api/me/payouts", token, &key(&mut rng), &json!({ "amount": amount })).await;
            assert_eq!(a.status, 201, "{}", a.body);
            let id = a.body["id"].as_i64().unwrap();
            match rng.random_range(0..3) {
                0 => payouts_pending = amount,
                1 => {
                    let r = http.post(&format!("/api/admin/payouts/{id}/paid"), &admin.token, &key(&mut rng), &json!({})).await;
                    assert_eq!(r.status, 200);
                }
                _ => {
                    let r = http.post(&format!("/api/admin/payouts/{id}/reject"), &admin.token, &key(&mut rng), &json!({})).await;
                    assert_eq!(r.status, 200);
                    avail += amount;
                }
            }
            avail -= amount;
        }
        hosts_model.insert(*hid, (avail, pending, payouts_pending));
    }

    // Everything against the model.
    for v in &viewers {
        let a = http.get("/api/wallet", &v.token).await;
        let got = (a.body["coins"].as_i64(), a.body["promo_coins"].as_i64(), a.body["held"].as_i64(), a.body["owed"].as_i64());
        assert_eq!(got, (Some(v.coins), Some(v.promo), Some(v.held), Some(v.owed)), "final wallet of {} (coins, promo, held, owed)", v.name);
    }
    for (hid, name, token) in &hosts {
        let a = http.get("/api/wallet", token).await;
        let (avail, pending, payouts) = hosts_model[hid];
        assert_eq!((a.body["earnings"].as_i64(), a.body["earnings_pending"].as_i64(), a.body["payouts_pending"].as_i64()), (Some(avail), Some(pending), Some(payouts)), "earnings of {name}");
    }
    let rev = http.get("/api/admin/ledger/accounts?code=revenue", &admin.token).await;
    let r = &rev.body[0];
    assert_eq!((r["credits_posted"].as_i64(), r["credits_pending"].as_i64()), (Some(sh.revenue), Some(sh.revenue_pending)), "the platform's revenue");
    let owed_total: i64 = viewers.iter().map(|v| v.owed).sum();
    let owed = http.get("/api/admin/ledger/accounts?code=owed&limit=500", &admin.token).await;
    let listed: i64 = owed.body.as_array().unwrap().iter().map(|a| a["debits_posted"].as_i64().unwrap() - a["credits_posted"].as_i64().unwrap()).sum();
    assert_eq!(listed, owed_total, "what is owed, as admins see it");
    let report = http.get("/api/admin/ledger/check", &admin.token).await.body;
    assert_eq!(report["ok"], true, "ledger check: {report:#}");

    let metrics = http.c.get(format!("{}/metrics", http.base)).send().await.unwrap().text().await.unwrap();
    let (batches, jobs) = (common::metric(&metrics, "onair_money_batches"), common::metric(&metrics, "onair_money_jobs"));
    let secs = |name: &str| -> f64 { metrics.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' '))).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0) };
    eprintln!(
        "money writer: {jobs} jobs in {batches} transactions ({:.1} a transaction; {:.2} s waiting for the write lock, {:.2} s running jobs, {:.2} s committing)",
        jobs as f64 / batches.max(1) as f64,
        secs("onair_money_begin_seconds"),
        secs("onair_money_run_seconds"),
        secs("onair_money_commit_seconds")
    );
    let mut counts: Vec<_> = stats.counts.iter().collect();
    counts.sort();
    eprintln!(
        "money simulation: seed {seed}: {} operations ({} requests) by {CLIENTS} clients in {:.1} s, {} transfers checked; {counts:?}; {} retries replayed, {} key conflicts, {} refused for funds, {} webhook deliveries ({} duplicates); {} coins owed after clawbacks",
        stats.ops,
        stats.requests,
        concurrent.as_secs_f64(),
        report["transfers"],
        stats.replays,
        stats.conflicts,
        stats.refused_402,
        stats.deliveries,
        stats.duplicates,
        owed_total
    );
    assert!(stats.ops >= total_ops * 9 / 10, "most rolls are operations: {}", stats.ops);
}
