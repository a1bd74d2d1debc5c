// The bodies of OnAir's fuzz targets, one function each.
//
// Included (`include!`) by the cargo-fuzz targets under `fuzz_targets/` and by
// `tests/fuzz_corpora.rs`, which replays every committed corpus file through
// the same function as an ordinary test: CI spends no time fuzzing, yet
// everything the fuzzers once found stays fixed. A target passes an input
// when it does not panic and its stated invariants hold.

#[allow(dead_code)]
pub mod targets {
    /// A media worker's datagram input, through the in-memory harness: a
    /// publisher and a viewer are installed, each with an address proven by a
    /// signed STUN check; the input is then a series of records, each
    /// `[selector][length: u16 BE][bytes]`: selector % 4 says whether the bytes
    /// come from a new address (0), the publisher's (1), the viewer's (2), or
    /// the worker runs its timers (3). STUN, DTLS and the first contact of SRTP
    /// (which needs keys, so its parsing is reached only by a handshake) go
    /// through rtc exactly as in production.
    pub fn datagrams(data: &[u8]) {
        use std::net::SocketAddr;
        let mut h = onair_media::harness::Harness::new();
        h.capture(false);
        let Ok((_, publisher)) = h.publish("fuzz", PUBLISH_OFFER) else { panic!("the fixed publish offer is valid") };
        let Ok((_, viewer)) = h.play("fuzz", PLAY_OFFER, onair_media::LayerCap::Auto) else { panic!("the fixed play offer is valid") };
        let pub_addr: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let view_addr: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        for (answer, addr) in [(&publisher, pub_addr), (&viewer, view_addr)] {
            let ufrag = sdp_attr(answer, "ice-ufrag");
            let pwd = sdp_attr(answer, "ice-pwd");
            h.datagram(&onair_media::stun::binding_request(&format!("{ufrag}:client"), Some(pwd.as_bytes()), [9; 12]), addr);
        }
        let mut rest = data;
        let mut stranger = 0u16;
        while let [selector, hi, lo, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len()).min(2048);
            let (datagram, after) = tail.split_at(len);
            rest = after;
            match selector % 4 {
                0 => {
                    stranger = stranger.wrapping_add(1);
                    h.datagram(datagram, SocketAddr::from(([10, 9, (stranger >> 8) as u8, stranger as u8], 6000)));
                }
                1 => h.datagram(datagram, pub_addr),
                2 => h.datagram(datagram, view_addr),
                _ => h.tick(selector & 0x80 != 0),
            }
        }
        h.tick(true);
    }

    /// SDP offers as WHIP and WHEP receive them: whatever the text, an answer
    /// or an error, never a panic.
    pub fn sdp_offer(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let mut h = onair_media::harness::Harness::new();
        h.capture(false);
        if onair_media::negotiate::check_offer(text).is_err() {
            return;
        }
        let _ = h.publish("as-publisher", text);
        if h.publish("live", PUBLISH_OFFER).is_ok() {
            let _ = h.play("live", text, onair_media::LayerCap::Auto);
        }
    }

    /// Trickle-ICE fragments as `PATCH` receives them.
    pub fn sdpfrag(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else { return };
        let f = onair_signaling::sdpfrag::parse_fragment(text);
        for c in &f.candidates {
            assert!(c.starts_with("candidate:"), "{c}");
        }
    }

    /// VP8, VP9, H.264 and AV1 payloads: parsing, keyframe detection, and the
    /// in-place id rewrite (which must keep the length and read back as written).
    pub fn codec_payloads(data: &[u8]) {
        use onair_media::codec::{self, av1, h264, vp8, vp9, Codec};
        for c in [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus, Codec::Other] {
            let _ = codec::is_keyframe_start(c, data);
        }
        let _ = h264::nal_types(data).count();
        let _ = h264::is_fu_a_start(data);
        let _ = av1::parse(data);
        let _ = av1::first_obu_type(data);
        for e in av1::obu_elements(data) {
            let _ = av1::obu_type(e);
        }
        let ids = data.get(..3).map_or((0x1234, 7), |b| (u16::from_be_bytes([b[0], b[1]]) & 0x7fff, b[2]));
        if let Some(d) = vp8::parse(data) {
            let mut copy = data.to_vec();
            vp8::rewrite(&mut copy, &d, ids.0, ids.1);
            assert_eq!(copy.len(), data.len());
            let again = vp8::parse(&copy).expect("a rewritten VP8 descriptor still parses");
            assert_eq!(again.header_len, d.header_len);
        }
        if let Some(d) = vp9::parse(data) {
            let mut copy = data.to_vec();
            vp9::rewrite(&mut copy, &d, ids.0, ids.1);
            assert_eq!(copy.len(), data.len());
            assert!(vp9::parse(&copy).is_some(), "a rewritten VP9 descriptor still parses");
        }
        // The sequence/timestamp rewriter fed packets made of the input.
        let mut r = onair_media::rewrite::StreamRewriter::new(90_000);
        for (i, chunk) in data.chunks(7).enumerate() {
            let [a, b, c, d, e, f, g] = *chunk else { break };
            let source = u32::from(a % 3);
            let seq = u16::from_be_bytes([b, c]);
            let ts = u32::from_be_bytes([d, e, f, g]);
            let now = i as u64 * 1_000;
            if a & 0x80 != 0 || r.current_source().is_none() {
                r.switch_to(source, seq, ts, now);
            }
            r.skip_padding(source, seq, u16::from(a & 0x0f));
            let _ = r.rewrite(source, seq, ts, now);
        }
    }

    /// RFC 6464 audio levels, and the active-speaker detector fed with them.
    pub fn audio_levels(data: &[u8]) {
        use onair_media::audio_level::{self, ActiveSpeakerDetector};
        let mut d = ActiveSpeakerDetector::new();
        for (i, w) in data.windows(3).enumerate() {
            if let Some(level) = audio_level::parse(&w[..1 + usize::from(w[2] % 2)]) {
                assert_eq!(audio_level::AudioLevel::from_byte(level.to_byte()), level);
                d.observe(u64::from(w[1] % 9), level, i as u64 * 20);
            }
            if i % 5 == 0 {
                let _ = d.tick(i as u64 * 20);
            }
        }
    }

    /// Chat and API JSON bodies: stream creation and update (with schedules in
    /// any time zone), chat text and banned-word lists.
    pub fn json_bodies(data: &[u8]) {
        use onair::streams::schedule::{Recurrence, Rule};
        if let Ok(s) = serde_json::from_slice::<onair::streams::NewStream>(data) {
            if let Some(r) = &s.recurrence {
                rule(r);
            }
            if let Some(at) = &s.scheduled_at {
                let _ = onair::clock::parse_rfc3339(at);
            }
        }
        if let Ok(p) = serde_json::from_slice::<onair::streams::StreamPatch>(data) {
            if let Some(r) = &p.recurrence {
                rule(r);
            }
        }
        if let Ok(r) = serde_json::from_slice::<Recurrence>(data) {
            rule(&r);
        }
        fn rule(r: &Recurrence) {
            if let Ok(rule) = Rule::parse(r) {
                let next = rule.next_after(1_700_000_000_000);
                if let Some(n) = next {
                    assert!(n > 1_700_000_000_000, "the next occurrence is after the instant asked");
                }
                let _ = rule.occurrences(1_700_000_000_000, 5);
                let _ = rule.to_api();
            }
        }
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok(t) = onair::chat::rules::check_text(text) {
                assert!(!t.is_empty() && t.chars().count() <= 500);
            }
            let (list, message) = text.split_once('\n').unwrap_or((text, text));
            let _ = onair::chat::rules::BannedWords::parse(list).matches(message);
        }
    }

    /// The offers the datagram and SDP targets start from (real browser-shaped
    /// SDP with ICE and DTLS attributes; they never connect).
    const PUBLISH_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
    a=fingerprint:sha-256 00:07:0E:15:1C:23:2A:31:38:3F:46:4D:54:5B:62:69:70:77:7E:85:8C:93:9A:A1:A8:AF:B6:BD:C4:CB:D2:D9\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:fuzz\r\na=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz\r\n\
    a=setup:actpass\r\na=rtcp-mux\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:fuzz\r\na=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz\r\n\
    a=setup:actpass\r\na=rtcp-mux\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n";

    const PLAY_OFFER: &str = "v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
    a=fingerprint:sha-256 00:07:0E:15:1C:23:2A:31:38:3F:46:4D:54:5B:62:69:70:77:7E:85:8C:93:9A:A1:A8:AF:B6:BD:C4:CB:D2:D9\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=ice-ufrag:view\r\na=ice-pwd:viewviewviewviewviewview\r\n\
    a=setup:actpass\r\na=rtcp-mux\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n\
    a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
    m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:view\r\na=ice-pwd:viewviewviewviewviewview\r\n\
    a=setup:actpass\r\na=rtcp-mux\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n";

    /// An attribute's value from an SDP (`a=name:value`).
    fn sdp_attr(sdp: &str, name: &str) -> String {
        let prefix = format!("a={name}:");
        sdp.lines().find_map(|l| l.strip_prefix(prefix.as_str())).map(|v| v.trim().to_owned()).unwrap_or_default()
    }
}
