//! Secrets and the edges of every request: the token signing keys live in a
//! private file (not the database) and rotate without logging anyone out;
//! `?token=` only opens WebSockets; every response carries the security
//! headers the pages are built for; `X-Forwarded-For` names the client only
//! behind a trusted proxy.

mod common;

use std::path::PathBuf;

use base64::Engine;
use common::api::{user_of, Api, Ws};
use common::http;
use onair::accounts::signing::{self, EnvSecrets};
use onair::accounts::token::kid_of;
use onair::config::{Settings, SettingsArgs};
use onair::server::Server;
use serde_json::json;

fn args(dir: PathBuf) -> SettingsArgs {
    SettingsArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        media_port: Some(0),
        media_bind: Some("127.0.0.1".parse().unwrap()),
        data_dir: Some(dir),
        workers: Some(1),
        static_dir: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static")),
        ..Default::default()
    }
}

async fn start(dir: PathBuf, jwt: EnvSecrets) -> Server {
    let mut settings = Settings::resolve(&args(dir)).unwrap();
    settings.jwt = jwt;
    Server::start(settings).await.unwrap()
}

/// The `kid` of a JWT's header.
fn kid(token: &str) -> String {
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<serde_json::Value>(&header).unwrap()["kid"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_live_in_a_private_file_and_rotate_without_logging_anyone_out() {
    let dir = common::temp_dir("keys");
    let server = start(dir.clone(), EnvSecrets::default()).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM server_settings WHERE name LIKE '%jwt%'").fetch_one(&server.app.pool).await.unwrap();
    assert_eq!(rows, 0, "no signing key in the database");
    let file = signing::key_file(&dir);
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "only the server's user may read it");
    }
    let first_kid = kid(&ana.token);
    assert_eq!(server.app.accounts.key_ids(), vec![first_kid.clone()], "the token names its key");

    // Rotate (what `onair jwt-key rotate` does) and reload (what SIGHUP does).
    let (new_kid, kept) = signing::rotate(&dir, &server.app.pool, onair::clock::now_ms() / 1000).await.unwrap();
    assert_eq!(kept, vec![first_kid.clone()]);
    server.reload_keys().await.unwrap();
    assert_eq!(api.get("/api/me", Some(&ana.token)).await.status, 200, "a token of the old key still works");
    let r = api.post("/api/auth/refresh", None, json!({ "refresh_token": ana.refresh })).await;
    let fresh = user_of(&r.json());
    assert_eq!(kid(&fresh.token), new_kid, "new tokens are signed with the new key");
    assert_eq!(api.get("/api/me", Some(&fresh.token)).await.status, 200);
    server.stop().await;

    // A restart on the same directory: both still work.
    let server = start(dir.clone(), EnvSecrets::default()).await;
    let api = Api::new(server.http_addr);
    assert_eq!(api.get("/api/me", Some(&ana.token)).await.status, 200);
    assert_eq!(api.get("/api/me", Some(&fresh.token)).await.status, 200);
    server.stop().await;

    // ONAIR_JWT_SECRET takes over signing; the file's keys still verify.
    let secret = "a secret of more than 32 characters, from the environment";
    let server = start(dir.clone(), EnvSecrets { current: Some(secret.into()), previous: vec![] }).await;
    let api = Api::new(server.http_addr);
    assert_eq!(api.get("/api/me", Some(&fresh.token)).await.status, 200, "moving to the variable logs no one out");
    let r = api.post("/api/auth/login", None, json!({ "username": "ana", "password": "correct horse" })).await;
    assert_eq!(kid(&user_of(&r.json()).token), kid_of(secret.as_bytes()));
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_token_only_opens_websockets() {
    let server = common::start_server(1).await;
    let api = Api::new(server.http_addr);
    let ana = api.register("ana", "host").await;
    let key = api.stream_key(&ana).await;
    for (method, path) in [
        ("GET", format!("/api/me?token={}", ana.token)),
        ("GET", format!("/api/streams?type=live&token={}", ana.token)),
        ("GET", format!("/api/streams/ana/health?token={key}")),
        ("POST", format!("/whip?token={key}")),
        ("GET", format!("/watch/ana?token={}", ana.token)),
    ] {
        let r = http::request(server.http_addr, method, &path, &[], b"").await;
        assert_eq!((r.status, r.error_code().as_str()), (400, "token_in_query"), "{method} {path}: {}", r.body);
    }
    assert_eq!(api.get("/api/me", Some(&ana.token)).await.status, 200, "the header works");
    // Opening a WebSocket is what ?token= is for.
    let mut ws = Ws::connect(server.http_addr, Some(&ana.token)).await;
    assert_eq!(ws.seen[0]["user"]["username"], "ana", "logged in by ?token=: {:?}", ws.seen);
    ws.send(json!({ "type": "ping", "id": 1 })).await;
    ws.next_of("pong", 5).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers_and_the_pages_fit_the_policy() {
    let server = common::start_server(1).await;
    let host = server.http_addr.to_string();
    for path in ["/", "/login", "/dashboard", "/publish", "/watch/ana", "/static/watch.js", "/static/onair.css", "/api/streams", "/api/config", "/nowhere"] {
        let r = http::request(server.http_addr, "GET", path, &[], b"").await;
        let csp = r.header("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP"));
        for part in ["default-src 'self'", "script-src 'self';", "style-src 'self';", "object-src 'none'", "frame-ancestors 'none'", &format!("connect-src 'self' ws://{host} wss://{host}")] {
            assert!(csp.contains(part), "{path}: CSP lacks {part}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("same-origin"), "{path}");
    }
    // The pages need nothing the policy forbids: no inline script, no
    // inline event handler, no style attribute (a browser would refuse them).
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "html") {
            let html = std::fs::read_to_string(&path).unwrap().to_ascii_lowercase();
            for (i, _) in html.match_indices("<script") {
                let tag = &html[i..i + html[i..].find('>').unwrap()];
                assert!(tag.contains(" src="), "{}: inline <script>", path.display());
            }
            assert!(!html.contains("<style"), "{}: inline <style>", path.display());
            assert!(!html.contains(" style="), "{}: a style attribute", path.display());
            let handler = html.split(|c: char| c.is_whitespace()).any(|w| w.starts_with("on") && w.contains("=\"") && w[2..w.find('=').unwrap()].chars().all(|c| c.is_ascii_lowercase()));
            assert!(!handler, "{}: an inline event handler", path.display());
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    // The same three logins from "different clients" through a proxy at 127.0.0.1.
    async fn logins(server: &Server) -> Vec<(u16, Option<String>)> {
        let mut out = Vec::new();
        for xff in ["198.51.100.1", "198.51.100.2", "6.6.6.6, 203.0.113.9"] {
            let body = json!({ "username": "ana", "password": "correct horse" }).to_string();
            let r = http::request(server.http_addr, "POST", "/api/auth/login", &[("Content-Type", "application/json"), ("X-Forwarded-For", xff)], body.as_bytes()).await;
            let ip: Option<(Option<String>,)> = sqlx::query_as("SELECT ip FROM auth_sessions ORDER BY id DESC LIMIT 1").fetch_optional(&server.app.pool).await.unwrap();
            out.push((r.status, if r.status == 200 { ip.and_then(|i| i.0) } else { None }));
        }
        out
    }

    // No trusted proxies: the header is ignored; every login is from 127.0.0.1,
    // and the third is over the limit of two a minute (the registration was one).
    let direct = common::start_server_with(common::temp_dir("xff"), |a| a.auth_rate = Some(3)).await;
    Api::new(direct.http_addr).register("ana", "host").await;
    let got = logins(&direct).await;
    assert_eq!(got, vec![(200, Some("127.0.0.1".into())), (200, Some("127.0.0.1".into())), (429, None)], "X-Forwarded-For ignored");
    direct.stop().await;

    // Behind a trusted proxy: each client is itself, for the limit and the
    // record; of "6.6.6.6, 203.0.113.9" only what the proxy added counts.
    let proxied = common::start_server_with(common::temp_dir("xff"), |a| {
        a.auth_rate = Some(3);
        a.trusted_proxies = Some(vec!["127.0.0.1/32".into()]);
    })
    .await;
    Api::new(proxied.http_addr).register("ana", "host").await;
    let got = logins(&proxied).await;
    assert_eq!(got, vec![(200, Some("198.51.100.1".into())), (200, Some("198.51.100.2".into())), (200, Some("203.0.113.9".into()))], "clients named by the proxy");
    proxied.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_rotates_and_sighup_reloads_a_running_server() {
    use common::process::{cli, Process};
    let dir = common::temp_dir("hup");
    let server = Process::start(&dir, &[], &[]).await;
    let api = Api::new(server.addr);
    let ana = api.register("ana", "host").await;
    let new_kid = cli(&dir, &["jwt-key", "rotate"]).await.trim().to_owned();
    assert_ne!(new_kid, kid(&ana.token));
    server.signal(libc::SIGHUP);
    // The signal is handled by the time a new token says so (each refresh
    // hands out the next refresh token).
    let (mut fresh, mut refresh) = (String::new(), ana.refresh.clone());
    for _ in 0..50 {
        let r = api.post("/api/auth/refresh", None, json!({ "refresh_token": refresh })).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let u = user_of(&r.json());
        (fresh, refresh) = (u.token, u.refresh);
        if kid(&fresh) == new_kid {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(kid(&fresh), new_kid, "after SIGHUP the server signs with the new key");
    assert_eq!(api.get("/api/me", Some(&ana.token)).await.status, 200, "the old key still verifies");
    let list = cli(&dir, &["jwt-key", "list"]).await;
    assert!(list.starts_with(&format!("{new_kid}\tsigns")) && list.contains("retired"), "{list}");
    server.kill().await;
}
