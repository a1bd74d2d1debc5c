//! WHIP/WHEP bad input and protocol details: every error is a 4xx with a JSON
//! body that says what is wrong, and nothing else is disturbed.

mod common;

use common::http::{self, request};
use common::peer::{self, PublishOpts, WatchOpts};

const VP8_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_rejects_bad_requests_with_json_errors() {
    let server = common::start_server(1).await;
    let a = server.http_addr;
    let key = server.host_key("bad").await.unwrap();

    // Missing and wrong keys.
    let r = http::post_sdp(a, "/whip", None, VP8_OFFER).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "missing_stream_key"));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = http::post_sdp(a, "/whip", Some("sk_wrong"), VP8_OFFER).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "invalid_stream_key"));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("unknown or was revoked"));

    // Wrong content type.
    let auth = format!("Bearer {key}");
    let r = request(a, "POST", "/whip", &[("Authorization", &auth), ("Content-Type", "application/json")], b"{}").await;
    assert_eq!((r.status, r.error_code().as_str()), (415, "wrong_content_type"));
    assert!(r.body.contains("application/sdp"));

    // Garbage, empty, huge, and codec-less SDP.
    let r = http::post_sdp(a, "/whip", Some(&key), "hello world").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_sdp"), "{}", r.body);
    let r = http::post_sdp(a, "/whip", Some(&key), "").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_sdp"));
    let huge = format!("v=0\r\n{}", "a=x-filler:0123456789abcdef0123456789abcdef\r\n".repeat(4000));
    let r = http::post_sdp(a, "/whip", Some(&key), &huge).await;
    assert_eq!((r.status, r.error_code().as_str()), (413, "body_too_large"));
    let pcmu = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=rtpmap:0 PCMU/8000\r\n";
    let r = http::post_sdp(a, "/whip", Some(&key), pcmu).await;
    assert_eq!((r.status, r.error_code().as_str()), (422, "unsupported_codec"), "{}", r.body);
    // Well-formed at first sight but missing ICE/DTLS attributes.
    let r = http::post_sdp(a, "/whip", Some(&key), VP8_OFFER).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error_code(), "bad_sdp");

    // Nothing leaked from the failures, and the stream can still go live.
    assert_eq!(server.sfu.session_count(), 0);
    assert!(server.sfu.live_streams().is_empty());
    let p = peer::publish(a, &key, PublishOpts::default()).await.expect("publish after bad attempts");
    assert!(common::wait_until(10, || p.connected()).await);

    // Revoked keys stop working.
    let host = server.app.accounts.by_username("bad").await.unwrap().unwrap();
    assert_eq!(server.app.keys.revoke_all(host.id).await.unwrap(), 1);
    let r = http::post_sdp(a, "/whip", Some(&key), VP8_OFFER).await;
    assert_eq!(r.status, 401);
    p.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_and_session_errors() {
    let server = common::start_server(1).await;
    let a = server.http_addr;
    let r = http::post_sdp(a, "/whep/nobody", None, VP8_OFFER).await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "stream_not_live"));
    let r = http::post_sdp(a, "/whep/nobody?max_layer=x", None, VP8_OFFER).await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_layer"));
    let unknown = "0123456789abcdef0123456789abcdef";
    for (m, p) in [("DELETE", format!("/whip/{unknown}")), ("DELETE", "/whip/nope".into()), ("DELETE", format!("/whep/s/{unknown}")), ("DELETE", "/whip/0123456789abcdef".into())] {
        let r = request(a, m, &p, &[], b"").await;
        assert_eq!((r.status, r.error_code().as_str()), (404, "session_not_found"), "{m} {p}");
    }
    let r = request(a, "GET", "/api/streams/nobody/health", &[], b"").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "stream_not_live"));
    let r = request(a, "GET", "/no/such/page", &[], b"").await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));

    // With a live stream: layer requests are validated, and a WHIP session id
    // is not accepted on the WHEP URL (or vice versa).
    let key = server.host_key("livehost").await.unwrap();
    let p = peer::publish(a, &key, PublishOpts::default()).await.unwrap();
    assert!(common::wait_until(10, || p.connected()).await);
    common::wait_live(a, "livehost").await;
    let v = peer::watch(a, "livehost", WatchOpts::default()).await.unwrap();
    let links = v.answer.headers_named("link");
    assert!(links.iter().any(|l| l.contains("urn:ietf:params:whep:ext:core:layer")), "{links:?}");
    let layer = format!("{}/layer", v.location);
    let r = request(a, "POST", &layer, &[("Content-Type", "application/json")], b"{\"max_layer\":\"ultra\"}").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_layer"));
    let r = request(a, "POST", &layer, &[("Content-Type", "application/json")], b"not json").await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_json"));
    let whip_id = p.location.trim_start_matches("/whip/");
    let r = request(a, "DELETE", &format!("/whep/livehost/{whip_id}"), &[], b"").await;
    assert_eq!(r.status, 404, "a publisher session is not a viewer session");
    let viewer_id = v.location.rsplit('/').next().unwrap();
    let r = request(a, "DELETE", &format!("/whip/{viewer_id}"), &[], b"").await;
    assert_eq!(r.status, 404);
    let r = request(a, "DELETE", &format!("/whep/other/{viewer_id}"), &[], b"").await;
    assert_eq!(r.status, 404, "stream in the URL must match");

    // Session URLs are 128 random bits, and name nothing guessable.
    let whip_secret = p.location.rsplit('/').next().unwrap();
    assert!(whip_secret.len() == 32 && whip_secret.bytes().all(|b| b.is_ascii_hexdigit()), "{whip_secret}");

    // Trickle: only with the stream key that opened the session; wrong
    // content type; then a real candidate fragment.
    let bearer = format!("Bearer {key}");
    let frag = b"a=ice-ufrag:abcd\r\na=ice-pwd:efgh\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n";
    let r = request(a, "PATCH", &p.location, &[("Content-Type", "application/trickle-ice-sdpfrag")], frag).await;
    assert_eq!((r.status, r.error_code().as_str()), (401, "unauthorized"), "no credential: {}", r.body);
    let r = request(a, "PATCH", &p.location, &[("Content-Type", "application/sdp"), ("Authorization", &bearer)], b"a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n").await;
    assert_eq!((r.status, r.error_code().as_str()), (415, "wrong_content_type"));
    let r = request(a, "PATCH", &p.location, &[("Content-Type", "application/trickle-ice-sdpfrag"), ("Authorization", &bearer)], frag).await;
    assert_eq!(r.status, 204, "{}", r.body);

    // OPTIONS and CORS preflight.
    let r = request(a, "OPTIONS", "/whip", &[], b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("accept-post"), Some("application/sdp"));
    let r = request(
        a,
        "OPTIONS",
        "/whip",
        &[("Origin", "http://example.test"), ("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "authorization,content-type")],
        b"",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-allow-methods").unwrap().contains("PATCH"));

    // The viewer is still fine after all that.
    let before = v.video().len();
    assert!(common::wait_until(5, || v.video().len() > before + 10).await);
    v.stop().await;
    p.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_servers_are_announced_and_turn_credentials_go_only_with_authority() {
    let dir = common::temp_dir("ice");
    let args = onair::config::SettingsArgs {
        http_addr: Some("127.0.0.1:0".parse().unwrap()),
        media_port: Some(0),
        media_bind: Some("127.0.0.1".parse().unwrap()),
        data_dir: Some(dir),
        workers: Some(1),
        ice_servers: Some(vec!["stun:stun.example.test:3478".into(), "turn:turn.example.test:3478".into()]),
        turn_secret: Some("shared-with-coturn".into()),
        ..Default::default()
    };
    let server = onair::server::Server::start(onair::config::Settings::resolve(&args).unwrap()).await.unwrap();
    let a = server.http_addr;
    // Anyone: STUN only.
    let r = request(a, "OPTIONS", "/whip", &[], b"").await;
    assert_eq!(r.headers_named("link"), vec!["<stun:stun.example.test:3478>; rel=\"ice-server\""]);
    let cfg = request(a, "GET", "/api/config", &[], b"").await.json();
    assert_eq!(cfg["ice_servers"], serde_json::json!([{ "urls": ["stun:stun.example.test:3478"] }]), "{cfg}");

    // A logged-in user, and an authorized offer: short-lived TURN REST credentials.
    let check = |username: &str, credential: &str| {
        let (expiry, _user) = username.split_once(':').expect("expiry:user");
        let expiry: u64 = expiry.parse().unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(expiry > now && expiry <= now + 3600, "valid for an hour: {username}");
        use base64::Engine;
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, b"shared-with-coturn");
        let tag = base64::engine::general_purpose::STANDARD.decode(credential).unwrap();
        ring::hmac::verify(&key, username.as_bytes(), &tag).expect("coturn's use-auth-secret accepts it");
    };
    let api = common::api::Api::new(a);
    let user = api.register("icy", "viewer").await;
    let cfg = common::http::get_auth(a, "/api/config", &user.token).await.json();
    let turn = cfg["ice_servers"].as_array().unwrap().iter().find(|s| s["urls"][0] == "turn:turn.example.test:3478").cloned().expect("TURN for a login");
    check(turn["username"].as_str().unwrap(), turn["credential"].as_str().unwrap());

    let key = server.host_key("icehost").await.unwrap();
    let p = peer::publish(a, &key, PublishOpts::default()).await.unwrap();
    let links = p.answer.headers_named("link");
    let turn = links.iter().find(|l| l.starts_with("<turn:")).expect("TURN in the 201's links");
    let field = |name: &str| turn.split(&format!("{name}=\"")).nth(1).unwrap().split('"').next().unwrap().to_owned();
    check(&field("username"), &field("credential"));
    p.stop().await;
    server.stop().await;
}
