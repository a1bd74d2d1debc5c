//! What the admin console works on: the audit log of admin actions,
//! viewers' reports of streams, host approval (`--host-approval`), replays
//! taken down, the platform's overview figures and the users list.
//! [`health`] keeps the server's health over the last day.

pub mod health;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use utoipa::{IntoParams, ToSchema};

use crate::accounts::{PublicUser, Role};
use crate::clock::now_ms;
use crate::db::DbResult;

/// An admin action, as recorded.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Id (increasing).
    pub id: i64,
    /// The admin.
    pub actor: Option<PublicUser>,
    /// `change_user`, `approve_host`, `reject_host`, `end_stream`,
    /// `take_down`, `resolve_report`, `dismiss_report`, `create_webhook`,
    /// `delete_webhook`.
    pub action: String,
    /// `user`, `stream`, `report`, `webhook`.
    pub target_type: String,
    /// Its id.
    pub target_id: Option<i64>,
    /// Why (as the admin wrote it).
    pub reason: String,
    /// What changed.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// When.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries, newest first.
    pub entries: Vec<AuditEntry>,
    /// Ask with `before` = this for older ones; null at the start.
    pub next_before: Option<i64>,
}

/// Query of the audit log.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries with ids below this (the previous page's `next_before`).
    pub before: Option<i64>,
    /// 1-200, default 50.
    pub limit: Option<i64>,
    /// Only this action.
    pub action: Option<String>,
    /// Only actions on this kind of target (`user`, `stream`, ...).
    pub target_type: Option<String>,
    /// Only actions on this target (with `target_type`).
    pub target_id: Option<i64>,
}

/// A viewer's report of a stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamReport {
    /// Id.
    pub id: i64,
    /// The stream.
    pub stream_id: i64,
    /// Its title.
    pub stream_title: String,
    /// Its state now.
    pub stream_state: String,
    /// Its host.
    pub host: PublicUser,
    /// Who reported it.
    pub reporter: PublicUser,
    /// Why.
    pub reason: String,
    /// `open`, `resolved`, `dismissed`.
    pub state: String,
    /// Open reports of this stream in all.
    pub open_reports_of_stream: i64,
    /// When.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When it was reviewed.
    #[serde(serialize_with = "crate::clock::json::opt_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<i64>,
    /// The reviewer's note.
    pub resolution: String,
}

/// A user in the admin list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminUser {
    /// Id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// Email.
    pub email: Option<String>,
    /// Role.
    pub role: Role,
    /// Disabled (cannot log in).
    pub disabled: bool,
    /// `pending`, `approved` or `rejected` when the account needed an
    /// admin's approval to stream; null when it never did.
    pub host_approval: Option<String>,
    /// Streams they host (every state).
    pub streams: i64,
    /// Live now.
    pub live: bool,
    /// Stream keys not revoked.
    pub active_keys: i64,
    /// Made at.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// A page of users.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserPage {
    /// Users, newest first.
    pub users: Vec<AdminUser>,
    /// Matching users in all.
    pub total: i64,
}

/// Query of the users list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// Part of a username, shown name or email.
    pub q: Option<String>,
    /// Only this role.
    pub role: Option<Role>,
    /// `active`, `disabled`, or `pending` (waiting for host approval).
    pub status: Option<String>,
    /// 1-200, default 50.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

/// Whether a host may stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HostApproval {
    /// The server requires approval of new hosts (`--host-approval`).
    pub required: bool,
    /// `approved`, `pending`, `rejected`, or `not_required` (accounts that
    /// never needed it).
    pub state: String,
    /// The admin's note.
    pub note: String,
}

/// An audit row: id, actor id, their username, name and role, action, target type and id, reason, detail, time.
type AuditRow = (i64, i64, Option<String>, Option<String>, Option<String>, String, String, Option<i64>, String, String, i64);
/// A users-list row: id, username, name, email, role, disabled at, approval, made at, streams, live, keys.
type UserRow = (i64, String, String, Option<String>, String, Option<i64>, Option<String>, i64, i64, i64, i64);

/// The admin side of the platform.
#[derive(Clone)]
pub struct Admin {
    pool: SqlitePool,
    /// The server's health over the last day.
    pub history: Arc<health::History>,
    /// Whether new hosts need approval.
    pub host_approval: bool,
}

fn conflict(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, msg)
}

/// Trims a reason and checks it is 1-500 characters.
pub fn check_reason(field: &str, reason: &str) -> Result<String, ApiError> {
    let r = reason.trim();
    let n = r.chars().count();
    if n == 0 || n > 500 {
        return Err(ApiError::validation(BTreeMap::from([(field.to_owned(), "must be 1-500 characters".to_owned())])));
    }
    Ok(r.to_owned())
}


impl Admin {
    /// The admin service (with an empty health history).
    pub fn new(pool: SqlitePool, host_approval: bool) -> Admin {
        Admin { pool, history: Default::default(), host_approval }
    }

    /// Records an admin action.
    pub async fn audit(&self, actor: i64, action: &str, target_type: &str, target_id: Option<i64>, reason: &str, detail: serde_json::Value) -> Result<(), ApiError> {
        sqlx::query("INSERT INTO admin_audit (actor_id, action, target_type, target_id, reason, detail, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(actor)
            .bind(action)
            .bind(target_type)
            .bind(target_id)
            .bind(reason)
            .bind(detail.to_string())
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    /// The audit log, newest first.
    pub async fn audit_log(&self, q: &AuditQuery) -> Result<AuditPage, ApiError> {
        let limit = q.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::validation(BTreeMap::from([("limit".into(), "must be 1-200".into())])));
        }
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT a.id, a.actor_id, u.username, u.display_name, u.role, a.action, a.target_type, a.target_id, a.reason, a.detail, a.created_at \
             FROM admin_audit a LEFT JOIN users u ON u.id = a.actor_id \
             WHERE ($1 IS NULL OR a.id < $1) AND ($2 IS NULL OR a.action = $2) AND ($3 IS NULL OR a.target_type = $3) AND ($4 IS NULL OR a.target_id = $4) \
             ORDER BY a.id DESC LIMIT $5",
        )
        .bind(q.before)
        .bind(&q.action)
        .bind(&q.target_type)
        .bind(q.target_id)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await
        .db()?;
        let more = rows.len() as i64 > limit;
        let entries: Vec<AuditEntry> = rows
            .into_iter()
            .take(limit as usize)
            .map(|(id, actor_id, username, display, role, action, target_type, target_id, reason, detail, at)| AuditEntry {
                id,
                actor: username.map(|username| PublicUser {
                    id: actor_id,
                    username,
                    display_name: display.unwrap_or_default(),
                    role: role.as_deref().and_then(Role::parse).unwrap_or(Role::Admin),
                }),
                action,
                target_type,
                target_id,
                reason,
                detail: serde_json::from_str(&detail).unwrap_or_default(),
                created_at: at,
            })
            .collect();
        let next_before = if more { entries.last().map(|e| e.id) } else { None };
        Ok(AuditPage { entries, next_before })
    }

    /// A viewer reports a stream (one open report per viewer and stream).
    pub async fn file_report(&self, stream_id: i64, reporter: i64, reason: &str) -> Result<StreamReport, ApiError> {
        let reason = check_reason("reason", reason)?;
        let r = sqlx::query_as::<_, (i64,)>("INSERT INTO stream_reports (stream_id, reporter_id, reason, state, created_at) VALUES ($1, $2, $3, 'open', $4) RETURNING id")
            .bind(stream_id)
            .bind(reporter)
            .bind(&reason)
            .bind(now_ms())
            .fetch_one(&self.pool)
            .await;
        let (id,) = match r {
            Ok(r) => r,
            Err(e) if crate::db::is_unique_violation(&e) => return Err(conflict("already_reported", "you already reported this stream; admins will review it")),
            Err(e) => return Err(ApiError::internal(format!("database: {e}"))),
        };
        self.report(id).await?.ok_or_else(|| ApiError::internal("report vanished"))
    }

    const REPORT_SELECT: &'static str = "SELECT r.id, r.stream_id, s.title, s.state, h.id, h.username, h.display_name, h.role, p.id, p.username, p.display_name, p.role, r.reason, r.created_at, r.resolved_at, r.state, r.resolution, \
         (SELECT COUNT(*) FROM stream_reports o WHERE o.stream_id = r.stream_id AND o.state = 'open') \
         FROM stream_reports r JOIN streams s ON s.id = r.stream_id JOIN users h ON h.id = s.host_id JOIN users p ON p.id = r.reporter_id";

    fn report_of(r: &SqliteRow) -> StreamReport {
        let user = |at: usize| PublicUser {
            id: r.get(at),
            username: r.get(at + 1),
            display_name: r.get(at + 2),
            role: Role::parse(r.get::<&str, _>(at + 3)).unwrap_or(Role::Viewer),
        };
        StreamReport {
            id: r.get(0),
            stream_id: r.get(1),
            stream_title: r.get(2),
            stream_state: r.get(3),
            host: user(4),
            reporter: user(8),
            reason: r.get(12),
            created_at: r.get(13),
            resolved_at: r.get(14),
            state: r.get(15),
            resolution: r.get(16),
            open_reports_of_stream: r.get(17),
        }
    }

    /// One report.
    pub async fn report(&self, id: i64) -> Result<Option<StreamReport>, ApiError> {
        let r = sqlx::query(&format!("{} WHERE r.id = $1", Self::REPORT_SELECT)).bind(id).fetch_optional(&self.pool).await.db()?;
        Ok(r.as_ref().map(Self::report_of))
    }

    /// Reports in a state (`open` by default, `all`), oldest open first.
    pub async fn reports(&self, state: Option<&str>) -> Result<Vec<StreamReport>, ApiError> {
        let state = state.unwrap_or("open");
        if !["open", "resolved", "dismissed", "all"].contains(&state) {
            return Err(ApiError::validation(BTreeMap::from([("state".into(), "must be open, resolved, dismissed or all".into())])));
        }
        let (filter, order) = if state == "all" { ("", "r.id DESC") } else if state == "open" { (" WHERE r.state = $1", "r.id ASC") } else { (" WHERE r.state = $1", "r.id DESC") };
        let rows = sqlx::query(&format!("{}{filter} ORDER BY {order} LIMIT 500", Self::REPORT_SELECT)).bind(state).fetch_all(&self.pool).await.db()?;
        Ok(rows.iter().map(Self::report_of).collect())
    }

    /// Closes an open report as `resolved` or `dismissed`.
    pub async fn resolve_report(&self, id: i64, by: i64, outcome: &str, note: &str) -> Result<StreamReport, ApiError> {
        let r = sqlx::query("UPDATE stream_reports SET state = $1, resolved_at = $2, resolved_by = $3, resolution = $4 WHERE id = $5 AND state = 'open'")
            .bind(outcome)
            .bind(now_ms())
            .bind(by)
            .bind(note.trim())
            .bind(id)
            .execute(&self.pool)
            .await
            .db()?;
        if r.rows_affected() == 0 {
            return match self.report(id).await? {
                Some(_) => Err(conflict("report_closed", "this report was already reviewed")),
                None => Err(ApiError::new(StatusCode::NOT_FOUND, "report_not_found", format!("no report {id}"))),
            };
        }
        self.report(id).await?.ok_or_else(|| ApiError::internal("report vanished"))
    }

    /// A new host asks to stream (when approval is required).
    pub async fn request_approval(&self, user: i64) -> Result<(), ApiError> {
        sqlx::query("INSERT INTO host_approvals (user_id, state, requested_at) VALUES ($1, 'pending', $2) ON CONFLICT (user_id) DO NOTHING")
            .bind(user)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    /// Records an admin's decision on a host.
    pub async fn decide_approval(&self, user: i64, approve: bool, by: i64, note: &str) -> Result<(), ApiError> {
        let state = if approve { "approved" } else { "rejected" };
        let now = now_ms();
        sqlx::query(
            "INSERT INTO host_approvals (user_id, state, requested_at, decided_at, decided_by, note) VALUES ($1, $2, $3, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, decided_at = excluded.decided_at, decided_by = excluded.decided_by, note = excluded.note",
        )
        .bind(user)
        .bind(state)
        .bind(now)
        .bind(by)
        .bind(note.trim())
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    /// A host's approval.
    pub async fn approval(&self, user: i64) -> Result<HostApproval, ApiError> {
        let r: Option<(String, String)> = sqlx::query_as("SELECT state, note FROM host_approvals WHERE user_id = $1").bind(user).fetch_optional(&self.pool).await.db()?;
        Ok(match r {
            Some((state, note)) => HostApproval { required: self.host_approval, state, note },
            None => HostApproval { required: self.host_approval, state: "not_required".into(), note: String::new() },
        })
    }

    /// Ok if the host may stream: 403 while their approval is pending or
    /// after it was refused.
    pub async fn check_may_stream(&self, user: i64) -> Result<(), ApiError> {
        match self.approval(user).await?.state.as_str() {
            "pending" => Err(ApiError::new(StatusCode::FORBIDDEN, "host_approval_pending", "an admin has to approve your account before you can stream")),
            "rejected" => Err(ApiError::new(StatusCode::FORBIDDEN, "host_rejected", "an admin declined your request to stream")),
            _ => Ok(()),
        }
    }

    /// Takes a replay down for good (unlisted, never saved again).
    pub async fn take_down(&self, stream: i64, by: i64, reason: &str) -> Result<bool, ApiError> {
        let mut tx = crate::db::begin_immediate(&self.pool).await.db()?;
        let r = sqlx::query("INSERT INTO stream_takedowns (stream_id, by_user, reason, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (stream_id) DO NOTHING")
            .bind(stream)
            .bind(by)
            .bind(reason)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .db()?;
        // Saved streams are listed for everyone; ended ones only for their host.
        sqlx::query("UPDATE streams SET state = 'ended', updated_at = $1 WHERE id = $2 AND state = 'archived'").bind(now_ms()).bind(stream).execute(&mut *tx).await.db()?;
        tx.commit().await.db()?;
        Ok(r.rows_affected() == 1)
    }

    /// Whether a stream was taken down.
    pub async fn taken_down(&self, stream: i64) -> Result<bool, ApiError> {
        let r: Option<(i64,)> = sqlx::query_as("SELECT stream_id FROM stream_takedowns WHERE stream_id = $1").bind(stream).fetch_optional(&self.pool).await.db()?;
        Ok(r.is_some())
    }

    /// Users matching a search, newest first.
    pub async fn users(&self, q: &UsersQuery) -> Result<UserPage, ApiError> {
        let limit = q.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::validation(BTreeMap::from([("limit".into(), "must be 1-200".into())])));
        }
        let status = q.status.as_deref();
        if status.is_some_and(|s| !["active", "disabled", "pending"].contains(&s)) {
            return Err(ApiError::validation(BTreeMap::from([("status".into(), "must be active, disabled or pending".into())])));
        }
        let pattern = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(|s| format!("%{}%", s.to_lowercase().replace(['\\', '%'], "").replace('_', "\\_")));
        let filter = "FROM users u LEFT JOIN host_approvals a ON a.user_id = u.id \
             WHERE ($1 IS NULL OR lower(u.username) LIKE $1 ESCAPE '\\' OR lower(u.display_name) LIKE $1 ESCAPE '\\' OR lower(COALESCE(u.email, '')) LIKE $1 ESCAPE '\\') \
             AND ($2 IS NULL OR u.role = $2) \
             AND ($3 IS NULL OR ($3 = 'active' AND u.disabled_at IS NULL) OR ($3 = 'disabled' AND u.disabled_at IS NOT NULL) OR ($3 = 'pending' AND a.state = 'pending'))";
        let role = q.role.map(|r| r.as_str());
        let (total,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) {filter}")).bind(&pattern).bind(role).bind(status).fetch_one(&self.pool).await.db()?;
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT u.id, u.username, u.display_name, u.email, u.role, u.disabled_at, a.state, u.created_at, \
             (SELECT COUNT(*) FROM streams s WHERE s.host_id = u.id), \
             (SELECT COUNT(*) FROM streams s WHERE s.host_id = u.id AND s.state = 'live'), \
             (SELECT COUNT(*) FROM host_stream_keys k WHERE k.user_id = u.id AND k.revoked_at IS NULL) \
             {filter} ORDER BY u.id DESC LIMIT $4 OFFSET $5"
        ))
        .bind(&pattern)
        .bind(role)
        .bind(status)
        .bind(limit)
        .bind(q.offset.unwrap_or(0).max(0))
        .fetch_all(&self.pool)
        .await
        .db()?;
        let users = rows
            .into_iter()
            .map(|(id, username, display_name, email, role, disabled, approval, created_at, streams, live, keys)| AdminUser {
                id,
                username,
                display_name,
                email,
                role: Role::parse(&role).unwrap_or(Role::Viewer),
                disabled: disabled.is_some(),
                host_approval: approval,
                streams,
                live: live > 0,
                active_keys: keys,
                created_at,
            })
            .collect();
        Ok(UserPage { users, total })
    }

    /// One user as the admin list shows them (disabled ones too).
    pub async fn user(&self, id: i64) -> Result<Option<AdminUser>, ApiError> {
        let r: Option<(String,)> = sqlx::query_as("SELECT username FROM users WHERE id = $1").bind(id).fetch_optional(&self.pool).await.db()?;
        let Some((name,)) = r else { return Ok(None) };
        let page = self.users(&UsersQuery { q: Some(name.clone()), role: None, status: None, limit: Some(200), offset: None }).await?;
        Ok(page.users.into_iter().find(|u| u.id == id))
    }

    /// The most real viewers at once on the whole platform since `from`
    /// (ms), from the viewer sessions (load tests left out).
    pub async fn peak_viewers_since(&self, from: i64, now: i64) -> Result<i64, ApiError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as("SELECT joined_at, COALESCE(left_at, $2) FROM viewer_sessions WHERE load_test = 0 AND joined_at < $2 AND COALESCE(left_at, $2) > $1")
            .bind(from)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .db()?;
        Ok(peak_concurrent(rows.into_iter().map(|(a, b)| (a.max(from), b))))
    }

    /// Counts for the overview: users made since `from`, all users, hosts,
    /// hosts waiting for approval, open reports, streams live.
    pub async fn counts(&self, from: i64) -> Result<(i64, i64, i64, i64, i64, i64), ApiError> {
        let r: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM users WHERE created_at >= $1), (SELECT COUNT(*) FROM users), \
             (SELECT COUNT(*) FROM users WHERE role = 'host'), (SELECT COUNT(*) FROM host_approvals WHERE state = 'pending'), \
             (SELECT COUNT(*) FROM stream_reports WHERE state = 'open'), (SELECT COUNT(*) FROM streams WHERE state = 'live')",
        )
        .bind(from)
        .fetch_one(&self.pool)
        .await
        .db()?;
        Ok(r)
    }
}

/// The most intervals `[from, to)` overlapping at once.
pub fn peak_concurrent(intervals: impl Iterator<Item = (i64, i64)>) -> i64 {
    let mut edges: Vec<(i64, i64)> = Vec::new();
    for (a, b) in intervals {
        if b > a {
            edges.push((a, 1));
            edges.push((b, -1));
        }
    }
    // At the same instant a leave comes before a join.
    edges.sort();
    let (mut now, mut peak) = (0i64, 0i64);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    peak
}

/// Midnight (UTC) of the day of `now` (ms).
pub fn day_start_utc(now: i64) -> i64 {
    now - now.rem_euclid(24 * 3600 * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_count_overlaps_only() {
        assert_eq!(peak_concurrent([(0, 10), (5, 15), (10, 20), (12, 13)].into_iter()), 3, "5-15, 10-20 and 12-13 at 12");
        assert_eq!(peak_concurrent([(0, 10), (10, 20)].into_iter()), 1, "one leaves as the other joins");
        assert_eq!(peak_concurrent(std::iter::empty()), 0);
    }

    #[test]
    fn days_start_at_utc_midnight() {
        let t = crate::clock::parse_rfc3339("2026-03-08T06:30:00Z").unwrap();
        assert_eq!(crate::clock::rfc3339(day_start_utc(t)), "2026-03-08T00:00:00Z");
    }
}
