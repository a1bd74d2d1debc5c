//! Leaderboards, kept incrementally: counters per board, period bucket and
//! user, added to in the same transaction as what they count (a gift's
//! ledger transfers, a battle's end), so a request reads one bucket's top
//! rows from an index and never scans gifts or battles.
//!
//! Boards: `hosts` (battle points scored, gift coins received, battles
//! won) and `supporters` (gift coins given). Periods: the day, the week
//! (from Monday) and the month in the configured time zone
//! (`--leaderboard-timezone`, an IANA name, default UTC), and `all`.

use jiff::tz::TimeZone;
use jiff::Timestamp;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqliteConnection;
use utoipa::{IntoParams, ToSchema};

use crate::db::DbResult;
use crate::money::invalid;

/// A board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Board {
    /// Hosts by battle points, then gift coins received.
    Hosts,
    /// Supporters by gift coins given.
    Supporters,
}

impl Board {
    fn as_str(self) -> &'static str {
        match self {
            Board::Hosts => "hosts",
            Board::Supporters => "supporters",
        }
    }
}

/// A period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Today.
    Day,
    /// This week (from Monday).
    Week,
    /// This month.
    Month,
    /// Since the beginning.
    All,
}

impl Period {
    const ALL: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::All];

    fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::All => "all",
        }
    }
}

/// A period's bucket at `now` (Unix ms) in `tz`: its key and when it began
/// and ends (Unix ms; `None` for `all`).
pub fn bucket(period: Period, now: i64, tz: &TimeZone) -> (String, Option<(i64, i64)>) {
    let Ok(ts) = Timestamp::from_millisecond(now) else { return ("all".into(), None) };
    let date = ts.to_zoned_datetime(tz.clone()).date();
    let (first, next) = match period {
        Period::All => return ("all".into(), None),
        Period::Day => (date, date.tomorrow().ok()),
        Period::Week => {
            let monday = date.checked_sub(jiff::Span::new().days(date.weekday().to_monday_zero_offset() as i64)).unwrap_or(date);
            (monday, monday.checked_add(jiff::Span::new().days(7)).ok())
        }
        Period::Month => {
            let first = date.first_of_month();
            (first, first.checked_add(jiff::Span::new().months(1)).ok())
        }
    };
    let start = |d: jiff::civil::Date| d.to_zoned_datetime(tz.clone()).map(|z| z.timestamp().as_millisecond()).unwrap_or(now);
    let range = next.map(|n| (start(first), start(n)));
    (first.to_string(), range)
}

/// Adds to `user`'s counters on `board` in every period's current bucket.
#[allow(clippy::too_many_arguments)]
pub async fn add(c: &mut SqliteConnection, board: Board, user: i64, now: i64, tz: &TimeZone, points: i64, coins: i64, wins: i64) -> Result<(), ApiError> {
    if points == 0 && coins == 0 && wins == 0 {
        return Ok(());
    }
    let mut sql = String::from("INSERT INTO leaderboard_counters (board, period, bucket, user_id, points, coins, wins) VALUES ");
    let mut binds = Vec::new();
    for (i, p) in Period::ALL.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        let n = i * 2;
        sql.push_str(&format!("($1, ${}, ${}, $10, $11, $12, $13)", n + 2, n + 3));
        binds.push((p.as_str(), bucket(*p, now, tz).0));
    }
    sql.push_str(
        " ON CONFLICT (board, period, bucket, user_id) DO UPDATE SET points = leaderboard_counters.points + excluded.points, \
         coins = leaderboard_counters.coins + excluded.coins, wins = leaderboard_counters.wins + excluded.wins",
    );
    let mut q = sqlx::query(&sql).bind(board.as_str());
    for (period, key) in &binds {
        q = q.bind(*period).bind(key);
    }
    q.bind(user).bind(points).bind(coins).bind(wins).execute(c).await.db()?;
    Ok(())
}

/// `GET /api/leaderboards` query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeaderboardQuery {
    /// `hosts` or `supporters`.
    pub board: Option<String>,
    /// `day`, `week`, `month` or `all` (default `week`).
    pub period: Option<String>,
    /// 1-100 (default 50).
    pub limit: Option<i64>,
}

/// One row of a board.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Ranked {
    /// 1, 2, 3, ...
    pub rank: i64,
    /// Username.
    pub user: String,
    /// Display name.
    pub display_name: String,
    /// Battle points scored (hosts).
    pub points: i64,
    /// Gift coins received (hosts) or given (supporters).
    pub coins: i64,
    /// Battles won (hosts).
    pub wins: i64,
}

/// A board for a period.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Leaderboard {
    /// `hosts` or `supporters`.
    pub board: Board,
    /// `day`, `week`, `month`, `all`.
    pub period: Period,
    /// The bucket: the period's first day (`2026-12-01`) in the time zone, or `all`.
    pub bucket: String,
    /// The time zone of the periods.
    pub timezone: String,
    /// When the period began (null for `all`).
    #[serde(serialize_with = "crate::clock::json::opt_ms", skip_deserializing)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub from: Option<i64>,
    /// When it ends (null for `all`).
    #[serde(serialize_with = "crate::clock::json::opt_ms", skip_deserializing)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub until: Option<i64>,
    /// The top, best first.
    pub entries: Vec<Ranked>,
}

fn parse<T: for<'de> Deserialize<'de>>(field: &str, v: &str, allowed: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(v.to_owned())).map_err(|_| invalid(field, format!("must be one of {allowed}")))
}

/// The board's top for the current bucket of the period at `now`.
pub async fn read(pool: &sqlx::SqlitePool, q: &LeaderboardQuery, now: i64, tz: &TimeZone) -> Result<Leaderboard, ApiError> {
    let board: Board = parse("board", q.board.as_deref().unwrap_or("hosts"), "hosts, supporters")?;
    let period: Period = parse("period", q.period.as_deref().unwrap_or("week"), "day, week, month, all")?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(invalid("limit", "must be 1-100"));
    }
    let (key, range) = bucket(period, now, tz);
    let order = match board {
        Board::Hosts => "c.points DESC, c.coins DESC, c.user_id",
        Board::Supporters => "c.coins DESC, c.user_id",
    };
    let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT u.username, u.display_name, c.points, c.coins, c.wins FROM leaderboard_counters c JOIN users u ON u.id = c.user_id \
         WHERE c.board = $1 AND c.period = $2 AND c.bucket = $3 ORDER BY {order} LIMIT $4"
    ))
    .bind(board.as_str())
    .bind(period.as_str())
    .bind(&key)
    .bind(limit)
    .fetch_all(pool)
    .await
    .db()?;
    let entries = rows.into_iter().enumerate().map(|(i, (user, display_name, points, coins, wins))| Ranked { rank: i as i64 + 1, user, display_name, points, coins, wins }).collect();
    Ok(Leaderboard {
        board,
        period,
        bucket: key,
        timezone: tz.iana_name().unwrap_or("UTC").to_owned(),
        from: range.map(|r| r.0),
        until: range.map(|r| r.1),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        crate::clock::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn buckets_follow_the_time_zone() {
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        // Sunday 23:30 UTC is Monday 08:30 in Tokyo: a new day, week and month there.
        let t = ms("2026-05-31T23:30:00Z");
        assert_eq!(bucket(Period::Day, t, &TimeZone::UTC).0, "2026-05-31");
        assert_eq!(bucket(Period::Week, t, &TimeZone::UTC).0, "2026-05-25");
        assert_eq!(bucket(Period::Month, t, &TimeZone::UTC).0, "2026-05-01");
        assert_eq!(bucket(Period::Day, t, &tokyo).0, "2026-06-01");
        assert_eq!(bucket(Period::Week, t, &tokyo).0, "2026-06-01");
        assert_eq!(bucket(Period::Month, t, &tokyo).0, "2026-06-01");
        let (_, range) = bucket(Period::Day, t, &tokyo);
        assert_eq!(range, Some((ms("2026-05-31T15:00:00Z"), ms("2026-06-01T15:00:00Z"))));
        let (_, week) = bucket(Period::Week, t, &tokyo);
        assert_eq!(week, Some((ms("2026-05-31T15:00:00Z"), ms("2026-06-07T15:00:00Z"))));
        assert_eq!(bucket(Period::All, t, &tokyo), ("all".to_owned(), None));
        // A day with a DST change is 23 hours long.
        let lisbon = TimeZone::get("Europe/Lisbon").unwrap();
        let (_, r) = bucket(Period::Day, ms("2026-03-29T12:00:00Z"), &lisbon);
        let (a, b) = r.unwrap();
        assert_eq!(b - a, 23 * 3600 * 1000);
    }
}
