//! Joining a room: invitations (open ten minutes) and requests to join.
//!
//! Either way ends in [`Rooms::admit`], one `BEGIN IMMEDIATE` transaction
//! that checks the room has a place (`room_full`) and the host is not live
//! elsewhere (`host_busy`), so two acceptances racing for the last place
//! cannot both win. `now` is passed in: expiry is tested without sleeping.

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{conflict, MemberState, Permission, Rooms, INVITATION_TTL_MS};
use crate::accounts::{Principal, User};
use crate::db::{begin_immediate, DbResult};
use crate::realtime::Event;
use crate::streams::Stream;

/// Where an invitation or a request to join stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Waiting for an answer.
    Pending,
    /// Accepted (invitation): the invitee is a co-host.
    Accepted,
    /// Declined (invitation).
    Declined,
    /// Approved (request): the host is a co-host.
    Approved,
    /// Rejected (request).
    Rejected,
    /// Not answered within ten minutes (invitation).
    Expired,
}

impl Decision {
    fn parse(s: &str) -> Decision {
        match s {
            "accepted" => Decision::Accepted,
            "declined" => Decision::Declined,
            "approved" => Decision::Approved,
            "rejected" => Decision::Rejected,
            _ => Decision::Pending,
        }
    }
}

/// An invitation to co-host a stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    /// The stream.
    pub stream_id: i64,
    /// Its title.
    pub stream_title: String,
    /// Who is invited (username).
    pub user: String,
    /// Who invited them (username).
    pub invited_by: String,
    /// Where it stands.
    pub state: Decision,
    /// Until when it may be accepted.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
}

/// A host's request to join a stream's room.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JoinRequest {
    /// The stream.
    pub stream_id: i64,
    /// Who asks (username).
    pub user: String,
    /// Their shown name.
    pub display_name: String,
    /// Where it stands.
    pub state: Decision,
    /// When they asked.
    #[serde(serialize_with = "crate::clock::json::ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// `POST /api/streams/{id}/invitations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteInput {
    /// The host to invite (username).
    pub user: String,
}

fn no_invitation(s: &Stream) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "invitation_not_found", format!("you have no open invitation to stream {}", s.id))
}

impl Rooms {
    /// Checks `user` may become a co-host of `s` (not before the room's
    /// checks of [`Rooms::admit`]).
    async fn check_candidate(&self, s: &Stream, user: &User) -> Result<(), ApiError> {
        if user.id == s.host.id {
            return Err(conflict("already_host", "the stream's own host is its primary host"));
        }
        if !user.role.can_host() {
            return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not_a_host", format!("{} is not a host and cannot publish", user.username)));
        }
        match self.member(s.id, user.id).await? {
            Some(m) if m.state == MemberState::Active => Err(conflict("already_host", format!("{} is a host of this room already", user.username))),
            Some(_) => Err(ApiError::new(StatusCode::FORBIDDEN, "host_removed", format!("{} left or was removed from this room and cannot join it again", user.username))),
            None => Ok(()),
        }
    }

    /// Invites `invitee` to co-host `s` (its primary host, or a co-host
    /// with the `invite` permission). Inviting again renews the invitation.
    pub async fn invite(&self, s: &Stream, by: &Principal, invitee: &User, now: i64) -> Result<Invitation, ApiError> {
        Self::check_open(s)?;
        if !self.standing(s, by.id()).await?.may(Permission::Invite) {
            return Err(ApiError::forbidden("only the primary host, or a co-host allowed to, invites hosts"));
        }
        self.check_candidate(s, invitee).await?;
        if super::host_count(&self.pool, s.id).await? >= s.max_hosts {
            return Err(conflict("room_full", format!("the room has its {} hosts", s.max_hosts)));
        }
        let expires_at = now + INVITATION_TTL_MS;
        sqlx::query(
            "INSERT INTO room_invitations (stream_id, user_id, invited_by, state, created_at, expires_at) VALUES ($1, $2, $3, 'pending', $4, $5) \
             ON CONFLICT (stream_id, user_id) DO UPDATE SET invited_by = excluded.invited_by, state = 'pending', created_at = excluded.created_at, expires_at = excluded.expires_at",
        )
        .bind(s.id)
        .bind(invitee.id)
        .bind(by.id())
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .db()?;
        let inv = Invitation { stream_id: s.id, stream_title: s.title.clone(), user: invitee.username.clone(), invited_by: by.user.username.clone(), state: Decision::Pending, expires_at };
        self.to_user(invitee.id, &Event::CohostInvitation { invitation: Box::new(inv.clone()) });
        Ok(inv)
    }

    /// The caller's invitation to `s`, and who made it.
    async fn invitation(&self, s: &Stream, who: &User, now: i64) -> Result<(Invitation, Option<i64>), ApiError> {
        let row: Option<(String, i64, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT i.state, i.expires_at, i.invited_by, u.username FROM room_invitations i LEFT JOIN users u ON u.id = i.invited_by WHERE i.stream_id = $1 AND i.user_id = $2",
        )
        .bind(s.id)
        .bind(who.id)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        let (state, expires_at, by_id, by) = row.ok_or_else(|| no_invitation(s))?;
        let mut state = Decision::parse(&state);
        if state == Decision::Pending && expires_at <= now {
            state = Decision::Expired;
        }
        Ok((Invitation { stream_id: s.id, stream_title: s.title.clone(), user: who.username.clone(), invited_by: by.unwrap_or_default(), state, expires_at }, by_id))
    }

    /// Answers the caller's invitation to `s`.
    pub async fn answer_invitation(&self, s: &Stream, who: &User, accept: bool, now: i64) -> Result<Invitation, ApiError> {
        let (mut inv, by) = self.invitation(s, who, now).await?;
        match inv.state {
            Decision::Pending => {}
            Decision::Expired => return Err(ApiError::new(StatusCode::GONE, "invitation_expired", "this invitation expired (they are open ten minutes): ask for a new one")),
            _ => return Err(no_invitation(s)),
        }
        if accept {
            Self::check_open(s)?;
            self.check_candidate(s, who).await?;
            self.admit(s, who, now).await?;
        }
        inv.state = if accept { Decision::Accepted } else { Decision::Declined };
        sqlx::query("UPDATE room_invitations SET state = $1 WHERE stream_id = $2 AND user_id = $3")
            .bind(if accept { "accepted" } else { "declined" })
            .bind(s.id)
            .bind(who.id)
            .execute(&self.pool)
            .await
            .db()?;
        let event = Event::CohostInvitation { invitation: Box::new(inv.clone()) };
        for id in by.into_iter().chain([s.host.id]).collect::<std::collections::BTreeSet<_>>() {
            self.to_user(id, &event);
        }
        Ok(inv)
    }

    /// Makes `who` a co-host of `s`, if the room has a place and they are
    /// not live elsewhere.
    async fn admit(&self, s: &Stream, who: &User, now: i64) -> Result<(), ApiError> {
        let mut tx = begin_immediate(&self.pool).await.db()?;
        let (cohosts,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM room_hosts WHERE stream_id = $1 AND role = 'cohost' AND state = 'active'")
            .bind(s.id)
            .fetch_one(&mut *tx)
            .await
            .db()?;
        if cohosts + 1 >= s.max_hosts {
            return Err(conflict("room_full", format!("the room has its {} hosts", s.max_hosts)));
        }
        let (busy,): (i64,) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM streams WHERE host_id = $1 AND state = 'live') + \
             (SELECT COUNT(*) FROM room_hosts rh JOIN streams s ON s.id = rh.stream_id WHERE rh.user_id = $1 AND rh.role = 'cohost' AND rh.state = 'active' AND s.state = 'live')",
        )
        .bind(who.id)
        .fetch_one(&mut *tx)
        .await
        .db()?;
        if busy > 0 {
            return Err(conflict("host_busy", "you are live in another room: leave it (or end your stream) first"));
        }
        sqlx::query(
            "INSERT INTO room_hosts (stream_id, user_id, role, state, permissions, joined_at) VALUES ($1, $2, 'cohost', 'active', '', $3) \
             ON CONFLICT (stream_id, user_id) DO UPDATE SET state = 'active', joined_at = excluded.joined_at, left_at = NULL",
        )
        .bind(s.id)
        .bind(who.id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(())
    }

    /// The caller (a host) asks to join `s`'s room; its primary host hears
    /// of it (`cohost_request`).
    pub async fn request_to_join(&self, s: &Stream, who: &User, now: i64) -> Result<JoinRequest, ApiError> {
        Self::check_open(s)?;
        self.check_candidate(s, who).await?;
        sqlx::query(
            "INSERT INTO room_join_requests (stream_id, user_id, state, created_at) VALUES ($1, $2, 'pending', $3) \
             ON CONFLICT (stream_id, user_id) DO UPDATE SET state = 'pending', created_at = excluded.created_at, decided_at = NULL",
        )
        .bind(s.id)
        .bind(who.id)
        .bind(now)
        .execute(&self.pool)
        .await
        .db()?;
        let req = JoinRequest { stream_id: s.id, user: who.username.clone(), display_name: who.display_name.clone(), state: Decision::Pending, created_at: now };
        self.to_user(s.host.id, &Event::CohostRequest { request: Box::new(req.clone()) });
        Ok(req)
    }

    /// Pending requests to join `s` (its primary host).
    pub async fn join_requests(&self, s: &Stream, by: &Principal) -> Result<Vec<JoinRequest>, ApiError> {
        if s.host.id != by.id() {
            return Err(ApiError::forbidden("only the primary host sees requests to join"));
        }
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT u.username, u.display_name, r.created_at FROM room_join_requests r JOIN users u ON u.id = r.user_id \
             WHERE r.stream_id = $1 AND r.state = 'pending' ORDER BY r.created_at",
        )
        .bind(s.id)
        .fetch_all(&self.pool)
        .await
        .db()?;
        Ok(rows.into_iter().map(|(user, display_name, created_at)| JoinRequest { stream_id: s.id, user, display_name, state: Decision::Pending, created_at }).collect())
    }

    /// Approves or rejects `user`'s request to join `s` (its primary host);
    /// the requester hears of it (`cohost_request`).
    pub async fn decide_request(&self, s: &Stream, by: &Principal, user: &User, approve: bool, now: i64) -> Result<JoinRequest, ApiError> {
        if s.host.id != by.id() {
            return Err(ApiError::forbidden("only the primary host approves or rejects requests to join"));
        }
        let row: Option<(String, i64)> = sqlx::query_as("SELECT state, created_at FROM room_join_requests WHERE stream_id = $1 AND user_id = $2")
            .bind(s.id)
            .bind(user.id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        let created_at = match row {
            Some((state, at)) if state == "pending" => at,
            _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "request_not_found", format!("{} has no pending request to join", user.username))),
        };
        if approve {
            Self::check_open(s)?;
            self.check_candidate(s, user).await?;
            self.admit(s, user, now).await?;
        }
        let state = if approve { Decision::Approved } else { Decision::Rejected };
        sqlx::query("UPDATE room_join_requests SET state = $1, decided_at = $2 WHERE stream_id = $3 AND user_id = $4")
            .bind(if approve { "approved" } else { "rejected" })
            .bind(now)
            .bind(s.id)
            .bind(user.id)
            .execute(&self.pool)
            .await
            .db()?;
        let req = JoinRequest { stream_id: s.id, user: user.username.clone(), display_name: user.display_name.clone(), state, created_at };
        self.to_user(user.id, &Event::CohostRequest { request: Box::new(req.clone()) });
        Ok(req)
    }
}
