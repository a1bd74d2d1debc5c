//! Sessions come and go without leaking: 1,000 WHEP sessions created and torn
//! down, six times; the process must stop growing.

mod common;

use common::http::{self, request};
use common::peer::{self, PublishOpts};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A minimal but complete recvonly offer (ICE and DTLS attributes included).
fn viewer_offer() -> String {
    let fp = (0..32).map(|i| format!("{:02X}", i * 7 % 256)).collect::<Vec<_>>().join(":");
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 {fp}\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:test\r\na=ice-pwd:testtesttesttesttesttest\r\n\
         a=setup:actpass\r\na=rtcp-mux\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sessions_come_back() {
    // 1,000 offers a round from one address: far past the default per-IP
    // rate and per-network session cap.
    let server = common::start_server_with(common::temp_dir("churn"), |a| {
        a.media_rate = Some(100_000);
        a.max_sessions_per_network = Some(2_000);
    })
    .await;
    let key = server.host_key("churn").await.unwrap();
    let publisher = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || publisher.connected()).await);
    common::wait_for_json(server.http_addr, "/api/users/churn", |p| p["live"]["state"] == "live").await;
    let offer = viewer_offer();

    let mut rss = Vec::new();
    for round in 0..6 {
        let mut locations = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let r = http::post_sdp(server.http_addr, "/whep/churn", None, &offer).await;
            assert_eq!(r.status, 201, "round {round}: {}", r.body);
            locations.push(r.header("location").unwrap().to_owned());
        }
        assert_eq!(server.sfu.session_count(), 1001);
        for loc in &locations {
            let r = request(server.http_addr, "DELETE", loc, &[], b"").await;
            assert_eq!(r.status, 200);
        }
        assert_eq!(server.sfu.session_count(), 1, "only the publisher is left");
        let m = request(server.http_addr, "GET", "/metrics", &[], b"").await.body;
        assert!(m.contains("onair_viewers 0\n"), "{m}");
        rss.push(rss_bytes());
    }
    eprintln!("RSS per round: {rss:?}");
    // Early rounds grow the allocator's pools (fragmentation settles, growth
    // halves round over round); a leak would instead add the same amount every
    // round. So: the last round must add under 1 KB per session, and far less
    // than the second round did.
    let growth: Vec<u64> = rss.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
    let last = *growth.last().unwrap();
    assert!(last < 1024 * 1000, "the last 1000 sessions added {last} bytes: {rss:?}");
    assert!(last * 2 <= growth[0].max(1024 * 1000), "growth is not settling: {growth:?}");
    // The stream still works.
    let v = peer::watch(server.http_addr, "churn", Default::default()).await.unwrap();
    assert!(common::wait_until(10, || v.video().len() > 10).await);
    v.stop().await;
    publisher.stop().await;
    server.stop().await;
}
