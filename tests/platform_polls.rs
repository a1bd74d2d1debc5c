//! Polls and Q&A over real HTTP and WebSocket (issue 18): every rule and its
//! refusal code, the events viewers get, load-test clients left uncounted,
//! and 1,000 voters on one poll with exact counts while it closes.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::api::{Api, User, Ws};
use common::http::{request, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};

fn code(r: &Response) -> (u16, String) {
    (r.status, if r.status >= 400 { r.error_code() } else { String::new() })
}

async fn vote(api: &Api, sid: i64, poll: i64, who: &User, option: i64) -> Response {
    api.post(&format!("/api/streams/{sid}/polls/{poll}/votes"), Some(&who.token), json!({ "option": option })).await
}

/// A request as a load-test client (`header` is `X-OnAir-Load-Test: 1` or an `onair-bench` User-Agent).
async fn load_test_post(api: &Api, path: &str, who: &User, body: Value, header: (&str, &str)) -> Response {
    let auth = format!("Bearer {}", who.token);
    let bytes = body.to_string();
    request(api.addr, "POST", path, &[("Authorization", &auth), ("Content-Type", "application/json"), header], bytes.as_bytes()).await
}

fn votes(poll: &Value) -> Vec<i64> {
    poll["options"].as_array().unwrap().iter().map(|o| o["votes"].as_i64().unwrap()).collect()
}

async fn polls_of(api: &Api, sid: i64, who: Option<&User>) -> Vec<Value> {
    let r = api.get(&format!("/api/streams/{sid}/polls"), who.map(|u| u.token.as_str())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_rules() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let (vic, wes, mo, sue, bob) = (api.register("vic", "viewer").await, api.register("wes", "viewer").await, api.register("moe", "viewer").await, api.register("sue", "viewer").await, api.register("bob", "viewer").await);
    let sid = api.create_stream(&ana, json!({ "title": "Pasta night" })).await["id"].as_i64().unwrap();
    let polls_url = format!("/api/streams/{sid}/polls");

    // A timed poll in another stream runs while the rest happens; it closes by itself.
    let other = api.create_stream(&ana, json!({ "title": "Later", "scheduled_at": onair::clock::rfc3339(onair::clock::now_ms() + 86_400_000) })).await["id"].as_i64().unwrap();
    let timed = api.post(&format!("/api/streams/{other}/polls"), Some(&ana.token), json!({ "question": "Quick?", "options": ["Yes", "No"], "duration_s": 10 })).await;
    assert_eq!(timed.status, 201, "{}", timed.body);
    let timed = timed.json();
    assert!(timed["closes_at"].is_string(), "{timed}");

    let mut viewer_ws = Ws::connect(server.http_addr, Some(&wes.token)).await;
    viewer_ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    viewer_ws.next_of("subscribed", 5).await;

    // Only the host's team opens polls; 2-6 different options, 10-3600 s.
    let r = api.post(&polls_url, Some(&vic.token), json!({ "question": "Best?", "options": ["A", "B"] })).await;
    assert_eq!(code(&r), (403, "forbidden".into()));
    assert_eq!(api.post(&polls_url, None, json!({ "question": "Best?", "options": ["A", "B"] })).await.status, 401);
    let r = api.post(&polls_url, Some(&ana.token), json!({ "question": "", "options": ["A"], "duration_s": 5 })).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let fields = &r.json()["error"]["fields"];
    assert!(fields["question"].is_string() && fields["options"].is_string() && fields["duration_s"].is_string(), "{fields}");
    let r = api.post(&polls_url, Some(&ana.token), json!({ "question": "Q", "options": ["1", "2", "3", "4", "5", "6", "7"] })).await;
    assert_eq!(r.json()["error"]["fields"]["options"], "must be 2-6 options");
    let r = api.post(&polls_url, Some(&ana.token), json!({ "question": "Q", "options": ["Yes", " yes"] })).await;
    assert_eq!(r.json()["error"]["fields"]["options[1]"], "repeats another option");

    let r = api.post(&polls_url, Some(&ana.token), json!({ "question": "Best pasta?", "options": ["Carbonara", "Amatriciana", "Cacio e pepe"] })).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let poll = r.json();
    let pid = poll["id"].as_i64().unwrap();
    assert_eq!((poll["state"].as_str(), poll["closes_at"].is_null(), votes(&poll)), (Some("open"), true, vec![0, 0, 0]));
    let opened = viewer_ws.next_of("poll_opened", 5).await;
    assert_eq!(opened["poll"]["id"], pid);
    assert_eq!(opened["poll"]["options"][1]["text"], "Amatriciana");

    // One open poll per stream.
    let r = api.post(&polls_url, Some(&ana.token), json!({ "question": "Another?", "options": ["A", "B"] })).await;
    assert_eq!(code(&r), (409, "poll_open".into()));

    // One vote per user, changeable while open; `option` is the index.
    assert_eq!(api.post(&format!("{polls_url}/{pid}/votes"), None, json!({ "option": 0 })).await.status, 401);
    let r = vote(&api, sid, pid, &vic, 0).await;
    assert_eq!(r.status, 201, "first vote: {}", r.body);
    assert_eq!((r.json()["previous"].is_null(), r.json()["counted"].as_bool()), (true, Some(true)));
    let r = vote(&api, sid, pid, &vic, 2).await;
    assert_eq!(r.status, 200, "a changed vote: {}", r.body);
    assert_eq!(r.json()["previous"], 0);
    assert_eq!(vote(&api, sid, pid, &wes, 2).await.status, 201);
    let r = vote(&api, sid, pid, &wes, 3).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["fields"]["option"], "must be an option's index, 0-2");
    assert_eq!(vote(&api, sid, pid, &wes, -1).await.status, 400);
    let list = polls_of(&api, sid, Some(&vic)).await;
    assert_eq!(votes(&list[0]), vec![0, 0, 2], "vic's vote moved, counted once");
    assert_eq!(list[0]["my_vote"], 2);
    assert!(polls_of(&api, sid, None).await[0].get("my_vote").is_none(), "no my_vote without a login");

    // Results reach viewers live.
    let results = viewer_ws.next_where(5, |v| v["type"] == "poll_results" && v["poll"]["total_votes"] == 2).await.expect("poll_results with both votes");
    assert_eq!(votes(&results["poll"]), vec![0, 0, 2]);

    // Load-test clients' votes are taken and never counted.
    for header in [("X-OnAir-Load-Test", "1"), ("User-Agent", "onair-bench/0.1.0 (load test)")] {
        let r = load_test_post(&api, &format!("{polls_url}/{pid}/votes"), &mo, json!({ "option": 0 }), header).await;
        assert!(r.status == 201 || r.status == 200, "{}", r.body);
        assert_eq!(r.json()["counted"], false, "{header:?}");
    }
    assert_eq!(votes(&polls_of(&api, sid, None).await[0]), vec![0, 0, 2], "load tests are not counted");

    // Banned users cannot vote.
    assert_eq!(api.post("/api/channels/ana/bans", Some(&ana.token), json!({ "user": "bob" })).await.status / 100, 2);
    assert_eq!(code(&vote(&api, sid, pid, &bob, 0).await), (403, "banned".into()));

    // Only the team closes; closed polls refuse votes and keep their counts.
    assert_eq!(code(&api.post(&format!("{polls_url}/{pid}/close"), Some(&vic.token), json!({})).await), (403, "forbidden".into()));
    let r = api.post(&format!("{polls_url}/{pid}/close"), Some(&ana.token), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let closed = r.json();
    assert_eq!((closed["state"].as_str(), closed["close_reason"].as_str(), votes(&closed)), (Some("closed"), Some("host"), vec![0, 0, 2]));
    let ev = viewer_ws.next_of("poll_closed", 5).await;
    assert_eq!(votes(&ev["poll"]), vec![0, 0, 2]);
    assert_eq!(code(&api.post(&format!("{polls_url}/{pid}/close"), Some(&ana.token), json!({})).await), (409, "poll_closed".into()));
    assert_eq!(code(&vote(&api, sid, pid, &vic, 0).await), (409, "poll_closed".into()));
    assert_eq!(code(&vote(&api, sid, pid, &sue, 1).await), (409, "poll_closed".into()), "not even a first vote");
    assert_eq!(votes(&polls_of(&api, sid, None).await[0]), vec![0, 0, 2]);
    assert_eq!(code(&vote(&api, sid, 999_999, &vic, 0).await), (404, "poll_not_found".into()));
    assert_eq!(code(&vote(&api, other, pid, &vic, 0).await), (404, "poll_not_found".into()), "a poll of another stream");

    // The replay's timeline: where it opened, and counts over time ending in the final ones.
    let r = api.get(&format!("{polls_url}/{pid}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = r.json();
    let snaps = t["snapshots"].as_array().unwrap();
    assert!(snaps.len() >= 2, "opened at zero, closed at the final count: {t}");
    assert_eq!(snaps[0]["votes"], json!([0, 0, 0]));
    assert_eq!(snaps.last().unwrap()["votes"], json!([0, 0, 2]));

    // A moderator opens a subscribers-only poll; only subscribers (and the team) vote.
    assert_eq!(api.post("/api/channels/ana/moderators", Some(&ana.token), json!({ "user": "moe" })).await.status / 100, 2);
    let r = api.post(&polls_url, Some(&mo.token), json!({ "question": "Subs: next dish?", "options": ["Soup", "Salad"], "subscribers_only": true })).await;
    assert_eq!(r.status, 201, "a moderator opens polls: {}", r.body);
    let subs = r.json();
    assert_eq!(subs["subscribers_only"], true);
    let spid = subs["id"].as_i64().unwrap();
    assert_eq!(code(&vote(&api, sid, spid, &vic, 0).await), (403, "subscribers_only".into()));
    assert_eq!(api.post("/api/channels/ana/subscriptions", Some(&ana.token), json!({ "user": "sue", "days": 30 })).await.status, 201);
    assert_eq!(vote(&api, sid, spid, &sue, 1).await.status, 201, "a subscriber votes");
    assert_eq!(vote(&api, sid, spid, &mo, 0).await.status, 201, "the team votes");
    assert_eq!(votes(&polls_of(&api, sid, None).await[1]), vec![1, 1]);
    assert_eq!(api.post(&format!("{polls_url}/{spid}/close"), Some(&mo.token), json!({})).await.status, 200, "a moderator closes");

    // The timed poll closed by itself, on time, and refuses votes.
    let closes_at = onair::clock::parse_rfc3339(timed["closes_at"].as_str().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let closed = loop {
        let p = polls_of(&api, other, None).await.remove(0);
        if p["state"] == "closed" || Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((closed["state"].as_str(), closed["close_reason"].as_str()), (Some("closed"), Some("timer")), "{closed}");
    assert_eq!(onair::clock::parse_rfc3339(closed["closed_at"].as_str().unwrap()).unwrap(), closes_at, "closed at its time");
    assert_eq!(code(&vote(&api, other, timed["id"].as_i64().unwrap(), &vic, 0).await), (409, "poll_closed".into()));
    server.stop().await;
}

async fn ask(api: &Api, sid: i64, who: &User, text: &str) -> Response {
    api.post(&format!("/api/streams/{sid}/questions"), Some(&who.token), json!({ "text": text })).await
}

async fn questions_of(api: &Api, sid: i64, who: Option<&User>, sort: &str) -> Vec<Value> {
    let r = api.get(&format!("/api/streams/{sid}/questions?sort={sort}"), who.map(|u| u.token.as_str())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json().as_array().unwrap().clone()
}

fn ids(list: &[Value]) -> Vec<i64> {
    list.iter().map(|q| q["id"].as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn question_rules() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let (vic, wes, xan, bob, mo) = (api.register("vic", "viewer").await, api.register("wes", "viewer").await, api.register("xan", "viewer").await, api.register("bob", "viewer").await, api.register("moe", "viewer").await);
    let sid = api.create_stream(&ana, json!({ "title": "Ask me anything" })).await["id"].as_i64().unwrap();
    let q_url = format!("/api/streams/{sid}/questions");
    let mut viewer_ws = Ws::connect(server.http_addr, Some(&xan.token)).await;
    viewer_ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    viewer_ws.next_of("subscribed", 5).await;

    assert_eq!(api.post(&q_url, None, json!({ "text": "hi?" })).await.status, 401);
    let r = ask(&api, sid, &vic, "  How long do you cook the pasta?  ").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let q1 = r.json();
    assert_eq!((q1["text"].as_str(), q1["user"]["username"].as_str(), q1["upvotes"].as_i64(), q1["state"].as_str()), (Some("How long do you cook the pasta?"), Some("vic"), Some(0), Some("open")));
    let added = viewer_ws.next_of("question_added", 5).await;
    assert_eq!(added["question"]["id"], q1["id"]);
    let q1 = q1["id"].as_i64().unwrap();

    // The chat's rules: length, banned words, rate, bans, timeouts.
    assert_eq!(code(&ask(&api, sid, &vic, "   ").await), (422, "empty".into()));
    assert_eq!(code(&ask(&api, sid, &vic, &"é".repeat(501)).await), (422, "too_long".into()));
    assert_eq!(api.patch("/api/channels/ana/chat-settings", Some(&ana.token), json!({ "banned_words": ["spoiler"] })).await.status, 200);
    assert_eq!(code(&ask(&api, sid, &wes, "Any SPOILER for the finale?").await), (422, "banned_word".into()));
    let q2 = ask(&api, sid, &wes, "Which flour?").await.json()["id"].as_i64().unwrap();
    let q3 = ask(&api, sid, &wes, "Which salt?").await.json()["id"].as_i64().unwrap();
    assert_eq!(ask(&api, sid, &wes, "Which pan?").await.status, 201);
    let r = ask(&api, sid, &wes, "Which oven?").await;
    assert_eq!(code(&r), (429, "rate_limited".into()), "a burst of three, then the chat's rate");
    assert!(r.json()["error"]["retry_after_ms"].as_u64().is_some());
    assert_eq!(api.post("/api/channels/ana/bans", Some(&ana.token), json!({ "user": "bob" })).await.status / 100, 2);
    assert_eq!(code(&ask(&api, sid, &bob, "Why the ban?").await), (403, "banned".into()));
    assert_eq!(code(&api.post(&format!("{q_url}/{q1}/upvote"), Some(&bob.token), json!({})).await), (403, "banned".into()));
    assert_eq!(api.post("/api/channels/ana/timeouts", Some(&ana.token), json!({ "user": "xan", "seconds": 60 })).await.status / 100, 2);
    assert_eq!(code(&ask(&api, sid, &xan, "Timed out?").await), (403, "timed_out".into()));

    // Upvotes: once each, not one's own; load tests not counted.
    let up = |who: &User, q: i64| {
        let (path, token) = (format!("{q_url}/{q}/upvote"), who.token.clone());
        async move { api.post(&path, Some(&token), json!({})).await }
    };
    let r = up(&wes, q1).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!((r.json()["upvotes"].as_i64(), r.json()["upvoted"].as_bool()), (Some(1), Some(true)));
    assert_eq!(code(&up(&wes, q1).await), (409, "already_upvoted".into()));
    assert_eq!(code(&up(&vic, q1).await), (422, "own_question".into()));
    assert_eq!(up(&vic, q3).await.status, 201);
    assert_eq!(up(&mo, q3).await.status, 201);
    let r = load_test_post(&api, &format!("{q_url}/{q2}/upvote"), &vic, json!({}), ("X-OnAir-Load-Test", "1")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["upvotes"], 0, "a load test's upvote is not counted");
    let updated = viewer_ws.next_where(5, |v| v["type"] == "question_updated" && v["question"]["id"] == q3 && v["question"]["upvotes"] == 2).await;
    assert!(updated.is_some(), "upvotes go out live: {:?}", viewer_ws.seen);
    // Taking an upvote back.
    let r = api.delete(&format!("{q_url}/{q3}/upvote"), Some(&mo.token)).await;
    assert_eq!((r.status, r.json()["upvotes"].as_i64()), (200, Some(1)));
    assert_eq!(code(&api.delete(&format!("{q_url}/{q3}/upvote"), Some(&mo.token)).await), (404, "not_upvoted".into()));

    // Sorting: top (most upvoted, then oldest) and new.
    let top = questions_of(&api, sid, Some(&wes), "top").await;
    assert_eq!(ids(&top)[..3], [q1, q3, q2], "{top:?}");
    assert_eq!(top[0]["upvoted"], true, "wes upvoted q1");
    let new = questions_of(&api, sid, None, "new").await;
    assert_eq!(ids(&new).last(), Some(&q1));
    assert!(new[0].get("upvoted").is_none());
    assert_eq!(api.get(&format!("{q_url}?sort=loudest"), None).await.status, 400);

    // The host's team: answering now (one at a time), answered, hidden.
    let patch = |who: &User, q: i64, state: &str| {
        let (path, token, body) = (format!("{q_url}/{q}"), who.token.clone(), json!({ "state": state }));
        async move { api.patch(&path, Some(&token), body).await }
    };
    assert_eq!(code(&patch(&vic, q1, "answering").await), (403, "forbidden".into()));
    assert_eq!(patch(&ana, q1, "answering").await.json()["state"], "answering");
    let ev = viewer_ws.next_where(5, |v| v["type"] == "question_updated" && v["question"]["state"] == "answering").await.expect("answering goes out");
    assert_eq!(ev["question"]["id"], q1);
    assert_eq!(patch(&ana, q3, "answering").await.json()["state"], "answering");
    let states: HashMap<i64, String> = questions_of(&api, sid, None, "new").await.iter().map(|q| (q["id"].as_i64().unwrap(), q["state"].as_str().unwrap().to_owned())).collect();
    assert_eq!((states[&q1].as_str(), states[&q3].as_str()), ("answered", "answering"), "the one before is answered");
    assert_eq!(patch(&ana, q3, "answered").await.json()["state"], "answered");
    assert_eq!(patch(&ana, q3, "shouted").await.status, 400);

    // A moderator hides a question: gone for viewers, the event carries no text.
    assert_eq!(api.post("/api/channels/ana/moderators", Some(&ana.token), json!({ "user": "moe" })).await.status / 100, 2);
    assert_eq!(patch(&mo, q2, "hidden").await.status, 200);
    let ev = viewer_ws.next_where(5, |v| v["type"] == "question_updated" && v["question"]["id"] == q2).await.expect("the hide goes out");
    assert_eq!((ev["question"]["state"].as_str(), ev["question"]["text"].as_str(), ev["question"]["user"].is_null()), (Some("hidden"), Some(""), true), "{ev}");
    for who in [None, Some(&vic), Some(&wes)] {
        let list = questions_of(&api, sid, who, "top").await;
        assert!(!ids(&list).contains(&q2), "hidden from viewers: {list:?}");
        assert!(!list.iter().any(|q| q["text"] == "Which flour?"));
    }
    let team = questions_of(&api, sid, Some(&ana), "top").await;
    let hidden = team.iter().find(|q| q["id"] == q2).expect("the host still sees it");
    assert_eq!((hidden["state"].as_str(), hidden["text"].as_str()), (Some("hidden"), Some("Which flour?")));
    assert_eq!(code(&up(&vic, q2).await), (404, "question_not_found".into()), "hidden questions cannot be upvoted");
    assert_eq!(code(&patch(&ana, 999_999, "hidden").await), (404, "question_not_found".into()));
    server.stop().await;
}

/// 1,000 voters on one poll at once, then half of them change their vote
/// while the host closes it: the counts are exactly the acknowledged votes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_voters_counted_exactly() {
    const VOTERS: usize = 1000;
    let server = common::start_server_with(common::temp_dir("voters"), |a| a.write_rate = Some(1_000_000)).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let sid = api.create_stream(&ana, json!({ "title": "Big poll" })).await["id"].as_i64().unwrap();
    let accounts = &server.app.accounts;
    let mut voters = Vec::with_capacity(VOTERS);
    for i in 0..VOTERS {
        let u = accounts.create_unchecked(&format!("voter_{i}"), onair::accounts::Role::Viewer).await.unwrap();
        let pair = accounts.start_session(u, "test", None).await.unwrap();
        voters.push(User { id: pair.user.id, username: pair.user.username.clone(), token: pair.access_token, refresh: pair.refresh_token });
    }
    let pid = api.post(&format!("/api/streams/{sid}/polls"), Some(&ana.token), json!({ "question": "Which?", "options": ["A", "B", "C", "D"] })).await.json()["id"].as_i64().unwrap();
    let mut ws = Ws::connect(server.http_addr, None).await;
    ws.send(json!({ "type": "subscribe", "stream": sid })).await;
    ws.next_of("subscribed", 5).await;

    // Round one: everyone votes at once (200 requests in flight).
    let started = Instant::now();
    let first: Vec<u16> = futures_util::stream::iter(voters.iter().enumerate()).map(|(i, v)| async move { vote(&api, sid, pid, v, (i % 4) as i64).await.status }).buffer_unordered(200).collect().await;
    let burst = started.elapsed();
    assert!(first.iter().all(|s| *s == 201), "every first vote taken: {:?}", first.iter().filter(|s| **s != 201).collect::<Vec<_>>());
    let mut expected = [0i64; 4];
    for i in 0..VOTERS {
        expected[i % 4] += 1;
    }
    assert_eq!(votes(&polls_of(&api, sid, None).await[0]), expected.to_vec());

    // Results were pushed, coalesced: at most five a second (plus the edges).
    let last = ws.next_where(5, |v| v["type"] == "poll_results" && v["poll"]["total_votes"] == VOTERS as i64).await.expect("the final count goes out");
    assert_eq!(votes(&last["poll"]), expected.to_vec());
    let pushed = ws.seen.iter().filter(|v| v["type"] == "poll_results").count();
    let allowed = (burst.as_secs_f64() + 1.0) * 5.0 + 2.0;
    assert!((pushed as f64) <= allowed, "{pushed} poll_results in {burst:?}");

    // Round two: the odd voters move to option (i+1)%4 while the poll closes
    // halfway through; each change is either acknowledged and counted, or
    // refused as closed and not.
    let changes = futures_util::stream::iter(voters.iter().enumerate().filter(|(i, _)| i % 2 == 1))
        .map(|(i, v)| async move {
            let r = vote(&api, sid, pid, v, ((i + 1) % 4) as i64).await;
            assert!(r.status == 200 || r.status == 409, "voter {i}: {} {}", r.status, r.body);
            (i, r.status)
        })
        .buffer_unordered(100)
        .collect::<Vec<_>>();
    let close = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        api.post(&format!("/api/streams/{sid}/polls/{pid}/close"), Some(&ana.token), json!({})).await
    };
    let (changed, closed) = tokio::join!(changes, close);
    assert_eq!(closed.status, 200, "{}", closed.body);
    let mut want = [0i64; 4];
    let (mut moved, mut refused) = (0, 0);
    let outcome: HashMap<usize, u16> = changed.into_iter().collect();
    for i in 0..VOTERS {
        match outcome.get(&i) {
            Some(200) => {
                want[(i + 1) % 4] += 1;
                moved += 1;
            }
            Some(409) => {
                want[i % 4] += 1;
                refused += 1;
            }
            Some(s) => panic!("voter {i}: {s}"),
            None => want[i % 4] += 1,
        }
    }
    eprintln!("1,000 votes in {burst:?}; {moved} changes taken, {refused} refused as closed");
    assert_eq!(votes(&closed.json()), want.to_vec(), "the final counts are the acknowledged votes");
    assert_eq!(votes(&polls_of(&api, sid, None).await[0]), want.to_vec());
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM poll_votes WHERE poll_id = $1").bind(pid).fetch_one(&server.app.pool).await.unwrap();
    assert_eq!(rows, VOTERS as i64, "one vote per user");
    server.stop().await;
}
