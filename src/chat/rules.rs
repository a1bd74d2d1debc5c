//! Chat rules that need no database: length, banned words, duplicates,
//! per-user rate and slow mode. Numbers as users know them from Twitch and
//! Owncast.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use onair_signaling::ApiError;

use crate::ratelimit::Bucket;

/// Longest message, in characters.
pub const MAX_CHARS: usize = 500;
/// The same message again within this is a duplicate.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(30);
/// Sustained rate: one message per this, per user.
pub const MESSAGE_INTERVAL: Duration = Duration::from_millis(700);
/// Messages a user may send in a quick burst before the rate applies.
pub const MESSAGE_BURST: f64 = 3.0;
/// Reactions: per second, and burst.
pub const REACTIONS_PER_SEC: f64 = 5.0;
/// Reactions in a quick burst.
pub const REACTION_BURST: f64 = 10.0;
/// Slow mode bounds, seconds (0 turns it off).
pub const SLOW_MODE_RANGE: std::ops::RangeInclusive<i64> = 3..=120;
/// Timeout bounds, seconds: one second to two weeks.
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 1..=14 * 24 * 3600;

/// Why a message was refused. Every variant has a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Nothing to say.
    Empty,
    /// Over [`MAX_CHARS`].
    TooLong(usize),
    /// Sending faster than the rate.
    RateLimited(Duration),
    /// Slow mode: wait this long.
    SlowMode(Duration),
    /// Said the same in the last 30 s.
    Duplicate,
    /// Timed out until (ms).
    TimedOut(i64),
    /// Banned from the channel.
    Banned,
    /// Subscribers-only mode.
    SubscribersOnly,
    /// Followers-only mode (following at least this many minutes).
    FollowersOnly(i64),
    /// Contains a word the host banned.
    BannedWord,
    /// The stream is over.
    ChatClosed,
    /// Not a reaction we know.
    BadReaction,
    /// Only the host and moderators may post this kind.
    NotAllowed,
}

impl Rejection {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Empty => "empty",
            Rejection::TooLong(_) => "too_long",
            Rejection::RateLimited(_) => "rate_limited",
            Rejection::SlowMode(_) => "slow_mode",
            Rejection::Duplicate => "duplicate",
            Rejection::TimedOut(_) => "timed_out",
            Rejection::Banned => "banned",
            Rejection::SubscribersOnly => "subscribers_only",
            Rejection::FollowersOnly(_) => "followers_only",
            Rejection::BannedWord => "banned_word",
            Rejection::ChatClosed => "chat_closed",
            Rejection::BadReaction => "bad_reaction",
            Rejection::NotAllowed => "not_allowed",
        }
    }

    /// For people.
    pub fn message(&self) -> String {
        match self {
            Rejection::Empty => "say something first".into(),
            Rejection::TooLong(n) => format!("messages are at most {MAX_CHARS} characters; this one has {n}"),
            Rejection::RateLimited(d) => format!("you are sending messages too fast; wait {:.1} s", d.as_secs_f64()),
            Rejection::SlowMode(d) => format!("slow mode is on; you can send another message in {} s", d.as_secs_f64().ceil() as u64),
            Rejection::Duplicate => "you sent that same message less than 30 seconds ago".into(),
            Rejection::TimedOut(until) => format!("you are timed out until {}", crate::clock::rfc3339(*until)),
            Rejection::Banned => "you are banned from this channel's chat".into(),
            Rejection::SubscribersOnly => "chat is in subscribers-only mode".into(),
            Rejection::FollowersOnly(0) => "chat is in followers-only mode: follow the host to chat".into(),
            Rejection::FollowersOnly(m) => format!("chat is in followers-only mode: follow the host for {m} minutes to chat"),
            Rejection::BannedWord => "your message contains a word that is not allowed here".into(),
            Rejection::ChatClosed => "this stream's chat is closed".into(),
            Rejection::BadReaction => format!("a reaction is one of {}", REACTIONS.join(" ")),
            Rejection::NotAllowed => "only the host and moderators may post that".into(),
        }
    }

    /// How long until trying again can work.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Rejection::RateLimited(d) | Rejection::SlowMode(d) => Some(*d),
            Rejection::TimedOut(until) => Some(Duration::from_millis((*until - crate::clock::now_ms()).max(0) as u64)),
            _ => None,
        }
    }

    /// The HTTP error.
    pub fn to_api(&self) -> ApiError {
        let status = match self {
            Rejection::Empty | Rejection::TooLong(_) | Rejection::BadReaction => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::RateLimited(_) | Rejection::SlowMode(_) => StatusCode::TOO_MANY_REQUESTS,
            Rejection::Duplicate | Rejection::BannedWord => StatusCode::UNPROCESSABLE_ENTITY,
            Rejection::ChatClosed => StatusCode::CONFLICT,
            _ => StatusCode::FORBIDDEN,
        };
        let e = ApiError::new(status, self.code(), self.message());
        match self.retry_after() {
            Some(d) => e.retry_after(d.as_millis() as u64),
            None => e,
        }
    }
}

/// The reactions a viewer can send (each counts as a like).
pub const REACTIONS: &[&str] = &["❤️", "🔥", "😂", "👏", "😮", "🎉"];

/// One user's recent chat in one stream.
#[derive(Debug, Clone)]
pub struct Sender {
    messages: Bucket,
    reactions: Bucket,
    last_message: Option<Instant>,
    recent: VecDeque<(u64, Instant)>,
    /// Last use (for forgetting idle senders).
    pub seen: Instant,
}

impl Sender {
    /// A sender who has said nothing yet.
    pub fn new(now: Instant) -> Self {
        Sender { messages: Bucket::new(MESSAGE_BURST, now), reactions: Bucket::new(REACTION_BURST, now), last_message: None, recent: VecDeque::new(), seen: now }
    }

    /// Checks rate, slow mode (unless exempt) and duplicates, and if all
    /// pass, counts the message.
    pub fn admit_message(&mut self, text: &str, slow_mode: Duration, exempt: bool, now: Instant) -> Result<(), Rejection> {
        self.seen = now;
        if !exempt && !slow_mode.is_zero() {
            if let Some(last) = self.last_message {
                let since = now.saturating_duration_since(last);
                if since < slow_mode {
                    return Err(Rejection::SlowMode(slow_mode - since));
                }
            }
        }
        while self.recent.front().is_some_and(|(_, t)| now.saturating_duration_since(*t) > DUPLICATE_WINDOW) {
            self.recent.pop_front();
        }
        let h = fingerprint(text);
        if self.recent.iter().any(|(x, _)| *x == h) {
            return Err(Rejection::Duplicate);
        }
        let per_sec = 1.0 / MESSAGE_INTERVAL.as_secs_f64();
        let burst = if exempt { MESSAGE_BURST * 3.0 } else { MESSAGE_BURST };
        self.messages.take(per_sec, burst, now).map_err(Rejection::RateLimited)?;
        self.last_message = Some(now);
        self.recent.push_back((h, now));
        Ok(())
    }

    /// Checks the reaction rate.
    pub fn admit_reaction(&mut self, now: Instant) -> Result<(), Rejection> {
        self.seen = now;
        self.reactions.take(REACTIONS_PER_SEC, REACTION_BURST, now).map_err(Rejection::RateLimited)
    }

    /// Forgets a counted message (its store failed: it was never sent).
    pub fn undo_message(&mut self) {
        self.recent.pop_back();
        self.last_message = None;
    }
}

/// Case and spacing do not make a message different.
fn fingerprint(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let norm: String = text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    norm.hash(&mut h);
    h.finish()
}

/// Trims and checks length.
pub fn check_text(text: &str) -> Result<String, Rejection> {
    let t = text.trim();
    let n = t.chars().count();
    if n == 0 {
        Err(Rejection::Empty)
    } else if n > MAX_CHARS {
        Err(Rejection::TooLong(n))
    } else {
        Ok(t.to_owned())
    }
}

/// A host's banned words and phrases, matched case-insensitively on word
/// boundaries ("ass" does not ban "class").
#[derive(Debug, Clone, Default)]
pub struct BannedWords {
    words: Vec<Vec<String>>,
}

impl BannedWords {
    /// From the stored list (one word or phrase a line).
    pub fn parse(list: &str) -> Self {
        BannedWords { words: list.lines().map(words_of).filter(|w| !w.is_empty()).collect() }
    }

    /// The list as stored, one a line.
    pub fn normalized(list: &[String]) -> String {
        list.iter().map(|l| words_of(l).join(" ")).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
    }

    /// Whether `text` contains one.
    pub fn matches(&self, text: &str) -> bool {
        if self.words.is_empty() {
            return false;
        }
        let t = words_of(text);
        self.words.iter().any(|phrase| t.windows(phrase.len()).any(|w| w == phrase.as_slice()))
    }
}

fn words_of(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut s = Sender::new(t0);
        for i in 0..3 {
            s.admit_message(&format!("m{i}"), Duration::ZERO, false, t0).unwrap();
        }
        let e = s.admit_message("m3", Duration::ZERO, false, t0).unwrap_err();
        assert_eq!(e.code(), "rate_limited");
        assert!(e.retry_after().unwrap() <= MESSAGE_INTERVAL);
        s.admit_message("m4", Duration::ZERO, false, t0 + MESSAGE_INTERVAL).unwrap();
    }

    #[test]
    fn duplicates_within_30_s_whatever_the_case() {
        let t0 = Instant::now();
        let mut s = Sender::new(t0);
        s.admit_message("Hello  world", Duration::ZERO, false, t0).unwrap();
        assert_eq!(s.admit_message("hello world", Duration::ZERO, false, t0 + Duration::from_secs(5)), Err(Rejection::Duplicate));
        s.admit_message("hello world", Duration::ZERO, false, t0 + Duration::from_secs(31)).unwrap();
    }

    #[test]
    fn slow_mode_and_exemption() {
        let t0 = Instant::now();
        let slow = Duration::from_secs(10);
        let mut s = Sender::new(t0);
        s.admit_message("a", slow, false, t0).unwrap();
        match s.admit_message("b", slow, false, t0 + Duration::from_secs(4)) {
            Err(Rejection::SlowMode(d)) => assert_eq!(d, Duration::from_secs(6)),
            other => panic!("{other:?}"),
        }
        s.admit_message("c", slow, false, t0 + Duration::from_secs(10)).unwrap();
        let mut m = Sender::new(t0);
        m.admit_message("a", slow, true, t0).unwrap();
        m.admit_message("b", slow, true, t0 + Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn banned_words_on_word_boundaries() {
        let b = BannedWords::parse("darn\nbad   phrase\n\n");
        assert!(b.matches("well DARN it"));
        assert!(b.matches("a bad, phrase here"));
        assert!(!b.matches("darned"), "only whole words");
        assert!(!b.matches("bad"), "a phrase needs all its words");
        assert_eq!(BannedWords::normalized(&["  Bad   Phrase ".into(), "".into()]), "bad phrase");
    }

    #[test]
    fn length() {
        assert_eq!(check_text("  hi "), Ok("hi".into()));
        assert_eq!(check_text("   "), Err(Rejection::Empty));
        let long = "é".repeat(501);
        assert_eq!(check_text(&long), Err(Rejection::TooLong(501)));
        assert_eq!(check_text(&"é".repeat(500)).unwrap().chars().count(), 500);
    }
}
