//! Hostile clients cost other users nothing: keyframe-request floods, offer
//! floods, junk datagrams, a panic in one peer's handling, session caps.
//! Real WebRTC peers throughout; "loses nothing" means the other viewers'
//! video sequence numbers have no hole while the abuse goes on.

mod common;

use std::time::{Duration, Instant};

use common::http::{self, request};
use common::peer::{self, PublishOpts, Rx, TestPeer, WatchOpts};

/// Packets missing from `rx`'s main video stream (the SSRC with most
/// packets), by sequence number, among those that arrived in `[from, to)`.
/// A packet repaired by a retransmission (RFC 4588: another SSRC, the
/// original sequence number first in the payload) is not missing.
fn holes(rx: &[Rx], from: Instant, to: Instant) -> u64 {
    let mut by_ssrc = std::collections::HashMap::<u32, Vec<&Rx>>::new();
    for r in rx.iter().filter(|r| r.at >= from && r.at < to) {
        by_ssrc.entry(r.ssrc).or_default().push(r);
    }
    let Some(main) = by_ssrc.values().max_by_key(|v| v.len()).map(|v| v[0].ssrc) else { return u64::MAX };
    let mut seqs: Vec<u16> = by_ssrc[&main].iter().map(|r| r.seq).collect();
    for r in rx.iter().filter(|r| r.ssrc != main && r.payload.len() >= 2 && r.at >= from) {
        seqs.push(u16::from_be_bytes([r.payload[0], r.payload[1]]));
    }
    // Unwrap 16-bit sequence numbers from the first one.
    let first = seqs[0];
    let mut ext: Vec<i64> = seqs.iter().map(|s| i64::from(s.wrapping_sub(first) as i16)).collect();
    ext.sort_unstable();
    ext.dedup();
    let span = (ext[ext.len() - 1] - ext[0] + 1) as u64;
    span - ext.len() as u64
}

async fn metric(addr: std::net::SocketAddr, name: &str) -> u64 {
    common::metric(&request(addr, "GET", "/metrics", &[], b"").await.body, name)
}

async fn live_with_viewers(server: &onair::server::Server, name: &str, viewers: usize) -> (TestPeer, Vec<TestPeer>) {
    let key = server.host_key(name).await.unwrap();
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || p.connected()).await, "publisher connects");
    let mut vs = Vec::new();
    for _ in 0..viewers {
        vs.push(peer::watch(server.http_addr, name, WatchOpts::default()).await.expect("watch"));
    }
    assert!(common::wait_until(10, || vs.iter().all(|v| v.video().len() > 30)).await, "viewers receive");
    (p, vs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyframe_request_flood_reaches_the_publisher_as_two_a_second_and_costs_others_nothing() {
    let server = common::start_server(2).await;
    let (p, vs) = live_with_viewers(&server, "plis", 1).await;
    let flood = peer::watch(server.http_addr, "plis", WatchOpts { pli_per_second: 5_000, ..Default::default() }).await.unwrap();
    assert!(common::wait_until(10, || flood.video().len() > 30).await);
    // Measure three seconds of flood, once it is under way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (start, plis_before, sent_before) = (Instant::now(), p.seen.lock().unwrap().plis_total, flood.seen.lock().unwrap().plis_sent);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (end, plis, sent) = (Instant::now(), p.seen.lock().unwrap().plis_total - plis_before, flood.seen.lock().unwrap().plis_sent - sent_before);
    let secs = end.duration_since(start).as_secs_f64();
    assert!(sent as f64 >= 2_000.0 * secs, "the flood ran: {sent} PLIs in {secs:.1} s");
    assert!(plis as f64 <= 2.0 * secs + 1.0, "the publisher got {plis} PLIs in {secs:.1} s");
    assert!(metric(server.http_addr, "onair_keyframe_requests_ignored_total").await > 1_000, "the viewer's budget refused the flood");
    assert_eq!(holes(&vs[0].video(), start, end), 0, "the other viewer lost nothing");
    assert!(vs[0].video().iter().filter(|r| r.at >= start).count() > 200, "and kept receiving");
    flood.stop().await;
    for v in vs {
        v.stop().await;
    }
    p.stop().await;
    server.stop().await;
}

/// A recvonly offer with ICE and DTLS attributes (it never connects).
fn viewer_offer() -> String {
    let fp = (0..32).map(|i| format!("{:02X}", i * 7 % 256)).collect::<Vec<_>>().join(":");
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=fingerprint:sha-256 {fp}\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:test\r\na=ice-pwd:testtesttesttesttesttest\r\n\
         a=setup:actpass\r\na=rtcp-mux\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_flood_from_one_address_gets_429s_while_viewers_lose_nothing() {
    let server = common::start_server(2).await;
    let (p, vs) = live_with_viewers(&server, "offers", 1).await;
    let offer = viewer_offer();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300u32 {
        let (addr, offer) = (server.http_addr, offer.clone());
        tasks.spawn(async move {
            // 300 offers spread over about a second.
            tokio::time::sleep(Duration::from_micros(u64::from(i) * 3_300)).await;
            let r = http::post_sdp(addr, "/whep/offers", None, &offer).await;
            (r.status, r.header("retry-after").map(str::to_owned))
        });
    }
    let mut created = 0;
    let mut limited = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            (201, _) => created += 1,
            (429, retry) => {
                assert!(retry.is_some(), "429 says when to come back");
                limited += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let end = Instant::now();
    assert!(limited >= 150, "most of the flood was refused: {created} created, {limited} limited");
    assert!(created <= 130, "no more than the burst and its refill: {created}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(holes(&vs[0].video(), start, end), 0, "the viewer lost nothing during the flood");
    assert!(vs[0].video().iter().filter(|r| r.at >= start && r.at < end).count() as f64 >= 60.0 * end.duration_since(start).as_secs_f64(), "and kept receiving");
    for v in vs {
        v.stop().await;
    }
    p.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_datagrams_at_the_media_port_leave_every_session_working() {
    let server = common::start_server(1).await;
    let (p, vs) = live_with_viewers(&server, "junk", 1).await;
    // One junk stream from a viewer's own (routed) address, into its connection...
    let junky = peer::watch(server.http_addr, "junk", WatchOpts { garbage_per_second: 2_000, ..Default::default() }).await.unwrap();
    assert!(common::wait_until(10, || junky.video().len() > 30).await);
    // ...and others from addresses the server never saw.
    let media = server.sfu.media_addrs()[0];
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for k in 0..4u8 {
        let stop = stop.clone();
        senders.push(tokio::spawn(async move {
            let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..10 {
                    n += 1;
                    let len = 1 + (n as usize * 37 + usize::from(k)) % 1300;
                    let mut d: Vec<u8> = (0..len).map(|_| rand::random()).collect();
                    d[0] = [0x80, 0x00, 0x16, 0xff][(n % 4) as usize] | (d[0] & 0x01);
                    let _ = s.send_to(&d, media).await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = Instant::now();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    assert_eq!(holes(&vs[0].video(), start, end), 0, "a bystander lost nothing");
    assert!(vs[0].video().iter().filter(|r| r.at >= start).count() > 200);
    assert!(junky.connected(), "the session whose address sent junk still works");
    assert!(junky.video().iter().filter(|r| r.at >= start && r.at < end).count() > 200, "and still receives");
    assert!(p.connected());
    assert!(metric(server.http_addr, "onair_unknown_datagrams_total").await > 1_000, "junk from strangers was dropped at the door");
    assert_eq!(metric(server.http_addr, "onair_peer_panics_total").await, 0);
    junky.stop().await;
    for v in vs {
        v.stop().await;
    }
    p.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_peer_closes_that_peer_only_and_a_dead_worker_is_restarted() {
    // One worker: the publisher and both viewers share its thread.
    let server = common::start_server(1).await;
    let (p, mut vs) = live_with_viewers(&server, "boom", 2).await;
    let victim = vs.remove(0);
    let id: onair_media::SessionId = victim.location.rsplit('/').next().unwrap().parse().unwrap();
    server.sfu.inject_panic(0, Some(id));
    assert!(common::wait_until(5, || server.sfu.session(id).is_none()).await, "the panicking viewer was closed");
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = Instant::now();
    assert_eq!(metric(server.http_addr, "onair_peer_panics_total").await, 1);
    assert_eq!(holes(&vs[0].video(), start, end), 0, "the other viewer on the same worker lost nothing");
    assert!(vs[0].video().iter().filter(|r| r.at >= start).count() > 100, "and kept receiving");
    assert!(common::wait_until(5, || !victim.connected()).await, "the victim was told (DTLS close)");
    victim.stop().await;

    // A panic outside any peer: the worker is restarted, its peers are told.
    server.sfu.inject_panic(0, None);
    assert!(common::wait_until(5, || server.sfu.session_count() == 0).await, "its sessions were closed");
    assert!(common::wait_until(10, || !vs[0].connected() && !p.connected()).await, "and their peers told");
    assert_eq!(metric(server.http_addr, "onair_worker_restarts_total").await, 1);
    for v in vs {
        v.stop().await;
    }
    p.stop().await;
    // The restarted worker takes new sessions.
    let (p2, vs2) = live_with_viewers(&server, "again", 1).await;
    assert!(vs2[0].video().len() > 30);
    for v in vs2 {
        v.stop().await;
    }
    p2.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_caps_answer_429_per_network_and_503_in_total() {
    let server = common::start_server_with(common::temp_dir("caps"), |a| {
        a.max_sessions_per_network = Some(3);
        a.max_sessions = Some(4);
    })
    .await;
    let key = server.host_key("caps").await.unwrap();
    let p = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || p.connected()).await);
    let offer = viewer_offer();
    common::wait_for_json(server.http_addr, "/api/users/caps", |p| p["live"]["state"] == "live").await;
    let mut locations = Vec::new();
    for _ in 0..2 {
        let r = http::post_sdp(server.http_addr, "/whep/caps", None, &offer).await;
        assert_eq!(r.status, 201, "{}", r.body);
        locations.push(r.header("location").unwrap().to_owned());
    }
    // Loopback is one network: the publisher and two viewers fill its three places.
    let r = http::post_sdp(server.http_addr, "/whep/caps", None, &offer).await;
    assert_eq!((r.status, r.error_code().as_str()), (429, "rate_limited"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_eq!(request(server.http_addr, "DELETE", &locations.pop().unwrap(), &[], b"").await.status, 200);
    let r = http::post_sdp(server.http_addr, "/whep/caps", None, &offer).await;
    assert_eq!(r.status, 201, "a freed place is taken again: {}", r.body);
    server.stop().await;

    // The whole server's cap.
    let server = common::start_server_with(common::temp_dir("caps2"), |a| a.max_sessions = Some(2)).await;
    let key = server.host_key("full").await.unwrap();
    let p2 = peer::publish(server.http_addr, &key, PublishOpts::default()).await.expect("publish");
    assert!(common::wait_until(10, || p2.connected()).await);
    common::wait_for_json(server.http_addr, "/api/users/full", |p| p["live"]["state"] == "live").await;
    assert_eq!(http::post_sdp(server.http_addr, "/whep/full", None, &offer).await.status, 201);
    let r = http::post_sdp(server.http_addr, "/whep/full", None, &offer).await;
    assert_eq!((r.status, r.error_code().as_str()), (503, "capacity"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_eq!(metric(server.http_addr, "onair_sessions_refused_total").await, 1);
    p.stop().await;
    p2.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_urls_cannot_be_tried_fast() {
    let server = common::start_server(1).await;
    let mut codes = Vec::new();
    for i in 0..150u32 {
        let path = format!("/whep/anything/{:032x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15);
        codes.push(request(server.http_addr, "DELETE", &path, &[], b"").await.status);
    }
    assert!(codes[..100].iter().all(|c| *c == 404), "{codes:?}");
    assert!(codes[100..].iter().filter(|c| **c == 429).count() >= 45, "past the burst, guesses are refused: {codes:?}");
    server.stop().await;
}
