//! How a room's hosts see and hear each other, and the mesh relay.
//!
//! With the stream's `topology: auto` a small room is a **mesh**: the
//! studio pages connect host to host directly (their offers, answers and
//! candidates relayed here as `room_signal`), while every host still
//! publishes once to the SFU for the viewers. A larger room is **sfu**:
//! each host watches the room with one host WHEP session. `topology: sfu`
//! forces the latter.
//!
//! The rule, with hysteresis so a host dropping in and out at the edge
//! does not make every page tear down and rebuild its connections:
//! a room starts `mesh` while it has at most [`MESH_MAX`] connected hosts;
//! a `mesh` room becomes `sfu` when a host past [`MESH_MAX`] connects;
//! an `sfu` room becomes `mesh` again only once it is down to
//! [`MESH_BACK`] connected hosts. Every change, and every host joining or
//! leaving, is pushed to the room's hosts (their own user topic) as
//! `room_topology {stream_id, topology, hosts}`; a host subscribing to its
//! room's stream on `/api/ws` gets the current one at once.
//!
//! The relay forwards a host's `room_signal` only to another current host
//! of the same live room, at most [`SIGNAL_MAX_BYTES`] of data, at most
//! [`SIGNAL_RATE`] per sender: a hostile host can neither reach outsiders
//! nor flood the others.

use std::sync::Arc;

use dashmap::DashMap;
use onair_signaling::ApiError;
use serde::Serialize;
use utoipa::ToSchema;

use super::settings::Topology;
use super::Rooms;
use crate::accounts::Principal;
use crate::db::DbResult;
use crate::ratelimit::{Limiter, Rate};
use crate::realtime::Event;

/// A mesh room holds at most this many connected hosts.
pub const MESH_MAX: usize = 4;

/// An `sfu` room (in `auto`) goes back to mesh at this many connected hosts.
pub const MESH_BACK: usize = 3;

/// A relayed signal's `data`, serialised, is at most this long. (The
/// socket's own frame limit, 16 KiB, bounds the whole message first; an
/// SDP offer of a studio page is 4-8 KiB.)
pub const SIGNAL_MAX_BYTES: usize = 12 * 1024;

/// Signals one host may relay (over all its sockets): 5 a second
/// sustained, 40 at once. A studio page meeting three others sends each an
/// offer or an answer and a few batches of candidates; this is well under
/// a socket's own message budget, so the relay's limit is the one that
/// bites.
pub const SIGNAL_RATE: Rate = Rate { per_sec: 5.0, burst: 40.0 };

/// How a room's hosts are connected to each other now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Directly, page to page.
    Mesh,
    /// Through the SFU (host WHEP).
    Sfu,
}

/// The mode a room with `hosts` connected hosts is in, given the stream's
/// setting and the mode it was in (`None`: new).
pub fn next_mode(setting: Topology, current: Option<Mode>, hosts: usize) -> Mode {
    match (setting, current) {
        (Topology::Sfu, _) => Mode::Sfu,
        (Topology::Auto, Some(Mode::Sfu)) if hosts > MESH_BACK => Mode::Sfu,
        (Topology::Auto, _) if hosts > MESH_MAX => Mode::Sfu,
        (Topology::Auto, _) => Mode::Mesh,
    }
}

/// The rooms' modes and the relay's rate.
pub struct Mesh {
    modes: DashMap<i64, Mode>,
    signals: Limiter<i64>,
}

impl Default for Mesh {
    fn default() -> Self {
        Mesh { modes: DashMap::new(), signals: Limiter::new(SIGNAL_RATE) }
    }
}

impl Mesh {
    /// A new, empty one.
    pub fn new() -> Arc<Mesh> {
        Arc::new(Mesh::default())
    }
}

fn refuse(status: u16, code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_REQUEST), code, msg)
}

impl Rooms {
    /// The stream's setting and its hosts' user ids (the primary first),
    /// `None` when the stream is not live.
    async fn room_members(&self, stream_id: i64) -> Option<(Topology, Vec<i64>)> {
        let row: Option<(String, i64)> = sqlx::query_as("SELECT topology, host_id FROM streams WHERE id = $1 AND state = 'live'")
            .bind(stream_id)
            .fetch_optional(&self.pool)
            .await
            .ok()
            .flatten();
        let (topology, primary) = row?;
        let cohosts: Vec<(i64,)> = sqlx::query_as("SELECT user_id FROM room_hosts WHERE stream_id = $1 AND role = 'cohost' AND state = 'active'")
            .bind(stream_id)
            .fetch_all(&self.pool)
            .await
            .ok()?;
        Some((Topology::parse(&topology), std::iter::once(primary).chain(cohosts.into_iter().map(|c| c.0)).collect()))
    }

    /// Connected hosts of a room, by username, in join order.
    fn connected_hosts(&self, stream_id: i64) -> Vec<String> {
        self.sfu.room_hosts(&stream_id.to_string()).unwrap_or_default().into_iter().filter(|h| h.connected).map(|h| h.host).collect()
    }

    /// The room's mode now, and its connected hosts (`None`: not live).
    pub fn topology_now(&self, stream_id: i64, setting: Topology) -> (Mode, Vec<String>) {
        let hosts = self.connected_hosts(stream_id);
        let mode = *self.mesh.modes.entry(stream_id).or_insert_with(|| next_mode(setting, None, hosts.len()));
        (mode, hosts)
    }

    /// Recomputes the room's mode after its hosts or its setting changed,
    /// and tells every host of the room.
    pub async fn refresh_topology(&self, stream_id: i64) {
        let Some((setting, members)) = self.room_members(stream_id).await else {
            self.mesh.modes.remove(&stream_id);
            return;
        };
        let hosts = self.connected_hosts(stream_id);
        let mode = {
            let mut e = self.mesh.modes.entry(stream_id).or_insert(next_mode(setting, None, hosts.len()));
            *e = next_mode(setting, Some(*e), hosts.len());
            *e
        };
        let ev = Event::RoomTopology { stream_id, topology: mode, hosts };
        for id in members {
            self.to_user(id, &ev);
        }
    }

    /// The stream's `topology` setting changed: the mode is chosen afresh
    /// (no hysteresis across a change of setting).
    pub async fn topology_setting_changed(&self, stream_id: i64) {
        self.mesh.modes.remove(&stream_id);
        self.refresh_topology(stream_id).await;
    }

    /// Forgets an ended room's mode.
    pub fn forget_topology(&self, stream_id: i64) {
        self.mesh.modes.remove(&stream_id);
    }

    /// The event a host subscribing to its room gets (`None` for anyone
    /// else, or a room not live).
    pub async fn topology_for(&self, stream_id: i64, who: i64) -> Option<Event> {
        let (setting, members) = self.room_members(stream_id).await?;
        if !members.contains(&who) {
            return None;
        }
        let (topology, hosts) = self.topology_now(stream_id, setting);
        Some(Event::RoomTopology { stream_id, topology, hosts })
    }

    /// Relays a mesh signal from `from` to the host `to` of the same live
    /// room, as `room_signal {stream_id, from, data}` on `to`'s user topic.
    pub async fn relay_signal(&self, stream_id: i64, from: &Principal, to: &str, data: serde_json::Value) -> Result<(), ApiError> {
        if let Err(wait) = self.mesh.signals.check(&from.id()) {
            if self.mesh.signals.len() > 10_000 {
                self.mesh.signals.prune();
            }
            return Err(refuse(429, "rate_limited", "too many room signals; slow down").retry_after(wait.as_millis() as u64 + 1));
        }
        if !data.is_object() {
            return Err(refuse(400, "bad_signal", "data must be an object (an offer, an answer or a candidate)"));
        }
        let size = serde_json::to_string(&data).map(|s| s.len()).unwrap_or(usize::MAX);
        if size > SIGNAL_MAX_BYTES {
            return Err(refuse(413, "signal_too_large", format!("data is {size} bytes; at most {SIGNAL_MAX_BYTES}")));
        }
        let not_member = || refuse(403, "not_room_member", "signals go only between hosts of the same live room");
        let (_, members) = self.room_members(stream_id).await.ok_or_else(not_member)?;
        if !members.contains(&from.id()) {
            return Err(not_member());
        }
        let row: Option<(i64,)> = sqlx::query_as("SELECT id FROM users WHERE username = $1").bind(to).fetch_optional(&self.pool).await.db()?;
        let to_id = row.map(|r| r.0).filter(|id| members.contains(id) && *id != from.id()).ok_or_else(not_member)?;
        self.to_user(to_id, &Event::RoomSignal { stream_id, from: from.user.username.clone(), data });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_rooms_switch_at_five_and_back_at_three() {
        let mut m = None;
        let mut seen = Vec::new();
        for n in [1, 2, 3, 4, 5, 4, 5, 4, 3, 4, 5] {
            let next = next_mode(Topology::Auto, m, n);
            m = Some(next);
            seen.push(next);
        }
        use Mode::*;
        assert_eq!(seen, [Mesh, Mesh, Mesh, Mesh, Sfu, Sfu, Sfu, Sfu, Mesh, Mesh, Sfu]);
        assert_eq!(next_mode(Topology::Auto, None, 5), Sfu, "a room met with five hosts starts in sfu");
        assert_eq!(next_mode(Topology::Sfu, Some(Mesh), 2), Sfu, "topology: sfu forces it");
        assert_eq!(next_mode(Topology::Auto, Some(Sfu), 1), Mesh, "back from a forced sfu setting");
    }
}
