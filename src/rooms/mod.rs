//! Co-host rooms: every stream is a room of up to nine hosts.
//!
//! The stream's host is the room's **primary** host; others join as
//! **co-hosts** by accepting an invitation ([`invitations`]) or by having
//! their request to join approved. Once in, a co-host's stream key (or the
//! studio) publishes into the room (see `gate.rs`), and a host's access
//! token watches the room over WHEP as a host, its own producer left out.
//! [`hosts`] lists, mutes, grants permissions to and removes hosts;
//! [`layout`] arranges them on viewers' screens; [`media_events`] turns the
//! SFU's room events into `/api/ws` events; [`topology`] says whether the
//! hosts' pages connect directly (mesh) or through the SFU, and relays
//! their mesh signals. The media itself (slots, mutes
//! enforced at ingest, removal) is the SFU's (`onair_media::Room`).
//!
//! A host who left a room or was removed from it cannot publish into it
//! again (stored, so a restart does not forget). A host is live in one room
//! at a time: joining another room while in a live one, or while one's own
//! stream is live, is refused `host_busy`.

pub mod hosts;
pub mod invitations;
pub mod layout;
pub mod media_events;
pub mod settings;
pub mod topology;

use std::sync::Arc;

use axum::http::StatusCode;
use onair_media::Sfu;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;
use utoipa::ToSchema;

use crate::accounts::{Principal, User};
use crate::db::DbResult;
use crate::membership::Membership;
use crate::realtime::{Event, Hub, Topic};
use crate::streams::{State, Stream};

/// Hosts a room holds at most (the primary included).
pub const MAX_HOSTS: usize = onair_media::MAX_HOSTS;

/// An invitation is open this long.
pub const INVITATION_TTL_MS: i64 = 10 * 60 * 1000;

/// What a co-host may do besides publishing (the primary host may all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Invite other hosts.
    Invite,
    /// Mute other hosts (not the primary host).
    MuteOthers,
    /// Change the layout.
    Layout,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 3] = [Permission::Invite, Permission::MuteOthers, Permission::Layout];

    fn as_str(self) -> &'static str {
        match self {
            Permission::Invite => "invite",
            Permission::MuteOthers => "mute_others",
            Permission::Layout => "layout",
        }
    }

    /// The stored comma-separated form.
    fn join(set: &[Permission]) -> String {
        let mut v: Vec<Permission> = set.to_vec();
        v.sort();
        v.dedup();
        v.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
    }

    fn split(s: &str) -> Vec<Permission> {
        Permission::ALL.into_iter().filter(|p| s.split(',').any(|x| x == p.as_str())).collect()
    }
}

/// A host's part in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HostRole {
    /// The stream's host: its leaving ends the room.
    Primary,
    /// A host who joined.
    Cohost,
}

/// Where a stored host stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// In the room.
    Active,
    /// Left by themself.
    Left,
    /// Removed (kicked).
    Removed,
}

impl MemberState {
    fn parse(s: &str) -> MemberState {
        match s {
            "active" => MemberState::Active,
            "removed" => MemberState::Removed,
            _ => MemberState::Left,
        }
    }
}

/// A co-host's stored membership.
#[derive(Debug, Clone)]
pub struct Member {
    /// Where they stand.
    pub state: MemberState,
    /// What they may do.
    pub permissions: Vec<Permission>,
}

/// What a caller is in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// The primary host.
    Primary,
    /// A co-host in the room, with these permissions.
    Cohost(Vec<Permission>),
    /// Not a host of the room.
    Outside,
}

impl Standing {
    /// Whether the caller may do what `p` allows.
    pub fn may(&self, p: Permission) -> bool {
        match self {
            Standing::Primary => true,
            Standing::Cohost(perms) => perms.contains(&p),
            Standing::Outside => false,
        }
    }

    /// Whether the caller is a host of the room.
    pub fn is_host(&self) -> bool {
        !matches!(self, Standing::Outside)
    }
}

/// Where a stream key publishes, as far as rooms are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishRoom {
    /// Into this live stream's room, as a co-host.
    Cohost(i64),
    /// Removed from this live stream's room.
    Removed(i64),
    /// The host's own streams (the usual path).
    Own,
}

/// The room service.
#[derive(Clone)]
pub struct Rooms {
    pub(crate) pool: SqlitePool,
    pub(crate) hub: Arc<Hub>,
    pub(crate) sfu: Sfu,
    pub(crate) membership: Membership,
    pub(crate) mesh: Arc<topology::Mesh>,
}

pub(crate) fn conflict(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, msg)
}

/// Active hosts of a stream's room (the primary included).
pub async fn host_count(pool: &SqlitePool, stream_id: i64) -> Result<i64, ApiError> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM room_hosts WHERE stream_id = $1 AND role = 'cohost' AND state = 'active'")
        .bind(stream_id)
        .fetch_one(pool)
        .await
        .db()?;
    Ok(n + 1)
}

impl Rooms {
    /// The service, following the SFU's room events.
    pub fn start(pool: SqlitePool, hub: Arc<Hub>, sfu: Sfu, membership: Membership) -> Rooms {
        let rooms = Rooms { pool, hub, sfu, membership, mesh: topology::Mesh::new() };
        media_events::follow(rooms.clone());
        rooms
    }

    /// A co-host's stored membership of a stream's room.
    pub async fn member(&self, stream_id: i64, user_id: i64) -> Result<Option<Member>, ApiError> {
        let row: Option<(String, String)> = sqlx::query_as("SELECT state, permissions FROM room_hosts WHERE stream_id = $1 AND user_id = $2 AND role = 'cohost'")
            .bind(stream_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        Ok(row.map(|(state, perms)| Member { state: MemberState::parse(&state), permissions: Permission::split(&perms) }))
    }

    /// What `user_id` is in `s`'s room.
    pub async fn standing(&self, s: &Stream, user_id: i64) -> Result<Standing, ApiError> {
        if s.host.id == user_id {
            return Ok(Standing::Primary);
        }
        Ok(match self.member(s.id, user_id).await? {
            Some(m) if m.state == MemberState::Active => Standing::Cohost(m.permissions),
            _ => Standing::Outside,
        })
    }

    /// Where `user_id`'s stream key publishes: a live room they are a
    /// co-host of (or were removed from), else their own streams.
    pub async fn publish_room(&self, user_id: i64) -> Result<PublishRoom, ApiError> {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT rh.stream_id, rh.state FROM room_hosts rh JOIN streams s ON s.id = rh.stream_id \
             WHERE rh.user_id = $1 AND rh.role = 'cohost' AND rh.state IN ('active', 'removed') AND s.state = 'live' \
             ORDER BY CASE WHEN rh.state = 'active' THEN 0 ELSE 1 END, rh.joined_at DESC LIMIT 1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        Ok(match row {
            Some((id, state)) if state == "active" => PublishRoom::Cohost(id),
            Some((id, _)) => PublishRoom::Removed(id),
            None => PublishRoom::Own,
        })
    }

    /// The host name `who` watches `s`'s room as (WHEP as a host): its
    /// primary or an active co-host, by username.
    pub async fn watching_host(&self, s: &Stream, who: &User) -> Result<Option<String>, ApiError> {
        Ok(self.standing(s, who.id).await?.is_host().then(|| who.username.clone()))
    }

    /// Refuses a stream whose room is over.
    pub(crate) fn check_open(s: &Stream) -> Result<(), ApiError> {
        if s.is_over() {
            return Err(conflict("stream_over", format!("stream {} is {}", s.id, s.state.as_str())));
        }
        Ok(())
    }

    /// Whether `s` is live (its room exists in the SFU or will).
    pub(crate) fn is_live(s: &Stream) -> bool {
        s.state == State::Live
    }

    /// The caller as a moderator of `s`'s channel (its host, a channel
    /// moderator, staff).
    pub(crate) async fn moderates(&self, s: &Stream, who: &Principal) -> Result<bool, ApiError> {
        crate::streams::access::can_moderate(&self.membership, s.host.id, &who.user).await
    }

    pub(crate) fn to_stream(&self, stream_id: i64, event: &Event) {
        self.hub.publish(Topic::Stream(stream_id), event);
    }

    pub(crate) fn to_user(&self, user_id: i64, event: &Event) {
        self.hub.publish(Topic::User(user_id), event);
    }
}
