//! Scoring, inside the transaction of what scores.
//!
//! A gift is scored in its own money transaction (`BEGIN IMMEDIATE`, the
//! one writer's batch): the battle its recipient is in is read there, and
//! the gift scores iff its ledger transfer's commit-order timestamp (ns,
//! from the server's clock) lies in `[starts_at, ends_at)`. The battle's
//! end is decided by a job of the same writer whose batch time is past
//! `ends_at`, so every gift committed before it has been scored and none
//! committed after it ever is: the boundary is exact, with no window where
//! a gift could count twice or be missed. Likes (in the like modes) score 1
//! the same way, as writer jobs of their own.
//!
//! The same transaction adds to the leaderboards' counters
//! ([`super::leaderboards`]): gift coins received and given, battle points.

use jiff::tz::TimeZone;
use onair_signaling::ApiError;

use super::leaderboards::{self, Board};
use crate::db::DbResult;
use crate::money::tx::Tx;

/// The open battle (countdown or active) whose side is `host` in `stream`:
/// (battle, side, mode, rule gift, starts_at, ends_at).
async fn open_side(tx: &mut Tx, stream: i64, host: i64) -> Result<Option<(i64, i64, String, Option<String>, i64, i64)>, ApiError> {
    sqlx::query_as(
        "SELECT b.id, s.side, b.mode, b.rule_gift, b.starts_at, b.ends_at FROM battle_sides s JOIN battles b ON b.id = s.battle_id \
         WHERE s.stream_id = $1 AND s.host_id = $2 AND s.busy = 1 AND b.state IN ('countdown', 'active')",
    )
    .bind(stream)
    .bind(host)
    .fetch_optional(tx.conn())
    .await
    .db()
}

/// Adds `points` for `side` of `battle`, scored by `supporter`.
async fn add_points(tx: &mut Tx, battle: i64, side: i64, host: i64, supporter: i64, points: i64, tz: &TimeZone) -> Result<(), ApiError> {
    sqlx::query("UPDATE battle_sides SET score = score + $1 WHERE battle_id = $2 AND side = $3").bind(points).bind(battle).bind(side).execute(tx.conn()).await.db()?;
    sqlx::query(
        "INSERT INTO battle_supporters (battle_id, side, user_id, points) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (battle_id, side, user_id) DO UPDATE SET points = battle_supporters.points + excluded.points",
    )
    .bind(battle)
    .bind(side)
    .bind(supporter)
    .bind(points)
    .execute(tx.conn())
    .await
    .db()?;
    let now = tx.now();
    leaderboards::add(tx.conn(), Board::Hosts, host, now, tz, points, 0, 0).await
}

/// In a gift's transaction, after its transfers: the leaderboards' coins,
/// and the battle's score if the gift counts. `timestamp` is the gift's
/// transfer timestamp (ns). Returns the battle it scored in.
#[allow(clippy::too_many_arguments)]
pub async fn gift(tx: &mut Tx, tz: &TimeZone, stream: i64, host: i64, sender: i64, gift: &str, coins: i64, timestamp: i64) -> Result<Option<i64>, ApiError> {
    let now = tx.now();
    leaderboards::add(tx.conn(), Board::Hosts, host, now, tz, 0, coins, 0).await?;
    leaderboards::add(tx.conn(), Board::Supporters, sender, now, tz, 0, coins, 0).await?;
    let Some((battle, side, mode, rule, starts_at, ends_at)) = open_side(tx, stream, host).await? else { return Ok(None) };
    if mode == "likes" || rule.as_deref().is_some_and(|r| r != gift) {
        return Ok(None);
    }
    if !counts(timestamp, starts_at, ends_at) {
        return Ok(None);
    }
    add_points(tx, battle, side, host, sender, coins, tz).await?;
    Ok(Some(battle))
}

/// In a like's own writer job: 1 point in the like modes.
pub async fn like(tx: &mut Tx, tz: &TimeZone, stream: i64, host: i64, user: i64) -> Result<Option<i64>, ApiError> {
    let Some((battle, side, mode, _, starts_at, ends_at)) = open_side(tx, stream, host).await? else { return Ok(None) };
    if mode == "gifts" || !counts(tx.now().saturating_mul(1_000_000), starts_at, ends_at) {
        return Ok(None);
    }
    add_points(tx, battle, side, host, user, 1, tz).await?;
    Ok(Some(battle))
}

/// Whether something committed at `timestamp` (ns) falls in the battle,
/// `[starts_at, ends_at)` (ms).
pub fn counts(timestamp: i64, starts_at: i64, ends_at: i64) -> bool {
    timestamp >= starts_at.saturating_mul(1_000_000) && timestamp < ends_at.saturating_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::counts;

    #[test]
    fn the_end_is_exclusive_to_the_nanosecond() {
        let (start, end) = (1_000, 61_000);
        assert!(!counts(999_999_999, start, end));
        assert!(counts(1_000_000_000, start, end));
        assert!(counts(60_999_999_999, start, end));
        assert!(!counts(61_000_000_000, start, end), "committed at the end: too late");
    }
}
