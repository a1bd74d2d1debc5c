//! Co-host rooms in the media core, with real WebRTC peers over UDP: several
//! producers in one room, subscribers with several slots, the program of a
//! one-slot player, server-enforced mutes, removing a host, the room
//! ending with its primary host, and two rooms linked (a PK battle).
//!
//! The peers' offers go straight to the SFU handle (the room API of the
//! platform decides who may publish where; these tests are about the media).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::http;
use common::peer::{self, PublishOpts, Rx, TestPeer, WatchOpts};
use onair_media::{Layout, LayoutKind, LayerCap, Requester, SessionAnswer, Sfu, SfuError};

const ROOM: &str = "room";

/// What WHIP/WHEP would answer, for the test peers.
fn answered(r: Result<SessionAnswer, SfuError>) -> http::Response {
    match r {
        Ok(a) => http::Response { status: 201, headers: vec![("location".into(), a.session.secret())], body: a.sdp },
        Err(e) => http::Response { status: 409, headers: vec![], body: format!("{e:?}") },
    }
}

fn host_name(i: u8) -> String {
    format!("h{i}")
}

/// Host `i` publishes (one VP8 layer and Opus, stamped with tag `i`).
async fn host(sfu: &Sfu, i: u8, primary: bool) -> Result<TestPeer, http::Response> {
    let opts = PublishOpts { simulcast: false, tag: Some(i), keyframe_every: 60, ..Default::default() };
    peer::publish_via(opts, async |sdp: String| answered(sfu.publish_host(ROOM, &host_name(i), primary, &sdp, Requester::default()).await)).await
}

async fn viewer(sfu: &Sfu, slots: usize) -> TestPeer {
    let opts = WatchOpts { slots, ..Default::default() };
    peer::watch_via(opts, async |sdp: String| answered(sfu.play(ROOM, &sdp, LayerCap::Auto, Requester::default()).await)).await.expect("watch")
}

/// Video packets by our SSRC toward the viewer (one per slot).
fn video_by_slot(v: &TestPeer) -> BTreeMap<u32, Vec<Rx>> {
    let mut by: BTreeMap<u32, Vec<Rx>> = BTreeMap::new();
    for r in v.video() {
        by.entry(r.ssrc).or_default().push(r);
    }
    by
}

fn assert_continuous(rx: &[Rx]) {
    for w in rx.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence jumps {} -> {}", w[0].seq, w[1].seq);
        assert!(w[1].ts.wrapping_sub(w[0].ts) as i32 >= 0, "timestamp goes back {} -> {}", w[0].ts, w[1].ts);
    }
}

async fn start() -> (onair::server::Server, Sfu) {
    let server = common::start_server(2).await;
    let sfu = server.sfu.clone();
    (server, sfu)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_hosts_reach_a_nine_slot_viewer_and_a_tenth_is_refused() {
    let (_server, sfu) = start().await;
    let mut hosts = Vec::new();
    for i in 0..9u8 {
        hosts.push(host(&sfu, i, i == 0).await.expect("publish"));
    }
    assert!(common::wait_until(15, || hosts.iter().all(|h| h.connected())).await, "every host connects");
    let tenth = host(&sfu, 9, false).await.err().expect("a tenth host is refused");
    assert!(tenth.body.contains("RoomFull"), "{}", tenth.body);

    let v = viewer(&sfu, 9).await;
    // Video comes at once (each slot is primed from its host's cache); audio as it is spoken.
    let heard = |v: &TestPeer| v.audio().iter().filter_map(Rx::tag).collect::<BTreeSet<u8>>();
    let ok = common::wait_until(20, || {
        let by = video_by_slot(&v);
        by.len() == 9 && by.values().all(|rx| rx.len() > 40) && heard(&v).len() == 9
    })
    .await;
    assert!(ok, "per slot: {:?}, heard {:?}", video_by_slot(&v).values().map(Vec::len).collect::<Vec<_>>(), heard(&v));
    let mut tags = BTreeSet::new();
    for (ssrc, rx) in video_by_slot(&v) {
        assert!(rx[0].is_vp8_keyframe(), "slot {ssrc:08x} starts at a keyframe: {:?}", &rx[..3.min(rx.len())]);
        assert_continuous(&rx);
        let slot_tags: BTreeSet<u8> = rx.iter().filter_map(Rx::tag).collect();
        assert_eq!(slot_tags.len(), 1, "one host per slot, got tags {slot_tags:?}");
        tags.extend(slot_tags);
    }
    assert_eq!(tags, (0..9).collect::<BTreeSet<u8>>(), "all nine hosts are shown");
    assert_eq!(heard(&v), (0..9).collect::<BTreeSet<u8>>(), "all nine hosts are heard");
    let mut audio_by_slot: BTreeMap<u32, BTreeSet<u8>> = BTreeMap::new();
    for r in v.audio() {
        audio_by_slot.entry(r.ssrc).or_default().extend(r.tag());
    }
    assert!(audio_by_slot.len() == 9 && audio_by_slot.values().all(|t| t.len() == 1), "one host per audio slot: {audio_by_slot:?}");
    let listed = sfu.room_hosts(ROOM).expect("room");
    assert_eq!(listed.len(), 9);
    assert!(listed[0].primary && listed.iter().skip(1).all(|h| !h.primary));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_slot_player_gets_the_program_and_follows_the_focus_at_a_keyframe() {
    let (_server, sfu) = start().await;
    let a = host(&sfu, 1, true).await.expect("publish a");
    let b = host(&sfu, 2, false).await.expect("publish b");
    assert!(common::wait_until(10, || a.connected() && b.connected()).await);
    // Both test hosts talk all the time (level 30 dBov, voice on): in a grid
    // the program would follow the active speaker. A spotlight pins it.
    assert!(sfu.set_layout(ROOM, Layout { kind: LayoutKind::Spotlight, focus: Some(host_name(1)), order: vec![] }));
    let v = viewer(&sfu, 1).await;
    assert!(common::wait_until(10, || v.video().len() > 30).await, "the program plays");
    assert!(v.video().iter().filter_map(Rx::tag).all(|t| t == 1), "the focus host");

    assert!(sfu.set_layout(ROOM, Layout { kind: LayoutKind::Spotlight, focus: Some(host_name(2)), order: vec![] }));
    assert!(common::wait_until(10, || v.video().iter().filter(|r| r.tag() == Some(2)).count() > 30).await, "the program moves to the focus");
    let video = v.video();
    assert!(video.iter().all(|r| r.ssrc == video[0].ssrc), "one SSRC whoever is on");
    assert_continuous(&video);
    let first_b = video.iter().position(|r| r.tag() == Some(2)).unwrap();
    assert!(video[first_b].is_vp8_keyframe(), "the switch happens at the new host's keyframe");
    assert!(video[first_b..].iter().all(|r| r.tag() == Some(2)), "no frame of the old host after the switch");
    let pids: Vec<u16> = video.iter().filter_map(Rx::picture_id).collect();
    for w in pids.windows(2) {
        assert!(w[1] == w[0] || w[1] == (w[0] + 1) & 0x7fff, "VP8 picture ids run on across the switch: {} -> {}", w[0], w[1]);
    }
    assert_eq!(sfu.room_slots(ROOM, 1, None).unwrap(), vec![Some(host_name(2))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_host_stops_reaching_everyone_and_a_removed_host_is_gone_for_good() {
    let (_server, sfu) = start().await;
    let a = host(&sfu, 1, true).await.expect("publish a");
    let b = host(&sfu, 2, false).await.expect("publish b");
    assert!(common::wait_until(10, || a.connected() && b.connected()).await);
    let v = viewer(&sfu, 2).await;
    // Host b watches the room as a host: it gets a, never itself.
    let b_view = peer::watch_via(WatchOpts { slots: 2, ..Default::default() }, async |sdp: String| {
        answered(sfu.play_as_host(ROOM, &host_name(2), &sdp, LayerCap::Auto, Requester::default()).await)
    })
    .await
    .expect("host view");
    let from = |p: &TestPeer, tag: u8, after: Instant| p.video().iter().chain(p.audio().iter()).filter(|r| r.tag() == Some(tag) && r.at > after).count();
    assert!(common::wait_until(10, || from(&v, 2, Instant::now() - Duration::from_secs(60)) > 30 && from(&b_view, 1, Instant::now() - Duration::from_secs(60)) > 30).await);
    assert_eq!(from(&b_view, 2, Instant::now() - Duration::from_secs(60)), 0, "a host does not receive itself");

    let muted_at = Instant::now();
    assert!(sfu.set_muted(ROOM, &host_name(2), Some(true), Some(true)));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(from(&v, 2, muted_at + Duration::from_millis(100)), 0, "nothing of a muted host reaches a viewer after 100 ms");
    assert!(from(&v, 1, muted_at + Duration::from_millis(100)) > 10, "the other host goes on");
    let hosts = sfu.room_hosts(ROOM).unwrap();
    assert!(hosts.iter().any(|h| h.host == host_name(2) && h.audio_muted && h.video_muted));

    let unmuted_at = Instant::now();
    assert!(sfu.set_muted(ROOM, &host_name(2), Some(false), Some(false)));
    assert!(common::wait_until(5, || from(&v, 2, unmuted_at) > 10).await, "unmuted: back");

    // b's own WHEP session is on the host list too: removing b closes both.
    let sessions = sfu.session_count();
    let closed = sfu.remove_host(ROOM, &host_name(2)).await;
    assert_eq!(closed, 2, "its publishing session and its view of the room");
    assert_eq!(sfu.session_count(), sessions - 2);
    assert!(sfu.room_hosts(ROOM).unwrap().iter().all(|h| h.host != host_name(2)));
    let gone_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(from(&v, 2, gone_at + Duration::from_millis(100)), 0);
    assert!(from(&v, 1, gone_at) > 5, "the viewer keeps the primary host");
    let again = host(&sfu, 2, false).await.err().expect("a removed host cannot publish into the room again");
    assert!(again.body.contains("HostRemoved"), "{}", again.body);
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_ends_with_its_primary_host() {
    let (_server, sfu) = start().await;
    let a = host(&sfu, 1, true).await.expect("publish a");
    let b = host(&sfu, 2, false).await.expect("publish b");
    assert!(common::wait_until(10, || a.connected() && b.connected()).await);
    let v = viewer(&sfu, 2).await;
    assert!(common::wait_until(10, || v.video().len() > 20).await);
    let mut events = sfu.subscribe();
    assert_eq!(sfu.remove_host(ROOM, &host_name(1)).await, 1);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(onair_media::SfuEvent::StreamEnded { stream }) = events.recv().await {
                return stream;
            }
        }
    })
    .await
    .expect("StreamEnded");
    assert_eq!(ended, ROOM);
    assert!(common::wait_until(5, || sfu.session_count() == 0).await, "the co-host and the viewer are closed too: {} left", sfu.session_count());
    assert!(!sfu.live_streams().contains(&ROOM.to_owned()));
}

/// An in-process sink: what a recorder or a relay would be given.
#[derive(Debug, Default)]
struct Collect {
    packets: std::sync::Mutex<Vec<(onair_media::packet::Kind, onair_media::Layer, bool, Instant)>>,
    ended: std::sync::atomic::AtomicBool,
}

impl onair_media::Sink for Collect {
    fn packet(&self, p: &onair_media::packet::Fanout) {
        self.packets.lock().unwrap().push((p.kind, p.layer, p.keyframe, Instant::now()));
    }
    fn ended(&self) {
        self.ended.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_at_the_fan_out_gets_every_layer_from_a_keyframe_and_hears_the_end() {
    use onair_media::packet::Kind;
    use onair_media::Layer;
    let (_server, sfu) = start().await;
    // Keyframes only every 10 s: the sink's first ones come from the request its attachment makes.
    let opts = PublishOpts { tag: Some(1), keyframe_every: 300, ..Default::default() };
    let a = peer::publish_via(opts, async |sdp: String| answered(sfu.publish_host(ROOM, &host_name(1), true, &sdp, Requester::default()).await)).await.expect("publish");
    assert!(common::wait_until(10, || a.connected()).await);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let plis = a.seen.lock().unwrap().plis_total;
    let sink = std::sync::Arc::new(Collect::default());
    let attached_at = Instant::now();
    let id = sfu.attach_sink(ROOM, &host_name(1), sink.clone()).expect("the host publishes");
    let keyframes = |s: &Collect| s.packets.lock().unwrap().iter().filter(|p| p.2).map(|p| p.1).collect::<BTreeSet<Layer>>();
    assert!(common::wait_until(3, || keyframes(&sink) == Layer::ALL.into_iter().collect()).await, "a keyframe of every layer comes soon after: {:?}", keyframes(&sink));
    assert!(a.seen.lock().unwrap().plis_total > plis, "attaching asked the publisher for keyframes");
    assert!(common::wait_until(5, || sink.packets.lock().unwrap().iter().filter(|p| p.0 == Kind::Audio).count() > 20).await, "audio too");
    assert!(sink.packets.lock().unwrap().iter().all(|p| p.3 >= attached_at), "nothing from before the attachment");
    assert_eq!(sfu.session_count(), 1, "no viewer needed: the sink is not a session");

    assert!(sfu.detach_sink(ROOM, &host_name(1), id));
    let detached = sink.packets.lock().unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.packets.lock().unwrap().len(), detached, "a detached sink gets nothing more");
    assert!(!sink.ended.load(std::sync::atomic::Ordering::Relaxed));

    let again = std::sync::Arc::new(Collect::default());
    sfu.attach_sink(ROOM, &host_name(1), again.clone()).unwrap();
    sfu.remove_host(ROOM, &host_name(1)).await;
    assert!(common::wait_until(3, || again.ended.load(std::sync::atomic::Ordering::Relaxed)).await, "an attached sink hears the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_rooms_show_each_other_until_unlinked_without_touching_a_connection() {
    let (_server, sfu) = start().await;
    let publish = |room: &'static str, i: u8| {
        let sfu = sfu.clone();
        async move {
            let opts = PublishOpts { simulcast: false, tag: Some(i), keyframe_every: 60, ..Default::default() };
            peer::publish_via(opts, async |sdp: String| answered(sfu.publish_host(room, &host_name(i), true, &sdp, Requester::default()).await)).await.expect("publish")
        }
    };
    let a = publish("a", 1).await;
    let b = publish("b", 2).await;
    assert!(common::wait_until(10, || a.connected() && b.connected()).await);
    let watch = |room: &'static str, host: Option<u8>, slots: usize| {
        let sfu = sfu.clone();
        async move {
            peer::watch_via(WatchOpts { slots, ..Default::default() }, async |sdp: String| {
                answered(match host {
                    Some(h) => sfu.play_as_host(room, &host_name(h), &sdp, LayerCap::Auto, Requester::default()).await,
                    None => sfu.play(room, &sdp, LayerCap::Auto, Requester::default()).await,
                })
            })
            .await
            .expect("watch")
        }
    };
    let viewer_a = watch("a", None, 2).await;
    let player_a = watch("a", None, 1).await;
    let host_b = watch("b", Some(2), 1).await;
    let since = |p: &TestPeer, tag: u8, after: Instant| p.video().iter().chain(p.audio().iter()).filter(|r| r.tag() == Some(tag) && r.at > after).count();
    let start = Instant::now() - Duration::from_secs(60);
    assert!(common::wait_until(10, || since(&viewer_a, 1, start) > 30).await, "a's viewer sees a");
    assert_eq!(since(&host_b, 1, start), 0, "b's lone host sees nothing before the link");

    let linked_at = Instant::now();
    sfu.link_rooms("a", "b").expect("link");
    assert_eq!(sfu.linked_room("b").as_deref(), Some("a"));
    let c = publish("c", 3).await;
    let refused = sfu.link_rooms("c", "a").expect_err("a is linked already");
    assert!(matches!(refused, SfuError::LinkRefused(_)), "{refused:?}");
    assert!(common::wait_until(10, || since(&viewer_a, 2, linked_at) > 30 && since(&host_b, 1, linked_at) > 30).await, "each side reaches the other: a's viewer got {} of b, b's host {} of a", since(&viewer_a, 2, linked_at), since(&host_b, 1, linked_at));
    let by = video_by_slot(&viewer_a);
    assert_eq!(by.len(), 2, "one SSRC per slot");
    for rx in by.values() {
        assert_continuous(rx);
    }
    let second = by.values().find(|rx| rx.iter().any(|r| r.tag() == Some(2))).expect("b's slot");
    let first_b = second.iter().position(|r| r.tag() == Some(2)).unwrap();
    assert!(second[first_b].is_vp8_keyframe(), "b's side starts at a keyframe");
    assert_eq!(since(&player_a, 2, linked_at), 0, "a one-slot player keeps its own host");

    let sessions = sfu.session_count();
    let unlinked_at = Instant::now();
    assert!(sfu.unlink_rooms("b", "a"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(since(&viewer_a, 2, unlinked_at + Duration::from_millis(100)), 0, "b left a's slots");
    assert_eq!(since(&host_b, 1, unlinked_at + Duration::from_millis(100)), 0, "a left b's host view");
    assert!(since(&viewer_a, 1, unlinked_at) > 5, "a's own host goes on");
    assert_eq!(sfu.session_count(), sessions, "no connection was touched");
    assert!(!sfu.unlink_rooms("a", "b"), "unlinked once");
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_of_different_codecs_share_slots_each_packet_with_its_codecs_payload_type() {
    let (_server, sfu) = start().await;
    let a = host(&sfu, 1, true).await.expect("publish a (VP8)");
    let opts = PublishOpts { simulcast: false, tag: Some(2), keyframe_every: 60, h264: true, ..Default::default() };
    let b = peer::publish_via(opts, async |sdp: String| answered(sfu.publish_host(ROOM, &host_name(2), false, &sdp, Requester::default()).await)).await.expect("publish b (H.264)");
    assert!(common::wait_until(10, || a.connected() && b.connected()).await);
    assert!(sfu.set_layout(ROOM, Layout { kind: LayoutKind::Spotlight, focus: Some(host_name(1)), order: vec![] }));
    let v = viewer(&sfu, 2).await;
    let player = viewer(&sfu, 1).await;
    // The answer carries both codecs on every video m-line.
    let answer = &v.answer.body;
    let pt_of = |mime: &str| -> u8 {
        let line = answer.lines().find(|l| l.starts_with("a=rtpmap:") && l.contains(mime)).unwrap_or_else(|| panic!("{mime} in the answer:\n{answer}"));
        line["a=rtpmap:".len()..].split(' ').next().unwrap().parse().unwrap()
    };
    let (vp8_pt, h264_pt) = (pt_of("VP8/90000"), pt_of("H264/90000"));
    let ok = common::wait_until(10, || {
        let by = video_by_slot(&v);
        by.len() == 2 && by.values().all(|rx| rx.iter().filter(|r| r.tag().is_some()).count() > 30)
    })
    .await;
    assert!(ok, "both slots play: {:?}", video_by_slot(&v).values().map(Vec::len).collect::<Vec<_>>());
    for rx in video_by_slot(&v).values() {
        let tag = rx.iter().find_map(Rx::tag).unwrap();
        let want = if tag == 1 { vp8_pt } else { h264_pt };
        assert!(rx.iter().all(|r| r.pt == want), "host {tag}'s slot is sent with payload type {want}");
        assert_continuous(rx);
    }

    // The one-slot player follows the focus onto the H.264 host: same
    // connection, same SSRC, numbering continuous, the new payload type
    // from the new host's first keyframe.
    assert!(common::wait_until(10, || player.video().len() > 30).await);
    assert!(sfu.set_layout(ROOM, Layout { kind: LayoutKind::Spotlight, focus: Some(host_name(2)), order: vec![] }));
    assert!(common::wait_until(10, || player.video().iter().filter(|r| r.tag() == Some(2)).count() > 30).await, "the program moved to the H.264 host");
    let video = player.video();
    assert!(video.iter().all(|r| r.ssrc == video[0].ssrc));
    assert_continuous(&video);
    let first = video.iter().position(|r| r.tag() == Some(2)).unwrap();
    let player_h264 = player.answer.body.lines().find(|l| l.starts_with("a=rtpmap:") && l.contains("H264/90000")).map(|l| l["a=rtpmap:".len()..].split(' ').next().unwrap().parse::<u8>().unwrap()).unwrap();
    assert_eq!(video[first].payload.first().map(|b| b & 0x1f), Some(5), "the switch is at an IDR");
    assert!(video[first..].iter().all(|r| r.pt == player_h264 && r.tag() == Some(2)));
    assert!(video[..first].iter().all(|r| r.pt != player_h264));
    assert_eq!(sfu.session_count(), 4, "nobody was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_slot_player_of_a_lone_host_is_answered_with_its_codec_and_reconnects_for_a_co_host_of_another() {
    let (_server, sfu) = start().await;
    let a = host(&sfu, 1, true).await.expect("publish a (VP8)");
    assert!(common::wait_until(10, || a.connected()).await);
    // A plain player of a lone host: that host's codec only (a leaner connection).
    let player = viewer(&sfu, 1).await;
    let codecs = |p: &TestPeer| ["VP8/90000", "H264/90000"].map(|c| p.answer.body.lines().any(|l| l.starts_with("a=rtpmap:") && l.contains(c)));
    assert_eq!(codecs(&player), [true, false], "{}", player.answer.body);
    // A viewer with slots for co-hosts is answered with every codec from the start.
    let grid = viewer(&sfu, 2).await;
    assert_eq!(codecs(&grid), [true, true], "{}", grid.answer.body);
    assert!(common::wait_until(10, || player.video().len() > 30).await);

    // An H.264 co-host joins and takes the focus: the plain player cannot
    // take it, so it is closed (to reconnect); the grid viewer is not.
    let opts = PublishOpts { simulcast: false, tag: Some(2), keyframe_every: 60, h264: true, ..Default::default() };
    let b = peer::publish_via(opts, async |sdp: String| answered(sfu.publish_host(ROOM, &host_name(2), false, &sdp, Requester::default()).await)).await.expect("publish b (H.264)");
    assert!(common::wait_until(10, || b.connected()).await);
    assert!(sfu.set_layout(ROOM, Layout { kind: LayoutKind::Spotlight, focus: Some(host_name(2)), order: vec![] }));
    assert!(common::wait_until(10, || sfu.session_count() == 3).await, "the plain player was closed: {} sessions", sfu.session_count());
    assert!(common::wait_until(10, || video_by_slot(&grid).values().any(|rx| rx.iter().any(|r| r.tag() == Some(2)))).await, "the grid viewer shows the co-host");

    // Its reconnection is answered with both codecs and plays the program.
    let again = viewer(&sfu, 1).await;
    assert_eq!(codecs(&again), [true, true], "{}", again.answer.body);
    assert!(common::wait_until(10, || again.video().iter().filter(|r| r.tag() == Some(2)).count() > 30).await, "the reconnected player plays the H.264 co-host");
}
