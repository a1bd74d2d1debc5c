//! Accounts and auth over real HTTP: registration rules, login, rotating
//! refresh tokens, logout, roles, ownership, stream keys, rate limits, the
//! error shape, the OpenAPI document.

mod common;

use common::api::{user_of, Api};
use common::http;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_refresh_logout() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);

    // Field-level validation, all at once.
    let r = api.post("/api/auth/register", None, json!({ "username": "A", "email": "nope", "password": "short" })).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "validation"), "{}", r.body);
    let fields = &r.json()["error"]["fields"];
    assert!(fields["username"].as_str().unwrap().contains("3-32"), "{fields}");
    assert!(fields["email"].is_string() && fields["password"].is_string(), "{fields}");
    let r = api.post("/api/auth/register", None, json!({ "username": "12345", "email": "a@b.co", "password": "long enough" })).await;
    assert!(r.json()["error"]["fields"]["username"].as_str().unwrap().contains("digits"), "{}", r.body);
    let r = api.post("/api/auth/register", None, json!({ "username": "mallory", "email": "m@b.co", "password": "long enough", "role": "admin" })).await;
    assert_eq!(r.json()["error"]["fields"]["role"], "must be viewer or host", "no one signs up as admin: {}", r.body);
    let r = api.post("/api/auth/register", None, json!({ "username": "x" })).await;
    assert_eq!(r.json()["error"]["fields"]["email"], "is required", "{}", r.body);
    let r = api.call("POST", "/api/auth/register", None, None).await;
    assert_eq!((r.status, r.error_code().as_str()), (415, "wrong_content_type"), "{}", r.body);
    let r = http::request(server.http_addr, "POST", "/api/auth/register", &[("Content-Type", "application/json")], b"{not json").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_json"), "{}", r.body);
    let big = vec![b'x'; 70 * 1024];
    let r = http::request(server.http_addr, "POST", "/api/auth/register", &[("Content-Type", "application/json")], &big).await;
    assert_eq!((r.status, r.error_code().as_str()), (413, "body_too_large"), "{}", r.body);

    // Register: logged in at once; the same name or email again is taken.
    let ana = api.register("ana", "host").await;
    let r = api.post("/api/auth/register", None, json!({ "username": "ANA", "email": "other@example.org", "password": "correct horse" })).await;
    assert_eq!((r.status, r.json()["error"]["fields"]["username"].as_str()), (409, Some("is already taken")), "case-folded: {}", r.body);
    let r = api.post("/api/auth/register", None, json!({ "username": "ana2", "email": "ANA@example.org", "password": "correct horse" })).await;
    assert_eq!((r.status, r.json()["error"]["fields"]["email"].as_str()), (409, Some("is already taken")), "{}", r.body);
    let me = api.get("/api/me", Some(&ana.token)).await.json();
    assert_eq!((me["username"].as_str(), me["role"].as_str()), (Some("ana"), Some("host")));

    // Login by username or email; wrong password is one generic error.
    let r = api.post("/api/auth/login", None, json!({ "username": "ana", "password": "wrong horse" })).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "bad_credentials"));
    let r = api.post("/api/auth/login", None, json!({ "username": "nobody", "password": "wrong horse" })).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "bad_credentials"), "unknown users look the same");
    let r = api.post("/api/auth/login", None, json!({ "username": "ana@example.org", "password": "correct horse" })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let login = user_of(&r.json());
    assert_eq!(r.json()["expires_in"], 900);

    // Refresh rotates: the new pair works, the old refresh token is spent,
    // and presenting it again ends that login altogether.
    let r = api.post("/api/auth/refresh", None, json!({ "refresh_token": login.refresh })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rotated = user_of(&r.json());
    assert_ne!(rotated.refresh, login.refresh);
    assert_eq!(api.get("/api/me", Some(&rotated.token)).await.status, 200);
    let r = api.post("/api/auth/refresh", None, json!({ "refresh_token": login.refresh })).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "refresh_token_reused"));
    let r = api.get("/api/me", Some(&rotated.token)).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "invalid_token"), "the whole login ended: {}", r.body);
    let r = api.post("/api/auth/refresh", None, json!({ "refresh_token": rotated.refresh })).await;
    assert_eq!(r.status, 401);

    // Logout ends the access token at once, not in 15 minutes; other logins live on.
    assert_eq!(api.post("/api/auth/logout", Some(&ana.token), json!({})).await.status, 204);
    assert_eq!(api.get("/api/me", Some(&ana.token)).await.status, 401);
    let r = api.post("/api/auth/login", None, json!({ "username": "ana", "password": "correct horse" })).await;
    assert_eq!(api.get("/api/me", Some(&user_of(&r.json()).token)).await.status, 200);

    // Tampered and missing tokens.
    let mut bad = ana.token.clone();
    bad.pop();
    let r = api.get("/api/me", Some(&bad)).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "invalid_token"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(api.get("/api/me", None).await.error_code(), "unauthorized");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_own_their_streams_and_keys() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let bob = api.register("bob", "host").await;
    let vic = api.register("vic", "viewer").await;

    // Viewers have no streams or keys.
    let r = api.post("/api/streams", Some(&vic.token), json!({ "title": "mine" })).await;
    assert_eq!((r.status, r.error_code().as_str()), (403, "forbidden"));
    assert_eq!(api.get("/api/me/stream-keys", Some(&vic.token)).await.status, 403);
    assert_eq!(api.post("/api/streams", None, json!({ "title": "anon" })).await.status, 401);

    let s = api.create_stream(&ana, json!({ "title": "Ana cooks" })).await;
    let id = s["id"].as_i64().unwrap();
    assert_eq!((s["state"].as_str(), s["host"]["username"].as_str()), (Some("scheduled"), Some("ana")));

    // Bob cannot touch it.
    for (method, path, body) in [
        ("PATCH", format!("/api/streams/{id}"), Some(json!({ "title": "Bob's now" }))),
        ("POST", format!("/api/streams/{id}/start"), None),
        ("POST", format!("/api/streams/{id}/end"), None),
        ("POST", format!("/api/streams/{id}/cancel"), None),
        ("DELETE", format!("/api/streams/{id}"), None),
        ("GET", format!("/api/streams/{id}/analytics"), None),
        ("PATCH", "/api/channels/ana/chat-settings".to_owned(), Some(json!({ "slow_mode_seconds": 10 }))),
        ("POST", "/api/channels/ana/bans".to_owned(), Some(json!({ "user": "vic" }))),
        ("POST", "/api/channels/ana/moderators".to_owned(), Some(json!({ "user": "bob" }))),
    ] {
        let r = api.call(method, &path, Some(&bob.token), body.as_ref()).await;
        assert_eq!(r.status, 403, "{method} {path} as another host: {}", r.body);
        assert!(r.json()["error"]["code"].is_string());
    }
    assert_eq!(api.get(&format!("/api/streams/{id}"), None).await.json()["title"], "Ana cooks", "unchanged");

    // Ana can; and an admin can.
    let r = api.patch(&format!("/api/streams/{id}"), Some(&ana.token), json!({ "title": "Ana bakes" })).await;
    assert_eq!((r.status, r.json()["title"].as_str()), (200, Some("Ana bakes")));
    server.app.accounts.set_role(bob.id, onair::accounts::Role::Admin).await.unwrap();
    let r = api.patch(&format!("/api/streams/{id}"), Some(&bob.token), json!({ "description": "admin edit" })).await;
    assert_eq!(r.status, 200, "admins may: {}", r.body);

    // Stream keys: made (secret once), listed (prefix only), rotated, revoked;
    // WHIP follows each change.
    let made = api.post("/api/me/stream-keys", Some(&ana.token), json!({ "label": "OBS" })).await.json();
    let key = made["key"].as_str().unwrap().to_owned();
    let key_id = made["id"].as_i64().unwrap();
    let list = api.get("/api/me/stream-keys", Some(&ana.token)).await;
    assert!(!list.body.contains(&key), "the secret is never listed");
    assert_eq!(list.json()[0]["prefix"], &key[..7]);
    let offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n";
    let whip = |k: String| async move { http::post_sdp(server.http_addr, "/whip", Some(&k), offer).await };
    assert_eq!(whip(key.clone()).await.status, 400, "a valid key gets as far as the SDP check");
    assert_eq!(api.post(&format!("/api/me/stream-keys/{key_id}/rotate"), Some(&bob.token), json!({})).await.status, 404, "not bob's key");
    let rotated = api.post(&format!("/api/me/stream-keys/{key_id}/rotate"), Some(&ana.token), json!({})).await.json();
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(rotated["label"], "OBS");
    assert_eq!(whip(key.clone()).await.error_code(), "invalid_stream_key", "the old key stopped at once");
    assert_eq!(whip(new_key.clone()).await.status, 400);
    let new_id = rotated["id"].as_i64().unwrap();
    assert_eq!(api.delete(&format!("/api/me/stream-keys/{new_id}"), Some(&ana.token)).await.status, 204);
    assert_eq!(whip(new_key).await.error_code(), "invalid_stream_key");
    assert_eq!(api.delete(&format!("/api/me/stream-keys/{new_id}"), Some(&ana.token)).await.status, 404, "already revoked");

    // A stream key is not a login.
    let k2 = api.stream_key(&ana).await;
    assert_eq!(api.get("/api/me", Some(&k2)).await.status, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_writes_are_rate_limited() {
    let dir = common::temp_dir("rate");
    let server = common::start_server_with(dir, |a| {
        a.auth_rate = Some(5);
        a.write_rate = Some(2);
        a.media_rate = Some(1);
    })
    .await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(api.post("/api/auth/login", None, json!({ "username": "ana", "password": "wrong horse" })).await.status);
    }
    assert_eq!(codes, [401, 401, 401, 401, 429, 429], "a burst of 5 auth requests a minute per IP (the register was one)");
    let r = api.post("/api/auth/login", None, json!({ "username": "ana", "password": "correct horse" })).await;
    assert_eq!(r.error_code(), "rate_limited");
    let retry = r.header("retry-after").expect("Retry-After").parse::<u64>().unwrap();
    assert!((1..=13).contains(&retry), "about 12 s until the next token: {retry}");
    assert!(r.json()["error"]["retry_after_ms"].as_u64().unwrap() > 0);

    // Writes per user: a burst of 10 at 2/s, then 429; reads are not limited.
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(api.post("/api/streams", Some(&ana.token), json!({ "title": format!("s{i}") })).await.status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 10, "{statuses:?}");
    assert_eq!(statuses[11], 429, "{statuses:?}");
    for _ in 0..20 {
        assert_eq!(api.get("/api/streams", None).await.status, 200);
    }

    // New media sessions per IP: a burst of ten at 1/s (each offer costs a
    // peer connection, answered or not).
    let offer = "v=0\r\n";
    let mut codes = Vec::new();
    for _ in 0..11 {
        codes.push(common::http::post_sdp(server.http_addr, "/whep/ana", None, offer).await.status);
    }
    assert_eq!(&codes[..10], &[404; 10], "not live: {codes:?}");
    assert_eq!(codes[10], 429, "{codes:?}");
    let r = common::http::post_sdp(server.http_addr, "/whip", Some("sk_x"), offer).await;
    assert_eq!((r.status, r.error_code().as_str()), (429, "rate_limited"));
    assert_eq!(common::http::request(server.http_addr, "DELETE", "/whep/ana/0123456789abcdef0123456789abcdef", &[], b"").await.status, 404, "only offers count");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_route() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let doc = api.get("/api/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.header("content-type"), Some("application/json"));
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/auth/register", &["post"][..]),
        ("/api/auth/login", &["post"]),
        ("/api/streams", &["get", "post"]),
        ("/api/streams/{id}", &["get", "patch", "delete"]),
        ("/api/streams/{id}/chat", &["get", "post"]),
        ("/api/streams/{id}/analytics", &["get"]),
        ("/api/channels/{host}/timeouts", &["post"]),
        ("/api/ws", &["get"]),
    ] {
        for m in methods {
            assert!(paths[path][m].is_object(), "{m} {path} is documented");
        }
    }
    // Every documented operation is served: none of them is a 404 route miss
    // (the app answers with its own codes, never "no route").
    for (path, methods) in paths {
        let concrete = path.replace("{id}", "1").replace("{host}", "nobody").replace("{user}", "nobody").replace("{key_id}", "1").replace("{message_id}", "1").replace("{webhook_id}", "1");
        for m in methods.as_object().unwrap().keys() {
            let r = api.call(&m.to_uppercase(), &concrete, None, None).await;
            assert!(!(r.status == 404 && r.body.contains("no route")), "{m} {path} is documented but not routed: {}", r.body);
        }
    }
    // Schemas the pages rely on are there.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for s in ["Stream", "ChatMessage", "TokenPair", "ErrorBody", "Event", "Report"] {
        assert!(schemas.contains_key(s), "schema {s}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // Every reference resolves (clients and schema-driven fuzzers load it).
    fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                    out.push(r.to_owned());
                }
                m.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50, "{}", all.len());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(schemas.contains_key(name), "{r} is referenced but not defined");
    }
    server.stop().await;
}
