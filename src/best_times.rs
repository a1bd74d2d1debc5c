//! "Best times to stream": a host's past streams' average viewers by
//! weekday and hour, in the host's time zone when one is known (the zone of
//! their latest recurring schedule), else UTC, and the answer says which.
//!
//! Each past stream's live time is cut at the hours of that zone; in each
//! piece the average audience is the real viewers' watch time in it over its
//! length. A weekday-hour's figure is the watch time of every stream that
//! was live then over their live time then (streams that ran longer there
//! weigh more), so one short spike does not make an hour look best.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use onair_signaling::ApiError;
use serde::Serialize;
use sqlx::SqlitePool;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::db::DbResult;

/// How far back streams count.
pub const LOOKBACK_DAYS: i64 = 90;
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// One weekday-hour.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Slot {
    /// `mon` ... `sun`.
    pub weekday: String,
    /// 0-23, in `timezone`.
    pub hour: u8,
    /// Average real viewers while the host was live then.
    pub average_viewers: f64,
    /// Past streams live at that weekday-hour.
    pub streams: i64,
    /// Minutes live at that weekday-hour, over all those streams.
    pub live_minutes: i64,
}

/// A host's best times.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BestTimes {
    /// The zone the weekdays and hours are in (an IANA name, or `UTC`).
    pub timezone: String,
    /// `schedule` (the host's latest recurring schedule) or `utc` (none known).
    pub timezone_source: String,
    /// Past streams considered (ended in the last 90 days, with media).
    pub streams_considered: i64,
    /// Every weekday-hour the host was live, by weekday then hour.
    pub slots: Vec<Slot>,
    /// The three best, most average viewers first.
    pub best: Vec<Slot>,
}

/// Averages by weekday-hour from streams' live times `(start, end)` (ms)
/// and their real viewers' stays `(stream index, from, to)`.
pub fn slots(streams: &[(i64, i64)], stays: &[(usize, i64, i64)], tz: &TimeZone) -> Vec<Slot> {
    // (weekday, hour) -> (viewer ms, live ms, streams)
    let mut acc: BTreeMap<(usize, u8), (i128, i128, i64)> = BTreeMap::new();
    for (i, &(start, end)) in streams.iter().enumerate() {
        if end <= start {
            continue;
        }
        let mine: Vec<(i64, i64)> = stays.iter().filter(|s| s.0 == i).map(|s| (s.1.max(start), s.2.min(end))).filter(|(a, b)| b > a).collect();
        let mut seen: Vec<(usize, u8)> = Vec::new();
        let mut t = start;
        while t < end {
            let Ok(ts) = Timestamp::from_millisecond(t) else { break };
            let z: ZonedDateTime = ts.to_zoned_datetime(tz.clone());
            let hour_start = z.with().minute(0).second(0).subsec_nanosecond(0).build().map(|h| h.timestamp().as_millisecond()).unwrap_or(t);
            let next = (hour_start + 3_600_000).max(t + 1);
            let piece_end = next.min(end);
            let key = (z.weekday().to_monday_zero_offset() as usize, z.hour() as u8);
            let viewer_ms: i64 = mine.iter().map(|(a, b)| (b.min(&piece_end) - a.max(&t)).max(0)).sum();
            let e = acc.entry(key).or_default();
            e.0 += viewer_ms as i128;
            e.1 += (piece_end - t) as i128;
            if !seen.contains(&key) {
                seen.push(key);
                e.2 += 1;
            }
            t = piece_end;
        }
    }
    acc.into_iter()
        .filter(|(_, (_, live, _))| *live > 0)
        .map(|((wd, hour), (viewer_ms, live_ms, n))| Slot {
            weekday: WEEKDAYS[wd].to_owned(),
            hour,
            average_viewers: ((viewer_ms as f64 / live_ms as f64) * 100.0).round() / 100.0,
            streams: n,
            live_minutes: (live_ms / 60_000) as i64,
        })
        .collect()
}

/// The best times of a host's streams that ended in the last 90 days.
pub async fn best_times(pool: &SqlitePool, host_id: i64) -> Result<BestTimes, ApiError> {
    let zone: Option<(String,)> = sqlx::query_as("SELECT timezone FROM streams WHERE host_id = $1 AND timezone IS NOT NULL AND timezone <> '' ORDER BY id DESC LIMIT 1")
        .bind(host_id)
        .fetch_optional(pool)
        .await
        .db()?;
    let (tz, name, source) = match zone.and_then(|(z,)| TimeZone::get(&z).ok().map(|tz| (tz, z))) {
        Some((tz, z)) => (tz, z, "schedule"),
        None => (TimeZone::UTC, "UTC".to_owned(), "utc"),
    };
    let since = now_ms() - LOOKBACK_DAYS * 24 * 3600 * 1000;
    let streams: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT id, media_started_at, ended_at FROM streams WHERE host_id = $1 AND state IN ('ended', 'archived') \
         AND media_started_at IS NOT NULL AND ended_at IS NOT NULL AND ended_at >= $2 ORDER BY id",
    )
    .bind(host_id)
    .bind(since)
    .fetch_all(pool)
    .await
    .db()?;
    let index: BTreeMap<i64, usize> = streams.iter().enumerate().map(|(i, s)| (s.0, i)).collect();
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT v.stream_id, v.joined_at, COALESCE(v.left_at, v.last_seen_at) FROM viewer_sessions v JOIN streams s ON s.id = v.stream_id \
         WHERE s.host_id = $1 AND s.state IN ('ended', 'archived') AND s.ended_at >= $2 AND v.load_test = 0",
    )
    .bind(host_id)
    .bind(since)
    .fetch_all(pool)
    .await
    .db()?;
    let stays: Vec<(usize, i64, i64)> = rows.into_iter().filter_map(|(sid, a, b)| index.get(&sid).map(|i| (*i, a, b))).collect();
    let spans: Vec<(i64, i64)> = streams.iter().map(|s| (s.1, s.2)).collect();
    let slots = slots(&spans, &stays, &tz);
    let mut best = slots.clone();
    best.sort_by(|a, b| b.average_viewers.total_cmp(&a.average_viewers).then(b.live_minutes.cmp(&a.live_minutes)));
    best.truncate(3);
    Ok(BestTimes { timezone: name, timezone_source: source.to_owned(), streams_considered: streams.len() as i64, slots, best })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        crate::clock::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn averages_by_weekday_and_hour() {
        // Monday 2026-03-02 18:30-20:00 UTC; two viewers.
        let streams = [(at("2026-03-02T18:30:00Z"), at("2026-03-02T20:00:00Z"))];
        let stays = [
            (0, at("2026-03-02T18:30:00Z"), at("2026-03-02T20:00:00Z")),
            (0, at("2026-03-02T19:00:00Z"), at("2026-03-02T19:30:00Z")),
        ];
        let s = slots(&streams, &stays, &TimeZone::UTC);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].weekday.as_str(), s[0].hour, s[0].average_viewers, s[0].live_minutes), ("mon", 18, 1.0, 30));
        assert_eq!((s[1].hour, s[1].average_viewers, s[1].live_minutes), (19, 1.5, 60), "one all hour, one half of it");
    }

    #[test]
    fn hours_are_the_hosts() {
        // 18:30 UTC on a Monday is 19:30 in Paris (CET).
        let streams = [(at("2026-03-02T18:30:00Z"), at("2026-03-02T19:00:00Z"))];
        let stays = [(0, at("2026-03-02T18:30:00Z"), at("2026-03-02T19:00:00Z"))];
        let s = slots(&streams, &stays, &TimeZone::get("Europe/Paris").unwrap());
        assert_eq!((s[0].weekday.as_str(), s[0].hour, s[0].average_viewers), ("mon", 19, 1.0));
        // Sunday 23:30 UTC is Monday 08:30 in Tokyo.
        let streams = [(at("2026-03-01T23:30:00Z"), at("2026-03-02T00:00:00Z"))];
        let s = slots(&streams, &[], &TimeZone::get("Asia/Tokyo").unwrap());
        assert_eq!((s[0].weekday.as_str(), s[0].hour, s[0].average_viewers), ("mon", 8, 0.0));
    }

    #[test]
    fn longer_streams_weigh_more() {
        // Two Monday 18:00 slots: 4 viewers for 10 min, 1 viewer for 60 min.
        let streams = [(at("2026-03-02T18:00:00Z"), at("2026-03-02T18:10:00Z")), (at("2026-03-09T18:00:00Z"), at("2026-03-09T19:00:00Z"))];
        let mut stays = vec![(1, at("2026-03-09T18:00:00Z"), at("2026-03-09T19:00:00Z"))];
        for _ in 0..4 {
            stays.push((0, at("2026-03-02T18:00:00Z"), at("2026-03-02T18:10:00Z")));
        }
        let s = slots(&streams, &stays, &TimeZone::UTC);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].streams, s[0].live_minutes), (2, 70));
        assert_eq!(s[0].average_viewers, ((40.0 + 60.0) / 70.0 * 100.0_f64).round() / 100.0);
    }
}
