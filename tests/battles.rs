//! PK battles (issue 15) over real HTTP and WebSockets against a real
//! server and SQLite, with the server's clock driven by the test: the
//! rules (challenge, busy hosts, decline, cancel, expiry, the countdown,
//! gift rules, like modes, aborts), the end with its winner, reward and
//! punishment phase, and the concurrency proof: 500 gifts from 100 viewers
//! to both sides, 50 of them committing within 50 ms of the end, scored
//! exactly by their commit timestamps, the reward paid once, and the
//! leaderboards equal to a model.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::api::{Api, User, Ws};
use common::peer::{self, PublishOpts, TestPeer, WatchOpts};
use common::money::{key, make_admin, post_keyed};
use common::shop::{buyers, live_stream};
use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const DAY: i64 = 24 * 3600 * 1000;
const REWARD: i64 = 250;
/// The reconnect grace of the test servers, seconds.
const GRACE_S: u64 = 3;

/// The most recent 12:00 UTC: far from any day, week or month boundary in
/// Tokyo (21:00 there), so a minute of battle stays in one bucket.
fn noon_utc() -> i64 {
    let now = onair::clock::now_ms();
    let noon = now / DAY * DAY + DAY / 2;
    if noon <= now {
        noon
    } else {
        noon - DAY
    }
}

/// A server whose clock is `clock` (Unix ms, moved by the test), its
/// leaderboards in Tokyo time, winners paid 250 coins.
async fn server(tag: &str, clock: Arc<AtomicI64>) -> onair::server::Server {
    onair::raise_fd_limit();
    let args = onair::config::SettingsArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        media_port: Some(0),
        media_bind: Some("127.0.0.1".parse().unwrap()),
        data_dir: Some(common::temp_dir(tag)),
        workers: Some(2),
        static_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static")),
        write_rate: Some(1_000_000),
        leaderboard_timezone: Some("Asia/Tokyo".into()),
        battle_reward_coins: Some(REWARD),
        // A host gone this long (real time) ends their stream, and so aborts their battle.
        reconnect_grace: Some(GRACE_S),
        ..Default::default()
    };
    let mut settings = onair::config::Settings::resolve(&args).unwrap();
    settings.platform.clock = onair::clock::Clock::from_fn(move || clock.load(Ordering::SeqCst));
    onair::server::Server::start(settings).await.unwrap()
}

fn ms(v: &Value) -> i64 {
    onair::clock::parse_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}"))).unwrap()
}

async fn battle(api: &Api, id: i64) -> Value {
    let r = api.get(&format!("/api/battles/{id}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

/// Waits (real time, the ticker runs every 100 ms) until the battle is in `state`.
async fn wait_state(api: &Api, id: i64, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = battle(api, id).await;
        if b["state"] == state {
            return b;
        }
        assert!(Instant::now() < deadline, "battle {id} never became {state}: {b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn challenge(api: &Api, from: &User, body: Value) -> common::http::Response {
    api.post("/api/battles", Some(&from.token), body).await
}

async fn gift(api: &Api, sid: i64, who: &User, gift: &str, count: i64) -> common::http::Response {
    post_keyed(api, &format!("/api/streams/{sid}/gifts"), &who.token, &key(), &json!({ "gift": gift, "count": count })).await
}

async fn promo_coins(api: &Api, u: &User) -> i64 {
    api.get("/api/wallet", Some(&u.token)).await.json()["promo_coins"].as_i64().unwrap()
}

/// Challenges, answers, cancels, expiry, busy hosts, a gift rule and a
/// like that do not score, the countdown, the end with its winner and
/// reward, the punishment phase keeping both hosts busy, the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_battle_from_challenge_to_record() {
    let start = noon_utc();
    let clock = Arc::new(AtomicI64::new(start));
    let server = server("battles-rules", clock.clone()).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bob = api.register("bob", "host").await;
    let cy = api.register("cyd", "host").await;
    let fans = buyers(&server, "fan", 2, 10_000).await;
    let (sa, sb) = (live_stream(&api, &ana, "Ana live").await, live_stream(&api, &bob, "Bob live").await);
    let mut bob_ws = Ws::connect(server.http_addr, Some(&bob.token)).await;
    let mut viewers_ws = Ws::connect(server.http_addr, None).await;
    viewers_ws.send(json!({ "type": "subscribe", "stream": sa })).await;
    viewers_ws.next_of("subscribed", 5).await;

    // Bad challenges.
    let body = |opp: &str| json!({ "opponent": opp, "duration_s": 60, "mode": "gifts" });
    let r = challenge(&api, &ana, body("cyd")).await;
    assert_eq!((r.status, r.error_code()), (409, "opponent_not_live".into()), "{}", r.body);
    let r = challenge(&api, &cy, body("ana")).await;
    assert_eq!((r.status, r.error_code()), (409, "not_live".into()), "{}", r.body);
    let r = challenge(&api, &ana, body("ana")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = challenge(&api, &ana, body("nobody")).await;
    assert_eq!((r.status, r.error_code()), (404, "user_not_found".into()), "{}", r.body);
    let r = challenge(&api, &ana, json!({ "opponent": "bob", "duration_s": 59, "mode": "gifts" })).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.json()["error"]["fields"]["duration_s"].is_string(), "{}", r.body);
    let r = challenge(&api, &ana, json!({ "opponent": "bob", "duration_s": 60, "mode": "likes", "rule": { "gift": "heart" } })).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let r = challenge(&api, &ana, json!({ "opponent": "bob", "duration_s": 60, "mode": "gifts", "rule": { "gift": "diamond_ring" } })).await;
    assert_eq!(r.status, 422, "{}", r.body);

    // Declined.
    let r = challenge(&api, &ana, body("bob")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let b = r.json();
    let id = b["id"].as_i64().unwrap();
    assert_eq!(b["state"], "invited");
    assert_eq!(ms(&b["expires_at"]) - ms(&b["created_at"]), 30_000);
    assert_eq!(b["sides"][0]["host"], "ana");
    assert_eq!(b["sides"][1]["stream"], sb);
    let inv = bob_ws.next_of("battle_invitation", 5).await;
    assert_eq!(inv["battle"]["id"], id);
    let r = challenge(&api, &ana, body("bob")).await;
    assert_eq!((r.status, r.error_code()), (409, "host_busy".into()), "one battle at a time: {}", r.body);
    let r = api.post(&format!("/api/battles/{id}/accept"), Some(&ana.token), json!({})).await;
    assert_eq!(r.status, 403, "only the challenged host answers: {}", r.body);
    let r = api.post(&format!("/api/battles/{id}/decline"), Some(&bob.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "declined");

    // Cancelled by the challenger (not by the challenged host).
    let id = challenge(&api, &ana, body("bob")).await.json()["id"].as_i64().unwrap();
    let r = api.delete(&format!("/api/battles/{id}"), Some(&bob.token)).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = api.delete(&format!("/api/battles/{id}"), Some(&ana.token)).await;
    assert_eq!((r.status, r.json()["state"].clone()), (200, json!("cancelled")), "{}", r.body);
    let r = api.post(&format!("/api/battles/{id}/accept"), Some(&bob.token), json!({})).await;
    assert_eq!((r.status, r.error_code()), (409, "battle_not_pending".into()), "{}", r.body);

    // Expired after 30 s of the server's clock.
    let id = challenge(&api, &bob, body("ana")).await.json()["id"].as_i64().unwrap();
    clock.fetch_add(29_999, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(battle(&api, id).await["state"], "invited", "not a millisecond early");
    clock.fetch_add(1, Ordering::SeqCst);
    let b = wait_state(&api, id, "expired").await;
    assert_eq!(b["ended_at"], b["expires_at"]);
    let r = api.post(&format!("/api/battles/{id}/accept"), Some(&ana.token), json!({})).await;
    assert_eq!(r.status, 409, "{}", r.body);

    // The battle: only hearts score, with a punishment phase.
    let r = challenge(&api, &ana, json!({ "opponent": "bob", "duration_s": 120, "mode": "gifts", "rule": { "gift": "heart" }, "punishment": true })).await;
    let id = r.json()["id"].as_i64().unwrap();
    let accepted_at = clock.load(Ordering::SeqCst);
    let r = api.post(&format!("/api/battles/{id}/accept"), Some(&bob.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = r.json();
    assert_eq!(b["state"], "countdown");
    assert_eq!(ms(&b["starts_at"]), accepted_at + 3_000);
    assert_eq!(ms(&b["ends_at"]), accepted_at + 3_000 + 120_000, "the end is fixed at the accept");
    let ends_at = ms(&b["ends_at"]);
    let upd = viewers_ws.next_where(5, |v| v["type"] == "battle_updated" && v["battle"]["state"] == "countdown").await;
    assert!(upd.is_some(), "viewers see the countdown");
    // A heart during the countdown does not score.
    assert_eq!(gift(&api, sa, &fans[0], "heart", 1).await.status, 201);
    clock.fetch_add(3_000, Ordering::SeqCst);
    wait_state(&api, id, "active").await;
    // cy goes live and challenges bob mid-battle: busy.
    let _sc = live_stream(&api, &cy, "Cy live").await;
    let r = challenge(&api, &cy, body("bob")).await;
    assert_eq!((r.status, r.error_code()), (409, "host_busy".into()), "{}", r.body);
    // Hearts score; roses (not the rule's gift) and likes (a gifts battle) do not.
    assert_eq!(gift(&api, sa, &fans[0], "heart", 3).await.status, 201);
    assert_eq!(gift(&api, sa, &fans[1], "heart", 1).await.status, 201);
    assert_eq!(gift(&api, sb, &fans[1], "heart", 2).await.status, 201);
    assert_eq!(gift(&api, sb, &fans[0], "rose", 50).await.status, 201);
    assert_eq!(api.post(&format!("/api/streams/{sb}/like"), Some(&fans[0].token), json!({})).await.status, 201);
    let score = viewers_ws.next_where(5, |v| v["type"] == "battle_score" && v["sides"][0]["score"] == 20 && v["sides"][1]["score"] == 10).await;
    assert!(score.is_some(), "battle_score pushed: {:?}", viewers_ws.seen.iter().filter(|v| v["type"] == "battle_score").collect::<Vec<_>>());
    let b = battle(&api, id).await;
    assert_eq!(b["sides"][0]["score"], 20);
    assert_eq!(b["sides"][0]["top_supporters"], json!([{ "user": "fan_0", "display_name": "fan_0", "points": 15 }, { "user": "fan_1", "display_name": "fan_1", "points": 5 }]));
    assert_eq!(b["sides"][1]["score"], 10);
    assert_eq!(b["winner"], Value::Null);
    let listed = api.get("/api/battles?state=active", None).await.json();
    assert_eq!(listed.as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect::<Vec<_>>(), vec![id]);

    // The end: ana wins 250 promo coins; the punishment phase holds both.
    let ana_promo = promo_coins(&api, &ana).await;
    clock.store(ends_at, Ordering::SeqCst);
    let ended = viewers_ws.next_of("battle_ended", 10).await;
    assert_eq!(ended["battle"]["winner"], "ana");
    assert_eq!(ended["battle"]["reward"], json!({ "coins": REWARD, "badge": "PK winner" }));
    assert_eq!(ms(&ended["battle"]["punishment_ends_at"]), ends_at + 30_000);
    assert_eq!(promo_coins(&api, &ana).await, ana_promo + REWARD);
    let r = challenge(&api, &cy, body("ana")).await;
    assert_eq!((r.status, r.error_code()), (409, "host_busy".into()), "the punishment phase holds the host: {}", r.body);
    clock.store(ends_at + 30_000, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = challenge(&api, &cy, body("ana")).await;
        if r.status != 409 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r.status, 201, "free after the punishment phase: {}", r.body);

    let rec = api.get("/api/users/ana/battles", None).await.json();
    assert_eq!((rec["wins"].as_i64(), rec["losses"].as_i64(), rec["draws"].as_i64()), (Some(1), Some(0), Some(0)), "{rec}");
    assert_eq!(rec["badge"], "PK winner");
    let rec = api.get("/api/users/bob/battles", None).await.json();
    assert_eq!((rec["wins"].as_i64(), rec["losses"].as_i64()), (Some(0), Some(1)), "{rec}");
    assert_eq!(rec["battles"].as_array().unwrap().iter().map(|b| b["state"].as_str().unwrap()).collect::<Vec<_>>(), ["ended", "expired", "cancelled", "declined"], "{rec}");
    let board = api.get("/api/leaderboards?board=hosts&period=day", None).await.json();
    assert_eq!(board["entries"][0]["user"], "ana");
    assert_eq!(board["entries"][0]["points"], 20);
    assert_eq!(board["entries"][0]["wins"], 1);
    assert_eq!(api.get("/api/leaderboards?board=everyone", None).await.status, 422);
    server.stop().await;
}

/// A likes battle scores likes; a host whose stream ends aborts the battle
/// (no winner, no reward) and frees both hosts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn likes_score_and_a_host_gone_aborts() {
    let clock = Arc::new(AtomicI64::new(noon_utc()));
    let server = server("battles-likes", clock.clone()).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bob = api.register("bob", "host").await;
    let fans = buyers(&server, "fan", 3, 1_000).await;
    let (_sa, sb) = (live_stream(&api, &ana, "Ana live").await, live_stream(&api, &bob, "Bob live").await);
    let id = challenge(&api, &ana, json!({ "opponent": "bob", "duration_s": 60, "mode": "likes" })).await.json()["id"].as_i64().unwrap();
    assert_eq!(api.post(&format!("/api/battles/{id}/accept"), Some(&bob.token), json!({})).await.status, 200);
    clock.fetch_add(3_000, Ordering::SeqCst);
    wait_state(&api, id, "active").await;
    for f in &fans {
        assert_eq!(api.post(&format!("/api/streams/{sb}/like"), Some(&f.token), json!({})).await.status, 201);
    }
    assert_eq!(gift(&api, sb, &fans[0], "crown", 1).await.status, 201, "a gift is welcome, but scores nothing in a likes battle");
    let b = battle(&api, id).await;
    assert_eq!((b["sides"][0]["score"].as_i64(), b["sides"][1]["score"].as_i64()), (Some(0), Some(3)), "{b}");
    assert_eq!(b["sides"][1]["top_supporters"].as_array().unwrap().len(), 3);
    let r = api.post(&format!("/api/streams/{sb}/end"), Some(&bob.token), json!({ "save": false })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = wait_state(&api, id, "aborted").await;
    assert_eq!(b["winner"], Value::Null);
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ledger_transfers WHERE code = 'battle_reward'").fetch_one(&server.app.pool).await.unwrap();
    assert_eq!(n, 0, "an aborted battle pays nothing");
    server.stop().await;
}

/// The proof: a 60 s battle, 100 viewers, 500 gifts to both sides,
/// the last 50 sent while the clock crosses the end (within 50 ms of it).
/// The final scores equal the sum of the gifts whose transfers committed
/// before the end (their commit timestamps, as the ledger and each answer
/// say), exactly; the reward is paid once (the end run again pays
/// nothing); the leaderboards equal a model of every gift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_gifts_score_exactly_at_the_boundary() {
    let start = noon_utc();
    let clock = Arc::new(AtomicI64::new(start));
    let server = server("battles-proof", clock.clone()).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bob = api.register("bob", "host").await;
    let admin = api.register("auditor", "viewer").await;
    make_admin(&server, &admin).await;
    let fans = buyers(&server, "fan", 100, 1_000_000).await;
    let streams = [live_stream(&api, &ana, "Ana live").await, live_stream(&api, &bob, "Bob live").await];
    let hosts = [&ana, &bob];
    let mut ws = Ws::connect(server.http_addr, None).await;
    ws.send(json!({ "type": "subscribe", "stream": streams[0] })).await;
    ws.next_of("subscribed", 5).await;

    let id = challenge(&api, &ana, json!({ "opponent": "bob", "duration_s": 60, "mode": "gifts" })).await.json()["id"].as_i64().unwrap();
    let b = api.post(&format!("/api/battles/{id}/accept"), Some(&bob.token), json!({})).await.json();
    let (starts_at, ends_at) = (ms(&b["starts_at"]), ms(&b["ends_at"]));
    assert_eq!(ends_at - starts_at, 60_000);
    clock.store(starts_at, Ordering::SeqCst);
    wait_state(&api, id, "active").await;
    let battle_began = Instant::now();

    let prices: HashMap<&str, i64> = [("rose", 1), ("heart", 5), ("coffee", 10), ("star", 50), ("fireworks", 100)].into_iter().collect();
    let kinds: Vec<&str> = prices.keys().copied().collect();
    let mut rng = StdRng::seed_from_u64(15);
    // (fan, side, gift, count) for every send, in order.
    let plan: Vec<(usize, usize, &str, i64)> = (0..500).map(|_| (rng.random_range(0..100), rng.random_range(0..2), kinds[rng.random_range(0..kinds.len())], rng.random_range(1..4))).collect();
    let send = |(fan, side, g, count): (usize, usize, &'static str, i64)| {
        let (api, who, sid) = (api, fans[fan].clone(), streams[side]);
        async move { (fan, side, g, count, gift(&api, sid, &who, g, count).await) }
    };

    // 450 gifts in nine rounds of 50 at once, the clock 6 s on each round.
    let mut answers = Vec::new();
    for round in 0..9 {
        clock.store(starts_at + 1_000 + round * 6_000, Ordering::SeqCst);
        let batch = plan[round as usize * 50..(round as usize + 1) * 50].to_vec();
        answers.extend(join_all(batch.into_iter().map(send)).await);
    }
    // The last 50 while the clock crosses the end: one sent every 2 ms of
    // the clock from 50 ms before the end (a real millisecond apart), each
    // committing whenever the writer gets to it.
    clock.store(ends_at - 50, Ordering::SeqCst);
    let mut last = Vec::new();
    let mut sent_at = Vec::new();
    for (i, p) in plan[450..].iter().enumerate() {
        sent_at.push(clock.load(Ordering::SeqCst));
        last.push(tokio::spawn(send(*p)));
        if i < 49 {
            clock.fetch_add(2, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut tail = Vec::new();
    for t in last {
        tail.push(t.await.unwrap());
    }
    clock.store(ends_at + 50, Ordering::SeqCst);
    let ended = ws.next_of("battle_ended", 10).await;
    let battle_ms = battle_began.elapsed().as_millis() as i64;

    // The model, from the answers: each gift's coins and commit timestamp.
    let end_ns = ends_at * 1_000_000;
    let mut score = [0i64; 2];
    let mut supporters: [HashMap<usize, i64>; 2] = [HashMap::new(), HashMap::new()];
    let mut received = [0i64; 2];
    let mut given: HashMap<usize, i64> = HashMap::new();
    let (mut before, mut after) = (0, 0);
    for (i, (fan, side, g, count, r)) in answers.iter().chain(tail.iter()).enumerate() {
        assert_eq!(r.status, 201, "gift {i}: {}", r.body);
        let sent = r.json();
        let coins = prices[g] * count;
        assert_eq!(sent["coins"], coins);
        let ts = sent["timestamp"].as_i64().unwrap();
        received[*side] += coins;
        *given.entry(*fan).or_default() += coins;
        if i >= 450 {
            assert!(ts >= (ends_at - 50) * 1_000_000 && ts <= (ends_at + 50) * 1_000_000, "gift {i} committed within 50 ms of the end: {ts}");
            if sent_at[i - 450] >= ends_at {
                assert!(ts >= end_ns, "gift {i} sent after the end cannot have committed before it");
            }
        }
        if ts < end_ns {
            assert!(ts >= starts_at * 1_000_000);
            score[*side] += coins;
            *supporters[*side].entry(*fan).or_default() += coins;
            if i >= 450 {
                before += 1;
            }
        } else {
            assert!(i >= 450, "gift {i} of the first 450 committed after the end");
            after += 1;
        }
    }
    assert!(after >= 25, "the gifts sent after the end ({after}) did not score");
    println!("last 50 gifts: {before} committed before the end, {after} after");

    // Exact scores, the winner, the top supporters.
    let b = &ended["battle"];
    assert_eq!(b["state"], "ended");
    assert_eq!([b["sides"][0]["score"].as_i64().unwrap(), b["sides"][1]["score"].as_i64().unwrap()], score, "final score = gifts committed before the end");
    assert_eq!(battle(&api, id).await["sides"], b["sides"]);
    let winner = if score[0] > score[1] { Some(0) } else if score[1] > score[0] { Some(1) } else { None };
    assert_eq!(b["winner"], winner.map(|w| json!(hosts[w].username)).unwrap_or(Value::Null));
    for side in 0..2 {
        let mut top: Vec<(usize, i64)> = supporters[side].iter().map(|(f, p)| (*f, *p)).collect();
        top.sort_by_key(|(f, p)| (-p, fans[*f].id));
        let want: Vec<Value> = top.iter().take(3).map(|(f, p)| json!({ "user": fans[*f].username, "display_name": fans[*f].username, "points": p })).collect();
        assert_eq!(b["sides"][side]["top_supporters"], json!(want), "side {side}");
    }

    // Pushed scores: coalesced to at most ten a second.
    let pushes = ws.seen.iter().filter(|v| v["type"] == "battle_score").count() as i64;
    assert!(pushes >= 1 && pushes <= battle_ms / 100 + 2, "{pushes} battle_score events in {battle_ms} ms");

    // The reward, once, even when the end runs again.
    let reward_count = || async {
        let (n, sum): (i64, Option<i64>) = sqlx::query_as("SELECT COUNT(*), SUM(amount) FROM ledger_transfers WHERE code = 'battle_reward'").fetch_one(&server.app.pool).await.unwrap();
        (n, sum.unwrap_or(0))
    };
    let paid = if winner.is_some() { (1, REWARD) } else { (0, 0) };
    assert_eq!(reward_count().await, paid);
    server.app.battles.end(id).await.unwrap();
    server.app.battles.tick(ends_at + 60_000).await.unwrap();
    assert_eq!(reward_count().await, paid, "paid once");
    let check = api.get("/api/admin/ledger/check", Some(&admin.token)).await.json();
    assert_eq!(check["ok"], true, "{check}");

    // Leaderboards against the model, in every period (all in one Tokyo day).
    let tokyo = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
    let today = jiff::Timestamp::from_millisecond(start).unwrap().to_zoned_datetime(tokyo.clone()).date();
    for period in ["day", "week", "month", "all"] {
        let hb = api.get(&format!("/api/leaderboards?board=hosts&period={period}"), None).await.json();
        let mut want: Vec<(String, i64, i64, i64)> = (0..2).map(|s| (hosts[s].username.clone(), score[s], received[s], (winner == Some(s)) as i64)).collect();
        want.sort_by_key(|(_, p, c, _)| (-p, -c));
        let got: Vec<(String, i64, i64, i64)> = hb["entries"].as_array().unwrap().iter().map(|e| (e["user"].as_str().unwrap().to_owned(), e["points"].as_i64().unwrap(), e["coins"].as_i64().unwrap(), e["wins"].as_i64().unwrap())).collect();
        assert_eq!(got, want, "hosts, {period}");
        let sb = api.get(&format!("/api/leaderboards?board=supporters&period={period}&limit=100"), None).await.json();
        let mut want: Vec<(String, i64)> = given.iter().map(|(f, c)| (fans[*f].username.clone(), *c)).collect();
        want.sort_by_key(|(name, c)| (-c, fans.iter().find(|f| &f.username == name).unwrap().id));
        let got: Vec<(String, i64)> = sb["entries"].as_array().unwrap().iter().map(|e| (e["user"].as_str().unwrap().to_owned(), e["coins"].as_i64().unwrap())).collect();
        assert_eq!(got, want, "supporters, {period}");
        if period == "day" {
            assert_eq!(hb["bucket"], today.to_string());
            assert_eq!(hb["timezone"], "Asia/Tokyo");
            assert_eq!(ms(&hb["from"]), today.to_zoned_datetime(tokyo.clone()).unwrap().timestamp().as_millisecond());
        }
    }
    server.stop().await;
}

/// A host live over WHIP: a real WebRTC publisher whose every packet is
/// stamped `tag`. Returns the stream, the publisher and its stream key,
/// once the platform has the stream live with media arriving.
async fn live_over_whip(server: &onair::server::Server, api: &Api, host: &User, tag: u8) -> (i64, TestPeer, String) {
    let key = api.stream_key(host).await;
    let opts = PublishOpts { simulcast: false, tag: Some(tag), keyframe_every: 30, ..Default::default() };
    let p = peer::publish(server.http_addr, &key, opts).await.expect("publish");
    let sid: i64 = p.answer.header("x-onair-stream").expect("x-onair-stream").parse().unwrap();
    common::wait_for_json(server.http_addr, &format!("/api/streams/{sid}"), |s| s["state"] == "live" && s["media_state"] == "receiving").await;
    (sid, p, key)
}

/// Packets (video and audio) stamped `tag` that `p` received after `after`.
fn since(p: &TestPeer, tag: u8, after: Instant) -> usize {
    p.video().iter().chain(p.audio().iter()).filter(|r| r.tag() == Some(tag) && r.at > after).count()
}

/// The first video packet stamped `tag` that `p` received.
fn first_video_of(p: &TestPeer, tag: u8) -> Option<peer::Rx> {
    p.video().into_iter().find(|r| r.tag() == Some(tag))
}

/// Challenges `to` (by `from`), accepts, and moves the clock over the
/// countdown; returns the battle once `active`.
async fn fight(api: &Api, clock: &AtomicI64, from: &User, to: &User, mode: &str) -> Value {
    let r = challenge(api, from, json!({ "opponent": to.username, "duration_s": 60, "mode": mode })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    let r = api.post(&format!("/api/battles/{id}/accept"), Some(&to.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    clock.fetch_add(3_000, Ordering::SeqCst);
    wait_state(api, id, "active").await
}

/// The media proof on the whole platform: two hosts live in their
/// own streams over WHIP, a battle made over HTTP. During it a two-slot
/// viewer of A's stream gets B's host (from a keyframe) after A's own, a
/// one-slot player of A keeps A alone, and B's host subscription (WHEP with
/// B's token) gets A; B's viewers likewise get A. At the end (the clock
/// moved past it) the opponent leaves every slot and no connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn battling_hosts_reach_each_others_viewers_until_the_end() {
    let clock = Arc::new(AtomicI64::new(noon_utc()));
    let server = server("battles-media", clock.clone()).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bob = api.register("bob", "host").await;
    let (sa, ana_pub, _) = live_over_whip(&server, &api, &ana, 1).await;
    let (sb, bob_pub, _) = live_over_whip(&server, &api, &bob, 2).await;
    let addr = server.http_addr;
    let viewer_a = peer::watch(addr, &sa.to_string(), WatchOpts { slots: 2, ..Default::default() }).await.expect("a's two-slot viewer");
    let player_a = peer::watch(addr, &sa.to_string(), WatchOpts::default()).await.expect("a's one-slot player");
    let viewer_b = peer::watch(addr, &sb.to_string(), WatchOpts { slots: 2, ..Default::default() }).await.expect("b's two-slot viewer");
    let host_b = peer::watch(addr, &sb.to_string(), WatchOpts { token: Some(bob.token.clone()), ..Default::default() }).await.expect("b's host subscription");
    let long_ago = Instant::now() - Duration::from_secs(60);
    assert!(common::wait_until(10, || since(&viewer_a, 1, long_ago) > 30 && since(&viewer_b, 2, long_ago) > 30).await, "each stream's viewers get its host");
    assert_eq!((since(&viewer_a, 2, long_ago), since(&host_b, 1, long_ago)), (0, 0), "nobody sees the other host before the battle");
    let mut ws = Ws::connect(addr, None).await;
    ws.send(json!({ "type": "subscribe", "stream": sa })).await;
    ws.next_of("subscribed", 5).await;

    let b = fight(&api, &clock, &ana, &bob, "gifts").await;
    let id = b["id"].as_i64().unwrap();
    let active = Instant::now();
    let reached = common::wait_until(10, || since(&viewer_a, 2, active) > 30 && since(&host_b, 1, active) > 30 && since(&viewer_b, 1, active) > 30).await;
    assert!(reached, "each side reaches the other: a's viewer got {} of b, b's host {} of a, b's viewer {} of a", since(&viewer_a, 2, active), since(&host_b, 1, active), since(&viewer_b, 1, active));
    assert!(first_video_of(&viewer_a, 2).unwrap().is_vp8_keyframe(), "b's host enters a's viewer at a keyframe");
    assert!(first_video_of(&host_b, 1).unwrap().is_vp8_keyframe(), "a enters b's host view at a keyframe");
    assert!(first_video_of(&viewer_b, 1).unwrap().is_vp8_keyframe(), "a enters b's viewer at a keyframe");
    assert!(since(&viewer_a, 1, active) > 30, "a's viewer keeps a");
    assert_eq!((since(&player_a, 2, long_ago), since(&host_b, 2, long_ago)), (0, 0), "a one-slot player keeps its own host; b never gets b back");
    // Each slot has its own SSRC: a on one, b on the other.
    let ssrc = |p: &TestPeer, tag: u8| p.video().iter().filter(|r| r.tag() == Some(tag)).map(|r| r.ssrc).collect::<std::collections::BTreeSet<u32>>();
    let (own, other) = (ssrc(&viewer_a, 1), ssrc(&viewer_a, 2));
    assert!(own.len() == 1 && other.len() == 1 && own != other, "a and b in two slots of a's viewer: {own:?} {other:?}");

    // The end, by the clock: the opponent leaves every slot, nobody is cut off.
    let sessions = server.app.sfu.session_count();
    clock.store(onair::clock::parse_rfc3339(b["ends_at"].as_str().unwrap()).unwrap(), Ordering::SeqCst);
    let ended = ws.next_where(10, |v| v["type"] == "battle_ended").await.expect("battle_ended");
    assert_eq!((ended["battle"]["id"].as_i64(), ended["battle"]["state"].as_str()), (Some(id), Some("ended")), "{ended}");
    assert!(common::wait_until(5, || server.app.sfu.linked_room(&sa.to_string()).is_none()).await, "the rooms are unlinked after the end");
    let unlinked = Instant::now();
    // What was in flight at the unlink (sent before it) may still land.
    let settled = unlinked + Duration::from_millis(150);
    assert!(common::wait_until(10, || since(&viewer_a, 1, settled) > 30 && since(&viewer_b, 2, settled) > 30).await, "each stream's own host goes on");
    assert_eq!(since(&viewer_a, 2, settled), 0, "b left a's viewer");
    assert_eq!(since(&viewer_b, 1, settled), 0, "a left b's viewer");
    assert_eq!(since(&host_b, 1, settled), 0, "a left b's host view");
    for (name, p) in [("a's viewer", &viewer_a), ("a's player", &player_a), ("b's viewer", &viewer_b), ("b's host view", &host_b), ("a", &ana_pub), ("b", &bob_pub)] {
        assert!(p.connected(), "{name} still connected: {:?}", p.state());
    }
    assert_eq!(server.app.sfu.session_count(), sessions, "no connection was touched");
    server.stop().await;
}

/// A host whose WHIP session goes away mid-battle: the battle goes on
/// through the reconnect grace (a publish back within it restores the
/// link), and once the host is gone past it their stream ends and the
/// battle is `aborted` (`battle_ended` says so): no winner, no reward, both
/// hosts free, the other stream's viewers untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_gone_past_the_grace_aborts_the_battle() {
    let clock = Arc::new(AtomicI64::new(noon_utc()));
    let server = server("battles-drop", clock.clone()).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bob = api.register("bob", "host").await;
    let fans = buyers(&server, "fan", 1, 1_000).await;
    let (sa, _ana_pub, _) = live_over_whip(&server, &api, &ana, 1).await;
    let (sb, bob_pub, bob_key) = live_over_whip(&server, &api, &bob, 2).await;
    let addr = server.http_addr;
    let viewer_a = peer::watch(addr, &sa.to_string(), WatchOpts { slots: 2, ..Default::default() }).await.expect("a's two-slot viewer");
    let mut ws = Ws::connect(addr, None).await;
    ws.send(json!({ "type": "subscribe", "stream": sa })).await;
    ws.next_of("subscribed", 5).await;
    let b = fight(&api, &clock, &ana, &bob, "gifts").await;
    let id = b["id"].as_i64().unwrap();
    assert_eq!(gift(&api, sb, &fans[0], "crown", 1).await.status, 201);
    let t = Instant::now();
    assert!(common::wait_until(10, || since(&viewer_a, 2, t) > 30).await, "b reaches a's viewer");

    // Bob drops and is back within the grace: the same battle, linked again.
    assert_eq!(common::http::delete_auth(addr, &bob_pub.location, &bob_key).await.status, 200);
    bob_pub.stop().await;
    common::wait_for_json(addr, &format!("/api/streams/{sb}"), |s| s["media_state"] == "reconnecting").await;
    assert_eq!(battle(&api, id).await["state"], "active", "a host reconnecting is still in the battle");
    let opts = PublishOpts { simulcast: false, tag: Some(2), keyframe_every: 30, ..Default::default() };
    let bob_pub = peer::publish(addr, &bob_key, opts.clone()).await.expect("republish");
    assert_eq!(bob_pub.answer.header("x-onair-stream"), Some(sb.to_string().as_str()), "the same stream resumes");
    let back = Instant::now();
    assert!(common::wait_until(10, || since(&viewer_a, 2, back) > 30).await, "b back in a's viewer after the reconnect");
    assert_eq!(battle(&api, id).await["state"], "active");

    // Bob drops for good: aborted once the grace is over, not before.
    assert_eq!(common::http::delete_auth(addr, &bob_pub.location, &bob_key).await.status, 200);
    let dropped = Instant::now();
    bob_pub.stop().await;
    common::wait_for_json(addr, &format!("/api/streams/{sb}"), |s| s["media_state"] == "reconnecting").await;
    assert_eq!(battle(&api, id).await["state"], "active", "within the grace the battle goes on");
    let ended = ws.next_where(GRACE_S + 10, |v| v["type"] == "battle_ended").await.expect("battle_ended");
    let after = dropped.elapsed();
    assert!(after >= Duration::from_secs(GRACE_S), "aborted only after the grace: {after:?}");
    assert_eq!((ended["battle"]["id"].as_i64(), ended["battle"]["state"].as_str()), (Some(id), Some("aborted")), "{ended}");
    assert_eq!(ended["battle"]["winner"], Value::Null, "{ended}");
    assert_eq!(ended["battle"]["sides"][1]["score"], 1000, "the score as it stood: {ended}");
    let s = api.get(&format!("/api/streams/{sb}"), None).await.json();
    assert_eq!(s["state"], "ended", "b's stream ended with its host gone: {s}");
    let b = battle(&api, id).await;
    assert_eq!((b["state"].as_str(), b["winner"].as_str(), b["reward"].as_object()), (Some("aborted"), None, None), "{b}");
    let (paid,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ledger_transfers WHERE code = 'battle_reward'").fetch_one(&server.app.pool).await.unwrap();
    assert_eq!(paid, 0, "an aborted battle pays nothing");
    assert_eq!(server.app.sfu.linked_room(&sa.to_string()), None, "a is unlinked");
    let r = api.get(&format!("/api/users/{}/battles", bob.username), None).await.json();
    assert_eq!((r["wins"].as_i64(), r["losses"].as_i64(), r["draws"].as_i64()), (Some(0), Some(0), Some(0)), "an aborted battle is on nobody's record: {r}");
    // Ana is free: she can challenge someone else at once.
    let cyd = api.register("cyd", "host").await;
    let (_sc, _cyd_pub, _) = live_over_whip(&server, &api, &cyd, 3).await;
    let r = challenge(&api, &ana, json!({ "opponent": "cyd", "duration_s": 60, "mode": "gifts" })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let t = Instant::now();
    assert!(common::wait_until(10, || since(&viewer_a, 1, t) > 30).await, "a's viewer goes on with a");
    assert!(viewer_a.connected(), "a's viewer was not cut off");
    server.stop().await;
}

/// Load-test clients (the bench's User-Agent, or `X-OnAir-Load-Test: 1`)
/// never score: their likes and gifts go through (the gift's coins move)
/// but neither a battle's score, its supporters nor the leaderboards see
/// them; the same viewer's ordinary like and gift do score.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_test_clients_never_score() {
    let clock = Arc::new(AtomicI64::new(noon_utc()));
    let server = server("battles-load-test", clock.clone()).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bob = api.register("bob", "host").await;
    let fans = buyers(&server, "fan", 1, 10_000).await;
    let fan = &fans[0];
    let (_sa, sb) = (live_stream(&api, &ana, "Ana live").await, live_stream(&api, &bob, "Bob live").await);
    let id = fight(&api, &clock, &ana, &bob, "gifts_and_likes").await["id"].as_i64().unwrap();
    let auth = format!("Bearer {}", fan.token);
    let bench_ua = "onair-bench/0.1.0 (load test)";
    let as_load_test: [&[(&str, &str)]; 2] = [&[("User-Agent", bench_ua)], &[("X-OnAir-Load-Test", "1")]];
    for extra in as_load_test {
        let mut headers = vec![("Authorization", auth.as_str()), ("Content-Type", "application/json")];
        headers.extend_from_slice(extra);
        let r = common::http::request(api.addr, "POST", &format!("/api/streams/{sb}/like"), &headers, b"{}").await;
        assert_eq!(r.status, 201, "a load test's like is taken: {}", r.body);
        let k = key();
        headers.push(("Idempotency-Key", k.as_str()));
        let r = common::http::request(api.addr, "POST", &format!("/api/streams/{sb}/gifts"), &headers, json!({ "gift": "rose", "count": 1 }).to_string().as_bytes()).await;
        assert_eq!(r.status, 201, "a load test's gift is sent: {}", r.body);
    }
    let spent = 10_000 - promo_coins(&api, fan).await;
    assert!(spent > 0, "the load test's gifts moved coins");
    let b = battle(&api, id).await;
    assert_eq!((b["sides"][1]["score"].as_i64(), b["sides"][1]["top_supporters"].as_array().map(Vec::len)), (Some(0), Some(0)), "nothing scored: {b}");
    let board = |which: &'static str| {
        let api = &api;
        async move { api.get(&format!("/api/leaderboards?board={which}&period=day"), None).await.json()["entries"].as_array().unwrap().len() }
    };
    assert_eq!((board("hosts").await, board("supporters").await), (0, 0), "no leaderboard counts a load test");

    // The same viewer as an ordinary client scores.
    assert_eq!(api.post(&format!("/api/streams/{sb}/like"), Some(&fan.token), json!({})).await.status, 201);
    assert_eq!(gift(&api, sb, fan, "rose", 1).await.status, 201);
    let b = battle(&api, id).await;
    let rose = spent / 2;
    assert_eq!(b["sides"][1]["score"].as_i64(), Some(1 + rose), "a like and a rose: {b}");
    assert_eq!(b["sides"][1]["top_supporters"][0]["user"], fan.username.as_str(), "{b}");
    assert_eq!((board("hosts").await, board("supporters").await), (1, 1));
    server.stop().await;
}
