//! A room's hosts: who they are, their media state, mutes, permissions,
//! leaving and removal.
//!
//! Mutes are the SFU's (`Sfu::set_muted` drops a muted track's packets at
//! ingest, for every consumer) and stored here too, so a host who
//! reconnects comes back muted (see [`super::media_events`]).

use axum::http::StatusCode;
use onair_signaling::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{conflict, HostRole, MemberState, Permission, Rooms, Standing};
use crate::accounts::{Principal, User};
use crate::db::DbResult;
use crate::realtime::Event;
use crate::streams::Stream;

/// A host of a room, with its media state now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoomHost {
    /// Username.
    pub user: String,
    /// Shown name.
    pub display_name: String,
    /// Primary or co-host.
    pub role: HostRole,
    /// Its place in the room's order (what a viewer with enough slots gets
    /// it in, from 0), while it publishes.
    pub slot: Option<usize>,
    /// What it may do besides publishing (the primary host: everything).
    pub permissions: Vec<Permission>,
    /// Its audio is muted (no one receives it).
    pub audio_muted: bool,
    /// Its video is muted (no one receives it).
    pub video_muted: bool,
    /// It is speaking now.
    pub speaking: bool,
    /// It is the room's dominant speaker.
    pub active_speaker: bool,
    /// Its publisher is connected.
    pub connected: bool,
}

/// `PATCH /api/streams/{id}/hosts/{user}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostPatch {
    /// Mute or unmute its audio.
    pub audio_muted: Option<bool>,
    /// Mute or unmute its video.
    pub video_muted: Option<bool>,
    /// A co-host's permissions (the primary host sets them).
    pub permissions: Option<Vec<Permission>>,
}

/// A stored host row.
struct Row {
    username: String,
    display_name: String,
    role: HostRole,
    permissions: Vec<Permission>,
    audio_muted: bool,
    video_muted: bool,
}

fn no_host(s: &Stream, user: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "host_not_found", format!("{user} is not a host of stream {}", s.id))
}

impl Rooms {
    /// The primary host and the active co-hosts of `s`, in join order.
    async fn rows(&self, s: &Stream) -> Result<Vec<Row>, ApiError> {
        let stored: Vec<(i64, String, String, String, String, bool, bool)> = sqlx::query_as(
            "SELECT rh.user_id, u.username, u.display_name, rh.role, rh.permissions, rh.audio_muted <> 0, rh.video_muted <> 0 \
             FROM room_hosts rh JOIN users u ON u.id = rh.user_id WHERE rh.stream_id = $1 AND rh.state = 'active' ORDER BY rh.joined_at, rh.user_id",
        )
        .bind(s.id)
        .fetch_all(&self.pool)
        .await
        .db()?;
        let primary = stored.iter().find(|r| r.3 == "primary");
        let mut out = vec![Row {
            username: s.host.username.clone(),
            display_name: s.host.display_name.clone(),
            role: HostRole::Primary,
            permissions: Permission::ALL.to_vec(),
            audio_muted: primary.is_some_and(|r| r.5),
            video_muted: primary.is_some_and(|r| r.6),
        }];
        for r in stored.into_iter().filter(|r| r.3 == "cohost") {
            out.push(Row { username: r.1, display_name: r.2, role: HostRole::Cohost, permissions: Permission::split(&r.4), audio_muted: r.5, video_muted: r.6 });
        }
        Ok(out)
    }

    /// The room's hosts with their media state.
    pub async fn hosts(&self, s: &Stream) -> Result<Vec<RoomHost>, ApiError> {
        let name = s.media_name();
        let media = if Self::is_live(s) { self.sfu.room_hosts(&name).unwrap_or_default() } else { Vec::new() };
        let order = if Self::is_live(s) { self.sfu.room_slots(&name, super::MAX_HOSTS, None).unwrap_or_default() } else { Vec::new() };
        Ok(self
            .rows(s)
            .await?
            .into_iter()
            .map(|r| {
                let m = media.iter().find(|m| m.host == r.username);
                RoomHost {
                    slot: order.iter().position(|h| h.as_deref() == Some(r.username.as_str())),
                    audio_muted: m.map_or(r.audio_muted, |m| m.audio_muted),
                    video_muted: m.map_or(r.video_muted, |m| m.video_muted),
                    speaking: m.is_some_and(|m| m.speaking),
                    active_speaker: m.is_some_and(|m| m.active_speaker),
                    connected: m.is_some_and(|m| m.connected),
                    user: r.username,
                    display_name: r.display_name,
                    role: r.role,
                    permissions: r.permissions,
                }
            })
            .collect())
    }

    /// One host of the room, as listed.
    pub async fn host(&self, s: &Stream, username: &str) -> Result<RoomHost, ApiError> {
        self.hosts(s).await?.into_iter().find(|h| h.user == username).ok_or_else(|| no_host(s, username))
    }

    /// Mutes, unmutes or sets the permissions of `target`: a host mutes
    /// themself; the primary host (or a co-host with `mute_others`) mutes
    /// anyone but the primary; only the primary host sets permissions.
    pub async fn update_host(&self, s: &Stream, by: &Principal, target: &User, p: &HostPatch) -> Result<RoomHost, ApiError> {
        Self::check_open(s)?;
        let target_standing = self.standing(s, target.id).await?;
        if !target_standing.is_host() {
            return Err(no_host(s, &target.username));
        }
        let caller = self.standing(s, by.id()).await?;
        let muting = p.audio_muted.is_some() || p.video_muted.is_some();
        if muting && by.id() != target.id {
            let allowed = match (&caller, &target_standing) {
                (Standing::Primary, _) => true,
                (Standing::Cohost(_), Standing::Primary) => false,
                (c, _) => c.may(Permission::MuteOthers),
            };
            if !allowed {
                return Err(ApiError::forbidden("only the primary host, or a co-host allowed to, mutes other hosts"));
            }
        }
        if let Some(perms) = &p.permissions {
            if caller != Standing::Primary {
                return Err(ApiError::forbidden("only the primary host sets permissions"));
            }
            if target_standing == Standing::Primary {
                return Err(conflict("primary_host", "the primary host has every permission"));
            }
            sqlx::query("UPDATE room_hosts SET permissions = $1 WHERE stream_id = $2 AND user_id = $3 AND role = 'cohost'")
                .bind(Permission::join(perms))
                .bind(s.id)
                .bind(target.id)
                .execute(&self.pool)
                .await
                .db()?;
        }
        if muting {
            // The media first: a mute is a safety control and bites at once
            // (the SFU drops the track's packets as they arrive); the row
            // follows, and if it cannot be stored the mute is undone.
            let name = s.media_name();
            let before = self.sfu.room_hosts(&name).and_then(|hs| hs.into_iter().find(|h| h.host == target.username));
            self.sfu.set_muted(&name, &target.username, p.audio_muted, p.video_muted);
            let stored: Result<(), ApiError> = async {
                let role = if target_standing == Standing::Primary { "primary" } else { "cohost" };
                // The primary's row exists only once something about it is stored.
                sqlx::query(
                    "INSERT INTO room_hosts (stream_id, user_id, role, state, joined_at) VALUES ($1, $2, $3, 'active', $4) ON CONFLICT (stream_id, user_id) DO NOTHING",
                )
                .bind(s.id)
                .bind(target.id)
                .bind(role)
                .bind(crate::clock::now_ms())
                .execute(&self.pool)
                .await
                .db()?;
                sqlx::query(
                    "UPDATE room_hosts SET audio_muted = CASE WHEN $1 IS NULL THEN audio_muted WHEN $1 THEN 1 ELSE 0 END, \
                     video_muted = CASE WHEN $2 IS NULL THEN video_muted WHEN $2 THEN 1 ELSE 0 END WHERE stream_id = $3 AND user_id = $4",
                )
                .bind(p.audio_muted)
                .bind(p.video_muted)
                .bind(s.id)
                .bind(target.id)
                .execute(&self.pool)
                .await
                .db()?;
                Ok(())
            }
            .await;
            if let Err(e) = stored {
                if let Some(b) = before {
                    self.sfu.set_muted(&name, &target.username, Some(b.audio_muted), Some(b.video_muted));
                }
                return Err(e);
            }
        }
        let host = self.host(s, &target.username).await?;
        self.to_stream(s.id, &Event::HostUpdated { stream_id: s.id, host: Box::new(host.clone()) });
        Ok(host)
    }

    /// `target` leaves `s`'s room (themself) or is removed from it (the
    /// primary host, channel moderators, staff): its publishing and
    /// host-watching sessions close at once, and it cannot publish into
    /// this room again. The primary host ends the stream instead.
    pub async fn remove_host(&self, s: &Stream, by: &Principal, target: &User, now: i64) -> Result<(), ApiError> {
        let target_standing = self.standing(s, target.id).await?;
        if !target_standing.is_host() {
            return Err(no_host(s, &target.username));
        }
        if target_standing == Standing::Primary {
            return Err(conflict("primary_host", "the primary host ends the stream instead (POST /api/streams/{id}/end): the room ends with it"));
        }
        let leaving = by.id() == target.id;
        if !leaving && !self.moderates(s, by).await? {
            return Err(ApiError::forbidden("only the primary host and the channel's moderators remove hosts"));
        }
        let state = if leaving { "left" } else { "removed" };
        sqlx::query("UPDATE room_hosts SET state = $1, left_at = $2 WHERE stream_id = $3 AND user_id = $4 AND role = 'cohost' AND state = 'active'")
            .bind(state)
            .bind(now)
            .bind(s.id)
            .bind(target.id)
            .execute(&self.pool)
            .await
            .db()?;
        let closed = self.sfu.remove_host(&s.media_name(), &target.username).await;
        tracing::info!(stream = s.id, host = %target.username, state, closed, "host out of the room");
        self.to_stream(s.id, &Event::HostLeft { stream_id: s.id, user: target.username.clone(), reason: state.to_owned() });
        self.announce_slots(s.id);
        self.refresh_topology(s.id).await;
        Ok(())
    }

    /// Whether `user` left or was removed from `s`'s room.
    pub async fn is_out(&self, stream_id: i64, user_id: i64) -> Result<bool, ApiError> {
        Ok(self.member(stream_id, user_id).await?.is_some_and(|m| m.state != MemberState::Active))
    }
}
